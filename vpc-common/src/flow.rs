//! Per-flow counters for flow logs. The datapath counts every packet it decides on, at the
//! interface it arrived on, in `FLOWS` (IPv4) or `FLOWS6` (IPv6; the same value, the key with
//! 16-byte addresses: [`FlowKey6`]), per-CPU hashes: one lookup, then increments through the
//! pointer, no atomics. The agent drains the map each aggregation interval. When the map
//! is full a packet's flow cannot be recorded: it is counted in `FLOWS_SKIPPED` and the agent
//! reports SKIPDATA for that interface, as AWS does.
//!
//! Draining loses nothing: the kernel stamps every key with the current generation
//! (`FLOWS_GEN[0]`, 0 or 1). The agent flips the generation, waits for programs still running
//! with the old one, then reads and deletes only the old generation's entries, which the kernel
//! no longer touches. `FLOWS_SKIPPED` is keyed by `ifindex | generation << 31` likewise. One
//! generation for both families: one flip drains `FLOWS` and `FLOWS6`.

use crate::{Addr6, assert_size, pod};

/// Accepted (forwarded).
pub const FLOW_ACCEPT: u8 = 1;
/// Rejected (dropped with a reason).
pub const FLOW_REJECT: u8 = 2;

/// `FLOWS` key: one direction of a flow on one interface, by action (`FLOWS6`: [`FlowKey6`],
/// the same fields with 16-byte addresses).
///
/// Layout (no implicit padding, 4-byte aligned): `ifindex` 0..4, `src` 4..4+N, `dst`
/// 4+N..4+2N (N = 4 for IPv4, 16 for IPv6), then `sport`, `dport` (2 each), `proto`, `action`,
/// `generation`, `_pad` (1 each): 20 bytes for IPv4, 44 for IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey<A = u32> {
    /// The interface the packets arrived on.
    pub ifindex: u32,
    /// As on the wire at that interface (network order: IPv6 the 16 bytes as in the packet;
    /// ports host order, ICMP / ICMPv6: identifier for echo, else 0).
    pub src: A,
    pub dst: A,
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

/// `FLOWS6` key: an IPv6 flow.
pub type FlowKey6 = FlowKey<Addr6>;
assert_size!(FlowKey6, 44);

/// `FLOWS` value (per CPU; the agent sums packets and bytes, takes min first and max last).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    /// IP packet bytes (the IP total length: AWS does not count the Ethernet header).
    pub bytes: u64,
    /// `bpf_ktime_get_ns` of the first and last packet.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Where accepted packets went (0 when rejected) and as what: the IPv4 source and
    /// destination after translation (network order), 0 where the packet was not translated
    /// (always for IPv6: it has no translation; the key's addresses are the packet's).
    pub out_ifindex: u32,
    pub pkt_src: u32,
    pub pkt_dst: u32,
    /// The drop reason of rejected packets (`DropReason` as u32), 0 when accepted.
    pub reason: u32,
    /// OR of the TCP flags seen, as AWS reports them ([`aws_tcp_flags`]).
    pub tcp_flags: u8,
    pub _pad: [u8; 7],
}
assert_size!(FlowStats, 56);

/// TCP header flag bits.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// The part of a segment's flags a flow log's `tcp-flags` ORs in, as AWS does: FIN, SYN and
/// RST, and ACK only together with SYN (SYN-ACK = 18); PSH, URG, ECE, CWR never.
#[inline(always)]
pub const fn aws_tcp_flags(flags: u8) -> u8 {
    let ack = if flags & TCP_SYN != 0 {
        flags & TCP_ACK
    } else {
        0
    };
    (flags & (TCP_FIN | TCP_SYN | TCP_RST)) | ack
}

/// Length of the Ethernet header the frame length includes and flow logs do not count.
pub const ETH_HLEN: u64 = 14;

/// The generation bit of a `FLOWS_SKIPPED` key (the rest is the ifindex).
pub const SKIPPED_GENERATION_BIT: u32 = 1 << 31;

/// The `FLOWS_SKIPPED` key of an interface in a generation.
#[inline]
pub const fn skipped_key(ifindex: u32, generation: u32) -> u32 {
    ifindex | (generation << 31)
}

/// Capacity of `FLOWS` and of `FLOWS6`.
pub const FLOWS_ENTRIES: u32 = 65536;

pod!(FlowKey, FlowKey6, FlowStats);

#[cfg(test)]
mod tests {
    use super::*;

    const PSH: u8 = 0x08;

    /// A connection's segments, ORed as the datapath does.
    fn or(segments: &[u8]) -> u8 {
        segments.iter().fold(0, |acc, &f| acc | aws_tcp_flags(f))
    }

    #[test]
    fn tcp_flags_are_ored_as_aws_reports_them() {
        // The client side: SYN, then ACKs and data, then FIN: SYN 2 + FIN 1, no ACK.
        assert_eq!(or(&[TCP_SYN, TCP_ACK, TCP_ACK | PSH, TCP_FIN | TCP_ACK]), 3);
        // The server side: SYN-ACK 18, then data and FIN: 19.
        assert_eq!(
            or(&[TCP_SYN | TCP_ACK, TCP_ACK | PSH, TCP_FIN | TCP_ACK]),
            19
        );
        // A refused connection's answer: RST 4 (with ACK: still 4).
        assert_eq!(or(&[TCP_RST | TCP_ACK]), 4);
        // Established traffic only: 0.
        assert_eq!(or(&[TCP_ACK, TCP_ACK | PSH]), 0);
    }
}
