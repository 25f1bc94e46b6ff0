//! IPv6 in the reference evaluator: what the datapath does with an IPv6 packet today
//! (`vpc-ebpf/src/ndp.rs`). The VPC does not forward IPv6 yet, so there is no IPv6 pipeline
//! to model, only where an IPv6 packet goes instead of the IPv4 one:
//! - On an uplink or a gateway's link: the router's own (the kernel's).
//! - On a shared segment: a link-scope destination (`fe80::/10`, `ff02::/16`) is the
//!   kernel's; anything else is dropped (`not_ipv4`).
//! - On an instance port: the source must be `::`, link-local or one of the instance's
//!   `ipv6_addresses` (else `spoofed`); neighbour discovery (ICMPv6 133 to 137, hop limit
//!   255, code 0) is answered or checked; then link-scope traffic is the kernel's and anything
//!   else is dropped (`not_ipv4`).
//!
//! The packet modelled carries no extension headers (the datapath takes neighbour discovery
//! only without them) and, for a neighbour solicitation or advertisement, its target
//! ([`IpPacket::nd_target`]; `None`: too short to carry one, not neighbour discovery then).

use std::net::Ipv6Addr;

use vpc_common::{
    DropReason,
    ndp::{
        ND_HOP_LIMIT, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, PROTO_ICMPV6, REDIRECT,
        ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION,
    },
};

use super::{Entry, EvalError, Evaluator, Hop, Ingress, IpPacket, Trace, Verdict};
use crate::config::validated::{InstanceDef, SubnetDef};

/// A neighbour discovery message an instance sends (ICMPv6 type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdMessage {
    RouterSolicitation,
    RouterAdvertisement,
    NeighbourSolicitation { target: Ipv6Addr },
    NeighbourAdvertisement { target: Ipv6Addr },
    Redirect,
}

/// What the router does with a neighbour discovery message on an instance port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdOutcome {
    /// Answered in place: a neighbour advertisement with the port's MAC for another address
    /// of the subnet's /64, or as the router for its own link-local address; a router
    /// advertisement for a solicitation. `router_link_local`: the router's link-local
    /// address on the port, when known ([`Evaluator::with_router_link_local`]); unknown, a
    /// solicitation for any link-local address is taken as one for the router's.
    Answered { router_link_local: Option<Ipv6Addr> },
    /// Not the router's to answer (the instance's own address, duplicate address detection,
    /// an address outside the /64, a subnet without an IPv6 block): on to the kernel's rules.
    NotAnswered,
    /// Only routers advertise and redirect; a host advertises only its own or a link-local
    /// address: `spoofed`.
    Refused,
}

/// Where an IPv6 packet goes instead of the IPv4 pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Step {
    /// On an uplink or a gateway's link: the router's own.
    Outside,
    /// To a link-scope address (`fe80::/10`, `ff02::/16`): the kernel's, never forwarded.
    LinkScope,
    /// Anything else: IPv6 is not forwarded yet (`not_ipv4`).
    NotForwarded,
}

/// Whether `addr` is link-local unicast (`fe80::/10`).
fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `addr` is link-scope: link-local unicast or link-local multicast (`ff02::/16`,
/// any flags: the datapath looks at the scope nibble only).
fn is_link_scope(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    is_link_local(addr) || (o[0] == 0xff && o[1] & 0x0f == 0x02)
}

impl Evaluator<'_> {
    /// The IPv6 packet `p` (addresses `src`, `dst`) entering on `ingress`.
    pub(super) fn evaluate6(
        &self,
        ingress: Ingress<'_>,
        p: &IpPacket,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Trace, EvalError> {
        let mut hops = Vec::new();
        let entry = self.entry(ingress, |i| i.ipv6_addresses.contains(&src))?;
        let verdict = match entry {
            Entry::Uplink | Entry::Gateway { .. } => {
                hops.push(Hop::Ipv6 {
                    step: Ipv6Step::Outside,
                });
                Verdict::ToHost
            }
            Entry::Subnet { vpc, subnet, port } => {
                let vpc = &self.config.vpcs[vpc];
                let port = port.map(|i| &vpc.instances[i]);
                self.on_subnet(&vpc.subnets[subnet], port, p, src, dst, &mut hops)
            }
        };
        Ok(Trace { hops, verdict })
    }

    /// `ndp::on_subnet`: on instance `port`'s own port, or (`None`) a shared segment of
    /// `subnet`.
    fn on_subnet(
        &self,
        subnet: &SubnetDef,
        port: Option<&InstanceDef>,
        p: &IpPacket,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hops: &mut Vec<Hop>,
    ) -> Verdict {
        let scope = |hops: &mut Vec<Hop>| {
            if is_link_scope(dst) {
                hops.push(Hop::Ipv6 {
                    step: Ipv6Step::LinkScope,
                });
                Verdict::ToHost
            } else {
                hops.push(Hop::Ipv6 {
                    step: Ipv6Step::NotForwarded,
                });
                Verdict::Drop(DropReason::NotIpv4)
            }
        };
        let Some(instance) = port else {
            return scope(hops);
        };
        let own = |a: Ipv6Addr| instance.ipv6_addresses.contains(&a);
        let passed = src.is_unspecified() || is_link_local(src) || own(src);
        hops.push(Hop::SourceCheck {
            subnet: subnet.name.clone(),
            passed,
        });
        if !passed {
            return Verdict::Drop(DropReason::Spoofed);
        }
        if let Some((message, outcome)) = self.neighbour_discovery(subnet, instance, p, src) {
            hops.push(Hop::NeighbourDiscovery { message, outcome });
            match outcome {
                NdOutcome::Answered { .. } => return Verdict::Answered,
                NdOutcome::Refused => return Verdict::Drop(DropReason::Spoofed),
                NdOutcome::NotAnswered => {}
            }
        }
        scope(hops)
    }

    /// The neighbour discovery message `p` is, and what the router does with it; `None`: not
    /// neighbour discovery as the datapath takes it (not ICMPv6 133 to 137 with hop limit 255
    /// and code 0, or a solicitation or advertisement without its target).
    fn neighbour_discovery(
        &self,
        subnet: &SubnetDef,
        instance: &InstanceDef,
        p: &IpPacket,
        src: Ipv6Addr,
    ) -> Option<(NdMessage, NdOutcome)> {
        if p.proto != PROTO_ICMPV6 || p.hop_limit != ND_HOP_LIMIT || p.icmp_code != 0 {
            return None;
        }
        let own = |a: Ipv6Addr| instance.ipv6_addresses.contains(&a);
        let router_ll = instance
            .interface
            .as_deref()
            .and_then(|name| self.router_link_local.and_then(|f| f(name)));
        Some(match p.icmp_type {
            NEIGHBOR_SOLICITATION => {
                let target = p.nd_target?;
                let for_router = match router_ll {
                    Some(ll) => target == ll,
                    None => is_link_local(target),
                };
                let in_subnet =
                    subnet.ipv6_cidr.is_some_and(|n| n.contains(&target)) && !own(target);
                let outcome = if !src.is_unspecified() && (for_router || in_subnet) {
                    NdOutcome::Answered {
                        router_link_local: router_ll,
                    }
                } else {
                    NdOutcome::NotAnswered
                };
                (NdMessage::NeighbourSolicitation { target }, outcome)
            }
            NEIGHBOR_ADVERTISEMENT => {
                let target = p.nd_target?;
                let outcome = if is_link_local(target) || own(target) {
                    NdOutcome::NotAnswered
                } else {
                    NdOutcome::Refused
                };
                (NdMessage::NeighbourAdvertisement { target }, outcome)
            }
            ROUTER_SOLICITATION => {
                let outcome = if subnet.ipv6_cidr.is_some() {
                    NdOutcome::Answered {
                        router_link_local: router_ll,
                    }
                } else {
                    NdOutcome::NotAnswered
                };
                (NdMessage::RouterSolicitation, outcome)
            }
            ROUTER_ADVERTISEMENT => (NdMessage::RouterAdvertisement, NdOutcome::Refused),
            REDIRECT => (NdMessage::Redirect, NdOutcome::Refused),
            _ => return None,
        })
    }
}
