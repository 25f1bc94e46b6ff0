//! `cargo xtask bench` (issue #10): per-packet cost of every datapath path against the floor
//! program with BPF_PROG_TEST_RUN at several table sizes, end-to-end packets per second and TCP
//! throughput against the plain Linux router with nftables, the memory of every map, written to
//! `BENCHMARKS.md` with a plot of the scaling curves. Needs root; not part of the tests.
mod e2e;
mod fixture;
mod live;
mod memory;
mod plot;
mod report;
mod testrun;

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail};

pub use fixture::Sizes;

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Options {
    /// Only the smallest and the largest tables, and shorter end-to-end runs (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Skip the end-to-end comparison with nftables.
    #[arg(long)]
    no_e2e: bool,
    /// Only the end-to-end comparison (and the map memory): replaces those parts of
    /// BENCHMARKS.md and keeps the per-packet ones.
    #[arg(long, conflicts_with = "no_e2e")]
    e2e_only: bool,
}

const SMALLEST: Sizes = Sizes {
    routes: 10,
    acl_rules: 1,
    sg_rules: fixture::SG_FUNCTIONAL_RULES,
    conntrack: 0,
};
const LARGEST: Sizes = Sizes {
    routes: 100_000,
    acl_rules: 40,
    sg_rules: 1000,
    conntrack: 1_000_000,
};

/// One table dimension of the scaling curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Routes,
    AclRules,
    SgRules,
    Conntrack,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Routes,
        Dimension::AclRules,
        Dimension::SgRules,
        Dimension::Conntrack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Routes => "routes",
            Dimension::AclRules => "ACL rules",
            Dimension::SgRules => "SG rules / instance",
            Dimension::Conntrack => "tracked connections",
        }
    }

    pub fn values(self) -> [usize; 3] {
        match self {
            Dimension::Routes => [10, 10_000, 100_000],
            Dimension::AclRules => [1, 20, 40],
            Dimension::SgRules => [fixture::SG_FUNCTIONAL_RULES, 100, 1000],
            Dimension::Conntrack => [0, 100_000, 1_000_000],
        }
    }

    pub fn of(self, s: &Sizes) -> usize {
        match self {
            Dimension::Routes => s.routes,
            Dimension::AclRules => s.acl_rules,
            Dimension::SgRules => s.sg_rules,
            Dimension::Conntrack => s.conntrack,
        }
    }

    fn with(self, mut s: Sizes, value: usize) -> Sizes {
        match self {
            Dimension::Routes => s.routes = value,
            Dimension::AclRules => s.acl_rules = value,
            Dimension::SgRules => s.sg_rules = value,
            Dimension::Conntrack => s.conntrack = value,
        }
        s
    }
}

/// The configurations measured: the smallest tables, each dimension grown alone, and every
/// table at its largest.
fn configurations(quick: bool) -> Vec<Sizes> {
    if quick {
        return vec![SMALLEST, LARGEST];
    }
    let mut all = vec![SMALLEST];
    for d in Dimension::ALL {
        for v in &d.values()[1..] {
            all.push(d.with(SMALLEST, *v));
        }
    }
    all.push(LARGEST);
    all
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs the benchmark in this process (root needed) and writes the report.
pub fn run(opts: &Options) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask bench needs root (BPF and network namespaces)");
    }
    let started = Instant::now();
    let memory = memory::default_maps().context("map memory")?;
    let mut configs = Vec::new();
    let per_packet = if opts.e2e_only {
        Vec::new()
    } else {
        configurations(opts.quick)
    };
    for sizes in per_packet {
        eprintln!(
            "bench: per-packet cost at {sizes:?} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        configs.push(testrun::measure_config(sizes)?);
    }
    let e2e = if opts.no_e2e {
        None
    } else {
        Some(e2e::run(opts.quick).context("end-to-end comparison")?)
    };
    let root = workspace_root();
    let image = "benchmarks-scaling.png";
    if !opts.e2e_only {
        plot::scaling(&configs, &root.join(image)).context("plot")?;
    }
    let report = report::Report {
        configs: &configs,
        e2e: e2e.as_ref(),
        memory: &memory,
        linux_conntrack: memory::linux_conntrack_object(),
        image,
        elapsed: started.elapsed(),
    };
    let path = root.join("BENCHMARKS.md");
    let mut text = report.markdown()?;
    if opts.e2e_only {
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        text = report::splice_e2e(&existing, &text, &report::e2e_only_note(started.elapsed()));
    }
    std::fs::write(&path, text).context("writing BENCHMARKS.md")?;
    println!("{}", report.summary());
    Ok(())
}
