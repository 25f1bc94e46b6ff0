//! What the router's own network configuration must provide for the datapath: each subnet
//! interface carries the router's `.1` address (the spec: the router owns it), and IPv4
//! forwarding is enabled on every managed interface (`bpf_fib_lookup` refuses to forward
//! otherwise). Done with `ip` (iproute2) and `/proc/sys`, in the agent's network namespace.

use std::{io, path::PathBuf, process::Command};

use crate::config::ValidatedConfig;
use vpc_common::iface::{IFACE_SUBNET, IFACE_UPLINK};

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
    #[error("cannot enable IPv4 forwarding ({})", path.display())]
    Forwarding {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An interface the definition names, with its kind (`IFACE_SUBNET` / `IFACE_UPLINK`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Managed {
    pub name: String,
    pub kind: u8,
    /// `a.b.c.1/len` for a subnet interface.
    pub router_address: Option<String>,
}

/// The interfaces of `config`, each once (subnet ports first, then uplinks).
pub fn managed_interfaces(config: &ValidatedConfig) -> Vec<Managed> {
    let mut out: Vec<Managed> = Vec::new();
    for vpc in &config.vpcs {
        for subnet in &vpc.subnets {
            out.push(Managed {
                name: subnet.interface.clone(),
                kind: IFACE_SUBNET,
                router_address: Some(format!(
                    "{}/{}",
                    subnet.router_ip(),
                    subnet.cidr.prefix_len()
                )),
            });
        }
    }
    for vpc in &config.vpcs {
        if let Some(igw) = &vpc.internet_gateway
            && !out.iter().any(|m| m.name == igw.interface)
        {
            out.push(Managed {
                name: igw.interface.clone(),
                kind: IFACE_UPLINK,
                router_address: None,
            });
        }
    }
    out
}

/// The interface index of `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
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
    let path = PathBuf::from(format!("/proc/sys/net/ipv4/conf/{}/forwarding", iface.name));
    let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1");
    if !on {
        std::fs::write(&path, "1").map_err(|source| NetconfError::Forwarding {
            path: path.clone(),
            source,
        })?;
        log::info!("enabled IPv4 forwarding interface={}", iface.name);
    }
    Ok(())
}
