//! IPv6 in a VPC without an IPv6 block: on an uplink it is the router's own traffic (the
//! kernel's: its neighbour discovery, its pings), on an instance port only link-scope traffic
//! reaches the kernel, the rest is dropped (`spoofed`: the instance has no IPv6 address, and a
//! link-local source is never routed; neighbour discovery is `ndp.rs`'s, forwarding between
//! IPv6 instances `ipv6_forward.rs`'s), and the TC egress guard stops IPv6 the kernel would
//! forward into a subnet (`unapproved`) while letting the router's own link-local packets out.
//!
//! Table-driven BPF_PROG_TEST_RUN cases for XDP, TC ingress and TC egress, then traffic in
//! namespaces with the programs attached and IPv6 forwarding on in the router.

use vpc_agent::datapath::{AttachMode, object::programs};
use vpc_common::DropReason;
use vpc_tests::{
    packet::{Packet, TCP_SYN},
    require_kernel,
    testrun::{TcVerdict, Verdict, run_tc, run_xdp},
    topology::{Topology, mac},
};

const FIXTURE: &str = include_str!("../fixtures/instance-ports.yaml");

/// Documentation addresses (RFC 3849), used only inside the test's namespaces.
const ROUTER_UP6: &str = "2001:db8:ff::1";
const INET6: &str = "2001:db8:ff::2";
const WEB6: &str = "2001:db8:1::10";
const LINK_LOCAL: &str = "fe80::1";

/// An Ethernet + IPv6 + ICMPv6 echo request frame from `src` to `dst`, with the Ethernet
/// header a host behind router port `ingress` would send.
fn icmpv6_echo(topo: &Topology, ingress: &str, src: &str, dst: &str) -> Vec<u8> {
    let v4 = topo.frame(
        ingress,
        &Packet::tcp("10.0.0.10", "10.0.0.1", 1, 2, TCP_SYN),
    );
    let mut frame = v4[..12].to_vec();
    frame.extend_from_slice(&0x86ddu16.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no class or flow label
    frame.extend_from_slice(&8u16.to_be_bytes()); // payload length
    frame.extend_from_slice(&[58, 64]); // ICMPv6, hop limit 64
    let addr = |a: &str| a.parse::<std::net::Ipv6Addr>().expect("IPv6").octets();
    frame.extend_from_slice(&addr(src));
    frame.extend_from_slice(&addr(dst));
    frame.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]); // echo request, id 1, seq 1
    frame
}

struct Case {
    name: &'static str,
    /// The router interface the frame arrives on (ingress cases) or leaves by (egress).
    ifname: &'static str,
    src: &'static str,
    dst: &'static str,
    /// Whether the program lets the frame go on unchanged (else: dropped).
    passes: bool,
    /// The drop counter that grows by exactly one (None: none grows).
    dropped: Option<DropReason>,
}

const INGRESS: &[Case] = &[
    Case {
        name: "to the router's uplink address: the router's own",
        ifname: "up0",
        src: INET6,
        dst: ROUTER_UP6,
        passes: true,
        dropped: None,
    },
    Case {
        name: "from the internet to an address behind a port: the kernel's (never forwarded in)",
        ifname: "up0",
        src: INET6,
        dst: WEB6,
        passes: true,
        dropped: None,
    },
    Case {
        name: "from an instance, from an address it does not have: spoofed",
        ifname: "eweb1",
        src: WEB6,
        dst: INET6,
        passes: false,
        dropped: Some(DropReason::Spoofed),
    },
    Case {
        name: "from an instance's link-local address to the internet: never routed",
        ifname: "eweb1",
        src: LINK_LOCAL,
        dst: INET6,
        passes: false,
        dropped: Some(DropReason::Spoofed),
    },
    // Echo requests from an instance to the router's link-local address or a link-scope
    // group are answered by the datapath itself: tests/tests/ndp.rs.
];

const EGRESS: &[Case] = &[
    Case {
        name: "forwarded by the kernel into a port",
        ifname: "eweb1",
        src: INET6,
        dst: WEB6,
        passes: false,
        dropped: Some(DropReason::Unapproved),
    },
    Case {
        name: "the router's own neighbour discovery into a port",
        ifname: "eweb1",
        src: LINK_LOCAL,
        dst: "ff02::1",
        passes: true,
        dropped: None,
    },
    Case {
        name: "the router's own traffic out of the uplink",
        ifname: "up0",
        src: ROUTER_UP6,
        dst: INET6,
        passes: true,
        dropped: None,
    },
];

/// Asserts that exactly `case.dropped` grew by one between two counter snapshots.
fn assert_drops(
    what: &str,
    case: &Case,
    before: &std::collections::BTreeMap<DropReason, u64>,
    after: &std::collections::BTreeMap<DropReason, u64>,
) {
    for reason in DropReason::ALL {
        let grew =
            after.get(&reason).copied().unwrap_or(0) - before.get(&reason).copied().unwrap_or(0);
        let expected = u64::from(case.dropped == Some(reason));
        assert_eq!(
            grew,
            expected,
            "{what} {}: counter {}",
            case.name,
            reason.name()
        );
    }
}

#[test]
fn test_run_ipv6_is_the_router_s_own_outside_and_dropped_inside() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let dp = &topo.datapath;
    let tc_in = dp.tc(programs::TC_INGRESS);
    let tc_out = dp.tc(programs::TC_EGRESS);
    for case in INGRESS {
        let frame = icmpv6_echo(&topo, case.ifname, case.src, case.dst);
        let ifindex = topo.port_named(case.ifname).ifindex;
        let before = dp.drop_counters().expect("counters");
        let xdp = {
            let _inside = topo.router.enter().expect("router namespace");
            run_xdp(dp.xdp(), &frame, Some(ifindex)).expect("xdp test run")
        };
        let after = dp.drop_counters().expect("counters");
        let expected = if case.passes {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        assert_eq!(xdp.verdict, expected, "xdp {}", case.name);
        if case.passes {
            assert_eq!(xdp.output, frame, "xdp {}: bytes unchanged", case.name);
        }
        assert_drops("xdp", case, &before, &after);

        let before = after;
        let tc = {
            let _inside = topo.router.enter().expect("router namespace");
            run_tc(tc_in, &frame, ifindex).expect("tc test run")
        };
        let after = dp.drop_counters().expect("counters");
        let expected = if case.passes {
            TcVerdict::Ok
        } else {
            TcVerdict::Shot
        };
        assert_eq!(tc.verdict, expected, "tc ingress {}", case.name);
        if case.passes {
            assert_eq!(
                tc.output, frame,
                "tc ingress {}: bytes unchanged",
                case.name
            );
        }
        assert_drops("tc ingress", case, &before, &after);
    }
    for case in EGRESS {
        // Egress frames come from the router: its port's MAC is the source.
        let frame = icmpv6_echo(&topo, case.ifname, case.src, case.dst);
        let ifindex = topo.port_named(case.ifname).ifindex;
        let before = dp.drop_counters().expect("counters");
        let tc = {
            let _inside = topo.router.enter().expect("router namespace");
            run_tc(tc_out, &frame, ifindex).expect("tc test run")
        };
        let after = dp.drop_counters().expect("counters");
        let expected = if case.passes {
            TcVerdict::Ok
        } else {
            TcVerdict::Shot
        };
        assert_eq!(tc.verdict, expected, "tc egress {}", case.name);
        assert_drops("tc egress", case, &before, &after);
    }
    // Truncated at each header boundary (XDP only: the kernel refuses an skb test run with
    // less than an IPv6 header): on the uplink still the kernel's, which judges it; on a port
    // malformed.
    for (ifname, passes, dropped) in [
        ("up0", true, None),
        ("eweb1", false, Some(DropReason::Malformed)),
    ] {
        let frame = icmpv6_echo(&topo, ifname, INET6, WEB6);
        for len in [14usize, 20, 22, 38, 54, 58] {
            let case = Case {
                name: "truncated",
                ifname,
                src: INET6,
                dst: WEB6,
                passes,
                dropped,
            };
            let ifindex = topo.port_named(ifname).ifindex;
            let before = dp.drop_counters().expect("counters");
            let xdp = {
                let _inside = topo.router.enter().expect("router namespace");
                run_xdp(dp.xdp(), &frame[..len], Some(ifindex)).expect("xdp test run")
            };
            let after = dp.drop_counters().expect("counters");
            let expected = if passes { Verdict::Pass } else { Verdict::Drop };
            assert_eq!(xdp.verdict, expected, "xdp {ifname}: {len} bytes");
            assert_drops(&format!("xdp {ifname} {len} bytes"), &case, &before, &after);
        }
    }
}

#[test]
fn the_router_s_own_ipv6_works_on_the_uplink_and_none_is_forwarded_to_an_instance() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    let inet = &topo.port_named("up0").ns;
    let web = &topo.port_named("eweb1").ns;
    // The router is an IPv6 router too (an operator's setting): the kernel would forward
    // between the uplink and the instance's port if nothing stopped it.
    topo.router
        .sysctl("net.ipv6.conf.all.forwarding=1")
        .expect("IPv6 forwarding");
    let up6 = format!("{ROUTER_UP6}/64");
    let inet6 = format!("{INET6}/64");
    let web6 = format!("{WEB6}/64");
    topo.router
        .ip(&["-6", "addr", "add", &up6, "dev", "up0", "nodad"])
        .unwrap();
    topo.router
        .ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "eweb1",
            "nodad",
        ])
        .unwrap();
    inet.ip(&["-6", "addr", "add", &inet6, "dev", "eth0", "nodad"])
        .unwrap();
    inet.ip(&["-6", "route", "add", "2001:db8:1::/64", "via", ROUTER_UP6])
        .unwrap();
    web.ip(&["-6", "addr", "add", &web6, "dev", "eth0", "nodad"])
        .unwrap();
    web.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"])
        .unwrap();
    // The router knows the instance's MAC (its neighbour discovery could not get an answer
    // through the port): the kernel's forwarded echo requests do reach the port's egress.
    let host_mac = mac(topo.port_named("eweb1").index, true)
        .map(|b| format!("{b:02x}"))
        .join(":");
    topo.router
        .ip(&[
            "-6",
            "neigh",
            "replace",
            WEB6,
            "lladdr",
            &host_mac,
            "dev",
            "eweb1",
            "nud",
            "permanent",
        ])
        .unwrap();

    // The router's own IPv6 on its uplink: neighbour discovery and echo, both ways.
    let ping = |ns: &vpc_tests::netns::NetNs, to: &str| {
        ns.exec_status("ping", &["-6", "-n", "-c", "2", "-W", "1", "-i", "0.3", to])
            .unwrap()
            .status
            .success()
    };
    assert!(
        ping(&topo.router, INET6),
        "the router reaches the internet over IPv6"
    );
    assert!(
        ping(inet, ROUTER_UP6),
        "the internet reaches the router over IPv6"
    );

    // Neither way between the instance and the internet: the port drops the instance's IPv6
    // (from an address the definition does not give it), the egress guard what the kernel
    // forwards to it.
    let before = topo.datapath.drop_counters().unwrap();
    assert!(
        !ping(inet, WEB6),
        "the internet must not reach an instance over IPv6"
    );
    assert!(
        !ping(web, INET6),
        "an instance must not reach the internet over IPv6"
    );
    let after = topo.datapath.drop_counters().unwrap();
    let grew =
        |r: DropReason| after.get(&r).copied().unwrap_or(0) - before.get(&r).copied().unwrap_or(0);
    assert!(
        grew(DropReason::Unapproved) >= 2,
        "the egress guard stopped the kernel's forwarding: {after:?}"
    );
    assert!(
        grew(DropReason::Spoofed) >= 2,
        "the port dropped the instance's IPv6: {after:?}"
    );
    // IPv4 is unaffected.
    let v4 = inet
        .exec_status("ping", &["-n", "-c", "1", "-W", "1", "192.0.2.1"])
        .unwrap();
    assert!(v4.status.success(), "IPv4 to the router still works");
}
