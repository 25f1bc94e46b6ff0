//! `cargo xtask <task>`: the project's tasks. Every task that needs the eBPF toolchain or the
//! Debian tools runs `setup` first, so a fresh machine needs nothing but this repository.
#[cfg(feature = "bench")]
mod bench;
mod demo;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "vpc-agent project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the build and the tests need (idempotent, fast when present).
    Setup,
    /// Build the agent (and with it the eBPF programs).
    Build {
        /// Build with optimisations.
        #[arg(long)]
        release: bool,
    },
    /// Run every test: unit, BPF_PROG_TEST_RUN, namespace integration, clippy, rustfmt.
    Test(test::Options),
    /// The main job: the AWS two-tier VPC (public and private subnets, NAT) on this machine,
    /// enforced by vpc-agent, with real traffic told step by step.
    Demo(demo::Options),
    /// Benchmarks (root): per-packet cost against the floor, end to end against nftables;
    /// writes BENCHMARKS.md. Not part of the tests.
    Bench {
        /// Only the smallest and the largest tables, shorter end-to-end runs.
        #[arg(long)]
        quick: bool,
        /// Skip the end-to-end comparison with nftables.
        #[arg(long)]
        no_e2e: bool,
        /// Only the end-to-end comparison (and the map memory), replacing those parts of
        /// BENCHMARKS.md.
        #[arg(long, conflicts_with = "no_e2e")]
        e2e_only: bool,
    },
    /// The benchmark itself, built with the `bench` feature (run by `bench` after setup).
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchRun(bench::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Build { release } => setup::run().and_then(|()| build(release)),
        Task::Test(opts) => setup::run().and_then(|()| test::run(&opts)),
        // The second stage (built with the `demo` feature) runs after the first one's setup.
        Task::Demo(opts) if cfg!(feature = "demo") => demo::run(&opts),
        Task::Demo(opts) => setup::run().and_then(|()| demo::run(&opts)),
        Task::Bench {
            quick,
            no_e2e,
            e2e_only,
        } => setup::run().and_then(|()| bench_run(quick, no_e2e, e2e_only)),
        #[cfg(feature = "bench")]
        Task::BenchRun(opts) => bench::run(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn build(release: bool) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--package", "vpc-agent"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

/// `cargo` as invoked by this xtask (the same toolchain).
pub fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, failing with its command line when it does not succeed.
pub fn run(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start {cmd:?}: {e}"))?;
    if !status.success() {
        anyhow::bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs the benchmark: this xtask again, built with the `bench` feature (it links the agent).
fn bench_run(quick: bool, no_e2e: bool, e2e_only: bool) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--features",
        "bench",
    ])
    .args(["--", "bench-run"]);
    if quick {
        cmd.arg("--quick");
    }
    if no_e2e {
        cmd.arg("--no-e2e");
    }
    if e2e_only {
        cmd.arg("--e2e-only");
    }
    run(&mut cmd)
}
