//! The Internet checksum (RFC 1071) over bytes a program or the agent builds.

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

/// `acc` folded to 16 bits (end-around carries).
#[inline(always)]
pub fn fold(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The Internet checksum of a [`sum`] (folded and complemented), host order.
#[inline(always)]
pub fn checksum(acc: u32) -> u16 {
    !fold(acc)
}
