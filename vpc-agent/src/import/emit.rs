//! Writes an [`Inventory`] as a VPC definition: names (logical IDs, or `Name` tags for describe
//! output, made unique), router interfaces (`--interfaces`, else placeholders), addresses AWS
//! assigns at launch (`--addresses`, else allocated deterministically), and every rule in the
//! format's terms. What cannot be written goes to the report, with the resource's line.
//!
//! A VPN gateway is written with the static routes of its VPN connections; prefix lists are
//! per VPC in the format, so a list goes into every VPC whose group rules name it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{
    Options, Report, Severity,
    inventory::{
        AclEntry, CidrEntry, Interface, InternetGateway, Inventory, NatAddress, Origin, PublicIp,
        RouteTo, SgPeer, SgRule, VpnGateway,
    },
};
use crate::flowlog::format::{DEFAULT_FLOW_LOG_FIELDS, EXTRA_FLOW_LOG_FIELDS};

/// `e` as an IPv6 network of prefix length `len` without host bits, or why it is not one
/// (to follow the kind of block it is, e.g. "IPv6 block").
fn ipv6_net(e: &CidrEntry, len: u8) -> Result<Ipv6Net, String> {
    match e.cidr.parse::<Ipv6Net>() {
        Ok(net) if net.trunc() == net && net.prefix_len() == len => Ok(net),
        Ok(net) if net.prefix_len() != len => Err(format!("{net} is not a /{len}")),
        Ok(net) => Err(format!(
            "{net} has host bits set (the network is {})",
            net.trunc()
        )),
        Err(_) => Err(format!("'{}' is not an IPv6 CIDR block", e.cidr)),
    }
}

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// Where allocated public addresses come from (documentation ranges, RFC 5737), in order.
const PUBLIC_POOLS: [(Ipv4Addr, Ipv4Addr); 2] = [
    (
        Ipv4Addr::new(198, 51, 100, 10),
        Ipv4Addr::new(198, 51, 100, 254),
    ),
    (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 254)),
];

/// The suffix of an `--addresses` key that gives a public address (`web-1.public=...`).
pub const PUBLIC_SUFFIX: &str = ".public";

/// Writes the definition; `None` if no VPC could be written. `prefer_tags`: name things by
/// their `Name` tag (describe output) rather than their ID (logical IDs of a template).
pub fn emit(
    inv: &Inventory,
    options: &Options,
    report: &mut Report,
    command: &str,
    prefer_tags: bool,
) -> Option<String> {
    let mut e = Emitter {
        inv,
        options,
        report,
        prefer_tags,
        used_interface_keys: BTreeSet::new(),
        used_address_keys: BTreeSet::new(),
        ports: BTreeSet::new(),
        public_used: BTreeSet::new(),
        eips: BTreeMap::new(),
        all_blocks: Vec::new(),
        lists: BTreeMap::new(),
        lists_used: BTreeSet::new(),
        vgws_emitted: BTreeSet::new(),
        vgws_left: BTreeMap::new(),
    };
    let body = e.body()?;
    e.unused_keys();
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `{command}` from {}.", e.report.source);
    let _ = writeln!(
        out,
        "# Import report: {} not imported, {} assumed, {} ignored.",
        e.report.count(Severity::NotImported),
        e.report.count(Severity::Assumed),
        e.report.count(Severity::Ignored)
    );
    for line in e.report.lines() {
        if !line.contains(": ignored: ") {
            let _ = writeln!(out, "#   {line}");
        }
    }
    out.push_str(&body);
    Some(out)
}

struct Emitter<'a> {
    inv: &'a Inventory,
    options: &'a Options,
    report: &'a mut Report,
    prefer_tags: bool,
    used_interface_keys: BTreeSet<String>,
    used_address_keys: BTreeSet<String>,
    /// Router interface names handed out.
    ports: BTreeSet<String>,
    /// Public addresses given or allocated.
    public_used: BTreeSet<Ipv4Addr>,
    /// Elastic IP ID -> its address (given or allocated).
    eips: BTreeMap<String, String>,
    /// Every VPC's IPv4 blocks (a VPN's networks may overlap none).
    all_blocks: Vec<Ipv4Net>,
    /// Prefix lists that can be written, by ID: their CIDRs.
    lists: BTreeMap<String, Vec<Ipv4Net>>,
    /// Prefix lists written into at least one VPC.
    lists_used: BTreeSet<String>,
    /// VPN gateways written.
    vgws_emitted: BTreeSet<String>,
    /// VPN gateways left out, by ID: why.
    vgws_left: BTreeMap<String, String>,
}

/// What a router interface is for: its placeholder follows.
#[derive(Clone, Copy)]
enum PortKind {
    /// A subnet's segment: named after the subnet.
    Subnet,
    /// An internet gateway's uplink: `uplinkN`.
    Uplink,
    /// A VPN gateway's link: `vpnN`.
    Vpn,
}

/// Unique names within one scope.
#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    fn reserved(words: &[&str]) -> Self {
        Self(words.iter().map(|w| (*w).to_owned()).collect())
    }

    fn take(&mut self, base: &str) -> String {
        if self.0.insert(base.to_owned()) {
            return base.to_owned();
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|c| self.0.insert(c.clone()))
            .unwrap_or_default()
    }
}

/// A name made of the characters names usually have (`Public Subnet (AZ1)` ->
/// `Public-Subnet-AZ1`).
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// A YAML scalar: plain when unambiguous, else double-quoted.
fn q(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !s.ends_with(':')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn where_(o: &Origin) -> String {
    if o.line > 0 {
        format!("{} {} (line {})", o.kind, o.id, o.line)
    } else {
        format!("{} {}", o.kind, o.id)
    }
}

/// The VPC's VPN gateway: its ID, name and the static routes of its connections.
struct VpnScope {
    id: String,
    name: String,
    routes: Vec<Ipv4Net>,
}

/// One VPC's resolved names.
struct Scope {
    name: String,
    blocks: Vec<Ipv4Net>,
    /// The VPC's IPv6 /56, if it has one.
    ipv6_block: Option<Ipv6Net>,
    subnets: BTreeMap<String, String>,
    subnet_cidrs: BTreeMap<String, Ipv4Net>,
    /// Subnets' IPv6 /64s (inside `ipv6_block`).
    subnet_ipv6: BTreeMap<String, Ipv6Net>,
    tables: BTreeMap<String, String>,
    acls: BTreeMap<String, String>,
    groups: BTreeMap<String, String>,
    igw: Option<(String, String)>,
    /// The egress-only internet gateway: (ID, name).
    eigw: Option<(String, String)>,
    vgw: Option<VpnScope>,
    /// Prefix lists the VPC's group rules name: (ID, name), in order of first use.
    prefix_lists: Vec<(String, String)>,
    nats: BTreeMap<String, String>,
    peerings: BTreeMap<String, String>,
    /// The peering connections (by ID) whose other VPC has no IPv6 block: they carry IPv4
    /// only.
    ipv4_only_peerings: BTreeSet<String>,
    /// Groups of the VPCs peered with this one (by an imported connection), by ID:
    /// `VPC/NAME`, referenced as `sg:VPC/NAME`.
    peer_groups: BTreeMap<String, String>,
}

impl Emitter<'_> {
    fn base(&self, o: &Origin) -> String {
        let tag = o.name_tag.as_deref().map(slug).filter(|s| !s.is_empty());
        let id = slug(&o.id);
        if self.prefer_tags {
            tag.unwrap_or(id)
        } else {
            id
        }
    }

    fn note(&mut self, o: &Origin, severity: Severity, msg: impl Into<String>) {
        self.report.add(o, 0, severity, msg);
    }

    fn lookup(&mut self, interfaces: bool, keys: &[&str]) -> Option<String> {
        let map = if interfaces {
            &self.options.interfaces
        } else {
            &self.options.addresses
        };
        let (key, value) = keys
            .iter()
            .find_map(|k| map.entries.get(*k).map(|v| ((*k).to_owned(), v.clone())))?;
        if interfaces {
            self.used_interface_keys.insert(key);
        } else {
            self.used_address_keys.insert(key);
        }
        Some(value)
    }

    /// The router port for a subnet, an internet gateway's uplink or a VPN gateway's link:
    /// from `--interfaces` (by ID, `Name` tag or name), else a placeholder that the report
    /// names. (Instances with their own port will be one more caller.)
    fn port(&mut self, o: &Origin, name: &str, kind: PortKind) -> String {
        let mut keys = vec![o.id.as_str(), name];
        keys.extend(o.name_tag.as_deref());
        if let Some(given) = self.lookup(true, &keys) {
            self.ports.insert(given.clone());
            return given;
        }
        let numbered = match kind {
            PortKind::Uplink => Some("uplink"),
            PortKind::Vpn => Some("vpn"),
            PortKind::Subnet => None,
        };
        let placeholder = if let Some(stem) = numbered {
            (0..)
                .map(|n| format!("{stem}{n}"))
                .find(|p| !self.ports.contains(p))
                .unwrap_or_default()
        } else {
            let stem: String = slug(name)
                .to_ascii_lowercase()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(IFNAME_MAX)
                .collect();
            let stem = if stem.is_empty() {
                "subnet".to_owned()
            } else {
                stem
            };
            let mut p = stem.clone();
            let mut n = 1;
            while self.ports.contains(&p) {
                let suffix = n.to_string();
                let keep = IFNAME_MAX - suffix.len();
                p = format!("{}{suffix}", stem.chars().take(keep).collect::<String>());
                n += 1;
            }
            p
        };
        self.ports.insert(placeholder.clone());
        let msg = format!(
            "router interface '{placeholder}' is a placeholder: give the real one with --interfaces {}=IFNAME",
            o.id
        );
        self.note(o, Severity::Assumed, msg);
        placeholder
    }

    fn unused_keys(&mut self) {
        let option = |name: &str| Origin {
            id: name.to_owned(),
            kind: "command line".to_owned(),
            line: 0,
            name_tag: None,
            file: None,
        };
        let unused: Vec<(String, String)> = self
            .options
            .interfaces
            .entries
            .keys()
            .filter(|k| !self.used_interface_keys.contains(*k))
            .map(|k| ("--interfaces".to_owned(), k.clone()))
            .chain(
                self.options
                    .addresses
                    .entries
                    .keys()
                    .filter(|k| !self.used_address_keys.contains(*k))
                    .map(|k| ("--addresses".to_owned(), k.clone())),
            )
            .collect();
        for (opt, key) in unused {
            let msg = format!("'{key}' matches no resource that needs it");
            self.note(&option(&opt), Severity::NotImported, msg);
        }
    }

    fn body(&mut self) -> Option<String> {
        let inv = self.inv;
        let mut out = String::from("vpcs:\n");
        let mut vpc_names = Names::default();
        let mut targets = Names::reserved(&["local", "blackhole"]);
        // Peering connections: named once, declared in both VPCs.
        let vpc_ids: BTreeSet<&str> = inv.vpcs.iter().map(|v| v.origin.id.as_str()).collect();
        let mut peering_names: BTreeMap<String, String> = BTreeMap::new();
        for p in &inv.peerings {
            if let Some(peer) = &p.peer_vpc
                && vpc_ids.contains(p.vpc.as_str())
                && vpc_ids.contains(peer.as_str())
            {
                let name = targets.take(&self.base(&p.origin));
                peering_names.insert(p.origin.id.clone(), name);
            }
        }
        self.all_blocks = inv
            .vpcs
            .iter()
            .flat_map(|v| &v.cidr_blocks)
            .filter_map(|b| b.parse().ok())
            .collect();
        self.prefix_lists_usable();
        let mut vpc_name_of: BTreeMap<&str, String> = BTreeMap::new();
        for v in &inv.vpcs {
            vpc_name_of.insert(&v.origin.id, vpc_names.take(&self.base(&v.origin)));
        }
        // Every VPC's groups by ID as `VPC/NAME`, for references across a peering connection.
        let group_home: BTreeMap<String, (&str, String)> = inv
            .vpcs
            .iter()
            .flat_map(|v| {
                let (id, vname) = (v.origin.id.as_str(), &vpc_name_of[v.origin.id.as_str()]);
                self.group_names(id)
                    .into_iter()
                    .map(move |(g, n)| (g, (id, format!("{vname}/{n}"))))
            })
            .collect();
        let mut any = false;
        for vpc in &inv.vpcs {
            let name = vpc_name_of[vpc.origin.id.as_str()].clone();
            let mut blocks = Vec::new();
            for b in &vpc.cidr_blocks {
                match b.parse::<Ipv4Net>() {
                    Ok(n) => blocks.push(n),
                    Err(_) => {
                        let msg = format!("CIDR block '{b}' is not IPv4: not imported");
                        self.note(&vpc.origin, Severity::NotImported, msg);
                    }
                }
            }
            if blocks.is_empty() {
                let msg = "the VPC has no IPv4 CIDR block: left out";
                self.note(&vpc.origin, Severity::NotImported, msg);
                continue;
            }
            any = true;
            let mut scope = self.scope(vpc, name, blocks, &mut targets, &peering_names);
            let peered: BTreeSet<&str> = inv
                .peerings
                .iter()
                .filter(|p| peering_names.contains_key(&p.origin.id))
                .filter_map(|p| match p.peer_vpc.as_deref()? {
                    peer if p.vpc == vpc.origin.id => Some(peer),
                    peer if peer == vpc.origin.id => Some(p.vpc.as_str()),
                    _ => None,
                })
                .collect();
            scope.peer_groups = group_home
                .iter()
                .filter(|(_, (home, _))| peered.contains(home))
                .map(|(g, (_, name))| (g.clone(), name.clone()))
                .collect();
            let peers: Vec<(String, String)> = inv
                .peerings
                .iter()
                .filter_map(|p| {
                    let pname = peering_names.get(&p.origin.id)?;
                    let peer = p.peer_vpc.as_deref()?;
                    if p.vpc == vpc.origin.id {
                        Some((pname.clone(), vpc_name_of.get(peer)?.clone()))
                    } else if peer == vpc.origin.id {
                        Some((pname.clone(), vpc_name_of.get(p.vpc.as_str())?.clone()))
                    } else {
                        None
                    }
                })
                .collect();
            self.vpc(&mut out, vpc, &scope, &peers);
        }
        self.left_out_vpn_and_lists();
        if !any {
            return None;
        }
        self.flow_logs(&mut out);
        Some(out)
    }

    /// The format's names of VPC `id`'s security groups, by group ID.
    fn group_names(&self, id: &str) -> BTreeMap<String, String> {
        let mut group_names = Names::reserved(&["default"]);
        let mut groups: BTreeMap<String, String> = self
            .inv
            .security_groups
            .iter()
            .filter(|g| g.vpc == id)
            .map(|g| {
                let n = if g.group_name.as_deref() == Some("default") {
                    "default".to_owned()
                } else {
                    group_names.take(&self.base(&g.origin))
                };
                (g.origin.id.clone(), n)
            })
            .collect();
        groups.insert(format!("{id}.DefaultSecurityGroup"), "default".to_owned());
        groups
    }

    fn scope(
        &mut self,
        vpc: &super::inventory::Vpc,
        name: String,
        blocks: Vec<Ipv4Net>,
        targets: &mut Names,
        peering_names: &BTreeMap<String, String>,
    ) -> Scope {
        let inv = self.inv;
        let id = vpc.origin.id.as_str();
        let mut subnet_names = Names::default();
        let mut subnets = BTreeMap::new();
        let mut subnet_cidrs = BTreeMap::new();
        for s in inv.subnets.iter().filter(|s| s.vpc == id) {
            match s.cidr.parse::<Ipv4Net>() {
                Ok(net) => {
                    subnets.insert(
                        s.origin.id.clone(),
                        subnet_names.take(&self.base(&s.origin)),
                    );
                    subnet_cidrs.insert(s.origin.id.clone(), net);
                }
                Err(_) => {
                    let msg = format!(
                        "CIDR block '{}' is not IPv4: the subnet is left out",
                        s.cidr
                    );
                    self.note(&s.origin, Severity::NotImported, msg);
                }
            }
        }
        let mut table_names = Names::reserved(&["main"]);
        let tables = inv
            .route_tables
            .iter()
            .filter(|t| t.vpc == id)
            .map(|t| {
                let n = if t.main {
                    "main".to_owned()
                } else {
                    table_names.take(&self.base(&t.origin))
                };
                (t.origin.id.clone(), n)
            })
            .collect();
        let mut acl_names = Names::reserved(&["default"]);
        let acls = inv
            .network_acls
            .iter()
            .filter(|a| a.vpc == id)
            .map(|a| {
                let n = if a.default {
                    "default".to_owned()
                } else {
                    acl_names.take(&self.base(&a.origin))
                };
                (a.origin.id.clone(), n)
            })
            .collect();
        let groups = self.group_names(id);
        let igw = self.attached_gateway(
            &inv.internet_gateways,
            id,
            &name,
            "internet gateway",
            targets,
        );
        let eigw = self.attached_gateway(
            &inv.egress_only_gateways,
            id,
            &name,
            "egress-only internet gateway",
            targets,
        );
        let ipv6_block = self.vpc_ipv6_block(vpc);
        let mut subnet_ipv6 = BTreeMap::new();
        for sub in inv
            .subnets
            .iter()
            .filter(|x| subnets.contains_key(&x.origin.id))
        {
            let Some(e) = &sub.ipv6_cidr else { continue };
            let Some(net) = self.ipv6_cidr(e, "IPv6 block", 64) else {
                continue;
            };
            match ipv6_block {
                Some(block) if block.contains(&net) => {
                    subnet_ipv6.insert(sub.origin.id.clone(), net);
                }
                Some(_) => {
                    let msg = format!(
                        "IPv6 block {net} is not inside VPC {name}'s IPv6 block: not imported"
                    );
                    self.note(&e.origin, Severity::NotImported, msg);
                }
                None => {
                    let msg = format!(
                        "IPv6 block {net}: VPC {name} has no IPv6 block (give it its /56 as ipv6_cidr_block): not imported"
                    );
                    self.note(&e.origin, Severity::NotImported, msg);
                }
            }
        }
        let vgw = self.vpn_scope(id, &name, targets);
        let prefix_lists = self.prefix_list_names(id);
        let mut nats = BTreeMap::new();
        for n in inv
            .nat_gateways
            .iter()
            .filter(|n| subnets.contains_key(&n.subnet))
        {
            if igw.is_none() {
                let msg = format!(
                    "VPC {name} has no internet gateway for the NAT gateway's elastic IP: left out"
                );
                self.note(&n.origin, Severity::NotImported, msg);
                continue;
            }
            nats.insert(n.origin.id.clone(), targets.take(&self.base(&n.origin)));
        }
        let peerings = inv
            .peerings
            .iter()
            .filter(|p| p.vpc == id || p.peer_vpc.as_deref() == Some(id))
            .filter_map(|p| {
                Some((
                    p.origin.id.clone(),
                    peering_names.get(&p.origin.id)?.clone(),
                ))
            })
            .collect();
        let ipv4_only_peerings = inv
            .peerings
            .iter()
            .filter(|p| {
                let other = match p.peer_vpc.as_deref() {
                    Some(peer) if p.vpc == id => peer,
                    Some(peer) if peer == id => p.vpc.as_str(),
                    _ => return false,
                };
                let other = inv.vpcs.iter().find(|v| v.origin.id == other);
                !other.is_some_and(|v| v.ipv6_blocks.iter().any(|e| ipv6_net(e, 56).is_ok()))
            })
            .map(|p| p.origin.id.clone())
            .collect();
        Scope {
            name,
            blocks,
            ipv6_block,
            subnets,
            subnet_cidrs,
            subnet_ipv6,
            tables,
            acls,
            groups,
            igw,
            eigw,
            vgw,
            prefix_lists,
            nats,
            peerings,
            ipv4_only_peerings,
            peer_groups: BTreeMap::new(),
        }
    }

    /// The (egress-only) internet gateway attached to VPC `id`, named: (ID, name); a second
    /// one is reported.
    fn attached_gateway(
        &mut self,
        gateways: &[InternetGateway],
        id: &str,
        vpc_name: &str,
        what: &str,
        targets: &mut Names,
    ) -> Option<(String, String)> {
        let attached: Vec<_> = gateways
            .iter()
            .filter(|g| g.vpcs.iter().any(|v| v == id))
            .collect();
        for extra in attached.iter().skip(1) {
            let msg = format!(
                "a VPC has one {what}: {} already is VPC {vpc_name}'s",
                attached[0].origin.id
            );
            self.note(&extra.origin, Severity::NotImported, msg);
        }
        attached
            .first()
            .map(|g| (g.origin.id.clone(), targets.take(&self.base(&g.origin))))
    }

    /// The VPC's IPv6 /56 (the format takes one; the others are reported).
    fn vpc_ipv6_block(&mut self, vpc: &super::inventory::Vpc) -> Option<Ipv6Net> {
        let mut block = None;
        for e in &vpc.ipv6_blocks {
            let Some(net) = self.ipv6_cidr(e, "IPv6 block", 56) else {
                continue;
            };
            if let Some(first) = block {
                let msg = format!(
                    "a VPC has one IPv6 block: {first} already is its block, {net} is not imported"
                );
                self.note(&e.origin, Severity::NotImported, msg);
            } else {
                block = Some(net);
            }
        }
        block
    }

    /// An IPv6 network of prefix length `len` (no host bits) or, reported as `what` that is
    /// not imported, `None`.
    fn ipv6_cidr(&mut self, e: &CidrEntry, what: &str, len: u8) -> Option<Ipv6Net> {
        let why = match ipv6_net(e, len) {
            Ok(net) => return Some(net),
            Err(why) => why,
        };
        self.note(
            &e.origin,
            Severity::NotImported,
            format!("{what} {why}: not imported"),
        );
        None
    }

    /// The VPC's VPN gateway, if it has one with static routes (the others are left out, why
    /// is kept for [`Self::left_out_vpn_and_lists`]).
    fn vpn_scope(&mut self, vpc: &str, name: &str, targets: &mut Names) -> Option<VpnScope> {
        let inv = self.inv;
        let attached: Vec<&VpnGateway> = inv
            .vpn_gateways
            .iter()
            .filter(|g| g.vpcs.iter().any(|v| v == vpc))
            .collect();
        let first = attached.first()?;
        for extra in attached.iter().skip(1) {
            let why = format!(
                "a VPC has one VPN gateway: {} already is VPC {name}'s",
                first.origin.id
            );
            self.vgws_left.insert(extra.origin.id.clone(), why);
        }
        let routes = self.vpn_routes(&first.origin.id);
        if routes.is_empty() {
            let why = "no VPN connection gives it a static route (the format's VPN gateway needs the customer network's prefixes): left out";
            self.vgws_left
                .insert(first.origin.id.clone(), why.to_owned());
            return None;
        }
        self.vgws_emitted.insert(first.origin.id.clone());
        Some(VpnScope {
            id: first.origin.id.clone(),
            name: targets.take(&self.base(&first.origin)),
            routes,
        })
    }

    /// The static routes of gateway `id`'s VPN connections, each once; BGP connections, and
    /// routes that cannot be the customer network's, are reported.
    fn vpn_routes(&mut self, id: &str) -> Vec<Ipv4Net> {
        let mut routes: Vec<Ipv4Net> = Vec::new();
        for c in self
            .inv
            .vpn_connections
            .iter()
            .filter(|c| c.gateway.as_deref() == Some(id))
        {
            if !c.static_only {
                let msg = "dynamic routing (BGP): the prefixes the customer gateway advertises are not part of the format, only static routes are imported (write them into vpn_gateway.routes)";
                self.note(&c.origin, Severity::NotImported, msg);
            }
            for r in &c.routes {
                let Some(net) = self.ipv4_cidr(r, "static route") else {
                    continue;
                };
                if let Some(block) = self
                    .all_blocks
                    .iter()
                    .find(|b| b.contains(&net.network()) || net.contains(&b.network()))
                {
                    let msg = format!(
                        "static route {net} overlaps the VPC block {block}: a VPN's networks may overlap no VPC, not imported"
                    );
                    self.note(&r.origin, Severity::NotImported, msg);
                    continue;
                }
                if !routes.contains(&net) {
                    routes.push(net);
                }
            }
        }
        routes
    }

    /// An IPv4 network (no host bits) or, reported as `what` that is not imported, `None`.
    fn ipv4_cidr(&mut self, e: &CidrEntry, what: &str) -> Option<Ipv4Net> {
        match e.cidr.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                let msg = format!(
                    "{what} {net} has host bits set (the network is {}): not imported",
                    net.trunc()
                );
                self.note(&e.origin, Severity::NotImported, msg);
                None
            }
            Err(_) => {
                let msg = format!(
                    "{what} '{}' is not an IPv4 CIDR block (IPv6 VPN routes and prefix list entries are not imported yet): not imported",
                    e.cidr
                );
                self.note(&e.origin, Severity::NotImported, msg);
                None
            }
        }
    }

    /// The prefix lists that can be written (IPv4, entries in the input), by ID; the others
    /// are reported once here, and rules naming them where they are.
    fn prefix_lists_usable(&mut self) {
        for l in &self.inv.prefix_lists {
            let o = &l.origin;
            if l.family != "IPv4" {
                let msg = format!(
                    "AddressFamily {}: IPv6 prefix lists are not part of the format yet, rules naming it are not imported",
                    l.family
                );
                self.note(o, Severity::NotImported, msg);
                continue;
            }
            let Some(entries) = &l.cidrs else {
                let whose = if l.aws_managed {
                    "an AWS-managed list: "
                } else {
                    ""
                };
                let msg = format!(
                    "{whose}its entries are not in the input (save `aws ec2 get-managed-prefix-list-entries --prefix-list-id {}` as {}.json): rules naming it are not imported",
                    o.id, o.id
                );
                self.note(o, Severity::NotImported, msg);
                continue;
            };
            let mut cidrs: Vec<Ipv4Net> = Vec::new();
            for e in entries {
                if let Some(net) = self.ipv4_cidr(e, "entry")
                    && !cidrs.contains(&net)
                {
                    cidrs.push(net);
                }
            }
            if cidrs.is_empty() {
                let msg = "the list has no IPv4 entry: rules naming it are not imported";
                self.note(o, Severity::NotImported, msg);
                continue;
            }
            if l.aws_managed {
                let msg = "an AWS-managed list: its entries as of this output (AWS changes them; import again to follow)";
                self.note(o, Severity::Assumed, msg);
            }
            self.lists.insert(o.id.clone(), cidrs);
        }
    }

    /// The prefix lists VPC `id`'s group rules name (and that can be written): (ID, name).
    fn prefix_list_names(&mut self, id: &str) -> Vec<(String, String)> {
        let inv = self.inv;
        let mut names = Names::default();
        let mut out: Vec<(String, String)> = Vec::new();
        let rules = inv
            .security_groups
            .iter()
            .filter(|g| g.vpc == id)
            .flat_map(|g| g.inbound.iter().chain(g.outbound.iter().flatten()));
        for r in rules {
            let SgPeer::PrefixList(list) = &r.peer else {
                continue;
            };
            if !self.lists.contains_key(list) || out.iter().any(|(l, _)| l == list) {
                continue;
            }
            let Some(l) = inv.prefix_lists.iter().find(|l| &l.origin.id == list) else {
                continue;
            };
            self.lists_used.insert(list.clone());
            out.push((list.clone(), names.take(&self.base(&l.origin))));
        }
        out
    }

    /// Reports the VPN gateways and connections not written, and prefix lists no VPC uses.
    fn left_out_vpn_and_lists(&mut self) {
        let inv = self.inv;
        for g in &inv.vpn_gateways {
            if self.vgws_emitted.contains(&g.origin.id) {
                continue;
            }
            let why = self
                .vgws_left
                .remove(&g.origin.id)
                .unwrap_or_else(|| "it is attached to no imported VPC: left out".to_owned());
            self.note(&g.origin, Severity::NotImported, why);
        }
        for c in &inv.vpn_connections {
            let Some(g) = &c.gateway else { continue };
            if self.vgws_emitted.contains(g) {
                continue;
            }
            let msg = if inv.vpn_gateways.iter().any(|x| &x.origin.id == g) {
                format!("its VPN gateway {g} is not imported: the connection is not imported")
            } else {
                format!("VpnGatewayId {g} is no VPN gateway of the input: not imported")
            };
            self.note(&c.origin, Severity::NotImported, msg);
        }
        for l in &inv.prefix_lists {
            if self.lists.contains_key(&l.origin.id) && !self.lists_used.contains(&l.origin.id) {
                let msg = "no imported security group rule names it: not written (a VPC's prefix lists are those its rules use)";
                self.note(&l.origin, Severity::Ignored, msg);
            }
        }
    }

    fn vpc(
        &mut self,
        out: &mut String,
        vpc: &super::inventory::Vpc,
        s: &Scope,
        peers: &[(String, String)],
    ) {
        let inv = self.inv;
        let _ = writeln!(out, "  - name: {}   # {}", q(&s.name), where_(&vpc.origin));
        let blocks: Vec<String> = s.blocks.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "    cidr_blocks: [{}]", blocks.join(", "));
        if let Some(block) = s.ipv6_block {
            let _ = writeln!(out, "    ipv6_cidr_block: {}", q(&block.to_string()));
        }
        for (key, gateways, gateway) in [
            ("internet_gateway", &inv.internet_gateways, &s.igw),
            (
                "egress_only_internet_gateway",
                &inv.egress_only_gateways,
                &s.eigw,
            ),
        ] {
            let Some((id, gw_name)) = gateway else {
                continue;
            };
            if let Some(g) = gateways.iter().find(|g| &g.origin.id == id) {
                let port = self.port(&g.origin, gw_name, PortKind::Uplink);
                let _ = writeln!(out, "    {key}:   # {}", where_(&g.origin));
                let _ = writeln!(out, "      name: {}", q(gw_name));
                let _ = writeln!(out, "      interface: {}", q(&port));
            }
        }
        if let Some(vgw) = &s.vgw
            && let Some(g) = inv.vpn_gateways.iter().find(|g| g.origin.id == vgw.id)
        {
            let port = self.port(&g.origin, &vgw.name, PortKind::Vpn);
            let routes: Vec<String> = vgw.routes.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "    vpn_gateway:   # {}", where_(&g.origin));
            let _ = writeln!(out, "      name: {}", q(&vgw.name));
            let _ = writeln!(out, "      interface: {}", q(&port));
            let _ = writeln!(out, "      routes: [{}]", routes.join(", "));
        }
        // Addresses: what is given first, then allocation in what is left.
        let mut private_used: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        let nat_list: Vec<_> = inv
            .nat_gateways
            .iter()
            .filter(|n| s.nats.contains_key(&n.origin.id))
            .collect();
        let iface_list: Vec<&Interface> = inv
            .interfaces
            .iter()
            .filter(|i| s.subnets.contains_key(&i.subnet))
            .collect();
        for i in inv
            .interfaces
            .iter()
            .filter(|i| !s.subnets.contains_key(&i.subnet))
        {
            if inv
                .subnets
                .iter()
                .any(|sub| sub.origin.id == i.subnet && sub.vpc == vpc.origin.id)
            {
                let msg = format!("its subnet {} was left out: not imported", i.subnet);
                self.note(&i.origin, Severity::NotImported, msg);
            }
        }
        let mut nat_private: Vec<Option<String>> = Vec::new();
        for n in &nat_list {
            let name = &s.nats[&n.origin.id];
            let mut keys = vec![n.origin.id.as_str(), name.as_str()];
            keys.extend(n.origin.name_tag.as_deref());
            let given = self.lookup(false, &keys).or_else(|| n.private_ip.clone());
            record(&mut private_used, &n.subnet, given.as_deref());
            nat_private.push(given);
        }
        let mut iface_private: Vec<Option<String>> = Vec::new();
        let iface_names = self.interface_names(&iface_list);
        for (i, name) in iface_list.iter().zip(&iface_names) {
            let keys = interface_keys(i, name);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let given = self.lookup(false, &keys).or_else(|| i.private_ip.clone());
            record(&mut private_used, &i.subnet, given.as_deref());
            iface_private.push(given);
        }
        let mut alloc = |me: &mut Self,
                         o: &Origin,
                         subnet: &str,
                         given: Option<String>|
         -> Option<String> {
            if given.is_some() {
                return given;
            }
            let net = s.subnet_cidrs.get(subnet)?;
            let used = private_used.entry(subnet.to_owned()).or_default();
            let first = u32::from(net.network()) + 4;
            let last = u32::from(net.broadcast()).saturating_sub(1);
            let ip = (first..=last)
                .map(Ipv4Addr::from)
                .find(|ip| !used.contains(ip));
            match ip {
                Some(ip) => {
                    used.insert(ip);
                    let msg = format!(
                        "private address {ip} allocated (AWS assigns it at launch; give it with --addresses {}=IP)",
                        o.id
                    );
                    me.note(o, Severity::Assumed, msg);
                    Some(ip.to_string())
                }
                None => {
                    me.note(
                        o,
                        Severity::NotImported,
                        format!("subnet {net} has no free address left: not imported"),
                    );
                    None
                }
            }
        };
        let nat_private: Vec<Option<String>> = nat_list
            .iter()
            .zip(nat_private)
            .map(|(n, g)| alloc(self, &n.origin, &n.subnet, g))
            .collect();
        let iface_private: Vec<Option<String>> = iface_list
            .iter()
            .zip(iface_private)
            .map(|(i, g)| alloc(self, &i.origin, &i.subnet, g))
            .collect();
        // NAT gateways.
        let mut nat_lines = Vec::new();
        for (n, private) in nat_list.iter().zip(nat_private) {
            let name = s.nats[&n.origin.id].clone();
            let Some(private) = private else { continue };
            let elastic = match &n.elastic_ip {
                NatAddress::Address(a) => Some(a.clone()),
                NatAddress::Allocation(eip) => {
                    match inv.elastic_ips.iter().find(|e| &e.origin.id == eip) {
                        Some(e) => self.elastic_address(e),
                        None => {
                            let msg = format!("AllocationId {eip} is no elastic IP of the input");
                            self.note(&n.origin, Severity::NotImported, msg);
                            None
                        }
                    }
                }
                NatAddress::Unknown => None,
            };
            let elastic = elastic.or_else(|| {
                let key = format!("{}{PUBLIC_SUFFIX}", n.origin.id);
                let alt = format!("{name}{PUBLIC_SUFFIX}");
                self.lookup(false, &[&key, &alt])
            });
            let elastic = match elastic {
                Some(e) => e,
                None => match self
                    .allocate_public(&n.origin, &format!("{}{PUBLIC_SUFFIX}", n.origin.id))
                {
                    Some(ip) => ip.to_string(),
                    None => continue,
                },
            };
            nat_lines.push(format!(
                "      - name: {}   # {}",
                q(&name),
                where_(&n.origin)
            ));
            nat_lines.push(format!("        subnet: {}", q(&s.subnets[&n.subnet])));
            nat_lines.push(format!("        private_ip: {}", q(&private)));
            nat_lines.push(format!("        elastic_ip: {}", q(&elastic)));
        }
        if !nat_lines.is_empty() {
            out.push_str("    nat_gateways:\n");
            for l in nat_lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        self.subnets(out, vpc, s);
        self.route_tables(out, vpc, s);
        self.network_acls(out, vpc, s);
        self.security_groups(out, vpc, s);
        self.prefix_lists(out, s);
        // Instances (network interfaces).
        let mut wrote_header = false;
        for ((i, name), private) in iface_list.iter().zip(&iface_names).zip(iface_private) {
            let Some(private) = private else { continue };
            if !wrote_header {
                out.push_str("    instances:\n");
                wrote_header = true;
            }
            let _ = writeln!(out, "      - name: {}   # {}", q(name), where_(&i.origin));
            let _ = writeln!(out, "        subnet: {}", q(&s.subnets[&i.subnet]));
            let _ = writeln!(out, "        private_ip: {}", q(&private));
            if let Some(public) = self.public_ip(i, name) {
                if s.igw.is_some() {
                    let _ = writeln!(out, "        public_ip: {}", q(&public));
                } else {
                    let msg = format!(
                        "public IP {public} dropped: VPC {} has no internet gateway to map it",
                        s.name
                    );
                    self.note(&i.origin, Severity::NotImported, msg);
                }
            }
            self.ipv6_addresses(out, i, s);
            let mut groups: Vec<String> = Vec::new();
            for g in &i.groups {
                match s.groups.get(g) {
                    Some(n) if !groups.contains(n) => groups.push(n.clone()),
                    Some(_) => {}
                    None => {
                        let msg =
                            format!("security group {g} is not in VPC {}: not applied", s.name);
                        self.note(&i.origin, Severity::NotImported, msg);
                    }
                }
            }
            if !groups.is_empty() {
                let list: Vec<String> = groups.iter().map(|g| q(g)).collect();
                let _ = writeln!(out, "        security_groups: [{}]", list.join(", "));
            } else if !i.groups.is_empty() {
                let msg =
                    "none of its security groups could be applied: it gets the VPC's default group";
                self.note(&i.origin, Severity::NotImported, msg);
            }
        }
        if !peers.is_empty() {
            out.push_str("    peering_connections:\n");
            for (name, peer) in peers {
                let _ = writeln!(
                    out,
                    "      - {{ name: {}, peer_vpc: {} }}",
                    q(name),
                    q(peer)
                );
            }
        }
    }

    /// `ipv6_addresses: [...]`: the instance's addresses inside its subnet's IPv6 block.
    fn ipv6_addresses(&mut self, out: &mut String, i: &Interface, s: &Scope) {
        let mut list = Vec::new();
        for a in &i.ipv6_addresses {
            let why = match (a.parse::<Ipv6Addr>(), s.subnet_ipv6.get(&i.subnet)) {
                (Ok(ip), Some(net)) if net.contains(&ip) => {
                    list.push(q(&ip.to_string()));
                    continue;
                }
                (Ok(_), Some(net)) => format!("is not in its subnet's IPv6 block {net}"),
                (Ok(_), None) => "its subnet has no IPv6 block".to_owned(),
                (Err(_), _) => "is not an IPv6 address".to_owned(),
            };
            let msg = format!("IPv6 address {a} {why}: not imported");
            self.note(&i.origin, Severity::NotImported, msg);
        }
        if !list.is_empty() {
            let _ = writeln!(out, "        ipv6_addresses: [{}]", list.join(", "));
        }
    }

    /// Instance names: the instance's, `NAME-ethN` for its further interfaces.
    fn interface_names(&self, list: &[&Interface]) -> Vec<String> {
        let mut names = Names::default();
        list.iter()
            .map(|i| {
                let base = if i.primary || i.eni.is_some() {
                    self.base(&i.origin)
                } else {
                    let owner = self
                        .inv
                        .interfaces
                        .iter()
                        .find(|p| p.primary && p.instance == i.instance)
                        .map_or_else(|| slug(&i.instance), |p| self.base(&p.origin));
                    format!("{owner}-eth")
                };
                names.take(&base)
            })
            .collect()
    }

    /// An elastic IP's address: given, or allocated once.
    fn elastic_address(&mut self, e: &super::inventory::ElasticIp) -> Option<String> {
        if let Some(known) = self.eips.get(&e.origin.id) {
            return Some(known.clone());
        }
        let mut keys = vec![e.origin.id.as_str()];
        keys.extend(e.origin.name_tag.as_deref());
        let address = self
            .lookup(false, &keys)
            .or_else(|| e.address.clone())
            .or_else(|| {
                self.allocate_public(&e.origin, &e.origin.id)
                    .map(|a| a.to_string())
            })?;
        self.eips.insert(e.origin.id.clone(), address.clone());
        Some(address)
    }

    /// The public address of an interface: an associated elastic IP, else the one AWS gives
    /// at launch (given, or allocated).
    fn public_ip(&mut self, i: &Interface, name: &str) -> Option<String> {
        let eip = self.inv.elastic_ips.iter().find(|e| {
            e.associated
                .as_deref()
                .is_some_and(|a| i.eni.as_deref() == Some(a) || (i.primary && a == i.instance))
        });
        if let Some(e) = eip {
            return self.elastic_address(e);
        }
        let key = format!("{}{PUBLIC_SUFFIX}", i.origin.id);
        let alt = format!("{name}{PUBLIC_SUFFIX}");
        match &i.public_ip {
            PublicIp::None => self.lookup(false, &[&key, &alt]),
            PublicIp::Address(a) => Some(a.clone()),
            PublicIp::Launch => self
                .lookup(false, &[&key, &alt])
                .or_else(|| self.allocate_public(&i.origin, &key).map(|a| a.to_string())),
        }
    }

    fn allocate_public(&mut self, o: &Origin, key: &str) -> Option<Ipv4Addr> {
        let given: BTreeSet<Ipv4Addr> = self
            .options
            .addresses
            .entries
            .values()
            .filter_map(|v| v.parse().ok())
            .chain(
                self.inv
                    .elastic_ips
                    .iter()
                    .filter_map(|e| e.address.as_deref()?.parse().ok()),
            )
            .chain(
                self.inv
                    .interfaces
                    .iter()
                    .filter_map(|i| match &i.public_ip {
                        PublicIp::Address(a) => a.parse().ok(),
                        _ => None,
                    }),
            )
            .collect();
        let ip = PUBLIC_POOLS.iter().find_map(|(a, b)| {
            (u32::from(*a)..=u32::from(*b))
                .map(Ipv4Addr::from)
                .find(|ip| !given.contains(ip) && !self.public_used.contains(ip))
        });
        match ip {
            Some(ip) => {
                self.public_used.insert(ip);
                let msg = format!(
                    "public address {ip} allocated (AWS assigns it; give it with --addresses {key}=IP)"
                );
                self.note(o, Severity::Assumed, msg);
                Some(ip)
            }
            None => {
                self.note(
                    o,
                    Severity::NotImported,
                    "no public address left to allocate",
                );
                None
            }
        }
    }

    fn subnets(&mut self, out: &mut String, vpc: &super::inventory::Vpc, s: &Scope) {
        let inv = self.inv;
        let list: Vec<_> = inv
            .subnets
            .iter()
            .filter(|x| s.subnets.contains_key(&x.origin.id))
            .collect();
        if list.is_empty() {
            return;
        }
        out.push_str("    subnets:\n");
        for sub in list {
            let name = s.subnets[&sub.origin.id].clone();
            let port = self.port(&sub.origin, &name, PortKind::Subnet);
            let _ = writeln!(
                out,
                "      - name: {}   # {}",
                q(&name),
                where_(&sub.origin)
            );
            let _ = writeln!(out, "        cidr: {}", s.subnet_cidrs[&sub.origin.id]);
            if let Some(net) = s.subnet_ipv6.get(&sub.origin.id) {
                let _ = writeln!(out, "        ipv6_cidr: {}", q(&net.to_string()));
            }
            let _ = writeln!(out, "        interface: {}", q(&port));
            let tables: Vec<_> = inv
                .route_tables
                .iter()
                .filter(|t| t.subnets.contains(&sub.origin.id))
                .collect();
            if let Some(t) = tables.first() {
                match s.tables.get(&t.origin.id) {
                    Some(n) if n == "main" => {}
                    Some(n) => {
                        let _ = writeln!(out, "        route_table: {}", q(n));
                    }
                    None => {
                        let msg = format!(
                            "route table {} is not in VPC {}: the subnet uses the main table",
                            t.origin.id, s.name
                        );
                        self.note(&sub.origin, Severity::NotImported, msg);
                    }
                }
            }
            for extra in tables.iter().skip(1) {
                let msg = format!(
                    "a subnet has one route table: the association with {} is not imported",
                    extra.origin.id
                );
                self.note(&sub.origin, Severity::NotImported, msg);
            }
            let acls: Vec<_> = inv
                .network_acls
                .iter()
                .filter(|a| a.subnets.contains(&sub.origin.id))
                .collect();
            if let Some(a) = acls.first() {
                match s.acls.get(&a.origin.id) {
                    Some(n) if n == "default" => {}
                    Some(n) => {
                        let _ = writeln!(out, "        network_acl: {}", q(n));
                    }
                    None => {
                        let msg = format!(
                            "network ACL {} is not in VPC {}: the subnet uses the default ACL",
                            a.origin.id, s.name
                        );
                        self.note(&sub.origin, Severity::NotImported, msg);
                    }
                }
            }
            for extra in acls.iter().skip(1) {
                let msg = format!(
                    "a subnet has one network ACL: the association with {} is not imported",
                    extra.origin.id
                );
                self.note(&sub.origin, Severity::NotImported, msg);
            }
        }
        let _ = vpc;
    }

    fn route_tables(&mut self, out: &mut String, vpc: &super::inventory::Vpc, s: &Scope) {
        let inv = self.inv;
        let list: Vec<_> = inv
            .route_tables
            .iter()
            .filter(|t| t.vpc == vpc.origin.id)
            .collect();
        if list.is_empty() {
            return;
        }
        out.push_str("    route_tables:\n");
        for t in list {
            let name = &s.tables[&t.origin.id];
            let _ = writeln!(out, "      - name: {}   # {}", q(name), where_(&t.origin));
            let mut propagate: Vec<String> = Vec::new();
            for p in &t.propagations {
                match &s.vgw {
                    Some(v) if v.id == p.gateway => {
                        if !propagate.contains(&v.name) {
                            propagate.push(v.name.clone());
                        }
                    }
                    _ => {
                        let msg = format!(
                            "VPN gateway {} is not imported in VPC {}: the route propagation into {name} is not imported",
                            p.gateway, s.name
                        );
                        self.note(&p.origin, Severity::NotImported, msg);
                    }
                }
            }
            if !propagate.is_empty() {
                let list: Vec<String> = propagate.iter().map(|n| q(n)).collect();
                let _ = writeln!(out, "        propagate: [{}]", list.join(", "));
            }
            let mut seen: BTreeSet<IpNet> = BTreeSet::new();
            let mut lines = Vec::new();
            for r in &t.routes {
                let Ok(dest) = r.destination.parse::<IpNet>() else {
                    let msg = format!(
                        "destination '{}' is not a CIDR block: the route is not imported",
                        r.destination
                    );
                    self.note(&r.origin, Severity::NotImported, msg);
                    continue;
                };
                let local = s
                    .blocks
                    .iter()
                    .copied()
                    .map(IpNet::V4)
                    .chain(s.ipv6_block.map(IpNet::V6))
                    .find(|b| b.contains(&dest));
                if let Some(block) = local {
                    if block != dest {
                        let msg = format!(
                            "destination {dest} is inside the VPC block {block}: routes more specific than the local route are not part of the format"
                        );
                        self.note(&r.origin, Severity::NotImported, msg);
                    }
                    continue;
                }
                let ipv6 = dest.addr().is_ipv6();
                // The families each target carries, as the format has them (a route the
                // validator would refuse is reported, not written).
                let ipv4_only = |me: &mut Self, why: &str| {
                    let msg = format!("{why}: the route to {dest} is not imported");
                    me.note(&r.origin, Severity::NotImported, msg);
                    None
                };
                let target = match &r.target {
                    RouteTo::Gateway(g) => match (&s.igw, &s.vgw) {
                        (Some((id, n)), _) if id == g => Some(n.clone()),
                        (_, Some(v)) if &v.id == g && ipv6 => ipv4_only(
                            self,
                            "a VPN gateway carries the customer network's IPv4 prefixes only",
                        ),
                        (_, Some(v)) if &v.id == g => Some(v.name.clone()),
                        _ => {
                            let what = if inv.internet_gateways.iter().any(|x| &x.origin.id == g) {
                                format!("internet gateway {g} is not attached to VPC {}", s.name)
                            } else if inv.vpn_gateways.iter().any(|x| &x.origin.id == g) {
                                format!("VPN gateway {g} is not imported in VPC {}", s.name)
                            } else {
                                format!("gateway {g} is no internet or VPN gateway of the input")
                            };
                            self.note(&r.origin, Severity::NotImported, format!("{what}: the route to {dest} is not imported"));
                            None
                        }
                    },
                    RouteTo::NatGateway(_) if ipv6 => ipv4_only(
                        self,
                        "a NAT gateway translates IPv4 only (NAT64 is not part of the format)",
                    ),
                    RouteTo::NatGateway(n) => s.nats.get(n).cloned().or_else(|| {
                        let msg = format!("NAT gateway {n} was not imported in VPC {}: the route to {dest} is not imported", s.name);
                        self.note(&r.origin, Severity::NotImported, msg);
                        None
                    }),
                    RouteTo::EgressOnly(g) => match &s.eigw {
                        Some((id, n)) if id == g && matches!(dest, IpNet::V6(_)) => Some(n.clone()),
                        Some((id, _)) if id == g => {
                            let msg = format!("an egress-only internet gateway carries IPv6 only: the route to {dest} is not imported");
                            self.note(&r.origin, Severity::NotImported, msg);
                            None
                        }
                        _ => {
                            let msg = format!("egress-only internet gateway {g} is not attached to VPC {}: the route to {dest} is not imported", s.name);
                            self.note(&r.origin, Severity::NotImported, msg);
                            None
                        }
                    },
                    RouteTo::Peering(p) if ipv6 && s.ipv4_only_peerings.contains(p) => ipv4_only(
                        self,
                        &format!("peering connection {p} carries IPv6 only between VPCs that both have an IPv6 block"),
                    ),
                    RouteTo::Peering(p) => s.peerings.get(p).cloned().or_else(|| {
                        let msg = format!("peering connection {p} is not imported: the route to {dest} is not imported");
                        self.note(&r.origin, Severity::NotImported, msg);
                        None
                    }),
                    RouteTo::Blackhole => Some("blackhole".to_owned()),
                    RouteTo::Unsupported(what) => {
                        let msg = format!("routes to {what} are not part of the format: the route to {dest} is not imported");
                        self.note(&r.origin, Severity::NotImported, msg);
                        None
                    }
                };
                let Some(target) = target else { continue };
                if ipv6 && s.ipv6_block.is_none() {
                    let msg = format!(
                        "VPC {} has no IPv6 block (give it its /56 as ipv6_cidr_block): the route to {dest} is not imported",
                        s.name
                    );
                    self.note(&r.origin, Severity::NotImported, msg);
                    continue;
                }
                if !seen.insert(dest) {
                    let msg = format!("a second route to {dest} in the table: not imported");
                    self.note(&r.origin, Severity::NotImported, msg);
                    continue;
                }
                lines.push(format!(
                    "          - {{ destination: {}, target: {} }}",
                    q(&dest.to_string()),
                    q(&target)
                ));
            }
            if !lines.is_empty() {
                out.push_str("        routes:\n");
                for l in lines {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
    }

    fn network_acls(&mut self, out: &mut String, vpc: &super::inventory::Vpc, s: &Scope) {
        let inv = self.inv;
        let list: Vec<_> = inv
            .network_acls
            .iter()
            .filter(|a| a.vpc == vpc.origin.id)
            .collect();
        if list.is_empty() {
            return;
        }
        out.push_str("    network_acls:\n");
        for a in list {
            let _ = writeln!(
                out,
                "      - name: {}   # {}",
                q(&s.acls[&a.origin.id]),
                where_(&a.origin)
            );
            for (egress, key) in [(false, "inbound"), (true, "outbound")] {
                let mut entries: Vec<&AclEntry> =
                    a.entries.iter().filter(|e| e.egress == egress).collect();
                entries.sort_by_key(|e| e.rule);
                let lines: Vec<String> = entries
                    .into_iter()
                    .filter_map(|e| self.acl_entry(e))
                    .collect();
                if lines.is_empty() {
                    let _ = writeln!(out, "        {key}: []");
                } else {
                    let _ = writeln!(out, "        {key}:");
                    for l in lines {
                        let _ = writeln!(out, "          - {l}");
                    }
                }
            }
        }
    }

    fn acl_entry(&mut self, e: &AclEntry) -> Option<String> {
        // AWS's final `*` rules (32767 IPv4, 32768 IPv6) are the format's implicit final deny.
        if matches!(e.rule, 32767 | 32768) && !e.allow {
            return None;
        }
        if !(1..=32766).contains(&e.rule) {
            let msg = format!("rule number {} is outside 1-32766: not imported", e.rule);
            self.note(&e.origin, Severity::NotImported, msg);
            return None;
        }
        let traffic = self.traffic(&e.origin, e.protocol, e.ports, e.icmp)?;
        let action = if e.allow { "allow" } else { "deny" };
        Some(format!(
            "{{ rule: {}, {traffic}, cidr: {}, action: {action} }}",
            e.rule,
            q(&e.cidr)
        ))
    }

    /// `protocol: P[, ports: X][, icmp: {...}]`; `None` (reported) for IPv6-only protocols.
    fn traffic(
        &mut self,
        o: &Origin,
        protocol: i64,
        ports: Option<(i64, i64)>,
        icmp: Option<(i64, i64)>,
    ) -> Option<String> {
        let name = match protocol {
            -1 => "all".to_owned(),
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            1 => "icmp".to_owned(),
            58 => {
                self.note(
                    o,
                    Severity::NotImported,
                    "ICMPv6 rules are not part of the format yet: not imported",
                );
                return None;
            }
            n => n.to_string(),
        };
        let mut text = format!("protocol: {name}");
        if matches!(protocol, 6 | 17)
            && let Some((from, to)) = ports
            && !(from <= 1 && to >= 65535)
            && !(from == -1 && to == -1)
        {
            let from = from.max(1);
            if from > to || to > 65535 {
                let msg = format!("port range {from}-{to} is not valid: not imported");
                self.note(o, Severity::NotImported, msg);
                return None;
            }
            if from == to {
                let _ = write!(text, ", ports: {from}");
            } else {
                let _ = write!(text, ", ports: {from}-{to}");
            }
        }
        if protocol == 1
            && let Some((t, c)) = icmp
            && (t != -1 || c != -1)
        {
            let mut parts = Vec::new();
            if t != -1 {
                parts.push(format!("type: {t}"));
            }
            if c != -1 {
                parts.push(format!("code: {c}"));
            }
            let _ = write!(text, ", icmp: {{ {} }}", parts.join(", "));
        }
        Some(text)
    }

    fn security_groups(&mut self, out: &mut String, vpc: &super::inventory::Vpc, s: &Scope) {
        let inv = self.inv;
        let list: Vec<_> = inv
            .security_groups
            .iter()
            .filter(|g| g.vpc == vpc.origin.id)
            .collect();
        if list.is_empty() {
            return;
        }
        out.push_str("    security_groups:\n");
        for g in list {
            let _ = writeln!(
                out,
                "      - name: {}   # {}",
                q(&s.groups[&g.origin.id]),
                where_(&g.origin)
            );
            let inbound: Vec<String> = g
                .inbound
                .iter()
                .filter_map(|r| self.sg_rule(r, "source", s))
                .collect();
            if inbound.is_empty() {
                out.push_str("        inbound: []\n");
            } else {
                out.push_str("        inbound:\n");
                for l in inbound {
                    let _ = writeln!(out, "          - {l}");
                }
            }
            if let Some(rules) = &g.outbound {
                let outbound: Vec<String> = rules
                    .iter()
                    .filter_map(|r| self.sg_rule(r, "destination", s))
                    .collect();
                if outbound.is_empty() {
                    out.push_str("        outbound: []\n");
                } else {
                    out.push_str("        outbound:\n");
                    for l in outbound {
                        let _ = writeln!(out, "          - {l}");
                    }
                }
            }
        }
    }

    fn sg_rule(&mut self, r: &SgRule, side: &str, s: &Scope) -> Option<String> {
        let peer = match &r.peer {
            SgPeer::Cidr(c) => q(c),
            SgPeer::Group(g) => match s.groups.get(g).or_else(|| s.peer_groups.get(g)) {
                Some(n) => q(&format!("sg:{n}")),
                None => {
                    let msg = format!(
                        "security group {g} is neither in VPC {} nor in a VPC peered with it: \
                         the rule is not imported",
                        s.name
                    );
                    self.note(&r.origin, Severity::NotImported, msg);
                    return None;
                }
            },
            SgPeer::PrefixList(l) => match s.prefix_lists.iter().find(|(id, _)| id == l) {
                Some((_, n)) => q(&format!("pl:{n}")),
                None => {
                    let msg = if self.inv.prefix_lists.iter().any(|x| &x.origin.id == l) {
                        format!("prefix list {l} could not be imported: the rule is not imported")
                    } else {
                        format!(
                            "prefix list {l} is not in the input (an AWS-managed list such as \
                             com.amazonaws.REGION.s3 has no entries in a template): the rule is not imported"
                        )
                    };
                    self.note(&r.origin, Severity::NotImported, msg);
                    return None;
                }
            },
        };
        let ports = match (r.from_port, r.to_port) {
            (Some(a), Some(b)) => Some((a, b)),
            (Some(a), None) | (None, Some(a)) => Some((a, a)),
            (None, None) => None,
        };
        let icmp = if r.protocol == 1 { ports } else { None };
        let traffic = self.traffic(&r.origin, r.protocol, ports, icmp)?;
        Some(format!("{{ {traffic}, {side}: {peer} }}"))
    }

    fn prefix_lists(&self, out: &mut String, s: &Scope) {
        if s.prefix_lists.is_empty() {
            return;
        }
        out.push_str("    prefix_lists:\n");
        for (id, name) in &s.prefix_lists {
            let cidrs: Vec<String> = self.lists[id].iter().map(ToString::to_string).collect();
            let origin = self.inv.prefix_lists.iter().find(|l| &l.origin.id == id);
            let comment = origin.map(|l| format!("   # {}", where_(&l.origin)));
            let _ = writeln!(
                out,
                "      - name: {}{}",
                q(name),
                comment.unwrap_or_default()
            );
            let _ = writeln!(out, "        cidrs: [{}]", cidrs.join(", "));
        }
    }

    fn flow_logs(&mut self, out: &mut String) {
        let Some(first) = self.inv.flow_logs.first() else {
            return;
        };
        for extra in self.inv.flow_logs.iter().skip(1) {
            let msg = format!(
                "the agent has one flow log configuration: {}'s is used",
                first.origin.id
            );
            self.note(&extra.origin, Severity::NotImported, msg);
        }
        let interval = match first.interval {
            None => 600,
            Some(v @ (60 | 600)) => v,
            Some(v) => {
                let msg = format!("MaxAggregationInterval {v} is not 60 or 600: 600 is used");
                self.note(&first.origin, Severity::Assumed, msg);
                600
            }
        };
        let format = match &first.format {
            None => "default".to_owned(),
            Some(f) => {
                let unknown: Vec<&str> = f
                    .split_whitespace()
                    .filter(|t| {
                        let name = t.strip_prefix("${").and_then(|t| t.strip_suffix('}'));
                        !name.is_some_and(|n| {
                            DEFAULT_FLOW_LOG_FIELDS.contains(&n)
                                || EXTRA_FLOW_LOG_FIELDS.contains(&n)
                        })
                    })
                    .collect();
                if unknown.is_empty() && !f.trim().is_empty() {
                    f.clone()
                } else {
                    let msg = format!(
                        "LogFormat has fields the agent does not write ({}): the default format is used",
                        unknown.join(" ")
                    );
                    self.note(&first.origin, Severity::NotImported, msg);
                    "default".to_owned()
                }
            }
        };
        let _ = writeln!(out, "flow_logs:   # {}", where_(&first.origin));
        let _ = writeln!(out, "  aggregation_interval: {interval}");
        out.push_str("  destination: stdout\n");
        let _ = writeln!(out, "  format: {}", q(&format));
    }
}

fn record(used: &mut BTreeMap<String, BTreeSet<Ipv4Addr>>, subnet: &str, ip: Option<&str>) {
    if let Some(ip) = ip.and_then(|a| a.parse().ok()) {
        used.entry(subnet.to_owned()).or_default().insert(ip);
    }
}

/// The `--addresses` keys of an interface: its ID, its interface ID, `Name` tag and name.
fn interface_keys(i: &Interface, name: &str) -> Vec<String> {
    let mut keys = vec![i.origin.id.clone()];
    keys.extend(i.eni.clone());
    keys.extend(i.origin.name_tag.clone());
    keys.push(name.to_owned());
    keys
}
