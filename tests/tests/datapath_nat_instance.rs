//! NAT instances (`tests/fixtures/nat-instance.yaml`): the private subnet's `0.0.0.0/0` leads
//! to `natbox`, an instance whose source/destination check is off and which translates
//! itself (nftables masquerade in its namespace).
//!
//! - BPF_PROG_TEST_RUN tables (input packet -> verdict, exact output bytes, one drop reason),
//!   each case also held to the reference evaluator where it is stateless: packets routed to
//!   natbox reach its port unchanged (its subnet's ACL and its groups apply); natbox sends
//!   for internet hosts; hostile cases: natbox spoofing VPC, public, router and martian
//!   addresses, natbox's foreign sources towards the internet gateway, an instance with the
//!   check on sending for an internet host, the internet opening connections inward.
//! - Real traffic: the private instance reaches the internet server as natbox's public IP
//!   and gets the answers; the internet opens nothing to the private instance.

use vpc_agent::datapath::AttachMode;
use vpc_common::DropReason;
use vpc_tests::{
    cases::{Case, case, check_cases, fwd},
    observe::{Seen, run, run_tc_ingress},
    packet::{Packet, TCP_ACK, TCP_SYN},
    require_kernel,
    topology::{INTERNET_CLIENT_IP, INTERNET_IP, Topology, UPLINK_ROUTER_IP},
};

const FIXTURE: &str = include_str!("../fixtures/nat-instance.yaml");

const NATBOX: &str = "10.0.0.20";
const NATBOX_PUBLIC: &str = "198.51.100.30";
const WEB: &str = "10.0.0.10";
const WEB_PUBLIC: &str = "198.51.100.20";
const APP: &str = "10.0.1.10";
const DB: &str = "10.0.1.20";

/// In order: the tracked replies follow the packets that opened their connections.
fn cases() -> Vec<Case> {
    use DropReason::*;
    vec![
        case(
            "app -> internet https: to natbox's port, unchanged",
            "eni-app",
            Packet::tcp(APP, INTERNET_IP, 40000, 443, TCP_SYN),
            fwd("eni-nat", APP, INTERNET_IP),
        ),
        case(
            "db -> internet dns: to natbox's port, unchanged",
            "eni-db",
            Packet::udp(DB, INTERNET_CLIENT_IP, 40001, 53),
            fwd("eni-nat", DB, INTERNET_CLIENT_IP),
        ),
        case(
            "app -> internet smtp: natbox's subnet ACL denies it inbound",
            "eni-app",
            Packet::tcp(APP, INTERNET_IP, 40002, 25, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "natbox -> internet as itself (masqueraded): 1:1 to its public IP",
            "eni-nat",
            Packet::tcp(NATBOX, INTERNET_IP, 50000, 443, TCP_SYN),
            fwd("up0", NATBOX_PUBLIC, INTERNET_IP),
        ),
        Case {
            in_evaluator: false,
            ..case(
                "natbox -> app, the internet server's un-masqueraded answer: tracked, delivered",
                "eni-nat",
                Packet::tcp(INTERNET_IP, APP, 443, 40000, TCP_SYN | TCP_ACK),
                fwd("eni-app", INTERNET_IP, APP),
            )
        },
        case(
            "natbox -> app ssh for the internet client: app's groups see the internet source",
            "eni-nat",
            Packet::tcp(INTERNET_CLIENT_IP, APP, 40003, 22, TCP_SYN),
            Seen::Dropped(SecurityGroupInbound),
        ),
        case(
            "natbox -> web http for the internet client: web's group allows it",
            "eni-nat",
            Packet::tcp(INTERNET_CLIENT_IP, WEB, 40004, 80, TCP_SYN),
            fwd("eni-web", INTERNET_CLIENT_IP, WEB),
        ),
        case(
            "natbox spoofing db (a VPC instance) towards app",
            "eni-nat",
            Packet::tcp(DB, APP, 40005, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "natbox spoofing web (its own subnet) towards the internet",
            "eni-nat",
            Packet::tcp(WEB, INTERNET_IP, 40006, 443, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "natbox spoofing an unused VPC address",
            "eni-nat",
            Packet::tcp("10.0.1.99", APP, 40007, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "natbox spoofing web's public IP",
            "eni-nat",
            Packet::tcp(WEB_PUBLIC, APP, 40008, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "natbox spoofing a martian (loopback)",
            "eni-nat",
            Packet::tcp("127.0.0.1", APP, 40009, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        Case {
            in_evaluator: false,
            ..case(
                "natbox spoofing the router's uplink address",
                "eni-nat",
                Packet::tcp(UPLINK_ROUTER_IP, APP, 40010, 22, TCP_SYN),
                Seen::Dropped(Spoofed),
            )
        },
        case(
            "natbox sending for an internet host to the internet: no public address maps it",
            "eni-nat",
            Packet::tcp(INTERNET_CLIENT_IP, INTERNET_IP, 40011, 443, TCP_SYN),
            Seen::Dropped(NoPublicAddress),
        ),
        case(
            "web (check on) sending for an internet host",
            "eni-web",
            Packet::tcp(INTERNET_CLIENT_IP, APP, 40012, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "app (check on) sending for an internet host",
            "eni-app",
            Packet::tcp(INTERNET_IP, DB, 40013, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "internet -> app's private address: nothing reaches it from the uplink",
            "up0",
            Packet::tcp(INTERNET_CLIENT_IP, APP, 40014, 22, TCP_SYN),
            Seen::Dropped(UplinkUnsolicited),
        ),
        case(
            "internet -> natbox's public IP ssh: its group allows only the private subnet",
            "up0",
            Packet::tcp(INTERNET_CLIENT_IP, NATBOX_PUBLIC, 40015, 22, TCP_SYN),
            Seen::Dropped(SecurityGroupInbound),
        ),
        Case {
            in_evaluator: false,
            ..case(
                "internet -> natbox's public IP, the reply of its own connection: 1:1 back",
                "up0",
                Packet::tcp(INTERNET_IP, NATBOX_PUBLIC, 443, 50000, TCP_SYN | TCP_ACK),
                fwd("eni-nat", INTERNET_IP, NATBOX),
            )
        },
    ]
}

#[test]
fn test_run_nat_instance() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    check_cases(&topo, &cases());
}

#[test]
fn tc_ingress_takes_the_same_nat_instance_decisions_as_xdp() {
    require_kernel!();
    let xdp = Topology::build(FIXTURE, None, true).expect("topology");
    let tc = Topology::build(FIXTURE, None, true).expect("topology");
    for c in cases() {
        let strip = |s: Seen| match s {
            Seen::Forwarded { src, dst, .. } => Seen::Forwarded {
                interface: String::new(),
                src,
                dst,
            },
            other => other,
        };
        let (expected, _) = run(&xdp, c.ingress, &c.packet);
        let (seen, _) = run_tc_ingress(&tc, c.ingress, &c.packet);
        assert_eq!(strip(seen), strip(expected), "{}: tc and xdp agree", c.name);
    }
}

/// Real traffic, attached in `mode`: natbox masquerades the private subnet (nftables in its
/// own namespace, forwarding on there only).
fn traffic(mode: AttachMode) {
    use vpc_tests::traffic::{Server, ping, retry, tcp_request, udp_request};
    let topo = Topology::build(FIXTURE, Some(mode), false).expect("topology");
    let natbox = &topo.port_named("eni-nat").ns;
    let app = &topo.port_named("eni-app").ns;
    let internet = &topo.port_named("up0").ns;
    natbox.sysctl("net.ipv4.ip_forward=1").unwrap();
    natbox.sysctl("net.ipv4.conf.all.send_redirects=0").unwrap();
    natbox
        .sysctl("net.ipv4.conf.eth0.send_redirects=0")
        .unwrap();
    for nft in [
        "add table ip nat",
        "add chain ip nat post { type nat hook postrouting priority 100; }",
        "add rule ip nat post oifname eth0 ip saddr 10.0.1.0/24 masquerade",
    ] {
        let args: Vec<&str> = nft.split(' ').collect();
        natbox
            .exec("nft", &args)
            .expect("nft in natbox's namespace");
    }

    let https = Server::tcp(internet, INTERNET_IP, 443).unwrap();
    assert_eq!(
        retry(|| tcp_request(app, APP, INTERNET_IP, 443)).as_deref(),
        Some(format!("peer={NATBOX_PUBLIC}").as_str()),
        "app reaches the internet through natbox, seen as natbox's public IP, and the \
         answer comes back"
    );
    drop(https);
    let dns = Server::udp(internet, INTERNET_IP, 53).unwrap();
    assert_eq!(
        retry(|| udp_request(app, APP, INTERNET_IP, 53)).as_deref(),
        Some(format!("peer={NATBOX_PUBLIC}").as_str()),
        "udp through natbox too"
    );
    drop(dns);
    assert_eq!(
        ping(app, APP, INTERNET_IP, 3).unwrap(),
        3,
        "app pings the internet"
    );

    // The internet opens nothing inward: not app's private address, not through natbox.
    let ssh = Server::tcp(app, APP, 22).unwrap();
    assert_eq!(
        tcp_request(internet, INTERNET_CLIENT_IP, APP, 22).unwrap(),
        None,
        "the internet does not reach app"
    );
    assert_eq!(
        tcp_request(internet, INTERNET_CLIENT_IP, NATBOX_PUBLIC, 22).unwrap(),
        None,
        "the internet does not reach anything through natbox's public IP"
    );
    drop(ssh);
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops
            .get(&DropReason::UplinkUnsolicited)
            .copied()
            .unwrap_or(0)
            > 0,
        "the internet's packets to app's private address are dropped: {drops:?}"
    );
}

#[test]
fn nat_instance_traffic_default_mode() {
    require_kernel!();
    traffic(AttachMode::Auto);
}

#[test]
fn nat_instance_traffic_generic_xdp() {
    require_kernel!();
    traffic(AttachMode::Skb);
}
