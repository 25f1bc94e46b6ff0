//! Enforcement that holds on the hosts people attach: instance ports (ENIs) with the router as
//! the only L2 peer, the source check by port, ARP answered and checked by the datapath,
//! anti-spoofing on the uplink, RSTs only in the receiver's window, and the fail-closed guard.
//!
//! - BPF_PROG_TEST_RUN cases (verdict, exact bytes for ARP, one drop reason), each checked
//!   against the reference evaluator where it models the case.
//! - Real traffic between hosts at Linux defaults (checksum offload, TSO, GRO as the kernel
//!   sets them), in the default mode (the TC path on veth) and in skb mode.
//! - The real agent killed after its pins were lost: the kernel forwards nothing.

use std::time::Duration;

use vpc_agent::datapath::AttachMode;
use vpc_common::{
    DropReason,
    conntrack::{CT_TCP_CLOSED, CT_TCP_ESTABLISHED, CtEntry, CtKey},
    ip_raw,
};
use vpc_tests::{
    agent::{Agent, Bpffs, Scratch, cli},
    cases::fwd,
    observe::{Seen, reference, run, run_tc_ingress},
    packet::{Packet, TCP_ACK, TCP_RST, TCP_SYN, arp},
    require_kernel,
    testrun::{Verdict, run_xdp},
    topology::{INTERNET_CLIENT_IP, Topology, mac},
    traffic::{Server, ping, retry, tcp_request},
};

const FIXTURE: &str = include_str!("../fixtures/instance-ports.yaml");
const WEB: &str = "10.0.0.10";
const APP: &str = "10.0.1.20";
const DB1: &str = "10.0.1.10";
const DB2: &str = "10.0.1.11";
const M1: &str = "10.0.1.30";
const M2: &str = "10.0.1.31";
const WEB_PUBLIC: &str = "198.51.100.20";

#[test]
fn test_run_instance_ports_and_anti_spoofing() {
    require_kernel!();
    use DropReason::*;
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let tcp = |s, d, dport| Packet::tcp(s, d, 40000, dport, TCP_SYN);
    let inet = INTERNET_CLIENT_IP;
    let cases: Vec<(&str, &str, Packet, Seen)> = vec![
        // Security groups inside one subnet (the router is every instance's only peer).
        (
            "app -> db1:5432 same subnet: sg:app",
            "eapp1",
            tcp(APP, DB1, 5432),
            fwd("edb1", APP, DB1),
        ),
        (
            "db1 -> db2:22 same subnet: no rule",
            "edb1",
            tcp(DB1, DB2, 22),
            Seen::Dropped(SecurityGroupInbound),
        ),
        (
            "db1 -> db2 ping: sg:db",
            "edb1",
            Packet::icmp_echo(DB1, DB2, 7, 1),
            fwd("edb2", DB1, DB2),
        ),
        (
            "m1 -> m2: default group, members",
            "em1",
            tcp(M1, M2, 8080),
            fwd("em2", M1, M2),
        ),
        (
            "app -> m1: default group, not a member",
            "eapp1",
            tcp(APP, M1, 8080),
            Seen::Dropped(SecurityGroupInbound),
        ),
        // The source check by port.
        (
            "db1's port with db2's address",
            "edb1",
            tcp(DB2, APP, 80),
            Seen::Dropped(Spoofed),
        ),
        (
            "db1's port with the NAT gateway's address",
            "edb1",
            tcp("10.0.0.5", inet, 80),
            Seen::Dropped(Spoofed),
        ),
        (
            "web's port with the NAT gateway's address",
            "eweb1",
            tcp("10.0.0.5", inet, 80),
            Seen::Dropped(Spoofed),
        ),
        (
            "to the router .1 with a spoofed internet source",
            "edb1",
            Packet::icmp_echo(inet, "10.0.1.1", 9, 1),
            Seen::Dropped(Spoofed),
        ),
        (
            "to the router .1 from the instance itself",
            "edb1",
            Packet::icmp_echo(DB1, "10.0.1.1", 9, 1),
            Seen::Passed,
        ),
        // Anti-spoofing on the uplink: before anything else.
        (
            "uplink: source inside the VPC (app) to web's sg:app rule",
            "up0",
            tcp(APP, WEB_PUBLIC, 22),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: source inside the VPC to web:443",
            "up0",
            tcp(DB1, WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: the router's subnet address",
            "up0",
            tcp("10.0.1.1", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: the router's uplink address",
            "up0",
            tcp("192.0.2.1", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: web's own public IP",
            "up0",
            tcp(WEB_PUBLIC, WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: the NAT gateway's elastic IP",
            "up0",
            tcp("198.51.100.10", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: martian 0/8",
            "up0",
            tcp("0.1.2.3", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: martian 127/8",
            "up0",
            tcp("127.0.0.1", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: martian link-local",
            "up0",
            tcp("169.254.169.254", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: martian multicast",
            "up0",
            tcp("224.0.0.5", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: martian 240/4",
            "up0",
            tcp("240.0.0.1", WEB_PUBLIC, 443),
            Seen::Dropped(UplinkSpoofed),
        ),
        (
            "uplink: an internet client (control)",
            "up0",
            tcp(inet, WEB_PUBLIC, 443),
            fwd("eweb1", inet, WEB),
        ),
    ];
    for (name, ingress, packet, expect) in &cases {
        let (seen, _) = run(&topo, ingress, packet);
        assert_eq!(&seen, expect, "XDP: {name}");
        let (tc, _) = run_tc_ingress(&topo, ingress, packet);
        let tc_expect = match expect {
            Seen::Forwarded { src, dst, .. } => Seen::Forwarded {
                interface: String::new(),
                src: *src,
                dst: *dst,
            },
            other => other.clone(),
        };
        assert_eq!(tc, tc_expect, "TC: {name}");
        // The reference evaluator knows no uplink address of the machine.
        if !name.contains("uplink address") {
            assert_eq!(
                &reference(&topo, ingress, packet),
                expect,
                "evaluator: {name}"
            );
        }
    }
}

#[test]
fn test_run_arp_on_instance_ports() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let port = topo.port_named("edb1");
    let host = mac(port.index, true);
    let router = mac(port.index, false);
    let xdp = |frame: &[u8]| {
        let before = topo.datapath.drop_counters().unwrap();
        let _inside = topo.router.enter().unwrap();
        let out = run_xdp(topo.datapath.xdp(), frame, Some(port.ifindex)).unwrap();
        let after = topo.datapath.drop_counters().unwrap();
        let spoofed = |c: &std::collections::BTreeMap<DropReason, u64>| {
            c.get(&DropReason::Spoofed).copied().unwrap_or(0)
        };
        (out, spoofed(&after) - spoofed(&before))
    };
    // A request for a neighbour's address: answered by the router with its port's MAC.
    let (out, _) = xdp(&arp(1, host, DB1, DB2));
    assert_eq!(out.verdict, Verdict::Tx, "answered on the port");
    let mut want = Vec::new();
    want.extend_from_slice(&host); // to the asking host
    want.extend_from_slice(&router);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    want.extend_from_slice(&router);
    want.extend_from_slice(&[10, 0, 1, 11]);
    want.extend_from_slice(&host);
    want.extend_from_slice(&[10, 0, 1, 10]);
    assert_eq!(out.output, want, "exact ARP reply bytes");
    // For the router's own .1 and for an address no instance has: answered the same way.
    for target in ["10.0.1.1", "10.0.1.99"] {
        let (out, _) = xdp(&arp(1, host, DB1, target));
        assert_eq!(out.verdict, Verdict::Tx, "{target} answered");
        assert_eq!(
            out.output[28..32],
            target.parse::<std::net::Ipv4Addr>().unwrap().octets()
        );
    }
    // Claiming another instance's address (poisoning): dropped, counted as spoofed.
    for frame in [
        arp(1, host, DB2, DB1),
        arp(2, host, DB2, "10.0.1.1"),
        arp(2, host, "10.0.0.5", "10.0.1.1"),
    ] {
        let (out, spoofed) = xdp(&frame);
        assert_eq!(
            (out.verdict, spoofed),
            (Verdict::Drop, 1),
            "spoofed ARP {frame:02x?}"
        );
    }
    // The instance's own binding and probes go to the kernel unchanged.
    for frame in [
        arp(2, host, DB1, "10.0.1.1"),
        arp(1, host, "0.0.0.0", DB1),
        arp(1, host, DB1, DB1),
        arp(1, host, DB1, "192.0.2.1"),
    ] {
        let (out, spoofed) = xdp(&frame);
        assert_eq!(
            (out.verdict, spoofed),
            (Verdict::Pass, 0),
            "to the kernel: {frame:02x?}"
        );
        assert_eq!(out.output, frame);
    }
    // The TC path answers the same requests (it redirects the reply back out of the port).
    let prog = topo
        .datapath
        .tc(vpc_agent::datapath::object::programs::TC_INGRESS);
    let out = {
        let _inside = topo.router.enter().unwrap();
        vpc_tests::testrun::run_tc(prog, &arp(1, host, DB1, DB2), port.ifindex).unwrap()
    };
    assert_eq!(out.verdict, vpc_tests::testrun::TcVerdict::Redirect);
    assert_eq!(out.output, want, "TC: exact ARP reply bytes");
}

fn ct_entry(topo: &mut Topology, key: &CtKey) -> Option<CtEntry> {
    vpc_tests::topology::ct_entry(topo, key)
}

#[test]
fn test_run_rst_outside_the_window_is_ignored() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    let inet = INTERNET_CLIENT_IP;
    let ip = |s: &str| ip_raw(s.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let key = CtKey {
        src: ip(inet),
        dst: ip(WEB),
        sport: 50000,
        dport: 443,
        proto: 6,
        _pad: [0; 3],
    };
    let from_inet =
        |flags, seq, ack| Packet::tcp(inet, WEB_PUBLIC, 50000, 443, flags).seq_ack(seq, ack);
    let from_web = |flags, seq, ack| Packet::tcp(WEB, inet, 443, 50000, flags).seq_ack(seq, ack);
    // Handshake: client ISN 1000, server ISN 7000, 8 payload bytes in every segment.
    for (ingress, p) in [
        ("up0", from_inet(TCP_SYN, 1000, 0)),
        ("eweb1", from_web(TCP_SYN | TCP_ACK, 7000, 1009)),
        ("up0", from_inet(TCP_ACK, 1009, 7009)),
    ] {
        assert!(matches!(run(&topo, ingress, &p).0, Seen::Forwarded { .. }));
    }
    assert_eq!(ct_entry(&mut topo, &key).unwrap().state, CT_TCP_ESTABLISHED);
    use DropReason::TcpOutOfWindow;
    // Blind RSTs from the internet: far ahead, far behind, with any ACK.
    for seq in [
        1_000_000u32,
        1009 + 200_000,
        1009u32.wrapping_sub(200_000),
        0x8000_0000,
    ] {
        let (seen, _) = run(&topo, "up0", &from_inet(TCP_RST | TCP_ACK, seq, 7009));
        assert_eq!(seen, Seen::Dropped(TcpOutOfWindow), "RST seq {seq}");
        assert_eq!(
            ct_entry(&mut topo, &key).unwrap().state,
            CT_TCP_ESTABLISHED,
            "seq {seq}"
        );
    }
    // A blind FIN likewise cannot start closing it.
    let (seen, _) = run(
        &topo,
        "up0",
        &from_inet(vpc_tests::packet::TCP_FIN | TCP_ACK, 5_000_000, 7009),
    );
    assert_eq!(seen, Seen::Dropped(TcpOutOfWindow));
    assert_eq!(ct_entry(&mut topo, &key).unwrap().state, CT_TCP_ESTABLISHED);
    // The client's own RST (at its next sequence number) closes it.
    let (seen, _) = run(&topo, "up0", &from_inet(TCP_RST | TCP_ACK, 1017, 7009));
    assert!(
        matches!(seen, Seen::Forwarded { .. }),
        "in-window RST: {seen:?}"
    );
    assert_eq!(ct_entry(&mut topo, &key).unwrap().state, CT_TCP_CLOSED);
}

/// Real traffic between hosts at Linux defaults on their own ports, attached in `mode`.
fn traffic_on_instance_ports(mode: AttachMode) {
    let topo = Topology::build(FIXTURE, Some(mode), false).expect("topology");
    let host = |ifname: &str| &topo.port_named(ifname).ns;
    // Same subnet, allowed by reference and seen from both ends.
    let db = Server::tcp(host("edb1"), DB1, 5432).unwrap();
    assert_eq!(
        retry(|| tcp_request(host("eapp1"), APP, DB1, 5432)).as_deref(),
        Some("peer=10.0.1.20"),
        "app reaches db-1 in its own subnet (sg:app)"
    );
    drop(db);
    let ssh = Server::tcp(host("edb2"), DB2, 22).unwrap();
    assert_eq!(
        tcp_request(host("edb1"), DB1, DB2, 22).unwrap(),
        None,
        "db-1 -> db-2:22 denied"
    );
    drop(ssh);
    assert_eq!(
        ping(host("edb1"), DB1, DB2, 3).unwrap(),
        3,
        "db-1 pings db-2 (sg:db icmp)"
    );
    assert_eq!(
        ping(host("em1"), M1, M2, 3).unwrap(),
        3,
        "default group members reach each other"
    );
    assert_eq!(
        ping(host("eapp1"), APP, M1, 2).unwrap(),
        0,
        "a non-member does not"
    );
    // A bulk TCP transfer with the hosts' offloads on (TSO aggregates, partial checksums),
    // through the internet gateway's 1:1 translation.
    let inet = &topo.port_named("up0").ns;
    let sink = Server::spawn_raw(
        inet,
        &format!("TCP-LISTEN:9000,bind={INTERNET_CLIENT_IP},reuseaddr"),
        "SYSTEM:wc -c",
        &["-ltnH", "sport", "=", ":9000"],
    )
    .unwrap();
    let out = host("eweb1")
        .exec("sh", &["-c", &format!("head -c 2000000 /dev/zero | timeout 10 socat -t 5 - TCP:{INTERNET_CLIENT_IP}:9000,bind={WEB}")])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    drop(sink);
    assert_eq!(
        out.ok().as_deref(),
        Some("2000000"),
        "2 MB upload through the internet gateway"
    );

    // The router's own address: reached from the instance, not with a spoofed source.
    assert_eq!(
        ping(host("edb1"), DB1, "10.0.1.1", 2).unwrap(),
        2,
        "db-1 pings its gateway"
    );
    host("edb1")
        .ip(&["addr", "add", "203.0.113.99/32", "dev", "eth0"])
        .unwrap();
    assert_eq!(
        ping(host("edb1"), "203.0.113.99", "10.0.1.1", 2).unwrap(),
        0,
        "spoofed source to .1"
    );

    // db-2 claims db-1's address (ARP and IP): dropped, and db-1 keeps its traffic.
    let before = topo.datapath.drop_counters().unwrap();
    host("edb2")
        .ip(&["addr", "add", &format!("{DB1}/32"), "dev", "eth0"])
        .unwrap();
    assert_eq!(
        ping(host("edb2"), DB1, APP, 2).unwrap(),
        0,
        "db-2 using db-1's address"
    );
    let after = topo.datapath.drop_counters().unwrap();
    let spoofed = |c: &std::collections::BTreeMap<DropReason, u64>| {
        c.get(&DropReason::Spoofed).copied().unwrap_or(0)
    };
    assert!(
        spoofed(&after) >= spoofed(&before) + 2,
        "counted as spoofed: {after:?}"
    );
    let neigh = topo.router.ip(&["-4", "neigh", "show", DB1]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        !neigh.contains("edb2"),
        "the router never learnt db-1's address on db-2's port: {neigh}"
    );
    let db = Server::tcp(host("edb1"), DB1, 5432).unwrap();
    assert_eq!(
        retry(|| tcp_request(host("eapp1"), APP, DB1, 5432)).as_deref(),
        Some("peer=10.0.1.20"),
        "app's connection to db-1 still reaches db-1 (db-2 has no server: it would refuse)"
    );
    drop(db);
    let drops = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        drops.get(&DropReason::Unapproved),
        None,
        "nothing slipped: {drops:?}"
    );
    assert_eq!(
        drops.get(&DropReason::Malformed),
        None,
        "offloaded frames parse: {drops:?}"
    );
}

#[test]
fn traffic_on_instance_ports_default_mode() {
    require_kernel!();
    traffic_on_instance_ports(AttachMode::Auto);
}

#[test]
fn traffic_on_instance_ports_skb_mode() {
    require_kernel!();
    traffic_on_instance_ports(AttachMode::Skb);
}

fn guard_packets(router: &vpc_tests::netns::NetNs, table: &str) -> u64 {
    let out = router
        .exec("nft", &["list", "table", "inet", table])
        .expect("guard table present");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "packets")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum()
}

#[test]
fn fail_closed_when_the_agent_dies_with_its_pins_lost() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, false).expect("topology");
    let scratch = Scratch::new().unwrap();
    let config = scratch.write("vpc.yaml", FIXTURE).unwrap();
    let bpffs = Bpffs::new().unwrap();
    let host = |ifname: &str| &topo.port_named(ifname).ns;
    let inet = &topo.port_named("up0").ns;
    let mut agent = Agent::spawn(
        &topo.router,
        &config,
        &bpffs,
        scratch.dir.join("a.log"),
        &[],
    )
    .unwrap();
    agent.wait_running().expect("agent runs");
    let table = vpc_agent::daemon::guard::table_name(&bpffs.path);
    assert_eq!(
        guard_packets(&topo.router, &table),
        0,
        "the guard costs the datapath nothing"
    );
    let db = Server::tcp(host("edb1"), DB1, 5432).unwrap();
    assert_eq!(
        retry(|| tcp_request(host("eapp1"), APP, DB1, 5432)).as_deref(),
        Some("peer=10.0.1.20")
    );
    // Straight at a private address from the internet: the datapath drops it.
    assert_eq!(
        tcp_request(inet, INTERNET_CLIENT_IP, DB1, 5432).unwrap(),
        None
    );

    // The pins are lost (as with an unmounted bpffs), then the agent dies: links close and
    // the programs go. The kernel would forward everything; the guard forwards nothing.
    std::fs::remove_dir_all(bpffs.path.join("links")).expect("remove pinned links");
    agent.kill9().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let attached = topo.router.exec("bpftool", &["net", "show"]).unwrap();
    assert!(
        !String::from_utf8_lossy(&attached.stdout).contains("vpc_"),
        "programs are gone"
    );
    assert_eq!(
        tcp_request(inet, INTERNET_CLIENT_IP, DB1, 5432).unwrap(),
        None,
        "internet -> private instance"
    );
    assert_eq!(
        ping(host("eapp1"), APP, DB1, 2).unwrap(),
        0,
        "instance -> instance"
    );
    assert_eq!(
        ping(inet, INTERNET_CLIENT_IP, WEB, 2).unwrap(),
        0,
        "internet -> public subnet"
    );
    assert!(
        guard_packets(&topo.router, &table) > 0,
        "dropped by the guard"
    );
    // A new agent enforces again; detach removes everything, the guard included.
    let mut agent = Agent::spawn(
        &topo.router,
        &config,
        &bpffs,
        scratch.dir.join("b.log"),
        &[],
    )
    .unwrap();
    agent.wait_running().expect("agent runs again");
    assert_eq!(
        retry(|| tcp_request(host("eapp1"), APP, DB1, 5432)).as_deref(),
        Some("peer=10.0.1.20")
    );
    drop(db);
    agent.signal("TERM").unwrap();
    agent.wait_exit(Duration::from_secs(10)).unwrap();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", topo.router.name()))
        .arg(vpc_tests::agent::agent_bin())
        .args(["detach", "--bpffs", bpffs.arg()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = topo
        .router
        .exec_status("nft", &["list", "table", "inet", &table])
        .unwrap();
    assert!(!gone.status.success(), "detach removed the guard");
    let _ = cli(&["detach", "--bpffs", bpffs.arg()]);
}

#[test]
fn virtual_devices_take_the_tc_path_and_native_xdp_is_refused_on_them() {
    require_kernel!();
    // Compiled from the machine (veth ports are virtual): XDP leaves every packet to TC,
    // unmodified, and redirects into no veth (DEVICES holds none).
    let topo = Topology::build(FIXTURE, Some(AttachMode::Skb), true).expect("topology");
    let packet = Packet::tcp(APP, DB1, 40000, 5432, TCP_SYN);
    let (seen, _) = run(&topo, "eapp1", &packet);
    assert_eq!(
        seen,
        Seen::Passed,
        "XDP hands virtual devices' frames to TC"
    );
    let (tc, _) = run_tc_ingress(&topo, "eapp1", &packet);
    assert!(matches!(tc, Seen::Forwarded { .. }), "TC decides: {tc:?}");
    assert_eq!(topo.compiled.redirect_targets().count(), 0);

    // `--xdp-mode native` on a veth: refused at start, with the reason, exit status 2.
    let scratch = Scratch::new().unwrap();
    let config = scratch.write("vpc.yaml", FIXTURE).unwrap();
    let bpffs = Bpffs::new().unwrap();
    let bare = Topology::build(FIXTURE, None, false).expect("topology");
    let log = scratch.dir.join("native.log");
    let mut agent = Agent::spawn(
        &bare.router,
        &config,
        &bpffs,
        log,
        &["--xdp-mode", "native"],
    )
    .unwrap();
    assert_eq!(agent.wait_exit(Duration::from_secs(20)).unwrap(), Some(2));
    let text = agent.log();
    assert!(
        text.contains("is a virtual device (veth/tap): native XDP cannot be correct there"),
        "{text}"
    );
    assert!(
        !bpffs.path.exists(),
        "nothing was created: {}",
        bpffs.path.display()
    );
}
