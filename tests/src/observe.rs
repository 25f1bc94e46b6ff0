//! Running one packet through the XDP program of a [`Topology`] and saying what happened:
//! forwarded (out of which port, with which addresses), dropped (for which counted reason) or
//! passed to the kernel.

use std::net::Ipv4Addr;

use vpc_common::DropReason;

use crate::{
    packet::Packet,
    testrun::{TcVerdict, Verdict, run_tc, run_xdp},
    topology::{Topology, mac},
};

/// What the kernel did with one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Redirected out of this router interface with these addresses.
    Forwarded {
        interface: String,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    Dropped(DropReason),
    /// Handed to the kernel (for the router itself).
    Passed,
}

/// Runs `packet` through the XDP program as if it arrived on `ingress`; returns what happened
/// and the output frame.
pub fn run(topo: &Topology, ingress: &str, packet: &Packet) -> (Seen, Vec<u8>) {
    let frame = topo.frame(ingress, packet);
    let port = topo.port_named(ingress);
    let before = topo.datapath.drop_counters().expect("counters");
    let out = {
        let _inside = topo.router.enter().expect("enter router namespace");
        run_xdp(topo.datapath.xdp(), &frame, Some(port.ifindex)).expect("test run")
    };
    let after = topo.datapath.drop_counters().expect("counters");
    let grown: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|r| after.get(r).copied().unwrap_or(0) > before.get(r).copied().unwrap_or(0))
        .collect();
    let seen = match out.verdict {
        // Tx: dropped, and the sender told so by the router (ICMP time exceeded / too big).
        Verdict::Drop | Verdict::Tx => {
            assert_eq!(grown.len(), 1, "exactly one drop reason counted: {grown:?}");
            Seen::Dropped(grown[0])
        }
        Verdict::Redirect => {
            assert!(grown.is_empty(), "no drop counted on redirect: {grown:?}");
            let o = &out.output;
            let port = topo
                .ports
                .values()
                .find(|p| o[0..6] == mac(p.index, true))
                .expect("destination MAC is a host behind a router port");
            assert_eq!(
                o[6..12],
                mac(port.index, false),
                "source MAC is the router port's"
            );
            Seen::Forwarded {
                interface: port.ifname.clone(),
                src: Ipv4Addr::new(o[26], o[27], o[28], o[29]),
                dst: Ipv4Addr::new(o[30], o[31], o[32], o[33]),
            }
        }
        Verdict::Pass => {
            assert!(grown.is_empty(), "no drop counted on pass: {grown:?}");
            assert_eq!(out.output, frame, "passed packets are not modified");
            Seen::Passed
        }
        other => panic!("unexpected verdict {other:?}"),
    };
    (seen, out.output)
}

/// Drop reasons whose counters grew between two readings.
fn grown(topo: &Topology, before: &std::collections::BTreeMap<DropReason, u64>) -> Vec<DropReason> {
    let after = topo.datapath.drop_counters().expect("counters");
    DropReason::ALL
        .into_iter()
        .filter(|r| after.get(r).copied().unwrap_or(0) > before.get(r).copied().unwrap_or(0))
        .collect()
}

/// Runs `packet` through the TC ingress program as if it arrived on `ingress` (the kernel
/// path). A forwarded packet is redirected by the kernel's neighbour code, so its interface is
/// not visible here: `Forwarded.interface` is empty, the addresses are the rewritten ones, and
/// the packet carries the approval mark for the egress guard.
pub fn run_tc_ingress(topo: &Topology, ingress: &str, packet: &Packet) -> (Seen, Vec<u8>) {
    let frame = topo.frame(ingress, packet);
    let port = topo.port_named(ingress);
    let before = topo.datapath.drop_counters().expect("counters");
    let prog = topo
        .datapath
        .tc(vpc_agent::datapath::object::programs::TC_INGRESS);
    let out = {
        let _inside = topo.router.enter().expect("enter router namespace");
        run_tc(prog, &frame, port.ifindex).expect("tc test run")
    };
    let grown = grown(topo, &before);
    let seen = match out.verdict {
        // An ICMP error sent back out of the ingress (a redirect with a drop counted).
        TcVerdict::Redirect if grown.len() == 1 => Seen::Dropped(grown[0]),
        TcVerdict::Shot => {
            assert_eq!(grown.len(), 1, "exactly one drop reason counted: {grown:?}");
            Seen::Dropped(grown[0])
        }
        TcVerdict::Redirect => {
            assert!(grown.is_empty(), "no drop counted on redirect: {grown:?}");
            assert_eq!(
                out.mark,
                vpc_common::MARK_APPROVED,
                "approved for the egress guard"
            );
            let o = &out.output;
            Seen::Forwarded {
                interface: String::new(),
                src: Ipv4Addr::new(o[26], o[27], o[28], o[29]),
                dst: Ipv4Addr::new(o[30], o[31], o[32], o[33]),
            }
        }
        TcVerdict::Ok => {
            assert!(grown.is_empty(), "no drop counted on pass: {grown:?}");
            assert_eq!(out.output, frame, "passed packets are not modified");
            Seen::Passed
        }
        other => panic!("unexpected verdict {other:?}"),
    };
    (seen, out.output)
}

/// The source and destination port (or ICMP identifier twice) of an output frame.
pub fn ports(frame: &[u8]) -> (u16, u16) {
    let l4 = 14 + usize::from(frame[14] & 0x0f) * 4;
    let at = |i: usize| u16::from_be_bytes([frame[i], frame[i + 1]]);
    if frame[23] == 1 {
        (at(l4 + 4), at(l4 + 4))
    } else {
        (at(l4), at(l4 + 2))
    }
}

/// What the reference evaluator says about `p` entering on `ingress`, as a [`Seen`].
pub fn reference(topo: &Topology, ingress: &str, p: &Packet) -> Seen {
    let (proto, sport, dport, icmp_type, icmp_code) = match p.l4 {
        crate::packet::L4::Tcp { sport, dport, .. } => (6, sport, dport, 0, 0),
        crate::packet::L4::Udp { sport, dport } => (17, sport, dport, 0, 0),
        crate::packet::L4::Icmp { ty, code, id, .. } => (1, id, id, ty, code),
        crate::packet::L4::IcmpError { ty, code, .. } => (1, 0, 0, ty, code),
        crate::packet::L4::Raw { proto } => (proto, 0, 0, 0, 0),
    };
    let packet = vpc_agent::evaluator::Packet {
        src: p.src,
        dst: p.dst,
        proto,
        sport,
        dport,
        icmp_type,
        icmp_code,
    };
    let trace = vpc_agent::evaluator::evaluate(
        &topo.config,
        vpc_agent::evaluator::Ingress::Interface(ingress),
        &packet,
    )
    .expect("evaluator");
    match trace.verdict {
        vpc_agent::evaluator::Verdict::Deliver {
            interface,
            src: std::net::IpAddr::V4(src),
            dst: std::net::IpAddr::V4(dst),
        } => Seen::Forwarded {
            interface,
            src,
            dst,
        },
        vpc_agent::evaluator::Verdict::Deliver { .. } => {
            panic!("an IPv4 packet delivered as IPv6")
        }
        vpc_agent::evaluator::Verdict::Drop(reason) => Seen::Dropped(reason),
        vpc_agent::evaluator::Verdict::ToHost => Seen::Passed,
        // Only IPv6 neighbour discovery is answered in place; these packets are IPv4.
        vpc_agent::evaluator::Verdict::Answered => panic!("an IPv4 packet answered in place"),
    }
}
