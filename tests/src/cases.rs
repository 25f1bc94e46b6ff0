//! Table-driven BPF_PROG_TEST_RUN cases: a packet on an ingress interface and what must come
//! of it, checked against the kernel, the reference evaluator and the exact output bytes.

use crate::{
    observe::{Seen, reference, run},
    packet::{Packet, verify_checksums},
    topology::{Topology, mac},
};

/// Forwarded out of `interface` with these addresses.
pub fn fwd(interface: &str, src: &str, dst: &str) -> Seen {
    Seen::Forwarded {
        interface: interface.into(),
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
    }
}

pub struct Case {
    pub name: &'static str,
    pub ingress: &'static str,
    pub packet: Packet,
    pub expect: Seen,
    /// Whether the (stateless) reference evaluator models this case: not for the replies of
    /// a tracked connection, fragments, TTL or the router's own addresses.
    pub in_evaluator: bool,
}

/// A case the evaluator judges too.
pub fn case(name: &'static str, ingress: &'static str, packet: Packet, expect: Seen) -> Case {
    Case {
        name,
        ingress,
        packet,
        expect,
        in_evaluator: true,
    }
}

/// The frame the router must send for `p` forwarded as `seen`: the port's MACs, the
/// addresses as forwarded, TTL one lower.
pub fn expected_frame(topo: &Topology, p: &Packet, seen: &Seen) -> Vec<u8> {
    let Seen::Forwarded {
        interface,
        src,
        dst,
    } = seen
    else {
        unreachable!()
    };
    let port = topo.port_named(interface);
    let mut q = p
        .clone()
        .macs(mac(port.index, false), mac(port.index, true));
    q.src = *src;
    q.dst = *dst;
    q.ttl -= 1;
    q.build()
}

/// Runs every case in order through the XDP program: the verdict, the evaluator's (where it
/// models the case), and for a forwarded packet its exact bytes and valid checksums.
pub fn check_cases(topo: &Topology, cases: &[Case]) {
    for c in cases {
        let (seen, output) = run(topo, c.ingress, &c.packet);
        assert_eq!(seen, c.expect, "{}: kernel", c.name);
        if c.in_evaluator {
            assert_eq!(
                reference(topo, c.ingress, &c.packet),
                c.expect,
                "{}: evaluator",
                c.name
            );
        }
        if let Seen::Forwarded { .. } = seen {
            assert_eq!(
                output,
                expected_frame(topo, &c.packet, &seen),
                "{}: output bytes",
                c.name
            );
            verify_checksums(&output).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
    }
}
