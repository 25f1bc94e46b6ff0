//! IPv6 in the reference evaluator: what the datapath does with an IPv6 packet
//! (`vpc-ebpf/src/ndp.rs` and the IPv6 forwarding between instance ports and through the
//! internet gateways):
//! - On a gateway's link (a VPN gateway's, an endpoint's): the router's own (the kernel's).
//! - On an uplink (the interface of a VPC's internet or egress-only internet gateway):
//!   link-scope traffic and anything to an address in no VPC's IPv6 block is the router's
//!   own; into VPC V's /56 ([`Run::entering6_from_uplink`]): by V's own gateways only (else
//!   `uplink_unsolicited`), from a source no VPC has and not link-local, multicast or `::`
//!   (else `uplink_spoofed`), no ICMPv6 error (`not_ipv4`: not forwarded yet), to an address
//!   of an instance of V on its own port (else `unknown_destination`); a new connection only
//!   if the destination subnet's table routes the source back to the internet gateway it
//!   came by (an egress-only gateway lets replies in only: `uplink_unsolicited`); then, as
//!   IPv4 and by the same code, the subnet's network ACL inbound and the instance's security
//!   groups inbound (skipped for a tracked connection); hop limit 1 or 0 expires
//!   (`ttl_exceeded`).
//! - On a shared segment: router advertisements and redirects are `spoofed`; a link-scope
//!   destination (`fe80::/10`, `ff02::/16`) is the kernel's; anything else is dropped
//!   (`not_ipv4`: not forwarded there yet).
//! - On an instance port: the source must be link-local or one of the instance's
//!   `ipv6_addresses`, or `::` for solicitations and multicast listener reports only (else
//!   `spoofed`); neighbour discovery (ICMPv6 133 to 137) must have hop limit 255 and code 0
//!   (else `malformed`) and is answered or checked; an echo request to the router's
//!   link-local address or a link-scope group is answered; other unicast to a link-local
//!   address than ICMPv6 to the router's is `unknown_destination`; link-scope traffic is the
//!   kernel's.
//! - From an instance port to any other address, the forwarding pipeline: the source must be
//!   one of the instance's own addresses (a link-local or `::` source: `spoofed`); other
//!   multicast and ICMPv6 errors (types below 128) are not forwarded yet (`not_ipv4`); then,
//!   as IPv4 and by the same code (`super::Run::leaving_instance`): the connection state, the
//!   instance's security groups outbound (IPv6 rules, `sg:` references by the members' IPv6
//!   addresses), the subnet's network ACL outbound (its IPv6 rules), the longest prefix
//!   match among the table's IPv6 routes and the VPC's IPv6 local routes (its /56, the
//!   subnets' /64s). A local route delivers to an instance of the destination subnet with
//!   its own port (else `unknown_destination`) past that subnet's network ACL inbound (when
//!   it is another subnet) and the instance's security groups inbound; a route to the
//!   internet gateway or the egress-only gateway sends the packet out of that gateway's
//!   interface, untranslated; a blackhole route (or an unaccepted peering, compiled as one)
//!   drops `blackhole`; the other targets (NAT, peering, gateways) are not forwarded yet
//!   (`not_ipv4`). A packet to be forwarded with hop limit 1 or 0 expires (`ttl_exceeded`;
//!   no ICMPv6 error sent yet). The port's MTU (`too_big`) is not part of the definition,
//!   not modelled.
//!
//! The packet modelled carries no extension headers and is not fragmented (the datapath
//! drops neighbour discovery with either, and any IPv6 fragment on a port) and, for a
//! neighbour solicitation or advertisement, its target ([`IpPacket::nd_target`]; `None`:
//! too short to carry one: `malformed`).

use std::net::Ipv6Addr;

use ipnet::IpNet;
use vpc_common::{
    DropReason,
    ndp::{
        ND_HOP_LIMIT, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, PROTO_ICMPV6, REDIRECT,
        ROUTER_ADVERTISEMENT, ROUTER_SOLICITATION,
    },
};

use super::{
    Endpoint, Entry, EvalError, Evaluator, Hop, Ingress, IpPacket, Lookup, RouteHopTarget, Run,
    Trace, Verdict, holding_subnet, lookup,
};
use crate::config::validated::{InstanceDef, RouteTarget, SubnetDef};

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
    /// Only routers advertise and redirect; a host advertises only its own addresses (its
    /// `ipv6_addresses`, link-local ones other than the router's): `spoofed`.
    Refused,
    /// Hop limit other than 255, code other than 0, or too short (RFC 4861 6.1, 7.1):
    /// `malformed`.
    Invalid,
}

/// Multicast listener report, done and version 2 report: sent from `::` too (RFC 3590).
const MLD_FROM_UNSPECIFIED: [u8; 3] = [131, 132, 143];
const ECHO_REQUEST: u8 = 128;
/// ICMPv6 types below are errors, from it on informational (RFC 4443 2.1).
const FIRST_INFORMATIONAL: u8 = 128;

/// Where an IPv6 packet goes outside the checks it shares with IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Step {
    /// On a gateway's link, or on an uplink to a link-scope address or one in no VPC's IPv6
    /// block: the router's own.
    Outside,
    /// On an uplink not of the VPC whose block holds the destination (neither its internet
    /// gateway's nor its egress-only gateway's interface): `uplink_unsolicited`.
    OtherUplink,
    /// From the internet, a new connection the destination subnet's table does not route
    /// back to the internet gateway it came by (a route to the egress-only gateway, which
    /// lets replies in only, another target or none): `uplink_unsolicited`.
    Unsolicited,
    /// To a link-scope address (`fe80::/10`, `ff02::/16`): the kernel's, never forwarded.
    LinkScope,
    /// Not forwarded (yet) there: anything not link-scope on a shared segment, multicast
    /// beyond the link, a route to a NAT instance or gateway, a peering or a gateway
    /// (`not_ipv4`).
    NotForwarded,
    /// An ICMPv6 error (type below 128): not forwarded yet (`not_ipv4`).
    IcmpError,
    /// To be forwarded with hop limit 1 or 0: it expires at the router (`ttl_exceeded`; no
    /// ICMPv6 time exceeded is sent yet).
    HopLimitExceeded,
    /// An echo request to the router's link-local address or a link-scope group, from an
    /// instance: answered by the router.
    EchoAnswered,
    /// From an instance, to a link-local address not the router's, or anything but ICMPv6 to
    /// the router's (`unknown_destination`): the router's link-local address offers
    /// neighbour discovery and echo only.
    NotOffered,
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

/// A source no internet host has, whatever the definition: link-local, multicast, `::`
/// (the uplink's anti-spoofing adds the VPCs' blocks).
pub(super) fn uplink_martian(addr: Ipv6Addr) -> bool {
    is_link_local(addr) || addr.is_multicast() || addr.is_unspecified()
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
        let mut run = Run {
            config: self.config,
            policy: self.policy,
            tracked: false,
            hops: Vec::new(),
        };
        let entry = match self.entry(ingress, |i| i.ipv6_addresses.contains(&src)) {
            // An egress-only gateway's interface of its own is an uplink too.
            Err(EvalError::UnknownInterface(name)) if self.egress_only_link(&name) => Entry::Uplink,
            entry => entry?,
        };
        let verdict = match (entry, ingress) {
            (Entry::Uplink, Ingress::Interface(uplink)) => {
                run.entering6_from_uplink(uplink, p, src, dst)
            }
            (Entry::Uplink | Entry::Gateway { .. }, _) => {
                run.hops.push(Hop::Ipv6 {
                    step: Ipv6Step::Outside,
                });
                Verdict::ToHost
            }
            (Entry::Subnet { vpc, subnet, port }, _) => {
                self.on_subnet(&mut run, vpc, subnet, port, p, src, dst)
            }
        };
        Ok(Trace {
            hops: run.hops,
            verdict,
        })
    }

    /// Whether `name` is the interface of a VPC's egress-only internet gateway.
    fn egress_only_link(&self, name: &str) -> bool {
        self.config.vpcs.iter().any(|vpc| {
            vpc.egress_only_internet_gateway
                .as_ref()
                .is_some_and(|g| g.interface == name)
        })
    }

    /// `ndp::on_subnet`: on instance `port`'s own port, or (`None`) a shared segment of
    /// subnet `s` of VPC `v`; from a port to a global address on to the forwarding pipeline
    /// ([`Run::forward6`]).
    // The entry (`v`, `s`, `port`) and the packet with its addresses of the family, as the
    // other checks take them.
    #[allow(clippy::too_many_arguments)]
    fn on_subnet(
        &self,
        run: &mut Run<'_>,
        v: usize,
        s: usize,
        port: Option<usize>,
        p: &IpPacket,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Verdict {
        let vpc = &self.config.vpcs[v];
        let subnet = &vpc.subnets[s];
        let port = port.map(|i| &vpc.instances[i]);
        let hops = &mut run.hops;
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
        let icmp_type = (p.proto == PROTO_ICMPV6).then_some(p.icmp_type);
        let Some(instance) = port else {
            // Hosts of a segment are not routers to the router.
            if let Some(t @ (ROUTER_ADVERTISEMENT | REDIRECT)) = icmp_type {
                let message = if t == REDIRECT {
                    NdMessage::Redirect
                } else {
                    NdMessage::RouterAdvertisement
                };
                hops.push(Hop::NeighbourDiscovery {
                    message,
                    outcome: NdOutcome::Refused,
                });
                return Verdict::Drop(DropReason::Spoofed);
            }
            return scope(hops);
        };
        let own = |a: Ipv6Addr| instance.ipv6_addresses.contains(&a);
        // `::` only for solicitations and multicast listener reports.
        let from_unspecified = matches!(
            icmp_type,
            Some(t) if t == ROUTER_SOLICITATION
                || t == NEIGHBOR_SOLICITATION
                || MLD_FROM_UNSPECIFIED.contains(&t)
        );
        let passed = (src.is_unspecified() && from_unspecified) || is_link_local(src) || own(src);
        // Beyond the link only the instance's own addresses; neighbour discovery is looked at
        // first (a unicast solicitation to a global address is answered), and checked again
        // by the forwarding pipeline.
        let nd = icmp_type.is_some_and(|t| (ROUTER_SOLICITATION..=REDIRECT).contains(&t));
        let passed = passed && (is_link_scope(dst) || own(src) || nd);
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
                NdOutcome::Invalid => return Verdict::Drop(DropReason::Malformed),
                NdOutcome::NotAnswered => {}
            }
        }
        if is_link_scope(dst) {
            // The router's link-local address (unknown: any link-local address is taken as
            // the router's).
            let routers = |a: Ipv6Addr| {
                instance
                    .interface
                    .as_deref()
                    .and_then(|name| self.router_link_local.and_then(|f| f(name)))
                    .map_or(is_link_local(a), |ll| ll == a)
            };
            let unicast = is_link_local(dst);
            if icmp_type == Some(ECHO_REQUEST) {
                if unicast && !routers(dst) {
                    hops.push(Hop::Ipv6 {
                        step: Ipv6Step::NotOffered,
                    });
                    return Verdict::Drop(DropReason::UnknownDestination);
                }
                hops.push(Hop::Ipv6 {
                    step: Ipv6Step::EchoAnswered,
                });
                return Verdict::Answered;
            }
            if unicast && (!routers(dst) || icmp_type.is_none()) {
                hops.push(Hop::Ipv6 {
                    step: Ipv6Step::NotOffered,
                });
                return Verdict::Drop(DropReason::UnknownDestination);
            }
            return scope(hops);
        }
        run.forward6(v, s, instance, p, (src, dst))
    }

    /// The neighbour discovery message `p` is, and what the router does with it; `None`: not
    /// neighbour discovery (not ICMPv6 133 to 137).
    fn neighbour_discovery(
        &self,
        subnet: &SubnetDef,
        instance: &InstanceDef,
        p: &IpPacket,
        src: Ipv6Addr,
    ) -> Option<(NdMessage, NdOutcome)> {
        if p.proto != PROTO_ICMPV6 || !(ROUTER_SOLICITATION..=REDIRECT).contains(&p.icmp_type) {
            return None;
        }
        let invalid = p.hop_limit != ND_HOP_LIMIT || p.icmp_code != 0;
        let own = |a: Ipv6Addr| instance.ipv6_addresses.contains(&a);
        let router_ll = instance
            .interface
            .as_deref()
            .and_then(|name| self.router_link_local.and_then(|f| f(name)));
        Some(match p.icmp_type {
            NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT if invalid || p.nd_target.is_none() => {
                let target = p.nd_target.unwrap_or(Ipv6Addr::UNSPECIFIED);
                let message = if p.icmp_type == NEIGHBOR_SOLICITATION {
                    NdMessage::NeighbourSolicitation { target }
                } else {
                    NdMessage::NeighbourAdvertisement { target }
                };
                (message, NdOutcome::Invalid)
            }
            ROUTER_SOLICITATION if invalid => (NdMessage::RouterSolicitation, NdOutcome::Invalid),
            ROUTER_ADVERTISEMENT if invalid => (NdMessage::RouterAdvertisement, NdOutcome::Invalid),
            REDIRECT if invalid => (NdMessage::Redirect, NdOutcome::Invalid),
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
                let routers = router_ll.is_some_and(|ll| ll == target);
                let outcome = if (is_link_local(target) && !routers) || own(target) {
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

impl Run<'_> {
    /// From instance `source`'s own port in subnet `s` of VPC `v`, `p` (addresses `src`,
    /// `dst`, not link-scope): the forwarding pipeline, the IPv4 one's where they agree
    /// ([`Run::leaving_instance`]).
    fn forward6(
        &mut self,
        v: usize,
        s: usize,
        source: &InstanceDef,
        p: &IpPacket,
        (src, dst): (Ipv6Addr, Ipv6Addr),
    ) -> Verdict {
        if !source.ipv6_addresses.contains(&src) {
            // A link-local or `::` source of a neighbour discovery message (the others never
            // got this far): never beyond the link.
            self.hops.push(Hop::SourceCheck {
                subnet: self.config.vpcs[v].subnets[s].name.clone(),
                passed: false,
            });
            return Verdict::Drop(DropReason::Spoofed);
        }
        let step = if dst.is_multicast() {
            Some(Ipv6Step::NotForwarded)
        } else if p.proto == PROTO_ICMPV6 && p.icmp_type < FIRST_INFORMATIONAL {
            Some(Ipv6Step::IcmpError)
        } else {
            None
        };
        if let Some(step) = step {
            self.hops.push(Hop::Ipv6 { step });
            return Verdict::Drop(DropReason::NotIpv4);
        }
        self.tracked = self.policy.tracked(p);
        let verdict = self.leaving_instance(v, s, Endpoint::Instance(source), p, |run, t, d, r| {
            run.target6(v, t, d, r, p)
        });
        self.expire(verdict, p)
    }

    /// A packet `verdict` would forward expires at the router with hop limit 1 or 0.
    fn expire(&mut self, verdict: Verdict, p: &IpPacket) -> Verdict {
        if matches!(verdict, Verdict::Deliver { .. }) && p.hop_limit <= 1 {
            self.hops.push(Hop::Ipv6 {
                step: Ipv6Step::HopLimitExceeded,
            });
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        verdict
    }

    /// A route of IPv6 packet `p` in `table` of VPC `v` to `target` (not a local route).
    fn target6(
        &mut self,
        v: usize,
        table: usize,
        dest: IpNet,
        target: &RouteTarget,
        p: &IpPacket,
    ) -> Verdict {
        let hop = self.hop_target(v, target);
        self.route_hop(v, table, Some(dest), hop);
        let vpc = &self.config.vpcs[v];
        let gateway = match *target {
            RouteTarget::InternetGateway => vpc.internet_gateway.as_ref(),
            RouteTarget::EgressOnlyGateway => vpc.egress_only_internet_gateway.as_ref(),
            RouteTarget::Blackhole => return Verdict::Drop(DropReason::Blackhole),
            // Compiled as a blackhole route, as for IPv4.
            RouteTarget::Peering(c) if !vpc.peering_connections[c].accepted => {
                return Verdict::Drop(DropReason::Blackhole);
            }
            _ => {
                self.hops.push(Hop::Ipv6 {
                    step: Ipv6Step::NotForwarded,
                });
                return Verdict::Drop(DropReason::NotIpv4);
            }
        };
        // Out of the gateway's interface, untranslated. Validation keeps routes to a gateway
        // the VPC does not have out; were one there, it is compiled to no entry.
        match gateway {
            Some(g) => Verdict::Deliver {
                interface: g.interface.clone(),
                src: p.src,
                dst: p.dst,
            },
            None => Verdict::Drop(DropReason::NoRoute),
        }
    }

    /// `p` (addresses `src`, `dst`) arriving on uplink `uplink`: into the VPC whose IPv6 block
    /// holds the destination, to an instance on its own port (module documentation).
    fn entering6_from_uplink(
        &mut self,
        uplink: &str,
        p: &IpPacket,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Verdict {
        let config = self.config;
        let into = config
            .vpcs
            .iter()
            .position(|vpc| vpc.ipv6_cidr_block.is_some_and(|b| b.contains(&dst)));
        let Some(v) = into.filter(|_| !is_link_scope(dst)) else {
            self.hops.push(Hop::Ipv6 {
                step: Ipv6Step::Outside,
            });
            return Verdict::ToHost;
        };
        let vpc = &config.vpcs[v];
        let gateways = [
            vpc.internet_gateway.as_ref(),
            vpc.egress_only_internet_gateway.as_ref(),
        ];
        if !gateways
            .into_iter()
            .flatten()
            .any(|g| g.interface == uplink)
        {
            self.hops.push(Hop::Ipv6 {
                step: Ipv6Step::OtherUplink,
            });
            return Verdict::Drop(DropReason::UplinkUnsolicited);
        }
        if !self.uplink_source_check(src.into()) {
            return Verdict::Drop(DropReason::UplinkSpoofed);
        }
        if p.proto == PROTO_ICMPV6 && p.icmp_type < FIRST_INFORMATIONAL {
            self.hops.push(Hop::Ipv6 {
                step: Ipv6Step::IcmpError,
            });
            return Verdict::Drop(DropReason::NotIpv4);
        }
        // Inside the /56 but in no subnet: no instance has it.
        let Some((d, _)) = holding_subnet(vpc, dst.into()) else {
            return Verdict::Drop(DropReason::UnknownDestination);
        };
        let Some((endpoint, port)) = self.destination(v, d, dst.into()) else {
            return Verdict::Drop(DropReason::UnknownDestination);
        };
        self.tracked = self.policy.tracked(p);
        if !self.tracked && !self.routed_back(v, d, uplink, src) {
            self.hops.push(Hop::Ipv6 {
                step: Ipv6Step::Unsolicited,
            });
            return Verdict::Drop(DropReason::UplinkUnsolicited);
        }
        let verdict = self.admit(v, d, None, endpoint, port, p);
        self.expire(verdict, p)
    }

    /// Whether subnet `d` of VPC `v` routes `src` (outside every VPC) to the internet gateway
    /// on `uplink`: a new connection from the internet comes in only where the replies would
    /// go out and never by the egress-only gateway. Records the route hop.
    fn routed_back(&mut self, v: usize, d: usize, uplink: &str, src: Ipv6Addr) -> bool {
        let vpc = &self.config.vpcs[v];
        let table = vpc.subnets[d].route_table;
        match lookup(vpc, table, src.into()) {
            Lookup::Route(dest, target) => {
                let hop = self.hop_target(v, target);
                self.route_hop(v, table, Some(dest), hop);
                *target == RouteTarget::InternetGateway
                    && vpc
                        .internet_gateway
                        .as_ref()
                        .is_some_and(|g| g.interface == uplink)
            }
            // Not for a source outside every VPC block (the uplink's anti-spoofing).
            Lookup::Local(block) => {
                let hop = RouteHopTarget::Local { subnet: None };
                self.route_hop(v, table, Some(block), hop);
                false
            }
            Lookup::NoRoute => {
                self.route_hop(v, table, None, RouteHopTarget::NoRoute);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::{
        config::{ValidatedConfig, load_str},
        evaluator::{Direction, RouteHopTarget},
    };

    /// web's own port `eweb` (subnet `pub`, 2001:db8:1200::/64), a shared segment `seg`
    /// (subnet `shared`), an uplink, a VPN gateway's link.
    const YAML: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1200::/56
    internet_gateway: { name: igw, interface: up }
    vpn_gateway: { name: vgw, interface: vpn0, routes: [172.16.0.0/16] }
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1200::/64, route_table: public }
      - { name: shared, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1200:1::/64, interface: seg }
    route_tables:
      - { name: public, routes: [{ destination: 0.0.0.0/0, target: igw }, { destination: '::/0', target: igw }] }
    instances:
      - { name: web, subnet: pub, interface: eweb, private_ip: 10.0.0.10, ipv6_addresses: ['2001:db8:1200::10'] }
      - { name: app, subnet: pub, interface: eapp, private_ip: 10.0.0.11, ipv6_addresses: ['2001:db8:1200::11'] }
      - { name: db, subnet: shared, private_ip: 10.0.1.10, ipv6_addresses: ['2001:db8:1200:1::10'] }
";
    const WEB: &str = "2001:db8:1200::10";
    const APP: &str = "2001:db8:1200::11";
    const INTERNET: &str = "2001:db8:ff::1";
    const HOST_LL: &str = "fe80::1";
    /// The router's link-local address on `eweb`, when the evaluator is told it.
    const ROUTER_LL: &str = "fe80::ff:fe00:1";

    fn config() -> ValidatedConfig {
        load_str("t.yaml", YAML).expect("valid")
    }

    fn ip(a: &str) -> IpAddr {
        a.parse().expect("address")
    }

    fn packet(src: &str, dst: &str, proto: u8) -> IpPacket {
        IpPacket {
            src: ip(src),
            dst: ip(dst),
            proto,
            sport: 40000,
            dport: 443,
            icmp_type: 0,
            icmp_code: 0,
            hop_limit: 64,
            nd_target: None,
        }
    }

    fn tcp(src: &str, dst: &str) -> IpPacket {
        packet(src, dst, 6)
    }

    /// ICMPv6 `ty` as neighbour discovery sends it (hop limit 255), about `target`.
    fn nd(src: &str, dst: &str, ty: u8, target: Option<&str>) -> IpPacket {
        IpPacket {
            icmp_type: ty,
            hop_limit: ND_HOP_LIMIT,
            nd_target: target.map(|t| t.parse().expect("target")),
            ..packet(src, dst, PROTO_ICMPV6)
        }
    }

    fn trace(interface: &str, p: &IpPacket) -> Trace {
        Evaluator::new(&config(), &super::super::Stateless)
            .evaluate_ip(Ingress::Interface(interface), p)
            .expect("evaluates")
    }

    fn source(passed: bool) -> Hop {
        Hop::SourceCheck {
            subnet: "pub".into(),
            passed,
        }
    }

    fn step(step: Ipv6Step) -> Hop {
        Hop::Ipv6 { step }
    }

    const NOT_IPV4: Verdict = Verdict::Drop(DropReason::NotIpv4);
    const SPOOFED: Verdict = Verdict::Drop(DropReason::Spoofed);
    const MALFORMED: Verdict = Verdict::Drop(DropReason::Malformed);

    #[test]
    fn the_instances_own_address_to_the_internet_is_checked_routed_and_sent_out_of_the_uplink() {
        // The default group and network ACL allow all IPv6 out; the route to the internet
        // gateway sends it out of the uplink, untranslated.
        for p in [tcp(WEB, INTERNET), packet(WEB, INTERNET, 17)] {
            let t = trace("eweb", &p);
            assert_eq!(
                t.verdict,
                Verdict::Deliver {
                    interface: "up".into(),
                    src: ip(WEB),
                    dst: ip(INTERNET),
                },
                "{p:?}"
            );
            assert_eq!(t.hops[0], source(true), "{p:?}");
            assert!(matches!(t.hops.last(), Some(Hop::Route { .. })), "{p:?}");
            let route = t.hops.iter().find_map(|h| match h {
                Hop::Route {
                    destination,
                    target,
                    ..
                } => Some((*destination, target.clone())),
                _ => None,
            });
            assert_eq!(
                route,
                Some((
                    Some("::/0".parse().expect("net")),
                    RouteHopTarget::InternetGateway("igw".into())
                )),
                "{p:?}"
            );
        }
        // To another instance of the subnet with its own port: forwarded.
        assert_eq!(
            trace("eweb", &tcp(WEB, APP)).verdict,
            Verdict::Deliver {
                interface: "eapp".into(),
                src: ip(WEB),
                dst: ip(APP),
            }
        );
    }

    #[test]
    fn a_source_the_instance_does_not_have_is_spoofed() {
        // Another instance's address, an unused one of the /64, one outside the VPC.
        for src in [APP, "2001:db8:1200::99", INTERNET] {
            let t = trace("eweb", &tcp(src, INTERNET));
            assert_eq!(t.verdict, SPOOFED, "{src}");
            assert_eq!(t.hops, [source(false)], "{src}");
        }
        // The same address is app's own on app's port.
        assert_eq!(trace("eapp", &tcp(APP, INTERNET)).hops[0], source(true));
    }

    #[test]
    fn link_scope_traffic_goes_to_the_router() {
        for (src, dst) in [
            (HOST_LL, "ff02::2"),
            ("::", "ff02::16"),
            (WEB, "ff02::1"),
            (HOST_LL, ROUTER_LL),
        ] {
            let mut p = packet(src, dst, PROTO_ICMPV6);
            if src == "::" {
                // A multicast listener report: one of the few messages sent from `::`.
                p.icmp_type = 143;
            }
            let t = trace("eweb", &p);
            assert_eq!(t.verdict, Verdict::ToHost, "{src} -> {dst}");
            assert_eq!(
                t.hops,
                [source(true), step(Ipv6Step::LinkScope)],
                "{src} -> {dst}"
            );
        }
        // A link-local source never goes beyond the link.
        let t = trace("eweb", &tcp(HOST_LL, INTERNET));
        assert_eq!((t.verdict, t.hops), (SPOOFED, vec![source(false)]));
        // Echo to the router's link-local address or a group: answered; anything but ICMPv6
        // to a link-local address, or to one not the router's: not offered.
        let echo = |dst: &str| IpPacket {
            icmp_type: 128,
            ..packet(HOST_LL, dst, PROTO_ICMPV6)
        };
        assert_eq!(trace("eweb", &echo(ROUTER_LL)).verdict, Verdict::Answered);
        assert_eq!(trace("eweb", &echo("ff02::1")).verdict, Verdict::Answered);
        let unknown = Verdict::Drop(DropReason::UnknownDestination);
        let router_ll = |_: &str| ROUTER_LL.parse().ok();
        let config = config();
        let told =
            Evaluator::new(&config, &super::super::Stateless).with_router_link_local(&router_ll);
        let on_port = |p: &IpPacket| {
            told.evaluate_ip(Ingress::Interface("eweb"), p)
                .expect("evaluates")
                .verdict
        };
        assert_eq!(on_port(&echo("fe80::2")), unknown);
        assert_eq!(on_port(&echo(ROUTER_LL)), Verdict::Answered);
        assert_eq!(on_port(&packet(HOST_LL, ROUTER_LL, 17)), unknown);
        // From `::`, anything but solicitations and listener reports is spoofed.
        let echo = IpPacket {
            icmp_type: 128,
            ..packet("::", ROUTER_LL, PROTO_ICMPV6)
        };
        let t = trace("eweb", &echo);
        assert_eq!((t.verdict, t.hops), (SPOOFED, vec![source(false)]));
    }

    #[test]
    fn mixed_families_are_an_error() {
        let config = config();
        let evaluator = Evaluator::new(&config, &super::super::Stateless);
        for (src, dst) in [("10.0.0.10", INTERNET), (WEB, "192.0.2.1")] {
            let err = evaluator
                .evaluate_ip(Ingress::Interface("eweb"), &tcp(src, dst))
                .expect_err("mixed");
            assert_eq!(
                err,
                EvalError::MixedFamilies {
                    src: ip(src),
                    dst: ip(dst)
                }
            );
            assert!(
                err.to_string().contains("different address families"),
                "{err}"
            );
        }
    }

    #[test]
    fn ipv6_outside_the_vpc_is_the_routers_own() {
        // A gateway's link: even to an instance of the VPC.
        let t = trace("vpn0", &tcp(INTERNET, WEB));
        assert_eq!(t.verdict, Verdict::ToHost);
        assert_eq!(t.hops, [step(Ipv6Step::Outside)]);
        // The uplink: to no VPC's block, or link-scope.
        for dst in ["2001:db8:ff::2", "fe80::1", "ff02::1"] {
            let t = trace("up", &tcp(INTERNET, dst));
            assert_eq!(t.verdict, Verdict::ToHost, "{dst}");
            assert_eq!(t.hops, [step(Ipv6Step::Outside)], "{dst}");
        }
    }

    #[test]
    fn a_shared_segment_takes_link_scope_traffic_only() {
        let t = trace("seg", &packet(HOST_LL, "ff02::2", PROTO_ICMPV6));
        assert_eq!(t.verdict, Verdict::ToHost);
        assert_eq!(t.hops, [step(Ipv6Step::LinkScope)]);
        // No source check there: any source, anything global is not forwarded.
        for src in ["2001:db8:1200:1::10", APP] {
            let t = trace("seg", &tcp(src, INTERNET));
            assert_eq!(t.verdict, NOT_IPV4, "{src}");
            assert_eq!(t.hops, [step(Ipv6Step::NotForwarded)], "{src}");
        }
        // Hosts there are not routers to the router either.
        for ty in [134, 137] {
            let p = IpPacket {
                icmp_type: ty,
                hop_limit: ND_HOP_LIMIT,
                ..packet(HOST_LL, "ff02::1", PROTO_ICMPV6)
            };
            assert_eq!(trace("seg", &p).verdict, SPOOFED, "type {ty}");
        }
    }

    /// The neighbour discovery hop of `t`.
    fn nd_hop(t: &Trace) -> Option<(NdMessage, NdOutcome)> {
        t.hops.iter().find_map(|h| match h {
            Hop::NeighbourDiscovery { message, outcome } => Some((*message, *outcome)),
            _ => None,
        })
    }

    #[test]
    fn neighbour_discovery_is_answered_or_checked() {
        use vpc_common::ndp::{
            NEIGHBOR_ADVERTISEMENT as NA, NEIGHBOR_SOLICITATION as NS, REDIRECT as RD,
            ROUTER_ADVERTISEMENT as RA, ROUTER_SOLICITATION as RS,
        };
        let config = config();
        let router_ll = |name: &str| (name == "eweb").then(|| ROUTER_LL.parse().expect("ll"));
        let told =
            Evaluator::new(&config, &super::super::Stateless).with_router_link_local(&router_ll);
        let untold = Evaluator::new(&config, &super::super::Stateless);
        let answered = Verdict::Answered;
        let kernel = Verdict::ToHost;
        let to_app = Verdict::Deliver {
            interface: "eapp".into(),
            src: ip(WEB),
            dst: ip(APP),
        };
        // (packet, verdict with the router's link-local address known, and unknown)
        let cases = [
            // Another address of the /64: the port's MAC.
            (
                nd(HOST_LL, "ff02::1:ff00:11", NS, Some(APP)),
                &answered,
                &answered,
            ),
            (
                nd(WEB, "ff02::1:ff00:99", NS, Some("2001:db8:1200::99")),
                &answered,
                &answered,
            ),
            // The router's link-local address; unknown, any link-local target is taken as it.
            (
                nd(HOST_LL, ROUTER_LL, NS, Some(ROUTER_LL)),
                &answered,
                &answered,
            ),
            (
                nd(HOST_LL, "ff02::1:ff00:2", NS, Some("fe80::2")),
                &kernel,
                &answered,
            ),
            // The instance's own address, duplicate address detection, outside the /64.
            (
                nd(HOST_LL, "ff02::1:ff00:10", NS, Some(WEB)),
                &kernel,
                &kernel,
            ),
            (nd("::", "ff02::1:ff00:11", NS, Some(APP)), &kernel, &kernel),
            (
                nd(HOST_LL, "ff02::1:ff00:1", NS, Some(INTERNET)),
                &kernel,
                &kernel,
            ),
            // Not from the link (hop limit 64), or a code other than 0: not neighbour discovery.
            (
                IpPacket {
                    hop_limit: 64,
                    ..nd(HOST_LL, "ff02::1:ff00:11", NS, Some(APP))
                },
                &MALFORMED,
                &MALFORMED,
            ),
            (
                IpPacket {
                    icmp_code: 1,
                    ..nd(HOST_LL, "ff02::1:ff00:11", NS, Some(APP))
                },
                &MALFORMED,
                &MALFORMED,
            ),
            (
                nd(HOST_LL, "ff02::1:ff00:11", NS, None),
                &MALFORMED,
                &MALFORMED,
            ),
            // A router solicitation: the advertisement.
            (nd(HOST_LL, "ff02::2", RS, None), &answered, &answered),
            (nd("::", "ff02::2", RS, None), &answered, &answered),
            // Advertisements of its own or a link-local address only; no router messages.
            (nd(WEB, ROUTER_LL, NA, Some(WEB)), &kernel, &kernel),
            (nd(HOST_LL, ROUTER_LL, NA, Some(APP)), &SPOOFED, &SPOOFED),
            // Never about the router's own link-local address (known only when told).
            (
                nd(HOST_LL, "ff02::1", NA, Some(ROUTER_LL)),
                &SPOOFED,
                &kernel,
            ),
            (nd(HOST_LL, "ff02::1", RA, None), &SPOOFED, &SPOOFED),
            (nd(HOST_LL, WEB, RD, None), &SPOOFED, &SPOOFED),
            // An advertisement to a global address is checked, then forwarded like any other
            // packet (the default group admits its members); from a link-local source it
            // never leaves the link.
            (nd(WEB, APP, NA, Some(WEB)), &to_app, &to_app),
            (nd(HOST_LL, APP, NA, Some(HOST_LL)), &SPOOFED, &SPOOFED),
        ];
        for (p, known, unknown) in cases {
            let t = told
                .evaluate_ip(Ingress::Interface("eweb"), &p)
                .expect("evaluates");
            assert_eq!(&t.verdict, known, "{p:?}: {:?}", t.hops);
            let t = untold
                .evaluate_ip(Ingress::Interface("eweb"), &p)
                .expect("evaluates");
            assert_eq!(
                &t.verdict, unknown,
                "{p:?} (router link-local unknown): {:?}",
                t.hops
            );
            assert!(nd_hop(&t).is_some(), "{p:?}: {:?}", t.hops);
        }
        let t = told
            .evaluate_ip(
                Ingress::Interface("eweb"),
                &nd(HOST_LL, ROUTER_LL, NS, Some(ROUTER_LL)),
            )
            .expect("evaluates");
        assert_eq!(
            t.hops,
            [
                source(true),
                Hop::NeighbourDiscovery {
                    message: NdMessage::NeighbourSolicitation {
                        target: ROUTER_LL.parse().expect("ll")
                    },
                    outcome: NdOutcome::Answered {
                        router_link_local: Some(ROUTER_LL.parse().expect("ll"))
                    },
                }
            ]
        );
    }

    #[test]
    fn the_ingress_by_subnet_finds_the_port_of_the_ipv6_source() {
        let config = config();
        let evaluator = Evaluator::new(&config, &super::super::Stateless);
        let by_subnet = Ingress::Subnet {
            vpc: "v",
            subnet: "pub",
        };
        let t = evaluator
            .evaluate_ip(by_subnet, &tcp(APP, INTERNET))
            .expect("evaluates");
        let out = Verdict::Deliver {
            interface: "up".into(),
            src: ip(APP),
            dst: ip(INTERNET),
        };
        assert_eq!((t.verdict, t.hops[0].clone()), (out, source(true)));
    }

    /// Two subnets with instance ports, their own network ACLs and groups (IPv6 rules only,
    /// but one IPv4 rule that must not match IPv6); routes to the internet gateway and a
    /// blackhole inside it; a third subnet with no instance, and one instance without a port
    /// of its own.
    const FORWARDING: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1200::/56
    internet_gateway: { name: igw, interface: up }
    subnets:
      - { name: web, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1200::/64, route_table: rt, network_acl: web-acl }
      - { name: app, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1200:1::/64, route_table: rt, network_acl: app-acl, interface: app-seg }
      - { name: empty, cidr: 10.0.2.0/24, ipv6_cidr: 2001:db8:1200:2::/64, route_table: rt }
    route_tables:
      - name: rt
        routes:
          - { destination: '2001:db8:ff::/48', target: igw }
          - { destination: '2001:db8:ff:dead::/64', target: blackhole }
    network_acls:
      - name: web-acl
        inbound: [{ rule: 100, protocol: all, cidr: '::/0', action: allow }]
        outbound:
          - { rule: 90, protocol: tcp, ports: 25, cidr: '::/0', action: deny }
          - { rule: 100, protocol: all, cidr: '::/0', action: allow }
      - name: app-acl
        inbound:
          - { rule: 90, protocol: tcp, ports: 8080, cidr: '2001:db8:1200::/64', action: deny }
          - { rule: 100, protocol: all, cidr: '::/0', action: allow }
        outbound: [{ rule: 100, protocol: all, cidr: '::/0', action: allow }]
    security_groups:
      - name: web
        inbound: []
        outbound: [{ protocol: all, destination: '::/0' }]
      - name: quiet
        inbound: [{ protocol: tcp, ports: 443, source: '::/0' }]
        outbound: [{ protocol: tcp, ports: 443, destination: '::/0' }]
      - name: app
        inbound:
          - { protocol: tcp, ports: 443, source: sg:web }
          - { protocol: tcp, ports: 8080, source: '::/0' }
          - { protocol: tcp, ports: 25, source: '::/0' }
          - { protocol: tcp, ports: 9000, source: 0.0.0.0/0 }
          - { protocol: 58, source: '2001:db8:1200::/64' }
        outbound: [{ protocol: all, destination: '::/0' }]
    instances:
      - { name: web, subnet: web, interface: eweb, private_ip: 10.0.0.10, ipv6_addresses: ['2001:db8:1200::10'], security_groups: [web] }
      - { name: other, subnet: web, interface: eother, private_ip: 10.0.0.11, ipv6_addresses: ['2001:db8:1200::11'], security_groups: [quiet] }
      - { name: app, subnet: app, interface: eapp, private_ip: 10.0.1.10, ipv6_addresses: ['2001:db8:1200:1::10', '2001:db8:1200:1::20'], security_groups: [app] }
      - { name: legacy, subnet: app, private_ip: 10.0.1.11, ipv6_addresses: ['2001:db8:1200:1::11'], security_groups: [app] }
";
    const F_WEB: &str = "2001:db8:1200::10";
    const F_OTHER: &str = "2001:db8:1200::11";
    const F_APP: &str = "2001:db8:1200:1::10";
    /// app's second address.
    const F_APP2: &str = "2001:db8:1200:1::20";
    const F_LEGACY: &str = "2001:db8:1200:1::11";

    /// FORWARDING, with the ICMPv6 rule of group app narrowed to echo requests (type 128).
    fn forwarding() -> ValidatedConfig {
        let mut config = load_str("t.yaml", FORWARDING).expect("valid");
        let app = &mut config.vpcs[0].security_groups[2];
        assert_eq!(app.name, "app");
        let icmpv6 = &mut app.inbound[4].traffic;
        assert_eq!(icmpv6.protocol, Some(PROTO_ICMPV6));
        icmpv6.icmp_type = Some(128);
        config
    }

    fn forward_trace(
        policy: &dyn super::super::StatefulPolicy,
        interface: &str,
        p: &IpPacket,
    ) -> Trace {
        Evaluator::new(&forwarding(), policy)
            .evaluate_ip(Ingress::Interface(interface), p)
            .expect("evaluates")
    }

    fn fwd(interface: &str, p: &IpPacket) -> Trace {
        forward_trace(&super::super::Stateless, interface, p)
    }

    fn tcp_to(src: &str, dst: &str, dport: u16) -> IpPacket {
        IpPacket {
            dport,
            ..tcp(src, dst)
        }
    }

    fn deliver(interface: &str, src: &str, dst: &str) -> Verdict {
        Verdict::Deliver {
            interface: interface.into(),
            src: ip(src),
            dst: ip(dst),
        }
    }

    fn acl_hop(acl: &str, subnet: &str, direction: Direction, rule: u16, allowed: bool) -> Hop {
        Hop::Acl {
            acl: acl.into(),
            subnet: subnet.into(),
            direction,
            rule: Some(rule),
            allowed,
        }
    }

    fn sg_hop(instance: &str, direction: Direction, found: Option<(&str, usize)>) -> Hop {
        Hop::SecurityGroup {
            instance: instance.into(),
            direction,
            group: found.map(|(g, _)| g.into()),
            rule: found.map(|(_, r)| r),
            allowed: found.is_some(),
        }
    }

    fn route_hop(destination: &str, target: RouteHopTarget) -> Hop {
        Hop::Route {
            vpc: "v".into(),
            table: "rt".into(),
            destination: Some(destination.parse().expect("net")),
            target,
        }
    }

    fn local(subnet: Option<&str>) -> RouteHopTarget {
        RouteHopTarget::Local {
            subnet: subnet.map(Into::into),
        }
    }

    fn web_source() -> Hop {
        Hop::SourceCheck {
            subnet: "web".into(),
            passed: true,
        }
    }

    const SG_OUT: Verdict = Verdict::Drop(DropReason::SecurityGroupOutbound);
    const SG_IN: Verdict = Verdict::Drop(DropReason::SecurityGroupInbound);
    const ACL_OUT: Verdict = Verdict::Drop(DropReason::AclOutbound);
    const ACL_IN: Verdict = Verdict::Drop(DropReason::AclInbound);
    const UNKNOWN: Verdict = Verdict::Drop(DropReason::UnknownDestination);

    #[test]
    fn allowed_tcp_is_forwarded_between_subnets_through_every_check_in_datapath_order() {
        for dst in [F_APP, F_APP2] {
            let t = fwd("eweb", &tcp_to(F_WEB, dst, 443));
            assert_eq!(
                t.verdict,
                deliver("eapp", F_WEB, dst),
                "{dst}: {:?}",
                t.hops
            );
            assert_eq!(
                t.hops,
                [
                    web_source(),
                    sg_hop("web", Direction::Outbound, Some(("web", 0))),
                    acl_hop("web-acl", "web", Direction::Outbound, 100, true),
                    route_hop("2001:db8:1200:1::/64", local(Some("app"))),
                    Hop::DestinationCheck {
                        subnet: "app".into(),
                        passed: true
                    },
                    acl_hop("app-acl", "app", Direction::Inbound, 100, true),
                    // sg:web: web is a member, by its IPv6 address.
                    sg_hop("app", Direction::Inbound, Some(("app", 0))),
                ],
                "{dst}"
            );
        }
        // Within a subnet: no network ACL.
        let t = fwd("eweb", &tcp_to(F_WEB, F_OTHER, 443));
        assert_eq!(t.verdict, deliver("eother", F_WEB, F_OTHER), "{:?}", t.hops);
        assert!(
            t.hops.contains(&Hop::SameSubnet {
                subnet: "web".into()
            }),
            "{:?}",
            t.hops
        );
        let acls = t
            .hops
            .iter()
            .filter(|h| matches!(h, Hop::Acl { .. }))
            .count();
        assert_eq!(
            acls, 1,
            "only the outbound ACL of the source subnet: {:?}",
            t.hops
        );
        // Back from app to web: web's group admits nothing.
        assert_eq!(fwd("eapp", &tcp_to(F_APP2, F_WEB, 443)).verdict, SG_IN);
    }

    #[test]
    fn security_groups_deny_with_the_ipv6_rules_and_members_only() {
        // other (group quiet) sends 443 only; app admits 443 from members of web only.
        let t = fwd("eother", &tcp_to(F_OTHER, F_APP, 80));
        assert_eq!(t.verdict, SG_OUT);
        assert_eq!(
            t.hops.last(),
            Some(&sg_hop("other", Direction::Outbound, None))
        );
        let t = fwd("eother", &tcp_to(F_OTHER, F_APP, 443));
        assert_eq!(t.verdict, SG_IN);
        assert_eq!(
            t.hops.last(),
            Some(&sg_hop("app", Direction::Inbound, None))
        );
        // No rule for the port; an IPv4 rule (9000 from 0.0.0.0/0) does not match IPv6.
        assert_eq!(fwd("eweb", &tcp_to(F_WEB, F_APP, 22)).verdict, SG_IN);
        assert_eq!(fwd("eweb", &tcp_to(F_WEB, F_APP, 9000)).verdict, SG_IN);
    }

    #[test]
    fn network_acls_deny_outbound_and_inbound_with_their_ipv6_rules() {
        // web-acl denies SMTP out (rule 90), before the allow of rule 100.
        let t = fwd("eweb", &tcp_to(F_WEB, F_APP, 25));
        assert_eq!(t.verdict, ACL_OUT);
        assert_eq!(
            t.hops.last(),
            Some(&acl_hop("web-acl", "web", Direction::Outbound, 90, false))
        );
        // app-acl denies 8080 from the web subnet (rule 90); app's group would admit it.
        let t = fwd("eweb", &tcp_to(F_WEB, F_APP, 8080));
        assert_eq!(t.verdict, ACL_IN);
        assert_eq!(
            t.hops.last(),
            Some(&acl_hop("app-acl", "app", Direction::Inbound, 90, false))
        );
        // Within the web subnet no ACL applies inbound: other's group decides (443 only).
        assert_eq!(fwd("eweb", &tcp_to(F_WEB, F_OTHER, 8080)).verdict, SG_IN);
    }

    #[test]
    fn a_source_not_the_instances_own_is_spoofed_before_any_rule() {
        // Another instance's address, app's on web's port, a link-local and `::` source.
        for src in [F_OTHER, F_APP, HOST_LL, "::"] {
            let t = fwd("eweb", &tcp_to(src, F_APP, 443));
            assert_eq!(t.verdict, SPOOFED, "{src}");
            assert_eq!(
                t.hops,
                [Hop::SourceCheck {
                    subnet: "web".into(),
                    passed: false
                }],
                "{src}"
            );
        }
    }

    #[test]
    fn routes_by_longest_prefix_to_the_internet_gateway_or_a_blackhole() {
        // Nothing routes 2001:db8:aaaa::/48.
        let t = fwd("eweb", &tcp_to(F_WEB, "2001:db8:aaaa::1", 443));
        assert_eq!(t.verdict, Verdict::Drop(DropReason::NoRoute));
        assert_eq!(
            t.hops.last(),
            Some(&Hop::Route {
                vpc: "v".into(),
                table: "rt".into(),
                destination: None,
                target: RouteHopTarget::NoRoute,
            })
        );
        // The internet gateway's /48: checked, routed, out of its uplink.
        let t = fwd("eweb", &tcp_to(F_WEB, "2001:db8:ff::1", 443));
        assert_eq!(t.verdict, deliver("up", F_WEB, "2001:db8:ff::1"));
        assert_eq!(
            t.hops.last(),
            Some(&route_hop(
                "2001:db8:ff::/48",
                RouteHopTarget::InternetGateway("igw".into())
            ))
        );
        // The blackhole /64 inside it wins.
        let t = fwd("eweb", &tcp_to(F_WEB, "2001:db8:ff:dead::1", 443));
        assert_eq!(t.verdict, Verdict::Drop(DropReason::Blackhole));
        assert_eq!(
            t.hops.last(),
            Some(&route_hop(
                "2001:db8:ff:dead::/64",
                RouteHopTarget::Blackhole
            ))
        );
    }

    #[test]
    fn local_delivery_needs_an_instance_with_its_own_port() {
        // Inside the /56, in no subnet: the VPC's local route, no subnet.
        let t = fwd("eweb", &tcp_to(F_WEB, "2001:db8:1200:ff::1", 443));
        assert_eq!(t.verdict, UNKNOWN);
        assert_eq!(
            t.hops.last(),
            Some(&route_hop("2001:db8:1200::/56", local(None)))
        );
        // A subnet's /64, no instance there.
        let t = fwd("eweb", &tcp_to(F_WEB, "2001:db8:1200:2::5", 443));
        assert_eq!(t.verdict, UNKNOWN);
        assert_eq!(
            t.hops.last(),
            Some(&Hop::DestinationCheck {
                subnet: "empty".into(),
                passed: false
            })
        );
        // legacy sits on app's shared segment: IPv6 is not forwarded there.
        let t = fwd("eweb", &tcp_to(F_WEB, F_LEGACY, 443));
        assert_eq!(t.verdict, UNKNOWN, "{:?}", t.hops);
    }

    #[test]
    fn hop_limit_one_expires_once_the_packet_would_be_forwarded() {
        let with = |hop_limit, dport| IpPacket {
            hop_limit,
            ..tcp_to(F_WEB, F_APP, dport)
        };
        for hop_limit in [0, 1] {
            let t = fwd("eweb", &with(hop_limit, 443));
            assert_eq!(
                t.verdict,
                Verdict::Drop(DropReason::TtlExceeded),
                "hop limit {hop_limit}"
            );
            assert_eq!(t.hops.last(), Some(&step(Ipv6Step::HopLimitExceeded)));
            // The checks come first: a denied packet is denied.
            assert_eq!(fwd("eweb", &with(hop_limit, 22)).verdict, SG_IN);
        }
        assert_eq!(
            fwd("eweb", &with(2, 443)).verdict,
            deliver("eapp", F_WEB, F_APP)
        );
    }

    fn icmpv6(src: &str, dst: &str, icmp_type: u8) -> IpPacket {
        IpPacket {
            icmp_type,
            sport: 7,
            dport: 7,
            ..packet(src, dst, PROTO_ICMPV6)
        }
    }

    #[test]
    fn icmpv6_rules_match_type_and_errors_are_not_forwarded() {
        // app admits ICMPv6 echo requests (type 128) from the web subnet.
        let t = fwd("eweb", &icmpv6(F_WEB, F_APP, 128));
        assert_eq!(t.verdict, deliver("eapp", F_WEB, F_APP), "{:?}", t.hops);
        assert_eq!(
            t.hops.last(),
            Some(&sg_hop("app", Direction::Inbound, Some(("app", 4))))
        );
        // An echo reply is another type: no rule (not a tracked connection here).
        assert_eq!(fwd("eweb", &icmpv6(F_WEB, F_APP, 129)).verdict, SG_IN);
        // Errors (destination unreachable, packet too big, time exceeded) are not forwarded
        // yet, whatever the rules.
        for ty in [1, 2, 3] {
            let t = fwd("eweb", &icmpv6(F_WEB, F_APP, ty));
            assert_eq!(t.verdict, NOT_IPV4, "type {ty}");
            assert_eq!(
                t.hops,
                [web_source(), step(Ipv6Step::IcmpError)],
                "type {ty}"
            );
        }
    }

    #[test]
    fn multicast_beyond_the_link_is_not_forwarded() {
        let t = fwd("eweb", &packet(F_WEB, "ff05::2", 17));
        assert_eq!(t.verdict, NOT_IPV4);
        assert_eq!(t.hops, [web_source(), step(Ipv6Step::NotForwarded)]);
    }

    /// Every packet belongs to a tracked connection.
    struct Tracked;

    impl super::super::StatefulPolicy for Tracked {
        fn tracked(&self, _packet: &IpPacket) -> bool {
            true
        }
    }

    #[test]
    fn tracked_ipv6_connections_skip_security_groups_not_acls() {
        // app -> web: web's group admits nothing new; a reply of a tracked connection passes.
        let t = forward_trace(&Tracked, "eapp", &tcp_to(F_APP, F_WEB, 443));
        assert_eq!(t.verdict, deliver("eweb", F_APP, F_WEB), "{:?}", t.hops);
        let skipped: Vec<&Hop> = t
            .hops
            .iter()
            .filter(|h| matches!(h, Hop::TrackedConnection { .. } | Hop::SecurityGroup { .. }))
            .collect();
        assert_eq!(
            skipped,
            [
                &Hop::TrackedConnection {
                    instance: "app".into(),
                    direction: Direction::Outbound
                },
                &Hop::TrackedConnection {
                    instance: "web".into(),
                    direction: Direction::Inbound
                },
            ]
        );
        // The network ACLs still apply.
        let t = forward_trace(&Tracked, "eweb", &tcp_to(F_WEB, F_APP, 8080));
        assert_eq!(t.verdict, ACL_IN);
    }

    /// VPC `v`: an internet gateway and an egress-only gateway on one uplink `up0`; subnet
    /// `pub` routes `::/0` to the internet gateway, `priv` to the egress-only gateway (and a
    /// /48 to a NAT instance). VPC `w`: its internet gateway on `up1`, its egress-only
    /// gateway on an interface of its own, `eg1`, a route to one /48 only.
    const GATEWAYS: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1200::/56
    internet_gateway: { name: igw, interface: up0 }
    egress_only_internet_gateway: { name: eigw, interface: up0 }
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1200::/64, route_table: pub, network_acl: pub-acl }
      - { name: priv, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1200:1::/64, route_table: priv }
    route_tables:
      - { name: pub, routes: [{ destination: '::/0', target: igw }] }
      - name: priv
        routes:
          - { destination: '::/0', target: eigw }
          - { destination: '2001:db8:ee::/48', target: nat }
    network_acls:
      - name: pub-acl
        inbound:
          - { rule: 90, protocol: tcp, ports: 8080, cidr: '2001:db8:bad::/48', action: deny }
          - { rule: 100, protocol: all, cidr: '::/0', action: allow }
        outbound: [{ rule: 100, protocol: all, cidr: '::/0', action: allow }]
    security_groups:
      - name: web
        inbound:
          - { protocol: tcp, ports: 443, source: '::/0' }
          - { protocol: tcp, ports: 8080, source: '::/0' }
        outbound: [{ protocol: all, destination: '::/0' }]
      - name: app
        inbound: [{ protocol: tcp, ports: 443, source: '::/0' }]
        outbound: [{ protocol: all, destination: '::/0' }]
    instances:
      - { name: web, subnet: pub, interface: eweb, private_ip: 10.0.0.10, ipv6_addresses: ['2001:db8:1200::10'], security_groups: [web] }
      - { name: app, subnet: priv, interface: eapp, private_ip: 10.0.1.10, ipv6_addresses: ['2001:db8:1200:1::10'], security_groups: [app] }
      - { name: nat, subnet: priv, interface: enat, private_ip: 10.0.1.20, ipv6_addresses: ['2001:db8:1200:1::20'], source_dest_check: false }
  - name: w
    cidr_blocks: [10.1.0.0/16]
    ipv6_cidr_block: 2001:db8:3400::/56
    internet_gateway: { name: igw-w, interface: up1 }
    egress_only_internet_gateway: { name: eigw-w, interface: eg1 }
    subnets:
      - { name: s, cidr: 10.1.0.0/24, ipv6_cidr: 2001:db8:3400::/64, route_table: rt }
    route_tables:
      - { name: rt, routes: [{ destination: '2001:db8:ff::/48', target: igw-w }, { destination: '2001:db8:ef::/48', target: eigw-w }] }
    security_groups:
      - { name: open, inbound: [{ protocol: all, source: '::/0' }], outbound: [{ protocol: all, destination: '::/0' }] }
    instances:
      - { name: x, subnet: s, interface: ex, private_ip: 10.1.0.10, ipv6_addresses: ['2001:db8:3400::10'], security_groups: [open] }
";
    const G_WEB: &str = "2001:db8:1200::10";
    const G_APP: &str = "2001:db8:1200:1::10";
    const G_X: &str = "2001:db8:3400::10";
    /// A host on the internet.
    const HOST: &str = "2001:db8:ff::7";

    fn gw_trace(policy: &dyn super::super::StatefulPolicy, interface: &str, p: &IpPacket) -> Trace {
        let config = load_str("t.yaml", GATEWAYS).expect("valid");
        Evaluator::new(&config, policy)
            .evaluate_ip(Ingress::Interface(interface), p)
            .expect("evaluates")
    }

    fn gw(interface: &str, p: &IpPacket) -> Trace {
        gw_trace(&super::super::Stateless, interface, p)
    }

    fn gw_route(vpc: &str, table: &str, destination: &str, target: RouteHopTarget) -> Hop {
        Hop::Route {
            vpc: vpc.into(),
            table: table.into(),
            destination: Some(destination.parse().expect("net")),
            target,
        }
    }

    fn uplink_source(passed: bool) -> Hop {
        Hop::UplinkSourceCheck { passed }
    }

    fn destination(subnet: &str, passed: bool) -> Hop {
        Hop::DestinationCheck {
            subnet: subnet.into(),
            passed,
        }
    }

    const UNSOLICITED: Verdict = Verdict::Drop(DropReason::UplinkUnsolicited);
    const EXPIRED: Verdict = Verdict::Drop(DropReason::TtlExceeded);

    #[test]
    fn out_through_the_internet_gateway_and_the_egress_only_gateway_untranslated() {
        let igw = || RouteHopTarget::InternetGateway("igw".into());
        let t = gw("eweb", &tcp_to(G_WEB, HOST, 443));
        assert_eq!(t.verdict, deliver("up0", G_WEB, HOST), "{:?}", t.hops);
        assert_eq!(
            t.hops,
            [
                Hop::SourceCheck {
                    subnet: "pub".into(),
                    passed: true
                },
                sg_hop("web", Direction::Outbound, Some(("web", 0))),
                acl_hop("pub-acl", "pub", Direction::Outbound, 100, true),
                gw_route("v", "pub", "::/0", igw()),
            ]
        );
        let eigw = RouteHopTarget::EgressOnlyGateway("eigw".into());
        let t = gw("eapp", &tcp_to(G_APP, HOST, 443));
        assert_eq!(t.verdict, deliver("up0", G_APP, HOST), "{:?}", t.hops);
        assert_eq!(t.hops.last(), Some(&gw_route("v", "priv", "::/0", eigw)));
        // An egress-only gateway on an interface of its own: out of that one.
        let t = gw("ex", &tcp_to(G_X, "2001:db8:ef::1", 443));
        assert_eq!(
            t.verdict,
            deliver("eg1", G_X, "2001:db8:ef::1"),
            "{:?}",
            t.hops
        );
        // The checks first: the group, then the hop limit once it would be forwarded.
        let out = |hop_limit, dport| IpPacket {
            hop_limit,
            ..tcp_to(G_WEB, HOST, dport)
        };
        for hop_limit in [0, 1] {
            let t = gw("eweb", &out(hop_limit, 443));
            assert_eq!(t.verdict, EXPIRED, "hop limit {hop_limit}");
            assert_eq!(t.hops.last(), Some(&step(Ipv6Step::HopLimitExceeded)));
        }
        assert_eq!(
            gw("eweb", &out(2, 443)).verdict,
            deliver("up0", G_WEB, HOST)
        );
        // A NAT instance still does not carry IPv6.
        let t = gw("eapp", &tcp_to(G_APP, "2001:db8:ee::1", 443));
        assert_eq!(t.verdict, NOT_IPV4);
        assert_eq!(
            t.hops[t.hops.len() - 2..],
            [
                gw_route(
                    "v",
                    "priv",
                    "2001:db8:ee::/48",
                    RouteHopTarget::Instance("nat".into())
                ),
                step(Ipv6Step::NotForwarded)
            ]
        );
    }

    #[test]
    fn a_new_connection_from_the_internet_comes_in_by_the_internet_gateway_route() {
        let t = gw("up0", &tcp_to(HOST, G_WEB, 443));
        assert_eq!(t.verdict, deliver("eweb", HOST, G_WEB), "{:?}", t.hops);
        assert_eq!(
            t.hops,
            [
                uplink_source(true),
                destination("pub", true),
                gw_route(
                    "v",
                    "pub",
                    "::/0",
                    RouteHopTarget::InternetGateway("igw".into())
                ),
                acl_hop("pub-acl", "pub", Direction::Inbound, 100, true),
                sg_hop("web", Direction::Inbound, Some(("web", 0))),
            ]
        );
        // The private subnet routes the internet to the egress-only gateway: replies only,
        // whatever app's group admits.
        let t = gw("up0", &tcp_to(HOST, G_APP, 443));
        assert_eq!(t.verdict, UNSOLICITED, "{:?}", t.hops);
        assert_eq!(
            t.hops,
            [
                uplink_source(true),
                destination("priv", true),
                gw_route(
                    "v",
                    "priv",
                    "::/0",
                    RouteHopTarget::EgressOnlyGateway("eigw".into())
                ),
                step(Ipv6Step::Unsolicited),
            ]
        );
        // Another target (the NAT instance's /48), or no route at all.
        let t = gw("up0", &tcp_to("2001:db8:ee::1", G_APP, 443));
        assert_eq!(t.verdict, UNSOLICITED);
        assert!(
            t.hops.contains(&gw_route(
                "v",
                "priv",
                "2001:db8:ee::/48",
                RouteHopTarget::Instance("nat".into())
            )),
            "{:?}",
            t.hops
        );
        let t = gw("up1", &tcp_to("2001:db8:aa::1", G_X, 443));
        assert_eq!(t.verdict, UNSOLICITED);
        assert!(
            t.hops.contains(&Hop::Route {
                vpc: "w".into(),
                table: "rt".into(),
                destination: None,
                target: RouteHopTarget::NoRoute,
            }),
            "{:?}",
            t.hops
        );
        // w routes HOST to its internet gateway on up1: by up1, not by its egress-only
        // gateway's own interface.
        assert_eq!(
            gw("up1", &tcp_to(HOST, G_X, 443)).verdict,
            deliver("ex", HOST, G_X)
        );
        assert_eq!(gw("eg1", &tcp_to(HOST, G_X, 443)).verdict, UNSOLICITED);
        // Into a VPC by another VPC's uplink.
        for (uplink, dst) in [("up1", G_WEB), ("up0", G_X), ("eg1", G_WEB)] {
            let t = gw(uplink, &tcp_to(HOST, dst, 443));
            assert_eq!(t.verdict, UNSOLICITED, "{uplink} -> {dst}");
            assert_eq!(t.hops, [step(Ipv6Step::OtherUplink)], "{uplink} -> {dst}");
        }
    }

    #[test]
    fn replies_of_tracked_connections_come_in_by_either_gateway() {
        let t = gw_trace(&Tracked, "up0", &tcp_to(HOST, G_APP, 40000));
        assert_eq!(t.verdict, deliver("eapp", HOST, G_APP), "{:?}", t.hops);
        assert_eq!(
            t.hops,
            [
                uplink_source(true),
                destination("priv", true),
                Hop::Acl {
                    acl: "default".into(),
                    subnet: "priv".into(),
                    direction: Direction::Inbound,
                    rule: Some(101),
                    allowed: true,
                },
                Hop::TrackedConnection {
                    instance: "app".into(),
                    direction: Direction::Inbound
                },
            ]
        );
        let t = gw_trace(&Tracked, "eg1", &tcp_to("2001:db8:ef::1", G_X, 40000));
        assert_eq!(
            t.verdict,
            deliver("ex", "2001:db8:ef::1", G_X),
            "{:?}",
            t.hops
        );
        // The network ACL still applies.
        let t = gw_trace(&Tracked, "up0", &tcp_to("2001:db8:bad::1", G_WEB, 8080));
        assert_eq!(t.verdict, ACL_IN);
    }

    #[test]
    fn inbound_acls_groups_and_the_hop_limit_apply_after_the_route() {
        // pub-acl denies 8080 from 2001:db8:bad::/48 (rule 90); web's group would admit it.
        let t = gw("up0", &tcp_to("2001:db8:bad::1", G_WEB, 8080));
        assert_eq!(t.verdict, ACL_IN);
        assert_eq!(
            t.hops.last(),
            Some(&acl_hop("pub-acl", "pub", Direction::Inbound, 90, false))
        );
        assert_eq!(
            gw("up0", &tcp_to(HOST, G_WEB, 8080)).verdict,
            deliver("eweb", HOST, G_WEB)
        );
        // web's group admits 443 and 8080 only.
        let t = gw("up0", &tcp_to(HOST, G_WEB, 22));
        assert_eq!(t.verdict, SG_IN);
        assert_eq!(
            t.hops.last(),
            Some(&sg_hop("web", Direction::Inbound, None))
        );
        let with = |hop_limit, dport| IpPacket {
            hop_limit,
            ..tcp_to(HOST, G_WEB, dport)
        };
        for hop_limit in [0, 1] {
            let t = gw("up0", &with(hop_limit, 443));
            assert_eq!(t.verdict, EXPIRED, "hop limit {hop_limit}");
            assert_eq!(t.hops.last(), Some(&step(Ipv6Step::HopLimitExceeded)));
            assert_eq!(gw("up0", &with(hop_limit, 22)).verdict, SG_IN);
        }
    }

    #[test]
    fn the_uplink_refuses_sources_no_internet_host_has_and_unknown_destinations() {
        // Inside a VPC's block (this one's, another's), link-local, multicast, `::`.
        for src in [
            "2001:db8:1200::99",
            "2001:db8:1200:1::10",
            "2001:db8:3400::5",
            HOST_LL,
            "ff0e::1",
            "::",
        ] {
            let t = gw("up0", &tcp_to(src, G_WEB, 443));
            assert_eq!(t.verdict, Verdict::Drop(DropReason::UplinkSpoofed), "{src}");
            assert_eq!(t.hops, [uplink_source(false)], "{src}");
        }
        // An address of the subnet no instance has; one of the /56 in no subnet.
        let t = gw("up0", &tcp_to(HOST, "2001:db8:1200::99", 443));
        assert_eq!(t.verdict, UNKNOWN);
        assert_eq!(t.hops, [uplink_source(true), destination("pub", false)]);
        let t = gw("up0", &tcp_to(HOST, "2001:db8:1200:ff::1", 443));
        assert_eq!(t.verdict, UNKNOWN);
        assert_eq!(t.hops, [uplink_source(true)]);
        // To no VPC's block, or link-scope: the router's own.
        for dst in ["2001:db8:ff::1", "fe80::1", "ff02::1"] {
            let t = gw("up0", &tcp_to(HOST, dst, 443));
            assert_eq!(t.verdict, Verdict::ToHost, "{dst}");
            assert_eq!(t.hops, [step(Ipv6Step::Outside)], "{dst}");
        }
    }

    #[test]
    fn icmpv6_errors_from_the_internet_are_not_forwarded_yet() {
        for ty in [1, 2, 3, 4] {
            let t = gw("up0", &icmpv6(HOST, G_WEB, ty));
            assert_eq!(t.verdict, NOT_IPV4, "type {ty}");
            assert_eq!(
                t.hops,
                [uplink_source(true), step(Ipv6Step::IcmpError)],
                "type {ty}"
            );
        }
        // Informational messages go through the rules: web's group admits no ICMPv6.
        assert_eq!(gw("up0", &icmpv6(HOST, G_WEB, 128)).verdict, SG_IN);
    }
}
