//! `BENCHMARKS.md`: the machine, the targets (met or not, with the numbers), the per-packet
//! table, the scaling plot, the end-to-end comparison and the map memory.
use std::{fmt::Write as _, process::Command, time::Duration};

use anyhow::Result;

use super::{
    LARGEST, SMALLEST,
    e2e::{CPU, E2e, FLOWS, Ratios, Router},
    live,
    memory::{MapMemory, PerConnection},
    testrun::{ConfigCost, NEW_DISTINCT, Path, STEADY_DISTINCT, STEADY_REPEAT},
};

/// Everything the report is made of.
pub struct Report<'a> {
    pub configs: &'a [ConfigCost],
    pub e2e: Option<&'a E2e>,
    pub memory: &'a [MapMemory],
    /// Linux's `nf_conntrack` object size (bytes), the baseline of the connection state.
    pub linux_conntrack: Option<u64>,
    pub image: &'a str,
    pub elapsed: Duration,
}

/// One target: its statement, whether it is met and the numbers behind it.
struct Target {
    what: &'static str,
    met: Option<bool>,
    numbers: String,
}

/// What would close the distance of a target not met: measured leads, not promises.
fn next_step(what: &str) -> Option<&'static str> {
    let step = if what.starts_with("tracked flow within") {
        "one connection lookup per packet (a normalised key with a direction bit: an \
         original-direction packet looks up twice today) and the packet counters in the \
         connection entry instead of a second per-packet hash update (FLOWS)"
    } else if what.starts_with("new connection") {
        "profile the new-connection stages (source check, both groups, ACLs, route, \
         CT_UNASSURED insert, NAT port probe) with BPF_PROG_TEST_RUN variants"
    } else if what.starts_with("ACL deny") {
        "ACL rules compiled per (protocol, port range) into a lookup instead of a linear scan"
    } else if what.starts_with("tracked flow independent") {
        "the connection table's hash buckets (CONNTRACK sized for its load)"
    } else if what.contains("TCP throughput") {
        "keep GSO aggregates on the TC path end to end (the programs take ~3% of a CPU: the \
         gap is around them)"
    } else if what.contains("packets per second") {
        "the XDP program's own cost (see the per-packet figures)"
    } else if what.starts_with("connection state") {
        "a smaller connection entry and the flow counters folded into it (FLOWS is a second \
         per-CPU entry per connection)"
    } else {
        return None;
    };
    Some(step)
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
            match (t.met, next_step(t.what)) {
                (Some(false), Some(next)) => {
                    writeln!(md, "| {} | {met} | {}; next: {next} |", t.what, t.numbers)?
                }
                _ => writeln!(md, "| {} | {met} | {} |", t.what, t.numbers)?,
            }
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
                None if self.configs.is_empty() => continue,
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
        let at = |sizes| {
            self.configs
                .iter()
                .find(|c| c.sizes == sizes)
                .and_then(|c| c.get(Path::TrackedFlow))
                .map(|c| c.ns)
        };
        let growth = at(SMALLEST).zip(at(LARGEST)).map(|(s, l)| l / s);
        let spread = tracked.iter().map(|c| c.ns).fold(f64::INFINITY, f64::min);
        let worst = |path: Path, rules: Option<usize>| {
            self.configs
                .iter()
                .filter(|c| rules.is_none_or(|r| c.sizes.acl_rules == r))
                .filter_map(|c| c.get(path))
                .map(|c| c.ratio())
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
        };
        let ratio_target = |what: &'static str, path: Path, rules: Option<usize>, limit: f64| {
            let w = worst(path, rules);
            Target {
                what,
                met: w.map(|w| w <= limit),
                numbers: w.map_or("-".into(), |w| format!("worst x{w:.2} (limit x{limit:.0})")),
            }
        };
        let mut targets = vec![
            Target {
                what: "tracked flow within 3x the floor",
                met: (!tracked.is_empty()).then_some(worst_ratio <= 3.0),
                numbers: format!(
                    "worst x{worst_ratio:.2} over all table sizes ({spread:.0}-{worst_ns:.0} ns)"
                ),
            },
            ratio_target(
                "new connection with security groups within 20x the floor",
                Path::SgNewFlow,
                None,
                20.0,
            ),
            ratio_target(
                "new connection through a NAT gateway within 25x the floor",
                Path::NatNewFlow,
                None,
                25.0,
            ),
            ratio_target(
                "ACL deny at 40 rules within 6x the floor",
                Path::AclDeny,
                Some(40),
                6.0,
            ),
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
        targets.extend(self.e2e_targets());
        targets
    }

    /// The targets the end-to-end part measures (also replaced alone by `--e2e-only`).
    fn e2e_targets(&self) -> Vec<Target> {
        let skipped = || "skipped (--no-e2e)".to_string();
        let pps = self.e2e.and_then(|e| e.at(64));
        let tcp = self.e2e.map(|e| e.tcp);
        let conn = PerConnection::of(self.memory);
        vec![
            Target {
                what: E2E_TARGETS[0],
                met: pps.map(|s| router_ratio(s) >= 3.0),
                numbers: pps.map_or_else(skipped, |s| {
                    format!(
                        "router alone {} ({:.0} vs {:.0} ns a packet); delivered, generator on \
                         the same CPU, x{:.2} ({:.2} vs {:.2} Mpps)",
                        spread(&s.router_ratio),
                        s.router_ns(Router::Datapath),
                        s.router_ns(Router::Nftables),
                        s.delivered_ratio.median,
                        s.datapath.pps / 1e6,
                        s.nftables.pps / 1e6
                    )
                }),
            },
            Target {
                what: E2E_TARGETS[1],
                met: tcp.map(|t| t.ratio.median >= 1.0),
                numbers: tcp.map_or_else(skipped, |t| {
                    format!(
                        "{} ({:.2} vs {:.2} Gbit/s)",
                        spread(&t.ratio),
                        t.datapath_bps / 1e9,
                        t.nftables_bps / 1e9
                    )
                }),
            },
            Target {
                what: E2E_TARGETS[2],
                met: (!self.memory.is_empty()).then_some(conn.total() <= 128.0),
                numbers: format!(
                    "{:.0} B (CONNTRACK {:.0} + NAT_PORTS {:.0} + FLOWS {:.0}){}",
                    conn.total(),
                    conn.conntrack,
                    conn.nat_ports,
                    conn.flows,
                    self.linux_conntrack.map_or(String::new(), |l| format!(
                        "; x{:.2} Linux's nf_conntrack object ({l} B)",
                        conn.total() / l as f64
                    ))
                ),
            },
        ]
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
        md.push_str(REPEAT);
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
            "### Packets per second (in-kernel generator, XDP sink)\n\n\
             web0 (pub0) -> db0 (priv0), UDP over {FLOWS} flows, smallest tables; medians of {} \
             runs of {:.1} s each, the two routers and the generator alone in turn at each \
             size; a ratio is the median of each run's ratio (a run's sets were measured one \
             after the other, under the same load), in brackets its range over the runs. \
             Everything runs on CPU {CPU}: the generator's thread, and in its softirq the \
             router and the sink. *Router alone*: the CPU time per packet delivered minus the \
             generator's alone (its frames straight into a sink), measured the same way in the \
             same runs; *packets/s*: counted by the sink over the window (the CPU is shared \
             with other work: *per CPU* divides by the CPU time the run actually got).\n",
            e.runs,
            e.window.as_secs_f64(),
        )?;
        writeln!(
            md,
            "| frame | router alone: datapath | Linux + nftables | **ratio** | packets/s: datapath | Linux + nftables | ratio | packets/s per CPU: datapath | Linux + nftables | ratio |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        )?;
        for s in &e.sizes {
            let (d, n) = (&s.datapath, &s.nftables);
            writeln!(
                md,
                "| {} B | {:.0} ns | {:.0} ns | **{}** | {:.0} | {:.0} | {} | {:.0} | {:.0} | x{:.2} |",
                s.size,
                s.router_ns(Router::Datapath),
                s.router_ns(Router::Nftables),
                spread(&s.router_ratio),
                d.pps,
                n.pps,
                spread(&s.delivered_ratio),
                d.pps_per_cpu(),
                n.pps_per_cpu(),
                d.pps_per_cpu() / n.pps_per_cpu()
            )?;
        }
        writeln!(
            md,
            "\n### Which CPU did what\n\n\
             CPU {CPU} did everything below, the other CPUs nothing of ours. *CPU per packet*: the \
             generator thread's CPU time (its `schedstat`, with softirq work done in its context \
             on this kernel, without IRQ time accounting) plus that CPU's ksoftirqd, per packet \
             the sink counted; *CPU got*: that time over the window; *program*: the router's \
             XDP program per run from the kernel's BPF statistics, in one more run of each \
             router (`vpc_xdp`; for Linux the pass-through, which does nothing: its figure is \
             what the statistics themselves add inside a run, and they add as much again \
             around it, so the column is an upper bound: the per-packet section measures the \
             program itself); *generator's share*: the generator's cost alone over the whole \
             cost per packet.\n\n\
             | frame | run | CPU per packet | CPU got | frames generated/s | packets received/s | sink on CPU {CPU} | program | generator's share |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        )?;
        for s in &e.sizes {
            for (name, l, share) in [
                (
                    "datapath",
                    &s.datapath,
                    Some(s.generator_share(Router::Datapath)),
                ),
                (
                    "Linux + nftables",
                    &s.nftables,
                    Some(s.generator_share(Router::Nftables)),
                ),
                ("generator alone", &s.generator, None),
            ] {
                writeln!(
                    md,
                    "| {} B | {name} | {:.0} ns | {:.0}% | {:.0} | {:.0} | {:.0}% | {} | {} |",
                    s.size,
                    l.cpu_ns,
                    l.busy * 100.0,
                    l.offered_pps,
                    l.pps,
                    l.sink_on_cpu * 100.0,
                    if share.is_some() {
                        format!("{:.0} ns", l.program_ns)
                    } else {
                        "-".into()
                    },
                    share.map_or("-".into(), |g| format!("{:.0}%", g * 100.0)),
                )?;
            }
        }
        let t = e.tcp;
        writeln!(
            md,
            "\n### TCP throughput (iperf3)\n\n\
             One stream web0 -> db0, medians of {} runs of {} s, the routers in turn; the \
             ratio is the median of each run's ratio, in brackets its range.\n\n\
             | router | TCP throughput |\n| --- | --- |\n\
             | datapath (TC, as the agent attaches itself to veths) | {:.2} Gbit/s |\n\
             | Linux + nftables | {:.2} Gbit/s |\n\
             | ratio | **{}** |\n",
            t.runs,
            t.seconds,
            t.datapath_bps / 1e9,
            t.nftables_bps / 1e9,
            spread(&t.ratio)
        )?;
        let [ingress, egress] = t.programs;
        writeln!(
            md,
            "The datapath's TC programs during its runs (BPF statistics, medians): ingress \
             (everything, then `bpf_redirect_neigh`) {:.0} runs/s at {:.0} ns a run, the \
             egress guard {:.0} runs/s at {:.0} ns a run, both directions (data and ACKs): \
             {:.1}% of a CPU together; {:.0} bytes of TCP forwarded per ingress run on \
             average (GSO aggregates).\n",
            ingress.runs_per_sec,
            ingress.ns_per_run,
            egress.runs_per_sec,
            egress.ns_per_run,
            (ingress.cpu() + egress.cpu()) * 100.0,
            t.datapath_bps / 8.0 / ingress.runs_per_sec.max(1.0)
        )?;
        self.distance(md, e)?;
        md.push_str(&E2E_METHOD.replace("{CALL_FRAMES}", &live::CALL_FRAMES.to_string()));
        Ok(())
    }

    /// For each end-to-end target not met: how far, from the run's own figures.
    fn distance(&self, md: &mut String, e: &E2e) -> Result<()> {
        writeln!(md, "### Distance to the targets\n")?;
        if let Some(s) = e.at(64) {
            let ratio = router_ratio(s);
            let d = s.router_ns(Router::Datapath);
            if ratio >= 3.0 {
                let caveat = if s.router_ratio.min < 3.0 {
                    format!(
                        ", but not in every run: the lowest x{:.2}; the machine's load moves it",
                        s.router_ratio.min
                    )
                } else {
                    String::new()
                };
                writeln!(
                    md,
                    "- 64 B packets per second: met (router alone, median of the runs \
                     x{ratio:.2}{caveat})."
                )?;
            } else {
                writeln!(
                    md,
                    "- 64 B packets per second: router alone x{ratio:.2} of the x3 asked. The \
                     datapath's router spends {d:.0} ns a packet: `vpc_xdp` (its run time \
                     with BPF statistics on, which inflate it: {:.0} ns, the pass-through \
                     {:.0} ns), the veth's receive of the frame, the redirect into priv0 and \
                     the delivery to db0's interface. x3 needs at most {:.0} ns.",
                    s.datapath.program_ns,
                    s.nftables.program_ns,
                    s.router_ns(Router::Nftables) / 3.0
                )?;
            }
        }
        let t = e.tcp;
        let ratio = t.ratio.median;
        if ratio >= 1.0 {
            writeln!(md, "- TCP throughput: met (x{ratio:.2}).")?;
        } else {
            writeln!(
                md,
                "- TCP throughput: x{ratio:.2}, {:.0}% below Linux + nftables, while the \
                 datapath's TC programs themselves took {:.1}% of a CPU (above). Single TCP \
                 streams on this shared machine move by tens of percent from run to run (the \
                 bench prints each run).",
                (1.0 - ratio) * 100.0,
                (t.programs[0].cpu() + t.programs[1].cpu()) * 100.0
            )?;
        }
        let conn = PerConnection::of(self.memory);
        if conn.total() > 128.0 {
            let parts: Vec<String> = ["CONNTRACK", "CT_UNASSURED", "NAT_PORTS", "FLOWS"]
                .iter()
                .filter_map(|name| self.memory.iter().find(|m| m.name == *name))
                .map(|m| {
                    format!(
                        "{} {:.0} B an entry for a {} B key and a {} B value{}",
                        m.name,
                        m.memlock as f64 / m.max_entries.max(1) as f64,
                        m.key_size,
                        m.value_size,
                        if m.kind.starts_with("percpu") {
                            " per CPU"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            writeln!(
                md,
                "- Connection state: {:.0} B per connection, {:.0} B over the 128 B asked: {}; \
                 the rest of each entry is the kernel's own (hash element, LRU node, per-CPU \
                 pointers).",
                conn.total(),
                conn.total() - 128.0,
                parts.join(", ")
            )?;
        }
        md.push('\n');
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
        let c = PerConnection::of(self.memory);
        writeln!(
            md,
            "\nPer tracked connection, all in: one entry of the connection table (the larger \
             of CONNTRACK's and CT_UNASSURED's per-entry memlock: a connection lives in one of \
             them) {:.0} B + one NAT_PORTS entry {:.0} B + one FLOWS entry (per CPU) {:.0} B = \
             **{:.0} B**{}.",
            c.conntrack,
            c.nat_ports,
            c.flows,
            c.total(),
            self.linux_conntrack.map_or(String::new(), |l| format!(
                " (Linux on this kernel: a `nf_conntrack` slab object is {l} B before its \
                 hash-table slot and extensions; ratio x{:.2})",
                c.total() / l as f64
            ))
        )?;
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

/// How a reader repeats a per-packet figure with bpftool alone.
const REPEAT: &str = "
### Repeating a figure with `bpftool prog run`

The benchmark writes the first frame of every path to `target/bench/frames/<path>.bin`. With
the agent running a definition of the same shape (`cargo xtask demo --keep` leaves one), the
attached program and its live maps answer the same question:

```sh
id=$(bpftool prog show name vpc_xdp | head -1 | cut -d: -f1)
bpftool prog run id $id data_in target/bench/frames/tracked-flow.bin repeat 200   # ns a run
# the floor: load the object's vpc_floor beside it and run the same frame
bpftool prog loadall target/debug/build/vpc-agent-*/out/vpc-ebpf /sys/fs/bpf/floor
bpftool prog run pinned /sys/fs/bpf/floor/vpc_floor data_in target/bench/frames/tracked-flow.bin repeat 200
rm -r /sys/fs/bpf/floor
```

`bpftool` prints the average duration of the repeats; the ratio of the two is the figure. The
program needs the interface the frame arrives on: run `bpftool` inside the router's namespace
(`ip netns exec`) and give it `ctx_in FILE`, an `xdp_md` (24 bytes) whose `ingress_ifindex` (at
offset 12) is that interface's index. A tracked path needs its connection first: run the
path's setup frame once (`target/bench/frames/<path>.setup.bin`).
";

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
### Method

Both routers are the same generated VPC (`cargo xtask bench` builds it in network namespaces:
a router namespace, a namespace per subnet behind a veth each), both built before the first run
and measured in turn. The datapath's router has the agent's programs on every port, XDP in
native mode (the topology is compiled as a router with NICs: XDP decides everything and
redirects through its device map; the generator's frames carry complete checksums, as a NIC's
do). The Linux router has IPv4 forwarding and an nftables ruleset enforcing the same policy for
this traffic: a forward chain with `ct state established,related accept`, `ct state invalid
drop` and accept rules per subnet pair and protocol (policy drop), SNAT for the NAT gateway and
the public IPs and DNAT to the instances; its ingress (pub0) runs a pass-through XDP program
(`bench_pass`), without which a veth refuses frames sent with XDP.

**Generator.** `bench_gen` (crate `bench-ebpf`) is run by `BPF_PROG_TEST_RUN` with
`BPF_F_TEST_XDP_LIVE_FRAMES` from a thread pinned to one CPU inside web0's namespace,
`ingress_ifindex` set to web0's interface, in calls of {CALL_FRAMES} frames (batches of 64) until
the run ends: the kernel runs the program on frames of its own page pool and transmits what it
returns (XDP_TX) out of web0's interface, to the router's pub0. The frame (UDP web0 -> db0,
UDP checksum 0) comes from the benchmark's packet builder; the program writes its headers over
every frame (the router and the sink rewrite a frame in place before its page comes back to
the pool) and varies the source port over the flows.
**Sink.** `bench_sink`, native XDP on db0's interface, counts packets and bytes per CPU and
drops them.
**One CPU.** A veth delivers in the sender's softirq: after each batch the generator's CPU
runs the router's receive (XDP, or the kernel's forwarding and nftables), the transmit into
priv0 and the sink, then the next batch; nothing queues and nothing is lost (frames generated
= packets counted), and the CPU time of the generator's thread (its `schedstat`; softirq work
in its context counts to it without IRQ time accounting) plus that CPU's ksoftirqd is the whole
cost. **The generator alone**: the same thread sends the same frames out of a spare veth pair in
web0's namespace (`gen0` -> `gen1`, the sink on `gen1`): what a packet costs there (generating,
one veth hop, the sink) is subtracted from each router's cost, which leaves the router's own
work (its receive, forwarding, the redirect or transmit, the veth hop to db0). The generator is
also attached to `gen0`, which keeps it in the kernel's XDP dispatcher.
A run: the generator starts, after 0.2 s the counters (sink, generator, CPU time) are read,
again after the window; then the generator stops. Frame sizes are Ethernet header to the end
of the payload, without FCS. The programs' run time comes from one more run of each router with
the kernel's BPF statistics enabled (`BPF_ENABLE_STATS`, for the benchmark only).

**TCP.** iperf3 (each run under `timeout`), one stream web0 -> db0, on two fresh topologies
without the benchmark's programs: the datapath attached as the agent attaches itself to veths
(TC on every port: a local stack's frames carry partial checksums and GSO aggregates), and the
Linux router with the nftables ruleset.

To repeat only this part: `cargo xtask bench --e2e-only` (under two minutes; it replaces this
section, the end-to-end targets and the map memory in BENCHMARKS.md and keeps the rest).
";

/// How many times less CPU a packet costs the datapath's router than the Linux router's
/// (the median of the runs).
fn router_ratio(s: &super::e2e::SizeResult) -> f64 {
    s.router_ratio.median
}

/// `x1.23 (x1.10-x1.40)`: a ratio's median and, measured more than once, its range.
fn spread(r: &Ratios) -> String {
    if r.min < r.max {
        format!("x{:.2} (x{:.2}-x{:.2})", r.median, r.min, r.max)
    } else {
        format!("x{:.2}", r.median)
    }
}

/// The end-to-end targets' statements (the rows `--e2e-only` replaces).
const E2E_TARGETS: [&str; 3] = [
    "end to end: 64 B packets per second at least 3x Linux + nftables (same policy)",
    "end to end: TCP throughput not below Linux + nftables",
    "connection state: at most 128 B of map memory per tracked connection, all in",
];

/// How the note of an `--e2e-only` run starts (see [`e2e_only_note`]).
const E2E_NOTE_PREFIX: &str = "> **End to end re-measured.**";

/// The note an `--e2e-only` run leaves at the top of the report.
pub fn e2e_only_note(elapsed: Duration) -> String {
    format!(
        "{E2E_NOTE_PREFIX} The end-to-end part, its targets and the map memory are from \
         `cargo xtask bench --e2e-only` on {} ({:.0} s); the per-packet part is from the run \
         above.",
        command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        elapsed.as_secs_f64()
    )
}

/// How the rows of the end-to-end targets start (also those of earlier reports).
const E2E_ROW_PREFIXES: [&str; 2] = ["| end to end", "| connection state"];

/// `generated` (a whole report of an `--e2e-only` run) spliced into `existing`: the end-to-end
/// targets' rows, the end-to-end section and the map memory from `generated`, everything else
/// (the per-packet part) from `existing`. Without an existing report, `generated` as it is.
pub fn splice_e2e(existing: &str, generated: &str, note: &str) -> String {
    if !existing.contains("\n## ") {
        return generated.to_string();
    }
    let new = sections(generated);
    let owned =
        |title: &str| title.starts_with("## End to end") || title.starts_with("## Map memory");
    let mut out = String::new();
    for (title, body) in sections(existing) {
        if owned(title) {
            continue;
        }
        if title.is_empty() {
            // The preamble, with this run's note instead of an earlier one.
            let kept: Vec<&str> = body
                .trim_end()
                .lines()
                .filter(|l| !l.starts_with(E2E_NOTE_PREFIX))
                .collect();
            out.push_str(kept.join("\n").trim_end());
            out.push_str("\n\n");
            out.push_str(note);
            out.push_str("\n\n");
        } else if title.starts_with("## Targets") {
            // Rows of this part's targets, under their present or earlier statements.
            let mine = |l: &&str| E2E_ROW_PREFIXES.iter().any(|p| l.starts_with(p));
            let fresh: Vec<&str> = new
                .iter()
                .find(|(t, _)| t.starts_with("## Targets"))
                .map(|(_, b)| b.lines().filter(mine).collect())
                .unwrap_or_default();
            let mut lines: Vec<&str> = body.lines().filter(|l| !mine(l)).collect();
            // The table ends at its last row; the fresh rows go after it.
            let end = lines
                .iter()
                .rposition(|l| l.starts_with('|'))
                .map_or(lines.len(), |i| i + 1);
            lines.splice(end..end, fresh);
            out.push_str(&lines.join("\n"));
            out.push('\n');
        } else {
            out.push_str(body);
        }
    }
    for (title, body) in &new {
        if owned(title) {
            out.push_str(body);
        }
    }
    out
}

/// A Markdown document cut at its `## ` headings: (heading line, text from it to the next).
/// The text before the first heading has an empty title.
fn sections(doc: &str) -> Vec<(&str, &str)> {
    let mut starts: Vec<usize> = doc.match_indices("\n## ").map(|(i, _)| i + 1).collect();
    starts.insert(0, 0);
    starts.dedup();
    let mut out = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(doc.len());
        let body = &doc[start..end];
        let title = if body.starts_with("## ") {
            body.lines().next().unwrap_or("")
        } else {
            ""
        };
        out.push((title, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# Benchmarks\n\nold run\n\n## Targets\n\n| target | met | numbers |\n| --- | --- | --- |\n\
        | tracked flow | **met** | 1 |\n\
        | end to end: TCP throughput not below Linux + nftables | **not met** | old |\n\
        | end to end: an earlier statement | **not met** | older |\n\n\
        ## Per-packet cost\n\nper-packet figures\n\n## End to end (router namespace, veth)\n\nold e2e\n\n\
        ## Map memory at default sizes\n\nold memory\n";
    const NEW: &str = "# Benchmarks\n\nnew run\n\n## Targets\n\n| target | met | numbers |\n| --- | --- | --- |\n\
        | tracked flow | not measured | - |\n\
        | end to end: TCP throughput not below Linux + nftables | **met** | new |\n\
        | connection state: at most 128 B of map memory per tracked connection, all in | **not met** | 300 B |\n\n\
        ## Per-packet cost\n\nnothing\n\n## End to end (router namespace, veth)\n\nnew e2e\n\n\
        ## Map memory at default sizes\n\nnew memory\n";

    #[test]
    fn an_e2e_only_run_replaces_its_parts_and_keeps_the_per_packet_ones() {
        let out = splice_e2e(OLD, NEW, "> **End to end re-measured.** now");
        assert!(out.contains("> **End to end re-measured.** now\n"));
        // A second run replaces the note instead of adding one.
        let again = splice_e2e(&out, NEW, "> **End to end re-measured.** later");
        assert!(!again.contains("now") && again.contains("later"));
        assert!(out.contains("old run"));
        assert!(out.contains("per-packet figures"));
        assert!(!out.contains("nothing"));
        assert!(out.contains("| tracked flow | **met** | 1 |"));
        assert!(!out.contains("| tracked flow | not measured"));
        assert!(
            out.contains(
                "| end to end: TCP throughput not below Linux + nftables | **met** | new |"
            )
        );
        assert!(!out.contains("| **not met** | old |"));
        assert!(!out.contains("an earlier statement"));
        assert!(out.contains("| connection state: at most 128 B"));
        assert!(out.contains("new e2e") && !out.contains("old e2e"));
        assert!(out.contains("new memory") && !out.contains("old memory"));
        // The fresh rows stay inside the table, before the next section.
        let table_end = out.find("## Per-packet").unwrap();
        assert!(out.find("| connection state").unwrap() < table_end);
    }

    #[test]
    fn without_a_previous_report_the_new_one_is_written_whole() {
        assert_eq!(splice_e2e("", NEW, "note"), NEW);
    }
}
