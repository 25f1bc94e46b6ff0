//! The validated definition: every name resolved to an index, every value parsed, AWS defaults
//! applied (main route table, `default` network ACL and security group). Only
//! [`super::validate`] builds it, so holding one means the file passed every rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
pub use vpc_common::conntrack::CtTimeouts;
use vpc_common::proto::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

/// The name of the implicit and of the user-overridable defaults.
pub const MAIN_TABLE: &str = "main";
pub const DEFAULT_ACL: &str = "default";
pub const DEFAULT_SG: &str = "default";

/// AWS's default aggregation interval for flow logs (seconds).
pub const DEFAULT_AGGREGATION_INTERVAL: u32 = 600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedConfig {
    pub vpcs: Vec<VpcDef>,
    /// What is valid but probably not what the author meant (printed by `validate` and at
    /// load, `FILE:LINE:COL: PATH: warning: ...`).
    pub warnings: Vec<super::Diagnostic>,
    /// Every flow log of the file (none: counters drained, nothing written).
    pub flow_logs: Vec<FlowLogConfig>,
    /// Idle timeouts, every field set (AWS defaults for what the file omits).
    pub connection_tracking: CtTimeouts,
    /// Ports NAT gateways translate to (inclusive).
    pub nat_port_range: (u16, u16),
    /// Connections one elastic IP may have to one destination (IP, port, protocol).
    pub nat_connections_per_destination: u32,
}

impl ValidatedConfig {
    /// The NAT ports actually used: the first `nat_connections_per_destination` of the range
    /// (a translation is unique per destination, so this bounds its connections).
    pub fn nat_ports(&self) -> (u16, u16) {
        let (lo, hi) = self.nat_port_range;
        let last = u32::from(lo) + self.nat_connections_per_destination - 1;
        (lo, hi.min(u16::try_from(last).unwrap_or(u16::MAX)))
    }
}

/// AWS's NAT gateway port range.
pub const DEFAULT_NAT_PORT_RANGE: (u16, u16) = (1024, 65535);
/// AWS: "up to 55,000 simultaneous connections to each unique destination".
pub const DEFAULT_NAT_CONNECTIONS_PER_DESTINATION: u32 = 55_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcDef {
    pub name: String,
    /// Primary first.
    pub cidr_blocks: Vec<Ipv4Net>,
    pub internet_gateway: Option<InternetGatewayDef>,
    /// The VPC's IPv6 block (a /56). IPv6 is forwarded between instances on their own ports.
    pub ipv6_cidr_block: Option<Ipv6Net>,
    /// The egress-only internet gateway (IPv6 only; validated, its routes drop IPv6 for now).
    pub egress_only_internet_gateway: Option<InternetGatewayDef>,
    /// Gateways that carry packets untranslated: the VPN gateway (at most one, first), then
    /// the gateway endpoints in file order.
    pub gateways: Vec<GatewayDef>,
    pub nat_gateways: Vec<NatGatewayDef>,
    pub subnets: Vec<SubnetDef>,
    /// The file's tables, plus an implicit `main` at the end if the file has none.
    pub route_tables: Vec<RouteTableDef>,
    /// Index of the main table in `route_tables`.
    pub main_route_table: usize,
    /// The file's ACLs, plus the implicit allow-all `default` at the end if the file has none.
    pub network_acls: Vec<NetworkAclDef>,
    pub security_groups: Vec<SecurityGroupDef>,
    pub instances: Vec<InstanceDef>,
    pub peering_connections: Vec<PeeringDef>,
    /// The file's prefix lists (rules refer to them by index).
    pub prefix_lists: Vec<PrefixListDef>,
}

impl VpcDef {
    /// The prefix list a validated reference ([`SgPeer::PrefixList`]) names.
    pub fn prefix_list(&self, index: usize) -> &PrefixListDef {
        &self.prefix_lists[index]
    }
}

/// A customer-managed prefix list: a named, non-empty set of distinct CIDRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixListDef {
    pub name: String,
    pub cidrs: Vec<Ipv4Net>,
}

impl PrefixListDef {
    /// Whether one of the list's CIDRs holds `addr`.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.cidrs.iter().any(|net| net.contains(&addr))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternetGatewayDef {
    pub name: String,
    /// The uplink interface.
    pub interface: String,
}

/// A gateway that carries packets untranslated, the private source kept: a VPN gateway (a
/// virtual private gateway towards a customer network) or a gateway endpoint (a prefix
/// list's services).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayDef {
    pub name: String,
    pub kind: GatewayKind,
    /// The router interface towards what is behind the gateway.
    pub interface: String,
    /// The networks behind it: the only sources it may send from, the routes it propagates
    /// (a VPN gateway) or the prefix list's CIDRs (an endpoint).
    pub networks: Vec<Ipv4Net>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayKind {
    /// A virtual private gateway (AWS Site-to-Site VPN).
    Vpn,
    /// A gateway endpoint for the services of prefix list `prefix_list` (index in the VPC's
    /// `prefix_lists`); only that list's `pl:` routes lead to it.
    Endpoint { prefix_list: usize },
}

impl GatewayKind {
    /// How the definition and the CLI call it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Vpn => "VPN gateway",
            Self::Endpoint { .. } => "gateway endpoint",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatGatewayDef {
    pub name: String,
    /// Index in the VPC's `subnets`.
    pub subnet: usize,
    pub private_ip: Ipv4Addr,
    pub elastic_ip: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetDef {
    pub name: String,
    pub cidr: Ipv4Net,
    /// A /64 inside the VPC's `ipv6_cidr_block`.
    pub ipv6_cidr: Option<Ipv6Net>,
    /// The shared segment of the subnet's hosts without a port of their own (`None`: every
    /// instance of the subnet has its own port).
    pub interface: Option<String>,
    /// Index in the VPC's `route_tables` (the main table if the file names none).
    pub route_table: usize,
    /// Index in the VPC's `network_acls` (`default` if the file names none).
    pub network_acl: usize,
}

impl SubnetDef {
    /// The router's own address in the subnet (the first host address, `.1`).
    pub fn router_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
    }

    /// AWS reserves the network address, the next three (router, DNS, future use) and the
    /// broadcast address of every subnet.
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.cidr.network()));
        offset < 4 || ip == self.cidr.broadcast()
    }

    /// The same for IPv6: the first four addresses and the last of the subnet's /64 (`false`
    /// without an IPv6 block).
    pub fn is_reserved_v6(&self, ip: Ipv6Addr) -> bool {
        self.ipv6_cidr.is_some_and(|net| {
            let offset = u128::from(ip).wrapping_sub(u128::from(net.network()));
            offset < 4 || ip == net.broadcast()
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTableDef {
    pub name: String,
    /// Not in the file: the implicit main table.
    pub implicit: bool,
    /// The file's routes, then the propagated ones a static route does not override (the
    /// local routes are implicit and not listed here).
    pub routes: Vec<RouteDef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDef {
    /// IPv4 or IPv6 (validated: an IPv6 destination needs the VPC's `ipv6_cidr_block` and a
    /// target that carries IPv6).
    pub destination: IpNet,
    pub target: RouteTarget,
    /// Propagated from a gateway (`propagate`), not written in the table.
    pub propagated: bool,
}

impl RouteDef {
    /// The destination if it is IPv4: what the datapath forwards. The IPv6 forwarding
    /// pipeline is not built yet, so the compiler and the evaluator skip IPv6 routes (they
    /// are validated only).
    pub fn ipv4_destination(&self) -> Option<Ipv4Net> {
        match self.destination {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// The VPC's internet gateway (IPv4 and IPv6).
    InternetGateway,
    /// The VPC's egress-only internet gateway: IPv6 destinations only; it admits only replies.
    EgressOnlyGateway,
    /// Index in the VPC's `nat_gateways`.
    NatGateway(usize),
    /// Index in the VPC's `peering_connections`.
    Peering(usize),
    /// Index in the VPC's `gateways`.
    Gateway(usize),
    /// A NAT instance: index in the VPC's `instances` (its source/destination check is off).
    /// Packets are delivered to its port unchanged; it translates them itself.
    Instance(usize),
    Blackhole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAclDef {
    pub name: String,
    pub implicit: bool,
    /// Sorted by rule number.
    pub inbound: Vec<AclRuleDef>,
    /// Sorted by rule number.
    pub outbound: Vec<AclRuleDef>,
}

impl NetworkAclDef {
    /// AWS's default network ACL: rule 100 allows everything both ways, and in a VPC with an
    /// IPv6 block rule 101 allows all IPv6 (`::/0`) too.
    pub fn allow_all(name: &str, ipv6: bool) -> Self {
        let rule = |number, cidr| AclRuleDef {
            number,
            traffic: TrafficMatch::ANY,
            cidr,
            allow: true,
        };
        let mut rules = vec![rule(100, IpNet::V4(Ipv4Net::default()))];
        if ipv6 {
            rules.push(rule(101, IpNet::V6(Ipv6Net::default())));
        }
        Self {
            name: name.to_owned(),
            implicit: true,
            inbound: rules.clone(),
            outbound: rules,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRuleDef {
    /// 1-32766.
    pub number: u16,
    pub traffic: TrafficMatch,
    /// Remote CIDR: the source for inbound rules, the destination for outbound rules (IPv4
    /// or IPv6; the datapath enforces the IPv4 ones only, it drops IPv6).
    pub cidr: IpNet,
    pub allow: bool,
}

/// Protocol, destination ports and ICMP type/code a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficMatch {
    /// `None`: every protocol (`all`).
    pub protocol: Option<u8>,
    /// Inclusive destination port range; `None`: all ports (or the protocol has none).
    pub ports: Option<(u16, u16)>,
    /// `None`: any type.
    pub icmp_type: Option<u8>,
    /// `None`: any code.
    pub icmp_code: Option<u8>,
}

impl TrafficMatch {
    pub const ANY: Self = Self {
        protocol: None,
        ports: None,
        icmp_type: None,
        icmp_code: None,
    };

    /// Whether a packet's protocol, destination port and ICMP (or ICMPv6) type/code match.
    pub fn matches(&self, proto: u8, dport: u16, icmp_type: u8, icmp_code: u8) -> bool {
        match self.protocol {
            None => true,
            Some(p) if p != proto => false,
            Some(PROTO_TCP | PROTO_UDP) => {
                self.ports.is_none_or(|(lo, hi)| (lo..=hi).contains(&dport))
            }
            Some(PROTO_ICMP | PROTO_ICMPV6) => {
                self.icmp_type.is_none_or(|t| t == icmp_type)
                    && self.icmp_code.is_none_or(|c| c == icmp_code)
            }
            Some(_) => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupDef {
    pub name: String,
    pub implicit: bool,
    pub inbound: Vec<SgRuleDef>,
    pub outbound: Vec<SgRuleDef>,
}

impl SecurityGroupDef {
    /// AWS's default group: inbound from members of the group, outbound to everything (all
    /// IPv6 too in a VPC with an IPv6 block).
    pub fn aws_default(index: usize, name: &str, ipv6: bool) -> Self {
        let outbound = SgRuleDef::allow_all(ipv6);
        Self {
            name: name.to_owned(),
            implicit: true,
            inbound: vec![SgRuleDef {
                traffic: TrafficMatch::ANY,
                peer: SgPeer::Group(index),
            }],
            outbound,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRuleDef {
    pub traffic: TrafficMatch,
    /// The source (inbound) or destination (outbound).
    pub peer: SgPeer,
}

impl SgRuleDef {
    /// Everything to everywhere, `0.0.0.0/0` and in a VPC with an IPv6 block `::/0`: the
    /// outbound rules of a group whose `outbound` is omitted, and of the default group.
    pub fn allow_all(ipv6: bool) -> Vec<Self> {
        let any = |net| Self {
            traffic: TrafficMatch::ANY,
            peer: SgPeer::Cidr(net),
        };
        let mut rules = vec![any(IpNet::V4(Ipv4Net::default()))];
        if ipv6 {
            rules.push(any(IpNet::V6(Ipv6Net::default())));
        }
        rules
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer {
    /// IPv4 or IPv6 (the datapath enforces the IPv4 ones only).
    Cidr(IpNet),
    /// Members of the group with this index in the VPC's `security_groups`.
    Group(usize),
    /// Any CIDR of the prefix list with this index in the VPC's `prefix_lists`.
    PrefixList(usize),
    /// `sg:VPC/NAME`: members of group `group` (index in that VPC's `security_groups`) of VPC
    /// `vpc` (index in `ValidatedConfig::vpcs`), a peer over an accepted peering connection.
    /// Its own variant, so that `Group` keeps meaning "a group of this VPC" everywhere.
    PeerGroup { vpc: usize, group: usize },
}

impl SgPeer {
    /// The (VPC, group) a group reference of a rule of VPC `own` names; `None` for a CIDR or
    /// a prefix list.
    pub fn group_of(&self, own: usize) -> Option<(usize, usize)> {
        match *self {
            Self::Cidr(_) | Self::PrefixList(_) => None,
            Self::Group(group) => Some((own, group)),
            Self::PeerGroup { vpc, group } => Some((vpc, group)),
        }
    }

    /// Whether `addr` (either family) is inside the rule's CIDR, is an address of a member of
    /// its group (of this VPC or a peer's: the private IP, or one of its IPv6 addresses), or
    /// is inside a CIDR of its prefix list (IPv4 only; `own`: the rule's VPC, index in
    /// `vpcs`).
    pub fn contains(&self, vpcs: &[VpcDef], own: usize, addr: impl Into<IpAddr>) -> bool {
        let addr = addr.into();
        match self {
            Self::Cidr(net) => net.contains(&addr),
            Self::PrefixList(l) => match addr {
                IpAddr::V4(a) => vpcs[own].prefix_list(*l).contains(a),
                IpAddr::V6(_) => false,
            },
            Self::Group(_) | Self::PeerGroup { .. } => {
                group_members(vpcs, own, self).any(|i| i.has_address(addr))
            }
        }
    }
}

/// The instances a group reference of a rule of VPC `own` names (the members of the group,
/// in its VPC); none for a CIDR or a prefix list.
pub fn group_members<'a>(
    vpcs: &'a [VpcDef],
    own: usize,
    peer: &SgPeer,
) -> impl Iterator<Item = &'a InstanceDef> + 'a {
    let (v, g) = peer.group_of(own).unzip();
    v.into_iter().flat_map(move |v| {
        vpcs[v]
            .instances
            .iter()
            .filter(move |i| g.is_some_and(|g| i.security_groups.contains(&g)))
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceDef {
    pub name: String,
    /// Index in the VPC's `subnets`.
    pub subnet: usize,
    /// The instance's own router port (its ENI); `None`: it sits on its subnet's shared
    /// segment.
    pub interface: Option<String>,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// Inside the subnet's `ipv6_cidr`.
    pub ipv6_addresses: Vec<Ipv6Addr>,
    /// Indices in the VPC's `security_groups` (`default` if the file names none).
    pub security_groups: Vec<usize>,
    /// AWS's source/destination check: on, the instance's port accepts only its own address
    /// as source; off (a NAT instance), routes may target it and it may send for others.
    pub source_dest_check: bool,
}

impl InstanceDef {
    /// Whether `addr` is the instance's: its private IP, or one of its IPv6 addresses.
    pub fn has_address(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.private_ip == a,
            IpAddr::V6(a) => self.ipv6_addresses.contains(&a),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeeringDef {
    pub name: String,
    /// Index in `ValidatedConfig::vpcs`.
    pub peer_vpc: usize,
    /// The peer VPC declares the same connection (same name) towards this VPC. Only an
    /// accepted connection carries packets: routes to an unaccepted one drop them
    /// (`blackhole`, as AWS shows routes to a connection that is not active).
    pub accepted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogConfig {
    /// 60 or 600 seconds (the same for every log: the counters are drained once).
    pub aggregation_interval: u32,
    pub destination: FlowLogDestination,
    /// The record's fields in order (AWS names, e.g. `srcaddr`).
    pub fields: Vec<String>,
    pub traffic_type: TrafficType,
    pub scope: FlowLogScope,
}

/// AWS's `TrafficType` of a flow log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficType {
    Accept,
    Reject,
    #[default]
    All,
}

/// What a flow log covers (validated names); all `None`: everything. A subnet or instance
/// scope has its VPC filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowLogScope {
    pub vpc: Option<String>,
    pub subnet: Option<String>,
    pub instance: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowLogDestination {
    Stdout,
    File(std::path::PathBuf),
    /// IPFIX (RFC 7011) over UDP to `host:port`.
    Ipfix {
        host: String,
        port: u16,
    },
}

/// What a router interface of the definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceRole {
    /// Instance `instance` of VPC `vpc` has it as its own port (ENI).
    Port { vpc: usize, instance: usize },
    /// The shared segment of subnet `subnet` of VPC `vpc`.
    Segment { vpc: usize, subnet: usize },
    /// The internet gateway's uplink of VPC `vpc`.
    Uplink { vpc: usize },
    /// The link of gateway `gateway` (index in `gateways`) of VPC `vpc`.
    Gateway { vpc: usize, gateway: usize },
}

impl ValidatedConfig {
    /// Every router interface the definition names, each once (validation keeps names
    /// unique): instance ports and shared segments in file order, then each VPC's uplink and
    /// gateway links.
    pub fn interfaces(&self) -> Vec<(&str, InterfaceRole)> {
        let mut out = Vec::new();
        for (v, vpc) in self.vpcs.iter().enumerate() {
            for (s, subnet) in vpc.subnets.iter().enumerate() {
                if let Some(name) = &subnet.interface {
                    out.push((name.as_str(), InterfaceRole::Segment { vpc: v, subnet: s }));
                }
                for (i, inst) in vpc.instances.iter().enumerate() {
                    if inst.subnet == s
                        && let Some(name) = &inst.interface
                    {
                        out.push((
                            name.as_str(),
                            InterfaceRole::Port {
                                vpc: v,
                                instance: i,
                            },
                        ));
                    }
                }
            }
        }
        for (v, vpc) in self.vpcs.iter().enumerate() {
            if let Some(igw) = &vpc.internet_gateway {
                out.push((igw.interface.as_str(), InterfaceRole::Uplink { vpc: v }));
            }
            for (g, gateway) in vpc.gateways.iter().enumerate() {
                let role = InterfaceRole::Gateway { vpc: v, gateway: g };
                out.push((gateway.interface.as_str(), role));
            }
        }
        out
    }

    /// The interface traffic to instance `i` of VPC `v` leaves by: its own port, else its
    /// subnet's shared segment.
    pub fn instance_interface(&self, v: usize, i: usize) -> Option<&str> {
        let vpc = &self.vpcs[v];
        let inst = &vpc.instances[i];
        inst.interface
            .as_deref()
            .or(vpc.subnets[inst.subnet].interface.as_deref())
    }

    /// Counts for a one-line summary.
    pub fn summary(&self) -> String {
        let sum = |f: fn(&VpcDef) -> usize| self.vpcs.iter().map(f).sum::<usize>();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        [
            plural(self.vpcs.len(), "VPC", "VPCs"),
            plural(sum(|v| v.subnets.len()), "subnet", "subnets"),
            plural(sum(|v| v.route_tables.len()), "route table", "route tables"),
            plural(sum(|v| v.network_acls.len()), "network ACL", "network ACLs"),
            plural(
                sum(|v| v.security_groups.len()),
                "security group",
                "security groups",
            ),
            plural(sum(|v| v.instances.len()), "instance", "instances"),
            plural(sum(|v| v.nat_gateways.len()), "NAT gateway", "NAT gateways"),
        ]
        .join(", ")
    }
}

/// `HOST:PORT` (`[v6]:PORT` too) with a non-zero port.
pub fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmpv6_rules_match_type_and_code_like_icmp_ones() {
        let echo = TrafficMatch {
            protocol: Some(PROTO_ICMPV6),
            icmp_type: Some(128),
            ..TrafficMatch::ANY
        };
        assert!(echo.matches(PROTO_ICMPV6, 0, 128, 0));
        assert!(echo.matches(PROTO_ICMPV6, 0, 128, 7), "any code");
        assert!(!echo.matches(PROTO_ICMPV6, 0, 129, 0));
        assert!(
            !echo.matches(PROTO_ICMP, 0, 128, 0),
            "ICMP is another protocol"
        );
        let unreachable = TrafficMatch {
            icmp_type: Some(1),
            icmp_code: Some(4),
            ..echo
        };
        assert!(unreachable.matches(PROTO_ICMPV6, 0, 1, 4));
        assert!(!unreachable.matches(PROTO_ICMPV6, 0, 1, 3));
    }
}
