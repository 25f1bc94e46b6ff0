//! IPv6 on subnet interfaces: neighbour discovery on instance ports, link-local traffic with
//! the router, and the source check. The VPC does not forward IPv6 yet: everything else is
//! dropped (`not_ipv4`).
//!
//! As with ARP (`crate::arp`), the router is an instance's only L2 peer on its port:
//! - A neighbour solicitation for any other address of the subnet's /64, or for the router's
//!   own link-local address (`fe80::` + the port MAC's EUI-64, the address the kernel gives the
//!   port), is answered in place with a neighbour advertisement carrying the port's MAC. So
//!   everything the instance sends, to its own subnet too, reaches the router.
//! - A router solicitation is answered with a router advertisement from the router's
//!   link-local address: the router is the default router, the subnet's /64 is on-link
//!   (L=1) and not for autoconfiguration (A=0: an instance's addresses are its configured
//!   `ipv6_addresses`, as AWS assigns them).
//! - Sources: the unspecified address (duplicate address detection), link-local addresses, and
//!   the instance's own IPv6 addresses; anything else is `spoofed`. A neighbour advertisement
//!   may only be about a link-local address or the instance's own (so the kernel's neighbour
//!   table on a port only learns the instance's bindings), and router advertisements or
//!   redirects from an instance are `spoofed` (instances are not routers).
//! - Duplicate address detection probes are left to the kernel (not answered): the instance's
//!   own addresses stay its own.
//! - Link-scope traffic (to `fe80::/10` or `ff02::/16`) goes to the kernel, which never
//!   forwards it: pings to the router's link-local address, multicast listener reports.
//!
//! On a shared segment only link-scope traffic goes to the kernel (hosts there find each
//! other themselves).
//!
//! Answers (frame layouts):
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
//! |     | limit 255         | lifetime 1800 s   | address (8)       | the /64, L=1 |
//! +-----+-------------------+-------------------+-------------------+--------------+
//! ```

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use network_types::eth::EthHdr;
use vpc_common::{
    DropReason,
    iface::{Endpoint6Key, IfaceInfo, router_link_local},
};

use crate::{
    csum::{checksum, sum},
    ipv6::{
        IPV6_PAYLOAD_OFF, PROTO_ICMPV6, Packet6, is_link_local, is_link_multicast, is_unspecified,
    },
    maps::{ENDPOINTS6, SUBNETS6, copied},
    packet::{PacketCtx, header},
};

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const REDIRECT: u8 = 137;

/// The hop limit every neighbour discovery message carries (RFC 4861 6.1, 7.1).
const ND_HOP_LIMIT: u8 = 255;
/// The router lifetime the advertisements give (seconds).
pub const ROUTER_LIFETIME: u16 = 1800;

/// Answer frame lengths.
pub const NA_LEN: usize = IPV6_PAYLOAD_OFF + 32;
pub const RA_LEN: usize = IPV6_PAYLOAD_OFF + 56;

/// Per-CPU scratch space the answers are built in.
#[btf_map]
static NDP_SCRATCH: PerCpuArray<[u8; RA_LEN], 1> = PerCpuArray::new();

/// What to do with an IPv6 packet on a subnet interface.
pub enum Ipv6Action {
    /// The kernel's: link-scope traffic it never forwards.
    ToKernel,
    /// A neighbour advertisement is built in scratch space: send it back.
    Advertise(*const [u8; NA_LEN]),
    /// A router advertisement is built in scratch space: send it back.
    RouterAdvertise(*const [u8; RA_LEN]),
}

/// Whether `addr` is one of the IPv6 addresses of the instance behind port `ingress`.
#[inline(always)]
fn own_address(iface: &IfaceInfo, ingress: u32, addr: &[u8; 16]) -> bool {
    let key = Endpoint6Key {
        vpc_id: iface.vpc_id,
        addr: *addr,
    };
    // SAFETY: a read of one field of the map's value.
    unsafe { ENDPOINTS6.get(key) }.is_some_and(|ep| ep.ifindex == ingress)
}

/// Decides on IPv6 packet `p` that arrived on subnet interface `iface` (ifindex `ingress`).
#[inline(always)]
pub fn on_subnet(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    ingress: u32,
    p: &Packet6,
) -> Result<Ipv6Action, DropReason> {
    let link_scope = is_link_local(&p.dst) || is_link_multicast(&p.dst);
    if !iface.is_port() {
        return if link_scope {
            Ok(Ipv6Action::ToKernel)
        } else {
            Err(DropReason::NotIpv4)
        };
    }
    let unspecified = is_unspecified(&p.src);
    if !unspecified && !is_link_local(&p.src) && !own_address(iface, ingress, &p.src) {
        return Err(DropReason::Spoofed);
    }
    let nd = p.proto == PROTO_ICMPV6
        && p.no_ext_headers()
        && p.hop_limit == ND_HOP_LIMIT
        && p.icmp_code == 0;
    if nd {
        match p.icmp_type {
            NEIGHBOR_SOLICITATION if !unspecified && p.payload_len >= 24 => {
                let target: [u8; 16] = *header(ctx, IPV6_PAYLOAD_OFF + 8)?;
                if answers_for(iface, ingress, &target) {
                    return advertise(ctx, iface, p, &target);
                }
            }
            NEIGHBOR_ADVERTISEMENT if p.payload_len >= 24 => {
                let target: [u8; 16] = *header(ctx, IPV6_PAYLOAD_OFF + 8)?;
                if !is_link_local(&target) && !own_address(iface, ingress, &target) {
                    return Err(DropReason::Spoofed);
                }
            }
            ROUTER_SOLICITATION if p.payload_len >= 8 => {
                if let Some(ra) = router_advertisement(ctx, iface, p)? {
                    return Ok(ra);
                }
            }
            ROUTER_ADVERTISEMENT | REDIRECT => return Err(DropReason::Spoofed),
            _ => {}
        }
    }
    if link_scope {
        Ok(Ipv6Action::ToKernel)
    } else {
        Err(DropReason::NotIpv4)
    }
}

/// Whether the router answers a solicitation for `target` on port `iface`: its own
/// link-local address, or another address of the subnet's /64.
#[inline(always)]
fn answers_for(iface: &IfaceInfo, ingress: u32, target: &[u8; 16]) -> bool {
    if *target == router_link_local(&iface.mac) {
        return true;
    }
    let Some(s6) = copied(&SUBNETS6, iface.subnet_id) else {
        return false;
    };
    target[..8] == s6.prefix && !own_address(iface, ingress, target)
}

/// The pseudo header's part of an ICMPv6 checksum (RFC 8200 8.1) for a message of `len`
/// bytes from `src` to `dst`.
#[inline(always)]
fn pseudo_sum(src: &[u8; 16], dst: &[u8; 16], len: u32) -> u32 {
    sum(dst, sum(src, 0)) + len + u32::from(PROTO_ICMPV6)
}

/// Writes the Ethernet and IPv6 headers of an answer into `f`: back to the packet's sender,
/// from the port, `payload` bytes of ICMPv6 from `src` to `dst`.
#[inline(always)]
fn answer_headers(
    f: &mut [u8],
    eth_src: &[u8; 6],
    iface: &IfaceInfo,
    src: &[u8; 16],
    dst: &[u8; 16],
    payload: u16,
) {
    f[0..6].copy_from_slice(eth_src);
    f[6..12].copy_from_slice(&iface.mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f[20] = PROTO_ICMPV6;
    f[21] = ND_HOP_LIMIT;
    f[22..38].copy_from_slice(src);
    f[38..54].copy_from_slice(dst);
}

/// Builds the neighbour advertisement for `target` answering solicitation `p`.
#[inline(always)]
fn advertise(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    p: &Packet6,
    target: &[u8; 16],
) -> Result<Ipv6Action, DropReason> {
    let eth_src = header::<EthHdr>(ctx, 0)?.src_addr;
    let out = NDP_SCRATCH.get_ptr_mut(0).ok_or(DropReason::BadTarget)?;
    // SAFETY: this CPU's scratch slot, used only here for the program's duration.
    let f = unsafe { &mut *out };
    answer_headers(f, &eth_src, iface, target, &p.src, 32);
    let router = *target == router_link_local(&iface.mac);
    // Solicited and override; router only for the router's own address.
    let flags = if router { 0xe0 } else { 0x60 };
    let m = &mut f[IPV6_PAYLOAD_OFF..NA_LEN];
    m[..8].copy_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0]);
    m[8..24].copy_from_slice(target);
    m[24..26].copy_from_slice(&[2, 1]);
    m[26..32].copy_from_slice(&iface.mac);
    let check = checksum(sum(m, pseudo_sum(target, &p.src, 32)));
    m[2..4].copy_from_slice(&check.to_be_bytes());
    Ok(Ipv6Action::Advertise(out.cast::<[u8; NA_LEN]>()))
}

/// Builds the router advertisement answering solicitation `p`: to its sender, or to all
/// nodes when it came from the unspecified address. `None`: the subnet has no IPv6 block.
#[inline(always)]
fn router_advertisement(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    p: &Packet6,
) -> Result<Option<Ipv6Action>, DropReason> {
    let Some(s6) = copied(&SUBNETS6, iface.subnet_id) else {
        return Ok(None);
    };
    let eth_src = header::<EthHdr>(ctx, 0)?.src_addr;
    let out = NDP_SCRATCH.get_ptr_mut(0).ok_or(DropReason::BadTarget)?;
    // SAFETY: this CPU's scratch slot, used only here for the program's duration.
    let f = unsafe { &mut *out };
    let src = router_link_local(&iface.mac);
    let mut dst = p.src;
    if is_unspecified(&dst) {
        dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    }
    answer_headers(f, &eth_src, iface, &src, &dst, 56);
    let life = ROUTER_LIFETIME.to_be_bytes();
    let m = &mut f[IPV6_PAYLOAD_OFF..RA_LEN];
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
    m[18..24].copy_from_slice(&iface.mac);
    // Prefix information: /64, on-link, not autonomous, lifetimes infinite.
    m[24..40].copy_from_slice(&[
        3, 4, 64, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    m[40..48].copy_from_slice(&s6.prefix);
    m[48..56].copy_from_slice(&[0; 8]);
    let check = checksum(sum(m, pseudo_sum(&src, &dst, 56)));
    m[2..4].copy_from_slice(&check.to_be_bytes());
    Ok(Some(Ipv6Action::RouterAdvertise(out.cast_const())))
}
