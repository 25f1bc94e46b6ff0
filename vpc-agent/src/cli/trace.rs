//! `vpc-agent trace`: what the datapath does with a packet. With an agent running on
//! --bpffs, the packet runs through the attached TC ingress program in trace mode (no side
//! effect) and the reference evaluator judges it beside it (a disagreement exits 3);
//! without one, the evaluator alone. `--reply`: the return packet of an existing connection;
//! `--pcap`: every IPv4 packet of a capture through the program, every IPv6 one (without
//! extension headers) through the evaluator. IPv6 packets are judged by the evaluator alone
//! (the kernel trace takes IPv4), as the datapath handles IPv6 today.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use vpc_agent::{
    config::{self, ValidatedConfig},
    datapath::{
        object::programs,
        pin::{self, DEFAULT_DIR},
    },
    error_chain,
    evaluator::{EvalError, Evaluator, Ingress, IpPacket, Stateless},
    inspect::{
        frame::{self, ACK, SYN, Spec},
        kernel_trace::{Comparison, Outcome, Session},
        pcap, trace,
    },
    links,
};

use super::{Failure, Proto, env, user};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// The definition (default: the one the agent running on --bpffs uses).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The source, IPv4 or IPv6.
    #[arg(long, required_unless_present = "pcap")]
    pub from: Option<IpAddr>,
    /// The destination, of the same family as --from.
    #[arg(long, required_unless_present = "pcap")]
    pub to: Option<IpAddr>,
    #[arg(long, value_enum, required_unless_present = "pcap")]
    pub proto: Option<Proto>,
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// TCP flags, as tcpdump prints them: S, A, F, R, P (default: S; A with --reply).
    #[arg(long)]
    pub flags: Option<String>,
    /// Trace the return packet of the existing connection --from -> --to (read-only).
    #[arg(long)]
    pub reply: bool,
    /// Replay every IPv4 packet of a capture (pcap or pcapng) through the program.
    #[arg(long, conflicts_with_all = ["from", "to", "proto", "reply"])]
    pub pcap: Option<PathBuf>,
    /// The interface the packet enters on (default: the port of the instance with address
    /// --from, else the subnet holding it, else the gateway whose networks hold it, else the
    /// uplink).
    #[arg(long)]
    pub ingress: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = DEFAULT_DIR)]
    pub bpffs: PathBuf,
}

/// Exit status of a kernel/evaluator disagreement (a bug to report).
const DISAGREEMENT: u8 = 3;

fn definition(
    config: Option<PathBuf>,
    bpffs: &std::path::Path,
) -> Result<ValidatedConfig, Failure> {
    let path = match config {
        Some(path) => path,
        None => pin::read_record(bpffs)
            .map_err(|e| env(error_chain(&e)))?
            .map(|r| r.config)
            .ok_or_else(|| {
                user(format!(
                    "no --config and no agent record in {}",
                    bpffs.display()
                ))
            })?,
    };
    config::load_file(&path).map_err(|e| user(error_chain(&e)))
}

/// The MAC the neighbour at `ip` has on `interface` (the router's ARP table), else a locally
/// administered stand-in.
fn neighbour_mac(ip: Ipv4Addr, interface: &str) -> [u8; 6] {
    let table = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[0] == ip.to_string() && f[5] == interface).then(|| f[3].to_owned())
        })
        .find_map(|mac| {
            let bytes: Vec<u8> = mac
                .split(':')
                .filter_map(|b| u8::from_str_radix(b, 16).ok())
                .collect();
            <[u8; 6]>::try_from(bytes).ok().filter(|m| *m != [0; 6])
        })
        .unwrap_or([0x02, 0, 0, 0, 0, 0x01])
}

/// Whether a TC ingress program of an agent is attached to `interface` on `bpffs`.
fn attached(bpffs: &std::path::Path, interface: &str) -> bool {
    pin::link_path(bpffs, interface, programs::TC_INGRESS).exists()
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\""))
    );
}

pub(super) fn trace(args: TraceArgs) -> Result<(), Failure> {
    let definition = definition(args.config.clone(), &args.bpffs)?;
    if let Some(path) = &args.pcap {
        return replay(&args, &definition, path);
    }
    let (Some(from), Some(to), Some(proto)) = (args.from, args.to, args.proto) else {
        return Err(user("--from, --to and --proto are needed"));
    };
    if from.is_ipv4() != to.is_ipv4() {
        let mixed = EvalError::MixedFamilies { src: from, dst: to };
        return Err(user(format!("--from/--to: {mixed}")));
    }
    let ipv6 = from.is_ipv6();
    // ICMP: an echo request, what a ping sends.
    let (proto, icmp_type) = match proto {
        Proto::Tcp => (6, 0),
        Proto::Udp => (17, 0),
        Proto::Icmp if ipv6 => {
            return Err(user(
                "--proto icmp is ICMP for IPv4: use --proto icmpv6 with IPv6 addresses",
            ));
        }
        Proto::Icmp => (1, 8),
        Proto::Icmpv6 if !ipv6 => {
            return Err(user(
                "--proto icmpv6 is ICMP for IPv6: use --proto icmp with IPv4 addresses",
            ));
        }
        Proto::Icmpv6 => (58, 128),
    };
    if ipv6 && args.reply {
        return Err(user(
            "--reply traces the return packet of an IPv4 connection: the kernel's trace \
             mode, which it asks, takes IPv4 only",
        ));
    }
    let flags = match &args.flags {
        Some(text) => frame::parse_flags(text).map_err(user)?,
        None if args.reply => ACK,
        None => SYN,
    };
    let ingress = args
        .ingress
        .clone()
        .or_else(|| trace::default_ingress(&definition, from))
        .ok_or_else(|| user("--ingress is needed: no subnet holds --from and no uplink"))?;
    let kernel = if ipv6 {
        Err("kernel traces are of IPv4 packets".to_owned())
    } else if !attached(&args.bpffs, &ingress) {
        Err(format!(
            "no datapath attached to {ingress} on {}",
            args.bpffs.display()
        ))
    } else if links::ifindex(&ingress).is_none() {
        // The test run needs the interface in this network namespace.
        Err(format!(
            "{ingress} is not in this network namespace (run trace in the agent's)"
        ))
    } else {
        Ok(())
    };
    if let Err(why) = kernel {
        if args.reply {
            return Err(env(format!("--reply needs the running datapath: {why}")));
        }
        // No datapath (or IPv6): the reference evaluator alone, as it reads the definition.
        let packet = IpPacket {
            src: from,
            dst: to,
            proto,
            sport: args.sport,
            dport: args.dport,
            icmp_type,
            icmp_code: 0,
            hop_limit: 64,
            nd_target: None,
        };
        // The router's link-local address on a port: from the port's MAC, where the port is
        // in this network namespace.
        let router_link_local = |name: &str| {
            links::mac(name).map(|m| Ipv6Addr::from(vpc_common::iface::router_link_local(&m)))
        };
        let evaluator =
            Evaluator::new(&definition, &Stateless).with_router_link_local(&router_link_local);
        if args.json {
            let t = evaluator
                .evaluate_ip(Ingress::Interface(&ingress), &packet)
                .map_err(|e| user(error_chain(&e)))?;
            print_json(&serde_json::json!({
                "ingress": ingress,
                "kernel": null,
                "note": format!("{why}: the reference evaluator only"),
                "evaluator": {
                    "outcome": Outcome::of_evaluator(&t.verdict),
                    "hops": t.hops.iter().map(trace::describe).collect::<Vec<_>>(),
                },
            }));
            return Ok(());
        }
        let text =
            trace::explain(&evaluator, &ingress, &packet).map_err(|e| user(error_chain(&e)))?;
        print!("{text}");
        println!("({why}: the reference evaluator only)");
        return Ok(());
    }
    let (IpAddr::V4(from), IpAddr::V4(to)) = (from, to) else {
        return Err(user("the kernel trace takes IPv4 packets"));
    };
    let session = Session::new(&args.bpffs, &definition).map_err(|e| env(error_chain(&e)))?;
    let spec = |src, dst, sport, dport, flags, icmp_type, ingress: &str| {
        let router = links::mac(ingress).unwrap_or_default();
        Spec {
            smac: neighbour_mac(src, ingress),
            dmac: router,
            src,
            dst,
            proto,
            sport,
            dport,
            tcp_flags: flags,
            icmp_type,
            ttl: 64,
        }
    };
    let original_flags = if args.reply { ACK } else { flags };
    let original = frame::build(&spec(
        from,
        to,
        args.sport,
        args.dport,
        original_flags,
        icmp_type,
        &ingress,
    ));
    let first = session
        .trace(&ingress, &original, !args.reply)
        .map_err(|e| env(error_chain(&e)))?;
    let result = if args.reply {
        reply_of(&session, &first, to, proto, flags, &spec)?
    } else {
        first
    };
    if args.json {
        print_json(&result);
    } else {
        print!("{}", vpc_agent::inspect::kernel_trace::render(&result));
    }
    match result.disagreement {
        Some(d) => Err(Failure {
            code: DISAGREEMENT,
            message: format!("kernel and evaluator disagree: {d}"),
        }),
        None => Ok(()),
    }
}

/// Builds a frame's spec: (src, dst, sport, dport, TCP flags, ICMP type, ingress).
type SpecFn<'a> = dyn Fn(Ipv4Addr, Ipv4Addr, u16, u16, u8, u8, &str) -> Spec + 'a;

/// The return packet of the connection whose original packet was traced as `first`: from
/// `to`, to the address and port the original left with (translated), entering where it left.
fn reply_of(
    session: &Session<'_>,
    first: &Comparison,
    to: Ipv4Addr,
    proto: u8,
    flags: u8,
    spec: &SpecFn<'_>,
) -> Result<Comparison, Failure> {
    let tracked = first
        .kernel
        .steps
        .iter()
        .any(|s| s.starts_with("connection tracking:") && s.contains(" of a connection in "));
    let (Outcome::Deliver { interface, .. }, Some(out)) =
        (&first.kernel.outcome, &first.kernel.output)
    else {
        return Err(user(format!(
            "the original packet is not forwarded ({}): it has no return packet",
            first.kernel.outcome.text()
        )));
    };
    if !tracked {
        return Err(user(
            "no tracked connection for --from/--to/--sport/--dport: --reply traces the return \
             packet of an existing connection",
        ));
    }
    // ICMP: an echo reply (type 0), with the identifier the request left with.
    let _ = proto;
    let frame = frame::build(&spec(
        to, out.src, out.dport, out.sport, flags, 0, interface,
    ));
    session
        .trace(interface, &frame, true)
        .map_err(|e| env(error_chain(&e)))
}

/// One line per packet of the capture, then a summary.
#[derive(serde::Serialize)]
struct Replayed {
    index: usize,
    ingress: String,
    #[serde(flatten)]
    comparison: Comparison,
}

/// One replayed packet's line: its index (from 1), addresses, ports and protocol, ingress,
/// outcome.
fn row_line(index: usize, endpoints: &str, ingress: &str, outcome: &str) {
    println!("{:>5} {endpoints} on {ingress}: {outcome}", index + 1);
}

/// The summary's key for an outcome.
fn summary_key(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Deliver { .. } => "deliver".to_owned(),
        Outcome::Drop { reason } => format!("drop {reason}"),
        Outcome::ToHost => "to_router".to_owned(),
        Outcome::Answered => "answered".to_owned(),
    }
}

fn replay(
    args: &TraceArgs,
    definition: &ValidatedConfig,
    path: &std::path::Path,
) -> Result<(), Failure> {
    let frames = pcap::read(path).map_err(|e| user(error_chain(&e)))?;
    // IPv4 frames: through the program (the datapath is needed from the first one on).
    let mut session = None;
    // IPv6 frames: the reference evaluator alone (the kernel trace takes IPv4).
    let router_link_local = |name: &str| {
        links::mac(name).map(|m| Ipv6Addr::from(vpc_common::iface::router_link_local(&m)))
    };
    let evaluator =
        Evaluator::new(definition, &Stateless).with_router_link_local(&router_link_local);
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut skipped = 0usize;
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    for (i, f) in frames.iter().enumerate() {
        if let Some(d) = frame::decode6(f) {
            let p = d.packet;
            let ingress = args
                .ingress
                .clone()
                .or_else(|| trace::default_ingress(definition, p.src));
            let Some(ingress) = ingress.filter(|_| !d.extension_headers) else {
                skipped += 1;
                continue;
            };
            let t = evaluator
                .evaluate_ip(Ingress::Interface(&ingress), &p)
                .map_err(|e| user(error_chain(&e)))?;
            let outcome = Outcome::of_evaluator(&t.verdict);
            *summary.entry(summary_key(&outcome)).or_default() += 1;
            if !args.json {
                let (src, dst) = (format!("[{}]", p.src), format!("[{}]", p.dst));
                let proto = vpc_agent::inspect::listing::proto_name(p.proto);
                let endpoints = format!("{src}:{} -> {dst}:{} {proto}", p.sport, p.dport);
                row_line(
                    i,
                    &endpoints,
                    &ingress,
                    &format!("{} (evaluator)", outcome.text()),
                );
            }
            rows.push(serde_json::json!({
                "index": i + 1,
                "ingress": ingress,
                "kernel": null,
                "evaluator": {
                    "outcome": outcome,
                    "hops": t.hops.iter().map(trace::describe).collect::<Vec<_>>(),
                },
            }));
            continue;
        }
        let Some(p) = frame::decode(f) else {
            skipped += 1;
            continue;
        };
        let Some(ingress) = args
            .ingress
            .clone()
            .or_else(|| trace::default_ingress(definition, p.src.into()))
        else {
            skipped += 1;
            continue;
        };
        let s = match session.take() {
            Some(s) => s,
            None => Session::new(&args.bpffs, definition).map_err(|e| env(error_chain(&e)))?,
        };
        let c = s
            .trace(&ingress, f, false)
            .map_err(|e| env(error_chain(&e)))?;
        session = Some(s);
        *summary.entry(summary_key(&c.kernel.outcome)).or_default() += 1;
        if !args.json {
            let proto = vpc_agent::inspect::listing::proto_name(p.proto);
            let endpoints = format!("{}:{} -> {}:{} {proto}", p.src, p.sport, p.dst, p.dport);
            let rule = c
                .kernel
                .rule
                .as_ref()
                .map_or(String::new(), |r| format!(" [{r}]"));
            row_line(
                i,
                &endpoints,
                &ingress,
                &format!("{}{rule}", c.kernel.outcome.text()),
            );
        }
        let row = Replayed {
            index: i + 1,
            ingress,
            comparison: c,
        };
        rows.push(serde_json::to_value(&row).map_err(|e| env(e.to_string()))?);
    }
    if args.json {
        print_json(&serde_json::json!({
            "packets": rows,
            "summary": summary,
            "skipped": skipped,
        }));
    } else {
        println!(
            "summary: {} packets replayed (IPv6 by the reference evaluator), {skipped} skipped \
             (neither IPv4 nor IPv6, IPv6 with extension headers, or no ingress)",
            rows.len()
        );
        for (k, n) in &summary {
            println!("  {k}: {n}");
        }
    }
    Ok(())
}
