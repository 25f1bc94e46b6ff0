//! `AGENT_STATE`: the agent's record of itself (definition path, pid, interface names, flow
//! log and sweep counters) for `status`, `flows`, the metrics and `trace`, which read it from
//! the pinned map whether or not the agent runs. The programs never touch it; it is in the
//! object so that it is created and pinned with BTF like every other map.
//!
//! The record is JSON, split over consecutive entries from index 0. Every entry of one write
//! carries the record's total length and the write's sequence number, so a reader that meets
//! entries of two different writes (it read while the agent wrote) knows it and reads again.

use crate::{assert_size, pod};

/// Record bytes per entry.
pub const AGENT_STATE_CHUNK_BYTES: usize = 4088;
/// Entries: the largest record is `AGENT_STATE_CHUNKS * AGENT_STATE_CHUNK_BYTES` (255.5 KiB;
/// an interface name costs about 25 bytes of it).
pub const AGENT_STATE_CHUNKS: u32 = 64;

/// One entry of `AGENT_STATE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentStateChunk {
    /// Length of the whole record in bytes (the same in every entry of one write).
    pub len: u32,
    /// Which write this entry belongs to (the same in every entry of one write).
    pub seq: u32,
    /// This entry's part of the record (the last entry's tail is zero).
    pub bytes: [u8; AGENT_STATE_CHUNK_BYTES],
}
assert_size!(AgentStateChunk, 4096);

impl Default for AgentStateChunk {
    fn default() -> Self {
        Self {
            len: 0,
            seq: 0,
            bytes: [0; AGENT_STATE_CHUNK_BYTES],
        }
    }
}

pod!(AgentStateChunk);
