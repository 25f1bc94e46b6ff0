//! The fast path for tracked connections: a packet of a live connection whose direction's
//! decision is cached (`vpc_common::conntrack::CtPath`) skips the pipeline (source check,
//! network ACLs, route lookup, translations, `bpf_fib_lookup`): one connection lookup, the
//! state update, the rewrite and the redirect. Anything else (first packets, a new policy
//! generation, a changed ingress, an expired next hop, ICMP errors, later fragments) takes the
//! full pipeline, which refreshes the cache.
//!
//! Only packets arriving on subnet interfaces use it: there the connection key is the packet's
//! own 5-tuple. From the uplink the key needs the translation first (the full pipeline).

use vpc_common::DropReason;

use crate::{
    conntrack::{self, Track},
    decide::Forward,
    packet::{Flow, Frag},
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
    let track = conntrack::lookup(flow);
    let Some(path) = track
        .as_ref()
        .ok()
        .and_then(|t| conntrack::cached(t, ingress))
    else {
        return Probe::Miss(Some(track));
    };
    let mut fwd = Forward::cached(&path);
    let committed = track.and_then(|t| conntrack::commit(flow, t, &mut fwd));
    Probe::Hit(committed.map(|()| Hit {
        fwd,
        smac: path.smac,
        dmac: path.dmac,
    }))
}
