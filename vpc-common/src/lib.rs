//! Types shared by the kernel programs (`vpc-ebpf`) and the agent (`vpc-agent`).
//!
//! Every map key and value is `#[repr(C)]` with explicit padding fields, so that the layout
//! the kernel sees is exactly the layout the agent writes, and a compile-time assertion pins
//! each size. Byte order conventions, used everywhere:
//!
//! - IPv4 addresses are `u32` holding the address **in network byte order** as it sits in the
//!   packet (`u32::from_ne_bytes(addr.octets())` in userspace). Masks likewise.
//! - Ports and rule numbers are **host order** (the datapath converts the packet's port once).
//!
//! - IPv6 addresses are [`Addr6`]: the 16 bytes as in the packet (`addr.octets()`). Keys of
//!   the IPv6 maps are the IPv4 key types with `Addr6` for the address type parameter (one
//!   definition, one documented layout per key; e.g. `RouteKey<Addr6>`).
//!
//! See [`ip_raw`] / [`ip_from_raw`] for the userspace conversions.
#![no_std]

pub mod acl;
pub mod agent_state;
pub mod capacity;
pub mod conntrack;
pub mod csum;
pub mod drop;
pub mod flow;
pub mod icmp;
pub mod iface;
pub mod nat;
pub mod ndp;
pub mod proto;
pub mod route;
pub mod security_group;
pub mod trace;

pub use drop::{DropReason, Hook};

/// Version of the map layouts in this crate. Pinned maps carry it (in the `CONFIG` map) so
/// that an agent can refuse or migrate maps written by an incompatible version.
pub const LAYOUT_VERSION: u32 = 8;

/// Compile-time size assertion: `assert_size!(Type, bytes)`.
#[macro_export]
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(::core::mem::size_of::<$t>() == $n);
    };
}

/// Implements `aya::Pod` for the given types when built for userspace.
macro_rules! pod {
    ($($t:ty),+ $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is #[repr(C)], Copy, has no implicit padding (all padding is an
            // explicit field, checked by `assert_size!`) and every bit pattern is valid.
            unsafe impl aya::Pod for $t {}
        )+
    };
}
pub(crate) use pod;

/// An IPv6 address as stored in maps: its bytes in network order.
pub type Addr6 = [u8; 16];

/// An IPv4 address as stored in maps (network byte order in a `u32`).
#[inline]
pub const fn ip_raw(octets: [u8; 4]) -> u32 {
    u32::from_ne_bytes(octets)
}

/// The octets of an address stored with [`ip_raw`].
#[inline]
pub const fn ip_from_raw(raw: u32) -> [u8; 4] {
    raw.to_ne_bytes()
}

/// A netmask of `len` leading one bits, stored like an address (network byte order).
#[inline]
pub const fn mask_raw(len: u8) -> u32 {
    let host = if len == 0 {
        0
    } else if len >= 32 {
        u32::MAX
    } else {
        u32::MAX << (32 - len)
    };
    host.to_be()
}

/// `skb->mark` value the TC ingress program sets on a packet it approved and redirected, so the
/// TC egress guard of the destination interface lets it out. Chosen to stay clear of common
/// mark usage (only this exact value counts).
pub const MARK_APPROVED: u32 = 0x7670_6301;

/// Slots of the IPv6 program arrays (`XDP_IPV6`, `TC_IPV6`): the attached program hands IPv6
/// on a subnet interface to the link-scope program (`IPV6_LINK`: neighbour discovery, echo to
/// the router), which hands a packet of an instance port routed beyond the link on to the
/// IPv6 pipeline (`IPV6_ROUTE`). Each program keeps its own stack frame.
pub const IPV6_LINK: u32 = 0;
/// See [`IPV6_LINK`].
pub const IPV6_ROUTE: u32 = 1;
/// The program for IPv6 arriving on an uplink (`vpc_xdp6_inbound`, `vpc_tc6_inbound`): the
/// outside program hands it every IPv6 frame of an uplink.
pub const IPV6_INBOUND: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_raw_matches_octets() {
        assert_eq!(ip_from_raw(mask_raw(24)), [255, 255, 255, 0]);
        assert_eq!(ip_from_raw(mask_raw(0)), [0, 0, 0, 0]);
        assert_eq!(ip_from_raw(mask_raw(32)), [255, 255, 255, 255]);
        assert_eq!(ip_from_raw(mask_raw(12)), [255, 240, 0, 0]);
        let a = ip_raw([10, 1, 2, 3]);
        assert_eq!(a & mask_raw(16), ip_raw([10, 1, 0, 0]));
    }
}
