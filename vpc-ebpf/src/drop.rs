//! The one drop path: every dropped packet is counted per (reason, hook), packets and bytes
//! (per-CPU, no atomics). Layout: `vpc_common::drop::drop_slot`.

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use vpc_common::{
    DropReason, Hook,
    drop::{DROP_SLOTS, DropStats, drop_slot},
};

/// `DROP_COUNTERS[drop_slot(reason, hook)]`: packets and bytes dropped, per CPU.
#[btf_map]
pub static DROP_COUNTERS: PerCpuArray<DropStats, { DROP_SLOTS as usize }> = PerCpuArray::new();

/// Counts a drop of a `bytes`-long packet for `reason` by `hook`.
#[inline(always)]
pub fn count_drop(reason: DropReason, hook: Hook, bytes: u64) {
    if let Some(slot) = DROP_COUNTERS.get_ptr_mut(drop_slot(reason, hook)) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        let s = unsafe { &mut *slot };
        s.packets += 1;
        s.bytes += bytes;
    }
}
