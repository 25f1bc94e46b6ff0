//! Every map of the datapath, pinned by the agent under its bpffs directory with BTF (so
//! `bpftool map dump` prints named fields). Key and value layouts live in `vpc-common`, next to
//! their documentation.

use aya_ebpf::{
    btf_maps::{
        Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray,
    },
    macros::btf_map,
};
use vpc_common::{
    acl::{ACLS_ENTRIES, AclTable, AclTable6},
    agent_state::{AGENT_STATE_CHUNKS, AgentStateChunk},
    capacity::{self, two_generations},
    conntrack::{
        CONNTRACK_ENTRIES, CT_STAT_SLOTS, CT_UNASSURED_ENTRIES, CtEntry, CtKey, CtKey6, CtTimeouts,
    },
    flow::{FLOWS_ENTRIES, FlowKey, FlowKey6, FlowStats},
    iface::{
        Endpoint, Endpoint6Key, EndpointKey, GlobalConfig, IfaceInfo, IfaceKey, NatGatewayInfo,
        PublicKey, PublicTarget, Subnet6Info, SubnetInfo, VpcInfo,
    },
    nat::{NAT_PORTS_ENTRIES, NatConfig, NatKey, NatValue},
    route::{Route6Key, RouteKey, RouteValue},
    security_group::{SgRemote6Key, SgRemoteKey, SgRuleKey, SgRuleValue},
};

/// `CONFIG[0]`: active generation slot and layout version.
#[btf_map]
pub static CONFIG: Array<GlobalConfig, 1> = Array::new();

/// The agent's record of itself (see `vpc_common::agent_state`); the programs never read it.
#[btf_map]
pub static AGENT_STATE: Array<AgentStateChunk, { AGENT_STATE_CHUNKS as usize }> = Array::new();

/// (ifindex, slot) -> what the interface is.
#[btf_map]
pub static IFACES: HashMap<IfaceKey, IfaceInfo, { two_generations(capacity::IFACES) as usize }> =
    HashMap::new();

/// subnet id -> subnet.
#[btf_map]
pub static SUBNETS: HashMap<u32, SubnetInfo, { two_generations(capacity::SUBNETS) as usize }> =
    HashMap::new();

/// subnet id -> the subnet's IPv6 /64 (subnets with an IPv6 block only).
#[btf_map]
pub static SUBNETS6: HashMap<u32, Subnet6Info, { two_generations(capacity::SUBNETS) as usize }> =
    HashMap::new();

/// vpc id -> VPC.
#[btf_map]
pub static VPCS: HashMap<u32, VpcInfo, { two_generations(capacity::VPCS) as usize }> =
    HashMap::new();

/// (vpc id, private address) -> registered endpoint (instance or NAT gateway).
#[btf_map]
pub static ENDPOINTS: HashMap<
    EndpointKey,
    Endpoint,
    { two_generations(capacity::ENDPOINTS) as usize },
> = HashMap::new();

/// (vpc id, IPv6 address) -> registered endpoint: an instance's IPv6 addresses.
#[btf_map]
pub static ENDPOINTS6: HashMap<
    Endpoint6Key,
    Endpoint,
    { two_generations(capacity::ENDPOINTS) as usize },
> = HashMap::new();

/// (public address, slot) -> what it leads to.
#[btf_map]
pub static PUBLIC_IPS: HashMap<
    PublicKey,
    PublicTarget,
    { two_generations(capacity::PUBLIC_IPS) as usize },
> = HashMap::new();

/// NAT gateway id -> NAT gateway.
#[btf_map]
pub static NAT_GATEWAYS: HashMap<
    u32,
    NatGatewayInfo,
    { two_generations(capacity::NAT_GATEWAYS) as usize },
> = HashMap::new();

/// (table, destination prefix) -> route target (see `vpc_common::route` for the key layout).
#[btf_map]
pub static ROUTES: LpmTrie<RouteKey, RouteValue, { two_generations(capacity::ROUTES) as usize }> =
    LpmTrie::new();

/// Entries of each route trie (both families).
pub const ROUTES_N: usize = two_generations(capacity::ROUTES) as usize;
/// Entries of each security group remote trie (both families).
pub const SG_REMOTES_N: usize = two_generations(capacity::SG_REMOTES) as usize;

/// The IPv6 routes: (table, destination prefix) -> route target (`vpc_common::route`).
#[btf_map]
pub static ROUTES6: LpmTrie<Route6Key, RouteValue, ROUTES_N> = LpmTrie::new();

/// acl_index(acl id, direction) -> ordered rules.
#[btf_map]
pub static ACLS: Array<AclTable, { ACLS_ENTRIES as usize }> = Array::new();

/// acl_index(acl id, direction) -> the ACL's IPv6 rules, ordered.
#[btf_map]
pub static ACLS6: Array<AclTable6, { ACLS_ENTRIES as usize }> = Array::new();

/// ifindex -> device, for `bpf_redirect_map` from XDP (the agent adds every VPC interface).
#[btf_map]
pub static DEVICES: DevMapHash<{ two_generations(capacity::IFACES) as usize }> = DevMapHash::new();

/// (vpc id, address) -> security group remote class (see `vpc_common::security_group`).
#[btf_map]
pub static SG_REMOTES: LpmTrie<
    SgRemoteKey,
    u32,
    { two_generations(capacity::SG_REMOTES) as usize },
> = LpmTrie::new();

/// (vpc id, IPv6 address) -> security group remote class (numbered apart from the IPv4
/// classes: both families share `SG_RULES`).
#[btf_map]
pub static SG_REMOTES6: LpmTrie<SgRemote6Key, u32, SG_REMOTES_N> = LpmTrie::new();

/// (instance, class, direction, protocol, port) -> allowing rule.
#[btf_map]
pub static SG_RULES: LpmTrie<
    SgRuleKey,
    SgRuleValue,
    { two_generations(capacity::SG_RULES) as usize },
> = LpmTrie::new();

/// Tracked connections by original-direction tuple (see `vpc_common::conntrack`). LRU: when
/// full the least recently used entry is evicted (the agent counts evictions from CT_STATS).
#[btf_map]
pub static CONNTRACK: LruHashMap<CtKey, CtEntry, { CONNTRACK_ENTRIES as usize }> =
    LruHashMap::new();

/// Connections not yet assured (see `vpc_common::conntrack::CT_UNASSURED_ENTRIES`): a flood of
/// new connections evicts only these.
#[btf_map]
pub static CT_UNASSURED: LruHashMap<CtKey, CtEntry, { CT_UNASSURED_ENTRIES as usize }> =
    LruHashMap::new();

/// Tracked IPv6 connections, as `CONNTRACK`.
#[btf_map]
pub static CONNTRACK6: LruHashMap<CtKey6, CtEntry, { CONNTRACK_ENTRIES as usize }> =
    LruHashMap::new();

/// IPv6 connections not yet assured, as `CT_UNASSURED`.
#[btf_map]
pub static CT_UNASSURED6: LruHashMap<CtKey6, CtEntry, { CT_UNASSURED_ENTRIES as usize }> =
    LruHashMap::new();

/// Per-CPU scratch space for building a new CONNTRACK entry (too big for the stack).
#[btf_map]
pub static CT_SCRATCH: PerCpuArray<CtEntry, 1> = PerCpuArray::new();

/// Per-CPU scratch space for `bpf_redirect_neigh`'s next hop (a `struct bpf_redir_neigh`:
/// family, then the IPv4 or IPv6 address), used when the neighbour is not the destination
/// (a NAT instance): off the TC program's stack.
#[btf_map]
pub static NEIGH_SCRATCH: PerCpuArray<[u32; 5], 1> = PerCpuArray::new();

/// Idle timeouts in seconds; zero fields mean the AWS defaults.
#[btf_map]
pub static CT_TIMEOUTS: Array<CtTimeouts, 1> = Array::new();

/// Per-CPU connection tracking counters (`vpc_common::conntrack::CT_STAT_*`).
#[btf_map]
pub static CT_STATS: PerCpuArray<u64, { CT_STAT_SLOTS as usize }> = PerCpuArray::new();

/// NAT gateway translations by what the internet sees (see `vpc_common::nat`). LRU, as large
/// as CONNTRACK; a connection's expiry releases its translation.
#[btf_map]
pub static NAT_PORTS: LruHashMap<NatKey, NatValue, { NAT_PORTS_ENTRIES as usize }> =
    LruHashMap::new();

/// The NAT port range.
#[btf_map]
pub static NAT_CONFIG: Array<NatConfig, 1> = Array::new();

/// Per-flow counters (see `vpc_common::flow`); the agent drains it every interval.
#[btf_map]
pub static FLOWS: PerCpuHashMap<FlowKey, FlowStats, { FLOWS_ENTRIES as usize }> =
    PerCpuHashMap::new();

/// The IPv6 flows, as `FLOWS` (the same generation, `FLOWS_GEN`, and `FLOWS_SKIPPED`).
#[btf_map]
pub static FLOWS6: PerCpuHashMap<FlowKey6, FlowStats, { FLOWS_ENTRIES as usize }> =
    PerCpuHashMap::new();

/// `FLOWS_GEN[0]`: the generation new flow records get (the agent flips it to drain).
#[btf_map]
pub static FLOWS_GEN: Array<u32, 1> = Array::new();

/// skipped_key(ifindex, generation) -> packets whose flow could not be recorded (FLOWS full):
/// SKIPDATA.
#[btf_map]
pub static FLOWS_SKIPPED: PerCpuHashMap<u32, u64, { two_generations(capacity::IFACES) as usize }> =
    PerCpuHashMap::new();

/// Key of [`FRAGMENTS`]: one IPv4 datagram being fragmented.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FragKey {
    pub src: u32,
    pub dst: u32,
    pub id: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// Value of [`FRAGMENTS`]: the ports its first fragment carried.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FragPorts {
    pub sport: u16,
    pub dport: u16,
}

/// Datagrams whose first fragment was seen: later fragments are classified with these ports.
#[btf_map]
pub static FRAGMENTS: LruHashMap<FragKey, FragPorts, 8192> = LruHashMap::new();

/// `XDP_OUTSIDE[0]`: the XDP program for packets from outside the VPC (`vpc_xdp_outside`:
/// uplinks and gateways), set by the agent when it loads the object. The attached program
/// (`vpc_xdp`) handles subnet interfaces and hands every other packet over to it: each keeps
/// its own stack frame within the verifier's 512 bytes.
#[btf_map]
pub static XDP_OUTSIDE: ProgramArray<1> = ProgramArray::new();

/// The XDP programs for IPv6 on subnet interfaces, set by the agent like [`XDP_OUTSIDE`]:
/// `[IPV6_LINK]` is `vpc_xdp6`, which `vpc_xdp` hands every IPv6 frame of a subnet interface
/// over to; `[IPV6_ROUTE]` is `vpc_xdp6_route`, which `vpc_xdp6` hands a packet routed beyond
/// the link over to; `[IPV6_INBOUND]` is `vpc_xdp6_inbound`, which `vpc_xdp_outside` hands IPv6
/// of an uplink over to (`vpc_common::IPV6_LINK`, `IPV6_ROUTE`, `IPV6_INBOUND`).
#[btf_map]
pub static XDP_IPV6: ProgramArray<3> = ProgramArray::new();

/// The TC ingress programs for IPv6, as [`XDP_IPV6`]: `vpc_tc6` (reached from
/// `vpc_tc_ingress`), `vpc_tc6_route` and `vpc_tc6_inbound`.
#[btf_map]
pub static TC_IPV6: ProgramArray<3> = ProgramArray::new();

/// The registered endpoint at `ip` in VPC `vpc_id`.
#[inline(always)]
pub fn endpoint(vpc_id: u32, ip: u32) -> Option<Endpoint> {
    copied(&ENDPOINTS, EndpointKey { vpc_id, ip })
}

/// The subnet of the endpoint at `ip` in VPC `vpc_id` (0: none), read in place.
#[inline(always)]
pub fn endpoint_subnet(vpc_id: u32, ip: u32) -> u32 {
    // SAFETY: a read of one field of the map's value.
    unsafe { ENDPOINTS.get(EndpointKey { vpc_id, ip }) }.map_or(0, |ep| ep.subnet_id)
}

/// Subnet `id`.
#[inline(always)]
pub fn subnet(id: u32) -> Option<SubnetInfo> {
    copied(&SUBNETS, id)
}

/// Copies a value out of a hash map.
#[inline(always)]
pub fn copied<K, V: Copy, const N: usize, const F: usize>(
    map: &HashMap<K, V, N, F>,
    key: K,
) -> Option<V> {
    // SAFETY: the value is copied out at once. The agent replaces whole values (an update
    // swaps in a new element), so we read either the old or the new value, never a mix.
    unsafe { map.get(key) }.copied()
}
