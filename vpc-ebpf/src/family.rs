//! The address families: what differs between IPv4 and IPv6 for the code that is the same
//! for both (network ACLs, security groups, routes, connection tracking, local delivery, flow
//! records).
//! Each generic function is compiled once per family; the maps of a family are its
//! `Family` functions' (`ROUTES` / `ROUTES6` ...), their keys the same `vpc-common` types with
//! the family's address (`u32`: IPv4, network order; `Addr6`: IPv6).

use vpc_common::{
    Addr6, DropReason,
    acl::{ACLS_ENTRIES, AclTable},
    conntrack::{CONNTRACK_ENTRIES, CT_UNASSURED_ENTRIES, CtEntry, CtKey},
    flow::{FLOWS_ENTRIES, FlowKey, FlowStats},
    iface::{Endpoint, Endpoint6Key},
    nat::NatKey,
    proto::{
        ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, PROTO_ICMP,
        PROTO_ICMPV6,
    },
    route::{RouteKey, RouteValue},
    security_group::SgRemoteKey,
};

use aya_ebpf::{
    btf_maps::{Array, LpmTrie, LruHashMap, PerCpuHashMap},
    cty::c_void,
};

use crate::{
    maps::{
        self, ACLS, ACLS6, CONNTRACK, CONNTRACK6, CT_UNASSURED, CT_UNASSURED6, ENDPOINTS6, FLOWS,
        FLOWS6, ROUTES, ROUTES_N, ROUTES6, SG_REMOTES, SG_REMOTES_N, SG_REMOTES6, copied,
    },
    nat,
    packet::Flow,
    verdict::Forward,
};

/// An address family, by its address type.
pub trait Family: Copy + PartialEq + Default + 'static {
    /// Bits of an address (the full prefix length of a lookup).
    const BITS: u32;
    /// The family's ICMP protocol and its echo request / reply types.
    const ICMP: u8;
    const ECHO_REQUEST: u8;
    const ECHO_REPLY: u8;
    /// The `bpf_loop` callback of an ACL scan of the family's rules (`crate::acl`): a
    /// function of its own per family, as a generic one would have no BTF.
    const ACL_STEP: extern "C" fn(u64, *mut c_void) -> i64;

    fn routes() -> &'static LpmTrie<RouteKey<Self>, RouteValue, ROUTES_N>;
    fn acls() -> &'static Array<AclTable<Self>, { ACLS_ENTRIES as usize }>;
    fn sg_remotes() -> &'static LpmTrie<SgRemoteKey<Self>, u32, SG_REMOTES_N>;
    fn conntrack() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CONNTRACK_ENTRIES as usize }>;
    fn unassured() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CT_UNASSURED_ENTRIES as usize }>;
    fn flows() -> &'static PerCpuHashMap<FlowKey<Self>, FlowStats, { FLOWS_ENTRIES as usize }>;

    /// The registered endpoint at `addr` in VPC `vpc_id`.
    fn endpoint(vpc_id: u32, addr: Self) -> Option<Endpoint>;

    /// Whether `self` lies in the prefix `net` / `mask` (`net` has no bits outside `mask`).
    fn within(&self, net: &Self, mask: &Self) -> bool;

    /// The address as one word of a trace record (IPv4: itself; IPv6: its last four bytes,
    /// enough to tell the hosts of a subnet apart).
    fn trace_word(&self) -> u32;

    /// Releases the translation of a connection that goes (only IPv4 connections through a
    /// NAT gateway have one).
    fn release_nat(connection: &CtKey<Self>, entry: &CtEntry);

    /// A NAT gateway's port for new connection `flow` (`fwd.nat_gateway` set): claimed, or in
    /// trace mode (`claim` false) only the one a claim would take. IPv6 has no NAT gateway.
    fn nat_port(fwd: &Forward, flow: &Flow<Self>, claim: bool) -> Result<u16, DropReason>;
}

impl Family for u32 {
    const BITS: u32 = 32;
    const ICMP: u8 = PROTO_ICMP;
    const ECHO_REQUEST: u8 = ICMP_ECHO_REQUEST;
    const ECHO_REPLY: u8 = ICMP_ECHO_REPLY;
    const ACL_STEP: extern "C" fn(u64, *mut c_void) -> i64 = crate::acl::acl_step4;

    #[inline(always)]
    fn routes() -> &'static LpmTrie<RouteKey<Self>, RouteValue, ROUTES_N> {
        &ROUTES
    }
    #[inline(always)]
    fn acls() -> &'static Array<AclTable<Self>, { ACLS_ENTRIES as usize }> {
        &ACLS
    }
    #[inline(always)]
    fn sg_remotes() -> &'static LpmTrie<SgRemoteKey<Self>, u32, SG_REMOTES_N> {
        &SG_REMOTES
    }
    #[inline(always)]
    fn conntrack() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CONNTRACK_ENTRIES as usize }> {
        &CONNTRACK
    }
    #[inline(always)]
    fn unassured() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CT_UNASSURED_ENTRIES as usize }> {
        &CT_UNASSURED
    }
    #[inline(always)]
    fn flows() -> &'static PerCpuHashMap<FlowKey<Self>, FlowStats, { FLOWS_ENTRIES as usize }> {
        &FLOWS
    }
    #[inline(always)]
    fn endpoint(vpc_id: u32, addr: Self) -> Option<Endpoint> {
        maps::endpoint(vpc_id, addr)
    }
    #[inline(always)]
    fn within(&self, net: &Self, mask: &Self) -> bool {
        *self & *mask == *net
    }
    #[inline(always)]
    fn trace_word(&self) -> u32 {
        *self
    }
    #[inline(always)]
    fn nat_port(fwd: &Forward, flow: &Flow<Self>, claim: bool) -> Result<u16, DropReason> {
        if claim {
            nat::allocate(fwd.new_src, fwd.nat_gateway, fwd.nat_vpc(), flow)
        } else {
            Ok(nat::preview(fwd.new_src, flow))
        }
    }
    #[inline(always)]
    fn release_nat(connection: &CtKey<Self>, entry: &CtEntry) {
        if entry.nat_ip != 0 {
            nat::release(&NatKey::of_connection(
                connection,
                entry.nat_ip,
                entry.nat_port,
            ));
        }
    }
}

impl Family for Addr6 {
    const BITS: u32 = 128;
    const ICMP: u8 = PROTO_ICMPV6;
    const ECHO_REQUEST: u8 = ICMPV6_ECHO_REQUEST;
    const ECHO_REPLY: u8 = ICMPV6_ECHO_REPLY;
    const ACL_STEP: extern "C" fn(u64, *mut c_void) -> i64 = crate::acl::acl_step6;

    #[inline(always)]
    fn routes() -> &'static LpmTrie<RouteKey<Self>, RouteValue, ROUTES_N> {
        &ROUTES6
    }
    #[inline(always)]
    fn acls() -> &'static Array<AclTable<Self>, { ACLS_ENTRIES as usize }> {
        &ACLS6
    }
    #[inline(always)]
    fn sg_remotes() -> &'static LpmTrie<SgRemoteKey<Self>, u32, SG_REMOTES_N> {
        &SG_REMOTES6
    }
    #[inline(always)]
    fn conntrack() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CONNTRACK_ENTRIES as usize }> {
        &CONNTRACK6
    }
    #[inline(always)]
    fn unassured() -> &'static LruHashMap<CtKey<Self>, CtEntry, { CT_UNASSURED_ENTRIES as usize }> {
        &CT_UNASSURED6
    }
    #[inline(always)]
    fn flows() -> &'static PerCpuHashMap<FlowKey<Self>, FlowStats, { FLOWS_ENTRIES as usize }> {
        &FLOWS6
    }
    #[inline(always)]
    fn endpoint(vpc_id: u32, addr: Self) -> Option<Endpoint> {
        copied(&ENDPOINTS6, Endpoint6Key { vpc_id, addr })
    }
    #[inline(always)]
    fn within(&self, net: &Self, mask: &Self) -> bool {
        // Two 64-bit halves: no loop over bytes.
        let half = |a: &Self, i: usize| {
            u64::from_ne_bytes([
                a[i],
                a[i + 1],
                a[i + 2],
                a[i + 3],
                a[i + 4],
                a[i + 5],
                a[i + 6],
                a[i + 7],
            ])
        };
        half(self, 0) & half(mask, 0) == half(net, 0)
            && half(self, 8) & half(mask, 8) == half(net, 8)
    }
    #[inline(always)]
    fn trace_word(&self) -> u32 {
        u32::from_ne_bytes([self[12], self[13], self[14], self[15]])
    }
    #[inline(always)]
    fn release_nat(_: &CtKey<Self>, _: &CtEntry) {}
    #[inline(always)]
    fn nat_port(_: &Forward, _: &Flow<Self>, _: bool) -> Result<u16, DropReason> {
        Err(DropReason::BadTarget)
    }
}
