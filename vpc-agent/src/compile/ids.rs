//! Id allocation and the name <-> id table.
//!
//! Hash-keyed ids (VPC, subnet, route table, NAT gateway, instance) are `slot_id(slot, n)` with
//! `n` counted from 1 across the whole definition (0 means "none" in the maps). ACL ids are
//! array positions, `slot * MAX_ACLS + n` with `n` from 0.

use std::collections::BTreeMap;

use vpc_common::{acl::MAX_ACLS, iface::slot_id};

use crate::config::ValidatedConfig;

/// The name the per-VPC local table (only the local routes) gets in the [`NameTable`].
pub const LOCAL_TABLE_NAME: &str = "(local)";

/// Ids of every object, indexed like the validated model (`[vpc][item]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub vpc: Vec<u32>,
    pub subnet: Vec<Vec<u32>>,
    pub route_table: Vec<Vec<u32>>,
    pub local_table: Vec<u32>,
    /// Per VPC, per gateway: the `ROUTES` table of the sources its link accepts (the
    /// networks behind it).
    pub gateway_table: Vec<Vec<u32>>,
    pub acl: Vec<Vec<u32>>,
    pub nat_gateway: Vec<Vec<u32>>,
    pub instance: Vec<Vec<u32>>,
    /// Security group set of each instance (per VPC, per instance).
    pub sg_set: Vec<Vec<u32>>,
    /// Every security group set: (VPC index, set id, group indices, sorted).
    pub sg_sets: Vec<(usize, u32, Vec<usize>)>,
}

/// Allocates hash-map ids `slot_id(slot, 1..)`.
struct Counter {
    slot: u32,
    next: u32,
}

impl Counter {
    fn new(slot: u32) -> Self {
        Self { slot, next: 1 }
    }

    fn take(&mut self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                let id = slot_id(self.slot, self.next);
                self.next += 1;
                id
            })
            .collect()
    }
}

impl Ids {
    /// Counts from 1 (or 0 for ACLs) in file order. Ids stay below 2^30 because the
    /// capacity check bounds every count far below that.
    pub fn allocate(config: &ValidatedConfig, slot: u32) -> Self {
        let mut vpcs = Counter::new(slot);
        let mut subnets = Counter::new(slot);
        let mut tables = Counter::new(slot);
        let mut nats = Counter::new(slot);
        let mut instances = Counter::new(slot);
        let mut sets = Counter::new(slot);
        let mut next_acl = slot * MAX_ACLS;
        let mut ids = Self::default();
        for vpc in &config.vpcs {
            ids.vpc.extend(vpcs.take(1));
            ids.subnet.push(subnets.take(vpc.subnets.len()));
            ids.route_table.push(tables.take(vpc.route_tables.len()));
            ids.local_table.extend(tables.take(1));
            ids.gateway_table.push(tables.take(vpc.gateways.len()));
            ids.nat_gateway.push(nats.take(vpc.nat_gateways.len()));
            ids.instance.push(instances.take(vpc.instances.len()));
            let v = ids.vpc.len() - 1;
            let mut of_instance = Vec::with_capacity(vpc.instances.len());
            for inst in &vpc.instances {
                let mut groups = inst.security_groups.clone();
                groups.sort_unstable();
                groups.dedup();
                let known = ids
                    .sg_sets
                    .iter()
                    .find(|(sv, _, g)| *sv == v && *g == groups);
                let id = match known {
                    Some((_, id, _)) => *id,
                    None => {
                        let id = sets.take(1)[0];
                        ids.sg_sets.push((v, id, groups));
                        id
                    }
                };
                of_instance.push(id);
            }
            ids.sg_set.push(of_instance);
            let acls = (0..vpc.network_acls.len() as u32).map(|n| next_acl + n);
            ids.acl.push(acls.collect());
            next_acl += vpc.network_acls.len() as u32;
        }
        ids
    }
}

/// Kinds of objects that have ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Vpc,
    Subnet,
    RouteTable,
    NetworkAcl,
    NatGateway,
    Instance,
}

/// An object's name qualified by its VPC (for a VPC, `vpc` and `name` are both its name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QualifiedName {
    pub vpc: String,
    pub name: String,
}

/// Name <-> id of every compiled object (for the CLI, traces and flow logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameTable {
    by_id: BTreeMap<(ObjectKind, u32), QualifiedName>,
}

impl NameTable {
    pub fn build(config: &ValidatedConfig, ids: &Ids) -> Self {
        let mut table = Self::default();
        for (v, vpc) in config.vpcs.iter().enumerate() {
            let mut add = |kind, id: u32, name: &str| {
                let qualified = QualifiedName {
                    vpc: vpc.name.clone(),
                    name: name.to_owned(),
                };
                table.by_id.insert((kind, id), qualified);
            };
            add(ObjectKind::Vpc, ids.vpc[v], &vpc.name);
            add(ObjectKind::RouteTable, ids.local_table[v], LOCAL_TABLE_NAME);
            let kinds: [(ObjectKind, &Vec<u32>, Vec<&str>); 5] = [
                (
                    ObjectKind::Subnet,
                    &ids.subnet[v],
                    vpc.subnets.iter().map(|s| s.name.as_str()).collect(),
                ),
                (
                    ObjectKind::RouteTable,
                    &ids.route_table[v],
                    vpc.route_tables.iter().map(|t| t.name.as_str()).collect(),
                ),
                (
                    ObjectKind::NetworkAcl,
                    &ids.acl[v],
                    vpc.network_acls.iter().map(|a| a.name.as_str()).collect(),
                ),
                (
                    ObjectKind::NatGateway,
                    &ids.nat_gateway[v],
                    vpc.nat_gateways.iter().map(|n| n.name.as_str()).collect(),
                ),
                (
                    ObjectKind::Instance,
                    &ids.instance[v],
                    vpc.instances.iter().map(|i| i.name.as_str()).collect(),
                ),
            ];
            for (kind, kind_ids, names) in kinds {
                for (id, name) in kind_ids.iter().zip(names) {
                    add(kind, *id, name);
                }
            }
        }
        table
    }

    /// The object with this id.
    pub fn name(&self, kind: ObjectKind, id: u32) -> Option<&QualifiedName> {
        self.by_id.get(&(kind, id))
    }

    /// The id of the object `name` of this kind in VPC `vpc`.
    pub fn id(&self, kind: ObjectKind, vpc: &str, name: &str) -> Option<u32> {
        self.by_id
            .iter()
            .find(|((k, _), q)| *k == kind && q.vpc == vpc && q.name == name)
            .map(|((_, id), _)| *id)
    }

    /// Every entry, by kind and id.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectKind, u32, &QualifiedName)> {
        self.by_id.iter().map(|((k, id), q)| (*k, *id, q))
    }
}
