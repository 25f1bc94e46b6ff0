//! The optional Prometheus endpoint (`vpc-agent run --metrics ADDR`): plain HTTP/1.0, text
//! exposition format 0.0.4, `GET /metrics` only. Every scrape reads the pinned maps (the same
//! [`inspect::status::collect`] as `vpc-agent status`), so it shows what `status` shows.

use std::{fmt::Write as _, net::SocketAddr, path::PathBuf};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use vpc_common::DropReason;

use crate::inspect::status::{self, Status};

/// How much of a request is read (the request line and headers).
const MAX_REQUEST: usize = 8192;

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text of a status.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let f = &s.flows;
    let l = &f.flow_log;
    metric(
        &mut out,
        "vpc_packets_total",
        "counter",
        "Packets the datapath decided on (counted at the ingress interface), by action.",
    );
    for (action, n) in [
        ("ACCEPT", l.accepted_packets + f.live_accepted_packets),
        ("REJECT", l.rejected_packets + f.live_rejected_packets),
    ] {
        let _ = writeln!(out, "vpc_packets_total{{action=\"{action}\"}} {n}");
    }
    metric(
        &mut out,
        "vpc_bytes_total",
        "counter",
        "Bytes the datapath decided on, by action.",
    );
    for (action, n) in [
        ("ACCEPT", l.accepted_bytes + f.live_accepted_bytes),
        ("REJECT", l.rejected_bytes + f.live_rejected_bytes),
    ] {
        let _ = writeln!(out, "vpc_bytes_total{{action=\"{action}\"}} {n}");
    }
    metric(
        &mut out,
        "vpc_drops_total",
        "counter",
        "Dropped packets by reason (nat_port_exhausted: NAT port allocation failures).",
    );
    for reason in DropReason::ALL {
        let n = s.drops.get(reason.name()).copied().unwrap_or(0);
        let _ = writeln!(out, "vpc_drops_total{{reason=\"{}\"}} {n}", reason.name());
    }
    type Field = fn(&crate::inspect::status::HookDrops) -> u64;
    let by_hook: [(&str, &str, Field); 2] = [
        (
            "vpc_drops_by_hook_total",
            "Dropped packets by reason and the program that dropped them (xdp, tc_ingress, tc_egress).",
            |d| d.packets,
        ),
        (
            "vpc_drop_bytes_total",
            "Bytes of dropped packets by reason and program.",
            |d| d.bytes,
        ),
    ];
    for (name, help, field) in by_hook {
        metric(&mut out, name, "counter", help);
        for d in &s.drops_by_hook {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\",hook=\"{}\"}} {}",
                d.reason,
                d.hook,
                field(d)
            );
        }
    }
    metric(
        &mut out,
        "vpc_map_entries",
        "gauge",
        "Entries in use in each pinned map.",
    );
    for m in &s.maps {
        let _ = writeln!(out, "vpc_map_entries{{map=\"{}\"}} {}", m.name, m.entries);
    }
    metric(
        &mut out,
        "vpc_map_capacity",
        "gauge",
        "Capacity (max entries) of each pinned map.",
    );
    for m in &s.maps {
        let _ = writeln!(out, "vpc_map_capacity{{map=\"{}\"}} {}", m.name, m.capacity);
    }
    let ct = &s.conntrack;
    metric(
        &mut out,
        "vpc_conntrack_total",
        "counter",
        "Connection tracking entries created, assured (handshake completed or answered), \
         expired (datapath), swept (agent), evicted (LRU).",
    );
    for (event, n) in [
        ("created", ct.created),
        ("assured", ct.assured),
        ("expired", ct.expired),
        ("swept", ct.swept),
        ("evicted", ct.evictions),
    ] {
        let _ = writeln!(out, "vpc_conntrack_total{{event=\"{event}\"}} {n}");
    }
    let scalars = [
        (
            "vpc_flow_log_records_written_total",
            "Flow log records written (OK, NODATA, SKIPDATA).",
            l.records_written,
        ),
        (
            "vpc_flow_log_skipdata_records_total",
            "SKIPDATA flow log records written.",
            l.skipdata_records,
        ),
        (
            "vpc_flow_log_records_lost_total",
            "Flow log records that could not be written (disk full, destination gone).",
            l.records_lost,
        ),
        (
            "vpc_flow_log_packets_skipped_total",
            "Packets whose flow the datapath could not record (FLOWS full).",
            l.packets_skipped + f.live_skipped.values().sum::<u64>(),
        ),
    ];
    for (name, help, n) in scalars {
        metric(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {n}");
    }
    metric(
        &mut out,
        "vpc_config_generation",
        "gauge",
        "The configuration generation running.",
    );
    let _ = writeln!(out, "vpc_config_generation {}", s.generation);
    out
}

/// Serves `GET /metrics` on `listener` forever (one connection at a time: scrapes are rare).
pub async fn serve(listener: TcpListener, bpffs: PathBuf) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, &bpffs).await {
                    log::debug!("metrics: connection from {peer}: {e}");
                }
            }
            Err(e) => log::warn!("metrics: accept failed: {e}"),
        }
    }
}

/// Binds the metrics endpoint (only where told).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn answer(mut stream: TcpStream, bpffs: &std::path::Path) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let line = String::from_utf8_lossy(&request);
    let target = line.split_whitespace().take(2).collect::<Vec<_>>();
    let (code, body) = match target.as_slice() {
        ["GET", "/metrics"] => match status::collect(bpffs) {
            Ok(s) => ("200 OK", render(&s)),
            Err(e) => ("500 Internal Server Error", crate::error_chain(&e) + "\n"),
        },
        ["GET", _] => ("404 Not Found", "only /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "GET only\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.0 {code}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
