#![no_std]
// The programs live in the `vpc-ebpf` binary (src/main.rs); this library target only exists
// so that `vpc-agent` can declare a build-dependency on the crate (aya-template's pattern).
