//! Route tables: one LPM trie (`ROUTES`) holds every route of every table.
//!
//! Key layout (the data behind the LPM trie's `prefix_len`):
//!
//! ```text
//!  0               4               8
//! +---------------+---------------+
//! | table (u32)   | addr (u32 BE) |
//! +---------------+---------------+
//! prefix_len = 32 + route prefix length
//! ```
//!
//! The table id is always matched in full (the prefix length counts its 32 bits first), so its
//! byte order does not matter; the address is in network order as the trie compares bits
//! most-significant first. Every route table also carries the VPC's local routes, one entry per
//! subnet (target [`TARGET_LOCAL`], `target_id` = subnet id), plus one entry per VPC block with
//! target [`TARGET_LOCAL`] and `target_id` 0 (inside the VPC, but no subnet there).

use crate::{Addr6, assert_size, pod};

/// Bits of the key before the address (the table id).
pub const ROUTE_TABLE_BITS: u32 = 32;

/// The table of sources no packet arriving on an uplink may have (anti-spoofing): every VPC
/// block, the router's own addresses (subnet routers, uplinks, public and elastic IPs) and the
/// martian ranges. One per generation slot: `slot_id(slot, 0)`, an id no route table gets
/// (those count from 1). Values are [`TARGET_BLACKHOLE`].
#[inline]
pub const fn uplink_spoof_table(slot: u32) -> u32 {
    crate::iface::slot_id(slot, 0)
}

/// LPM trie key data (see the module docs). `ROUTES6` has the same layout with a 16-byte
/// address ([`Route6Key`], `prefix_len = 32 + route prefix length` likewise).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey<A = u32> {
    pub table: u32,
    /// Destination prefix, network order.
    pub addr: A,
}
assert_size!(RouteKey, 8);

/// `ROUTES6` key data: the IPv6 routes of every table (local routes for the subnets' /64s
/// and the VPC's /56, the tables' IPv6 routes).
pub type Route6Key = RouteKey<Addr6>;
assert_size!(Route6Key, 20);

/// Deliver inside the VPC: `target_id` is the destination subnet (0: no such subnet).
pub const TARGET_LOCAL: u8 = 1;
/// Internet gateway: `target_id` is the uplink ifindex.
pub const TARGET_INTERNET_GATEWAY: u8 = 2;
/// NAT gateway: `target_id` is the NAT gateway id.
pub const TARGET_NAT_GATEWAY: u8 = 3;
/// Peering connection: `target_id` is the peer VPC id.
pub const TARGET_PEERING: u8 = 4;
/// Drop.
pub const TARGET_BLACKHOLE: u8 = 5;
/// A gateway that carries packets untranslated, private source kept (a VPN gateway, a gateway
/// endpoint): `target_id` is its interface's ifindex.
pub const TARGET_GATEWAY: u8 = 6;
/// A NAT instance (an instance whose source/destination check is off): `target_id` is its
/// private address (network order), its `ENDPOINTS` entry in the VPC. Delivered to its port
/// unchanged (the instance translates itself).
pub const TARGET_INSTANCE: u8 = 7;
/// Egress-only internet gateway (IPv6 only): `target_id` is the uplink ifindex. Carries
/// connections opened from inside, untranslated; the internet's packets pass only as their
/// replies.
pub const TARGET_EGRESS_ONLY_GATEWAY: u8 = 8;

/// `ROUTES` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteValue {
    /// One of the `TARGET_*` constants.
    pub target: u8,
    pub _pad: [u8; 3],
    pub target_id: u32,
}
assert_size!(RouteValue, 8);

pod!(RouteKey, Route6Key, RouteValue);
