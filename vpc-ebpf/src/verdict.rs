//! The verdict types every stage speaks: where a packet goes ([`Forward`]), what the policy
//! pipeline decided ([`Decision`]), and why a decided packet is not sent ([`Refusal`]).

use vpc_common::{DropReason, conntrack::CtPath};

use crate::icmp::IcmpError;

/// Where a packet goes and how its addresses change.
#[derive(Clone, Copy)]
pub struct Forward {
    /// The interface the VPC's routing sends it out of.
    pub ifindex: u32,
    /// New source / destination address (network order); 0 = unchanged.
    pub new_src: u32,
    pub new_dst: u32,
    /// New source / destination port (for ICMP echo: identifier); 0 = unchanged.
    pub new_sport: u16,
    pub new_dport: u16,
    /// The NAT gateway translating the source (0: none); its port is chosen at commit.
    pub nat_gateway: u32,
    /// With `nat_gateway`: the VPC of the inside endpoint (see [`Self::nat_vpc`]). Without:
    /// the neighbour when it is not the destination, a NAT instance the packet is routed to
    /// unchanged (see [`Self::next_hop`]; 0: the destination). One field for both keeps the
    /// XDP stack small; a packet never has both.
    pub via: u32,
    /// For an ICMP error about a translated connection: the inside address (0: none) and port
    /// its quoted header must show.
    pub inner_src: u32,
    pub inner_sport: u16,
    /// Whether `inner_src`/`inner_sport` replace the quoted *destination* instead (an error
    /// from inside about a packet that came in translated).
    pub inner_dst: bool,
}

impl Forward {
    /// A decision taken from the connection's cache (no NAT port to allocate: it is in the
    /// cached rewrite).
    #[inline(always)]
    pub fn cached(path: &CtPath) -> Self {
        Self {
            ifindex: path.out_ifindex,
            new_src: path.new_src,
            new_dst: path.new_dst,
            new_sport: path.new_sport,
            new_dport: path.new_dport,
            nat_gateway: 0,
            via: 0,
            inner_src: 0,
            inner_sport: 0,
            inner_dst: false,
        }
    }

    /// The VPC of the inside endpoint of a NAT gateway's translation.
    #[inline(always)]
    pub fn nat_vpc(&self) -> u32 {
        if self.nat_gateway != 0 { self.via } else { 0 }
    }

    /// The neighbour to send to, when it is not the destination (0): a NAT instance.
    #[inline(always)]
    pub fn next_hop(&self) -> u32 {
        if self.nat_gateway == 0 { self.via } else { 0 }
    }

    /// Out of `ifindex`, with an optional address rewrite.
    #[inline(always)]
    pub fn to(ifindex: u32, new_src: u32, new_dst: u32) -> Self {
        Self {
            ifindex,
            new_src,
            new_dst,
            new_sport: 0,
            new_dport: 0,
            nat_gateway: 0,
            via: 0,
            inner_src: 0,
            inner_sport: 0,
            inner_dst: false,
        }
    }
}

/// The pipeline's answer for a packet that is not dropped.
pub enum Decision {
    /// The interface is not managed by the agent: the kernel's business.
    Unmanaged,
    /// For the router itself (its subnet address, broadcast, multicast, its own uplink traffic).
    ToHost,
    /// Forward as described.
    Forward(Forward),
    /// Answer the sender with a TCP RST (a NAT gateway connection that timed out).
    Reset,
}

/// What a program does with a packet, and what gets accounted for it: the one exit of both
/// ingress programs (`A`: the program's action type). The flow record is written from it
/// (`flows::account`), the drop counter from it (`drop::count_drop`), once per packet. The
/// forwarding decision of a sent packet stays in the caller's [`Forward`] (stack space: the
/// XDP program has none to spare for a copy in every verdict).
pub enum Verdict<A> {
    /// Returned as is, nothing recorded: handed to the kernel (the router's own traffic, an
    /// unmanaged interface, XDP leaving the decision to TC) or answered in place (ARP).
    Return(A),
    /// Forwarded as the caller's `Forward` says: an accepted flow record.
    Sent(A),
    /// Not forwarded: a rejected flow record and a drop counted for `reason`; `answer` is the
    /// action of the reply sent in its place (an ICMP error, a RST), else the packet is dropped.
    Refused {
        reason: DropReason,
        answer: Option<A>,
    },
}

impl<A> Verdict<A> {
    /// Dropped for `reason`, nothing sent.
    #[inline(always)]
    pub fn dropped(reason: DropReason) -> Self {
        Self::Refused {
            reason,
            answer: None,
        }
    }
}

/// Why a packet is not forwarded: a drop, or a drop the sender hears about from the router
/// (ICMP time exceeded / fragmentation needed, `crate::icmp`).
#[derive(Clone, Copy)]
pub enum Refusal {
    Drop(DropReason),
    Icmp(IcmpError),
}

impl From<DropReason> for Refusal {
    fn from(reason: DropReason) -> Self {
        Self::Drop(reason)
    }
}
