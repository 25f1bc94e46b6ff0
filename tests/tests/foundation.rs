//! Foundation: the XDP program loads (verifier), classifies crafted packets in
//! BPF_PROG_TEST_RUN (on a managed interface malformed packets are dropped with a reason; on
//! an interface the agent does not manage everything goes to the kernel), and runs attached to
//! a real interface in a test namespace.

use aya::programs::XdpMode;
use vpc_common::DropReason;
use vpc_tests::{
    datapath::Datapath,
    netns::{NetNs, veth},
    packet::{Packet, TCP_SYN},
    packet6::{Frame6, Upper},
    require_kernel,
    testrun::{Verdict, run_xdp},
    topology::{Topology, mac},
};

struct Case {
    name: &'static str,
    /// Whether the packet arrives on a managed interface (pub0) or an unmanaged one.
    managed: bool,
    frame: Vec<u8>,
    verdict: Verdict,
    /// The drop counter that must have grown by one (None: no drop counted).
    dropped: Option<DropReason>,
}

fn cases(topo: &Topology) -> Vec<Case> {
    // To the router's own address: well-formed, for the host.
    let tcp = topo.frame(
        "pub0",
        &Packet::tcp("10.0.0.10", "10.0.0.1", 40000, 22, TCP_SYN),
    );
    let pub0 = topo.port_named("pub0").index;
    let ipv6 = Frame6::new(
        "2001:db8::10",
        "2001:db8::20",
        Upper::Udp {
            sport: 40000,
            dport: 53,
        },
    )
    .macs(mac(pub0, true), mac(pub0, false))
    .build();
    let router_advertisement = Frame6::new(
        "fe80::1",
        "ff02::1",
        Upper::Icmp {
            ty: 134,
            code: 0,
            body: vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
        },
    )
    .macs(mac(pub0, true), [0x33, 0x33, 0, 0, 0, 1])
    .hop_limit(255)
    .build();
    let mut ipv4_as_ipv6 = tcp.clone();
    ipv4_as_ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let mut arp = tcp.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut bad_ihl = tcp.clone();
    bad_ihl[14] = 0x44; // IHL 4 words < 20 bytes
    let mut long_total = tcp.clone();
    long_total[16..18].copy_from_slice(&1500u16.to_be_bytes());
    vec![
        Case {
            name: "IPv4 TCP for the router goes to the kernel",
            managed: true,
            frame: tcp.clone(),
            verdict: Verdict::Pass,
            dropped: None,
        },
        Case {
            name: "a truncated frame on an unmanaged interface goes to the kernel",
            managed: false,
            frame: tcp[..14 + 12].to_vec(),
            verdict: Verdict::Pass,
            dropped: None,
        },
        Case {
            name: "ARP goes to the kernel",
            managed: true,
            frame: arp,
            verdict: Verdict::Pass,
            dropped: None,
        },
        Case {
            name: "frame cut inside the IPv4 header",
            managed: true,
            frame: tcp[..14 + 12].to_vec(),
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Malformed),
        },
        Case {
            name: "frame cut inside the TCP header",
            managed: true,
            frame: tcp[..14 + 20 + 10].to_vec(),
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Malformed),
        },
        Case {
            name: "IHL below 5",
            managed: true,
            frame: bad_ihl,
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Malformed),
        },
        Case {
            name: "total length beyond the frame",
            managed: true,
            frame: long_total,
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Malformed),
        },
        Case {
            name: "802.1Q tagged",
            managed: true,
            frame: Packet::tcp("10.0.0.10", "10.0.0.1", 1, 2, TCP_SYN)
                .vlan(7)
                .build(),
            verdict: Verdict::Drop,
            dropped: Some(DropReason::VlanTagged),
        },
        Case {
            name: "IPv6 beyond the link on a shared segment (routed on instance ports only)",
            managed: true,
            frame: ipv6,
            verdict: Verdict::Drop,
            dropped: Some(DropReason::NotIpv4),
        },
        Case {
            name: "a router advertisement from a host of a shared segment: spoofed",
            managed: true,
            frame: router_advertisement,
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Spoofed),
        },
        Case {
            name: "an IPv4 packet under the IPv6 EtherType",
            managed: true,
            frame: ipv4_as_ipv6,
            verdict: Verdict::Drop,
            dropped: Some(DropReason::Malformed),
        },
    ]
}

#[test]
fn xdp_program_verdicts_for_crafted_packets() {
    require_kernel!();
    let topo = Topology::build(include_str!("../fixtures/two-subnets.yaml"), None, true)
        .expect("datapath loads, passes the verifier, takes the definition");
    let dp = &topo.datapath;
    let managed = topo.port_named("pub0").ifindex;
    for case in cases(&topo) {
        let before = dp.drop_counters().expect("drop counters");
        let out = {
            let _inside = topo.router.enter().expect("enter router namespace");
            let ingress = case.managed.then_some(managed);
            run_xdp(dp.xdp(), &case.frame, ingress).expect("test run")
        };
        let after = dp.drop_counters().expect("drop counters");
        assert_eq!(out.verdict, case.verdict, "{}: verdict", case.name);
        if case.verdict == Verdict::Pass {
            assert_eq!(out.output, case.frame, "{}: bytes unchanged", case.name);
        }
        for reason in DropReason::ALL {
            let grew = after.get(&reason).copied().unwrap_or(0)
                - before.get(&reason).copied().unwrap_or(0);
            let expected = u64::from(case.dropped == Some(reason));
            assert_eq!(grew, expected, "{}: counter {}", case.name, reason.name());
        }
    }
}

#[test]
fn xdp_attached_natively_in_a_namespace_passes_traffic() {
    require_kernel!();
    let a = NetNs::new("fa").expect("namespace a");
    let b = NetNs::new("fb").expect("namespace b");
    veth(&a, "va", &b, "vb").expect("veth pair");
    a.ip(&["addr", "add", "10.99.0.1/24", "dev", "va"]).unwrap();
    b.ip(&["addr", "add", "10.99.0.2/24", "dev", "vb"]).unwrap();

    let mut dp = Datapath::load().expect("datapath loads");
    {
        let _inside = a.enter().expect("enter namespace a");
        dp.xdp_mut()
            .attach("va", XdpMode::Driver)
            .expect("native XDP attach on veth");
    }
    let link = a.ip(&["-d", "link", "show", "va"]).unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("xdp"), "XDP program attached: {link}");

    let ping = b
        .exec_status(
            "ping",
            &["-n", "-q", "-c", "3", "-W", "1", "-i", "0.2", "10.99.0.1"],
        )
        .unwrap();
    assert!(
        ping.status.success(),
        "ping through the XDP program: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert!(
        dp.drop_counters().unwrap().is_empty(),
        "no drops for well-formed traffic"
    );
}
