//! `vpc-agent run`: the daemon. The run loop (`run`) reconciles the maps to the definition
//! (`reconcile`), prepares the router's own network configuration (`netconf`), keeps the
//! fail-closed nftables guard (`guard`), sweeps expired connections (`sweep`) and tells systemd
//! how it is doing (`notify`), and advertises the router on IPv6 instance ports (`advertise`).

pub mod advertise;
pub mod guard;
pub mod netconf;
pub mod notify;
pub mod reconcile;
pub mod run;
pub mod sweep;

pub use run::{DaemonError, FILE_POLL, IFACE_POLL, RunOptions, run};
