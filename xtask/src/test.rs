//! `cargo xtask test`: every check CI runs, in order of cost: rustfmt, clippy (userspace, then
//! the eBPF crates for their BPF target), then `cargo test` over the workspace (unit tests,
//! BPF_PROG_TEST_RUN tables and network-namespace tests in `tests/`), then the demo in its
//! check mode (`cargo xtask demo --check`: every step's outcome as the story says).
use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, Result};

use crate::{cargo, run as run_cmd, setup::NIGHTLY};

#[derive(clap::Args)]
pub struct Options {
    /// Only run tests whose name contains this filter (skips fmt and clippy).
    filter: Option<String>,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo xtask demo --check`, which needs root: skipped without it, except under `CI=true`.
fn demo_check(root: &std::path::Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !root_user && !ci {
        eprintln!("==> demo --check: SKIPPED (not running as root)");
        return Ok(());
    }
    step(
        "demo --check",
        cargo().current_dir(root).args(["xtask", "demo", "--check"]),
    )
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {name}");
    let start = Instant::now();
    run_cmd(cmd).with_context(|| format!("step '{name}' failed"))?;
    eprintln!("    {name}: ok ({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}

pub fn run(opts: &Options) -> Result<()> {
    let root = workspace_root();
    let total = Instant::now();
    if opts.filter.is_none() {
        step(
            "rustfmt",
            cargo()
                .current_dir(&root)
                .args(["fmt", "--all", "--", "--check"]),
        )?;
        step(
            "clippy (userspace)",
            cargo()
                .current_dir(&root)
                .args([
                    "clippy",
                    "--all-targets",
                    "--features",
                    "xtask/demo,xtask/bench",
                ])
                .args(["--", "-D", "warnings"]),
        )?;
        step(
            "clippy (xtask without features: the first stage of demo and bench)",
            cargo().current_dir(&root).args([
                "clippy",
                "--package",
                "xtask",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        step(
            "clippy (eBPF)",
            Command::new("rustup")
                .current_dir(&root)
                .args(["run", NIGHTLY, "cargo", "clippy", "--package", "vpc-ebpf"])
                .args(["--package", "bench-ebpf"])
                .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
                .args(["--target-dir", "target/ebpf-clippy", "--", "-D", "warnings"])
                .env_remove("RUSTC")
                .env_remove("RUSTC_WORKSPACE_WRAPPER"),
        )?;
    }
    let mut test = cargo();
    test.current_dir(&root).args(["test", "--no-fail-fast"]);
    if let Some(filter) = &opts.filter {
        test.arg("--").arg(filter);
    }
    step("cargo test", &mut test)?;
    if opts.filter.as_deref().is_none_or(|f| "demo".contains(f)) {
        demo_check(&root)?;
    }
    eprintln!(
        "all checks passed in {:.1} s",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}
