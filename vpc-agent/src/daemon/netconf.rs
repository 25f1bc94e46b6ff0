//! What the router's own network configuration must provide for the datapath: each subnet
//! interface carries the router's `.1` address (the router owns it, as in AWS: docs/format.md),
//! each instance port the route to its instance (and, in a subnet with an IPv6 block, the
//! router's link-local address the datapath advertises, and the routes to the instance's IPv6
//! addresses), and IPv4 forwarding is enabled on every managed interface, IPv6 forwarding on
//! every instance port with IPv6 addresses (`bpf_fib_lookup` refuses to forward otherwise),
//! and on subnet interfaces the kernel learns nothing from the hosts' IPv6 (no
//! router advertisements, redirects or autoconfiguration). Done with `ip` (iproute2) and
//! `/proc/sys`, in the agent's network namespace.

use ipnet::Ipv6Net;
use std::{io, path::PathBuf, process::Command};

use crate::config::{ValidatedConfig, validated::InterfaceRole};
use vpc_common::iface::{IFACE_GATEWAY, IFACE_SUBNET, IFACE_UPLINK};

#[derive(Debug, thiserror::Error)]
pub enum NetconfError {
    #[error("cannot run ip {args}")]
    Spawn {
        args: String,
        #[source]
        source: io::Error,
    },
    #[error("ip {args} failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("{interface} has no Ethernet address, which an IPv6 instance port needs")]
    Mac { interface: String },
    #[error("cannot enable {family} forwarding ({})", path.display())]
    Forwarding {
        /// "IPv4" or "IPv6".
        family: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An interface the definition names, with its kind (`IFACE_SUBNET` / `IFACE_UPLINK` /
/// `IFACE_GATEWAY`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Managed {
    pub name: String,
    pub kind: u8,
    /// The router's address on it: `a.b.c.1/len` on a shared segment, `a.b.c.1/32` on an
    /// instance port (the instance reaches it like on any subnet: ARP is answered by the
    /// datapath).
    pub router_address: Option<String>,
    /// On an instance port: the route to the instance (`a.b.c.d/32`, with the router's
    /// address as the source), so that the kernel's FIB and the router's own packets use the
    /// port.
    pub instance_route: Option<(String, String)>,
    /// On an instance port of a subnet with an IPv6 block: the subnet's /64. The port must
    /// then have the router's link-local address (`vpc_common::iface::router_link_local` of
    /// its MAC), the source of the router advertisements sent there (`advertise`) and the
    /// address instances reach the router by.
    pub ipv6_prefix: Option<Ipv6Net>,
    /// On an instance port with IPv6 addresses (its subnet has an IPv6 block): the routes to
    /// them (`ADDR/128`, out of the port), and the port forwards IPv6 (`bpf_fib_lookup`
    /// refuses otherwise).
    pub ipv6_routes: Vec<String>,
}

/// The interfaces of `config`, each once (subnet interfaces first, then uplinks).
pub fn managed_interfaces(config: &ValidatedConfig) -> Vec<Managed> {
    config
        .interfaces()
        .into_iter()
        .map(|(name, role)| {
            let mut ipv6_prefix = None;
            let mut ipv6_routes = Vec::new();
            let (kind, router_address, instance_route) = match role {
                InterfaceRole::Segment { vpc, subnet } => {
                    let s = &config.vpcs[vpc].subnets[subnet];
                    let address = format!("{}/{}", s.router_ip(), s.cidr.prefix_len());
                    (IFACE_SUBNET, Some(address), None)
                }
                InterfaceRole::Port { vpc, instance } => {
                    let inst = &config.vpcs[vpc].instances[instance];
                    let subnet = &config.vpcs[vpc].subnets[inst.subnet];
                    let router = subnet.router_ip();
                    let route = (format!("{}/32", inst.private_ip), router.to_string());
                    ipv6_prefix = subnet.ipv6_cidr;
                    if ipv6_prefix.is_some() {
                        let hosts = inst.ipv6_addresses.iter().map(|a| format!("{a}/128"));
                        ipv6_routes = hosts.collect();
                    }
                    (IFACE_SUBNET, Some(format!("{router}/32")), Some(route))
                }
                InterfaceRole::Uplink { .. } => (IFACE_UPLINK, None, None),
                InterfaceRole::Gateway { .. } => (IFACE_GATEWAY, None, None),
            };
            Managed {
                name: name.to_owned(),
                kind,
                router_address,
                instance_route,
                ipv6_prefix,
                ipv6_routes,
            }
        })
        .collect()
}

fn ip(args: &[&str]) -> Result<String, NetconfError> {
    let joined = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetconfError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetconfError::Ip {
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds the router address to a subnet interface if it lacks it, and enables forwarding.
pub fn prepare(iface: &Managed) -> Result<(), NetconfError> {
    if let Some(address) = &iface.router_address {
        let have = ip(&["-4", "-o", "addr", "show", "dev", &iface.name])?;
        let present = have.split_whitespace().any(|word| word == address.as_str());
        if present {
            log::debug!(
                "router address present interface={} address={address}",
                iface.name
            );
        } else {
            ip(&["addr", "add", address, "dev", &iface.name])?;
            log::info!(
                "added router address interface={} address={address}",
                iface.name
            );
        }
    }
    if let Some((dest, src)) = &iface.instance_route {
        ip(&[
            "route",
            "replace",
            dest,
            "dev",
            &iface.name,
            "scope",
            "link",
            "src",
            src,
        ])?;
        log::debug!("instance route interface={} destination={dest}", iface.name);
    }
    if iface.kind == IFACE_SUBNET {
        ipv6_no_host_learning(&iface.name);
    }
    if iface.ipv6_prefix.is_some() {
        // Not fatal: the datapath answers neighbour discovery without it; only the router's
        // own link-local traffic there (pings to it) needs it.
        if let Err(e) = ensure_router_link_local(&iface.name) {
            log::warn!(
                "interface={}: the router's link-local address: {}",
                iface.name,
                crate::error_chain(&e)
            );
        }
    }
    for dest in &iface.ipv6_routes {
        ip(&["-6", "route", "replace", dest, "dev", &iface.name])?;
        log::debug!("instance route interface={} destination={dest}", iface.name);
    }
    enable_forwarding(Family::V4, &iface.name)?;
    if !iface.ipv6_routes.is_empty() {
        enable_forwarding(Family::V6, &iface.name)?;
    }
    Ok(())
}

/// The address family of a `/proc/sys/net/*/conf` setting.
#[derive(Clone, Copy, Debug)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }

    fn sysctl_dir(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }
}

/// Turns forwarding of `family` on for interface `name` if it is off.
fn enable_forwarding(family: Family, name: &str) -> Result<(), NetconfError> {
    let dir = family.sysctl_dir();
    let path = PathBuf::from(format!("/proc/sys/net/{dir}/conf/{name}/forwarding"));
    let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1");
    if !on {
        std::fs::write(&path, "1").map_err(|source| NetconfError::Forwarding {
            family: family.name(),
            path: path.clone(),
            source,
        })?;
        log::info!("enabled {} forwarding interface={name}", family.name());
    }
    Ok(())
}

/// The MAC address of interface `name` (in the agent's network namespace).
pub fn mac(name: &str) -> Result<[u8; 6], NetconfError> {
    crate::links::mac(name).ok_or_else(|| NetconfError::Mac {
        interface: name.to_owned(),
    })
}

/// Makes the router's link-local address the only one of IPv6 instance port `name`: added
/// if it lacks it; any other (the kernel's own, from an earlier MAC or stable-privacy
/// generation) removed and not generated again (`addr_gen_mode` none). The router's kernel
/// then solicits its neighbours there from the address the hosts know it by, the one the
/// datapath answers for; an advertisement to any other would be dropped.
fn ensure_router_link_local(name: &str) -> Result<(), NetconfError> {
    let mac = mac(name)?;
    let address = std::net::Ipv6Addr::from(vpc_common::iface::router_link_local(&mac));
    let with_len = format!("{address}/64");
    let mode = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/addr_gen_mode"));
    if std::fs::read_to_string(&mode).is_ok_and(|v| v.trim() != "1") {
        match std::fs::write(&mode, "1") {
            Ok(()) => log::info!("interface={name}: addr_gen_mode=1 (none)"),
            Err(e) => log::warn!("interface={name}: cannot set addr_gen_mode=1: {e}"),
        }
    }
    let links = ip(&["-6", "-o", "addr", "show", "dev", name, "scope", "link"])?;
    for other in links
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet6")?;
            words.next()
        })
        .filter(|a| *a != with_len)
    {
        ip(&["-6", "addr", "del", other, "dev", name])?;
        log::info!("removed link-local address interface={name} address={other}");
    }
    let have = ip(&["-6", "-o", "addr", "show", "dev", name])?;
    let line = have
        .lines()
        .find(|line| line.split_whitespace().any(|word| word == with_len));
    match line {
        // A host's advertisement during duplicate address detection fails it: made again.
        Some(line) if line.contains("dadfailed") || line.contains("tentative") => {
            ip(&["-6", "addr", "del", &with_len, "dev", name])?;
        }
        Some(_) => return Ok(()),
        None => {}
    }
    ip(&["-6", "addr", "add", &with_len, "dev", name, "nodad"])?;
    log::info!("added router link-local address interface={name} address={address}");
    Ok(())
}

/// On subnet interface `name` the router's kernel learns nothing from the hosts' IPv6: no
/// router advertisements, redirects or address autoconfiguration (the datapath drops the
/// hosts' advertisements and redirects already). Failures are logged: IPv6 may be off there.
fn ipv6_no_host_learning(name: &str) {
    for key in ["accept_ra", "accept_redirects", "autoconf"] {
        let path = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/{key}"));
        match std::fs::read_to_string(&path) {
            Ok(v) if v.trim() == "0" => {}
            Ok(_) => match std::fs::write(&path, "0") {
                Ok(()) => log::info!("interface={name}: {key}=0"),
                Err(e) => log::warn!("interface={name}: cannot set {key}=0: {e}"),
            },
            Err(e) => log::debug!("interface={name}: no {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    #[test]
    fn ipv6_instance_ports_get_routes_to_the_instances_ipv6_addresses() {
        let yaml = r#"vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1234:1a00::/56
    subnets:
      - { name: six, cidr: 10.0.0.0/24, ipv6_cidr: "2001:db8:1234:1a00::/64" }
      - { name: four, cidr: 10.0.1.0/24, interface: seg }
    instances:
      - { name: a, subnet: six, interface: eni-a, private_ip: 10.0.0.10, ipv6_addresses: ["2001:db8:1234:1a00::10", "2001:db8:1234:1a00::11"] }
      - { name: b, subnet: six, interface: eni-b, private_ip: 10.0.0.11 }
      - { name: c, subnet: four, interface: eni-c, private_ip: 10.0.1.10 }
"#;
        let config = load_str("t.yaml", yaml).expect("valid");
        let managed = managed_interfaces(&config);
        let routes = |name: &str| {
            let m = managed.iter().find(|m| m.name == name).expect(name);
            (m.ipv6_prefix.map(|p| p.to_string()), m.ipv6_routes.clone())
        };
        assert_eq!(
            routes("eni-a"),
            (
                Some("2001:db8:1234:1a00::/64".into()),
                vec![
                    "2001:db8:1234:1a00::10/128".to_owned(),
                    "2001:db8:1234:1a00::11/128".to_owned()
                ]
            )
        );
        // No IPv6 address: no route, and the port does not forward IPv6.
        assert_eq!(
            routes("eni-b"),
            (Some("2001:db8:1234:1a00::/64".into()), vec![])
        );
        assert_eq!(routes("eni-c"), (None, vec![]));
        assert_eq!(routes("seg"), (None, vec![]));
    }
}
