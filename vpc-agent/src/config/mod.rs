//! The VPC definition (shared/spec/vpc-config.md): the YAML model ([`model`]), loading with
//! locations ([`parse`]), the semantic rules ([`validate`]) and the resolved result
//! ([`validated`]). [`load_file`] and [`load_str`] run them all.

pub mod error;
pub mod model;
pub mod parse;
pub mod validate;
pub mod validated;

use std::{collections::BTreeMap, path::Path};

pub use error::{Diagnostic, Diagnostics, LoadError};
pub use validated::ValidatedConfig;

use crate::compile::{self, CompileError};

/// Parses and validates the text of a definition; `file` names it in the diagnostics.
pub fn load_str(file: &str, text: &str) -> Result<ValidatedConfig, Diagnostics> {
    let diagnostics = |items| Diagnostics {
        file: file.to_owned(),
        items,
    };
    let parsed = parse::parse_str(text).map_err(|d| diagnostics(vec![d]))?;
    validate::validate(&parsed).map_err(diagnostics)
}

/// Reads, parses and validates a definition file.
pub fn load_file(path: &Path) -> Result<ValidatedConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(load_str(&path.display().to_string(), &text)?)
}

/// What `vpc-agent validate` does: load, validate, and compile (with stand-in interface
/// indexes, since validation must not depend on the machine) so that a definition that would
/// not fit the maps is reported too. Returns the one-line summary.
pub fn check_file(path: &Path) -> Result<String, LoadError> {
    let config = load_file(path)?;
    let file = path.display().to_string();
    check_capacity(&file, &config)?;
    let mut out: Vec<String> = config
        .warnings
        .iter()
        .map(|w| format!("{file}:{w}"))
        .collect();
    out.push(format!("{file}: valid: {}", config.summary()));
    Ok(out.join("\n"))
}

/// Compiles with stand-in ifindexes (1, 2, ... by interface name) and turns a failure into
/// diagnostics at the top of the file (capacity is a property of the whole definition).
pub fn check_capacity(file: &str, config: &ValidatedConfig) -> Result<(), Diagnostics> {
    let names = config.interfaces().into_iter().map(|(name, _)| name);
    let stand_in: BTreeMap<&str, u32> = names.zip(1..).collect();
    let ifindex = |name: &str| stand_in.get(name).copied();
    let messages = match compile::compile(config, 0, &ifindex) {
        Ok(_) => return Ok(()),
        Err(CompileError::Capacity { overflows }) => overflows
            .iter()
            .map(|o| format!("too large: {o}"))
            .collect(),
        Err(other) => vec![other.to_string()],
    };
    let items = messages
        .into_iter()
        .map(|m| Diagnostic::new(model::Pos::new(1, 1), "vpcs", m))
        .collect();
    Err(Diagnostics {
        file: file.to_owned(),
        items,
    })
}
