//! ICMP errors from the router itself: time exceeded (a packet that would leave with TTL 0)
//! and fragmentation needed (DF set, larger than the next hop's MTU), so that traceroute shows
//! the hop and path MTU discovery works through the router.
//!
//! The packet that caused the error is turned into the error in place and sent back out of
//! the interface it came in by (XDP_TX, or a TC redirect to the ingress device):
//!
//! ```text
//!  0     14                34          42                        70
//! +-----+-------------------+-----------+-------------------------+
//! | eth | IPv4 (20, from the | ICMP (8)  | the packet's IPv4 header |
//! |     | router's address)  |           | (20) + 8 bytes after it  |
//! +-----+-------------------+-----------+-------------------------+
//! ```
//!
//! Never about an ICMP error, a later fragment or a packet with IP options (whose quoted
//! header would not fit this layout); at most `ICMP_RATE_PER_SEC` per CPU with bursts of
//! `ICMP_BURST`; sent and rate-limited errors are counted in `ICMP_STATS`.

use aya_ebpf::{
    btf_maps::PerCpuArray,
    helpers::bpf_redirect,
    macros::btf_map,
    programs::{TcContext, XdpContext},
};
use vpc_common::{
    DropReason,
    icmp::{
        ICMP_BURST, ICMP_RATE_PER_SEC, ICMP_STAT_FRAG_NEEDED, ICMP_STAT_RATE_LIMITED,
        ICMP_STAT_SLOTS, ICMP_STAT_TIME_EXCEEDED, IcmpBucket,
    },
};

use crate::{
    clock,
    csum::{checksum, sum},
    packet::{ETH_LEN, Flow, Frag, PROTO_ICMP, header},
    reply,
    trace::Mode,
};

pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Destination unreachable, code 4: fragmentation needed and DF set.
pub const ICMP_FRAG_NEEDED: u8 = 4;

/// The error's frame length (see the module docs).
pub const ERROR_LEN: usize = 70;
const QUOTED_LEN: usize = 28;

/// Per-CPU token bucket.
#[btf_map]
static ICMP_BUCKET: PerCpuArray<IcmpBucket, 1> = PerCpuArray::new();

/// Per-CPU counters (`vpc_common::icmp::ICMP_STAT_*`).
#[btf_map]
pub static ICMP_STATS: PerCpuArray<u64, { ICMP_STAT_SLOTS as usize }> = PerCpuArray::new();

/// Per-CPU scratch space the error is built in (too big for the stack next to the rest).
#[btf_map]
static ICMP_SCRATCH: PerCpuArray<[u8; ERROR_LEN], 1> = PerCpuArray::new();

/// An error to send about the packet being processed.
#[derive(Clone, Copy)]
pub struct IcmpError {
    pub ty: u8,
    pub code: u8,
    /// Next-hop MTU (fragmentation needed only).
    pub mtu: u16,
}

impl IcmpError {
    pub const fn time_exceeded() -> Self {
        Self {
            ty: ICMP_TIME_EXCEEDED,
            code: 0,
            mtu: 0,
        }
    }

    pub const fn frag_needed(mtu: u16) -> Self {
        Self {
            ty: ICMP_DEST_UNREACH,
            code: ICMP_FRAG_NEEDED,
            mtu,
        }
    }

    fn stat(&self) -> u32 {
        if self.ty == ICMP_TIME_EXCEEDED {
            ICMP_STAT_TIME_EXCEEDED
        } else {
            ICMP_STAT_FRAG_NEEDED
        }
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = ICMP_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

/// Takes a token from this CPU's bucket.
#[inline(always)]
fn allowed() -> bool {
    const COST: u64 = 1_000_000_000 / ICMP_RATE_PER_SEC;
    let Some(bucket) = ICMP_BUCKET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot, used only here for the program's duration.
    let b = unsafe { &mut *bucket };
    let now = clock::now();
    let credit = (b.credit_ns + now.saturating_sub(b.last_ns)).min(ICMP_BURST * COST);
    b.last_ns = now;
    if credit < COST {
        b.credit_ns = credit;
        count(ICMP_STAT_RATE_LIMITED);
        return false;
    }
    b.credit_ns = credit - COST;
    true
}

/// Whether an error may be sent about `flow` at all (RFC 1812 4.3.2.7).
#[inline(always)]
fn about_this(flow: &Flow, router_ip: u32) -> bool {
    let ihl = flow.l4_off - ETH_LEN;
    let icmp_error = flow.proto == PROTO_ICMP && flow.inner.is_some();
    router_ip != 0 && ihl == 20 && flow.frag != Frag::Later && !icmp_error
}

/// Builds the error in the scratch buffer from the frame's first `ETH_LEN + 28` bytes
/// (`head`); returns it.
#[inline(always)]
fn build(
    head: &[u8; ETH_LEN + QUOTED_LEN],
    router_ip: u32,
    e: &IcmpError,
) -> Option<*mut [u8; ERROR_LEN]> {
    let out = ICMP_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot, used only here for the program's duration.
    let f = unsafe { &mut *out };
    // Ethernet: back to where the packet came from, from the address it was sent to.
    f[0..6].copy_from_slice(&head[6..12]);
    f[6..12].copy_from_slice(&head[0..6]);
    f[12..14].copy_from_slice(&head[12..14]);
    // IPv4: 20 bytes, from the router, to the packet's source.
    let ip = &mut f[ETH_LEN..ETH_LEN + 20];
    ip.copy_from_slice(&[
        0x45,
        0,
        0,
        (20 + 8 + QUOTED_LEN) as u8,
        0,
        0,
        0,
        0,
        64,
        PROTO_ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    ip[12..16].copy_from_slice(&router_ip.to_ne_bytes());
    ip[16..20].copy_from_slice(&head[ETH_LEN + 12..ETH_LEN + 16]);
    let check = checksum(sum(ip, 0));
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    // ICMP: type, code, checksum, then unused (and the MTU for fragmentation needed).
    let icmp_off = ETH_LEN + 20;
    f[icmp_off..icmp_off + 8].copy_from_slice(&[e.ty, e.code, 0, 0, 0, 0, 0, 0]);
    f[icmp_off + 6..icmp_off + 8].copy_from_slice(&e.mtu.to_be_bytes());
    f[icmp_off + 8..].copy_from_slice(&head[ETH_LEN..]);
    let check = checksum(sum(&f[icmp_off..], 0));
    f[icmp_off + 2..icmp_off + 4].copy_from_slice(&check.to_be_bytes());
    Some(out)
}

/// XDP: turns the packet into error `e` from `router_ip` and returns `XDP_TX`, or `None`
/// when no error is sent (then the caller drops the packet).
#[inline(always)]
pub fn xdp(ctx: &XdpContext, flow: &Flow, router_ip: u32, e: &IcmpError) -> Option<u32> {
    if !about_this(flow, router_ip) || !allowed() {
        return None;
    }
    // Copied out before the frame changes.
    let head: [u8; ETH_LEN + QUOTED_LEN] = *header(ctx, 0).ok()?;
    let built = build(&head, router_ip, e)?;
    // SAFETY: the scratch slot holds `ERROR_LEN` initialised bytes.
    reply::xdp_replace(ctx, unsafe { &*built })?;
    count(e.stat());
    Some(aya_ebpf::bindings::xdp_action::XDP_TX)
}

/// TC: turns the skb into error `e` from `router_ip` and redirects it out of `ingress`, or
/// `None` when no error is sent.
#[inline(always)]
pub fn tc<M: Mode>(
    mode: M,
    ctx: &TcContext,
    flow: &Flow,
    router_ip: u32,
    ingress: u32,
    e: &IcmpError,
) -> Option<i32> {
    // Trace mode takes no token and counts nothing.
    let tracing = mode.tracing();
    if !about_this(flow, router_ip) || (!tracing && !allowed()) {
        return None;
    }
    let head: [u8; ETH_LEN + QUOTED_LEN] = ctx.load(0).ok()?;
    let built = build(&head, router_ip, e)?;
    // SAFETY: the scratch slot holds `ERROR_LEN` initialised bytes.
    reply::tc_replace(ctx, unsafe { &*built })?;
    ctx.set_mark(0);
    if !tracing {
        count(e.stat());
    }
    // SAFETY: redirecting the skb being processed to its own device's egress.
    Some(unsafe { bpf_redirect(ingress, 0) } as i32)
}

/// Builds, in the scratch buffer, a TCP RST answering the segment `flow` (RFC 793: to a
/// segment with ACK, sequence number = its acknowledgment; else sequence 0, acknowledging
/// it): 54 bytes, Ethernet back to the sender.
#[inline(always)]
fn build_reset(eth: &[u8; ETH_LEN], flow: &Flow) -> Option<*mut [u8; ERROR_LEN]> {
    let out = ICMP_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot, used only here for the program's duration.
    let f = unsafe { &mut *out };
    f[0..6].copy_from_slice(&eth[6..12]);
    f[6..12].copy_from_slice(&eth[0..6]);
    f[12..14].copy_from_slice(&eth[12..14]);
    let ip = &mut f[ETH_LEN..ETH_LEN + 20];
    ip.copy_from_slice(&[
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[12..16].copy_from_slice(&flow.dst.to_ne_bytes());
    ip[16..20].copy_from_slice(&flow.src.to_ne_bytes());
    let check = checksum(sum(ip, 0));
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let acked = flow.tcp_flags & 0x10 != 0;
    let (seq, ack, flags) = if acked {
        (flow.tcp_ack, 0, 0x04)
    } else {
        (0, flow.tcp_seq.wrapping_add(flow.tcp_len), 0x14)
    };
    let tcp_off = ETH_LEN + 20;
    let tcp = &mut f[tcp_off..tcp_off + 20];
    tcp[0..2].copy_from_slice(&flow.dport.to_be_bytes());
    tcp[2..4].copy_from_slice(&flow.sport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12..20].copy_from_slice(&[5 << 4, flags, 0, 0, 0, 0, 0, 0]);
    // The pseudo header: addresses, protocol, TCP length.
    let mut acc = sum(&flow.dst.to_ne_bytes(), 0);
    acc = sum(&flow.src.to_ne_bytes(), acc) + 6 + 20;
    let check = checksum(sum(tcp, acc));
    tcp[16..18].copy_from_slice(&check.to_be_bytes());
    Some(out)
}

/// The length of a RST built by [`build_reset`].
const RESET_LEN: usize = ETH_LEN + 40;

/// XDP: turns the segment into a RST to its sender (`XDP_TX`).
#[inline(always)]
pub fn xdp_reset(ctx: &XdpContext, flow: &Flow) -> Option<u32> {
    // Copied out before the frame changes.
    let eth: [u8; ETH_LEN] = *header(ctx, 0).ok()?;
    let built = build_reset(&eth, flow)?;
    // SAFETY: the scratch slot holds at least `RESET_LEN` initialised bytes.
    reply::xdp_replace(ctx, unsafe { &*built.cast::<[u8; RESET_LEN]>() })?;
    Some(aya_ebpf::bindings::xdp_action::XDP_TX)
}

/// TC: turns the skb into a RST to its sender, redirected out of `ingress`.
#[inline(always)]
pub fn tc_reset(ctx: &TcContext, flow: &Flow, ingress: u32) -> Option<i32> {
    let eth: [u8; ETH_LEN] = ctx.load(0).ok()?;
    let built = build_reset(&eth, flow)?;
    // SAFETY: the scratch slot holds at least `RESET_LEN` initialised bytes.
    reply::tc_replace(ctx, unsafe { &*built.cast::<[u8; RESET_LEN]>() })?;
    // From the remote address, not the router's: approved for the port's egress guard.
    ctx.set_mark(vpc_common::MARK_APPROVED);
    // SAFETY: redirecting the skb being processed to its own device's egress.
    Some(unsafe { bpf_redirect(ingress, 0) } as i32)
}

/// The drop reason that goes with error `e`.
pub fn reason(e: &IcmpError) -> DropReason {
    if e.ty == ICMP_TIME_EXCEEDED {
        DropReason::TtlExceeded
    } else {
        DropReason::TooBig
    }
}
