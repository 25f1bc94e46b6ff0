//! What `vpc-agent validate` adds to loading a definition: compiling it with stand-in interface
//! indexes, so that a definition that would not fit the maps is reported too.

use std::{collections::BTreeMap, path::Path};

use super::{CompileError, compile};
use crate::config::{Diagnostic, Diagnostics, LoadError, ValidatedConfig, load_file, model};

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
    let messages = match compile(config, 0, &ifindex) {
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
