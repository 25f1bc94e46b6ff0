//! `vpc-agent run`: the daemon in the foreground (see [`vpc_agent::daemon`]).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use vpc_agent::{daemon, datapath::AttachMode, error_chain, flowlog};

use super::{Failure, XdpModeArg, user};

pub(super) fn run(
    config: PathBuf,
    bpffs: PathBuf,
    xdp_mode: XdpModeArg,
    flow_log: Option<String>,
    metrics: Option<SocketAddr>,
    flow_log_interval_ms: Option<u64>,
    router_advertisement_interval: u64,
) -> Result<(), Failure> {
    let flow_log = flow_log
        .as_deref()
        .map(flowlog::parse_destination)
        .transpose()
        .map_err(|e| user(error_chain(&e)))?;
    let opts = daemon::RunOptions {
        config,
        bpffs,
        xdp_mode: match xdp_mode {
            XdpModeArg::Auto => AttachMode::Auto,
            XdpModeArg::Native => AttachMode::Native,
            XdpModeArg::Skb => AttachMode::Skb,
        },
        flow_log,
        flow_log_interval: flow_log_interval_ms.map(Duration::from_millis),
        metrics,
        router_advertisement_interval: Duration::from_secs(router_advertisement_interval),
    };
    daemon::run(opts).map_err(|e| Failure {
        code: e.exit_code(),
        message: error_chain(&e),
    })?;
    Ok(())
}
