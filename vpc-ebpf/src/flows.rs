//! Per-flow counters (layouts and the agent's side: `vpc_common::flow`).

use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    Addr6, DropReason,
    flow::{ETH_HLEN, FLOW_ACCEPT, FLOW_REJECT, FlowKey, FlowStats, aws_tcp_flags, skipped_key},
};

use crate::{
    clock,
    family::Family,
    maps::{FLOWS_GEN, FLOWS_SKIPPED},
    packet::Flow,
    verdict::{Forward, Verdict},
};

/// What happened to the packet, for its flow record.
enum Outcome<'a> {
    Accepted(&'a Forward),
    Rejected(DropReason),
}

/// The flow record of a decided packet (`verdict`): the one call per packet of both IPv4
/// ingress programs, in the family's map (`Family::flows`). Packets returned as they are (to
/// the kernel, ARP answers) are not recorded.
#[inline(always)]
pub fn account<F: Family, A>(
    ifindex: u32,
    flow: &Flow<F>,
    bytes: u64,
    verdict: &Verdict<A>,
    fwd: &Forward,
) {
    match verdict {
        Verdict::Return(_) => {}
        Verdict::Sent(_) => record(ifindex, flow, bytes, Outcome::Accepted(fwd)),
        Verdict::Refused { reason, .. } => record(ifindex, flow, bytes, Outcome::Rejected(*reason)),
    }
}

/// The flow record of a decided IPv6 packet, in `FLOWS6`: accepted (forwarded as `fwd` says)
/// when `reason` is 0, else rejected for that `DropReason`. A BPF function of its own, called
/// by the IPv6 programs after their pipeline returned, so that its frame is not added to the
/// pipeline's (those programs are at the verifier's 512 bytes); arguments by reference and no
/// Rust enum (the kernel refuses their BTF).
#[inline(never)]
pub fn account6(ifindex: u32, flow: &Flow<Addr6>, bytes: u64, reason: u32, fwd: &Forward) {
    let outcome = match DropReason::from_u32(reason) {
        None => Outcome::Accepted(fwd),
        Some(reason) => Outcome::Rejected(reason),
    };
    record(ifindex, flow, bytes, outcome);
}

/// Counts one packet of `flow` (a frame `bytes` long) that arrived on `ifindex`. Flow logs
/// count the IP packet, as AWS does: the IP total length, or the frame without its Ethernet
/// header where the header says 0 (a GSO packet larger than 64 KiB).
#[inline(always)]
// The key by reference (not the by-value `Borrow` clippy prefers): no copy of it on the stack,
// 40 bytes less in `account6`, 8 in `vpc_xdp` and `vpc_tc_ingress`.
#[allow(clippy::needless_borrows_for_generic_args)]
fn record<F: Family>(ifindex: u32, flow: &Flow<F>, bytes: u64, outcome: Outcome<'_>) {
    let generation = FLOWS_GEN.get(0).copied().unwrap_or(0) & 1;
    let key = FlowKey {
        ifindex,
        src: flow.src,
        dst: flow.dst,
        sport: flow.sport,
        dport: flow.dport,
        proto: flow.proto,
        action: match outcome {
            Outcome::Accepted(_) => FLOW_ACCEPT,
            Outcome::Rejected(_) => FLOW_REJECT,
        },
        generation: generation as u8,
        _pad: 0,
    };
    let now = clock::now();
    let flows = F::flows();
    let stats = match flows.get_ptr_mut(&key) {
        Some(p) => p,
        None => {
            // Per-CPU: the insert fills this CPU's slot; the others start zeroed and are
            // initialised by their first packet below.
            let _ = flows.insert(&key, &FlowStats::default(), u64::from(BPF_NOEXIST));
            match flows.get_ptr_mut(&key) {
                Some(p) => p,
                None => {
                    skipped(skipped_key(ifindex, generation));
                    return;
                }
            }
        }
    };
    // SAFETY: per-CPU value of this CPU, valid for the program's duration.
    let s = unsafe { &mut *stats };
    if s.packets == 0 {
        // This CPU's first packet of the flow.
        s.first_ns = now;
        match outcome {
            Outcome::Accepted(fwd) => {
                // 0: not translated (the key's address; IPv6 always).
                s.out_ifindex = fwd.ifindex;
                s.pkt_src = fwd.new_src;
                s.pkt_dst = fwd.new_dst;
            }
            Outcome::Rejected(reason) => s.reason = reason as u32,
        }
    }
    s.packets += 1;
    s.bytes += if flow.ip_len != 0 {
        u64::from(flow.ip_len)
    } else {
        bytes.saturating_sub(ETH_HLEN)
    };
    s.last_ns = now;
    s.tcp_flags |= aws_tcp_flags(flow.tcp_flags);
}

#[inline(always)]
fn skipped(key: u32) {
    match FLOWS_SKIPPED.get_ptr_mut(key) {
        // SAFETY: per-CPU value.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = FLOWS_SKIPPED.insert(key, 1u64, 0);
        }
    }
}
