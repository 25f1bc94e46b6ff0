//! Reconciling the datapath maps to a definition with an atomic switch-over.
//!
//! Policy is double-buffered (vpc-common `iface.rs`): packets read the generation slot
//! `CONFIG.active_slot` names. A new definition is compiled into the *inactive* slot, written
//! there by difference against what that slot already holds, and then made active by one
//! array write to `CONFIG`, so a packet sees the whole old policy or the whole new one. A
//! definition equal to the running one writes nothing at all (not even the flip). Maps that
//! hold state rather than policy are never touched here.

use vpc_common::{LAYOUT_VERSION, iface::GlobalConfig};

use crate::{
    compile::{self, CompileError, Compiled},
    config::ValidatedConfig,
    datapath::Datapath,
    datapath::sync::{self, MapsError, SyncStats},
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot compile the definition")]
    Compile(#[from] CompileError),
    #[error("cannot write the maps")]
    Maps(#[from] MapsError),
}

/// What a reconciliation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The running generation already enforces the definition: nothing was written.
    Unchanged { generation: u64, slot: u32 },
    /// The definition was written into `slot`, which is now active as `generation`.
    Applied {
        generation: u64,
        slot: u32,
        stats: SyncStats,
        /// Device map entries of interfaces the new generation no longer uses.
        devices_pruned: usize,
    },
}

impl Outcome {
    /// The generation running afterwards.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Unchanged { generation, .. } | Self::Applied { generation, .. } => *generation,
        }
    }

    /// Entries written and removed (0 when unchanged).
    pub fn stats(&self) -> SyncStats {
        match self {
            Self::Unchanged { .. } => SyncStats::default(),
            Self::Applied { stats, .. } => *stats,
        }
    }
}

/// The slot a new generation is written into while `running` is active.
pub fn next_slot(running: &GlobalConfig) -> u32 {
    1 - running.active_slot.min(1)
}

/// Whether `running` has ever been written by an agent of this layout (fresh maps are zero).
fn applied_before(running: &GlobalConfig) -> bool {
    running.layout_version == LAYOUT_VERSION
}

/// Makes the datapath enforce `config` (see the module documentation). `ifindex` resolves
/// interface names; the returned [`Compiled`] is the generation now active.
pub fn reconcile(
    datapath: &mut Datapath,
    config: &ValidatedConfig,
    ifindex: &dyn compile::Links,
) -> Result<(Outcome, Compiled), ReconcileError> {
    let ebpf = datapath.ebpf_mut();
    let running = sync::read_config(ebpf)?;
    if applied_before(&running) {
        let active = compile::compile(config, running.active_slot, ifindex)?;
        if sync::diff(ebpf, &active)?.is_empty() {
            let outcome = Outcome::Unchanged {
                generation: running.generation,
                slot: running.active_slot,
            };
            return Ok((outcome, active));
        }
    }
    let slot = next_slot(&running);
    let next = compile::compile(config, slot, ifindex)?;
    let generation = running.generation + 1;
    let stats = sync::apply(ebpf, &next, generation)?;
    let devices_pruned = sync::prune_devices(ebpf, &next)?;
    let outcome = Outcome::Applied {
        generation,
        slot,
        stats,
        devices_pruned,
    };
    Ok((outcome, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_slot_is_the_inactive_one() {
        let mut running = GlobalConfig::default();
        assert_eq!(next_slot(&running), 1);
        running.active_slot = 1;
        assert_eq!(next_slot(&running), 0);
    }

    #[test]
    fn fresh_maps_were_never_applied() {
        assert!(!applied_before(&GlobalConfig::default()));
        let written = GlobalConfig {
            layout_version: LAYOUT_VERSION,
            ..Default::default()
        };
        assert!(applied_before(&written));
    }
}
