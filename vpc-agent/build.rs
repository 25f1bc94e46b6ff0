//! Builds the eBPF programs (`vpc-ebpf`) with aya-build: cargo-in-cargo on the nightly
//! toolchain, `-Z build-std=core`, target bpfel-unknown-none, linked by bpf-linker with BTF.
//! The object lands in OUT_DIR/vpc-ebpf and is embedded by `src/ebpf.rs`.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf_package = packages
        .into_iter()
        .find(|cargo_metadata::Package { name, .. }| name.as_str() == "vpc-ebpf")
        .ok_or_else(|| anyhow!("vpc-ebpf package not found"))?;
    let manifest_path = ebpf_package.manifest_path;
    let root_dir = manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {manifest_path}"))?;
    let package = aya_build::Package {
        name: "vpc-ebpf",
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default())
}
