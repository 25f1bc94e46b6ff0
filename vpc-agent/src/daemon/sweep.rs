//! The connection-tracking sweep: the datapath only notices an expired connection when a
//! packet of it comes back, so the daemon periodically removes expired entries of the four
//! tables (`CONNTRACK`, `CT_UNASSURED` and their IPv6 twins `CONNTRACK6`, `CT_UNASSURED6`;
//! one [`sweep`] over the key type [`SweptKey`]) and, for translated IPv4 ones, their
//! `NAT_PORTS` reverse entry, releasing the port. Timeouts
//! are the datapath's: `CT_TIMEOUTS[0]` (zero fields mean `DEFAULT_TIMEOUTS`), the NAT timeout
//! in every state for translated entries, compared against CLOCK_MONOTONIC (`bpf_ktime_get_ns`).
//!
//! `CT_STATS` is per-CPU and written by the kernel, so the agent counts what it swept itself
//! (reported in `status` and the metrics).
//!
//! Race: an entry is read, judged expired, read again and deleted only if its `last_seen_ns`
//! did not move; a packet between that second read and the delete would lose its connection
//! (the next packet of a TCP connection is then judged as a new one). The window is one syscall.
//!
//! Orphaned translations: a `NAT_PORTS` entry whose connection is in neither table (the LRU
//! evicted the connection, or its insert failed after the port was claimed) would hold its port
//! for ever. [`release_orphans`] (every [`ORPHAN_SCAN_EVERY`]th sweep) frees those it found
//! orphaned on two scans in a row: a connection being created (port claimed, entry not yet
//! inserted) is never mistaken for one.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use aya::{
    Pod,
    maps::{Array, HashMap, Map, MapData, MapError},
};
use vpc_common::{
    conntrack::{CtEntry, CtKey, CtKey6, CtTimeouts},
    nat::{NatKey, NatValue},
};

/// How often the daemon sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Every how many sweeps [`release_orphans`] runs (once a minute: an orphan is freed within
/// two minutes of its connection's disappearance).
pub const ORPHAN_SCAN_EVERY: u64 = 6;

/// The key of a connection-tracking table the sweep goes over: `CtKey` (`CONNTRACK`,
/// `CT_UNASSURED`) or `CtKey6` (`CONNTRACK6`, `CT_UNASSURED6`).
pub trait SweptKey: Pod {
    fn proto(&self) -> u8;

    /// The `NAT_PORTS` entry of the connection's translation, if it has one.
    fn translation(&self, entry: &CtEntry) -> Option<NatKey>;
}

impl SweptKey for CtKey {
    fn proto(&self) -> u8 {
        self.proto
    }

    fn translation(&self, entry: &CtEntry) -> Option<NatKey> {
        (entry.nat_ip != 0).then(|| nat_key(self, entry))
    }
}

impl SweptKey for CtKey6 {
    fn proto(&self) -> u8 {
        self.proto
    }

    /// IPv6 is never translated (`nat_ip` is always 0).
    fn translation(&self, _: &CtEntry) -> Option<NatKey> {
        None
    }
}

/// Whether an entry is expired at monotonic time `now`: the datapath's rule
/// (`CtEntry::live`, shared through `vpc-common`), negated.
pub fn expired<K: SweptKey>(t: &CtTimeouts, key: &K, entry: &CtEntry, now: u64) -> bool {
    !entry.live(t, key.proto(), now)
}

/// The `NAT_PORTS` key of a translated connection.
pub fn nat_key(key: &CtKey, entry: &CtEntry) -> NatKey {
    NatKey::of_connection(key, entry.nat_ip, entry.nat_port)
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub scanned: u64,
    pub removed: u64,
    pub nat_released: u64,
    pub elapsed: Duration,
}

/// Removes the expired entries of `conntrack`, a table keyed by `K` (and their `nat_ports`
/// entries).
pub fn sweep<K: SweptKey>(
    conntrack: &mut Map,
    nat_ports: &mut Map,
    timeouts: &Map,
    now: u64,
) -> Result<Swept, MapError> {
    let started = Instant::now();
    let t: Array<&MapData, CtTimeouts> = Array::try_from(timeouts)?;
    let t = t.get(&0, 0)?;
    let mut ct: HashMap<&mut MapData, K, CtEntry> = HashMap::try_from(conntrack)?;
    let mut nat: HashMap<&mut MapData, NatKey, NatValue> = HashMap::try_from(nat_ports)?;
    let mut out = Swept::default();
    let keys: Vec<K> = ct.keys().filter_map(Result::ok).collect();
    for key in keys {
        out.scanned += 1;
        let Ok(entry) = ct.get(&key, 0) else {
            continue;
        };
        if !expired(&t, &key, &entry, now) {
            continue;
        }
        // Read again just before deleting: a packet may have refreshed it meanwhile.
        match ct.get(&key, 0) {
            Ok(again) if again.last_seen_ns == entry.last_seen_ns => {}
            _ => continue,
        }
        if ct.remove(&key).is_ok() {
            out.removed += 1;
            if key
                .translation(&entry)
                .is_some_and(|nat_key| nat.remove(&nat_key).is_ok())
            {
                out.nat_released += 1;
            }
        }
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// Frees the `NAT_PORTS` entries whose connection is in neither `conntrack` nor `unassured`
/// (or is there with another translation) now and was already at the previous call, whose
/// candidates `previous` holds (and is updated to this call's). Returns how many were freed.
pub fn release_orphans(
    nat_ports: &mut Map,
    conntrack: &Map,
    unassured: &Map,
    previous: &mut BTreeSet<NatKey>,
) -> Result<u64, MapError> {
    let mut nat: HashMap<&mut MapData, NatKey, NatValue> = HashMap::try_from(nat_ports)?;
    let tables: [HashMap<&MapData, CtKey, CtEntry>; 2] =
        [HashMap::try_from(conntrack)?, HashMap::try_from(unassured)?];
    let entries: Vec<(NatKey, NatValue)> = nat.iter().filter_map(Result::ok).collect();
    let mut orphans = BTreeSet::new();
    for (key, value) in entries {
        let connection = key.connection(&value);
        let owned = tables.iter().any(|t| {
            t.get(&connection, 0)
                .is_ok_and(|e| e.nat_ip == key.nat_ip && e.nat_port == key.nat_port)
        });
        if !owned {
            orphans.insert(key);
        }
    }
    let mut released = 0;
    for key in orphans.intersection(previous) {
        if nat.remove(key).is_ok() {
            released += 1;
        }
    }
    orphans.retain(|k| !previous.contains(k));
    *previous = orphans;
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_common::{
        conntrack::{CT_BOTH_WAYS, CT_ONE_WAY, CT_TCP_ESTABLISHED},
        proto::{PROTO_ICMP, PROTO_UDP},
    };

    const S: u64 = 1_000_000_000;

    fn entry(state: u8, last_seen_s: u64, nat_ip: u32) -> CtEntry {
        CtEntry {
            last_seen_ns: last_seen_s * S,
            state,
            nat_ip,
            nat_port: 2000,
            ..CtEntry::default()
        }
    }

    fn key(proto: u8) -> CtKey {
        CtKey {
            src: 1,
            dst: 2,
            sport: 3,
            dport: 53,
            proto,
            _pad: [0; 3],
        }
    }

    #[test]
    fn timeouts_follow_the_datapath() {
        let defaults = CtTimeouts::default();
        let udp = key(PROTO_UDP);
        // UDP one way: 30 s; both ways: 180 s.
        assert!(!expired(
            &defaults,
            &udp,
            &entry(CT_ONE_WAY, 100, 0),
            130 * S
        ));
        assert!(expired(
            &defaults,
            &udp,
            &entry(CT_ONE_WAY, 100, 0),
            131 * S
        ));
        assert!(!expired(
            &defaults,
            &udp,
            &entry(CT_BOTH_WAYS, 100, 0),
            200 * S
        ));
        // Translated: the NAT timeout (350 s) whatever the state.
        assert!(!expired(
            &defaults,
            &udp,
            &entry(CT_ONE_WAY, 100, 9),
            400 * S
        ));
        assert!(expired(
            &defaults,
            &udp,
            &entry(CT_ONE_WAY, 100, 9),
            451 * S
        ));
        // Configured values win over the defaults.
        let short = CtTimeouts {
            tcp_established: 60,
            ..CtTimeouts::default()
        };
        let tcp = key(6);
        assert!(expired(
            &short,
            &tcp,
            &entry(CT_TCP_ESTABLISHED, 0, 0),
            61 * S
        ));
        assert!(!expired(
            &defaults,
            &tcp,
            &entry(CT_TCP_ESTABLISHED, 0, 0),
            61 * S
        ));
    }

    #[test]
    fn an_entry_seen_after_the_sweeps_clock_read_is_not_expired() {
        let defaults = CtTimeouts::default();
        // A packet refreshed the entry 1 ns, 1 s after the sweep read `now`.
        for ahead in [1, S] {
            let mut e = entry(CT_TCP_ESTABLISHED, 100, 0);
            e.last_seen_ns += ahead;
            assert!(!expired(&defaults, &key(6), &e, 100 * S));
            e.nat_ip = 9;
            assert!(!expired(&defaults, &key(PROTO_UDP), &e, 100 * S));
        }
    }

    #[test]
    fn the_nat_reverse_key_uses_the_remote_end() {
        let k = nat_key(&key(PROTO_UDP), &entry(CT_ONE_WAY, 0, 9));
        assert_eq!(
            (k.nat_ip, k.remote_ip, k.nat_port, k.remote_port),
            (9, 2, 2000, 53)
        );
        let icmp = nat_key(&key(PROTO_ICMP), &entry(CT_ONE_WAY, 0, 9));
        assert_eq!(icmp.remote_port, 0);
    }

    #[test]
    fn ipv6_connections_expire_like_ipv4_ones_and_hold_no_port() {
        let defaults = CtTimeouts::default();
        let v6 = |proto| CtKey6::new([1; 16], [2; 16], 3, 53, proto);
        let (udp4, udp6) = (key(PROTO_UDP), v6(PROTO_UDP));
        for now in [130 * S, 131 * S] {
            let e = entry(CT_ONE_WAY, 100, 0);
            assert_eq!(
                expired(&defaults, &udp6, &e, now),
                expired(&defaults, &udp4, &e, now)
            );
        }
        assert!(expired(
            &defaults,
            &udp6,
            &entry(CT_ONE_WAY, 100, 0),
            131 * S
        ));
        // ICMPv6 echo has the ICMP timeout.
        let icmp = entry(CT_ONE_WAY, 100, 0);
        assert_eq!(
            expired(
                &defaults,
                &v6(vpc_common::proto::PROTO_ICMPV6),
                &icmp,
                200 * S
            ),
            expired(&defaults, &key(PROTO_ICMP), &icmp, 200 * S)
        );
        assert_eq!(udp6.translation(&entry(CT_ONE_WAY, 0, 9)), None);
        assert!(udp4.translation(&entry(CT_ONE_WAY, 0, 9)).is_some());
        assert_eq!(udp4.translation(&entry(CT_ONE_WAY, 0, 0)), None);
    }
}
