//! `vpc-agent flows`: the live per-flow counters of the current interval (what the next flow
//! log drain will read), from the pinned `FLOWS` and `FLOWS6` maps, summed over CPUs.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    path::Path,
};

use serde::Serialize;
use vpc_common::{Addr6, DropReason, flow::FLOW_ACCEPT};

use crate::{
    datapath::object::maps as names,
    datapath::pin,
    flowlog::{
        Clock,
        drain::{self, Flow, FlowAddr},
    },
    inspect::listing::proto_name,
    inspect::status::{StatusError, interface_name},
};

/// One live flow (one direction, at the interface it arrives on, by action).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LiveFlow {
    pub interface: String,
    pub ifindex: u32,
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
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
    pub pkt_src: Option<IpAddr>,
    pub pkt_dst: Option<IpAddr>,
    pub tcp_flags: u8,
}

/// The live flows of the datapath pinned in `dir`.
pub fn collect(dir: &Path) -> Result<Vec<LiveFlow>, StatusError> {
    if !pin::map_path(dir, names::FLOWS).exists() {
        return Err(StatusError::NotPinned(dir.to_owned()));
    }
    let agent = pin::read_record(dir)?;
    let flows = read_pinned(dir)?;
    let clock = Clock::now();
    Ok(flows
        .into_iter()
        .map(|(key, stats)| {
            let accepted = key.action == FLOW_ACCEPT;
            let (pkt_src, pkt_dst) = drain::packet_addrs(&key, &stats);
            LiveFlow {
                interface: interface_name(agent.as_ref(), key.ifindex),
                ifindex: key.ifindex,
                protocol: key.proto,
                src: key.src,
                dst: key.dst,
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
                pkt_src: accepted.then_some(pkt_src),
                pkt_dst: accepted.then_some(pkt_dst),
                tcp_flags: stats.tcp_flags,
            }
        })
        .collect())
}

/// The live flows of both families (`FLOWS`, `FLOWS6`) pinned in `dir`, sorted by key.
pub fn read_pinned(dir: &Path) -> Result<Vec<Flow>, StatusError> {
    let mut flows = read_map::<u32>(dir, names::FLOWS)?;
    flows.extend(read_map::<Addr6>(dir, names::FLOWS6)?);
    flows.sort_by_key(|(k, _)| *k);
    Ok(flows)
}

fn read_map<A: FlowAddr>(dir: &Path, name: &'static str) -> Result<Vec<Flow>, StatusError>
where
    vpc_common::flow::FlowKey<A>: aya::Pod,
{
    drain::read::<A>(&pin::open_map(dir, name)?).map_err(|source| StatusError::Map { name, source })
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
            SocketAddr::new(f.src, f.sport).to_string(),
            SocketAddr::new(f.dst, f.dport).to_string(),
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
