//! The YAML file as written (docs/format.md): serde structs, every one with
//! `deny_unknown_fields` so that a typo is an error and never silently drops a rule.
//!
//! Values whose meaning is checked by [`super::validate`] (CIDRs, addresses, names, numbers)
//! are kept as written, wrapped in [`Loc`] so that each error can name the node's own line and
//! column. Parsing them here would stop at the first bad value; validation reports them all.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A 1-based line and column in the YAML file (0:0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }

    pub(crate) fn from_location(loc: &serde_saphyr::Location) -> Self {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Self::new(clamp(loc.line()), clamp(loc.column()))
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value with the position of its YAML node (where it is used, for an alias).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Loc<T> {
    pub const fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loc<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Self::new(
            spanned.value,
            Pos::from_location(&spanned.referenced),
        ))
    }
}

/// An optional key: absent is `None`; present, it needs a value. A blank one (`ports:` with
/// nothing after it, `~`, `null`) is an error: read as absent it would widen a rule (any port,
/// the allow-all default ACL, the default security group).
fn not_blank<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(de::Error::custom(
            "a blank value is not allowed: give a value or leave the key out",
        )),
    }
}

/// A scalar kept as text whether YAML typed it as a number or a string (`ports: 80` and
/// `ports: 1024-65535`, `protocol: 6` and `protocol: tcp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub vpcs: Vec<Loc<Vpc>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub flow_logs: Option<Loc<FlowLogList>>,
    /// Connection tracking idle timeouts (docs/format.md; AWS has no such key).
    #[serde(default, deserialize_with = "not_blank")]
    pub connection_tracking: Option<Loc<ConnectionTracking>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub name: Loc<String>,
    pub cidr_blocks: Loc<Vec<Loc<String>>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub internet_gateway: Option<Loc<InternetGateway>>,
    /// The VPC's IPv6 block (a /56), optional.
    #[serde(default, deserialize_with = "not_blank")]
    pub ipv6_cidr_block: Option<Loc<String>>,
    /// IPv6 out, replies only back in; its interface may be the internet gateway's uplink.
    #[serde(default, deserialize_with = "not_blank")]
    pub egress_only_internet_gateway: Option<Loc<InternetGateway>>,
    /// A virtual private gateway towards a customer network (docs/format.md, "VPN gateway").
    #[serde(default, deserialize_with = "not_blank")]
    pub vpn_gateway: Option<Loc<VpnGateway>>,
    #[serde(default)]
    pub nat_gateways: Vec<Loc<NatGateway>>,
    #[serde(default)]
    pub subnets: Vec<Loc<Subnet>>,
    #[serde(default)]
    pub route_tables: Vec<Loc<RouteTable>>,
    #[serde(default)]
    pub network_acls: Vec<Loc<NetworkAcl>>,
    #[serde(default)]
    pub security_groups: Vec<Loc<SecurityGroup>>,
    #[serde(default)]
    pub instances: Vec<Loc<Instance>>,
    #[serde(default)]
    pub peering_connections: Vec<Loc<PeeringConnection>>,
    /// Customer-managed prefix lists: named sets of CIDRs that security group rules and
    /// routes to gateway endpoints name as `pl:NAME`.
    #[serde(default)]
    pub prefix_lists: Vec<Loc<PrefixList>>,
    /// Gateway endpoints: a prefix list's services reached out of an interface, the private
    /// source kept (routes `pl:NAME -> ENDPOINT`).
    #[serde(default)]
    pub gateway_endpoints: Vec<Loc<GatewayEndpoint>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGateway {
    pub name: Loc<String>,
    pub interface: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnGateway {
    pub name: Loc<String>,
    pub interface: Loc<String>,
    /// The customer network's prefixes (the VPN connection's static routes).
    pub routes: Loc<Vec<Loc<String>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayEndpoint {
    pub name: Loc<String>,
    pub interface: Loc<String>,
    /// The prefix list of the services behind it (a name of the VPC's `prefix_lists`).
    pub prefix_list: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatGateway {
    pub name: Loc<String>,
    pub subnet: Loc<String>,
    pub private_ip: Loc<String>,
    pub elastic_ip: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub name: Loc<String>,
    pub cidr: Loc<String>,
    /// The subnet's IPv6 block (a /64 inside the VPC's `ipv6_cidr_block`), optional.
    #[serde(default, deserialize_with = "not_blank")]
    pub ipv6_cidr: Option<Loc<String>>,
    /// A shared L2 segment for the subnet's hosts without a port of their own.
    #[serde(default, deserialize_with = "not_blank")]
    pub interface: Option<Loc<String>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub route_table: Option<Loc<String>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub network_acl: Option<Loc<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub name: Loc<String>,
    /// Gateways whose routes the table takes as propagated routes (the VPN gateway).
    #[serde(default)]
    pub propagate: Vec<Loc<String>>,
    #[serde(default)]
    pub routes: Vec<Loc<Route>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: Loc<String>,
    pub target: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAcl {
    pub name: Loc<String>,
    #[serde(default)]
    pub inbound: Vec<Loc<AclRule>>,
    #[serde(default)]
    pub outbound: Vec<Loc<AclRule>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// The protocol/ports/ICMP part every rule kind shares (checked by one function).
pub trait TrafficSpec {
    fn protocol(&self) -> &Loc<Text>;
    fn ports(&self) -> Option<&Loc<Text>>;
    fn icmp(&self) -> Option<&Loc<Icmp>>;
}

macro_rules! traffic_spec {
    ($($t:ty),+) => {$(
        impl TrafficSpec for $t {
            fn protocol(&self) -> &Loc<Text> { &self.protocol }
            fn ports(&self) -> Option<&Loc<Text>> { self.ports.as_ref() }
            fn icmp(&self) -> Option<&Loc<Icmp>> { self.icmp.as_ref() }
        }
    )+};
}
traffic_spec!(AclRule, SgInbound, SgOutbound);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    pub rule: Loc<i64>,
    pub protocol: Loc<Text>,
    #[serde(default, deserialize_with = "not_blank")]
    pub ports: Option<Loc<Text>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub icmp: Option<Loc<Icmp>>,
    pub cidr: Loc<String>,
    pub action: Loc<Action>,
}

/// `icmp: { type: 3, code: 4 }`; an omitted field or -1 means any.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Icmp {
    #[serde(default, rename = "type", deserialize_with = "not_blank")]
    pub icmp_type: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub code: Option<Loc<i64>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub name: Loc<String>,
    #[serde(default)]
    pub inbound: Vec<Loc<SgInbound>>,
    /// `None` (omitted) allows all outbound traffic, as for a new AWS group.
    #[serde(default, deserialize_with = "not_blank")]
    pub outbound: Option<Vec<Loc<SgOutbound>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgInbound {
    pub protocol: Loc<Text>,
    #[serde(default, deserialize_with = "not_blank")]
    pub ports: Option<Loc<Text>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub icmp: Option<Loc<Icmp>>,
    pub source: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgOutbound {
    pub protocol: Loc<Text>,
    #[serde(default, deserialize_with = "not_blank")]
    pub ports: Option<Loc<Text>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub icmp: Option<Loc<Icmp>>,
    pub destination: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: Loc<String>,
    pub subnet: Loc<String>,
    /// The instance's own router port (its ENI).
    #[serde(default, deserialize_with = "not_blank")]
    pub interface: Option<Loc<String>>,
    pub private_ip: Loc<String>,
    #[serde(default, deserialize_with = "not_blank")]
    pub public_ip: Option<Loc<String>>,
    /// IPv6 addresses inside the subnet's `ipv6_cidr`.
    #[serde(default)]
    pub ipv6_addresses: Vec<Loc<String>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub security_groups: Option<Loc<Vec<Loc<String>>>>,
    /// AWS's source/destination check (default on): `false` lets the instance send and
    /// receive for other addresses (a NAT instance, which routes may target by name).
    #[serde(default, deserialize_with = "not_blank")]
    pub source_dest_check: Option<Loc<bool>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeeringConnection {
    pub name: Loc<String>,
    pub peer_vpc: Loc<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixList {
    pub name: Loc<String>,
    pub cidrs: Loc<Vec<Loc<String>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLogs {
    #[serde(default, deserialize_with = "not_blank")]
    pub aggregation_interval: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub destination: Option<Loc<String>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub format: Option<Loc<String>>,
    /// `ACCEPT`, `REJECT` or `ALL` (default).
    #[serde(default)]
    pub traffic_type: Option<Loc<String>>,
    /// What the log covers (default: everything).
    #[serde(default)]
    pub scope: Option<Loc<FlowLogScope>>,
}

/// A flow log's resource, as AWS creates them per VPC, subnet or network interface:
/// `{ vpc: NAME }`, `{ subnet: NAME }`, `{ instance: NAME }` (`vpc` too where names repeat).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLogScope {
    #[serde(default)]
    pub vpc: Option<Loc<String>>,
    #[serde(default)]
    pub subnet: Option<Loc<String>>,
    #[serde(default)]
    pub instance: Option<Loc<String>>,
}

/// `flow_logs:`: one log (a mapping) or several (a list of them). `list` tells which was
/// written (it decides the paths of diagnostics).
#[derive(Clone, Debug)]
pub struct FlowLogList {
    pub logs: Vec<Loc<FlowLogs>>,
    pub list: bool,
}

impl<'de> Deserialize<'de> for FlowLogList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = FlowLogList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a flow log (a mapping) or a list of them")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FlowLogList, A::Error> {
                let log = FlowLogs::deserialize(de::value::MapAccessDeserializer::new(map))?;
                // The mapping's position is the `flow_logs` node's (filled in by validation).
                Ok(FlowLogList {
                    logs: vec![Loc::new(log, Pos::new(0, 0))],
                    list: false,
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<FlowLogList, A::Error> {
                let mut logs = Vec::new();
                while let Some(log) = seq.next_element::<Loc<FlowLogs>>()? {
                    logs.push(log);
                }
                Ok(FlowLogList { logs, list: true })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `connection_tracking:` idle timeouts in seconds (an omitted field keeps the AWS default) and
/// the NAT gateways' port range (`nat_port_range: A-B`, default 1024-65535).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionTracking {
    #[serde(default, deserialize_with = "not_blank")]
    pub tcp_established_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub tcp_transitory_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub tcp_closing_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub udp_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub udp_stream_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub icmp_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub other_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub nat_idle_timeout: Option<Loc<i64>>,
    #[serde(default, deserialize_with = "not_blank")]
    pub nat_port_range: Option<Loc<Text>>,
    /// At most this many connections from one elastic IP to one destination (IP, port,
    /// protocol); AWS: 55,000.
    #[serde(default, deserialize_with = "not_blank")]
    pub nat_connections_per_destination: Option<Loc<i64>>,
}
