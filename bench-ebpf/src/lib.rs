#![no_std]
//! The layout the benchmark (`xtask`) shares with its XDP programs, which live in the
//! `bench-ebpf` binary (src/main.rs, built for the BPF target by `xtask/build.rs`).

/// Bytes of the generator's header template: Ethernet (14), IPv4 without options (20), UDP (8).
pub const HEADER_LEN: usize = 42;
/// Offset of the UDP source port in the frame.
pub const UDP_SPORT_OFFSET: usize = 34;
/// `GEN_CONFIG` slot holding the number of flows minus one (a power of two minus one).
pub const CONFIG_FLOWS_MASK: u32 = 0;
/// `SINK_COUNTERS` slots (per CPU).
pub const SINK_PACKETS: u32 = 0;
pub const SINK_BYTES: u32 = 1;
