//! Packet access and parsing: the one bounds-checked accessor ([`ptr_at`]) and the parser that
//! turns Ethernet / IPv4 / TCP / UDP / ICMP headers into a [`Flow`].
//!
//! Policy on odd packets (all counted under a [`DropReason`]):
//! - 802.1Q / 802.1ad tagged frames are dropped (`vlan_tagged`): VLANs are not part of the model.
//! - IPv6 is dropped (`not_ipv4`); other non-IP frames (ARP, LLDP) go to the kernel, which does not
//!   forward them.
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
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
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
}

/// The one packet accessor: a pointer to a `T` at `offset`, or `Malformed` when the packet is
/// too short. Callers read and write through the pointer with `read_unaligned`-free types
/// (network-types headers are byte arrays, alignment 1).
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl PacketCtx, offset: usize) -> Result<*mut T, DropReason> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}

pub const ETH_LEN: usize = size_of::<EthHdr>();

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_ECHO_REQUEST: u8 = 8;

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

/// What the datapath decides on: the 5-tuple and a few header facts.
#[derive(Clone, Copy)]
pub struct Flow {
    /// Source and destination (network order).
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub ttl: u8,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub frag: Frag,
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
    /// Not IP: handed to the kernel (ARP and friends).
    Other,
}

#[repr(C)]
struct L4Ports {
    sport: [u8; 2],
    dport: [u8; 2],
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
    let ip: *mut Ipv4Hdr = ptr_at(ctx, off)?;
    // SAFETY: bounds-checked by `ptr_at`; plain bytes.
    let ip = unsafe { &*ip };
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
            let ports: *mut L4Ports = ptr_at(ctx, l4_off)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let ports = unsafe { &*ports };
            inner.sport = u16::from_be_bytes(ports.sport);
            inner.dport = u16::from_be_bytes(ports.dport);
        }
        PROTO_ICMP => {
            let icmp: *mut IcmpHead = ptr_at(ctx, l4_off)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let id = u16::from_be_bytes(unsafe { (*icmp).id });
            inner.sport = id;
            inner.dport = id;
        }
        _ => {}
    }
    Ok(inner)
}

/// Parses the frame. Errors are drop reasons.
#[inline(always)]
pub fn parse(ctx: &impl PacketCtx) -> Result<Frame, DropReason> {
    let eth: *mut EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: `ptr_at` checked that a whole EthHdr lies inside the packet.
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv6 as u16 {
        return Err(DropReason::NotIpv4);
    }
    if ether_type == EtherType::Ieee8021q as u16
        || ether_type == EtherType::Ieee8021ad as u16
        || ether_type == EtherType::Ieee8021QinQ1 as u16
    {
        return Err(DropReason::VlanTagged);
    }
    if ether_type != EtherType::Ipv4 as u16 {
        return Ok(Frame::Other);
    }

    let ip: *mut Ipv4Hdr = ptr_at(ctx, ETH_LEN)?;
    // SAFETY: `ptr_at` checked that a whole Ipv4Hdr lies inside the packet; it is plain bytes.
    let ip = unsafe { &*ip };
    if ip.version() != 4 {
        return Err(DropReason::Malformed);
    }
    let ihl = ip.ihl() as usize;
    let ip_len = ip.tot_len();
    if ihl < size_of::<Ipv4Hdr>() || (ip_len as usize) < ihl {
        return Err(DropReason::Malformed);
    }
    if ctx.data() + ETH_LEN + ip_len as usize > ctx.data_end() {
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
        icmp_type: 0,
        icmp_code: 0,
        frag,
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

    let l4 = flow.l4_off;
    match flow.proto {
        PROTO_TCP => {
            // Ports (4 bytes) then seq, ack, data offset, flags at byte 13.
            let ports: *mut L4Ports = ptr_at(ctx, l4)?;
            let flags: *mut u8 = ptr_at(ctx, l4 + 13)?;
            let doff: *mut u8 = ptr_at(ctx, l4 + 12)?;
            // SAFETY: all three were bounds-checked by `ptr_at`.
            let (ports, flags, doff) = unsafe { (&*ports, *flags, *doff) };
            if ((doff >> 4) as usize) * 4 < 20 {
                return Err(DropReason::Malformed);
            }
            flow.sport = u16::from_be_bytes(ports.sport);
            flow.dport = u16::from_be_bytes(ports.dport);
            flow.tcp_flags = flags;
        }
        PROTO_UDP => {
            let ports: *mut L4Ports = ptr_at(ctx, l4)?;
            // SAFETY: bounds-checked by `ptr_at`; the 8-byte UDP header is checked below.
            let ports = unsafe { &*ports };
            let _len: *mut [u8; 4] = ptr_at(ctx, l4 + 4)?;
            flow.sport = u16::from_be_bytes(ports.sport);
            flow.dport = u16::from_be_bytes(ports.dport);
        }
        PROTO_ICMP => {
            let icmp: *mut IcmpHead = ptr_at(ctx, l4)?;
            // SAFETY: bounds-checked by `ptr_at`.
            let icmp = unsafe { &*icmp };
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
