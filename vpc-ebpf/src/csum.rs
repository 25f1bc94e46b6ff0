//! Internet checksums: computed over bytes the program builds ([`sum`], [`checksum`]), and
//! updated incrementally (RFC 1624) for XDP, where the skb helpers are not available. For
//! the updates, values are 16-bit words as loaded from the packet in native order: one's
//! complement arithmetic does not care about byte order as long as it is consistent.

use vpc_common::csum::fold;
pub use vpc_common::csum::{checksum, sum};

/// The checksum after a 32-bit field changed from `old` to `new`.
#[inline(always)]
pub fn replace32(check: u16, old: u32, new: u32) -> u16 {
    let sum = u32::from(!check) + ((!old) & 0xffff) + ((!old) >> 16) + (new & 0xffff) + (new >> 16);
    !fold(sum)
}

/// The checksum after a 16-bit field changed from `old` to `new`.
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    !fold(sum)
}
