//! XDP programs of the end-to-end benchmark (`cargo xtask bench`), never attached by the agent:
//!
//! - `bench_gen`, the traffic generator: run by BPF_PROG_TEST_RUN with
//!   BPF_F_TEST_XDP_LIVE_FRAMES from the sender's namespace, it writes the header template
//!   into the frame (the kernel recycles the frame's page after the router and the sink have
//!   rewritten it: MACs, TTL), spreads the packets over `2^k` flows by UDP source port and
//!   transmits them (XDP_TX: out of the sender's interface, to the router);
//! - `bench_sink`, on the receiver's interface: counts packets and bytes per CPU, drops;
//! - `bench_pass`, on the Linux router's ingress: passes every frame to the kernel (a veth
//!   takes frames sent with XDP only when it runs an XDP program, as the datapath's router
//!   interfaces do).
// Built for the host too (`cargo build --workspace`): there it is an empty program.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray},
    helpers::generated::bpf_xdp_store_bytes,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use bench_ebpf::{CONFIG_FLOWS_MASK, HEADER_LEN, SINK_BYTES, SINK_PACKETS, UDP_SPORT_OFFSET};

/// `GEN_HEADER[0]`: the frame's first [`HEADER_LEN`] bytes (Ethernet, IPv4, UDP with checksum
/// 0), written by the benchmark before it runs the generator.
#[btf_map]
static GEN_HEADER: Array<[u8; HEADER_LEN], 1> = Array::new();

/// `GEN_CONFIG[CONFIG_FLOWS_MASK]`: flows - 1 (a power of two minus one).
#[btf_map]
static GEN_CONFIG: Array<u32, 1> = Array::new();

/// Frames generated on each CPU.
#[btf_map]
static GEN_PACKETS: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Packets and bytes received on each CPU.
#[btf_map]
static SINK_COUNTERS: PerCpuArray<u64, 2> = PerCpuArray::new();

#[xdp]
pub fn bench_gen(ctx: XdpContext) -> u32 {
    try_gen(&ctx).unwrap_or(xdp_action::XDP_ABORTED)
}

fn try_gen(ctx: &XdpContext) -> Result<u32, ()> {
    let header = GEN_HEADER.get_ptr_mut(0).ok_or(())?;
    let mask = GEN_CONFIG.get(CONFIG_FLOWS_MASK).copied().unwrap_or(0);
    let count = GEN_PACKETS.get_ptr_mut(0).ok_or(())?;
    // SAFETY: a per-CPU array slot, valid for the program's run and written only on this CPU.
    let n = unsafe {
        let n = *count;
        *count = n + 1;
        n
    };
    // SAFETY: `header` points to a map value of HEADER_LEN bytes; the helper checks the
    // frame's bounds itself.
    if unsafe { bpf_xdp_store_bytes(ctx.ctx, 0, header.cast(), HEADER_LEN as u32) } != 0 {
        return Err(());
    }
    // SAFETY: as above, the value is HEADER_LEN bytes long and the port lies inside it.
    let base = unsafe {
        let h = &*header;
        u16::from_be_bytes([h[UDP_SPORT_OFFSET], h[UDP_SPORT_OFFSET + 1]])
    };
    let mut sport = base.wrapping_add((n as u32 & mask) as u16).to_be_bytes();
    // SAFETY: `sport` is a 2-byte stack buffer; the helper checks the frame's bounds.
    let stored = unsafe {
        bpf_xdp_store_bytes(
            ctx.ctx,
            UDP_SPORT_OFFSET as u32,
            sport.as_mut_ptr().cast(),
            2,
        )
    };
    if stored != 0 {
        return Err(());
    }
    Ok(xdp_action::XDP_TX)
}

#[xdp]
pub fn bench_sink(ctx: XdpContext) -> u32 {
    add(SINK_PACKETS, 1);
    add(SINK_BYTES, (ctx.data_end() - ctx.data()) as u64);
    xdp_action::XDP_DROP
}

fn add(slot: u32, n: u64) {
    if let Some(c) = SINK_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU array slot, valid for the program's run and written only on this
        // CPU.
        unsafe { *c += n };
    }
}

#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
