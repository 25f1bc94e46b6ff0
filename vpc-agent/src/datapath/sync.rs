//! Writing compiled entries into the kernel maps of one generation slot, by difference: only
//! entries that are missing or different are written, entries of that slot that are no longer
//! wanted are removed, and the other slot is never touched.

use std::{collections::BTreeMap, hash::Hash};

use aya::{
    Ebpf, Pod,
    maps::{Array, DevMapHash, HashMap, LpmTrie, MapError, lpm_trie::Key},
};
use vpc_common::{
    LAYOUT_VERSION,
    acl::{AclTable, MAX_ACLS},
    iface::{GlobalConfig, SLOT_SHIFT},
    route::{RouteKey, RouteValue},
    security_group::{SgRemoteKey, SgRuleKey, SgRuleValue},
};

use crate::{
    compile::{Compiled, RoutePrefix, SgRemotePrefix},
    datapath::object::maps as names,
};

/// Errors writing the maps.
#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {name} is missing from the eBPF object")]
    Missing { name: &'static str },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("device map entry for ifindex {ifindex}")]
    Device {
        ifindex: u32,
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
}

/// Whether a sync writes the differences or only counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Write,
    DryRun,
}

/// How many entries a sync wrote and removed (or, in a dry run, would write and remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: usize,
    pub removed: usize,
}

impl SyncStats {
    /// Nothing to write and nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.written == 0 && self.removed == 0
    }
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, o: Self) {
        self.written += o.written;
        self.removed += o.removed;
    }
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> MapsError {
    move |source| MapsError::Map { name, source }
}

fn slot_of_id(id: u32) -> u32 {
    id >> SLOT_SHIFT
}

/// Makes the hash map `name` hold exactly `want` among the keys `in_slot` selects.
fn sync_hash<K, V>(
    ebpf: &mut Ebpf,
    name: &'static str,
    want: &BTreeMap<K, V>,
    in_slot: impl Fn(&K) -> bool,
    mode: Mode,
) -> Result<SyncStats, MapsError>
where
    K: Pod + Ord + Hash,
    V: Pod + PartialEq,
{
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: HashMap<_, K, V> = HashMap::try_from(map).map_err(map_err(name))?;
    let mut stats = SyncStats::default();
    let have: Vec<K> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    for key in have.iter().filter(|k| in_slot(k) && !want.contains_key(k)) {
        if mode == Mode::Write {
            map.remove(key).map_err(map_err(name))?;
        }
        stats.removed += 1;
    }
    for (key, value) in want {
        if map.get(key, 0).ok().as_ref() != Some(value) {
            if mode == Mode::Write {
                map.insert(key, value, 0).map_err(map_err(name))?;
            }
            stats.written += 1;
        }
    }
    Ok(stats)
}

/// Makes the LPM trie `name` hold exactly `want` ((prefix length, key data) -> value) among
/// the keys `in_slot` selects.
fn sync_lpm<K, V>(
    ebpf: &mut Ebpf,
    name: &'static str,
    want: &BTreeMap<(u32, K), V>,
    in_slot: impl Fn(&K) -> bool,
    mode: Mode,
) -> Result<SyncStats, MapsError>
where
    K: Pod + Ord,
    V: Pod + PartialEq,
{
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: LpmTrie<_, K, V> = LpmTrie::try_from(map).map_err(map_err(name))?;
    let mut stats = SyncStats::default();
    let have: Vec<Key<K>> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    for key in have {
        let id = (key.prefix_len(), key.data());
        if in_slot(&id.1) && !want.contains_key(&id) {
            if mode == Mode::Write {
                map.remove(&key).map_err(map_err(name))?;
            }
            stats.removed += 1;
        }
    }
    for ((prefix_len, data), value) in want {
        let key = Key::new(*prefix_len, *data);
        if map.get(&key, 0).ok().as_ref() != Some(value) {
            if mode == Mode::Write {
                map.insert(&key, value, 0).map_err(map_err(name))?;
            }
            stats.written += 1;
        }
    }
    Ok(stats)
}

/// Syncs the routes of one family (`ROUTES` or `ROUTES6`): the entries of the tables of
/// `slot`.
fn sync_routes<A: Copy + Ord>(
    ebpf: &mut Ebpf,
    name: &'static str,
    routes: &BTreeMap<RoutePrefix<A>, RouteValue>,
    slot: u32,
    mode: Mode,
) -> Result<SyncStats, MapsError>
where
    RouteKey<A>: Pod + Ord,
{
    let want: BTreeMap<(u32, RouteKey<A>), _> = routes
        .iter()
        .map(|(p, v)| ((p.prefix_len, p.key), *v))
        .collect();
    sync_lpm(ebpf, name, &want, |k| slot_of_id(k.table) == slot, mode)
}

/// Syncs the remote classes of one family (`SG_REMOTES` or `SG_REMOTES6`): the entries of
/// the VPCs of `slot`.
fn sync_remotes<A: Copy + Ord>(
    ebpf: &mut Ebpf,
    name: &'static str,
    remotes: &BTreeMap<SgRemotePrefix<A>, u32>,
    slot: u32,
    mode: Mode,
) -> Result<SyncStats, MapsError>
where
    SgRemoteKey<A>: Pod + Ord,
{
    let want: BTreeMap<(u32, SgRemoteKey<A>), u32> = remotes
        .iter()
        .map(|(p, v)| ((p.prefix_len, p.key), *v))
        .collect();
    sync_lpm(ebpf, name, &want, |k| slot_of_id(k.vpc_id) == slot, mode)
}

fn sync_security_groups(
    ebpf: &mut Ebpf,
    compiled: &Compiled,
    mode: Mode,
) -> Result<SyncStats, MapsError> {
    let slot = compiled.slot;
    let rules: BTreeMap<(u32, SgRuleKey), SgRuleValue> = compiled
        .sg_rules
        .iter()
        .map(|(p, v)| ((p.prefix_len, p.key), *v))
        .collect();
    let mut stats = sync_remotes(ebpf, names::SG_REMOTES, &compiled.sg_remotes, slot, mode)?;
    stats += sync_remotes(ebpf, names::SG_REMOTES6, &compiled.sg_remotes6, slot, mode)?;
    stats += sync_lpm(
        ebpf,
        names::SG_RULES,
        &rules,
        |k| slot_of_id(k.endpoint) == slot,
        mode,
    )?;
    Ok(stats)
}

/// Writes a single-entry array (global settings, not per generation) when it differs.
fn sync_setting<V: Pod + PartialEq>(
    ebpf: &mut Ebpf,
    name: &'static str,
    want: V,
    mode: Mode,
) -> Result<SyncStats, MapsError> {
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: Array<_, V> = Array::try_from(map).map_err(map_err(name))?;
    if map.get(&0, 0).map_err(map_err(name))? == want {
        return Ok(SyncStats::default());
    }
    if mode == Mode::Write {
        map.set(0, want, 0).map_err(map_err(name))?;
    }
    Ok(SyncStats {
        written: 1,
        removed: 0,
    })
}

/// Syncs the ACL tables of one family (`ACLS` or `ACLS6`): every index of `slot`, emptied
/// where `acls` has no table.
fn sync_acls<A: Copy + Default>(
    ebpf: &mut Ebpf,
    name: &'static str,
    acls: &BTreeMap<u32, AclTable<A>>,
    slot: u32,
    mode: Mode,
) -> Result<SyncStats, MapsError>
where
    AclTable<A>: Pod + PartialEq,
{
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: Array<_, AclTable<A>> = Array::try_from(map).map_err(map_err(name))?;
    let mut stats = SyncStats::default();
    let first = slot * MAX_ACLS * 2;
    let empty = AclTable::<A>::default();
    for index in first..first + MAX_ACLS * 2 {
        let want = acls.get(&index).unwrap_or(&empty);
        let have = map.get(&index, 0).map_err(map_err(name))?;
        if &have != want {
            if mode == Mode::Write {
                map.set(index, want, 0).map_err(map_err(name))?;
            }
            if want == &empty {
                stats.removed += 1;
            } else {
                stats.written += 1;
            }
        }
    }
    Ok(stats)
}

fn sync_devices(ebpf: &mut Ebpf, compiled: &Compiled, mode: Mode) -> Result<SyncStats, MapsError> {
    // Devices are shared by both slots: add what this generation needs, remove nothing that
    // the other slot may still use (the daemon prunes after a switch-over).
    let name = names::DEVICES;
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: DevMapHash<_> = DevMapHash::try_from(map).map_err(map_err(name))?;
    let mut stats = SyncStats::default();
    for ifindex in compiled.redirect_targets() {
        if map.get(ifindex, 0).is_err() {
            if mode == Mode::Write {
                map.insert(ifindex, ifindex, None, 0)
                    .map_err(|source| MapsError::Device { ifindex, source })?;
            }
            stats.written += 1;
        }
    }
    Ok(stats)
}

/// Syncs every map of `compiled.slot` (never the other slot, never `CONFIG`).
fn sync_slot(ebpf: &mut Ebpf, compiled: &Compiled, mode: Mode) -> Result<SyncStats, MapsError> {
    let slot = compiled.slot;
    let mut stats = SyncStats::default();
    stats += sync_devices(ebpf, compiled, mode)?;
    stats += sync_hash(
        ebpf,
        names::SUBNETS,
        &compiled.subnets,
        |k| slot_of_id(*k) == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::SUBNETS6,
        &compiled.subnets6,
        |k| slot_of_id(*k) == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::VPCS,
        &compiled.vpcs,
        |k| slot_of_id(*k) == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::ENDPOINTS,
        &compiled.endpoints,
        |k| slot_of_id(k.vpc_id) == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::ENDPOINTS6,
        &compiled.endpoints6,
        |k| slot_of_id(k.vpc_id) == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::PUBLIC_IPS,
        &compiled.public_ips,
        |k| k.slot == slot,
        mode,
    )?;
    stats += sync_hash(
        ebpf,
        names::NAT_GATEWAYS,
        &compiled.nat_gateways,
        |k| slot_of_id(*k) == slot,
        mode,
    )?;
    stats += sync_routes(ebpf, names::ROUTES, &compiled.routes, slot, mode)?;
    stats += sync_routes(ebpf, names::ROUTES6, &compiled.routes6, slot, mode)?;
    stats += sync_acls(ebpf, names::ACLS, &compiled.acls, slot, mode)?;
    stats += sync_acls(ebpf, names::ACLS6, &compiled.acls6, slot, mode)?;
    stats += sync_security_groups(ebpf, compiled, mode)?;
    stats += sync_setting(ebpf, names::CT_TIMEOUTS, compiled.ct_timeouts, mode)?;
    stats += sync_setting(ebpf, names::NAT_CONFIG, compiled.nat_config, mode)?;
    // Interfaces last: they are the entry point into a slot.
    stats += sync_hash(
        ebpf,
        names::IFACES,
        &compiled.ifaces,
        |k| k.slot == slot,
        mode,
    )?;
    Ok(stats)
}

/// What [`apply`] would write into `compiled.slot` (nothing is written): empty when that slot
/// already holds exactly `compiled`.
pub fn diff(ebpf: &mut Ebpf, compiled: &Compiled) -> Result<SyncStats, MapsError> {
    sync_slot(ebpf, compiled, Mode::DryRun)
}

/// The `CONFIG` entry: layout version, active slot, generation.
pub fn read_config(ebpf: &Ebpf) -> Result<GlobalConfig, MapsError> {
    let name = names::CONFIG;
    let map = ebpf.map(name).ok_or(MapsError::Missing { name })?;
    let config: Array<_, GlobalConfig> = Array::try_from(map).map_err(map_err(name))?;
    config.get(&0, 0).map_err(map_err(name))
}

/// Removes the device map entries of interfaces `compiled` (the active generation) does not
/// use. Called after a switch-over, when no packet looks up the previous generation anymore.
pub fn prune_devices(ebpf: &mut Ebpf, compiled: &Compiled) -> Result<usize, MapsError> {
    let name = names::DEVICES;
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut map: DevMapHash<_> = DevMapHash::try_from(map).map_err(map_err(name))?;
    let wanted: Vec<u32> = compiled.redirect_targets().collect();
    let have: Vec<u32> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    let mut removed = 0;
    for ifindex in have.into_iter().filter(|i| !wanted.contains(i)) {
        map.remove(ifindex).map_err(map_err(name))?;
        removed += 1;
    }
    Ok(removed)
}

/// Writes every map of `compiled.slot` (by difference), then makes that slot the active one
/// with `generation` (one array write). Returns what was written.
pub fn apply(
    ebpf: &mut Ebpf,
    compiled: &Compiled,
    generation: u64,
) -> Result<SyncStats, MapsError> {
    let stats = sync_slot(ebpf, compiled, Mode::Write)?;
    let name = names::CONFIG;
    let map = ebpf.map_mut(name).ok_or(MapsError::Missing { name })?;
    let mut config: Array<_, GlobalConfig> = Array::try_from(map).map_err(map_err(name))?;
    let want = GlobalConfig {
        layout_version: LAYOUT_VERSION,
        active_slot: compiled.slot,
        generation,
    };
    if config.get(&0, 0).map_err(map_err(name))? != want {
        config.set(0, want, 0).map_err(map_err(name))?;
    }
    Ok(stats)
}
