//! Route lookup: longest prefix match in one LPM trie keyed by (table, destination).

use aya_ebpf::maps::lpm_trie::Key;
use vpc_common::route::{ROUTE_TABLE_BITS, RouteKey, RouteValue};

use crate::maps::ROUTES;

/// The most specific route for `dst` (network order) in `table`.
#[inline(always)]
pub fn lookup(table: u32, dst: u32) -> Option<RouteValue> {
    let key = Key::new(ROUTE_TABLE_BITS + 32, RouteKey { table, addr: dst });
    ROUTES.get(&key).copied()
}
