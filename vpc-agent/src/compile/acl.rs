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
    let (addr, mask) = net_raw(rule.cidr);
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
/// it has more rules than the datapath evaluates.
pub fn encode_table(rules: &[AclRuleDef]) -> Option<AclTable> {
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
