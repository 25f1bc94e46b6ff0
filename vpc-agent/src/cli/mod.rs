//! The command line: the subcommands and their arguments, one file per subcommand (the readers
//! of the pinned maps share `inspect.rs`). Exit status: 0 success, 1 user error, 2 environment
//! error.

mod detach;
mod import;
mod inspect;
mod run;
mod trace;
mod validate;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use vpc_agent::{
    datapath::pin::DEFAULT_DIR,
    inspect::{flows, listing, status},
};

use self::inspect::show;

#[derive(Parser)]
#[command(name = "vpc-agent", version, about = "eBPF/XDP VPC enforcement agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum XdpModeArg {
    /// Native XDP on NICs, the TC path alone on virtual devices (veth, tap).
    Auto,
    /// Driver (native) XDP everywhere (refused on virtual devices).
    Native,
    /// Generic XDP, for drivers without native support.
    Skb,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    /// ICMP for IPv6 (58).
    Icmpv6,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a VPC definition: print every error as FILE:LINE:COL: PATH: message; change nothing.
    Validate {
        /// The VPC definition (YAML).
        file: PathBuf,
    },
    /// Load, attach and reconcile; reload on file change and SIGHUP; stay in the foreground.
    Run {
        /// The VPC definition (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Directory on bpffs for the pinned programs, links and maps.
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        xdp_mode: XdpModeArg,
        /// Where flow log records go: stdout or file:PATH (default: the definition's
        /// flow_logs.destination; without either, the counters are drained but not written).
        #[arg(long, value_name = "stdout|file:PATH")]
        flow_log: Option<String>,
        /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464); off by default.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<SocketAddr>,
        /// Test aid: the flow log aggregation interval in milliseconds, instead of the
        /// definition's 60 or 600 seconds.
        #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
        flow_log_interval_ms: Option<u64>,
        /// Seconds between the router advertisements sent on IPv6 instance ports.
        #[arg(long, value_name = "SECS", default_value_t = vpc_agent::daemon::advertise::DEFAULT_INTERVAL.as_secs(),
              value_parser = clap::value_parser!(u64).range(1..=600))]
        router_advertisement_interval: u64,
    },
    /// What is attached where, the configuration generation, map fill levels, drop counters.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
    /// The live per-flow counters of the current interval (5-tuple, interface, packets, bytes,
    /// first/last seen, action, drop reason).
    Flows {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
    /// Explain what the datapath would do with a packet (reference evaluator).
    Trace(trace::TraceArgs),
    /// Carry a VPC over from AWS: a CloudFormation template or `aws ec2 describe-*` output.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// The pinned connection-tracking entries: 5-tuple, state, translation, expiry in seconds.
    Conntrack {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
    /// The pinned NAT gateway translations: inside, translated and remote address and port.
    Nat {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
    /// The pinned route entries of both generation slots: table, destination, target.
    Routes {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
    /// Remove every program, link and pinned map the agent created.
    Detach {
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ImportFrom {
    /// A CloudFormation template (YAML or JSON).
    Cloudformation {
        template: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
        /// A template parameter (repeatable); others take their Default.
        #[arg(long = "parameter", value_name = "NAME=VALUE")]
        parameters: Vec<String>,
    },
    /// The JSON of `aws ec2 describe-*` commands: one file, or a directory of *.json.
    Describe {
        path: PathBuf,
        #[command(flatten)]
        common: ImportArgs,
    },
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Router interfaces of subnets and internet gateways: ID=IFNAME,... or a YAML mapping file.
    #[arg(long, value_name = "MAP")]
    interfaces: Option<String>,
    /// Addresses AWS assigns at launch: ID=IP,... (ID.public=IP for a public one) or a YAML file.
    #[arg(long, value_name = "MAP")]
    addresses: Option<String>,
    /// Where to write the definition (default: stdout); the report goes to stderr.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// A failure with its exit status (1 user error, 2 environment error).
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn user(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn env(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

pub fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Validate { file } => validate::validate(&file)?,
        Command::Run {
            config,
            bpffs,
            xdp_mode,
            flow_log,
            metrics,
            flow_log_interval_ms,
            router_advertisement_interval,
        } => run::run(
            config,
            bpffs,
            xdp_mode,
            flow_log,
            metrics,
            flow_log_interval_ms,
            router_advertisement_interval,
        )?,
        Command::Status { json, bpffs } => show(json, status::collect(&bpffs), status::render)?,
        Command::Flows { json, bpffs } => show(json, flows::collect(&bpffs), |f| flows::render(f))?,
        Command::Conntrack { json, bpffs } => show(json, listing::conntrack(&bpffs), |c| {
            listing::render_conntrack(c)
        })?,
        Command::Nat { json, bpffs } => {
            show(json, listing::nat(&bpffs), |n| listing::render_nat(n))?
        }
        Command::Routes { json, bpffs } => {
            show(json, listing::routes(&bpffs), |r| listing::render_routes(r))?
        }
        Command::Trace(args) => trace::trace(args)?,
        Command::Import { from } => import::import(from)?,
        Command::Detach { bpffs } => detach::detach(&bpffs)?,
    }
    Ok(())
}
