//! `vpc-agent flows`: the live per-flow counters of the current interval (what the next flow
//! log drain will read), from the pinned `FLOWS` map, summed over CPUs.

use std::{fmt::Write as _, net::Ipv4Addr, path::Path};

use serde::Serialize;
use vpc_common::{DropReason, flow::FLOW_ACCEPT, ip_from_raw};

use crate::{
    datapath::object::maps as names,
    datapath::pin,
    flowlog::{Clock, drain},
    inspect::listing::proto_name,
    inspect::status::{StatusError, interface_name},
};

/// One live flow (one direction, at the interface it arrives on, by action).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LiveFlow {
    pub interface: String,
    pub ifindex: u32,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Ports (ICMP echo: the identifier; other ICMP: 0).
    pub sport: u16,
    pub dport: u16,
    pub packets: u64,
    pub bytes: u64,
    /// Unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// `ACCEPT` or `REJECT`.
    pub action: &'static str,
    /// The drop reason of rejected packets.
    pub reason: Option<&'static str>,
    /// Accepted packets: where they left and as what.
    pub out_interface: Option<String>,
    pub pkt_src: Option<Ipv4Addr>,
    pub pkt_dst: Option<Ipv4Addr>,
    pub tcp_flags: u8,
}

/// The live flows of the datapath pinned in `dir`.
pub fn collect(dir: &Path) -> Result<Vec<LiveFlow>, StatusError> {
    if !pin::map_path(dir, names::FLOWS).exists() {
        return Err(StatusError::NotPinned(dir.to_owned()));
    }
    let agent = pin::read_record(dir)?;
    let map = pin::open_map(dir, names::FLOWS)?;
    let flows = drain::read(&map).map_err(|source| StatusError::Map {
        name: names::FLOWS,
        source,
    })?;
    let clock = Clock::now();
    let addr = |raw| Ipv4Addr::from(ip_from_raw(raw));
    Ok(flows
        .into_iter()
        .map(|(key, stats)| {
            let accepted = key.action == FLOW_ACCEPT;
            LiveFlow {
                interface: interface_name(agent.as_ref(), key.ifindex),
                ifindex: key.ifindex,
                protocol: key.proto,
                src: addr(key.src),
                dst: addr(key.dst),
                sport: key.sport,
                dport: key.dport,
                packets: stats.packets,
                bytes: stats.bytes,
                first_seen: clock.unix_secs(stats.first_ns),
                last_seen: clock.unix_secs(stats.last_ns),
                action: if accepted { "ACCEPT" } else { "REJECT" },
                reason: DropReason::from_u32(stats.reason).map(DropReason::name),
                out_interface: (accepted && stats.out_ifindex != 0)
                    .then(|| interface_name(agent.as_ref(), stats.out_ifindex)),
                pkt_src: accepted.then(|| addr(stats.pkt_src)),
                pkt_dst: accepted.then(|| addr(stats.pkt_dst)),
                tcp_flags: stats.tcp_flags,
            }
        })
        .collect())
}

/// The human-readable table.
pub fn render(flows: &[LiveFlow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<5} {:<21} {:<21} {:>8} {:>10} {:>10} {:>10} {:<6} REASON / OUT",
        "INTERFACE",
        "PROTO",
        "SOURCE",
        "DESTINATION",
        "PACKETS",
        "BYTES",
        "FIRST",
        "LAST",
        "ACTION"
    );
    for f in flows {
        let detail = match (&f.reason, &f.out_interface) {
            (Some(reason), _) => (*reason).to_owned(),
            (None, Some(out_if)) => match (f.pkt_src, f.pkt_dst) {
                (Some(s), Some(d)) if s != f.src || d != f.dst => format!("{out_if} as {s} > {d}"),
                _ => out_if.clone(),
            },
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:<5} {:<21} {:<21} {:>8} {:>10} {:>10} {:>10} {:<6} {detail}",
            f.interface,
            proto_name(f.protocol),
            format!("{}:{}", f.src, f.sport),
            format!("{}:{}", f.dst, f.dport),
            f.packets,
            f.bytes,
            f.first_seen,
            f.last_seen,
            f.action,
        );
    }
    if flows.is_empty() {
        let _ = writeln!(out, "(no flows in the current interval)");
    }
    out
}
