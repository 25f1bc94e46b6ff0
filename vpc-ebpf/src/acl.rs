//! Network ACLs: stateless, ordered by rule number, first match wins, implicit deny.
//!
//! The scan is a bounded loop over at most `MAX_ACL_RULES` (128) rules a direction, more
//! than AWS's maximum of 40; the verifier accepts it because the bound is a constant.

use vpc_common::acl::{
    ACL_ALLOW, ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, AclRule, MAX_ACL_RULES,
    acl_index,
};

use crate::{
    maps::ACLS,
    packet::{Flow, PROTO_ICMP, PROTO_TCP, PROTO_UDP},
};

/// Whether the network ACL `acl_id` allows `flow` in `direction`; `remote` is the address the
/// rule CIDRs match (the source inbound, the destination outbound).
#[inline(always)]
pub fn allows(acl_id: u32, direction: u32, flow: &Flow, remote: u32) -> bool {
    let Some(table) = ACLS.get(acl_index(acl_id, direction)) else {
        return false;
    };
    let count = table.count as usize;
    let mut i = 0;
    while i < MAX_ACL_RULES {
        if i >= count {
            break;
        }
        let rule = &table.rules[i];
        if matches(rule, flow, remote) {
            return rule.action == ACL_ALLOW;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn matches(rule: &AclRule, flow: &Flow, remote: u32) -> bool {
    if remote & rule.mask != rule.addr {
        return false;
    }
    if rule.flags & ACL_ANY_PROTO != 0 {
        return true;
    }
    if rule.proto != flow.proto {
        return false;
    }
    match flow.proto {
        PROTO_TCP | PROTO_UDP => flow.dport >= rule.port_lo && flow.dport <= rule.port_hi,
        PROTO_ICMP => {
            (rule.flags & ACL_ANY_ICMP_TYPE != 0 || rule.icmp_type == flow.icmp_type)
                && (rule.flags & ACL_ANY_ICMP_CODE != 0 || rule.icmp_code == flow.icmp_code)
        }
        _ => true,
    }
}
