//! The demo's machines, built from the definition: a router namespace running `vpc-agent run`,
//! one namespace per instance on its own router port (its ENI), for a subnet with a shared
//! segment a switch namespace (a Linux bridge) holding its other instances, and an internet
//! namespace behind the uplink (the internet gateway) holding an internet server
//! (192.0.2.100, also the router's upstream) and a home-network client (203.0.113.50). Every
//! host stays at Linux defaults (checksum offload on).
//!
//! Dropping a [`Vpc`] stops the agent, detaches the pinned datapath and removes every namespace.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result, anyhow};
use vpc_agent::config::{ValidatedConfig, load_str, validated::VpcDef};
use vpc_tests::{
    agent::{Agent, Bpffs, Scratch},
    bridge::{Switch, ipv4_only},
    netns::{Host, NetNs, veth},
    topology::{INTERNET_CLIENT_IP, INTERNET_IP, UPLINK_ROUTER_IP},
};

use super::{interrupt, story::Show};

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
        let router = ipv4_only("demo-router-")?;
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

/// A subnet's switch (if its instances share a segment) and its hosts by instance name.
type SubnetHosts = (Option<Switch>, Vec<(String, Host)>);

/// Subnet `index`: a host per instance, on its own router port or on the subnet's switch.
fn build_subnet(router: &NetNs, vpc: &VpcDef, index: usize, show: Show) -> Result<SubnetHosts> {
    let subnet = &vpc.subnets[index];
    let len = subnet.cidr.prefix_len();
    let gateway = subnet.router_ip().to_string();
    let mut switch = match &subnet.interface {
        Some(interface) => {
            let switch = Switch::new(&format!("demo-sw-{}-", subnet.name), router, interface)
                .with_context(|| format!("switch of subnet {}", subnet.name))?;
            show.line(&format!(
                "subnet {} {}: shared segment on router port {interface} (switch {})",
                subnet.name,
                subnet.cidr,
                switch.ns.name()
            ));
            Some(switch)
        }
        None => {
            show.line(&format!("subnet {} {}", subnet.name, subnet.cidr));
            None
        }
    };
    let mut hosts = Vec::new();
    for inst in vpc.instances.iter().filter(|i| i.subnet == index) {
        let (name, ip) = (inst.name.as_str(), inst.private_ip);
        let prefix = format!("demo-{name}-");
        let addr = format!("{ip}/{len}");
        let (host, port) = match (&inst.interface, switch.as_mut()) {
            (Some(port), _) => (
                Host::new(&prefix, router, port, &addr, &gateway)?,
                port.clone(),
            ),
            (None, Some(switch)) => (switch.host(&prefix, &addr, &gateway)?, "the segment".into()),
            (None, None) => anyhow::bail!("instance {name} has no interface"),
        };
        let public = inst
            .public_ip
            .map_or(String::new(), |p| format!(", public {p}"));
        show.line(&format!(
            "  instance {name} {ip}{public} on {port} (namespace {})",
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
    let internet = ipv4_only("demo-internet-")?;
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
    Ok(internet)
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
