//! The VPC agent: reads a VPC definition, compiles it into the kernel maps of the eBPF datapath,
//! and reads the datapath's counters back out.

pub mod compile;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod evaluator;
pub mod flowlog;
pub mod import;
pub mod inspect;
pub mod links;
pub mod logging;

/// The error and its sources, `: `-separated (e.g. why a file could not be read).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
