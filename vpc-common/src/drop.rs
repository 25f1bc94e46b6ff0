//! Drop reasons: every packet the datapath drops is counted under exactly one of these and the
//! program (hook) that dropped it, packets and bytes, in the per-CPU `DROP_COUNTERS` array
//! (index [`drop_slot`]`(reason, hook)`).

use crate::{assert_size, pod};

/// The program that dropped a packet: XDP ingress, TC ingress, or the TC egress guard.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    Xdp = 0,
    TcIngress = 1,
    TcEgress = 2,
}

impl Hook {
    /// Number of hooks.
    pub const COUNT: u32 = 3;
    /// Every hook, in numeric order.
    pub const ALL: [Hook; 3] = [Hook::Xdp, Hook::TcIngress, Hook::TcEgress];

    /// The name in `status`, metrics and flow listings.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::TcIngress => "tc_ingress",
            Self::TcEgress => "tc_egress",
        }
    }
}

/// `DROP_COUNTERS` value (per CPU): packets dropped, and their bytes (the frame as the hook saw
/// it: an skb's whole length, a GSO aggregate as one packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropStats {
    pub packets: u64,
    pub bytes: u64,
}
assert_size!(DropStats, 16);
pod!(DropStats);

/// Slots of `DROP_COUNTERS`: one per (hook, reason), slot 0 of each hook unused.
pub const DROP_SLOTS: u32 = DropReason::COUNT * Hook::COUNT;

/// The `DROP_COUNTERS` index of `reason` dropped by `hook`.
#[inline(always)]
pub const fn drop_slot(reason: DropReason, hook: Hook) -> u32 {
    hook as u32 * DropReason::COUNT + reason as u32
}

/// Why a packet was dropped. The numeric values are part of the map ABI (`DROP_COUNTERS` index).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Headers shorter than they claim, bad IHL, bad total length.
    Malformed = 1,
    /// A non-first IPv4 fragment: ports are unknown, so it cannot be classified (dropped).
    Fragment = 2,
    /// An 802.1Q/802.1ad tagged frame on a VPC interface (VLANs are not part of the model).
    VlanTagged = 3,
    /// Source/destination check: on an instance port, a source (IP, or ARP sender) other than
    /// the instance's address; on a shared segment, a source that is not a registered
    /// instance of the subnet (a NAT gateway's address is the router's, never a host's).
    Spoofed = 4,
    /// No route matched the destination.
    NoRoute = 5,
    /// The matching route targets `blackhole`.
    Blackhole = 6,
    /// Denied by the source subnet's network ACL, outbound.
    AclOutbound = 7,
    /// Denied by the destination subnet's network ACL, inbound.
    AclInbound = 8,
    /// No security group rule of the source instance allows the packet out.
    SecurityGroupOutbound = 9,
    /// No security group rule of the destination instance allows the packet in.
    SecurityGroupInbound = 10,
    /// Internet gateway route used by an instance without a public IP.
    NoPublicAddress = 11,
    /// Unsolicited traffic to a NAT gateway's elastic IP (no translation to reverse).
    NatUnsolicited = 12,
    /// No free source port for a new NAT connection to that destination.
    NatPortExhausted = 13,
    /// Traffic on the uplink to an address the VPC does not answer for.
    UplinkUnsolicited = 14,
    /// The destination is inside a VPC block but no instance has that address.
    UnknownDestination = 15,
    /// TTL would reach zero on forwarding: the sender gets ICMP time exceeded (rate-limited).
    TtlExceeded = 16,
    /// TCP flags that make no sense for the tracked state (or at all).
    InvalidTcpFlags = 17,
    /// IPv6 on a subnet interface that the datapath does not forward (yet): anything but
    /// neighbour discovery and link-local traffic with the router.
    NotIpv4 = 18,
    /// A connection-tracking table update failed (map full and no LRU slot).
    ConntrackFull = 19,
    /// The route needs a target the datapath does not have (missing map entry: config race).
    BadTarget = 20,
    /// A packet the kernel forwarded onto a VPC interface without the datapath's approval
    /// (e.g. from an interface the agent does not manage): caught by the TC egress guard.
    Unapproved = 21,
    /// The kernel's FIB has no usable route/neighbour path for a forwarded packet, or it
    /// disagrees with the VPC route's interface.
    FibFailed = 22,
    /// A packet on the uplink whose source no internet host may have: an address inside a VPC
    /// block, one of the router's own (subnet, uplink, public and elastic) addresses, or a
    /// martian (0/8, 127/8, 169.254/16, 224/4, 240/4).
    UplinkSpoofed = 23,
    /// A TCP RST or FIN whose sequence number lies outside the receiver's window: it would
    /// close (or start closing) a connection it does not belong to.
    TcpOutOfWindow = 24,
    /// Larger than the next hop's MTU: with DF set the sender gets ICMP fragmentation needed
    /// (PMTUD); without, the router does not fragment.
    TooBig = 25,
    /// A NAT gateway carries TCP, UDP and ICMP only (AWS), and of fragments only UDP ones.
    NatProtocol = 26,
    /// A unicast frame addressed to another MAC than the router interface's own (it was
    /// meant for another host of a shared segment).
    NotForRouter = 27,
    /// A TCP packet from inside on a NAT gateway connection that no longer exists (it timed
    /// out): the sender gets a RST, as from an AWS NAT gateway.
    NatExpired = 28,
    /// A packet on a gateway interface (a VPN gateway's, a gateway endpoint's) whose source is
    /// outside the networks behind that gateway (the VPN's routes, the endpoint's prefix list).
    GatewaySpoofed = 29,
    /// A packet from a gateway interface to anything but a private address inside the VPC:
    /// a public or elastic IP, the internet, another gateway (a VPC is no transit network).
    GatewayTransit = 30,
    /// An IPv6 extension header chain the datapath does not walk: longer than it looks
    /// (`ipv6::MAX_EXT_HEADERS`, or reaching past the first 256 bytes), an unknown or
    /// deprecated header (routing type 0 with segments left), hop-by-hop options anywhere
    /// but first.
    Ipv6ExtHeaders = 31,
}

impl DropReason {
    /// Number of slots in `DROP_COUNTERS` (the largest value + 1; slot 0 is unused).
    pub const COUNT: u32 = 32;

    /// Every reason, in numeric order.
    pub const ALL: [DropReason; 31] = [
        Self::Malformed,
        Self::Fragment,
        Self::VlanTagged,
        Self::Spoofed,
        Self::NoRoute,
        Self::Blackhole,
        Self::AclOutbound,
        Self::AclInbound,
        Self::SecurityGroupOutbound,
        Self::SecurityGroupInbound,
        Self::NoPublicAddress,
        Self::NatUnsolicited,
        Self::NatPortExhausted,
        Self::UplinkUnsolicited,
        Self::UnknownDestination,
        Self::TtlExceeded,
        Self::InvalidTcpFlags,
        Self::NotIpv4,
        Self::ConntrackFull,
        Self::BadTarget,
        Self::Unapproved,
        Self::FibFailed,
        Self::UplinkSpoofed,
        Self::TcpOutOfWindow,
        Self::TooBig,
        Self::NatProtocol,
        Self::NotForRouter,
        Self::NatExpired,
        Self::GatewaySpoofed,
        Self::GatewayTransit,
        Self::Ipv6ExtHeaders,
    ];

    /// A stable, snake_case name for logs, metrics and the CLI.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Fragment => "fragment",
            Self::VlanTagged => "vlan_tagged",
            Self::Spoofed => "spoofed",
            Self::NoRoute => "no_route",
            Self::Blackhole => "blackhole",
            Self::AclOutbound => "acl_outbound",
            Self::AclInbound => "acl_inbound",
            Self::SecurityGroupOutbound => "security_group_outbound",
            Self::SecurityGroupInbound => "security_group_inbound",
            Self::NoPublicAddress => "no_public_address",
            Self::NatUnsolicited => "nat_unsolicited",
            Self::NatPortExhausted => "nat_port_exhausted",
            Self::UplinkUnsolicited => "uplink_unsolicited",
            Self::UnknownDestination => "unknown_destination",
            Self::TtlExceeded => "ttl_exceeded",
            Self::InvalidTcpFlags => "invalid_tcp_flags",
            Self::NotIpv4 => "not_ipv4",
            Self::ConntrackFull => "conntrack_full",
            Self::BadTarget => "bad_target",
            Self::Unapproved => "unapproved",
            Self::FibFailed => "fib_failed",
            Self::UplinkSpoofed => "uplink_spoofed",
            Self::TcpOutOfWindow => "tcp_out_of_window",
            Self::TooBig => "too_big",
            Self::NatProtocol => "nat_protocol",
            Self::NotForRouter => "not_for_router",
            Self::NatExpired => "nat_expired",
            Self::GatewaySpoofed => "gateway_spoofed",
            Self::GatewayTransit => "gateway_transit",
            Self::Ipv6ExtHeaders => "ipv6_ext_headers",
        }
    }

    /// The reason with this numeric value.
    pub const fn from_u32(v: u32) -> Option<Self> {
        if v == 0 || v as usize > Self::ALL.len() {
            None
        } else {
            Some(Self::ALL[v as usize - 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_dense_and_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as u32, i as u32 + 1);
            assert_eq!(DropReason::from_u32(*r as u32), Some(*r));
        }
        assert_eq!(DropReason::COUNT as usize, DropReason::ALL.len() + 1);
        assert_eq!(DropReason::from_u32(0), None);
        assert_eq!(DropReason::from_u32(DropReason::COUNT), None);
    }

    #[test]
    fn every_reason_and_hook_has_its_own_slot() {
        let mut seen = [false; DROP_SLOTS as usize];
        for hook in Hook::ALL {
            assert_eq!(Hook::ALL[hook as usize], hook);
            for reason in DropReason::ALL {
                let slot = drop_slot(reason, hook) as usize;
                assert!(slot < DROP_SLOTS as usize && !seen[slot]);
                seen[slot] = true;
            }
        }
    }
}
