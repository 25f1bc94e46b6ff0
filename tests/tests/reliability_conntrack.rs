//! Issue 14, point 1: no live connection is lost to a clock read older than its `last_seen`.
//!
//! - Kernel: a connection stamped after the packet's clock read (another CPU's write, newer
//!   than this CPU's read) is live, not expired (BPF_PROG_TEST_RUN with `last_seen_ns` ahead).
//! - Agent sweep: three live TCP connections keep sending (BPF_PROG_TEST_RUN packets, which
//!   stamp `last_seen_ns` with the kernel's clock) while the agent sweeps a table of 60,000
//!   expired entries with the clock it read before its scan: every live connection survives and
//!   none of their packets is dropped; every expired entry goes.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap};
use vpc_common::{
    DropReason,
    conntrack::{CT_TCP_ESTABLISHED, CtEntry, CtKey, CtTimeouts},
};
use vpc_tests::{
    packet::{Packet, TCP_ACK},
    require_kernel,
    testrun::{Verdict, run_xdp},
    topology::Topology,
};

const FIXTURE: &str = include_str!("../fixtures/security-groups.yaml");
const WEB: &str = "10.0.0.10";
const APP: &str = "10.0.1.10";
const S: u64 = 1_000_000_000;

fn ct_key(src: &str, dst: &str, sport: u16, dport: u16) -> CtKey {
    vpc_tests::testrun::ct_key(src, dst, sport, dport, 6)
}

fn established(last_seen_ns: u64) -> CtEntry {
    CtEntry {
        created_ns: last_seen_ns.saturating_sub(S),
        last_seen_ns,
        state: CT_TCP_ESTABLISHED,
        ..CtEntry::default()
    }
}

/// A data packet (ACK) of web -> app:8080 from `sport`, run through XDP on pub0.
fn ack(topo: &Topology, sport: u16) -> Verdict {
    let frame = topo.frame("pub0", &Packet::tcp(WEB, APP, sport, 8080, TCP_ACK));
    let ifindex = topo.port_named("pub0").ifindex;
    let _inside = topo.router.enter().unwrap();
    run_xdp(topo.datapath.xdp(), &frame, Some(ifindex))
        .unwrap()
        .verdict
}

fn invalid_tcp(topo: &Topology) -> u64 {
    let drops = topo.datapath.drop_counters().unwrap();
    drops
        .get(&DropReason::InvalidTcpFlags)
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_connection_stamped_after_the_packets_clock_read_is_live() {
    require_kernel!();
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    let key = ct_key(WEB, APP, 41000, 8080);
    {
        let map = topo.datapath.ebpf_mut().map_mut("CONNTRACK").unwrap();
        let mut ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(map).unwrap();
        // Stamped 5 s ahead of any clock read the packet below can make.
        let ahead = vpc_agent::flowlog::monotonic_ns() + 5 * S;
        ct.insert(key, established(ahead), 0).unwrap();
    }
    let before = invalid_tcp(&topo);
    assert_eq!(
        ack(&topo, 41000),
        Verdict::Redirect,
        "a data packet of the connection is forwarded"
    );
    assert_eq!(
        invalid_tcp(&topo),
        before,
        "not judged a packet without state"
    );
    let map = topo.datapath.ebpf_mut().map("CONNTRACK").unwrap();
    let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(map).unwrap();
    let entry = ct.get(&key, 0).expect("the connection is still tracked");
    assert_eq!(entry.state, CT_TCP_ESTABLISHED);
}

#[test]
fn a_sweep_of_a_large_table_keeps_connections_that_send_during_it() {
    require_kernel!();
    const EXPIRED: u32 = 60_000;
    const LIVE: [u16; 3] = [42001, 42002, 42003];
    let mut topo = Topology::build(FIXTURE, None, true).expect("topology");
    let ebpf = topo.datapath.ebpf_mut();
    let mut conntrack = ebpf.take_map("CONNTRACK").unwrap();
    let mut nat_ports = ebpf.take_map("NAT_PORTS").unwrap();
    let mut timeouts = ebpf.take_map("CT_TIMEOUTS").unwrap();
    {
        // Established connections idle for more than 2 s expire (the default is 5 days).
        let mut t: Array<_, CtTimeouts> = Array::try_from(&mut timeouts).unwrap();
        let short = CtTimeouts {
            tcp_established: 2,
            ..CtTimeouts::default()
        };
        t.set(0, short, 0).unwrap();
        let mut ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(&mut conntrack).unwrap();
        let now = vpc_agent::flowlog::monotonic_ns();
        for &sport in &LIVE {
            ct.insert(ct_key(WEB, APP, sport, 8080), established(now), 0)
                .unwrap();
        }
        // Seen at boot: idle for longer than the timeout.
        for i in 0..EXPIRED {
            let key = CtKey {
                src: 0x0a00_0000 | i,
                ..ct_key("10.0.0.0", APP, 1, 9)
            };
            ct.insert(key, established(1), 0).unwrap();
        }
    }
    let before = invalid_tcp(&topo);
    let done = AtomicBool::new(false);
    let (swept, sent, lost) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let (mut sent, mut lost) = (0u32, 0u32);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                for &sport in &LIVE {
                    sent += 1;
                    if ack(&topo, sport) != Verdict::Redirect {
                        lost += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (sent, lost)
        });
        // The agent's way: one clock read, then the scan.
        std::thread::sleep(Duration::from_millis(20));
        let now = vpc_agent::flowlog::monotonic_ns();
        let swept = vpc_agent::daemon::sweep::sweep::<vpc_common::conntrack::CtKey>(
            &mut conntrack,
            &mut nat_ports,
            &timeouts,
            now,
        );
        done.store(true, Ordering::Relaxed);
        let (sent, lost) = sender.join().unwrap();
        (swept.unwrap(), sent, lost)
    });
    eprintln!(
        "sweep of {} entries took {:?}; live connections sent {sent} packets during it, {lost} lost",
        swept.scanned, swept.elapsed
    );
    let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(&conntrack).unwrap();
    for &sport in &LIVE {
        assert!(
            ct.get(&ct_key(WEB, APP, sport, 8080), 0).is_ok(),
            "live connection from port {sport} survives the sweep"
        );
    }
    assert_eq!(lost, 0, "no packet of a live connection dropped");
    assert_eq!(invalid_tcp(&topo), before);
    assert_eq!(
        swept.removed,
        u64::from(EXPIRED),
        "every expired entry removed"
    );
    assert!(
        sent > 30,
        "the live connections sent during the sweep ({sent})"
    );
}
