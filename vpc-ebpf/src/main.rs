//! The VPC datapath. XDP on ingress of every VPC interface is the fast path; TC (clsact/tcx)
//! on the same interfaces enforces the same decisions for packets that take the kernel's path
//! (ingress), and guards egress so the kernel never forwards a VPC packet unchecked.
//!
//! Entry points are thin: each calls a `try_*` function returning `Result<action, DropReason>`,
//! and the single drop path ([`drop::count_drop`]) counts the reason.
#![no_std]
#![no_main]

mod acl;
mod arp;
mod clock;
mod conntrack;
mod csum;
mod decide;
mod drop;
mod fastpath;
mod flows;
mod forward;
mod fragment;
mod icmp;
mod interface;
mod maps;
mod nat;
mod packet;
mod route;
mod security_group;
mod source_check;
mod verdict;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::bpf_redirect,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vpc_common::{
    DropReason, MARK_APPROVED,
    iface::{IFACE_F_VIRTUAL, IFACE_SUBNET, IfaceInfo},
};

use crate::{
    arp::ArpAction,
    decide::decide,
    fastpath::Probe,
    flows::Outcome,
    interface::interface,
    maps::{SUBNETS, copied},
    packet::{Arp, Frame, PacketCtx, parse},
    verdict::{Decision, Refusal},
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

/// XDP ingress program on every VPC interface.
#[xdp]
pub fn vpc_xdp(ctx: XdpContext) -> u32 {
    match try_vpc_xdp(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            drop::count_drop(reason);
            xdp_action::XDP_DROP
        }
    }
}

#[inline(always)]
fn try_vpc_xdp(ctx: &XdpContext) -> Result<u32, DropReason> {
    let ingress = ctx.ingress_ifindex() as u32;
    let Some((slot, iface)) = interface(ingress) else {
        return Ok(xdp_action::XDP_PASS);
    };
    // A virtual device's frames may carry partial checksums and GSO aggregates, which only
    // the skb knows about: the TC program handles all of them.
    if iface.flags & IFACE_F_VIRTUAL != 0 {
        return Ok(xdp_action::XDP_PASS);
    }
    clock::start();
    let mut flow = match parse(ctx)? {
        Frame::Ipv4(flow) => flow,
        Frame::Arp(a) => {
            return Ok(match arp(ctx, &iface, &a)? {
                ArpAction::Answered => xdp_action::XDP_TX,
                ArpAction::ToKernel => xdp_action::XDP_PASS,
            });
        }
        Frame::Other => return Ok(xdp_action::XDP_PASS),
    };
    packet::addressed_to(ctx, &iface.mac)?;
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    let subnet = iface.kind == IFACE_SUBNET;
    let mut known = None;
    if subnet {
        match fastpath::probe(&flow, ingress) {
            Probe::Hit(hit) => return send_cached(ctx, ingress, &iface, &flow, bytes, hit),
            Probe::Miss(track) => known = track,
        }
    }
    let fwd = match decide(slot, &iface, &mut flow, known) {
        Ok(Decision::Forward(fwd)) => fwd,
        Ok(Decision::Unmanaged | Decision::ToHost) => return Ok(xdp_action::XDP_PASS),
        Ok(Decision::Reset) => {
            let reason = DropReason::NatExpired;
            flows::record(ingress, &flow, bytes, Outcome::Rejected(reason));
            drop::count_drop(reason);
            return Ok(icmp::xdp_reset(ctx, &flow).unwrap_or(xdp_action::XDP_DROP));
        }
        Err(reason) => {
            flows::record(ingress, &flow, bytes, Outcome::Rejected(reason));
            return Err(reason);
        }
    };
    let cache = subnet && flow.inner.is_none() && flow.frag != packet::Frag::Later;
    match forward::xdp(ctx, &flow, &fwd, cache) {
        // Handed to the kernel path: the TC program decides again and records the flow.
        Ok(xdp_action::XDP_PASS) => Ok(xdp_action::XDP_PASS),
        Ok(action) => {
            flows::record(ingress, &flow, bytes, Outcome::Accepted(&fwd));
            Ok(action)
        }
        Err(refusal) => refused_xdp(ctx, ingress, &iface, &flow, bytes, refusal),
    }
}

/// XDP: a packet that is not forwarded: counted and dropped, or answered with an ICMP error.
#[inline(always)]
fn refused_xdp(
    ctx: &XdpContext,
    ingress: u32,
    iface: &IfaceInfo,
    flow: &packet::Flow,
    bytes: u64,
    refusal: Refusal,
) -> Result<u32, DropReason> {
    let reason = match refusal {
        Refusal::Drop(reason) => reason,
        Refusal::Icmp(e) => icmp::reason(&e),
    };
    flows::record(ingress, flow, bytes, Outcome::Rejected(reason));
    match refusal {
        Refusal::Drop(_) => Err(reason),
        Refusal::Icmp(e) => {
            drop::count_drop(reason);
            Ok(icmp::xdp(ctx, flow, iface.router_ip, &e).unwrap_or(xdp_action::XDP_DROP))
        }
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

/// XDP fast path: sends a packet whose decision was cached, and counts its flow.
#[inline(always)]
fn send_cached(
    ctx: &XdpContext,
    ingress: u32,
    iface: &IfaceInfo,
    flow: &packet::Flow,
    bytes: u64,
    hit: Result<fastpath::Hit, DropReason>,
) -> Result<u32, DropReason> {
    let hit = match hit {
        Ok(hit) => hit,
        Err(reason) => {
            flows::record(ingress, flow, bytes, Outcome::Rejected(reason));
            return Err(reason);
        }
    };
    match forward::xdp_cached(ctx, flow, &hit.fwd, &hit.smac, &hit.dmac) {
        Ok(action) => {
            flows::record(ingress, flow, bytes, Outcome::Accepted(&hit.fwd));
            Ok(action)
        }
        Err(refusal) => refused_xdp(ctx, ingress, iface, flow, bytes, refusal),
    }
}

/// TC ingress program on every VPC interface: the same pipeline for packets XDP handed to the
/// kernel (unknown neighbour) or that arrive where XDP is not attached.
#[classifier]
pub fn vpc_tc_ingress(ctx: TcContext) -> i32 {
    match try_vpc_tc_ingress(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            drop::count_drop(reason);
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_vpc_tc_ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    // Headers must be in the linear part for direct access; a failure leaves them where they
    // are and the parser reports a short packet.
    // SAFETY: reading the ingress ifindex of the skb being processed.
    let ingress = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let Some((slot, iface)) = interface(ingress) else {
        return Ok(TC_ACT_OK);
    };
    clock::start();
    let _ = ctx.pull_data(128.min(ctx.len()));
    let mut flow = match parse(ctx)? {
        Frame::Ipv4(flow) => flow,
        Frame::Arp(a) => {
            return match arp(ctx, &iface, &a)? {
                // SAFETY: redirecting the skb being processed to its own device's egress.
                ArpAction::Answered => Ok(unsafe { bpf_redirect(ingress, 0) } as i32),
                ArpAction::ToKernel => Ok(TC_ACT_OK),
            };
        }
        Frame::Other => return Ok(TC_ACT_OK),
    };
    packet::addressed_to(ctx, &iface.mac)?;
    if !packet::header_checksum_ok(ctx)? {
        return Err(DropReason::Malformed);
    }
    let bytes = u64::from(ctx.len());
    let fwd = match decide(slot, &iface, &mut flow, None) {
        Ok(Decision::Forward(fwd)) => fwd,
        Ok(Decision::Unmanaged | Decision::ToHost) => return Ok(TC_ACT_OK),
        Ok(Decision::Reset) => {
            let reason = DropReason::NatExpired;
            flows::record(ingress, &flow, bytes, Outcome::Rejected(reason));
            drop::count_drop(reason);
            return Ok(icmp::tc_reset(ctx, &flow, ingress).unwrap_or(TC_ACT_SHOT));
        }
        Err(reason) => {
            flows::record(ingress, &flow, bytes, Outcome::Rejected(reason));
            return Err(reason);
        }
    };
    match forward::tc(ctx, &flow, &fwd) {
        Ok(action) => {
            flows::record(ingress, &flow, bytes, Outcome::Accepted(&fwd));
            Ok(action)
        }
        Err(refusal) => {
            let reason = match refusal {
                Refusal::Drop(reason) => reason,
                Refusal::Icmp(e) => icmp::reason(&e),
            };
            flows::record(ingress, &flow, bytes, Outcome::Rejected(reason));
            match refusal {
                Refusal::Drop(_) => Err(reason),
                Refusal::Icmp(e) => {
                    drop::count_drop(reason);
                    Ok(icmp::tc(ctx, &flow, iface.router_ip, ingress, &e).unwrap_or(TC_ACT_SHOT))
                }
            }
        }
    }
}

/// TC egress guard on subnet interfaces: only packets the datapath approved (marked by the TC
/// ingress program) and the router's own packets leave; anything the kernel forwarded by
/// itself is dropped (`unapproved`). XDP-redirected frames do not pass through here.
#[classifier]
pub fn vpc_tc_egress(ctx: TcContext) -> i32 {
    match try_vpc_tc_egress(&ctx) {
        Ok(action) => action,
        Err(reason) => {
            drop::count_drop(reason);
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_vpc_tc_egress(ctx: &TcContext) -> Result<i32, DropReason> {
    // SAFETY: reading fields of the skb being processed.
    let (mark, ifindex) = unsafe { ((*ctx.skb.skb).mark, (*ctx.skb.skb).ifindex) };
    if mark == MARK_APPROVED {
        ctx.set_mark(0);
        return Ok(TC_ACT_OK);
    }
    let Some((_, iface)) = interface(ifindex) else {
        return Ok(TC_ACT_OK);
    };
    if iface.kind != IFACE_SUBNET {
        return Ok(TC_ACT_OK);
    }
    let _ = ctx.pull_data(64.min(ctx.len()));
    // Only forwarded IPv4 is guarded: the router's own ARP and IPv6 leave as they are.
    let Ok(Frame::Ipv4(flow)) = parse(ctx) else {
        return Ok(TC_ACT_OK);
    };
    match copied(&SUBNETS, iface.subnet_id) {
        Some(s) if flow.src == s.router_ip => Ok(TC_ACT_OK),
        _ => Err(DropReason::Unapproved),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
