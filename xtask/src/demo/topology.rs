//! The demo's machines, built from the definition: a router namespace running `vpc-agent run`,
//! one namespace per instance on its own router port (its ENI), for a subnet with a shared
//! segment a switch namespace (a Linux bridge) holding its other instances, and an internet
//! namespace behind the uplink (the internet gateway) holding an internet server
//! (192.0.2.100, also the router's upstream) and a home-network client (203.0.113.50). Every
//! host stays at Linux defaults (checksum offload on).
//!
//! The namespaces are IPv4 only, except when the VPC has an `ipv6_cidr_block`: then the router
//! and the internet namespace speak IPv6 too (the router's upstream [`UPLINK_ROUTER_IP6`], the
//! internet server [`INTERNET_IP6`], which routes the VPC's block to the router), and so does
//! each host of an instance with `ipv6_addresses` (on its own port): once the agent runs, it
//! takes its static addresses and learns its default router from the router's advertisement.
//!
//! Dropping a [`Vpc`] stops the agent, detaches the pinned datapath and removes every namespace.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use vpc_agent::config::{ValidatedConfig, load_str, validated::VpcDef};
use vpc_tests::{
    agent::{Agent, Bpffs, Scratch},
    bridge::{Switch, ipv4_only},
    netns::{Host, NetNs, veth},
    topology::{INTERNET_CLIENT_IP, INTERNET_IP, UPLINK_ROUTER_IP},
};

use super::{interrupt, story::Show};

/// The router's IPv6 address on the uplink (a /64 shared with the internet namespace).
pub const UPLINK_ROUTER_IP6: &str = "2001:db8:ff::1";
/// The internet server's IPv6 address (also the router's IPv6 upstream).
pub const INTERNET_IP6: &str = "2001:db8:ff::2";
/// How long a host may take to learn its IPv6 default router from the advertisement.
const ROUTER_ADVERT_WAIT: Duration = Duration::from_secs(10);

/// A namespace that speaks IPv6 only if `ipv6` (else IPv4 only).
fn namespace(prefix: &str, ipv6: bool) -> Result<NetNs> {
    if ipv6 {
        NetNs::new(prefix)
    } else {
        ipv4_only(prefix)
    }
}

/// The running demo. Fields drop in order: the agent first, then the pinned datapath, then
/// the namespaces, the router's last.
pub struct Vpc {
    pub agent: Agent,
    pub bpffs: Bpffs,
    /// Hosts by instance name.
    pub hosts: BTreeMap<String, Host>,
    pub switches: Vec<Switch>,
    pub internet: NetNs,
    pub router: NetNs,
    pub config: ValidatedConfig,
    /// The definition the agent runs on (the user's file, or a copy of the embedded one).
    pub config_file: std::path::PathBuf,
    pub scratch: Scratch,
}

impl Vpc {
    /// Builds the namespaces for `yaml`, then starts the agent on it and waits until it runs.
    /// `file` is the user's definition file, if any (the agent reads that one).
    pub fn build(name: &str, yaml: &str, file: Option<&Path>, show: Show) -> Result<Self> {
        let config = load_str(name, yaml).map_err(|d| anyhow!("invalid definition:\n{d}"))?;
        let vpc = config.vpcs.first().context("the definition has no VPC")?;
        let router = namespace("demo-router-", vpc.ipv6_cidr_block.is_some())?;
        router.sysctl("net.ipv4.conf.all.forwarding=1")?;
        let mut switches = Vec::new();
        let mut hosts = BTreeMap::new();
        for subnet in 0..vpc.subnets.len() {
            interrupt::check()?;
            let (switch, subnet_hosts) = build_subnet(&router, vpc, subnet, show)?;
            switches.extend(switch);
            hosts.extend(subnet_hosts);
        }
        let internet = build_internet(&router, vpc, show)?;
        let scratch = Scratch::new()?;
        let config_file = match file {
            Some(path) => std::path::absolute(path)?,
            None => scratch.write("vpc.yaml", yaml)?,
        };
        let bpffs = Bpffs::new()?;
        let agent = start_agent(&router, &config_file, &bpffs, &scratch, show)?;
        ipv6_hosts(vpc, &hosts, show)?;
        Ok(Self {
            agent,
            bpffs,
            hosts,
            switches,
            internet,
            router,
            config,
            config_file,
            scratch,
        })
    }

    /// The only VPC of the definition.
    pub fn def(&self) -> &VpcDef {
        &self.config.vpcs[0]
    }

    /// The host named `name` (an instance or a NAT gateway).
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.get(name).with_context(|| {
            format!("the story needs a host named {name:?}, which the definition does not have")
        })
    }

    /// Every namespace, for `--keep` and `--down`.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut all = vec![self.router.name(), self.internet.name()];
        all.extend(self.switches.iter().map(|s| s.ns.name()));
        all.extend(self.hosts.values().map(|h| h.ns.name()));
        all
    }
}

/// A subnet's machines: its shared segment's switch (if it has one) and its hosts by name.
type SubnetMachines = (Option<Switch>, Vec<(String, Host)>);

/// Subnet `index`: a host per instance, on its own router port or on the subnet's switch.
fn build_subnet(router: &NetNs, vpc: &VpcDef, index: usize, show: Show) -> Result<SubnetMachines> {
    let subnet = &vpc.subnets[index];
    let len = subnet.cidr.prefix_len();
    let gateway = subnet.router_ip().to_string();
    let ipv6 = subnet
        .ipv6_cidr
        .map_or(String::new(), |net| format!(", IPv6 {net}"));
    let mut switch = match &subnet.interface {
        Some(interface) => {
            let switch = Switch::new(&format!("demo-sw-{}-", subnet.name), router, interface)
                .with_context(|| format!("switch of subnet {}", subnet.name))?;
            show.line(&format!(
                "subnet {} {}{ipv6}: shared segment on router port {interface} (switch {})",
                subnet.name,
                subnet.cidr,
                switch.ns.name()
            ));
            Some(switch)
        }
        None => {
            show.line(&format!("subnet {} {}{ipv6}", subnet.name, subnet.cidr));
            None
        }
    };
    let mut hosts = Vec::new();
    for inst in vpc.instances.iter().filter(|i| i.subnet == index) {
        let (name, ip) = (inst.name.as_str(), inst.private_ip);
        let prefix = format!("demo-{name}-");
        let addr = format!("{ip}/{len}");
        let (host, port) = match (&inst.interface, switch.as_mut()) {
            (Some(port), _) => {
                let host = Host::new(&prefix, router, port, &addr, &gateway)?;
                if inst.ipv6_addresses.is_empty() {
                    // IPv6 only where the instance has addresses (`ipv6_hosts`).
                    host.ns.sysctl("net.ipv6.conf.all.disable_ipv6=1")?;
                    host.ns.sysctl("net.ipv6.conf.default.disable_ipv6=1")?;
                }
                (host, port.clone())
            }
            (None, Some(switch)) => (switch.host(&prefix, &addr, &gateway)?, "the segment".into()),
            (None, None) => anyhow::bail!("instance {name} has no interface"),
        };
        let public = inst
            .public_ip
            .map_or(String::new(), |p| format!(", public {p}"));
        let ipv6: String = inst
            .ipv6_addresses
            .iter()
            .map(|a| format!(", IPv6 {a}"))
            .collect();
        show.line(&format!(
            "  instance {name} {ip}{public}{ipv6} on {port} (namespace {})",
            host.ns.name()
        ));
        hosts.push((name.to_owned(), host));
    }
    for nat in vpc.nat_gateways.iter().filter(|n| n.subnet == index) {
        show.line(&format!(
            "  NAT gateway {} {} -> elastic {} (in the router itself)",
            nat.name, nat.private_ip, nat.elastic_ip
        ));
    }
    Ok((switch, hosts))
}

/// The internet namespace on the uplink: the router's upstream and internet server
/// (192.0.2.100) and the home network's client (203.0.113.50).
fn build_internet(router: &NetNs, vpc: &VpcDef, show: Show) -> Result<NetNs> {
    let igw = vpc
        .internet_gateway
        .as_ref()
        .context("the story needs an internet gateway")?;
    let internet = namespace("demo-internet-", vpc.ipv6_cidr_block.is_some())?;
    veth(router, &igw.interface, &internet, "eth0")?;
    let uplink = format!("{UPLINK_ROUTER_IP}/24");
    router.ip(&["addr", "add", &uplink, "dev", &igw.interface])?;
    router.ip(&["route", "add", "default", "via", INTERNET_IP])?;
    let server = format!("{INTERNET_IP}/24");
    internet.ip(&["addr", "add", &server, "dev", "eth0"])?;
    let home = format!("{INTERNET_CLIENT_IP}/32");
    internet.ip(&["addr", "add", &home, "dev", "lo"])?;
    internet.ip(&["route", "add", "default", "via", UPLINK_ROUTER_IP])?;
    show.line(&format!(
        "internet on router port {} ({UPLINK_ROUTER_IP}): server {INTERNET_IP}, home client {INTERNET_CLIENT_IP} (namespace {})",
        igw.interface,
        internet.name()
    ));
    if let Some(block) = vpc.ipv6_cidr_block {
        // IPv6 through the gateways is not translated: the internet routes the VPC's block to
        // the router, and the router's kernel needs its own route to the internet.
        let uplink = format!("{UPLINK_ROUTER_IP6}/64");
        router.ip(&["-6", "addr", "add", &uplink, "dev", &igw.interface, "nodad"])?;
        router.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            INTERNET_IP6,
            "dev",
            &igw.interface,
        ])?;
        let server = format!("{INTERNET_IP6}/64");
        internet.ip(&["-6", "addr", "add", &server, "dev", "eth0", "nodad"])?;
        let block = block.to_string();
        internet.ip(&["-6", "route", "add", &block, "via", UPLINK_ROUTER_IP6])?;
        show.line(&format!(
            "  IPv6: router {UPLINK_ROUTER_IP6}, server {INTERNET_IP6} (routes {block} to the router)"
        ));
    }
    Ok(internet)
}

/// Each host of an instance with IPv6 addresses (on its own port) takes them, and learns its
/// default router from the router's advertisement. Needs the agent running: the link bounce
/// makes the host solicit a router, which the datapath answers. The bounce takes the host's
/// IPv4 default route with it: it is put back.
fn ipv6_hosts(vpc: &VpcDef, hosts: &BTreeMap<String, Host>, show: Show) -> Result<()> {
    let with_ipv6 = || {
        vpc.instances
            .iter()
            .filter(|i| i.interface.is_some() && !i.ipv6_addresses.is_empty())
    };
    for inst in with_ipv6() {
        interrupt::check()?;
        let ns = &hosts[&inst.name].ns;
        ns.ip(&["link", "set", "eth0", "down"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        let gateway = vpc.subnets[inst.subnet].router_ip().to_string();
        ns.ip(&["route", "replace", "default", "via", &gateway])?;
        for addr in &inst.ipv6_addresses {
            let addr = format!("{addr}/128");
            ns.ip(&["-6", "addr", "add", &addr, "dev", "eth0", "nodad"])?;
        }
    }
    for inst in with_ipv6() {
        let ns = &hosts[&inst.name].ns;
        let started = Instant::now();
        let router = loop {
            interrupt::check()?;
            let out = ns.ip(&["-6", "route", "show", "default"])?;
            let text = String::from_utf8_lossy(&out.stdout);
            let via = text.split_whitespace().skip_while(|w| *w != "via").nth(1);
            if let Some(via) = via.filter(|v| v.starts_with("fe80:")) {
                break via.to_owned();
            }
            if started.elapsed() > ROUTER_ADVERT_WAIT {
                anyhow::bail!(
                    "{}: no IPv6 default router after {} s (the router's advertisement)",
                    inst.name,
                    ROUTER_ADVERT_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        show.line(&format!(
            "{}: IPv6 default router {router} (from the router's advertisement, after {:.1} s)",
            inst.name,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

fn start_agent(
    router: &NetNs,
    config: &Path,
    bpffs: &Bpffs,
    scratch: &Scratch,
    show: Show,
) -> Result<Agent> {
    interrupt::check()?;
    let log = scratch.dir.join("agent.log");
    let mut agent = Agent::spawn(router, config, bpffs, log.clone(), &[])?;
    let took = agent.wait_running().context("vpc-agent did not start")?;
    show.line(&format!(
        "router {}: vpc-agent run --config {} --bpffs {} (running after {:.1} s, log {})",
        router.name(),
        config.display(),
        bpffs.arg(),
        took.as_secs_f64(),
        log.display()
    ));
    Ok(agent)
}
