//! Network ACLs: stateless, ordered, first match wins, implicit final deny.
//!
//! `ACLS` is an array indexed by `acl_id * 2 + direction`; each value is a whole ordered rule
//! list ([`AclTable`]), so replacing a table is one map update and a packet never sees half of
//! one. Rules are sorted by rule number (lowest first) by the agent.

use crate::{Addr6, assert_size, pod};

/// Direction index of inbound rules.
pub const ACL_INBOUND: u32 = 0;
/// Direction index of outbound rules.
pub const ACL_OUTBOUND: u32 = 1;

/// Rules per direction the datapath evaluates. AWS allows 20 by default and 40 at most; the
/// extra room is for custom limits. The loop is bounded by this constant (verifier-friendly).
pub const MAX_ACL_RULES: usize = 128;

/// Network ACLs per generation slot. ACL ids are array positions: the agent allocates them as
/// `slot * MAX_ACLS + n`, so `ACLS` has `2 slots * MAX_ACLS * 2 directions` entries.
pub const MAX_ACLS: u32 = 256;

/// Entries of the `ACLS` array.
pub const ACLS_ENTRIES: u32 = 2 * MAX_ACLS * 2;

/// Rule action: allow.
pub const ACL_ALLOW: u8 = 1;
/// Rule action: deny.
pub const ACL_DENY: u8 = 2;

/// `flags`: the rule matches every protocol (`all`, AWS -1).
pub const ACL_ANY_PROTO: u8 = 1 << 0;
/// `flags`: any ICMP type.
pub const ACL_ANY_ICMP_TYPE: u8 = 1 << 1;
/// `flags`: any ICMP code.
pub const ACL_ANY_ICMP_CODE: u8 = 1 << 2;

/// One rule. For TCP/UDP the port range applies to the destination port (as in AWS); for
/// other protocols the range is 0-65535.
///
/// `ACLS6` holds the IPv6 rules of the same ACLs at the same indexes ([`AclRule6`]: 16-byte
/// address and mask). ICMPv6 rules (protocol 58) match type and code like ICMP ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AclRule<A = u32> {
    /// Remote CIDR (network order): the source for inbound, the destination for outbound.
    pub addr: A,
    pub mask: A,
    /// Destination port range, host order, inclusive.
    pub port_lo: u16,
    pub port_hi: u16,
    /// IP protocol number (ignored with [`ACL_ANY_PROTO`]).
    pub proto: u8,
    /// [`ACL_ALLOW`] or [`ACL_DENY`].
    pub action: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The rule number (1-32766), reported in traces and flow records.
    pub rule_number: u16,
    /// `ACL_ANY_*` bits.
    pub flags: u8,
    pub _pad: u8,
}
assert_size!(AclRule, 20);

/// An IPv6 rule (`ACLS6`).
pub type AclRule6 = AclRule<Addr6>;
assert_size!(AclRule6, 44);

/// One direction of one network ACL: `count` rules, lowest rule number first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclTable<A = u32> {
    pub count: u32,
    pub _pad: u32,
    pub rules: [AclRule<A>; MAX_ACL_RULES],
}
assert_size!(AclTable, 8 + 20 * MAX_ACL_RULES);

/// The IPv6 rules of one direction of one network ACL (`ACLS6`).
pub type AclTable6 = AclTable<Addr6>;
assert_size!(AclTable6, 8 + 44 * MAX_ACL_RULES);

impl<A: Copy + Default> Default for AclTable<A> {
    fn default() -> Self {
        Self {
            count: 0,
            _pad: 0,
            rules: [AclRule::default(); MAX_ACL_RULES],
        }
    }
}

/// `ACLS` index of one direction of an ACL.
#[inline]
pub const fn acl_index(acl_id: u32, direction: u32) -> u32 {
    acl_id * 2 + direction
}

pod!(AclRule, AclTable, AclRule6, AclTable6);
