//! Connection tracking: one entry per connection, keyed by the connection's original direction
//! as seen inside the VPC (private addresses, before any translation), in `CT_UNASSURED` while
//! it is new (a TCP handshake in progress, UDP or ICMP not yet answered) and in `CONNTRACK`
//! once assured (both LRU hashes). A packet is looked up in `CONNTRACK` as a reply first
//! (reversed tuple), then as the original direction, then likewise in `CT_UNASSURED`. For ICMP
//! echo both ports are the identifier.

use crate::{assert_size, pod};

/// `CONNTRACK` key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey {
    /// Network order.
    pub src: u32,
    pub dst: u32,
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
assert_size!(CtKey, 16);

/// TCP: SYN seen from the originator.
pub const CT_TCP_SYN_SENT: u8 = 1;
/// TCP: SYN+ACK seen from the responder.
pub const CT_TCP_SYN_RECV: u8 = 2;
/// TCP: handshake complete.
pub const CT_TCP_ESTABLISHED: u8 = 3;
/// TCP: a FIN seen from one side.
pub const CT_TCP_FIN_WAIT: u8 = 4;
/// TCP: FINs seen from both sides.
pub const CT_TCP_TIME_WAIT: u8 = 5;
/// TCP: reset. A new SYN starts a new connection (rules evaluated again).
pub const CT_TCP_CLOSED: u8 = 6;
/// UDP / ICMP / other: only the original direction seen so far.
pub const CT_ONE_WAY: u8 = 7;
/// UDP / ICMP / other: traffic seen both ways.
pub const CT_BOTH_WAYS: u8 = 8;

/// `flags`: a FIN was seen from the originator.
pub const CT_FIN_ORIGINAL: u8 = 1 << 0;
/// `flags`: a FIN was seen from the responder.
pub const CT_FIN_REPLY: u8 = 1 << 1;
/// `flags`: `ack_max[0]` holds an acknowledgment the originator sent.
pub const CT_ACK_ORIGINAL: u8 = 1 << 2;
/// `flags`: `ack_max[1]` holds an acknowledgment the responder sent.
pub const CT_ACK_REPLY: u8 = 1 << 3;
/// `flags`: the responder has sent a packet (`seq_end[1]` is valid).
pub const CT_SEEN_REPLY: u8 = 1 << 4;

/// Slack (bytes) around the window in which a RST or FIN is believed: segments of one
/// connection handled on two CPUs at once may be seen slightly out of order.
pub const CT_WINDOW_SLACK: u32 = 65_536;

/// `CONNTRACK` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// `bpf_ktime_get_ns` at creation and at the last packet.
    pub created_ns: u64,
    pub last_seen_ns: u64,
    /// One of `CT_*` states.
    pub state: u8,
    /// `CT_FIN_*` bits.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// Translation applied to the original direction (Datapath III): 0 = none.
    pub nat_ip: u32,
    pub nat_port: u16,
    pub _pad2: [u8; 2],
    /// TCP, per direction (0: the originator's, 1: the responder's), host order: the end of
    /// what it sent (sequence number + payload + SYN + FIN, the highest seen) and the highest
    /// acknowledgment it sent (valid once `CT_ACK_*` is set). A RST or FIN from one side is
    /// believed only with a sequence number between what the other side acknowledged and
    /// what this side sent (`CT_WINDOW_SLACK` either way): the receiver's window, as
    /// nf_conntrack checks it, without needing the window scale.
    pub seq_end: [u32; 2],
    pub ack_max: [u32; 2],
    pub _pad3: u32,
    /// The forwarding decision of each direction, cached for the fast path.
    pub original: CtPath,
    pub reply: CtPath,
}
assert_size!(CtEntry, 128);

/// A cached forwarding decision for one direction of a connection (the fast path).
///
/// Network ACL verdicts, routes, source checks and translations depend only on a direction's
/// 5-tuple, and security groups are not evaluated for tracked packets, so while the policy
/// generation is unchanged the decision of the first packet holds for the next ones. The next
/// hop's MACs come from `bpf_fib_lookup` and are trusted for [`CT_PATH_TTL_S`] seconds, then
/// looked up again. `generation == 0` means nothing is cached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtPath {
    /// Low 32 bits of the policy generation (`GlobalConfig::generation`) it was decided under.
    pub generation: u32,
    /// The interface the direction's packets arrive on.
    pub ingress: u32,
    pub out_ifindex: u32,
    /// Rewrites (0 = unchanged), as in the datapath's `Forward`.
    pub new_src: u32,
    pub new_dst: u32,
    pub new_sport: u16,
    pub new_dport: u16,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// `bpf_ktime_get_ns() >> 30` (about seconds) when the MACs were looked up.
    pub stamp: u32,
}
assert_size!(CtPath, 40);

/// How long (in `stamp` units, about seconds) a cached next hop is trusted.
pub const CT_PATH_TTL_S: u32 = 2;

/// Idle timeouts in seconds (`CT_TIMEOUTS[0]`); a zero field means the AWS default below.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtTimeouts {
    pub tcp_established: u32,
    /// Handshake and other transitional TCP states.
    pub tcp_transitory: u32,
    /// After a FIN or RST.
    pub tcp_closing: u32,
    pub udp: u32,
    /// UDP once traffic was seen both ways.
    pub udp_stream: u32,
    pub icmp: u32,
    pub other: u32,
    /// Connections through a NAT gateway.
    pub nat: u32,
}
assert_size!(CtTimeouts, 32);

/// AWS defaults (seconds).
pub const DEFAULT_TIMEOUTS: CtTimeouts = CtTimeouts {
    tcp_established: 432_000,
    tcp_transitory: 60,
    tcp_closing: 60,
    udp: 30,
    udp_stream: 180,
    icmp: 30,
    other: 60,
    nat: 350,
};

/// Per-CPU `CT_STATS` slots.
pub const CT_STAT_CREATED: u32 = 0;
/// Entries found expired on lookup and replaced or removed by the datapath.
pub const CT_STAT_EXPIRED: u32 = 1;
/// Entries removed by the userspace sweep.
pub const CT_STAT_SWEPT: u32 = 2;
/// Connections that became assured and moved from `CT_UNASSURED` to `CONNTRACK`.
pub const CT_STAT_ASSURED: u32 = 3;
/// Number of `CT_STATS` slots.
pub const CT_STAT_SLOTS: u32 = 4;

/// Default capacity of `CONNTRACK` (the agent may set another at load time).
pub const CONNTRACK_ENTRIES: u32 = 262_144;

/// Capacity of `CT_UNASSURED`: connections not yet assured (a TCP handshake not completed, UDP
/// or ICMP not yet answered) live there, apart from `CONNTRACK`, so that a flood of them (a
/// SYN flood from random sources) evicts only its own kind, never an established connection
/// (the analogue of nf_conntrack's early drop of unassured entries). A connection moves to
/// `CONNTRACK` when it becomes assured.
pub const CT_UNASSURED_ENTRIES: u32 = 65_536;

pod!(CtKey, CtEntry, CtPath, CtTimeouts);
