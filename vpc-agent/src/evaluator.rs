//! Reference evaluator: what the datapath must do with a packet (docs/datapath.md),
//! computed in plain Rust from the validated model, never from the compiled maps. It is the
//! oracle the compiled entries (and later the kernel) are tested against, and the engine of
//! `vpc-agent trace`: besides the verdict it records every hop.
//!
//! Security groups are evaluated for the first packet of a connection. Connection state goes
//! through [`StatefulPolicy`]: whether a packet belongs to a tracked connection (then the
//! security groups are skipped, the network ACLs still apply) and NAT replies. Its default
//! ([`Stateless`]) tracks nothing: every packet is evaluated as a new connection.
//!
//! IPv6: [`Evaluator::evaluate_ip`] takes a packet of either family ([`IpPacket`], addresses
//! as `IpAddr`): an IPv4 packet goes through the IPv4 pipeline ([`Evaluator::evaluate`], on a
//! [`Packet`]), an IPv6 one through `ipv6`: the source check on instance ports, neighbour
//! discovery, link-scope traffic to the kernel and, from an instance's own port to a global
//! unicast address, the forwarding pipeline between instances of the VPC and out of its
//! internet and egress-only gateways (docs/datapath.md, IPv6): security groups, network ACLs
//! and the route table with the IPv6 rules and routes, delivery to an instance with its own
//! port or out of the gateway's interface; from an uplink into the VPC, to an instance with
//! its own port (new connections by the internet gateway only). The checks both families
//! share are one code, generic over the packet ([`Flow`]): rule matching (network ACLs;
//! security groups, whose `sg:` references match the members' addresses of the packet's
//! family), the longest prefix route lookup with the local routes, the uplink's
//! anti-spoofing, local delivery. What IPv6 does not do yet (routes to NAT, peering, VPN and
//! endpoint gateways; shared segments; ICMPv6 errors) is dropped `not_ipv4`. Mixed families
//! are an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use vpc_common::DropReason;

mod ipv6;

pub use ipv6::{Ipv6Step, NdMessage, NdOutcome};

use crate::config::{
    ValidatedConfig,
    validated::{
        AclRuleDef, GatewayKind, InstanceDef, InterfaceRole, NatGatewayDef, RouteTarget, SubnetDef,
        TrafficMatch, VpcDef,
    },
};

/// The packet as the datapath classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// A packet of either family, as `vpc-agent trace` takes it ([`Evaluator::evaluate_ip`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket {
    /// Both of one family.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (IPv6: the upper-layer protocol; no extension headers).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// IPv6: the hop limit (neighbour discovery is taken only with 255; a packet to forward
    /// needs more than 1). IPv4's TTL is not modelled.
    pub hop_limit: u8,
    /// IPv6 neighbour solicitations and advertisements: the target address (`None`: the
    /// message is too short to carry one).
    pub nd_target: Option<Ipv6Addr>,
}

impl From<&Packet> for IpPacket {
    fn from(p: &Packet) -> Self {
        Self {
            src: p.src.into(),
            dst: p.dst.into(),
            proto: p.proto,
            sport: p.sport,
            dport: p.dport,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            hop_limit: 64,
            nd_target: None,
        }
    }
}

/// What the rules look at in a packet of either family ([`Packet`], [`IpPacket`]): the
/// addresses, the protocol, the destination port and the ICMP (ICMPv6) type and code.
pub trait Flow {
    fn src_addr(&self) -> IpAddr;
    fn dst_addr(&self) -> IpAddr;
    /// Protocol, destination port, ICMP type and code.
    fn traffic(&self) -> (u8, u16, u8, u8);

    /// Whether a rule's protocol, ports and ICMP type/code match.
    fn matched_by(&self, traffic: &TrafficMatch) -> bool {
        let (proto, dport, icmp_type, icmp_code) = self.traffic();
        traffic.matches(proto, dport, icmp_type, icmp_code)
    }

    /// The remote address of a rule in `direction`: the source inbound, the destination
    /// outbound.
    fn remote(&self, direction: Direction) -> IpAddr {
        match direction {
            Direction::Inbound => self.src_addr(),
            Direction::Outbound => self.dst_addr(),
        }
    }
}

impl Flow for Packet {
    fn src_addr(&self) -> IpAddr {
        self.src.into()
    }
    fn dst_addr(&self) -> IpAddr {
        self.dst.into()
    }
    fn traffic(&self) -> (u8, u16, u8, u8) {
        (self.proto, self.dport, self.icmp_type, self.icmp_code)
    }
}

impl Flow for IpPacket {
    fn src_addr(&self) -> IpAddr {
        self.src
    }
    fn dst_addr(&self) -> IpAddr {
        self.dst
    }
    fn traffic(&self) -> (u8, u16, u8, u8) {
        (self.proto, self.dport, self.icmp_type, self.icmp_code)
    }
}

/// Where the packet enters the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress<'a> {
    /// A router interface by name (an instance's port, a subnet's shared segment or an
    /// internet gateway's uplink).
    Interface(&'a str),
    /// A subnet by VPC and subnet name: the port of the instance the packet comes from, or
    /// the subnet's shared segment.
    Subnet { vpc: &'a str, subnet: &'a str },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent out of `interface` with these (possibly translated) addresses, of the packet's
    /// family (IPv6 is never translated).
    Deliver {
        interface: String,
        src: IpAddr,
        dst: IpAddr,
    },
    Drop(DropReason),
    /// For the router itself (its address in the subnet): the kernel's business.
    ToHost,
    /// Answered by the datapath in place, out of the ingress interface (IPv6 neighbour
    /// discovery on an instance port); nothing is forwarded.
    Answered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Where a matching route leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteHopTarget {
    /// Inside the VPC: the subnet holding the destination (`None`: no subnet there).
    Local {
        subnet: Option<String>,
    },
    InternetGateway(String),
    /// The egress-only internet gateway, by name (IPv6 routes only).
    EgressOnlyGateway(String),
    NatGateway(String),
    /// A gateway that carries packets untranslated (a VPN gateway), by name.
    Gateway(String),
    /// A NAT instance, by name: delivered to it unchanged (it translates itself).
    Instance(String),
    Peering {
        connection: String,
        peer_vpc: String,
        /// The peer VPC declares the connection too; if not, the route drops (blackhole).
        accepted: bool,
    },
    Blackhole,
    /// No route matched.
    NoRoute,
}

/// One step of the packet's way, for traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Source/destination check in `subnet`: the source is (not) one of its registered
    /// addresses.
    SourceCheck { subnet: String, passed: bool },
    /// A network ACL decision: the matching rule (`None`: the implicit final deny).
    Acl {
        acl: String,
        subnet: String,
        direction: Direction,
        rule: Option<u16>,
        allowed: bool,
    },
    /// A route lookup (`destination`: the matching route's prefix, of the packet's family).
    Route {
        vpc: String,
        table: String,
        destination: Option<IpNet>,
        target: RouteHopTarget,
    },
    /// The same subnet: AWS applies no network ACL within a subnet.
    SameSubnet { subnet: String },
    /// Source rewritten (internet gateway 1:1, or a NAT gateway's elastic IP).
    SourceNat {
        by: String,
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
    /// Destination rewritten (an instance's public IP to its private IP).
    DestinationNat { from: Ipv4Addr, to: Ipv4Addr },
    /// The destination is (not) a registered address of the subnet.
    DestinationCheck { subnet: String, passed: bool },
    /// The security groups of `instance` in one direction: the first rule that allows the
    /// packet (group name and rule index in that direction), or none (`allowed` false).
    SecurityGroup {
        instance: String,
        direction: Direction,
        group: Option<String>,
        rule: Option<usize>,
        allowed: bool,
    },
    /// Anti-spoofing on the uplink: the source is (not) one no internet host has (a VPC
    /// block, the router's own addresses, a martian).
    UplinkSourceCheck { passed: bool },
    /// On a gateway's link: the source is (not) inside the networks behind the gateway.
    GatewaySourceCheck { gateway: String, passed: bool },
    /// The packet belongs to a tracked connection: `instance`'s security groups are skipped.
    TrackedConnection {
        instance: String,
        direction: Direction,
    },
    /// IPv6 neighbour discovery on an instance port: the message and what the router does.
    NeighbourDiscovery {
        message: NdMessage,
        outcome: NdOutcome,
    },
    /// IPv6 outside the forwarding pipeline: where the packet goes instead.
    Ipv6 { step: Ipv6Step },
}

/// The verdict and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub hops: Vec<Hop>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("no instance, subnet or internet gateway uses interface '{0}'")]
    UnknownInterface(String),
    #[error("VPC '{vpc}' has no subnet '{subnet}'")]
    UnknownSubnet { vpc: String, subnet: String },
    #[error("source {src} and destination {dst} are of different address families (IPv4 and IPv6)")]
    MixedFamilies { src: IpAddr, dst: IpAddr },
}

/// Extension point for connection state; the defaults are "no state".
pub trait StatefulPolicy {
    /// Whether `packet` (either family, as it enters the router) belongs to a tracked
    /// connection: its security group checks are skipped (network ACLs are stateless and
    /// still apply).
    fn tracked(&self, _packet: &IpPacket) -> bool {
        false
    }

    /// The reverse translation of a packet arriving at a NAT gateway's elastic IP: the packet
    /// with its destination set back to the inside host, or `None` if it belongs to no
    /// translated connection (unsolicited).
    fn nat_reply(&self, _vpc: &VpcDef, _nat: &NatGatewayDef, _packet: &Packet) -> Option<Packet> {
        None
    }
}

/// No connection state: every packet starts a new connection (security groups evaluated),
/// nothing is a NAT reply.
pub struct Stateless;

impl StatefulPolicy for Stateless {}

/// Evaluates `packet` as the first packet of a new connection.
pub fn evaluate(
    config: &ValidatedConfig,
    ingress: Ingress<'_>,
    packet: &Packet,
) -> Result<Trace, EvalError> {
    Evaluator::new(config, &Stateless).evaluate(ingress, packet)
}

/// Evaluates `packet` (either family) as the first packet of a new connection.
pub fn evaluate_ip(
    config: &ValidatedConfig,
    ingress: Ingress<'_>,
    packet: &IpPacket,
) -> Result<Trace, EvalError> {
    Evaluator::new(config, &Stateless).evaluate_ip(ingress, packet)
}

/// The router's IPv6 link-local address on an interface, by name.
pub type RouterLinkLocal<'a> = &'a dyn Fn(&str) -> Option<Ipv6Addr>;

pub struct Evaluator<'a> {
    config: &'a ValidatedConfig,
    policy: &'a dyn StatefulPolicy,
    router_link_local: Option<RouterLinkLocal<'a>>,
}

/// Where an ingress interface leads.
enum Entry {
    /// Subnet `subnet` of VPC `vpc`: the port of instance `port`, or the shared segment.
    Subnet {
        vpc: usize,
        subnet: usize,
        port: Option<usize>,
    },
    Uplink,
    /// The link of gateway `gateway` of VPC `vpc`.
    Gateway {
        vpc: usize,
        gateway: usize,
    },
}

impl<'a> Evaluator<'a> {
    pub fn new(config: &'a ValidatedConfig, policy: &'a dyn StatefulPolicy) -> Self {
        Self {
            config,
            policy,
            router_link_local: None,
        }
    }

    /// The router's link-local address on each port (`fe80::` + the EUI-64 of the port's
    /// MAC, which the definition does not hold), for IPv6 neighbour solicitations. Without
    /// it, a solicitation for any link-local address on a port is taken as one for the
    /// router's (the instance's only other neighbour there).
    pub fn with_router_link_local(mut self, f: RouterLinkLocal<'a>) -> Self {
        self.router_link_local = Some(f);
        self
    }

    /// Evaluates a packet of either family: IPv4 as [`Self::evaluate`], IPv6 by what the
    /// datapath does with it (forwarded between instance ports, dropped elsewhere for now).
    pub fn evaluate_ip(&self, ingress: Ingress<'_>, p: &IpPacket) -> Result<Trace, EvalError> {
        match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let packet = Packet {
                    src,
                    dst,
                    proto: p.proto,
                    sport: p.sport,
                    dport: p.dport,
                    icmp_type: p.icmp_type,
                    icmp_code: p.icmp_code,
                };
                self.evaluate(ingress, &packet)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => self.evaluate6(ingress, p, src, dst),
            (src, dst) => Err(EvalError::MixedFamilies { src, dst }),
        }
    }

    pub fn evaluate(&self, ingress: Ingress<'_>, packet: &Packet) -> Result<Trace, EvalError> {
        let mut run = Run {
            config: self.config,
            policy: self.policy,
            tracked: self.policy.tracked(&IpPacket::from(packet)),
            hops: Vec::new(),
        };
        let verdict = match self.entry(ingress, |i| i.private_ip == packet.src)? {
            Entry::Subnet { vpc, subnet, port } => {
                run.entering_from_subnet(vpc, subnet, port, packet)
            }
            Entry::Uplink => run.entering_from_uplink(packet),
            Entry::Gateway { vpc, gateway } => run.entering_from_gateway(vpc, gateway, packet),
        };
        Ok(Trace {
            hops: run.hops,
            verdict,
        })
    }

    /// Where `ingress` leads; `source` tells the instance the packet comes from (for an
    /// ingress by subnet: its port, if it has one).
    fn entry(
        &self,
        ingress: Ingress<'_>,
        source: impl Fn(&InstanceDef) -> bool,
    ) -> Result<Entry, EvalError> {
        let vpcs = &self.config.vpcs;
        match ingress {
            Ingress::Subnet { vpc, subnet } => vpcs
                .iter()
                .enumerate()
                .filter(|(_, v)| v.name == vpc)
                .find_map(|(v, def)| {
                    let s = def.subnets.iter().position(|s| s.name == subnet)?;
                    let port = def
                        .instances
                        .iter()
                        .position(|i| i.subnet == s && source(i) && i.interface.is_some());
                    Some(Entry::Subnet {
                        vpc: v,
                        subnet: s,
                        port,
                    })
                })
                .ok_or_else(|| EvalError::UnknownSubnet {
                    vpc: vpc.to_owned(),
                    subnet: subnet.to_owned(),
                }),
            Ingress::Interface(name) => {
                let role = self
                    .config
                    .interfaces()
                    .into_iter()
                    .find(|(n, _)| *n == name);
                match role.map(|(_, role)| role) {
                    Some(InterfaceRole::Port { vpc, instance }) => Ok(Entry::Subnet {
                        vpc,
                        subnet: vpcs[vpc].instances[instance].subnet,
                        port: Some(instance),
                    }),
                    Some(InterfaceRole::Segment { vpc, subnet }) => Ok(Entry::Subnet {
                        vpc,
                        subnet,
                        port: None,
                    }),
                    Some(InterfaceRole::Uplink { .. }) => Ok(Entry::Uplink),
                    Some(InterfaceRole::Gateway { vpc, gateway }) => {
                        Ok(Entry::Gateway { vpc, gateway })
                    }
                    None => Err(EvalError::UnknownInterface(name.to_owned())),
                }
            }
        }
    }
}

/// A registered address of a VPC: an instance or a NAT gateway's private address.
#[derive(Clone, Copy)]
enum Endpoint<'a> {
    Instance(&'a InstanceDef),
    NatGateway(&'a NatGatewayDef),
}

impl<'a> Endpoint<'a> {
    /// The endpoint with address `ip` (NAT gateways have IPv4 addresses only).
    fn find(vpc: &'a VpcDef, ip: IpAddr) -> Option<Self> {
        let instance = vpc.instances.iter().find(|i| i.has_address(ip));
        let nat = || {
            vpc.nat_gateways
                .iter()
                .find(|n| IpAddr::V4(n.private_ip) == ip)
        };
        instance
            .map(Self::Instance)
            .or_else(|| nat().map(Self::NatGateway))
    }

    fn subnet(self) -> usize {
        match self {
            Self::Instance(i) => i.subnet,
            Self::NatGateway(n) => n.subnet,
        }
    }

    fn instance(self) -> Option<&'a InstanceDef> {
        match self {
            Self::Instance(i) => Some(i),
            Self::NatGateway(_) => None,
        }
    }
}

/// One evaluation, collecting hops.
struct Run<'a> {
    config: &'a ValidatedConfig,
    policy: &'a dyn StatefulPolicy,
    /// The packet belongs to a tracked connection: no security group checks.
    tracked: bool,
    hops: Vec<Hop>,
}

/// The result of a route lookup in the model (prefixes of the packet's family).
enum Lookup<'a> {
    /// Inside a VPC block: the local route.
    Local(IpNet),
    Route(IpNet, &'a RouteTarget),
    NoRoute,
}

/// The first rule (lowest number) matching the packet; `remote` is the source for inbound
/// rules and the destination for outbound ones. Only the rules of `remote`'s family can
/// match.
pub fn first_match<'r>(
    rules: &'r [AclRuleDef],
    remote: IpAddr,
    p: &impl Flow,
) -> Option<&'r AclRuleDef> {
    rules
        .iter()
        .find(|r| r.cidr.contains(&remote) && p.matched_by(&r.traffic))
}

/// The first rule of `instance`'s security groups (in the instance's group order, then rule
/// order) that allows the packet: (index in the VPC's `security_groups`, rule index in the
/// direction). `instance` is of VPC `v` of `vpcs`; `remote` is the source for inbound rules and
/// the destination for outbound (either family: the rules of its family, `sg:` references by
/// the members' addresses of that family).
pub fn security_group_match(
    vpcs: &[VpcDef],
    v: usize,
    instance: &InstanceDef,
    direction: Direction,
    remote: IpAddr,
    p: &impl Flow,
) -> Option<(usize, usize)> {
    instance.security_groups.iter().find_map(|&g| {
        let group = &vpcs[v].security_groups[g];
        let rules = match direction {
            Direction::Inbound => &group.inbound,
            Direction::Outbound => &group.outbound,
        };
        let found = rules
            .iter()
            .position(|r| r.peer.contains(vpcs, v, remote) && p.matched_by(&r.traffic));
        found.map(|r| (g, r))
    })
}

/// The VPC's blocks of both families: its IPv4 CIDR blocks and its IPv6 /56.
fn vpc_blocks(vpc: &VpcDef) -> impl Iterator<Item = IpNet> + '_ {
    let v4 = vpc.cidr_blocks.iter().copied().map(IpNet::V4);
    v4.chain(vpc.ipv6_cidr_block.map(IpNet::V6))
}

/// The block of subnet `subnet` of `addr`'s family, if it holds `addr`.
fn subnet_block(subnet: &SubnetDef, addr: IpAddr) -> Option<IpNet> {
    let block = match addr {
        IpAddr::V4(_) => Some(IpNet::V4(subnet.cidr)),
        IpAddr::V6(_) => subnet.ipv6_cidr.map(IpNet::V6),
    };
    block.filter(|b| b.contains(&addr))
}

/// The subnet of VPC `vpc` holding `addr`, and its block.
fn holding_subnet(vpc: &VpcDef, addr: IpAddr) -> Option<(usize, IpNet)> {
    vpc.subnets
        .iter()
        .enumerate()
        .find_map(|(d, subnet)| Some((d, subnet_block(subnet, addr)?)))
}

/// Longest prefix match in a table of VPC `vpc`, among the routes of `dst`'s family. The
/// local routes win whenever the destination is inside a VPC block (IPv4, or the IPv6 /56
/// with the subnets' /64s), since validation forbids routes inside a block.
fn lookup(vpc: &VpcDef, table: usize, dst: IpAddr) -> Lookup<'_> {
    if let Some(block) = vpc_blocks(vpc).find(|b| b.contains(&dst)) {
        return Lookup::Local(block);
    }
    vpc.route_tables[table]
        .routes
        .iter()
        .filter(|r| r.destination.contains(&dst))
        .max_by_key(|r| r.destination.prefix_len())
        .map_or(Lookup::NoRoute, |r| Lookup::Route(r.destination, &r.target))
}

impl<'a> Run<'a> {
    /// A packet from subnet `s` of VPC `v`, arriving on instance `port`'s own port or (`None`)
    /// on the subnet's shared segment.
    fn entering_from_subnet(
        &mut self,
        v: usize,
        s: usize,
        port: Option<usize>,
        p: &Packet,
    ) -> Verdict {
        let vpc = &self.config.vpcs[v];
        let subnet = &vpc.subnets[s];
        // A port accepts only its instance's address; a shared segment only instances of the
        // subnet without a port of their own (a NAT gateway's address is the router's).
        // With its source/destination check off (a NAT instance), a port also accepts the
        // sources of internet hosts, as the instance's own packets (without its public IP).
        let foreign = port.is_some_and(|i| {
            let inst = &vpc.instances[i];
            inst.private_ip != p.src
                && !inst.source_dest_check
                && !self.uplink_spoofed(p.src.into())
        });
        let source = match port {
            Some(i) => Some(&vpc.instances[i]).filter(|i| i.private_ip == p.src || foreign),
            None => vpc
                .instances
                .iter()
                .find(|i| i.private_ip == p.src && i.subnet == s && i.interface.is_none()),
        };
        self.hops.push(Hop::SourceCheck {
            subnet: subnet.name.clone(),
            passed: source.is_some(),
        });
        let Some(source) = source.map(Endpoint::Instance) else {
            return Verdict::Drop(DropReason::Spoofed);
        };
        if for_router(subnet, p.dst) {
            return Verdict::ToHost;
        }
        self.leaving_instance(v, s, source, p, |run, table, dest, target| {
            run.target(v, table, dest, target, source, p)
        })
    }

    /// A packet of either family from `source` in subnet `s` of VPC `v`, past the source
    /// check: `source`'s security groups outbound, the subnet's network ACL outbound, the
    /// lookup in the subnet's route table: a local route to [`Self::local`], another to
    /// `targets` (what the packet's family does with it: table, prefix, target).
    fn leaving_instance<P: Flow>(
        &mut self,
        v: usize,
        s: usize,
        source: Endpoint<'_>,
        p: &P,
        targets: impl FnOnce(&mut Self, usize, IpNet, &RouteTarget) -> Verdict,
    ) -> Verdict {
        let vpc = &self.config.vpcs[v];
        if !self.security_groups(v, source, Direction::Outbound, p) {
            return Verdict::Drop(DropReason::SecurityGroupOutbound);
        }
        if !self.acl(v, s, Direction::Outbound, p) {
            return Verdict::Drop(DropReason::AclOutbound);
        }
        let table = vpc.subnets[s].route_table;
        match lookup(vpc, table, p.dst_addr()) {
            Lookup::Local(block) => self.local(v, table, block, Some(s), p),
            Lookup::Route(dest, target) => targets(self, table, dest, target),
            Lookup::NoRoute => {
                self.route_hop(v, table, None, RouteHopTarget::NoRoute);
                Verdict::Drop(DropReason::NoRoute)
            }
        }
    }

    fn route_hop(
        &mut self,
        v: usize,
        table: usize,
        destination: Option<IpNet>,
        target: RouteHopTarget,
    ) {
        let vpc = &self.config.vpcs[v];
        self.hops.push(Hop::Route {
            vpc: vpc.name.clone(),
            table: vpc.route_tables[table].name.clone(),
            destination,
            target,
        });
    }

    /// How a route to `target` (of VPC `v`) reads in a trace.
    fn hop_target(&self, v: usize, target: &RouteTarget) -> RouteHopTarget {
        let vpc = &self.config.vpcs[v];
        let gateway_name = |g: Option<&crate::config::validated::InternetGatewayDef>| {
            g.map_or_else(String::new, |g| g.name.clone())
        };
        match target {
            RouteTarget::InternetGateway => {
                RouteHopTarget::InternetGateway(gateway_name(vpc.internet_gateway.as_ref()))
            }
            RouteTarget::EgressOnlyGateway => RouteHopTarget::EgressOnlyGateway(gateway_name(
                vpc.egress_only_internet_gateway.as_ref(),
            )),
            RouteTarget::NatGateway(n) => {
                RouteHopTarget::NatGateway(vpc.nat_gateways[*n].name.clone())
            }
            RouteTarget::Peering(c) => {
                let pcx = &vpc.peering_connections[*c];
                RouteHopTarget::Peering {
                    connection: pcx.name.clone(),
                    peer_vpc: self.config.vpcs[pcx.peer_vpc].name.clone(),
                    accepted: pcx.accepted,
                }
            }
            RouteTarget::Gateway(g) => RouteHopTarget::Gateway(vpc.gateways[*g].name.clone()),
            RouteTarget::Instance(i) => RouteHopTarget::Instance(vpc.instances[*i].name.clone()),
            RouteTarget::Blackhole => RouteHopTarget::Blackhole,
        }
    }

    /// The security groups of `endpoint` (VPC `v`) in one direction; records the hop. NAT
    /// gateways have none, and a tracked connection skips them.
    fn security_groups(
        &mut self,
        v: usize,
        endpoint: Endpoint<'_>,
        direction: Direction,
        p: &impl Flow,
    ) -> bool {
        let vpc = &self.config.vpcs[v];
        let Some(instance) = endpoint.instance() else {
            return true;
        };
        if self.tracked {
            self.hops.push(Hop::TrackedConnection {
                instance: instance.name.clone(),
                direction,
            });
            return true;
        }
        let remote = p.remote(direction);
        let found = security_group_match(&self.config.vpcs, v, instance, direction, remote, p);
        self.hops.push(Hop::SecurityGroup {
            instance: instance.name.clone(),
            direction,
            group: found.map(|(g, _)| vpc.security_groups[g].name.clone()),
            rule: found.map(|(_, r)| r),
            allowed: found.is_some(),
        });
        found.is_some()
    }

    /// Network ACL of subnet `s` in one direction; records the hop.
    fn acl(&mut self, v: usize, s: usize, direction: Direction, p: &impl Flow) -> bool {
        let vpc = &self.config.vpcs[v];
        let subnet = &vpc.subnets[s];
        let acl = &vpc.network_acls[subnet.network_acl];
        let rules = match direction {
            Direction::Inbound => &acl.inbound,
            Direction::Outbound => &acl.outbound,
        };
        let rule = first_match(rules, p.remote(direction), p);
        let allowed = rule.is_some_and(|r| r.allow);
        self.hops.push(Hop::Acl {
            acl: acl.name.clone(),
            subnet: subnet.name.clone(),
            direction,
            rule: rule.map(|r| r.number),
            allowed,
        });
        allowed
    }

    /// The local route of `block` in `table`: to the subnet holding the destination.
    fn local(
        &mut self,
        v: usize,
        table: usize,
        block: IpNet,
        from: Option<usize>,
        p: &impl Flow,
    ) -> Verdict {
        let vpc = &self.config.vpcs[v];
        let dest = holding_subnet(vpc, p.dst_addr());
        let subnet = dest.map(|(d, _)| vpc.subnets[d].name.clone());
        let destination = dest.map_or(block, |(_, net)| net);
        self.route_hop(
            v,
            table,
            Some(destination),
            RouteHopTarget::Local { subnet },
        );
        match dest {
            Some((d, _)) => self.deliver(v, d, from, p),
            None => Verdict::Drop(DropReason::UnknownDestination),
        }
    }

    /// Delivery to a registered address of subnet `d` (`from`: the ingress subnet, if any).
    fn deliver(&mut self, v: usize, d: usize, from: Option<usize>, p: &impl Flow) -> Verdict {
        self.deliver_at(v, d, from, p.dst_addr(), p)
    }

    /// [`Self::deliver`] to the endpoint at `at`: the destination, or a NAT instance the
    /// packet is routed to unchanged. IPv6 is delivered to an instance's own port only, never
    /// onto a shared segment.
    fn deliver_at(
        &mut self,
        v: usize,
        d: usize,
        from: Option<usize>,
        at: IpAddr,
        p: &impl Flow,
    ) -> Verdict {
        match self.destination(v, d, at) {
            Some((endpoint, interface)) => self.admit(v, d, from, endpoint, interface, p),
            None => Verdict::Drop(DropReason::UnknownDestination),
        }
    }

    /// The registered address `at` of subnet `d` of VPC `v` and the interface to it (the
    /// instance's own port, else, IPv4 only, the subnet's shared segment); records the
    /// destination check. `None`: `unknown_destination`.
    fn destination(&mut self, v: usize, d: usize, at: IpAddr) -> Option<(Endpoint<'a>, String)> {
        let config = self.config;
        let vpc = &config.vpcs[v];
        let subnet = &vpc.subnets[d];
        let endpoint = Endpoint::find(vpc, at).filter(|e| e.subnet() == d);
        self.hops.push(Hop::DestinationCheck {
            subnet: subnet.name.clone(),
            passed: endpoint.is_some(),
        });
        let endpoint = endpoint?;
        let interface = match endpoint {
            Endpoint::Instance(i) => i.interface.as_ref(),
            Endpoint::NatGateway(_) => None,
        };
        let segment = subnet.interface.as_ref().filter(|_| at.is_ipv4());
        Some((endpoint, interface.or(segment).cloned()?))
    }

    /// Into subnet `d` of VPC `v` to `endpoint` out of `interface` ([`Self::destination`]):
    /// the subnet's network ACL inbound unless the packet comes `from` that subnet, the
    /// endpoint's security groups inbound.
    fn admit(
        &mut self,
        v: usize,
        d: usize,
        from: Option<usize>,
        endpoint: Endpoint<'_>,
        interface: String,
        p: &impl Flow,
    ) -> Verdict {
        let subnet = &self.config.vpcs[v].subnets[d];
        if from == Some(d) {
            self.hops.push(Hop::SameSubnet {
                subnet: subnet.name.clone(),
            });
        } else if !self.acl(v, d, Direction::Inbound, p) {
            return Verdict::Drop(DropReason::AclInbound);
        }
        if !self.security_groups(v, endpoint, Direction::Inbound, p) {
            return Verdict::Drop(DropReason::SecurityGroupInbound);
        }
        Verdict::Deliver {
            interface,
            src: p.src_addr(),
            dst: p.dst_addr(),
        }
    }

    /// A route of an IPv4 packet to `target` (not a local route).
    fn target(
        &mut self,
        v: usize,
        table: usize,
        dest: IpNet,
        target: &RouteTarget,
        source: Endpoint<'_>,
        p: &Packet,
    ) -> Verdict {
        let vpc = &self.config.vpcs[v];
        if *target != RouteTarget::EgressOnlyGateway {
            let hop = self.hop_target(v, target);
            self.route_hop(v, table, Some(dest), hop);
        }
        match target {
            RouteTarget::InternetGateway => {
                let igw = vpc.internet_gateway.as_ref();
                // The instance's own address only: never one a NAT instance sends for.
                let public = source
                    .instance()
                    .filter(|i| i.private_ip == p.src)
                    .and_then(|i| i.public_ip);
                match (public, igw) {
                    (Some(public), Some(igw)) => {
                        self.hops.push(Hop::SourceNat {
                            by: igw.name.clone(),
                            from: p.src,
                            to: public,
                        });
                        Verdict::Deliver {
                            interface: igw.interface.clone(),
                            src: public.into(),
                            dst: p.dst.into(),
                        }
                    }
                    _ => Verdict::Drop(DropReason::NoPublicAddress),
                }
            }
            RouteTarget::NatGateway(n) => self.nat_gateway(v, &vpc.nat_gateways[*n], p),
            RouteTarget::Peering(c) => {
                let pcx = &vpc.peering_connections[*c];
                if !pcx.accepted {
                    // Compiled as a blackhole route (compile/routes.rs): the same drop.
                    return Verdict::Drop(DropReason::Blackhole);
                }
                self.peering(pcx.peer_vpc, p)
            }
            // Untranslated: the private source is kept.
            RouteTarget::Gateway(g) => Verdict::Deliver {
                interface: vpc.gateways[*g].interface.clone(),
                src: p.src.into(),
                dst: p.dst.into(),
            },
            RouteTarget::Instance(i) => {
                let inst = &vpc.instances[*i];
                let from = source.instance().map(|s| s.subnet);
                self.deliver_at(v, inst.subnet, from, inst.private_ip.into(), p)
            }
            RouteTarget::Blackhole => Verdict::Drop(DropReason::Blackhole),
            // Validation keeps IPv4 destinations off the egress-only gateway, so no IPv4
            // lookup ends here; were one to, it is what the compiled table holds for it: no
            // entry (compile/routes.rs skips the gateway's routes).
            RouteTarget::EgressOnlyGateway => {
                self.route_hop(v, table, None, RouteHopTarget::NoRoute);
                Verdict::Drop(DropReason::NoRoute)
            }
        }
    }
    /// From gateway `g` of VPC `v` (a VPN gateway): the source must be behind it; only
    /// private addresses of the VPC are reachable, untranslated (no public or elastic IP,
    /// nothing beyond the VPC: no transit). The router's own address on the link is not part
    /// of the definition; a packet to it is counted as transit here.
    fn entering_from_gateway(&mut self, v: usize, g: usize, p: &Packet) -> Verdict {
        let vpc = &self.config.vpcs[v];
        let gateway = &vpc.gateways[g];
        let passed = gateway.networks.iter().any(|n| n.contains(&p.src));
        self.hops.push(Hop::GatewaySourceCheck {
            gateway: gateway.name.clone(),
            passed,
        });
        if !passed {
            return Verdict::Drop(DropReason::GatewaySpoofed);
        }
        let public = self.config.vpcs.iter().any(|vpc| {
            vpc.instances.iter().any(|i| i.public_ip == Some(p.dst))
                || vpc.nat_gateways.iter().any(|n| n.elastic_ip == p.dst)
        });
        let block = vpc_blocks(vpc).find(|b| b.contains(&IpAddr::V4(p.dst)));
        let (false, Some(block)) = (public, block) else {
            return Verdict::Drop(DropReason::GatewayTransit);
        };
        self.local_table(v, block, p)
    }

    /// Through the local table of VPC `v` (no route table: from a gateway's link or over a
    /// peering), whose block `block` holds the destination: to the subnet holding it.
    fn local_table(&mut self, v: usize, block: IpNet, p: &impl Flow) -> Verdict {
        let vpc = &self.config.vpcs[v];
        let dest = holding_subnet(vpc, p.dst_addr());
        self.hops.push(Hop::Route {
            vpc: vpc.name.clone(),
            table: crate::compile::ids::LOCAL_TABLE_NAME.to_owned(),
            destination: Some(dest.map_or(block, |(_, net)| net)),
            target: RouteHopTarget::Local {
                subnet: dest.map(|(d, _)| vpc.subnets[d].name.clone()),
            },
        });
        match dest {
            Some((d, _)) => self.deliver(v, d, None, p),
            None => Verdict::Drop(DropReason::UnknownDestination),
        }
    }

    /// Through NAT gateway `nat` (in subnet P): P's ACL inbound, source NAT, P's route table
    /// (which must lead to the internet gateway), P's ACL outbound, out of the uplink.
    fn nat_gateway(&mut self, v: usize, nat: &NatGatewayDef, p: &Packet) -> Verdict {
        use vpc_common::proto::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
        if ![PROTO_TCP, PROTO_UDP, PROTO_ICMP].contains(&p.proto) {
            return Verdict::Drop(DropReason::NatProtocol);
        }
        let vpc = &self.config.vpcs[v];
        let subnet = &vpc.subnets[nat.subnet];
        if !self.acl(v, nat.subnet, Direction::Inbound, p) {
            return Verdict::Drop(DropReason::AclInbound);
        }
        self.hops.push(Hop::SourceNat {
            by: nat.name.clone(),
            from: p.src,
            to: nat.elastic_ip,
        });
        let translated = Packet {
            src: nat.elastic_ip,
            ..*p
        };
        let table = subnet.route_table;
        let uplink = match lookup(vpc, table, p.dst.into()) {
            Lookup::Route(dest, RouteTarget::InternetGateway) => {
                let igw = vpc.internet_gateway.as_ref();
                let name = igw.map_or_else(String::new, |i| i.name.clone());
                self.route_hop(v, table, Some(dest), RouteHopTarget::InternetGateway(name));
                igw.map(|i| i.interface.clone())
            }
            _ => None,
        };
        let Some(uplink) = uplink else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if !self.acl(v, nat.subnet, Direction::Outbound, &translated) {
            return Verdict::Drop(DropReason::AclOutbound);
        }
        Verdict::Deliver {
            interface: uplink,
            src: translated.src.into(),
            dst: p.dst.into(),
        }
    }

    /// Into the peer VPC through its local table.
    fn peering(&mut self, peer: usize, p: &Packet) -> Verdict {
        let vpc = &self.config.vpcs[peer];
        let Some(block) = vpc_blocks(vpc).find(|b| b.contains(&IpAddr::V4(p.dst))) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        self.local_table(peer, block, p)
    }

    /// No internet host has `src`: a martian, an address inside a VPC block or a VPN
    /// gateway's customer network, a public or elastic IP (the uplink's anti-spoofing; the
    /// router's uplink addresses are not part of the definition).
    ///
    /// IPv6 (`ipv6::uplink_martian`): a link-local, multicast or unspecified source, or one
    /// inside a VPC's IPv6 block (the other addresses are IPv4).
    fn uplink_spoofed(&self, src: IpAddr) -> bool {
        let martian = match src {
            IpAddr::V4(src) => crate::compile::routes::MARTIANS
                .iter()
                .any(|m| m.contains(&src)),
            IpAddr::V6(src) => ipv6::uplink_martian(src),
        };
        martian
            || self.config.vpcs.iter().any(|vpc| {
                vpc_blocks(vpc).any(|b| b.contains(&src))
                    || vpc
                        .gateways
                        .iter()
                        .filter(|g| g.kind == GatewayKind::Vpn)
                        .any(|g| g.networks.iter().any(|n| IpNet::V4(*n).contains(&src)))
                    || vpc
                        .instances
                        .iter()
                        .any(|i| i.public_ip.map(IpAddr::V4) == Some(src))
                    || vpc
                        .nat_gateways
                        .iter()
                        .any(|n| IpAddr::V4(n.elastic_ip) == src)
            })
    }

    /// The uplink's anti-spoofing ([`Self::uplink_spoofed`]); records the hop. Whether the
    /// source passed.
    fn uplink_source_check(&mut self, src: IpAddr) -> bool {
        let passed = !self.uplink_spoofed(src);
        self.hops.push(Hop::UplinkSourceCheck { passed });
        passed
    }

    /// From the internet: to an instance's public IP (1:1), or a NAT gateway's elastic IP
    /// (replies only, through [`StatefulPolicy::nat_reply`]).
    fn entering_from_uplink(&mut self, p: &Packet) -> Verdict {
        if !self.uplink_source_check(p.src.into()) {
            return Verdict::Drop(DropReason::UplinkSpoofed);
        }
        for (v, vpc) in self.config.vpcs.iter().enumerate() {
            if let Some(inst) = vpc.instances.iter().find(|i| i.public_ip == Some(p.dst)) {
                self.hops.push(Hop::DestinationNat {
                    from: p.dst,
                    to: inst.private_ip,
                });
                let inside = Packet {
                    dst: inst.private_ip,
                    ..*p
                };
                return self.deliver(v, inst.subnet, None, &inside);
            }
            if let Some(nat) = vpc.nat_gateways.iter().find(|n| n.elastic_ip == p.dst) {
                return match self.policy.nat_reply(vpc, nat, p) {
                    Some(inside) => {
                        // A reply of a translated connection, which is tracked.
                        self.tracked = true;
                        self.hops.push(Hop::DestinationNat {
                            from: p.dst,
                            to: inside.dst,
                        });
                        match vpc
                            .subnets
                            .iter()
                            .position(|d| d.cidr.contains(&inside.dst))
                        {
                            Some(d) => self.deliver(v, d, None, &inside),
                            None => Verdict::Drop(DropReason::UnknownDestination),
                        }
                    }
                    None => Verdict::Drop(DropReason::NatUnsolicited),
                };
            }
        }
        // Nothing else on the uplink reaches a VPC; what is not aimed at one is the router's
        // own traffic.
        let into_vpc = self
            .config
            .vpcs
            .iter()
            .any(|vpc| vpc.cidr_blocks.iter().any(|b| b.contains(&p.dst)));
        if into_vpc {
            Verdict::Drop(DropReason::UplinkUnsolicited)
        } else {
            Verdict::ToHost
        }
    }
}

/// Addresses the router takes for itself on a subnet interface: its own address, the limited
/// and the subnet broadcast, multicast, link-local.
fn for_router(subnet: &crate::config::validated::SubnetDef, dst: Ipv4Addr) -> bool {
    dst == subnet.router_ip()
        || dst == Ipv4Addr::BROADCAST
        || dst.is_multicast()
        || dst == subnet.cidr.broadcast()
        || dst.is_link_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const YAML: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up }
    nat_gateways: [{ name: nat, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: s0, route_table: pub }
      - { name: b, cidr: 10.0.1.0/24, interface: s1, route_table: priv }
    route_tables:
      - { name: pub, routes: [{ destination: 0.0.0.0/0, target: igw }] }
      - { name: priv, routes: [{ destination: 0.0.0.0/0, target: nat }] }
    security_groups:
      - name: web
        inbound:
          - { protocol: tcp, ports: 443, source: 0.0.0.0/0 }
          - { protocol: tcp, ports: 22, source: sg:admin }
        outbound:
          - { protocol: tcp, ports: 5432, destination: sg:db }
      - name: admin
      - name: db
        inbound:
          - { protocol: tcp, ports: 5432, source: sg:web }
        outbound: []
    instances:
      - { name: web, subnet: a, private_ip: 10.0.0.10, public_ip: 198.51.100.20, security_groups: [web] }
      - { name: admin, subnet: a, private_ip: 10.0.0.11, security_groups: [admin] }
      - { name: db, subnet: b, private_ip: 10.0.1.10, security_groups: [db] }
      - { name: d1, subnet: b, private_ip: 10.0.1.11 }
      - { name: d2, subnet: a, private_ip: 10.0.0.12 }
";

    fn config() -> ValidatedConfig {
        load_str("t.yaml", YAML).expect("valid")
    }

    fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
        Packet {
            src: src.parse().expect("src"),
            dst: dst.parse().expect("dst"),
            proto: 6,
            sport: 40000,
            dport,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    fn trace(policy: &dyn StatefulPolicy, interface: &str, p: &Packet) -> Trace {
        Evaluator::new(&config(), policy)
            .evaluate(Ingress::Interface(interface), p)
            .expect("known interface")
    }

    fn verdict(interface: &str, p: &Packet) -> Verdict {
        trace(&Stateless, interface, p).verdict
    }

    fn delivered(v: &Verdict) -> bool {
        matches!(v, Verdict::Deliver { .. })
    }

    /// The security group hops of a trace.
    fn sg_hops(t: &Trace) -> Vec<&Hop> {
        t.hops
            .iter()
            .filter(|h| matches!(h, Hop::SecurityGroup { .. } | Hop::TrackedConnection { .. }))
            .collect()
    }

    fn sg_hop(
        instance: &str,
        direction: Direction,
        group: Option<&str>,
        rule: Option<usize>,
    ) -> Hop {
        Hop::SecurityGroup {
            instance: instance.into(),
            direction,
            group: group.map(Into::into),
            rule,
            allowed: group.is_some(),
        }
    }

    const SG_OUT: Verdict = Verdict::Drop(DropReason::SecurityGroupOutbound);
    const SG_IN: Verdict = Verdict::Drop(DropReason::SecurityGroupInbound);

    #[test]
    fn inbound_rules_filter_internet_traffic_after_the_one_to_one_translation() {
        let t = trace(&Stateless, "up", &tcp("192.0.2.7", "198.51.100.20", 443));
        assert!(delivered(&t.verdict), "{t:?}");
        let web_443 = sg_hop("web", Direction::Inbound, Some("web"), Some(0));
        assert_eq!(sg_hops(&t), [&web_443]);
        let t = trace(&Stateless, "up", &tcp("192.0.2.7", "198.51.100.20", 80));
        assert_eq!(t.verdict, SG_IN);
        assert_eq!(
            sg_hops(&t),
            [&sg_hop("web", Direction::Inbound, None, None)]
        );
    }

    #[test]
    fn sg_references_match_the_members_of_the_group() {
        // admin is a member of 'admin'; d2 (default group) is not.
        let t = trace(&Stateless, "s0", &tcp("10.0.0.11", "10.0.0.10", 22));
        assert!(delivered(&t.verdict), "{t:?}");
        assert_eq!(
            sg_hops(&t)[1],
            &sg_hop("web", Direction::Inbound, Some("web"), Some(1))
        );
        assert_eq!(verdict("s0", &tcp("10.0.0.12", "10.0.0.10", 22)), SG_IN);
        // Outbound to sg:db: only the database port, only to members of db.
        assert!(delivered(&verdict(
            "s0",
            &tcp("10.0.0.10", "10.0.1.10", 5432)
        )));
        assert_eq!(verdict("s0", &tcp("10.0.0.10", "10.0.1.10", 22)), SG_OUT);
        assert_eq!(verdict("s0", &tcp("10.0.0.10", "10.0.1.11", 5432)), SG_OUT);
    }

    #[test]
    fn the_default_group_admits_its_members_and_sends_everywhere() {
        // d1 and d2 are both in default.
        assert!(delivered(&verdict("s1", &tcp("10.0.1.11", "10.0.0.12", 9))));
        // admin (outbound omitted: all) is not a member of default.
        assert_eq!(verdict("s0", &tcp("10.0.0.11", "10.0.0.12", 9)), SG_IN);
        // Out through the NAT gateway, which has no security groups.
        let t = trace(&Stateless, "s1", &tcp("10.0.1.11", "192.0.2.7", 443));
        assert!(delivered(&t.verdict), "{t:?}");
        assert_eq!(
            sg_hops(&t),
            [&sg_hop("d1", Direction::Outbound, Some("default"), Some(0))]
        );
    }

    #[test]
    fn an_empty_outbound_list_allows_nothing_out() {
        assert_eq!(verdict("s1", &tcp("10.0.1.10", "192.0.2.7", 443)), SG_OUT);
        assert_eq!(verdict("s1", &tcp("10.0.1.10", "10.0.1.11", 443)), SG_OUT);
    }

    #[test]
    fn checks_run_in_datapath_order() {
        let t = trace(&Stateless, "s0", &tcp("10.0.0.10", "10.0.1.10", 5432));
        let kinds: Vec<&str> = t
            .hops
            .iter()
            .map(|h| match h {
                Hop::SourceCheck { .. } => "source",
                Hop::SecurityGroup {
                    direction: Direction::Outbound,
                    ..
                } => "sg-out",
                Hop::Acl {
                    direction: Direction::Outbound,
                    ..
                } => "acl-out",
                Hop::Route { .. } => "route",
                Hop::DestinationCheck { .. } => "destination",
                Hop::Acl { .. } => "acl-in",
                Hop::SecurityGroup { .. } => "sg-in",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "source",
                "sg-out",
                "acl-out",
                "route",
                "destination",
                "acl-in",
                "sg-in"
            ]
        );
    }

    /// Every packet belongs to a tracked connection.
    struct Tracked;

    impl StatefulPolicy for Tracked {
        fn tracked(&self, _packet: &IpPacket) -> bool {
            true
        }
    }

    /// `app` routes `shared`'s block to pcx; `shared` declares pcx back only in `peered()`.
    const ONE_SIDED: &str = "vpcs:
  - name: app
    cidr_blocks: [10.0.0.0/16]
    subnets: [{ name: a, cidr: 10.0.0.0/24, interface: s0 }]
    route_tables: [{ name: main, routes: [{ destination: 10.1.0.0/16, target: pcx }] }]
    peering_connections: [{ name: pcx, peer_vpc: shared }]
    instances:
      - { name: w, subnet: a, private_ip: 10.0.0.10 }
      - { name: x, subnet: a, private_ip: 10.0.0.11, security_groups: [other] }
    security_groups: [{ name: other, inbound: [] }]
  - name: shared
    cidr_blocks: [10.1.0.0/16]
    subnets: [{ name: s, cidr: 10.1.0.0/24, interface: s1 }]
    security_groups:
      - { name: db, inbound: [{ protocol: tcp, ports: 5432, source: SOURCE }] }
    instances:
      - { name: db1, subnet: s, private_ip: 10.1.0.20, security_groups: [db] }
";

    fn peered(source: &str) -> ValidatedConfig {
        let yaml = ONE_SIDED.replace("SOURCE", source).replace(
            "    security_groups:\n      - { name: db",
            "    peering_connections: [{ name: pcx, peer_vpc: app }]\n    security_groups:\n      - { name: db",
        );
        load_str("t.yaml", &yaml).expect("valid")
    }

    fn evaluate(config: &ValidatedConfig, p: &Packet) -> Trace {
        Evaluator::new(config, &Stateless)
            .evaluate(Ingress::Interface("s0"), p)
            .expect("known interface")
    }

    #[test]
    fn an_unaccepted_peering_drops_like_a_blackhole_route() {
        let config =
            load_str("t.yaml", &ONE_SIDED.replace("SOURCE", "10.0.0.0/16")).expect("valid");
        let t = evaluate(&config, &tcp("10.0.0.10", "10.1.0.20", 5432));
        assert_eq!(t.verdict, Verdict::Drop(DropReason::Blackhole));
        let route = t.hops.iter().find_map(|h| match h {
            Hop::Route { target, .. } => Some(target.clone()),
            _ => None,
        });
        assert_eq!(
            route,
            Some(RouteHopTarget::Peering {
                connection: "pcx".into(),
                peer_vpc: "shared".into(),
                accepted: false,
            })
        );
        // Accepted, the same packet is delivered in the peer.
        let t = evaluate(&peered("10.0.0.0/16"), &tcp("10.0.0.10", "10.1.0.20", 5432));
        assert!(delivered(&t.verdict), "{t:?}");
    }

    #[test]
    fn a_peer_vpcs_group_admits_its_members_over_the_peering() {
        // db admits app's default group: w is a member, x (group other) is not.
        let config = peered("sg:app/default");
        let t = evaluate(&config, &tcp("10.0.0.10", "10.1.0.20", 5432));
        assert!(delivered(&t.verdict), "{t:?}");
        assert_eq!(
            sg_hops(&t).last().copied(),
            Some(&sg_hop("db1", Direction::Inbound, Some("db"), Some(0)))
        );
        let t = evaluate(&config, &tcp("10.0.0.11", "10.1.0.20", 5432));
        assert_eq!(t.verdict, SG_IN);
    }

    #[test]
    fn tracked_connections_skip_security_groups() {
        let t = trace(&Tracked, "s1", &tcp("10.0.1.10", "10.0.0.12", 443));
        assert!(delivered(&t.verdict), "{t:?}");
        let skipped = |instance: &str, direction| Hop::TrackedConnection {
            instance: instance.into(),
            direction,
        };
        assert_eq!(
            sg_hops(&t),
            [
                &skipped("db", Direction::Outbound),
                &skipped("d2", Direction::Inbound)
            ]
        );
        let t = trace(&Tracked, "up", &tcp("192.0.2.7", "198.51.100.20", 80));
        assert!(delivered(&t.verdict), "{t:?}");
    }

    /// web may reach the list `s3` on 443 only, and admit SSH only from the list `office`.
    const PREFIX_LISTS: &str = "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up }
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: s0, route_table: pub }
    route_tables:
      - { name: pub, routes: [{ destination: 0.0.0.0/0, target: igw }] }
    prefix_lists:
      - { name: s3, cidrs: [192.0.2.0/26, 198.51.100.64/26] }
      - { name: office, cidrs: [203.0.113.0/24] }
    security_groups:
      - name: web
        inbound: [{ protocol: tcp, ports: 22, source: pl:office }]
        outbound: [{ protocol: tcp, ports: 443, destination: pl:s3 }]
    instances:
      - { name: web, subnet: a, private_ip: 10.0.0.10, public_ip: 198.51.100.20, security_groups: [web] }
";

    #[test]
    fn prefix_list_rules_match_any_cidr_of_the_list_and_nothing_else() {
        let config = load_str("t.yaml", PREFIX_LISTS).expect("valid");
        let verdict = |interface: &str, p: &Packet| {
            Evaluator::new(&config, &Stateless)
                .evaluate(Ingress::Interface(interface), p)
                .expect("known interface")
                .verdict
        };
        // Outbound: inside either CIDR of s3, on the rule's port.
        for dst in ["192.0.2.1", "192.0.2.63", "198.51.100.64", "198.51.100.127"] {
            let v = verdict("s0", &tcp("10.0.0.10", dst, 443));
            assert!(delivered(&v), "{dst}: {v:?}");
        }
        // Just outside each CIDR, or another port.
        for dst in [
            "192.0.2.64",
            "198.51.100.63",
            "198.51.100.128",
            "203.0.113.5",
        ] {
            assert_eq!(verdict("s0", &tcp("10.0.0.10", dst, 443)), SG_OUT, "{dst}");
        }
        assert_eq!(verdict("s0", &tcp("10.0.0.10", "192.0.2.1", 80)), SG_OUT);
        // Inbound: SSH from office only.
        let ssh = |src| verdict("up", &tcp(src, "198.51.100.20", 22));
        assert!(delivered(&ssh("203.0.113.200")));
        assert_eq!(ssh("192.0.2.1"), SG_IN);
    }
}
