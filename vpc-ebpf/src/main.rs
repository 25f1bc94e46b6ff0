//! The VPC datapath. XDP on ingress of every VPC interface is the fast path; TC (clsact/tcx)
//! on the same interfaces enforces the same decisions for packets that take the kernel's path
//! (ingress), and guards egress so the kernel never forwards a VPC packet unchecked.
//!
//! Entry points are thin: each calls a `try_*` function returning `Result<Verdict, DropReason>`
//! and [`finish`] turns that into the program's action. Every packet is accounted once: its flow
//! record where the pipeline ends (`flows::account`, from the [`Verdict`]), its drop in the one
//! drop path ([`drop::count_drop`], by reason and hook, in `finish`).
#![no_std]
#![cfg_attr(target_arch = "bpf", no_main)]

mod acl;
mod arp;
mod clock;
mod conntrack;
mod csum;
mod decide;
mod drop;
mod family;
mod fastpath;
mod flows;
mod forward;
mod fragment;
mod icmp;
mod interface;
mod ipv6;
mod maps;
mod nat;
mod ndp;
mod packet;
mod reply;
mod route;
mod security_group;
mod source_check;
mod trace;
mod verdict;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::bpf_redirect,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vpc_common::{
    DropReason, Hook, IPV6_INBOUND, IPV6_LINK, IPV6_ROUTE, MARK_APPROVED,
    iface::{Endpoint, IFACE_F_VIRTUAL, IFACE_GATEWAY, IFACE_SUBNET, IFACE_UPLINK, IfaceInfo},
};

use crate::{
    arp::ArpAction,
    decide::{Sides, decide},
    fastpath::Probe,
    interface::interface,
    maps::{SUBNETS, copied},
    ndp::Ipv6Action,
    packet::{Arp, Flow, Frame, PacketCtx, parse},
    trace::{Live, Mode, Trace},
    verdict::{Decision, Forward, Refusal, Verdict},
};

/// ARP on a managed interface: instance ports answer it themselves (`crate::arp`), every
/// other interface leaves it to the kernel.
#[inline(always)]
fn arp(ctx: &impl PacketCtx, iface: &IfaceInfo, arp: &Arp) -> Result<ArpAction, DropReason> {
    if !iface.is_port() {
        return Ok(ArpAction::ToKernel);
    }
    let s = maps::subnet(iface.subnet_id).ok_or(DropReason::BadTarget)?;
    arp::on_port(ctx, iface, &s, arp)
}

/// The program's action for a packet's verdict (or its early drop), counting drops: the one
/// drop path of every program. `bytes`: the packet's length as the hook sees it.
#[inline(always)]
fn finish<A>(hook: Hook, bytes: u64, verdict: Result<Verdict<A>, DropReason>, drop: A) -> A {
    let reason = match verdict {
        Ok(Verdict::Return(action) | Verdict::Sent(action)) => return action,
        Ok(Verdict::Refused { reason, answer }) => {
            drop::count_drop(reason, hook, bytes);
            return answer.unwrap_or(drop);
        }
        Err(reason) => reason,
    };
    drop::count_drop(reason, hook, bytes);
    drop
}

/// XDP ingress program on every VPC interface.
///
/// Inlined into the entry point the macro generates: a separate frame would count against the
/// 512-byte stack of the call chain (the entry, this, the ACL loop's callback).
#[xdp]
#[inline(always)]
pub fn vpc_xdp(ctx: XdpContext) -> u32 {
    xdp_program(&ctx, Sides::Inside)
}

/// The XDP program for packets from outside the VPC (uplinks, gateways): reached from
/// [`vpc_xdp`] through `XDP_OUTSIDE` (a tail call), never attached.
#[xdp]
#[inline(always)]
pub fn vpc_xdp_outside(ctx: XdpContext) -> u32 {
    xdp_program(&ctx, Sides::Outside)
}

/// Either XDP program: the interfaces of `sides` (a constant).
#[inline(always)]
fn xdp_program(ctx: &XdpContext, sides: Sides) -> u32 {
    // Opaque: the compiler must not fold this length into the packet pointers the verifier
    // tracks.
    let bytes = core::hint::black_box(ctx.data_end() - ctx.data()) as u64;
    finish(
        Hook::Xdp,
        bytes,
        try_vpc_xdp(ctx, sides, bytes),
        xdp_action::XDP_DROP,
    )
}

#[inline(always)]
fn try_vpc_xdp(ctx: &XdpContext, sides: Sides, bytes: u64) -> Result<Verdict<u32>, DropReason> {
    let ingress = ctx.ingress_ifindex() as u32;
    let Some((slot, iface)) = interface(ingress) else {
        return Ok(Verdict::Return(xdp_action::XDP_PASS));
    };
    // A virtual device's frames may carry partial checksums and GSO aggregates, which only
    // the skb knows about: the TC program handles all of them.
    if iface.flags & IFACE_F_VIRTUAL != 0 {
        return Ok(Verdict::Return(xdp_action::XDP_PASS));
    }
    if sides == Sides::Inside && iface.kind != IFACE_SUBNET {
        // SAFETY: a tail call into a program of the same type on the same context.
        unsafe { maps::XDP_OUTSIDE.tail_call(ctx, 0) };
        // Not set (the agent loads both): never decided by a program without that side.
        return Err(DropReason::BadTarget);
    }
    // Outside the VPC, IPv6 is the router's own (`packet::is_ipv6`); on a subnet interface
    // it is `vpc_xdp6`'s.
    if packet::is_ipv6(ctx)? {
        if sides == Sides::Outside {
            if iface.kind == IFACE_UPLINK {
                // SAFETY: a tail call into a program of the same type on the same context.
                unsafe { maps::XDP_IPV6.tail_call(ctx, IPV6_INBOUND) };
                return Err(DropReason::BadTarget);
            }
            return Ok(Verdict::Return(xdp_action::XDP_PASS));
        }
        // SAFETY: a tail call into a program of the same type on the same context.
        unsafe { maps::XDP_IPV6.tail_call(ctx, IPV6_LINK) };
        return Err(DropReason::BadTarget);
    }
    clock::start();
    let mut flow = match parse(ctx)? {
        Frame::Ipv4(flow) => flow,
        // Outside the VPC, ARP is the kernel's (only instance ports answer it themselves).
        Frame::Arp(_) if sides == Sides::Outside => {
            return Ok(Verdict::Return(xdp_action::XDP_PASS));
        }
        Frame::Arp(a) => {
            return Ok(Verdict::Return(match arp(ctx, &iface, &a)? {
                ArpAction::Answered => xdp_action::XDP_TX,
                ArpAction::ToKernel => xdp_action::XDP_PASS,
            }));
        }
        Frame::Other => return Ok(Verdict::Return(xdp_action::XDP_PASS)),
    };
    packet::addressed_to(ctx, &iface.mac)?;
    let mut fwd = Forward::to(0, 0, 0);
    let verdict = xdp_pipeline(ctx, sides, slot, ingress, &iface, &mut flow, &mut fwd)
        .unwrap_or_else(Verdict::dropped);
    flows::account(ingress, &flow, bytes, &verdict, &fwd);
    Ok(verdict)
}

/// XDP: the fast path for cached connections, else the policy pipeline, then forwarding as
/// `fwd` (filled in here) says.
#[inline(always)]
fn xdp_pipeline(
    ctx: &XdpContext,
    sides: Sides,
    slot: u32,
    ingress: u32,
    iface: &IfaceInfo,
    flow: &mut Flow,
    fwd: &mut Forward,
) -> Result<Verdict<u32>, DropReason> {
    // The inside program sees subnet interfaces only (it handed the others over).
    let subnet = sides == Sides::Inside;
    let mut known = None;
    if subnet {
        match fastpath::probe(flow, ingress) {
            Probe::Hit(hit) => {
                let hit = hit?;
                *fwd = hit.fwd;
                return Ok(
                    match forward::xdp_cached(ctx, flow, fwd, &hit.smac, &hit.dmac) {
                        Ok(action) => Verdict::Sent(action),
                        Err(refusal) => xdp_refused(ctx, flow, iface, refusal),
                    },
                );
            }
            Probe::Miss(track) => known = track,
        }
    }
    *fwd = match decide(Live, sides, slot, iface, flow, known)? {
        Decision::Forward(fwd) => fwd,
        Decision::Unmanaged | Decision::ToHost => {
            return Ok(Verdict::Return(xdp_action::XDP_PASS));
        }
        Decision::Reset => {
            return Ok(Verdict::Refused {
                reason: DropReason::NatExpired,
                answer: icmp::xdp_reset(ctx, flow),
            });
        }
    };
    let cache = subnet && flow.inner.is_none() && flow.frag != packet::Frag::Later;
    Ok(match forward::xdp(ctx, flow, fwd, cache) {
        // Handed to the kernel path: the TC program decides again and records the flow.
        Ok(xdp_action::XDP_PASS) => Verdict::Return(xdp_action::XDP_PASS),
        Ok(action) => Verdict::Sent(action),
        Err(refusal) => xdp_refused(ctx, flow, iface, refusal),
    })
}

/// The XDP program for IPv6 on subnet interfaces (`crate::ndp`, then the IPv6 pipeline,
/// `decide::decide6`): reached from [`vpc_xdp`] through `XDP_IPV6`, never attached.
#[xdp]
pub fn vpc_xdp6(ctx: XdpContext) -> u32 {
    let bytes = core::hint::black_box(ctx.data_end() - ctx.data()) as u64;
    finish(Hook::Xdp, bytes, try_vpc_xdp6(&ctx), xdp_action::XDP_DROP)
}

#[inline(always)]
fn try_vpc_xdp6(ctx: &XdpContext) -> Result<Verdict<u32>, DropReason> {
    let ingress = ctx.ingress_ifindex() as u32;
    let Some((_, iface)) = interface(ingress) else {
        return Ok(Verdict::Return(xdp_action::XDP_PASS));
    };
    packet::addressed_to(ctx, &iface.mac)?;
    let p = ipv6::parse6(ctx)?;
    let sent = match ndp::on_subnet(ctx, &iface, ingress, &p)? {
        Ipv6Action::ToKernel => return Ok(Verdict::Return(xdp_action::XDP_PASS)),
        Ipv6Action::Route => {
            // SAFETY: a tail call into a program of the same type on the same context.
            unsafe { maps::XDP_IPV6.tail_call(ctx, IPV6_ROUTE) };
            return Err(DropReason::BadTarget);
        }
        // SAFETY (both): the scratch slot holds the answer, built by `ndp`.
        Ipv6Action::Advertise(na) => reply::xdp_replace(ctx, unsafe { &*na }),
        Ipv6Action::RouterAdvertise(ra) => reply::xdp_replace(ctx, unsafe { &*ra }),
        Ipv6Action::Echoed => Some(()),
    };
    if sent.is_none() {
        // No room to grow the frame into the answer here: the TC program answers instead.
        return Ok(Verdict::Return(xdp_action::XDP_PASS));
    }
    Ok(Verdict::Sent(xdp_action::XDP_TX))
}

/// The IPv6 pipeline (`decide::decide6`, then `forward::xdp6`) for a packet of an instance
/// port routed beyond the link: reached from [`vpc_xdp6`] through `XDP_IPV6[IPV6_ROUTE]`, never
/// attached. A program of its own so that each keeps its stack within the verifier's 512 bytes.
#[xdp]
pub fn vpc_xdp6_route(ctx: XdpContext) -> u32 {
    let bytes = core::hint::black_box(ctx.data_end() - ctx.data()) as u64;
    finish(
        Hook::Xdp,
        bytes,
        try_vpc_xdp6_route(&ctx, bytes),
        xdp_action::XDP_DROP,
    )
}

#[inline(always)]
fn try_vpc_xdp6_route(ctx: &XdpContext, bytes: u64) -> Result<Verdict<u32>, DropReason> {
    let ingress = ctx.ingress_ifindex() as u32;
    // `vpc_xdp6` found the interface: gone since (removed under the packet) is a drop.
    let (_, iface) = interface(ingress).ok_or(DropReason::BadTarget)?;
    clock::start();
    let mut p = ipv6::Packet6::EMPTY;
    ipv6::parse6_into(ctx, &mut p)?;
    let mut fwd = Forward::to(0, 0, 0);
    let mut action = xdp_action::XDP_DROP;
    // No closures (`and_then`): an outlined one would be a BPF subprogram without BTF.
    let decided = match decide::decide6(Live, &iface, ingress, &p, &mut fwd) {
        Ok(()) => forward::xdp6(ctx, &p, &fwd, ingress, &mut action),
        Err(reason) => Err(reason),
    };
    xdp6_verdict(ingress, &p, bytes, decided, &fwd, action)
}

/// IPv6 arriving on an uplink: the router's own (to the kernel) unless it is for an address of
/// a VPC's IPv6 block, which goes through `decide::decide6_inbound` and out of the
/// instance's port. Reached from `vpc_xdp_outside` through `XDP_IPV6[IPV6_INBOUND]`.
#[xdp]
pub fn vpc_xdp6_inbound(ctx: XdpContext) -> u32 {
    let bytes = core::hint::black_box(ctx.data_end() - ctx.data()) as u64;
    finish(
        Hook::Xdp,
        bytes,
        try_vpc_xdp6_inbound(&ctx, bytes),
        xdp_action::XDP_DROP,
    )
}

#[inline(always)]
fn try_vpc_xdp6_inbound(ctx: &XdpContext, bytes: u64) -> Result<Verdict<u32>, DropReason> {
    let ingress = ctx.ingress_ifindex() as u32;
    let (slot, _) = interface(ingress).ok_or(DropReason::BadTarget)?;
    // Too short to be for a VPC: the kernel's, as every IPv6 frame of an uplink not for one.
    let vpc_id = ipv6::destination(ctx)
        .ok()
        .and_then(|dst| decide::vpc_of6(slot, dst));
    let Some(vpc_id) = vpc_id else {
        return Ok(Verdict::Return(xdp_action::XDP_PASS));
    };
    clock::start();
    let mut p = ipv6::Packet6::EMPTY;
    ipv6::parse6_into(ctx, &mut p)?;
    let mut ep = Endpoint::default();
    let mut fwd = Forward::to(0, 0, 0);
    let mut action = xdp_action::XDP_DROP;
    let decided = match decide::inbound6_destination(slot, ingress, vpc_id, &p, &mut ep) {
        Ok(()) => decide::decide6_inbound(Live, ingress, vpc_id, &p, &ep, &mut fwd),
        Err(reason) => Err(reason),
    };
    let decided = match decided {
        Ok(()) => forward::xdp6(ctx, &p, &fwd, fwd.ifindex, &mut action),
        Err(reason) => Err(reason),
    };
    xdp6_verdict(ingress, &p, bytes, decided, &fwd, action)
}

/// The verdict of an IPv6 XDP pipeline (`decided`: forwarded with `action`, or the drop
/// reason), its flow record made: an unknown neighbour (`XDP_PASS`) is the TC program's to
/// decide again and record.
#[inline(always)]
fn xdp6_verdict(
    ingress: u32,
    p: &ipv6::Packet6,
    bytes: u64,
    decided: Result<(), DropReason>,
    fwd: &Forward,
    action: u32,
) -> Result<Verdict<u32>, DropReason> {
    match decided {
        Ok(()) if action == xdp_action::XDP_PASS => Ok(Verdict::Return(xdp_action::XDP_PASS)),
        Ok(()) => {
            flows::account6(ingress, p, bytes, 0, fwd);
            Ok(Verdict::Sent(action))
        }
        Err(reason) => {
            flows::account6(ingress, p, bytes, reason as u32, fwd);
            Err(reason)
        }
    }
}

/// XDP: a decided packet that is not forwarded: dropped, or answered with an ICMP error.
/// (No closures here: an outlined closure would be a BPF subprogram without BTF.)
#[inline(always)]
fn xdp_refused(ctx: &XdpContext, flow: &Flow, iface: &IfaceInfo, refusal: Refusal) -> Verdict<u32> {
    match refusal {
        Refusal::Drop(reason) => Verdict::dropped(reason),
        Refusal::Icmp(e) => Verdict::Refused {
            reason: icmp::reason(&e),
            answer: icmp::xdp(ctx, flow, iface.router_ip, &e),
        },
    }
}

/// The benchmark floor: parses Ethernet and IPv4 like the datapath, then redirects through the
/// device map with no policy at all. `cargo xtask bench` reports every path as a ratio to it.
/// Never attached by the agent.
#[xdp]
pub fn vpc_floor(ctx: XdpContext) -> u32 {
    match parse(&ctx) {
        Ok(Frame::Ipv4(_)) => maps::DEVICES
            .redirect(
                ctx.ingress_ifindex() as u32,
                u64::from(xdp_action::XDP_PASS),
            )
            .unwrap_or(xdp_action::XDP_PASS),
        Ok(Frame::Arp(_) | Frame::Other) => xdp_action::XDP_PASS,
        Err(_) => xdp_action::XDP_DROP,
    }
}

/// TC ingress program on every VPC interface: the same pipeline for packets XDP handed to the
/// kernel (unknown neighbour) or that arrive where XDP is not attached.
///
/// A test run in trace mode (`crate::trace`: the magic in `cb[]`) goes on in [`vpc_tc_trace`]
/// (a tail call); it never takes the live path, and is dropped if the hand-over fails.
#[classifier]
pub fn vpc_tc_ingress(ctx: TcContext) -> i32 {
    if trace::requested(&ctx) {
        trace::hand_over(&ctx);
        return TC_ACT_SHOT;
    }
    let bytes = u64::from(ctx.len());
    finish(
        Hook::TcIngress,
        bytes,
        try_vpc_tc_ingress(Live, &ctx, bytes),
        TC_ACT_SHOT,
    )
}

/// The TC ingress pipeline in trace mode, reached only from [`vpc_tc_ingress`] (never
/// attached): records each step and the verdict in `TRACE`, writes no other state, and
/// always drops (the verdict a live run would give is in the trace).
#[classifier]
pub fn vpc_tc_trace(ctx: TcContext) -> i32 {
    trace::begin(&ctx);
    let bytes = u64::from(ctx.len());
    trace::end_verdict(&try_vpc_tc_ingress(Trace, &ctx, bytes), TC_ACT_SHOT);
    TC_ACT_SHOT
}

#[inline(always)]
fn try_vpc_tc_ingress<M: Mode>(
    mode: M,
    ctx: &TcContext,
    bytes: u64,
) -> Result<Verdict<i32>, DropReason> {
    // SAFETY: reading the ingress ifindex of the skb being processed.
    let ingress = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let Some((slot, iface)) = interface(ingress) else {
        return Ok(Verdict::Return(TC_ACT_OK));
    };
    clock::start();
    // Headers must be in the linear part for direct access; a failure leaves them where they
    // are and the parser reports a short packet.
    let _ = ctx.pull_data(128.min(ctx.len()));
    // Outside the VPC, IPv6 is the router's own (`packet::is_ipv6`); on a subnet interface
    // it is `vpc_tc6`'s. Traces are of IPv4.
    if !mode.tracing() && packet::is_ipv6(ctx)? {
        if iface.kind == IFACE_UPLINK {
            // SAFETY: a tail call into a program of the same type on the same context.
            unsafe { maps::TC_IPV6.tail_call(ctx, IPV6_INBOUND) };
            return Err(DropReason::BadTarget);
        }
        if iface.kind != IFACE_SUBNET {
            return Ok(Verdict::Return(TC_ACT_OK));
        }
        // SAFETY: a tail call into a program of the same type on the same context.
        unsafe { maps::TC_IPV6.tail_call(ctx, IPV6_LINK) };
        return Err(DropReason::BadTarget);
    }
    let mut flow = match parse(ctx)? {
        Frame::Ipv4(flow) => flow,
        Frame::Arp(a) => {
            return Ok(Verdict::Return(match arp(ctx, &iface, &a)? {
                // SAFETY: redirecting the skb being processed to its own device's egress.
                ArpAction::Answered => (unsafe { bpf_redirect(ingress, 0) }) as i32,
                ArpAction::ToKernel => TC_ACT_OK,
            }));
        }
        Frame::Other => return Ok(Verdict::Return(TC_ACT_OK)),
    };
    packet::addressed_to(ctx, &iface.mac)?;
    if !packet::header_checksum_ok(ctx)? {
        return Err(DropReason::Malformed);
    }
    let mut fwd = Forward::to(0, 0, 0);
    let verdict = tc_pipeline(mode, ctx, slot, ingress, &iface, &mut flow, &mut fwd)
        .unwrap_or_else(Verdict::dropped);
    if !mode.tracing() {
        flows::account(ingress, &flow, bytes, &verdict, &fwd);
    }
    Ok(verdict)
}

/// The TC ingress program for IPv6 on subnet interfaces (`crate::ndp`, then the IPv6
/// pipeline): reached from [`vpc_tc_ingress`] through `TC_IPV6`, never attached.
#[classifier]
pub fn vpc_tc6(ctx: TcContext) -> i32 {
    let bytes = u64::from(ctx.len());
    finish(Hook::TcIngress, bytes, try_vpc_tc6(&ctx), TC_ACT_SHOT)
}

#[inline(always)]
fn try_vpc_tc6(ctx: &TcContext) -> Result<Verdict<i32>, DropReason> {
    // SAFETY: reading the ingress ifindex of the skb being processed.
    let ingress = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let Some((_, iface)) = interface(ingress) else {
        return Ok(Verdict::Return(TC_ACT_OK));
    };
    packet::addressed_to(ctx, &iface.mac)?;
    let p = ipv6::parse6(ctx)?;
    let sent = match ndp::on_subnet(ctx, &iface, ingress, &p)? {
        Ipv6Action::ToKernel => return Ok(Verdict::Return(TC_ACT_OK)),
        Ipv6Action::Route => {
            // SAFETY: a tail call into a program of the same type on the same context.
            unsafe { maps::TC_IPV6.tail_call(ctx, IPV6_ROUTE) };
            return Err(DropReason::BadTarget);
        }
        // SAFETY (both): the scratch slot holds the answer, built by `ndp`.
        Ipv6Action::Advertise(na) => reply::tc_replace(ctx, unsafe { &*na }),
        Ipv6Action::RouterAdvertise(ra) => reply::tc_replace(ctx, unsafe { &*ra }),
        Ipv6Action::Echoed => Some(()),
    };
    sent.ok_or(DropReason::Malformed)?;
    // The answer's source is not always the router's own (a proxied address): approved.
    ctx.set_mark(MARK_APPROVED);
    // SAFETY: redirecting the skb being processed to its own device's egress.
    Ok(Verdict::Sent(unsafe { bpf_redirect(ingress, 0) } as i32))
}

/// The IPv6 pipeline (`decide::decide6`, then `forward::tc6`) for a packet of an instance
/// port routed beyond the link: reached from [`vpc_tc6`] through `TC_IPV6[IPV6_ROUTE]`, never
/// attached.
#[classifier]
pub fn vpc_tc6_route(ctx: TcContext) -> i32 {
    let bytes = u64::from(ctx.len());
    finish(
        Hook::TcIngress,
        bytes,
        try_vpc_tc6_route(&ctx, bytes),
        TC_ACT_SHOT,
    )
}

#[inline(always)]
fn try_vpc_tc6_route(ctx: &TcContext, bytes: u64) -> Result<Verdict<i32>, DropReason> {
    // SAFETY: reading the ingress ifindex of the skb being processed.
    let ingress = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let (_, iface) = interface(ingress).ok_or(DropReason::BadTarget)?;
    clock::start();
    let mut p = ipv6::Packet6::EMPTY;
    ipv6::parse6_into(ctx, &mut p)?;
    let mut fwd = Forward::to(0, 0, 0);
    let sent = match decide::decide6(Live, &iface, ingress, &p, &mut fwd) {
        Ok(()) => forward::tc6(ctx, &p, &fwd),
        Err(reason) => Err(reason),
    };
    tc6_verdict(ingress, &p, bytes, sent, &fwd)
}

/// TC ingress, IPv6 arriving on an uplink: as [`vpc_xdp6_inbound`]. Reached from
/// `vpc_tc_ingress` through `TC_IPV6[IPV6_INBOUND]`.
#[classifier]
pub fn vpc_tc6_inbound(ctx: TcContext) -> i32 {
    let bytes = u64::from(ctx.len());
    finish(
        Hook::TcIngress,
        bytes,
        try_vpc_tc6_inbound(&ctx, bytes),
        TC_ACT_SHOT,
    )
}

#[inline(always)]
fn try_vpc_tc6_inbound(ctx: &TcContext, bytes: u64) -> Result<Verdict<i32>, DropReason> {
    // SAFETY: reading the ingress ifindex of the skb being processed.
    let ingress = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let (slot, _) = interface(ingress).ok_or(DropReason::BadTarget)?;
    let vpc_id = ipv6::destination(ctx)
        .ok()
        .and_then(|dst| decide::vpc_of6(slot, dst));
    let Some(vpc_id) = vpc_id else {
        return Ok(Verdict::Return(TC_ACT_OK));
    };
    clock::start();
    let mut p = ipv6::Packet6::EMPTY;
    ipv6::parse6_into(ctx, &mut p)?;
    let mut ep = Endpoint::default();
    let mut fwd = Forward::to(0, 0, 0);
    let decided = match decide::inbound6_destination(slot, ingress, vpc_id, &p, &mut ep) {
        Ok(()) => decide::decide6_inbound(Live, ingress, vpc_id, &p, &ep, &mut fwd),
        Err(reason) => Err(reason),
    };
    let sent = match decided {
        Ok(()) => forward::tc6(ctx, &p, &fwd),
        Err(reason) => Err(reason),
    };
    tc6_verdict(ingress, &p, bytes, sent, &fwd)
}

/// The verdict of an IPv6 TC pipeline (`sent`: the redirect's action, or the drop reason),
/// its flow record made.
#[inline(always)]
fn tc6_verdict(
    ingress: u32,
    p: &ipv6::Packet6,
    bytes: u64,
    sent: Result<i32, DropReason>,
    fwd: &Forward,
) -> Result<Verdict<i32>, DropReason> {
    match sent {
        Ok(action) => {
            flows::account6(ingress, p, bytes, 0, fwd);
            Ok(Verdict::Sent(action))
        }
        Err(reason) => {
            flows::account6(ingress, p, bytes, reason as u32, fwd);
            Err(reason)
        }
    }
}

/// TC: the policy pipeline, then forwarding as `fwd` (filled in here) says.
#[inline(always)]
fn tc_pipeline<M: Mode>(
    mode: M,
    ctx: &TcContext,
    slot: u32,
    ingress: u32,
    iface: &IfaceInfo,
    flow: &mut Flow,
    fwd: &mut Forward,
) -> Result<Verdict<i32>, DropReason> {
    *fwd = match decide(mode, Sides::Both, slot, iface, flow, None)? {
        Decision::Forward(fwd) => fwd,
        Decision::Unmanaged | Decision::ToHost => return Ok(Verdict::Return(TC_ACT_OK)),
        Decision::Reset => {
            return Ok(Verdict::Refused {
                reason: DropReason::NatExpired,
                answer: icmp::tc_reset(ctx, flow, ingress),
            });
        }
    };
    Ok(match forward::tc(ctx, flow, fwd) {
        Ok(action) => {
            if mode.tracing() {
                forward::tc_next_hop(ctx, flow, fwd);
            }
            Verdict::Sent(action)
        }
        Err(Refusal::Drop(reason)) => Verdict::dropped(reason),
        Err(Refusal::Icmp(e)) => Verdict::Refused {
            reason: icmp::reason(&e),
            answer: icmp::tc(mode, ctx, flow, iface.router_ip, ingress, &e),
        },
    })
}

/// TC egress guard on subnet interfaces and gateway links: only packets the datapath approved
/// (marked by the TC ingress program) and the router's own packets leave; anything the kernel
/// forwarded by itself is dropped (`unapproved`): nothing reaches a subnet, or the network
/// behind a VPN gateway, around the VPC's policy. XDP-redirected frames do not pass here.
#[classifier]
pub fn vpc_tc_egress(ctx: TcContext) -> i32 {
    let bytes = u64::from(ctx.len());
    finish(Hook::TcEgress, bytes, try_vpc_tc_egress(&ctx), TC_ACT_SHOT)
}

#[inline(always)]
fn try_vpc_tc_egress(ctx: &TcContext) -> Result<Verdict<i32>, DropReason> {
    // SAFETY: reading fields of the skb being processed.
    let (mark, ifindex) = unsafe { ((*ctx.skb.skb).mark, (*ctx.skb.skb).ifindex) };
    if mark == MARK_APPROVED {
        ctx.set_mark(0);
        return Ok(Verdict::Return(TC_ACT_OK));
    }
    let Some((_, iface)) = interface(ifindex) else {
        return Ok(Verdict::Return(TC_ACT_OK));
    };
    if iface.kind != IFACE_SUBNET && iface.kind != IFACE_GATEWAY {
        return Ok(Verdict::Return(TC_ACT_OK));
    }
    let _ = ctx.pull_data(64.min(ctx.len()));
    // Into a subnet only the router's own link-local IPv6 (neighbour discovery) leaves: the
    // VPC forwards no IPv6, so anything else is the kernel forwarding around it. On a
    // gateway's link the router's own IPv6 leaves as it is.
    if packet::is_ipv6(ctx)? {
        return if iface.kind != IFACE_SUBNET || packet::ipv6_link_local_source(ctx)? {
            Ok(Verdict::Return(TC_ACT_OK))
        } else {
            Err(DropReason::Unapproved)
        };
    }
    // The router's own ARP leaves as it is.
    let Ok(Frame::Ipv4(flow)) = parse(ctx) else {
        return Ok(Verdict::Return(TC_ACT_OK));
    };
    // The router's own address there: its subnet address, or its address on a gateway's link.
    let own = if iface.kind == IFACE_SUBNET {
        copied(&SUBNETS, iface.subnet_id).map_or(0, |s| s.router_ip)
    } else {
        iface.router_ip
    };
    if own != 0 && flow.src == own {
        Ok(Verdict::Return(TC_ACT_OK))
    } else {
        Err(DropReason::Unapproved)
    }
}

/// Built for the host (`cargo build --workspace`, `cargo test`), the crate is a plain binary
/// that does nothing: the programs are only meaningful for the BPF target.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(all(not(test), target_arch = "bpf"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
