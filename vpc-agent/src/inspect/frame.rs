//! Ethernet/IPv4 frames for `trace`: the packet an instance would send (built), and what the
//! datapath made of it (decoded, checksums verified); IPv6 frames of a capture (decoded).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::evaluator::IpPacket;
use vpc_common::{
    csum::{checksum, sum},
    proto::{PROTO_ICMP, PROTO_TCP, PROTO_UDP},
};

const ETH: usize = 14;

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// TCP / UDP ports; for ICMP echo `sport` is the identifier.
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// ICMP type (8: echo request, 0: echo reply).
    pub icmp_type: u8,
    pub ttl: u8,
}

/// One's complement sum of `data` (16-bit big-endian words) added to `acc`.
fn pseudo(ip: &[u8], proto: u8, len: usize) -> u32 {
    sum(&ip[12..20], u32::from(proto) + len as u32)
}

/// The frame: Ethernet, IPv4 (20 bytes, DF, `ttl`), then a TCP (20), UDP (8) or ICMP echo
/// (8) header, with valid checksums.
pub fn build(s: &Spec) -> Vec<u8> {
    let l4: Vec<u8> = match s.proto {
        PROTO_TCP => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&s.sport.to_be_bytes());
            t[2..4].copy_from_slice(&s.dport.to_be_bytes());
            t[4..8].copy_from_slice(&1000u32.to_be_bytes());
            if s.tcp_flags & ACK != 0 {
                t[8..12].copy_from_slice(&2000u32.to_be_bytes());
            }
            t[12] = 5 << 4;
            t[13] = s.tcp_flags;
            t[14..16].copy_from_slice(&64240u16.to_be_bytes());
            t
        }
        PROTO_UDP => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&s.sport.to_be_bytes());
            u[2..4].copy_from_slice(&s.dport.to_be_bytes());
            u[4..6].copy_from_slice(&8u16.to_be_bytes());
            u
        }
        _ => {
            let mut i = vec![0u8; 8];
            i[0] = s.icmp_type;
            i[4..6].copy_from_slice(&s.sport.to_be_bytes());
            i[6..8].copy_from_slice(&1u16.to_be_bytes());
            i
        }
    };
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&1u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = s.ttl;
    ip[9] = s.proto;
    ip[12..16].copy_from_slice(&s.src.octets());
    ip[16..20].copy_from_slice(&s.dst.octets());
    let c = checksum(sum(&ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = l4;
    let at = match s.proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => 2,
    };
    let acc = if s.proto == PROTO_ICMP {
        0
    } else {
        pseudo(&ip, s.proto, l4.len())
    };
    let mut c = checksum(sum(&l4, acc));
    if s.proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut frame = Vec::with_capacity(ETH + 20 + l4.len());
    frame.extend_from_slice(&s.dmac);
    frame.extend_from_slice(&s.smac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&l4);
    frame
}

/// An IPv4 frame as read back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decoded {
    pub smac: String,
    pub dmac: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    /// TCP flags (0 otherwise); ICMP type and code.
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Whether the IP header checksum and the L4 checksum (when the whole segment is there
    /// and the packet is not a later fragment) verify.
    pub checksums_valid: bool,
}

pub fn mac_text(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes an Ethernet frame carrying IPv4 (`None` otherwise or when truncated).
pub fn decode(f: &[u8]) -> Option<Decoded> {
    if f.len() < ETH + 20 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let proto = ip[9];
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let later = frag & 0x1fff != 0;
    let end = total.clamp(ihl, ip.len());
    let l4 = &ip[ihl..end];
    let mut ok = checksum(sum(&ip[..ihl], 0)) == 0;
    let (mut sport, mut dport, mut flags, mut ty, mut code) = (0, 0, 0, 0, 0);
    let port = |o: usize| {
        l4.get(o..o + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    if !later {
        match proto {
            PROTO_TCP | PROTO_UDP => {
                sport = port(0);
                dport = port(2);
                if proto == PROTO_TCP {
                    flags = l4.get(13).copied().unwrap_or(0);
                }
                let udp_none = proto == PROTO_UDP && port(6) == 0;
                let whole = total <= ip.len() && frag & 0x2000 == 0;
                if whole && !udp_none {
                    ok &= checksum(sum(l4, pseudo(ip, proto, l4.len()))) == 0;
                }
            }
            PROTO_ICMP => {
                ty = l4.first().copied().unwrap_or(0);
                code = l4.get(1).copied().unwrap_or(0);
                sport = port(4);
                dport = sport;
                if total <= ip.len() {
                    ok &= checksum(sum(l4, 0)) == 0;
                }
            }
            _ => {}
        }
    }
    Some(Decoded {
        smac: mac_text(&f[6..12]),
        dmac: mac_text(&f[0..6]),
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        proto,
        sport,
        dport,
        ttl: ip[8],
        tcp_flags: flags,
        icmp_type: ty,
        icmp_code: code,
        checksums_valid: ok,
    })
}

/// An IPv6 packet of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded6 {
    /// As the reference evaluator takes it: the upper-layer protocol (the last next header),
    /// TCP / UDP ports (ICMPv6 echo: the identifier, both), the target of a neighbour
    /// solicitation or advertisement when the message holds one.
    pub packet: IpPacket,
    /// Extension headers or a fragment header before the upper layer: the evaluator does not
    /// model them (the datapath walks them; neighbour discovery with them is dropped).
    pub extension_headers: bool,
}

/// Decodes an Ethernet frame carrying IPv6 (`None` otherwise or when shorter than the fixed
/// header). Extension headers are skipped over (hop-by-hop, routing, fragment, destination
/// options, up to 8) to find the upper layer; a later fragment has no ports.
pub fn decode6(f: &[u8]) -> Option<Decoded6> {
    const IPV6: usize = 40;
    if f.len() < ETH + IPV6 || f[12..14] != [0x86, 0xdd] || f[ETH] >> 4 != 6 {
        return None;
    }
    let ip = &f[ETH..];
    let addr = |o: usize| -> Option<Ipv6Addr> {
        Some(Ipv6Addr::from(<[u8; 16]>::try_from(&ip[o..o + 16]).ok()?))
    };
    let mut proto = ip[6];
    let mut off = IPV6;
    let mut later = false;
    let mut extension_headers = false;
    for _ in 0..8 {
        let Some(h) = ip.get(off..off + 2) else {
            break;
        };
        match proto {
            0 | 43 | 60 => off += (usize::from(h[1]) + 1) * 8,
            44 => {
                let frag = ip.get(off + 2..off + 4)?;
                later = u16::from_be_bytes([frag[0], frag[1]]) >> 3 != 0;
                off += 8;
            }
            _ => break,
        }
        extension_headers = true;
        proto = h[0];
        if later {
            break;
        }
    }
    let l4 = ip.get(off..).unwrap_or_default();
    let port = |o: usize| {
        l4.get(o..o + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (mut sport, mut dport, mut icmp_type, mut icmp_code, mut nd_target) = (0, 0, 0, 0, None);
    if !later {
        match proto {
            PROTO_TCP | PROTO_UDP => (sport, dport) = (port(0), port(2)),
            58 => {
                icmp_type = l4.first().copied().unwrap_or(0);
                icmp_code = l4.get(1).copied().unwrap_or(0);
                if icmp_type == 128 || icmp_type == 129 {
                    sport = port(4);
                    dport = sport;
                }
                if icmp_type == 135 || icmp_type == 136 {
                    nd_target = l4
                        .get(8..24)
                        .and_then(|t| <[u8; 16]>::try_from(t).ok())
                        .map(Ipv6Addr::from);
                }
            }
            _ => {}
        }
    }
    Some(Decoded6 {
        packet: IpPacket {
            src: addr(8)?.into(),
            dst: addr(24)?.into(),
            proto,
            sport,
            dport,
            icmp_type,
            icmp_code,
            hop_limit: ip[7],
            nd_target,
        },
        extension_headers,
    })
}

/// Parses `--flags`: letters S A F R P (as tcpdump prints them), `|` or `,` between them
/// optional ("S", "SA", "A|P").
pub fn parse_flags(text: &str) -> Result<u8, String> {
    let mut flags = 0;
    for c in text.chars() {
        flags |= match c.to_ascii_uppercase() {
            'S' => SYN,
            'A' => ACK,
            'F' => FIN,
            'R' => RST,
            'P' => PSH,
            '|' | ',' | '.' => 0,
            other => return Err(format!("unknown TCP flag '{other}' (S, A, F, R, P)")),
        };
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv6 from `src` to `dst`, next header `next`, hop limit `hop`, then `rest`.
    fn ipv6(src: &str, dst: &str, next: u8, hop: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
        ];
        f.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, hop]);
        f.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ipv6_frames_decode_to_what_the_evaluator_takes() {
        // A neighbour solicitation: type, code, hop limit, target.
        let target = "2001:db8::11".parse::<Ipv6Addr>().unwrap();
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&target.octets());
        let d = decode6(&ipv6("fe80::1", "ff02::1:ff00:11", 58, 255, &ns)).expect("IPv6");
        assert_eq!(
            (
                d.packet.proto,
                d.packet.icmp_type,
                d.packet.hop_limit,
                d.packet.nd_target,
                d.extension_headers
            ),
            (58, 135, 255, Some(target), false)
        );
        // UDP behind a destination options header: the ports, and the header noted.
        let mut udp = vec![17, 0, 1, 4, 0, 0, 0, 0];
        udp.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
        let d = decode6(&ipv6("2001:db8::10", "2001:db8::1", 60, 64, &udp)).expect("IPv6");
        assert_eq!(
            (
                d.packet.proto,
                d.packet.sport,
                d.packet.dport,
                d.extension_headers
            ),
            (17, 40000, 53, true)
        );
        // A later fragment: no ports.
        let frag = [6, 0, 0, 0x40, 0, 0, 0, 1, 0x9c, 0x40, 0, 80];
        let d = decode6(&ipv6("2001:db8::10", "2001:db8::1", 44, 64, &frag)).expect("IPv6");
        assert_eq!((d.packet.proto, d.packet.sport, d.packet.dport), (6, 0, 0));
        // Not IPv6, or too short.
        assert!(decode6(&build(&spec(PROTO_TCP))).is_none());
        assert!(decode6(&ipv6("::1", "::1", 59, 64, &[])[..40]).is_none());
    }

    fn spec(proto: u8) -> Spec {
        Spec {
            smac: [2, 0, 0, 0, 0, 1],
            dmac: [2, 0, 0, 0, 0, 2],
            src: Ipv4Addr::new(10, 0, 1, 10),
            dst: Ipv4Addr::new(192, 0, 2, 100),
            proto,
            sport: 40000,
            dport: 443,
            tcp_flags: SYN,
            icmp_type: 8,
            ttl: 64,
        }
    }

    #[test]
    fn built_frames_decode_with_valid_checksums() {
        for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP] {
            let f = build(&spec(proto));
            let d = decode(&f).expect("IPv4");
            assert!(d.checksums_valid, "proto {proto}");
            assert_eq!(
                (d.src, d.dst, d.ttl),
                (spec(proto).src, spec(proto).dst, 64)
            );
            assert_eq!(d.smac, "02:00:00:00:00:01");
        }
        let tcp = decode(&build(&spec(PROTO_TCP))).unwrap();
        assert_eq!((tcp.sport, tcp.dport, tcp.tcp_flags), (40000, 443, SYN));
    }

    #[test]
    fn a_corrupted_checksum_is_seen() {
        let mut f = build(&spec(PROTO_UDP));
        let last = f.len() - 1;
        f[last - 2] ^= 0xff;
        assert!(!decode(&f).unwrap().checksums_valid);
    }

    #[test]
    fn flags_parse_like_tcpdump_prints_them() {
        assert_eq!(parse_flags("S"), Ok(SYN));
        assert_eq!(parse_flags("S|A"), Ok(SYN | ACK));
        assert_eq!(parse_flags("FA"), Ok(FIN | ACK));
        assert!(parse_flags("X").is_err());
    }
}
