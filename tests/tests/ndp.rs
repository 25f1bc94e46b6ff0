//! IPv6 on instance ports: neighbour discovery answered by the router (neighbour
//! advertisements for the subnet's /64 and the router's link-local address, router
//! advertisements with the /64), the IPv6 source check, link-scope traffic to the kernel,
//! and the extension-header walk.
//!
//! - BPF_PROG_TEST_RUN, XDP and TC ingress, one table: the exact answer bytes, the frame
//!   unchanged when it goes to the kernel, or exactly one drop counter growing by one;
//!   hostile cases (spoofed sources and targets, rogue router advertisements, extension
//!   header chains, truncation at each offset).
//! - Namespaces with the hosts at Linux defaults (static addresses, as the issue allows):
//!   each host learns the on-link /64 and its default router from the advertisement, resolves
//!   another address
//!   of its subnet to the router's port, pings the router's link-local address; an address
//!   the host does not have is dropped as spoofed. Both hosts, both directions.
//! - The agent: hosts whose links came up before it learn their router from its unsolicited
//!   advertisements, which keep coming, to all nodes.
//! - The reference evaluator (`vpc-agent trace`) agrees with XDP and TC ingress on IPv6
//!   packets on each port and on the uplink: own, spoofed and link-local sources, to the
//!   router, the other instance and the internet, over UDP, TCP and ICMPv6.

use std::{collections::BTreeMap, time::Duration};

use vpc_agent::{
    datapath::{AttachMode, object::programs},
    evaluator::{Evaluator, Ingress, IpPacket, Stateless, Verdict as EvalVerdict},
};
use vpc_common::{DropReason, MARK_APPROVED};
use vpc_tests::{
    agent::{Agent, Bpffs, Scratch},
    packet6::{
        ECHO_REQUEST, Ext, Frame6, ICMPV6, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, REDIRECT,
        ROUTER_ADVERTISEMENT, Upper, link_local,
    },
    require_kernel,
    testrun::{TcVerdict, Verdict, grown, run_tc, run_xdp},
    topology::{Topology, mac},
    traffic::eventually,
};

const FIXTURE: &str = include_str!("../fixtures/ipv6-ports.yaml");
const WEB1: &str = "2001:db8:1200::10";
const WEB2: &str = "2001:db8:1200::11";
/// In the subnet's /64, no instance's.
const UNUSED: &str = "2001:db8:1200::99";
/// Outside the subnet's /64.
const ELSEWHERE: &str = "2001:db8:9999::1";
const HOST_LL: &str = "fe80::1";
const INET6: &str = "2001:db8:ff::2";

/// What must come of a frame.
enum Expect {
    /// Answered: these bytes go back out of the port.
    Answer(Vec<u8>),
    /// Handed to the kernel unchanged.
    Kernel,
    /// Dropped, counted under this reason.
    Drop(DropReason),
}

struct Case {
    name: String,
    frame: Vec<u8>,
    expect: Expect,
}

fn case(name: &str, frame: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        frame,
        expect,
    }
}

/// The port's MACs: (the router's end, the host's end).
fn macs(topo: &Topology, ifname: &str) -> ([u8; 6], [u8; 6]) {
    let index = topo.port_named(ifname).index;
    (mac(index, false), mac(index, true))
}

/// The advertisement the router must send on port (router, host MACs) for `target`,
/// answering a solicitation from `to`.
fn advertisement(router: [u8; 6], host: [u8; 6], target: &str, to: &str) -> Vec<u8> {
    let router_ll = link_local(router).to_string();
    let flags = if target == router_ll { 0xe0 } else { 0x60 };
    let mut body = vec![flags, 0, 0, 0];
    body.extend_from_slice(&target.parse::<std::net::Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&router);
    let mut f = Frame6::new(
        target,
        to,
        Upper::Icmp {
            ty: NEIGHBOR_ADVERTISEMENT,
            code: 0,
            body,
        },
    )
    .macs(router, host);
    f.hop_limit = 255;
    f.build()
}

/// The router advertisement for the fixture's /64 on port (router, host MACs), to `to`.
fn router_advertisement(router: [u8; 6], host: [u8; 6], to: &str) -> Vec<u8> {
    // Hop limit 64, no flags, router lifetime 1800 s (0x0708: the default router),
    // reachable time and retransmission timer unspecified.
    let mut body = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    body.extend_from_slice(&router);
    body.extend_from_slice(&[3, 4, 64, 0x80]);
    body.extend_from_slice(&[0xff; 8]);
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(
        &"2001:db8:1200::"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    let mut f = Frame6::new(
        &link_local(router).to_string(),
        to,
        Upper::Icmp {
            ty: ROUTER_ADVERTISEMENT,
            code: 0,
            body,
        },
    )
    .macs(router, host);
    f.hop_limit = 255;
    f.build()
}

/// The router's echo reply to `to` (Frame6::echo's identifier and sequence).
fn echo_reply(router: [u8; 6], host: [u8; 6], to: &str) -> Vec<u8> {
    Frame6::new(
        &link_local(router).to_string(),
        to,
        Upper::Icmp {
            ty: 129,
            code: 0,
            body: vec![0, 1, 0, 1],
        },
    )
    .macs(router, host)
    .hop_limit(64)
    .build()
}

/// The table, for frames from web-1's host on port `eweb1`.
fn cases(topo: &Topology) -> Vec<Case> {
    let (router, host) = macs(topo, "eweb1");
    let router_ll = link_local(router).to_string();
    let ns = |src: &str, target: &str| Frame6::neighbor_solicitation(src, target, host);
    let to_router = |f: Frame6| f.macs(host, router).build();
    let tcp = |src: &str, dst: &str| {
        Frame6::new(
            src,
            dst,
            Upper::Tcp {
                sport: 40000,
                dport: 443,
                flags: 0x02,
            },
        )
        .macs(host, router)
    };
    let mut cases = vec![
        case(
            "a solicitation for another instance's address: the port's MAC",
            ns(HOST_LL, WEB2).build(),
            Expect::Answer(advertisement(router, host, WEB2, HOST_LL)),
        ),
        case(
            "from the instance's own address, for an unused address of the /64",
            ns(WEB1, UNUSED).build(),
            Expect::Answer(advertisement(router, host, UNUSED, WEB1)),
        ),
        case(
            "for the router's link-local address: answered as a router",
            ns(HOST_LL, &router_ll).build(),
            Expect::Answer(advertisement(router, host, &router_ll, HOST_LL)),
        ),
        case(
            "for the instance's own address: not the router's to answer",
            ns(HOST_LL, WEB1).build(),
            Expect::Kernel,
        ),
        case(
            "duplicate address detection for another instance's address: not answered",
            ns("::", WEB2).build(),
            Expect::Kernel,
        ),
        case(
            "for an address outside the /64: not answered",
            ns(HOST_LL, ELSEWHERE).build(),
            Expect::Kernel,
        ),
        case(
            "with hop limit 64 (not from the link): malformed",
            ns(HOST_LL, WEB2).hop_limit(64).build(),
            Expect::Drop(DropReason::Malformed),
        ),
        case(
            "with code 1: malformed",
            to_router(
                Frame6::new(
                    HOST_LL,
                    "ff02::1:ff00:11",
                    Upper::Icmp {
                        ty: NEIGHBOR_SOLICITATION,
                        code: 1,
                        body: [
                            [0u8; 4].as_slice(),
                            &WEB2.parse::<std::net::Ipv6Addr>().unwrap().octets(),
                        ]
                        .concat(),
                    },
                )
                .hop_limit(255),
            ),
            Expect::Drop(DropReason::Malformed),
        ),
        case(
            "with a destination options header: dropped, never passed up unchecked",
            ns(HOST_LL, WEB2).ext(Ext::DestOpts(0)).build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "a fragmented router solicitation: neighbour discovery is never fragmented",
            Frame6::router_solicitation(HOST_LL, host)
                .ext(Ext::Fragment {
                    offset_units: 0,
                    more: true,
                })
                .build(),
            Expect::Drop(DropReason::Fragment),
        ),
        case(
            "a later fragment to the router's link-local address: no fragment goes up",
            to_router(Frame6::echo(HOST_LL, &router_ll).ext(Ext::Fragment {
                offset_units: 8,
                more: false,
            })),
            Expect::Drop(DropReason::Fragment),
        ),
        case(
            "a multicast listener report from the unspecified address: the kernel's",
            to_router(
                Frame6::new(
                    "::",
                    "ff02::16",
                    Upper::Icmp {
                        ty: 143,
                        code: 0,
                        body: vec![0; 4],
                    },
                )
                .ext(Ext::HopByHop(0))
                .hop_limit(1),
            ),
            Expect::Kernel,
        ),
        case(
            "a ping from the unspecified address: spoofed",
            to_router(Frame6::echo("::", &router_ll)),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "from another instance's address: spoofed",
            ns(WEB2, UNUSED).build(),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "from an address outside the VPC: spoofed",
            ns(ELSEWHERE, WEB2).build(),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "a router solicitation: the advertisement, to the solicitor",
            Frame6::router_solicitation(HOST_LL, host).build(),
            Expect::Answer(router_advertisement(router, host, HOST_LL)),
        ),
        case(
            "a router solicitation from the unspecified address: to all nodes",
            Frame6::router_solicitation("::", host).build(),
            Expect::Answer(router_advertisement(router, host, "ff02::1")),
        ),
        case(
            "an advertisement of the instance's own address: the kernel's",
            to_router(Frame6::neighbor_advertisement(WEB1, &router_ll, WEB1, 0x60)),
            Expect::Kernel,
        ),
        case(
            "an advertisement of another instance's address: spoofed",
            to_router(Frame6::neighbor_advertisement(
                HOST_LL, &router_ll, WEB2, 0x20,
            )),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "an advertisement of the router's own link-local address: spoofed",
            to_router(Frame6::neighbor_advertisement(
                HOST_LL, "ff02::1", &router_ll, 0x20,
            )),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "a router advertisement behind a destination options header (RA guard evasion)",
            to_router(
                Frame6::new(
                    HOST_LL,
                    "ff02::1",
                    Upper::Icmp {
                        ty: ROUTER_ADVERTISEMENT,
                        code: 0,
                        body: vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
                    },
                )
                .ext(Ext::DestOpts(0))
                .hop_limit(255),
            ),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "a router advertisement from an instance: spoofed",
            to_router(
                Frame6::new(
                    HOST_LL,
                    "ff02::1",
                    Upper::Icmp {
                        ty: ROUTER_ADVERTISEMENT,
                        code: 0,
                        body: vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
                    },
                )
                .hop_limit(255),
            ),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "a redirect from an instance: spoofed",
            to_router(
                Frame6::new(
                    HOST_LL,
                    WEB1,
                    Upper::Icmp {
                        ty: REDIRECT,
                        code: 0,
                        body: vec![0; 36],
                    },
                )
                .hop_limit(255),
            ),
            Expect::Drop(DropReason::Spoofed),
        ),
        case(
            "a ping to the router's link-local address: answered by the router",
            to_router(Frame6::echo(HOST_LL, &router_ll)),
            Expect::Answer(echo_reply(router, host, HOST_LL)),
        ),
        case(
            "a ping to all nodes: answered from the router's link-local address",
            to_router(Frame6::echo(HOST_LL, "ff02::1")),
            Expect::Answer(echo_reply(router, host, HOST_LL)),
        ),
        case(
            "a ping from the instance's own address to the router's: answered",
            to_router(Frame6::echo(WEB1, &router_ll)),
            Expect::Answer(echo_reply(router, host, WEB1)),
        ),
        case(
            "a ping to a link-local address not the router's: nobody there",
            to_router(Frame6::echo(HOST_LL, "fe80::2")),
            Expect::Drop(DropReason::UnknownDestination),
        ),
        case(
            "a ping to the router behind a destination options header",
            to_router(Frame6::echo(HOST_LL, &router_ll).ext(Ext::DestOpts(0))),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "TCP to the router's link-local address: it offers no service there",
            tcp(HOST_LL, &router_ll).build(),
            Expect::Drop(DropReason::UnknownDestination),
        ),
        case(
            "a ping from the instance's address to the internet: no IPv6 route out",
            to_router(Frame6::echo(WEB1, INET6)),
            Expect::Drop(DropReason::NoRoute),
        ),
        case(
            "through hop-by-hop, destination and routing headers to an address no instance has: walked, then the route's verdict",
            tcp(WEB1, UNUSED)
                .ext(Ext::HopByHop(0))
                .ext(Ext::DestOpts(1))
                .ext(Ext::Routing {
                    ty: 4,
                    segments_left: 0,
                })
                .build(),
            Expect::Drop(DropReason::UnknownDestination),
        ),
        case(
            "segment routing with a segment left: the router is no hop",
            tcp(WEB1, WEB2)
                .ext(Ext::Routing {
                    ty: 4,
                    segments_left: 1,
                })
                .build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "a later fragment: walked, dropped (nothing is reassembled from an instance)",
            tcp(WEB1, WEB2)
                .ext(Ext::Fragment {
                    offset_units: 4,
                    more: false,
                })
                .build(),
            Expect::Drop(DropReason::Fragment),
        ),
        case(
            "five extension headers: more than the walk takes",
            tcp(WEB1, WEB2)
                .ext(Ext::DestOpts(0))
                .ext(Ext::DestOpts(0))
                .ext(Ext::DestOpts(0))
                .ext(Ext::DestOpts(0))
                .ext(Ext::DestOpts(0))
                .build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "hop-by-hop options after another header",
            tcp(WEB1, WEB2)
                .ext(Ext::DestOpts(0))
                .ext(Ext::HopByHop(0))
                .build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "routing type 0 with a segment left (RFC 5095)",
            tcp(WEB1, WEB2)
                .ext(Ext::Routing {
                    ty: 0,
                    segments_left: 1,
                })
                .build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "a mobility header",
            tcp(WEB1, WEB2).ext(Ext::Other(135)).build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
        case(
            "a chain reaching past 256 bytes",
            tcp(WEB1, WEB2)
                .ext(Ext::DestOpts(20))
                .ext(Ext::DestOpts(20))
                .build(),
            Expect::Drop(DropReason::Ipv6ExtHeaders),
        ),
    ];
    // A first fragment that stops inside the TCP header (RFC 7112: a tiny fragment).
    let mut tiny = tcp(WEB1, WEB2)
        .ext(Ext::Fragment {
            offset_units: 0,
            more: true,
        })
        .build();
    tiny.truncate(tiny.len() - 10);
    let payload = (tiny.len() - 54) as u16;
    tiny[18..20].copy_from_slice(&payload.to_be_bytes());
    cases.push(case(
        "a first fragment without the whole TCP header",
        tiny,
        Expect::Drop(DropReason::Fragment),
    ));
    // Truncated solicitations: at every header boundary and inside each header.
    let full = ns(HOST_LL, WEB2).build();
    for len in [54usize, 55, 58, 62, 70, 78, 85] {
        cases.push(case(
            &format!("a solicitation cut to {len} of {} bytes", full.len()),
            full[..len].to_vec(),
            Expect::Drop(DropReason::Malformed),
        ));
    }
    // A payload length shorter than what it carries is fine; zero (a jumbogram) is not.
    let mut jumbo = full.clone();
    jumbo[18..20].copy_from_slice(&[0, 0]);
    cases.push(case(
        "payload length 0 (a jumbogram)",
        jumbo,
        Expect::Drop(DropReason::Malformed),
    ));
    cases
}

#[test]
fn test_run_neighbour_discovery_and_the_ipv6_source_check() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let dp = &topo.datapath;
    let tc = dp.tc(programs::TC_INGRESS);
    let ifindex = topo.port_named("eweb1").ifindex;
    let cases = cases(&topo);
    assert!(cases.len() > 30, "the table is all there");
    for c in &cases {
        let expected_drops: BTreeMap<DropReason, u64> = match c.expect {
            Expect::Drop(r) => [(r, 1)].into(),
            _ => BTreeMap::new(),
        };
        let before = dp.drop_counters().expect("counters");
        let xdp = {
            let _inside = topo.router.enter().expect("router namespace");
            run_xdp(dp.xdp(), &c.frame, Some(ifindex)).expect("xdp test run")
        };
        let after = dp.drop_counters().expect("counters");
        assert_eq!(
            grown(&before, &after),
            expected_drops,
            "xdp {}: drops",
            c.name
        );
        match &c.expect {
            Expect::Answer(bytes) => {
                assert_eq!(xdp.verdict, Verdict::Tx, "xdp {}", c.name);
                assert_eq!(&xdp.output, bytes, "xdp {}: the answer's bytes", c.name);
            }
            Expect::Kernel => {
                assert_eq!(xdp.verdict, Verdict::Pass, "xdp {}", c.name);
                assert_eq!(xdp.output, c.frame, "xdp {}: unchanged", c.name);
            }
            Expect::Drop(_) => assert_eq!(xdp.verdict, Verdict::Drop, "xdp {}", c.name),
        }

        // The kernel refuses an skb test run shorter than an IPv6 header.
        if c.frame.len() < 54 {
            continue;
        }
        let before = after;
        let out = {
            let _inside = topo.router.enter().expect("router namespace");
            run_tc(tc, &c.frame, ifindex).expect("tc test run")
        };
        let after = dp.drop_counters().expect("counters");
        assert_eq!(
            grown(&before, &after),
            expected_drops,
            "tc {}: drops",
            c.name
        );
        match &c.expect {
            Expect::Answer(bytes) => {
                assert_eq!(out.verdict, TcVerdict::Redirect, "tc {}", c.name);
                assert_eq!(&out.output, bytes, "tc {}: the answer's bytes", c.name);
                assert_eq!(
                    out.mark, MARK_APPROVED,
                    "tc {}: approved for egress",
                    c.name
                );
            }
            Expect::Kernel => {
                assert_eq!(out.verdict, TcVerdict::Ok, "tc {}", c.name);
                assert_eq!(out.output, c.frame, "tc {}: unchanged", c.name);
            }
            Expect::Drop(_) => assert_eq!(out.verdict, TcVerdict::Shot, "tc {}", c.name),
        }
    }
}

/// The host's IPv6 routes.
fn routes(ns: &vpc_tests::netns::NetNs) -> String {
    let out = ns.ip(&["-6", "route", "show"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the host learned the fixture's /64 as on-link from a router advertisement (its
/// addresses are /128s or link-local: nothing else gives it that route).
fn learned_prefix(ns: &vpc_tests::netns::NetNs) -> bool {
    let out = ns
        .ip(&["-6", "route", "show", "2001:db8:1200::/64"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("dev eth0")
}

#[test]
fn hosts_learn_their_router_and_neighbours_from_the_router() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    let hosts = [("eweb1", WEB1, WEB2), ("eweb2", WEB2, WEB1)];
    // What the hosts sent while their links came up, before the programs were attached (a
    // router solicitation the kernel took, with IPv6 forwarding on), is not the datapath's:
    // the router starts from no neighbour of them.
    for (ifname, _, _) in hosts {
        topo.router
            .ip(&["-6", "neigh", "flush", "dev", ifname])
            .unwrap();
    }
    for (ifname, own, _) in hosts {
        let ns = &topo.port_named(ifname).ns;
        // The host solicits a router when its link comes up (Linux defaults): with the
        // programs attached now, the router answers. The address is a /128, added once the
        // link is up (a link going down drops its IPv6 addresses): only the advertisement
        // tells the host that the subnet's /64 is on-link.
        ns.ip(&["link", "set", "eth0", "down"]).unwrap();
        ns.ip(&["link", "set", "eth0", "up"]).unwrap();
        ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{own}/128"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    }
    for (ifname, _, other) in hosts {
        let port = topo.port_named(ifname);
        let (router, _) = macs(&topo, ifname);
        let router_ll = link_local(router).to_string();
        let ns = &port.ns;
        assert!(
            eventually(15, || learned_prefix(ns)),
            "{ifname}: the host learns the on-link /64 from the advertisement: {}",
            routes(ns)
        );
        assert!(
            eventually(5, || routes(ns)
                .contains(&format!("default via {router_ll} dev eth0"))),
            "{ifname}: the router's link-local address is the default router: {}",
            routes(ns)
        );
        // The /64 is on-link: the host solicits the other instance's address and the router
        // answers with its port's MAC. The ping itself is routed, and refused by the other
        // instance's group (HTTPS only).
        let before = topo.datapath.drop_counters().unwrap();
        let ping = ns
            .exec_status("ping", &["-6", "-n", "-c", "1", "-W", "1", other])
            .unwrap();
        assert!(
            !ping.status.success(),
            "{ifname}: the other instance's group admits no ICMPv6"
        );
        let neigh = ns
            .ip(&["-6", "neigh", "show", other, "dev", "eth0"])
            .unwrap();
        let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
        let port_mac = router
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert!(
            neigh.contains(&format!("lladdr {port_mac}")),
            "{ifname}: {other} resolves to the router's port: {neigh}"
        );
        let after = topo.datapath.drop_counters().unwrap();
        assert!(
            grown(&before, &after).get(&DropReason::SecurityGroupInbound) >= Some(&1),
            "{ifname}: the ping to {other} reached the router and met the group: {after:?}"
        );
        // The router's link-local address answers pings (the datapath does).
        let to_router = format!("{router_ll}%eth0");
        let ping = ns
            .exec_status(
                "ping",
                &["-6", "-n", "-c", "2", "-W", "2", "-i", "0.3", &to_router],
            )
            .unwrap();
        assert!(
            ping.status.success(),
            "{ifname}: the router's link-local address answers: {} {} {:?}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(
                &topo
                    .router
                    .ip(&["-6", "addr", "show", "dev", ifname])
                    .unwrap()
                    .stdout
            ),
            topo.datapath.drop_counters().unwrap()
        );
        // Nothing the host sent made the router's kernel resolve it: no neighbour entry of
        // the host on its port (a host cannot fill the table with made-up link-local sources).
        let neigh = topo
            .router
            .ip(&["-6", "neigh", "show", "dev", ifname])
            .unwrap();
        let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
        assert!(
            neigh.trim().is_empty(),
            "{ifname}: the router keeps no IPv6 neighbour of the host: {neigh}"
        );
        // From an address the instance does not have: spoofed.
        let before = topo.datapath.drop_counters().unwrap();
        ns.ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:1200::77/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
        let spoof = ns
            .exec_status(
                "ping",
                &[
                    "-6",
                    "-n",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    "-I",
                    "2001:db8:1200::77",
                    other,
                ],
            )
            .unwrap();
        assert!(
            !spoof.status.success(),
            "{ifname}: a spoofed ping gets nowhere"
        );
        ns.ip(&["-6", "addr", "del", "2001:db8:1200::77/64", "dev", "eth0"])
            .unwrap();
        let after = topo.datapath.drop_counters().unwrap();
        assert!(
            grown(&before, &after).get(&DropReason::Spoofed) >= Some(&1),
            "{ifname}: a source the instance does not have is spoofed: {after:?}"
        );
    }
}

#[test]
fn the_agent_advertises_the_router_to_hosts_that_came_up_before_it() {
    require_kernel!();
    // Nothing attached yet: the hosts' links came up, and their solicitations went
    // unanswered, before the agent started.
    let topo = Topology::build(FIXTURE, None, false).expect("topology");
    let scratch = Scratch::new().expect("scratch dir");
    let config = scratch.write("vpc.yaml", FIXTURE).expect("write");
    let bpffs = Bpffs::new().expect("bpffs dir");
    let log = scratch.dir.join("agent.log");
    let mut agent = Agent::spawn(
        &topo.router,
        &config,
        &bpffs,
        log,
        &["--router-advertisement-interval", "1"],
    )
    .expect("spawn agent");
    agent.wait_running().expect("agent runs");
    for ifname in ["eweb1", "eweb2"] {
        let ns = &topo.port_named(ifname).ns;
        let (router_mac, _) = macs(&topo, ifname);
        let router_ll = link_local(router_mac).to_string();
        assert!(
            eventually(10, || learned_prefix(ns)),
            "{ifname}: the host learns the on-link /64: {} {}",
            routes(ns),
            agent.log()
        );
        assert!(
            eventually(5, || routes(ns)
                .contains(&format!("default via {router_ll} dev eth0"))),
            "{ifname}: the router is the default router: {}",
            routes(ns)
        );
        // Unsolicited: the host solicits no more once it heard a router, and the agent keeps
        // advertising (every second here) to all nodes from the router's link-local address.
        let capture = ns
            .exec_status(
                "timeout",
                &[
                    "4",
                    "tcpdump",
                    "-n",
                    "-l",
                    "-i",
                    "eth0",
                    "-c",
                    "2",
                    "icmp6 and ip6[40] == 134 and dst host ff02::1",
                ],
            )
            .unwrap();
        let seen = String::from_utf8_lossy(&capture.stdout).into_owned();
        let ras = seen
            .lines()
            .filter(|l| l.contains(&format!("{router_ll} > ff02::1")))
            .filter(|l| l.contains("router advertisement"))
            .count();
        assert_eq!(ras, 2, "{ifname}: periodic advertisements: {seen:?}");
    }
    agent.signal("TERM").expect("stop agent");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)).unwrap(), Some(0));
}

/// What came of a packet, in terms both the kernel and the evaluator speak.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    /// Handed to the kernel (the router's own).
    Kernel,
    /// Answered in place, back out of the ingress.
    Answered,
    /// Routed out of another port (its name), hop limit one less.
    Forwarded(String),
    Dropped(DropReason),
}

/// The evaluator's packet for frame `f` (no extension headers).
fn evaluator_packet(f: &Frame6) -> IpPacket {
    assert!(
        f.ext.is_empty(),
        "the evaluator models no extension headers"
    );
    let (proto, sport, dport, icmp_type, icmp_code, nd_target) = match &f.upper {
        Upper::Tcp { sport, dport, .. } => (6, *sport, *dport, 0, 0, None),
        Upper::Udp { sport, dport } => (17, *sport, *dport, 0, 0, None),
        Upper::Icmp { ty, code, body } => {
            // Solicitations and advertisements: 4 bytes, then the target.
            let nd = [NEIGHBOR_SOLICITATION, NEIGHBOR_ADVERTISEMENT].contains(ty);
            let target = body
                .get(4..20)
                .filter(|_| nd)
                .map(|t| <[u8; 16]>::try_from(t).expect("16 bytes").into());
            (ICMPV6, 0, 0, *ty, *code, target)
        }
    };
    IpPacket {
        src: f.src.into(),
        dst: f.dst.into(),
        proto,
        sport,
        dport,
        icmp_type,
        icmp_code,
        hop_limit: f.hop_limit,
        nd_target,
    }
}

/// IPv6 frames on router interface `ifname` from the host behind it: from `own` (its own
/// address), `spoofed` (one it does not have) and a link-local address, to the router, the
/// multicast groups, `other` (another instance) and the internet; UDP, TCP, ICMPv6 echo, and
/// neighbour discovery.
fn agreement_frames(
    topo: &Topology,
    ifname: &str,
    own: &str,
    spoofed: &str,
    other: &str,
) -> Vec<Frame6> {
    let (router, host) = macs(topo, ifname);
    let router_ll = link_local(router).to_string();
    let udp = Upper::Udp {
        sport: 40000,
        dport: 53,
    };
    let tcp = Upper::Tcp {
        sport: 40000,
        dport: 443,
        flags: 0x02,
    };
    let echo = Upper::Icmp {
        ty: ECHO_REQUEST,
        code: 0,
        body: vec![0, 1, 0, 1],
    };
    let mut frames = Vec::new();
    for src in [own, spoofed, HOST_LL, "::"] {
        for dst in [
            INET6,
            other,
            UNUSED,
            "ff02::1",
            "ff02::2",
            router_ll.as_str(),
        ] {
            for upper in [&udp, &tcp, &echo] {
                frames.push(Frame6::new(src, dst, upper.clone()).macs(host, router));
            }
        }
    }
    for src in [own, HOST_LL] {
        frames.push(Frame6::neighbor_solicitation(src, other, host));
        frames.push(Frame6::neighbor_solicitation(src, own, host));
        frames.push(Frame6::neighbor_solicitation(src, &router_ll, host));
        frames.push(Frame6::router_solicitation(src, host));
        frames.push(Frame6::neighbor_advertisement(src, &router_ll, own, 0x60).macs(host, router));
        frames
            .push(Frame6::neighbor_advertisement(src, &router_ll, other, 0x20).macs(host, router));
    }
    frames.push(Frame6::neighbor_solicitation(spoofed, other, host));
    frames.push(Frame6::neighbor_solicitation("::", other, host));
    frames.push(Frame6::router_solicitation("::", host));
    frames.push(
        Frame6::new(
            HOST_LL,
            "ff02::1",
            Upper::Icmp {
                ty: ROUTER_ADVERTISEMENT,
                code: 0,
                body: vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
            },
        )
        .hop_limit(255)
        .macs(host, router),
    );
    frames
}

#[test]
fn test_run_the_evaluator_agrees_with_the_datapath_on_ipv6() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let dp = &topo.datapath;
    let tc = dp.tc(programs::TC_INGRESS);
    // The router's link-local address on each port, as the kernel gives it (from the MAC).
    let router_ll = |name: &str| {
        topo.ports
            .get(name)
            .map(|p| link_local(mac(p.index, false)))
    };
    let evaluator = Evaluator::new(&topo.config, &Stateless).with_router_link_local(&router_ll);
    let interfaces = [
        ("eweb1", WEB1, WEB2),
        ("eweb2", WEB2, WEB1),
        // From the internet: any source, to either instance.
        ("up0", INET6, WEB1),
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = 0;
    for (ifname, own, other) in interfaces {
        let ifindex = topo.port_named(ifname).ifindex;
        let spoofed = if ifname == "up0" { WEB2 } else { ELSEWHERE };
        for f in agreement_frames(&topo, ifname, own, spoofed, other) {
            let frame = f.build();
            let name = format!(
                "{ifname}: {} -> {} {:?} hop limit {}",
                f.src, f.dst, f.upper, f.hop_limit
            );
            let trace = evaluator
                .evaluate_ip(Ingress::Interface(ifname), &evaluator_packet(&f))
                .expect("the evaluator judges it");
            let expected = match trace.verdict {
                EvalVerdict::ToHost => Fate::Kernel,
                EvalVerdict::Answered => Fate::Answered,
                EvalVerdict::Drop(r) => Fate::Dropped(r),
                EvalVerdict::Deliver { ref interface, .. } => Fate::Forwarded(interface.clone()),
            };
            // The frame as forwarded: the hop limit one less, the rest unchanged (the MACs are
            // the FIB's: the test run's neighbour table may not know the destination).
            let forwarded = |out: &[u8]| {
                out.len() == frame.len()
                    && out[14..] == {
                        let mut f = frame[14..].to_vec();
                        f[7] = f[7].wrapping_sub(1);
                        f
                    }[..]
            };
            seen.insert(format!("{expected:?}"));
            // XDP, then TC ingress: each verdict, and the drop counted under its reason.
            let before = dp.drop_counters().expect("counters");
            let xdp = {
                let _inside = topo.router.enter().expect("router namespace");
                run_xdp(dp.xdp(), &frame, Some(ifindex)).expect("xdp test run")
            };
            let after = dp.drop_counters().expect("counters");
            let reasons: Vec<DropReason> = grown(&before, &after).into_keys().collect();
            let xdp_fate = match (xdp.verdict, reasons.as_slice()) {
                // The neighbour not known yet: the TC program forwards it.
                (Verdict::Pass, []) if matches!(expected, Fate::Forwarded(_)) => {
                    (xdp.output == frame).then(|| expected.clone())
                }
                (Verdict::Redirect, []) if forwarded(&xdp.output) => Some(expected.clone()),
                (Verdict::Pass, []) => Some(Fate::Kernel),
                (Verdict::Tx, []) => Some(Fate::Answered),
                (Verdict::Drop, [r]) => Some(Fate::Dropped(*r)),
                _ => None,
            };
            assert_eq!(
                xdp_fate,
                Some(expected.clone()),
                "xdp {name}: {:?}; evaluator hops {:?}",
                xdp.verdict,
                trace.hops
            );
            let before = after;
            let out = {
                let _inside = topo.router.enter().expect("router namespace");
                run_tc(tc, &frame, ifindex).expect("tc test run")
            };
            let after = dp.drop_counters().expect("counters");
            let reasons: Vec<DropReason> = grown(&before, &after).into_keys().collect();
            let tc_fate = match (out.verdict, reasons.as_slice()) {
                (TcVerdict::Redirect, []) if forwarded(&out.output) => {
                    Some(expected.clone()).filter(|_| out.mark == MARK_APPROVED)
                }
                (TcVerdict::Ok, []) => Some(Fate::Kernel),
                (TcVerdict::Redirect, []) => Some(Fate::Answered),
                (TcVerdict::Shot, [r]) => Some(Fate::Dropped(*r)),
                _ => None,
            };
            assert_eq!(
                tc_fate,
                Some(expected),
                "tc {name}: {:?}; evaluator hops {:?}",
                out.verdict,
                trace.hops
            );
            checked += 1;
        }
    }
    // Every fate of IPv6 today came up.
    for fate in [
        Fate::Kernel,
        Fate::Answered,
        Fate::Forwarded("eweb1".into()),
        Fate::Forwarded("eweb2".into()),
        Fate::Dropped(DropReason::Spoofed),
        Fate::Dropped(DropReason::SecurityGroupInbound),
        Fate::Dropped(DropReason::NoRoute),
        Fate::Dropped(DropReason::UnknownDestination),
    ] {
        assert!(
            seen.contains(&format!("{fate:?}")),
            "{fate:?} among {seen:?}"
        );
    }
    assert!(checked > 200, "{checked} packets");
}
