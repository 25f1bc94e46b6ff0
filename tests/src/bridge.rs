//! Distinct hosts on one subnet: a "switch" namespace holding a Linux bridge, wired to a router
//! interface, and one namespace per host plugged into the bridge. Everything is removed on drop
//! (the namespaces own their interfaces).
//!
//! Hosts stay at Linux defaults (checksum offload on: the datapath takes the TC path on veth).
//! IPv6 is off in every namespace made here, so that router solicitations and neighbour
//! discovery do not show up in the datapath's drop counters (the model is IPv4 only).

use anyhow::Result;

use crate::netns::{Host, NetNs, veth};

/// The bridge's name inside a switch namespace.
pub const BRIDGE: &str = "br0";

/// A namespace with IPv6 off and loopback up.
pub fn ipv4_only(prefix: &str) -> Result<NetNs> {
    let ns = NetNs::new(prefix)?;
    ns.sysctl("net.ipv6.conf.all.disable_ipv6=1")?;
    ns.sysctl("net.ipv6.conf.default.disable_ipv6=1")?;
    Ok(ns)
}

/// A Linux bridge in its own namespace, plugged into one router interface.
pub struct Switch {
    pub ns: NetNs,
    ports: u32,
}

impl Switch {
    /// A switch namespace whose bridge has an uplink port wired to `router_if` in `router`.
    pub fn new(prefix: &str, router: &NetNs, router_if: &str) -> Result<Self> {
        let ns = ipv4_only(prefix)?;
        ns.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        veth(router, router_if, &ns, "up0")?;
        let switch = Self { ns, ports: 0 };
        switch.plug("up0")?;
        Ok(switch)
    }

    fn plug(&self, port: &str) -> Result<()> {
        self.ns.ip(&["link", "set", port, "master", BRIDGE])?;
        Ok(())
    }

    /// A new host namespace (`eth0` with `addr` = `a.b.c.d/len`, default route via `gateway`)
    /// plugged into the bridge.
    pub fn host(&mut self, prefix: &str, addr: &str, gateway: &str) -> Result<Host> {
        let ns = ipv4_only(prefix)?;
        self.ports += 1;
        let port = format!("p{}", self.ports);
        veth(&self.ns, &port, &ns, "eth0")?;
        self.plug(&port)?;
        ns.ip(&["addr", "add", addr, "dev", "eth0"])?;
        ns.ip(&["route", "add", "default", "via", gateway])?;
        let ip = addr.split('/').next().unwrap_or(addr).to_string();
        Ok(Host { ns, ip })
    }
}
