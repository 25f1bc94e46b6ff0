//! IPv6 on subnet interfaces: neighbour discovery on instance ports, link-local traffic with
//! the router, and the source check. On an instance port, unicast from the instance to a
//! destination beyond the link goes on to the IPv6 pipeline (`Ipv6Action::Route`,
//! `crate::decide::decide6`); other multicast, and everything beyond the link on a shared
//! segment, is dropped (`not_ipv4`).
//!
//! As with ARP (`crate::arp`), the router is an instance's only L2 peer on its port:
//! - A neighbour solicitation for any other address of the subnet's /64, or for the router's
//!   own link-local address (`fe80::` + the port MAC's EUI-64, the address the agent gives the
//!   port), is answered in place with a neighbour advertisement carrying the port's MAC. So
//!   everything the instance sends, to its own subnet too, reaches the router.
//! - A router solicitation is answered with a router advertisement from the router's
//!   link-local address (router lifetime `vpc_common::ndp::ROUTER_LIFETIME`: the instance's
//!   default router); the subnet's /64 is on-link (L=1) and not for
//!   autoconfiguration (A=0: an instance's addresses are its configured `ipv6_addresses`,
//!   as AWS assigns them).
//! - Sources: link-local addresses and the instance's own IPv6 addresses; the unspecified
//!   address only for solicitations and multicast listener reports (duplicate address
//!   detection, RFC 3590); anything else is `spoofed`.
//! - Neighbour discovery is validated before anything reaches the kernel (RFC 4861 6.1,
//!   7.1; RFC 6980; RA guard, RFC 7113): hop limit 255 and code 0 (`malformed` otherwise), no
//!   extension header (`ipv6_ext_headers`), never fragmented (no fragment from an instance
//!   goes up: `fragment`). A neighbour advertisement may only be about the instance's own addresses
//!   (link-local ones other than the router's, or its `ipv6_addresses`), so the kernel's
//!   neighbour table on a port only learns the instance's bindings; router advertisements and
//!   redirects from an instance are `spoofed` (instances are not routers), on a shared
//!   segment too.
//! - Duplicate address detection probes are left to the kernel (not answered): the instance's
//!   own addresses stay its own.
//! - Echo requests to the router's link-local address or a link-scope group are answered in
//!   place. The router's link-local address offers nothing else: a link-local destination
//!   not the router's, or anything but ICMPv6 to it, is `unknown_destination`. So the kernel
//!   never answers a host's link-local address itself, never resolves one, and keeps no
//!   neighbour entry a host could multiply with made-up sources.
//! - Other link-scope traffic (to `ff02::/16`, ICMPv6 to the router's address) goes to the
//!   kernel, which never forwards it: multicast listener reports, ICMPv6 errors.
//!
//! On a shared segment only link-scope traffic goes to the kernel (hosts there find each
//! other themselves).
//!
//! The answers are built by `vpc_common::ndp` (frame layouts there), which the agent's
//! unsolicited router advertisements share. The per-CPU scratch slot they are built in is
//! shared by `vpc_xdp6` and `vpc_tc6`, which never nest on one CPU.

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use network_types::eth::EthHdr;
use vpc_common::{
    DropReason,
    iface::{Endpoint6Key, IfaceInfo, router_link_local},
    ndp::{
        ALL_NODES, NA_LEN, ND_HOP_LIMIT, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, RA_LEN,
        REDIRECT, ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION, neighbor_advertisement,
    },
};

use crate::{
    csum::replace16,
    ipv6::{
        IPV6_PAYLOAD_OFF, Ipv6Fixed, PROTO_ICMPV6, Packet6, is_link_local, is_link_multicast,
        is_unspecified,
    },
    maps::{ENDPOINTS6, SUBNETS6, copied},
    packet::{ETH_LEN, Frag, PacketCtx, header, header_mut},
};

/// The hop limit of the router's echo replies.
const ECHO_HOP_LIMIT: u8 = 64;

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
    /// The frame is now the router's echo reply: send it back.
    Echoed,
    /// From the instance, to a destination beyond the link: the IPv6 pipeline's
    /// (`crate::decide::decide6`).
    Route,
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

/// Multicast listener reports and done (RFC 2710, 3810): the only messages besides
/// solicitations a host sends from `::` (before its link-local address is ready, RFC 3590).
const MLD_REPORT: u8 = 131;
const MLD_DONE: u8 = 132;
const MLD2_REPORT: u8 = 143;
const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;

/// Decides on IPv6 packet `p` that arrived on subnet interface `iface` (ifindex `ingress`).
#[inline(always)]
pub fn on_subnet(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    ingress: u32,
    p: &Packet6,
) -> Result<Ipv6Action, DropReason> {
    let link_scope = is_link_local(&p.dst) || is_link_multicast(&p.dst);
    let icmp = p.proto == PROTO_ICMPV6;
    let nd = icmp
        && p.frag == Frag::None
        && p.icmp_type >= ROUTER_SOLICITATION
        && p.icmp_type <= REDIRECT;
    if !iface.is_port() {
        // Hosts are not routers to the router, on a segment either.
        if nd && (p.icmp_type == ROUTER_ADVERTISEMENT || p.icmp_type == REDIRECT) {
            return Err(DropReason::Spoofed);
        }
        return if link_scope {
            Ok(Ipv6Action::ToKernel)
        } else {
            Err(DropReason::NotIpv4)
        };
    }
    // Once per packet: the router's link-local address on this port.
    let router = router_link_local(&iface.mac);
    let unspecified = is_unspecified(&p.src);
    if !unspecified && !is_link_local(&p.src) && !own_address(iface, ingress, &p.src) {
        return Err(DropReason::Spoofed);
    }
    // Neighbour discovery is never fragmented (RFC 6980), nothing the router's kernel takes
    // from an instance needs to be, and the IPv6 pipeline does not track fragments yet: no
    // fragment goes up to be reassembled into what the checks here never saw.
    if p.frag != Frag::None {
        return Err(DropReason::Fragment);
    }
    if unspecified {
        let allowed = icmp
            && (p.icmp_type == ROUTER_SOLICITATION
                || p.icmp_type == NEIGHBOR_SOLICITATION
                || p.icmp_type == MLD_REPORT
                || p.icmp_type == MLD_DONE
                || p.icmp_type == MLD2_REPORT);
        if !allowed {
            return Err(DropReason::Spoofed);
        }
    }
    if nd {
        // RFC 4861 6.1, 7.1.1: only ever one hop, code 0; extension headers would let a
        // message past the checks below to the kernel (RA guard evasion, RFC 7113).
        if !p.no_ext_headers() {
            return Err(DropReason::Ipv6ExtHeaders);
        }
        if p.ttl != ND_HOP_LIMIT || p.icmp_code != 0 {
            return Err(DropReason::Malformed);
        }
        match p.icmp_type {
            NEIGHBOR_SOLICITATION => {
                if p.payload_len() < 24 {
                    return Err(DropReason::Malformed);
                }
                let target: [u8; 16] = *header(ctx, IPV6_PAYLOAD_OFF + 8)?;
                // From `::`: duplicate address detection, the kernel's (not answered).
                if !unspecified && answers_for(iface, ingress, &router, &target) {
                    return advertise(ctx, iface, p, &target, target == router);
                }
            }
            NEIGHBOR_ADVERTISEMENT => {
                if p.payload_len() < 24 {
                    return Err(DropReason::Malformed);
                }
                let target: [u8; 16] = *header(ctx, IPV6_PAYLOAD_OFF + 8)?;
                // Only about the host's own addresses: never the router's link-local address
                // (which would fail its duplicate address detection), nor another host's.
                let own = (is_link_local(&target) && target != router)
                    || own_address(iface, ingress, &target);
                if !own {
                    return Err(DropReason::Spoofed);
                }
            }
            ROUTER_SOLICITATION => {
                if p.payload_len() < 8 {
                    return Err(DropReason::Malformed);
                }
                if let Some(ra) = router_advertisement(ctx, iface, p, &router)? {
                    return Ok(ra);
                }
            }
            // Router advertisements and redirects: instances are not routers.
            _ => return Err(DropReason::Spoofed),
        }
    }
    if !link_scope {
        // Neighbour discovery is one hop: never routed; nor is multicast.
        return if nd || p.dst[0] == 0xff {
            Err(DropReason::NotIpv4)
        } else {
            Ok(Ipv6Action::Route)
        };
    }
    // The router's link-local address offers neighbour discovery (above) and echo, both
    // answered here, and nothing else the kernel would answer: so the kernel never resolves
    // (nor keeps a neighbour entry of) a host's link-local address, and no host fills the
    // neighbour table with made-up ones. Other ICMPv6 (errors, listener reports) and
    // link-scope multicast go up; the kernel answers none of it to the sender.
    if icmp && p.icmp_type == ECHO_REQUEST {
        if !p.no_ext_headers() {
            return Err(DropReason::Ipv6ExtHeaders);
        }
        if p.dst != router && is_link_local(&p.dst) {
            return Err(DropReason::UnknownDestination);
        }
        return echo_reply(ctx, iface, p, &router);
    }
    if is_link_local(&p.dst) && (p.dst != router || !icmp) {
        return Err(DropReason::UnknownDestination);
    }
    Ok(Ipv6Action::ToKernel)
}

/// Turns echo request `p` (to the router's link-local address `router` or a link-scope
/// group) into the router's echo reply in place: to the sender's MAC and address, from the
/// port's MAC and `router`, type 129; the checksum is updated for the type and the changed
/// pseudo-header address (RFC 1624: the sender's address only moves from source to
/// destination). Words are taken in native order throughout (`crate::csum`).
#[inline(always)]
fn echo_reply(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    p: &Packet6,
    router: &[u8; 16],
) -> Result<Ipv6Action, DropReason> {
    let eth: &mut EthHdr = header_mut(ctx, 0)?;
    eth.dst_addr = eth.src_addr;
    eth.src_addr = iface.mac;
    let ip: &mut Ipv6Fixed = header_mut(ctx, ETH_LEN)?;
    ip.hop_limit = ECHO_HOP_LIMIT;
    ip.src = *router;
    ip.dst = p.src;
    let m: &mut [u8; 4] = header_mut(ctx, IPV6_PAYLOAD_OFF)?;
    let mut check = u16::from_ne_bytes([m[2], m[3]]);
    check = replace16(
        check,
        u16::from_ne_bytes([ECHO_REQUEST, m[1]]),
        u16::from_ne_bytes([ECHO_REPLY, m[1]]),
    );
    let mut i = 0;
    while i < 16 {
        check = replace16(
            check,
            u16::from_ne_bytes([p.dst[i], p.dst[i + 1]]),
            u16::from_ne_bytes([router[i], router[i + 1]]),
        );
        i += 2;
    }
    m[0] = ECHO_REPLY;
    m[2..4].copy_from_slice(&check.to_ne_bytes());
    Ok(Ipv6Action::Echoed)
}

/// Whether the router answers a solicitation for `target` on port `iface`: its own
/// link-local address `router`, or another address of the subnet's /64.
#[inline(always)]
fn answers_for(iface: &IfaceInfo, ingress: u32, router: &[u8; 16], target: &[u8; 16]) -> bool {
    if target == router {
        return true;
    }
    let Some(s6) = copied(&SUBNETS6, iface.subnet_id) else {
        return false;
    };
    target[..8] == s6.prefix && !own_address(iface, ingress, target)
}

/// Builds the neighbour advertisement for `target` answering solicitation `p` (`router`:
/// the target is the router's own link-local address).
#[inline(always)]
fn advertise(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    p: &Packet6,
    target: &[u8; 16],
    router: bool,
) -> Result<Ipv6Action, DropReason> {
    let eth_src = header::<EthHdr>(ctx, 0)?.src_addr;
    let out = NDP_SCRATCH.get_ptr_mut(0).ok_or(DropReason::BadTarget)?;
    let out = out.cast::<[u8; NA_LEN]>();
    // SAFETY: this CPU's scratch slot (RA_LEN bytes, NA_LEN of them used), used only here
    // for the program's duration.
    let f = unsafe { &mut *out };
    neighbor_advertisement(f, &eth_src, &iface.mac, target, &p.src, router);
    Ok(Ipv6Action::Advertise(out.cast_const()))
}

/// Builds the router advertisement answering solicitation `p`: to its sender, or to all
/// nodes when it came from the unspecified address. `None`: the subnet has no IPv6 block.
#[inline(always)]
fn router_advertisement(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    p: &Packet6,
    src: &[u8; 16],
) -> Result<Option<Ipv6Action>, DropReason> {
    let Some(s6) = copied(&SUBNETS6, iface.subnet_id) else {
        return Ok(None);
    };
    let eth_src = header::<EthHdr>(ctx, 0)?.src_addr;
    let out = NDP_SCRATCH.get_ptr_mut(0).ok_or(DropReason::BadTarget)?;
    // SAFETY: this CPU's scratch slot, used only here for the program's duration (see the
    // module documentation).
    let f = unsafe { &mut *out };
    let mut dst = p.src;
    if is_unspecified(&dst) {
        dst = ALL_NODES;
    }
    vpc_common::ndp::router_advertisement(f, &eth_src, &iface.mac, src, &dst, &s6.prefix);
    Ok(Some(Ipv6Action::RouterAdvertise(out.cast_const())))
}
