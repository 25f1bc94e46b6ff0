//! Flow log test helpers: reading the records an agent wrote, filling the pinned `FLOWS` map
//! with dummy entries (SKIPDATA without generating 65536 real flows), and scraping the metrics
//! endpoint from inside the router namespace.

use std::{fs, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, PerCpuHashMap, PerCpuValues};
use vpc_common::flow::{FLOW_ACCEPT, FlowKey, FlowStats};

use crate::netns::NetNs;

/// The records of a flow log file, each split into its fields.
pub fn records(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

/// The ifindex the dummy entries of [`fill_flows`] carry (no interface has it).
pub const DUMMY_IFINDEX: u32 = 999_999;

/// Inserts dummy flows into the pinned `FLOWS` map of `bpffs` until it refuses one (full) or
/// `limit` were inserted, stamped with the generation the kernel records into now (so the next
/// drain takes them). Returns (inserted, seconds taken).
pub fn fill_flows(bpffs: &Path, limit: u32) -> Result<(u32, f64)> {
    let gen_path = bpffs.join("FLOWS_GEN");
    let gen_data =
        MapData::from_pin(&gen_path).with_context(|| format!("open {}", gen_path.display()))?;
    let generation: aya::maps::Array<MapData, u32> =
        aya::maps::Array::try_from(aya::maps::Map::Array(gen_data))?;
    let generation = (generation.get(&0, 0)? & 1) as u8;
    let path = bpffs.join("FLOWS");
    let data = MapData::from_pin(&path).with_context(|| format!("open {}", path.display()))?;
    let mut map: PerCpuHashMap<MapData, FlowKey, FlowStats> =
        PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(data))?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let started = Instant::now();
    let mut inserted = 0;
    for n in 0..limit {
        let key = FlowKey {
            ifindex: DUMMY_IFINDEX,
            // 192.0.2.0/24 + a counter: documentation addresses, never on the wire.
            src: vpc_common::ip_raw([192, 0, 2, 0]) ^ n.to_be(),
            dst: vpc_common::ip_raw([198, 51, 100, 1]),
            sport: (n & 0xffff) as u16,
            dport: 9,
            proto: 17,
            action: FLOW_ACCEPT,
            generation,
            _pad: 0,
        };
        let one = FlowStats {
            packets: 1,
            bytes: 64,
            ..FlowStats::default()
        };
        let mut values = vec![FlowStats::default(); cpus];
        values[0] = one;
        let values = PerCpuValues::try_from(values)?;
        if map.insert(key, values, 0).is_err() {
            break;
        }
        inserted += 1;
    }
    Ok((inserted, started.elapsed().as_secs_f64()))
}

/// `GET http://ADDR/PATH` from inside `ns` (curl, 5 s at most): the body.
pub fn http_get(ns: &NetNs, url: &str) -> Result<String> {
    let out = ns.exec("curl", &["-sS", "--max-time", "5", url])?;
    if !out.status.success() {
        bail!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
