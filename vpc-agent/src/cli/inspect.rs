//! `vpc-agent status|flows|conntrack|nat|routes [--json]`: what the pinned maps hold (see
//! [`vpc_agent::inspect`]), as text or as JSON.

use vpc_agent::{error_chain, inspect::status};

use super::{Failure, env};

/// Prints what a reading subcommand collected from the pinned maps, as JSON or as text; a
/// failure to read is an environment error.
pub(super) fn show<T: serde::Serialize>(
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
