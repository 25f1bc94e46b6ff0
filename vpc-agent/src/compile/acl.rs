//! `ACLS` and `ACLS6` entries: one [`AclTable`] per ACL and direction, rules sorted by rule
//! number; `ACLS` holds an ACL's IPv4 rules, `ACLS6` (at the same index) its IPv6 rules.

use std::collections::BTreeMap;

use vpc_common::acl::{
    ACL_ALLOW, ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, ACL_DENY, AclRule, AclTable,
    MAX_ACL_RULES,
};

use vpc_common::proto::{PROTO_TCP, PROTO_UDP};

use super::{Overflow, family::Family};
use crate::config::validated::AclRuleDef;

/// Encodes one rule (see vpc-common/src/acl.rs) whose CIDR is `cidr` (the rule's, of family
/// `N`).
pub fn encode_rule<N: Family>(rule: &AclRuleDef, cidr: N) -> AclRule<N::Raw> {
    let t = &rule.traffic;
    let (addr, mask) = cidr.raw();
    let has_ports = matches!(t.protocol, Some(PROTO_TCP | PROTO_UDP));
    let (port_lo, port_hi) = t.ports.filter(|_| has_ports).unwrap_or((0, u16::MAX));
    let mut flags = 0;
    if t.protocol.is_none() {
        flags |= ACL_ANY_PROTO;
    }
    if t.icmp_type.is_none() {
        flags |= ACL_ANY_ICMP_TYPE;
    }
    if t.icmp_code.is_none() {
        flags |= ACL_ANY_ICMP_CODE;
    }
    AclRule {
        addr,
        mask,
        port_lo,
        port_hi,
        proto: t.protocol.unwrap_or(0),
        action: if rule.allow { ACL_ALLOW } else { ACL_DENY },
        icmp_type: t.icmp_type.unwrap_or(0),
        icmp_code: t.icmp_code.unwrap_or(0),
        rule_number: rule.number,
        flags,
        _pad: 0,
    }
}

/// The rules of family `N` of one direction of an ACL (`rules` sorted by number, as
/// validation leaves them), in order; `Err(count)` if there are more than the datapath
/// evaluates.
pub fn encode_table<N: Family>(rules: &[AclRuleDef]) -> Result<AclTable<N::Raw>, usize> {
    let rules: Vec<(&AclRuleDef, N)> = rules
        .iter()
        .filter_map(|r| N::of(r.cidr).map(|cidr| (r, cidr)))
        .collect();
    if rules.len() > MAX_ACL_RULES {
        return Err(rules.len());
    }
    let mut table = AclTable {
        count: rules.len() as u32,
        ..Default::default()
    };
    for (slot, (rule, cidr)) in table.rules.iter_mut().zip(rules) {
        *slot = encode_rule(rule, cidr);
    }
    Ok(table)
}

/// Encodes the rules of family `N` of one direction of an ACL as entry `index` of `out`
/// (`ACLS` for IPv4, `ACLS6` for IPv6), or records the overflow (in `map`, the map's
/// description).
pub fn encode_into<N: Family>(
    map: &'static str,
    rules: &[AclRuleDef],
    index: u32,
    out: &mut BTreeMap<u32, AclTable<N::Raw>>,
    overflows: &mut Vec<Overflow>,
) {
    match encode_table::<N>(rules) {
        Ok(table) => {
            out.insert(index, table);
        }
        Err(needed) => overflows.push(Overflow {
            map,
            needed,
            limit: MAX_ACL_RULES,
        }),
    }
}

#[cfg(test)]
mod tests {
    use ipnet::{Ipv4Net, Ipv6Net};
    use vpc_common::proto::PROTO_ICMPV6;

    use super::*;
    use crate::config::validated::TrafficMatch;

    fn rule(number: u16, traffic: TrafficMatch, cidr: &str) -> AclRuleDef {
        AclRuleDef {
            number,
            traffic,
            cidr: cidr.parse().unwrap(),
            allow: true,
        }
    }

    #[test]
    fn each_family_gets_its_own_rules_in_order() {
        let echo = TrafficMatch {
            protocol: Some(PROTO_ICMPV6),
            icmp_type: Some(128),
            ..TrafficMatch::ANY
        };
        let rules = [
            rule(100, TrafficMatch::ANY, "0.0.0.0/0"),
            rule(101, TrafficMatch::ANY, "::/0"),
            rule(105, echo, "2001:db8:1234:1a00::/56"),
            rule(110, TrafficMatch::ANY, "10.0.0.0/8"),
        ];
        let v4 = encode_table::<Ipv4Net>(&rules).expect("fits");
        assert_eq!(v4.count, 2);
        let numbers: Vec<u16> = v4.rules[..2].iter().map(|r| r.rule_number).collect();
        assert_eq!(numbers, [100, 110]);
        let v6 = encode_table::<Ipv6Net>(&rules).expect("fits");
        assert_eq!(v6.count, 2);
        let (all, icmp) = (v6.rules[0], v6.rules[1]);
        assert_eq!(
            (all.rule_number, all.addr, all.mask),
            (101, [0; 16], [0; 16])
        );
        assert_eq!(
            all.flags,
            ACL_ANY_PROTO | ACL_ANY_ICMP_TYPE | ACL_ANY_ICMP_CODE
        );
        let mut prefix = [0u8; 16];
        prefix[..7].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x1a]);
        let mut mask = [0u8; 16];
        mask[..7].fill(0xff);
        assert_eq!(
            (
                icmp.rule_number,
                icmp.proto,
                icmp.icmp_type,
                icmp.addr,
                icmp.mask
            ),
            (105, PROTO_ICMPV6, 128, prefix, mask)
        );
        // Any code of type 128; ICMPv6 has no ports.
        assert_eq!(icmp.flags, ACL_ANY_ICMP_CODE);
        assert_eq!((icmp.port_lo, icmp.port_hi), (0, u16::MAX));
        assert_eq!(v6.rules[2], AclRule::default(), "unused slots stay zero");
    }

    #[test]
    fn too_many_rules_of_one_family_overflow_that_familys_map() {
        let rules: Vec<AclRuleDef> = (1..=MAX_ACL_RULES as u16 + 1)
            .map(|n| rule(n, TrafficMatch::ANY, "2001:db8::/32"))
            .collect();
        let (mut v4, mut v6, mut overflows) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
        encode_into::<Ipv4Net>("ACLS", &rules, 3, &mut v4, &mut overflows);
        encode_into::<Ipv6Net>("ACLS6", &rules, 3, &mut v6, &mut overflows);
        assert_eq!(v4[&3].count, 0, "no IPv4 rule: deny all");
        assert!(v6.is_empty());
        assert_eq!(
            overflows,
            [Overflow {
                map: "ACLS6",
                needed: MAX_ACL_RULES + 1,
                limit: MAX_ACL_RULES
            }]
        );
    }
}
