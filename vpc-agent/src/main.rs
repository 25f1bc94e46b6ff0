//! `vpc-agent`: the command line (see shared/spec/cli.md). Exit status: 0 success, 1 user error,
//! 2 environment error. Logs (`run`, `detach`) go to stderr in logfmt (`level=... msg=...`),
//! with syslog priorities under journald ([`vpc_agent::logging`]): level `info` unless
//! `RUST_LOG` says otherwise.
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use clap::{Parser, Subcommand, ValueEnum};
use vpc_agent::{
    config, daemon,
    datapath::AttachMode,
    datapath::pin::{self, DEFAULT_DIR},
    error_chain,
    evaluator::Packet,
    flowlog, import,
    inspect::status,
    inspect::{flows, listing, trace},
};

#[derive(Parser)]
#[command(name = "vpc-agent", version, about = "eBPF/XDP VPC enforcement agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum XdpModeArg {
    /// Native XDP on NICs, the TC path alone on virtual devices (veth, tap).
    Auto,
    /// Driver (native) XDP everywhere (refused on virtual devices).
    Native,
    /// Generic XDP, for drivers without native support.
    Skb,
}

#[derive(Clone, Copy, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Subcommand)]
enum Command {
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
    Trace {
        /// The definition (default: the one the agent running on --bpffs uses).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        from: Ipv4Addr,
        #[arg(long)]
        to: Ipv4Addr,
        #[arg(long, value_enum)]
        proto: Proto,
        #[arg(long, default_value_t = 0)]
        sport: u16,
        #[arg(long, default_value_t = 0)]
        dport: u16,
        /// The interface the packet enters on (default: the subnet of --from, else the uplink).
        #[arg(long)]
        ingress: Option<String>,
        #[arg(long, default_value = DEFAULT_DIR)]
        bpffs: PathBuf,
    },
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
enum ImportFrom {
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
struct ImportArgs {
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
struct Failure {
    code: u8,
    message: String,
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

fn main() -> ExitCode {
    vpc_agent::logging::init();
    // cli.md: a bad argument is a user error (1); clap's own status would be 2, which the unit
    // treats as an environment error and restarts on. --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Validate { file } => {
            let summary = config::check_file(&file).map_err(|e| user(error_chain(&e)))?;
            println!("{summary}");
        }
        Command::Run {
            config,
            bpffs,
            xdp_mode,
            flow_log,
            metrics,
            flow_log_interval_ms,
        } => {
            let flow_log = flow_log
                .as_deref()
                .map(flowlog::parse_destination)
                .transpose()
                .map_err(|e| user(error_chain(&e)))?;
            let opts = daemon::RunOptions {
                config,
                bpffs,
                xdp_mode: match xdp_mode {
                    XdpModeArg::Auto => AttachMode::Auto,
                    XdpModeArg::Native => AttachMode::Native,
                    XdpModeArg::Skb => AttachMode::Skb,
                },
                flow_log,
                flow_log_interval: flow_log_interval_ms.map(Duration::from_millis),
                metrics,
            };
            daemon::run(opts).map_err(|e| Failure {
                code: e.exit_code(),
                message: error_chain(&e),
            })?;
        }
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
        Command::Trace {
            config,
            from,
            to,
            proto,
            sport,
            dport,
            ingress,
            bpffs,
        } => {
            let path = match config {
                Some(path) => path,
                None => pin::read_record(&bpffs)
                    .map_err(|e| env(error_chain(&e)))?
                    .map(|r| r.config)
                    .ok_or_else(|| {
                        user(format!(
                            "no --config and no agent record in {}",
                            bpffs.display()
                        ))
                    })?,
            };
            let definition = config::load_file(&path).map_err(|e| user(error_chain(&e)))?;
            let (proto, icmp_type) = match proto {
                Proto::Tcp => (6, 0),
                Proto::Udp => (17, 0),
                // An echo request: what a ping sends.
                Proto::Icmp => (1, 8),
            };
            let packet = Packet {
                src: from,
                dst: to,
                proto,
                sport,
                dport,
                icmp_type,
                icmp_code: 0,
            };
            let ingress = ingress
                .or_else(|| trace::default_ingress(&definition, from))
                .ok_or_else(|| user("--ingress is needed: no subnet holds --from and no uplink"))?;
            let text = trace::explain(&definition, &ingress, &packet)
                .map_err(|e| user(error_chain(&e)))?;
            print!("{text}");
        }
        Command::Import { from } => run_import(from)?,
        Command::Detach { bpffs } => {
            let guard =
                vpc_agent::daemon::guard::remove(&bpffs).map_err(|e| env(error_chain(&e)))?;
            if guard {
                log::info!(
                    "removed the fail-closed guard table=inet {}",
                    vpc_agent::daemon::guard::table_name(&bpffs)
                );
            }
            if !bpffs.exists() {
                log::info!("nothing to detach bpffs={}", bpffs.display());
                return Ok(());
            }
            let _lock = pin::lock(&bpffs).map_err(|e| env(error_chain(&e)))?;
            let removed = pin::remove_all(&bpffs).map_err(|e| env(error_chain(&e)))?;
            log::info!(
                "detached bpffs={} links={} maps={}",
                bpffs.display(),
                removed.links,
                removed.maps
            );
        }
    }
    Ok(())
}

/// Prints what a reading subcommand collected from the pinned maps, as JSON or as text; a
/// failure to read is an environment error.
fn show<T: serde::Serialize>(
    json: bool,
    collected: Result<T, status::StatusError>,
    render: impl Fn(&T) -> String,
) -> Result<(), Failure> {
    let value = collected.map_err(|e| env(error_chain(&e)))?;
    if json {
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| env(format!("cannot encode the output: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// `vpc-agent import`: the definition to --output (or stdout), the report to stderr; exit 1
/// when the input cannot be read or the result would not validate.
fn run_import(from: ImportFrom) -> Result<(), Failure> {
    let options = |common: &ImportArgs, parameters: &[String]| -> Result<_, import::ImportError> {
        let map = |option: &str, arg: &Option<String>| {
            arg.as_deref().map_or(Ok(import::NameMap::default()), |a| {
                import::NameMap::parse(option, a)
            })
        };
        let mut parsed = std::collections::BTreeMap::new();
        for p in parameters {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                import::ImportError::Parameter(format!("{p}: expected NAME=VALUE"))
            })?;
            parsed.insert(k.to_owned(), v.to_owned());
        }
        Ok(import::Options {
            interfaces: map("--interfaces", &common.interfaces)?,
            addresses: map("--addresses", &common.addresses)?,
            parameters: parsed,
        })
    };
    let (result, output) = match &from {
        ImportFrom::Cloudformation {
            template,
            common,
            parameters,
        } => (
            options(common, parameters).and_then(|o| import::cloudformation_file(template, &o)),
            &common.output,
        ),
        ImportFrom::Describe { path, common } => (
            options(common, &[]).and_then(|o| import::describe_path(path, &o)),
            &common.output,
        ),
    };
    match result {
        Ok(imported) => {
            eprint!("{}", imported.report);
            match output {
                Some(path) => std::fs::write(path, &imported.yaml)
                    .map_err(|e| user(format!("{}: cannot write: {e}", path.display())))?,
                None => print!("{}", imported.yaml),
            }
            Ok(())
        }
        Err(e) => {
            if let Some(report) = e.report() {
                eprint!("{report}");
            }
            let mut message = error_chain(&e);
            if let import::ImportError::Invalid { diagnostics, .. } = &e {
                message = format!("{e}:\n{diagnostics}");
            }
            Err(user(message))
        }
    }
}
