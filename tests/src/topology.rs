//! A whole VPC on one machine (or several, peered), built from a definition: a router namespace
//! with one veth per router interface (an instance's own port, a subnet's shared segment, the
//! first VPC's uplink), behind each a namespace: an instance's own host on its port, every
//! address of the segment's instances on a segment, and an "internet" namespace behind the
//! uplink. Hosts stay at Linux defaults (checksum offload on, GRO and TSO as the kernel sets
//! them). Everything is removed on drop.
//!
//! Addresses and MACs are deterministic: router port `i` has MAC `02:00:00:00:i:fe`, the host
//! end `02:00:00:00:i:01`. The uplink is 192.0.2.1/24 on the router and 192.0.2.100/24 in
//! the internet namespace, which also holds 203.0.113.50 ("a client on the internet") and is
//! the router's default gateway.
//!
//! A gateway's link (a VPN gateway: "the office") is a /30, [`gateway_link`]: the router at
//! `.1`, the far end at `.2`, which holds host 10 of each network behind the gateway
//! ([`gateway_host`]); the router routes those networks via `.2`, as an operator would, and
//! has a default route via `.2` with a high metric (1000 + link): the next hop out of that
//! link for a VPC route `0.0.0.0/0 -> gateway`, which the router's own traffic never takes.

use std::{collections::BTreeMap, ffi::CString, net::Ipv4Addr};

use anyhow::{Context as _, Result};
use vpc_agent::{
    compile::{Compiled, Link, Links, compile},
    config::{ValidatedConfig, load_str, validated::InterfaceRole},
    daemon::netconf,
    datapath::AttachMode,
    links::SystemLinks,
};

use crate::{
    datapath::Datapath,
    netns::{NetNs, veth},
};

pub const UPLINK_ROUTER_IP: &str = "192.0.2.1";
pub const INTERNET_IP: &str = "192.0.2.100";
pub const INTERNET_CLIENT_IP: &str = "203.0.113.50";

/// The /30 of gateway link `g` (0-based, in `ValidatedConfig::interfaces` order): router `.1`,
/// far end `.2`.
pub fn gateway_link(g: u8) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(192, 168, 250, 4 * g + 1),
        Ipv4Addr::new(192, 168, 250, 4 * g + 2),
    )
}

/// The host behind a gateway in its network `net`: host 10.
pub fn gateway_host(net: ipnet::Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 10)
}

/// A MAC address of the topology.
pub fn mac(port: u8, host: bool) -> [u8; 6] {
    [0x02, 0, 0, 0, port, if host { 0x01 } else { 0xfe }]
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One router port and the namespace on its other end.
pub struct Port {
    /// Index used in the MAC addresses.
    pub index: u8,
    /// Interface name on the router.
    pub ifname: String,
    /// Interface index on the router.
    pub ifindex: u32,
    /// The namespace behind it (a subnet's hosts, or the internet).
    pub ns: NetNs,
    /// Addresses held in `ns`.
    pub addrs: Vec<Ipv4Addr>,
}

pub struct Topology {
    pub router: NetNs,
    /// Router ports by router interface name (subnets and the uplink).
    pub ports: BTreeMap<String, Port>,
    pub config: ValidatedConfig,
    pub compiled: Compiled,
    pub datapath: Datapath,
}

impl Topology {
    /// Builds the namespaces for `yaml` (one VPC with an internet gateway), loads the datapath
    /// in the router namespace and applies the definition. Programs are attached as `mode`
    /// says when it is given; without, the topology is for BPF_PROG_TEST_RUN and its
    /// interfaces are compiled as NICs would be (XDP takes every decision itself). With
    /// `static_neighbours`, the router knows every host's MAC in advance (deterministic
    /// `bpf_fib_lookup`).
    pub fn build(yaml: &str, mode: Option<AttachMode>, static_neighbours: bool) -> Result<Self> {
        let config = load_str("fixture.yaml", yaml).map_err(|d| {
            anyhow::anyhow!(
                "fixture invalid:\n{}",
                d.lines().collect::<Vec<_>>().join("\n")
            )
        })?;
        let router = NetNs::new("r")?;
        router.sysctl("net.ipv4.conf.all.forwarding=1")?;
        router.sysctl("net.ipv4.conf.default.forwarding=1")?;
        let mut ports = BTreeMap::new();
        let mut index = 0u8;
        let vpc = config.vpcs.first().context("fixture has no VPC")?;
        let uplink = vpc.internet_gateway.as_ref().map(|i| i.interface.clone());
        let mut gateway_links = 0u8;
        let mut gateway_ports = Vec::new();
        for (ifname, role) in config.interfaces() {
            index += 1;
            let (addrs, gateway, prefix_len, host_prefix) = match role {
                InterfaceRole::Uplink { .. } => continue,
                InterfaceRole::Gateway { vpc, gateway } => {
                    let g = &config.vpcs[vpc].gateways[gateway];
                    let port = Self::gateway_port(&router, index, ifname, gateway_links, g)?;
                    gateway_links += 1;
                    gateway_ports.push(ifname.to_owned());
                    ports.insert(ifname.to_owned(), port);
                    continue;
                }
                InterfaceRole::Segment { vpc, subnet } => {
                    let v = &config.vpcs[vpc];
                    let s = &v.subnets[subnet];
                    let addrs: Vec<Ipv4Addr> = v
                        .instances
                        .iter()
                        .filter(|i| i.subnet == subnet && i.interface.is_none())
                        .map(|i| i.private_ip)
                        .collect();
                    (addrs, s.router_ip(), s.cidr.prefix_len(), "s")
                }
                InterfaceRole::Port { vpc, instance } => {
                    let v = &config.vpcs[vpc];
                    let inst = &v.instances[instance];
                    let s = &v.subnets[inst.subnet];
                    (
                        vec![inst.private_ip],
                        s.router_ip(),
                        s.cidr.prefix_len(),
                        "h",
                    )
                }
            };
            let port = Self::port(&router, index, ifname, host_prefix)?;
            for a in &addrs {
                let addr = format!("{a}/{prefix_len}");
                port.ns.ip(&["addr", "add", &addr, "dev", "eth0"])?;
            }
            port.ns
                .ip(&["route", "add", "default", "via", &gateway.to_string()])?;
            ports.insert(ifname.to_owned(), Port { addrs, ..port });
        }
        // The internet namespace sits behind the first VPC's internet gateway.
        if let Some(uplink) = &uplink {
            index += 1;
            let port = Self::port(&router, index, uplink, "i")?;
            router.ip(&[
                "addr",
                "add",
                &format!("{UPLINK_ROUTER_IP}/24"),
                "dev",
                uplink,
            ])?;
            port.ns
                .ip(&["addr", "add", &format!("{INTERNET_IP}/24"), "dev", "eth0"])?;
            port.ns.ip(&[
                "addr",
                "add",
                &format!("{INTERNET_CLIENT_IP}/32"),
                "dev",
                "lo",
            ])?;
            port.ns
                .ip(&["route", "add", "default", "via", UPLINK_ROUTER_IP])?;
            router.ip(&["route", "add", "default", "via", INTERNET_IP])?;
            let addrs = vec![INTERNET_IP.parse()?, INTERNET_CLIENT_IP.parse()?];
            ports.insert(uplink.clone(), Port { addrs, ..port });
        }

        let (compiled, datapath) = {
            let _inside = router.enter()?;
            // The agent's own preparation: router addresses, routes to instance ports.
            for iface in netconf::managed_interfaces(&config) {
                netconf::prepare(&iface).map_err(|e| anyhow::anyhow!("netconf: {e}"))?;
            }
            let compiled = match mode {
                Some(_) => compile(&config, 0, &SystemLinks),
                None => compile(&config, 0, &AsNics),
            }
            .map_err(|e| anyhow::anyhow!("compile: {e}"))?;
            let mut datapath = Datapath::load()?;
            datapath.apply(&compiled, 1)?;
            if let Some(mode) = mode {
                datapath.attach_all(&compiled, mode, &|i| if_name(i))?;
            }
            (compiled, datapath)
        };
        if static_neighbours {
            for port in ports.values() {
                let lladdr = mac_str(mac(port.index, true));
                let neighbours: Vec<String> = if Some(&port.ifname) == uplink.as_ref() {
                    vec![INTERNET_IP.to_string()]
                } else if gateway_ports.contains(&port.ifname) {
                    // A gateway link: its far end is the next hop of everything behind it.
                    vec![port.addrs[0].to_string()]
                } else {
                    port.addrs.iter().map(ToString::to_string).collect()
                };
                for n in neighbours {
                    router.ip(&[
                        "neigh",
                        "replace",
                        &n,
                        "lladdr",
                        &lladdr,
                        "dev",
                        &port.ifname,
                        "nud",
                        "permanent",
                    ])?;
                }
            }
        }
        Ok(Self {
            router,
            ports,
            config,
            compiled,
            datapath,
        })
    }

    /// The link of gateway `g` (the `link`-th): the far end holds a host in each of its
    /// networks, and the router routes them there.
    fn gateway_port(
        router: &NetNs,
        index: u8,
        ifname: &str,
        link: u8,
        g: &vpc_agent::config::validated::GatewayDef,
    ) -> Result<Port> {
        let port = Self::port(router, index, ifname, "g")?;
        let (near, far) = gateway_link(link);
        router.ip(&["addr", "add", &format!("{near}/30"), "dev", ifname])?;
        port.ns
            .ip(&["addr", "add", &format!("{far}/30"), "dev", "eth0"])?;
        port.ns
            .ip(&["route", "add", "default", "via", &near.to_string()])?;
        let mut addrs = vec![far];
        for net in &g.networks {
            let host = gateway_host(*net);
            port.ns
                .ip(&["addr", "add", &format!("{host}/32"), "dev", "lo"])?;
            router.ip(&["route", "add", &net.to_string(), "via", &far.to_string()])?;
            addrs.push(host);
        }
        let metric = (1000 + u32::from(link)).to_string();
        let far = far.to_string();
        router.ip(&[
            "route", "add", "default", "via", &far, "dev", ifname, "metric", &metric,
        ])?;
        Ok(Port { addrs, ..port })
    }

    /// A router port `ifname` wired to a new namespace's `eth0` (both ends at Linux defaults).
    fn port(router: &NetNs, index: u8, ifname: &str, prefix: &str) -> Result<Port> {
        let ns = NetNs::new(prefix)?;
        veth(router, ifname, &ns, "eth0")?;
        router.ip(&[
            "link",
            "set",
            ifname,
            "address",
            &mac_str(mac(index, false)),
        ])?;
        ns.ip(&["link", "set", "eth0", "address", &mac_str(mac(index, true))])?;
        let ifindex = router.ifindex(ifname)?;
        Ok(Port {
            index,
            ifname: ifname.to_string(),
            ifindex,
            ns,
            addrs: Vec::new(),
        })
    }

    /// The port behind which `addr` lives.
    pub fn port_of(&self, addr: Ipv4Addr) -> Option<&Port> {
        self.ports.values().find(|p| p.addrs.contains(&addr))
    }

    /// `packet`'s frame as a host behind router port `ingress` sends it: from the host end's
    /// MAC to the router port's (unless the packet sets its own MACs).
    pub fn frame(&self, ingress: &str, packet: &crate::packet::Packet) -> Vec<u8> {
        let port = self.port_named(ingress);
        let mut p = packet.clone();
        if p.dst_mac == crate::packet::Packet::DEFAULT_DST_MAC {
            p.src_mac = mac(port.index, true);
            p.dst_mac = mac(port.index, false);
        }
        p.build()
    }

    /// The port by router interface name.
    pub fn port_named(&self, ifname: &str) -> &Port {
        self.ports
            .get(ifname)
            .unwrap_or_else(|| panic!("no port {ifname}"))
    }
}

/// The router's interfaces as a NIC-only router would have them (for BPF_PROG_TEST_RUN):
/// real ifindexes and MACs, no virtual devices, so XDP takes every decision itself.
struct AsNics;

impl Links for AsNics {
    fn link(&self, name: &str) -> Option<Link> {
        SystemLinks.link(name).map(|l| Link {
            virtual_device: false,
            ..l
        })
    }

    fn addresses(&self, name: &str) -> Vec<Ipv4Addr> {
        SystemLinks.addresses(name)
    }
}

/// if_nametoindex in the calling thread's namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// if_indextoname in the calling thread's namespace.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// (assured, unassured) connection entries in the topology's datapath.
pub fn conntrack_counts(topo: &Topology) -> (usize, usize) {
    let count = |name: &str| {
        topo.datapath
            .ebpf()
            .map(name)
            .and_then(|m| {
                aya::maps::HashMap::<_, vpc_common::conntrack::CtKey, vpc_common::conntrack::CtEntry>::try_from(m).ok()
            })
            .map_or(0, |m| m.keys().count())
    };
    (count("CONNTRACK"), count("CT_UNASSURED"))
}

/// The connection entry of `key` (its original direction), assured or not.
pub fn ct_entry(
    topo: &Topology,
    key: &vpc_common::conntrack::CtKey,
) -> Option<vpc_common::conntrack::CtEntry> {
    ["CONNTRACK", "CT_UNASSURED"].into_iter().find_map(|name| {
        let map = topo.datapath.ebpf().map(name)?;
        let ct = aya::maps::HashMap::<
            _,
            vpc_common::conntrack::CtKey,
            vpc_common::conntrack::CtEntry,
        >::try_from(map)
        .ok()?;
        ct.get(key, 0).ok()
    })
}
