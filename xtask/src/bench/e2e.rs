//! End to end through the router namespace: the agent's datapath against the plain Linux
//! router enforcing an equivalent policy with nftables (filter with conntrack, SNAT/DNAT for
//! the gateways), same topology, same traffic, measured interleaved:
//!
//! - packets per second, web0 -> db0 (pub0 -> priv0), at several frame sizes: the in-kernel
//!   generator (`live`) transmits crafted UDP frames out of web0's interface from a thread
//!   pinned to one CPU; the veths deliver in the sender's softirq, so that CPU does the
//!   generator's work, the router's and the sink's (db0's interface, counting and dropping),
//!   one after the other and nothing else. The generator alone (its frames straight into a
//!   sink, no router) is measured the same way in the same runs: its cost is subtracted to
//!   give the router's. The agent's router has its datapath in native XDP on every port (the
//!   frames carry complete checksums, as a NIC's do); the Linux router a pass-through XDP
//!   program on pub0 (a veth takes frames sent with XDP only then) and the kernel's forwarding
//!   and nftables;
//! - TCP throughput: iperf3, one stream, web0 -> db0, the agent as it attaches itself to veths
//!   (TC: their frames carry partial checksums and GSO aggregates), no XDP program anywhere on
//!   the Linux router.
//!
//! Everything runs inside the test namespaces with private addresses, bounded (the generator
//! in time, iperf3 under `timeout`); the namespaces go away with the topology (also on failure).
use std::{
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use vpc_agent::datapath::{AttachMode, object::programs};
use vpc_tests::{
    netns::NetNs,
    packet::Packet,
    topology::{Topology, if_name},
};

use super::{
    SMALLEST,
    fixture::{APP, DB, NAT_ELASTIC, WEB, WEB_PUBLIC, yaml},
    live::{self, Programs, Which},
    testrun::median,
};

/// Frame sizes measured (Ethernet header to the end of the payload, no FCS).
pub const FRAME_SIZES: [usize; 3] = [64, 512, 1500];
/// Flows the generator spreads its frames over (UDP source ports).
pub const FLOWS: u32 = 64;
/// Time the generator runs before a measurement window opens.
const WARMUP: Duration = Duration::from_millis(200);
/// The CPU the generator's thread (and so everything) runs on.
pub const CPU: usize = 0;

/// The two routers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Router {
    /// The agent's datapath.
    Datapath,
    /// Linux forwarding with the nftables ruleset.
    Nftables,
}

/// Where the generator's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// web0's interface: through the router to db0's sink.
    Router,
    /// The sender namespace's spare pair: straight into a sink (the generator alone).
    Loopback,
}

/// Medians of one set of runs (one router, or the generator alone, at one frame size).
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    /// Packets per second counted by the sink.
    pub pps: f64,
    /// Frames per second the generator transmitted.
    pub offered_pps: f64,
    /// CPU time (the generator's thread and its CPU's ksoftirqd) per packet the sink counted:
    /// the generator's, the router's and the sink's work.
    pub cpu_ns: f64,
    /// Fraction of the window that CPU time took (the share of the CPU the run got).
    pub busy: f64,
    /// Run time of the router's XDP program per run (`vpc_xdp`, or the pass-through), from the
    /// kernel's BPF statistics (a separate run: 0 when they are off, and without a router).
    pub program_ns: f64,
    /// Share of the packets the sink counted on the generator's CPU.
    pub sink_on_cpu: f64,
}

impl Live {
    /// Packets a second one CPU delivers at this cost.
    pub fn pps_per_cpu(&self) -> f64 {
        1e9 / self.cpu_ns.max(f64::MIN_POSITIVE)
    }
}

/// One frame size: both routers and the generator alone.
#[derive(Clone, Copy, Debug)]
pub struct SizeResult {
    pub size: usize,
    pub datapath: Live,
    pub nftables: Live,
    pub generator: Live,
    /// Each run's ratio (the sets of a run were measured next to each other): the Linux
    /// router's own cost over the datapath's, ...
    pub router_ratio: Ratios,
    /// ... and the packets a second the datapath delivered over Linux's.
    pub delivered_ratio: Ratios,
}

/// A ratio measured once a run: its median and its range over the runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratios {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Ratios {
    pub fn of(mut values: Vec<f64>) -> Self {
        Self {
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median: median(&mut values),
        }
    }
}

impl SizeResult {
    /// The router's own CPU time per packet: the run's minus the generator's alone.
    pub fn router_ns(&self, router: Router) -> f64 {
        let l = match router {
            Router::Datapath => &self.datapath,
            Router::Nftables => &self.nftables,
        };
        own(l, &self.generator)
    }

    /// The generator's share of the CPU time spent per packet through `router`.
    pub fn generator_share(&self, router: Router) -> f64 {
        let total = self.router_ns(router) + self.generator.cpu_ns;
        self.generator.cpu_ns / total
    }
}

/// TCP goodput medians, bits per second.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub datapath_bps: f64,
    pub nftables_bps: f64,
    /// Each run's ratio (the two routers measured next to each other), over the runs.
    pub ratio: Ratios,
    /// The datapath's TC programs during its runs (BPF statistics): ingress, egress guard.
    pub programs: [ProgramLoad; 2],
    pub runs: usize,
    pub seconds: u32,
}

/// What one program did over a TCP run: runs a second and run time per run (medians).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramLoad {
    pub runs_per_sec: f64,
    pub ns_per_run: f64,
}

impl ProgramLoad {
    /// The fraction of one CPU the program took.
    pub fn cpu(&self) -> f64 {
        self.runs_per_sec * self.ns_per_run / 1e9
    }
}

/// Everything end to end, and how it was run.
#[derive(Clone, Debug)]
pub struct E2e {
    pub sizes: Vec<SizeResult>,
    pub tcp: Tcp,
    pub runs: usize,
    pub window: Duration,
}

impl E2e {
    pub fn at(&self, size: usize) -> Option<&SizeResult> {
        self.sizes.iter().find(|s| s.size == size)
    }
}

pub fn run(quick: bool) -> Result<E2e> {
    let (runs, window, tcp_runs, tcp_seconds) = if quick {
        (1, Duration::from_millis(500), 1, 1)
    } else {
        (5, Duration::from_millis(1000), 3, 3)
    };
    let definition = yaml(&SMALLEST);
    eprintln!("bench: end to end, live frames: building both routers");
    let sizes = {
        let mut rigs = [
            Rig::build(&definition, Router::Datapath)?,
            Rig::build(&definition, Router::Nftables)?,
        ];
        // Per size: datapath, nftables, generator alone.
        let mut samples: Vec<[Vec<Live>; 3]> =
            FRAME_SIZES.iter().map(|_| Default::default()).collect();
        for run in 0..runs {
            for (i, size) in FRAME_SIZES.iter().enumerate() {
                // Rotate the order, so that no set always follows another.
                for k in (0..3).map(|j| (j + run) % 3) {
                    let (rig, via) = match k {
                        0 | 1 => (&mut rigs[k], Via::Router),
                        _ => (&mut rigs[0], Via::Loopback),
                    };
                    let s = rig
                        .sample(*size, window, via)
                        .with_context(|| format!("{:?} via {via:?} at {size} B", rig.router))?;
                    samples[i][k].push(s);
                }
                let [d, n, g] = &samples[i];
                eprintln!(
                    "bench:   run {run} {size:>4} B: datapath {:>8.0} pps {:>5.0} ns, nftables {:>8.0} pps {:>5.0} ns, generator alone {:>8.0} pps {:>5.0} ns",
                    d[run].pps, d[run].cpu_ns, n[run].pps, n[run].cpu_ns, g[run].pps, g[run].cpu_ns
                );
            }
        }
        let mut sizes: Vec<SizeResult> = FRAME_SIZES
            .iter()
            .zip(samples)
            .map(|(size, [d, n, g])| SizeResult {
                size: *size,
                datapath: medians(&d),
                nftables: medians(&n),
                generator: medians(&g),
                router_ratio: paired(&d, &n, |d, n, g| own(n, g) / own(d, g), &g),
                delivered_ratio: paired(&d, &n, |d, n, _| d.pps / n.pps, &g),
            })
            .collect();
        // The programs' own run time, from one more run of each router with the kernel's BPF
        // statistics on (they cost every program run two clock reads: kept out of the runs
        // above).
        let _stats =
            aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
        for s in &mut sizes {
            s.datapath.program_ns = rigs[0].sample(s.size, window, Via::Router)?.program_ns;
            s.nftables.program_ns = rigs[1].sample(s.size, window, Via::Router)?.program_ns;
        }
        sizes
    };
    let tcp = tcp(&definition, tcp_runs, tcp_seconds)?;
    Ok(E2e {
        sizes,
        tcp,
        runs,
        window,
    })
}

/// One router with the benchmark's programs in place.
struct Rig {
    router: Router,
    topo: Topology,
    programs: Programs,
    /// web0's interface and the spare pair's generator end, in web0's namespace.
    sender_ifindex: u32,
    loopback_ifindex: u32,
}

impl Rig {
    fn build(definition: &str, router: Router) -> Result<Self> {
        let mut topo = Topology::build(definition, None, true).context("topology")?;
        let mut programs = Programs::load()?;
        match router {
            Router::Datapath => {
                // Compiled as NICs (the topology's default without a mode): XDP decides
                // everything, as on a router with NICs.
                let _inside = topo.router.enter()?;
                let Topology {
                    datapath, compiled, ..
                } = &mut topo;
                datapath
                    .attach_all(compiled, AttachMode::Native, &if_name)
                    .context("attaching the datapath")?;
            }
            Router::Nftables => {
                install_nftables(&topo.router)?;
                programs.attach_pass(&topo.router, "pub0")?;
            }
        }
        let sender = &topo.port_of(WEB[0].parse()?).context("web0's port")?.ns;
        let receiver = &topo.port_of(DB[0].parse()?).context("db0's port")?.ns;
        programs.attach_sink(receiver, "eth0")?;
        programs.loopback_pair(sender)?;
        let sender_ifindex = sender.ifindex("eth0")?;
        let loopback_ifindex = sender.ifindex("gen0")?;
        Ok(Self {
            router,
            topo,
            programs,
            sender_ifindex,
            loopback_ifindex,
        })
    }

    /// The frame web0 sends to db0, `size` bytes.
    fn frame(&self, size: usize) -> Result<Vec<u8>> {
        let payload = vec![0x5a; live::payload_len(size)?];
        let packet = Packet::udp(WEB[0], DB[0], 10_000, 5201).payload(&payload);
        live::udp_frame(self.topo.frame("pub0", &packet), size)
    }

    /// One run: the generator on [`CPU`] for the warm-up and the window.
    fn sample(&mut self, size: usize, window: Duration, via: Via) -> Result<Live> {
        let frame = self.frame(size)?;
        self.programs.set_template(&frame, FLOWS)?;
        let ifindex = match via {
            Via::Router => self.sender_ifindex,
            Via::Loopback => self.loopback_ifindex,
        };
        let this = &*self;
        this.run_generator(&frame, ifindex, window, via)
    }

    fn run_generator(
        &self,
        frame: &[u8],
        ifindex: u32,
        window: Duration,
        via: Via,
    ) -> Result<Live> {
        let sender = &self
            .topo
            .port_of(WEB[0].parse()?)
            .context("web0's port")?
            .ns;
        let stop = &AtomicBool::new(false);
        let (tid_tx, tid_rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let generator = scope.spawn(move || -> Result<u64> {
                pin(CPU)?;
                let _inside = sender.enter()?;
                // SAFETY: gettid has no preconditions.
                let _ = tid_tx.send(unsafe { libc::gettid() } as u32);
                self.programs.generate(frame, ifindex, stop)
            });
            let measured = (|| {
                let tid = tid_rx
                    .recv()
                    .context("the generator thread did not start")?;
                sleep(WARMUP);
                let before = self.snapshot(tid, via)?;
                sleep(window);
                let after = self.snapshot(tid, via)?;
                Ok::<_, anyhow::Error>((before, after))
            })();
            stop.store(true, Ordering::Relaxed);
            let generated = generator
                .join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))?;
            generated.context("generator")?;
            let (before, after) = measured?;
            Ok(after.since(&before))
        })
    }

    fn snapshot(&self, generator_tid: u32, via: Via) -> Result<Snapshot> {
        let program = match (via, self.router) {
            (Via::Loopback, _) => None,
            (Via::Router, Router::Datapath) => Some(self.topo.datapath.xdp().info()?),
            (Via::Router, Router::Nftables) => Some(self.programs.program(Which::Pass)?.info()?),
        };
        Ok(Snapshot {
            at: Instant::now(),
            received: self.programs.received()?,
            generated: self.programs.generated()?.iter().sum(),
            cpu_ns: run_ns(&format!("/proc/self/task/{generator_tid}/schedstat"))?
                + ksoftirqd_ns(CPU)?,
            program_ns: program
                .as_ref()
                .map_or(0, |p| p.run_time().as_nanos() as u64),
            program_runs: program.as_ref().map_or(0, |p| p.run_count()),
        })
    }
}

/// What the counters said at one moment.
struct Snapshot {
    at: Instant,
    /// The sink's (packets, bytes) per CPU.
    received: Vec<(u64, u64)>,
    generated: u64,
    cpu_ns: u64,
    program_ns: u64,
    program_runs: u64,
}

impl Snapshot {
    fn since(&self, before: &Snapshot) -> Live {
        let secs = (self.at - before.at).as_secs_f64();
        let per_cpu: Vec<u64> = self
            .received
            .iter()
            .zip(&before.received)
            .map(|(a, b)| a.0 - b.0)
            .collect();
        let received: u64 = per_cpu.iter().sum();
        let generated = self.generated - before.generated;
        let cpu = (self.cpu_ns - before.cpu_ns) as f64;
        let runs = self.program_runs - before.program_runs;
        Live {
            pps: received as f64 / secs,
            offered_pps: generated as f64 / secs,
            cpu_ns: cpu / received.max(1) as f64,
            busy: cpu / (secs * 1e9),
            program_ns: (self.program_ns - before.program_ns) as f64 / runs.max(1) as f64,
            sink_on_cpu: per_cpu.get(CPU).copied().unwrap_or(0) as f64 / received.max(1) as f64,
        }
    }
}

/// The router's own CPU time per packet: a run's minus the generator's alone.
fn own(router: &Live, generator: &Live) -> f64 {
    (router.cpu_ns - generator.cpu_ns).max(1.0)
}

/// `f(datapath, nftables, generator)` of each run, over the runs.
fn paired(d: &[Live], n: &[Live], f: fn(&Live, &Live, &Live) -> f64, g: &[Live]) -> Ratios {
    Ratios::of(
        d.iter()
            .zip(n)
            .zip(g)
            .map(|((d, n), g)| f(d, n, g))
            .collect(),
    )
}

/// Medians of every figure over the runs.
fn medians(samples: &[Live]) -> Live {
    let m = |f: fn(&Live) -> f64| median(&mut samples.iter().map(f).collect::<Vec<_>>());
    Live {
        pps: m(|s| s.pps),
        offered_pps: m(|s| s.offered_pps),
        cpu_ns: m(|s| s.cpu_ns),
        busy: m(|s| s.busy),
        program_ns: m(|s| s.program_ns),
        sink_on_cpu: m(|s| s.sink_on_cpu),
    }
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is within the set's capacity (CPU_SETSIZE).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        bail!(
            "sched_setaffinity(cpu {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A thread's CPU time so far (ns), from its `schedstat`.
fn run_ns(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_schedstat(&text).with_context(|| format!("parsing {path}: {text:?}"))
}

fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The CPU time of `ksoftirqd/cpu` (softirq work the kernel deferred from the generator's
/// thread to it).
fn ksoftirqd_ns(cpu: usize) -> Result<u64> {
    let name = format!("ksoftirqd/{cpu}\n");
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let path = entry?.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c == name) {
            return run_ns(&path.join("schedstat").to_string_lossy());
        }
    }
    bail!("no ksoftirqd/{cpu} thread")
}

/// TCP: the agent as it attaches itself to veths (TC) and the Linux router without programs,
/// interleaved.
fn tcp(definition: &str, runs: usize, seconds: u32) -> Result<Tcp> {
    eprintln!("bench: end to end, TCP: building both routers");
    let datapath = Topology::build(definition, Some(AttachMode::Auto), true)?;
    let nftables = Topology::build(definition, None, true)?;
    install_nftables(&nftables.router)?;
    // The TC programs' run time (a clock read or two per GSO aggregate: nothing measurable).
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let tc = [programs::TC_INGRESS, programs::TC_EGRESS];
    let read = |topo: &Topology| -> Result<Vec<(u64, u64)>> {
        tc.iter()
            .map(|name| {
                let info = topo.datapath.tc(name).info()?;
                Ok((info.run_count(), info.run_time().as_nanos() as u64))
            })
            .collect()
    };
    let (mut d, mut n) = (Vec::new(), Vec::new());
    let mut loads: [Vec<ProgramLoad>; 2] = Default::default();
    for run in 0..runs {
        let (before, at) = (read(&datapath)?, Instant::now());
        d.push(tcp_once(&datapath, seconds)?);
        let (after, secs) = (read(&datapath)?, at.elapsed().as_secs_f64());
        for (k, ((r0, t0), (r1, t1))) in before.iter().zip(&after).enumerate() {
            loads[k].push(ProgramLoad {
                runs_per_sec: (r1 - r0) as f64 / secs,
                ns_per_run: (t1 - t0) as f64 / (r1 - r0).max(1) as f64,
            });
        }
        n.push(tcp_once(&nftables, seconds)?);
        eprintln!(
            "bench:   run {run}: datapath {:.2} Gbit/s, nftables {:.2} Gbit/s",
            d[run] / 1e9,
            n[run] / 1e9
        );
    }
    let ratios: Vec<f64> = d.iter().zip(&n).map(|(d, n)| d / n).collect();
    let load = |l: &[ProgramLoad]| ProgramLoad {
        runs_per_sec: median(&mut l.iter().map(|p| p.runs_per_sec).collect::<Vec<_>>()),
        ns_per_run: median(&mut l.iter().map(|p| p.ns_per_run).collect::<Vec<_>>()),
    };
    Ok(Tcp {
        programs: [load(&loads[0]), load(&loads[1])],
        ratio: Ratios::of(ratios),
        datapath_bps: median(&mut d),
        nftables_bps: median(&mut n),
        runs,
        seconds,
    })
}

fn tcp_once(topo: &Topology, seconds: u32) -> Result<f64> {
    let client = &topo.port_of(WEB[0].parse()?).context("web0's port")?.ns;
    let server = &topo.port_of(DB[0].parse()?).context("db0's port")?.ns;
    received_bps(&iperf(server, client, &[], seconds)?)
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

fn received_bps(json: &Value) -> Result<f64> {
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("TCP bits per second")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_the_run_time() {
        assert_eq!(
            parse_schedstat("4034459198 14733403659 61247\n"),
            Some(4_034_459_198)
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn a_window_turns_counters_into_rates_and_costs() {
        let t0 = Instant::now();
        let before = Snapshot {
            at: t0,
            received: vec![(100, 6400), (0, 0)],
            generated: 1000,
            cpu_ns: 1_000,
            program_ns: 0,
            program_runs: 0,
        };
        let after = Snapshot {
            at: t0 + Duration::from_secs(2),
            received: vec![(1_500_100, 96_006_400), (500_000, 32_000_000)],
            generated: 4_001_000,
            cpu_ns: 1_000_001_000,
            program_ns: 60_000_000,
            program_runs: 2_000_000,
        };
        let live = after.since(&before);
        assert_eq!(live.pps, 1_000_000.0);
        assert_eq!(live.offered_pps, 2_000_000.0);
        assert_eq!(live.cpu_ns, 500.0);
        assert_eq!(live.busy, 0.5);
        assert_eq!(live.program_ns, 30.0);
        assert_eq!(live.sink_on_cpu, 0.75);
        assert_eq!(live.pps_per_cpu(), 2_000_000.0);
    }

    #[test]
    fn the_router_costs_what_the_generator_alone_does_not() {
        let at = |cpu_ns| Live {
            cpu_ns,
            ..Live::default()
        };
        let s = SizeResult {
            size: 64,
            datapath: at(700.0),
            nftables: at(2300.0),
            generator: at(300.0),
            router_ratio: Ratios::default(),
            delivered_ratio: Ratios::default(),
        };
        assert_eq!(s.router_ns(Router::Datapath), 400.0);
        assert_eq!(s.router_ns(Router::Nftables), 2000.0);
        assert!((s.generator_share(Router::Datapath) - 300.0 / 700.0).abs() < 1e-12);
    }

    #[test]
    fn ratios_pair_the_runs_measured_together() {
        let at = |cpu_ns, pps| Live {
            cpu_ns,
            pps,
            ..Live::default()
        };
        // Router alone per run x5, x2, x3; delivered x3, x2, x2.
        let d = [at(300.0, 3.0), at(1100.0, 1.0), at(600.0, 2.0)];
        let n = [at(1100.0, 1.0), at(2100.0, 0.5), at(1600.0, 1.0)];
        let g = [at(100.0, 9.0), at(100.0, 9.0), at(100.0, 9.0)];
        let router = paired(&d, &n, |d, n, g| own(n, g) / own(d, g), &g);
        assert_eq!((router.median, router.min, router.max), (3.0, 2.0, 5.0));
        assert_eq!(paired(&d, &n, |d, n, _| d.pps / n.pps, &g).median, 2.0);
    }
}
