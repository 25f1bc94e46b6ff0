//! IPFIX export (RFC 7011) over UDP: `flow_logs.destination: ipfix:HOST:PORT`. One data record
//! per kernel flow entry of the interval (a direction of a flow at the interface it arrived
//! on, what `vpc-agent flows` lists), so that collectors (nfcapd, ntopng, goflow2) see the
//! router's view: 5-tuple, octet and packet deltas, start and end, ingress and egress
//! interface, the post-NAT addresses and a forwarding status (RFC 7270 / IANA IE 89: 64
//! forwarded, 129 dropped by an ACL (security groups, network ACLs), 131 unroutable, 128
//! other drops). IPv4 flows only: the template has IPv4 addresses (IPv6 flows are in the text
//! flow logs and `vpc-agent flows`, not exported here yet).
//!
//! Every message carries the template set first (UDP: RFC 7011 §8.4 asks for periodic
//! resending; each message is self-contained), then as many whole data records as fit in
//! [`MAX_MESSAGE`] bytes. A datagram that cannot be sent loses its records, counted as lost.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs as _, UdpSocket},
};

use vpc_common::{
    DropReason,
    flow::{FLOW_ACCEPT, FlowKey, FlowStats},
};

use super::{Clock, drain};

/// IPFIX version number.
const VERSION: u16 = 10;
/// The template set id.
const TEMPLATE_SET: u16 = 2;
/// Our one template.
pub const TEMPLATE_ID: u16 = 256;
/// Largest message: fits a 1500-byte MTU with IPv4/IPv6 and UDP headers.
pub const MAX_MESSAGE: usize = 1400;

/// (Information Element id, length) of the template, in record order.
const FIELDS: [(u16, u16); 15] = [
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (4, 1),   // protocolIdentifier
    (6, 2),   // tcpControlBits
    (1, 8),   // octetDeltaCount
    (2, 8),   // packetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (10, 4),  // ingressInterface
    (14, 4),  // egressInterface
    (225, 4), // postNATSourceIPv4Address
    (226, 4), // postNATDestinationIPv4Address
    (89, 1),  // forwardingStatus
];

/// Bytes of one data record.
pub const RECORD_LEN: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        n += FIELDS[i].1 as usize;
        i += 1;
    }
    n
};

/// RFC 7270 forwardingStatus of a kernel flow entry.
pub fn forwarding_status(key: &FlowKey<IpAddr>, stats: &FlowStats) -> u8 {
    if key.action == FLOW_ACCEPT {
        return 64;
    }
    match DropReason::from_u32(stats.reason) {
        Some(
            DropReason::AclInbound
            | DropReason::AclOutbound
            | DropReason::SecurityGroupInbound
            | DropReason::SecurityGroupOutbound,
        ) => 129,
        Some(DropReason::NoRoute | DropReason::Blackhole) => 131,
        _ => 128,
    }
}

fn template_set() -> Vec<u8> {
    let mut set = Vec::with_capacity(8 + 4 * FIELDS.len());
    let len = 4 + 4 + 4 * FIELDS.len();
    set.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
    set.extend_from_slice(&(len as u16).to_be_bytes());
    set.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
    set.extend_from_slice(&(FIELDS.len() as u16).to_be_bytes());
    for (id, len) in FIELDS {
        set.extend_from_slice(&id.to_be_bytes());
        set.extend_from_slice(&len.to_be_bytes());
    }
    set
}

/// One data record (`RECORD_LEN` bytes) of an IPv4 flow (`None` for IPv6: see the module).
pub fn data_record(key: &FlowKey<IpAddr>, stats: &FlowStats, clock: &Clock) -> Option<Vec<u8>> {
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    };
    let (src, dst) = (v4(key.src)?, v4(key.dst)?);
    let accepted = key.action == FLOW_ACCEPT;
    let (psrc, pdst) = if accepted {
        let (s, d) = drain::packet_addrs(key, stats);
        (v4(s)?, v4(d)?)
    } else {
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
    };
    let mut r = Vec::with_capacity(RECORD_LEN);
    r.extend_from_slice(&src.octets());
    r.extend_from_slice(&dst.octets());
    r.extend_from_slice(&key.sport.to_be_bytes());
    r.extend_from_slice(&key.dport.to_be_bytes());
    r.push(key.proto);
    r.extend_from_slice(&u16::from(stats.tcp_flags).to_be_bytes());
    r.extend_from_slice(&stats.bytes.to_be_bytes());
    r.extend_from_slice(&stats.packets.to_be_bytes());
    r.extend_from_slice(&clock.unix_ms(stats.first_ns).to_be_bytes());
    r.extend_from_slice(&clock.unix_ms(stats.last_ns).to_be_bytes());
    r.extend_from_slice(&key.ifindex.to_be_bytes());
    r.extend_from_slice(&(if accepted { stats.out_ifindex } else { 0 }).to_be_bytes());
    r.extend_from_slice(&psrc.octets());
    r.extend_from_slice(&pdst.octets());
    r.push(forwarding_status(key, stats));
    Some(r)
}

/// The messages for `records` (each `RECORD_LEN` bytes), sequence numbers from `sequence`,
/// each with the number of records it holds.
pub fn messages(
    records: &[Vec<u8>],
    export_secs: u32,
    sequence: u32,
    domain: u32,
) -> Vec<(Vec<u8>, usize)> {
    let template = template_set();
    let per_message = (MAX_MESSAGE - 16 - template.len() - 4) / RECORD_LEN;
    let mut out = Vec::new();
    let mut sequence = sequence;
    for chunk in records.chunks(per_message.max(1)) {
        let data_len = 4 + chunk.len() * RECORD_LEN;
        let total = 16 + template.len() + data_len;
        let mut m = Vec::with_capacity(total);
        m.extend_from_slice(&VERSION.to_be_bytes());
        m.extend_from_slice(&(total as u16).to_be_bytes());
        m.extend_from_slice(&export_secs.to_be_bytes());
        m.extend_from_slice(&sequence.to_be_bytes());
        m.extend_from_slice(&domain.to_be_bytes());
        m.extend_from_slice(&template);
        m.extend_from_slice(&TEMPLATE_ID.to_be_bytes());
        m.extend_from_slice(&(data_len as u16).to_be_bytes());
        for r in chunk {
            m.extend_from_slice(r);
        }
        sequence = sequence.wrapping_add(chunk.len() as u32);
        out.push((m, chunk.len()));
    }
    out
}

/// An IPFIX exporting process towards one collector.
pub struct Exporter {
    socket: UdpSocket,
    collector: SocketAddr,
    /// Data records sent so far (the next message's sequence number, RFC 7011 §3.1).
    sequence: u32,
    domain: u32,
}

impl Exporter {
    /// Resolves `host:port` and opens a UDP socket towards it.
    pub fn new(host: &str, port: u16) -> io::Result<Self> {
        let collector = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
        })?;
        let bind: SocketAddr = if collector.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = UdpSocket::bind(bind)?;
        Ok(Self {
            socket,
            collector,
            sequence: 0,
            domain: std::process::id(),
        })
    }

    /// Sends `flows` as data records (IPv4 ones: see the module): how many were sent and
    /// lost, and the first error.
    pub fn export<'a>(
        &mut self,
        flows: impl Iterator<Item = (&'a FlowKey<IpAddr>, &'a FlowStats)>,
        clock: &Clock,
    ) -> (usize, usize, Option<io::Error>) {
        let records: Vec<Vec<u8>> = flows
            .filter_map(|(k, s)| data_record(k, s, clock))
            .collect();
        let export = u32::try_from(clock.unix_now_secs()).unwrap_or(u32::MAX);
        let mut sent = 0;
        let mut lost = 0;
        let mut error = None;
        for (m, n) in messages(&records, export, self.sequence, self.domain) {
            match self.socket.send_to(&m, self.collector) {
                Ok(_) => {
                    sent += n;
                    self.sequence = self.sequence.wrapping_add(n as u32);
                }
                Err(e) => {
                    lost += n;
                    error.get_or_insert(e);
                }
            }
        }
        (sent, lost, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_common::{flow::FLOW_REJECT, ip_raw};

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn messages_carry_the_template_and_whole_records() {
        let key = FlowKey {
            ifindex: 3,
            src: IpAddr::from([10, 30, 2, 10]),
            dst: IpAddr::from([203, 0, 113, 5]),
            sport: 40000,
            dport: 443,
            proto: 6,
            action: FLOW_ACCEPT,
            generation: 0,
            _pad: 0,
        };
        let stats = FlowStats {
            packets: 3,
            bytes: 180,
            first_ns: 90_000_000_000,
            last_ns: 99_500_000_000,
            out_ifindex: 4,
            pkt_src: ip_raw([198, 51, 100, 5]),
            pkt_dst: ip_raw([203, 0, 113, 5]),
            tcp_flags: 2,
            ..FlowStats::default()
        };
        let clock = Clock {
            mono_ns: 100_000_000_000,
            unix_ns: 1_700_000_100_000_000_000,
        };
        let record = data_record(&key, &stats, &clock).expect("IPv4");
        assert_eq!(record.len(), RECORD_LEN);
        assert_eq!(
            RECORD_LEN,
            4 + 4 + 2 + 2 + 1 + 2 + 8 + 8 + 8 + 8 + 4 + 4 + 4 + 4 + 1
        );
        // Post-NAT source: the NAT gateway's elastic IP; forwarded (64).
        assert_eq!(&record[55..59], &[198, 51, 100, 5]);
        assert_eq!(record[RECORD_LEN - 1], 64);
        // flowStartMilliseconds: 10 s before "now".
        let start = u64::from_be_bytes(record[31..39].try_into().expect("8 bytes"));
        assert_eq!(start, 1_700_000_090_000);

        let records = vec![record; 50];
        let all = messages(&records, 1_700_000_100, 7, 42);
        assert!(all.len() > 1, "50 records need more than one message");
        let mut seq = 7;
        let mut total = 0;
        for (m, count) in &all {
            assert!(m.len() <= MAX_MESSAGE);
            assert_eq!(be16(m, 0), 10);
            assert_eq!(usize::from(be16(m, 2)), m.len());
            assert_eq!(u32::from_be_bytes(m[8..12].try_into().expect("4")), seq);
            // Template set, then the data set of whole records.
            assert_eq!(be16(m, 16), TEMPLATE_SET);
            let tlen = usize::from(be16(m, 18));
            assert_eq!(be16(m, 16 + tlen), TEMPLATE_ID);
            let dlen = usize::from(be16(m, 16 + tlen + 2));
            assert_eq!(16 + tlen + dlen, m.len());
            assert_eq!((dlen - 4) % RECORD_LEN, 0);
            let n = (dlen - 4) / RECORD_LEN;
            assert_eq!(n, *count);
            seq += n as u32;
            total += n;
        }
        assert_eq!(total, 50);
    }

    #[test]
    fn drops_have_a_forwarding_status_by_cause() {
        let key = drain::widen(&FlowKey::<u32> {
            action: FLOW_REJECT,
            ..FlowKey::default()
        });
        let with = |r: DropReason| FlowStats {
            reason: r as u32,
            ..FlowStats::default()
        };
        assert_eq!(
            forwarding_status(&key, &with(DropReason::SecurityGroupInbound)),
            129
        );
        assert_eq!(forwarding_status(&key, &with(DropReason::AclOutbound)), 129);
        assert_eq!(forwarding_status(&key, &with(DropReason::NoRoute)), 131);
        assert_eq!(forwarding_status(&key, &with(DropReason::Spoofed)), 128);
    }
}
