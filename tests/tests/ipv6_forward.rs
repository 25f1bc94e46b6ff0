//! IPv6 forwarded between instances on their own ports, enforced as IPv4 is: the source
//! check, connection tracking, the source's groups and subnet ACL outbound, the route table
//! (longest prefix), the destination subnet's ACL and the destination's groups inbound, then
//! the port out with the hop limit one less.
//!
//! - BPF_PROG_TEST_RUN, XDP and TC ingress, one table: the verdict, the exact bytes out
//!   (XDP: the FIB's MACs; both: hop limit one less, nothing else changed), exactly one drop
//!   counter growing by one for a drop, and the connection entry in `CONNTRACK6` /
//!   `CT_UNASSURED6` afterwards (present for what was forwarded, absent for what was not).
//!   Hostile cases: sources spoofed from every port (another instance's address, an address
//!   outside the VPC, a link-local source to a global destination), hop limits 1 and 0,
//!   truncated headers, fragments, odd TCP flags, ICMPv6 errors quoting another flow,
//!   multicast beyond the link, unassigned addresses in and outside the subnets.
//! - Namespaces, the hosts at Linux defaults (addresses added by hand, the router learned from
//!   its advertisement): ping, TCP and UDP between the three instances, within the subnet and
//!   across, checked from both ends (the server reports the address it saw); the denials of
//!   the groups and ACLs counted under their reasons; a spoofed source never arrives.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv6Addr},
};

use vpc_agent::{
    datapath::{AttachMode, object::programs},
    evaluator::{Evaluator, Ingress, IpPacket, Stateless, Verdict as EvalVerdict},
    flowlog::drain,
};
use vpc_common::{
    DropReason, MARK_APPROVED,
    conntrack::{CtEntry, CtKey6},
    flow::{FLOW_ACCEPT, FLOW_REJECT, FlowKey6, FlowStats},
};
use vpc_tests::{
    packet6::{Ext, Frame6, ICMPV6, Upper, upper_checksum},
    require_kernel,
    testrun::{TcVerdict, Verdict, grown, run_tc, run_xdp},
    topology::{Topology, mac},
    traffic::{Server, eventually, ping, retry, tcp_request, udp_request},
};

const FIXTURE: &str = include_str!("../fixtures/ipv6-forward.yaml");
const WEB1: &str = "2001:db8:1200::10";
const WEB2: &str = "2001:db8:1200::11";
const APP1: &str = "2001:db8:1200:1::10";
/// In the web subnet's /64, no instance's.
const UNUSED: &str = "2001:db8:1200::99";
/// In the VPC's /56, in no subnet.
const NO_SUBNET: &str = "2001:db8:1200:ff::1";
/// Routed to a blackhole by the public table.
const BLACKHOLED: &str = "2001:db8:bad::1";
/// Outside the VPC (routed to the internet gateway): the internet host.
const INET6: &str = "2001:db8:ff::2";
/// The router's own address on the uplink.
const ROUTER_UP6: &str = "2001:db8:ff::1";
const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Which port each instance is behind, and its address.
const INSTANCES: [(&str, &str); 3] = [("eweb1", WEB1), ("eweb2", WEB2), ("eapp1", APP1)];

/// What must come of a frame.
#[derive(Debug)]
enum Expect {
    /// Forwarded out of this port.
    Forward(&'static str),
    /// The router's own: to its kernel, unchanged.
    Kernel,
    /// Dropped, counted under this reason.
    Drop(DropReason),
}

struct Case {
    name: String,
    ingress: &'static str,
    frame: Vec<u8>,
    expect: Expect,
    /// The connection entry this frame leaves (original direction), when it is tracked.
    tracked: Option<CtKey6>,
    /// The frame's description, for the reference evaluator (None: not one it models).
    model: Option<Frame6>,
}

fn port_of(addr: &str) -> &'static str {
    INSTANCES
        .iter()
        .find(|(_, a)| *a == addr)
        .map_or("eweb1", |(p, _)| p)
}

fn octets(a: &str) -> [u8; 16] {
    a.parse::<Ipv6Addr>().expect("an IPv6 address").octets()
}

fn key(src: &str, dst: &str, sport: u16, dport: u16, proto: u8) -> CtKey6 {
    CtKey6::new(octets(src), octets(dst), sport, dport, proto)
}

/// The port's MACs: (the router's end, the host's end).
fn macs(topo: &Topology, ifname: &str) -> ([u8; 6], [u8; 6]) {
    let index = topo.port_named(ifname).index;
    (mac(index, false), mac(index, true))
}

/// `f` as the host behind `ingress` sends it to the router.
fn from_host(topo: &Topology, ingress: &str, f: Frame6) -> Vec<u8> {
    let (router, host) = macs(topo, ingress);
    f.macs(host, router).build()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Frame6 {
    Frame6::new(
        src,
        dst,
        Upper::Tcp {
            sport,
            dport,
            flags,
        },
    )
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Frame6 {
    Frame6::new(src, dst, Upper::Udp { sport, dport })
}

fn echo(src: &str, dst: &str, id: u16) -> Frame6 {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 1]);
    Frame6::new(
        src,
        dst,
        Upper::Icmp {
            ty: 128,
            code: 0,
            body,
        },
    )
}

/// A TCP frame's acknowledgment number set (the builder's is 0), checksum kept valid.
fn with_ack(mut frame: Vec<u8>, ack: u32) -> Vec<u8> {
    frame[54 + 8..54 + 12].copy_from_slice(&ack.to_be_bytes());
    frame[54 + 16..54 + 18].copy_from_slice(&[0, 0]);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
    let check = upper_checksum(&src, &dst, TCP, &frame[54..]);
    frame[54 + 16..54 + 18].copy_from_slice(&check.to_be_bytes());
    frame
}

fn cases(topo: &Topology) -> Vec<Case> {
    let case = |name: &str, ingress: &'static str, f: Frame6, expect, tracked| Case {
        name: name.to_owned(),
        ingress,
        frame: from_host(topo, ingress, f.clone()),
        expect,
        tracked,
        model: f.ext.is_empty().then_some(f),
    };
    let fwd = |name: &str, f: Frame6, out: &'static str, tracked: CtKey6| {
        let ingress = port_of(&f.src.to_string());
        case(name, ingress, f, Expect::Forward(out), Some(tracked))
    };
    let drop = |name: &str, ingress: &'static str, f: Frame6, reason| {
        case(name, ingress, f, Expect::Drop(reason), None)
    };
    use DropReason::*;
    let mut cases = vec![
        fwd(
            "TCP SYN within the subnet, to web's port 80",
            tcp(WEB1, WEB2, 40000, 80, SYN),
            "eweb2",
            key(WEB1, WEB2, 40000, 80, TCP),
        ),
        fwd(
            "TCP SYN across subnets, to app's 5432 from a member of web",
            tcp(WEB1, APP1, 40001, 5432, SYN),
            "eapp1",
            key(WEB1, APP1, 40001, 5432, TCP),
        ),
        fwd(
            "UDP across subnets, to app's 53 from the web /64",
            udp(WEB2, APP1, 40002, 53),
            "eapp1",
            key(WEB2, APP1, 40002, 53, UDP),
        ),
        fwd(
            "ICMPv6 echo within the subnet (web admits echo from the VPC)",
            echo(WEB2, WEB1, 7),
            "eweb1",
            key(WEB2, WEB1, 7, 7, ICMPV6),
        ),
        fwd(
            "ICMPv6 echo across subnets (app admits echo from web)",
            echo(WEB1, APP1, 8),
            "eapp1",
            key(WEB1, APP1, 8, 8, ICMPV6),
        ),
        fwd(
            "from app to web's port 80 (app's outbound allows the VPC /56)",
            tcp(APP1, WEB1, 40003, 80, SYN),
            "eweb1",
            key(APP1, WEB1, 40003, 80, TCP),
        ),
        fwd(
            "hop limit 2: forwarded with 1",
            tcp(WEB1, WEB2, 40004, 80, SYN).hop_limit(2),
            "eweb2",
            key(WEB1, WEB2, 40004, 80, TCP),
        ),
        fwd(
            "through a destination options header",
            tcp(WEB1, WEB2, 40005, 80, SYN).ext(Ext::DestOpts(0)),
            "eweb2",
            key(WEB1, WEB2, 40005, 80, TCP),
        ),
        // Denials of the groups, the ACLs and the route table.
        drop(
            "TCP to web's port 22: web admits 80 only",
            "eweb1",
            tcp(WEB1, WEB2, 40010, 22, SYN),
            SecurityGroupInbound,
        ),
        drop(
            "TCP from app to web-2's port 5432: web does not admit it",
            "eapp1",
            tcp(APP1, WEB2, 40011, 5432, SYN),
            SecurityGroupInbound,
        ),
        drop(
            "UDP from web to app's 54: app admits 53 only",
            "eweb1",
            udp(WEB1, APP1, 40012, 54),
            SecurityGroupInbound,
        ),
        drop(
            "app's ACL denies TCP 5433 in (rule 90, before the allow)",
            "eweb1",
            tcp(WEB1, APP1, 40013, 5433, SYN),
            AclInbound,
        ),
        drop(
            "app's ACL denies UDP 9999 out",
            "eapp1",
            udp(APP1, WEB1, 40014, 9999),
            AclOutbound,
        ),
        drop(
            "app's group allows out the VPC and HTTPS only",
            "eapp1",
            tcp(APP1, INET6, 40015, 80, SYN),
            SecurityGroupOutbound,
        ),
        drop(
            "an address of the subnet no instance has",
            "eweb1",
            tcp(WEB1, UNUSED, 40016, 80, SYN),
            UnknownDestination,
        ),
        drop(
            "the VPC's /56 outside every subnet",
            "eweb1",
            tcp(WEB1, NO_SUBNET, 40017, 80, SYN),
            UnknownDestination,
        ),
        drop(
            "a blackhole route",
            "eweb1",
            tcp(WEB1, BLACKHOLED, 40018, 80, SYN),
            Blackhole,
        ),
        fwd(
            "::/0 to the internet gateway: out of the uplink, untranslated",
            tcp(WEB1, INET6, 40019, 80, SYN),
            "up0",
            key(WEB1, INET6, 40019, 80, TCP),
        ),
        fwd(
            "::/0 to the egress-only gateway: out of the uplink, untranslated",
            tcp(APP1, INET6, 40026, 443, SYN),
            "up0",
            key(APP1, INET6, 40026, 443, TCP),
        ),
        // From the internet, on the uplink.
        case(
            "from the internet to web-1's port 80: in through the internet gateway",
            "up0",
            tcp(INET6, WEB1, 40050, 80, SYN),
            Expect::Forward("eweb1"),
            Some(key(INET6, WEB1, 40050, 80, TCP)),
        ),
        case(
            "an ICMPv6 echo from the internet to web-2 (web admits echo from the VPC only)",
            "up0",
            echo(INET6, WEB2, 11),
            Expect::Drop(SecurityGroupInbound),
            None,
        ),
        drop(
            "from the internet to web-1's port 22",
            "up0",
            tcp(INET6, WEB1, 40051, 22, SYN),
            SecurityGroupInbound,
        ),
        drop(
            "from the internet to app-1, behind the egress-only gateway: replies only",
            "up0",
            tcp(INET6, APP1, 40052, 5432, SYN),
            UplinkUnsolicited,
        ),
        drop(
            "from the uplink with a VPC source",
            "up0",
            tcp(WEB2, WEB1, 40053, 80, SYN),
            UplinkSpoofed,
        ),
        drop(
            "from the uplink with a link-local source",
            "up0",
            tcp("fe80::1", WEB1, 40054, 80, SYN),
            UplinkSpoofed,
        ),
        drop(
            "from the internet to an address of the block no instance has",
            "up0",
            tcp(INET6, UNUSED, 40055, 80, SYN),
            UnknownDestination,
        ),
        drop(
            "from the internet at hop limit 1",
            "up0",
            tcp(INET6, WEB1, 40056, 80, SYN).hop_limit(1),
            TtlExceeded,
        ),
        drop(
            "an ICMPv6 error from the internet",
            "up0",
            Frame6::new(
                INET6,
                WEB1,
                Upper::Icmp {
                    ty: 3,
                    code: 0,
                    body: vec![0; 44],
                },
            ),
            NotIpv4,
        ),
        drop(
            "a first fragment from the internet",
            "up0",
            tcp(INET6, WEB1, 40057, 80, SYN).ext(Ext::Fragment {
                offset_units: 0,
                more: true,
            }),
            Fragment,
        ),
        case(
            "from the internet to the router's own uplink address: the kernel's",
            "up0",
            tcp(INET6, ROUTER_UP6, 40058, 22, SYN),
            Expect::Kernel,
            None,
        ),
        // Spoofed sources, from every port.
        drop(
            "web-1 sending as web-2",
            "eweb1",
            tcp(WEB2, APP1, 40020, 5432, SYN),
            Spoofed,
        ),
        drop(
            "web-2 sending as app-1",
            "eweb2",
            tcp(APP1, WEB1, 40021, 80, SYN),
            Spoofed,
        ),
        drop(
            "app-1 sending as web-1 (a member of web, which app admits)",
            "eapp1",
            tcp(WEB1, APP1, 40022, 5432, SYN),
            Spoofed,
        ),
        drop(
            "an unassigned address of the instance's own /64",
            "eweb1",
            tcp(UNUSED, WEB2, 40023, 80, SYN),
            Spoofed,
        ),
        drop(
            "an address outside the VPC",
            "eapp1",
            tcp(INET6, WEB1, 40024, 80, SYN),
            Spoofed,
        ),
        drop(
            "a link-local source to a global destination",
            "eweb1",
            tcp("fe80::1", WEB2, 40025, 80, SYN),
            Spoofed,
        ),
        // Hop limits, flags, errors, multicast, fragments.
        drop(
            "hop limit 1: not forwarded",
            "eweb1",
            tcp(WEB1, WEB2, 40030, 80, SYN).hop_limit(1),
            TtlExceeded,
        ),
        drop(
            "hop limit 0",
            "eweb1",
            tcp(WEB1, WEB2, 40031, 80, SYN).hop_limit(0),
            TtlExceeded,
        ),
        drop(
            "SYN and FIN together",
            "eweb1",
            tcp(WEB1, WEB2, 40032, 80, SYN | 0x01),
            InvalidTcpFlags,
        ),
        drop(
            "a bare ACK of no connection: only a SYN opens one",
            "eweb1",
            tcp(WEB1, WEB2, 40033, 80, ACK),
            InvalidTcpFlags,
        ),
        drop(
            "an ICMPv6 destination unreachable quoting another flow",
            "eweb1",
            Frame6::new(
                WEB1,
                APP1,
                Upper::Icmp {
                    ty: 1,
                    code: 4,
                    body: {
                        let mut quoted = vec![0; 4];
                        quoted.extend_from_slice(
                            &tcp(APP1, WEB2, 5432, 40099, SYN | ACK).build()[14..],
                        );
                        quoted
                    },
                },
            ),
            NotIpv4,
        ),
        drop(
            "multicast beyond the link",
            "eweb1",
            udp(WEB1, "ff05::1:3", 40034, 547),
            NotIpv4,
        ),
        drop(
            "a first fragment",
            "eweb1",
            tcp(WEB1, WEB2, 40035, 80, SYN).ext(Ext::Fragment {
                offset_units: 0,
                more: true,
            }),
            Fragment,
        ),
    ];
    // Truncated: the TCP header cut at each of its offsets (the payload length agreeing).
    let full = from_host(topo, "eweb1", tcp(WEB1, WEB2, 40036, 80, SYN));
    for len in [54usize, 55, 58, 62, 66, 73] {
        let mut frame = full[..len].to_vec();
        let payload = (len - 54) as u16;
        frame[18..20].copy_from_slice(&payload.to_be_bytes());
        cases.push(Case {
            name: format!("TCP cut to {len} of {} bytes", full.len()),
            ingress: "eweb1",
            frame,
            expect: Expect::Drop(Malformed),
            tracked: None,
            model: None,
        });
    }
    // A payload length longer than the frame.
    let mut long = full.clone();
    long[18..20].copy_from_slice(&100u16.to_be_bytes());
    cases.push(Case {
        name: "a payload length past the frame's end".into(),
        ingress: "eweb1",
        frame: long,
        expect: Expect::Drop(Malformed),
        tracked: None,
        model: None,
    });
    cases
}

/// The connection entry of `key` in `CONNTRACK6` or `CT_UNASSURED6`.
fn ct6(topo: &Topology, key: &CtKey6) -> Option<CtEntry> {
    ["CONNTRACK6", "CT_UNASSURED6"]
        .into_iter()
        .find_map(|name| {
            let map = topo.datapath.ebpf().map(name)?;
            let ct = aya::maps::HashMap::<_, CtKey6, CtEntry>::try_from(map).ok()?;
            ct.get(key, 0).ok()
        })
}

/// Forgets every IPv6 connection (each case starts from none).
fn flush_ct6(topo: &mut Topology) {
    for name in ["CONNTRACK6", "CT_UNASSURED6"] {
        let map = topo.datapath.ebpf_mut().map_mut(name).expect(name);
        let mut ct = aya::maps::HashMap::<_, CtKey6, CtEntry>::try_from(map).expect(name);
        let keys: Vec<CtKey6> = ct.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = ct.remove(&k);
        }
    }
}

/// Takes the IPv6 flow records (`FLOWS6`, summed over CPUs): each case starts from none.
fn take_flows6(topo: &mut Topology) -> Vec<(FlowKey6, FlowStats)> {
    let map = topo.datapath.ebpf_mut().map_mut("FLOWS6").expect("FLOWS6");
    let mut flows =
        aya::maps::PerCpuHashMap::<_, FlowKey6, FlowStats>::try_from(map).expect("FLOWS6");
    let keys: Vec<FlowKey6> = flows.keys().filter_map(Result::ok).collect();
    let mut out = Vec::new();
    for k in keys {
        let values = flows.get(&k, 0).expect("FLOWS6 entry");
        out.push((k, drain::aggregate(&values).expect("a packet")));
        flows.remove(&k).expect("FLOWS6 entry removed");
    }
    out
}

/// Drops the pipeline decides on (after parsing, in the IPv6 programs), which leave a REJECT
/// record; other drops (before the pipeline) may leave none.
fn pipeline_drop(reason: DropReason) -> bool {
    use DropReason::*;
    matches!(
        reason,
        SecurityGroupInbound
            | SecurityGroupOutbound
            | AclInbound
            | AclOutbound
            | UnknownDestination
            | Blackhole
    )
}

/// The flow records `hook` left for case `c` (arriving on `ingress`): a forwarded packet one
/// ACCEPT record with its 5-tuple and the interface it left by, a drop of the pipeline one
/// REJECT record with the reason, the router's own none. Returns whether it left one.
fn check_flows6(topo: &mut Topology, hook: &str, c: &Case, ingress: u32) -> bool {
    let flows = take_flows6(topo);
    let what = format!("{hook} {}: FLOWS6 {flows:?}", c.name);
    let tuple = c.tracked.or_else(|| {
        c.model.as_ref().map(|f| {
            let p = model_packet(f);
            let v6 = |a| match a {
                std::net::IpAddr::V6(a) => a.octets(),
                std::net::IpAddr::V4(_) => panic!("{what}: IPv4"),
            };
            CtKey6::new(v6(p.src), v6(p.dst), p.sport, p.dport, p.proto)
        })
    });
    let (action, reason, out) = match c.expect {
        Expect::Forward(out) => (FLOW_ACCEPT, 0, topo.port_named(out).ifindex),
        Expect::Drop(r) if pipeline_drop(r) => (FLOW_REJECT, r as u32, 0),
        Expect::Drop(r) => {
            // Perhaps before the pipeline: nothing, or the one REJECT record.
            assert!(flows.len() <= 1, "{what}");
            if let Some((k, st)) = flows.first() {
                assert_eq!((k.action, st.reason), (FLOW_REJECT, r as u32), "{what}");
            }
            return !flows.is_empty();
        }
        Expect::Kernel => {
            assert!(flows.is_empty(), "{what}: the kernel's, not recorded");
            return false;
        }
    };
    assert_eq!(flows.len(), 1, "{what}: one record");
    let (k, st) = &flows[0];
    assert_eq!(k.ifindex, ingress, "{what}: the interface it arrived on");
    assert_eq!(k.action, action, "{what}: action");
    assert_eq!(st.reason, reason, "{what}: reason");
    assert_eq!(st.out_ifindex, out, "{what}: out interface");
    assert_eq!(st.packets, 1, "{what}: packets");
    // IPv6 is not translated: no packet addresses of its own.
    assert_eq!((st.pkt_src, st.pkt_dst), (0, 0), "{what}");
    if let Some(t) = tuple {
        assert_eq!(
            (k.src, k.dst, k.sport, k.dport, k.proto),
            (t.src, t.dst, t.sport, t.dport, t.proto),
            "{what}: the 5-tuple"
        );
    }
    true
}

/// `frame` as forwarded: the hop limit one less and, when given, the MACs.
fn forwarded(frame: &[u8], macs: Option<([u8; 6], [u8; 6])>) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[21] -= 1;
    if let Some((dst, src)) = macs {
        out[0..6].copy_from_slice(&dst);
        out[6..12].copy_from_slice(&src);
    }
    out
}

/// IPv6 on the uplink: the router's address and default route there, the internet host's
/// address and its route back to the VPC's block.
fn ipv6_internet(topo: &Topology) {
    topo.router
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER_UP6}/64"),
            "dev",
            "up0",
            "nodad",
        ])
        .expect("router uplink address");
    topo.router
        .ip(&["-6", "route", "add", "default", "via", INET6, "dev", "up0"])
        .expect("router default route");
    let inet = &topo.port_named("up0").ns;
    inet.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{INET6}/64"),
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("internet address");
    inet.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:1200::/56",
        "via",
        ROUTER_UP6,
    ])
    .expect("internet route to the VPC");
}

/// Each instance's IPv6 address as a permanent neighbour of the router on its port, and the
/// internet host on the uplink (the test run's FIB then gives XDP the MACs), as `Topology`
/// does for IPv4.
fn ipv6_neighbours(topo: &Topology) {
    ipv6_internet(topo);
    for (port, addr) in INSTANCES.into_iter().chain([("up0", INET6)]) {
        let (_, host) = macs(topo, port);
        let lladdr = host
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        topo.router
            .ip(&[
                "-6",
                "neigh",
                "replace",
                addr,
                "lladdr",
                &lladdr,
                "dev",
                port,
                "nud",
                "permanent",
            ])
            .expect("neighbour");
    }
}

#[test]
fn test_run_ipv6_between_instance_ports() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    ipv6_neighbours(&topo);
    let cases = cases(&topo);
    assert!(cases.len() > 35, "the table is all there: {}", cases.len());
    let mut forwarded_cases = 0;
    let mut recorded = [0; 2];
    take_flows6(&mut topo);
    for c in &cases {
        let ingress = topo.port_named(c.ingress).ifindex;
        let expected_drops: BTreeMap<DropReason, u64> = match c.expect {
            Expect::Drop(r) => [(r, 1)].into(),
            Expect::Forward(_) | Expect::Kernel => BTreeMap::new(),
        };
        // XDP.
        flush_ct6(&mut topo);
        let dp = &topo.datapath;
        let before = dp.drop_counters().expect("counters");
        let xdp = {
            let _inside = topo.router.enter().expect("router namespace");
            run_xdp(dp.xdp(), &c.frame, Some(ingress)).expect("xdp test run")
        };
        let after = dp.drop_counters().expect("counters");
        assert_eq!(grown(&before, &after), expected_drops, "xdp {}", c.name);
        match c.expect {
            Expect::Forward(out) => {
                let (router, host) = macs(&topo, out);
                assert_eq!(xdp.verdict, Verdict::Redirect, "xdp {}", c.name);
                assert_eq!(
                    xdp.output,
                    forwarded(&c.frame, Some((host, router))),
                    "xdp {}: the bytes out of {out}",
                    c.name
                );
            }
            Expect::Kernel => {
                assert_eq!(xdp.verdict, Verdict::Pass, "xdp {}", c.name);
                assert_eq!(xdp.output, c.frame, "xdp {}: unchanged", c.name);
            }
            Expect::Drop(_) => assert_eq!(xdp.verdict, Verdict::Drop, "xdp {}", c.name),
        }
        if let Some(k) = &c.tracked {
            assert!(ct6(&topo, k).is_some(), "xdp {}: tracked", c.name);
        }
        if let Expect::Drop(_) = c.expect {
            assert_eq!(topo_ct6_count(&topo), 0, "xdp {}: nothing tracked", c.name);
        }
        recorded[usize::from(matches!(c.expect, Expect::Drop(_)))] +=
            usize::from(check_flows6(&mut topo, "xdp", c, ingress));

        // TC ingress (the kernel path).
        if c.frame.len() < 54 {
            continue;
        }
        flush_ct6(&mut topo);
        let dp = &topo.datapath;
        let before = after;
        let tc = {
            let _inside = topo.router.enter().expect("router namespace");
            run_tc(dp.tc(programs::TC_INGRESS), &c.frame, ingress).expect("tc test run")
        };
        let after = dp.drop_counters().expect("counters");
        assert_eq!(grown(&before, &after), expected_drops, "tc {}", c.name);
        match c.expect {
            Expect::Forward(_) => {
                // bpf_redirect_neigh: the kernel writes the MACs on the way out.
                assert_eq!(tc.verdict, TcVerdict::Redirect, "tc {}", c.name);
                assert_eq!(tc.output, forwarded(&c.frame, None), "tc {}", c.name);
                assert_eq!(tc.mark, MARK_APPROVED, "tc {}: approved", c.name);
                forwarded_cases += 1;
            }
            Expect::Kernel => {
                assert_eq!(tc.verdict, TcVerdict::Ok, "tc {}", c.name);
                assert_eq!(tc.output, c.frame, "tc {}: unchanged", c.name);
            }
            Expect::Drop(_) => assert_eq!(tc.verdict, TcVerdict::Shot, "tc {}", c.name),
        }
        if let Some(k) = &c.tracked {
            assert!(ct6(&topo, k).is_some(), "tc {}: tracked", c.name);
        }
        recorded[usize::from(matches!(c.expect, Expect::Drop(_)))] +=
            usize::from(check_flows6(&mut topo, "tc", c, ingress));
    }
    assert!(forwarded_cases >= 8, "{forwarded_cases} forwarded");
    eprintln!(
        "flow records: {} accepted, {} rejected",
        recorded[0], recorded[1]
    );
    assert!(
        recorded[0] >= 16 && recorded[1] >= 16,
        "{recorded:?} recorded"
    );

    // The reference evaluator (`vpc-agent trace`) comes to the same verdict on every frame it
    // models (no extension headers; connections are the datapath's: a stateless evaluator
    // cannot tell a bare ACK of none, which it judges by the rules).
    let evaluator = Evaluator::new(&topo.config, &Stateless);
    let mut agreed = 0;
    for c in &cases {
        let Some(f) = &c.model else { continue };
        if matches!(c.expect, Expect::Drop(DropReason::InvalidTcpFlags)) {
            continue;
        }
        let trace = evaluator
            .evaluate_ip(Ingress::Interface(c.ingress), &model_packet(f))
            .expect("the evaluator judges it");
        match (&c.expect, &trace.verdict) {
            (Expect::Forward(out), EvalVerdict::Deliver { interface, .. }) => {
                assert_eq!(interface, out, "evaluator {}", c.name)
            }
            (Expect::Drop(r), EvalVerdict::Drop(e)) => assert_eq!(e, r, "evaluator {}", c.name),
            (Expect::Kernel, EvalVerdict::ToHost) => {}
            (expect, verdict) => panic!("evaluator {}: {verdict:?}, not {expect:?}", c.name),
        }
        agreed += 1;
    }
    assert!(agreed > 25, "{agreed} agreed");
}

/// The evaluator's packet for frame `f` (ICMPv6 echo: both ports the identifier).
fn model_packet(f: &Frame6) -> IpPacket {
    let (proto, sport, dport, icmp_type, icmp_code) = match &f.upper {
        Upper::Tcp { sport, dport, .. } => (TCP, *sport, *dport, 0, 0),
        Upper::Udp { sport, dport } => (UDP, *sport, *dport, 0, 0),
        Upper::Icmp { ty, code, body } => {
            let id = if *ty >= 128 {
                u16::from_be_bytes([body[0], body[1]])
            } else {
                0
            };
            (ICMPV6, id, id, *ty, *code)
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
        nd_target: None,
    }
}

fn topo_ct6_count(topo: &Topology) -> usize {
    ["CONNTRACK6", "CT_UNASSURED6"]
        .into_iter()
        .map(|name| {
            let map = topo.datapath.ebpf().map(name).expect(name);
            aya::maps::HashMap::<_, CtKey6, CtEntry>::try_from(map)
                .expect(name)
                .keys()
                .count()
        })
        .sum()
}

#[test]
fn test_run_ipv6_replies_pass_on_the_connection_only() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    ipv6_neighbours(&topo);
    flush_ct6(&mut topo);
    let run = |topo: &Topology, ingress: &str, frame: &[u8]| {
        let ifindex = topo.port_named(ingress).ifindex;
        let _inside = topo.router.enter().expect("router namespace");
        run_xdp(topo.datapath.xdp(), frame, Some(ifindex)).expect("xdp test run")
    };
    // web-1 opens to web-2:80; web-2's SYN-ACK is admitted by the connection alone (web
    // admits nothing to port 40040), an unrelated one is not.
    let syn = from_host(&topo, "eweb1", tcp(WEB1, WEB2, 40040, 80, SYN));
    assert_eq!(run(&topo, "eweb1", &syn).verdict, Verdict::Redirect);
    let synack = with_ack(
        from_host(&topo, "eweb2", tcp(WEB2, WEB1, 80, 40040, SYN | ACK)),
        2,
    );
    let out = run(&topo, "eweb2", &synack);
    assert_eq!(
        out.verdict,
        Verdict::Redirect,
        "the reply of the connection"
    );
    let (router, host) = macs(&topo, "eweb1");
    assert_eq!(out.output, forwarded(&synack, Some((host, router))));
    let entry = ct6(&topo, &key(WEB1, WEB2, 40040, 80, TCP)).expect("tracked");
    assert_eq!(
        entry.state,
        vpc_common::conntrack::CT_TCP_SYN_RECV,
        "SYN-ACK seen"
    );
    let before = topo.datapath.drop_counters().unwrap();
    let stray = with_ack(
        from_host(&topo, "eweb2", tcp(WEB2, WEB1, 80, 40041, SYN | ACK)),
        2,
    );
    assert_eq!(run(&topo, "eweb2", &stray).verdict, Verdict::Drop);
    let after = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        grown(&before, &after),
        [(DropReason::InvalidTcpFlags, 1)].into(),
        "a SYN-ACK of no connection opens none: only a SYN alone does"
    );
    // The egress-only gateway: app-1 opens to the internet's 443, the SYN-ACK comes back in
    // on the uplink by the connection alone (nothing new comes in that way).
    let syn = from_host(&topo, "eapp1", tcp(APP1, INET6, 40042, 443, SYN));
    assert_eq!(run(&topo, "eapp1", &syn).verdict, Verdict::Redirect, "out");
    let synack = with_ack(
        from_host(&topo, "up0", tcp(INET6, APP1, 443, 40042, SYN | ACK)),
        2,
    );
    let out = run(&topo, "up0", &synack);
    assert_eq!(
        out.verdict,
        Verdict::Redirect,
        "the reply through the egress-only gateway"
    );
    let (router, host) = macs(&topo, "eapp1");
    assert_eq!(out.output, forwarded(&synack, Some((host, router))));
    let entry = ct6(&topo, &key(APP1, INET6, 40042, 443, TCP)).expect("tracked");
    assert_eq!(entry.state, vpc_common::conntrack::CT_TCP_SYN_RECV);
    let before = topo.datapath.drop_counters().unwrap();
    let unsolicited = from_host(&topo, "up0", tcp(INET6, APP1, 443, 40043, SYN));
    assert_eq!(run(&topo, "up0", &unsolicited).verdict, Verdict::Drop);
    let after = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        grown(&before, &after),
        [(DropReason::UplinkUnsolicited, 1)].into(),
        "a SYN from the internet's 443 to app-1: not a reply"
    );

    // Echo: web admits echo requests only, so app-1's echo reply reaches web-1 by the
    // connection of web-1's request alone, with its identifier; another identifier is a
    // flow of its own, and web's rules refuse it.
    let request = from_host(&topo, "eweb1", echo(WEB1, APP1, 9));
    assert_eq!(run(&topo, "eweb1", &request).verdict, Verdict::Redirect);
    let reply = |id: u16| {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 1]);
        from_host(
            &topo,
            "eapp1",
            Frame6::new(
                APP1,
                WEB1,
                Upper::Icmp {
                    ty: 129,
                    code: 0,
                    body,
                },
            ),
        )
    };
    assert_eq!(
        run(&topo, "eapp1", &reply(9)).verdict,
        Verdict::Redirect,
        "the echo reply of the request"
    );
    let before = topo.datapath.drop_counters().unwrap();
    assert_eq!(run(&topo, "eapp1", &reply(10)).verdict, Verdict::Drop);
    let after = topo.datapath.drop_counters().unwrap();
    assert_eq!(
        grown(&before, &after),
        [(DropReason::SecurityGroupInbound, 1)].into(),
        "an echo reply of no request"
    );
}

fn addr(a: &str) -> Option<Ipv6Addr> {
    a.parse().ok()
}

/// The address a server answered it saw the client come from (`peer=[ADDR]:PORT`).
fn peer(answer: &str) -> Option<Ipv6Addr> {
    let rest = answer.split("peer=[").nth(1)?;
    rest.split(']').next()?.parse().ok()
}

/// The live IPv6 flow records, as the flow log drain and `vpc-agent flows` read them.
fn live_flows6(topo: &Topology) -> Vec<drain::Flow> {
    let map = topo.datapath.ebpf().map("FLOWS6").expect("FLOWS6");
    drain::read::<vpc_common::Addr6>(map).expect("FLOWS6 read")
}

/// The instances' hosts at Linux defaults with their IPv6 addresses, each having learned its
/// default router from the router's advertisement.
fn ipv6_hosts(topo: &Topology) {
    for (port, own) in INSTANCES {
        let ns = &topo.port_named(port).ns;
        // The link bounce makes the host solicit its router (the agent is not running
        // here); the address is added once the link is up (a bounce drops it).
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
    for (port, _) in INSTANCES {
        let ns = &topo.port_named(port).ns;
        assert!(
            eventually(15, || {
                let out = ns.ip(&["-6", "route", "show", "default"]).unwrap();
                String::from_utf8_lossy(&out.stdout).contains("via fe80::")
            }),
            "{port}: the host learns its default router"
        );
    }
}

#[test]
fn instances_talk_ipv6_through_the_router() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    ipv6_hosts(&topo);
    let ns = |port: &str| &topo.port_named(port).ns;
    let counters = || topo.datapath.drop_counters().unwrap();

    // Ping within the subnet and across, both ways.
    for (from, src, dst) in [
        ("eweb1", WEB1, WEB2),
        ("eweb2", WEB2, WEB1),
        ("eweb1", WEB1, APP1),
        ("eapp1", APP1, WEB2),
    ] {
        assert!(
            eventually(5, || ping(ns(from), src, dst, 2).unwrap() > 0),
            "ping {src} -> {dst}: {:?}",
            counters()
        );
    }

    // TCP: web-1 -> app-1:5432 (app admits members of web); the server saw web-1's address.
    let bracket = |a: &str| format!("[{a}]");
    let _db = Server::tcp(ns("eapp1"), &bracket(APP1), 5432).unwrap();
    let answer = retry(|| tcp_request(ns("eweb1"), &bracket(WEB1), &bracket(APP1), 5432));
    let answer = answer.expect("TCP web-1 -> app-1:5432");
    assert_eq!(peer(&answer), addr(WEB1), "the server saw web-1: {answer}");
    // The flow log's view (the drain's reader, as `vpc-agent flows`): both directions of the
    // connection, accepted, each at the port it arrived on and out of the other.
    let (eweb1, eapp1) = (
        topo.port_named("eweb1").ifindex,
        topo.port_named("eapp1").ifindex,
    );
    let flows = live_flows6(&topo);
    let accepted = |from: &str, to: &str, port: (Option<u16>, Option<u16>), at, out| {
        flows.iter().any(|(k, st)| {
            k.src == addr(from).map(IpAddr::V6).expect("address")
                && k.dst == addr(to).map(IpAddr::V6).expect("address")
                && port.0.is_none_or(|p| k.sport == p)
                && port.1.is_none_or(|p| k.dport == p)
                && k.proto == TCP
                && k.action == FLOW_ACCEPT
                && k.ifindex == at
                && st.out_ifindex == out
                && st.packets > 0
        })
    };
    assert!(
        accepted(WEB1, APP1, (None, Some(5432)), eweb1, eapp1),
        "web-1 -> app-1:5432 in FLOWS6: {flows:?}"
    );
    assert!(
        accepted(APP1, WEB1, (Some(5432), None), eapp1, eweb1),
        "app-1:5432 -> web-1 in FLOWS6: {flows:?}"
    );
    // And app-1 -> web-2:80 (web admits 80 from anywhere).
    let _web = Server::tcp(ns("eweb2"), &bracket(WEB2), 80).unwrap();
    let answer = retry(|| tcp_request(ns("eapp1"), &bracket(APP1), &bracket(WEB2), 80));
    assert_eq!(
        peer(&answer.expect("TCP app-1 -> web-2:80")),
        addr(APP1),
        "the server saw app-1"
    );
    // UDP: web-2 -> app-1:53, answered.
    let _dns = Server::udp(ns("eapp1"), &bracket(APP1), 53).unwrap();
    let answer = retry(|| udp_request(ns("eweb2"), &bracket(WEB2), &bracket(APP1), 53));
    assert_eq!(
        peer(&answer.expect("UDP web-2 -> app-1:53")),
        addr(WEB2),
        "the server saw web-2"
    );

    // Denials, each counted under its reason.
    let denied = |reason: DropReason, what: &dyn Fn() -> Option<String>| {
        let before = counters();
        assert_eq!(what(), None, "{reason:?}: nothing answered");
        let after = counters();
        assert!(
            grown(&before, &after).get(&reason).copied().unwrap_or(0) >= 1,
            "{reason:?}: counted: {:?}",
            grown(&before, &after)
        );
    };
    let _ssh = Server::tcp(ns("eweb1"), &bracket(WEB1), 22).unwrap();
    denied(DropReason::SecurityGroupInbound, &|| {
        tcp_request(ns("eweb2"), &bracket(WEB2), &bracket(WEB1), 22).unwrap()
    });
    let flows = live_flows6(&topo);
    assert!(
        flows.iter().any(
            |(k, st)| k.dst == addr(WEB1).map(IpAddr::V6).expect("address")
                && k.dport == 22
                && k.action == FLOW_REJECT
                && st.reason == DropReason::SecurityGroupInbound as u32
        ),
        "web-2 -> web-1:22 rejected in FLOWS6: {flows:?}"
    );
    let _other = Server::tcp(ns("eapp1"), &bracket(APP1), 5433).unwrap();
    denied(DropReason::AclInbound, &|| {
        tcp_request(ns("eweb1"), &bracket(WEB1), &bracket(APP1), 5433).unwrap()
    });
    let _udp = Server::udp(ns("eweb1"), &bracket(WEB1), 9999).unwrap();
    denied(DropReason::AclOutbound, &|| {
        udp_request(ns("eapp1"), &bracket(APP1), &bracket(WEB1), 9999).unwrap()
    });

    // A spoofed source: web-1 takes an address of its subnet it was not given.
    ns("eweb1")
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{UNUSED}/128"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    let before = counters();
    assert_eq!(ping(ns("eweb1"), UNUSED, WEB2, 2).unwrap(), 0, "spoofed");
    let after = counters();
    assert!(
        grown(&before, &after)
            .get(&DropReason::Spoofed)
            .copied()
            .unwrap_or(0)
            >= 2,
        "spoofed, counted: {:?}",
        grown(&before, &after)
    );
}

#[test]
fn the_internet_reaches_web_and_only_answers_app_behind_the_egress_only_gateway() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, Some(AttachMode::Auto), false).expect("topology");
    ipv6_internet(&topo);
    ipv6_hosts(&topo);
    let ns = |port: &str| &topo.port_named(port).ns;
    let counters = || topo.datapath.drop_counters().unwrap();
    let bracket = |a: &str| format!("[{a}]");

    // web-1 and the internet, both ways: ping out, TCP in to 80, TCP out; each server saw
    // the other's own address (untranslated).
    assert!(
        eventually(5, || ping(ns("eweb1"), WEB1, INET6, 2).unwrap() > 0),
        "ping web-1 -> the internet: {:?}",
        counters()
    );
    let _web = Server::tcp(ns("eweb1"), &bracket(WEB1), 80).unwrap();
    let answer = retry(|| tcp_request(ns("up0"), &bracket(INET6), &bracket(WEB1), 80));
    assert_eq!(
        peer(&answer.expect("TCP the internet -> web-1:80")),
        addr(INET6),
        "web-1 saw the internet host's own address"
    );
    let _inet = Server::tcp(ns("up0"), &bracket(INET6), 443).unwrap();
    let answer = retry(|| tcp_request(ns("eweb1"), &bracket(WEB1), &bracket(INET6), 443));
    assert_eq!(
        peer(&answer.expect("TCP web-1 -> the internet:443")),
        addr(WEB1),
        "the internet saw web-1's own address"
    );

    // app-1 behind the egress-only gateway: out to 443 and its replies back, but nothing the
    // internet opens comes in.
    let answer = retry(|| tcp_request(ns("eapp1"), &bracket(APP1), &bracket(INET6), 443));
    assert_eq!(
        peer(&answer.expect("TCP app-1 -> the internet:443")),
        addr(APP1),
        "the internet saw app-1's own address"
    );
    let _db = Server::tcp(ns("eapp1"), &bracket(APP1), 5432).unwrap();
    let before = counters();
    assert_eq!(
        tcp_request(ns("up0"), &bracket(INET6), &bracket(APP1), 5432).unwrap(),
        None,
        "the internet cannot open a connection to app-1"
    );
    let after = counters();
    assert!(
        grown(&before, &after)
            .get(&DropReason::UplinkUnsolicited)
            .copied()
            .unwrap_or(0)
            >= 1,
        "refused as unsolicited: {:?}",
        grown(&before, &after)
    );
    // And from the internet with a VPC source: spoofed.
    inet_spoof(&topo);
    let before = counters();
    assert_eq!(
        ping(ns("up0"), WEB2, WEB1, 2).unwrap(),
        0,
        "spoofed from outside"
    );
    let after = counters();
    assert!(
        grown(&before, &after)
            .get(&DropReason::UplinkSpoofed)
            .copied()
            .unwrap_or(0)
            >= 2,
        "counted: {:?}",
        grown(&before, &after)
    );
}

/// The internet host takes web-2's address (a source from inside the VPC).
fn inet_spoof(topo: &Topology) {
    topo.port_named("up0")
        .ns
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{WEB2}/128"),
            "dev",
            "eth0",
            "nodad",
        ])
        .expect("spoofed address");
}
