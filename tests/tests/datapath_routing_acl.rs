//! Datapath I: routing with per-subnet route tables, network ACLs, the source/destination check
//! and 1:1 internet gateway translation.
//!
//! - A table of BPF_PROG_TEST_RUN cases (input packet -> verdict, output bytes, drop counter),
//!   each also checked against the reference evaluator.
//! - Random packets: the kernel and the reference evaluator must agree on every one.
//! - Real traffic through namespaces (ping, TCP, UDP) in the default mode (the TC path on veth)
//!   and generic XDP mode, hosts at Linux defaults, checked
//!   from both ends, with an ACL allow and deny.

use std::collections::BTreeMap;

use vpc_agent::datapath::AttachMode;
use vpc_common::DropReason;
use vpc_tests::{
    cases::{Case, case, check_cases, fwd},
    observe::{Seen, reference, run, run_tc_ingress},
    packet::{Packet, TCP_ACK, TCP_SYN, verify_checksums},
    require_kernel,
    rng::Rng,
    topology::{INTERNET_CLIENT_IP, Topology},
};

const FIXTURE: &str = include_str!("../fixtures/two-subnets.yaml");

fn cases() -> Vec<Case> {
    use DropReason::*;
    let web = "10.0.0.10";
    let app = "10.0.0.11";
    let db = "10.0.1.10";
    let inet = INTERNET_CLIENT_IP;
    vec![
        case(
            "web -> db ssh: ACL allows",
            "pub0",
            Packet::tcp(web, db, 40000, 22, TCP_SYN),
            fwd("priv0", web, db),
        ),
        case(
            "web -> db telnet: private ACL denies in",
            "pub0",
            Packet::tcp(web, db, 40000, 23, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "web -> db udp 5000: allowed",
            "pub0",
            Packet::udp(web, db, 40000, 5000),
            fwd("priv0", web, db),
        ),
        case(
            "web -> db udp 6000: denied",
            "pub0",
            Packet::udp(web, db, 40000, 6000),
            Seen::Dropped(AclInbound),
        ),
        case(
            "web -> db ping: allowed",
            "pub0",
            Packet::icmp_echo(web, db, 7, 1),
            fwd("priv0", web, db),
        ),
        case(
            "db -> web ssh reply: ephemeral ports allowed out",
            "priv0",
            Packet::tcp(db, web, 22, 40000, TCP_ACK),
            fwd("pub0", db, web),
        ),
        case(
            "db -> web ssh: private ACL denies out",
            "priv0",
            Packet::tcp(db, web, 40000, 22, TCP_SYN),
            Seen::Dropped(AclOutbound),
        ),
        case(
            "unknown source in the public subnet",
            "pub0",
            Packet::tcp("10.0.0.99", db, 1, 22, TCP_SYN),
            Seen::Dropped(Spoofed),
        ),
        case(
            "db's address sent from the public subnet",
            "pub0",
            Packet::tcp(db, web, 22, 40000, TCP_ACK),
            Seen::Dropped(Spoofed),
        ),
        case(
            "web -> internet: 1:1 to its public IP",
            "pub0",
            Packet::tcp(web, inet, 40000, 80, TCP_SYN),
            fwd("up0", "198.51.100.20", inet),
        ),
        case(
            "app (no public IP) -> internet",
            "pub0",
            Packet::tcp(app, inet, 40000, 80, TCP_SYN),
            Seen::Dropped(NoPublicAddress),
        ),
        case(
            "web -> internet smtp: public ACL denies out",
            "pub0",
            Packet::tcp(web, inet, 40000, 25, TCP_SYN),
            Seen::Dropped(AclOutbound),
        ),
        case(
            "db -> internet: no route in main",
            "priv0",
            Packet::udp(db, inet, 40000, 53),
            Seen::Dropped(NoRoute),
        ),
        case(
            "db -> blackholed prefix",
            "priv0",
            Packet::udp(db, "203.0.113.200", 40000, 53),
            Seen::Dropped(Blackhole),
        ),
        case(
            "web -> VPC address without subnet",
            "pub0",
            Packet::tcp(web, "10.0.2.5", 1, 2, TCP_SYN),
            Seen::Dropped(UnknownDestination),
        ),
        case(
            "web -> unregistered address in the private subnet",
            "pub0",
            Packet::tcp(web, "10.0.1.99", 1, 22, TCP_SYN),
            Seen::Dropped(UnknownDestination),
        ),
        case(
            "internet -> web's public IP: 1:1 to its private IP",
            "up0",
            Packet::tcp(inet, "198.51.100.20", 40000, 443, TCP_SYN),
            fwd("pub0", inet, web),
        ),
        case(
            "internet -> private address directly",
            "up0",
            Packet::tcp(inet, db, 40000, 22, TCP_SYN),
            Seen::Dropped(UplinkUnsolicited),
        ),
        case(
            "internet -> the router's uplink address",
            "up0",
            Packet::tcp(inet, "192.0.2.1", 40000, 22, TCP_SYN),
            Seen::Passed,
        ),
        case(
            "web -> the router's subnet address",
            "pub0",
            Packet::icmp_echo(web, "10.0.0.1", 1, 1),
            Seen::Passed,
        ),
        Case {
            in_evaluator: false,
            ..case(
                "TTL 1 is not forwarded",
                "pub0",
                Packet::tcp(web, db, 40000, 22, TCP_SYN).ttl(1),
                Seen::Dropped(TtlExceeded),
            )
        },
        case(
            "IPv4 options are kept",
            "pub0",
            Packet::tcp(web, db, 40000, 22, TCP_SYN).options(&[0x94, 4, 0, 0]),
            fwd("priv0", web, db),
        ),
    ]
}

#[test]
fn test_run_table_routing_acl_and_translation() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    check_cases(&topo, &cases());
}

#[test]
fn tc_ingress_takes_the_same_decisions_as_xdp() {
    require_kernel!();
    // Two datapaths, so that connection state evolves the same way in each.
    let xdp = Topology::build(FIXTURE, None, true).expect("topology");
    let tc = Topology::build(FIXTURE, None, true).expect("topology");
    for c in cases() {
        let (expected, _) = run(&xdp, c.ingress, &c.packet);
        let expected = match expected {
            Seen::Forwarded { src, dst, .. } => Seen::Forwarded {
                interface: String::new(),
                src,
                dst,
            },
            other => other,
        };
        let (seen, output) = run_tc_ingress(&tc, c.ingress, &c.packet);
        assert_eq!(seen, expected, "{}: tc and xdp agree", c.name);
        if let Seen::Forwarded { src, dst, .. } = seen {
            let mut q = c.packet.clone();
            q.src = src;
            q.dst = dst;
            q.ttl -= 1;
            // TC leaves the MACs to the kernel's neighbour code.
            assert_eq!(
                output,
                tc.frame(c.ingress, &q),
                "{}: tc output bytes",
                c.name
            );
        }
    }
}

#[test]
fn test_run_fragments_follow_their_first_fragment() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let (web, db) = ("10.0.0.10", "10.0.1.10");
    let first = Packet::udp(web, db, 40000, 5000).fragment(true, 0);
    let later = Packet::udp(web, db, 40000, 5000).fragment(false, 2);
    let denied_first = Packet {
        ip_id: 77,
        ..Packet::udp(web, db, 40000, 6000).fragment(true, 0)
    };
    let denied_later = Packet {
        ip_id: 77,
        ..Packet::udp(web, db, 40000, 6000).fragment(false, 2)
    };
    let orphan = Packet {
        ip_id: 999,
        ..later.clone()
    };
    assert_eq!(
        run(&topo, "pub0", &first).0,
        fwd("priv0", web, db),
        "allowed first fragment"
    );
    assert_eq!(
        run(&topo, "pub0", &later).0,
        fwd("priv0", web, db),
        "its later fragment"
    );
    assert_eq!(
        run(&topo, "pub0", &denied_first).0,
        Seen::Dropped(DropReason::AclInbound)
    );
    // The denied first fragment created no connection: the later one has none to follow.
    assert_eq!(
        run(&topo, "pub0", &denied_later).0,
        Seen::Dropped(DropReason::Fragment),
        "follows the denied first"
    );
    assert_eq!(
        run(&topo, "pub0", &orphan).0,
        Seen::Dropped(DropReason::Fragment),
        "no first fragment seen"
    );
}

#[test]
fn kernel_agrees_with_the_reference_evaluator_on_random_packets() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let addrs = [
        "10.0.0.10",
        "10.0.0.11",
        "10.0.1.10",
        "10.0.0.1",
        "10.0.1.1",
        "10.0.0.99",
        "10.0.1.99",
        "10.0.7.7",
        "198.51.100.20",
        "198.51.100.21",
        INTERNET_CLIENT_IP,
        "192.0.2.1",
        "203.0.113.200",
        "8.8.8.8",
    ];
    let ports = [
        22u16, 23, 25, 53, 80, 443, 1023, 1024, 5000, 5100, 5101, 40000, 65535,
    ];
    let ingresses = ["pub0", "priv0", "up0"];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..600 {
        let ingress = *rng.pick(&ingresses);
        // Mostly sources that belong on the ingress, so that packets get past the source check.
        let natives: &[&str] = match ingress {
            "pub0" => &["10.0.0.10", "10.0.0.11"],
            "priv0" => &["10.0.1.10"],
            _ => &[INTERNET_CLIENT_IP, "8.8.8.8"],
        };
        let src = if rng.next().is_multiple_of(4) {
            *rng.pick(&addrs)
        } else {
            *rng.pick(natives)
        };
        let dst = *rng.pick(&addrs);
        if ingress != "up0" && dst == "192.0.2.1" {
            // The router's own uplink address seen from inside: the definition does not know
            // it (the kernel's FIB calls it local and the datapath drops it as fib_failed).
            continue;
        }
        let (sport, dport) = (*rng.pick(&ports), *rng.pick(&ports));
        let packet = match rng.next() % 3 {
            0 => Packet::tcp(src, dst, sport, dport, TCP_SYN),
            1 => Packet::udp(src, dst, sport, dport),
            _ => Packet::icmp_echo(src, dst, sport, 1),
        };
        let (seen, _) = run(&topo, ingress, &packet);
        let expected = if ingress == "up0" && src == "192.0.2.1" {
            // The router's own uplink address as a source from the internet: the definition
            // does not know it, the datapath learns it from the interface (anti-spoofing).
            Seen::Dropped(DropReason::UplinkSpoofed)
        } else {
            reference(&topo, ingress, &packet)
        };
        assert_eq!(seen, expected, "packet #{i} on {ingress}: {packet:?}");
        let key = match &seen {
            Seen::Forwarded { interface, .. } => format!("forwarded:{interface}"),
            Seen::Dropped(r) => format!("dropped:{}", r.name()),
            Seen::Passed => "passed".into(),
        };
        *by_outcome.entry(key).or_default() += 1;
    }
    eprintln!("outcomes: {by_outcome:?}");
    assert!(
        by_outcome.len() >= 8,
        "the random packets cover many paths: {by_outcome:?}"
    );
}

/// Real traffic in a topology attached in `mode`.
fn traffic_through_the_router(mode: AttachMode) {
    use vpc_tests::traffic::{Server, ping, retry, tcp_request, udp_request};
    let topo = Topology::build(FIXTURE, Some(mode), false).expect("topology");
    let public = &topo.port_named("pub0").ns;
    let private = &topo.port_named("priv0").ns;
    let internet = &topo.port_named("up0").ns;
    let (web, db) = ("10.0.0.10", "10.0.1.10");

    // ICMP both ways (the private ACL allows ICMP in and out within the VPC).
    assert_eq!(ping(public, web, db, 3).unwrap(), 3, "web pings db");
    assert_eq!(ping(private, db, web, 3).unwrap(), 3, "db pings web");

    // TCP allowed (22) and denied (23), seen from both ends: the server reports the peer.
    let ssh = Server::tcp(private, db, 22).unwrap();
    let telnet = Server::tcp(private, db, 23).unwrap();
    assert_eq!(
        retry(|| tcp_request(public, web, db, 22)).as_deref(),
        Some("peer=10.0.0.10"),
        "ssh from web reaches db, and db's answer comes back"
    );
    assert_eq!(
        tcp_request(public, web, db, 23).unwrap(),
        None,
        "telnet is denied by the private ACL"
    );
    drop((ssh, telnet));

    // UDP allowed (5000) and denied (6000).
    let allowed = Server::udp(private, db, 5000).unwrap();
    let denied = Server::udp(private, db, 6000).unwrap();
    assert_eq!(
        retry(|| udp_request(public, web, db, 5000)).as_deref(),
        Some("peer=10.0.0.10")
    );
    assert_eq!(
        udp_request(public, web, db, 6000).unwrap(),
        None,
        "udp 6000 is denied"
    );
    drop((allowed, denied));

    // The internet sees web's public IP, and reaches web through it.
    let inet = Server::tcp(internet, INTERNET_CLIENT_IP, 80).unwrap();
    assert_eq!(
        retry(|| tcp_request(public, web, INTERNET_CLIENT_IP, 80)).as_deref(),
        Some("peer=198.51.100.20"),
        "outbound through the internet gateway is translated 1:1"
    );
    drop(inet);
    let https = Server::tcp(public, web, 443).unwrap();
    assert_eq!(
        retry(|| tcp_request(internet, INTERNET_CLIENT_IP, "198.51.100.20", 443)).as_deref(),
        Some(format!("peer={INTERNET_CLIENT_IP}").as_str()),
        "inbound to the public IP reaches web"
    );
    assert_eq!(
        tcp_request(internet, INTERNET_CLIENT_IP, web, 443).unwrap(),
        None,
        "the private address is not reachable from the internet"
    );
    drop(https);
    // app has no public IP: it cannot use the internet gateway.
    assert_eq!(
        tcp_request(public, "10.0.0.11", INTERNET_CLIENT_IP, 80).unwrap(),
        None
    );

    let drops = topo.datapath.drop_counters().unwrap();
    for reason in [DropReason::AclInbound, DropReason::NoPublicAddress] {
        assert!(
            drops.get(&reason).copied().unwrap_or(0) > 0,
            "{} counted: {drops:?}",
            reason.name()
        );
    }
    assert_eq!(
        drops.get(&DropReason::Unapproved),
        None,
        "nothing slipped through the kernel: {drops:?}"
    );
}

#[test]
fn traffic_default_mode_tc_on_veth() {
    require_kernel!();
    traffic_through_the_router(AttachMode::Auto);
}

#[test]
fn traffic_generic_xdp() {
    require_kernel!();
    traffic_through_the_router(AttachMode::Skb);
}

#[test]
fn the_kernel_never_forwards_into_a_subnet_unchecked() {
    require_kernel!();
    use vpc_tests::{
        netns::{NetNs, veth},
        traffic::{Server, udp_request},
    };
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    // An interface the agent does not manage, whose traffic the kernel routes by itself.
    let outsider = NetNs::new("o").unwrap();
    veth(&topo.router, "mgmt0", &outsider, "eth0").unwrap();
    topo.router
        .ip(&["addr", "add", "10.99.0.1/24", "dev", "mgmt0"])
        .unwrap();
    outsider
        .ip(&["addr", "add", "10.99.0.2/24", "dev", "eth0"])
        .unwrap();
    outsider
        .ip(&["route", "add", "default", "via", "10.99.0.1"])
        .unwrap();

    let private = &topo.port_named("priv0").ns;
    let server = Server::udp(private, "10.0.1.10", 5000).unwrap();
    let before = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        udp_request(&outsider, "10.99.0.2", "10.0.1.10", 5000).unwrap(),
        None,
        "the kernel-forwarded datagram never reaches the subnet"
    );
    drop(server);
    let after = topo.datapath.drop_counters().unwrap();
    let unapproved =
        |d: &BTreeMap<DropReason, u64>| d.get(&DropReason::Unapproved).copied().unwrap_or(0);
    assert!(
        unapproved(&after) > unapproved(&before),
        "counted by the egress guard: {after:?}"
    );
}

#[test]
fn network_acls_hold_128_rules_a_direction() {
    require_kernel!();
    // 127 deny rules that do not match, then an allow for one port: the match is the last rule.
    let mut rules = String::new();
    for n in 1..=127 {
        rules.push_str(&format!(
            "          - {{ rule: {n}, protocol: tcp, ports: {}, cidr: 0.0.0.0/0, action: deny }}\n",
            10000 + n
        ));
    }
    rules.push_str(
        "          - { rule: 200, protocol: tcp, ports: 22, cidr: 10.0.0.0/24, action: allow }\n",
    );
    let inbound = [
        "          - { rule: 100, protocol: tcp, ports: 22, cidr: 10.0.0.0/24, action: allow }\n",
        "          - { rule: 110, protocol: icmp, cidr: 10.0.0.0/16, action: allow }\n",
        "          - { rule: 120, protocol: udp, ports: 5000-5100, cidr: 10.0.0.0/24, action: allow }\n",
        "          - { rule: 130, protocol: tcp, ports: 1024-65535, cidr: 10.0.0.0/16, action: allow }\n",
    ]
    .concat();
    let yaml = FIXTURE.replace(&inbound, &rules);
    assert_ne!(yaml, FIXTURE, "fixture rewritten");
    let topo = Topology::build(&yaml, None, true).expect("topology with 128 inbound rules");
    let (web, db) = ("10.0.0.10", "10.0.1.10");
    let (seen, _) = run(&topo, "pub0", &Packet::tcp(web, db, 40000, 22, TCP_SYN));
    assert_eq!(
        seen,
        fwd("priv0", web, db),
        "allowed by rule 200, the 128th"
    );
    let (seen, _) = run(&topo, "pub0", &Packet::tcp(web, db, 40000, 10127, TCP_SYN));
    assert_eq!(
        seen,
        Seen::Dropped(DropReason::AclInbound),
        "denied by rule 127"
    );
    let (seen, _) = run(&topo, "pub0", &Packet::tcp(web, db, 40000, 23, TCP_SYN));
    assert_eq!(
        seen,
        Seen::Dropped(DropReason::AclInbound),
        "implicit deny after 128 rules"
    );
}

#[test]
fn peering_continues_in_the_peer_vpcs_routing() {
    require_kernel!();
    let topo = Topology::build(include_str!("../fixtures/peering.yaml"), None, true)
        .expect("two peered VPCs");
    let (app, batch, pg) = ("10.0.0.10", "10.0.0.11", "10.1.0.20");
    use DropReason::*;
    let cases = [
        (
            "app -> pg:5432 over the peering",
            "app0",
            Packet::tcp(app, pg, 40000, 5432, TCP_SYN),
            fwd("shr0", app, pg),
        ),
        (
            "pg answers",
            "shr0",
            Packet::tcp(pg, app, 5432, 40000, TCP_SYN | TCP_ACK),
            fwd("app0", pg, app),
        ),
        (
            "app -> pg:22: the peer's ACL denies it in",
            "app0",
            Packet::tcp(app, pg, 40001, 22, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        (
            "pg -> app:22: the peer's ACL denies it out",
            "shr0",
            Packet::tcp(pg, app, 40002, 22, TCP_SYN),
            Seen::Dropped(AclOutbound),
        ),
        (
            "app -> unregistered address in the peer",
            "app0",
            Packet::tcp(app, "10.1.0.99", 40003, 5432, TCP_SYN),
            Seen::Dropped(UnknownDestination),
        ),
        (
            "app -> peer block without subnet",
            "app0",
            Packet::tcp(app, "10.1.5.5", 40004, 5432, TCP_SYN),
            Seen::Dropped(UnknownDestination),
        ),
        (
            "batch -> pg:5432: the ACL allows 10.0.0.0/16, but not a member of sg:app/default",
            "app0",
            Packet::tcp(batch, pg, 40005, 5432, TCP_SYN),
            Seen::Dropped(SecurityGroupInbound),
        ),
    ];
    check_peering_cases(&topo, &cases);
}

/// The peering fixture with the accepter's side of pcx-1 gone: `shared` neither declares it
/// nor routes to it (nor names app's group, which needs an accepted connection).
fn one_sided_peering() -> String {
    let mut yaml = include_str!("../fixtures/peering.yaml").to_owned();
    for (from, to) in [
        (
            "    peering_connections:\n      - { name: pcx-1, peer_vpc: app }\n",
            "",
        ),
        (
            "{ destination: 10.0.0.0/16, target: pcx-1 }",
            "{ destination: 10.0.0.0/16, target: blackhole }",
        ),
        ("source: sg:app/default", "source: 10.0.0.0/16"),
    ] {
        assert_eq!(yaml.matches(from).count(), 1, "fixture holds {from:?} once");
        yaml = yaml.replace(from, to);
    }
    yaml
}

#[test]
fn a_one_sided_peering_refuses_the_packet() {
    require_kernel!();
    let topo = Topology::build(&one_sided_peering(), None, true).expect("one-sided peering");
    let warnings: Vec<String> = topo.config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings.len(),
        1,
        "the declaration without acceptance is a warning: {warnings:?}"
    );
    assert!(
        warnings[0].contains("peering connection 'pcx-1' is not accepted"),
        "{warnings:?}"
    );
    let (app, pg) = ("10.0.0.10", "10.1.0.20");
    let cases = [(
        "app -> pg:5432: the route to the unaccepted pcx-1 is a blackhole",
        "app0",
        Packet::tcp(app, pg, 40000, 5432, TCP_SYN),
        Seen::Dropped(DropReason::Blackhole),
    )];
    check_peering_cases(&topo, &cases);
}

/// Each case through the kernel, and (new connections and drops) through the evaluator.
fn check_peering_cases(topo: &Topology, cases: &[(&str, &str, Packet, Seen)]) {
    for (what, ingress, packet, expect) in cases {
        let (seen, out) = run(topo, ingress, packet);
        assert_eq!(&seen, expect, "{what}: kernel");
        if *ingress == "app0" || matches!(expect, Seen::Dropped(_)) {
            // The evaluator is stateless: it can judge new connections, not replies.
            assert_eq!(
                &reference(topo, ingress, packet),
                expect,
                "{what}: evaluator"
            );
        }
        if let Seen::Forwarded { .. } = seen {
            verify_checksums(&out).expect("checksums");
        }
    }
}

/// Real traffic between two VPCs: over the accepted peering both ways as their ACLs and groups
/// say; with the accepter's side gone, nothing.
#[test]
fn traffic_over_a_peering_only_once_both_sides_declare_it() {
    require_kernel!();
    use vpc_tests::traffic::{Server, retry, tcp_request};
    let (app, batch, pg) = ("10.0.0.10", "10.0.0.11", "10.1.0.20");
    {
        let yaml = include_str!("../fixtures/peering.yaml");
        let topo = Topology::build(yaml, Some(AttachMode::Auto), false).expect("peered VPCs");
        let (apps, shared) = (&topo.port_named("app0").ns, &topo.port_named("shr0").ns);
        let server = Server::tcp(shared, pg, 5432).unwrap();
        assert_eq!(
            retry(|| tcp_request(apps, app, pg, 5432)).as_deref(),
            Some("peer=10.0.0.10"),
            "app reaches pg over pcx-1, untranslated, and pg's answer comes back"
        );
        assert_eq!(
            tcp_request(apps, batch, pg, 5432).unwrap(),
            None,
            "batch-1 is not in sg:app/default"
        );
        drop(server);
        let drops = topo.datapath.drop_counters().unwrap();
        assert!(
            drops
                .get(&DropReason::SecurityGroupInbound)
                .copied()
                .unwrap_or(0)
                > 0,
            "{drops:?}"
        );
    }
    let topo = Topology::build(&one_sided_peering(), Some(AttachMode::Auto), false)
        .expect("one-sided peering");
    let (apps, shared) = (&topo.port_named("app0").ns, &topo.port_named("shr0").ns);
    let server = Server::tcp(shared, pg, 5432).unwrap();
    assert_eq!(
        tcp_request(apps, app, pg, 5432).unwrap(),
        None,
        "a peering only app declares carries nothing"
    );
    drop(server);
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops.get(&DropReason::Blackhole).copied().unwrap_or(0) > 0,
        "refused at the route to the unaccepted connection: {drops:?}"
    );
}
