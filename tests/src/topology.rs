//! A whole VPC on one machine (or several, peered), built from a definition: a router namespace
//! with one veth per subnet interface and one for the first VPC's uplink, a namespace per subnet holding every address
//! registered there (its instances and NAT gateways), and an "internet" namespace behind the
//! uplink. Everything is removed on drop.
//!
//! Addresses and MACs are deterministic: router port `i` has MAC `02:00:00:00:i:fe`, the host
//! end `02:00:00:00:i:01`. The uplink is 192.0.2.1/24 on the router and 192.0.2.100/24 in
//! the internet namespace, which also holds 203.0.113.50 ("a client on the internet") and is
//! the router's default gateway.

use std::{collections::BTreeMap, ffi::CString, net::Ipv4Addr};

use anyhow::{Context as _, Result};
use aya::programs::XdpMode;
use vpc_agent::{
    compile::{Compiled, compile},
    config::{ValidatedConfig, load_str},
};

use crate::{
    datapath::Datapath,
    netns::{NetNs, veth},
};

pub const UPLINK_ROUTER_IP: &str = "192.0.2.1";
pub const INTERNET_IP: &str = "192.0.2.100";
pub const INTERNET_CLIENT_IP: &str = "203.0.113.50";

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
    /// in the router namespace and applies the definition. Programs are attached when `mode`
    /// is given (BPF_PROG_TEST_RUN needs no attachment). With `static_neighbours`, the router
    /// knows every host's MAC in advance (deterministic `bpf_fib_lookup`).
    pub fn build(yaml: &str, mode: Option<XdpMode>, static_neighbours: bool) -> Result<Self> {
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
        for (s, subnet, vpc) in config.vpcs.iter().flat_map(|vpc| {
            vpc.subnets
                .iter()
                .enumerate()
                .map(move |(s, n)| (s, n, vpc))
        }) {
            index += 1;
            let mut addrs: Vec<Ipv4Addr> = vpc
                .instances
                .iter()
                .filter(|i| i.subnet == s)
                .map(|i| i.private_ip)
                .collect();
            addrs.extend(
                vpc.nat_gateways
                    .iter()
                    .filter(|n| n.subnet == s)
                    .map(|n| n.private_ip),
            );
            let gateway = subnet.router_ip();
            let router_addr = format!("{gateway}/{}", subnet.cidr.prefix_len());
            let port = Self::port(&router, index, &subnet.interface, &router_addr, "s")?;
            for a in &addrs {
                port.ns.ip(&[
                    "addr",
                    "add",
                    &format!("{a}/{}", subnet.cidr.prefix_len()),
                    "dev",
                    "eth0",
                ])?;
            }
            port.ns
                .ip(&["route", "add", "default", "via", &gateway.to_string()])?;
            ports.insert(subnet.interface.clone(), Port { addrs, ..port });
        }
        // The internet namespace sits behind the first VPC's internet gateway.
        let vpc = config.vpcs.first().context("fixture has no VPC")?;
        if let Some(igw) = &vpc.internet_gateway {
            index += 1;
            let port = Self::port(
                &router,
                index,
                &igw.interface,
                &format!("{UPLINK_ROUTER_IP}/24"),
                "i",
            )?;
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
            ports.insert(igw.interface.clone(), Port { addrs, ..port });
        }
        if static_neighbours {
            for port in ports.values() {
                let lladdr = mac_str(mac(port.index, true));
                let neighbours: Vec<String> = if port.ifname
                    == vpc
                        .internet_gateway
                        .as_ref()
                        .map_or("", |i| i.interface.as_str())
                {
                    vec![INTERNET_IP.to_string()]
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

        let (compiled, datapath) = {
            let _inside = router.enter()?;
            let compiled = compile(&config, 0, &|name: &str| if_index(name))
                .map_err(|e| anyhow::anyhow!("compile: {e}"))?;
            let mut datapath = Datapath::load()?;
            datapath.apply(&compiled, 1)?;
            if let Some(mode) = mode {
                datapath.attach_all(&compiled, mode, &|i| if_name(i))?;
            }
            (compiled, datapath)
        };
        Ok(Self {
            router,
            ports,
            config,
            compiled,
            datapath,
        })
    }

    /// A router port `ifname` (address `router_addr`) wired to a new namespace's `eth0`.
    fn port(
        router: &NetNs,
        index: u8,
        ifname: &str,
        router_addr: &str,
        prefix: &str,
    ) -> Result<Port> {
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
        router.ip(&["addr", "add", router_addr, "dev", ifname])?;
        // Full checksums on the wire (XDP sees no offload state), and NAPI on the receiving
        // end so that XDP_REDIRECT into this veth is delivered.
        ns.exec("ethtool", &["-K", "eth0", "tx", "off", "gro", "on"])?;
        router.exec("ethtool", &["-K", ifname, "tx", "off", "gro", "on"])?;
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

    /// The port by router interface name.
    pub fn port_named(&self, ifname: &str) -> &Port {
        self.ports
            .get(ifname)
            .unwrap_or_else(|| panic!("no port {ifname}"))
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
