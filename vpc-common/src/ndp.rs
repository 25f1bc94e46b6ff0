//! The neighbour discovery frames the router sends on an instance port (RFC 4861), built in
//! one place for the kernel (answers to solicitations, in a per-CPU scratch buffer) and the
//! agent (the periodic unsolicited router advertisements).
//!
//! ```text
//! neighbour advertisement, 86 bytes
//!  0     14                 54                       78                  86
//! +-----+-------------------+------------------------+-------------------+
//! | eth | IPv6 (40), hop    | ICMPv6 136: flags,     | target link-layer |
//! |     | limit 255         | target (24)            | address (8)       |
//! +-----+-------------------+------------------------+-------------------+
//!
//! router advertisement, 110 bytes
//!  0     14                 54                  70                  78             110
//! +-----+-------------------+-------------------+-------------------+--------------+
//! | eth | IPv6 (40), hop    | ICMPv6 134 (16):  | source link-layer | prefix (32): |
//! |     | limit 255         | router lifetime   | address (8)       | the /64, L=1 |
//! +-----+-------------------+-------------------+-------------------+--------------+
//! ```

use crate::csum::{checksum, sum};

/// Ethernet (14) and IPv6 (40) headers: where an ICMPv6 message starts.
pub const PAYLOAD_OFF: usize = 54;
/// A neighbour advertisement with the target link-layer address option.
pub const NA_LEN: usize = PAYLOAD_OFF + 32;
/// A router advertisement with the source link-layer address and one prefix option.
pub const RA_LEN: usize = PAYLOAD_OFF + 56;

pub const PROTO_ICMPV6: u8 = 58;
pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;
pub const NEIGHBOR_SOLICITATION: u8 = 135;
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// The hop limit every neighbour discovery message carries (RFC 4861 6.1, 7.1).
pub const ND_HOP_LIMIT: u8 = 255;
/// The router lifetime the advertisements give (seconds): 1800, RFC 4861's default (three
/// times the 600 s maximum interval, nine times the agent's default interval). The router is
/// every instance's default router, as a VPC's is: what leaves the subnet's /64 goes to it and
/// its route table decides (AWS instances, too, route everything through the VPC router).
pub const ROUTER_LIFETIME: u16 = 1800;

/// `ff02::1`, all nodes on the link, and its Ethernet multicast address.
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The pseudo header's part of an ICMPv6 checksum (RFC 8200 8.1) for a message of `len`
/// bytes from `src` to `dst`.
#[inline(always)]
pub fn pseudo_sum(src: &[u8; 16], dst: &[u8; 16], len: u32) -> u32 {
    sum(dst, sum(src, 0)) + len + u32::from(PROTO_ICMPV6)
}

/// Writes the Ethernet and IPv6 headers of a frame from the router's port `router_mac` to
/// `eth_dst`: `payload` bytes of ICMPv6 from `src` to `dst`, hop limit 255.
#[inline(always)]
fn headers(
    f: &mut [u8],
    eth_dst: &[u8; 6],
    router_mac: &[u8; 6],
    src: &[u8; 16],
    dst: &[u8; 16],
    payload: u16,
) {
    f[0..6].copy_from_slice(eth_dst);
    f[6..12].copy_from_slice(router_mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f[20] = PROTO_ICMPV6;
    f[21] = ND_HOP_LIMIT;
    f[22..38].copy_from_slice(src);
    f[38..54].copy_from_slice(dst);
}

/// A neighbour advertisement for `target` with the port's MAC, to `dst` (the solicitor's
/// address) at `eth_dst`: solicited and override, and router when `router` (the target is
/// the router's own link-local address).
#[inline(always)]
pub fn neighbor_advertisement(
    f: &mut [u8; NA_LEN],
    eth_dst: &[u8; 6],
    router_mac: &[u8; 6],
    target: &[u8; 16],
    dst: &[u8; 16],
    router: bool,
) {
    headers(f, eth_dst, router_mac, target, dst, 32);
    let flags = if router { 0xe0 } else { 0x60 };
    let m = &mut f[PAYLOAD_OFF..NA_LEN];
    m[..8].copy_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
    m[8..24].copy_from_slice(target);
    m[24..26].copy_from_slice(&[2, 1]);
    m[26..32].copy_from_slice(router_mac);
    let check = checksum(sum(m, pseudo_sum(target, dst, 32)));
    m[2..4].copy_from_slice(&check.to_be_bytes());
}

/// A router advertisement from the router's link-local address `src` (on the port with
/// `router_mac`) to `dst` at `eth_dst`: router lifetime
/// [`ROUTER_LIFETIME`], hop limit 64, and the subnet's /64 `prefix` is on-link (L=1) and not
/// for autoconfiguration (A=0: an instance's addresses are the ones it is given), with
/// infinite lifetimes.
#[inline(always)]
pub fn router_advertisement(
    f: &mut [u8; RA_LEN],
    eth_dst: &[u8; 6],
    router_mac: &[u8; 6],
    src: &[u8; 16],
    dst: &[u8; 16],
    prefix: &[u8; 8],
) {
    headers(f, eth_dst, router_mac, src, dst, 56);
    let life = ROUTER_LIFETIME.to_be_bytes();
    let m = &mut f[PAYLOAD_OFF..RA_LEN];
    // Current hop limit 64, no flags, reachable time and retransmission timer unspecified.
    m[..16].copy_from_slice(&[
        ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        64,
        0,
        life[0],
        life[1],
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    m[16..18].copy_from_slice(&[1, 1]);
    m[18..24].copy_from_slice(router_mac);
    // Prefix information: /64, on-link, not autonomous, lifetimes infinite.
    m[24..40].copy_from_slice(&[
        3, 4, 64, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    m[40..48].copy_from_slice(prefix);
    m[48..56].copy_from_slice(&[0; 8]);
    let check = checksum(sum(m, pseudo_sum(src, dst, 56)));
    m[2..4].copy_from_slice(&check.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csum::fold;

    /// A frame's ICMPv6 checksum verifies: the sum over pseudo header and message is 0xffff.
    fn verifies(f: &[u8]) -> bool {
        let src: [u8; 16] = f[22..38].try_into().unwrap();
        let dst: [u8; 16] = f[38..54].try_into().unwrap();
        let len = (f.len() - PAYLOAD_OFF) as u32;
        fold(sum(&f[PAYLOAD_OFF..], pseudo_sum(&src, &dst, len))) == 0xffff
    }

    #[test]
    fn router_advertisement_carries_the_prefix_and_verifies() {
        let mac = [2, 0, 0, 0, 0, 9];
        let src = crate::iface::router_link_local(&mac);
        let prefix = [0x20, 0x01, 0x0d, 0xb8, 0x12, 0x00, 0, 1];
        let mut f = [0u8; RA_LEN];
        router_advertisement(&mut f, &ALL_NODES_MAC, &mac, &src, &ALL_NODES, &prefix);
        assert_eq!(&f[0..6], &ALL_NODES_MAC);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(f[21], ND_HOP_LIMIT);
        assert_eq!(f[PAYLOAD_OFF], ROUTER_ADVERTISEMENT);
        assert_eq!(
            &f[PAYLOAD_OFF + 6..PAYLOAD_OFF + 8],
            &ROUTER_LIFETIME.to_be_bytes()
        );
        assert_eq!(&f[PAYLOAD_OFF + 40..PAYLOAD_OFF + 48], &prefix);
        // L set, A clear.
        assert_eq!(f[PAYLOAD_OFF + 27], 0x80);
        assert!(verifies(&f));
        f[PAYLOAD_OFF + 44] ^= 1;
        assert!(!verifies(&f));
    }

    #[test]
    fn neighbor_advertisement_sets_the_router_flag_only_for_the_router() {
        let mac = [2, 0, 0, 0, 0, 9];
        let target = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
        ];
        let dst = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut f = [0u8; NA_LEN];
        neighbor_advertisement(&mut f, &[2, 0, 0, 0, 0, 1], &mac, &target, &dst, false);
        assert_eq!(f[PAYLOAD_OFF + 4], 0x60);
        assert_eq!(&f[22..38], &target);
        assert_eq!(&f[PAYLOAD_OFF + 26..], &mac);
        assert!(verifies(&f));
        neighbor_advertisement(&mut f, &[2, 0, 0, 0, 0, 1], &mac, &target, &dst, true);
        assert_eq!(f[PAYLOAD_OFF + 4], 0xe0);
        assert!(verifies(&f));
    }
}
