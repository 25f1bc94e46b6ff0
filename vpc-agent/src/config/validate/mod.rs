//! Semantic rules of the format (docs/format.md, AWS): addresses, references,
//! uniqueness, routes, rules. Every violation is recorded, none stops the check, so a user
//! sees all problems of the file at once. AWS defaults are applied on the way.

mod acl;
mod addresses;
mod conntrack;
mod flow_logs;
mod gateways;
mod ipv6;
mod peering;
mod prefix_lists;
mod routes;
mod security_groups;
mod subnets;
mod traffic;

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    ops::RangeInclusive,
    path::PathBuf,
};

use ipnet::{IpNet, Ipv4Net};
use vpc_common::{acl::MAX_ACL_RULES, conntrack::DEFAULT_TIMEOUTS};

use vpc_common::proto::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

use super::{
    error::Diagnostic,
    model::{self, ConfigFile, Loc, Pos, TrafficSpec},
    validated::*,
};
use crate::flowlog::format::{DEFAULT_FLOW_LOG_FIELDS, EXTRA_FLOW_LOG_FIELDS};

/// Prefix lengths AWS allows for VPC and subnet CIDR blocks.
const BLOCK_PREFIX: RangeInclusive<u8> = 16..=28;
/// NACL rule numbers AWS allows.
const RULE_NUMBERS: RangeInclusive<i64> = 1..=32766;
/// Route targets that are keywords, not names.
const TARGET_LOCAL: &str = "local";
const TARGET_BLACKHOLE: &str = "blackhole";
/// Idle timeouts the file may set (seconds): up to 5 days, as AWS's configurable range.
const TIMEOUTS: RangeInclusive<i64> = 1..=432_000;
/// AWS does not let the established TCP timeout go below a minute.
const TCP_ESTABLISHED_TIMEOUTS: RangeInclusive<i64> = 60..=432_000;
/// Prefix of a security group reference in a rule's source/destination.
const SG_REF: &str = "sg:";
/// Prefix of a prefix list reference (security group rules; routes to gateway endpoints).
const PL_REF: &str = "pl:";

/// Checks a parsed file and resolves it. `Err` holds every problem, sorted by position.
pub fn validate(file: &ConfigFile) -> Result<ValidatedConfig, Vec<Diagnostic>> {
    let mut v = Validator::default();
    let config = v.config(file);
    if v.diags.is_empty() {
        // Every check passed, so every part resolved.
        if let Some(config) = config {
            return Ok(config);
        }
        v.diags.push(Diagnostic::new(
            Pos::new(1, 1),
            "",
            "internal error: incomplete validation",
        ));
    }
    v.diags.sort_by_key(|d| d.pos);
    Err(v.diags)
}

/// A shared segment lets its hosts reach each other without the router, so nothing between
/// them is enforced: a warning for each segment where some instance's groups would not allow
/// everything from another instance on it.
fn shared_segment_warnings(model: &model::Vpc, vpcs: &[VpcDef], v: usize) -> Vec<Diagnostic> {
    let vpc = &vpcs[v];
    // A protocol no rule names: only rules allowing all traffic match it.
    const ANY_TRAFFIC: u8 = 253;
    let allows_all_from = |to: &InstanceDef, from: &InstanceDef| {
        to.security_groups.iter().any(|&g| {
            vpc.security_groups[g].inbound.iter().any(|r| {
                r.traffic.matches(ANY_TRAFFIC, 0, 0, 0) && r.peer.contains(vpcs, v, from.private_ip)
            })
        })
    };
    let mut out = Vec::new();
    for (s, subnet) in vpc.subnets.iter().enumerate() {
        let Some(interface) = model.subnets[s].value.interface.as_ref() else {
            continue;
        };
        let on_segment: Vec<&InstanceDef> = vpc
            .instances
            .iter()
            .filter(|i| i.subnet == s && i.interface.is_none())
            .collect();
        let unenforced = on_segment.iter().find_map(|to| {
            on_segment
                .iter()
                .find(|from| from.name != to.name && !allows_all_from(to, from))
                .map(|from| (*from, *to))
        });
        if let Some((from, to)) = unenforced {
            let msg = format!(
                "warning: subnet '{}' is a shared segment: its hosts reach each other without the \
                 router, so security groups between them are not enforced (instance '{}' \
                 would not allow everything from '{}'); give each instance its own `interface` \
                 to enforce them",
                subnet.name, to.name, from.name
            );
            out.push(Diagnostic::new(
                interface.pos,
                format!("vpcs[{v}].subnets[{s}].interface"),
                msg,
            ));
        }
    }
    out
}

/// Facts about every VPC, gathered before any VPC is checked (references cross VPCs).
#[derive(Default)]
struct Globals {
    vpc_index: HashMap<String, usize>,
    /// Every VPC CIDR block that parses, with its VPC's name (public addresses must be
    /// outside all of them).
    vpc_blocks: Vec<(Ipv4Net, String)>,
    /// Every VPC IPv6 block that parses: the VPC's index, the block, its name.
    vpc_v6_blocks: Vec<(usize, ipnet::Ipv6Net, String)>,
    /// The VPCs that have an `ipv6_cidr_block`, valid or not (an invalid one is reported on
    /// its VPC): a peering connection carries IPv6 only between two of them.
    ipv6_vpcs: HashSet<String>,
    /// Internet gateway name -> VPC name.
    igws: HashMap<String, String>,
    /// NAT gateway name -> VPC names.
    nats: HashMap<String, Vec<String>>,
    /// Instance name -> VPC names (a route may name a NAT instance of its own VPC only).
    instances: HashMap<String, Vec<String>>,
    /// Every peering connection the file declares (to another VPC), in file order: whether
    /// one is accepted depends on the peer VPC's declarations.
    peerings: Vec<PeeringDecl>,
    /// Per VPC (as `vpc_index`): security group name -> index, the implicit `default`
    /// included (for `sg:VPC/NAME` references from peers).
    groups: Vec<HashMap<String, usize>>,
}

/// One entry of a VPC's `peering_connections`.
struct PeeringDecl {
    vpc: String,
    name: String,
    peer: String,
    /// Of the `peer_vpc` value.
    pos: Pos,
}

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
    /// What is valid but probably not meant (`ValidatedConfig::warnings`).
    warnings: Vec<Diagnostic>,
    globals: Globals,
    /// Interface name -> what uses it (interfaces are unique across subnets and uplinks).
    interfaces: HashMap<String, String>,
    /// Public/elastic address -> what uses it (unique across the file).
    public_ips: HashMap<Ipv4Addr, String>,
}

/// Why `ip` is not a unicast host address, if it is not: "this network" (0.0.0.0/8),
/// loopback, multicast, reserved (240.0.0.0/4) or the broadcast address.
fn not_unicast(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.octets()[0] == 0 {
        Some("in 0.0.0.0/8 (\"this network\")")
    } else if ip.is_loopback() {
        Some("a loopback address (127.0.0.0/8)")
    } else if ip.is_multicast() {
        Some("a multicast address (224.0.0.0/4)")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.octets()[0] >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else {
        None
    }
}

/// A VPC's security group names -> index (the first of duplicates), with the implicit
/// `default` after the file's groups.
fn group_names(vpc: &model::Vpc) -> HashMap<String, usize> {
    let mut names = HashMap::new();
    for (i, sg) in vpc.security_groups.iter().enumerate() {
        names.entry(sg.value.name.value.clone()).or_insert(i);
    }
    let implicit = vpc.security_groups.len();
    names.entry(DEFAULT_SG.to_owned()).or_insert(implicit);
    names
}

/// What a name in one namespace refers to: its index and where it was first defined.
type Names = HashMap<String, (usize, Pos)>;

impl Validator {
    fn err(&mut self, pos: Pos, path: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(pos, path, message));
    }

    fn config(&mut self, file: &ConfigFile) -> Option<ValidatedConfig> {
        self.gather_globals(file);
        let vpcs: Vec<Option<VpcDef>> = file
            .vpcs
            .iter()
            .enumerate()
            .map(|(i, vpc)| self.vpc(&vpc.value, &format!("vpcs[{i}]"), i))
            .collect();
        self.check_vpc_overlaps(file);
        let connection_tracking = match &file.connection_tracking {
            Some(ct) => self.connection_tracking(&ct.value, "connection_tracking"),
            None => Some(DEFAULT_TIMEOUTS),
        };
        let nat_port_range = match file
            .connection_tracking
            .as_ref()
            .and_then(|ct| ct.value.nat_port_range.as_ref())
        {
            Some(range) => self.port_range(range, "connection_tracking.nat_port_range"),
            None => Some(DEFAULT_NAT_PORT_RANGE),
        };
        let per_destination = match file
            .connection_tracking
            .as_ref()
            .and_then(|ct| ct.value.nat_connections_per_destination.as_ref())
        {
            Some(n) if (1..=65535).contains(&n.value) => Some(n.value as u32),
            Some(n) => {
                let msg = format!("must be between 1 and 65535, got {}", n.value);
                let path = "connection_tracking.nat_connections_per_destination";
                self.err(n.pos, path, msg);
                None
            }
            None => Some(DEFAULT_NAT_CONNECTIONS_PER_DESTINATION),
        };
        let flow_logs = match &file.flow_logs {
            Some(f) => self.flow_log_list(file, f)?,
            None => Vec::new(),
        };
        let vpcs: Vec<VpcDef> = vpcs.into_iter().collect::<Option<_>>()?;
        let mut warnings: Vec<Diagnostic> = std::mem::take(&mut self.warnings);
        warnings.extend(ipv6::ipv6_warning(file));
        warnings.extend(
            file.vpcs
                .iter()
                .zip(&vpcs)
                .enumerate()
                .flat_map(|(i, (model, _))| shared_segment_warnings(&model.value, &vpcs, i)),
        );
        warnings.sort_by_key(|w| w.pos);
        Some(ValidatedConfig {
            vpcs,
            warnings,
            flow_logs,
            connection_tracking: connection_tracking?,
            nat_port_range: nat_port_range?,
            nat_connections_per_destination: per_destination?,
        })
    }

    fn gather_globals(&mut self, file: &ConfigFile) {
        let names = self.unique_names(file.vpcs.iter().map(|v| &v.value.name), "vpcs", "VPC");
        for (i, vpc) in file.vpcs.iter().enumerate() {
            let vpc = &vpc.value;
            let vpc_name = &vpc.name.value;
            for block in &vpc.cidr_blocks.value {
                if let Ok(net) = block.value.parse::<Ipv4Net>() {
                    self.globals.vpc_blocks.push((net, vpc_name.clone()));
                }
            }
            if let Some(net) = vpc
                .ipv6_cidr_block
                .as_ref()
                .and_then(|b| b.value.parse::<ipnet::Ipv6Net>().ok())
            {
                self.globals.vpc_v6_blocks.push((i, net, vpc_name.clone()));
            }
            if vpc.ipv6_cidr_block.is_some() {
                self.globals.ipv6_vpcs.insert(vpc_name.clone());
            }
            if names.get(vpc_name).is_some_and(|(idx, _)| *idx == i) {
                self.globals.vpc_index.insert(vpc_name.clone(), i);
            }
            if let Some(igw) = &vpc.internet_gateway {
                self.globals
                    .igws
                    .insert(igw.value.name.value.clone(), vpc_name.clone());
            }
            for nat in &vpc.nat_gateways {
                let owners = self.globals.nats.entry(nat.value.name.value.clone());
                owners.or_default().push(vpc_name.clone());
            }
            for inst in &vpc.instances {
                let owners = self.globals.instances.entry(inst.value.name.value.clone());
                owners.or_default().push(vpc_name.clone());
            }
            self.globals.peerings.extend(
                vpc.peering_connections
                    .iter()
                    .filter(|p| p.value.peer_vpc.value != *vpc_name)
                    .map(|p| PeeringDecl {
                        vpc: vpc_name.clone(),
                        name: p.value.name.value.clone(),
                        peer: p.value.peer_vpc.value.clone(),
                        pos: p.value.peer_vpc.pos,
                    }),
            );
            self.globals.groups.push(group_names(vpc));
        }
    }

    /// Checks that names are non-empty and unique; returns name -> (index, position).
    fn unique_names<'a>(
        &mut self,
        names: impl Iterator<Item = &'a Loc<String>>,
        list_path: &str,
        kind: &str,
    ) -> Names {
        let mut seen = Names::new();
        for (i, name) in names.enumerate() {
            let path = format!("{list_path}[{i}].name");
            if name.value.is_empty() {
                self.err(name.pos, path, format!("a {kind} name must not be empty"));
            } else if let Some((_, first)) = seen.get(&name.value) {
                let msg = format!(
                    "duplicate {kind} name '{}' (first defined at line {})",
                    name.value, first.line
                );
                self.err(name.pos, path, msg);
            } else {
                seen.insert(name.value.clone(), (i, name.pos));
            }
        }
        seen
    }

    fn vpc(&mut self, vpc: &model::Vpc, path: &str, index: usize) -> Option<VpcDef> {
        let name = vpc.name.value.as_str();
        let blocks = self.vpc_blocks(vpc, path);
        let ipv6_block = self.vpc_ipv6_block(vpc, path, index);
        let known_blocks: Vec<Ipv4Net> = blocks.iter().flatten().copied().collect();
        let targets = self.target_names(vpc, path);
        let subnet_names = self.unique_names(
            vpc.subnets.iter().map(|s| &s.value.name),
            &format!("{path}.subnets"),
            "subnet",
        );
        let table_names = self.unique_names(
            vpc.route_tables.iter().map(|t| &t.value.name),
            &format!("{path}.route_tables"),
            "route table",
        );
        let acl_names = self.unique_names(
            vpc.network_acls.iter().map(|a| &a.value.name),
            &format!("{path}.network_acls"),
            "network ACL",
        );
        let sg_names = self.unique_names(
            vpc.security_groups.iter().map(|g| &g.value.name),
            &format!("{path}.security_groups"),
            "security group",
        );
        self.unique_names(
            vpc.instances.iter().map(|i| &i.value.name),
            &format!("{path}.instances"),
            "instance",
        );
        let (list_names, prefix_lists) = self.prefix_lists(vpc, path);

        // Implicit defaults go after the file's own entries.
        let main_route_table = table_names
            .get(MAIN_TABLE)
            .map_or(vpc.route_tables.len(), |(i, _)| *i);
        let default_acl = acl_names
            .get(DEFAULT_ACL)
            .map_or(vpc.network_acls.len(), |(i, _)| *i);
        let default_sg = sg_names
            .get(DEFAULT_SG)
            .map_or(vpc.security_groups.len(), |(i, _)| *i);

        let refs = SubnetRefs {
            vpc: name,
            tables: &table_names,
            main_table: main_route_table,
            acls: &acl_names,
            default_acl,
            ipv6_block,
        };
        // The uplink first: it comes first in the file, so a clash is reported on the subnet.
        let internet_gateway = self.internet_gateway(vpc, path);
        let egress_only_internet_gateway = self.egress_only_gateway(vpc, path);
        let vpn_gateway = self.vpn_gateway(vpc, path);
        let subnets = self.subnets(vpc, path, &known_blocks, &refs);
        let resolved_subnets: Vec<Option<&SubnetDef>> =
            subnets.iter().map(|(def, _)| def.as_ref()).collect();
        let scope = VpcScope {
            name,
            blocks: &known_blocks,
            ipv6_block,
            subnet_names: &subnet_names,
            subnets: &resolved_subnets,
            has_igw: vpc.internet_gateway.is_some(),
            prefix_lists: &list_names,
            prefix_list_defs: prefix_lists.as_deref(),
        };
        let mut addresses = HashMap::new();
        let nat_gateways = self.nat_gateways(vpc, path, &scope, &mut addresses);
        let instances = self.instances(vpc, path, &scope, &sg_names, default_sg, &mut addresses);
        let endpoints = self.gateway_endpoints(vpc, path, &list_names, prefix_lists.as_deref());
        let gateways = resolve(|| {
            let mut gateways = vpn_gateway?;
            gateways.extend(endpoints?);
            Some(gateways)
        });
        let route_tables = self.route_tables(vpc, path, &scope, &targets, gateways.as_deref());
        let network_acls = self.network_acls(vpc, path);
        let security_groups = self.security_groups(vpc, path, &sg_names, &list_names);
        let peering_connections = self.peerings(vpc, path);

        let mut route_tables = route_tables?;
        if main_route_table == route_tables.len() {
            route_tables.push(RouteTableDef {
                name: MAIN_TABLE.to_owned(),
                implicit: true,
                routes: Vec::new(),
            });
        }
        let has_ipv6 = vpc.ipv6_cidr_block.is_some();
        let mut network_acls = network_acls?;
        if default_acl == network_acls.len() {
            network_acls.push(NetworkAclDef::allow_all(DEFAULT_ACL, has_ipv6));
        }
        let mut security_groups = security_groups?;
        if default_sg == security_groups.len() {
            security_groups.push(SecurityGroupDef::aws_default(
                default_sg, DEFAULT_SG, has_ipv6,
            ));
        }
        Some(VpcDef {
            name: name.to_owned(),
            cidr_blocks: blocks.into_iter().collect::<Option<_>>()?,
            internet_gateway: internet_gateway?,
            ipv6_cidr_block: match ipv6_block {
                ipv6::V6Block::Absent => None,
                ipv6::V6Block::Invalid => return None,
                ipv6::V6Block::Block(net) => Some(net),
            },
            egress_only_internet_gateway,
            gateways: gateways?,
            nat_gateways: nat_gateways?,
            subnets: subnets
                .into_iter()
                .map(|(def, complete)| def.filter(|_| complete))
                .collect::<Option<_>>()?,
            route_tables,
            main_route_table,
            network_acls,
            security_groups,
            instances: instances?,
            peering_connections: peering_connections?,
            prefix_lists: prefix_lists?,
        })
    }
}

/// What subnets may refer to.
struct SubnetRefs<'a> {
    vpc: &'a str,
    tables: &'a Names,
    main_table: usize,
    acls: &'a Names,
    default_acl: usize,
    ipv6_block: ipv6::V6Block,
}

/// A namespace a reference resolves in, with its default.
struct Ref<'a> {
    names: &'a Names,
    default: usize,
    default_name: &'a str,
    what: &'a str,
}

/// A VPC's resolved facts that addresses and routes are checked against.
struct VpcScope<'a> {
    name: &'a str,
    blocks: &'a [Ipv4Net],
    /// The VPC's IPv6 block: the local route of IPv6 destinations.
    ipv6_block: ipv6::V6Block,
    subnet_names: &'a Names,
    subnets: &'a [Option<&'a SubnetDef>],
    has_igw: bool,
    /// Prefix list name -> index in the VPC's `prefix_lists`.
    prefix_lists: &'a Names,
    /// The VPC's prefix lists, if every one is valid.
    prefix_list_defs: Option<&'a [PrefixListDef]>,
}

/// Route target names of one VPC.
#[derive(Default)]
struct Targets {
    igw: Option<String>,
    /// The egress-only internet gateway (IPv6 only).
    eigw: Option<String>,
    /// Index in the VPC's `gateways`.
    gateways: HashMap<String, usize>,
    /// The gateway endpoints among `gateways` (by index there): the name of the prefix list
    /// each serves, as written.
    endpoint_lists: HashMap<usize, String>,
    nats: HashMap<String, usize>,
    peerings: HashMap<String, usize>,
    /// Instances by name: index in the VPC's `instances`, and whether its source/destination
    /// check is on (then no route may target it).
    instances: HashMap<String, (usize, bool)>,
    /// The instances (by index) that have IPv6 addresses: only those, as NAT instances, may
    /// be the target of an IPv6 destination.
    ipv6_instances: HashSet<usize>,
    /// The peering connections (by index) whose peer VPC has no IPv6 block, with the peer's
    /// name: they carry IPv4 only.
    ipv4_only_peerings: HashMap<usize, String>,
}

/// Builds a resolved item from parts that may have failed (each failure is already reported):
/// `?` inside the closure leaves only this item, not the loop over its siblings.
fn resolve<T>(build: impl FnOnce() -> Option<T>) -> Option<T> {
    build()
}

/// Two CIDRs overlap iff one contains the other.
pub(crate) fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}
