//! `vpc-agent status`: read from the pinned objects only (works whether or not an agent runs):
//! what is attached where, the generation and active slot, each map's fill level against its
//! capacity, the drop counters by reason, connection-tracking counters and what the flow log
//! wrote and skipped.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use aya::{
    maps::{Array, MapData, MapError, MapInfo, PerCpuArray},
    programs::links::{FdLink, PinnedLink},
};
use serde::Serialize;
use vpc_common::{
    conntrack::{CT_STAT_ASSURED, CT_STAT_CREATED, CT_STAT_EXPIRED, CT_STAT_SWEPT},
    flow::FLOW_ACCEPT,
    iface::GlobalConfig,
};

use crate::{
    datapath::object::maps as names,
    datapath::pin::{self, AgentRecord, PinError},
    flowlog::{FlowLogCounters, drain},
};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("nothing is pinned in {} (no agent has run there, or it was detached)", .0.display())]
    NotPinned(std::path::PathBuf),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// A program attached to an interface through a pinned link.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LinkStatus {
    pub interface: String,
    pub program: String,
    pub link_id: Option<u32>,
    pub program_id: Option<u32>,
}

/// Drops of one reason by one program (hook): `xdp`, `tc_ingress` or `tc_egress`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HookDrops {
    pub reason: &'static str,
    pub hook: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

/// A map's fill level.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MapFill {
    pub name: &'static str,
    pub entries: u32,
    pub capacity: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    pub bpffs: String,
    pub agent_running: bool,
    pub agent: Option<AgentRecord>,
    pub layout_version: u32,
    pub generation: u64,
    pub active_slot: u32,
    pub attached: Vec<LinkStatus>,
    pub maps: Vec<MapFill>,
    /// Dropped packets by reason name, all hooks (reasons never seen are absent).
    pub drops: BTreeMap<&'static str, u64>,
    /// Drops by reason and the program (hook) that dropped them, with bytes.
    pub drops_by_hook: Vec<HookDrops>,
    pub conntrack: ConntrackStats,
    /// NAT gateways: the ports they translate to, and so the connections one elastic IP may
    /// have to one destination (AWS: 55,000).
    pub nat: NatStatus,
    /// ICMP errors the router sent (time exceeded, fragmentation needed) and did not send
    /// (rate limit).
    pub icmp_errors: BTreeMap<&'static str, u64>,
    pub flows: FlowStatus,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct NatStatus {
    pub port_min: u16,
    pub port_max: u16,
    pub connections_per_destination: u32,
}

/// Connection tracking counters: `CT_STATS` (kernel, per CPU, summed) and the agent's sweep.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ConntrackStats {
    pub created: u64,
    /// Found expired by the datapath on lookup.
    pub expired: u64,
    /// Removed by the agent's sweep (counted by the agent, not in `CT_STATS`).
    pub swept: u64,
    /// Live entries in the tables of both families (assured ones in `CONNTRACK` and
    /// `CONNTRACK6`, new ones in `CT_UNASSURED` and `CT_UNASSURED6`).
    pub live: u64,
    /// Of `live`, not yet assured (a handshake in progress, no answer yet).
    pub unassured: u64,
    /// Connections that became assured (moved to `CONNTRACK`).
    pub assured: u64,
    /// Evicted by the LRUs when full: created - expired - swept - live (never below 0). Under
    /// a flood of new connections these are unassured ones: established connections live
    /// apart, in `CONNTRACK`.
    pub evictions: u64,
}

/// Flow counters: the live (not yet drained) interval and the flow log's totals.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FlowStatus {
    pub live_flows: u64,
    pub live_accepted_packets: u64,
    pub live_accepted_bytes: u64,
    pub live_rejected_packets: u64,
    pub live_rejected_bytes: u64,
    /// Packets not recorded since the last drain (FLOWS full), by interface.
    pub live_skipped: BTreeMap<String, u64>,
    /// What the running (or last) agent's flow log did.
    pub flow_log: FlowLogCounters,
}

fn link_status(interface: String, program: String, path: &Path) -> LinkStatus {
    let info = PinnedLink::from_pin(path)
        .ok()
        .and_then(|pinned| FdLink::from(pinned).info().ok());
    LinkStatus {
        interface,
        program,
        link_id: info.as_ref().map(|i| i.id()),
        program_id: info.as_ref().map(|i| i.program_id()),
    }
}

/// Reads the status of the datapath pinned in `dir`.
pub fn collect(dir: &Path) -> Result<Status, StatusError> {
    if !pin::map_path(dir, names::CONFIG).exists() {
        return Err(StatusError::NotPinned(dir.to_owned()));
    }
    let map_err = |name| move |source| StatusError::Map { name, source };
    let config_map = pin::open_map(dir, names::CONFIG)?;
    let config: Array<&MapData, GlobalConfig> =
        Array::try_from(&config_map).map_err(map_err(names::CONFIG))?;
    let config = config.get(&0, 0).map_err(map_err(names::CONFIG))?;
    let mut maps = Vec::new();
    for spec in names::ALL {
        let name = spec.name;
        let path = pin::map_path(dir, name);
        if !path.exists() {
            continue;
        }
        let map = pin::open_map(dir, name)?;
        let capacity = MapInfo::from_pin(&path)
            .map_err(map_err(name))?
            .max_entries();
        maps.push(MapFill {
            name,
            entries: spec.count(&map).map_err(map_err(name))?,
            capacity,
        });
    }
    let counters = pin::open_map(dir, names::DROP_COUNTERS)?;
    let stats = crate::datapath::drop_stats(&counters).map_err(map_err(names::DROP_COUNTERS))?;
    let mut drops = BTreeMap::new();
    let mut drops_by_hook = Vec::new();
    for ((reason, hook), s) in stats {
        *drops.entry(reason.name()).or_insert(0) += s.packets;
        drops_by_hook.push(HookDrops {
            reason: reason.name(),
            hook: hook.name(),
            packets: s.packets,
            bytes: s.bytes,
        });
    }
    let agent = pin::read_record(dir)?;
    let conntrack = conntrack_stats(dir, &maps, agent.as_ref())?;
    let flows = flow_status(dir, agent.as_ref())?;
    let nat = nat_status(dir)?;
    let icmp_errors = icmp_errors(dir)?;
    Ok(Status {
        bpffs: dir.display().to_string(),
        agent_running: pin::agent_running(dir),
        agent,
        layout_version: config.layout_version,
        generation: config.generation,
        active_slot: config.active_slot,
        attached: pin::pinned_links(dir)
            .into_iter()
            .map(|(i, p, path)| link_status(i, p, &path))
            .collect(),
        maps,
        drops,
        drops_by_hook,
        conntrack,
        nat,
        icmp_errors,
        flows,
    })
}

fn nat_status(dir: &Path) -> Result<NatStatus, StatusError> {
    let name = names::NAT_CONFIG;
    let map = pin::open_map(dir, name)?;
    let config: Array<&MapData, vpc_common::nat::NatConfig> =
        Array::try_from(&map).map_err(|source| StatusError::Map { name, source })?;
    let c = config
        .get(&0, 0)
        .map_err(|source| StatusError::Map { name, source })?;
    Ok(NatStatus {
        port_min: c.port_min,
        port_max: c.port_max,
        connections_per_destination: (u32::from(c.port_max) + 1)
            .saturating_sub(u32::from(c.port_min)),
    })
}

fn icmp_errors(dir: &Path) -> Result<BTreeMap<&'static str, u64>, StatusError> {
    use vpc_common::icmp::{
        ICMP_STAT_FRAG_NEEDED, ICMP_STAT_RATE_LIMITED, ICMP_STAT_TIME_EXCEEDED,
    };
    let name = names::ICMP_STATS;
    let map = pin::open_map(dir, name)?;
    let stats: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(&map).map_err(|source| StatusError::Map { name, source })?;
    let mut out = BTreeMap::new();
    for (label, slot) in [
        ("time_exceeded", ICMP_STAT_TIME_EXCEEDED),
        ("fragmentation_needed", ICMP_STAT_FRAG_NEEDED),
        ("rate_limited", ICMP_STAT_RATE_LIMITED),
    ] {
        let n: u64 = stats
            .get(&slot, 0)
            .map_err(|source| StatusError::Map { name, source })?
            .iter()
            .sum();
        out.insert(label, n);
    }
    Ok(out)
}

fn conntrack_stats(
    dir: &Path,
    maps: &[MapFill],
    agent: Option<&AgentRecord>,
) -> Result<ConntrackStats, StatusError> {
    let map_err = |source| StatusError::Map {
        name: names::CT_STATS,
        source,
    };
    let map = pin::open_map(dir, names::CT_STATS)?;
    let stats: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(&map).map_err(map_err)?;
    let slot =
        |i| -> Result<u64, StatusError> { Ok(stats.get(&i, 0).map_err(map_err)?.iter().sum()) };
    let created = slot(CT_STAT_CREATED)?;
    let expired = slot(CT_STAT_EXPIRED)?;
    // The kernel's own slot stays 0 (the agent counts its sweep), but is added if ever set.
    let swept = slot(CT_STAT_SWEPT)? + agent.map_or(0, |a| a.conntrack_swept);
    let fill = |name| {
        maps.iter()
            .find(|m| m.name == name)
            .map_or(0, |m| u64::from(m.entries))
    };
    // Both families (the agent's sweep count covers the IPv6 tables too).
    let unassured = fill(names::CT_UNASSURED) + fill(names::CT_UNASSURED6);
    let live = fill(names::CONNTRACK) + fill(names::CONNTRACK6) + unassured;
    Ok(ConntrackStats {
        created,
        expired,
        swept,
        live,
        unassured,
        assured: slot(CT_STAT_ASSURED)?,
        evictions: created.saturating_sub(expired + swept + live),
    })
}

fn flow_status(dir: &Path, agent: Option<&AgentRecord>) -> Result<FlowStatus, StatusError> {
    let flows = crate::inspect::flows::read_pinned(dir)?;
    let mut out = FlowStatus {
        live_flows: flows.len() as u64,
        flow_log: agent.map(|a| a.flow_log.clone()).unwrap_or_default(),
        ..FlowStatus::default()
    };
    for (key, stats) in &flows {
        if key.action == FLOW_ACCEPT {
            out.live_accepted_packets += stats.packets;
            out.live_accepted_bytes += stats.bytes;
        } else {
            out.live_rejected_packets += stats.packets;
            out.live_rejected_bytes += stats.bytes;
        }
    }
    let mut skipped_map = pin::open_map(dir, names::FLOWS_SKIPPED)?;
    let skipped = drain::read_skipped(&mut skipped_map).map_err(|source| StatusError::Map {
        name: names::FLOWS_SKIPPED,
        source,
    })?;
    for (ifindex, n) in skipped {
        out.live_skipped.insert(interface_name(agent, ifindex), n);
    }
    Ok(out)
}

/// The name the agent recorded for `ifindex`, else `ifN`.
pub fn interface_name(agent: Option<&AgentRecord>, ifindex: u32) -> String {
    agent
        .and_then(|a| a.interfaces.get(&ifindex).cloned())
        .unwrap_or_else(|| format!("if{ifindex}"))
}

/// The human-readable form.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "bpffs: {}", status.bpffs);
    match &status.agent {
        Some(agent) => {
            let _ = writeln!(
                out,
                "agent: {} (pid {}, config {}, xdp mode {})",
                if status.agent_running {
                    "running"
                } else {
                    "not running (datapath pinned)"
                },
                agent.pid,
                agent.config.display(),
                agent.xdp_mode
            );
        }
        None => {
            let _ = writeln!(out, "agent: no record");
        }
    }
    let _ = writeln!(
        out,
        "generation: {} (active slot {}, layout version {})",
        status.generation, status.active_slot, status.layout_version
    );
    let _ = writeln!(out, "attached:");
    for link in &status.attached {
        let _ = writeln!(
            out,
            "  {:<15} {:<15} link {} program {}",
            link.interface,
            link.program,
            link.link_id.map_or("?".into(), |i| i.to_string()),
            link.program_id.map_or("?".into(), |i| i.to_string())
        );
    }
    let _ = writeln!(out, "maps (entries / capacity):");
    for map in &status.maps {
        let _ = writeln!(
            out,
            "  {:<14} {:>7} / {:<7}",
            map.name, map.entries, map.capacity
        );
    }
    let _ = writeln!(out, "drops:");
    if status.drops.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (reason, n) in &status.drops {
        let hooks: Vec<String> = status
            .drops_by_hook
            .iter()
            .filter(|d| d.reason == *reason)
            .map(|d| format!("{} {} pkts {} B", d.hook, d.packets, d.bytes))
            .collect();
        let _ = writeln!(out, "  {reason:<24} {n}  ({})", hooks.join(", "));
    }
    let ct = &status.conntrack;
    let _ = writeln!(
        out,
        "conntrack: created {} assured {} expired {} swept {} live {} (unassured {}) evictions {}",
        ct.created, ct.assured, ct.expired, ct.swept, ct.live, ct.unassured, ct.evictions
    );
    let n = &status.nat;
    let _ = writeln!(
        out,
        "nat: ports {}-{}: up to {} connections per destination",
        n.port_min, n.port_max, n.connections_per_destination
    );
    let icmp: Vec<String> = status
        .icmp_errors
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(out, "icmp errors sent: {}", icmp.join(" "));
    let f = &status.flows;
    let _ = writeln!(
        out,
        "flows (this interval): {} flows, accepted {} packets / {} bytes, rejected {} packets / {} bytes",
        f.live_flows,
        f.live_accepted_packets,
        f.live_accepted_bytes,
        f.live_rejected_packets,
        f.live_rejected_bytes
    );
    for (interface, n) in &f.live_skipped {
        let _ = writeln!(
            out,
            "  not recorded (FLOWS full) on {interface}: {n} packets"
        );
    }
    let l = &f.flow_log;
    let _ = writeln!(
        out,
        "flow log: {} records written ({} SKIPDATA), {} records lost, {} packets skipped, \
         {} drains (last: {} flows in {} us)",
        l.records_written,
        l.skipdata_records,
        l.records_lost,
        l.packets_skipped,
        l.drains,
        l.last_drain_flows,
        l.last_drain_micros
    );
    out
}
