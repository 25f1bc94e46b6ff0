//! The fast path for tracked connections: a packet of a live connection whose direction's
//! decision is cached (`vpc_common::conntrack::CtPath`) skips the pipeline (source check,
//! network ACLs, route lookup, translations, `bpf_fib_lookup`): one connection lookup, the
//! state update, the rewrite and the redirect. Anything else (first packets, a new policy
//! generation, a changed ingress, an expired next hop, ICMP errors, later fragments) takes the
//! full pipeline, which refreshes the cache.
//!
//! Only packets arriving on subnet interfaces use it: there the connection key is the packet's
//! own 5-tuple. From the uplink the key needs the translation first (the full pipeline).

use vpc_common::{
    DropReason,
    conntrack::{CT_PATH_TTL_S, CtPath},
};

use crate::{
    clock,
    conntrack::{self, Track},
    maps::CONFIG,
    packet::{Flow, Frag},
    trace::Live,
    verdict::Forward,
};

/// A packet to send as cached: the decision and the next hop's MACs.
pub struct Hit {
    pub fwd: Forward,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// What the fast path found.
pub enum Probe {
    /// The decision was cached: what to send, with the connection committed (TCP state
    /// advanced, last seen updated), or why the packet is dropped.
    Hit(Result<Hit, DropReason>),
    /// Take the full pipeline, with the connection lookup already done (`None`: not looked
    /// up), so that it is neither repeated nor counted twice (expiry).
    Miss(Option<Result<Track, DropReason>>),
}

/// Looks for a cached decision for `flow`, arrived on `ingress`.
#[inline(always)]
pub fn probe(flow: &Flow, ingress: u32) -> Probe {
    if flow.inner.is_some() || flow.frag == Frag::Later {
        return Probe::Miss(None);
    }
    let track = conntrack::lookup(Live, flow);
    let Some(path) = track.as_ref().ok().and_then(|t| cached(t, ingress)) else {
        return Probe::Miss(Some(track));
    };
    let mut fwd = Forward::cached(&path);
    let committed = track.and_then(|t| conntrack::commit(Live, flow, t, &mut fwd));
    Probe::Hit(committed.map(|()| Hit {
        fwd,
        smac: path.smac,
        dmac: path.dmac,
    }))
}

/// Remembers the forwarding decision of `flow`'s direction in its connection (the fast path,
/// see `vpc_common::conntrack::CtPath`). Nothing happens when the connection is not there.
#[inline(always)]
pub fn remember(flow: &Flow, fwd: &Forward, ingress: u32, smac: &[u8; 6], dmac: &[u8; 6]) {
    let Some((reply, mut entry)) = conntrack::of_flow(flow) else {
        return;
    };
    let now = clock::now();
    let path = CtPath {
        generation: generation(),
        ingress,
        out_ifindex: fwd.ifindex,
        new_src: fwd.new_src,
        new_dst: fwd.new_dst,
        new_sport: fwd.new_sport,
        new_dport: fwd.new_dport,
        smac: *smac,
        dmac: *dmac,
        stamp: (now >> 30) as u32,
    };
    // A concurrent writer can only store the same decision (one policy generation), so a
    // torn read is at worst a stale MAC for 2 s.
    let e = entry.get_mut();
    if reply {
        e.reply = path;
    } else {
        e.original = path;
    }
}

/// The cached decision for the packet's direction of its live connection (`track`, from
/// [`lookup`]), if it is still valid: same policy generation, same ingress interface, next hop
/// looked up at most `CT_PATH_TTL_S` ago.
#[inline(always)]
pub fn cached(track: &Track, ingress: u32) -> Option<CtPath> {
    let Track::Tracked { reply, entry, .. } = *track else {
        return None;
    };
    let e = entry.get();
    let path = if reply { e.reply } else { e.original };
    let now = (clock::now() >> 30) as u32;
    let valid = path.generation != 0
        && path.generation == generation()
        && path.ingress == ingress
        && now.wrapping_sub(path.stamp) <= CT_PATH_TTL_S;
    valid.then_some(path)
}

/// The policy generation's low 32 bits (never 0 once a policy is applied: generations start
/// at 1, so 0 marks an empty cache).
#[inline(always)]
fn generation() -> u32 {
    CONFIG.get(0).map_or(0, |c| c.generation as u32)
}
