//! Connection tracking: one entry per connection, keyed by the connection's original direction
//! as seen inside the VPC (private addresses, before any translation), in `CT_UNASSURED` while
//! it is new (a TCP handshake in progress, UDP or ICMP not yet answered) and in `CONNTRACK`
//! once assured (both LRU hashes). A packet is looked up in `CONNTRACK` as a reply first
//! (reversed tuple), then as the original direction, then likewise in `CT_UNASSURED`. For ICMP
//! echo both ports are the identifier.

use crate::{
    Addr6, assert_size, pod,
    proto::{PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP},
};

/// `CONNTRACK` key (`CONNTRACK6`: [`CtKey6`], the same fields with 16-byte addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey<A = u32> {
    /// Network order.
    pub src: A,
    pub dst: A,
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
assert_size!(CtKey, 16);

/// `CONNTRACK6` / `CT_UNASSURED6` key: an IPv6 connection.
pub type CtKey6 = CtKey<Addr6>;
assert_size!(CtKey6, 40);

impl<A: Copy> CtKey<A> {
    /// The key of a connection whose original direction is `src:sport -> dst:dport`, padding
    /// zeroed (a hash key must not carry stray bytes).
    #[inline(always)]
    pub const fn new(src: A, dst: A, sport: u16, dport: u16, proto: u8) -> Self {
        Self {
            src,
            dst,
            sport,
            dport,
            proto,
            _pad: [0; 3],
        }
    }

    /// The same connection seen from the other end (what a reply's own tuple is).
    #[inline(always)]
    pub const fn reversed(&self) -> Self {
        Self::new(self.dst, self.src, self.dport, self.sport, self.proto)
    }
}

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

const NS_PER_S: u64 = 1_000_000_000;

/// A configured timeout (seconds; 0 means the default) in ns.
#[inline(always)]
const fn secs(configured: u32, default: u32) -> u64 {
    (if configured == 0 { default } else { configured }) as u64 * NS_PER_S
}

impl CtTimeouts {
    /// The idle timeout, in ns, of a connection of `proto` in `state`: the one rule the
    /// datapath (on lookup) and the agent's sweep both apply. Connections through a NAT
    /// gateway (`natted`) have the NAT idle timeout in every state.
    #[inline(always)]
    pub const fn idle_ns(&self, proto: u8, state: u8, natted: bool) -> u64 {
        let d = DEFAULT_TIMEOUTS;
        if natted {
            return secs(self.nat, d.nat);
        }
        match state {
            CT_TCP_ESTABLISHED => secs(self.tcp_established, d.tcp_established),
            CT_TCP_SYN_SENT | CT_TCP_SYN_RECV => secs(self.tcp_transitory, d.tcp_transitory),
            CT_TCP_FIN_WAIT | CT_TCP_TIME_WAIT | CT_TCP_CLOSED => {
                secs(self.tcp_closing, d.tcp_closing)
            }
            _ => match (proto, state) {
                (PROTO_UDP, CT_BOTH_WAYS) => secs(self.udp_stream, d.udp_stream),
                (PROTO_UDP, _) => secs(self.udp, d.udp),
                (PROTO_ICMP | PROTO_ICMPV6, _) => secs(self.icmp, d.icmp),
                _ => secs(self.other, d.other),
            },
        }
    }
}

impl CtEntry {
    /// Whether the connection (of `proto`) is still live at monotonic time `now`
    /// (`bpf_ktime_get_ns`). An entry stamped after `now` (another CPU's packet after this
    /// clock read, or a packet during a sweep) has idle time zero, never a wrapped-around huge
    /// one.
    #[inline(always)]
    pub const fn live(&self, t: &CtTimeouts, proto: u8, now: u64) -> bool {
        now.saturating_sub(self.last_seen_ns) <= t.idle_ns(proto, self.state, self.nat_ip != 0)
    }
}

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

pod!(CtKey, CtKey6, CtEntry, CtPath, CtTimeouts);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PROTO_TCP;

    const S: u64 = NS_PER_S;

    fn entry(state: u8, last_seen_s: u64, nat_ip: u32) -> CtEntry {
        CtEntry {
            last_seen_ns: last_seen_s * S,
            state,
            nat_ip,
            ..CtEntry::default()
        }
    }

    #[test]
    fn keys_zero_their_padding_and_reverse() {
        let k = CtKey::new(1, 2, 3, 4, PROTO_TCP);
        assert_eq!(k._pad, [0; 3]);
        assert_eq!(k.reversed(), CtKey::new(2, 1, 4, 3, PROTO_TCP));
        assert_eq!(k.reversed().reversed(), k);
    }

    #[test]
    fn idle_timeouts_follow_state_protocol_and_translation() {
        let d = CtTimeouts::default();
        let cases = [
            (PROTO_TCP, CT_TCP_SYN_SENT, false, 60),
            (PROTO_TCP, CT_TCP_SYN_RECV, false, 60),
            (PROTO_TCP, CT_TCP_ESTABLISHED, false, 432_000),
            (PROTO_TCP, CT_TCP_FIN_WAIT, false, 60),
            (PROTO_TCP, CT_TCP_TIME_WAIT, false, 60),
            (PROTO_TCP, CT_TCP_CLOSED, false, 60),
            (PROTO_UDP, CT_ONE_WAY, false, 30),
            (PROTO_UDP, CT_BOTH_WAYS, false, 180),
            (PROTO_ICMP, CT_ONE_WAY, false, 30),
            (PROTO_ICMP, CT_BOTH_WAYS, false, 30),
            (47, CT_ONE_WAY, false, 60),
            (PROTO_TCP, CT_TCP_ESTABLISHED, true, 350),
            (PROTO_UDP, CT_BOTH_WAYS, true, 350),
        ];
        for (proto, state, natted, s) in cases {
            assert_eq!(
                d.idle_ns(proto, state, natted),
                s * S,
                "{proto} {state} {natted}"
            );
        }
        let short = CtTimeouts {
            tcp_established: 60,
            nat: 10,
            ..CtTimeouts::default()
        };
        assert_eq!(short.idle_ns(PROTO_TCP, CT_TCP_ESTABLISHED, false), 60 * S);
        assert_eq!(short.idle_ns(PROTO_TCP, CT_TCP_ESTABLISHED, true), 10 * S);
        assert_eq!(short.idle_ns(PROTO_UDP, CT_ONE_WAY, false), 30 * S);
    }

    #[test]
    fn liveness_is_idle_time_within_the_timeout() {
        let d = CtTimeouts::default();
        assert!(entry(CT_ONE_WAY, 100, 0).live(&d, PROTO_UDP, 130 * S));
        assert!(!entry(CT_ONE_WAY, 100, 0).live(&d, PROTO_UDP, 130 * S + 1));
        assert!(entry(CT_ONE_WAY, 100, 9).live(&d, PROTO_UDP, 450 * S));
        assert!(!entry(CT_ONE_WAY, 100, 9).live(&d, PROTO_UDP, 451 * S));
        // Stamped after the clock read: live, not wrapped around.
        assert!(entry(CT_TCP_ESTABLISHED, 100, 0).live(&d, PROTO_TCP, 99 * S));
    }
}
