//! Property tests: random valid definitions validate and compile, and the compiled map
//! entries, read by a small interpreter of the datapath's lookups (LPM over `ROUTES`,
//! first match over each `AclTable`, the topology maps, LPM over `SG_REMOTES` then
//! `SG_RULES`), give the reference evaluator's verdict for random packets (each the first
//! packet of a new connection).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
};

use proptest::prelude::*;
use vpc_agent::{
    compile::{Compiled, compile},
    config::{ValidatedConfig, load_str},
    evaluator::{Ingress, Packet, Verdict, evaluate},
};
use vpc_common::{
    DropReason,
    acl::{
        ACL_ALLOW, ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, ACL_INBOUND, ACL_OUTBOUND,
        acl_index,
    },
    iface::{
        ENDPOINT_INSTANCE, ENDPOINT_NAT_GATEWAY, Endpoint, EndpointKey, IFACE_SUBNET, IfaceInfo,
        IfaceKey, PublicKey,
    },
    ip_raw, mask_raw,
    route::{
        RouteValue, TARGET_BLACKHOLE, TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY,
        TARGET_PEERING, uplink_spoof_table,
    },
    security_group::{SG_ANY_PROTO, SG_REMOTE_FIXED_BITS, SG_RULE_FIXED_BITS},
};

// ----- Random definitions, written as YAML -----

#[derive(Clone, Debug)]
struct RuleSpec {
    protocol: u8, // 0 = all
    ports: Option<(u16, u16)>,
    icmp: Option<(i16, i16)>,
    cidr: (u32, u8),
    allow: bool,
}

/// A security group rule: the traffic and CIDR of `rule` (its `allow` unused), or the members
/// of group `group` (modulo the group count + 1, the last being `default`), or else prefix
/// list `list` (modulo the list count; the CIDR if the VPC has none).
#[derive(Clone, Debug)]
struct SgRuleSpec {
    rule: RuleSpec,
    group: Option<usize>,
    list: Option<usize>,
}

/// A security group: inbound rules, outbound rules (`None`: the key omitted).
type GroupSpec = (Vec<SgRuleSpec>, Option<Vec<SgRuleSpec>>);

#[derive(Clone, Debug)]
struct VpcSpec {
    igw: bool,
    nat: bool,
    subnets: usize,
    /// (subnet, host octet, public, security groups (modulo the group count + 1))
    instances: Vec<(usize, u8, bool, Vec<usize>)>,
    groups: Vec<GroupSpec>,
    /// The first group is named `default` (instead of the implicit one).
    defines_default: bool,
    /// Each table: (destination, target choice).
    tables: Vec<Vec<((u32, u8), u8)>>,
    /// (inbound, outbound) rules.
    acls: Vec<(Vec<RuleSpec>, Vec<RuleSpec>)>,
    /// Index of a peer VPC (modulo the VPC count).
    peer: Option<usize>,
    /// Prefix lists' CIDRs (host bits cleared and duplicates dropped when written).
    prefix_lists: Vec<Vec<(u32, u8)>>,
}

const PROTOCOLS: [u8; 5] = [0, 6, 17, 1, 47];
/// Security group rules: ICMP more often, since its type/code prefixes have most cases.
const SG_PROTOCOLS: [u8; 7] = [0, 6, 17, 1, 1, 1, 47];

fn cidr_strategy() -> impl Strategy<Value = (u32, u8)> {
    prop_oneof![
        Just((0, 0)),
        (0u32..4, 0u32..6, prop_oneof![Just(16u8), Just(24u8)])
            .prop_map(|(v, s, len)| ((10 << 24) | (v << 16) | (s << 8), len)),
        (any::<u32>(), 0u8..=32),
    ]
}

/// CIDRs for security group rules: also instance addresses (hosts 10-29) and prefixes around
/// them, so that /32 classes nest in and collide with rule CIDRs.
fn sg_cidr_strategy() -> impl Strategy<Value = (u32, u8)> {
    prop_oneof![
        cidr_strategy(),
        (
            0u32..4,
            0u32..4,
            10u32..30,
            prop_oneof![Just(32u8), 26u8..32]
        )
            .prop_map(|(v, s, h, len)| ((10 << 24) | (v << 16) | (s << 8) | h, len)),
    ]
}

fn sg_rule_strategy() -> impl Strategy<Value = SgRuleSpec> {
    (
        rule_strategy_with(&SG_PROTOCOLS, sg_cidr_strategy()),
        prop::option::of(0usize..4),
        prop::option::of(0usize..3),
    )
        .prop_map(|(rule, group, list)| SgRuleSpec { rule, group, list })
}

fn group_strategy() -> impl Strategy<Value = GroupSpec> {
    (
        prop::collection::vec(sg_rule_strategy(), 0..4),
        prop::option::of(prop::collection::vec(sg_rule_strategy(), 0..3)),
    )
}

fn rule_strategy() -> impl Strategy<Value = RuleSpec> {
    rule_strategy_with(&PROTOCOLS, cidr_strategy())
}

fn rule_strategy_with(
    protocols: &[u8],
    cidr: impl Strategy<Value = (u32, u8)>,
) -> impl Strategy<Value = RuleSpec> {
    (
        prop::sample::select(protocols.to_vec()),
        prop::option::of((1u16..2000, 0u16..2000)),
        prop::option::of((-1i16..4, -1i16..3)),
        cidr,
        any::<bool>(),
    )
        .prop_map(|(protocol, ports, icmp, cidr, allow)| RuleSpec {
            protocol,
            ports: ports
                .filter(|_| matches!(protocol, 6 | 17))
                .map(|(lo, span)| (lo, lo.saturating_add(span))),
            icmp: icmp.filter(|_| protocol == 1),
            cidr,
            allow,
        })
}

fn vpc_strategy() -> impl Strategy<Value = VpcSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        1usize..4,
        prop::collection::vec(
            (
                0usize..4,
                10u8..30,
                any::<bool>(),
                prop::collection::vec(0usize..4, 0..3),
            ),
            0..6,
        ),
        prop::collection::vec(prop::collection::vec((cidr_strategy(), 0u8..4), 0..5), 0..3),
        prop::collection::vec(
            (
                prop::collection::vec(rule_strategy(), 0..6),
                prop::collection::vec(rule_strategy(), 0..6),
            ),
            0..3,
        ),
        prop::option::of(0usize..3),
        prop::collection::vec(group_strategy(), 0..4),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(sg_cidr_strategy(), 1..4), 0..3),
    )
        .prop_map(
            |(
                igw,
                nat,
                subnets,
                instances,
                tables,
                acls,
                peer,
                groups,
                defines_default,
                prefix_lists,
            )| VpcSpec {
                igw,
                nat: nat && igw,
                subnets,
                instances,
                tables,
                acls,
                peer,
                defines_default: defines_default && !groups.is_empty(),
                groups,
                prefix_lists,
            },
        )
}

/// The name of group `k` (modulo the group count + 1; the last is `default`).
fn group_name(spec: &VpcSpec, k: usize) -> String {
    let k = k % (spec.groups.len() + 1);
    if k == spec.groups.len() || (k == 0 && spec.defines_default) {
        "default".to_owned()
    } else {
        format!("g{k}")
    }
}

/// `protocol: ..[, ports: ..][, icmp: ..]` of a rule.
fn traffic_yaml(rule: &RuleSpec) -> String {
    let mut y = match rule.protocol {
        0 => "protocol: all".to_owned(),
        p => format!("protocol: {p}"),
    };
    if let Some((lo, hi)) = rule.ports {
        let _ = write!(y, ", ports: {lo}-{hi}");
    }
    if let Some((t, c)) = rule.icmp {
        let _ = write!(y, ", icmp: {{ type: {t}, code: {c} }}");
    }
    y
}

fn cidr_yaml((addr, len): (u32, u8)) -> String {
    format!("{}/{len}", ip4(addr & u32::from_be(mask_raw(len))))
}

/// `peer`: the VPC (index and spec) this one is peered with over an accepted connection; some
/// group references then name its groups (`sg:VPC/NAME`).
fn security_groups_yaml(spec: &VpcSpec, peer: Option<(usize, &VpcSpec)>, y: &mut String) {
    y.push_str("    security_groups:\n");
    for (k, (inbound, outbound)) in spec.groups.iter().enumerate() {
        let _ = writeln!(y, "      - name: {}", group_name(spec, k));
        let lists = [
            ("inbound", "source", Some(inbound)),
            ("outbound", "destination", outbound.as_ref()),
        ];
        for (dir, field, rules) in lists {
            let Some(rules) = rules else { continue };
            let _ = writeln!(y, "        {dir}:");
            for rule in rules {
                let lists = spec.prefix_lists.len();
                let peer = match (rule.group, peer, rule.list) {
                    (Some(g), Some((p, peer)), _) if g % 2 == 1 => {
                        format!("sg:vpc{p}/{}", group_name(peer, g))
                    }
                    (Some(g), _, _) => format!("sg:{}", group_name(spec, g)),
                    (None, _, Some(l)) if lists > 0 => format!("pl:l{}", l % lists),
                    _ => cidr_yaml(rule.rule.cidr),
                };
                let _ = writeln!(
                    y,
                    "          - {{ {}, {field}: {peer} }}",
                    traffic_yaml(&rule.rule)
                );
            }
            if rules.is_empty() {
                y.push_str("          []\n");
            }
        }
    }
    if spec.groups.is_empty() {
        y.push_str("      []\n");
    }
}

fn prefix_lists_yaml(spec: &VpcSpec, y: &mut String) {
    y.push_str("    prefix_lists:\n");
    for (l, cidrs) in spec.prefix_lists.iter().enumerate() {
        let mut cidrs: Vec<String> = cidrs.iter().map(|c| cidr_yaml(*c)).collect();
        cidrs.sort();
        cidrs.dedup();
        let _ = writeln!(y, "      - {{ name: l{l}, cidrs: [{}] }}", cidrs.join(", "));
    }
    if spec.prefix_lists.is_empty() {
        y.push_str("      []\n");
    }
}

fn ip4(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw)
}

/// The VPC VPC `v` declares a peering connection to, if any.
fn peer_of(specs: &[VpcSpec], v: usize) -> Option<usize> {
    specs[v].peer.map(|p| p % specs.len()).filter(|p| *p != v)
}

/// Writes a valid definition for these specs (dropping whatever would be invalid).
fn yaml(specs: &[VpcSpec]) -> String {
    let mut y = String::from("vpcs:\n");
    let mut public = 0u32;
    for (v, spec) in specs.iter().enumerate() {
        let v32 = v as u32;
        let block = (10 << 24) | (v32 << 16);
        let _ = writeln!(y, "  - name: vpc{v}\n    cidr_blocks: [10.{v}.0.0/16]");
        if spec.igw {
            let _ = writeln!(y, "    internet_gateway: {{ name: igw, interface: up{v} }}");
        }
        if spec.nat {
            public += 1;
            let _ = writeln!(
                y,
                "    nat_gateways: [{{ name: nat, subnet: s0, private_ip: 10.{v}.0.5, elastic_ip: {} }}]",
                ip4((198 << 24) | (51 << 16) | public)
            );
        }
        let peer = peer_of(specs, v);
        // Named by the pair: accepted when the peer names this VPC too, else one-sided.
        let pcx = peer.map(|p| format!("pcx-{}-{}", v.min(p), v.max(p)));
        if let (Some(p), Some(pcx)) = (peer, &pcx) {
            let _ = writeln!(
                y,
                "    peering_connections: [{{ name: {pcx}, peer_vpc: vpc{p} }}]"
            );
        }
        y.push_str("    subnets:\n");
        for k in 0..spec.subnets {
            let _ = write!(
                y,
                "      - {{ name: s{k}, cidr: 10.{v}.{k}.0/24, interface: s{v}-{k}"
            );
            if !spec.tables.is_empty() {
                let _ = write!(y, ", route_table: t{}", k % spec.tables.len());
            }
            if k % (spec.acls.len() + 1) < spec.acls.len() {
                let _ = write!(y, ", network_acl: n{}", k % (spec.acls.len() + 1));
            }
            y.push_str(" }\n");
        }
        y.push_str("    instances:\n");
        let mut used = std::collections::BTreeSet::new();
        for (i, (s, host, pub_ip, groups)) in spec.instances.iter().enumerate() {
            let s = s % spec.subnets;
            if !used.insert((s, *host)) {
                continue;
            }
            let _ = write!(
                y,
                "      - {{ name: i{i}, subnet: s{s}, private_ip: 10.{v}.{s}.{host}"
            );
            // Every other instance on a port of its own (its ENI), the rest on the segment.
            if host % 2 == 0 {
                let _ = write!(y, ", interface: p{v}-{i}");
            }
            if *pub_ip && spec.igw {
                public += 1;
                let _ = write!(y, ", public_ip: {}", ip4((198 << 24) | (51 << 16) | public));
            }
            let mut names: Vec<String> = groups.iter().map(|g| group_name(spec, *g)).collect();
            names.sort();
            names.dedup();
            if !names.is_empty() {
                let _ = write!(y, ", security_groups: [{}]", names.join(", "));
            }
            y.push_str(" }\n");
        }
        if spec.instances.is_empty() {
            y.push_str("      []\n");
        }
        y.push_str("    route_tables:\n");
        for (t, routes) in spec.tables.iter().enumerate() {
            let _ = writeln!(y, "      - name: t{t}\n        routes:");
            let mut lines = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            if let Some(p) = peer.filter(|_| t == 0) {
                seen.insert(((10u32 << 24) | ((p as u32) << 16), 16u8));
                let pcx = pcx.as_deref().unwrap_or_default();
                lines.push(format!("{{ destination: 10.{p}.0.0/16, target: {pcx} }}"));
            }
            for ((addr, len), choice) in routes {
                let addr = addr & u32::from_be(mask_raw(*len));
                let inside = *len >= 16 && (addr & 0xffff_0000) == block;
                if inside || !seen.insert((addr, *len)) {
                    continue;
                }
                let target = match choice {
                    0 if spec.igw => "igw",
                    1 if spec.nat => "nat",
                    2 if peer.is_some() => pcx.as_deref().unwrap_or_default(),
                    _ => "blackhole",
                };
                lines.push(format!(
                    "{{ destination: {}/{len}, target: {target} }}",
                    ip4(addr)
                ));
            }
            if lines.is_empty() {
                y.push_str("          []\n");
            }
            for line in lines {
                let _ = writeln!(y, "          - {line}");
            }
        }
        if spec.tables.is_empty() {
            y.push_str("      []\n");
        }
        y.push_str("    network_acls:\n");
        for (n, (inbound, outbound)) in spec.acls.iter().enumerate() {
            let _ = writeln!(y, "      - name: n{n}");
            for (dir, rules) in [("inbound", inbound), ("outbound", outbound)] {
                let _ = writeln!(y, "        {dir}:");
                for (r, rule) in rules.iter().enumerate() {
                    let _ = write!(
                        y,
                        "          - {{ rule: {}, {}, cidr: {}",
                        (r + 1) * 10,
                        traffic_yaml(rule),
                        cidr_yaml(rule.cidr)
                    );
                    let action = if rule.allow { "allow" } else { "deny" };
                    let _ = writeln!(y, ", action: {action} }}");
                }
                if rules.is_empty() {
                    y.push_str("          []\n");
                }
            }
        }
        if spec.acls.is_empty() {
            y.push_str("      []\n");
        }
        let accepted = peer.filter(|&p| peer_of(specs, p) == Some(v));
        security_groups_yaml(spec, accepted.map(|p| (p, &specs[p])), &mut y);
        prefix_lists_yaml(spec, &mut y);
    }
    y
}

// ----- Random packets -----

#[derive(Clone, Debug)]
struct PacketSpec {
    /// Ingress: an index into the interface list.
    ingress: usize,
    /// Source: an index into the address pool (or a random address).
    src: prop::sample::Index,
    dst: prop::sample::Index,
    random: u32,
    proto: u8,
    dport: u16,
    icmp: (u8, u8),
}

fn packet_strategy() -> impl Strategy<Value = PacketSpec> {
    (
        any::<usize>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<u32>(),
        prop::sample::select(vec![6u8, 17, 1, 47]),
        prop_oneof![1u16..30, 1000u16..2100, any::<u16>()],
        (0u8..4, 0u8..3),
    )
        .prop_map(
            |(ingress, src, dst, random, proto, dport, icmp)| PacketSpec {
                ingress,
                src,
                dst,
                random,
                proto,
                dport,
                icmp,
            },
        )
}

/// Addresses worth sending from/to: every registered, router, public address, plus a random one.
fn address_pool(config: &ValidatedConfig, random: u32) -> Vec<Ipv4Addr> {
    let mut pool = vec![ip4(random), ip4((10 << 24) | (random & 0x00ff_ffff))];
    for vpc in &config.vpcs {
        for s in &vpc.subnets {
            pool.push(s.router_ip());
            pool.push(ip4(u32::from(s.cidr.network()) + 77));
        }
        for i in &vpc.instances {
            // Three times: packets between instances are what security groups decide.
            pool.extend([i.private_ip; 3]);
            pool.extend(i.public_ip);
        }
        for n in &vpc.nat_gateways {
            pool.extend([n.private_ip, n.elastic_ip]);
        }
    }
    pool
}

fn interfaces(config: &ValidatedConfig) -> Vec<String> {
    config
        .interfaces()
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect()
}

// ----- An interpreter of the compiled entries -----

#[derive(Debug, PartialEq, Eq)]
enum SimVerdict {
    Deliver {
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    Drop(DropReason),
    ToHost,
}

struct Sim<'a> {
    c: &'a Compiled,
}

fn raw(ip: Ipv4Addr) -> u32 {
    ip_raw(ip.octets())
}

impl Sim<'_> {
    fn lpm(&self, table: u32, dst: Ipv4Addr) -> Option<RouteValue> {
        let addr = raw(dst);
        self.c
            .routes
            .iter()
            .filter(|(k, _)| {
                let len = u8::try_from(k.prefix_len - 32).expect("prefix");
                k.key.table == table && addr & mask_raw(len) == k.key.addr
            })
            .max_by_key(|(k, _)| k.prefix_len)
            .map(|(_, v)| *v)
    }

    fn acl_allows(&self, acl_id: u32, dir: u32, remote: Ipv4Addr, p: &Packet) -> bool {
        let table = &self.c.acls[&acl_index(acl_id, dir)];
        let rules = &table.rules[..table.count as usize];
        let remote = raw(remote);
        let first = rules.iter().find(|r| {
            let any = |flag| r.flags & flag != 0;
            remote & r.mask == r.addr
                && (any(ACL_ANY_PROTO) || r.proto == p.proto)
                && (!matches!(p.proto, 6 | 17) || (r.port_lo..=r.port_hi).contains(&p.dport))
                && (p.proto != 1
                    || ((any(ACL_ANY_ICMP_TYPE) || r.icmp_type == p.icmp_type)
                        && (any(ACL_ANY_ICMP_CODE) || r.icmp_code == p.icmp_code)))
        });
        first.is_some_and(|r| r.action == ACL_ALLOW)
    }

    /// The class of `remote` in VPC `vpc_id`: its longest `SG_REMOTES` match, else 0.
    fn sg_class(&self, vpc_id: u32, remote: Ipv4Addr) -> u32 {
        let addr = raw(remote);
        self.c
            .sg_remotes
            .iter()
            .filter(|(k, _)| {
                let len = u8::try_from(k.prefix_len - SG_REMOTE_FIXED_BITS).expect("prefix");
                k.key.vpc_id == vpc_id && addr & mask_raw(len) == k.key.addr
            })
            .max_by_key(|(k, _)| k.prefix_len)
            .map_or(0, |(_, class)| *class)
    }

    /// Whether `SG_RULES` has a prefix of (endpoint, class, direction, proto, port).
    fn sg_rule(&self, endpoint: u32, class: u32, dir: u32, proto: u8, port: u16) -> bool {
        self.c.sg_rules.keys().any(|k| {
            let bits = k.prefix_len - SG_RULE_FIXED_BITS;
            let shift = 16 - bits;
            (
                k.key.endpoint,
                k.key.class,
                u32::from(k.key.direction),
                k.key.proto,
            ) == (endpoint, class, dir, proto)
                && u32::from(port) >> shift == u32::from(u16::from_be(k.key.port_be)) >> shift
        })
    }

    /// The security groups of endpoint `ep` of VPC `vpc_id` (NAT gateways have none): the
    /// remote's class, then the packet's protocol, then every protocol (0).
    fn sg_allows(&self, vpc_id: u32, ep: &Endpoint, dir: u32, p: &Packet) -> bool {
        if ep.kind != ENDPOINT_INSTANCE {
            return true;
        }
        let remote = if dir == ACL_INBOUND { p.src } else { p.dst };
        let class = self.sg_class(vpc_id, remote);
        let port = match p.proto {
            6 | 17 => p.dport,
            1 => u16::from(p.icmp_type) << 8 | u16::from(p.icmp_code),
            _ => 0,
        };
        [p.proto, SG_ANY_PROTO]
            .into_iter()
            .any(|proto| self.sg_rule(ep.sg_set, class, dir, proto, port))
    }

    fn run(&self, ifindex: u32, p: &Packet) -> SimVerdict {
        let key = IfaceKey {
            ifindex,
            slot: self.c.slot,
        };
        let iface = self.c.ifaces[&key];
        if iface.kind == IFACE_SUBNET {
            self.entering_from_subnet(&iface, p)
        } else {
            self.entering_from_uplink(p)
        }
    }

    fn entering_from_subnet(&self, iface: &IfaceInfo, p: &Packet) -> SimVerdict {
        let sid = iface.subnet_id;
        let s = self.c.subnets[&sid];
        let key = EndpointKey {
            vpc_id: s.vpc_id,
            ip: raw(p.src),
        };
        // A port takes only its instance's address, a segment only instances without a port.
        let source = self.c.endpoints.get(&key).filter(|e| {
            e.subnet_id == sid
                && e.kind == ENDPOINT_INSTANCE
                && (!iface.is_port() || raw(p.src) == iface.instance_ip)
                && (iface.is_port() == (e.ifindex != 0))
        });
        let Some(ep) = source else {
            return SimVerdict::Drop(DropReason::Spoofed);
        };
        let dst = raw(p.dst);
        if dst == s.router_ip
            || p.dst.is_broadcast()
            || p.dst.is_multicast()
            || dst == s.cidr | !s.mask
            || p.dst.is_link_local()
        {
            return SimVerdict::ToHost;
        }
        if !self.sg_allows(s.vpc_id, ep, ACL_OUTBOUND, p) {
            return SimVerdict::Drop(DropReason::SecurityGroupOutbound);
        }
        if !self.acl_allows(s.acl_id, ACL_OUTBOUND, p.dst, p) {
            return SimVerdict::Drop(DropReason::AclOutbound);
        }
        let Some(route) = self.lpm(s.route_table, p.dst) else {
            return SimVerdict::Drop(DropReason::NoRoute);
        };
        match route.target {
            TARGET_LOCAL => self.local(s.vpc_id, route.target_id, Some(sid), p),
            TARGET_INTERNET_GATEWAY if ep.public_ip == 0 => {
                SimVerdict::Drop(DropReason::NoPublicAddress)
            }
            TARGET_INTERNET_GATEWAY => SimVerdict::Deliver {
                ifindex: route.target_id,
                src: Ipv4Addr::from(ep.public_ip.to_ne_bytes()),
                dst: p.dst,
            },
            TARGET_NAT_GATEWAY => self.nat(route.target_id, p),
            TARGET_PEERING => {
                let peer = self.c.vpcs[&route.target_id];
                match self.lpm(peer.local_table, p.dst) {
                    Some(r) if r.target == TARGET_LOCAL => {
                        self.local(route.target_id, r.target_id, None, p)
                    }
                    Some(_) => SimVerdict::Drop(DropReason::BadTarget),
                    None => SimVerdict::Drop(DropReason::NoRoute),
                }
            }
            TARGET_BLACKHOLE => SimVerdict::Drop(DropReason::Blackhole),
            _ => SimVerdict::Drop(DropReason::BadTarget),
        }
    }

    fn local(&self, vpc_id: u32, did: u32, from: Option<u32>, p: &Packet) -> SimVerdict {
        let key = EndpointKey {
            vpc_id,
            ip: raw(p.dst),
        };
        let registered = self.c.endpoints.get(&key).filter(|e| e.subnet_id == did);
        let Some(ep) = registered.filter(|_| did != 0) else {
            return SimVerdict::Drop(DropReason::UnknownDestination);
        };
        let d = self.c.subnets[&did];
        let out = if ep.ifindex != 0 {
            ep.ifindex
        } else {
            d.ifindex
        };
        if out == 0 {
            return SimVerdict::Drop(DropReason::UnknownDestination);
        }
        if from != Some(did) && !self.acl_allows(d.acl_id, ACL_INBOUND, p.src, p) {
            return SimVerdict::Drop(DropReason::AclInbound);
        }
        if !self.sg_allows(vpc_id, ep, ACL_INBOUND, p) {
            return SimVerdict::Drop(DropReason::SecurityGroupInbound);
        }
        SimVerdict::Deliver {
            ifindex: out,
            src: p.src,
            dst: p.dst,
        }
    }

    fn nat(&self, id: u32, p: &Packet) -> SimVerdict {
        if ![1, 6, 17].contains(&p.proto) {
            return SimVerdict::Drop(DropReason::NatProtocol);
        }
        let nat = self.c.nat_gateways[&id];
        let ps = self.c.subnets[&nat.subnet_id];
        if !self.acl_allows(ps.acl_id, ACL_INBOUND, p.src, p) {
            return SimVerdict::Drop(DropReason::AclInbound);
        }
        let uplink = match self.lpm(ps.route_table, p.dst) {
            Some(r) if r.target == TARGET_INTERNET_GATEWAY => r.target_id,
            _ => return SimVerdict::Drop(DropReason::NoRoute),
        };
        if !self.acl_allows(ps.acl_id, ACL_OUTBOUND, p.dst, p) {
            return SimVerdict::Drop(DropReason::AclOutbound);
        }
        let src = Ipv4Addr::from(nat.elastic_ip.to_ne_bytes());
        SimVerdict::Deliver {
            ifindex: uplink,
            src,
            dst: p.dst,
        }
    }

    fn entering_from_uplink(&self, p: &Packet) -> SimVerdict {
        if self.lpm(uplink_spoof_table(self.c.slot), p.src).is_some() {
            return SimVerdict::Drop(DropReason::UplinkSpoofed);
        }
        let key = PublicKey {
            ip: raw(p.dst),
            slot: self.c.slot,
        };
        let Some(target) = self.c.public_ips.get(&key) else {
            let into_vpc = self
                .c
                .vpcs
                .values()
                .any(|v| self.lpm(v.local_table, p.dst).is_some());
            return if into_vpc {
                SimVerdict::Drop(DropReason::UplinkUnsolicited)
            } else {
                SimVerdict::ToHost
            };
        };
        if target.kind == ENDPOINT_NAT_GATEWAY {
            return SimVerdict::Drop(DropReason::NatUnsolicited);
        }
        let ep_key = EndpointKey {
            vpc_id: target.vpc_id,
            ip: target.private_ip,
        };
        let dst = Ipv4Addr::from(target.private_ip.to_ne_bytes());
        let ep = self.c.endpoints[&ep_key];
        self.local(target.vpc_id, ep.subnet_id, None, &Packet { dst, ..*p })
    }
}

fn expected(verdict: Verdict, ifindex: &BTreeMap<String, u32>) -> SimVerdict {
    match verdict {
        Verdict::Deliver {
            interface,
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
        } => SimVerdict::Deliver {
            ifindex: ifindex[&interface],
            src,
            dst,
        },
        Verdict::Deliver { .. } => panic!("an IPv4 packet delivered as IPv6"),
        Verdict::Drop(r) => SimVerdict::Drop(r),
        Verdict::ToHost => SimVerdict::ToHost,
        // Only IPv6 neighbour discovery is answered in place; these packets are IPv4.
        Verdict::Answered => panic!("an IPv4 packet answered in place"),
    }
}

/// A random definition, its compiled entries and the stand-in ifindex of every interface.
struct Case {
    text: String,
    config: ValidatedConfig,
    ifindex: BTreeMap<String, u32>,
    compiled: Compiled,
}

impl Case {
    fn new(specs: &[VpcSpec], slot: u32) -> Self {
        let text = yaml(specs);
        let config = load_str("random.yaml", &text)
            .unwrap_or_else(|e| panic!("generated definition is invalid:\n{e}\n{text}"));
        let ifindex: BTreeMap<String, u32> = interfaces(&config).into_iter().zip(10..).collect();
        let lookup = |name: &str| ifindex.get(name).copied();
        let compiled = compile(&config, slot, &lookup).expect("compiles");
        Self {
            text,
            config,
            ifindex,
            compiled,
        }
    }

    fn packet(spec: &PacketSpec, src: Ipv4Addr, dst: Ipv4Addr) -> Packet {
        Packet {
            src,
            dst,
            proto: spec.proto,
            sport: 40000,
            dport: spec.dport,
            icmp_type: spec.icmp.0,
            icmp_code: spec.icmp.1,
        }
    }

    /// The interpreter and the evaluator agree on `p` entering on `interface`.
    fn check(&self, interface: &str, p: &Packet) -> Result<(), TestCaseError> {
        let trace =
            evaluate(&self.config, Ingress::Interface(interface), p).expect("known interface");
        let want = expected(trace.verdict, &self.ifindex);
        let got = Sim { c: &self.compiled }.run(self.ifindex[interface], p);
        prop_assert_eq!(got, want, "packet {:?} on {}\n{}", p, interface, self.text);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compiled_entries_agree_with_the_reference_evaluator(
        specs in prop::collection::vec(vpc_strategy(), 1..4),
        packets in prop::collection::vec(packet_strategy(), 1..48),
        slot in 0u32..2,
    ) {
        let case = Case::new(&specs, slot);
        let names = interfaces(&case.config);
        for spec in packets {
            let pool = address_pool(&case.config, spec.random);
            let interface = &names[spec.ingress % names.len()];
            let p = Case::packet(&spec, *spec.src.get(&pool), *spec.dst.get(&pool));
            case.check(interface, &p)?;
        }
    }
}

proptest! {
    // Cheaper per case (no ACL scans, few packets dropped early): more cases, since a rule
    // kind (e.g. an ICMP type with any code) must meet a packet it decides.
    #![proptest_config(ProptestConfig::with_cases(768))]

    /// Without network ACLs, from registered instances only: most packets reach the security
    /// groups of both ends.
    #[test]
    fn security_groups_agree_with_the_reference_evaluator(
        specs in prop::collection::vec(vpc_strategy(), 1..4),
        packets in prop::collection::vec(packet_strategy(), 1..48),
        slot in 0u32..2,
    ) {
        let specs: Vec<VpcSpec> = specs
            .into_iter()
            .map(|s| VpcSpec { acls: Vec::new(), ..s })
            .collect();
        let case = Case::new(&specs, slot);
        let sources: Vec<(Ipv4Addr, String)> = case
            .config
            .vpcs
            .iter()
            .enumerate()
            .flat_map(|(v, vpc)| {
                let config = &case.config;
                vpc.instances.iter().enumerate().map(move |(i, inst)| {
                    let interface = config.instance_interface(v, i).unwrap_or_default();
                    (inst.private_ip, interface.to_owned())
                })
            })
            .collect();
        prop_assume!(!sources.is_empty());
        for spec in packets {
            let pool = address_pool(&case.config, spec.random);
            let (src, interface) = spec.src.get(&sources);
            let p = Case::packet(&spec, *src, *spec.dst.get(&pool));
            case.check(interface, &p)?;
        }
    }
}
