//! The one drop path: every dropped packet is counted per reason (per-CPU, no atomics).

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use vpc_common::DropReason;

/// `DROP_COUNTERS[reason]`: packets dropped for that reason, per CPU.
#[btf_map]
pub static DROP_COUNTERS: PerCpuArray<u64, { DropReason::COUNT as usize }> = PerCpuArray::new();

/// Counts a drop for `reason`.
#[inline(always)]
pub fn count_drop(reason: DropReason) {
    if let Some(slot) = DROP_COUNTERS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}
