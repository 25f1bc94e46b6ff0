//! The compiled eBPF object, embedded at build time (see build.rs).

/// The ELF object holding every program and map of `vpc-ebpf`, aligned for aya's parser.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vpc-ebpf"));

/// Program names in the object.
pub mod programs {
    /// XDP ingress program attached to every VPC interface.
    pub const XDP: &str = "vpc_xdp";
}

/// Map names in the object.
pub mod maps {
    /// Per-CPU drop counters indexed by `DropReason`.
    pub const DROP_COUNTERS: &str = "DROP_COUNTERS";
}
