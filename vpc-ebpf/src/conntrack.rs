//! Connection tracking: TCP state machine, UDP, ICMP echo (identifier as port), idle timeouts.
//!
//! A packet is looked up as a reply (reversed tuple) first, then as the original direction.
//! Entries are created only for packets the pipeline forwards. Expired entries are treated as
//! absent when found (and replaced when the connection starts again); the agent's sweep removes
//! the rest, and the LRU map evicts the least recently used entry when full (CT_STATS lets the
//! agent count evictions: created - expired - swept - live).
//!
//! TCP: a connection starts with a SYN alone; any other packet without state is dropped
//! (`invalid_tcp_flags`), as are flag combinations that make no sense at all (SYN+FIN,
//! SYN+RST, no flags, FIN without ACK). A SYN after RST or after both FINs starts a new
//! connection (rules are evaluated again); a repeated SYN during the handshake is allowed.
//! A RST or FIN changes a connection only when its sequence number lies in the receiver's
//! window (see `CtEntry::seq_end`); otherwise it is dropped (`tcp_out_of_window`), so a
//! blind attacker cannot close or start closing a connection.

use vpc_common::{
    DropReason,
    conntrack::{
        CT_ACK_ORIGINAL, CT_ACK_REPLY, CT_BOTH_WAYS, CT_FIN_ORIGINAL, CT_FIN_REPLY, CT_ONE_WAY,
        CT_SEEN_REPLY, CT_STAT_ASSURED, CT_STAT_CREATED, CT_STAT_EXPIRED, CT_TCP_CLOSED,
        CT_TCP_ESTABLISHED, CT_TCP_FIN_WAIT, CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_TCP_TIME_WAIT,
        CT_WINDOW_SLACK, CtEntry, CtKey, CtTimeouts,
    },
    trace::{
        CT_EXPIRED as TRACE_CT_EXPIRED, STEP_CONNTRACK, STEP_CONNTRACK_NEXT, STEP_NAT_GATEWAY,
    },
};

use crate::{
    clock,
    family::Family,
    maps::{CT_SCRATCH, CT_STATS, CT_TIMEOUTS},
    packet::{Flow, Frag, PROTO_TCP},
    trace::Mode,
    verdict::Forward,
};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A connection's entry in `CONNTRACK` or `CT_UNASSURED`, as a lookup in this program run
/// returned it: the one place the entry pointer is dereferenced.
#[derive(Clone, Copy)]
pub struct Conn(*mut CtEntry);

impl Conn {
    #[inline(always)]
    pub fn get(&self) -> &CtEntry {
        // SAFETY: a map value stays valid until the program returns (even if another CPU
        // deletes it meanwhile); concurrent writers can only make its fields slightly stale.
        unsafe { &*self.0 }
    }

    #[inline(always)]
    pub fn get_mut(&mut self) -> &mut CtEntry {
        // SAFETY: as in `get`; one program run holds one mutable view at a time.
        unsafe { &mut *self.0 }
    }
}

/// How a packet relates to the tracked connections.
#[derive(Clone, Copy)]
pub enum Track {
    /// Not trackable (ICMP other than echo): evaluated by the rules every time.
    Untracked,
    /// No live connection: rules decide, and a forwarded packet creates one.
    New,
    /// Part of a live connection, in its original direction or as a reply; `assured`: the
    /// entry is in `CONNTRACK` (else in `CT_UNASSURED`).
    Tracked {
        reply: bool,
        entry: Conn,
        assured: bool,
    },
}

impl Track {
    /// Whether rules (security groups) are skipped.
    #[inline(always)]
    pub fn established(&self) -> bool {
        matches!(self, Track::Tracked { .. })
    }
}

/// The key of `flow`'s own direction.
#[inline(always)]
pub fn key_of<A: Family>(flow: &Flow<A>) -> CtKey<A> {
    CtKey::new(flow.src, flow.dst, flow.sport, flow.dport, flow.proto)
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = CT_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

/// Flag combinations no TCP stack sends.
#[inline(always)]
fn nonsense(flags: u8) -> bool {
    let f = flags & (FIN | SYN | RST | ACK);
    flags == 0
        || (f & (SYN | FIN)) == (SYN | FIN)
        || (f & (SYN | RST)) == (SYN | RST)
        || (f & (FIN | ACK)) == FIN
}

/// Whether the entry is live now (the timeouts rule is `CtTimeouts::idle_ns`, shared with the
/// agent's sweep).
#[inline(always)]
fn live(entry: Conn, proto: u8, now: u64) -> bool {
    let t = CT_TIMEOUTS.get(0).copied().unwrap_or(CtTimeouts::default());
    entry.get().live(&t, proto, now)
}

/// Finds the connection of `flow` (addresses as inside the VPC). Errors are TCP packets that
/// must be dropped whatever the rules say. In trace mode an expired or closed entry is seen
/// as absent but left in place (and its translation kept).
#[inline(always)]
pub fn lookup<M: Mode, A: Family>(mode: M, flow: &Flow<A>) -> Result<Track, DropReason> {
    let (may_reply, may_original) = if flow.proto == A::ICMP {
        (
            flow.icmp_type == A::ECHO_REPLY,
            flow.icmp_type == A::ECHO_REQUEST,
        )
    } else {
        (true, true)
    };
    if !may_reply && !may_original {
        return Ok(Track::Untracked);
    }
    // A later fragment has no transport header: it follows its first fragment, which found
    // or created the connection (no connection: the first fragment was not forwarded).
    let later = flow.frag == Frag::Later;
    if flow.proto == PROTO_TCP && !later && nonsense(flow.tcp_flags) {
        return Err(DropReason::InvalidTcpFlags);
    }
    let now = clock::now();
    let original = key_of(flow);
    let reversed = original.reversed();
    let found = find(&reversed, &original, may_reply, may_original);
    let track = match found {
        Some((reply, entry, assured)) if live(entry, flow.proto, now) => {
            let state = entry.get().state;
            let restart = flow.proto == PROTO_TCP
                && flow.tcp_flags & (SYN | ACK) == SYN
                && (state == CT_TCP_CLOSED || state == CT_TCP_TIME_WAIT);
            if restart {
                // The closed connection goes; the new one starts unassured.
                if !mode.tracing() {
                    remove(if reply { &reversed } else { &original }, assured);
                }
                Track::New
            } else {
                Track::Tracked {
                    reply,
                    entry,
                    assured,
                }
            }
        }
        Some(_) if mode.tracing() => {
            mode.step(STEP_CONNTRACK, TRACE_CT_EXPIRED, 0, 0, 0, 0);
            Track::New
        }
        Some((reply, entry, assured)) => {
            count(CT_STAT_EXPIRED);
            let e = entry.get();
            let connection = if reply { &reversed } else { &original };
            A::release_nat(connection, e);
            remove(connection, assured);
            Track::New
        }
        None => Track::New,
    };
    if let Track::New = track
        && later
    {
        return Err(DropReason::Fragment);
    }
    if let Track::New = track
        && flow.proto == PROTO_TCP
        && flow.tcp_flags & (SYN | ACK | RST | FIN) != SYN
    {
        // Only a SYN alone opens a connection.
        return Err(DropReason::InvalidTcpFlags);
    }
    Ok(track)
}

/// The entry of a connection, assured ones first: as a reply (`reversed`) or in the original
/// direction. Returns (is a reply, the entry, is assured).
#[inline(always)]
fn find<A: Family>(
    reversed: &CtKey<A>,
    original: &CtKey<A>,
    may_reply: bool,
    may_original: bool,
) -> Option<(bool, Conn, bool)> {
    if may_reply && let Some(e) = A::conntrack().get_ptr_mut(*reversed) {
        return Some((true, Conn(e), true));
    }
    if may_original && let Some(e) = A::conntrack().get_ptr_mut(*original) {
        return Some((false, Conn(e), true));
    }
    if may_reply && let Some(e) = A::unassured().get_ptr_mut(*reversed) {
        return Some((true, Conn(e), false));
    }
    if may_original && let Some(e) = A::unassured().get_ptr_mut(*original) {
        return Some((false, Conn(e), false));
    }
    None
}

/// The live-or-not entry of `flow`'s connection in either direction: (is a reply, the entry).
#[inline(always)]
pub fn of_flow<A: Family>(flow: &Flow<A>) -> Option<(bool, Conn)> {
    let original = key_of(flow);
    find(&original.reversed(), &original, true, true).map(|(reply, e, _)| (reply, e))
}

/// The live-or-not entry of the connection whose original direction is `original` (for ICMP
/// errors about it).
#[inline(always)]
pub fn entry<A: Family>(original: &CtKey<A>) -> Option<Conn> {
    find(original, original, false, true).map(|(_, e, _)| e)
}

#[inline(always)]
fn remove<A: Family>(k: &CtKey<A>, assured: bool) {
    let _ = if assured {
        A::conntrack().remove(k)
    } else {
        A::unassured().remove(k)
    };
}

/// Whether a connection in `state` is assured: a completed TCP handshake, or UDP / ICMP seen
/// both ways.
#[inline(always)]
fn assured(proto: u8, state: u8) -> bool {
    if proto == PROTO_TCP {
        matches!(
            state,
            CT_TCP_ESTABLISHED | CT_TCP_FIN_WAIT | CT_TCP_TIME_WAIT
        )
    } else {
        state == CT_BOTH_WAYS
    }
}

/// Records a forwarded packet: creates the connection or advances its state. For a connection
/// through a NAT gateway (`fwd.nat_gateway`), a new connection gets its port here and every
/// packet of it gets the port in `fwd.new_sport`.
#[inline(always)]
pub fn commit<M: Mode, A: Family>(
    mode: M,
    flow: &Flow<A>,
    track: Track,
    fwd: &mut Forward,
) -> Result<(), DropReason> {
    let now = clock::now();
    match track {
        Track::Untracked => Ok(()),
        Track::New if mode.tracing() => {
            // What a live run would create, written nowhere: the state, and for a NAT
            // gateway the port it would claim now.
            let state = if flow.proto == PROTO_TCP {
                CT_TCP_SYN_SENT
            } else {
                CT_ONE_WAY
            };
            mode.step(STEP_CONNTRACK_NEXT, 0, 0, u32::from(state), 0, 0);
            if fwd.nat_gateway != 0 {
                let port = A::nat_port(fwd, flow, false)?;
                mode.step(STEP_NAT_GATEWAY, 1, port, fwd.nat_gateway, fwd.new_src, 0);
                fwd.new_sport = port;
            }
            Ok(())
        }
        Track::New => {
            let state = if flow.proto == PROTO_TCP {
                CT_TCP_SYN_SENT
            } else {
                CT_ONE_WAY
            };
            // The new entry is built in a per-CPU scratch slot: at 128 bytes it would not fit
            // the program's 512-byte stack next to everything else.
            let scratch = CT_SCRATCH.get_ptr_mut(0).ok_or(DropReason::ConntrackFull)?;
            // SAFETY: this CPU's scratch slot, used only here for the program's duration.
            let entry = unsafe { &mut *scratch };
            *entry = CtEntry {
                created_ns: now,
                last_seen_ns: now,
                state,
                ..CtEntry::default()
            };
            if flow.proto == PROTO_TCP {
                entry.seq_end[0] = flow.tcp_seq.wrapping_add(flow.tcp_len);
            }
            if fwd.nat_gateway != 0 {
                let port = A::nat_port(fwd, flow, true)?;
                entry.nat_ip = fwd.new_src;
                entry.nat_port = port;
                fwd.new_sport = port;
            }
            let k = key_of(flow);
            // By reference: a value would be copied onto the stack again.
            let value: &CtEntry = entry;
            if A::unassured().insert(k, value, 0).is_err() {
                A::release_nat(&k, entry);
                return Err(DropReason::ConntrackFull);
            }
            count(CT_STAT_CREATED);
            Ok(())
        }
        Track::Tracked {
            reply,
            mut entry,
            assured: was_assured,
        } => {
            let e = if mode.tracing() {
                // Trace mode advances a copy in this CPU's scratch slot: the entry stays as it
                // is.
                let scratch = CT_SCRATCH.get_ptr_mut(0).ok_or(DropReason::ConntrackFull)?;
                // SAFETY: this CPU's scratch slot, used only here for the program's duration.
                let copy = unsafe { &mut *scratch };
                *copy = *entry.get();
                copy
            } else {
                entry.get_mut()
            };
            e.last_seen_ns = now;
            if fwd.nat_gateway != 0 {
                if e.nat_ip != fwd.new_src {
                    // Tracked before the route led to this NAT gateway: no translation exists.
                    return Err(DropReason::BadTarget);
                }
                fwd.new_sport = e.nat_port;
                mode.step(
                    STEP_NAT_GATEWAY,
                    0,
                    e.nat_port,
                    fwd.nat_gateway,
                    e.nat_ip,
                    0,
                );
            }
            if flow.proto == PROTO_TCP && flow.frag != Frag::Later {
                tcp_window(e, flow, reply)?;
                let (state, flags) = tcp_next(e.state, e.flags, flow.tcp_flags, reply);
                e.state = state;
                e.flags = flags;
            } else if reply {
                e.state = CT_BOTH_WAYS;
            }
            if mode.tracing() {
                let now_assured = was_assured || assured(flow.proto, e.state);
                mode.step(
                    STEP_CONNTRACK_NEXT,
                    0,
                    0,
                    u32::from(e.state),
                    now_assured as u32,
                    0,
                );
                return Ok(());
            }
            if !was_assured && assured(flow.proto, e.state) {
                // Promoted: from now on no flood of new connections can evict it.
                let original = if reply {
                    key_of(flow).reversed()
                } else {
                    key_of(flow)
                };
                let value: &CtEntry = e;
                A::conntrack()
                    .insert(original, value, 0)
                    .map_err(|_| DropReason::ConntrackFull)?;
                let _ = A::unassured().remove(original);
                count(CT_STAT_ASSURED);
            }
            Ok(())
        }
    }
}

/// `a` comes after `b` in sequence space (or is `b`).
#[inline(always)]
fn not_before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) as i32 >= 0
}

/// Checks a TCP segment against its connection's windows and records how far each side has
/// sent and acknowledged. A RST or FIN is believed only if its sequence number lies between
/// what the receiver acknowledged and what the sender sent (with `CT_WINDOW_SLACK`); in
/// SYN_SENT the responder has sent nothing, so its RST must acknowledge the SYN exactly.
#[inline(always)]
fn tcp_window<A: Family>(e: &mut CtEntry, flow: &Flow<A>, reply: bool) -> Result<(), DropReason> {
    let (me, other) = if reply { (1, 0) } else { (0, 1) };
    let (my_ack, other_ack) = if reply {
        (CT_ACK_REPLY, CT_ACK_ORIGINAL)
    } else {
        (CT_ACK_ORIGINAL, CT_ACK_REPLY)
    };
    let sent_before = !reply || e.flags & CT_SEEN_REPLY != 0;
    if flow.tcp_flags & (RST | FIN) != 0 {
        let believed = if sent_before {
            let end = e.seq_end[me];
            let low = if e.flags & other_ack != 0 {
                e.ack_max[other]
            } else {
                end
            };
            not_before(flow.tcp_seq, low.wrapping_sub(CT_WINDOW_SLACK))
                && not_before(end.wrapping_add(CT_WINDOW_SLACK), flow.tcp_seq)
        } else {
            // The responder's first packet: only a RST (with ACK) refusing the SYN.
            flow.tcp_flags & (RST | ACK) == RST | ACK && flow.tcp_ack == e.seq_end[other]
        };
        if !believed {
            return Err(DropReason::TcpOutOfWindow);
        }
    }
    let end = flow.tcp_seq.wrapping_add(flow.tcp_len);
    if !sent_before || not_before(end, e.seq_end[me]) {
        e.seq_end[me] = end;
    }
    if reply {
        e.flags |= CT_SEEN_REPLY;
    }
    if flow.tcp_flags & ACK != 0
        && (e.flags & my_ack == 0 || not_before(flow.tcp_ack, e.ack_max[me]))
    {
        e.ack_max[me] = flow.tcp_ack;
        e.flags |= my_ack;
    }
    Ok(())
}

/// The TCP state after a packet with `tcp` flags from the originator (`reply` false) or the
/// responder.
#[inline(always)]
fn tcp_next(state: u8, flags: u8, tcp: u8, reply: bool) -> (u8, u8) {
    if tcp & RST != 0 {
        return (CT_TCP_CLOSED, flags);
    }
    let mut flags = flags;
    if tcp & FIN != 0 {
        flags |= if reply { CT_FIN_REPLY } else { CT_FIN_ORIGINAL };
    }
    let fins = flags & (CT_FIN_ORIGINAL | CT_FIN_REPLY);
    let state = match state {
        CT_TCP_SYN_SENT if reply && tcp & (SYN | ACK) == SYN | ACK => CT_TCP_SYN_RECV,
        CT_TCP_SYN_RECV if !reply && tcp & (SYN | ACK) == ACK => CT_TCP_ESTABLISHED,
        CT_TCP_ESTABLISHED | CT_TCP_FIN_WAIT if fins == CT_FIN_ORIGINAL | CT_FIN_REPLY => {
            CT_TCP_TIME_WAIT
        }
        CT_TCP_ESTABLISHED if fins != 0 => CT_TCP_FIN_WAIT,
        s => s,
    };
    (state, flags)
}
