//! Which managed interface a packet arrived on, in the active policy generation.

use vpc_common::iface::{IfaceInfo, IfaceKey};

use crate::maps::{CONFIG, IFACES, copied};

/// The active generation slot.
#[inline(always)]
pub fn active_slot() -> u32 {
    CONFIG.get(0).map_or(0, |c| c.active_slot)
}

/// The managed interface `ingress` in the active generation, or `None` (not the agent's:
/// everything on it is the kernel's business, even packets the parser would reject).
#[inline(always)]
pub fn interface(ingress: u32) -> Option<(u32, IfaceInfo)> {
    let slot = active_slot();
    copied(
        &IFACES,
        IfaceKey {
            ifindex: ingress,
            slot,
        },
    )
    .map(|iface| (slot, iface))
}
