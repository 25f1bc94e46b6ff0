//! The VPC datapath: XDP on ingress of every VPC interface (fast path), TC for packets that take
//! the kernel's path. Entry points are thin and call a `try_*` function returning a
//! `Result<action, DropReason>`; the single drop path counts the reason.
#![no_std]
#![no_main]

mod drop;
mod packet;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use vpc_common::DropReason;

use crate::packet::{Frame, parse};

/// XDP ingress program on every VPC interface.
#[xdp]
pub fn vpc_xdp(ctx: XdpContext) -> u32 {
    match try_vpc_xdp(&ctx) {
        Ok(action) => action,
        Err(reason) => xdp_drop(reason),
    }
}

#[inline(always)]
fn try_vpc_xdp(ctx: &XdpContext) -> Result<u32, DropReason> {
    match parse(ctx)? {
        Frame::Other => Ok(xdp_action::XDP_PASS),
        Frame::Ipv4(_flow) => Ok(xdp_action::XDP_PASS),
    }
}

#[inline(always)]
fn xdp_drop(reason: DropReason) -> u32 {
    drop::count_drop(reason);
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
