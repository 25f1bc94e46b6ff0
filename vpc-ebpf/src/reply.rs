//! Answers the router sends back where a packet came from (ICMP errors, TCP resets, neighbour
//! discovery): built in per-CPU scratch space, then written over the frame, resized to the
//! answer's length. The callers send the frame back (`XDP_TX`, or a TC redirect).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_skb_change_tail, bpf_xdp_adjust_tail},
    programs::{TcContext, XdpContext},
};

use crate::packet::header_mut;

/// XDP: replaces the frame with the `N` bytes of `built`; `None` when it cannot be resized.
#[inline(always)]
pub fn xdp_replace<const N: usize>(ctx: &XdpContext, built: &[u8; N]) -> Option<()> {
    let delta = N as i32 - (ctx.data_end() - ctx.data()) as i32;
    // SAFETY: the frame being processed; the helper checks the new size.
    if unsafe { bpf_xdp_adjust_tail(ctx.as_ptr().cast(), delta) } != 0 {
        return None;
    }
    let frame: &mut [u8; N] = header_mut(ctx, 0).ok()?;
    *frame = *built;
    Some(())
}

/// TC: replaces the skb's data with the `N` bytes of `built`; `None` when it cannot be
/// resized.
#[inline(always)]
pub fn tc_replace<const N: usize>(ctx: &TcContext, built: &[u8; N]) -> Option<()> {
    // SAFETY: the skb being processed; the helper checks the new length.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb.cast(), N as u32, 0) } != 0 {
        return None;
    }
    ctx.store(0, built, 0).ok()
}
