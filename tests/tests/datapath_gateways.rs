//! Datapath V: gateways that carry packets untranslated (the VPN gateway), on the AWS guide's
//! scenarios 3 and 4 (`examples/vpn-public-private.yaml`, `examples/vpn-private-only.yaml`).
//!
//! - BPF_PROG_TEST_RUN tables (input packet -> verdict, exact output bytes, one drop reason),
//!   each case also held to the reference evaluator, with hostile cases: sources spoofed from
//!   the VPN side (outside its networks, a VPC address), the VPN side aiming at public and
//!   elastic addresses and beyond the VPC, truncated frames on the gateway's link.
//! - Real traffic through namespaces (ping, TCP, UDP) checked from both ends: the VPN-only
//!   subnet reaches the office and not the internet; the public subnet reaches the internet and
//!   not the office; the office reaches the VPN-only instances and nothing else; the kernel's
//!   own forwarding never carries anything into the office.

use vpc_agent::datapath::AttachMode;
use vpc_common::DropReason;
use vpc_tests::{
    cases::{Case, case, check_cases, fwd},
    observe::{Seen, reference, run, run_tc_ingress},
    packet::{Packet, TCP_ACK, TCP_SYN},
    require_kernel,
    topology::{INTERNET_CLIENT_IP, INTERNET_IP, Topology, gateway_link},
};

const SCENARIO_3: &str = include_str!("../../examples/vpn-public-private.yaml");
const SCENARIO_4: &str = include_str!("../../examples/vpn-private-only.yaml");

const WEB: &str = "10.0.0.10";
const WEB_PUBLIC: &str = "198.51.100.20";
const DB: &str = "10.0.1.10";
const OFFICE: &str = "172.16.0.10";

fn scenario_3_cases() -> Vec<Case> {
    use DropReason::*;
    let router_on_vpn = gateway_link(0).0.to_string();
    vec![
        case(
            "VPN-only db -> office ssh: out of the VPN link, private source kept",
            "eni-db1",
            Packet::tcp(DB, OFFICE, 40000, 22, TCP_SYN),
            fwd("vpn0", DB, OFFICE),
        ),
        case(
            "office -> db ssh: the VPN-only ACL and db's group allow it",
            "vpn0",
            Packet::tcp(OFFICE, DB, 40001, 22, TCP_SYN),
            fwd("eni-db1", OFFICE, DB),
        ),
        case(
            "office -> db ping",
            "vpn0",
            Packet::icmp_echo(OFFICE, DB, 9, 1),
            fwd("eni-db1", OFFICE, DB),
        ),
        case(
            "office -> db telnet: the VPN-only ACL denies it",
            "vpn0",
            Packet::tcp(OFFICE, DB, 40002, 23, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "office -> db mssql: only the web servers may",
            "vpn0",
            Packet::tcp(OFFICE, DB, 40003, 1433, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "office -> web: the public subnet is not routed to the office",
            "vpn0",
            Packet::tcp(OFFICE, WEB, 40004, 22, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "VPN side, source outside the customer network",
            "vpn0",
            Packet::tcp("172.17.0.10", DB, 40005, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "VPN side, source a VPC address (db's own)",
            "vpn0",
            Packet::tcp(DB, DB, 40006, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "VPN side, source the internet client",
            "vpn0",
            Packet::tcp(INTERNET_CLIENT_IP, DB, 40007, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "office -> web's public IP: nothing from the VPN reaches public addresses",
            "vpn0",
            Packet::tcp(OFFICE, WEB_PUBLIC, 40008, 443, TCP_SYN),
            Seen::Dropped(GatewayTransit),
        ),
        case(
            "office -> the internet through the VPC: no transit",
            "vpn0",
            Packet::tcp(OFFICE, INTERNET_IP, 40009, 443, TCP_SYN),
            Seen::Dropped(GatewayTransit),
        ),
        case(
            "office -> a VPC address without an instance",
            "vpn0",
            Packet::tcp(OFFICE, "10.0.1.99", 40010, 22, TCP_SYN),
            Seen::Dropped(UnknownDestination),
        ),
        Case {
            in_evaluator: false,
            ..case(
                "office -> the router's own address on the link: the router's",
                "vpn0",
                Packet::icmp_echo(OFFICE, &router_on_vpn, 3, 1),
                Seen::Passed,
            )
        },
        case(
            "VPN-only db -> internet: its 0.0.0.0/0 leads to the VPN, not the uplink",
            "eni-db1",
            Packet::tcp(DB, INTERNET_IP, 40011, 443, TCP_SYN),
            fwd("vpn0", DB, INTERNET_IP),
        ),
        case(
            "VPN-only db -> internet dns: its ACL allows only HTTP(S) beyond the office",
            "eni-db1",
            Packet::udp(DB, INTERNET_CLIENT_IP, 40012, 53),
            Seen::Dropped(AclOutbound),
        ),
        case(
            "web -> internet https: 1:1 out of the uplink",
            "eni-web1",
            Packet::tcp(WEB, INTERNET_IP, 40013, 443, TCP_SYN),
            fwd("uplink0", WEB_PUBLIC, INTERNET_IP),
        ),
        case(
            "web -> office https: the public table sends it to the internet, translated",
            "eni-web1",
            Packet::tcp(WEB, OFFICE, 40014, 443, TCP_SYN),
            fwd("uplink0", WEB_PUBLIC, OFFICE),
        ),
        case(
            "internet -> the office's addresses on the uplink: spoofed (a private network)",
            "uplink0",
            Packet::tcp(OFFICE, WEB_PUBLIC, 40015, 443, TCP_SYN),
            Seen::Dropped(UplinkSpoofed),
        ),
        case(
            "db -> office reply leg of the office's ssh",
            "eni-db1",
            Packet::tcp(DB, OFFICE, 22, 40001, TCP_ACK),
            fwd("vpn0", DB, OFFICE),
        ),
    ]
}

#[test]
fn test_run_scenario_3_vpn_gateway() {
    require_kernel!();
    let topo = Topology::build(SCENARIO_3, None, true).expect("topology");
    check_cases(&topo, &scenario_3_cases());
}

#[test]
fn tc_ingress_takes_the_same_gateway_decisions_as_xdp() {
    require_kernel!();
    // The VPN gateway's cases and the gateway endpoint's: both kinds of gateway link.
    for (fixture, cases) in [
        (SCENARIO_3, scenario_3_cases()),
        (ENDPOINT, endpoint_cases()),
    ] {
        let xdp = Topology::build(fixture, None, true).expect("topology");
        let tc = Topology::build(fixture, None, true).expect("topology");
        for c in cases {
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
}

#[test]
fn test_run_truncated_frames_on_the_gateway_link_are_malformed() {
    require_kernel!();
    let topo = Topology::build(SCENARIO_3, None, true).expect("topology");
    let full = topo.frame("vpn0", &Packet::tcp(OFFICE, DB, 40020, 22, TCP_SYN));
    let port = topo.port_named("vpn0");
    // Inside the IPv4 header, and inside the TCP header (ports present, flags not).
    for cut in [14 + 10, 14 + 19, 14 + 20 + 6] {
        let before = topo.datapath.drop_counters().unwrap();
        let out = {
            let _inside = topo.router.enter().unwrap();
            vpc_tests::testrun::run_xdp(topo.datapath.xdp(), &full[..cut], Some(port.ifindex))
                .unwrap()
        };
        let after = topo.datapath.drop_counters().unwrap();
        assert_eq!(
            out.verdict,
            vpc_tests::testrun::Verdict::Drop,
            "cut at {cut}"
        );
        let grown = |r: DropReason| {
            after.get(&r).copied().unwrap_or(0) - before.get(&r).copied().unwrap_or(0)
        };
        assert_eq!(grown(DropReason::Malformed), 1, "cut at {cut}: {after:?}");
    }
}

#[test]
fn test_run_scenario_4_private_subnet_and_vpn_only() {
    require_kernel!();
    use DropReason::*;
    let topo = Topology::build(SCENARIO_4, None, true).expect("topology");
    let (app1, app2) = ("10.0.0.10", "10.0.0.11");
    let cases = vec![
        case(
            "app-1 -> office ssh: the propagated route",
            "eni-app1",
            Packet::tcp(app1, OFFICE, 40000, 22, TCP_SYN),
            fwd("vpn0", app1, OFFICE),
        ),
        case(
            "app-1 -> internet: the ACL allows only the office",
            "eni-app1",
            Packet::tcp(app1, INTERNET_IP, 40001, 443, TCP_SYN),
            Seen::Dropped(AclOutbound),
        ),
        case(
            "office -> app-2 ssh",
            "vpn0",
            Packet::tcp(OFFICE, app2, 40002, 22, TCP_SYN),
            fwd("eni-app2", OFFICE, app2),
        ),
        case(
            "office -> app-2 http: the ACL does not allow it",
            "vpn0",
            Packet::tcp(OFFICE, app2, 40003, 80, TCP_SYN),
            Seen::Dropped(AclInbound),
        ),
        case(
            "office -> app-1 udp: the ACL does not allow it",
            "vpn0",
            Packet::udp(OFFICE, app1, 40004, 53),
            Seen::Dropped(AclInbound),
        ),
        case(
            "VPN side, spoofed VPC source",
            "vpn0",
            Packet::tcp(app2, app1, 40005, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
    ];
    check_cases(&topo, &cases);
}

/// Real traffic in scenario 3, attached in `mode`.
fn scenario_3_traffic(mode: AttachMode) {
    use vpc_tests::traffic::{Server, ping, retry, tcp_request, udp_request};
    let topo = Topology::build(SCENARIO_3, Some(mode), false).expect("topology");
    let office = &topo.port_named("vpn0").ns;
    let db = &topo.port_named("eni-db1").ns;
    let web = &topo.port_named("eni-web1").ns;
    let internet = &topo.port_named("uplink0").ns;

    // The VPN-only subnet and the office, both ways, private addresses on both ends.
    assert_eq!(ping(office, OFFICE, DB, 3).unwrap(), 3, "office pings db");
    assert_eq!(ping(db, DB, OFFICE, 3).unwrap(), 3, "db pings the office");
    let ssh = Server::tcp(db, DB, 22).unwrap();
    assert_eq!(
        retry(|| tcp_request(office, OFFICE, DB, 22)).as_deref(),
        Some(format!("peer={OFFICE}").as_str()),
        "ssh from the office reaches db untranslated, and its answer comes back"
    );
    let file_share = Server::tcp(office, OFFICE, 445).unwrap();
    assert_eq!(
        retry(|| tcp_request(db, DB, OFFICE, 445)).as_deref(),
        Some(format!("peer={DB}").as_str()),
        "db reaches a server in the office, which sees db's private address"
    );
    let dns = Server::udp(office, OFFICE, 53).unwrap();
    assert_eq!(
        retry(|| udp_request(db, DB, OFFICE, 53)).as_deref(),
        Some(format!("peer={DB}").as_str()),
        "udp from db to the office"
    );
    assert_eq!(
        tcp_request(office, OFFICE, DB, 23).unwrap(),
        None,
        "telnet from the office is denied by the VPN-only ACL"
    );
    drop((ssh, file_share, dns));

    // The VPN-only subnet does not reach the internet: its default route is the VPN.
    let https = Server::tcp(internet, INTERNET_IP, 443).unwrap();
    assert_eq!(
        tcp_request(db, DB, INTERNET_IP, 443).unwrap(),
        None,
        "db cannot reach the internet"
    );
    // The public subnet does.
    assert_eq!(
        retry(|| tcp_request(web, WEB, INTERNET_IP, 443)).as_deref(),
        Some(format!("peer={WEB_PUBLIC}").as_str()),
        "web reaches the internet as its public IP"
    );
    drop(https);
    // The public subnet does not reach the office: its table has no route to the VPN, and
    // what the internet sends back towards the office is not the VPC's to forward.
    let office_https = Server::tcp(office, OFFICE, 443).unwrap();
    assert_eq!(
        tcp_request(web, WEB, OFFICE, 443).unwrap(),
        None,
        "web does not reach the office"
    );
    drop(office_https);
    // The office reaches nothing but the VPN-only instances.
    let web_https = Server::tcp(web, WEB, 443).unwrap();
    assert_eq!(
        tcp_request(office, OFFICE, WEB_PUBLIC, 443).unwrap(),
        None,
        "the office does not reach web's public IP"
    );
    drop(web_https);
    // The router's kernel would forward the internet's packets to the office by its own
    // routes: the egress guard on the VPN link stops them.
    let office_https = Server::tcp(office, OFFICE, 443).unwrap();
    assert_eq!(
        tcp_request(internet, INTERNET_CLIENT_IP, OFFICE, 443).unwrap(),
        None,
        "the internet does not reach the office through the router"
    );
    drop(office_https);

    let drops = topo.datapath.drop_counters().unwrap();
    for reason in [DropReason::AclInbound, DropReason::GatewayTransit] {
        assert!(
            drops.get(&reason).copied().unwrap_or(0) > 0,
            "{} counted: {drops:?}",
            reason.name()
        );
    }
    assert!(
        drops.get(&DropReason::Unapproved).copied().unwrap_or(0) > 0,
        "the internet's packet towards the office, which the router's kernel forwarded, is \
         stopped by the egress guard on the VPN link: {drops:?}"
    );
}

#[test]
fn scenario_3_traffic_default_mode() {
    require_kernel!();
    scenario_3_traffic(AttachMode::Auto);
}

#[test]
fn scenario_3_traffic_generic_xdp() {
    require_kernel!();
    scenario_3_traffic(AttachMode::Skb);
}

#[test]
fn scenario_4_traffic() {
    require_kernel!();
    use vpc_tests::traffic::{Server, ping, retry, tcp_request};
    let topo = Topology::build(SCENARIO_4, Some(AttachMode::Auto), false).expect("topology");
    let office = &topo.port_named("vpn0").ns;
    let app1 = &topo.port_named("eni-app1").ns;
    let app2 = &topo.port_named("eni-app2").ns;
    assert_eq!(
        ping(office, OFFICE, "10.0.0.10", 3).unwrap(),
        3,
        "office pings app-1"
    );
    assert_eq!(
        ping(app2, "10.0.0.11", OFFICE, 3).unwrap(),
        3,
        "app-2 pings the office"
    );
    let ssh = Server::tcp(app2, "10.0.0.11", 22).unwrap();
    assert_eq!(
        retry(|| tcp_request(office, OFFICE, "10.0.0.11", 22)).as_deref(),
        Some(format!("peer={OFFICE}").as_str()),
        "ssh from the office reaches app-2"
    );
    drop(ssh);
    let office_ssh = Server::tcp(office, OFFICE, 22).unwrap();
    assert_eq!(
        retry(|| tcp_request(app1, "10.0.0.10", OFFICE, 22)).as_deref(),
        Some("peer=10.0.0.10"),
        "app-1 reaches the office"
    );
    drop(office_ssh);
}

/// Random packets on every interface of scenario 3 (the VPN's link included): the kernel and
/// the reference evaluator agree on each.
#[test]
fn kernel_agrees_with_the_reference_evaluator_on_random_packets_with_a_vpn() {
    require_kernel!();
    use std::collections::BTreeMap;
    use vpc_tests::rng::Rng;
    let topo = Topology::build(SCENARIO_3, None, true).expect("topology");
    let addrs = [
        WEB,
        DB,
        "10.0.0.1",
        "10.0.1.1",
        "10.0.0.99",
        "10.0.1.99",
        "10.0.7.7",
        WEB_PUBLIC,
        "198.51.100.21",
        OFFICE,
        "172.16.9.9",
        "172.17.0.10",
        INTERNET_CLIENT_IP,
        INTERNET_IP,
        "8.8.8.8",
    ];
    let ports = [22u16, 23, 53, 80, 443, 445, 1433, 3389, 32768, 40000, 65535];
    let ingresses = ["eni-web1", "eni-db1", "uplink0", "vpn0"];
    let mut rng = Rng(0x5eed_4321_dcba_0003);
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..800 {
        let ingress = *rng.pick(&ingresses);
        // Mostly sources that belong on the ingress, so that packets get past the source check.
        let natives: &[&str] = match ingress {
            "eni-web1" => &[WEB],
            "eni-db1" => &[DB],
            "vpn0" => &[OFFICE, "172.16.9.9"],
            _ => &[INTERNET_CLIENT_IP, "8.8.8.8"],
        };
        let src = if rng.next().is_multiple_of(4) {
            *rng.pick(&addrs)
        } else {
            *rng.pick(natives)
        };
        let dst = *rng.pick(&addrs);
        let (sport, dport) = (*rng.pick(&ports), *rng.pick(&ports));
        let packet = match rng.next() % 3 {
            0 => Packet::tcp(src, dst, sport, dport, TCP_SYN),
            1 => Packet::udp(src, dst, sport, dport),
            _ => Packet::icmp_echo(src, dst, sport, 1),
        };
        let (seen, _) = run(&topo, ingress, &packet);
        assert_eq!(
            seen,
            reference(&topo, ingress, &packet),
            "packet #{i} on {ingress}: {packet:?}"
        );
        let key = match &seen {
            Seen::Forwarded { interface, .. } => format!("forwarded:{interface}"),
            Seen::Dropped(r) => format!("dropped:{}", r.name()),
            Seen::Passed => "passed".into(),
        };
        *by_outcome.entry(key).or_default() += 1;
    }
    eprintln!("outcomes: {by_outcome:?}");
    for outcome in [
        "forwarded:vpn0",
        "forwarded:eni-db1",
        "forwarded:uplink0",
        "dropped:gateway_spoofed",
        "dropped:gateway_transit",
    ] {
        assert!(
            by_outcome.contains_key(outcome),
            "the random packets reach {outcome}: {by_outcome:?}"
        );
    }
}

/// The daemon on scenario 3: it attaches the TC programs (ingress and the egress guard) to the
/// VPN's link, puts the link in the fail-closed guard, and the office and the VPN-only subnet
/// reach each other; once the agent is gone with its pins, nothing crosses the router
/// between the office and the VPC, nor from the internet to the office.
#[test]
fn the_daemon_attaches_and_guards_the_vpn_link() {
    require_kernel!();
    use std::time::Duration;
    use vpc_tests::{
        agent::{Agent, Bpffs, Scratch, programs_on},
        traffic::{Server, ping, retry, tcp_request},
    };
    let topo = Topology::build(SCENARIO_3, None, false).expect("topology");
    let scratch = Scratch::new().unwrap();
    let config = scratch.write("vpc.yaml", SCENARIO_3).unwrap();
    let bpffs = Bpffs::new().unwrap();
    let office = &topo.port_named("vpn0").ns;
    let db = &topo.port_named("eni-db1").ns;
    let internet = &topo.port_named("uplink0").ns;
    let mut agent = Agent::spawn(
        &topo.router,
        &config,
        &bpffs,
        scratch.dir.join("a.log"),
        &[],
    )
    .unwrap();
    agent.wait_running().expect("agent runs");
    assert_eq!(
        programs_on(&topo.router, "vpn0"),
        (0, 1, 1),
        "tcx ingress and the egress guard on the VPN link (a veth: no XDP)"
    );
    assert_eq!(
        programs_on(&topo.router, "uplink0"),
        (0, 1, 0),
        "no egress guard on the uplink"
    );
    let table = vpc_agent::daemon::guard::table_name(&bpffs.path);
    let guard = topo
        .router
        .exec("nft", &["list", "table", "inet", &table])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&guard.stdout).contains("\"vpn0\""),
        "the VPN link is in the fail-closed guard: {}",
        String::from_utf8_lossy(&guard.stdout)
    );
    assert_eq!(ping(office, OFFICE, DB, 3).unwrap(), 3, "office pings db");
    let ssh = Server::tcp(db, DB, 22).unwrap();
    assert_eq!(
        retry(|| tcp_request(office, OFFICE, DB, 22)).as_deref(),
        Some(format!("peer={OFFICE}").as_str())
    );
    drop(ssh);

    std::fs::remove_dir_all(bpffs.path.join("links")).expect("remove pinned links");
    agent.kill9().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ping(office, OFFICE, DB, 2).unwrap(), 0, "office -> db");
    let office_https = Server::tcp(office, OFFICE, 443).unwrap();
    assert_eq!(
        tcp_request(internet, INTERNET_CLIENT_IP, OFFICE, 443).unwrap(),
        None,
        "internet -> office through the router"
    );
    drop(office_https);
    let detach =
        vpc_tests::agent::cli_in(&topo.router, &["detach", "--bpffs", bpffs.arg()]).unwrap();
    assert!(
        detach.status.success(),
        "detach: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
    let gone = topo
        .router
        .exec_status("nft", &["list", "table", "inet", &table])
        .unwrap();
    assert!(!gone.status.success(), "detach removed the guard");
}

// ----- Gateway endpoints (`tests/fixtures/gateway-endpoint.yaml`) -----

const ENDPOINT: &str = include_str!("../fixtures/gateway-endpoint.yaml");

const APP: &str = "10.0.1.10";
/// Hosts behind the endpoint, one in each CIDR of its prefix list (`gateway_host`).
const S3_A: &str = "198.51.100.74";
const S3_B: &str = "203.0.113.138";

fn endpoint_cases() -> Vec<Case> {
    use DropReason::*;
    vec![
        case(
            "app -> s3 https: out of the endpoint's link, private source kept",
            "eni-app1",
            Packet::tcp(APP, S3_A, 41000, 443, TCP_SYN),
            fwd("svc0", APP, S3_A),
        ),
        case(
            "app -> the list's second CIDR",
            "eni-app1",
            Packet::tcp(APP, S3_B, 41001, 443, TCP_SYN),
            fwd("svc0", APP, S3_B),
        ),
        case(
            "app -> s3 ping: the group allows ICMP to the list",
            "eni-app1",
            Packet::icmp_echo(APP, S3_B, 7, 1),
            fwd("svc0", APP, S3_B),
        ),
        case(
            "app -> s3 http: the group allows only HTTPS to the list",
            "eni-app1",
            Packet::tcp(APP, S3_A, 41002, 80, TCP_SYN),
            Seen::Dropped(SecurityGroupOutbound),
        ),
        case(
            "app -> https outside the list: the group refuses it",
            "eni-app1",
            Packet::tcp(APP, INTERNET_IP, 41003, 443, TCP_SYN),
            Seen::Dropped(SecurityGroupOutbound),
        ),
        case(
            "app -> dns outside the list: the group allows it, the private table has no route",
            "eni-app1",
            Packet::udp(APP, INTERNET_IP, 41004, 53),
            Seen::Dropped(NoRoute),
        ),
        case(
            "app -> dns next to the list (198.51.100.20, web's public IP): no route",
            "eni-app1",
            Packet::udp(APP, WEB_PUBLIC, 41004, 53),
            Seen::Dropped(NoRoute),
        ),
        case(
            "app -> dns inside the list: the endpoint's route",
            "eni-app1",
            Packet::udp(APP, S3_B, 41004, 53),
            fwd("svc0", APP, S3_B),
        ),
        Case {
            // Stateless, the evaluator judges it as the next case: refused.
            in_evaluator: false,
            ..case(
                "s3 -> app: the reply of app's https, tracked",
                "svc0",
                Packet::tcp(S3_A, APP, 443, 41000, TCP_SYN | TCP_ACK),
                fwd("eni-app1", S3_A, APP),
            )
        },
        Case {
            in_evaluator: false,
            ..case(
                "s3 -> app: the answer to app's dns query, tracked",
                "svc0",
                Packet::udp(S3_B, APP, 53, 41004),
                fwd("eni-app1", S3_B, APP),
            )
        },
        case(
            "s3 -> app: udp from port 53 that answers no query is judged by the groups: refused",
            "svc0",
            Packet::udp(S3_B, APP, 53, 41999),
            Seen::Dropped(SecurityGroupInbound),
        ),
        case(
            "s3 -> app ssh: a new connection the group allows from the list",
            "svc0",
            Packet::tcp(S3_B, APP, 41005, 22, TCP_SYN),
            fwd("eni-app1", S3_B, APP),
        ),
        case(
            "s3 -> app http: a new connection the group does not allow",
            "svc0",
            Packet::tcp(S3_B, APP, 41006, 80, TCP_SYN),
            Seen::Dropped(SecurityGroupInbound),
        ),
        case(
            "s3 -> web's private address: the groups judge it (web allows https from anywhere)",
            "svc0",
            Packet::tcp(S3_A, WEB, 41007, 443, TCP_SYN),
            fwd("eni-web1", S3_A, WEB),
        ),
        case(
            "endpoint side, source outside the list",
            "svc0",
            Packet::tcp("198.51.100.10", APP, 41008, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "endpoint side, source a VPC address (app's own)",
            "svc0",
            Packet::tcp(APP, APP, 41009, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "endpoint side, source the internet client",
            "svc0",
            Packet::tcp(INTERNET_CLIENT_IP, APP, 41010, 22, TCP_SYN),
            Seen::Dropped(GatewaySpoofed),
        ),
        case(
            "s3 -> web's public IP: nothing from an endpoint reaches public addresses",
            "svc0",
            Packet::tcp(S3_A, WEB_PUBLIC, 41011, 443, TCP_SYN),
            Seen::Dropped(GatewayTransit),
        ),
        case(
            "s3 -> the internet through the VPC: no transit",
            "svc0",
            Packet::tcp(S3_A, INTERNET_IP, 41012, 443, TCP_SYN),
            Seen::Dropped(GatewayTransit),
        ),
        case(
            "internet -> web from a list address: public service ranges are no spoofed source",
            "uplink0",
            Packet::tcp(S3_A, WEB_PUBLIC, 41013, 443, TCP_SYN),
            fwd("eni-web1", S3_A, WEB),
        ),
        Case {
            // Stateless, the evaluator finds no outbound rule for port 41005.
            in_evaluator: false,
            ..case(
                "app -> s3: the reply leg of the ssh from s3, tracked",
                "eni-app1",
                Packet::tcp(APP, S3_B, 22, 41005, TCP_SYN | TCP_ACK),
                fwd("svc0", APP, S3_B),
            )
        },
    ]
}

#[test]
fn test_run_gateway_endpoint() {
    require_kernel!();
    let topo = Topology::build(ENDPOINT, None, true).expect("topology");
    check_cases(&topo, &endpoint_cases());
}

/// Real traffic to the services behind the endpoint: they see the instance's private address.
#[test]
fn gateway_endpoint_traffic() {
    require_kernel!();
    use vpc_tests::traffic::{Server, ping, retry, tcp_request};
    let topo = Topology::build(ENDPOINT, Some(AttachMode::Auto), false).expect("topology");
    let services = &topo.port_named("svc0").ns;
    let app = &topo.port_named("eni-app1").ns;
    for s3 in [S3_A, S3_B] {
        let https = Server::tcp(services, s3, 443).unwrap();
        assert_eq!(
            retry(|| tcp_request(app, APP, s3, 443)).as_deref(),
            Some(format!("peer={APP}").as_str()),
            "app reaches {s3} through the endpoint, untranslated, and the answer comes back"
        );
        drop(https);
        assert_eq!(ping(app, APP, s3, 3).unwrap(), 3, "app pings {s3}");
    }
    let http = Server::tcp(services, S3_A, 80).unwrap();
    assert_eq!(
        tcp_request(app, APP, S3_A, 80).unwrap(),
        None,
        "the group allows only https to the list"
    );
    drop(http);
    let ssh = Server::tcp(app, APP, 22).unwrap();
    assert_eq!(
        retry(|| tcp_request(services, S3_B, APP, 22)).as_deref(),
        Some(format!("peer={S3_B}").as_str()),
        "a list address reaches app's ssh, which its group allows from the list"
    );
    drop(ssh);
    let drops = topo.datapath.drop_counters().unwrap();
    assert!(
        drops
            .get(&DropReason::SecurityGroupOutbound)
            .copied()
            .unwrap_or(0)
            > 0,
        "the http attempt was refused by the group: {drops:?}"
    );
}
