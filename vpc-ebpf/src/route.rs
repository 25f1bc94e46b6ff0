//! Route lookup: longest prefix match in one LPM trie a family keyed by (table, destination).

use aya_ebpf::maps::lpm_trie::Key;
use vpc_common::route::{ROUTE_TABLE_BITS, RouteKey, RouteValue};

use vpc_common::trace::{ROUTE_NONE, STEP_ROUTE};

use crate::{family::Family, trace::Mode};

/// The most specific route for `dst` (network order) in `table`.
#[inline(always)]
pub fn lookup<A: Family>(table: u32, dst: A) -> Option<RouteValue> {
    let key = Key::new(ROUTE_TABLE_BITS + A::BITS, RouteKey { table, addr: dst });
    A::routes().get(&key).copied()
}

/// [`lookup`], recorded as a decision point.
#[inline(always)]
pub fn traced<M: Mode, A: Family>(mode: M, table: u32, dst: A) -> Option<RouteValue> {
    let route = lookup(table, dst);
    if mode.tracing() {
        let (target, id) = route.map_or((ROUTE_NONE, 0), |r| (r.target, r.target_id));
        mode.step(STEP_ROUTE, target, 0, table, id, dst.trace_word());
    }
    route
}
