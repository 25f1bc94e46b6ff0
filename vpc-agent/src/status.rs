//! `vpc-agent status`: read from the pinned objects only (works whether or not an agent runs):
//! what is attached where, the generation and active slot, each map's fill level against its
//! capacity, and the drop counters by reason.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use aya::{
    Pod,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, MapInfo},
    programs::links::{FdLink, PinnedLink},
};
use serde::Serialize;
use vpc_common::{
    acl::AclTable,
    iface::{
        Endpoint, EndpointKey, GlobalConfig, IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey,
        PublicTarget, SubnetInfo, VpcInfo,
    },
    route::{RouteKey, RouteValue},
};

use crate::{
    ebpf::maps as names,
    pin::{self, AgentRecord, PinError},
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
    /// Drops by reason name (reasons never seen are absent).
    pub drops: BTreeMap<&'static str, u64>,
}

fn count_keys<K: Pod, V: Pod>(map: &Map) -> Result<u32, MapError> {
    let hash: HashMap<&MapData, K, V> = HashMap::try_from(map)?;
    let mut n = 0;
    for key in hash.keys() {
        key?;
        n += 1;
    }
    Ok(n)
}

/// Entries in use in a pinned map (arrays: non-empty slots).
fn entries(name: &'static str, map: &Map) -> Result<u32, MapError> {
    Ok(match name {
        names::CONFIG | names::DROP_COUNTERS => match map {
            Map::PerCpuArray(_) => vpc_common::DropReason::ALL.len() as u32,
            _ => 1,
        },
        names::IFACES => count_keys::<IfaceKey, IfaceInfo>(map)?,
        names::SUBNETS => count_keys::<u32, SubnetInfo>(map)?,
        names::VPCS => count_keys::<u32, VpcInfo>(map)?,
        names::ENDPOINTS => count_keys::<EndpointKey, Endpoint>(map)?,
        names::PUBLIC_IPS => count_keys::<PublicKey, PublicTarget>(map)?,
        names::NAT_GATEWAYS => count_keys::<u32, NatGatewayInfo>(map)?,
        // FragKey (12 bytes) -> FragPorts (4 bytes), defined in vpc-ebpf.
        names::FRAGMENTS => count_keys::<[u8; 12], [u8; 4]>(map)?,
        names::ROUTES => {
            let trie: LpmTrie<&MapData, RouteKey, RouteValue> = LpmTrie::try_from(map)?;
            let mut n = 0;
            for key in trie.keys() {
                key?;
                n += 1;
            }
            n
        }
        names::ACLS => {
            let array: Array<&MapData, AclTable> = Array::try_from(map)?;
            let empty = AclTable::default();
            let mut n = 0;
            for table in array.iter() {
                n += u32::from(table? != empty);
            }
            n
        }
        names::DEVICES => {
            let devices: DevMapHash<&MapData> = DevMapHash::try_from(map)?;
            let mut n = 0;
            for key in devices.keys() {
                key?;
                n += 1;
            }
            n
        }
        _ => 0,
    })
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
    for name in names::ALL {
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
            entries: entries(name, &map).map_err(map_err(name))?,
            capacity,
        });
    }
    let counters = pin::open_map(dir, names::DROP_COUNTERS)?;
    let drops = crate::datapath::drop_counters(&counters)
        .map_err(map_err(names::DROP_COUNTERS))?
        .into_iter()
        .map(|(reason, n)| (reason.name(), n))
        .collect();
    Ok(Status {
        bpffs: dir.display().to_string(),
        agent_running: pin::agent_running(dir),
        agent: pin::read_record(dir)?,
        layout_version: config.layout_version,
        generation: config.generation,
        active_slot: config.active_slot,
        attached: pin::pinned_links(dir)
            .into_iter()
            .map(|(i, p, path)| link_status(i, p, &path))
            .collect(),
        maps,
        drops,
    })
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
        let _ = writeln!(out, "  {reason:<24} {n}");
    }
    out
}
