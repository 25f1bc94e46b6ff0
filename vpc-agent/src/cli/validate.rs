//! `vpc-agent validate FILE`: every error as FILE:LINE:COL: PATH: message; changes nothing.

use std::path::Path;

use vpc_agent::{compile::check, error_chain};

use super::{Failure, user};

pub(super) fn validate(file: &Path) -> Result<(), Failure> {
    let summary = check::check_file(file).map_err(|e| user(error_chain(&e)))?;
    println!("{summary}");
    Ok(())
}
