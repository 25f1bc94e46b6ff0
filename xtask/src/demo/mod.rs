//! `cargo xtask demo`: the AWS guide's "VPC with public and private subnets (NAT)" on one
//! machine, with the real `vpc-agent` enforcing it, real traffic and a story told step by step.
//!
//! Two stages, because the demo links the agent and the test harness, whose build needs the
//! eBPF toolchain that `setup` installs: `cargo xtask demo` (this crate without the `demo`
//! feature) runs setup, builds the agent, then replaces itself with
//! `cargo run -p xtask --features demo -- demo ...`, which runs [`run`] for real.
//!
//! - [`topology`]: the namespaces (router with the agent, one switch per subnet, one namespace
//!   per host, the internet) built from the definition;
//! - [`story`]: the steps, each with its expected outcome checked from both sides;
//! - [`keep`]: `--keep` leaves everything running and records it; `--down` removes it.

#[cfg(feature = "demo")]
mod keep;
#[cfg(feature = "demo")]
mod story;
#[cfg(feature = "demo")]
mod topology;

use std::path::PathBuf;

use anyhow::Result;

/// The demo's definition: the guide's two-tier VPC plus one network ACL rule and IPv6 for the
/// jumpbox (see the file).
#[cfg(feature = "demo")]
const DEFAULT_FILE: &str = "examples/public-private-nat-demo.yaml";
#[cfg(feature = "demo")]
const DEFAULT_YAML: &str = include_str!("../../../examples/public-private-nat-demo.yaml");

#[derive(clap::Args)]
pub struct Options {
    /// Use this VPC definition instead of the embedded one (the story expects instances web-1,
    /// jumpbox with an IPv6 address, db-1, a NAT gateway and an egress-only internet gateway,
    /// as in the example).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Leave the namespaces and the agent running for exploration (`--down` removes them).
    #[arg(long, conflicts_with_all = ["down", "check"])]
    keep: bool,
    /// Remove what `--keep` left running.
    #[arg(long, conflicts_with_all = ["config", "check"])]
    down: bool,
    /// Non-interactive check: terse output, exit status non-zero if any step's outcome differs.
    #[arg(long)]
    check: bool,
}

/// The arguments that select `opts` again (for the second stage).
#[cfg(not(feature = "demo"))]
fn args(opts: &Options) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["demo".into()];
    if let Some(config) = &opts.config {
        // The second stage runs from the workspace root: make the path absolute.
        let config = std::path::absolute(config).unwrap_or_else(|_| config.clone());
        args.extend(["--config".into(), config.into()]);
    }
    for (set, flag) in [
        (opts.keep, "--keep"),
        (opts.down, "--down"),
        (opts.check, "--check"),
    ] {
        if set {
            args.push(flag.into());
        }
    }
    args
}

/// First stage: build the agent, then become the second stage (never returns on success).
#[cfg(not(feature = "demo"))]
pub fn run(opts: &Options) -> Result<()> {
    use std::os::unix::process::CommandExt as _;

    use anyhow::Context as _;

    require_root()?;
    let root = crate::test::workspace_root();
    eprintln!("building vpc-agent and the demo (quiet; several minutes the first time)");
    crate::run(crate::cargo().current_dir(&root).args([
        "build",
        "--quiet",
        "--package",
        "vpc-agent",
    ]))
    .context("building the agent")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let err = crate::cargo()
        .current_dir(&root)
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--features",
            "demo",
            "--",
        ])
        .args(args(opts))
        .env("VPC_AGENT_BIN", target.join("debug").join("vpc-agent"))
        .exec();
    Err(err).context("cannot run the demo (cargo run --features demo)")
}

/// Second stage: the demo itself.
#[cfg(feature = "demo")]
pub fn run(opts: &Options) -> Result<()> {
    use anyhow::Context as _;

    require_root()?;
    interrupt::install()?;
    if opts.down {
        return keep::down();
    }
    let (name, yaml) = match &opts.config {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
        ),
        None => (
            format!("{DEFAULT_FILE} (embedded)"),
            DEFAULT_YAML.to_owned(),
        ),
    };
    let started = std::time::Instant::now();
    let show = if opts.check {
        story::Show::Terse
    } else {
        story::Show::Story
    };
    story::introduce(&name, &yaml, show);
    let vpc = topology::Vpc::build(&name, &yaml, opts.config.as_deref(), show)?;
    let outcome = story::tell(&vpc, show);
    if interrupt::check().is_ok() {
        story::conclude(&vpc, show, started.elapsed());
    }
    if opts.keep {
        keep::leave_running(vpc)?;
    } else {
        println!("tearing down: agent, pinned datapath, namespaces");
        drop(vpc);
    }
    outcome
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!(
            "the demo needs root (BPF and network namespaces): run it as root, e.g. `sudo -E cargo xtask demo`"
        );
    }
    Ok(())
}

/// Ctrl-C: the demo notices between steps, fails the current one and tears everything down.
#[cfg(feature = "demo")]
pub mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};

    use anyhow::{Context as _, Result, bail};

    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    pub fn install() -> Result<()> {
        ctrlc::set_handler(|| {
            if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted: tearing everything down");
            }
        })
        .context("install the Ctrl-C handler")
    }

    /// Fails once Ctrl-C was pressed.
    pub fn check() -> Result<()> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }
}
