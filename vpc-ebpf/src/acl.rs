//! Network ACLs: stateless, ordered by rule number, first match wins, implicit deny.
//!
//! The scan is a bounded loop over at most `MAX_ACL_RULES` (128) rules a direction, more
//! than AWS's maximum of 40; the verifier accepts it because the bound is a constant. One
//! scan for both families: an IPv6 packet is matched against the ACL's IPv6 rules (`ACLS6`),
//! ICMPv6 like ICMP.

use vpc_common::acl::{
    ACL_ALLOW, ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, AclRule, MAX_ACL_RULES,
    acl_index,
};

use aya_ebpf::{cty::c_void, helpers::bpf_loop};

use vpc_common::trace::STEP_ACL;

use crate::{
    family::Family,
    packet::{Flow, PROTO_TCP, PROTO_UDP},
    trace::Mode,
};

/// State of one ACL scan, shared with the `bpf_loop` callback.
#[repr(C)]
struct Scan<A> {
    remote: A,
    index: u32,
    dport: u16,
    proto: u8,
    icmp_type: u8,
    icmp_code: u8,
    /// 0 while no rule matched, then the matching rule's action.
    action: u8,
    _pad: u8,
    /// The matching rule's number (0: none matched), for traces.
    rule: u16,
}

/// Whether the network ACL `acl_id` allows `flow` in `direction`; `remote` is the address the
/// rule CIDRs match (the source inbound, the destination outbound).
///
/// The scan runs under `bpf_loop`, so the verifier checks one rule evaluation instead of
/// unrolling `MAX_ACL_RULES` of them at every call site.
#[inline(always)]
pub fn allows<M: Mode, A: Family>(
    mode: M,
    acl_id: u32,
    direction: u32,
    flow: &Flow<A>,
    remote: A,
) -> bool {
    let mut scan = Scan {
        index: acl_index(acl_id, direction),
        remote,
        dport: flow.dport,
        proto: flow.proto,
        icmp_type: flow.icmp_type,
        icmp_code: flow.icmp_code,
        action: 0,
        _pad: 0,
        rule: 0,
    };
    // SAFETY: the callback only touches `scan` through the pointer, for the call's duration.
    unsafe {
        bpf_loop(
            MAX_ACL_RULES as u32,
            A::ACL_STEP as *mut c_void,
            (&raw mut scan).cast(),
            0,
        );
    }
    let allowed = scan.action == ACL_ALLOW;
    mode.step(
        STEP_ACL,
        allowed as u8,
        scan.rule,
        acl_id,
        direction,
        remote.trace_word(),
    );
    allowed
}

/// The scan's callback for IPv4 rules (`ACLS`).
pub extern "C" fn acl_step4(i: u64, ctx: *mut c_void) -> i64 {
    acl_step::<u32>(i, ctx)
}

/// The scan's callback for IPv6 rules (`ACLS6`).
pub extern "C" fn acl_step6(i: u64, ctx: *mut c_void) -> i64 {
    acl_step::<vpc_common::Addr6>(i, ctx)
}

/// One rule of the scan: returns 1 to stop (matched, or past the last rule), 0 to go on.
#[inline(always)]
fn acl_step<A: Family>(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Scan` that `allows` passed to bpf_loop.
    let scan = unsafe { &mut *ctx.cast::<Scan<A>>() };
    let Some(table) = A::acls().get(scan.index) else {
        return 1;
    };
    let i = i as usize;
    if i >= table.count as usize || i >= MAX_ACL_RULES {
        return 1;
    }
    let rule = &table.rules[i];
    if matches(rule, scan) {
        scan.action = rule.action;
        scan.rule = rule.rule_number;
        return 1;
    }
    0
}

#[inline(always)]
fn matches<A: Family>(rule: &AclRule<A>, flow: &Scan<A>) -> bool {
    if !flow.remote.within(&rule.addr, &rule.mask) {
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
        p if p == A::ICMP => {
            (rule.flags & ACL_ANY_ICMP_TYPE != 0 || rule.icmp_type == flow.icmp_type)
                && (rule.flags & ACL_ANY_ICMP_CODE != 0 || rule.icmp_code == flow.icmp_code)
        }
        _ => true,
    }
}
