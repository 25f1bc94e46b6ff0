//! The policy pipeline (shared by XDP and TC): what happens to a parsed IPv4 packet that arrived
//! on interface `ingress`, as the README describes it ("How a packet is handled"):
//!
//! from a subnet S (an instance's own port, or a shared segment): source check (also for
//!   packets to the router itself) -> connection tracking -> security groups of the source
//!   instance outbound (new connections) -> network ACL of S outbound -> route table of S (LPM) ->
//!   local: network ACL of the destination subnet inbound -> security groups of the
//!   destination instance inbound (new connections) -> deliver
//!   internet gateway: 1:1 source translation to the instance's public IP -> uplink
//!   peering: the peer VPC's local routes -> its subnet's ACL inbound -> deliver
//!   NAT gateway N in subnet P: network ACL of P inbound -> P's route table (internet
//!   gateway) -> network ACL of P outbound -> source translated to N's elastic IP and a port
//!   gateway (VPN gateway, gateway endpoint): untranslated out of its link
//!   NAT instance: network ACL of its subnet inbound -> its security groups inbound ->
//!   delivered to its port unchanged (it translates itself)
//!   blackhole / no route: drop
//! from a gateway's link: only the networks behind it as sources -> only private VPC
//!   addresses, untranslated -> connection tracking -> ACL inbound of the subnet -> security
//!   groups inbound -> deliver
//! from the uplink: anti-spoofing (no VPC, router or martian source) -> to an instance's public IP -> 1:1 destination translation -> connection
//!   tracking -> ACL inbound of its subnet -> security groups inbound -> deliver; to a NAT gateway's elastic IP: replies only (Datapath III); to
//!   any other VPC address: drop; anything else is the router's own traffic (kernel).
//!
//! Connection tracking keys use the addresses inside the VPC (before source / after
//! destination translation); a forwarded packet creates or advances its connection.

use vpc_common::{
    Addr6, DropReason,
    acl::{ACL_INBOUND, ACL_OUTBOUND},
    conntrack::CtKey,
    iface::{
        ENDPOINT_INSTANCE, Endpoint, IFACE_GATEWAY, IFACE_SUBNET, IFACE_UPLINK, IfaceInfo,
        PublicKey, PublicTarget, SubnetInfo,
    },
    route::{
        TARGET_BLACKHOLE, TARGET_EGRESS_ONLY_GATEWAY, TARGET_GATEWAY, TARGET_INSTANCE,
        TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY, TARGET_PEERING,
        uplink_spoof_table,
    },
    trace::{
        STEP_DELIVER, STEP_GATEWAY_SOURCE_CHECK, STEP_SOURCE_CHECK, STEP_TO_HOST, STEP_TRANSLATE,
        STEP_UPLINK_SOURCE_CHECK, XLATE_DESTINATION, XLATE_SOURCE,
    },
};

use crate::{
    acl,
    conntrack::{self, Track},
    family::Family,
    fragment,
    ipv6::{ICMPV6_ECHO_REQUEST, PROTO_ICMPV6},
    maps::{NAT_GATEWAYS, PUBLIC_IPS, VPCS, copied, endpoint, endpoint_subnet},
    nat,
    packet::{Flow, Frag, Inner, PROTO_ICMP, PROTO_TCP, PROTO_UDP},
    route, security_group, source_check,
    trace::{self, Mode},
    verdict::{Decision, Forward},
};

/// Which interfaces a program decides for: the XDP programs split them (each keeps only its
/// branches, and so its own stack frame), the TC program takes all.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    /// Subnet interfaces (instance ports, shared segments).
    Inside,
    /// Uplinks and gateways.
    Outside,
    Both,
}

impl Sides {
    /// Whether a program for these sides decides packets of interface `kind`.
    #[inline(always)]
    pub fn takes(self, kind: u8) -> bool {
        match self {
            Self::Inside => kind == IFACE_SUBNET,
            Self::Outside => kind == IFACE_UPLINK || kind == IFACE_GATEWAY,
            Self::Both => true,
        }
    }
}

/// Runs the pipeline for a packet that arrived on managed interface `iface`, one of `sides`
/// (a constant at every call site: the other side's code is not in the program).
///
/// `known` is the packet's connection lookup when the caller already did it (the fast path's
/// miss); it must be for this very `flow`.
#[inline(always)]
pub fn decide<M: Mode>(
    mode: M,
    sides: Sides,
    slot: u32,
    iface: &IfaceInfo,
    flow: &mut Flow,
    known: Option<Result<Track, DropReason>>,
) -> Result<Decision, DropReason> {
    if !sides.takes(iface.kind) {
        // The caller hands other interfaces to their own program; never decided here.
        return Err(DropReason::BadTarget);
    }
    fragment::classify(mode, flow)?;
    match iface.kind {
        IFACE_SUBNET => from_subnet(mode, slot, iface, flow, known),
        IFACE_UPLINK => from_uplink(mode, slot, iface, flow),
        IFACE_GATEWAY => from_gateway(mode, slot, iface, flow),
        _ => Ok(Decision::Unmanaged),
    }
}

#[inline(always)]
fn subnet(id: u32) -> Result<SubnetInfo, DropReason> {
    crate::maps::subnet(id).ok_or(DropReason::BadTarget)
}

/// Addresses the router takes for itself: limited broadcast, multicast, the subnet's broadcast,
/// the router's own address in the subnet, and link-local (169.254/16: never translated or
/// sent out of the uplink; a metadata service would answer on the router).
#[inline(always)]
fn for_router(dst: u32, s: &SubnetInfo) -> bool {
    let [a, b, ..] = dst.to_ne_bytes();
    dst == s.router_ip
        || dst == u32::MAX
        || (a & 0xf0) == 0xe0
        || dst == s.cidr | !s.mask
        || (a == 169 && b == 254)
}

#[inline(always)]
fn from_subnet<M: Mode>(
    mode: M,
    slot: u32,
    iface: &IfaceInfo,
    flow: &Flow,
    known: Option<Result<Track, DropReason>>,
) -> Result<Decision, DropReason> {
    let s = subnet(iface.subnet_id)?;
    let src = source_check::from_subnet(slot, iface, flow);
    mode.step(STEP_SOURCE_CHECK, src.is_ok() as u8, 0, flow.src, 0, 0);
    let src = src?;
    if for_router(flow.dst, &s) {
        mode.step(STEP_TO_HOST, 0, 0, flow.dst, 0, 0);
        return Ok(Decision::ToHost);
    }
    let track = match known {
        Some(track) => track,
        None => conntrack::lookup(mode, flow),
    };
    let track = match track {
        Err(DropReason::InvalidTcpFlags) if nat_expired(&s, flow) => return Ok(Decision::Reset),
        other => other?,
    };
    trace::connection(mode, &track);
    if src.kind == ENDPOINT_INSTANCE
        && !security_group::checks(
            mode,
            &track,
            iface.vpc_id,
            src.sg_set,
            ACL_OUTBOUND,
            flow,
            flow.dst,
        )
    {
        return Err(DropReason::SecurityGroupOutbound);
    }
    let mut decision = route_from_subnet(mode, iface, &s, &src, flow, &track)?;
    if let Decision::Forward(ref mut fwd) = decision {
        if let Some(inner) = flow.inner {
            outbound_error(flow, &inner, fwd);
        }
        conntrack::commit(mode, flow, track, fwd)?;
    }
    Ok(decision)
}

/// The IPv6 pipeline, for a packet to be routed that arrived on instance port `iface`
/// (`ingress`), neighbour discovery and link-scope traffic already handled (`crate::ndp`):
/// source check -> connection tracking -> security groups of the source instance outbound
/// (new connections) -> network ACL of its subnet outbound -> the subnet's route table
/// (`ROUTES6`) -> local: network ACL of the destination subnet inbound -> security groups of
/// the destination instance inbound -> its port. The same steps as IPv4's local delivery, by
/// the same generic code; the internet and egress-only gateways send it out of their uplink
/// untranslated; every other target is not routed for IPv6 yet (`not_ipv4`), and
/// neither are ICMPv6 errors (they would need their quoted packet checked against a
/// connection). It runs in a program of its own (`vpc_xdp6_route`, `vpc_tc6_route`) so that
/// its frame fits the verifier's 512-byte stack: a BPF function of its own, the forwarding
/// written to `fwd` (a returned `Result<Forward, _>` would have BTF the kernel refuses).
#[inline(never)]
pub fn decide6<M: Mode>(
    mode: M,
    iface: &IfaceInfo,
    ingress: u32,
    flow: &Flow<Addr6>,
    fwd: &mut Forward,
) -> Result<(), DropReason> {
    let src = source_check::from_port6(iface, ingress, flow)?;
    if flow.proto == PROTO_ICMPV6 && flow.icmp_type < ICMPV6_ECHO_REQUEST {
        return Err(DropReason::NotIpv4);
    }
    let s = subnet(iface.subnet_id)?;
    let track = conntrack::lookup(mode, flow)?;
    if !security_group::checks(
        mode,
        &track,
        iface.vpc_id,
        src.sg_set,
        ACL_OUTBOUND,
        flow,
        flow.dst,
    ) {
        return Err(DropReason::SecurityGroupOutbound);
    }
    if !acl::allows(mode, s.acl_id, ACL_OUTBOUND, flow, flow.dst) {
        return Err(DropReason::AclOutbound);
    }
    let route = route::traced(mode, s.route_table, flow.dst).ok_or(DropReason::NoRoute)?;
    let decision = match route.target {
        TARGET_LOCAL => deliver_at(
            mode,
            iface.vpc_id,
            iface.subnet_id,
            route.target_id,
            flow,
            flow.dst,
            0,
            &track,
        )?,
        // IPv6 leaves untranslated, the instance's own address being public; the
        // egress-only gateway admits the replies only, on the way in (`decide6_inbound`).
        TARGET_INTERNET_GATEWAY | TARGET_EGRESS_ONLY_GATEWAY if route.target_id != 0 => {
            Decision::Forward(Forward::to(route.target_id, 0, 0))
        }
        TARGET_BLACKHOLE => return Err(DropReason::Blackhole),
        _ => return Err(DropReason::NotIpv4),
    };
    let Decision::Forward(decided) = decision else {
        return Err(DropReason::BadTarget);
    };
    *fwd = decided;
    commit6(mode, flow, track, fwd)
}

/// The end of both IPv6 pipelines: a packet at hop limit 1 or 0 dies here (before the commit:
/// it opens no connection), the rest commits its connection.
#[inline(always)]
fn commit6<M: Mode>(
    mode: M,
    flow: &Flow<Addr6>,
    track: Track,
    fwd: &mut Forward,
) -> Result<(), DropReason> {
    if flow.ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    conntrack::commit(mode, flow, track, fwd)
}

/// The VPC holding IPv6 address `addr` (generation `slot`): the uplink anti-spoofing table of
/// `ROUTES6` lists each VPC's /56 as a local route whose `target_id` is the VPC id.
#[inline(always)]
pub fn vpc_of6(slot: u32, addr: Addr6) -> Option<u32> {
    route::lookup(uplink_spoof_table(slot), addr)
        .filter(|r| r.target == TARGET_LOCAL && r.target_id != 0)
        .map(|r| r.target_id)
}

/// The first checks of [`decide6_inbound`], up to the destination instance (written to `ep`):
/// a BPF function of its own, so that its frame and the rest's are not added up.
#[inline(never)]
pub fn inbound6_destination(
    slot: u32,
    ingress: u32,
    vpc_id: u32,
    flow: &Flow<Addr6>,
    ep: &mut Endpoint,
) -> Result<(), DropReason> {
    let vpc = copied(&VPCS, vpc_id).ok_or(DropReason::BadTarget)?;
    if ingress != vpc.igw_ifindex && ingress != vpc.eigw_ifindex {
        return Err(DropReason::UplinkUnsolicited);
    }
    let src = &flow.src;
    if vpc_of6(slot, flow.src).is_some()
        || crate::ipv6::is_link_local(src)
        || src[0] == 0xff
        || crate::ipv6::is_unspecified(src)
    {
        return Err(DropReason::UplinkSpoofed);
    }
    if flow.frag != Frag::None {
        return Err(DropReason::Fragment);
    }
    if flow.proto == PROTO_ICMPV6 && flow.icmp_type < ICMPV6_ECHO_REQUEST {
        return Err(DropReason::NotIpv4);
    }
    *ep = Addr6::endpoint(vpc_id, flow.dst)
        .filter(|ep| ep.kind == ENDPOINT_INSTANCE && ep.ifindex != 0)
        .ok_or(DropReason::UnknownDestination)?;
    Ok(())
}

/// The IPv6 pipeline for a packet from the internet, arriving on uplink `ingress` (generation
/// `slot`) for an address of VPC `vpc_id`'s block: the uplink must be the VPC's internet or
/// egress-only gateway's, the source outside every VPC and a unicast global one
/// (`uplink_spoofed`); the destination an instance on its own port (`unknown_destination`);
/// a new connection must come back the way its replies would leave: the destination
/// subnet's route for the source is the internet gateway on this uplink (an egress-only
/// gateway, or none, admits replies only: `uplink_unsolicited`); then the destination
/// subnet's ACL and the instance's groups inbound, as for local delivery.
/// The destination instance `ep` comes from [`inbound6_destination`], which the program calls
/// first: each of the two BPF functions has its own frame on top of the program's.
#[inline(never)]
pub fn decide6_inbound<M: Mode>(
    mode: M,
    ingress: u32,
    vpc_id: u32,
    flow: &Flow<Addr6>,
    ep: &Endpoint,
    fwd: &mut Forward,
) -> Result<(), DropReason> {
    let track = conntrack::lookup(mode, flow)?;
    if !track.established() {
        let d = subnet(ep.subnet_id)?;
        let back = route::traced(mode, d.route_table, flow.src);
        let open =
            back.is_some_and(|r| r.target == TARGET_INTERNET_GATEWAY && r.target_id == ingress);
        if !open {
            return Err(DropReason::UplinkUnsolicited);
        }
    }
    let Decision::Forward(decided) =
        deliver_at(mode, vpc_id, 0, ep.subnet_id, flow, flow.dst, 0, &track)?
    else {
        return Err(DropReason::BadTarget);
    };
    *fwd = decided;
    commit6(mode, flow, track, fwd)
}

/// An ICMP error from inside about a packet that reached it translated (through the internet
/// gateway's 1:1 mapping, or as a reply through a NAT gateway) leaves with its quoted
/// destination translated back, as the remote end sent it: else it could not match it.
#[inline(always)]
fn outbound_error(flow: &Flow, inner: &Inner, fwd: &mut Forward) {
    if inner.dst != flow.src || fwd.new_src == 0 {
        return;
    }
    if fwd.nat_gateway == 0 {
        // 1:1: the quoted destination was the instance's public IP.
        fwd.inner_src = fwd.new_src;
        fwd.inner_sport = inner.dport;
        fwd.inner_dst = true;
        return;
    }
    // Through a NAT gateway: the quoted packet was a reply of a translated connection.
    let original = CtKey::new(inner.dst, inner.src, inner.dport, inner.sport, inner.proto);
    if let Some(entry) = conntrack::entry(&original) {
        let (ip, port) = (entry.get().nat_ip, entry.get().nat_port);
        if ip != 0 {
            fwd.inner_src = ip;
            fwd.inner_sport = port;
            fwd.inner_dst = true;
        }
    }
}

/// A TCP segment (no SYN, no RST) without a connection, routed to a NAT gateway: it belongs
/// to a translated connection that timed out (AWS answers those with a RST).
#[inline(always)]
fn nat_expired(s: &SubnetInfo, flow: &Flow) -> bool {
    flow.proto == PROTO_TCP
        && flow.frag == Frag::None
        && flow.tcp_flags & 0x06 == 0
        && route::lookup(s.route_table, flow.dst).is_some_and(|r| r.target == TARGET_NAT_GATEWAY)
}

#[inline(always)]
fn route_from_subnet<M: Mode>(
    mode: M,
    iface: &IfaceInfo,
    s: &SubnetInfo,
    src: &Endpoint,
    flow: &Flow,
    track: &Track,
) -> Result<Decision, DropReason> {
    if !acl::allows(mode, s.acl_id, ACL_OUTBOUND, flow, flow.dst) {
        return Err(DropReason::AclOutbound);
    }
    let route = route::traced(mode, s.route_table, flow.dst).ok_or(DropReason::NoRoute)?;
    match route.target {
        // One delivery for both (each inlined copy costs stack): a NAT instance gets the
        // packet unchanged, its address only names the endpoint (and the neighbour).
        TARGET_LOCAL | TARGET_INSTANCE => {
            let instance = route.target == TARGET_INSTANCE;
            let at = if instance { route.target_id } else { flow.dst };
            let to = if instance {
                endpoint_subnet(iface.vpc_id, at)
            } else {
                route.target_id
            };
            let mut decision =
                deliver_at(mode, iface.vpc_id, iface.subnet_id, to, flow, at, 0, track)?;
            if let Decision::Forward(ref mut fwd) = decision {
                // The neighbour: the NAT instance (0 for a local delivery: the destination).
                fwd.via = if instance { at } else { 0 };
            }
            Ok(decision)
        }
        TARGET_INTERNET_GATEWAY => {
            if src.public_ip == 0 {
                return Err(DropReason::NoPublicAddress);
            }
            mode.step(STEP_TRANSLATE, XLATE_SOURCE, 0, flow.src, src.public_ip, 0);
            Ok(Decision::Forward(Forward::to(
                route.target_id,
                src.public_ip,
                0,
            )))
        }
        TARGET_PEERING => {
            let peer_vpc = route.target_id;
            let peer = copied(&VPCS, peer_vpc).ok_or(DropReason::BadTarget)?;
            let local =
                route::traced(mode, peer.local_table, flow.dst).ok_or(DropReason::NoRoute)?;
            if local.target != TARGET_LOCAL {
                return Err(DropReason::NoRoute);
            }
            deliver(mode, peer_vpc, 0, local.target_id, flow, 0, track)
        }
        TARGET_BLACKHOLE => Err(DropReason::Blackhole),
        // Untranslated, private source kept: the gateway's link.
        TARGET_GATEWAY => Ok(Decision::Forward(Forward::to(route.target_id, 0, 0))),
        TARGET_NAT_GATEWAY => through_nat_gateway(mode, iface.vpc_id, route.target_id, flow),
        _ => Err(DropReason::BadTarget),
    }
}

/// Local delivery into subnet `to` of VPC `vpc_id` (`from`: the source subnet, 0 if none):
/// the destination must be registered there, the subnet's ACL must let it in (not applied
/// within one subnet, as in AWS), and for a new connection to an instance one of its security
/// groups. `new_dst` is a destination translation already decided.
#[inline(always)]
fn deliver<M: Mode>(
    mode: M,
    vpc_id: u32,
    from: u32,
    to: u32,
    flow: &Flow,
    new_dst: u32,
    track: &Track,
) -> Result<Decision, DropReason> {
    let dst = if new_dst != 0 { new_dst } else { flow.dst };
    deliver_at(mode, vpc_id, from, to, flow, dst, new_dst, track)
}

/// [`deliver`] to the endpoint registered at `dst` (the packet's final destination, or a NAT
/// instance the packet is routed to unchanged).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn deliver_at<M: Mode, A: Family>(
    mode: M,
    vpc_id: u32,
    from: u32,
    to: u32,
    flow: &Flow<A>,
    dst: A,
    new_dst: u32,
    track: &Track,
) -> Result<Decision, DropReason> {
    if to == 0 {
        mode.step(STEP_DELIVER, 0, 0, to, 0, dst.trace_word());
        return Err(DropReason::UnknownDestination);
    }
    let ep = A::endpoint(vpc_id, dst).ok_or(DropReason::UnknownDestination);
    if mode.tracing() && !ep.is_ok_and(|ep| ep.subnet_id == to) {
        mode.step(STEP_DELIVER, 0, 0, to, 0, dst.trace_word());
    }
    let ep = ep?;
    // IPv6 reaches instances on their own ports only (a shared segment carries no IPv6 the
    // VPC routes): a constant per family.
    if ep.subnet_id != to || (A::BITS == 128 && ep.ifindex == 0) {
        return Err(DropReason::UnknownDestination);
    }
    let d = subnet(to)?;
    // The instance's own port, else the subnet's shared segment.
    let out = if ep.ifindex != 0 {
        ep.ifindex
    } else {
        d.ifindex
    };
    if out == 0 {
        return Err(DropReason::UnknownDestination);
    }
    if to != from && !acl::allows(mode, d.acl_id, ACL_INBOUND, flow, flow.src) {
        return Err(DropReason::AclInbound);
    }
    if ep.kind == ENDPOINT_INSTANCE
        && !security_group::checks(mode, track, vpc_id, ep.sg_set, ACL_INBOUND, flow, flow.src)
    {
        return Err(DropReason::SecurityGroupInbound);
    }
    mode.step(STEP_DELIVER, 2, 0, to, out, dst.trace_word());
    Ok(Decision::Forward(Forward::to(out, 0, new_dst)))
}

/// Out through NAT gateway `id` (in subnet P): P's ACL inbound, P's route table (to the
/// internet gateway), P's ACL outbound; the source becomes the elastic IP.
#[inline(always)]
fn through_nat_gateway<M: Mode>(
    mode: M,
    vpc_id: u32,
    id: u32,
    flow: &Flow,
) -> Result<Decision, DropReason> {
    // AWS: TCP, UDP and ICMP only, and of fragments only UDP ones.
    let carried = matches!(flow.proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP);
    if !carried || (flow.frag != Frag::None && flow.proto != PROTO_UDP) {
        return Err(DropReason::NatProtocol);
    }
    let nat = copied(&NAT_GATEWAYS, id).ok_or(DropReason::BadTarget)?;
    let p = subnet(nat.subnet_id)?;
    if !acl::allows(mode, p.acl_id, ACL_INBOUND, flow, flow.src) {
        return Err(DropReason::AclInbound);
    }
    let out = route::traced(mode, p.route_table, flow.dst).ok_or(DropReason::NoRoute)?;
    if out.target != TARGET_INTERNET_GATEWAY {
        return Err(DropReason::NoRoute);
    }
    if !acl::allows(mode, p.acl_id, ACL_OUTBOUND, flow, flow.dst) {
        return Err(DropReason::AclOutbound);
    }
    let mut fwd = Forward::to(out.target_id, nat.elastic_ip, 0);
    fwd.nat_gateway = id;
    fwd.via = vpc_id;
    Ok(Decision::Forward(fwd))
}

/// An ICMP error from the internet (unreachable, fragmentation needed, time exceeded) about a
/// packet we sent with a public or elastic source: it passes only if that packet belongs to a
/// live connection, and goes back to the inside endpoint with its quoted header translated.
/// The same network ACLs apply as to the connection's replies; security groups do not (it is
/// related to a tracked connection).
#[inline(always)]
fn related_icmp_error<M: Mode>(
    mode: M,
    target: &PublicTarget,
    flow: &Flow,
    inner: &Inner,
) -> Result<Decision, DropReason> {
    let unsolicited = if target.kind == ENDPOINT_INSTANCE {
        DropReason::UplinkUnsolicited
    } else {
        DropReason::NatUnsolicited
    };
    if inner.src != flow.dst {
        return Err(unsolicited);
    }
    // The inside endpoint the quoted packet came from, and the NAT gateway's subnet if any.
    let (inside_ip, inside_port, vpc_id, via) = if target.kind == ENDPOINT_INSTANCE {
        (target.private_ip, inner.sport, target.vpc_id, None)
    } else {
        let quoted = Flow {
            src: inner.dst,
            dst: inner.src,
            sport: inner.dport,
            dport: inner.sport,
            proto: inner.proto,
            ..*flow
        };
        let t = nat::reverse(&quoted).ok_or(unsolicited)?;
        // The running generation's gateway (see `nat_reply`).
        let gw = copied(&NAT_GATEWAYS, target.id).ok_or(unsolicited)?;
        (
            t.inside_ip,
            t.inside_port,
            target.vpc_id,
            Some((gw.subnet_id, subnet(gw.subnet_id)?)),
        )
    };
    // ICMP echo: both "ports" are the (inside) identifier.
    let dport = if inner.proto == PROTO_ICMP {
        inside_port
    } else {
        inner.dport
    };
    let original = CtKey::new(inside_ip, inner.dst, inside_port, dport, inner.proto);
    // The quoted packet left by a connection the inside endpoint opened, or (a public
    // instance's server) one the remote end opened: its reply direction.
    let inbound = original.reversed();
    let entry = conntrack::entry(&original)
        .or_else(|| {
            if target.kind == ENDPOINT_INSTANCE {
                conntrack::entry(&inbound)
            } else {
                None
            }
        })
        .ok_or(unsolicited)?;
    let mut inside = *flow;
    inside.dst = inside_ip;
    let from = match via {
        Some((id, p)) => {
            if !acl::allows(mode, p.acl_id, ACL_INBOUND, flow, flow.src) {
                return Err(DropReason::AclInbound);
            }
            if !acl::allows(mode, p.acl_id, ACL_OUTBOUND, &inside, inside_ip) {
                return Err(DropReason::AclOutbound);
            }
            id
        }
        None => 0,
    };
    let ep = endpoint(vpc_id, inside_ip).ok_or(unsolicited)?;
    // Related to a tracked connection: no security group decides it (`assured` only says
    // which map holds the entry, and this packet changes nothing in it).
    let track = Track::Tracked {
        reply: true,
        entry,
        assured: true,
    };
    trace::connection(mode, &track);
    mode.step(
        STEP_TRANSLATE,
        XLATE_DESTINATION,
        inside_port,
        flow.dst,
        inside_ip,
        0,
    );
    let mut decision = deliver(mode, vpc_id, from, ep.subnet_id, &inside, inside_ip, &track)?;
    if let Decision::Forward(ref mut fwd) = decision {
        fwd.inner_src = inside_ip;
        fwd.inner_sport = inside_port;
    }
    Ok(decision)
}

/// A reply arriving at a NAT gateway's elastic IP (`target`, of the running generation): back
/// through P's ACL inbound, the reverse translation, P's ACL outbound, then into the inside
/// endpoint's subnet. Only packets of a live translated connection pass. The gateway and VPC
/// are the running generation's (`target`), not the ids NAT_PORTS recorded when the connection
/// started: those name the other slot after a reload, whose subnets may be stale (an interface
/// re-created since has a new ifindex) or another generation's altogether.
#[inline(always)]
fn nat_reply<M: Mode>(mode: M, target: &PublicTarget, flow: &Flow) -> Result<Decision, DropReason> {
    let t = nat::reverse(flow).ok_or(DropReason::NatUnsolicited)?;
    let vpc_id = target.vpc_id;
    let nat = copied(&NAT_GATEWAYS, target.id).ok_or(DropReason::NatUnsolicited)?;
    let p = subnet(nat.subnet_id)?;
    if !acl::allows(mode, p.acl_id, ACL_INBOUND, flow, flow.src) {
        return Err(DropReason::AclInbound);
    }
    mode.step(
        STEP_TRANSLATE,
        XLATE_DESTINATION,
        t.inside_port,
        flow.dst,
        t.inside_ip,
        0,
    );
    let mut inside = *flow;
    inside.dst = t.inside_ip;
    inside.dport = t.inside_port;
    if flow.proto == PROTO_ICMP {
        inside.sport = t.inside_port;
    }
    if !acl::allows(mode, p.acl_id, ACL_OUTBOUND, &inside, inside.dst) {
        return Err(DropReason::AclOutbound);
    }
    let track = conntrack::lookup(mode, &inside)?;
    trace::connection(mode, &track);
    if !matches!(track, Track::Tracked { reply: true, .. }) {
        return Err(DropReason::NatUnsolicited);
    }
    let ep = endpoint(vpc_id, t.inside_ip).ok_or(DropReason::NatUnsolicited)?;
    let mut decision = deliver(
        mode,
        vpc_id,
        nat.subnet_id,
        ep.subnet_id,
        &inside,
        t.inside_ip,
        &track,
    )?;
    if let Decision::Forward(ref mut fwd) = decision {
        fwd.new_dport = t.inside_port;
        conntrack::commit(mode, &inside, track, fwd)?;
    }
    Ok(decision)
}

#[inline(always)]
fn from_uplink<M: Mode>(
    mode: M,
    slot: u32,
    iface: &IfaceInfo,
    flow: &Flow,
) -> Result<Decision, DropReason> {
    let checked = source_check::from_uplink(slot, flow);
    mode.step(
        STEP_UPLINK_SOURCE_CHECK,
        checked.is_ok() as u8,
        0,
        flow.src,
        0,
        0,
    );
    checked?;
    let target = copied(&PUBLIC_IPS, PublicKey { ip: flow.dst, slot });
    let Some(target) = target else {
        // Not an address the VPC answers for: the router's own traffic, unless it is aimed at
        // a private VPC address (nothing else on the uplink reaches the VPC).
        let vpc = copied(&VPCS, iface.vpc_id);
        if let Some(vpc) = vpc
            && route::lookup(vpc.local_table, flow.dst).is_some()
        {
            return Err(DropReason::UplinkUnsolicited);
        }
        mode.step(STEP_TO_HOST, 0, 0, flow.dst, 0, 0);
        return Ok(Decision::ToHost);
    };
    if let Some(inner) = flow.inner {
        return related_icmp_error(mode, &target, flow, &inner);
    }
    if target.kind != ENDPOINT_INSTANCE {
        return nat_reply(mode, &target, flow);
    }
    let ep = endpoint(target.vpc_id, target.private_ip).ok_or(DropReason::UnknownDestination)?;
    // Tracked and checked as the instance sees it: destination translated.
    let mut inside = *flow;
    inside.dst = target.private_ip;
    mode.step(
        STEP_TRANSLATE,
        XLATE_DESTINATION,
        0,
        flow.dst,
        target.private_ip,
        0,
    );
    let track = conntrack::lookup(mode, &inside)?;
    trace::connection(mode, &track);
    let mut decision = deliver(
        mode,
        target.vpc_id,
        0,
        ep.subnet_id,
        &inside,
        target.private_ip,
        &track,
    )?;
    if let Decision::Forward(ref mut fwd) = decision {
        conntrack::commit(mode, &inside, track, fwd)?;
    }
    Ok(decision)
}

/// A packet from a gateway that carries packets untranslated (a VPN gateway, a gateway
/// endpoint): its source must be behind the gateway, and it reaches private VPC addresses
/// only, as they are: never a public or elastic IP nor anything beyond the VPC (no transit).
/// The router's own address on the link is the router's.
#[inline(always)]
fn from_gateway<M: Mode>(
    mode: M,
    slot: u32,
    iface: &IfaceInfo,
    flow: &Flow,
) -> Result<Decision, DropReason> {
    let checked = source_check::from_gateway(iface, flow);
    mode.step(
        STEP_GATEWAY_SOURCE_CHECK,
        checked.is_ok() as u8,
        0,
        flow.src,
        0,
        0,
    );
    checked?;
    if copied(&PUBLIC_IPS, PublicKey { ip: flow.dst, slot }).is_some() {
        return Err(DropReason::GatewayTransit);
    }
    let vpc = copied(&VPCS, iface.vpc_id).ok_or(DropReason::BadTarget)?;
    if route::lookup(vpc.local_table, flow.dst).is_none() {
        if flow.dst == iface.router_ip {
            mode.step(STEP_TO_HOST, 0, 0, flow.dst, 0, 0);
            return Ok(Decision::ToHost);
        }
        return Err(DropReason::GatewayTransit);
    }
    let ep = endpoint(iface.vpc_id, flow.dst).ok_or(DropReason::UnknownDestination)?;
    let track = conntrack::lookup(mode, flow)?;
    trace::connection(mode, &track);
    let mut decision = deliver(mode, iface.vpc_id, 0, ep.subnet_id, flow, 0, &track)?;
    if let Decision::Forward(ref mut fwd) = decision {
        conntrack::commit(mode, flow, track, fwd)?;
    }
    Ok(decision)
}
