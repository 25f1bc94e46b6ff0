//! `vpc-agent trace`: what the datapath would do with a packet (reference evaluator).

use std::{net::Ipv4Addr, path::PathBuf};

use vpc_agent::{
    config,
    datapath::pin::{self, DEFAULT_DIR},
    error_chain,
    evaluator::Packet,
    inspect::trace,
};

use super::{Failure, Proto, env, user};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// The definition (default: the one the agent running on --bpffs uses).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub from: Ipv4Addr,
    #[arg(long)]
    pub to: Ipv4Addr,
    #[arg(long, value_enum)]
    pub proto: Proto,
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// The interface the packet enters on (default: the subnet of --from, else the uplink).
    #[arg(long)]
    pub ingress: Option<String>,
    #[arg(long, default_value = DEFAULT_DIR)]
    pub bpffs: PathBuf,
}

pub(super) fn trace(args: TraceArgs) -> Result<(), Failure> {
    let TraceArgs {
        config,
        from,
        to,
        proto,
        sport,
        dport,
        ingress,
        bpffs,
    } = args;
    let path = match config {
        Some(path) => path,
        None => pin::read_record(&bpffs)
            .map_err(|e| env(error_chain(&e)))?
            .map(|r| r.config)
            .ok_or_else(|| {
                user(format!(
                    "no --config and no agent record in {}",
                    bpffs.display()
                ))
            })?,
    };
    let definition = config::load_file(&path).map_err(|e| user(error_chain(&e)))?;
    let (proto, icmp_type) = match proto {
        Proto::Tcp => (6, 0),
        Proto::Udp => (17, 0),
        // An echo request: what a ping sends.
        Proto::Icmp => (1, 8),
    };
    let packet = Packet {
        src: from,
        dst: to,
        proto,
        sport,
        dport,
        icmp_type,
        icmp_code: 0,
    };
    let ingress = ingress
        .or_else(|| trace::default_ingress(&definition, from))
        .ok_or_else(|| user("--ingress is needed: no subnet holds --from and no uplink"))?;
    let text = trace::explain(&definition, &ingress, &packet).map_err(|e| user(error_chain(&e)))?;
    print!("{text}");
    Ok(())
}
