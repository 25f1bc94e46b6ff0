//! Internet checksums: computed over bytes the program builds ([`sum`], [`checksum`]), and
//! updated incrementally (RFC 1624) for XDP, where the skb helpers are not available. For
//! the updates, values are 16-bit words as loaded from the packet in native order: one's
//! complement arithmetic does not care about byte order as long as it is consistent.

#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

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

/// One's complement sum of `bytes` as 16-bit big-endian words, added to `acc` (unfolded).
#[inline(always)]
pub fn sum(bytes: &[u8], mut acc: u32) -> u32 {
    let mut i = 0;
    while i + 1 < bytes.len() {
        acc += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    acc
}

/// The Internet checksum of a [`sum`] (folded and complemented), host order.
#[inline(always)]
pub fn checksum(acc: u32) -> u16 {
    !fold(acc)
}
