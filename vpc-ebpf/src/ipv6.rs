//! IPv6 headers: the fixed header, a bounded walk over the extension headers, and the
//! transport header after them, turned into a [`Packet6`].
//!
//! Policy on odd packets (each counted under one [`DropReason`]):
//! - The payload length is checked against the whole packet; 0 (a jumbogram) and more than
//!   65495 (a packet longer than 64 KiB) are malformed.
//! - At most [`MAX_EXT_HEADERS`] extension headers, ending within the first
//!   [`MAX_CHAIN_LEN`] bytes after the fixed header, are walked: hop-by-hop options (first
//!   only, RFC 8200 4.1), destination options, routing (with segments left dropped: type 0
//!   is deprecated, RFC 5095, and the router is no segment-routing hop), fragment and
//!   authentication headers. A longer chain, and
//!   the mobility, HIP, shim6 and experimental headers, are `ipv6_ext_headers`.
//! - A first fragment must carry the whole chain and the transport header (RFC 7112), else
//!   `fragment`; later fragments carry no ports.

use vpc_common::{Addr6, DropReason};

use crate::packet::{ETH_LEN, Flow, Frag, PROTO_TCP, PROTO_UDP, PacketCtx, Plain, header};

/// ICMPv6 (next header 58).
pub use vpc_common::ndp::PROTO_ICMPV6;
/// Extension headers (next header values).
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTS: u8 = 60;
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;
const EXPERIMENTAL1: u8 = 253;
const EXPERIMENTAL2: u8 = 254;

/// The most extension headers walked.
pub const MAX_EXT_HEADERS: usize = 4;
/// The extension header chain ends within this many bytes after the fixed header.
pub const MAX_CHAIN_LEN: usize = 256;

pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// Length of the fixed IPv6 header, and the offset of what follows it in a frame.
pub const IPV6_LEN: usize = 40;
pub const IPV6_PAYLOAD_OFF: usize = ETH_LEN + IPV6_LEN;

/// The fixed IPv6 header.
#[repr(C)]
pub struct Ipv6Fixed {
    /// Version (4 bits), traffic class, flow label.
    pub vtcfl: [u8; 4],
    pub payload_len: [u8; 2],
    pub next: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// The fragment extension header.
#[repr(C)]
struct FragHdr {
    next: u8,
    _reserved: u8,
    /// Offset (13 bits, in 8-byte units), two reserved bits, more-fragments.
    offset_flags: [u8; 2],
    _id: [u8; 4],
}

/// The first bytes of a TCP header, or the ports of a UDP one.
#[repr(C)]
struct L4Head {
    sport: [u8; 2],
    dport: [u8; 2],
    seq: [u8; 4],
    ack: [u8; 4],
    doff: u8,
    flags: u8,
}

#[repr(C)]
struct Icmp6Head {
    ty: u8,
    code: u8,
    _check: [u8; 2],
    id: [u8; 2],
    _seq: [u8; 2],
}

// SAFETY: #[repr(C)] structs of u8 / [u8; N] fields.
unsafe impl Plain for Ipv6Fixed {}
// SAFETY: as above.
unsafe impl Plain for FragHdr {}
// SAFETY: as above.
unsafe impl Plain for L4Head {}
// SAFETY: as above.
unsafe impl Plain for Icmp6Head {}

/// What the datapath decides on for an IPv6 packet: a [`Flow`] of IPv6 addresses.
pub type Packet6 = Flow<Addr6>;

impl Flow<Addr6> {
    /// A packet of nothing, to parse into ([`parse6_into`]).
    pub const EMPTY: Self = Flow {
        src: [0; 16],
        dst: [0; 16],
        proto: 0,
        ttl: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_len: 0,
        icmp_type: 0,
        icmp_code: 0,
        frag: Frag::None,
        df: true,
        sport: 0,
        dport: 0,
        ip_id: 0,
        l4_off: 0,
        ip_len: 0,
        inner: None,
    };

    /// Whether the packet carries nothing but its upper-layer header after the fixed one.
    #[inline(always)]
    pub fn no_ext_headers(&self) -> bool {
        self.l4_off == IPV6_PAYLOAD_OFF
    }

    /// The payload length: everything after the fixed header.
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        self.ip_len - IPV6_LEN as u16
    }
}

/// Whether `addr` is link-local unicast (`fe80::/10`).
#[inline(always)]
pub fn is_link_local(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// Whether `addr` is a link-scope multicast address (`ff02::/16`).
#[inline(always)]
pub fn is_link_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff && addr[1] & 0x0f == 0x02
}

/// Whether `addr` is the unspecified address (`::`).
#[inline(always)]
pub fn is_unspecified(addr: &[u8; 16]) -> bool {
    u128::from_ne_bytes(*addr) == 0
}

/// The destination address of the IPv6 packet of an Ethernet frame whose EtherType is IPv6
/// (only the fixed header read: enough to tell whose packet it is).
#[inline(always)]
pub fn destination(ctx: &impl PacketCtx) -> Result<Addr6, DropReason> {
    let ip: &Ipv6Fixed = header(ctx, ETH_LEN)?;
    Ok(ip.dst)
}

/// Parses the IPv6 packet of an Ethernet frame whose EtherType is IPv6.
#[inline(always)]
pub fn parse6(ctx: &impl PacketCtx) -> Result<Packet6, DropReason> {
    let mut p = Packet6::EMPTY;
    parse6_into(ctx, &mut p)?;
    Ok(p)
}

/// [`parse6`] into `p` (all of it written): for a caller whose stack has room for one packet
/// and no copy of it (`vpc_xdp6_route`).
#[inline(never)]
pub fn parse6_into(ctx: &impl PacketCtx, p: &mut Packet6) -> Result<(), DropReason> {
    let ip: &Ipv6Fixed = header(ctx, ETH_LEN)?;
    if ip.vtcfl[0] >> 4 != 6 {
        return Err(DropReason::Malformed);
    }
    let payload_len = u16::from_be_bytes(ip.payload_len);
    // The bound on the length keeps `ip_len` (40 + payload) a u16: a GRO aggregate stays
    // within 64 KiB with its headers, so nothing real is longer.
    if payload_len == 0
        || payload_len > u16::MAX - IPV6_LEN as u16
        || IPV6_PAYLOAD_OFF + payload_len as usize > ctx.len()
    {
        return Err(DropReason::Malformed);
    }
    // Every field written in place: `..Packet6::EMPTY` would build a second packet on this
    // function's stack (64 bytes more: past what `vpc_xdp6` leaves of the 512).
    *p = Packet6 {
        src: ip.src,
        dst: ip.dst,
        proto: ip.next,
        ttl: ip.hop_limit,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_len: 0,
        icmp_type: 0,
        icmp_code: 0,
        frag: Frag::None,
        // Routers never fragment IPv6: too big is always an error to the sender.
        df: true,
        sport: 0,
        dport: 0,
        ip_id: 0,
        l4_off: IPV6_PAYLOAD_OFF,
        ip_len: IPV6_LEN as u16 + payload_len,
        inner: None,
    };
    let mut off = IPV6_PAYLOAD_OFF;
    let mut walked = 0;
    while walked < MAX_EXT_HEADERS {
        let next = p.proto;
        match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS | AUTH => {
                if next == HOP_BY_HOP && walked != 0 {
                    return Err(DropReason::Ipv6ExtHeaders);
                }
                let h: &[u8; 4] = header(ctx, off)?;
                // A routing header with a hop to go (type 0's source routing, and the
                // segment routing types the kernel may act on): the router is never an
                // intermediate hop.
                if next == ROUTING && h[3] != 0 {
                    return Err(DropReason::Ipv6ExtHeaders);
                }
                p.proto = h[0];
                // The authentication header counts 4-byte units (minus 2), the others
                // 8-byte units after the first 8 bytes.
                off += if next == AUTH {
                    (h[1] as usize + 2) * 4
                } else {
                    (h[1] as usize + 1) * 8
                };
            }
            FRAGMENT => {
                let h: &FragHdr = header(ctx, off)?;
                let offset_flags = u16::from_be_bytes(h.offset_flags);
                p.proto = h.next;
                off += 8;
                if offset_flags >> 3 != 0 {
                    p.frag = Frag::Later;
                } else if offset_flags & 1 != 0 {
                    p.frag = Frag::First;
                }
            }
            MOBILITY | HIP | SHIM6 | EXPERIMENTAL1 | EXPERIMENTAL2 => {
                return Err(DropReason::Ipv6ExtHeaders);
            }
            _ => break,
        }
        if off > IPV6_PAYLOAD_OFF + MAX_CHAIN_LEN {
            return Err(DropReason::Ipv6ExtHeaders);
        }
        walked += 1;
        if p.frag == Frag::Later {
            // No transport header follows; the chain of a later fragment is not walked.
            p.l4_off = off;
            return Ok(());
        }
    }
    if is_extension(p.proto) {
        return Err(DropReason::Ipv6ExtHeaders);
    }
    p.l4_off = off;
    // The transport header lies within the payload; a first fragment without it is a
    // tiny-fragment attack (RFC 7112). Compared on opaque copies: the compiler must not fold
    // the lengths into the packet pointers the verifier tracks.
    let l4_min = match p.proto {
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMPV6 => 8,
        _ => 0,
    };
    let (opaque_off, opaque_len) = core::hint::black_box((off, payload_len as usize));
    if opaque_off + l4_min > IPV6_PAYLOAD_OFF + opaque_len {
        return Err(if p.frag == Frag::First {
            DropReason::Fragment
        } else {
            DropReason::Malformed
        });
    }
    match p.proto {
        PROTO_TCP => {
            let tcp: &L4Head = header(ctx, off)?;
            if tcp.doff >> 4 < 5 {
                return Err(DropReason::Malformed);
            }
            p.sport = u16::from_be_bytes(tcp.sport);
            p.dport = u16::from_be_bytes(tcp.dport);
            p.tcp_flags = tcp.flags;
            p.tcp_seq = u32::from_be_bytes(tcp.seq);
            p.tcp_ack = u32::from_be_bytes(tcp.ack);
            // The sequence space the segment takes: payload, SYN and FIN.
            let header = (off - IPV6_PAYLOAD_OFF) as u32 + u32::from(tcp.doff >> 4) * 4;
            let payload = u32::from(payload_len).saturating_sub(header);
            p.tcp_len = payload + u32::from(tcp.flags & 0x01) + u32::from((tcp.flags >> 1) & 1);
        }
        PROTO_UDP => {
            let udp: &[u8; 8] = header(ctx, off)?;
            p.sport = u16::from_be_bytes([udp[0], udp[1]]);
            p.dport = u16::from_be_bytes([udp[2], udp[3]]);
        }
        PROTO_ICMPV6 => {
            let icmp: &Icmp6Head = header(ctx, off)?;
            p.icmp_type = icmp.ty;
            p.icmp_code = icmp.code;
            if icmp.ty == ICMPV6_ECHO_REQUEST || icmp.ty == ICMPV6_ECHO_REPLY {
                let id = u16::from_be_bytes(icmp.id);
                p.sport = id;
                p.dport = id;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether next header `next` is an extension header (not an upper-layer protocol).
#[inline(always)]
fn is_extension(next: u8) -> bool {
    matches!(
        next,
        HOP_BY_HOP
            | ROUTING
            | FRAGMENT
            | AUTH
            | DEST_OPTS
            | MOBILITY
            | HIP
            | SHIM6
            | EXPERIMENTAL1
            | EXPERIMENTAL2
    )
}
