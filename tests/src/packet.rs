//! A small packet builder (no hex blobs) and checksum checks for expected output bytes.

use std::net::Ipv4Addr;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Layer 4 of a built packet.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
        id: u16,
        seq: u16,
    },
    /// An ICMP error (destination unreachable, time exceeded) quoting `quoted` (an IP packet,
    /// as the router sent it).
    IcmpError {
        ty: u8,
        code: u8,
        quoted: Vec<u8>,
    },
    /// Any other protocol number, payload only.
    Raw {
        proto: u8,
    },
}

/// An Ethernet + IPv4 packet description; [`Packet::build`] produces the bytes with valid
/// checksums.
#[derive(Clone, Debug)]
pub struct Packet {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub ip_id: u16,
    /// IPv4 options (padded to 4 bytes by the builder).
    pub options: Vec<u8>,
    /// (more fragments, fragment offset in 8-byte units)
    pub frag: (bool, u16),
    /// The don't-fragment flag.
    pub df: bool,
    pub l4: L4,
    /// TCP sequence and acknowledgment numbers.
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub payload: Vec<u8>,
}

/// An Ethernet/IPv4 ARP frame: `op` 1 (request) or 2 (reply) from `sha`/`spa` about `tpa`
/// (broadcast for a request).
pub fn arp(op: u16, sha: [u8; 6], spa: &str, tpa: &str) -> Vec<u8> {
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("address").octets();
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&if op == 1 {
        [0xff; 6]
    } else {
        [0x02, 0, 0, 0, 0, 0xfe]
    });
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&ip(spa));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip(tpa));
    f
}

impl Packet {
    /// The destination MAC of a packet that sets none ([`crate::topology::Topology::frame`]
    /// addresses such packets to the router port they are sent on).
    pub const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn new(src: &str, dst: &str, l4: L4) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: Self::DEFAULT_DST_MAC,
            vlan: None,
            src: src.parse().expect("source address"),
            dst: dst.parse().expect("destination address"),
            ttl: 64,
            ip_id: 0x1234,
            options: Vec::new(),
            frag: (false, 0),
            df: false,
            l4,
            tcp_seq: 1000,
            tcp_ack: 0,
            payload: b"payload!".to_vec(),
        }
    }

    pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
            },
        )
    }

    /// Any other protocol number (payload only).
    pub fn raw(src: &str, dst: &str, proto: u8) -> Self {
        Self::new(src, dst, L4::Raw { proto })
    }

    pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Self {
        Self::new(src, dst, L4::Udp { sport, dport })
    }

    pub fn icmp_echo(src: &str, dst: &str, id: u16, seq: u16) -> Self {
        Self::new(
            src,
            dst,
            L4::Icmp {
                ty: 8,
                code: 0,
                id,
                seq,
            },
        )
    }

    /// An ICMP error from `src` to `dst` about `about` (quoted whole, without Ethernet).
    pub fn icmp_error(src: &str, dst: &str, ty: u8, code: u8, about: &Packet) -> Self {
        let quoted = about.build()[14..].to_vec();
        Self::new(src, dst, L4::IcmpError { ty, code, quoted }).payload(&[])
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlan = Some(vid);
        self
    }

    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    pub fn fragment(mut self, more: bool, offset_units: u16) -> Self {
        self.frag = (more, offset_units);
        self
    }

    /// Sets the don't-fragment flag.
    pub fn dont_fragment(mut self) -> Self {
        self.df = true;
        self
    }

    pub fn macs(mut self, src: [u8; 6], dst: [u8; 6]) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// TCP: these sequence and acknowledgment numbers (default 1000 and 0).
    pub fn seq_ack(mut self, seq: u32, ack: u32) -> Self {
        self.tcp_seq = seq;
        self.tcp_ack = ack;
        self
    }

    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } | L4::IcmpError { .. } => 1,
            L4::Raw { proto } => proto,
        }
    }

    fn l4_bytes(&self) -> Vec<u8> {
        let mut l4 = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&self.tcp_seq.to_be_bytes());
                h[8..12].copy_from_slice(&self.tcp_ack.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code, id, seq } => {
                let mut h = vec![0u8; 8];
                h[0] = ty;
                h[1] = code;
                h[4..6].copy_from_slice(&id.to_be_bytes());
                h[6..8].copy_from_slice(&seq.to_be_bytes());
                h
            }
            L4::IcmpError {
                ty,
                code,
                ref quoted,
            } => {
                let mut h = vec![ty, code, 0, 0, 0, 0, 0, 0];
                if ty == 3 && code == 4 {
                    h[6..8].copy_from_slice(&1400u16.to_be_bytes()); // next-hop MTU
                }
                h.extend_from_slice(quoted);
                h
            }
            L4::Raw { .. } => Vec::new(),
        };
        l4.extend_from_slice(&self.payload);
        let csum_at = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Icmp { .. } | L4::IcmpError { .. } => Some(2),
            L4::Raw { .. } => None,
        };
        if let Some(at) = csum_at {
            let sum = match self.l4 {
                L4::Icmp { .. } | L4::IcmpError { .. } => checksum(&[&l4]),
                _ => checksum(&[
                    &pseudo_header(self.src, self.dst, self.proto(), l4.len()),
                    &l4,
                ]),
            };
            let sum = if matches!(self.l4, L4::Udp { .. }) && sum == 0 {
                0xffff
            } else {
                sum
            };
            l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        l4
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        if let Some(vid) = self.vlan {
            out.extend_from_slice(&0x8100u16.to_be_bytes());
            out.extend_from_slice(&vid.to_be_bytes());
        }
        out.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut options = self.options.clone();
        while !options.len().is_multiple_of(4) {
            options.push(0);
        }
        let l4 = if self.frag.1 == 0 {
            self.l4_bytes()
        } else {
            self.payload.clone()
        };
        let ihl = 20 + options.len();
        let mut ip = vec![0u8; 20];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        let frags = (u16::from(self.df) << 14) | (u16::from(self.frag.0) << 13) | self.frag.1;
        ip[6..8].copy_from_slice(&frags.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = self.proto();
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        ip.extend_from_slice(&options);
        let sum = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        out.extend_from_slice(&l4);
        out
    }
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.push(0);
    p.push(proto);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// The Internet checksum over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                None => odd = Some(b),
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checks the IPv4 header checksum and the TCP/UDP/ICMP checksum of an Ethernet frame
/// (untagged, unfragmented). Returns a description of the first bad one.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let ip = frame.get(14..).ok_or("no IP header")?;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if checksum(&[&ip[..ihl]]) != 0 {
        return Err("bad IPv4 header checksum".into());
    }
    let l4 = ip.get(ihl..total).ok_or("truncated L4")?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let ok = match ip[9] {
        1 => checksum(&[l4]) == 0,
        6 | 17 => checksum(&[&pseudo_header(src, dst, ip[9], l4.len()), l4]) == 0,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad L4 checksum (protocol {})", ip[9]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_have_valid_checksums() {
        for p in [
            Packet::tcp("10.0.0.10", "10.0.1.10", 40000, 22, TCP_SYN),
            Packet::udp("10.0.0.10", "10.0.1.10", 40000, 53).payload(b"odd"),
            Packet::icmp_echo("10.0.0.10", "10.0.1.10", 7, 1),
            Packet::tcp("10.0.0.10", "10.0.1.10", 1, 2, TCP_ACK).options(&[1, 1, 1, 0]),
        ] {
            let frame = p.build();
            verify_checksums(&frame).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        }
    }

    #[test]
    fn verify_checksums_detects_corruption() {
        let mut frame = Packet::tcp("10.0.0.10", "10.0.1.10", 40000, 22, TCP_SYN).build();
        frame[14 + 8] -= 1; // TTL changed without fixing the checksum
        assert!(verify_checksums(&frame).is_err());
    }
}
