//! Security groups for new connections: two LPM lookups (remote class, then the instance's
//! compiled rules), plus one for rules of every protocol. The cost does not depend on the
//! number of rules. Layouts: `vpc_common::security_group`.

use aya_ebpf::maps::lpm_trie::Key;
use vpc_common::security_group::{
    SG_ANY_PROTO, SG_REMOTE_FIXED_BITS, SG_RULE_FIXED_BITS, SgRemoteKey, SgRuleKey,
};

use vpc_common::trace::{
    SG_MATCH_ANY_PROTO, SG_MATCH_NONE, SG_MATCH_PROTO_PORT, STEP_SECURITY_GROUP,
    STEP_SECURITY_GROUP_SKIPPED,
};

use crate::{
    conntrack::Track,
    family::Family,
    maps::SG_RULES,
    packet::{Flow, PROTO_TCP, PROTO_UDP},
    trace::Mode,
};

/// The security groups' say on a packet whose connection lookup gave `track`: a tracked
/// connection skips them (as in AWS), a new one needs a rule ([`allows`]).
#[inline(always)]
pub fn checks<M: Mode, A: Family>(
    mode: M,
    track: &Track,
    vpc_id: u32,
    endpoint: u32,
    direction: u32,
    flow: &Flow<A>,
    remote: A,
) -> bool {
    if track.established() {
        mode.step(STEP_SECURITY_GROUP_SKIPPED, 0, direction as u16, 0, 0, 0);
        return true;
    }
    allows(mode, vpc_id, endpoint, direction, flow, remote)
}

/// Whether a rule of the security group set `endpoint` (an instance's, in `vpc_id`) allows `flow` in `direction`; `remote`
/// is the peer address (the source inbound, the destination outbound).
#[inline(always)]
pub fn allows<M: Mode, A: Family>(
    mode: M,
    vpc_id: u32,
    endpoint: u32,
    direction: u32,
    flow: &Flow<A>,
    remote: A,
) -> bool {
    let class = A::sg_remotes()
        .get(&Key::new(
            SG_REMOTE_FIXED_BITS + A::BITS,
            SgRemoteKey {
                vpc_id,
                addr: remote,
            },
        ))
        .copied()
        .unwrap_or(0);
    let port = match flow.proto {
        PROTO_TCP | PROTO_UDP => flow.dport,
        p if p == A::ICMP => (u16::from(flow.icmp_type) << 8) | u16::from(flow.icmp_code),
        _ => 0,
    };
    let mut key = SgRuleKey {
        endpoint,
        class,
        direction: direction as u8,
        proto: flow.proto,
        port_be: port.to_be(),
    };
    let matched = if SG_RULES
        .get(&Key::new(SG_RULE_FIXED_BITS + 16, key))
        .is_some()
    {
        SG_MATCH_PROTO_PORT
    } else {
        key.proto = SG_ANY_PROTO;
        key.port_be = 0;
        if SG_RULES
            .get(&Key::new(SG_RULE_FIXED_BITS + 16, key))
            .is_some()
        {
            SG_MATCH_ANY_PROTO
        } else {
            SG_MATCH_NONE
        }
    };
    let allowed = matched != SG_MATCH_NONE;
    mode.step(
        STEP_SECURITY_GROUP,
        allowed as u8,
        direction as u16,
        class,
        matched,
        endpoint,
    );
    allowed
}
