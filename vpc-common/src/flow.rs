//! Per-flow counters for flow logs. The datapath counts every IPv4 packet it decides on, at
//! the interface it arrived on, in `FLOWS` (a per-CPU hash: one lookup, then increments through
//! the pointer, no atomics). The agent drains the map each aggregation interval. When the map
//! is full a packet's flow cannot be recorded: it is counted in `FLOWS_SKIPPED` and the agent
//! reports SKIPDATA for that interface, as AWS does.
//!
//! Draining loses nothing: the kernel stamps every key with the current generation
//! (`FLOWS_GEN[0]`, 0 or 1). The agent flips the generation, waits for programs still running
//! with the old one, then reads and deletes only the old generation's entries, which the kernel
//! no longer touches. `FLOWS_SKIPPED` is keyed by `ifindex | generation << 31` likewise.

use crate::{assert_size, pod};

/// Accepted (forwarded).
pub const FLOW_ACCEPT: u8 = 1;
/// Rejected (dropped with a reason).
pub const FLOW_REJECT: u8 = 2;

/// `FLOWS` key: one direction of a flow on one interface, by action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The interface the packets arrived on.
    pub ifindex: u32,
    /// As on the wire at that interface (network order; ports host order, ICMP: identifier
    /// for echo, else 0).
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// `FLOW_ACCEPT` or `FLOW_REJECT`.
    pub action: u8,
    /// The drain generation (`FLOWS_GEN[0]` when the entry was created), 0 or 1.
    pub generation: u8,
    pub _pad: u8,
}
assert_size!(FlowKey, 20);

/// `FLOWS` value (per CPU; the agent sums packets and bytes, takes min first and max last).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    /// `bpf_ktime_get_ns` of the first and last packet.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Where accepted packets went and as what (after translation); 0 when rejected.
    pub out_ifindex: u32,
    pub pkt_src: u32,
    pub pkt_dst: u32,
    /// The drop reason of rejected packets (`DropReason` as u32), 0 when accepted.
    pub reason: u32,
    /// OR of the TCP flags seen.
    pub tcp_flags: u8,
    pub _pad: [u8; 7],
}
assert_size!(FlowStats, 56);

/// The generation bit of a `FLOWS_SKIPPED` key (the rest is the ifindex).
pub const SKIPPED_GENERATION_BIT: u32 = 1 << 31;

/// The `FLOWS_SKIPPED` key of an interface in a generation.
#[inline]
pub const fn skipped_key(ifindex: u32, generation: u32) -> u32 {
    ifindex | (generation << 31)
}

/// Capacity of `FLOWS`.
pub const FLOWS_ENTRIES: u32 = 65536;

pod!(FlowKey, FlowStats);
