//! The VPC agent: reads a VPC definition, compiles it into the kernel maps of the eBPF datapath,
//! and reads the datapath's counters back out.

pub mod compile;
pub mod config;
pub mod datapath;
pub mod ebpf;
pub mod evaluator;
pub mod maps;
