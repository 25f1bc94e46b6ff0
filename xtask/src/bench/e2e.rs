//! End to end through the router namespace: the agent's datapath against the plain Linux
//! router enforcing an equivalent policy with nftables (filter with conntrack, SNAT/DNAT for
//! the gateways), same topology, same traffic, measured interleaved:
//!
//! - packets per second, web0 -> db0 (pub0 -> priv0), at several frame sizes: the in-kernel
//!   generator (`live`) transmits crafted UDP frames out of web0's interface from one CPU;
//!   the router's ingress (pub0) runs its NAPI in a thread of its own on the other CPU, where
//!   the router's work and the sink's (db0's interface, counting and dropping) happen. The
//!   agent's router has its datapath in native XDP on every port (the frames carry complete
//!   checksums, as a NIC's do); the Linux router a pass-through XDP program on pub0 (so that
//!   the veth takes XDP frames at all) and the kernel's forwarding and nftables;
//! - TCP throughput: iperf3, one stream, web0 -> db0, the agent as it attaches itself to veths
//!   (TC: their frames carry partial checksums and GSO aggregates), no XDP program anywhere on
//!   the Linux router.
//!
//! Everything runs inside the test namespaces with private addresses, bounded (the generator
//! in time, iperf3 under `timeout`); the namespaces go away with the topology (also on failure).
use std::{
    collections::BTreeSet,
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
use vpc_agent::datapath::AttachMode;
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

/// The two routers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Router {
    /// The agent's datapath.
    Datapath,
    /// Linux forwarding with the nftables ruleset.
    Nftables,
}

/// Medians of one router's runs at one frame size.
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    /// Packets per second counted by the sink.
    pub pps: f64,
    /// Frames per second the generator transmitted.
    pub offered_pps: f64,
    /// CPU time of the router's CPU (its NAPI thread and that CPU's ksoftirqd) per packet
    /// received: the router's work and the sink's.
    pub router_ns: f64,
    /// Fraction of the window the router's CPU spent on it.
    pub router_busy: f64,
    /// CPU time of the generator's thread per frame generated.
    pub generator_ns: f64,
    /// Fraction of the window the generator's thread ran.
    pub generator_busy: f64,
    /// Run time of the router's XDP program per run (`vpc_xdp`, or the pass-through), from the
    /// kernel's BPF statistics.
    pub program_ns: f64,
    /// Share of the packets the sink counted on the router's CPU.
    pub sink_on_router_cpu: f64,
}

impl Live {
    /// The generator's share of the CPU time spent per packet delivered.
    pub fn generator_share(&self) -> f64 {
        let generator = self.generator_ns * self.offered_pps / self.pps.max(1.0);
        generator / (generator + self.router_ns).max(f64::MIN_POSITIVE)
    }
}

/// One frame size, both routers.
#[derive(Clone, Copy, Debug)]
pub struct SizeResult {
    pub size: usize,
    pub datapath: Live,
    pub nftables: Live,
}

/// TCP goodput medians, bits per second.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub datapath_bps: f64,
    pub nftables_bps: f64,
    pub runs: usize,
    pub seconds: u32,
}

/// Everything end to end, and how it was run.
#[derive(Clone, Debug)]
pub struct E2e {
    pub sizes: Vec<SizeResult>,
    pub tcp: Tcp,
    pub runs: usize,
    pub window: Duration,
    pub generator_cpu: usize,
    pub router_cpu: usize,
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
    let cpus = cpu_count();
    let (generator_cpu, router_cpu) = (0, 1 % cpus);
    let definition = yaml(&SMALLEST);
    // BPF run-time statistics (the router program's ns per packet), while this fd is open.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    eprintln!("bench: end to end, live frames: building both routers");
    let sizes = {
        let mut rigs = [
            Rig::build(&definition, Router::Datapath, router_cpu)?,
            Rig::build(&definition, Router::Nftables, router_cpu)?,
        ];
        let mut samples: Vec<[Vec<Live>; 2]> = FRAME_SIZES.iter().map(|_| Default::default()).collect();
        for run in 0..runs {
            for (i, size) in FRAME_SIZES.iter().enumerate() {
                // Alternate which router goes first, so that neither always follows the other.
                let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
                for k in order {
                    let rig = &mut rigs[k];
                    let s = rig
                        .sample(*size, window, generator_cpu)
                        .with_context(|| format!("{:?} at {size} B", rig.router))?;
                    samples[i][k].push(s);
                }
                eprintln!(
                    "bench:   run {run} {size:>4} B: datapath {:>9.0} pps ({:.0} ns/packet), nftables {:>9.0} pps ({:.0} ns/packet)",
                    samples[i][0][run].pps,
                    samples[i][0][run].router_ns,
                    samples[i][1][run].pps,
                    samples[i][1][run].router_ns
                );
            }
        }
        FRAME_SIZES
            .iter()
            .zip(samples)
            .map(|(size, [d, n])| SizeResult {
                size: *size,
                datapath: medians(&d),
                nftables: medians(&n),
            })
            .collect()
    };
    let tcp = tcp(&definition, tcp_runs, tcp_seconds)?;
    Ok(E2e {
        sizes,
        tcp,
        runs,
        window,
        generator_cpu,
        router_cpu,
    })
}

/// One router with the benchmark's programs in place.
struct Rig {
    router: Router,
    topo: Topology,
    programs: Programs,
    /// The NAPI thread of the router's ingress (pub0).
    napi_pid: u32,
    router_cpu: usize,
    /// web0's interface, in its namespace.
    sender_ifindex: u32,
}

impl Rig {
    fn build(definition: &str, router: Router, router_cpu: usize) -> Result<Self> {
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
        programs.keep_generator_in_dispatcher(sender)?;
        let sender_ifindex = sender.ifindex("eth0")?;
        let napi_pid = threaded_napi(&topo.router, "pub0")?;
        pin(napi_pid, router_cpu)?;
        favour(napi_pid)?;
        Ok(Self {
            router,
            topo,
            programs,
            napi_pid,
            router_cpu,
            sender_ifindex,
        })
    }

    /// The frame web0 sends to db0, `size` bytes.
    fn frame(&self, size: usize) -> Result<Vec<u8>> {
        let payload = vec![0x5a; live::payload_len(size)?];
        let packet = Packet::udp(WEB[0], DB[0], 10_000, 5201).payload(&payload);
        live::udp_frame(self.topo.frame("pub0", &packet), size)
    }

    /// One run: the generator on `generator_cpu` for the warm-up and the window.
    fn sample(&mut self, size: usize, window: Duration, generator_cpu: usize) -> Result<Live> {
        let frame = self.frame(size)?;
        self.programs.set_template(&frame, FLOWS)?;
        let this = &*self;
        this.run_generator(&frame, window, generator_cpu)
    }

    fn run_generator(&self, frame: &[u8], window: Duration, generator_cpu: usize) -> Result<Live> {
        let sender = &self
            .topo
            .port_of(WEB[0].parse()?)
            .context("web0's port")?
            .ns;
        let stop = &AtomicBool::new(false);
        let (tid_tx, tid_rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let generator = scope.spawn(move || -> Result<u64> {
                pin(0, generator_cpu)?;
                favour(0)?;
                let _inside = sender.enter()?;
                // SAFETY: gettid has no preconditions.
                let _ = tid_tx.send(unsafe { libc::gettid() } as u32);
                self.programs.generate(frame, self.sender_ifindex, stop)
            });
            let measured = (|| {
                let tid = tid_rx.recv().context("the generator thread did not start")?;
                sleep(WARMUP);
                let before = self.snapshot(tid)?;
                sleep(window);
                let after = self.snapshot(tid)?;
                Ok::<_, anyhow::Error>((before, after))
            })();
            stop.store(true, Ordering::Relaxed);
            let generated = generator.join().map_err(|_| anyhow::anyhow!("generator panicked"))?;
            generated.context("generator")?;
            let (before, after) = measured?;
            Ok(after.since(&before, self.router_cpu))
        })
    }

    fn snapshot(&self, generator_tid: u32) -> Result<Snapshot> {
        let program = match self.router {
            Router::Datapath => self.topo.datapath.xdp().info()?,
            Router::Nftables => self.programs.program(Which::Pass)?.info()?,
        };
        Ok(Snapshot {
            at: Instant::now(),
            received: self.programs.received()?,
            generated: self.programs.generated()?.iter().sum(),
            generator_ns: run_ns(&format!("/proc/self/task/{generator_tid}/schedstat"))?,
            router_ns: run_ns(&format!("/proc/{}/schedstat", self.napi_pid))?
                + ksoftirqd_ns(self.router_cpu)?,
            program_ns: program.run_time().as_nanos() as u64,
            program_runs: program.run_count(),
        })
    }
}

/// What the counters said at one moment.
struct Snapshot {
    at: Instant,
    received: Vec<(u64, u64)>,
    generated: u64,
    generator_ns: u64,
    router_ns: u64,
    program_ns: u64,
    program_runs: u64,
}

impl Snapshot {
    fn since(&self, before: &Snapshot, router_cpu: usize) -> Live {
        let secs = (self.at - before.at).as_secs_f64();
        let per_cpu: Vec<u64> = self
            .received
            .iter()
            .zip(&before.received)
            .map(|(a, b)| a.0 - b.0)
            .collect();
        let received: u64 = per_cpu.iter().sum();
        let generated = self.generated - before.generated;
        let router = (self.router_ns - before.router_ns) as f64;
        let generator = (self.generator_ns - before.generator_ns) as f64;
        let runs = self.program_runs - before.program_runs;
        Live {
            pps: received as f64 / secs,
            offered_pps: generated as f64 / secs,
            router_ns: router / received.max(1) as f64,
            router_busy: router / (secs * 1e9),
            generator_ns: generator / generated.max(1) as f64,
            generator_busy: generator / (secs * 1e9),
            program_ns: (self.program_ns - before.program_ns) as f64 / runs.max(1) as f64,
            sink_on_router_cpu: per_cpu.get(router_cpu).copied().unwrap_or(0) as f64
                / received.max(1) as f64,
        }
    }
}

/// Medians of every figure over the runs.
fn medians(samples: &[Live]) -> Live {
    let m = |f: fn(&Live) -> f64| median(&mut samples.iter().map(f).collect::<Vec<_>>());
    Live {
        pps: m(|s| s.pps),
        offered_pps: m(|s| s.offered_pps),
        router_ns: m(|s| s.router_ns),
        router_busy: m(|s| s.router_busy),
        generator_ns: m(|s| s.generator_ns),
        generator_busy: m(|s| s.generator_busy),
        program_ns: m(|s| s.program_ns),
        sink_on_router_cpu: m(|s| s.sink_on_router_cpu),
    }
}

/// Moves `ifname`'s NAPI (in `router`) into a kernel thread of its own and returns its pid:
/// then the router's receive work runs where that thread is pinned, not in the softirq of the
/// CPU that sent the frames (the generator's).
fn threaded_napi(router: &NetNs, ifname: &str) -> Result<u32> {
    let prefix = format!("napi/{ifname}-");
    let before = threads_named(&prefix)?;
    router
        .exec(
            "sh",
            &["-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")],
        )
        .with_context(|| format!("threaded NAPI on {ifname}"))?;
    let new: Vec<u32> = threads_named(&prefix)?
        .difference(&before)
        .copied()
        .collect();
    match new.as_slice() {
        [pid] => Ok(*pid),
        other => bail!("expected one new NAPI thread for {ifname}, found {other:?}"),
    }
}

/// Pids of the processes whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Result<BTreeSet<u32>> {
    let mut pids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            pids.insert(pid);
        }
    }
    Ok(pids)
}

/// Pins the thread `pid` (0: the calling thread) to `cpu`.
fn pin(pid: u32, cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the number of CPUs, within the set's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe {
        libc::sched_setaffinity(pid as libc::pid_t, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "sched_setaffinity({pid}, cpu {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Gives the thread `pid` (0: the calling thread) the highest nice priority: the CPUs are
/// shared with other work, which then gets a few percent of them for the short runs instead of
/// an even share (the figures would measure the scheduler otherwise). Not a real-time class:
/// nothing else is starved.
fn favour(pid: u32) -> Result<()> {
    // SAFETY: setpriority has no memory preconditions; on Linux PRIO_PROCESS with a thread id
    // sets that thread's nice value.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, -20) };
    if rc != 0 {
        bail!("setpriority({pid}, -20): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A thread's CPU time so far (ns), from its `schedstat`.
fn run_ns(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_schedstat(&text).with_context(|| format!("parsing {path}: {text:?}"))
}

fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The CPU time of `ksoftirqd/cpu`: softirq work the kernel deferred on that CPU.
fn ksoftirqd_ns(cpu: usize) -> Result<u64> {
    let name = format!("ksoftirqd/{cpu}\n");
    let pids = threads_named(&name)?;
    let pid = pids.first().context("no ksoftirqd thread")?;
    run_ns(&format!("/proc/{pid}/schedstat"))
}

/// TCP: the agent as it attaches itself to veths (TC) and the Linux router without programs,
/// interleaved.
fn tcp(definition: &str, runs: usize, seconds: u32) -> Result<Tcp> {
    eprintln!("bench: end to end, TCP: building both routers");
    let datapath = Topology::build(definition, Some(AttachMode::Auto), true)?;
    let nftables = Topology::build(definition, None, true)?;
    install_nftables(&nftables.router)?;
    let (mut d, mut n) = (Vec::new(), Vec::new());
    for run in 0..runs {
        d.push(tcp_once(&datapath, seconds)?);
        n.push(tcp_once(&nftables, seconds)?);
        eprintln!(
            "bench:   run {run}: datapath {:.2} Gbit/s, nftables {:.2} Gbit/s",
            d[run] / 1e9,
            n[run] / 1e9
        );
    }
    Ok(Tcp {
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
            generator_ns: 0,
            router_ns: 1_000,
            program_ns: 0,
            program_runs: 0,
        };
        let after = Snapshot {
            at: t0 + Duration::from_secs(2),
            received: vec![(100, 6400), (2_000_100, 128_006_400)],
            generated: 4_001_000,
            generator_ns: 1_000_000_000,
            router_ns: 2_000_001_000,
            program_ns: 60_000_000,
            program_runs: 2_000_000,
        };
        let live = after.since(&before, 1);
        assert_eq!(live.pps, 1_000_000.0);
        assert_eq!(live.offered_pps, 2_000_000.0);
        assert_eq!(live.router_ns, 1000.0);
        assert_eq!(live.router_busy, 1.0);
        assert_eq!(live.generator_ns, 250.0);
        assert_eq!(live.generator_busy, 0.5);
        assert_eq!(live.program_ns, 30.0);
        assert_eq!(live.sink_on_router_cpu, 1.0);
        // Per packet delivered: 500 ns of generator (two frames sent a packet), 1000 of router.
        assert!((live.generator_share() - 1.0 / 3.0).abs() < 1e-9);
    }
}
