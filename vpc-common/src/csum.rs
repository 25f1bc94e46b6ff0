//! The Internet checksum (RFC 1071) over bytes a program or the agent builds.

/// One's complement sum of `bytes` as 16-bit big-endian words, added to `acc` (unfolded); an
/// odd last byte counts as padded with a zero byte (RFC 1071).
#[inline(always)]
pub fn sum(bytes: &[u8], mut acc: u32) -> u32 {
    let mut i = 0;
    while i + 1 < bytes.len() {
        acc += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    if i < bytes.len() {
        acc += u32::from(bytes[i]) << 8;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_odd_last_byte_is_padded() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (folded).
        assert_eq!(
            fold(sum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            0xddf2
        );
        assert_eq!(
            checksum(sum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            !0xddf2
        );
    }
}
