//! Datapath III: the NAT gateway (source translation with port allocation, replies, ICMP echo,
//! collisions, exhaustion, the NAT subnet's ACLs) and the internet gateway's 1:1 translation,
//! with BPF_PROG_TEST_RUN (output bytes and checksums, map state) and real traffic.

use std::net::Ipv4Addr;

use aya::maps::HashMap;
use vpc_agent::datapath::AttachMode;
use vpc_common::{
    DropReason,
    nat::{NatKey, NatValue},
};
use vpc_tests::{
    cases::fwd,
    observe::{Seen, ports, run},
    packet::{L4, Packet, TCP_ACK, TCP_SYN, verify_checksums},
    require_kernel,
    topology::{INTERNET_CLIENT_IP, Topology, mac},
};

const FIXTURE: &str = include_str!("../fixtures/nat.yaml");
const ELASTIC: &str = "198.51.100.10";
const JUMPBOX: &str = "10.0.1.10";
const DB: &str = "10.0.1.20";
const INET: &str = INTERNET_CLIENT_IP;

fn nat_entries(topo: &mut Topology) -> Vec<(NatKey, NatValue)> {
    let map = topo
        .datapath
        .ebpf_mut()
        .map_mut("NAT_PORTS")
        .expect("NAT_PORTS");
    let map: HashMap<_, NatKey, NatValue> = HashMap::try_from(map).expect("hash");
    map.iter().map(|r| r.expect("entry")).collect()
}

fn echo_reply(src: &str, dst: &str, id: u16) -> Packet {
    Packet {
        l4: L4::Icmp {
            ty: 0,
            code: 0,
            id,
            seq: 1,
        },
        ..Packet::icmp_echo(src, dst, id, 1)
    }
}

#[test]
fn nat_gateway_translates_both_ways() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");

    // Out: the source becomes the elastic IP, the port is kept when free.
    let syn = Packet::tcp(JUMPBOX, INET, 40000, 80, TCP_SYN);
    let (seen, out) = run(&topo, "priv0", &syn);
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    assert_eq!(ports(&out), (40000, 80), "inside port kept");
    let up = topo.port_named("up0");
    let mut expected = syn
        .clone()
        .macs(mac(up.index, false), mac(up.index, true))
        .ttl(63);
    expected.src = ELASTIC.parse().unwrap();
    assert_eq!(out, expected.build(), "output bytes");
    verify_checksums(&out).expect("checksums");

    let entries = nat_entries(&mut topo);
    assert_eq!(entries.len(), 1, "one translation: {entries:?}");
    let (k, v) = entries[0];
    assert_eq!((k.nat_port, k.remote_port, k.proto), (40000, 80, 6));
    assert_eq!(
        Ipv4Addr::from(v.inside_ip.to_ne_bytes()),
        JUMPBOX.parse::<Ipv4Addr>().unwrap()
    );

    // Back: the reply finds the jumpbox.
    let reply = Packet::tcp(INET, ELASTIC, 80, 40000, TCP_SYN | TCP_ACK);
    let (seen, out) = run(&topo, "up0", &reply);
    assert_eq!(seen, fwd("priv0", INET, JUMPBOX));
    assert_eq!(ports(&out), (80, 40000));
    verify_checksums(&out).expect("checksums");
    let (seen, _) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 40000, 80, TCP_ACK),
    );
    assert_eq!(seen, fwd("up0", ELASTIC, INET), "established");

    // Another inside host with the same port to the same destination: a different port.
    let (seen, out) = run(&topo, "priv0", &Packet::tcp(DB, INET, 40000, 80, TCP_SYN));
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    let db_port = ports(&out).0;
    assert_ne!(db_port, 40000, "collision resolved");
    assert!(db_port >= 1024, "port from the range: {db_port}");
    let (seen, _) = run(
        &topo,
        "up0",
        &Packet::tcp(INET, ELASTIC, 80, db_port, TCP_SYN | TCP_ACK),
    );
    assert_eq!(seen, fwd("priv0", INET, DB), "db's reply reaches db");

    // UDP keeps its port; ICMP echo gets an identifier from the range and gets it back.
    let (seen, out) = run(&topo, "priv0", &Packet::udp(JUMPBOX, INET, 5353, 53));
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    assert_eq!(ports(&out), (5353, 53));
    verify_checksums(&out).expect("udp checksum");
    let (seen, out) = run(&topo, "priv0", &Packet::icmp_echo(JUMPBOX, INET, 7, 1));
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    let id = ports(&out).0;
    assert!(
        id >= 1024,
        "identifier 7 is outside the range, so translated: {id}"
    );
    verify_checksums(&out).expect("icmp checksum");
    let (seen, out) = run(&topo, "up0", &echo_reply(INET, ELASTIC, id));
    assert_eq!(seen, fwd("priv0", INET, JUMPBOX));
    assert_eq!(ports(&out).0, 7, "identifier restored");
    verify_checksums(&out).expect("icmp checksum");
}

#[test]
fn nat_gateway_drops_what_it_must() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    use DropReason::*;
    let cases = [
        (
            "unsolicited to the elastic IP",
            "up0",
            Packet::tcp(INET, ELASTIC, 5555, 22, TCP_SYN),
            NatUnsolicited,
        ),
        (
            "to the private address from the internet",
            "up0",
            Packet::tcp(INET, JUMPBOX, 5555, 22, TCP_SYN),
            UplinkUnsolicited,
        ),
        (
            "SMTP out: the NAT subnet's ACL denies it in",
            "priv0",
            Packet::tcp(JUMPBOX, INET, 40001, 25, TCP_SYN),
            AclInbound,
        ),
        (
            "NTP out: the NAT subnet's ACL denies it out",
            "priv0",
            Packet::udp(JUMPBOX, INET, 40001, 123),
            AclOutbound,
        ),
    ];
    for (what, ingress, packet, reason) in cases {
        assert_eq!(
            run(&topo, ingress, &packet).0,
            Seen::Dropped(reason),
            "{what}"
        );
    }
    // A reply to a translated port, but from another remote port: unsolicited too.
    let (seen, _) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 40000, 80, TCP_SYN),
    );
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    let (seen, _) = run(
        &topo,
        "up0",
        &Packet::tcp(INET, ELASTIC, 81, 40000, TCP_SYN | TCP_ACK),
    );
    assert_eq!(seen, Seen::Dropped(NatUnsolicited));
}

#[test]
fn nat_port_exhaustion_drops_new_connections_per_destination() {
    require_kernel!();
    let yaml = format!("{FIXTURE}connection_tracking:\n  nat_port_range: 2000-2001\n");
    let topo = Topology::build(&yaml, None, true).expect("topology");
    for sport in [3000, 3001] {
        let (seen, out) = run(
            &topo,
            "priv0",
            &Packet::tcp(JUMPBOX, INET, sport, 80, TCP_SYN),
        );
        assert_eq!(seen, fwd("up0", ELASTIC, INET));
        assert!((2000..=2001).contains(&ports(&out).0));
    }
    let (seen, _) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 3002, 80, TCP_SYN),
    );
    assert_eq!(
        seen,
        Seen::Dropped(DropReason::NatPortExhausted),
        "third connection to one destination"
    );
    let (seen, _) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 3002, 443, TCP_SYN),
    );
    assert_eq!(
        seen,
        fwd("up0", ELASTIC, INET),
        "another destination port has its own range"
    );
}

#[test]
fn traffic_through_the_nat_gateway_and_the_internet_gateway() {
    require_kernel!();
    use vpc_tests::traffic::{Server, ping, retry, tcp_request, udp_request};
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    let internet = &topo.port_named("up0").ns;
    let public = &topo.port_named("pub0").ns;
    let private = &topo.port_named("priv0").ns;

    // The jumpbox fetches from the internet, which sees the elastic IP.
    let http = Server::tcp(internet, INET, 80).unwrap();
    assert_eq!(
        retry(|| tcp_request(private, JUMPBOX, INET, 80)).as_deref(),
        Some("peer=198.51.100.10")
    );
    assert_eq!(
        retry(|| tcp_request(private, DB, INET, 80)).as_deref(),
        Some("peer=198.51.100.10"),
        "db too"
    );
    drop(http);
    let dns = Server::udp(internet, INET, 53).unwrap();
    assert_eq!(
        retry(|| udp_request(private, JUMPBOX, INET, 53)).as_deref(),
        Some("peer=198.51.100.10")
    );
    drop(dns);
    assert_eq!(
        ping(private, JUMPBOX, INET, 3).unwrap(),
        3,
        "ping through the NAT gateway"
    );

    // Nothing on the internet reaches the jumpbox, directly or through the elastic IP.
    let ssh = Server::tcp(private, JUMPBOX, 22).unwrap();
    assert_eq!(tcp_request(internet, INET, JUMPBOX, 22).unwrap(), None);
    assert_eq!(tcp_request(internet, INET, ELASTIC, 22).unwrap(), None);
    drop(ssh);

    // The public instance is reached on its public IP and calls out with it.
    let web = Server::tcp(public, "10.0.0.10", 80).unwrap();
    assert_eq!(
        retry(|| tcp_request(internet, INET, "198.51.100.20", 80)).as_deref(),
        Some(format!("peer={INET}").as_str())
    );
    drop(web);
    let http = Server::tcp(internet, INET, 8080).unwrap();
    assert_eq!(
        retry(|| tcp_request(public, "10.0.0.10", INET, 8080)).as_deref(),
        Some("peer=198.51.100.20")
    );
    drop(http);
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops.get(&DropReason::NatUnsolicited).copied().unwrap_or(0) > 0,
        "{drops:?}"
    );
}

/// Checks the quoted packet of an ICMP error frame: its IP and L4 checksums are valid and it
/// shows `src:sport`.
fn check_quoted(frame: &[u8], src: &str, sport: u16) {
    let quoted = &frame[14 + 20 + 8..];
    let mut as_frame = vec![0u8; 14];
    as_frame.extend_from_slice(quoted);
    verify_checksums(&as_frame).expect("quoted packet checksums");
    assert_eq!(
        Ipv4Addr::new(quoted[12], quoted[13], quoted[14], quoted[15]),
        src.parse::<Ipv4Addr>().unwrap()
    );
    let l4 = usize::from(quoted[0] & 0x0f) * 4;
    let port = if quoted[9] == 1 { l4 + 4 } else { l4 };
    assert_eq!(u16::from_be_bytes([quoted[port], quoted[port + 1]]), sport);
}

#[test]
fn icmp_errors_about_translated_flows_are_translated_back() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let hop = vpc_tests::topology::INTERNET_IP;

    // A TCP connection through the NAT gateway, then "fragmentation needed" about it.
    let (seen, out) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 40000, 80, TCP_SYN),
    );
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    let sent = Packet::tcp(ELASTIC, INET, ports(&out).0, 80, TCP_SYN).ttl(63);
    let error = Packet::icmp_error(hop, ELASTIC, 3, 4, &sent);
    let (seen, out) = run(&topo, "up0", &error);
    assert_eq!(seen, fwd("priv0", hop, JUMPBOX), "to the jumpbox");
    verify_checksums(&out).expect("outer checksums");
    check_quoted(&out, JUMPBOX, 40000);

    // A ping through the NAT gateway, then "time exceeded" quoting the translated echo.
    let (_, out) = run(&topo, "priv0", &Packet::icmp_echo(JUMPBOX, INET, 7, 1));
    let sent = Packet::icmp_echo(ELASTIC, INET, ports(&out).0, 1).ttl(1);
    let (seen, out) = run(
        &topo,
        "up0",
        &Packet::icmp_error(hop, ELASTIC, 11, 0, &sent),
    );
    assert_eq!(seen, fwd("priv0", hop, JUMPBOX));
    verify_checksums(&out).expect("outer checksums");
    check_quoted(&out, JUMPBOX, 7);

    // UDP from the public instance through the internet gateway (1:1), "port unreachable".
    let (seen, _) = run(&topo, "pub0", &Packet::udp("10.0.0.10", INET, 5000, 33434));
    assert_eq!(seen, fwd("up0", "198.51.100.20", INET));
    let sent = Packet::udp("198.51.100.20", INET, 5000, 33434).ttl(63);
    let (seen, out) = run(
        &topo,
        "up0",
        &Packet::icmp_error(INET, "198.51.100.20", 3, 3, &sent),
    );
    assert_eq!(seen, fwd("pub0", INET, "10.0.0.10"));
    verify_checksums(&out).expect("outer checksums");
    check_quoted(&out, "10.0.0.10", 5000);

    // An error about nothing we sent is unsolicited.
    let never = Packet::tcp(ELASTIC, INET, 4444, 80, TCP_SYN);
    let (seen, _) = run(
        &topo,
        "up0",
        &Packet::icmp_error(hop, ELASTIC, 3, 4, &never),
    );
    assert_eq!(seen, Seen::Dropped(DropReason::NatUnsolicited));
}

/// A translation whose connection is gone from both connection tables (the LRU evicted it, or
/// its insert failed after the port was claimed) holds its port until the agent's sweep frees
/// it: found orphaned on two sweeps in a row. A live connection's translation stays, and the
/// freed port serves the next connection.
#[test]
fn the_sweep_frees_translations_whose_connection_is_gone() {
    use std::collections::BTreeSet;
    use vpc_common::conntrack::{CtEntry, CtKey};
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    for sport in [41000, 41001] {
        let (seen, out) = run(
            &topo,
            "priv0",
            &Packet::tcp(JUMPBOX, INET, sport, 80, TCP_SYN),
        );
        assert_eq!(seen, fwd("up0", ELASTIC, INET));
        assert_eq!(ports(&out), (sport, 80), "inside port kept");
    }
    let ebpf = topo.datapath.ebpf_mut();
    let conntrack = ebpf.take_map("CONNTRACK").unwrap();
    let mut unassured = ebpf.take_map("CT_UNASSURED").unwrap();
    let mut nat_ports = ebpf.take_map("NAT_PORTS").unwrap();
    let translations = |m: &aya::maps::Map| -> Vec<u16> {
        let m: HashMap<_, NatKey, NatValue> = HashMap::try_from(m).unwrap();
        let mut ports: Vec<u16> = m.iter().map(|r| r.unwrap().0.nat_port).collect();
        ports.sort();
        ports
    };
    assert_eq!(translations(&nat_ports), [41000, 41001]);
    // The first connection disappears without its translation (as an LRU eviction does).
    {
        let mut u: HashMap<_, CtKey, CtEntry> = HashMap::try_from(&mut unassured).unwrap();
        let key = vpc_tests::testrun::ct_key(JUMPBOX, INET, 41000, 80, 6);
        u.remove(&key)
            .expect("the half-open connection was tracked");
    }
    let mut seen = BTreeSet::new();
    let mut sweep = || {
        vpc_agent::daemon::sweep::release_orphans(&mut nat_ports, &conntrack, &unassured, &mut seen)
            .unwrap()
    };
    assert_eq!(sweep(), 0, "not freed on the first sighting");
    assert_eq!(sweep(), 1, "freed on the second");
    assert_eq!(sweep(), 0, "nothing else is an orphan");
    assert_eq!(
        translations(&nat_ports),
        [41001],
        "the live connection keeps its port"
    );
    // The port is free again: a new connection from the same inside port gets it.
    let (seen, out) = run(
        &topo,
        "priv0",
        &Packet::tcp(JUMPBOX, INET, 41000, 80, TCP_SYN),
    );
    assert_eq!(seen, fwd("up0", ELASTIC, INET));
    assert_eq!(ports(&out), (41000, 80), "the freed port is used again");
    assert_eq!(translations(&nat_ports), [41000, 41001]);
}
