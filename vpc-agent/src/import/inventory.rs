//! What both importers produce: the VPC in AWS's terms (IDs, associations, rule entries), before
//! it is named, addressed and written in the project's format by [`super::emit`]. IDs are
//! logical IDs for a template and AWS IDs (`vpc-...`) for describe output.

/// Where something came from: its ID, AWS type and line (0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub id: String,
    pub kind: String,
    pub line: u32,
    /// The `Name` tag, if any.
    pub name_tag: Option<String>,
    /// The file it is in, when the input is several files.
    pub file: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub internet_gateways: Vec<InternetGateway>,
    /// Egress-only internet gateways (IPv6 out, replies back in): the same shape.
    pub egress_only_gateways: Vec<InternetGateway>,
    pub nat_gateways: Vec<NatGateway>,
    pub elastic_ips: Vec<ElasticIp>,
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
    pub interfaces: Vec<Interface>,
    pub peerings: Vec<Peering>,
    pub flow_logs: Vec<FlowLog>,
    pub vpn_gateways: Vec<VpnGateway>,
    pub vpn_connections: Vec<VpnConnection>,
    pub prefix_lists: Vec<PrefixList>,
}

#[derive(Clone, Debug)]
pub struct Vpc {
    pub origin: Origin,
    /// Primary first.
    pub cidr_blocks: Vec<String>,
    /// IPv6 blocks (the format takes one /56).
    pub ipv6_blocks: Vec<CidrEntry>,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub origin: Origin,
    pub vpc: String,
    pub cidr: String,
    /// Its IPv6 block (a /64), if it has one.
    pub ipv6_cidr: Option<CidrEntry>,
    /// Instances launched here get a public IP unless they say otherwise.
    pub map_public_ip: bool,
}

#[derive(Clone, Debug)]
pub struct RouteTable {
    pub origin: Origin,
    pub vpc: String,
    /// The VPC's main route table (describe output; a template cannot define it).
    pub main: bool,
    pub routes: Vec<Route>,
    /// IDs of the subnets explicitly associated.
    pub subnets: Vec<String>,
    /// VPN gateways whose routes the table takes (route propagation).
    pub propagations: Vec<Propagation>,
}

/// Route propagation from a VPN gateway into a table.
#[derive(Clone, Debug)]
pub struct Propagation {
    /// The `AWS::EC2::VPNGatewayRoutePropagation` resource, or the table for describe output.
    pub origin: Origin,
    pub gateway: String,
}

#[derive(Clone, Debug)]
pub struct Route {
    /// The `AWS::EC2::Route` resource, or the table for describe output.
    pub origin: Origin,
    pub destination: String,
    pub target: RouteTo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTo {
    /// `GatewayId`: an internet gateway or a VPN gateway.
    Gateway(String),
    NatGateway(String),
    /// `EgressOnlyInternetGatewayId`.
    EgressOnly(String),
    Peering(String),
    Blackhole,
    /// A target the format cannot express: what it is.
    Unsupported(String),
}

#[derive(Clone, Debug)]
pub struct InternetGateway {
    pub origin: Origin,
    /// IDs of the VPCs it is attached to.
    pub vpcs: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct NatGateway {
    pub origin: Origin,
    pub subnet: String,
    pub private_ip: Option<String>,
    pub elastic_ip: NatAddress,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatAddress {
    /// The address itself (describe output).
    Address(String),
    /// An elastic IP by ID (`AllocationId: !GetAtt EIP.AllocationId`).
    Allocation(String),
    Unknown,
}

#[derive(Clone, Debug)]
pub struct ElasticIp {
    pub origin: Origin,
    pub address: Option<String>,
    /// The instance or network interface it is associated with.
    pub associated: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NetworkAcl {
    pub origin: Origin,
    pub vpc: String,
    /// The VPC's default network ACL (describe output).
    pub default: bool,
    pub entries: Vec<AclEntry>,
    pub subnets: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct AclEntry {
    pub origin: Origin,
    pub egress: bool,
    pub rule: i64,
    /// IP protocol number, -1 = all.
    pub protocol: i64,
    pub ports: Option<(i64, i64)>,
    /// (type, code), -1 = any.
    pub icmp: Option<(i64, i64)>,
    /// IPv4 (`CidrBlock`) or IPv6 (`Ipv6CidrBlock`).
    pub cidr: String,
    pub allow: bool,
}

#[derive(Clone, Debug)]
pub struct SecurityGroup {
    pub origin: Origin,
    pub vpc: String,
    /// AWS's `GroupName` (for `SourceSecurityGroupName` and the `default` group).
    pub group_name: Option<String>,
    pub inbound: Vec<SgRule>,
    /// `None`: no egress rule given, AWS's default allow-all applies.
    pub outbound: Option<Vec<SgRule>>,
}

#[derive(Clone, Debug)]
pub struct SgRule {
    pub origin: Origin,
    /// IP protocol number, -1 = all.
    pub protocol: i64,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub peer: SgPeer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer {
    Cidr(String),
    /// A group by ID.
    Group(String),
    /// A prefix list by ID (`SourcePrefixListId`, `PrefixListIds`).
    PrefixList(String),
}

/// A network interface: what the format calls an instance (one address, its groups).
#[derive(Clone, Debug)]
pub struct Interface {
    pub origin: Origin,
    /// The instance it belongs to (its own ID for a standalone interface).
    pub instance: String,
    /// The interface's own ID when it has one (`eni-...`, a NetworkInterface resource).
    pub eni: Option<String>,
    /// The instance's primary interface (device 0).
    pub primary: bool,
    pub subnet: String,
    pub private_ip: Option<String>,
    pub public_ip: PublicIp,
    /// Its IPv6 addresses.
    pub ipv6_addresses: Vec<String>,
    /// Security group IDs; empty: the VPC's default group.
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicIp {
    None,
    /// AWS assigns one at launch (`AssociatePublicIpAddress`, the subnet's
    /// `MapPublicIpOnLaunch`).
    Launch,
    Address(String),
}

#[derive(Clone, Debug)]
pub struct Peering {
    pub origin: Origin,
    pub vpc: String,
    /// `None`: the peer is not part of the import (another account, region or stack).
    pub peer_vpc: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FlowLog {
    pub origin: Origin,
    pub interval: Option<i64>,
    pub format: Option<String>,
}

/// A virtual private gateway.
#[derive(Clone, Debug)]
pub struct VpnGateway {
    pub origin: Origin,
    /// IDs of the VPCs it is attached to.
    pub vpcs: Vec<String>,
}

/// A Site-to-Site VPN connection on a virtual private gateway.
#[derive(Clone, Debug)]
pub struct VpnConnection {
    pub origin: Origin,
    /// The VPN gateway's ID (`None`: not on one, e.g. on a transit gateway).
    pub gateway: Option<String>,
    /// Static routing; `false`: BGP, whose routes the customer gateway advertises.
    pub static_only: bool,
    /// Its static routes (`VPNConnectionRoute` resources, `Routes` of describe output).
    pub routes: Vec<CidrEntry>,
}

/// A CIDR with where it is written (a static route, a prefix list entry, an IPv6 block).
#[derive(Clone, Debug)]
pub struct CidrEntry {
    pub origin: Origin,
    pub cidr: String,
}

/// A managed prefix list.
#[derive(Clone, Debug)]
pub struct PrefixList {
    pub origin: Origin,
    /// `IPv4` or `IPv6` (AWS's `AddressFamily`).
    pub family: String,
    /// Owned by AWS (`com.amazonaws.REGION.s3`): its entries change without the owner.
    pub aws_managed: bool,
    /// Its entries' CIDRs; `None`: the input does not hold them.
    pub cidrs: Option<Vec<CidrEntry>>,
}
