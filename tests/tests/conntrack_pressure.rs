//! Half-open connections never evict established ones: new connections live in
//! `CT_UNASSURED` until assured (handshake completed, UDP/ICMP answered) and only then move to
//! `CONNTRACK`, so a flood of SYNs from random sources evicts only its own kind.
//!
//! - BPF_PROG_TEST_RUN: three established connections (internet gateway, NAT gateway, inside
//!   the VPC), then more SYNs from distinct sources than `CONNTRACK` holds; every established
//!   connection is still tracked and passes, the flood's entries are all in `CT_UNASSURED`.
//! - Namespaces: a bounded `hping3 --flood --rand-source` SYN flood (5 s) at a public IP while
//!   three long-lived TCP sessions exchange a line every 100 ms; none loses a line.

use std::{
    net::Ipv4Addr,
    process::{Command, Stdio},
    time::Duration,
};

use aya::maps::HashMap;
use vpc_agent::datapath::AttachMode;
use vpc_common::{
    conntrack::{CONNTRACK_ENTRIES, CT_TCP_ESTABLISHED, CtEntry, CtKey},
    ip_raw,
};
use vpc_tests::{
    observe::{Seen, ports, run},
    packet::{Packet, TCP_ACK, TCP_PSH, TCP_SYN},
    require_kernel,
    testrun::{Verdict, run_xdp},
    topology::{INTERNET_CLIENT_IP, Topology},
    traffic::Server,
};

const FIXTURE: &str = include_str!("../fixtures/instance-ports.yaml");
const WEB: &str = "10.0.0.10";
const WEB_PUBLIC: &str = "198.51.100.20";
const ELASTIC: &str = "198.51.100.10";
const APP: &str = "10.0.1.20";
const DB1: &str = "10.0.1.10";
const INET: &str = INTERNET_CLIENT_IP;

fn key(src: &str, dst: &str, sport: u16, dport: u16) -> CtKey {
    let ip = |s: &str| ip_raw(s.parse::<Ipv4Addr>().unwrap().octets());
    CtKey {
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        proto: 6,
        _pad: [0; 3],
    }
}

fn entries(topo: &mut Topology, map: &str) -> Vec<(CtKey, CtEntry)> {
    let map = topo.datapath.ebpf_mut().map_mut(map).unwrap();
    let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(map).unwrap();
    ct.iter().filter_map(Result::ok).collect()
}

fn forwarded(topo: &Topology, ingress: &str, p: &Packet) -> Vec<u8> {
    let (seen, out) = run(topo, ingress, p);
    assert!(
        matches!(seen, Seen::Forwarded { .. }),
        "{ingress} {p:?}: {seen:?}"
    );
    out
}

#[test]
fn test_run_a_syn_flood_evicts_no_established_connection() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    let tcp = Packet::tcp;
    // Through the internet gateway: internet -> web:443.
    forwarded(&topo, "up0", &tcp(INET, WEB_PUBLIC, 50000, 443, TCP_SYN));
    forwarded(
        &topo,
        "eweb1",
        &tcp(WEB, INET, 443, 50000, TCP_SYN | TCP_ACK).seq_ack(7000, 1009),
    );
    forwarded(
        &topo,
        "up0",
        &tcp(INET, WEB_PUBLIC, 50000, 443, TCP_ACK).seq_ack(1009, 7009),
    );
    // Through the NAT gateway: app -> internet:80.
    let out = forwarded(&topo, "eapp1", &tcp(APP, INET, 40000, 80, TCP_SYN));
    let nat_port = ports(&out).0;
    forwarded(
        &topo,
        "up0",
        &tcp(INET, ELASTIC, 80, nat_port, TCP_SYN | TCP_ACK).seq_ack(9000, 1009),
    );
    forwarded(
        &topo,
        "eapp1",
        &tcp(APP, INET, 40000, 80, TCP_ACK).seq_ack(1009, 9009),
    );
    // Inside the VPC: app -> db-1:5432.
    forwarded(&topo, "eapp1", &tcp(APP, DB1, 40001, 5432, TCP_SYN));
    forwarded(
        &topo,
        "edb1",
        &tcp(DB1, APP, 5432, 40001, TCP_SYN | TCP_ACK).seq_ack(3000, 1009),
    );
    forwarded(
        &topo,
        "eapp1",
        &tcp(APP, DB1, 40001, 5432, TCP_ACK).seq_ack(1009, 3009),
    );
    let established = [
        key(INET, WEB, 50000, 443),
        key(APP, INET, 40000, 80),
        key(APP, DB1, 40001, 5432),
    ];
    let assured = entries(&mut topo, "CONNTRACK");
    for k in &established {
        let e = assured
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, e)| e.state);
        assert_eq!(e, Some(CT_TCP_ESTABLISHED), "assured: {k:?}");
    }

    // The flood: more distinct SYNs than CONNTRACK holds, from internet sources to web:443.
    let flood = CONNTRACK_ENTRIES + 10_000;
    let up0 = topo.port_named("up0").ifindex;
    let template = tcp("100.64.0.0", WEB_PUBLIC, 1, 443, TCP_SYN);
    let mut redirected = 0u32;
    {
        let _inside = topo.router.enter().unwrap();
        for i in 0..flood {
            let mut p = template.clone();
            // 100.64.0.0/10 and beyond: no VPC, router or martian address.
            p.src = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + (i >> 4));
            let p = Packet {
                l4: vpc_tests::packet::L4::Tcp {
                    sport: 1024 + (i & 15) as u16,
                    dport: 443,
                    flags: TCP_SYN,
                },
                ..p
            };
            let out = run_xdp(topo.datapath.xdp(), &topo.frame("up0", &p), Some(up0)).unwrap();
            redirected += u32::from(out.verdict == Verdict::Redirect);
        }
    }
    assert_eq!(
        redirected, flood,
        "every SYN of the flood is allowed by web's group"
    );
    let assured = entries(&mut topo, "CONNTRACK");
    assert_eq!(
        assured.len(),
        3,
        "CONNTRACK holds the established connections only"
    );
    let unassured = entries(&mut topo, "CT_UNASSURED");
    assert!(
        unassured.len() > 60_000,
        "the flood fills CT_UNASSURED: {}",
        unassured.len()
    );
    for k in &established {
        assert!(
            assured.iter().any(|(key, _)| key == k),
            "survived the flood: {k:?}"
        );
    }
    // And they still carry data both ways.
    forwarded(
        &topo,
        "up0",
        &tcp(INET, WEB_PUBLIC, 50000, 443, TCP_ACK | TCP_PSH).seq_ack(1009, 7009),
    );
    forwarded(
        &topo,
        "eweb1",
        &tcp(WEB, INET, 443, 50000, TCP_ACK | TCP_PSH).seq_ack(7009, 1017),
    );
    forwarded(
        &topo,
        "up0",
        &tcp(INET, ELASTIC, 80, nat_port, TCP_ACK | TCP_PSH).seq_ack(9009, 1009),
    );
    forwarded(
        &topo,
        "edb1",
        &tcp(DB1, APP, 5432, 40001, TCP_ACK | TCP_PSH).seq_ack(3009, 1009),
    );
}

/// A client that sends `lines` lines 100 ms apart over TCP from `src` in `ns` to an echo
/// server at `dst:port` and prints what came back.
fn session(
    ns: &vpc_tests::netns::NetNs,
    src: &str,
    dst: &str,
    port: u16,
    lines: u32,
) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns.name(), "sh", "-c"])
        .arg(format!(
            "for i in $(seq {lines}); do echo line$i; sleep 0.1; done | timeout 30 socat -t 2 - TCP:{dst}:{port},bind={src}"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("session")
}

#[test]
fn a_syn_flood_at_a_public_ip_leaves_established_sessions_alive() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    let host = |ifname: &str| &topo.port_named(ifname).ns;
    let inet = &topo.port_named("up0").ns;
    let echo = |ns, ip: &str, port: u16| {
        Server::spawn_raw(
            ns,
            &format!("TCP-LISTEN:{port},bind={ip},reuseaddr,fork"),
            "PIPE",
            &["-ltnH", "sport", "=", &format!(":{port}")],
        )
        .unwrap()
    };
    let _servers = [
        echo(host("eweb1"), WEB, 443),
        echo(inet, INET, 8080),
        echo(host("edb1"), DB1, 5432),
    ];
    let lines = 80;
    let sessions = [
        (
            "internet gateway",
            session(inet, INET, WEB_PUBLIC, 443, lines),
        ),
        (
            "NAT gateway",
            session(host("eapp1"), APP, INET, 8080, lines),
        ),
        (
            "inside the VPC",
            session(host("eapp1"), APP, DB1, 5432, lines),
        ),
    ];
    std::thread::sleep(Duration::from_millis(1500));
    let flood = Command::new("ip")
        .args([
            "netns",
            "exec",
            inet.name(),
            "timeout",
            "5",
            "hping3",
            "--flood",
            "--rand-source",
            "-S",
            "-p",
            "443",
            "-q",
            WEB_PUBLIC,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("hping3");
    assert!(
        !flood.success() || flood.code() == Some(124) || flood.code() == Some(0),
        "{flood:?}"
    );
    for (what, child) in sessions {
        let out = child.wait_with_output().unwrap();
        let echoed = String::from_utf8_lossy(&out.stdout).lines().count() as u32;
        assert_eq!(echoed, lines, "{what}: every line echoed across the flood");
    }
    let status = vpc_tests::topology::conntrack_counts(&topo);
    eprintln!("after the flood: {status:?}");
    assert!(
        status.1 > 10_000,
        "the flood was real: {status:?} unassured entries"
    );
}
