//! Packet access and parsing: the one bounds-checked accessor ([`ptr_at`]) and the parser that
//! turns Ethernet / IPv4 / TCP / UDP / ICMP headers into a [`Flow`].
//!
//! Policy on odd packets (all counted under a [`DropReason`]):
//! - 802.1Q / 802.1ad tagged frames are dropped (`vlan_tagged`): VLANs are not part of the model.
//! - IPv6 is the IPv6 programs' on subnet interfaces (`crate::ipv6`, `crate::ndp`) and left
//!   to the kernel on uplinks and gateway links (the router's own); ARP is parsed (instance ports answer it themselves, see
//!   `crate::arp`); other non-IP frames (LLDP) go to the kernel, which does not forward them.
//! - The IP total length is checked against the whole packet (`PacketCtx::len`: an skb's
//!   paged data counts, a GSO aggregate is one packet).
//! - IPv4 options are allowed (the header length is honoured).
//! - A first fragment is classified like any packet; later fragments carry no ports and are
//!   classified by the ports of their first fragment when it was seen (`fragment` otherwise).

use core::mem::size_of;

use aya_ebpf::programs::{TcContext, XdpContext};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};
use vpc_common::DropReason;

/// Anything with packet bounds: XDP frames and TC socket buffers (linear part).
pub trait PacketCtx {
    /// Start and end of the directly accessible (linear) bytes.
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// The whole packet's length: for an skb with paged data (a GSO/GRO aggregate) more than
    /// the linear part.
    fn len(&self) -> usize;
}

impl PacketCtx for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        XdpContext::data_end(self) - XdpContext::data(self)
    }
}

impl PacketCtx for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
}

/// The one packet accessor: a pointer to a `T` at `offset`, or `Malformed` when the packet is
/// too short. Callers read and write through the pointer with `read_unaligned`-free types
/// (network-types headers are byte arrays, alignment 1).
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl PacketCtx, offset: usize) -> Result<*mut T, DropReason> {
    let start = ctx.data();
    let end = ctx.data_end();
    // No header lies this far in; the bound also tells the verifier that `start + offset`
    // stays a packet pointer whatever it knows of `offset`.
    if offset > MAX_HEADER_OFFSET {
        return Err(DropReason::Malformed);
    }
    if start + offset + size_of::<T>() > end {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}

/// Types that are nothing but bytes: alignment 1, no padding, every bit pattern valid (header
/// layouts made of `u8` and `[u8; N]`), so a reference to one may point anywhere in a packet.
///
/// # Safety
/// Implement only for such types.
pub unsafe trait Plain {}

// SAFETY: byte arrays are plain bytes.
unsafe impl<const N: usize> Plain for [u8; N] {}
// SAFETY: network-types' Ethernet and IPv4 headers are #[repr(C)] structs of u8 / [u8; N].
unsafe impl Plain for EthHdr {}
// SAFETY: as above.
unsafe impl Plain for Ipv4Hdr {}
// SAFETY: #[repr(C)] of u8 / [u8; N] fields (below).
unsafe impl Plain for ArpHdr {}
// SAFETY: as above.
unsafe impl Plain for L4Ports {}
// SAFETY: as above.
unsafe impl Plain for TcpHead {}
// SAFETY: as above.
unsafe impl Plain for IcmpHead {}

/// The header `T` at `offset`, borrowed from the packet: [`ptr_at`]'s bounds check, then a
/// reference. Every read of packet memory goes through this or [`header_mut`].
#[inline(always)]
pub fn header<T: Plain>(ctx: &impl PacketCtx, offset: usize) -> Result<&T, DropReason> {
    let p: *mut T = ptr_at(ctx, offset)?;
    // SAFETY: `ptr_at` checked that the whole `T` lies inside the packet, which stays mapped
    // for the program's run; `T: Plain` has alignment 1 and no invalid bit patterns.
    Ok(unsafe { &*p })
}

/// Like [`header`], for writing. The packet is the program's to change; callers hold one such
/// borrow at a time per field.
#[inline(always)]
#[allow(clippy::mut_from_ref)]
pub fn header_mut<T: Plain>(ctx: &impl PacketCtx, offset: usize) -> Result<&mut T, DropReason> {
    let p: *mut T = ptr_at(ctx, offset)?;
    // SAFETY: as in `header`; the packet buffer is writable for XDP and for the linear part
    // of a TC skb (after the parser's pull), and nothing else in the program aliases it.
    Ok(unsafe { &mut *p })
}

pub const ETH_LEN: usize = size_of::<EthHdr>();

/// The furthest offset a header is read at (an ICMP error's quoted L4 header sits at most
/// 14 + 60 + 8 + 60 bytes in).
const MAX_HEADER_OFFSET: usize = 512;

pub use vpc_common::proto::{ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// Fragment position of the packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    None,
    /// Offset 0 with more-fragments set: carries the L4 header.
    First,
    /// Offset > 0: no L4 header.
    Later,
}

/// What the datapath decides on: the 5-tuple and a few header facts. `A` is the address
/// family (`u32`: IPv4; `Addr6`: IPv6, built by `crate::ipv6::parse6`, where `ttl` is the hop
/// limit, `ip_len` the fixed header plus the payload, `df` always set and `inner` none).
#[derive(Clone, Copy)]
pub struct Flow<A = u32> {
    /// Source and destination (network order).
    pub src: A,
    pub dst: A,
    /// The upper-layer protocol (IPv6: the last next header of the chain).
    pub proto: u8,
    pub ttl: u8,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// TCP (host order): sequence and acknowledgment numbers, and the sequence space the
    /// segment takes (payload + SYN + FIN). 0 for other protocols.
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_len: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub frag: Frag,
    /// Don't fragment: a packet too big for the next hop gets ICMP fragmentation needed.
    pub df: bool,
    /// Source/destination ports in host order; for ICMP echo both are the identifier, for other
    /// ICMP messages and other protocols 0.
    pub sport: u16,
    pub dport: u16,
    /// IP identification (host order), for fragment tracking.
    pub ip_id: u16,
    /// Offset of the L4 header from the start of the frame.
    pub l4_off: usize,
    /// IP total length (host order).
    pub ip_len: u16,
    /// For ICMP errors (destination unreachable, time exceeded): the packet they are about.
    pub inner: Option<Inner>,
}

/// The header of the packet an ICMP error quotes (as it was sent, so from our side).
#[derive(Clone, Copy)]
pub struct Inner {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    /// Ports (ICMP echo: the identifier twice), host order.
    pub sport: u16,
    pub dport: u16,
    /// Offsets from the frame start of the quoted IP header and of its L4 header.
    pub ip_off: usize,
    pub l4_off: usize,
}

pub const ICMP_DEST_UNREACHABLE: u8 = 3;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// What the frame is, before any policy.
pub enum Frame {
    /// IPv4, parsed.
    Ipv4(Flow),
    /// An Ethernet/IPv4 ARP packet.
    Arp(Arp),
    /// Not IP: handed to the kernel (LLDP and friends).
    Other,
}

/// An ARP packet (Ethernet hardware, IPv4 protocol addresses).
#[derive(Clone, Copy)]
pub struct Arp {
    /// 1: request, 2: reply.
    pub op: u16,
    pub sender_ip: u32,
    pub target_ip: u32,
}

pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;
/// Offset of the ARP header and its layout (Ethernet/IPv4: 28 bytes).
pub const ARP_OFF: usize = ETH_LEN;

/// The Ethernet/IPv4 ARP header.
#[repr(C)]
pub struct ArpHdr {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub op: [u8; 2],
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

#[inline(always)]
fn parse_arp(ctx: &impl PacketCtx) -> Result<Frame, DropReason> {
    let arp: &ArpHdr = header(ctx, ARP_OFF)?;
    if u16::from_be_bytes(arp.htype) != 1
        || u16::from_be_bytes(arp.ptype) != 0x0800
        || arp.hlen != 6
        || arp.plen != 4
    {
        return Ok(Frame::Other);
    }
    Ok(Frame::Arp(Arp {
        op: u16::from_be_bytes(arp.op),
        sender_ip: u32::from_ne_bytes(arp.spa),
        target_ip: u32::from_ne_bytes(arp.tpa),
    }))
}

#[repr(C)]
struct L4Ports {
    sport: [u8; 2],
    dport: [u8; 2],
}

/// The fixed part of the TCP header up to the flags.
#[repr(C)]
struct TcpHead {
    sport: [u8; 2],
    dport: [u8; 2],
    seq: [u8; 4],
    ack: [u8; 4],
    doff: u8,
    flags: u8,
}

#[repr(C)]
struct IcmpHead {
    ty: u8,
    code: u8,
    check: [u8; 2],
    id: [u8; 2],
    seq: [u8; 2],
}

/// Parses the quoted header of an ICMP error at `off`: its IP header and the first 8 bytes
/// that follow (ports, or the echo identifier).
#[inline(always)]
fn parse_inner(ctx: &impl PacketCtx, off: usize) -> Result<Inner, DropReason> {
    let ip: &Ipv4Hdr = header(ctx, off)?;
    let ihl = ip.ihl() as usize;
    if ip.version() != 4 || ihl < size_of::<Ipv4Hdr>() || ihl > 60 {
        return Err(DropReason::Malformed);
    }
    let l4_off = off + ihl;
    let mut inner = Inner {
        src: u32::from_ne_bytes(ip.src_addr),
        dst: u32::from_ne_bytes(ip.dst_addr),
        proto: ip.proto,
        sport: 0,
        dport: 0,
        ip_off: off,
        l4_off,
    };
    match inner.proto {
        PROTO_TCP | PROTO_UDP => {
            let ports: &L4Ports = header(ctx, l4_off)?;
            inner.sport = u16::from_be_bytes(ports.sport);
            inner.dport = u16::from_be_bytes(ports.dport);
        }
        PROTO_ICMP => {
            let icmp: &IcmpHead = header(ctx, l4_off)?;
            let id = u16::from_be_bytes(icmp.id);
            inner.sport = id;
            inner.dport = id;
        }
        _ => {}
    }
    Ok(inner)
}

/// Whether the packet's IPv4 header has a valid checksum (a header with options is not
/// verified). Checked by the TC program only: the XDP program, which does everything else
/// too, has no verifier states to spare for it, so on a NIC in native mode a bad header
/// checksum is forwarded (and dropped by the receiver's stack).
#[inline(always)]
pub fn header_checksum_ok(ctx: &impl PacketCtx) -> Result<bool, DropReason> {
    let fixed: [u8; 20] = *header(ctx, ETH_LEN)?;
    if fixed[0] & 0x0f != 5 {
        return Ok(true);
    }
    let mut sum: u32 = 0;
    for pair in fixed.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    Ok(sum == 0xffff)
}

/// A unicast frame must be addressed to the router interface's own MAC (`mac`; all zero:
/// not known, no check): a frame for another host of a shared segment is not the router's
/// to forward (`not_for_router`). Broadcast and multicast frames are the router's too.
#[inline(always)]
pub fn addressed_to(ctx: &impl PacketCtx, mac: &[u8; 6]) -> Result<(), DropReason> {
    let dst = header::<EthHdr>(ctx, 0)?.dst_addr;
    if *mac == [0; 6] || dst == *mac || dst[0] & 1 != 0 {
        Ok(())
    } else {
        Err(DropReason::NotForRouter)
    }
}

/// Offset of an IPv6 header's source address from the frame start.
const IPV6_SRC_OFF: usize = ETH_LEN + 8;

/// Whether an IPv6 frame's source address is link-local (`fe80::/10`): the router's own
/// neighbour discovery and router advertisements on a link.
#[inline(always)]
pub fn ipv6_link_local_source(ctx: &impl PacketCtx) -> Result<bool, DropReason> {
    let src: &[u8; 2] = header(ctx, IPV6_SRC_OFF)?;
    Ok(src[0] == 0xfe && src[1] & 0xc0 == 0x80)
}

/// Whether the frame is IPv6, which the VPC datapath does not forward: [`parse`] drops it
/// (`not_ipv4`: nothing reaches or leaves an instance unchecked). On an uplink or a gateway's
/// link it is the router's own traffic, the kernel's, and the programs let it pass before
/// parsing (the kernel never forwards it into a subnet: the egress guard and the fail-closed
/// nftables guard stop that).
#[inline(always)]
pub fn is_ipv6(ctx: &impl PacketCtx) -> Result<bool, DropReason> {
    Ok(header::<EthHdr>(ctx, 0)?.ether_type == EtherType::Ipv6 as u16)
}

/// Parses the frame. Errors are drop reasons.
#[inline(always)]
pub fn parse(ctx: &impl PacketCtx) -> Result<Frame, DropReason> {
    let ether_type = header::<EthHdr>(ctx, 0)?.ether_type;
    if ether_type == EtherType::Ipv6 as u16 {
        return Err(DropReason::NotIpv4);
    }
    if ether_type == EtherType::Ieee8021q as u16
        || ether_type == EtherType::Ieee8021ad as u16
        || ether_type == EtherType::Ieee8021QinQ1 as u16
    {
        return Err(DropReason::VlanTagged);
    }
    if ether_type == EtherType::Arp as u16 {
        return parse_arp(ctx);
    }
    if ether_type != EtherType::Ipv4 as u16 {
        return Ok(Frame::Other);
    }

    let ip: &Ipv4Hdr = header(ctx, ETH_LEN)?;
    if ip.version() != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = ip.ihl() as usize;
    let ip_len = ip.tot_len();
    if ihl < size_of::<Ipv4Hdr>() || (ip_len as usize) < ihl {
        return Err(DropReason::Malformed);
    }
    if ETH_LEN + ip_len as usize > ctx.len() {
        return Err(DropReason::Malformed);
    }
    let frag_offset = ip.frag_offset();
    let more_fragments = ip.frag_flags() & 0x1 != 0;
    let frag = if frag_offset != 0 {
        Frag::Later
    } else if more_fragments {
        Frag::First
    } else {
        Frag::None
    };

    let mut flow = Flow {
        src: u32::from_ne_bytes(ip.src_addr),
        dst: u32::from_ne_bytes(ip.dst_addr),
        proto: ip.proto,
        ttl: ip.ttl,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_len: 0,
        icmp_type: 0,
        icmp_code: 0,
        frag,
        df: ip.frag_flags() & 0x2 != 0,
        sport: 0,
        dport: 0,
        ip_id: ip.id(),
        l4_off: ETH_LEN + ihl,
        ip_len,
        inner: None,
    };
    if frag == Frag::Later {
        return Ok(Frame::Ipv4(flow));
    }

    // The transport header lies within the IP total length (Ethernet padding is not a
    // header); a first fragment too short for it is a tiny-fragment attack (RFC 1858).
    // Compared on opaque copies: the compiler must not fold the lengths into the packet
    // pointers the verifier tracks.
    let l4_min = match flow.proto {
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMP => 8,
        _ => 0,
    };
    let (opaque_ihl, opaque_len) = core::hint::black_box((ihl, ip_len as usize));
    if opaque_ihl + l4_min > opaque_len {
        return Err(if frag == Frag::First {
            DropReason::Fragment
        } else {
            DropReason::Malformed
        });
    }
    let l4 = flow.l4_off;
    match flow.proto {
        PROTO_TCP => {
            let tcp: &TcpHead = header(ctx, l4)?;
            let header = ((tcp.doff >> 4) as u32) * 4;
            if header < 20 {
                return Err(DropReason::Malformed);
            }
            flow.sport = u16::from_be_bytes(tcp.sport);
            flow.dport = u16::from_be_bytes(tcp.dport);
            flow.tcp_flags = tcp.flags;
            flow.tcp_seq = u32::from_be_bytes(tcp.seq);
            flow.tcp_ack = u32::from_be_bytes(tcp.ack);
            let payload = (ip_len as u32).saturating_sub(ihl as u32 + header);
            flow.tcp_len = payload + u32::from(tcp.flags & 0x01) + u32::from((tcp.flags >> 1) & 1);
        }
        PROTO_UDP => {
            let ports: &L4Ports = header(ctx, l4)?;
            let _len: &[u8; 4] = header(ctx, l4 + 4)?;
            flow.sport = u16::from_be_bytes(ports.sport);
            flow.dport = u16::from_be_bytes(ports.dport);
        }
        PROTO_ICMP => {
            let icmp: &IcmpHead = header(ctx, l4)?;
            flow.icmp_type = icmp.ty;
            flow.icmp_code = icmp.code;
            if icmp.ty == ICMP_ECHO_REQUEST || icmp.ty == ICMP_ECHO_REPLY {
                let id = u16::from_be_bytes(icmp.id);
                flow.sport = id;
                flow.dport = id;
            } else if icmp.ty == ICMP_DEST_UNREACHABLE || icmp.ty == ICMP_TIME_EXCEEDED {
                flow.inner = Some(parse_inner(ctx, l4 + 8)?);
            }
        }
        _ => {}
    }
    Ok(Frame::Ipv4(flow))
}
