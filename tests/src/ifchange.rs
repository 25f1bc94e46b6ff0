//! Interface changes under a running agent, on a [`Topology`]'s router: a port deleted and
//! re-created (new ifindex, same name), or renamed away and replaced by a new device of the
//! same name. The namespace behind the port keeps its addresses and sockets; only the wire
//! changes. Both ends stay at Linux defaults.
//!
//! Subnet ports get no router address here: the agent adds it (netconf). The uplink's address
//! and the router's default route are the router's own configuration, restored here.

use anyhow::{Context as _, Result};

use crate::{
    netns::{NetNs, veth},
    topology::{INTERNET_IP, Port, Topology, UPLINK_ROUTER_IP, mac},
};

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A new veth `ifname` (router) <-> `host_if` (in the port's namespace), MACs as the topology
/// gives them, the port's addresses on `host_if` and its default route through it.
fn wire(topo: &Topology, port: &Port, host_if: &str) -> Result<()> {
    let router = &topo.router;
    let ifname = port.ifname.as_str();
    veth(router, ifname, &port.ns, host_if)?;
    router.ip(&[
        "link",
        "set",
        ifname,
        "address",
        &mac_str(mac(port.index, false)),
    ])?;
    port.ns.ip(&[
        "link",
        "set",
        host_if,
        "address",
        &mac_str(mac(port.index, true)),
    ])?;
    let subnet = topo
        .config
        .vpcs
        .iter()
        .flat_map(|v| &v.subnets)
        .find(|s| s.interface.as_deref() == Some(ifname));
    match subnet {
        Some(subnet) => {
            for a in &port.addrs {
                let addr = format!("{a}/{}", subnet.cidr.prefix_len());
                port.ns.ip(&["addr", "replace", &addr, "dev", host_if])?;
            }
            let gw = subnet.router_ip().to_string();
            port.ns
                .ip(&["route", "replace", "default", "via", &gw, "dev", host_if])?;
        }
        None => {
            // The uplink.
            let internet = format!("{INTERNET_IP}/24");
            port.ns
                .ip(&["addr", "replace", &internet, "dev", host_if])?;
            port.ns.ip(&[
                "route",
                "replace",
                "default",
                "via",
                UPLINK_ROUTER_IP,
                "dev",
                host_if,
            ])?;
            let own = format!("{UPLINK_ROUTER_IP}/24");
            router.ip(&["addr", "replace", &own, "dev", ifname])?;
            router.ip(&["route", "replace", "default", "via", INTERNET_IP])?;
        }
    }
    Ok(())
}

/// Deletes router port `ifname` and creates it again (a new ifindex), as a driver reload or a
/// container restart would.
pub fn recreate(topo: &Topology, ifname: &str) -> Result<()> {
    let port = topo.port_named(ifname);
    topo.router
        .ip(&["link", "del", ifname])
        .with_context(|| format!("delete {ifname}"))?;
    wire(topo, port, "eth0")
}

/// Renames router port `ifname` to `renamed` (left down, still existing) and creates a new
/// `ifname` wired to the same namespace (`host_if` there, taking over its addresses).
pub fn rename_and_replace(
    topo: &Topology,
    ifname: &str,
    renamed: &str,
    host_if: &str,
) -> Result<()> {
    let port = topo.port_named(ifname);
    let router: &NetNs = &topo.router;
    router.ip(&["link", "set", ifname, "down"])?;
    router.ip(&["link", "set", ifname, "name", renamed])?;
    port.ns.ip(&["link", "set", "eth0", "down"])?;
    port.ns.ip(&["addr", "flush", "dev", "eth0"])?;
    wire(topo, port, host_if)
}
