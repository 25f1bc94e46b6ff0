//! Source checks: who may send what, before any other policy.
//!
//! - **Instance port** (the instance's ENI): the source must be the instance's own address;
//!   the port is bound to it (AWS's source/destination check). With the check off (a NAT
//!   instance, `IFACE_F_NO_SOURCE_CHECK`) it may also send for internet hosts (the replies
//!   it un-translates), but never with an address of the uplink's anti-spoofing table (a VPC
//!   or VPN address, the router's, a public IP, a martian): it cannot impersonate another
//!   instance. Its packets are its own: the port's endpoint (security groups, flow records),
//!   without its public IP (the internet gateway translates the instance's own address only).
//! - **Shared segment**: the source must be an instance of the subnet that has no port of its
//!   own. A NAT gateway's private address is the router's, never a host's, so it is never a
//!   valid source on the wire.
//! - **Uplink** (anti-spoofing): no internet host has an address inside a VPC block, one of the
//!   router's own addresses or a martian one (`vpc_common::route::uplink_spoof_table`);
//!   such packets are dropped before anything else, since an instance would otherwise answer
//!   them into the VPC.
//!
//! - **Gateway** (a VPN gateway's or gateway endpoint's link): the source must be inside the
//!   networks behind the gateway (its `source_table`: the VPN's routes, the endpoint's prefix
//!   list), which the agent keeps apart from every VPC block.
//!
//! - **IPv6 on an instance port**: a routed packet's source must be one of the instance's IPv6
//!   addresses (neighbour discovery's own rules are `crate::ndp`'s).
//!
//! Packets to the router itself pass the same checks as forwarded ones.

use vpc_common::{
    DropReason,
    iface::{ENDPOINT_INSTANCE, Endpoint, IFACE_F_NO_SOURCE_CHECK, IfaceInfo},
    route::uplink_spoof_table,
};

use vpc_common::Addr6;

use crate::{family::Family, maps::endpoint, packet::Flow, route};

/// The source endpoint of a packet that arrived on subnet interface `iface` (generation
/// `slot`).
#[inline(always)]
pub fn from_subnet(slot: u32, iface: &IfaceInfo, flow: &Flow) -> Result<Endpoint, DropReason> {
    let port = iface.is_port();
    let mut at = flow.src;
    if port && flow.src != iface.instance_ip {
        if iface.flags & IFACE_F_NO_SOURCE_CHECK == 0 || from_uplink(slot, flow).is_err() {
            return Err(DropReason::Spoofed);
        }
        // A NAT instance sending for an internet host: the packet is the instance's.
        at = iface.instance_ip;
    }
    let mut src = endpoint(iface.vpc_id, at).ok_or(DropReason::Spoofed)?;
    if at != flow.src {
        // The internet gateway maps the instance's own address only, never one it sends for.
        src.public_ip = 0;
    }
    let attached_here = if port {
        src.ifindex != 0
    } else {
        // On the shared segment: an instance with a port of its own never sends from here.
        src.ifindex == 0
    };
    if src.subnet_id != iface.subnet_id || src.kind != ENDPOINT_INSTANCE || !attached_here {
        return Err(DropReason::Spoofed);
    }
    Ok(src)
}

/// The source endpoint of an IPv6 packet to be routed that arrived on instance port `iface`
/// (`ingress`): the source must be one of the IPv6 addresses of the instance behind the port
/// (a link-local or unspecified source is never routed). There is no NAT instance for IPv6:
/// the check is never off.
#[inline(always)]
pub fn from_port6(
    iface: &IfaceInfo,
    ingress: u32,
    flow: &Flow<Addr6>,
) -> Result<Endpoint, DropReason> {
    let src = Addr6::endpoint(iface.vpc_id, flow.src).ok_or(DropReason::Spoofed)?;
    if !iface.is_port()
        || src.ifindex != ingress
        || src.subnet_id != iface.subnet_id
        || src.kind != ENDPOINT_INSTANCE
    {
        return Err(DropReason::Spoofed);
    }
    Ok(src)
}

/// Anti-spoofing for a packet that arrived on an uplink (generation `slot`).
#[inline(always)]
pub fn from_uplink(slot: u32, flow: &Flow) -> Result<(), DropReason> {
    match route::lookup(uplink_spoof_table(slot), flow.src) {
        Some(_) => Err(DropReason::UplinkSpoofed),
        None => Ok(()),
    }
}

/// A packet that arrived on gateway interface `iface`: its source must be behind the gateway.
#[inline(always)]
pub fn from_gateway(iface: &IfaceInfo, flow: &Flow) -> Result<(), DropReason> {
    match route::lookup(iface.source_table, flow.src) {
        Some(_) => Ok(()),
        None => Err(DropReason::GatewaySpoofed),
    }
}
