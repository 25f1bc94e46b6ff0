//! `vpc-agent`: the command line (see shared/spec/cli.md). Exit status: 0 success, 1 user error,
//! 2 environment error.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vpc-agent", version, about = "eBPF/XDP VPC enforcement agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the size of the embedded eBPF object and the programs it holds.
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
