//! `vpc-agent`: the command line (see shared/spec/cli.md). Exit status: 0 success, 1 user error,
//! 2 environment error.
use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vpc-agent", version, about = "eBPF/XDP VPC enforcement agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a VPC definition: print every error as FILE:LINE:COL: PATH: message; change nothing.
    Validate {
        /// The VPC definition (YAML).
        file: PathBuf,
    },
    /// Print the size of the embedded eBPF object.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file } => match vpc_agent::config::check_file(&file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(report) => {
                eprintln!("{}", error_chain(&report));
                ExitCode::from(1)
            }
        },
        Command::Info => {
            println!(
                "vpc-agent {}: embedded eBPF object {} bytes",
                env!("CARGO_PKG_VERSION"),
                vpc_agent::ebpf::OBJECT.len()
            );
            ExitCode::SUCCESS
        }
    }
}

/// The error and its sources, `: `-separated (e.g. why a file could not be read).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
