//! Ethernet + IPv6 frames for the tests (extension headers, ICMPv6 with neighbour discovery,
//! TCP, UDP), with valid checksums: the builder of [`crate::packet`] for IPv6.

use std::net::Ipv6Addr;

use crate::packet::checksum;

pub use vpc_common::ndp::{
    NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, PROTO_ICMPV6 as ICMPV6, REDIRECT,
    ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION,
};
pub const ECHO_REQUEST: u8 = 128;

/// An extension header.
#[derive(Clone, Debug)]
pub enum Ext {
    /// Hop-by-hop options, `units` 8-byte units after the first 8 bytes (PadN filled).
    HopByHop(u8),
    /// Destination options, likewise.
    DestOpts(u8),
    /// A routing header of `ty` with `segments_left` (one address).
    Routing { ty: u8, segments_left: u8 },
    /// A fragment header.
    Fragment { offset_units: u16, more: bool },
    /// Any other next-header value, 8 bytes.
    Other(u8),
}

impl Ext {
    fn next_header_value(&self) -> u8 {
        match self {
            Self::HopByHop(_) => 0,
            Self::DestOpts(_) => 60,
            Self::Routing { .. } => 43,
            Self::Fragment { .. } => 44,
            Self::Other(v) => *v,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            Self::HopByHop(units) | Self::DestOpts(units) => {
                let len = (usize::from(*units) + 1) * 8;
                let mut b = vec![next, *units];
                // One PadN option over the rest.
                b.extend_from_slice(&[1, (len - 4) as u8]);
                b.resize(len, 0);
                b
            }
            Self::Routing { ty, segments_left } => {
                let mut b = vec![next, 2, *ty, *segments_left, 0, 0, 0, 0];
                b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
                b
            }
            Self::Fragment { offset_units, more } => {
                let of = (offset_units << 3) | u16::from(*more);
                let mut b = vec![next, 0];
                b.extend_from_slice(&of.to_be_bytes());
                b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                b
            }
            Self::Other(_) => vec![next, 0, 0, 0, 0, 0, 0, 0],
        }
    }
}

/// The upper layer.
#[derive(Clone, Debug)]
pub enum Upper {
    /// ICMPv6 `ty`/`code` with `body` after the 4-byte header.
    Icmp {
        ty: u8,
        code: u8,
        body: Vec<u8>,
    },
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
}

/// An Ethernet + IPv6 frame description; [`Frame6::build`] gives the bytes.
#[derive(Clone, Debug)]
pub struct Frame6 {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub ext: Vec<Ext>,
    pub upper: Upper,
}

fn addr(a: &str) -> Ipv6Addr {
    a.parse().unwrap_or_else(|_| panic!("IPv6 address {a}"))
}

impl Frame6 {
    pub fn new(src: &str, dst: &str, upper: Upper) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 1],
            dst_mac: [0x02, 0, 0, 0, 0, 2],
            src: addr(src),
            dst: addr(dst),
            hop_limit: 64,
            ext: Vec::new(),
            upper,
        }
    }

    /// A neighbour solicitation for `target` (with the source link-layer address option
    /// unless from the unspecified address), to `target`'s solicited-node group.
    pub fn neighbor_solicitation(src: &str, target: &str, mac: [u8; 6]) -> Self {
        let t = addr(target).octets();
        let group = format!("ff02::1:ff{:02x}:{:02x}{:02x}", t[13], t[14], t[15]);
        let dst_mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
        Self::solicitation(src, &group, dst_mac, NEIGHBOR_SOLICITATION, &t, mac)
    }

    /// A neighbour advertisement from `src` about `target` to `dst`.
    pub fn neighbor_advertisement(src: &str, dst: &str, target: &str, flags: u8) -> Self {
        let mut body = vec![flags, 0, 0, 0];
        body.extend_from_slice(&addr(target).octets());
        let mut f = Self::new(
            src,
            dst,
            Upper::Icmp {
                ty: NEIGHBOR_ADVERTISEMENT,
                code: 0,
                body,
            },
        );
        f.hop_limit = 255;
        f
    }

    /// A router solicitation to all routers (with the source link-layer address option
    /// unless from the unspecified address).
    pub fn router_solicitation(src: &str, mac: [u8; 6]) -> Self {
        let all_routers = [0x33, 0x33, 0, 0, 0, 2];
        Self::solicitation(src, "ff02::2", all_routers, ROUTER_SOLICITATION, &[], mac)
    }

    /// A solicitation of type `ty` from `src` (MAC `mac`) to `dst` at `dst_mac`: 4 reserved
    /// bytes, `fields`, then the source link-layer address option unless from `::`.
    fn solicitation(
        src: &str,
        dst: &str,
        dst_mac: [u8; 6],
        ty: u8,
        fields: &[u8],
        mac: [u8; 6],
    ) -> Self {
        let mut body = vec![0; 4];
        body.extend_from_slice(fields);
        if !addr(src).is_unspecified() {
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&mac);
        }
        let mut f = Self::new(src, dst, Upper::Icmp { ty, code: 0, body });
        f.hop_limit = 255;
        f.src_mac = mac;
        f.dst_mac = dst_mac;
        f
    }

    /// An ICMPv6 echo request.
    pub fn echo(src: &str, dst: &str) -> Self {
        Self::new(
            src,
            dst,
            Upper::Icmp {
                ty: ECHO_REQUEST,
                code: 0,
                body: vec![0, 1, 0, 1],
            },
        )
    }

    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    pub fn hop_limit(mut self, hop_limit: u8) -> Self {
        self.hop_limit = hop_limit;
        self
    }

    pub fn ext(mut self, ext: Ext) -> Self {
        self.ext.push(ext);
        self
    }

    fn upper_bytes(&self) -> (u8, Vec<u8>) {
        let (proto, mut b, check_at) = match &self.upper {
            Upper::Icmp { ty, code, body } => {
                let mut b = vec![*ty, *code, 0, 0];
                b.extend_from_slice(body);
                (ICMPV6, b, 2)
            }
            Upper::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut b = Vec::with_capacity(20);
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 5 << 4, *flags, 0xff, 0xff]);
                b.extend_from_slice(&[0, 0, 0, 0]);
                (6, b, 16)
            }
            Upper::Udp { sport, dport } => {
                let mut b = Vec::with_capacity(8);
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&[0, 8, 0, 0]);
                (17, b, 6)
            }
        };
        let check = upper_checksum(&self.src, &self.dst, proto, &b);
        b[check_at..check_at + 2].copy_from_slice(&check.to_be_bytes());
        (proto, b)
    }

    pub fn build(&self) -> Vec<u8> {
        let (proto, upper) = self.upper_bytes();
        // Each header names the one after it.
        let mut chain = Vec::new();
        for (i, ext) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(proto, Ext::next_header_value);
            chain.extend_from_slice(&ext.bytes(next));
        }
        let first = self.ext.first().map_or(proto, Ext::next_header_value);
        let payload = chain.len() + upper.len();
        let mut f = Vec::with_capacity(54 + payload);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(payload as u16).to_be_bytes());
        f.extend_from_slice(&[first, self.hop_limit]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&chain);
        f.extend_from_slice(&upper);
        f
    }
}

/// The checksum of an upper-layer message `msg` (its checksum field zero) with IPv6's
/// pseudo header (RFC 8200 8.1).
pub fn upper_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, msg: &[u8]) -> u16 {
    let len = (msg.len() as u32).to_be_bytes();
    checksum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, proto], msg])
}

/// The modified EUI-64 link-local address of an interface with MAC `mac` (the router's on
/// its ports).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from(vpc_common::iface::router_link_local(&mac))
}
