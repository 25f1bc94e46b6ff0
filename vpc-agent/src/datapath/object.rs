//! The compiled eBPF object, embedded at build time (see build.rs).

/// The ELF object holding every program and map of `vpc-ebpf`, aligned for aya's parser.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vpc-ebpf"));

/// Program names in the object.
pub mod programs {
    /// XDP ingress program attached to every VPC interface.
    pub const XDP: &str = "vpc_xdp";
    /// TC ingress program (kernel path) on every VPC interface.
    pub const TC_INGRESS: &str = "vpc_tc_ingress";
    /// TC egress guard on subnet interfaces.
    pub const TC_EGRESS: &str = "vpc_tc_egress";
    /// Benchmark floor (parse + redirect, no policy); never attached by the agent.
    pub const FLOOR: &str = "vpc_floor";
}

/// Map names in the object.
pub mod maps {
    /// Per-CPU drop counters indexed by `DropReason`.
    pub const DROP_COUNTERS: &str = "DROP_COUNTERS";
    pub const CONFIG: &str = "CONFIG";
    pub const IFACES: &str = "IFACES";
    pub const SUBNETS: &str = "SUBNETS";
    pub const VPCS: &str = "VPCS";
    pub const ENDPOINTS: &str = "ENDPOINTS";
    pub const PUBLIC_IPS: &str = "PUBLIC_IPS";
    pub const NAT_GATEWAYS: &str = "NAT_GATEWAYS";
    pub const ROUTES: &str = "ROUTES";
    pub const ACLS: &str = "ACLS";
    pub const DEVICES: &str = "DEVICES";
    pub const FRAGMENTS: &str = "FRAGMENTS";
    pub const SG_REMOTES: &str = "SG_REMOTES";
    pub const SG_RULES: &str = "SG_RULES";
    pub const CONNTRACK: &str = "CONNTRACK";
    pub const CT_UNASSURED: &str = "CT_UNASSURED";
    pub const CT_TIMEOUTS: &str = "CT_TIMEOUTS";
    pub const CT_STATS: &str = "CT_STATS";
    pub const NAT_PORTS: &str = "NAT_PORTS";
    pub const NAT_CONFIG: &str = "NAT_CONFIG";
    pub const FLOWS: &str = "FLOWS";
    pub const FLOWS_SKIPPED: &str = "FLOWS_SKIPPED";
    pub const FLOWS_GEN: &str = "FLOWS_GEN";
    pub const CT_SCRATCH: &str = "CT_SCRATCH";
    /// Per-CPU counters of the ICMP errors the router sent (`vpc_common::icmp`).
    pub const ICMP_STATS: &str = "ICMP_STATS";

    /// Every map the agent pins (policy, counters and datapath state).
    pub const ALL: [&str; 25] = [
        CONFIG,
        IFACES,
        SUBNETS,
        VPCS,
        ENDPOINTS,
        PUBLIC_IPS,
        NAT_GATEWAYS,
        ROUTES,
        ACLS,
        DEVICES,
        FRAGMENTS,
        DROP_COUNTERS,
        SG_REMOTES,
        SG_RULES,
        CONNTRACK,
        CT_UNASSURED,
        CT_TIMEOUTS,
        CT_STATS,
        NAT_PORTS,
        NAT_CONFIG,
        FLOWS,
        FLOWS_SKIPPED,
        FLOWS_GEN,
        CT_SCRATCH,
        ICMP_STATS,
    ];
}
