//! End to end through the router namespace: the agent's datapath (native XDP on every router
//! port) against the plain Linux router enforcing an equivalent policy with nftables (filter
//! with conntrack, SNAT/DNAT for the gateways), same topology, same traffic:
//! - TCP throughput: iperf3, one stream, web0 -> db0 (pub0 -> priv0);
//! - packets per second: iperf3 UDP flood of 64-byte payloads (`-u -l 64 -b 0`), bounded by
//!   `-t`, counted at the receiver (packets sent minus lost).
//!
//! Generators run only inside the test namespaces, with private addresses, each under
//! `timeout`; the namespaces go away with the topology (also on failure).
use std::{
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use vpc_agent::datapath::AttachMode;
use vpc_tests::{netns::NetNs, topology::Topology};

use super::{
    SMALLEST,
    fixture::{APP, DB, NAT_ELASTIC, WEB, WEB_PUBLIC, yaml},
    testrun::median,
};

/// Medians of one router's runs.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// UDP packets per second received.
    pub pps: f64,
    /// TCP goodput at the receiver, bits per second.
    pub tcp_bps: f64,
}

/// Both routers, and how they were run.
#[derive(Clone, Copy, Debug)]
pub struct E2e {
    pub xdp: Traffic,
    pub nft: Traffic,
    pub runs: usize,
    pub seconds: u32,
}

pub fn run(quick: bool) -> Result<E2e> {
    let (runs, seconds) = if quick { (1, 2) } else { (5, 5) };
    let definition = yaml(&SMALLEST);
    eprintln!("bench: end to end, agent datapath (auto: TC path on veths)");
    let xdp = {
        let topo = Topology::build(&definition, Some(AttachMode::Auto), true)?;
        measure(&topo, runs, seconds)?
    };
    eprintln!("bench: end to end, Linux router with nftables");
    let nft = {
        let topo = Topology::build(&definition, None, true)?;
        install_nftables(&topo.router)?;
        measure(&topo, runs, seconds)?
    };
    Ok(E2e {
        xdp,
        nft,
        runs,
        seconds,
    })
}

/// The fixture's policy for the traffic it carries, in nftables: security groups and ACLs
/// become a stateful forward filter, the NAT gateway SNAT, public IPs SNAT/DNAT.
fn ruleset() -> String {
    let mut nat = String::new();
    for (private, public) in WEB.iter().zip(WEB_PUBLIC) {
        nat.push_str(&format!(
            "    oifname \"up0\" ip saddr {private} snat to {public}\n"
        ));
    }
    let dnat: String = WEB
        .iter()
        .zip(WEB_PUBLIC)
        .map(|(private, public)| format!("    ip daddr {public} dnat to {private}\n"))
        .collect();
    let apps = format!("{}-{}", APP[0], APP[APP.len() - 1]);
    format!(
        "table inet vpcbench {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname \"pub0\" oifname \"priv0\" ip saddr 10.0.0.0/24 ip daddr 10.0.1.0/24 tcp dport 1-19999 accept
    iifname \"pub0\" oifname \"priv0\" ip saddr 10.0.0.0/24 ip daddr 10.0.1.0/24 meta l4proto udp accept
    iifname \"priv0\" oifname \"up0\" ip saddr {apps} accept
    iifname \"pub0\" oifname \"up0\" ip saddr {{ {webs} }} accept
  }}
}}
table ip vpcbenchnat {{
  chain post {{
    type nat hook postrouting priority srcnat;
    oifname \"up0\" ip saddr {apps} snat to {NAT_ELASTIC}
{nat}  }}
  chain pre {{
    type nat hook prerouting priority dstnat;
{dnat}  }}
}}
",
        webs = WEB.join(", "),
    )
}

fn install_nftables(router: &NetNs) -> Result<()> {
    let path = std::env::temp_dir().join(format!("vpc-bench-{}.nft", std::process::id()));
    std::fs::write(&path, ruleset()).context("writing the nftables ruleset")?;
    let result = router.exec("nft", &["-f", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    result.context("loading the nftables ruleset").map(drop)
}

fn measure(topo: &Topology, runs: usize, seconds: u32) -> Result<Traffic> {
    let client = &topo.port_of(WEB[0].parse()?).context("web0's port")?.ns;
    let server_ns = &topo.port_of(DB[0].parse()?).context("db0's port")?.ns;
    let (mut pps, mut bps) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let udp = iperf(server_ns, client, &["-u", "-l", "64", "-b", "0"], seconds)?;
        let tcp = iperf(server_ns, client, &[], seconds)?;
        let (p, b) = (received_pps(&udp)?, received_bps(&tcp)?);
        eprintln!("bench:   run {run}: {p:.0} pps, {:.2} Gbit/s", b / 1e9);
        pps.push(p);
        bps.push(b);
    }
    Ok(Traffic {
        pps: median(&mut pps),
        tcp_bps: median(&mut bps),
    })
}

/// An iperf3 server for one test, killed on drop.
struct Server(Child);

impl Server {
    fn start(ns: &NetNs) -> Result<Self> {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "timeout",
                "60",
                "iperf3",
                "-s",
                "-1",
            ])
            .args(["-B", DB[0]])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn iperf3 server")?;
        let server = Self(child);
        for _ in 0..100 {
            let out = ns.exec_status("ss", &["-ltnH", "sport", "=", ":5201"])?;
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return Ok(server);
            }
            sleep(Duration::from_millis(20));
        }
        bail!("iperf3 server did not start in {}", ns.name())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One bounded iperf3 run from web0 to db0; its JSON report.
fn iperf(server_ns: &NetNs, client: &NetNs, args: &[&str], seconds: u32) -> Result<Value> {
    let _server = Server::start(server_ns)?;
    let limit = (seconds + 15).to_string();
    let secs = seconds.to_string();
    let mut all = vec![
        "timeout", &limit, "iperf3", "-J", "-c", DB[0], "-B", WEB[0], "-t", &secs,
    ];
    all.extend_from_slice(args);
    let out = client.exec_status(all[0], &all[1..])?;
    let json: Value = serde_json::from_slice(&out.stdout).context("iperf3 JSON")?;
    if let Some(error) = json["error"].as_str() {
        bail!("iperf3 {args:?}: {error}");
    }
    Ok(json)
}

fn received_pps(json: &Value) -> Result<f64> {
    let sum = &json["end"]["sum_received"];
    let packets = sum["packets"].as_f64().context("UDP packets")?;
    let lost = sum["lost_packets"].as_f64().context("UDP lost packets")?;
    let seconds = sum["seconds"].as_f64().context("UDP seconds")?;
    Ok((packets - lost) / seconds)
}

fn received_bps(json: &Value) -> Result<f64> {
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("TCP bits per second")
}
