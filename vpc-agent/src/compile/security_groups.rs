//! `SG_REMOTES`, `SG_REMOTES6` and `SG_RULES` entries (vpc-common/src/security_group.rs).
//!
//! Per VPC, the remote addresses the rules can tell apart become *classes*: every CIDR a rule
//! names and the address (/32) of every member of a group some rule references. The class of
//! an address is its most specific entry; an address that matches no entry is class 0. A rule
//! naming CIDR C is written for every class whose prefix lies inside C (an address whose most
//! specific entry lies inside C is inside C, and an address inside C has C or something inside
//! it as its most specific entry, so this is exact). `0.0.0.0/0` gets no entry of its own:
//! everything matches it, so its class is 0, the class of "nothing more specific".
//!
//! `sg:NAME` rules are written for the /32 classes of NAME's members at the time of the
//! compile; recompiling after instances change keeps them current. `sg:VPC/NAME` (a peer
//! VPC's group) works the same way: its members' /32s become classes of this VPC, matched
//! when they arrive (or are sent to) over the peering connection.
//!
//! A `pl:NAME` rule is the union of one rule per CIDR of the list: every CIDR of a referenced
//! list is a class boundary like a CIDR a rule names, and the rule is written for the classes
//! inside any of them (each once).
//!
//! IPv6 remotes are classified the same way in `SG_REMOTES6` (rule IPv6 CIDRs, members' IPv6
//! addresses as /128), with their own classes numbered after the VPC's IPv4 ones, so that one
//! `SG_RULES` holds the rules of both families. `::/0` is an entry of its own (the first IPv6
//! class), never class 0: every IPv6 remote has an IPv6 class, and no rule for `0.0.0.0/0`
//! (class 0) matches it, nor one for `::/0` an IPv4 remote.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::{Ipv4Net, Ipv6Net};
use vpc_common::{
    Addr6,
    acl::{ACL_INBOUND, ACL_OUTBOUND},
    proto::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    security_group::{
        SG_ANY_PROTO, SG_REMOTE_FIXED_BITS, SG_RULE_FIXED_BITS, SgRemoteKey, SgRuleKey, SgRuleValue,
    },
};

use super::{family::Family, ids::Ids};
use crate::config::validated::{SgPeer, SgRuleDef, TrafficMatch, VpcDef, group_members};

/// The class of IPv4 addresses that match no `SG_REMOTES` entry (and of `0.0.0.0/0`).
pub const CLASS_NONE: u32 = 0;

/// An `SG_REMOTES` trie key (`SG_REMOTES6`: [`SgRemote6Prefix`]): `prefix_len` counts the VPC
/// id's 32 bits first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SgRemotePrefix<A = u32> {
    pub prefix_len: u32,
    pub key: SgRemoteKey<A>,
}

/// An `SG_REMOTES6` key.
pub type SgRemote6Prefix = SgRemotePrefix<Addr6>;

impl<A> SgRemotePrefix<A> {
    pub fn new<N: Family<Raw = A>>(vpc_id: u32, net: N) -> Self {
        Self {
            prefix_len: SG_REMOTE_FIXED_BITS + u32::from(net.prefix_len()),
            key: SgRemoteKey {
                vpc_id,
                addr: net.raw().0,
            },
        }
    }
}

/// An `SG_RULES` trie key: `prefix_len` counts the 80 fixed bits first, then the port's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SgRulePrefix {
    pub prefix_len: u32,
    pub key: SgRuleKey,
}

/// What a rule matches besides the remote: a protocol and a block of ports (for ICMP and
/// ICMPv6, `type << 8 | code`) given by its first `port_bits` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortBlock {
    pub proto: u8,
    pub port: u16,
    pub port_bits: u8,
}

/// The remote classes of one VPC for one address family: network -> class id. IPv4 classes
/// are 1, 2, ... in address order (class 0: no entry matches, `0.0.0.0/0`); the IPv6 ones
/// follow them, the first being `::/0` (every IPv6 remote has an IPv6 class).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classes<N: Family> {
    by_net: BTreeMap<N, u32>,
}

impl<N: Family> Classes<N> {
    /// Every CIDR of family `N` named by a rule of VPC `v` or in a prefix list a rule names
    /// (except IPv4's /0), and the single-address network of every address of that family of
    /// every member of a referenced group (of this VPC, or of a peer VPC for `sg:VPC/NAME`);
    /// numbered from `first`. IPv6's `::/0` is always one.
    pub fn of_vpc(vpcs: &[VpcDef], v: usize, first: u32) -> Self {
        let mut nets = BTreeSet::new();
        if !N::DEFAULT_IS_CLASS_NONE {
            nets.insert(N::everything());
        }
        for rule in vpcs[v].security_groups.iter().flat_map(rules) {
            match rule.peer {
                SgPeer::Cidr(net) => nets.extend(N::of(net)),
                SgPeer::Group(_) | SgPeer::PeerGroup { .. } => {
                    nets.extend(group_members(vpcs, v, &rule.peer).flat_map(N::hosts));
                }
                SgPeer::PrefixList(l) => nets.extend(N::prefix_list(vpcs[v].prefix_list(l))),
            }
        }
        if N::DEFAULT_IS_CLASS_NONE {
            nets.remove(&N::everything());
        }
        Self {
            by_net: nets.into_iter().zip(first..).collect(),
        }
    }

    /// (network, class) of every entry.
    pub fn iter(&self) -> impl Iterator<Item = (N, u32)> + '_ {
        self.by_net.iter().map(|(n, c)| (*n, *c))
    }

    /// The class after the last one.
    pub fn next(&self) -> Option<u32> {
        self.by_net.values().max().map(|c| c + 1)
    }

    /// The classes of the addresses inside `net` (IPv4's class 0 too if `net` is `/0`).
    pub fn inside(&self, net: N) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .iter()
            .filter(|(n, _)| net.contains_net(n))
            .map(|(_, c)| c)
            .collect();
        if N::DEFAULT_IS_CLASS_NONE && net.prefix_len() == 0 {
            out.push(CLASS_NONE);
        }
        out
    }

    /// The classes a rule's source or destination covers. A peer VPC's members are remotes
    /// of this VPC's groups like its own (VPC blocks never overlap, and only the peering
    /// delivers from a peer's addresses: the uplink drops them as spoofed).
    pub fn of_peer(&self, vpcs: &[VpcDef], v: usize, peer: &SgPeer) -> Vec<u32> {
        match peer {
            SgPeer::Cidr(net) => N::of(*net).map_or_else(Vec::new, |net| self.inside(net)),
            SgPeer::Group(_) | SgPeer::PeerGroup { .. } => group_members(vpcs, v, peer)
                .flat_map(N::hosts)
                .map(|host| self.by_net[&host])
                .collect(),
            SgPeer::PrefixList(l) => {
                let cidrs = N::prefix_list(vpcs[v].prefix_list(*l));
                let union: BTreeSet<u32> = cidrs.into_iter().flat_map(|n| self.inside(n)).collect();
                union.into_iter().collect()
            }
        }
    }
}

/// The remote classes of both families of one VPC.
struct VpcClasses {
    v4: Classes<Ipv4Net>,
    v6: Classes<Ipv6Net>,
}

impl VpcClasses {
    fn of_vpc(vpcs: &[VpcDef], v: usize) -> Self {
        let v4 = Classes::<Ipv4Net>::of_vpc(vpcs, v, CLASS_NONE + 1);
        let first6 = v4.next().unwrap_or(CLASS_NONE + 1);
        let v6 = Classes::of_vpc(vpcs, v, first6);
        Self { v4, v6 }
    }

    /// The classes of both families a rule's peer covers.
    fn of_peer(&self, vpcs: &[VpcDef], v: usize, peer: &SgPeer) -> Vec<u32> {
        let mut out = self.v4.of_peer(vpcs, v, peer);
        out.extend(self.v6.of_peer(vpcs, v, peer));
        out
    }
}

/// The remote entries of both families.
#[derive(Debug)]
pub struct Remotes<'a> {
    pub v4: &'a mut BTreeMap<SgRemotePrefix, u32>,
    pub v6: &'a mut BTreeMap<SgRemote6Prefix, u32>,
}

fn rules(group: &crate::config::validated::SecurityGroupDef) -> impl Iterator<Item = &SgRuleDef> {
    group.inbound.iter().chain(&group.outbound)
}

/// The fewest aligned power-of-two blocks covering exactly `lo..=hi`: (first port, prefix
/// bits). At most 30 for any range.
pub fn port_blocks(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        // The largest block aligned at `lo` that does not pass `hi`.
        let mut size_bits = lo.trailing_zeros().min(16);
        while lo + (1 << size_bits) - 1 > hi {
            size_bits -= 1;
        }
        out.push((lo as u16, 16 - size_bits as u8));
        lo += 1 << size_bits;
    }
    out
}

/// The (protocol, port block) keys a rule's traffic match is written under (ICMPv6 like
/// ICMP: `type << 8 | code`).
pub fn traffic_blocks(t: &TrafficMatch) -> Vec<PortBlock> {
    let block = |proto, port, port_bits| PortBlock {
        proto,
        port,
        port_bits,
    };
    match t.protocol {
        None => vec![block(SG_ANY_PROTO, 0, 0)],
        Some(p @ (PROTO_TCP | PROTO_UDP)) => match t.ports {
            None => vec![block(p, 0, 0)],
            Some((lo, hi)) => port_blocks(lo, hi)
                .into_iter()
                .map(|(port, bits)| block(p, port, bits))
                .collect(),
        },
        Some(p @ (PROTO_ICMP | PROTO_ICMPV6)) => {
            let icmp = |ty: u8, code: u8| u16::from(ty) << 8 | u16::from(code);
            match (t.icmp_type, t.icmp_code) {
                (None, None) => vec![block(p, 0, 0)],
                (Some(ty), None) => vec![block(p, icmp(ty, 0), 8)],
                (Some(ty), Some(code)) => vec![block(p, icmp(ty, code), 16)],
                // A code of any type is no prefix: one entry per type.
                (None, Some(code)) => (0..=u8::MAX)
                    .map(|ty| block(p, icmp(ty, code), 16))
                    .collect(),
            }
        }
        Some(p) => vec![block(p, 0, 0)],
    }
}

/// Every entry of the security groups of VPC `v` (of `vpcs`): the remote classes of both
/// families, and the rules for the classes of either family their peers cover.
pub fn vpc_security_groups(
    vpcs: &[VpcDef],
    v: usize,
    ids: &Ids,
    remotes: Remotes<'_>,
    rules_out: &mut BTreeMap<SgRulePrefix, SgRuleValue>,
) {
    let vpc = &vpcs[v];
    let vpc_id = ids.vpc[v];
    let classes = VpcClasses::of_vpc(vpcs, v);
    for (net, class) in classes.v4.iter() {
        remotes.v4.insert(SgRemotePrefix::new(vpc_id, net), class);
    }
    for (net, class) in classes.v6.iter() {
        remotes.v6.insert(SgRemotePrefix::new(vpc_id, net), class);
    }
    for (_, endpoint, groups) in ids.sg_sets.iter().filter(|(sv, _, _)| *sv == v) {
        let endpoint = *endpoint;
        for &g in groups {
            let group = &vpc.security_groups[g];
            for (direction, list) in [
                (ACL_INBOUND, &group.inbound),
                (ACL_OUTBOUND, &group.outbound),
            ] {
                for (r, rule) in list.iter().enumerate() {
                    let value = SgRuleValue {
                        rule: (g as u32) << 16 | r as u32,
                    };
                    let at = RuleSite {
                        endpoint,
                        direction: direction as u8,
                        value,
                    };
                    for class in classes.of_peer(vpcs, v, &rule.peer) {
                        for block in traffic_blocks(&rule.traffic) {
                            // Several rules may allow the same thing: the first one is named.
                            let (key, value) = at.entry(class, block);
                            rules_out.entry(key).or_insert(value);
                        }
                    }
                }
            }
        }
    }
}

/// The instance, direction and rule an entry is written for.
struct RuleSite {
    endpoint: u32,
    direction: u8,
    value: SgRuleValue,
}

impl RuleSite {
    fn entry(&self, class: u32, block: PortBlock) -> (SgRulePrefix, SgRuleValue) {
        let key = SgRuleKey {
            endpoint: self.endpoint,
            class,
            direction: self.direction,
            proto: block.proto,
            port_be: block.port.to_be(),
        };
        let prefix = SgRulePrefix {
            prefix_len: SG_RULE_FIXED_BITS + u32::from(block.port_bits),
            key,
        };
        (prefix, self.value)
    }
}

#[cfg(test)]
mod tests {
    use vpc_common::iface::slot_id;

    use super::*;
    use crate::{
        compile::{Compiled, compile},
        config::load_str,
    };

    /// Whether `port` is inside the block starting at `start` with `bits` prefix bits.
    fn in_block(port: u32, (start, bits): (u16, u8)) -> bool {
        let shift = 16 - u32::from(bits);
        port >> shift == u32::from(start) >> shift
    }

    /// Every port of `lo..=hi` is in exactly one block, no other port is in any, and every
    /// block is aligned.
    fn check_split(lo: u16, hi: u16, ports: impl Iterator<Item = u32>) {
        let blocks = port_blocks(lo, hi);
        assert!(blocks.len() <= 30, "{lo}-{hi}: {} blocks", blocks.len());
        for &(start, bits) in &blocks {
            let low = (1u32 << (16 - u32::from(bits))) - 1;
            assert_eq!(
                u32::from(start) & low,
                0,
                "{lo}-{hi}: unaligned {start}/{bits}"
            );
        }
        for port in ports {
            let hits = blocks.iter().filter(|b| in_block(port, **b)).count();
            let inside = (u32::from(lo)..=u32::from(hi)).contains(&port);
            assert_eq!(
                hits,
                usize::from(inside),
                "{lo}-{hi}: port {port}: {blocks:?}"
            );
        }
    }

    #[test]
    fn port_ranges_split_into_exact_blocks_for_every_small_range() {
        for lo in 0..=130u16 {
            for hi in lo..=130 {
                check_split(lo, hi, 0..=260);
            }
        }
    }

    #[test]
    fn port_ranges_split_into_exact_blocks_for_wide_ranges() {
        for (lo, hi, count) in [
            (0, 65535, 1),
            (1, 65535, 16),
            (1024, 65535, 6),
            (65535, 65535, 1),
            (1, 65534, 30),
        ] {
            check_split(lo, hi, 0..=65535);
            assert_eq!(port_blocks(lo, hi).len(), count, "{lo}-{hi}");
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    const NESTED: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    security_groups:
      - name: g
        inbound:
          - { protocol: all, source: 10.0.0.0/16 }
          - { protocol: all, source: 10.0.1.0/24 }
          - { protocol: all, source: 10.0.1.128/25 }
          - { protocol: all, source: 0.0.0.0/0 }
        outbound:
          - { protocol: all, destination: 192.168.0.0/16 }
";

    #[test]
    fn a_cidr_covers_the_classes_inside_it_and_only_0_0_0_0_slash_0_covers_class_0() {
        let config = load_str("t.yaml", NESTED).expect("valid");
        let classes = Classes::<Ipv4Net>::of_vpc(&config.vpcs, 0, 1);
        // No entry for /0; the rest numbered in address order.
        assert_eq!(
            classes.iter().collect::<Vec<_>>(),
            [
                (net("10.0.0.0/16"), 1),
                (net("10.0.1.0/24"), 2),
                (net("10.0.1.128/25"), 3),
                (net("192.168.0.0/16"), 4),
            ]
        );
        assert_eq!(classes.inside(net("10.0.0.0/16")), [1, 2, 3]);
        assert_eq!(classes.inside(net("10.0.1.0/24")), [2, 3]);
        assert_eq!(classes.inside(net("10.0.1.128/25")), [3]);
        assert_eq!(classes.inside(net("10.0.0.0/8")), [1, 2, 3]);
        assert_eq!(classes.inside(net("0.0.0.0/0")), [1, 2, 3, 4, CLASS_NONE]);
        assert_eq!(classes.inside(net("172.16.0.0/12")), Vec::<u32>::new());
    }

    #[test]
    fn traffic_becomes_protocol_and_port_prefixes() {
        let t = |protocol, ports, icmp_type, icmp_code| TrafficMatch {
            protocol,
            ports,
            icmp_type,
            icmp_code,
        };
        let b = |proto, port, port_bits| PortBlock {
            proto,
            port,
            port_bits,
        };
        assert_eq!(traffic_blocks(&TrafficMatch::ANY), [b(SG_ANY_PROTO, 0, 0)]);
        assert_eq!(
            traffic_blocks(&t(Some(47), None, None, None)),
            [b(47, 0, 0)]
        );
        assert_eq!(traffic_blocks(&t(Some(6), None, None, None)), [b(6, 0, 0)]);
        assert_eq!(
            traffic_blocks(&t(Some(17), Some((53, 53)), None, None)),
            [b(17, 53, 16)]
        );
        assert_eq!(traffic_blocks(&t(Some(1), None, None, None)), [b(1, 0, 0)]);
        assert_eq!(
            traffic_blocks(&t(Some(1), None, Some(3), None)),
            [b(1, 0x0300, 8)]
        );
        assert_eq!(
            traffic_blocks(&t(Some(1), None, Some(3), Some(4))),
            [b(1, 0x0304, 16)]
        );
        let any_type = traffic_blocks(&t(Some(1), None, None, Some(4)));
        assert_eq!(any_type.len(), 256);
        assert_eq!(any_type[8], b(1, 0x0804, 16));
    }

    const SMALL: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: s0 }
    security_groups:
      - name: web
        inbound:
          - { protocol: tcp, ports: 80-81, source: 10.0.0.0/24 }
          - { protocol: icmp, icmp: { type: 8 }, source: 0.0.0.0/0 }
          - { protocol: all, source: sg:admin }
        outbound: []
      - name: admin
        inbound:
          - { protocol: 47, source: 10.0.0.10/32 }
    instances:
      - { name: w, subnet: a, private_ip: 10.0.0.10, security_groups: [web] }
      - { name: x, subnet: a, private_ip: 10.0.0.11, security_groups: [admin] }
      - { name: d, subnet: a, private_ip: 10.0.0.12 }
";

    fn small(slot: u32) -> Compiled {
        let config = load_str("t.yaml", SMALL).expect("valid");
        compile(&config, slot, &|_: &str| Some(7)).expect("compiles")
    }

    #[test]
    fn remote_classes_are_the_named_cidrs_and_the_members_of_referenced_groups() {
        let c = small(1);
        let vpc = slot_id(1, 1);
        let expected: BTreeMap<SgRemotePrefix, u32> = [
            ("10.0.0.0/24", 1),
            // Named by admin's rule, and w's own address: one entry.
            ("10.0.0.10/32", 2),
            // x is a member of admin (referenced by web), d of default (referenced by itself).
            ("10.0.0.11/32", 3),
            ("10.0.0.12/32", 4),
        ]
        .into_iter()
        .map(|(n, class)| (SgRemotePrefix::new(vpc, net(n)), class))
        .collect();
        assert_eq!(c.sg_remotes, expected);
        assert_eq!(c.sg_remotes.keys().next().map(|k| k.prefix_len), Some(56));
    }

    #[test]
    fn rules_are_written_per_instance_class_and_port_block() {
        let c = small(0);
        // Instances w, x, d are 1, 2, 3; groups web, admin, (implicit) default are 0, 1, 2.
        let (w, x, d) = (1, 2, 3);
        let (inb, out) = (ACL_INBOUND as u8, ACL_OUTBOUND as u8);
        let mut expected = BTreeMap::new();
        let mut add = |endpoint, classes: &[u32], direction, block: PortBlock, g: u32, r: u32| {
            for &class in classes {
                let site = RuleSite {
                    endpoint,
                    direction,
                    value: SgRuleValue { rule: g << 16 | r },
                };
                let (key, value) = site.entry(class, block);
                expected.insert(key, value);
            }
        };
        let all = PortBlock {
            proto: SG_ANY_PROTO,
            port: 0,
            port_bits: 0,
        };
        let everyone = [0, 1, 2, 3, 4];
        // web: tcp 80-81 from the /24 (every class inside it), echo requests from anywhere,
        // everything from admin's member x; no outbound rule.
        let http = PortBlock {
            proto: 6,
            port: 80,
            port_bits: 15,
        };
        add(w, &[1, 2, 3, 4], inb, http, 0, 0);
        let echo = PortBlock {
            proto: 1,
            port: 0x0800,
            port_bits: 8,
        };
        add(w, &everyone, inb, echo, 0, 1);
        add(w, &[3], inb, all, 0, 2);
        // admin: GRE from 10.0.0.10/32; outbound omitted = everything.
        let gre = PortBlock {
            proto: 47,
            port: 0,
            port_bits: 0,
        };
        add(x, &[2], inb, gre, 1, 0);
        add(x, &everyone, out, all, 1, 0);
        // default: everything from its members (d), everything out.
        add(d, &[4], inb, all, 2, 0);
        add(d, &everyone, out, all, 2, 0);
        assert_eq!(c.sg_rules, expected);
        let http_key = c.sg_rules.keys().find(|k| k.key.proto == 6).expect("http");
        assert_eq!(
            (http_key.prefix_len, http_key.key.port_be),
            (95, 80u16.to_be())
        );
    }

    /// `app`'s group `web` admits postgres from `shared`'s group `db` (`sg:shared/db`).
    const PEERED: &str = "vpcs:
  - name: app
    cidr_blocks: [10.0.0.0/16]
    subnets: [{ name: a, cidr: 10.0.0.0/24, interface: s0 }]
    peering_connections: [{ name: pcx, peer_vpc: shared }]
    security_groups:
      - { name: web, inbound: [{ protocol: tcp, ports: 5432, source: sg:shared/db }] }
    instances:
      - { name: w, subnet: a, private_ip: 10.0.0.10, security_groups: [web] }
  - name: shared
    cidr_blocks: [10.1.0.0/16]
    subnets: [{ name: s, cidr: 10.1.0.0/24, interface: s1 }]
    peering_connections: [{ name: pcx, peer_vpc: app }]
    security_groups: [{ name: db, inbound: [] }]
    instances:
      - { name: db1, subnet: s, private_ip: 10.1.0.20, security_groups: [db] }
      - { name: other, subnet: s, private_ip: 10.1.0.21 }
";

    #[test]
    fn a_peer_vpcs_group_is_the_classes_of_its_members_there() {
        let config = load_str("t.yaml", PEERED).expect("valid");
        // app's only remote is shared's db member; shared's are its default group's members.
        let app = Classes::<Ipv4Net>::of_vpc(&config.vpcs, 0, 1);
        assert_eq!(app.iter().collect::<Vec<_>>(), [(net("10.1.0.20/32"), 1)]);
        let rule = &config.vpcs[0].security_groups[0].inbound[0];
        assert_eq!(app.of_peer(&config.vpcs, 0, &rule.peer), [1]);
        let shared = Classes::<Ipv4Net>::of_vpc(&config.vpcs, 1, 1);
        assert_eq!(
            shared.iter().collect::<Vec<_>>(),
            [(net("10.1.0.21/32"), 1)]
        );
        // Written for app's VPC id: the datapath looks remotes up in the checking VPC.
        let c =
            compile(&config, 0, &|n: &str| Some(if n == "s0" { 7 } else { 8 })).expect("compiles");
        let app_id = slot_id(0, 1);
        assert_eq!(
            c.sg_remotes
                .get(&SgRemotePrefix::new(app_id, net("10.1.0.20/32"))),
            Some(&1)
        );
    }

    #[test]
    fn nat_gateways_get_no_rules() {
        let yaml = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up }
    nat_gateways: [{ name: nat, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: s0 }
";
        let config = load_str("t.yaml", yaml).expect("valid");
        let names = ["up", "s0"];
        let c = compile(&config, 0, &|n: &str| {
            names.iter().position(|x| *x == n).map(|i| i as u32 + 1)
        })
        .expect("compiles");
        assert!(c.sg_rules.is_empty(), "{:?}", c.sg_rules);
        assert!(c.sg_remotes.is_empty(), "no member of default");
    }

    #[test]
    fn a_prefix_list_covers_the_union_of_its_cidrs_classes_each_once() {
        let yaml = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    prefix_lists:
      - { name: nested, cidrs: [192.168.0.0/16, 192.168.1.0/24] }
      - { name: everything, cidrs: [0.0.0.0/0] }
      - { name: unused, cidrs: [172.16.0.0/12] }
    security_groups:
      - name: g
        inbound:
          - { protocol: all, source: 192.168.1.128/25 }
          - { protocol: all, source: pl:nested }
        outbound:
          - { protocol: all, destination: pl:everything }
";
        let config = load_str("t.yaml", yaml).expect("valid");
        let vpc = &config.vpcs[0];
        let classes = Classes::<Ipv4Net>::of_vpc(&config.vpcs, 0, 1);
        // The referenced lists' CIDRs are class boundaries (not /0, nor an unused list's).
        assert_eq!(
            classes.iter().collect::<Vec<_>>(),
            [
                (net("192.168.0.0/16"), 1),
                (net("192.168.1.0/24"), 2),
                (net("192.168.1.128/25"), 3),
            ]
        );
        let peer = |r: usize| &vpc.security_groups[0].inbound[r].peer;
        assert_eq!(classes.of_peer(&config.vpcs, 0, peer(0)), [3]);
        // 192.168.0.0/16 covers 1, 2, 3 and 192.168.1.0/24 covers 2, 3: each once.
        assert_eq!(classes.of_peer(&config.vpcs, 0, peer(1)), [1, 2, 3]);
        let everything = &vpc.security_groups[0].outbound[0].peer;
        assert_eq!(
            classes.of_peer(&config.vpcs, 0, everything),
            [CLASS_NONE, 1, 2, 3]
        );
    }
}
