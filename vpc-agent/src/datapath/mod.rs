//! The datapath as the agent sees it: the embedded eBPF object and its map specs (`object`),
//! loading and attaching it (`loader`), the bpffs directory it is pinned in (`pin`) and writing
//! a compiled definition into its maps by difference (`sync`).

pub mod loader;
pub mod object;
pub mod pin;
pub mod sync;

pub use loader::{
    AttachMode, Attached, Attachment, Datapath, DatapathError, drop_counters, drop_stats,
    programs_for,
};
