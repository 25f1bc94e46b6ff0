//! `vpc-agent import cloudformation|describe`: a VPC written down in AWS terms as a definition.

use vpc_agent::{error_chain, import};

use super::{Failure, ImportArgs, ImportFrom, user};

/// `vpc-agent import`: the definition to --output (or stdout), the report to stderr; exit 1
/// when the input cannot be read or the result would not validate.
pub(super) fn import(from: ImportFrom) -> Result<(), Failure> {
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
