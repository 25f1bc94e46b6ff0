//! One clock read per packet: the entry point reads the clock once ([`start`]) and connection
//! tracking and flow counters use that value ([`now`]), instead of one helper call each.
//!
//! The clock is `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE: the same clock as the
//! agent's CLOCK_MONOTONIC, read at tick resolution, a few ms): every use is a timeout or a
//! flow-log time in seconds, and the coarse read costs a memory load where the fine one reads
//! the clock source.

use aya_ebpf::{btf_maps::PerCpuArray, helpers::bpf_ktime_get_coarse_ns, macros::btf_map};

/// This CPU's packet time.
#[btf_map]
static NOW: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Reads the clock for the packet being processed.
#[inline(always)]
pub fn start() {
    if let Some(slot) = NOW.get_ptr_mut(0) {
        // SAFETY: per-CPU slot; the helper has no preconditions.
        unsafe { *slot = bpf_ktime_get_coarse_ns() };
    }
}

/// The packet's time (the coarse clock at [`start`]).
#[inline(always)]
pub fn now() -> u64 {
    match NOW.get(0) {
        Some(t) => *t,
        // SAFETY: no preconditions (the per-CPU slot always exists; this is the fallback).
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}
