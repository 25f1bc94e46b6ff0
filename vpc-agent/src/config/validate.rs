//! Semantic rules of the format (shared/spec/vpc-config.md, AWS): addresses, references,
//! uniqueness, routes, rules. Every violation is recorded, none stops the check, so a user
//! sees all problems of the file at once. AWS defaults are applied on the way.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    ops::RangeInclusive,
    path::PathBuf,
};

use ipnet::Ipv4Net;
use vpc_common::{acl::MAX_ACL_RULES, conntrack::DEFAULT_TIMEOUTS};

use vpc_common::proto::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

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
fn shared_segment_warnings(model: &model::Vpc, vpc: &VpcDef, v: usize) -> Vec<Diagnostic> {
    // A protocol no rule names: only rules allowing all traffic match it.
    const ANY_TRAFFIC: u8 = 253;
    let allows_all_from = |to: &InstanceDef, from: &InstanceDef| {
        to.security_groups.iter().any(|&g| {
            vpc.security_groups[g].inbound.iter().any(|r| {
                r.traffic.matches(ANY_TRAFFIC, 0, 0, 0)
                    && match &r.peer {
                        SgPeer::Cidr(net) => net.contains(&from.private_ip),
                        SgPeer::Group(g) => from.security_groups.contains(g),
                    }
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
    /// Internet gateway name -> VPC name.
    igws: HashMap<String, String>,
    /// NAT gateway name -> VPC names.
    nats: HashMap<String, Vec<String>>,
}

#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
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
            .map(|(i, vpc)| self.vpc(&vpc.value, &format!("vpcs[{i}]")))
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
        let warnings = file
            .vpcs
            .iter()
            .zip(&vpcs)
            .enumerate()
            .flat_map(|(i, (model, vpc))| shared_segment_warnings(&model.value, vpc, i))
            .collect();
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

    fn vpc(&mut self, vpc: &model::Vpc, path: &str) -> Option<VpcDef> {
        let name = vpc.name.value.as_str();
        let blocks = self.vpc_blocks(vpc, path);
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
        };
        // The uplink first: it comes first in the file, so a clash is reported on the subnet.
        let internet_gateway = self.internet_gateway(vpc, path);
        let subnets = self.subnets(vpc, path, &known_blocks, &refs);
        let resolved_subnets: Vec<Option<&SubnetDef>> =
            subnets.iter().map(|(def, _)| def.as_ref()).collect();
        let scope = VpcScope {
            name,
            blocks: &known_blocks,
            subnet_names: &subnet_names,
            subnets: &resolved_subnets,
            has_igw: vpc.internet_gateway.is_some(),
        };
        let mut addresses = HashMap::new();
        let nat_gateways = self.nat_gateways(vpc, path, &scope, &mut addresses);
        let instances = self.instances(vpc, path, &scope, &sg_names, default_sg, &mut addresses);
        let route_tables = self.route_tables(vpc, path, &scope, &targets);
        let network_acls = self.network_acls(vpc, path);
        let security_groups = self.security_groups(vpc, path, &sg_names);
        let peering_connections = self.peerings(vpc, path);

        let mut route_tables = route_tables?;
        if main_route_table == route_tables.len() {
            route_tables.push(RouteTableDef {
                name: MAIN_TABLE.to_owned(),
                implicit: true,
                routes: Vec::new(),
            });
        }
        let mut network_acls = network_acls?;
        if default_acl == network_acls.len() {
            network_acls.push(NetworkAclDef::allow_all(DEFAULT_ACL));
        }
        let mut security_groups = security_groups?;
        if default_sg == security_groups.len() {
            security_groups.push(SecurityGroupDef::aws_default(default_sg, DEFAULT_SG));
        }
        Some(VpcDef {
            name: name.to_owned(),
            cidr_blocks: blocks.into_iter().collect::<Option<_>>()?,
            internet_gateway: internet_gateway?,
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
        })
    }

    // ----- CIDR blocks and subnets -----

    fn vpc_blocks(&mut self, vpc: &model::Vpc, path: &str) -> Vec<Option<Ipv4Net>> {
        let list = &vpc.cidr_blocks;
        if list.value.is_empty() {
            let msg = "a VPC needs at least one CIDR block";
            self.err(list.pos, format!("{path}.cidr_blocks"), msg);
        }
        let mut blocks: Vec<Option<Ipv4Net>> = Vec::new();
        for (i, block) in list.value.iter().enumerate() {
            let bpath = format!("{path}.cidr_blocks[{i}]");
            let net = self.block_cidr(block, &bpath, "a VPC CIDR block");
            if let Some(net) = net {
                let other = blocks
                    .iter()
                    .enumerate()
                    .find_map(|(j, b)| b.filter(|b| overlaps(b, &net)).map(|b| (j, b)));
                if let Some((j, other)) = other {
                    let msg = format!("CIDR block {net} overlaps {other} (cidr_blocks[{j}])");
                    self.err(block.pos, bpath, msg);
                }
            }
            blocks.push(net);
        }
        blocks
    }

    /// A CIDR without host bits, any prefix length.
    fn cidr(&mut self, v: &Loc<String>, path: &str) -> Option<Ipv4Net> {
        let Ok(net) = v.value.parse::<Ipv4Net>() else {
            let msg = format!(
                "invalid CIDR '{}': expected an IPv4 network such as 10.0.0.0/16",
                v.value
            );
            self.err(v.pos, path, msg);
            return None;
        };
        if net.trunc() != net {
            let msg = format!(
                "CIDR {net} has host bits set (the network is {})",
                net.trunc()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        Some(net)
    }

    /// A VPC or subnet block: a CIDR of /16 to /28.
    fn block_cidr(&mut self, v: &Loc<String>, path: &str, what: &str) -> Option<Ipv4Net> {
        let net = self.cidr(v, path)?;
        if let Some(why) = not_unicast(net.network()) {
            let msg = format!("{what} must hold unicast addresses: {net} is {why}");
            self.err(v.pos, path, msg);
            return None;
        }
        if !BLOCK_PREFIX.contains(&net.prefix_len()) {
            let msg = format!(
                "{what} must be between /16 and /28, got /{}",
                net.prefix_len()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        Some(net)
    }

    /// A host address: parses, and is unicast.
    fn ip(&mut self, v: &Loc<String>, path: &str) -> Option<Ipv4Addr> {
        let Ok(ip) = v.value.parse::<Ipv4Addr>() else {
            let msg = format!("invalid IPv4 address '{}'", v.value);
            self.err(v.pos, path, msg);
            return None;
        };
        if let Some(why) = not_unicast(ip) {
            let msg = format!("address {ip} is {why}, not a host address");
            self.err(v.pos, path, msg);
            return None;
        }
        Some(ip)
    }

    fn subnets(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        blocks: &[Ipv4Net],
        refs: &SubnetRefs<'_>,
    ) -> Vec<(Option<SubnetDef>, bool)> {
        let mut nets: Vec<(Ipv4Net, &str)> = Vec::new();
        let mut out = Vec::new();
        for (i, subnet) in vpc.subnets.iter().enumerate() {
            let subnet = &subnet.value;
            let spath = format!("{path}.subnets[{i}]");
            let cpath = format!("{spath}.cidr");
            let cidr = self.block_cidr(&subnet.cidr, &cpath, "a subnet CIDR block");
            if let Some(net) = cidr {
                if !blocks.is_empty() && !blocks.iter().any(|b| b.contains(&net)) {
                    let msg = format!(
                        "subnet {net} is not inside a CIDR block of VPC '{}'",
                        refs.vpc
                    );
                    self.err(subnet.cidr.pos, &cpath, msg);
                }
                if let Some((other, owner)) = nets.iter().find(|(n, _)| overlaps(n, &net)) {
                    let msg = format!("subnet {net} overlaps subnet '{owner}' ({other})");
                    self.err(subnet.cidr.pos, &cpath, msg);
                }
                nets.push((net, &subnet.name.value));
            }
            if let Some(interface) = &subnet.interface {
                let owner = format!("subnet '{}' of VPC '{}'", subnet.name.value, refs.vpc);
                self.interface(interface, &format!("{spath}.interface"), owner);
            }
            let table_ref = Ref {
                names: refs.tables,
                default: refs.main_table,
                default_name: MAIN_TABLE,
                what: &format!("route table in VPC '{}'", refs.vpc),
            };
            let table = self.reference(
                subnet.route_table.as_ref(),
                table_ref,
                &format!("{spath}.route_table"),
            );
            let acl_ref = Ref {
                names: refs.acls,
                default: refs.default_acl,
                default_name: DEFAULT_ACL,
                what: &format!("network ACL in VPC '{}'", refs.vpc),
            };
            let acl = self.reference(
                subnet.network_acl.as_ref(),
                acl_ref,
                &format!("{spath}.network_acl"),
            );
            // Addresses are checked against the subnet's CIDR even if its references failed.
            let def = cidr.map(|cidr| SubnetDef {
                name: subnet.name.value.clone(),
                cidr,
                interface: subnet.interface.as_ref().map(|i| i.value.clone()),
                route_table: table.unwrap_or_default(),
                network_acl: acl.unwrap_or_default(),
            });
            let complete = table.is_some() && acl.is_some();
            out.push((def, complete));
        }
        out
    }

    /// Resolves an optional reference by name: omitted, or the default's name when the file
    /// does not define it, is the (implicit) default.
    fn reference(
        &mut self,
        name: Option<&Loc<String>>,
        refs: Ref<'_>,
        path: &str,
    ) -> Option<usize> {
        let Some(name) = name else {
            return Some(refs.default);
        };
        if let Some((i, _)) = refs.names.get(&name.value) {
            return Some(*i);
        }
        if name.value == refs.default_name {
            return Some(refs.default);
        }
        self.err(
            name.pos,
            path,
            format!("unknown {}: '{}'", refs.what, name.value),
        );
        None
    }

    /// Registers an interface name, which must be unique across subnets and uplinks.
    fn interface(&mut self, name: &Loc<String>, path: &str, owner: String) {
        if name.value.is_empty() {
            self.err(name.pos, path, "an interface name must not be empty");
        } else if let Some(first) = self.interfaces.get(&name.value) {
            let msg = format!("interface '{}' is already used by {first}", name.value);
            self.err(name.pos, path, msg);
        } else {
            self.interfaces.insert(name.value.clone(), owner);
        }
    }

    fn internet_gateway(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
    ) -> Option<Option<InternetGatewayDef>> {
        let Some(igw) = &vpc.internet_gateway else {
            return Some(None);
        };
        let igw = &igw.value;
        let owner = format!(
            "internet gateway '{}' of VPC '{}'",
            igw.name.value, vpc.name.value
        );
        let ipath = format!("{path}.internet_gateway.interface");
        self.interface(&igw.interface, &ipath, owner);
        Some(Some(InternetGatewayDef {
            name: igw.name.value.clone(),
            interface: igw.interface.value.clone(),
        }))
    }

    // ----- Addresses: NAT gateways and instances -----

    /// A private address: inside its subnet, not reserved, not used twice in the VPC.
    fn private_ip(
        &mut self,
        v: &Loc<String>,
        path: &str,
        subnet: Option<&SubnetDef>,
        owner: String,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Ipv4Addr> {
        let ip = self.ip(v, path)?;
        let subnet = subnet?;
        if !subnet.cidr.contains(&ip) {
            let msg = format!(
                "address {ip} is not inside subnet '{}' ({})",
                subnet.name, subnet.cidr
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if subnet.is_reserved(ip) {
            let net = subnet.cidr.network();
            let msg = format!(
                "address {ip} is reserved in subnet '{}' (AWS reserves {net} to {} and {}; the router is {})",
                subnet.name,
                Ipv4Addr::from(u32::from(net) + 3),
                subnet.cidr.broadcast(),
                subnet.router_ip()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if let Some(first) = used.get(&ip) {
            let msg = format!("address {ip} is already used by {first}");
            self.err(v.pos, path, msg);
            return None;
        }
        used.insert(ip, owner);
        Some(ip)
    }

    /// A public (elastic) address: unique across the file, and only in a VPC that has an
    /// internet gateway (as AWS requires), since nothing else could reach it.
    fn public_ip(
        &mut self,
        v: &Loc<String>,
        path: &str,
        scope: &VpcScope<'_>,
        owner: String,
    ) -> Option<Ipv4Addr> {
        let ip = self.ip(v, path)?;
        if let Some((net, vpc)) = self
            .globals
            .vpc_blocks
            .iter()
            .find(|(n, _)| n.contains(&ip))
        {
            let msg = format!(
                "public address {ip} is inside VPC '{vpc}' ({net}): a public address must not be \
                 one of a VPC's own addresses"
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if !scope.has_igw {
            let msg = format!(
                "a public address needs an internet gateway, and VPC '{}' has none",
                scope.name
            );
            self.err(v.pos, path, msg);
        }
        if let Some(first) = self.public_ips.get(&ip) {
            let msg = format!("public address {ip} is already used by {first}");
            self.err(v.pos, path, msg);
            return None;
        }
        self.public_ips.insert(ip, owner);
        Some(ip)
    }

    /// Resolves a subnet name of this VPC (None: error recorded, or the subnet is invalid).
    fn subnet_ref<'s>(
        &mut self,
        name: &Loc<String>,
        path: &str,
        scope: &VpcScope<'s>,
    ) -> Option<(usize, Option<&'s SubnetDef>)> {
        match scope.subnet_names.get(&name.value) {
            Some((i, _)) => Some((*i, scope.subnets.get(*i).copied().flatten())),
            None => {
                let msg = format!("unknown subnet in VPC '{}': '{}'", scope.name, name.value);
                self.err(name.pos, path, msg);
                None
            }
        }
    }

    fn nat_gateways(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Vec<NatGatewayDef>> {
        let mut out = Vec::new();
        for (i, nat) in vpc.nat_gateways.iter().enumerate() {
            let nat = &nat.value;
            let npath = format!("{path}.nat_gateways[{i}]");
            let subnet = self.subnet_ref(&nat.subnet, &format!("{npath}.subnet"), scope);
            let owner = format!("NAT gateway '{}'", nat.name.value);
            let private_ip = self.private_ip(
                &nat.private_ip,
                &format!("{npath}.private_ip"),
                subnet.and_then(|s| s.1),
                owner.clone(),
                used,
            );
            let public_owner = format!("{owner} of VPC '{}'", scope.name);
            let elastic_ip = self.public_ip(
                &nat.elastic_ip,
                &format!("{npath}.elastic_ip"),
                scope,
                public_owner,
            );
            out.push(resolve(|| {
                Some(NatGatewayDef {
                    name: nat.name.value.clone(),
                    subnet: subnet?.0,
                    private_ip: private_ip?,
                    elastic_ip: elastic_ip?,
                })
            }));
        }
        out.into_iter().collect()
    }

    fn instances(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        groups: &Names,
        default_sg: usize,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Vec<InstanceDef>> {
        let mut out = Vec::new();
        for (i, inst) in vpc.instances.iter().enumerate() {
            let inst = &inst.value;
            let ipath = format!("{path}.instances[{i}]");
            let subnet = self.subnet_ref(&inst.subnet, &format!("{ipath}.subnet"), scope);
            let owner = format!("instance '{}'", inst.name.value);
            let private_ip = self.private_ip(
                &inst.private_ip,
                &format!("{ipath}.private_ip"),
                subnet.and_then(|s| s.1),
                owner.clone(),
                used,
            );
            let public_ip = match &inst.public_ip {
                Some(p) => {
                    let public_owner = format!("{owner} of VPC '{}'", scope.name);
                    Some(self.public_ip(p, &format!("{ipath}.public_ip"), scope, public_owner))
                }
                None => None,
            };
            let sgs = self.instance_groups(inst, &ipath, scope.name, groups, default_sg);
            match (&inst.interface, subnet) {
                (Some(interface), _) => {
                    let owner = format!("{owner} of VPC '{}'", scope.name);
                    self.interface(interface, &format!("{ipath}.interface"), owner);
                }
                (None, Some((_, Some(s)))) if s.interface.is_none() => {
                    let msg = format!(
                        "instance '{}' needs an interface of its own (its router port): subnet \
                         '{}' has no shared segment (interface)",
                        inst.name.value, s.name
                    );
                    self.err(inst.name.pos, format!("{ipath}.interface"), msg);
                }
                _ => {}
            }
            out.push(resolve(|| {
                Some(InstanceDef {
                    name: inst.name.value.clone(),
                    subnet: subnet?.0,
                    interface: inst.interface.as_ref().map(|i| i.value.clone()),
                    private_ip: private_ip?,
                    public_ip: public_ip.map(|p| p.ok_or(())).transpose().ok()?,
                    security_groups: sgs?,
                })
            }));
        }
        out.into_iter().collect()
    }

    fn instance_groups(
        &mut self,
        inst: &model::Instance,
        path: &str,
        vpc: &str,
        groups: &Names,
        default_sg: usize,
    ) -> Option<Vec<usize>> {
        let Some(list) = &inst.security_groups else {
            return Some(vec![default_sg]);
        };
        let lpath = format!("{path}.security_groups");
        if list.value.is_empty() {
            let msg = "an instance needs at least one security group (omit the key for 'default')";
            self.err(list.pos, lpath, msg);
            return None;
        }
        let mut out: Vec<Option<usize>> = Vec::new();
        for (i, name) in list.value.iter().enumerate() {
            let gpath = format!("{lpath}[{i}]");
            let index = self.group_ref(name, &gpath, vpc, groups, default_sg);
            if index.is_some() && out.contains(&index) {
                let msg = format!("security group '{}' is listed twice", name.value);
                self.err(name.pos, gpath, msg);
            }
            out.push(index);
        }
        out.into_iter().collect()
    }

    /// A security group of this VPC by name (`default` always exists).
    fn group_ref(
        &mut self,
        name: &Loc<String>,
        path: &str,
        vpc: &str,
        groups: &Names,
        default_sg: usize,
    ) -> Option<usize> {
        match groups.get(&name.value) {
            Some((i, _)) => Some(*i),
            None if name.value == DEFAULT_SG => Some(default_sg),
            None => {
                let msg = format!("unknown security group in VPC '{vpc}': '{}'", name.value);
                self.err(name.pos, path, msg);
                None
            }
        }
    }

    // ----- Route tables -----

    /// Names a route may target: the internet gateway, NAT gateways and peering connections
    /// share one namespace (a route names its target by name alone).
    fn target_names(&mut self, vpc: &model::Vpc, path: &str) -> Targets {
        let mut targets = Targets::default();
        let mut seen: HashMap<String, (String, u32)> = HashMap::new();
        let mut add = |me: &mut Self, name: &Loc<String>, npath: String, kind: &str| {
            if name.value == TARGET_LOCAL || name.value == TARGET_BLACKHOLE {
                let msg = format!(
                    "'{}' is reserved as a route target and cannot name a {kind}",
                    name.value
                );
                me.err(name.pos, npath, msg);
                return false;
            }
            if name.value.is_empty() {
                me.err(name.pos, npath, format!("a {kind} name must not be empty"));
                return false;
            }
            if let Some((other, line)) = seen.get(&name.value) {
                let msg = format!(
                    "duplicate route target name '{}': also the {other} at line {line}",
                    name.value
                );
                me.err(name.pos, npath, msg);
                return false;
            }
            seen.insert(name.value.clone(), (kind.to_owned(), name.pos.line));
            true
        };
        if let Some(igw) = &vpc.internet_gateway {
            let npath = format!("{path}.internet_gateway.name");
            if add(self, &igw.value.name, npath, "internet gateway") {
                targets.igw = Some(igw.value.name.value.clone());
            }
        }
        for (i, nat) in vpc.nat_gateways.iter().enumerate() {
            let npath = format!("{path}.nat_gateways[{i}].name");
            if add(self, &nat.value.name, npath, "NAT gateway") {
                targets.nats.insert(nat.value.name.value.clone(), i);
            }
        }
        for (i, pcx) in vpc.peering_connections.iter().enumerate() {
            let npath = format!("{path}.peering_connections[{i}].name");
            if add(self, &pcx.value.name, npath, "peering connection") {
                targets.peerings.insert(pcx.value.name.value.clone(), i);
            }
        }
        targets
    }

    fn route_tables(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        targets: &Targets,
    ) -> Option<Vec<RouteTableDef>> {
        let mut out = Vec::new();
        for (i, table) in vpc.route_tables.iter().enumerate() {
            let table = &table.value;
            let tpath = format!("{path}.route_tables[{i}]");
            let mut seen: BTreeMap<Ipv4Net, u32> = BTreeMap::new();
            let mut routes = Vec::new();
            for (j, route) in table.routes.iter().enumerate() {
                let rpath = format!("{tpath}.routes[{j}]");
                let dest = self.route_destination(&route.value, &rpath, scope);
                if let Some(d) = dest {
                    if let Some(line) = seen.get(&d) {
                        let msg = format!(
                            "duplicate destination {d} in route table '{}' (also at line {line})",
                            table.name.value
                        );
                        self.err(
                            route.value.destination.pos,
                            format!("{rpath}.destination"),
                            msg,
                        );
                    } else {
                        seen.insert(d, route.value.destination.pos.line);
                    }
                }
                let target = self.route_target(
                    &route.value.target,
                    &format!("{rpath}.target"),
                    scope,
                    targets,
                );
                routes.push(dest.zip(target).map(|(destination, target)| RouteDef {
                    destination,
                    target,
                }));
            }
            out.push(resolve(|| {
                Some(RouteTableDef {
                    name: table.name.value.clone(),
                    implicit: false,
                    routes: routes.into_iter().collect::<Option<_>>()?,
                })
            }));
        }
        out.into_iter().collect()
    }

    /// A route's destination may not be, or be inside, a VPC block: the local route covers it.
    fn route_destination(
        &mut self,
        route: &model::Route,
        path: &str,
        scope: &VpcScope<'_>,
    ) -> Option<Ipv4Net> {
        let dpath = format!("{path}.destination");
        let dest = self.cidr(&route.destination, &dpath)?;
        let pos = route.destination.pos;
        if let Some(block) = scope.blocks.iter().find(|b| b.contains(&dest)) {
            let msg = if *block == dest {
                format!("destination {dest} is the VPC's local route and cannot be overridden")
            } else {
                format!(
                    "destination {dest} is more specific than the local route {block}; no route may be inside a VPC CIDR block"
                )
            };
            self.err(pos, dpath, msg);
            return None;
        }
        Some(dest)
    }

    fn route_target(
        &mut self,
        target: &Loc<String>,
        path: &str,
        scope: &VpcScope<'_>,
        targets: &Targets,
    ) -> Option<RouteTarget> {
        let name = target.value.as_str();
        if name == TARGET_BLACKHOLE {
            return Some(RouteTarget::Blackhole);
        }
        if targets.igw.as_deref() == Some(name) {
            return Some(RouteTarget::InternetGateway);
        }
        if let Some(i) = targets.nats.get(name) {
            return Some(RouteTarget::NatGateway(*i));
        }
        if let Some(i) = targets.peerings.get(name) {
            return Some(RouteTarget::Peering(*i));
        }
        let vpc = scope.name;
        let msg = if name == TARGET_LOCAL {
            "the local route is implicit for the VPC's CIDR blocks; 'local' cannot be a route's target"
                .to_owned()
        } else if let Some(other) = self.globals.igws.get(name) {
            format!(
                "internet gateway '{name}' belongs to VPC '{other}'; a route can only target the internet gateway of its own VPC '{vpc}'"
            )
        } else if let Some(others) = self.globals.nats.get(name) {
            format!(
                "NAT gateway '{name}' is in VPC '{}'; a route can only target a NAT gateway of its own VPC '{vpc}'",
                others.join("', '")
            )
        } else {
            format!(
                "unknown route target '{name}': not an internet gateway, NAT gateway or peering connection of VPC '{vpc}', nor 'blackhole'"
            )
        };
        self.err(target.pos, path, msg);
        None
    }

    // ----- Rules: network ACLs and security groups -----

    fn network_acls(&mut self, vpc: &model::Vpc, path: &str) -> Option<Vec<NetworkAclDef>> {
        let mut out = Vec::new();
        for (i, acl) in vpc.network_acls.iter().enumerate() {
            let apath = format!("{path}.network_acls[{i}]");
            let inbound = self.acl_rules(&acl.value.inbound, &format!("{apath}.inbound"), acl.pos);
            let outbound =
                self.acl_rules(&acl.value.outbound, &format!("{apath}.outbound"), acl.pos);
            out.push(resolve(|| {
                Some(NetworkAclDef {
                    name: acl.value.name.value.clone(),
                    implicit: false,
                    inbound: inbound?,
                    outbound: outbound?,
                })
            }));
        }
        out.into_iter().collect()
    }

    /// One direction of an ACL; returns the rules sorted by number.
    fn acl_rules(
        &mut self,
        rules: &[Loc<model::AclRule>],
        path: &str,
        acl_pos: Pos,
    ) -> Option<Vec<AclRuleDef>> {
        if rules.len() > MAX_ACL_RULES {
            let direction = path.rsplit('.').next().unwrap_or(path);
            let msg = format!(
                "{} {direction} rules: the datapath holds at most {MAX_ACL_RULES} per direction",
                rules.len()
            );
            self.err(acl_pos, path, msg);
        }
        let mut numbers: HashMap<i64, u32> = HashMap::new();
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let rule = &rule.value;
            let rpath = format!("{path}[{i}]");
            let number = self.rule_number(&rule.rule, &format!("{rpath}.rule"), &mut numbers);
            let traffic = self.traffic(rule, &rpath);
            let cidr = self.cidr(&rule.cidr, &format!("{rpath}.cidr"));
            out.push(resolve(|| {
                Some(AclRuleDef {
                    number: number?,
                    traffic: traffic?,
                    cidr: cidr?,
                    allow: rule.action.value == model::Action::Allow,
                })
            }));
        }
        let mut out: Vec<AclRuleDef> = out.into_iter().collect::<Option<_>>()?;
        out.sort_by_key(|r| r.number);
        Some(out)
    }

    fn rule_number(
        &mut self,
        n: &Loc<i64>,
        path: &str,
        seen: &mut HashMap<i64, u32>,
    ) -> Option<u16> {
        if !RULE_NUMBERS.contains(&n.value) {
            let msg = format!("rule number must be between 1 and 32766, got {}", n.value);
            self.err(n.pos, path, msg);
            return None;
        }
        if let Some(line) = seen.get(&n.value) {
            let msg = format!(
                "duplicate rule number {} in this direction (also at line {line})",
                n.value
            );
            self.err(n.pos, path, msg);
            return None;
        }
        seen.insert(n.value, n.pos.line);
        u16::try_from(n.value).ok()
    }

    /// Protocol, ports and ICMP type/code of any rule.
    fn traffic(&mut self, spec: &dyn TrafficSpec, path: &str) -> Option<TrafficMatch> {
        let protocol = self.protocol(spec.protocol(), &format!("{path}.protocol"))?;
        let ports = match spec.ports() {
            None => Some(None),
            Some(p) => self.ports(p, &format!("{path}.ports"), protocol).map(Some),
        };
        let (icmp_type, icmp_code) = match spec.icmp() {
            None => (Some(None), Some(None)),
            Some(icmp) => self.icmp(icmp, &format!("{path}.icmp"), protocol),
        };
        Some(TrafficMatch {
            protocol,
            ports: ports?,
            icmp_type: icmp_type?,
            icmp_code: icmp_code?,
        })
    }

    /// `Some(None)` is `all`.
    fn protocol(&mut self, p: &Loc<model::Text>, path: &str) -> Option<Option<u8>> {
        let text = p.value.0.as_str();
        match text {
            "all" | "-1" => return Some(None),
            "tcp" => return Some(Some(PROTO_TCP)),
            "udp" => return Some(Some(PROTO_UDP)),
            "icmp" => return Some(Some(PROTO_ICMP)),
            _ => {}
        }
        let msg = match text.parse::<u64>() {
            Ok(n) => match u8::try_from(n) {
                Ok(n) => return Some(Some(n)),
                Err(_) => format!("protocol number must be between 0 and 255, got {n}"),
            },
            Err(_) => {
                format!("unknown protocol '{text}': expected tcp, udp, icmp, all or a number 0-255")
            }
        };
        self.err(p.pos, path, msg);
        None
    }

    fn ports(&mut self, p: &Loc<model::Text>, path: &str, proto: Option<u8>) -> Option<(u16, u16)> {
        if !matches!(proto, Some(PROTO_TCP | PROTO_UDP)) {
            self.err(
                p.pos,
                path,
                "ports are only allowed with protocol tcp or udp",
            );
            return None;
        }
        self.port_range(p, path)
    }

    /// `N` or `A-B` with ports 1-65535, A <= B.
    fn port_range(&mut self, p: &Loc<model::Text>, path: &str) -> Option<(u16, u16)> {
        let text = p.value.0.as_str();
        let (lo, hi) = text.split_once('-').unwrap_or((text, text));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u64>(), hi.trim().parse::<u64>()) else {
            let msg = format!("invalid ports '{text}': expected N or A-B");
            self.err(p.pos, path, msg);
            return None;
        };
        for n in [lo, hi] {
            if !(1..=65535).contains(&n) {
                let msg = format!("port {n} is out of range 1-65535");
                self.err(p.pos, path, msg);
                return None;
            }
        }
        if lo > hi {
            let msg = format!(
                "port range {lo}-{hi} is reversed (the first port must not exceed the second)"
            );
            self.err(p.pos, path, msg);
            return None;
        }
        Some((u16::try_from(lo).ok()?, u16::try_from(hi).ok()?))
    }

    /// ICMP type and code: `Some(None)` is any.
    fn icmp(
        &mut self,
        icmp: &Loc<model::Icmp>,
        path: &str,
        proto: Option<u8>,
    ) -> (Option<Option<u8>>, Option<Option<u8>>) {
        if proto != Some(PROTO_ICMP) {
            let msg = "icmp type and code are only allowed with protocol icmp";
            self.err(icmp.pos, path, msg);
            return (None, None);
        }
        let mut field = |v: &Option<Loc<i64>>, name: &str, what: &str| match v {
            None => Some(None),
            Some(Loc { value: -1, .. }) => Some(None),
            Some(Loc { value, pos }) => match u8::try_from(*value) {
                Ok(n) => Some(Some(n)),
                Err(_) => {
                    let msg = format!("ICMP {what} must be -1 (any) or 0-255, got {value}");
                    self.err(*pos, format!("{path}.{name}"), msg);
                    None
                }
            },
        };
        let t = field(&icmp.value.icmp_type, "type", "type");
        let c = field(&icmp.value.code, "code", "code");
        (t, c)
    }

    fn security_groups(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        groups: &Names,
    ) -> Option<Vec<SecurityGroupDef>> {
        let vpc_name = vpc.name.value.as_str();
        let default_sg = groups
            .get(DEFAULT_SG)
            .map_or(vpc.security_groups.len(), |(i, _)| *i);
        let mut out = Vec::new();
        for (i, sg) in vpc.security_groups.iter().enumerate() {
            let sg = &sg.value;
            let gpath = format!("{path}.security_groups[{i}]");
            let rule = |me: &mut Self,
                        spec: &dyn TrafficSpec,
                        peer: &Loc<String>,
                        rpath: String,
                        field: &str| {
                let traffic = me.traffic(spec, &rpath);
                let ppath = format!("{rpath}.{field}");
                let peer = match peer.value.strip_prefix(SG_REF) {
                    Some(name) => {
                        let name = Loc::new(name.to_owned(), peer.pos);
                        me.group_ref(&name, &ppath, vpc_name, groups, default_sg)
                            .map(SgPeer::Group)
                    }
                    None => me.cidr(peer, &ppath).map(SgPeer::Cidr),
                };
                Some(SgRuleDef {
                    traffic: traffic?,
                    peer: peer?,
                })
            };
            let inbound: Vec<Option<SgRuleDef>> = sg
                .inbound
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    rule(
                        self,
                        &r.value,
                        &r.value.source,
                        format!("{gpath}.inbound[{j}]"),
                        "source",
                    )
                })
                .collect();
            let outbound: Option<Vec<Option<SgRuleDef>>> = sg.outbound.as_ref().map(|rules| {
                rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        rule(
                            self,
                            &r.value,
                            &r.value.destination,
                            format!("{gpath}.outbound[{j}]"),
                            "destination",
                        )
                    })
                    .collect()
            });
            out.push(resolve(|| {
                Some(SecurityGroupDef {
                    name: sg.name.value.clone(),
                    implicit: false,
                    inbound: inbound.into_iter().collect::<Option<_>>()?,
                    outbound: match outbound {
                        None => vec![SgRuleDef::allow_all()],
                        Some(rules) => rules.into_iter().collect::<Option<_>>()?,
                    },
                })
            }));
        }
        out.into_iter().collect()
    }

    // ----- Peering -----

    fn peerings(&mut self, vpc: &model::Vpc, path: &str) -> Option<Vec<PeeringDef>> {
        let me = vpc.name.value.as_str();
        let mut out = Vec::new();
        for (i, pcx) in vpc.peering_connections.iter().enumerate() {
            let peer = &pcx.value.peer_vpc;
            let ppath = format!("{path}.peering_connections[{i}].peer_vpc");
            let index = self.globals.vpc_index.get(&peer.value).copied();
            if peer.value == me {
                let msg = format!("a peering connection cannot connect VPC '{me}' to itself");
                self.err(peer.pos, ppath, msg);
                out.push(None);
                continue;
            }
            if index.is_none() {
                self.err(peer.pos, ppath, format!("unknown VPC '{}'", peer.value));
            }
            out.push(index.map(|peer_vpc| PeeringDef {
                name: pcx.value.name.value.clone(),
                peer_vpc,
            }));
        }
        out.into_iter().collect()
    }

    /// Peered VPCs must not overlap (AWS), else a destination would be ambiguous.
    /// VPCs on one router share its routing table: no two may overlap (peered or not). Each
    /// clash is reported at the later VPC's block, naming the other VPC and its line.
    fn check_vpc_overlaps(&mut self, file: &ConfigFile) {
        let mut seen: Vec<(Ipv4Net, &str, u32)> = Vec::new();
        for (i, vpc) in file.vpcs.iter().enumerate() {
            let vpc = &vpc.value;
            let mut mine = Vec::new();
            for (k, block) in vpc.cidr_blocks.value.iter().enumerate() {
                let Ok(net) = block.value.parse::<Ipv4Net>() else {
                    continue;
                };
                if let Some((other, name, line)) = seen.iter().find(|(o, ..)| overlaps(o, &net)) {
                    let msg = format!(
                        "CIDR block {net} overlaps {other} of VPC '{name}' (line {line}): VPCs on \
                         one router must not overlap"
                    );
                    self.err(block.pos, format!("vpcs[{i}].cidr_blocks[{k}]"), msg);
                }
                mine.push((net, vpc.name.value.as_str(), block.pos.line));
            }
            seen.extend(mine);
        }
    }

    // ----- Connection tracking -----

    /// The timeouts the file sets over the AWS defaults; `None` if one is out of range.
    fn connection_tracking(
        &mut self,
        ct: &model::ConnectionTracking,
        path: &str,
    ) -> Option<CtTimeouts> {
        let mut out = DEFAULT_TIMEOUTS;
        let fields = [
            (
                "tcp_established_timeout",
                &ct.tcp_established_timeout,
                TCP_ESTABLISHED_TIMEOUTS,
                &mut out.tcp_established,
            ),
            (
                "tcp_transitory_timeout",
                &ct.tcp_transitory_timeout,
                TIMEOUTS,
                &mut out.tcp_transitory,
            ),
            (
                "tcp_closing_timeout",
                &ct.tcp_closing_timeout,
                TIMEOUTS,
                &mut out.tcp_closing,
            ),
            ("udp_timeout", &ct.udp_timeout, TIMEOUTS, &mut out.udp),
            (
                "udp_stream_timeout",
                &ct.udp_stream_timeout,
                TIMEOUTS,
                &mut out.udp_stream,
            ),
            ("icmp_timeout", &ct.icmp_timeout, TIMEOUTS, &mut out.icmp),
            ("other_timeout", &ct.other_timeout, TIMEOUTS, &mut out.other),
            (
                "nat_idle_timeout",
                &ct.nat_idle_timeout,
                TIMEOUTS,
                &mut out.nat,
            ),
        ];
        let mut valid = true;
        for (name, value, range, slot) in fields {
            let Some(Loc { value, pos }) = value else {
                continue;
            };
            match u32::try_from(*value).ok().filter(|_| range.contains(value)) {
                Some(seconds) => *slot = seconds,
                None => {
                    let msg = format!(
                        "{name} must be between {} and {} seconds, got {value}",
                        range.start(),
                        range.end()
                    );
                    self.err(*pos, format!("{path}.{name}"), msg);
                    valid = false;
                }
            }
        }
        valid.then_some(out)
    }

    // ----- Flow logs -----

    fn flow_log_list(
        &mut self,
        file: &ConfigFile,
        list: &Loc<model::FlowLogList>,
    ) -> Option<Vec<FlowLogConfig>> {
        let mut out = Vec::new();
        let mut valid = true;
        for (i, log) in list.value.logs.iter().enumerate() {
            let path = if list.value.list {
                format!("flow_logs[{i}]")
            } else {
                "flow_logs".to_owned()
            };
            match self.flow_logs(file, &log.value, &path) {
                Some(config) => out.push(config),
                None => valid = false,
            }
        }
        if let Some(first) = out.first() {
            for (i, (config, log)) in out.iter().zip(&list.value.logs).enumerate().skip(1) {
                if config.aggregation_interval != first.aggregation_interval {
                    let pos = log
                        .value
                        .aggregation_interval
                        .as_ref()
                        .map_or(log.pos, |a| a.pos);
                    let msg = "every flow log must have the same aggregation_interval (the \
                               counters are drained once for all)";
                    self.err(pos, format!("flow_logs[{i}].aggregation_interval"), msg);
                    valid = false;
                }
            }
        }
        valid.then_some(out)
    }

    fn flow_log_traffic_type(&mut self, t: &Loc<String>, path: &str) -> Option<TrafficType> {
        match t.value.as_str() {
            "ACCEPT" => Some(TrafficType::Accept),
            "REJECT" => Some(TrafficType::Reject),
            "ALL" => Some(TrafficType::All),
            other => {
                let msg = format!("traffic_type must be ACCEPT, REJECT or ALL, got '{other}'");
                self.err(t.pos, path, msg);
                None
            }
        }
    }

    /// A scope's names, each checked against the file's VPCs, subnets and instances.
    fn flow_log_scope(
        &mut self,
        file: &ConfigFile,
        scope: &Loc<model::FlowLogScope>,
        path: &str,
    ) -> Option<FlowLogScope> {
        let s = &scope.value;
        let vpcs: Vec<&model::Vpc> = file
            .vpcs
            .iter()
            .map(|v| &v.value)
            .filter(|v| s.vpc.as_ref().is_none_or(|n| n.value == v.name.value))
            .collect();
        if let Some(name) = &s.vpc
            && vpcs.is_empty()
        {
            self.err(
                name.pos,
                format!("{path}.vpc"),
                format!("no VPC '{}'", name.value),
            );
            return None;
        }
        let (what, name, found): (&str, &Loc<String>, Vec<&str>) = match (&s.subnet, &s.instance) {
            (Some(_), Some(i)) => {
                let msg = "a scope is a VPC, a subnet or an instance, not both";
                self.err(i.pos, format!("{path}.instance"), msg);
                return None;
            }
            (Some(n), None) => (
                "subnet",
                n,
                vpcs.iter()
                    .filter(|v| v.subnets.iter().any(|x| x.value.name.value == n.value))
                    .map(|v| v.name.value.as_str())
                    .collect(),
            ),
            (None, Some(n)) => (
                "instance",
                n,
                vpcs.iter()
                    .filter(|v| v.instances.iter().any(|x| x.value.name.value == n.value))
                    .map(|v| v.name.value.as_str())
                    .collect(),
            ),
            (None, None) => {
                return Some(FlowLogScope {
                    vpc: s.vpc.as_ref().map(|v| v.value.clone()),
                    ..FlowLogScope::default()
                });
            }
        };
        let vpc = match found.as_slice() {
            [vpc] => (*vpc).to_owned(),
            [] => {
                let msg = format!("no {what} '{}'", name.value);
                self.err(name.pos, format!("{path}.{what}"), msg);
                return None;
            }
            _ => {
                let msg = format!(
                    "{what} '{}' is in several VPCs ({}): name the vpc too",
                    name.value,
                    found.join(", ")
                );
                self.err(name.pos, format!("{path}.{what}"), msg);
                return None;
            }
        };
        Some(FlowLogScope {
            vpc: Some(vpc),
            subnet: s.subnet.as_ref().map(|n| n.value.clone()),
            instance: s.instance.as_ref().map(|n| n.value.clone()),
        })
    }

    fn flow_logs(
        &mut self,
        file: &ConfigFile,
        f: &model::FlowLogs,
        path: &str,
    ) -> Option<FlowLogConfig> {
        let interval = match &f.aggregation_interval {
            None => Some(DEFAULT_AGGREGATION_INTERVAL),
            Some(Loc {
                value: v @ (60 | 600),
                ..
            }) => u32::try_from(*v).ok(),
            Some(Loc { value, pos }) => {
                let msg = format!("aggregation_interval must be 60 or 600 seconds, got {value}");
                self.err(*pos, format!("{path}.aggregation_interval"), msg);
                None
            }
        };
        let destination = match &f.destination {
            None => Some(FlowLogDestination::Stdout),
            Some(d) => self.flow_log_destination(d, &format!("{path}.destination")),
        };
        let fields = match &f.format {
            None => Some(DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec()),
            Some(fmt) => self.flow_log_format(fmt, &format!("{path}.format")),
        };
        let traffic_type = match &f.traffic_type {
            None => Some(TrafficType::All),
            Some(t) => self.flow_log_traffic_type(t, &format!("{path}.traffic_type")),
        };
        let scope = match &f.scope {
            None => Some(FlowLogScope::default()),
            Some(scope) => self.flow_log_scope(file, scope, &format!("{path}.scope")),
        };
        Some(FlowLogConfig {
            aggregation_interval: interval?,
            destination: destination?,
            fields: fields?,
            traffic_type: traffic_type?,
            scope: scope?,
        })
    }

    fn flow_log_destination(&mut self, d: &Loc<String>, path: &str) -> Option<FlowLogDestination> {
        if d.value == "stdout" {
            return Some(FlowLogDestination::Stdout);
        }
        if let Some(target) = d.value.strip_prefix("ipfix:") {
            return match parse_host_port(target) {
                Some((host, port)) => Some(FlowLogDestination::Ipfix { host, port }),
                None => {
                    let msg = format!("an IPFIX collector is ipfix:HOST:PORT, got '{}'", d.value);
                    self.err(d.pos, path, msg);
                    None
                }
            };
        }
        match d.value.strip_prefix("file:") {
            Some(p) if p.starts_with('/') => Some(FlowLogDestination::File(PathBuf::from(p))),
            Some(p) => {
                let msg = format!("a flow log file must be an absolute path, got '{p}'");
                self.err(d.pos, path, msg);
                None
            }
            None => {
                let msg = format!(
                    "destination must be 'stdout', 'file:/path' or 'ipfix:HOST:PORT', got '{}'",
                    d.value
                );
                self.err(d.pos, path, msg);
                None
            }
        }
    }

    fn flow_log_format(&mut self, f: &Loc<String>, path: &str) -> Option<Vec<String>> {
        if f.value == "default" {
            return Some(DEFAULT_FLOW_LOG_FIELDS.map(str::to_owned).to_vec());
        }
        let mut fields = Vec::new();
        for token in f.value.split_whitespace() {
            let Some(name) = token.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
                let msg = format!(
                    "format must be 'default' or fields such as '${{srcaddr}} ${{dstaddr}}', got '{token}'"
                );
                self.err(f.pos, path, msg);
                return None;
            };
            if !DEFAULT_FLOW_LOG_FIELDS.contains(&name) && !EXTRA_FLOW_LOG_FIELDS.contains(&name) {
                self.err(f.pos, path, format!("unknown flow log field '{token}'"));
                return None;
            }
            fields.push(name.to_owned());
        }
        if fields.is_empty() {
            self.err(f.pos, path, "format must name at least one field");
            return None;
        }
        Some(fields)
    }
}

/// What subnets may refer to.
struct SubnetRefs<'a> {
    vpc: &'a str,
    tables: &'a Names,
    main_table: usize,
    acls: &'a Names,
    default_acl: usize,
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
    subnet_names: &'a Names,
    subnets: &'a [Option<&'a SubnetDef>],
    has_igw: bool,
}

/// Route target names of one VPC.
#[derive(Default)]
struct Targets {
    igw: Option<String>,
    nats: HashMap<String, usize>,
    peerings: HashMap<String, usize>,
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
