//! Random hostile IPv6 on an instance port, BPF_PROG_TEST_RUN (XDP and TC ingress): frames
//! from the instance's own, link-local, unspecified, another instance's and foreign sources,
//! with random extension-header chains, hop limits, truncations and corrupted header fields.
//! Whatever comes in, the datapath keeps its invariants:
//!
//! - a drop counts exactly one reason, anything else counts none;
//! - XDP and TC agree (same drop reason; to the kernel / answered alike);
//! - only link-scope destinations reach the kernel, unchanged, and neighbour discovery only
//!   as RFC 4861 validates it (no extension header, hop limit 255, code 0);
//! - only a neighbour or router solicitation with hop limit 255 and no extension header, or
//!   an echo request to the router, is answered, from the router's port back to the sender,
//!   with a valid ICMPv6 checksum; nothing reaches the kernel that it would answer to the
//!   sender's link-local address itself (so it keeps no neighbour entry of made-up ones);
//! - a source the instance does not own is never passed nor answered.

use std::{collections::BTreeMap, net::Ipv6Addr};

use vpc_agent::datapath::object::programs;
use vpc_common::DropReason;
use vpc_tests::{
    packet6::{
        Ext, Frame6, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, ROUTER_ADVERTISEMENT,
        ROUTER_SOLICITATION, Upper, link_local, upper_checksum,
    },
    require_kernel,
    rng::Rng,
    testrun::{TcVerdict, Verdict, run_tc, run_xdp},
    topology::{Topology, mac},
};

const FIXTURE: &str = include_str!("../fixtures/ipv6-ports.yaml");
/// web-1, behind port eweb1.
const OWN: &str = "2001:db8:1200::10";
/// web-2: in the subnet, not web-1's.
const OTHER: &str = "2001:db8:1200::11";
const ECHO_REQUEST: u8 = 128;

/// What a program did with a frame, comparable across XDP and TC.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Kernel,
    Answered(Vec<u8>),
    Dropped(DropReason),
}

fn drops_grown(
    before: &BTreeMap<DropReason, u64>,
    after: &BTreeMap<DropReason, u64>,
) -> Vec<DropReason> {
    DropReason::ALL
        .iter()
        .flat_map(|r| {
            let d = after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0);
            std::iter::repeat_n(*r, d as usize)
        })
        .collect()
}

fn is_link_scope(a: &Ipv6Addr) -> bool {
    a.is_unicast_link_local() || (a.segments()[0] == 0xff02)
}

/// A random frame from the host of eweb1 (`host` MAC) to the router's port (`router`).
fn random_frame(rng: &mut Rng, router: [u8; 6], host: [u8; 6]) -> (Frame6, Vec<u8>) {
    let router_ll = link_local(router).to_string();
    let sources = [
        OWN,
        OWN,
        "fe80::1",
        "::",
        OTHER,
        "2001:db8:9999::5",
        "ff02::1",
    ];
    let destinations = [
        OTHER,
        "2001:db8:1200::99",
        "2001:db8:ff::2",
        router_ll.as_str(),
        "ff02::1",
        "ff02::2",
        "ff02::1:ff00:99",
        "fe80::2",
        OWN,
    ];
    let src = *rng.pick(&sources);
    let dst = *rng.pick(&destinations);
    let targets = [
        OTHER,
        "2001:db8:1200::99",
        OWN,
        router_ll.as_str(),
        "fe80::2",
    ];
    let target = *rng.pick(&targets);
    let mut f = match rng.next() % 6 {
        0 => Frame6::neighbor_solicitation(src, target, host),
        1 => Frame6::router_solicitation(src, host),
        2 => Frame6::neighbor_advertisement(src, dst, target, 0x60),
        3 => Frame6::echo(src, dst),
        4 => Frame6::new(
            src,
            dst,
            Upper::Udp {
                sport: 40000,
                dport: 53,
            },
        ),
        _ => Frame6::new(
            src,
            dst,
            Upper::Icmp {
                ty: *rng.pick(&[ROUTER_ADVERTISEMENT, 137, 143, 1, 2, 3]),
                code: 0,
                body: vec![0; 20],
            },
        ),
    };
    f = f.macs(host, router);
    if rng.next().is_multiple_of(3) {
        f = f.hop_limit(*rng.pick(&[0, 1, 64, 254]));
    }
    let headers = if rng.next().is_multiple_of(2) {
        0
    } else {
        rng.next() % 6
    };
    for _ in 0..headers {
        let ext = match rng.next() % 7 {
            0 => Ext::HopByHop((rng.next() % 3) as u8),
            1 => Ext::DestOpts((rng.next() % 40) as u8),
            2 => Ext::Routing {
                ty: *rng.pick(&[0, 2, 4]),
                segments_left: (rng.next() % 2) as u8,
            },
            3 => Ext::Fragment {
                offset_units: 0,
                more: true,
            },
            4 => Ext::Fragment {
                offset_units: 1 + (rng.next() % 100) as u16,
                more: false,
            },
            5 => Ext::Other(*rng.pick(&[51, 135, 139, 140, 253, 254, 59])),
            _ => Ext::HopByHop(0),
        };
        f = f.ext(ext);
    }
    let mut bytes = f.build();
    match rng.next() % 8 {
        // Truncated anywhere.
        0 => bytes.truncate(14 + (rng.next() % (bytes.len() as u64 - 14)) as usize),
        // Payload length corrupted.
        1 => {
            let len = (rng.next() % 300) as u16;
            bytes[18..20].copy_from_slice(&len.to_be_bytes());
        }
        // Next header corrupted.
        2 => bytes[20] = rng.next() as u8,
        // Version corrupted.
        3 => bytes[14] = (bytes[14] & 0x0f) | (((rng.next() % 16) as u8) << 4),
        _ => {}
    }
    (f, bytes)
}

/// Whether `answer` is a well-formed neighbour discovery answer to `input` from port `router`.
fn answer_is_sound(input: &[u8], answer: &[u8], router: [u8; 6]) -> Result<(), String> {
    if answer.len() < 54 + 8 {
        return Err("shorter than an ICMPv6 message".into());
    }
    if answer[0..6] != input[6..12] || answer[6..12] != router {
        return Err("not from the port back to the sender's MAC".into());
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&answer[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&answer[38..54]).unwrap());
    let input_src = Ipv6Addr::from(<[u8; 16]>::try_from(&input[22..38]).unwrap());
    let to = if input_src.is_unspecified() {
        "ff02::1".parse().unwrap()
    } else {
        input_src
    };
    if dst != to {
        return Err(format!("to {dst}, not the solicitor {to}"));
    }
    let hop_limit = if input[54] == ECHO_REQUEST { 64 } else { 255 };
    if answer[20] != 58 || answer[21] != hop_limit {
        return Err(format!("not ICMPv6 with hop limit {hop_limit}"));
    }
    let mut msg = answer[54..].to_vec();
    let check = u16::from_be_bytes([msg[2], msg[3]]);
    msg[2..4].copy_from_slice(&[0, 0]);
    if upper_checksum(&src, &dst, 58, &msg) != check {
        return Err("bad ICMPv6 checksum".into());
    }
    let expected = match input[54] {
        NEIGHBOR_SOLICITATION => NEIGHBOR_ADVERTISEMENT,
        ROUTER_SOLICITATION => ROUTER_ADVERTISEMENT,
        ECHO_REQUEST => 129,
        t => return Err(format!("answered ICMPv6 type {t}")),
    };
    if msg[0] != expected {
        return Err(format!("answer type {}", msg[0]));
    }
    Ok(())
}

#[test]
fn random_hostile_ipv6_on_an_instance_port_keeps_the_invariants() {
    require_kernel!();
    let topo = Topology::build(FIXTURE, None, true).expect("topology");
    let dp = &topo.datapath;
    let tc = dp.tc(programs::TC_INGRESS);
    let port = topo.port_named("eweb1");
    let (router, host) = (mac(port.index, false), mac(port.index, true));
    let router_ll = link_local(router).to_string();
    let ifindex = port.ifindex;
    let mut rng = Rng(0x0006_0000_5eed_0001);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..800 {
        let (frame, bytes) = random_frame(&mut rng, router, host);
        let run = |tc_run: bool| -> Outcome {
            let before = dp.drop_counters().expect("counters");
            // None: dropped (the reason is the counter that grew).
            let outcome = {
                let _inside = topo.router.enter().expect("router namespace");
                if tc_run {
                    let out = run_tc(tc, &bytes, ifindex).expect("tc test run");
                    match out.verdict {
                        TcVerdict::Ok => Some(Outcome::Kernel),
                        TcVerdict::Redirect => Some(Outcome::Answered(out.output)),
                        TcVerdict::Shot => None,
                        v => panic!("#{i}: tc verdict {v:?}"),
                    }
                } else {
                    let out = run_xdp(dp.xdp(), &bytes, Some(ifindex)).expect("xdp test run");
                    match out.verdict {
                        Verdict::Pass => {
                            assert_eq!(out.output, bytes, "#{i}: to the kernel unchanged");
                            Some(Outcome::Kernel)
                        }
                        Verdict::Tx => Some(Outcome::Answered(out.output)),
                        Verdict::Drop => None,
                        v => panic!("#{i}: xdp verdict {v:?}"),
                    }
                }
            };
            let grown = drops_grown(&before, &dp.drop_counters().expect("counters"));
            match outcome {
                None => {
                    assert_eq!(
                        grown.len(),
                        1,
                        "#{i}: one reason counted: {grown:?} {frame:?}"
                    );
                    Outcome::Dropped(grown[0])
                }
                Some(other) => {
                    assert!(
                        grown.is_empty(),
                        "#{i}: nothing counted: {grown:?} {frame:?}"
                    );
                    other
                }
            }
        };
        let xdp = run(false);
        // The kernel refuses an skb test run shorter than an IPv6 header.
        if bytes.len() >= 54 {
            let tc = run(true);
            assert_eq!(tc, xdp, "#{i}: TC and XDP agree on {frame:?}");
        }
        let sound_source = bytes.len() >= 54 && {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[22..38]).unwrap());
            src.is_unspecified() || src.is_unicast_link_local() || src.to_string() == OWN
        };
        match &xdp {
            Outcome::Kernel => {
                // Neighbour discovery goes up only as RFC 4861 validates it: no extension
                // header (RA guard evasion), hop limit 255, code 0.
                if let Upper::Icmp {
                    ty: 133..=137,
                    code,
                    ..
                } = frame.upper
                    && bytes == frame.build()
                {
                    assert!(
                        frame.ext.is_empty() && frame.hop_limit == 255 && code == 0,
                        "#{i}: unvalidated neighbour discovery reached the kernel: {frame:?}"
                    );
                }
                let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[38..54]).unwrap());
                assert!(
                    is_link_scope(&dst),
                    "#{i}: only link scope reaches the kernel: {frame:?}"
                );
                // Unicast link-local: only ICMPv6 to the router's address, never an echo
                // request (the router answers those itself).
                if dst.is_unicast_link_local() && bytes == frame.build() {
                    let icmp_not_echo =
                        matches!(frame.upper, Upper::Icmp { ty, .. } if ty != ECHO_REQUEST);
                    assert!(
                        dst.to_string() == router_ll && icmp_not_echo,
                        "#{i}: the kernel would answer this itself: {frame:?}"
                    );
                }
                assert!(
                    sound_source,
                    "#{i}: a foreign source reached the kernel: {frame:?}"
                );
            }
            Outcome::Answered(answer) => {
                assert!(
                    sound_source,
                    "#{i}: a foreign source was answered: {frame:?}"
                );
                assert_eq!(
                    bytes[20], 58,
                    "#{i}: answered without ICMPv6 right after the header"
                );
                if bytes[54] != ECHO_REQUEST {
                    assert_eq!(
                        bytes[21], 255,
                        "#{i}: answered with hop limit {}",
                        bytes[21]
                    );
                }
                if let Err(e) = answer_is_sound(&bytes, answer, router) {
                    panic!("#{i}: {e}: {frame:?} -> {answer:?}");
                }
            }
            Outcome::Dropped(_) => {}
        }
        let key = match &xdp {
            Outcome::Kernel => "kernel".to_owned(),
            Outcome::Answered(a) => format!("answered:{}", a[54]),
            Outcome::Dropped(r) => format!("dropped:{}", r.name()),
        };
        *seen.entry(key).or_default() += 1;
    }
    // The generator reaches every branch that matters.
    for key in [
        "kernel",
        "answered:136",
        "answered:134",
        "answered:129",
        "dropped:unknown_destination",
        "dropped:spoofed",
        "dropped:malformed",
        "dropped:not_ipv4",
        "dropped:ipv6_ext_headers",
    ] {
        assert!(
            seen.get(key).is_some_and(|n| *n > 0),
            "no {key} among {seen:?}"
        );
    }
    eprintln!("outcomes: {seen:?}");
}
