//! NAT gateway source translation (the 1:1 internet gateway translation needs no state and is
//! a plain address rewrite in `forward`).
//!
//! Where: XDP on ingress does everything. Outbound (from a private subnet), the pipeline in
//! `decide` picks the NAT gateway route, and `conntrack::commit` allocates the port here for a
//! new connection (kept in the connection's CONNTRACK entry); `forward` rewrites source address
//! and port. Inbound (on the uplink, to the elastic IP), `reverse` finds the inside endpoint in
//! NAT_PORTS; the connection must still be live, else the packet is unsolicited. The TC ingress
//! program runs the same code for packets XDP handed to the kernel.
//!
//! Ports: the inside port is kept when free for that destination, else ports are probed from a
//! random start through the configured range (at most NAT_MAX_PROBES), claiming one with an
//! atomic insert-if-absent: no global lock, two CPUs cannot take the same port.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    cty::c_void,
    helpers::{bpf_get_prandom_u32, bpf_loop},
};
use vpc_common::{
    DropReason,
    nat::{NAT_MAX_PROBES, NAT_PORT_MAX, NAT_PORT_MIN, NatKey, NatValue},
};

use crate::{
    maps::{NAT_CONFIG, NAT_PORTS},
    packet::{Flow, PROTO_ICMP},
};

/// The remote port as NAT_PORTS keys it (0 for ICMP, whose "port" is the identifier).
#[inline(always)]
pub fn remote_port(proto: u8, port: u16) -> u16 {
    if proto == PROTO_ICMP { 0 } else { port }
}

/// The inside endpoint of a packet arriving at `flow.dst` (an elastic IP), if it belongs to a
/// translated connection.
#[inline(always)]
pub fn reverse(flow: &Flow) -> Option<NatValue> {
    let key = NatKey {
        nat_ip: flow.dst,
        remote_ip: flow.src,
        nat_port: flow.dport,
        remote_port: remote_port(flow.proto, flow.sport),
        proto: flow.proto,
        _pad: [0; 3],
    };
    // SAFETY: copied out at once.
    unsafe { NAT_PORTS.get(key) }.copied()
}

/// Forgets the translation of an expired connection whose original direction went to
/// `remote_ip:remote_port`.
#[inline(always)]
pub fn release(nat_ip: u32, nat_port: u16, remote_ip: u32, remote_port_: u16, proto: u8) {
    let key = NatKey {
        nat_ip,
        remote_ip,
        nat_port,
        remote_port: remote_port(proto, remote_port_),
        proto,
        _pad: [0; 3],
    };
    let _ = NAT_PORTS.remove(key);
}

/// State of a port search, shared with the `bpf_loop` callback.
#[repr(C)]
struct Search {
    key: NatKey,
    value: NatValue,
    min: u32,
    size: u32,
    start: u32,
    /// The claimed port, 0 while none.
    port: u32,
}

/// Claims a port on `nat_ip` for the inside endpoint of `flow` (going to flow.dst).
#[inline(always)]
pub fn allocate(
    nat_ip: u32,
    nat_gateway: u32,
    vpc_id: u32,
    flow: &Flow,
) -> Result<u16, DropReason> {
    let cfg = NAT_CONFIG.get(0).copied().unwrap_or_default();
    let min = if cfg.port_min == 0 {
        NAT_PORT_MIN
    } else {
        cfg.port_min
    };
    let max = if cfg.port_max == 0 {
        NAT_PORT_MAX
    } else {
        cfg.port_max
    };
    if max < min {
        return Err(DropReason::NatPortExhausted);
    }
    let size = u32::from(max - min) + 1;
    let inside = flow.sport;
    // Keep the inside port when it is in range; otherwise start anywhere.
    let start = if inside >= min && inside <= max {
        u32::from(inside - min)
    } else {
        // SAFETY: no preconditions.
        let r = unsafe { bpf_get_prandom_u32() };
        r % size
    };
    let mut search = Search {
        key: NatKey {
            nat_ip,
            remote_ip: flow.dst,
            nat_port: 0,
            remote_port: remote_port(flow.proto, flow.dport),
            proto: flow.proto,
            _pad: [0; 3],
        },
        value: NatValue {
            inside_ip: flow.src,
            inside_port: inside,
            _pad: 0,
            nat_gateway,
            vpc_id,
        },
        min: u32::from(min),
        size,
        start,
        port: 0,
    };
    let probes = if size < NAT_MAX_PROBES {
        size
    } else {
        NAT_MAX_PROBES
    };
    // SAFETY: the callback only touches `search` through the pointer, during the call.
    unsafe {
        bpf_loop(probes, probe as *mut c_void, (&raw mut search).cast(), 0);
    }
    if search.port == 0 {
        return Err(DropReason::NatPortExhausted);
    }
    Ok(search.port as u16)
}

/// Tries port number `i` of the search: 1 stops (claimed), 0 goes on.
extern "C" fn probe(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Search` that `allocate` passed to bpf_loop.
    let s = unsafe { &mut *ctx.cast::<Search>() };
    if s.size == 0 {
        return 1;
    }
    let port = s.min + (s.start + i as u32) % s.size;
    s.key.nat_port = port as u16;
    if NAT_PORTS
        .insert(s.key, s.value, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        s.port = port;
        return 1;
    }
    0
}
