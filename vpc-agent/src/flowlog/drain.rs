//! Reading the kernel's per-flow counters: `FLOWS` and `FLOWS6` (per-CPU hashes, IPv4 and
//! IPv6) summed over CPUs, their keys widened to [`IpAddr`] ([`Flow`]), and the per-interface
//! `FLOWS_SKIPPED` counts.
//!
//! Draining loses nothing: the kernel stamps new entries with the generation in `FLOWS_GEN`.
//! The drain flips it, waits for programs that may still run with the old one (they take
//! microseconds; we wait [`SETTLE`]), then reads and deletes the old generation's entries,
//! which the kernel no longer writes. One generation for both maps: one flip drains both.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use aya::{
    Pod,
    maps::{Array, Map, MapData, MapError, PerCpuHashMap},
};
use vpc_common::{
    Addr6,
    flow::{FlowKey, FlowStats, SKIPPED_GENERATION_BIT},
    ip_from_raw,
};

/// A kernel flow entry of either family: its key with the addresses widened, its counters.
pub type Flow = (FlowKey<IpAddr>, FlowStats);

/// The address of a flow map's key (`FLOWS`: `u32`, `FLOWS6`: `Addr6`).
pub trait FlowAddr: Copy {
    fn ip(self) -> IpAddr;
}

impl FlowAddr for u32 {
    fn ip(self) -> IpAddr {
        Ipv4Addr::from(ip_from_raw(self)).into()
    }
}

impl FlowAddr for Addr6 {
    fn ip(self) -> IpAddr {
        Ipv6Addr::from(self).into()
    }
}

/// A map's key with its addresses as [`IpAddr`].
pub fn widen<A: FlowAddr>(key: &FlowKey<A>) -> FlowKey<IpAddr> {
    FlowKey {
        ifindex: key.ifindex,
        src: key.src.ip(),
        dst: key.dst.ip(),
        sport: key.sport,
        dport: key.dport,
        proto: key.proto,
        action: key.action,
        generation: key.generation,
        _pad: 0,
    }
}

/// The source and destination accepted packets left as: the translated IPv4 addresses the
/// kernel recorded, the key's where it recorded 0 (not translated; IPv6 always).
pub fn packet_addrs(key: &FlowKey<IpAddr>, stats: &FlowStats) -> (IpAddr, IpAddr) {
    let or_key = |raw: u32, own: IpAddr| if raw != 0 { raw.ip() } else { own };
    (
        or_key(stats.pkt_src, key.src),
        or_key(stats.pkt_dst, key.dst),
    )
}

/// How long a drain waits after flipping the generation before reading the old one.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(5);

/// Sums one flow's per-CPU values: packets and bytes added, the earliest first and the latest
/// last; the other fields come from a CPU that saw the flow (they are the same on every CPU).
pub fn aggregate(per_cpu: &[FlowStats]) -> Option<FlowStats> {
    let mut seen = per_cpu.iter().filter(|s| s.packets > 0);
    let mut total = *seen.next()?;
    for s in seen {
        total.packets += s.packets;
        total.bytes += s.bytes;
        total.first_ns = total.first_ns.min(s.first_ns);
        total.last_ns = total.last_ns.max(s.last_ns);
        total.tcp_flags |= s.tcp_flags;
    }
    Some(total)
}

/// What one drain read.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    /// Both families', sorted by key.
    pub flows: Vec<Flow>,
    /// Packets the kernel could not record, by ingress ifindex.
    pub skipped: BTreeMap<u32, u64>,
    /// Entries the drain could not read or delete (they make the interval SKIPDATA).
    pub errors: u64,
    pub elapsed: std::time::Duration,
}

/// The live flows of one family's map (nothing deleted), aggregated over CPUs, sorted by key.
pub fn read<A: FlowAddr>(map: &Map) -> Result<Vec<Flow>, MapError>
where
    FlowKey<A>: Pod,
{
    let flows: PerCpuHashMap<&MapData, FlowKey<A>, FlowStats> = PerCpuHashMap::try_from(map)?;
    let mut out = Vec::new();
    for key in flows.keys() {
        let key = key?;
        // The entry may be deleted between the key walk and this read: then it is gone.
        if let Ok(values) = flows.get(&key, 0)
            && let Some(total) = aggregate(&values)
        {
            out.push((widen(&key), total));
        }
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// Sums a per-CPU `u64` counter hash (FLOWS_SKIPPED) by ifindex; with `drain`, only the keys
/// of that generation are read, and they are deleted.
fn counters(map: &mut Map, drain: Option<u32>) -> Result<BTreeMap<u32, u64>, MapError> {
    let mut hash: PerCpuHashMap<&mut MapData, u32, u64> = PerCpuHashMap::try_from(map)?;
    let keys: Vec<u32> = hash.keys().collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for key in keys {
        let generation = u32::from(key & SKIPPED_GENERATION_BIT != 0);
        if drain.is_some_and(|g| g != generation) {
            continue;
        }
        let Ok(values) = hash.get(&key, 0) else {
            continue;
        };
        let total: u64 = values.iter().sum();
        if drain.is_some() {
            let _ = hash.remove(&key);
        }
        if total > 0 {
            *out.entry(key & !SKIPPED_GENERATION_BIT).or_default() += total;
        }
    }
    Ok(out)
}

/// The skipped-packet counts by ifindex (both generations), without deleting them.
pub fn read_skipped(map: &mut Map) -> Result<BTreeMap<u32, u64>, MapError> {
    counters(map, None)
}

/// Reads and deletes the entries of generation `old` in one family's flow map into `out`.
fn drain_generation<A: FlowAddr>(
    flows: &mut Map,
    old: u32,
    out: &mut Drained,
) -> Result<(), MapError>
where
    FlowKey<A>: Pod,
{
    let mut hash: PerCpuHashMap<&mut MapData, FlowKey<A>, FlowStats> =
        PerCpuHashMap::try_from(flows)?;
    // The keys first: deleting while walking with get_next_key would restart the walk.
    let keys: Vec<FlowKey<A>> = hash
        .keys()
        .filter_map(Result::ok)
        .filter(|k| u32::from(k.generation) == old)
        .collect();
    for key in keys {
        match hash.get(&key, 0) {
            Ok(values) => {
                if let Some(total) = aggregate(&values) {
                    out.flows.push((widen(&key), total));
                }
                if hash.remove(&key).is_err() {
                    out.errors += 1;
                }
            }
            Err(MapError::KeyNotFound) => {}
            Err(_) => out.errors += 1,
        }
    }
    Ok(())
}

/// Makes the kernel record into the other generation; returns the one it used until now.
fn flip(generation: &mut Map) -> Result<u32, MapError> {
    let mut array: Array<&mut MapData, u32> = Array::try_from(generation)?;
    let old = array.get(&0, 0)? & 1;
    array.set(0, old ^ 1, 0)?;
    Ok(old)
}

/// Flips the generation, then reads and deletes every `FLOWS` and `FLOWS6` entry and
/// `FLOWS_SKIPPED` count of the previous one.
pub fn drain(
    flows: &mut Map,
    flows6: &mut Map,
    skipped: &mut Map,
    generation: &mut Map,
) -> Result<Drained, MapError> {
    let started = Instant::now();
    let mut out = Drained::default();
    let old = flip(generation)?;
    std::thread::sleep(SETTLE);
    drain_generation::<u32>(flows, old, &mut out)?;
    drain_generation::<Addr6>(flows6, old, &mut out)?;
    out.flows.sort_by_key(|(k, _)| *k);
    out.skipped = counters(skipped, Some(old))?;
    out.elapsed = started.elapsed();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(packets: u64, bytes: u64, first_ns: u64, last_ns: u64, flags: u8) -> FlowStats {
        FlowStats {
            packets,
            bytes,
            first_ns,
            last_ns,
            out_ifindex: 7,
            pkt_src: 1,
            pkt_dst: 2,
            tcp_flags: flags,
            ..FlowStats::default()
        }
    }

    #[test]
    fn per_cpu_values_are_summed_with_min_first_and_max_last() {
        let per_cpu = [
            FlowStats::default(),
            stats(3, 300, 50, 90, 0x02),
            stats(2, 120, 40, 70, 0x10),
            FlowStats::default(),
            stats(1, 60, 60, 100, 0x01),
        ];
        let total = aggregate(&per_cpu).expect("seen");
        assert_eq!(total.packets, 6);
        assert_eq!(total.bytes, 480);
        assert_eq!(total.first_ns, 40);
        assert_eq!(total.last_ns, 100);
        assert_eq!(total.tcp_flags, 0x13);
        assert_eq!(total.out_ifindex, 7);
    }

    #[test]
    fn idle_cpus_do_not_set_first_seen_to_zero() {
        let per_cpu = [FlowStats::default(), stats(1, 60, 500, 500, 0)];
        assert_eq!(aggregate(&per_cpu).map(|t| t.first_ns), Some(500));
        assert_eq!(aggregate(&[FlowStats::default(); 4]), None);
    }
}
