//! `ACLS` entries: one [`AclTable`] per ACL and direction, rules sorted by rule number.

use vpc_common::acl::{
    ACL_ALLOW, ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, ACL_DENY, AclRule, AclTable,
    MAX_ACL_RULES,
};

use vpc_common::proto::{PROTO_TCP, PROTO_UDP};

use super::net_raw;
use crate::config::validated::AclRuleDef;

/// Encodes one rule (see vpc-common/src/acl.rs).
pub fn encode_rule(rule: &AclRuleDef) -> AclRule {
    let t = &rule.traffic;
    let (addr, mask) = match rule.cidr {
        ipnet::IpNet::V4(net) => net_raw(net),
        // Filtered out by `encode_table`; were one here, it would match nothing.
        ipnet::IpNet::V6(_) => (u32::MAX, u32::MAX),
    };
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

/// One direction of an ACL (`rules` sorted by number, as validation leaves them); `None` if
/// it has more rules than the datapath evaluates. Only the IPv4 rules are encoded: the
/// datapath drops IPv6 (`not_ipv4`), so its rules have nothing to match.
pub fn encode_table(rules: &[AclRuleDef]) -> Option<AclTable> {
    let rules: Vec<&AclRuleDef> = rules.iter().filter(|r| r.cidr.addr().is_ipv4()).collect();
    if rules.len() > MAX_ACL_RULES {
        return None;
    }
    let mut table = AclTable {
        count: u32::try_from(rules.len()).ok()?,
        ..Default::default()
    };
    for (slot, rule) in table.rules.iter_mut().zip(rules) {
        *slot = encode_rule(rule);
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validated::TrafficMatch;

    #[test]
    fn ipv6_rules_are_not_encoded() {
        let rule = |number, cidr: &str| AclRuleDef {
            number,
            traffic: TrafficMatch::ANY,
            cidr: cidr.parse().unwrap(),
            allow: true,
        };
        let rules = [
            rule(100, "0.0.0.0/0"),
            rule(101, "::/0"),
            rule(110, "10.0.0.0/8"),
        ];
        let table = encode_table(&rules).expect("fits");
        assert_eq!(table.count, 2);
        let numbers: Vec<u16> = table.rules[..2].iter().map(|r| r.rule_number).collect();
        assert_eq!(numbers, [100, 110]);
    }
}
