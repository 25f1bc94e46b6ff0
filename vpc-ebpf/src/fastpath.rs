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
    conntrack,
    decide::Forward,
    packet::{Flow, Frag},
};

/// A packet to send as cached: the decision and the next hop's MACs.
pub struct Hit {
    pub fwd: Forward,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// What to send for a packet whose decision was cached, with the connection committed
/// (TCP state advanced, last seen updated). `None`: take the full pipeline.
#[inline(always)]
pub fn lookup(flow: &Flow, ingress: u32) -> Option<Result<Hit, DropReason>> {
    if flow.inner.is_some() || flow.frag == Frag::Later {
        return None;
    }
    let (track, path) = conntrack::cached(flow, ingress)?;
    let mut fwd = Forward::cached(&path);
    Some(conntrack::commit(flow, track, &mut fwd).map(|()| Hit {
        fwd,
        smac: path.smac,
        dmac: path.dmac,
    }))
}
