//! Forwarding: the kernel's FIB gives the next hop and MACs (`bpf_fib_lookup`), then the packet
//! is rewritten (1:1 translation, TTL, checksums) and redirected.
//!
//! The VPC's route table chose the interface; the FIB is asked for the next hop *out of that
//! interface* (an egress lookup, `BPF_FIB_LOOKUP_OUTPUT` with it as the output device), as
//! `bpf_redirect_neigh` does on the TC path. So a VPC route may lead elsewhere than the
//! router's own routing would (a subnet's `0.0.0.0/0` to a VPN gateway while the router's
//! default route is its uplink); the router's routes only give the next hop on that link.
//!
//! - XDP: on a resolved neighbour, rewrite and `bpf_redirect_map(DEVICES)`; when the neighbour
//!   is unknown the packet goes up *unmodified* (XDP_PASS) to the TC ingress program, which
//!   decides again and uses `bpf_redirect_neigh` (the kernel resolves the neighbour). So the
//!   kernel never forwards a VPC packet by itself; the TC egress guard drops any that it would.
//! - TC: rewrite with the skb checksum helpers (they handle CHECKSUM_PARTIAL), mark the packet
//!   approved and `bpf_redirect_neigh`.
//! - IPv6 (`xdp6`, `tc6`): the same, with nothing to rewrite but the hop limit and the MACs.

use core::mem::{self, size_of};

use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_FIB_LKUP_RET_FRAG_NEEDED,
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_OUTPUT,
        TC_ACT_REDIRECT, bpf_check_mtu_flags::BPF_MTU_CHK_SEGS,
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_SUCCESS, bpf_fib_lookup as FibParams,
        bpf_redir_neigh as RedirNeigh, xdp_action,
    },
    helpers::{bpf_check_mtu, bpf_fib_lookup, bpf_redirect_neigh},
    programs::{TcContext, XdpContext},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use vpc_common::{Addr6, DropReason, MARK_APPROVED};

use crate::{
    csum, fastpath,
    icmp::IcmpError,
    maps::{DEVICES, NEIGH_SCRATCH},
    nat,
    packet::{
        ETH_LEN, Flow, Frag, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
        header_mut,
    },
    trace::{self, Mode as _, Trace},
    verdict::Forward,
    verdict::Refusal,
};
use vpc_common::trace::STEP_NEXT_HOP;

const AF_INET: u8 = 2;
/// `bpf_fib_lookup` flags: an egress lookup, out of `params.ifindex`.
const FIB_EGRESS: u32 = BPF_FIB_LOOKUP_OUTPUT;
/// Offset of the checksum in the TCP / UDP header.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;
/// Offsets of the checksum and the echo identifier in the ICMP header.
const ICMP_CSUM: usize = 2;
const ICMP_ID: usize = 4;
const IP_CSUM: usize = ETH_LEN + 10;
const IP_SRC: usize = ETH_LEN + 12;
const IP_DST: usize = ETH_LEN + 16;
const IP_TTL: usize = ETH_LEN + 8;

/// A packet with DF set that does not fit the next hop: the sender learns the MTU; without DF
/// the router does not fragment (it drops, counted).
#[inline(always)]
fn too_big(flow: &Flow, mtu: u16) -> Refusal {
    if flow.df {
        Refusal::Icmp(IcmpError::frag_needed(mtu))
    } else {
        Refusal::Drop(DropReason::TooBig)
    }
}

/// Final addresses after translation.
#[inline(always)]
fn addresses(flow: &Flow, fwd: &Forward) -> (u32, u32) {
    let src = if fwd.new_src != 0 {
        fwd.new_src
    } else {
        flow.src
    };
    let dst = if fwd.new_dst != 0 {
        fwd.new_dst
    } else {
        flow.dst
    };
    (src, dst)
}

/// The address whose neighbour the packet goes to: a NAT instance it is routed to unchanged
/// (`next_hop`), else its final destination (the FIB gives the next hop towards it).
#[inline(always)]
fn neighbour(fwd: &Forward, dst: u32) -> u32 {
    if fwd.next_hop() != 0 {
        fwd.next_hop()
    } else {
        dst
    }
}

/// The FIB question for `flow` leaving by `egress` with addresses `src` -> `dst` (an egress
/// lookup: `BPF_FIB_LOOKUP_OUTPUT`).
#[inline(always)]
fn fib_params(flow: &Flow, egress: u32, src: u32, dst: u32) -> FibParams {
    // SAFETY: all-zero is a valid bpf_fib_lookup (plain integers and unions of them).
    let mut params: FibParams = unsafe { mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = flow.proto;
    params.sport = flow.sport.to_be();
    params.dport = flow.dport.to_be();
    params.__bindgen_anon_1.tot_len = flow.ip_len;
    params.ifindex = egress;
    params.__bindgen_anon_3.ipv4_src = src;
    params.__bindgen_anon_4.ipv4_dst = dst;
    params
}

/// TC, trace mode: the next hop the FIB gives for the forwarded packet (the live run leaves
/// it to `bpf_redirect_neigh`), recorded with its MACs.
#[inline(always)]
pub fn tc_next_hop(ctx: &TcContext, flow: &Flow, fwd: &Forward) {
    let (src, dst) = addresses(flow, fwd);
    let mut params = fib_params(flow, fwd.ifindex, src, neighbour(fwd, dst));
    // SAFETY: params is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &raw mut params,
            size_of::<FibParams>() as i32,
            FIB_EGRESS,
        )
    };
    Trace.step(STEP_NEXT_HOP, rc as u8, 0, params.ifindex, fwd.ifindex, 0);
    trace::macs(&params.smac, &params.dmac);
}

/// XDP: forward `flow` as `fwd` says. Returns the XDP action.
#[inline(always)]
///
/// With `cache`, the decision and the next hop are remembered in the packet's connection for
/// the fast path (`crate::fastpath`).
pub fn xdp(ctx: &XdpContext, flow: &Flow, fwd: &Forward, cache: bool) -> Result<u32, Refusal> {
    if flow.ttl <= 1 {
        return Err(Refusal::Icmp(IcmpError::time_exceeded()));
    }
    let (src, dst) = addresses(flow, fwd);
    let mut params = fib_params(flow, fwd.ifindex, src, neighbour(fwd, dst));
    // SAFETY: params is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &raw mut params,
            size_of::<FibParams>() as i32,
            FIB_EGRESS,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {}
        // Unknown neighbour: the TC ingress program decides again and lets the kernel
        // resolve it (bpf_redirect_neigh). The packet is still unmodified.
        BPF_FIB_LKUP_RET_NO_NEIGH => return Ok(xdp_action::XDP_PASS),
        // SAFETY: the helper wrote the next hop's MTU into the union for this answer.
        BPF_FIB_LKUP_RET_FRAG_NEEDED => {
            return Err(too_big(flow, unsafe { params.__bindgen_anon_1.mtu_result }));
        }
        _ => return Err(DropReason::FibFailed.into()),
    }
    if params.ifindex != fwd.ifindex {
        return Err(DropReason::FibFailed.into());
    }
    // Only devices that take XDP_REDIRECT are in DEVICES (the agent leaves out virtual ones:
    // a veth delivers redirected frames only if its peer runs NAPI). Anything else goes to
    // the TC program unmodified, which decides again and hands it to the kernel's neighbour
    // code. Checked here, before anything is rewritten or cached: a cached path names a
    // device of its own policy generation, which a switch-over invalidates before the agent
    // prunes DEVICES, so the fast path need not look again.
    if DEVICES.get(fwd.ifindex).is_none() {
        return Ok(xdp_action::XDP_PASS);
    }
    if let Some(inner) = &flow.inner
        && fwd.inner_src != 0
    {
        nat::rewrite_inner(ctx, flow, inner, fwd)?;
    }
    if cache {
        fastpath::remember(
            flow,
            fwd,
            ctx.ingress_ifindex() as u32,
            &params.smac,
            &params.dmac,
        );
    }
    Ok(xdp_send(
        ctx,
        flow,
        fwd,
        (src, dst),
        &params.smac,
        &params.dmac,
    )?)
}

/// XDP: rewrites the packet as `fwd` says (final addresses `(src, dst)`) with the next hop's
/// MACs and redirects it.
#[inline(always)]
pub fn xdp_send(
    ctx: &XdpContext,
    flow: &Flow,
    fwd: &Forward,
    (src, dst): (u32, u32),
    smac: &[u8; 6],
    dmac: &[u8; 6],
) -> Result<u32, DropReason> {
    xdp_rewrite(ctx, flow, fwd, src, dst)?;
    let eth: &mut EthHdr = header_mut(ctx, 0)?;
    eth.dst_addr = *dmac;
    eth.src_addr = *smac;
    // The device left DEVICES since the check (agent race): the frame is already rewritten.
    DEVICES
        .redirect(fwd.ifindex, 0)
        .map_err(|_| DropReason::FibFailed)
}

/// XDP, fast path: sends a packet whose decision and next hop were cached.
#[inline(always)]
pub fn xdp_cached(
    ctx: &XdpContext,
    flow: &Flow,
    fwd: &Forward,
    smac: &[u8; 6],
    dmac: &[u8; 6],
) -> Result<u32, Refusal> {
    if flow.ttl <= 1 {
        return Err(Refusal::Icmp(IcmpError::time_exceeded()));
    }
    Ok(xdp_send(ctx, flow, fwd, addresses(flow, fwd), smac, dmac)?)
}

/// Where the checksum covering ports / the echo identifier sits, and whether it covers the
/// pseudo header (TCP, UDP) and may be 0 = none (UDP).
#[inline(always)]
fn l4_csum_at(flow: &Flow) -> Option<(usize, bool, bool)> {
    if flow.frag == Frag::Later {
        return None;
    }
    match flow.proto {
        PROTO_TCP => Some((flow.l4_off + TCP_CSUM, true, false)),
        PROTO_UDP => Some((flow.l4_off + UDP_CSUM, true, true)),
        PROTO_ICMP => Some((flow.l4_off + ICMP_CSUM, false, false)),
        _ => None,
    }
}

/// Port edits of a translation: (offset, old, new) for up to two 16-bit fields.
#[inline(always)]
fn port_edits(flow: &Flow, fwd: &Forward) -> [(usize, u16, u16); 2] {
    let none = (0, 0, 0);
    if flow.frag == Frag::Later {
        return [none, none];
    }
    let l4 = flow.l4_off;
    match flow.proto {
        PROTO_TCP | PROTO_UDP => [
            if fwd.new_sport != 0 {
                (l4, flow.sport, fwd.new_sport)
            } else {
                none
            },
            if fwd.new_dport != 0 {
                (l4 + 2, flow.dport, fwd.new_dport)
            } else {
                none
            },
        ],
        PROTO_ICMP => {
            // Echo: both "ports" are the identifier.
            let id = if fwd.new_sport != 0 {
                fwd.new_sport
            } else {
                fwd.new_dport
            };
            if id != 0 && (flow.icmp_type == ICMP_ECHO_REQUEST || flow.icmp_type == ICMP_ECHO_REPLY)
            {
                [(l4 + ICMP_ID, flow.sport, id), none]
            } else {
                [none, none]
            }
        }
        _ => [none, none],
    }
}

/// XDP rewrite: addresses, ports, TTL, IP and L4 checksums (incremental).
#[inline(always)]
fn xdp_rewrite(
    ctx: &XdpContext,
    flow: &Flow,
    fwd: &Forward,
    src: u32,
    dst: u32,
) -> Result<(), DropReason> {
    let ip: &mut Ipv4Hdr = header_mut(ctx, ETH_LEN)?;
    let mut check = u16::from_ne_bytes(ip.check);
    let csum = l4_csum_at(flow);
    let mut l4_check: Option<&mut [u8; 2]> = match csum {
        Some((off, _, _)) => Some(header_mut(ctx, off)?),
        None => None,
    };
    let (pseudo, zero_is_none) = csum.map_or((false, false), |(_, p, z)| (p, z));
    // The L4 checksum as loaded, and whether it must be left alone (UDP without checksum).
    let mut l4 = match &l4_check {
        Some(p) => u16::from_ne_bytes(**p),
        None => 0,
    };
    let skip_l4 = l4_check.is_none() || (zero_is_none && l4 == 0);
    for (old, new, field) in [(flow.src, src, 0usize), (flow.dst, dst, 1usize)] {
        if old == new {
            continue;
        }
        check = csum::replace32(check, old, new);
        if pseudo && !skip_l4 {
            l4 = csum::replace32(l4, old, new);
        }
        if field == 0 {
            ip.src_addr = new.to_ne_bytes();
        } else {
            ip.dst_addr = new.to_ne_bytes();
        }
    }
    for (off, old, new) in port_edits(flow, fwd) {
        if off == 0 || old == new {
            continue;
        }
        let field: &mut [u8; 2] = header_mut(ctx, off)?;
        let (old, new) = (old.to_be(), new.to_be());
        if !skip_l4 {
            l4 = csum::replace16(l4, old, new);
        }
        *field = new.to_ne_bytes();
    }
    if let Some(p) = l4_check.as_mut()
        && !skip_l4
    {
        if zero_is_none && l4 == 0 {
            l4 = 0xffff;
        }
        **p = l4.to_ne_bytes();
    }
    let old_word = u16::from_ne_bytes([ip.ttl, ip.proto]);
    ip.ttl -= 1;
    let new_word = u16::from_ne_bytes([ip.ttl, ip.proto]);
    check = csum::replace16(check, old_word, new_word);
    ip.check = check.to_ne_bytes();
    Ok(())
}

/// TC: forward `flow` as `fwd` says. Returns the TC action.
#[inline(always)]
pub fn tc(ctx: &TcContext, flow: &Flow, fwd: &Forward) -> Result<i32, Refusal> {
    if flow.ttl <= 1 {
        return Err(Refusal::Icmp(IcmpError::time_exceeded()));
    }
    // The next hop's MTU, for a GSO aggregate against each of its segments (`SEGS`); 0 in:
    // the skb's own length.
    let mut mtu: u32 = 0;
    let segs = u64::from(BPF_MTU_CHK_SEGS);
    // SAFETY: the skb being processed; `mtu` is a valid out-pointer.
    let rc = unsafe { bpf_check_mtu(ctx.as_ptr(), fwd.ifindex, &raw mut mtu, 0, segs) };
    if rc as u32 != BPF_MTU_CHK_RET_SUCCESS {
        return Err(too_big(flow, mtu.min(u32::from(u16::MAX)) as u16));
    }
    let (src, dst) = addresses(flow, fwd);
    if let Some(inner) = &flow.inner
        && fwd.inner_src != 0
    {
        // ICMP errors come with complete checksums: direct writes are fine here too.
        nat::rewrite_inner(ctx, flow, inner, fwd)?;
    }
    let l4_csum = if flow.frag == Frag::Later {
        None
    } else if flow.proto == PROTO_TCP {
        Some((flow.l4_off + TCP_CSUM, 0u64))
    } else if flow.proto == PROTO_UDP {
        Some((flow.l4_off + UDP_CSUM, u64::from(BPF_F_MARK_MANGLED_0)))
    } else {
        None
    };
    for (old, new, at) in [(flow.src, src, IP_SRC), (flow.dst, dst, IP_DST)] {
        if old == new {
            continue;
        }
        if let Some((off, extra)) = l4_csum {
            ctx.l4_csum_replace(
                off,
                u64::from(old),
                u64::from(new),
                u64::from(BPF_F_PSEUDO_HDR) | extra | 4,
            )
            .map_err(|_| DropReason::Malformed)?;
        }
        ctx.l3_csum_replace(IP_CSUM, u64::from(old), u64::from(new), 4)
            .map_err(|_| DropReason::Malformed)?;
        ctx.store(at, &new, 0).map_err(|_| DropReason::Malformed)?;
    }
    for (off, old, new) in port_edits(flow, fwd) {
        if off == 0 || old == new {
            continue;
        }
        let (old, new) = (old.to_be(), new.to_be());
        if let Some((csum_off, _, zero)) = l4_csum_at(flow) {
            let flags = if zero {
                u64::from(BPF_F_MARK_MANGLED_0)
            } else {
                0
            };
            ctx.l4_csum_replace(csum_off, u64::from(old), u64::from(new), flags | 2)
                .map_err(|_| DropReason::Malformed)?;
        }
        ctx.store(off, &new, 0).map_err(|_| DropReason::Malformed)?;
    }
    let ttl: u8 = ctx.load(IP_TTL).map_err(|_| DropReason::Malformed)?;
    let old_word = u16::from_ne_bytes([ttl, flow.proto]);
    let new_word = u16::from_ne_bytes([ttl - 1, flow.proto]);
    ctx.l3_csum_replace(IP_CSUM, u64::from(old_word), u64::from(new_word), 2)
        .map_err(|_| DropReason::Malformed)?;
    ctx.store(IP_TTL, &(ttl - 1), 0)
        .map_err(|_| DropReason::Malformed)?;
    ctx.set_mark(MARK_APPROVED);
    let rc = match (fwd.next_hop(), NEIGH_SCRATCH.get_ptr_mut(0)) {
        (0, _) => {
            // SAFETY: a NULL neighbour description asks the kernel to find the next hop.
            unsafe { bpf_redirect_neigh(fwd.ifindex, core::ptr::null_mut(), 0, 0) }
        }
        (nh, Some(scratch)) => {
            // Routed to a NAT instance unchanged: its address is the neighbour.
            // SAFETY: this CPU's scratch entry, a `bpf_redir_neigh` in size and layout.
            unsafe {
                (*scratch)[0] = u32::from(AF_INET);
                (*scratch)[1] = nh;
                bpf_redirect_neigh(
                    fwd.ifindex,
                    scratch.cast::<RedirNeigh>(),
                    size_of::<RedirNeigh>() as i32,
                    0,
                )
            }
        }
        (_, None) => return Err(DropReason::FibFailed.into()),
    };
    if rc as i32 != TC_ACT_REDIRECT {
        return Err(DropReason::FibFailed.into());
    }
    Ok(TC_ACT_REDIRECT)
}

const AF_INET6: u8 = 10;
/// Offset of the hop limit in an IPv6 frame.
const IP6_HOP_LIMIT: usize = ETH_LEN + 7;

/// The words of an IPv6 address as `bpf_fib_lookup` takes them (network order bytes).
#[inline(always)]
fn words(a: &Addr6) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// XDP, IPv6: forwards `flow` out of `fwd.ifindex` unchanged but for the hop limit and the
/// MACs (IPv6 has no header checksum, and the hop limit is not in the pseudo header). An
/// unknown neighbour or a device XDP cannot redirect to goes to the TC program unmodified,
/// as for IPv4. Too big is refused: routers never fragment IPv6. The XDP action is written
/// to `action`: a BPF function of its own (`vpc_xdp6_route`'s frame and `decide6`'s leave no
/// room for its locals), whose BTF cannot hold a returned `Result<u32, _>`.
///
/// The FIB is asked as if the packet had come in on `port`, the instance port of the flow
/// (where it came in, or where it goes): the kernel answers an IPv6 lookup only for a device
/// with IPv6 forwarding on, which the agent turns on on instance ports and not on uplinks
/// (where it would make the router's kernel ignore the upstream's advertisements).
#[inline(never)]
pub fn xdp6(
    ctx: &XdpContext,
    flow: &Flow<Addr6>,
    fwd: &Forward,
    port: u32,
    action: &mut u32,
) -> Result<(), DropReason> {
    *action = xdp6_action(ctx, flow, fwd, port)?;
    Ok(())
}

#[inline(always)]
fn xdp6_action(
    ctx: &XdpContext,
    flow: &Flow<Addr6>,
    fwd: &Forward,
    port: u32,
) -> Result<u32, DropReason> {
    if flow.ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    // SAFETY: all-zero is a valid bpf_fib_lookup (plain integers and unions of them).
    let mut params: FibParams = unsafe { mem::zeroed() };
    params.family = AF_INET6;
    params.l4_protocol = flow.proto;
    params.sport = flow.sport.to_be();
    params.dport = flow.dport.to_be();
    params.__bindgen_anon_1.tot_len = flow.ip_len;
    params.ifindex = port;
    params.__bindgen_anon_3.ipv6_src = words(&flow.src);
    params.__bindgen_anon_4.ipv6_dst = words(&flow.dst);
    // SAFETY: params is a valid, writable bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &raw mut params,
            size_of::<FibParams>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {}
        BPF_FIB_LKUP_RET_NO_NEIGH => return Ok(xdp_action::XDP_PASS),
        BPF_FIB_LKUP_RET_FRAG_NEEDED => return Err(DropReason::TooBig),
        _ => return Err(DropReason::FibFailed),
    }
    if params.ifindex != fwd.ifindex {
        return Err(DropReason::FibFailed);
    }
    if DEVICES.get(fwd.ifindex).is_none() {
        return Ok(xdp_action::XDP_PASS);
    }
    let hop: &mut [u8; 1] = header_mut(ctx, IP6_HOP_LIMIT)?;
    hop[0] = flow.ttl - 1;
    let eth: &mut EthHdr = header_mut(ctx, 0)?;
    eth.dst_addr = params.dmac;
    eth.src_addr = params.smac;
    DEVICES
        .redirect(fwd.ifindex, 0)
        .map_err(|_| DropReason::FibFailed)
}

/// TC, IPv6: the hop limit decremented, the packet marked approved and handed to
/// `bpf_redirect_neigh` (the kernel resolves the neighbour by its route to the instance).
#[inline(always)]
pub fn tc6(ctx: &TcContext, flow: &Flow<Addr6>, fwd: &Forward) -> Result<i32, DropReason> {
    if flow.ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let mut mtu: u32 = 0;
    let segs = u64::from(BPF_MTU_CHK_SEGS);
    // SAFETY: the skb being processed; `mtu` is a valid out-pointer.
    let rc = unsafe { bpf_check_mtu(ctx.as_ptr(), fwd.ifindex, &raw mut mtu, 0, segs) };
    if rc as u32 != BPF_MTU_CHK_RET_SUCCESS {
        return Err(DropReason::TooBig);
    }
    ctx.store(IP6_HOP_LIMIT, &(flow.ttl - 1), 0)
        .map_err(|_| DropReason::Malformed)?;
    ctx.set_mark(MARK_APPROVED);
    // SAFETY: a NULL neighbour description asks the kernel to find the next hop.
    let rc = unsafe { bpf_redirect_neigh(fwd.ifindex, core::ptr::null_mut(), 0, 0) };
    if rc as i32 != TC_ACT_REDIRECT {
        return Err(DropReason::FibFailed);
    }
    Ok(TC_ACT_REDIRECT)
}
