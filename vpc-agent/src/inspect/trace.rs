//! `vpc-agent trace`: what the datapath would do with a packet, explained hop by hop with the
//! reference evaluator (stateless: security groups and NAT replies are not modelled yet).
//! IPv6 packets are judged as the datapath handles IPv6: forwarded between instance ports of
//! a VPC and through its internet and egress-only gateways by the same checks as IPv4,
//! link-scope traffic to the router, the rest dropped.

use std::{fmt::Write as _, net::IpAddr};

use crate::{
    config::{ValidatedConfig, validated::InstanceDef},
    evaluator::{
        self, Direction, EvalError, Hop, Ingress, IpPacket, Ipv6Step, NdMessage, NdOutcome,
        RouteHopTarget, Verdict,
    },
};

/// Where a packet from `src` enters when `--ingress` is not given: the port of the instance
/// with that address (IPv6: one of its `ipv6_addresses`), else the shared segment of the
/// subnet holding it (IPv6: its `ipv6_cidr`), else the link of the gateway whose networks hold
/// it (a host behind a VPN; IPv4 only), else (a packet from the internet) the first internet
/// gateway's uplink.
pub fn default_ingress(config: &ValidatedConfig, src: IpAddr) -> Option<String> {
    let has = |i: &InstanceDef| match src {
        IpAddr::V4(a) => i.private_ip == a,
        IpAddr::V6(a) => i.ipv6_addresses.contains(&a),
    };
    let port = config.vpcs.iter().enumerate().find_map(|(v, vpc)| {
        let i = vpc.instances.iter().position(has)?;
        config.instance_interface(v, i).map(str::to_owned)
    });
    let subnet = || {
        config
            .vpcs
            .iter()
            .flat_map(|v| &v.subnets)
            .find(|s| match src {
                IpAddr::V4(a) => s.cidr.contains(&a),
                IpAddr::V6(a) => s.ipv6_cidr.is_some_and(|n| n.contains(&a)),
            })
            .and_then(|s| s.interface.clone())
    };
    let gateway = || {
        let IpAddr::V4(src) = src else {
            return None;
        };
        config
            .vpcs
            .iter()
            .flat_map(|v| &v.gateways)
            .find(|g| g.networks.iter().any(|n| n.contains(&src)))
            .map(|g| g.interface.clone())
    };
    port.or_else(subnet).or_else(gateway).or_else(|| {
        config
            .vpcs
            .iter()
            .find_map(|v| v.internet_gateway.as_ref().map(|i| i.interface.clone()))
    })
}

/// Evaluates the packet (either family) arriving on `ingress` and renders the hops and the
/// verdict.
pub fn explain(
    evaluator: &evaluator::Evaluator<'_>,
    ingress: &str,
    packet: &IpPacket,
) -> Result<String, EvalError> {
    let trace = evaluator.evaluate_ip(Ingress::Interface(ingress), packet)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "packet {} -> {} proto {} sport {} dport {} entering on {ingress}",
        packet.src, packet.dst, packet.proto, packet.sport, packet.dport
    );
    for (i, hop) in trace.hops.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, describe(hop));
    }
    let verdict = match &trace.verdict {
        Verdict::Deliver {
            interface,
            src,
            dst,
        } => format!("DELIVER out of {interface} as {src} -> {dst}"),
        Verdict::Drop(reason) => format!("DROP ({})", reason.name()),
        Verdict::ToHost => "TO ROUTER (the kernel's own address)".to_owned(),
        Verdict::Answered => format!("ANSWERED by the router, back out of {ingress}"),
    };
    let _ = writeln!(out, "verdict: {verdict}");
    Ok(out)
}

fn pass(ok: bool) -> &'static str {
    if ok { "pass" } else { "FAIL" }
}

pub fn describe(hop: &Hop) -> String {
    match hop {
        Hop::SourceCheck { subnet, passed } => {
            format!("source check in subnet {subnet}: {}", pass(*passed))
        }
        Hop::UplinkSourceCheck { passed } => format!(
            "anti-spoofing on the uplink (no VPC, router or martian source): {}",
            pass(*passed)
        ),
        Hop::GatewaySourceCheck { gateway, passed } => format!(
            "source behind gateway {gateway} (its networks only): {}",
            pass(*passed)
        ),
        Hop::Acl {
            acl,
            subnet,
            direction,
            rule,
            allowed,
        } => format!(
            "network ACL {acl} of subnet {subnet}, {}: {} by {}",
            direction_name(*direction),
            if *allowed { "allowed" } else { "denied" },
            rule.map_or("the implicit final deny".to_owned(), |r| format!(
                "rule {r}"
            ))
        ),
        Hop::Route {
            vpc,
            table,
            destination,
            target,
        } => format!(
            "route table {table} of VPC {vpc}: {} -> {}",
            destination.map_or("no match".to_owned(), |d| d.to_string()),
            match target {
                RouteHopTarget::Local { subnet } => format!(
                    "local ({})",
                    subnet.as_deref().unwrap_or("no subnet holds the address")
                ),
                RouteHopTarget::InternetGateway(name) => format!("internet gateway {name}"),
                RouteHopTarget::EgressOnlyGateway(name) => {
                    format!("egress-only internet gateway {name}")
                }
                RouteHopTarget::NatGateway(name) => format!("NAT gateway {name}"),
                RouteHopTarget::Gateway(name) => format!("gateway {name} (untranslated)"),
                RouteHopTarget::Instance(name) => {
                    format!("NAT instance {name} (delivered unchanged)")
                }
                RouteHopTarget::Peering {
                    connection,
                    peer_vpc,
                    accepted: true,
                } => format!("peering {connection} to VPC {peer_vpc}"),
                RouteHopTarget::Peering {
                    connection,
                    peer_vpc,
                    accepted: false,
                } => format!(
                    "peering {connection} to VPC {peer_vpc}, not accepted \
                     (VPC {peer_vpc} does not declare it): blackhole"
                ),
                RouteHopTarget::Blackhole => "blackhole".to_owned(),
                RouteHopTarget::NoRoute => "no route".to_owned(),
            }
        ),
        Hop::SameSubnet { subnet } => {
            format!("same subnet {subnet}: no network ACL applies")
        }
        Hop::SourceNat { by, from, to } => format!("source translated by {by}: {from} -> {to}"),
        Hop::DestinationNat { from, to } => format!("destination translated: {from} -> {to}"),
        Hop::DestinationCheck { subnet, passed } => {
            format!(
                "destination registered in subnet {subnet}: {}",
                pass(*passed)
            )
        }
        Hop::SecurityGroup {
            instance,
            direction,
            group,
            rule,
            allowed,
        } => format!(
            "security groups of {instance}, {}: {}",
            direction_name(*direction),
            match (allowed, group, rule) {
                (true, Some(g), Some(r)) => format!("allowed by group {g} rule {r}"),
                (true, _, _) => "allowed".to_owned(),
                (false, _, _) => "no rule allows it (new connection)".to_owned(),
            }
        ),
        Hop::TrackedConnection {
            instance,
            direction,
        } => format!(
            "security groups of {instance}, {}: skipped, the packet belongs to a tracked connection",
            direction_name(*direction)
        ),
        Hop::NeighbourDiscovery { message, outcome } => {
            format!(
                "neighbour discovery: {}: {}",
                nd_message(message),
                nd_outcome(message, outcome)
            )
        }
        Hop::Ipv6 { step } => match step {
            Ipv6Step::Outside => {
                "IPv6 not into a VPC (a gateway's link, or on an uplink to no VPC's \
                 IPv6 block or a link-scope address): the router's own"
                    .to_owned()
            }
            Ipv6Step::OtherUplink => "IPv6 into a VPC by an uplink not of its internet or \
                 egress-only gateway: dropped"
                .to_owned(),
            Ipv6Step::Unsolicited => "a new connection from the internet comes in only by the \
                 internet gateway the destination subnet routes the source to (an egress-only \
                 gateway lets replies in only): dropped"
                .to_owned(),
            Ipv6Step::LinkScope => {
                "IPv6 to a link-scope address (fe80::/10, ff02::/16): the kernel's, never forwarded"
                    .to_owned()
            }
            Ipv6Step::NotForwarded => "IPv6 is not forwarded there yet (only between instance \
                 ports of a VPC and through internet gateways): dropped"
                .to_owned(),
            Ipv6Step::IcmpError => "ICMPv6 errors are not forwarded yet: dropped".to_owned(),
            Ipv6Step::HopLimitExceeded => {
                "hop limit 1: it would expire at the router (no time exceeded sent yet): dropped"
                    .to_owned()
            }
            Ipv6Step::EchoAnswered => "echo request to the router: answered".to_owned(),
            Ipv6Step::NotOffered => {
                "the router's link-local address offers neighbour discovery and echo only: \
                 dropped"
                    .to_owned()
            }
        },
    }
}

fn nd_message(m: &NdMessage) -> String {
    match m {
        NdMessage::RouterSolicitation => "router solicitation".to_owned(),
        NdMessage::RouterAdvertisement => "router advertisement".to_owned(),
        NdMessage::NeighbourSolicitation { target } => {
            format!("neighbour solicitation for {target}")
        }
        NdMessage::NeighbourAdvertisement { target } => {
            format!("neighbour advertisement of {target}")
        }
        NdMessage::Redirect => "redirect".to_owned(),
    }
}

fn nd_outcome(m: &NdMessage, o: &NdOutcome) -> String {
    match (m, o) {
        (NdMessage::RouterSolicitation, NdOutcome::Answered { router_link_local }) => format!(
            "answered with a router advertisement of the subnet's /64 from {}",
            router_link_local.map_or("the router's link-local address".to_owned(), |a| a
                .to_string())
        ),
        (
            NdMessage::NeighbourSolicitation { target },
            NdOutcome::Answered { router_link_local },
        ) => match router_link_local {
            Some(ll) if ll == target => {
                "answered by the router for its link-local address".to_owned()
            }
            Some(_) => {
                "answered with the port's MAC (another address of the subnet's /64)".to_owned()
            }
            None if target.segments()[0] & 0xffc0 == 0xfe80 => {
                "answered by the router (taken as its link-local address: the port's MAC is \
                     not known here)"
                    .to_owned()
            }
            None => "answered with the port's MAC (another address of the subnet's /64)".to_owned(),
        },
        (_, NdOutcome::Answered { .. }) => "answered by the router".to_owned(),
        (_, NdOutcome::NotAnswered) => "not the router's to answer".to_owned(),
        (NdMessage::NeighbourAdvertisement { .. }, NdOutcome::Refused) => {
            "about an address the instance does not have: refused".to_owned()
        }
        (_, NdOutcome::Refused) => "only routers send it: refused".to_owned(),
        (_, NdOutcome::Invalid) => {
            "not valid neighbour discovery (hop limit 255, code 0, long enough): malformed"
                .to_owned()
        }
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::load_str, evaluator::Stateless};

    /// The README's dual-stack example.
    fn dual_stack() -> ValidatedConfig {
        let text = include_str!("../../../examples/ipv6-getting-started.yaml");
        load_str("ipv6-getting-started.yaml", text).expect("valid")
    }

    #[test]
    fn an_ipv6_source_enters_on_its_instances_port_else_the_uplink() {
        let config = dual_stack();
        let ingress = |src: &str| default_ingress(&config, src.parse().expect("address"));
        assert_eq!(
            ingress("2001:db8:1234:1a00::10").as_deref(),
            Some("eni-web1")
        );
        assert_eq!(
            ingress("2001:db8:1234:1a01::10").as_deref(),
            Some("eni-app1")
        );
        // In a subnet without a shared segment, or outside the VPC: the uplink.
        assert_eq!(
            ingress("2001:db8:1234:1a00::99").as_deref(),
            Some("uplink0")
        );
        assert_eq!(ingress("2001:db8::1").as_deref(), Some("uplink0"));
        assert_eq!(ingress("10.0.0.10").as_deref(), Some("eni-web1"));
        // A subnet's shared segment holds its /64.
        let segment = load_str(
            "t.yaml",
            "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1200::/56
    subnets: [{ name: a, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1200::/64, interface: seg0 }]
",
        )
        .expect("valid");
        let src = "2001:db8:1200::7".parse().expect("address");
        assert_eq!(default_ingress(&segment, src).as_deref(), Some("seg0"));
    }

    #[test]
    fn an_ipv6_packet_is_explained_hop_by_hop() {
        let config = dual_stack();
        let evaluator = evaluator::Evaluator::new(&config, &Stateless);
        let packet = IpPacket {
            src: "2001:db8:1234:1a00::10".parse().expect("src"),
            dst: "2001:db8::1".parse().expect("dst"),
            proto: 6,
            sport: 40000,
            dport: 443,
            icmp_type: 0,
            icmp_code: 0,
            hop_limit: 64,
            nd_target: None,
        };
        let text = explain(&evaluator, "eni-web1", &packet).expect("explained");
        assert_eq!(
            text,
            "packet 2001:db8:1234:1a00::10 -> 2001:db8::1 proto 6 sport 40000 dport 443 entering \
             on eni-web1\n  1. source check in subnet public: pass\n  2. security groups of \
             web-1, outbound: allowed by group web rule 1\n  3. network ACL default of subnet \
             public, outbound: allowed by rule 101\n  4. route table public of VPC dual-stack: \
             ::/0 -> internet gateway igw\nverdict: DELIVER out of uplink0 as \
             2001:db8:1234:1a00::10 -> 2001:db8::1\n"
        );
        // From the internet: to web-1 by the internet gateway; to app-1 (private: its table
        // routes the internet to the egress-only gateway) replies only.
        let inbound = |dst: &str| IpPacket {
            src: "2001:db8::1".parse().expect("src"),
            dst: dst.parse().expect("dst"),
            ..packet
        };
        let text =
            explain(&evaluator, "uplink0", &inbound("2001:db8:1234:1a00::10")).expect("explained");
        assert_eq!(
            text,
            "packet 2001:db8::1 -> 2001:db8:1234:1a00::10 proto 6 sport 40000 dport 443 entering \
             on uplink0\n  1. anti-spoofing on the uplink (no VPC, router or martian source): \
             pass\n  2. destination registered in subnet public: pass\n  3. route table public \
             of VPC dual-stack: ::/0 -> internet gateway igw\n  4. network ACL default of subnet \
             public, inbound: allowed by rule 101\n  5. security groups of web-1, inbound: \
             allowed by group web rule 3\nverdict: DELIVER out of eni-web1 as 2001:db8::1 -> \
             2001:db8:1234:1a00::10\n"
        );
        let text =
            explain(&evaluator, "uplink0", &inbound("2001:db8:1234:1a01::10")).expect("explained");
        assert_eq!(
            text,
            "packet 2001:db8::1 -> 2001:db8:1234:1a01::10 proto 6 sport 40000 dport 443 entering \
             on uplink0\n  1. anti-spoofing on the uplink (no VPC, router or martian source): \
             pass\n  2. destination registered in subnet private: pass\n  3. route table \
             private of VPC dual-stack: ::/0 -> egress-only internet gateway eigw\n  4. a new \
             connection from the internet comes in only by the internet gateway the destination \
             subnet routes the source to (an egress-only gateway lets replies in only): \
             dropped\nverdict: DROP (uplink_unsolicited)\n"
        );
        // To app-1, whose group admits members of web (web-1 by its IPv6 address).
        let to_app = IpPacket {
            dst: "2001:db8:1234:1a01::10".parse().expect("dst"),
            ..packet
        };
        let text = explain(&evaluator, "eni-web1", &to_app).expect("explained");
        assert_eq!(
            text,
            "packet 2001:db8:1234:1a00::10 -> 2001:db8:1234:1a01::10 proto 6 sport 40000 dport \
             443 entering on eni-web1\n  1. source check in subnet public: pass\n  2. security \
             groups of web-1, outbound: allowed by group web rule 1\n  3. network ACL default of \
             subnet public, outbound: allowed by rule 101\n  4. route table public of VPC \
             dual-stack: 2001:db8:1234:1a01::/64 -> local (private)\n  5. destination \
             registered in subnet private: pass\n  6. network ACL default of subnet private, \
             inbound: allowed by rule 101\n  7. security groups of app-1, inbound: allowed by \
             group app rule 0\nverdict: DELIVER out of eni-app1 as 2001:db8:1234:1a00::10 -> \
             2001:db8:1234:1a01::10\n"
        );
        let mixed = IpPacket {
            src: "10.0.0.10".parse().expect("src"),
            ..packet
        };
        let err = explain(&evaluator, "eni-web1", &mixed).expect_err("mixed families");
        assert!(matches!(err, EvalError::MixedFamilies { .. }), "{err}");
    }

    #[test]
    fn a_route_to_an_unaccepted_peering_reads_as_a_blackhole() {
        let hop = |accepted| Hop::Route {
            vpc: "app".into(),
            table: "main".into(),
            destination: Some("10.1.0.0/16".parse().expect("net")),
            target: RouteHopTarget::Peering {
                connection: "pcx-1".into(),
                peer_vpc: "shared".into(),
                accepted,
            },
        };
        assert_eq!(
            describe(&hop(true)),
            "route table main of VPC app: 10.1.0.0/16 -> peering pcx-1 to VPC shared"
        );
        assert_eq!(
            describe(&hop(false)),
            "route table main of VPC app: 10.1.0.0/16 -> peering pcx-1 to VPC shared, not \
             accepted (VPC shared does not declare it): blackhole"
        );
    }
}
