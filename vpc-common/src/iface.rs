//! Interfaces, subnets, VPCs and endpoints: what the datapath knows about the topology.
//!
//! Ids (`vpc_id`, `subnet_id`, route table and ACL ids) are allocated by the agent's compiler.
//! Policy is double-buffered for atomic switch-over: the `CONFIG` map names the active `slot`,
//! maps keyed by something the packet carries (ifindex, addresses) include the slot in the key,
//! and ids carry it in their top bits ([`slot_id`]), so a packet looks up one generation only.

use crate::{assert_size, pod};

/// Bits of an id that hold the generation slot.
pub const SLOT_SHIFT: u32 = 30;

/// An id in generation slot `slot` (0 or 1).
#[inline]
pub const fn slot_id(slot: u32, local: u32) -> u32 {
    (slot << SLOT_SHIFT) | local
}

/// Global datapath configuration (`CONFIG` array, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalConfig {
    /// [`crate::LAYOUT_VERSION`] of the agent that wrote the maps.
    pub layout_version: u32,
    /// The generation slot (0 or 1) packets use.
    pub active_slot: u32,
    /// Configuration generation, increased by every applied change.
    pub generation: u64,
}
assert_size!(GlobalConfig, 16);

/// The interface is a subnet's router port (hosts attached at L2).
pub const IFACE_SUBNET: u8 = 1;
/// The interface is an internet gateway uplink.
pub const IFACE_UPLINK: u8 = 2;
/// The interface leads to a gateway that carries packets untranslated: a VPN gateway's link
/// towards the customer network, a gateway endpoint's link towards its service.
pub const IFACE_GATEWAY: u8 = 3;

/// `IFACES` key: an interface in one generation slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceKey {
    pub ifindex: u32,
    pub slot: u32,
}
assert_size!(IfaceKey, 8);

/// `IfaceInfo::flags`: a virtual device (veth, tap, ...). Frames here may carry partial
/// checksums (the hosts' checksum offload) and GSO aggregates that only the skb knows about,
/// so XDP leaves every packet of such an interface to the TC program.
pub const IFACE_F_VIRTUAL: u8 = 1 << 0;
/// `IfaceInfo::flags`, on an instance port: the instance's source/destination check is off
/// (a NAT instance). Besides its own address the port accepts any source an internet host
/// could have (none of the uplink's anti-spoofing table: no VPC, VPN, router, public or
/// martian address), with the instance's own security groups; such packets are delivered
/// inside the VPC only.
pub const IFACE_F_NO_SOURCE_CHECK: u8 = 1 << 1;

/// `IFACES` value: what an interface is.
///
/// A subnet interface is either an instance's own port (`instance_ip != 0`: the instance's
/// ENI, the router its only L2 peer, answering ARP for the whole subnet) or a shared segment
/// (`instance_ip == 0`: hosts of the subnet reach each other without the router).
///
/// ```text
///  0      1      2                      8             12            16            20          24
/// +------+------+----------------------+-------------+-------------+-------------+-----------+
/// | kind | flags| mac (the port's own) | vpc_id      | subnet_id   | instance_ip | router_ip |
/// +------+------+----------------------+-------------+-------------+-------------+-----------+
/// 24            28
/// +-------------+
/// | source_table|
/// +-------------+
/// ```
///
/// A gateway interface ([`IFACE_GATEWAY`]) names, in `source_table`, the `ROUTES` table of the
/// networks behind the gateway: the only sources it accepts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceInfo {
    /// [`IFACE_SUBNET`], [`IFACE_UPLINK`] or [`IFACE_GATEWAY`].
    pub kind: u8,
    /// `IFACE_F_*` bits.
    pub flags: u8,
    /// The router interface's own MAC address (source of the ARP answers on a port).
    pub mac: [u8; 6],
    /// The VPC of the subnet (for an uplink or a gateway: the VPC whose gateway it is).
    pub vpc_id: u32,
    /// The subnet (0 for an uplink).
    pub subnet_id: u32,
    /// On an instance port: the instance's private address (network order), the only source
    /// the port accepts. 0 for a shared segment and for an uplink.
    pub instance_ip: u32,
    /// The router's own address on this interface (network order), the source of the ICMP
    /// errors it sends there: the subnet's `.1`, or the uplink's first address. 0: none
    /// (no ICMP errors are sent on it).
    pub router_ip: u32,
    /// On a gateway interface: the `ROUTES` table of the sources it accepts (0 elsewhere).
    pub source_table: u32,
}
assert_size!(IfaceInfo, 28);

impl IfaceInfo {
    /// An instance's own port (as opposed to a shared segment or an uplink).
    #[inline(always)]
    pub const fn is_port(&self) -> bool {
        self.kind == IFACE_SUBNET && self.instance_ip != 0
    }
}

/// `SUBNETS` value, keyed by `subnet_id` (u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubnetInfo {
    /// The subnet's shared segment (hosts without their own port); 0: none.
    pub ifindex: u32,
    pub vpc_id: u32,
    /// Route table id (key prefix in `ROUTES`).
    pub route_table: u32,
    /// Network ACL id (`ACLS` index is `acl_id * 2 + direction`).
    pub acl_id: u32,
    /// Subnet network address and mask (network order).
    pub cidr: u32,
    pub mask: u32,
    /// The router's own address in the subnet (.1).
    pub router_ip: u32,
    pub _pad: u32,
}
assert_size!(SubnetInfo, 32);

/// `VPCS` value, keyed by `vpc_id` (u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VpcInfo {
    /// The internet gateway's uplink interface (0: the VPC has no internet gateway).
    pub igw_ifindex: u32,
    /// Route table holding only the VPC's local (subnet) routes, used for traffic that arrives
    /// from the internet or over a peering connection.
    pub local_table: u32,
    /// The egress-only internet gateway's interface (0: none). IPv6 from the internet comes in
    /// on it or the internet gateway's (`decide6_inbound`).
    pub eigw_ifindex: u32,
}
assert_size!(VpcInfo, 12);

/// The endpoint is an instance's network interface.
pub const ENDPOINT_INSTANCE: u8 = 1;
/// The endpoint is a NAT gateway's interface.
pub const ENDPOINT_NAT_GATEWAY: u8 = 2;

/// `ENDPOINTS` key: a private address in a VPC.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub vpc_id: u32,
    /// Private address (network order).
    pub ip: u32,
}
assert_size!(EndpointKey, 8);

/// `ENDPOINTS` value: a registered address (source/destination check, delivery, policy).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// [`ENDPOINT_INSTANCE`] or [`ENDPOINT_NAT_GATEWAY`].
    pub kind: u8,
    pub _pad: [u8; 3],
    pub subnet_id: u32,
    /// Instance id (or NAT gateway id), for security groups and flow logs.
    pub id: u32,
    /// Public IP (network order) mapped 1:1 by the internet gateway; 0 = none.
    pub public_ip: u32,
    /// The instance's set of security groups (`SG_RULES` key): instances with the same groups
    /// share one set and its entries. 0 for NAT gateways (no security groups).
    pub sg_set: u32,
    /// The instance's own port (ifindex) that traffic to it leaves by; 0: its subnet's
    /// shared segment (`SubnetInfo::ifindex`).
    pub ifindex: u32,
}
assert_size!(Endpoint, 24);

/// `PUBLIC_IPS` key: a public (elastic) address the router answers for on the uplink.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey {
    pub ip: u32,
    pub slot: u32,
}
assert_size!(PublicKey, 8);

/// `PUBLIC_IPS` value: where a public address leads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublicTarget {
    /// [`ENDPOINT_INSTANCE`] (1:1 translation) or [`ENDPOINT_NAT_GATEWAY`] (replies only).
    pub kind: u8,
    pub _pad: [u8; 3],
    pub vpc_id: u32,
    /// The private address behind it.
    pub private_ip: u32,
    /// Instance id or NAT gateway id.
    pub id: u32,
}
assert_size!(PublicTarget, 16);

/// `NAT_GATEWAYS` value, keyed by NAT gateway id (u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatGatewayInfo {
    pub vpc_id: u32,
    /// The (public) subnet the gateway lives in.
    pub subnet_id: u32,
    pub private_ip: u32,
    pub elastic_ip: u32,
}
assert_size!(NatGatewayInfo, 16);

/// `SUBNETS6` value, keyed by `subnet_id` (u32) like `SUBNETS`: the subnet's IPv6 /64, for
/// the router advertisements and neighbour discovery on its instance ports. A subnet without
/// an IPv6 block has no entry.
///
/// ```text
///  0                    8
/// +--------------------+
/// | prefix (the /64's  |
/// | first 8 bytes)     |
/// +--------------------+
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subnet6Info {
    pub prefix: [u8; 8],
}
assert_size!(Subnet6Info, 8);

/// The router's link-local address on an interface with MAC `mac`: `fe80::` and the MAC's
/// modified EUI-64 (RFC 4291 appendix A), the address the kernel gives the interface by
/// default. The agent makes sure each IPv6 instance port has it (the port's MAC may have
/// changed since the kernel made one); the datapath advertises it.
#[inline(always)]
pub const fn router_link_local(mac: &[u8; 6]) -> [u8; 16] {
    [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ]
}

/// `ENDPOINTS6` key: an IPv6 address of an endpoint in a VPC (the value is an [`Endpoint`],
/// the same one as for the endpoint's IPv4 address).
///
/// ```text
///  0         4                                20
/// +---------+----------------------------------+
/// | vpc_id  | address (16 bytes, network order) |
/// +---------+----------------------------------+
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint6Key {
    pub vpc_id: u32,
    pub addr: [u8; 16],
}
assert_size!(Endpoint6Key, 20);

pod!(
    GlobalConfig,
    Subnet6Info,
    Endpoint6Key,
    IfaceKey,
    IfaceInfo,
    SubnetInfo,
    VpcInfo,
    EndpointKey,
    Endpoint,
    PublicKey,
    PublicTarget,
    NatGatewayInfo,
);
