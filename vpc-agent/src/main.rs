//! `vpc-agent`: the command line (subcommands in [`cli`]). Exit status: 0 success, 1 user
//! error, 2 environment error. Logs (`run`, `detach`) go to stderr in logfmt (`level=...
//! msg=...`), with syslog priorities under journald ([`vpc_agent::logging`]): level `info`
//! unless `RUST_LOG` says otherwise.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

use cli::{Cli, execute};

fn main() -> ExitCode {
    vpc_agent::logging::init();
    // A bad argument is a user error (1, README "Exit status"); clap's own status would be 2, which the unit
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
