//! With the `bench` feature, builds the benchmark's XDP programs (`bench-ebpf`: generator,
//! sink, pass-through) with aya-build, as `vpc-agent/build.rs` builds the datapath: the object
//! lands in OUT_DIR/bench-ebpf and is embedded by `src/bench/live.rs`. Without the feature
//! (the first stage, which must build on a fresh machine without bpf-linker) it does nothing.
fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BENCH").is_none() {
        return Ok(());
    }
    bench::build()
}

#[cfg(feature = "bench")]
mod bench {
    pub fn build() -> anyhow::Result<()> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench-ebpf");
        let package = aya_build::Package {
            name: "bench-ebpf",
            root_dir: root,
            ..Default::default()
        };
        aya_build::build_ebpf([package], aya_build::Toolchain::default())
    }
}

#[cfg(not(feature = "bench"))]
mod bench {
    pub fn build() -> anyhow::Result<()> {
        Ok(())
    }
}
