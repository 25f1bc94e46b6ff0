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
//! atomic insert-if-absent: no global lock, two CPUs cannot take the same port. (A fixed start
//! made every new connection walk the ports already taken: 56 µs a connection at 64k flows.)

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
    csum,
    maps::{NAT_CONFIG, NAT_PORTS},
    packet::{Flow, Inner, PROTO_ICMP, PROTO_UDP, PacketCtx, header_mut},
};

/// The inside endpoint of a packet arriving at `flow.dst` (an elastic IP), if it belongs to a
/// translated connection.
#[inline(always)]
pub fn reverse(flow: &Flow) -> Option<NatValue> {
    let key = NatKey::new(flow.dst, flow.dport, flow.src, flow.sport, flow.proto);
    // SAFETY: copied out at once.
    unsafe { NAT_PORTS.get(key) }.copied()
}

/// Forgets a translation (`NatKey::of_connection` of an expired or never-created connection).
#[inline(always)]
pub fn release(key: &NatKey) {
    let _ = NAT_PORTS.remove(key);
}

/// State of a port search, shared with the `bpf_loop` callback.
#[repr(C)]
struct Search {
    key: NatKey,
    value: NatValue,
    min: u32,
    size: u32,
    /// Probe 0's port (offset in the range): the inside port when free.
    preferred: u32,
    /// Where the other probes start (random).
    start: u32,
    /// The claimed port, 0 while none.
    port: u32,
}

/// The configured port range (inclusive; zero fields: the default 1024-65535).
#[inline(always)]
fn port_range() -> (u16, u16) {
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
    (min, max)
}

/// Claims a port on `nat_ip` for the inside endpoint of `flow` (going to flow.dst).
#[inline(always)]
pub fn allocate(
    nat_ip: u32,
    nat_gateway: u32,
    vpc_id: u32,
    flow: &Flow,
) -> Result<u16, DropReason> {
    let (min, max) = port_range();
    if max < min {
        return Err(DropReason::NatPortExhausted);
    }
    let size = u32::from(max - min) + 1;
    let inside = flow.sport;
    // SAFETY: no preconditions.
    let random = unsafe { bpf_get_prandom_u32() } % size;
    // Probe 0 keeps the inside port when it is in range; the others start anywhere, so a taken
    // neighbourhood of ports is not walked again by every new connection.
    let preferred = if inside >= min && inside <= max {
        u32::from(inside - min)
    } else {
        random
    };
    let mut search = Search {
        key: NatKey::new(nat_ip, 0, flow.dst, flow.dport, flow.proto),
        value: NatValue {
            inside_ip: flow.src,
            inside_port: inside,
            _pad: 0,
            nat_gateway,
            vpc_id,
        },
        min: u32::from(min),
        size,
        preferred,
        start: random,
        port: 0,
    };
    // The preferred port, then every port of the range once from the random start.
    let probes = if size < NAT_MAX_PROBES {
        size + 1
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

/// The port [`allocate`] would claim first for `flow` on `nat_ip`, claiming nothing (trace
/// mode): the inside port when it is in the range and free for this destination; 0 when the
/// port would be drawn at random.
#[inline(always)]
pub fn preview(nat_ip: u32, flow: &Flow) -> u16 {
    let (min, max) = port_range();
    let inside = flow.sport;
    if inside < min || inside > max {
        return 0;
    }
    let key = NatKey::new(nat_ip, inside, flow.dst, flow.dport, flow.proto);
    // SAFETY: only whether the key is there is looked at.
    if unsafe { NAT_PORTS.get(key) }.is_some() {
        return 0;
    }
    inside
}

/// Tries port number `i` of the search: 1 stops (claimed), 0 goes on.
// The key and value go to the map by reference on purpose (the lint would copy them here).
#[allow(clippy::needless_borrows_for_generic_args)]
extern "C" fn probe(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Search` that `allocate` passed to bpf_loop.
    let s = unsafe { &mut *ctx.cast::<Search>() };
    if s.size == 0 {
        return 1;
    }
    let offset = if i == 0 {
        s.preferred
    } else {
        (s.start + i as u32 - 1) % s.size
    };
    let port = s.min + offset;
    s.key.nat_port = port as u16;
    // Key and value by reference (they stay in the caller's frame): copies would take this
    // callback's frame past what `vpc_xdp`'s leaves of the 512-byte stack.
    if NAT_PORTS
        .insert(&s.key, &s.value, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        s.port = port;
        return 1;
    }
    0
}

/// Rewrites the header quoted by an ICMP error so that it shows the inside endpoint: quoted
/// source address `new_src`, quoted source port (or echo identifier) `new_sport`, with the
/// quoted IP and L4 checksums and the outer ICMP checksum kept valid. A quoted L4 checksum cut
/// off by the error's length is left alone (it is not there).
#[inline(always)]
pub fn rewrite_inner(
    ctx: &impl PacketCtx,
    flow: &Flow,
    inner: &Inner,
    fwd: &crate::verdict::Forward,
) -> Result<(), DropReason> {
    // The quoted source (an error about a packet we sent), or destination (`inner_dst`: an
    // error from inside about a packet that came in translated).
    let (new_src, new_sport) = (fwd.inner_src, fwd.inner_sport);
    let (addr_off, port_off, old_sport) = if fwd.inner_dst {
        (16, 2, inner.dport)
    } else {
        (12, 0, inner.sport)
    };
    // Borrows of distinct fields of the packet.
    let icmp_csum: &mut [u8; 2] = header_mut(ctx, flow.l4_off + 2)?;
    let mut outer = u16::from_ne_bytes(*icmp_csum);

    // Quoted address and the quoted IP header checksum.
    let src: &mut [u8; 4] = header_mut(ctx, inner.ip_off + addr_off)?;
    let ip_csum: &mut [u8; 2] = header_mut(ctx, inner.ip_off + 10)?;
    let (old_src, old_ip_csum) = (u32::from_ne_bytes(*src), u16::from_ne_bytes(*ip_csum));
    let new_ip_csum = csum::replace32(old_ip_csum, old_src, new_src);
    outer = csum::replace32(outer, old_src, new_src);
    outer = csum::replace16(outer, old_ip_csum, new_ip_csum);
    *src = new_src.to_ne_bytes();
    *ip_csum = new_ip_csum.to_ne_bytes();

    // Quoted port / identifier and the quoted L4 checksum (pseudo header for TCP and UDP).
    let (port_at, csum_at, pseudo) = match inner.proto {
        PROTO_ICMP => (inner.l4_off + 4, inner.l4_off + 2, false),
        PROTO_UDP => (inner.l4_off + port_off, inner.l4_off + 6, true),
        _ => (inner.l4_off + port_off, inner.l4_off + 16, true),
    };
    let old_port = old_sport.to_be();
    let new_port = new_sport.to_be();
    if let Ok(l4_csum) = header_mut::<[u8; 2]>(ctx, csum_at) {
        let old = u16::from_ne_bytes(*l4_csum);
        if !(inner.proto == PROTO_UDP && old == 0) {
            let mut new = old;
            if pseudo {
                new = csum::replace32(new, old_src, new_src);
            }
            new = csum::replace16(new, old_port, new_port);
            outer = csum::replace16(outer, old, new);
            *l4_csum = new.to_ne_bytes();
        }
    }
    let port: &mut [u8; 2] = header_mut(ctx, port_at)?;
    outer = csum::replace16(outer, old_port, new_port);
    *port = new_port.to_ne_bytes();
    *icmp_csum = outer.to_ne_bytes();
    Ok(())
}
