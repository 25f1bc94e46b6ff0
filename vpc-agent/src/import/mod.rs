//! `vpc-agent import`: a VPC written down in AWS terms — a CloudFormation template
//! ([`cloudformation`]) or the JSON of `aws ec2 describe-*` ([`describe`]) — carried over into
//! a VPC definition (docs/format.md).
//!
//! Both read into an [`inventory::Inventory`] (AWS's objects and associations); [`emit`] names,
//! addresses and writes it. Whatever the format cannot express is a [`Note`] naming the
//! resource and its line, never dropped silently, and so is every value the importer had to
//! invent (an interface name, an address AWS assigns at launch). The result is loaded and
//! checked like `vpc-agent validate` before it is returned: an import that would not validate
//! is an error that says why.

pub mod cloudformation;
pub mod describe;
pub mod emit;
pub mod intrinsics;
pub mod inventory;
pub mod node;

use std::{
    collections::BTreeMap,
    fmt, io,
    path::{Path, PathBuf},
};

use crate::config::{self, Diagnostics};

/// How a note bears on the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Part of the AWS definition is not in the output: behaviour differs.
    NotImported,
    /// A value AWS assigns (or a router interface name) was chosen by the importer.
    Assumed,
    /// Has no meaning for the router (placement, DNS, descriptions); nothing is lost.
    Ignored,
}

impl Severity {
    pub const fn label(self) -> &'static str {
        match self {
            Self::NotImported => "not imported",
            Self::Assumed => "assumed",
            Self::Ignored => "ignored",
        }
    }
}

/// One line of the import report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Line in the input (0 when unknown).
    pub line: u32,
    /// Logical ID or AWS ID of the resource (or the command-line option).
    pub resource: String,
    /// Its AWS type (`AWS::EC2::Subnet`, `describe-subnets`).
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    /// The file, when the input is several files (else the report's source).
    pub file: Option<String>,
}

/// Every note of one import, in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The input's name, for the report lines.
    pub source: String,
    pub notes: Vec<Note>,
}

impl Report {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            notes: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        origin: &inventory::Origin,
        line: u32,
        severity: Severity,
        message: impl Into<String>,
    ) {
        self.notes.push(Note {
            line: if line == 0 { origin.line } else { line },
            resource: origin.id.clone(),
            kind: origin.kind.clone(),
            severity,
            message: message.into(),
            file: origin.file.clone(),
        });
    }

    /// The notes of one severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.notes.iter().filter(|n| n.severity == severity).count()
    }

    /// `SOURCE:LINE: ID (TYPE): severity: message`, one per note, sorted by line.
    pub fn lines(&self) -> Vec<String> {
        let mut notes: Vec<&Note> = self.notes.iter().collect();
        notes.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        notes
            .into_iter()
            .map(|n| {
                format!(
                    "{}:{}: {} ({}): {}: {}",
                    n.file.as_deref().unwrap_or(&self.source),
                    n.line,
                    n.resource,
                    n.kind,
                    n.severity.label(),
                    n.message
                )
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.lines() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `--interfaces` / `--addresses`: keys (logical IDs, AWS IDs or `Name` tags) to values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMap {
    pub entries: BTreeMap<String, String>,
}

impl NameMap {
    /// `key=value,key=value`, or the path of a YAML file mapping keys to values.
    pub fn parse(option: &str, arg: &str) -> Result<Self, ImportError> {
        let path = Path::new(arg);
        if !arg.contains('=') || path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
                path: path.to_owned(),
                source,
            })?;
            let map: BTreeMap<String, String> =
                serde_saphyr::from_str(&text).map_err(|source| ImportError::MapFile {
                    option: option.to_owned(),
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
            return Ok(Self { entries: map });
        }
        let mut entries = BTreeMap::new();
        for pair in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(ImportError::Map {
                    option: option.to_owned(),
                    reason: format!("'{pair}' is not KEY=VALUE"),
                });
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(ImportError::Map {
                    option: option.to_owned(),
                    reason: format!("'{pair}' needs a key and a value"),
                });
            }
            if entries.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(ImportError::Map {
                    option: option.to_owned(),
                    reason: format!("'{k}' is given twice"),
                });
            }
        }
        Ok(Self { entries })
    }
}

/// What the command line gives an import.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Subnet (and internet gateway) -> router interface name.
    pub interfaces: NameMap,
    /// Instance, network interface, NAT gateway or elastic IP -> address.
    pub addresses: NameMap,
    /// Template parameters (`--parameter K=V`), CloudFormation only.
    pub parameters: BTreeMap<String, String>,
}

/// A successful import: the definition (already validated) and the report.
#[derive(Clone, Debug)]
pub struct Imported {
    pub yaml: String,
    pub report: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{file}: not valid YAML")]
    Yaml {
        file: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{file}: not valid JSON")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {reason}")]
    Input { file: String, reason: String },
    #[error("--parameter {0}")]
    Parameter(String),
    #[error("{option}: {reason}")]
    Map { option: String, reason: String },
    #[error("{option} {}: expected a mapping of names to values", path.display())]
    MapFile {
        option: String,
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The output would not pass `vpc-agent validate` (the report says what was left out).
    #[error("the imported definition does not validate ({} notes in the report)", report.notes.len())]
    Invalid {
        yaml: String,
        report: Report,
        #[source]
        diagnostics: Diagnostics,
    },
    #[error("{}: no VPC could be imported", report.source)]
    NoVpc { report: Report },
}

impl ImportError {
    /// The report gathered before the failure, if it got that far.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Self::Invalid { report, .. } | Self::NoVpc { report } => Some(report),
            _ => None,
        }
    }
}

/// Reads a template file and imports it.
pub fn cloudformation_file(path: &Path, options: &Options) -> Result<Imported, ImportError> {
    let text = read(path)?;
    cloudformation::import(&path.display().to_string(), &text, options)
}

/// Reads describe-* output (a file, or every `*.json` of a directory) and imports it.
pub fn describe_path(path: &Path, options: &Options) -> Result<Imported, ImportError> {
    let mut docs = Vec::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let text = read(&file)?;
            docs.push((file.display().to_string(), text));
        }
        if docs.is_empty() {
            return Err(ImportError::Input {
                file: path.display().to_string(),
                reason: "no *.json file in the directory".to_owned(),
            });
        }
    } else {
        docs.push((path.display().to_string(), read(path)?));
    }
    describe::import(&path.display().to_string(), &docs, options)
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes the inventory and checks the result as `vpc-agent validate` does.
fn finish(
    inventory: &inventory::Inventory,
    options: &Options,
    mut report: Report,
    command: &str,
    prefer_tags: bool,
) -> Result<Imported, ImportError> {
    let Some(yaml) = emit::emit(inventory, options, &mut report, command, prefer_tags) else {
        return Err(ImportError::NoVpc { report });
    };
    const OUTPUT: &str = "(imported)";
    let checked = config::load_str(OUTPUT, &yaml)
        .and_then(|c| crate::compile::check::check_capacity(OUTPUT, &c));
    match checked {
        Ok(()) => Ok(Imported { yaml, report }),
        Err(diagnostics) => Err(ImportError::Invalid {
            yaml,
            report,
            diagnostics,
        }),
    }
}
