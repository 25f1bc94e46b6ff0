//! The compiled eBPF object, embedded at build time (see build.rs).

/// The ELF object holding every program and map of `vpc-ebpf`, aligned for aya's parser.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vpc-ebpf"));

/// Program names in the object.
pub mod programs {
    /// XDP ingress program attached to every VPC interface (it decides for subnet interfaces).
    pub const XDP: &str = "vpc_xdp";
    /// XDP program for packets from outside the VPC (uplinks, gateways): reached from `XDP`
    /// through `XDP_OUTSIDE`; never attached.
    pub const XDP_OUTSIDE: &str = "vpc_xdp_outside";
    /// XDP program for IPv6 on subnet interfaces: reached from `XDP` through `XDP_IPV6`;
    /// never attached.
    pub const XDP6: &str = "vpc_xdp6";
    /// XDP program for IPv6 from an instance port routed beyond the link (the IPv6
    /// pipeline): reached from `XDP6` through `XDP_IPV6`; never attached.
    pub const XDP6_ROUTE: &str = "vpc_xdp6_route";
    /// XDP program for IPv6 arriving on an uplink: reached from `XDP_OUTSIDE` through
    /// `XDP_IPV6`; never attached.
    pub const XDP6_INBOUND: &str = "vpc_xdp6_inbound";
    /// TC ingress program (kernel path) on every VPC interface.
    pub const TC_INGRESS: &str = "vpc_tc_ingress";
    /// TC egress guard on subnet interfaces.
    pub const TC_EGRESS: &str = "vpc_tc_egress";
    /// The TC ingress pipeline in trace mode (`vpc-agent trace`): reached from `TC_INGRESS`
    /// through `TRACE_PROG` on a test run in trace mode; never attached.
    pub const TC_TRACE: &str = "vpc_tc_trace";
    /// TC ingress program for IPv6 on subnet interfaces: reached from `TC_INGRESS` through
    /// `TC_IPV6`; never attached.
    pub const TC6: &str = "vpc_tc6";
    /// TC ingress program for IPv6 routed beyond the link: reached from `TC6` through
    /// `TC_IPV6`; never attached.
    pub const TC6_ROUTE: &str = "vpc_tc6_route";
    /// TC ingress program for IPv6 arriving on an uplink: reached from `TC_INGRESS` through
    /// `TC_IPV6`; never attached.
    pub const TC6_INBOUND: &str = "vpc_tc6_inbound";
    /// Benchmark floor (parse + redirect, no policy); never attached by the agent.
    pub const FLOOR: &str = "vpc_floor";
}

/// The maps of the object: their names and [`ALL`](maps::ALL), the one table of them. Every map
/// in the object is in the table (a test compares them), and everything that goes over every
/// map (pinning, the compatibility check, `status`, `detach`) goes over the table.
pub mod maps {
    use aya::{
        Pod,
        maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuHashMap},
    };
    use vpc_common::{
        acl::AclTable,
        conntrack::{CT_STAT_SLOTS, CtEntry, CtKey, CtKey6},
        flow::{FlowKey, FlowKey6, FlowStats},
        icmp::ICMP_STAT_SLOTS,
        iface::{
            Endpoint, Endpoint6Key, EndpointKey, IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey,
            PublicTarget, Subnet6Info, SubnetInfo, VpcInfo,
        },
        nat::{NatKey, NatValue},
        route::{Route6Key, RouteKey, RouteValue},
        security_group::{SgRemote6Key, SgRemoteKey, SgRuleKey, SgRuleValue},
    };

    pub const CONFIG: &str = "CONFIG";
    /// The agent's record of itself (`vpc_common::agent_state`), never read by the programs.
    pub const AGENT_STATE: &str = "AGENT_STATE";
    pub const IFACES: &str = "IFACES";
    pub const SUBNETS: &str = "SUBNETS";
    /// The subnets' IPv6 /64s (`vpc_common::iface::Subnet6Info`).
    pub const SUBNETS6: &str = "SUBNETS6";
    pub const VPCS: &str = "VPCS";
    pub const ENDPOINTS: &str = "ENDPOINTS";
    /// The instances' IPv6 addresses (`vpc_common::iface::Endpoint6Key`).
    pub const ENDPOINTS6: &str = "ENDPOINTS6";
    pub const PUBLIC_IPS: &str = "PUBLIC_IPS";
    pub const NAT_GATEWAYS: &str = "NAT_GATEWAYS";
    pub const ROUTES: &str = "ROUTES";
    /// The IPv6 routes of every table (`vpc_common::route::Route6Key`).
    pub const ROUTES6: &str = "ROUTES6";
    pub const ACLS: &str = "ACLS";
    /// The ACLs' IPv6 rules, at the indexes of `ACLS` (`vpc_common::acl::AclTable6`).
    pub const ACLS6: &str = "ACLS6";
    pub const DEVICES: &str = "DEVICES";
    pub const FRAGMENTS: &str = "FRAGMENTS";
    /// Per-CPU drop counters (packets, bytes) by reason and hook (`vpc_common::drop`).
    pub const DROP_COUNTERS: &str = "DROP_COUNTERS";
    pub const SG_REMOTES: &str = "SG_REMOTES";
    /// IPv6 remote classes (`vpc_common::security_group::SgRemote6Key`).
    pub const SG_REMOTES6: &str = "SG_REMOTES6";
    pub const SG_RULES: &str = "SG_RULES";
    pub const CONNTRACK: &str = "CONNTRACK";
    pub const CT_UNASSURED: &str = "CT_UNASSURED";
    /// IPv6 connections (`vpc_common::conntrack::CtKey6`), assured.
    pub const CONNTRACK6: &str = "CONNTRACK6";
    /// IPv6 connections not yet assured.
    pub const CT_UNASSURED6: &str = "CT_UNASSURED6";
    pub const CT_TIMEOUTS: &str = "CT_TIMEOUTS";
    pub const CT_STATS: &str = "CT_STATS";
    pub const CT_SCRATCH: &str = "CT_SCRATCH";
    pub const NAT_PORTS: &str = "NAT_PORTS";
    pub const NAT_CONFIG: &str = "NAT_CONFIG";
    pub const FLOWS: &str = "FLOWS";
    /// The IPv6 flows (`FlowKey6`), drained with `FLOWS`.
    pub const FLOWS6: &str = "FLOWS6";
    pub const FLOWS_SKIPPED: &str = "FLOWS_SKIPPED";
    pub const FLOWS_GEN: &str = "FLOWS_GEN";
    /// Per-CPU counters of the ICMP errors the router sent (`vpc_common::icmp`).
    pub const ICMP_STATS: &str = "ICMP_STATS";
    /// Per-CPU token bucket of the router's ICMP errors.
    pub const ICMP_BUCKET: &str = "ICMP_BUCKET";
    pub const ICMP_SCRATCH: &str = "ICMP_SCRATCH";
    /// Per-CPU next hop for `bpf_redirect_neigh` (a NAT instance's address).
    pub const NEIGH_SCRATCH: &str = "NEIGH_SCRATCH";
    /// Per-CPU scratch space for neighbour discovery answers.
    pub const NDP_SCRATCH: &str = "NDP_SCRATCH";
    /// Per-CPU cache of the clock (one `bpf_ktime_get_ns` per packet).
    pub const NOW: &str = "NOW";
    /// Per-CPU trace of the TC ingress program's last trace-mode run (`vpc_common::trace`).
    pub const TRACE: &str = "TRACE";
    /// `TRACE_PROG[0]`: the trace-mode program the TC ingress program hands trace runs to.
    pub const TRACE_PROG: &str = "TRACE_PROG";
    /// `XDP_OUTSIDE[0]`: the XDP program the attached one hands uplink and gateway packets to.
    pub const XDP_OUTSIDE: &str = "XDP_OUTSIDE";
    /// `XDP_IPV6`: the XDP programs for IPv6 on subnet interfaces, at `vpc_common::IPV6_LINK`
    /// (handed every IPv6 frame by the attached one), `vpc_common::IPV6_ROUTE` and
    /// `vpc_common::IPV6_INBOUND`.
    pub const XDP_IPV6: &str = "XDP_IPV6";
    /// `TC_IPV6`: the TC programs for IPv6 on subnet interfaces, as `XDP_IPV6`.
    pub const TC_IPV6: &str = "TC_IPV6";

    /// How `status` counts the entries in use of a map.
    #[derive(Clone, Copy)]
    pub enum Entries {
        /// Every slot is in use (settings, counters by index): this many.
        Slots(u32),
        /// Scratch space or a per-CPU cache: nothing the agent could call an entry.
        Scratch,
        /// Counted by reading the map (keys of a hash map, trie or device map; non-empty
        /// slots of an array).
        Read(fn(&Map) -> Result<u32, MapError>),
    }

    /// One map of the object.
    #[derive(Clone, Copy)]
    pub struct MapSpec {
        pub name: &'static str,
        pub entries: Entries,
    }

    impl MapSpec {
        /// Entries in use in `map` (this spec's map, opened from its pin).
        pub fn count(&self, map: &Map) -> Result<u32, MapError> {
            match self.entries {
                Entries::Slots(n) => Ok(n),
                Entries::Scratch => Ok(0),
                Entries::Read(count) => count(map),
            }
        }
    }

    const fn spec(name: &'static str, entries: Entries) -> MapSpec {
        MapSpec { name, entries }
    }

    /// Every map of the object, each pinned by name under the agent's bpffs directory.
    pub const ALL: [MapSpec; 44] = [
        spec(CONFIG, Entries::Slots(1)),
        spec(AGENT_STATE, Entries::Read(agent_state_entries)),
        spec(IFACES, Entries::Read(hash::<IfaceKey, IfaceInfo>)),
        spec(SUBNETS, Entries::Read(hash::<u32, SubnetInfo>)),
        spec(SUBNETS6, Entries::Read(hash::<u32, Subnet6Info>)),
        spec(VPCS, Entries::Read(hash::<u32, VpcInfo>)),
        spec(ENDPOINTS, Entries::Read(hash::<EndpointKey, Endpoint>)),
        spec(ENDPOINTS6, Entries::Read(hash::<Endpoint6Key, Endpoint>)),
        spec(PUBLIC_IPS, Entries::Read(hash::<PublicKey, PublicTarget>)),
        spec(NAT_GATEWAYS, Entries::Read(hash::<u32, NatGatewayInfo>)),
        spec(ROUTES, Entries::Read(trie::<RouteKey, RouteValue>)),
        spec(ROUTES6, Entries::Read(trie::<Route6Key, RouteValue>)),
        spec(ACLS, Entries::Read(acl_tables::<u32>)),
        spec(ACLS6, Entries::Read(acl_tables::<vpc_common::Addr6>)),
        spec(DEVICES, Entries::Read(devices)),
        // FragKey (12 bytes) -> FragPorts (4 bytes), defined in vpc-ebpf.
        spec(FRAGMENTS, Entries::Read(hash::<[u8; 12], [u8; 4]>)),
        // One slot per (reason, hook).
        spec(DROP_COUNTERS, Entries::Slots(vpc_common::drop::DROP_SLOTS)),
        spec(SG_REMOTES, Entries::Read(trie::<SgRemoteKey, u32>)),
        spec(SG_REMOTES6, Entries::Read(trie::<SgRemote6Key, u32>)),
        spec(SG_RULES, Entries::Read(trie::<SgRuleKey, SgRuleValue>)),
        spec(CONNTRACK, Entries::Read(hash::<CtKey, CtEntry>)),
        spec(CT_UNASSURED, Entries::Read(hash::<CtKey, CtEntry>)),
        spec(CONNTRACK6, Entries::Read(hash::<CtKey6, CtEntry>)),
        spec(CT_UNASSURED6, Entries::Read(hash::<CtKey6, CtEntry>)),
        spec(CT_TIMEOUTS, Entries::Slots(1)),
        spec(CT_STATS, Entries::Slots(CT_STAT_SLOTS)),
        spec(CT_SCRATCH, Entries::Scratch),
        spec(NAT_PORTS, Entries::Read(hash::<NatKey, NatValue>)),
        spec(NAT_CONFIG, Entries::Slots(1)),
        spec(FLOWS, Entries::Read(percpu_hash::<FlowKey, FlowStats>)),
        spec(FLOWS6, Entries::Read(percpu_hash::<FlowKey6, FlowStats>)),
        spec(FLOWS_SKIPPED, Entries::Read(percpu_hash::<u32, u64>)),
        spec(FLOWS_GEN, Entries::Slots(1)),
        spec(ICMP_STATS, Entries::Slots(ICMP_STAT_SLOTS)),
        spec(ICMP_BUCKET, Entries::Scratch),
        spec(ICMP_SCRATCH, Entries::Scratch),
        spec(NEIGH_SCRATCH, Entries::Scratch),
        spec(NDP_SCRATCH, Entries::Scratch),
        spec(NOW, Entries::Scratch),
        spec(TRACE, Entries::Scratch),
        spec(TRACE_PROG, Entries::Slots(1)),
        spec(XDP_OUTSIDE, Entries::Slots(1)),
        spec(XDP_IPV6, Entries::Slots(3)),
        spec(TC_IPV6, Entries::Slots(3)),
    ];

    /// The names of [`ALL`], in its order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ALL.iter().map(|spec| spec.name)
    }

    fn count<K>(keys: impl Iterator<Item = Result<K, MapError>>) -> Result<u32, MapError> {
        let mut n = 0;
        for key in keys {
            key?;
            n += 1;
        }
        Ok(n)
    }

    fn hash<K: Pod, V: Pod>(map: &Map) -> Result<u32, MapError> {
        count(HashMap::<&MapData, K, V>::try_from(map)?.keys())
    }

    fn percpu_hash<K: Pod, V: Pod>(map: &Map) -> Result<u32, MapError> {
        count(PerCpuHashMap::<&MapData, K, V>::try_from(map)?.keys())
    }

    fn trie<K: Pod, V: Pod>(map: &Map) -> Result<u32, MapError> {
        count(LpmTrie::<&MapData, K, V>::try_from(map)?.keys())
    }

    fn devices(map: &Map) -> Result<u32, MapError> {
        count(DevMapHash::<&MapData>::try_from(map)?.keys())
    }

    /// Network ACL tables in use (not empty) of `ACLS` (`A = u32`) or `ACLS6`.
    fn acl_tables<A>(map: &Map) -> Result<u32, MapError>
    where
        A: Copy + Default,
        AclTable<A>: Pod + PartialEq,
    {
        let array: Array<&MapData, AclTable<A>> = Array::try_from(map)?;
        let empty = AclTable::<A>::default();
        let mut n = 0;
        for table in array.iter() {
            n += u32::from(table? != empty);
        }
        Ok(n)
    }

    /// Entries the agent record occupies.
    fn agent_state_entries(map: &Map) -> Result<u32, MapError> {
        use vpc_common::agent_state::{AGENT_STATE_CHUNK_BYTES, AgentStateChunk};
        let array: Array<&MapData, AgentStateChunk> = Array::try_from(map)?;
        let len = array.get(&0, 0)?.len as usize;
        Ok(len.div_ceil(AGENT_STATE_CHUNK_BYTES) as u32)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{OBJECT, maps};

    /// The one table holds exactly the maps of the compiled object: a map added to the kernel
    /// and not to the table (or the other way round) fails here.
    #[test]
    fn the_map_table_is_the_objects_maps() {
        let object = aya_obj::Object::parse(OBJECT).expect("the embedded object parses");
        let in_object: BTreeSet<&str> = object
            .maps
            .keys()
            .map(String::as_str)
            // Data sections (.rodata, .bss, .data) are maps to aya, not maps of ours.
            .filter(|name| !name.starts_with('.'))
            .collect();
        let in_table: BTreeSet<&str> = maps::names().collect();
        assert_eq!(
            maps::ALL.len(),
            in_table.len(),
            "a map is twice in the table"
        );
        let missing: Vec<_> = in_object.difference(&in_table).collect();
        let extra: Vec<_> = in_table.difference(&in_object).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "maps in the object but not in the table: {missing:?}; in the table but not in the \
             object: {extra:?}"
        );
    }
}
