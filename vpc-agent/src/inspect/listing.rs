//! `vpc-agent conntrack|nat|routes [--json]`: the pinned CONNTRACK (and CONNTRACK6),
//! NAT_PORTS and ROUTES (and ROUTES6) entries decoded (addresses dotted or in IPv6 notation,
//! states and targets by name, expiry in seconds), read from the pinned maps only (an agent
//! need not run).

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use aya::{
    Pod,
    maps::{Array, HashMap, LpmTrie, MapData, MapError},
};
use serde::Serialize;
use vpc_common::{
    Addr6,
    conntrack::{
        CT_BOTH_WAYS, CT_ONE_WAY, CT_TCP_CLOSED, CT_TCP_ESTABLISHED, CT_TCP_FIN_WAIT,
        CT_TCP_SYN_RECV, CT_TCP_SYN_SENT, CT_TCP_TIME_WAIT, CtEntry, CtKey, CtTimeouts,
    },
    iface::SLOT_SHIFT,
    ip_from_raw,
    nat::{NatKey, NatValue},
    proto::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    route::{
        RouteKey, RouteValue, TARGET_BLACKHOLE, TARGET_EGRESS_ONLY_GATEWAY, TARGET_GATEWAY,
        TARGET_INSTANCE, TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY, TARGET_PEERING,
    },
};

use crate::{
    datapath::object::maps as names, datapath::pin, flowlog::monotonic_ns,
    inspect::status::StatusError,
};

fn addr(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(ip_from_raw(raw))
}

/// An address as a map stores it (`u32` IPv4, [`Addr6`] IPv6), decoded.
pub trait MapAddr: Copy {
    fn ip(self) -> IpAddr;
}

impl MapAddr for u32 {
    fn ip(self) -> IpAddr {
        IpAddr::V4(addr(self))
    }
}

impl MapAddr for Addr6 {
    fn ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

/// `ADDR:PORT`, `[ADDR]:PORT` for IPv6.
fn endpoint(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// A protocol number by name where it has one.
pub fn proto_name(proto: u8) -> String {
    match proto {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        p => p.to_string(),
    }
}

/// A conntrack state by name.
pub fn state_name(state: u8) -> &'static str {
    match state {
        CT_TCP_SYN_SENT => "SYN_SENT",
        CT_TCP_SYN_RECV => "SYN_RECV",
        CT_TCP_ESTABLISHED => "ESTABLISHED",
        CT_TCP_FIN_WAIT => "FIN_WAIT",
        CT_TCP_TIME_WAIT => "TIME_WAIT",
        CT_TCP_CLOSED => "CLOSED",
        CT_ONE_WAY => "ONE_WAY",
        CT_BOTH_WAYS => "BOTH_WAYS",
        _ => "UNKNOWN",
    }
}

/// A route target kind by name.
pub fn target_name(target: u8) -> &'static str {
    match target {
        TARGET_LOCAL => "local",
        TARGET_INTERNET_GATEWAY => "internet_gateway",
        TARGET_NAT_GATEWAY => "nat_gateway",
        TARGET_PEERING => "peering",
        TARGET_GATEWAY => "gateway",
        TARGET_INSTANCE => "instance",
        TARGET_EGRESS_ONLY_GATEWAY => "egress_only_gateway",
        TARGET_BLACKHOLE => "blackhole",
        _ => "unknown",
    }
}

/// One CONNTRACK (or CONNTRACK6) entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Connection {
    pub protocol: String,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub state: &'static str,
    /// Whether the connection is assured (in CONNTRACK) or still new (in CT_UNASSURED: a
    /// handshake in progress, no answer yet).
    pub assured: bool,
    /// The translated source (NAT gateway address and port), if translated.
    pub nat: Option<(Ipv4Addr, u16)>,
    pub age_secs: u64,
    pub idle_secs: u64,
    /// Seconds until the entry expires without traffic (0: expired, awaiting the sweep).
    pub expires_in_secs: u64,
}

/// Decodes a CONNTRACK (`A = u32`) or CONNTRACK6 entry at monotonic time `now`.
pub fn connection<A: MapAddr>(
    t: &CtTimeouts,
    key: &CtKey<A>,
    entry: &CtEntry,
    now: u64,
) -> Connection {
    let idle = now.saturating_sub(entry.last_seen_ns);
    let timeout = t.idle_ns(key.proto, entry.state, entry.nat_ip != 0);
    Connection {
        protocol: proto_name(key.proto),
        src: key.src.ip(),
        sport: key.sport,
        dst: key.dst.ip(),
        dport: key.dport,
        state: state_name(entry.state),
        assured: true,
        nat: (entry.nat_ip != 0).then(|| (addr(entry.nat_ip), entry.nat_port)),
        age_secs: now.saturating_sub(entry.created_ns) / 1_000_000_000,
        idle_secs: idle / 1_000_000_000,
        expires_in_secs: timeout.saturating_sub(idle).div_ceil(1_000_000_000),
    }
}

/// One NAT_PORTS entry: a translation, seen from the outside.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Translation {
    pub protocol: String,
    pub nat_ip: Ipv4Addr,
    pub nat_port: u16,
    pub remote_ip: Ipv4Addr,
    pub remote_port: u16,
    pub inside_ip: Ipv4Addr,
    pub inside_port: u16,
    pub nat_gateway_id: u32,
    pub vpc_id: u32,
}

pub fn translation(key: &NatKey, value: &NatValue) -> Translation {
    Translation {
        protocol: proto_name(key.proto),
        nat_ip: addr(key.nat_ip),
        nat_port: key.nat_port,
        remote_ip: addr(key.remote_ip),
        remote_port: key.remote_port,
        inside_ip: addr(value.inside_ip),
        inside_port: value.inside_port,
        nat_gateway_id: value.nat_gateway,
        vpc_id: value.vpc_id,
    }
}

/// One ROUTES (or ROUTES6) entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Route {
    /// The generation slot (0 or 1) and the route table id within it.
    pub slot: u32,
    pub table: u32,
    pub active: bool,
    pub destination: String,
    pub target: &'static str,
    pub target_id: u32,
}

pub fn route<A: MapAddr>(
    prefix_len: u32,
    key: &RouteKey<A>,
    value: &RouteValue,
    active_slot: u32,
) -> Route {
    // The prefix covers the table id first (ROUTE_TABLE_BITS), then the address.
    let bits = prefix_len.saturating_sub(vpc_common::route::ROUTE_TABLE_BITS);
    let slot = key.table >> SLOT_SHIFT;
    Route {
        slot,
        table: key.table & ((1 << SLOT_SHIFT) - 1),
        active: slot == active_slot,
        destination: format!("{}/{bits}", key.addr.ip()),
        target: target_name(value.target),
        target_id: value.target_id,
    }
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> StatusError {
    move |source| StatusError::Map { name, source }
}

fn require(dir: &Path, name: &'static str) -> Result<(), StatusError> {
    if pin::map_path(dir, name).exists() {
        Ok(())
    } else {
        Err(StatusError::NotPinned(dir.to_owned()))
    }
}

/// The entries of one pinned connection table (`K`: `CtKey` or `CtKey6`), sorted, unless
/// it is not pinned (an IPv6 table of an older layout).
fn connections<A>(
    dir: &Path,
    name: &'static str,
    assured: bool,
    t: &CtTimeouts,
    now: u64,
) -> Result<Vec<Connection>, StatusError>
where
    A: MapAddr,
    CtKey<A>: Pod + Ord,
{
    if !pin::map_path(dir, name).exists() {
        return Ok(Vec::new());
    }
    let map = pin::open_map(dir, name)?;
    let ct: HashMap<&MapData, CtKey<A>, CtEntry> =
        HashMap::try_from(&map).map_err(map_err(name))?;
    let mut out: Vec<(CtKey<A>, Connection)> = ct
        .iter()
        .filter_map(Result::ok)
        .map(|(k, e)| {
            (
                k,
                Connection {
                    assured,
                    ..connection(t, &k, &e, now)
                },
            )
        })
        .collect();
    out.sort_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// The pinned connections: assured and new (a flood of half-open ones included: they live
/// apart until assured), IPv4 then IPv6.
pub fn conntrack(dir: &Path) -> Result<Vec<Connection>, StatusError> {
    require(dir, names::CONNTRACK)?;
    let timeouts_map = pin::open_map(dir, names::CT_TIMEOUTS)?;
    let timeouts: Array<&MapData, CtTimeouts> =
        Array::try_from(&timeouts_map).map_err(map_err(names::CT_TIMEOUTS))?;
    let t = timeouts.get(&0, 0).map_err(map_err(names::CT_TIMEOUTS))?;
    let now = monotonic_ns();
    let mut out = connections::<u32>(dir, names::CONNTRACK, true, &t, now)?;
    out.extend(connections::<u32>(
        dir,
        names::CT_UNASSURED,
        false,
        &t,
        now,
    )?);
    out.extend(connections::<Addr6>(dir, names::CONNTRACK6, true, &t, now)?);
    out.extend(connections::<Addr6>(
        dir,
        names::CT_UNASSURED6,
        false,
        &t,
        now,
    )?);
    Ok(out)
}

/// The pinned NAT_PORTS entries, sorted.
pub fn nat(dir: &Path) -> Result<Vec<Translation>, StatusError> {
    require(dir, names::NAT_PORTS)?;
    let map = pin::open_map(dir, names::NAT_PORTS)?;
    let nat: HashMap<&MapData, NatKey, NatValue> =
        HashMap::try_from(&map).map_err(map_err(names::NAT_PORTS))?;
    let mut out: Vec<(NatKey, Translation)> = nat
        .iter()
        .filter_map(Result::ok)
        .map(|(k, v)| (k, translation(&k, &v)))
        .collect();
    out.sort_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// The pinned ROUTES entries (both slots), sorted by slot, table, destination.
pub fn routes(dir: &Path) -> Result<Vec<Route>, StatusError> {
    require(dir, names::ROUTES)?;
    let config_map = pin::open_map(dir, names::CONFIG)?;
    let config: Array<&MapData, vpc_common::iface::GlobalConfig> =
        Array::try_from(&config_map).map_err(map_err(names::CONFIG))?;
    let active = config
        .get(&0, 0)
        .map_err(map_err(names::CONFIG))?
        .active_slot;
    let mut out = route_table::<u32>(dir, names::ROUTES, active)?;
    out.extend(route_table::<Addr6>(dir, names::ROUTES6, active)?);
    Ok(out)
}

/// The entries of one pinned route trie (`ROUTES` or `ROUTES6`; none if not pinned), sorted
/// by slot, table, destination.
fn route_table<A>(dir: &Path, name: &'static str, active: u32) -> Result<Vec<Route>, StatusError>
where
    A: MapAddr,
    RouteKey<A>: Pod,
{
    if !pin::map_path(dir, name).exists() {
        return Ok(Vec::new());
    }
    let map = pin::open_map(dir, name)?;
    let trie: LpmTrie<&MapData, RouteKey<A>, RouteValue> =
        LpmTrie::try_from(&map).map_err(map_err(name))?;
    let mut out: Vec<((u32, IpAddr, u32), Route)> = trie
        .iter()
        .filter_map(Result::ok)
        .map(|(k, v)| {
            let data = k.data();
            let sort = (data.table, data.addr.ip(), k.prefix_len());
            (sort, route(k.prefix_len(), &data, &v, active))
        })
        .collect();
    out.sort_by_key(|(k, _)| *k);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Column text, one line per row under a header.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn render_conntrack(rows: &[Connection]) -> String {
    table(
        &[
            "PROTO",
            "SOURCE",
            "DESTINATION",
            "STATE",
            "NAT",
            "AGE",
            "IDLE",
            "EXPIRES",
        ],
        rows.iter()
            .map(|c| {
                vec![
                    c.protocol.clone(),
                    endpoint(c.src, c.sport),
                    endpoint(c.dst, c.dport),
                    if c.assured {
                        c.state.to_owned()
                    } else {
                        format!("{} (unassured)", c.state)
                    },
                    c.nat
                        .map_or("-".into(), |(ip, port)| format!("{ip}:{port}")),
                    format!("{}s", c.age_secs),
                    format!("{}s", c.idle_secs),
                    format!("{}s", c.expires_in_secs),
                ]
            })
            .collect(),
    )
}

pub fn render_nat(rows: &[Translation]) -> String {
    table(
        &[
            "PROTO",
            "INSIDE",
            "TRANSLATED",
            "REMOTE",
            "NAT_GATEWAY",
            "VPC",
        ],
        rows.iter()
            .map(|t| {
                vec![
                    t.protocol.clone(),
                    format!("{}:{}", t.inside_ip, t.inside_port),
                    format!("{}:{}", t.nat_ip, t.nat_port),
                    format!("{}:{}", t.remote_ip, t.remote_port),
                    t.nat_gateway_id.to_string(),
                    t.vpc_id.to_string(),
                ]
            })
            .collect(),
    )
}

pub fn render_routes(rows: &[Route]) -> String {
    table(
        &["SLOT", "TABLE", "DESTINATION", "TARGET", "TARGET_ID"],
        rows.iter()
            .map(|r| {
                vec![
                    format!("{}{}", r.slot, if r.active { " (active)" } else { "" }),
                    r.table.to_string(),
                    r.destination.clone(),
                    r.target.to_owned(),
                    r.target_id.to_string(),
                ]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_common::{conntrack::DEFAULT_TIMEOUTS, ip_raw};

    #[test]
    fn a_translated_tcp_connection_decodes_with_its_expiry() {
        let key = CtKey {
            src: ip_raw([10, 30, 2, 10]),
            dst: ip_raw([203, 0, 113, 5]),
            sport: 40000,
            dport: 443,
            proto: PROTO_TCP,
            _pad: [0; 3],
        };
        let entry = CtEntry {
            created_ns: 100_000_000_000,
            last_seen_ns: 190_000_000_000,
            state: CT_TCP_ESTABLISHED,
            nat_ip: ip_raw([10, 30, 1, 5]),
            nat_port: 1024,
            ..CtEntry::default()
        };
        let c = connection(&DEFAULT_TIMEOUTS, &key, &entry, 200_000_000_000);
        assert_eq!(c.protocol, "tcp");
        assert_eq!(c.src, Ipv4Addr::new(10, 30, 2, 10));
        assert_eq!(c.dst, Ipv4Addr::new(203, 0, 113, 5));
        assert_eq!(c.state, "ESTABLISHED");
        assert_eq!(c.nat, Some((Ipv4Addr::new(10, 30, 1, 5), 1024)));
        assert_eq!((c.age_secs, c.idle_secs), (100, 10));
        // Translated: the NAT timeout (350 s) applies, 10 s of it used.
        assert_eq!(c.expires_in_secs, 340);
        let text = render_conntrack(&[c]);
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.split_whitespace().eq([
                    "tcp",
                    "10.30.2.10:40000",
                    "203.0.113.5:443",
                    "ESTABLISHED",
                    "10.30.1.5:1024",
                    "100s",
                    "10s",
                    "340s"
                ])),
            "{text}"
        );
    }

    #[test]
    fn routes_decode_prefix_slot_and_target() {
        let key = RouteKey {
            table: (1 << SLOT_SHIFT) | 3,
            addr: ip_raw([10, 30, 0, 0]),
        };
        let value = RouteValue {
            target: TARGET_NAT_GATEWAY,
            _pad: [0; 3],
            target_id: 7,
        };
        let r = route(32 + 16, &key, &value, 1);
        assert_eq!(
            r,
            Route {
                slot: 1,
                table: 3,
                active: true,
                destination: "10.30.0.0/16".into(),
                target: "nat_gateway",
                target_id: 7,
            }
        );
    }

    #[test]
    fn translations_decode_both_sides() {
        let key = NatKey {
            nat_ip: ip_raw([10, 30, 1, 5]),
            remote_ip: ip_raw([203, 0, 113, 5]),
            nat_port: 1025,
            remote_port: 53,
            proto: PROTO_UDP,
            _pad: [0; 3],
        };
        let value = NatValue {
            inside_ip: ip_raw([10, 30, 2, 10]),
            inside_port: 5353,
            _pad: 0,
            nat_gateway: 2,
            vpc_id: 1,
        };
        let t = translation(&key, &value);
        assert_eq!(
            render_nat(&[t])
                .lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec![
                "udp",
                "10.30.2.10:5353",
                "10.30.1.5:1025",
                "203.0.113.5:53",
                "2",
                "1"
            ])
        );
    }

    #[test]
    fn ipv6_connections_and_routes_print_ipv6_addresses() {
        let a: Ipv6Addr = "2001:db8:1234:1a00::10".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1234:1a01::10".parse().unwrap();
        let key = vpc_common::conntrack::CtKey6::new(a.octets(), b.octets(), 7, 7, PROTO_ICMPV6);
        let entry = CtEntry {
            created_ns: 100_000_000_000,
            last_seen_ns: 100_000_000_000,
            state: vpc_common::conntrack::CT_ONE_WAY,
            ..CtEntry::default()
        };
        let c = connection(&DEFAULT_TIMEOUTS, &key, &entry, 101_000_000_000);
        assert_eq!((c.src, c.dst, c.nat), (IpAddr::V6(a), IpAddr::V6(b), None));
        let text = render_conntrack(&[c]);
        let row: Vec<&str> = text
            .lines()
            .nth(1)
            .expect("row")
            .split_whitespace()
            .collect();
        assert_eq!(
            row[..4],
            [
                "icmpv6",
                "[2001:db8:1234:1a00::10]:7",
                "[2001:db8:1234:1a01::10]:7",
                "ONE_WAY"
            ]
        );
        let key = RouteKey {
            table: 2,
            addr: [0; 16],
        };
        let value = RouteValue {
            target: TARGET_EGRESS_ONLY_GATEWAY,
            _pad: [0; 3],
            target_id: 4,
        };
        let r = route(32, &key, &value, 0);
        assert_eq!(
            (r.destination.as_str(), r.target, r.table, r.active),
            ("::/0", "egress_only_gateway", 2, true)
        );
    }
}
