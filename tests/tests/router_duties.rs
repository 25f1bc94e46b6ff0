//! The router's own duties: ICMP time exceeded (traceroute shows the hop) and fragmentation
//! needed (path MTU discovery), from the router's address on the ingress side, rate-limited.
//!
//! - BPF_PROG_TEST_RUN, XDP and TC: the exact error bytes (addresses, quoted header, MTU,
//!   checksums), no error about an ICMP error, the per-CPU rate limit.
//! - Namespaces, hosts at Linux defaults: `ping -t 1` shows the router; with a 1400-byte
//!   uplink a 2 MB upload completes from a private instance through the NAT gateway and from
//!   a public instance through the internet gateway (PMTUD, no MSS clamping).

use std::net::Ipv4Addr;

use aya::maps::PerCpuArray;
use vpc_agent::datapath::AttachMode;
use vpc_common::{
    DropReason, Hook,
    drop::DropStats,
    icmp::{ICMP_BURST, ICMP_STAT_RATE_LIMITED, ICMP_STAT_TIME_EXCEEDED},
};
use vpc_tests::{
    packet::{Packet, TCP_SYN, verify_checksums},
    require_kernel,
    testrun::{TcVerdict, Verdict, run_tc, run_xdp},
    topology::{INTERNET_CLIENT_IP, Topology, mac},
    traffic::Server,
};

const FIXTURE: &str = include_str!("../fixtures/instance-ports.yaml");
const WEB: &str = "10.0.0.10";
const APP: &str = "10.0.1.20";
const WEB_PUBLIC: &str = "198.51.100.20";
const INET: &str = INTERNET_CLIENT_IP;

/// The error the router must send about `frame` (as received on the port with router MAC
/// index `port`) from `router`: type, code, MTU.
fn expected_error(frame: &[u8], router: &str, ty: u8, code: u8, mtu: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(70);
    out.extend_from_slice(&frame[6..12]);
    out.extend_from_slice(&frame[0..6]);
    out.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&router.parse::<Ipv4Addr>().unwrap().octets());
    ip.extend_from_slice(&frame[26..30]);
    let c = vpc_tests::packet::checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    let mut icmp = vec![ty, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&frame[14..42]);
    let c = vpc_tests::packet::checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&icmp);
    out
}

fn icmp_stat(topo: &Topology, slot: u32) -> u64 {
    let map = topo.datapath.ebpf().map("ICMP_STATS").expect("ICMP_STATS");
    let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).unwrap();
    stats.get(&slot, 0).unwrap().iter().sum()
}

#[test]
fn test_run_time_exceeded_and_fragmentation_needed() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let xdp = |ingress: &str, frame: &[u8]| {
        let port = topo.port_named(ingress);
        let _inside = topo.router.enter().unwrap();
        run_xdp(topo.datapath.xdp(), frame, Some(port.ifindex)).unwrap()
    };
    let tc = |ingress: &str, frame: &[u8]| {
        let port = topo.port_named(ingress);
        let prog = topo
            .datapath
            .tc(vpc_agent::datapath::object::programs::TC_INGRESS);
        let _inside = topo.router.enter().unwrap();
        run_tc(prog, frame, port.ifindex).unwrap()
    };
    let eweb = topo.port_named("eweb1").index;
    let up = topo.port_named("up0").index;
    // TTL 1 from an instance towards the internet: time exceeded from the subnet's router.
    let frame = Packet::udp(WEB, INET, 33434, 33434)
        .ttl(1)
        .macs(mac(eweb, true), mac(eweb, false))
        .build();
    let want = expected_error(&frame, "10.0.0.1", 11, 0, 0);
    let out = xdp("eweb1", &frame);
    assert_eq!(
        out.verdict,
        Verdict::Tx,
        "XDP sends the error back out of the port"
    );
    assert_eq!(out.output, want, "XDP: exact time-exceeded bytes");
    verify_checksums(&out.output).unwrap();
    let out = tc("eweb1", &frame);
    assert_eq!(out.verdict, TcVerdict::Redirect);
    assert_eq!(out.output, want, "TC: exact time-exceeded bytes");
    // From the internet to a public IP: from the router's uplink address.
    let frame = Packet::tcp(INET, WEB_PUBLIC, 50000, 443, TCP_SYN)
        .ttl(1)
        .macs(mac(up, true), mac(up, false))
        .build();
    let out = xdp("up0", &frame);
    assert_eq!(out.verdict, Verdict::Tx);
    assert_eq!(out.output, expected_error(&frame, "192.0.2.1", 11, 0, 0));
    // Never about an ICMP error.
    let about = Packet::udp(INET, WEB, 1, 2);
    let error = topo.frame("eweb1", &Packet::icmp_error(WEB, INET, 3, 3, &about).ttl(1));
    let out = xdp("eweb1", &error);
    assert_eq!(out.verdict, Verdict::Drop, "no error about an error");

    // A 1500-byte DF packet towards a 1400-byte uplink: fragmentation needed with MTU 1400.
    topo.router
        .ip(&["link", "set", "up0", "mtu", "1400"])
        .unwrap();
    let big = Packet::udp(WEB, INET, 40000, 80)
        .payload(&[7; 1472])
        .dont_fragment()
        .macs(mac(eweb, true), mac(eweb, false))
        .build();
    assert_eq!(big.len(), 1514);
    let want = expected_error(&big, "10.0.0.1", 3, 4, 1400);
    let out = xdp("eweb1", &big);
    assert_eq!(
        out.verdict,
        Verdict::Tx,
        "{:?}",
        topo.datapath.drop_counters()
    );
    assert_eq!(
        out.output, want,
        "XDP: exact fragmentation-needed bytes, MTU 1400"
    );
    let out = tc("eweb1", &big);
    assert_eq!(out.verdict, TcVerdict::Redirect);
    assert_eq!(
        out.output, want,
        "TC: exact fragmentation-needed bytes, MTU 1400"
    );
    // Without DF the router does not fragment: dropped, counted, no error.
    let before = topo.datapath.drop_counters().unwrap();
    let no_df = topo.frame(
        "eweb1",
        &Packet::udp(WEB, INET, 40000, 80).payload(&[7; 1472]),
    );
    assert_eq!(xdp("eweb1", &no_df).verdict, Verdict::Drop);
    let after = topo.datapath.drop_counters().unwrap();
    let grew = |r| after.get(&r).copied().unwrap_or(0) - before.get(&r).copied().unwrap_or(0);
    assert_eq!(grew(DropReason::TooBig), 1);
    // A packet that fits passes.
    let fits = topo.frame(
        "eweb1",
        &Packet::udp(WEB, INET, 40000, 80)
            .payload(&[7; 1300])
            .dont_fragment(),
    );
    assert_eq!(xdp("eweb1", &fits).verdict, Verdict::Redirect);
}

#[test]
fn test_run_icmp_errors_are_rate_limited() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let port = topo.port_named("eweb1");
    let frame = topo.frame("eweb1", &Packet::udp(WEB, INET, 33434, 33434).ttl(1));
    let before = icmp_stat(&topo, ICMP_STAT_TIME_EXCEEDED);
    let mut sent = 0u64;
    {
        let _inside = topo.router.enter().unwrap();
        for _ in 0..(ICMP_BURST + 30) {
            let out = run_xdp(topo.datapath.xdp(), &frame, Some(port.ifindex)).unwrap();
            sent += u64::from(out.verdict == Verdict::Tx);
        }
    }
    // The burst, plus at most the few tokens refilled while the loop ran (1 per ms).
    assert!((ICMP_BURST..ICMP_BURST + 10).contains(&sent), "sent {sent}");
    assert_eq!(icmp_stat(&topo, ICMP_STAT_TIME_EXCEEDED) - before, sent);
    assert!(icmp_stat(&topo, ICMP_STAT_RATE_LIMITED) >= ICMP_BURST + 30 - sent);
    let drops = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        drops.get(&DropReason::TtlExceeded),
        Some(&(ICMP_BURST + 30))
    );
}

#[test]
fn ping_ttl_1_shows_the_router_and_pmtud_works_through_a_1400_byte_uplink() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    let host = |ifname: &str| &topo.port_named(ifname).ns;
    let inet = &topo.port_named("up0").ns;
    let out = host("eweb1")
        .exec_status("ping", &["-n", "-c", "1", "-W", "2", "-t", "1", INET])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From 10.0.0.1") && text.contains("Time to live exceeded"),
        "ping -t 1 names the router: {text}"
    );
    // The uplink has MTU 1400 on the router, where the path narrows; both endpoints have
    // 1500, so their MSS says nothing of the narrow link: only PMTUD can find it.
    topo.router
        .ip(&["link", "set", "up0", "mtu", "1400"])
        .unwrap();
    let out = host("eweb1")
        .exec_status(
            "ping",
            &["-n", "-c", "2", "-W", "2", "-M", "do", "-s", "1472", INET],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mtu = 1400"),
        "a DF ping learns the MTU: {text}"
    );
    let sink = Server::spawn_raw(
        inet,
        &format!("TCP-LISTEN:9000,bind={INET},reuseaddr,fork"),
        "SYSTEM:wc -c",
        &["-ltnH", "sport", "=", ":9000"],
    )
    .unwrap();
    for (ifname, src, via) in [
        ("eapp1", APP, "the NAT gateway"),
        ("eweb1", WEB, "the internet gateway"),
    ] {
        let out = host(ifname)
            .exec_status(
                "sh",
                &["-c", &format!("head -c 2000000 /dev/zero | timeout 20 socat -t 5 - TCP:{INET}:9000,bind={src}")],
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "2000000",
            "2 MB upload through {via} over a 1400-byte uplink"
        );
    }
    drop(sink);
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops.get(&DropReason::TooBig).copied().unwrap_or(0) > 0,
        "PMTUD was exercised: {drops:?}"
    );
    assert_eq!(drops.get(&DropReason::FibFailed), None, "{drops:?}");
}

#[test]
fn test_run_fragments_nat_limits_link_local_and_errors_about_inbound_connections() {
    require_kernel!();
    use vpc_tests::observe::{Seen, run};
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    // Link-local never leaves by the uplink: it is the router's own.
    let meta = Packet::tcp("10.0.0.10", "169.254.169.254", 40000, 80, TCP_SYN);
    assert_eq!(run(&topo, "eweb1", &meta).0, Seen::Passed);

    // NAT gateway: TCP, UDP, ICMP only; of fragments only UDP.
    let gre = Packet::raw(APP, INET, 47);
    assert_eq!(
        run(&topo, "eapp1", &gre).0,
        Seen::Dropped(DropReason::NatProtocol)
    );
    let frag_tcp = Packet::tcp(APP, INET, 40000, 80, TCP_SYN).fragment(true, 0);
    assert_eq!(
        run(&topo, "eapp1", &frag_tcp).0,
        Seen::Dropped(DropReason::NatProtocol)
    );
    let first = Packet::udp(APP, INET, 40000, 53)
        .fragment(true, 0)
        .payload(&[1; 32]);
    assert!(matches!(
        run(&topo, "eapp1", &first).0,
        Seen::Forwarded { .. }
    ));
    let later = Packet::udp(APP, INET, 40000, 53)
        .fragment(false, 5)
        .payload(&[2; 16]);
    let (seen, out) = run(&topo, "eapp1", &later);
    assert_eq!(
        seen,
        vpc_tests::observe::Seen::Forwarded {
            interface: "up0".into(),
            src: "198.51.100.10".parse().unwrap(),
            dst: INET.parse().unwrap(),
        },
        "the later fragment follows its first, translated"
    );
    // (A later fragment has no UDP header: only the IP header checksum applies.)
    assert_eq!(
        vpc_tests::packet::checksum(&[&out[14..34]]),
        0,
        "IP header checksum"
    );

    // A later TCP fragment of a tracked connection follows it (no header: no flags to judge);
    // without a connection (its first fragment was not forwarded) it is dropped.
    let first = Packet::tcp(INET, WEB_PUBLIC, 50000, 443, TCP_SYN).fragment(true, 0);
    assert!(matches!(
        run(&topo, "up0", &first).0,
        Seen::Forwarded { .. }
    ));
    let later = Packet::tcp(INET, WEB_PUBLIC, 50000, 443, TCP_SYN).fragment(false, 4);
    let (seen, _) = run(&topo, "up0", &later);
    assert!(
        matches!(seen, Seen::Forwarded { .. }),
        "later fragment: {seen:?}"
    );
    let mut stray = Packet::tcp(INET, WEB_PUBLIC, 50001, 443, TCP_SYN).fragment(false, 4);
    stray.ip_id = 0x4321;
    assert_eq!(
        run(&topo, "up0", &stray).0,
        Seen::Dropped(DropReason::Fragment)
    );

    // Fragmentation needed from the internet about web's replies on that inbound connection
    // (quoting public-ip:443 -> client) reaches web: PMTUD for servers behind the gateway.
    let reply = Packet::tcp(
        WEB_PUBLIC,
        INET,
        443,
        50000,
        TCP_SYN | vpc_tests::packet::TCP_ACK,
    );
    let too_big = Packet::icmp_error("192.0.2.100", WEB_PUBLIC, 3, 4, &reply);
    let (seen, _) = run(&topo, "up0", &too_big);
    assert_eq!(
        seen,
        vpc_tests::observe::Seen::Forwarded {
            interface: "eweb1".into(),
            src: "192.0.2.100".parse().unwrap(),
            dst: WEB.parse().unwrap(),
        }
    );
}

#[test]
fn test_run_a_segment_on_an_expired_nat_connection_gets_a_reset() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let port = topo.port_named("eapp1");
    // An ACK (with 8 bytes of data) from the private instance to the internet, no connection.
    let segment = Packet::tcp(APP, INET, 40000, 80, vpc_tests::packet::TCP_ACK).seq_ack(5000, 9000);
    let frame = topo.frame("eapp1", &segment);
    let out = {
        let _inside = topo.router.enter().unwrap();
        run_xdp(topo.datapath.xdp(), &frame, Some(port.ifindex)).unwrap()
    };
    assert_eq!(out.verdict, Verdict::Tx, "answered back out of the port");
    // To a segment with ACK: a RST with sequence number = its acknowledgment, no ACK flag.
    let mut want = Packet::tcp(INET, APP, 80, 40000, vpc_tests::packet::TCP_RST)
        .seq_ack(9000, 0)
        .macs(mac(port.index, false), mac(port.index, true))
        .payload(&[])
        .dont_fragment();
    want.ip_id = 0;
    let mut want = want.build();
    // The builder's window field is its default; a RST advertises none.
    want[48..50].copy_from_slice(&[0, 0]);
    want[50..52].copy_from_slice(&[0, 0]);
    let c = vpc_tests::packet::checksum(&[&want[26..34], &[0, 6, 0, 20], &want[34..54]]);
    want[50..52].copy_from_slice(&c.to_be_bytes());
    assert_eq!(out.output, want, "exact RST bytes");
    verify_checksums(&out.output).unwrap();
    let drops = topo.datapath.drop_counters().unwrap();
    assert_eq!(drops.get(&DropReason::NatExpired), Some(&1));
    // Inside the VPC (no NAT gateway on the way) the same segment is just dropped.
    let inside = Packet::tcp(APP, "10.0.1.10", 40000, 5432, vpc_tests::packet::TCP_ACK);
    let (seen, _) = vpc_tests::observe::run(&topo, "eapp1", &inside);
    assert_eq!(
        seen,
        vpc_tests::observe::Seen::Dropped(DropReason::InvalidTcpFlags)
    );
}

#[test]
fn nat_idle_timeout_ends_in_a_reset_and_fragmented_udp_arrives_whole() {
    require_kernel!();
    let yaml = format!("{FIXTURE}connection_tracking: {{ nat_idle_timeout: 2 }}\n");
    let topo = Topology::build(&yaml, Some(AttachMode::Auto), false).expect("topology");
    let app = &topo.port_named("eapp1").ns;
    let inet = &topo.port_named("up0").ns;
    // UDP larger than the MTU: fragmented by the sender, whole at the server (via the NAT).
    let sink = Server::spawn_raw(
        inet,
        &format!("UDP-RECVFROM:5353,bind={INET},fork"),
        "SYSTEM:wc -c",
        &["-lunH", "sport", "=", ":5353"],
    )
    .unwrap();
    let out = app
        .exec_status(
            "sh",
            &[
                "-c",
                &format!(
                    "head -c 4000 /dev/zero | timeout 5 socat -T2 - UDP:{INET}:5353,bind={APP}"
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "4000",
        "4000-byte datagram, 3 fragments"
    );
    drop(sink);
    // A TCP session idle longer than the NAT timeout: the next segment gets a RST.
    let echo = Server::spawn_raw(
        inet,
        &format!("TCP-LISTEN:8080,bind={INET},reuseaddr,fork"),
        "PIPE",
        &["-ltnH", "sport", "=", ":8080"],
    )
    .unwrap();
    // What the client's interface sees (bounded: 8 s).
    let dump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            app.name(),
            "timeout",
            "8",
            "tcpdump",
            "-i",
            "eth0",
            "-nn",
            "-l",
        ])
        .args(["tcp", "port", "8080"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = app
        .exec_status(
            "sh",
            &["-c", &format!("(echo one; sleep 3.5; echo two; sleep 1) | timeout 10 socat - TCP:{INET}:8080,bind={APP} 2>&1; echo exit=$?")],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let dump = String::from_utf8_lossy(&dump.wait_with_output().unwrap().stdout).into_owned();
    drop(echo);
    assert!(text.contains("one"), "the session worked before: {text}");
    assert!(!text.contains("two"), "nothing after the timeout: {text}");
    let reset = dump
        .lines()
        .any(|l| l.contains(&format!("{INET}.8080 > {APP}.")) && l.contains("Flags [R]"));
    assert!(
        reset,
        "the client saw a RST from the server's address:\n{dump}"
    );
    let sockets = app
        .exec("ss", &["-tnH", "dst", &format!("{INET}:8080")])
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&sockets.stdout).contains("ESTAB"),
        "the client's connection is gone (reset)"
    );
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops.get(&DropReason::NatExpired).copied().unwrap_or(0) >= 1,
        "{drops:?}"
    );
}

#[test]
fn test_run_errors_from_inside_about_translated_packets_quote_them_as_sent() {
    require_kernel!();
    use vpc_tests::observe::{Seen, ports, run};
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap().octets();
    // web got a UDP packet from the internet through its public IP (translated 1:1) and
    // answers port unreachable: the quoted destination must be the public IP again.
    let received = Packet::udp(INET, WEB, 5000, 9999);
    let error = Packet::icmp_error(WEB, INET, 3, 3, &received);
    let (seen, out) = run(&topo, "eweb1", &error);
    assert_eq!(
        seen,
        Seen::Forwarded {
            interface: "up0".into(),
            src: WEB_PUBLIC.parse().unwrap(),
            dst: INET.parse().unwrap(),
        }
    );
    assert_eq!(
        out[42 + 16..42 + 20],
        ip(WEB_PUBLIC),
        "quoted destination: the public IP"
    );
    assert_eq!(out[42 + 12..42 + 16], ip(INET), "quoted source unchanged");
    assert_eq!(
        vpc_tests::packet::checksum(&[&out[42..62]]),
        0,
        "quoted IP checksum"
    );
    verify_checksums(&out).unwrap();

    // app's DNS query went out through the NAT gateway; the answer came back translated, and
    // app answers port unreachable: the quoted destination is the elastic IP and NAT port.
    let (_, q) = run(&topo, "eapp1", &Packet::udp(APP, INET, 40000, 53));
    let nat_port = ports(&q).0;
    let answer = Packet::udp(INET, "198.51.100.10", 53, nat_port);
    assert!(matches!(
        run(&topo, "up0", &answer).0,
        Seen::Forwarded { .. }
    ));
    let received = Packet::udp(INET, APP, 53, 40000);
    let error = Packet::icmp_error(APP, INET, 3, 3, &received);
    let (seen, out) = run(&topo, "eapp1", &error);
    assert_eq!(
        seen,
        Seen::Forwarded {
            interface: "up0".into(),
            src: "198.51.100.10".parse().unwrap(),
            dst: INET.parse().unwrap(),
        }
    );
    assert_eq!(
        out[42 + 16..42 + 20],
        ip("198.51.100.10"),
        "quoted destination: the elastic IP"
    );
    assert_eq!(
        out[62 + 2..62 + 4],
        nat_port.to_be_bytes(),
        "quoted destination port: the NAT port"
    );
    assert_eq!(
        vpc_tests::packet::checksum(&[&out[42..62]]),
        0,
        "quoted IP checksum"
    );
    verify_checksums(&out).unwrap();
}

/// The IPv4 header checksum of a frame recomputed after an edit.
fn fix_ip_checksum(frame: &mut [u8]) {
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = vpc_tests::packet::checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn test_run_header_sanity() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let port = topo.port_named("eapp1");
    let dropped_for = |frame: &[u8], tc: bool| {
        let before = topo.datapath.drop_counters().unwrap();
        let stats_before = topo.datapath.drop_stats().unwrap();
        let dropped = {
            let _inside = topo.router.enter().unwrap();
            if tc {
                let prog = topo
                    .datapath
                    .tc(vpc_agent::datapath::object::programs::TC_INGRESS);
                run_tc(prog, frame, port.ifindex).unwrap().verdict == TcVerdict::Shot
            } else {
                run_xdp(topo.datapath.xdp(), frame, Some(port.ifindex))
                    .unwrap()
                    .verdict
                    == Verdict::Drop
            }
        };
        let after = topo.datapath.drop_counters().unwrap();
        let grown: Vec<DropReason> = DropReason::ALL
            .into_iter()
            .filter(|r| after.get(r) > before.get(r))
            .collect();
        // Each drop is counted once, under the program that dropped it, with its bytes.
        let stats_after = topo.datapath.drop_stats().unwrap();
        let hook = if tc { Hook::TcIngress } else { Hook::Xdp };
        for r in &grown {
            let get = |m: &std::collections::BTreeMap<_, DropStats>| {
                m.get(&(*r, hook)).copied().unwrap_or_default()
            };
            let (b, a) = (get(&stats_before), get(&stats_after));
            assert_eq!(
                (a.packets - b.packets, a.bytes - b.bytes),
                (1, frame.len() as u64),
                "{} under {}",
                r.name(),
                hook.name()
            );
        }
        (dropped, grown)
    };
    let syn = Packet::tcp(APP, "10.0.1.10", 40000, 5432, TCP_SYN);
    // The IP total length ends inside the TCP header; the Ethernet padding after it looks like
    // the rest of one.
    let mut cut = topo.frame("eapp1", &syn);
    cut[16..18].copy_from_slice(&30u16.to_be_bytes());
    fix_ip_checksum(&mut cut);
    for tc in [false, true] {
        assert_eq!(
            dropped_for(&cut, tc),
            (true, vec![DropReason::Malformed]),
            "tc {tc}"
        );
    }
    // A tiny first fragment (RFC 1858): too short for the TCP header.
    let mut tiny = topo.frame("eapp1", &syn.clone().fragment(true, 0));
    tiny[16..18].copy_from_slice(&28u16.to_be_bytes());
    fix_ip_checksum(&mut tiny);
    for tc in [false, true] {
        assert_eq!(
            dropped_for(&tiny, tc),
            (true, vec![DropReason::Fragment]),
            "tc {tc}"
        );
    }
    // A bad IPv4 header checksum (the TC path checks it).
    let mut bad = topo.frame("eapp1", &syn);
    bad[24] ^= 0x55;
    assert_eq!(dropped_for(&bad, true), (true, vec![DropReason::Malformed]));
    // The same packets intact pass the checks.
    let good = topo.frame("eapp1", &syn);
    assert!(!dropped_for(&good, true).0, "an intact packet passes");
}
