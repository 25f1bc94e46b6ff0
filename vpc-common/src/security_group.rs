//! Security groups, compiled into lookups so that the per-packet cost does not grow with the
//! number of rules (new flows only; packets of tracked connections skip them).
//!
//! Two LPM tries:
//!
//! 1. `SG_REMOTES` classifies the remote address. Every CIDR named by a rule of a VPC's groups
//!    and every instance address (for `sg:NAME` references, as /32) is an entry; the most
//!    specific match gives the remote's *class* (a non-zero id). A rule for CIDR C covers every
//!    class whose prefix lies inside C, so the agent writes a rule once per covered class.
//!
//!    ```text
//!    key: | vpc_id (u32) | addr (u32, network order) |   prefix_len = 32 + CIDR length
//!    ```
//!
//! 2. `SG_RULES` answers "does any rule of this instance allow (direction, protocol, class,
//!    port)". Port ranges become port prefixes (at most 30 per range).
//!
//!    ```text
//!    key: | endpoint (u32) | class (u32) | direction (u8) | proto (u8) | port (u16, BE) |
//!    prefix_len = 80 + port prefix length
//!    ```
//!
//!    `endpoint` is the instance's security group set (`Endpoint::sg_set`): instances with the
//!    same groups share entries, so the map grows with sets × classes, not instances². `proto` 0 holds the rules for every
//!    protocol (`all`), looked up second. For ICMP the port is `type << 8 | code`: any type is
//!    port prefix 0, a type with any code is prefix 8. Protocols without ports use prefix 0.

use crate::{Addr6, assert_size, pod};

/// Bits of a `SG_REMOTES` key before the address.
pub const SG_REMOTE_FIXED_BITS: u32 = 32;

/// `SG_REMOTES` key data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SgRemoteKey<A = u32> {
    pub vpc_id: u32,
    pub addr: A,
}
assert_size!(SgRemoteKey, 8);

/// `SG_REMOTES6` key data: IPv6 remotes (rule CIDRs, instances' IPv6 addresses as /128),
/// `prefix_len = 32 + CIDR length`. Their classes are numbered apart from the IPv4 ones, so
/// both families share `SG_RULES`.
pub type SgRemote6Key = SgRemoteKey<Addr6>;
assert_size!(SgRemote6Key, 20);

/// Bits of a `SG_RULES` key before the port.
pub const SG_RULE_FIXED_BITS: u32 = 80;

/// The `proto` of rules that match every protocol.
pub const SG_ANY_PROTO: u8 = 0;

/// `SG_RULES` key data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SgRuleKey {
    pub endpoint: u32,
    pub class: u32,
    /// `acl::ACL_INBOUND` (0) or `acl::ACL_OUTBOUND` (1), as u8.
    pub direction: u8,
    pub proto: u8,
    /// Port in network byte order (for ICMP: `type << 8 | code`).
    pub port_be: u16,
}
assert_size!(SgRuleKey, 12);

/// `SG_RULES` value: which rule allowed it (for traces), `group << 16 | rule index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SgRuleValue {
    pub rule: u32,
}
assert_size!(SgRuleValue, 4);

pod!(SgRemoteKey, SgRemote6Key, SgRuleKey, SgRuleValue);
