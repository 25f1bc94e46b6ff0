//! Errors of loading a VPC definition. Every problem in the file is a [`Diagnostic`] printed as
//! `FILE:LINE:COL: PATH: message`; all of them are collected and reported together.

use std::{fmt, io, path::PathBuf};

use super::model::Pos;

/// One problem in the file, at a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Line and column of the offending node.
    pub pos: Pos,
    /// Where the node is in the document, e.g. `vpcs[0].subnets[2].cidr` (`(root)` for the
    /// document itself).
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        Self {
            pos,
            path: if path.is_empty() {
                ROOT_PATH.to_owned()
            } else {
                path
            },
            message: message.into(),
        }
    }
}

/// The path printed for the document itself.
pub const ROOT_PATH: &str = "(root)";

impl fmt::Display for Diagnostic {
    /// `LINE:COL: PATH: message` (the file name is added by [`Diagnostics`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.pos, self.path, self.message)
    }
}

/// Every problem of one file, sorted by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// The report lines, `FILE:LINE:COL: PATH: message` each.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.items.iter().map(|d| format!("{}:{d}", self.file))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&line)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Why a VPC definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read the file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a regular file ({kind}); a definition is read from a regular file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// The file was read but is not a valid definition (syntax, structure, semantics or
    /// capacity); every problem is listed.
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

impl LoadError {
    /// The diagnostics, if the file was read.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            Self::Invalid(d) => Some(d),
            Self::Read { .. } | Self::NotAFile { .. } | Self::TooLarge { .. } => None,
        }
    }
}
