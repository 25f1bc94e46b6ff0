//! One clock read per packet: the entry point reads `bpf_ktime_get_ns` once ([`start`]) and
//! connection tracking and flow counters use that value ([`now`]), instead of one helper
//! call each.

use aya_ebpf::{btf_maps::PerCpuArray, helpers::bpf_ktime_get_ns, macros::btf_map};

/// This CPU's packet time.
#[btf_map]
static NOW: PerCpuArray<u64, 1> = PerCpuArray::new();

/// Reads the clock for the packet being processed.
#[inline(always)]
pub fn start() {
    if let Some(slot) = NOW.get_ptr_mut(0) {
        // SAFETY: per-CPU slot; bpf_ktime_get_ns has no preconditions.
        unsafe { *slot = bpf_ktime_get_ns() };
    }
}

/// The packet's time (`bpf_ktime_get_ns` at [`start`]).
#[inline(always)]
pub fn now() -> u64 {
    match NOW.get(0) {
        Some(t) => *t,
        // SAFETY: no preconditions (the per-CPU slot always exists; this is the fallback).
        None => unsafe { bpf_ktime_get_ns() },
    }
}
