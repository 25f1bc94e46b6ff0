//! `BENCHMARKS.md`: the machine, the targets (met or not, with the numbers), the per-packet
//! table, the scaling plot, the end-to-end comparison and the map memory.
use std::{fmt::Write as _, process::Command, time::Duration};

use anyhow::Result;

use super::{
    LARGEST, SMALLEST,
    e2e::E2e,
    memory::MapMemory,
    testrun::{ConfigCost, NEW_DISTINCT, Path, STEADY_DISTINCT, STEADY_REPEAT},
};

/// Everything the report is made of.
pub struct Report<'a> {
    pub configs: &'a [ConfigCost],
    pub e2e: Option<&'a E2e>,
    pub memory: &'a [MapMemory],
    pub image: &'a str,
    pub elapsed: Duration,
}

/// One target: its statement, whether it is met and the numbers behind it.
struct Target {
    what: &'static str,
    met: Option<bool>,
    numbers: String,
}

impl Report<'_> {
    pub fn markdown(&self) -> Result<String> {
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n")?;
        writeln!(
            md,
            "Written by `cargo xtask bench` (issue #10) on {}. Kernel `{}`, CPU {}. Run time {:.0} s.\n",
            command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command("uname", &["-srm"]),
            cpu(),
            self.elapsed.as_secs_f64()
        )?;
        md.push_str(NOISE);
        writeln!(
            md,
            "\n## Targets\n\n| target | met | numbers |\n| --- | --- | --- |"
        )?;
        for t in self.targets() {
            let met = match t.met {
                Some(true) => "**met**",
                Some(false) => "**not met**",
                None => "not measured",
            };
            writeln!(md, "| {} | {met} | {} |", t.what, t.numbers)?;
        }
        self.per_packet(&mut md)?;
        writeln!(md, "\n![scaling curves]({})\n", self.image)?;
        self.end_to_end(&mut md)?;
        self.map_memory(&mut md)?;
        Ok(md)
    }

    /// The terminal summary: the targets.
    pub fn summary(&self) -> String {
        let mut s = String::from("Benchmarks written to BENCHMARKS.md\n");
        for t in self.targets() {
            let met = match t.met {
                Some(true) => "met    ",
                Some(false) => "NOT met",
                None => "n/a    ",
            };
            let _ = writeln!(s, "  [{met}] {}: {}", t.what, t.numbers);
        }
        s
    }

    fn targets(&self) -> Vec<Target> {
        let tracked: Vec<_> = self.costs(Path::TrackedFlow);
        let worst_ns = tracked.iter().map(|c| c.ns).fold(0.0, f64::max);
        let worst_ratio = tracked.iter().map(|c| c.ratio()).fold(0.0, f64::max);
        let new: Vec<_> = Path::ALL
            .iter()
            .filter(|p| p.is_new_flow())
            .flat_map(|p| self.costs(*p))
            .collect();
        let worst_new = new.iter().map(|c| c.ratio()).fold(0.0, f64::max);
        let at = |sizes| {
            self.configs
                .iter()
                .find(|c| c.sizes == sizes)
                .and_then(|c| c.get(Path::TrackedFlow))
                .map(|c| c.ns)
        };
        let growth = at(SMALLEST).zip(at(LARGEST)).map(|(s, l)| l / s);
        let spread = tracked.iter().map(|c| c.ns).fold(f64::INFINITY, f64::min);
        let mut targets = vec![
            Target {
                what: "tracked flow within 1.5x the floor",
                met: (!tracked.is_empty()).then_some(worst_ratio <= 1.5),
                numbers: format!("worst x{worst_ratio:.2} over all table sizes"),
            },
            Target {
                what: "tracked flow under 67 ns a packet",
                met: (!tracked.is_empty()).then_some(worst_ns < 67.0),
                numbers: format!("{spread:.0}-{worst_ns:.0} ns over all table sizes"),
            },
            Target {
                what: "new-flow paths within 4x the floor",
                met: (!new.is_empty()).then_some(worst_new <= 4.0),
                numbers: format!("worst x{worst_new:.2} (SG new flow, NAT new flow, all sizes)"),
            },
            Target {
                what: "tracked flow independent of table sizes (within 20%, smallest to largest)",
                met: growth.map(|g| (g - 1.0).abs() <= 0.2),
                numbers: growth.map_or("-".into(), |g| {
                    format!(
                        "{:.0} ns -> {:.0} ns ({:+.0}%)",
                        at(SMALLEST).unwrap_or(0.0),
                        at(LARGEST).unwrap_or(0.0),
                        (g - 1.0) * 100.0
                    )
                }),
            },
        ];
        targets.push(match self.e2e {
            Some(e) => Target {
                what: "end to end: at least 3x the packets per second of the nftables router",
                met: Some(e.xdp.pps >= 3.0 * e.nft.pps),
                numbers: format!(
                    "{:.0} vs {:.0} pps: x{:.2}",
                    e.xdp.pps,
                    e.nft.pps,
                    e.xdp.pps / e.nft.pps
                ),
            },
            None => Target {
                what: "end to end: at least 3x the packets per second of the nftables router",
                met: None,
                numbers: "skipped (--no-e2e)".into(),
            },
        });
        targets
    }

    fn costs(&self, path: Path) -> Vec<&super::testrun::PathCost> {
        self.configs.iter().filter_map(|c| c.get(path)).collect()
    }

    fn per_packet(&self, md: &mut String) -> Result<()> {
        writeln!(
            md,
            "\n## Per-packet cost (BPF_PROG_TEST_RUN)\n\nns per packet (median) and, in brackets, \
             the ratio to the floor program (`vpc_floor`: Ethernet/IPv4 parse and devmap redirect, \
             no policy; same object, same run, same packets, same method, run interleaved packet \
             by packet). Sizes: routes in the table looked up / ACL rules per direction / \
             security-group rules per instance and direction / connections pre-filled in \
             CONNTRACK.\n"
        )?;
        md.push_str("| routes / ACL / SG / CT |");
        for p in Path::ALL {
            write!(md, " {} |", p.name())?;
        }
        md.push_str(" floor, steady | floor, repeat 1 | timer overhead |\n|---|");
        md.push_str(&"---|".repeat(Path::ALL.len() + 3));
        md.push('\n');
        for c in self.configs {
            let s = c.sizes;
            write!(
                md,
                "| {} / {} / {} / {} |",
                s.routes, s.acl_rules, s.sg_rules, s.conntrack
            )?;
            for p in Path::ALL {
                match c.get(p) {
                    Some(x) if x.unexpected > 0 => write!(
                        md,
                        " {:.0} (x{:.2}) ⚠ {} unexpected verdicts |",
                        x.ns,
                        x.ratio(),
                        x.unexpected
                    )?,
                    Some(x) => write!(md, " {:.0} (x{:.2}) |", x.ns, x.ratio())?,
                    None => md.push_str(" - |"),
                }
            }
            let floor = |p: Path| c.get(p).map_or(0.0, |x| x.floor_ns);
            writeln!(
                md,
                " {:.0} | {:.0} | {:.0} |",
                floor(Path::TrackedFlow),
                floor(Path::SgNewFlow),
                c.timer_overhead_ns
            )?;
        }
        let runs: u64 = self
            .configs
            .iter()
            .flat_map(|c| c.paths.iter().map(|p| p.runs))
            .sum();
        writeln!(
            md,
            "\n### How each path was measured\n\n{runs} datapath program runs in total \
             (as many again for the floor).\n"
        )?;
        for p in Path::ALL {
            let method = if p.is_new_flow() {
                format!("{NEW_DISTINCT} distinct 5-tuples, each run once (repeat 1)")
            } else if p.is_warm_single() {
                format!(
                    "{NEW_DISTINCT} distinct 5-tuples, each run once unmeasured (creating the \
                     state), then once measured (repeat 1: the kernel repeats on the rewritten \
                     buffer, so a translated packet cannot be repeated)"
                )
            } else {
                format!("{STEADY_DISTINCT} distinct 5-tuples, each with repeat {STEADY_REPEAT}")
            };
            writeln!(md, "- **{}**: {}; {method}.", p.name(), p.description())?;
        }
        md.push_str(METHOD);
        Ok(())
    }

    fn end_to_end(&self, md: &mut String) -> Result<()> {
        writeln!(md, "## End to end (router namespace, veth)\n")?;
        let Some(e) = self.e2e else {
            md.push_str("Skipped (`--no-e2e`).\n\n");
            return Ok(());
        };
        writeln!(
            md,
            "Medians of {} runs of {} s each; web0 (pub0) -> db0 (priv0), smallest tables.\n",
            e.runs, e.seconds
        )?;
        writeln!(
            md,
            "| router | UDP 64 B packets/s received | TCP throughput |\n| --- | --- | --- |"
        )?;
        for (name, t) in [
            ("agent datapath (native XDP)", e.xdp),
            ("Linux + nftables", e.nft),
        ] {
            writeln!(
                md,
                "| {name} | {:.0} | {:.2} Gbit/s |",
                t.pps,
                t.tcp_bps / 1e9
            )?;
        }
        writeln!(
            md,
            "| ratio | x{:.2} | x{:.2} |\n",
            e.xdp.pps / e.nft.pps,
            e.xdp.tcp_bps / e.nft.tcp_bps
        )?;
        md.push_str(E2E_METHOD);
        Ok(())
    }

    fn map_memory(&self, md: &mut String) -> Result<()> {
        writeln!(
            md,
            "\n## Map memory at default sizes\n\n`bpftool map show` (memlock) for every map the \
             agent's programs use, loaded as the agent loads them.\n\n\
             | map | type | max entries | memlock |\n| --- | --- | --- | --- |"
        )?;
        let mut total = 0;
        for m in self.memory {
            total += m.memlock;
            writeln!(
                md,
                "| {} | {} | {} | {:.1} MiB |",
                m.name,
                m.kind,
                m.max_entries,
                mib(m.memlock)
            )?;
        }
        writeln!(md, "| **total** | | | **{:.1} MiB** |", mib(total))?;
        Ok(())
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A command's trimmed output, or `?`.
fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// "N x model name" from /proc/cpuinfo.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let models: Vec<&str> = info
        .lines()
        .filter_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']))
        .collect();
    match models.first() {
        Some(m) => format!("{} x {m}", models.len()),
        None => "?".into(),
    }
}

const NOISE: &str = "\
> **Noise.** This machine has 2 cores shared with other engineers' builds and tests, running
> at the same time. Figures are medians (over distinct packets for BPF_PROG_TEST_RUN, over runs
> end to end) to resist that, but single figures can still move by tens of percent between
> runs; ratios to the floor, measured interleaved with each path, are the steadier figures.
";

const METHOD: &str = "
Every configuration gets a fresh topology (namespaces, static neighbours, so `bpf_fib_lookup`
answers) and a fresh load of the object with CONNTRACK sized for the pre-filled connections plus
those the run creates (and NAT_PORTS at 2^20), so the LRU never evicts; `BPF_PROG_TEST_RUN` is
called from inside the router namespace with the ingress ifindex set. Pre-filled connections are
established TCP entries from 172.16.0.0/12 that no benchmark packet belongs to. The kernel reports
the average duration of a call's repeats in whole ns; the per-packet figure is the median over
the distinct packets. Repeated packets start with TTL 255: the kernel repeats on the same
buffer, so each run sees the previous run's output (TTL one lower, MACs already rewritten).
Both programs are also attached (native XDP) to a spare veth pair: otherwise every test run
puts its program into the kernel's XDP dispatcher and takes it out (an RCU grace period, ~16 ms
a call). Single-run samples are single runs: each carries the timer overhead of a call
(the floor at repeat 1 minus the floor at repeat 200, column *timer overhead*), and the floor they
are compared with was measured the same way (*floor, repeat 1*). Before each path the FLOWS map is emptied, as the agent's drain does; the FLOWS map (65,536 flows)
fills during the new-flow runs, so later new flows take the SKIPDATA path, as they would between
two drains by the agent.
";

const E2E_METHOD: &str = "\
Same generated VPC in both cases. The agent's router has the datapath attached in native XDP mode
on every router port (and its TC programs); the Linux router has no programs attached, IPv4
forwarding on and an nftables ruleset that enforces the same policy for this traffic: a forward
chain with `ct state established,related accept`, `ct state invalid drop` and accept rules per
subnet pair and protocol (policy drop), SNAT for the NAT gateway and the public IPs and DNAT to the
instances. The generators (iperf3, each run under `timeout`) share the 2 cores with the router's
softirq work, so the end-to-end ratio understates the datapath's own advantage: a veth pair
delivers in the sender's context, and the sender's and the receiver's copies dominate.
";
