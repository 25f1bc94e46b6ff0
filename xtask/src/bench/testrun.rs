//! Per-packet cost with BPF_PROG_TEST_RUN, path by path, each against the floor program run on
//! the same packets, interleaved packet by packet (so both see the same machine noise).
//!
//! - Steady-state paths (state created by the first iteration, or no state at all): each of
//!   [`STEADY_DISTINCT`] distinct 5-tuples runs with repeat [`STEADY_REPEAT`] (1,048,576 runs a
//!   path); the figure is the median over the packets of the kernel's average per run.
//! - New-flow paths: a repeated packet creates its state only on the first iteration, so each
//!   of [`NEW_DISTINCT`] distinct 5-tuples runs exactly once (repeat 1) and the figure is the
//!   median over them. The kernel's timer reads (two per call) are then inside every
//!   sample, the floor's included: see [`timer_overhead`].
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData, PerCpuHashMap},
    programs::Xdp,
};
use vpc_agent::{
    compile::Compiled,
    datapath::object::{OBJECT, maps, programs},
};
use vpc_common::{
    conntrack::{CT_TCP_ESTABLISHED, CtEntry, CtKey},
    flow::{FlowKey, FlowStats},
    ip_raw,
};
use vpc_tests::{
    packet::{Packet, TCP_ACK, TCP_SYN},
    testrun::{Verdict, run_xdp_repeat},
    topology::{INTERNET_CLIENT_IP, Topology},
};

use super::fixture::{APP, DB, Sizes, WEB, WEB_PUBLIC, yaml};

pub const STEADY_DISTINCT: usize = 5120;
/// The kernel runs the program repeatedly on the same buffer, modifications included: the
/// TTL goes down by one a run, so packets start at 255 and repeat stays below it.
pub const STEADY_REPEAT: u32 = 200;
pub const NEW_DISTINCT: usize = 1 << 16;
/// Destination ports spread over this many values (so NAT port allocation stays sparse).
const PORT_SPREAD: usize = 64;

/// One path through the datapath.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    LocalForward,
    AclDeny,
    SgNewFlow,
    TrackedFlow,
    NatNewFlow,
    NatEstablished,
    InternetGateway,
}

impl Path {
    pub const ALL: [Path; 7] = [
        Path::LocalForward,
        Path::AclDeny,
        Path::SgNewFlow,
        Path::TrackedFlow,
        Path::NatNewFlow,
        Path::NatEstablished,
        Path::InternetGateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::LocalForward => "local forward",
            Path::AclDeny => "ACL deny",
            Path::SgNewFlow => "SG new flow",
            Path::TrackedFlow => "tracked flow",
            Path::NatNewFlow => "NAT new flow",
            Path::NatEstablished => "NAT established",
            Path::InternetGateway => "internet gateway 1:1",
        }
    }

    /// What a packet of the path is, as the report says it.
    pub fn description(self) -> &'static str {
        match self {
            Path::LocalForward => {
                "UDP web -> db (pub0 -> priv0), one-way tracked after the first run"
            }
            Path::AclDeny => {
                "TCP SYN internet -> a public IP (up0): falls through every inbound rule of the ACL"
            }
            Path::SgNewFlow => {
                "TCP SYN web -> db: both instances' groups evaluated, connection created"
            }
            Path::TrackedFlow => {
                "TCP ACK web -> db of an established connection (handshake run before)"
            }
            Path::NatNewFlow => {
                "UDP app -> internet through the NAT gateway: port allocated, connection created"
            }
            Path::NatEstablished => {
                "UDP app -> internet through the NAT gateway, translation existing"
            }
            Path::InternetGateway => {
                "UDP web -> internet, source rewritten to its public IP, tracked"
            }
        }
    }

    pub fn is_new_flow(self) -> bool {
        matches!(self, Path::SgNewFlow | Path::NatNewFlow)
    }

    /// Paths whose packet is rewritten (addresses, ports): a repeated run would see its own
    /// output, so each packet runs once unmeasured (creating the state) and once measured.
    pub fn is_warm_single(self) -> bool {
        matches!(self, Path::NatEstablished | Path::InternetGateway)
    }

    /// Measured with single runs (repeat 1).
    pub fn single(self) -> bool {
        self.is_new_flow() || self.is_warm_single()
    }

    fn ingress(self) -> &'static str {
        match self {
            Path::AclDeny => "up0",
            Path::NatNewFlow | Path::NatEstablished => "priv0",
            _ => "pub0",
        }
    }

    fn expected(self) -> Verdict {
        match self {
            Path::AclDeny => Verdict::Drop,
            _ => Verdict::Redirect,
        }
    }

    fn distinct(self) -> usize {
        if self.single() {
            NEW_DISTINCT
        } else {
            STEADY_DISTINCT
        }
    }

    fn repeat(self) -> u32 {
        if self.single() { 1 } else { STEADY_REPEAT }
    }

    /// The `k`th distinct packet of the path.
    fn packet(self, k: usize) -> Packet {
        self.base_packet(k).ttl(255)
    }

    fn base_packet(self, k: usize) -> Packet {
        let (i, sport, spread) = tuple(k);
        let inet = INTERNET_CLIENT_IP;
        match self {
            Path::LocalForward => Packet::udp(WEB[i], DB[i], sport, 5000 + spread),
            Path::AclDeny => Packet::tcp(inet, WEB_PUBLIC[i], sport, 80 + spread, TCP_SYN),
            Path::SgNewFlow => Packet::tcp(WEB[i], DB[i], sport, 8000 + spread, TCP_SYN),
            Path::TrackedFlow => Packet::tcp(WEB[i], DB[i], sport, 9000 + spread, TCP_ACK),
            Path::NatNewFlow => Packet::udp(APP[i], inet, sport, 1000 + spread),
            Path::NatEstablished => Packet::udp(APP[i], inet, sport, 2000 + spread),
            Path::InternetGateway => Packet::udp(WEB[i], inet, sport, 3000 + spread),
        }
    }

    /// Packets run once before the `k`th packet is measured: the tracked flow's handshake.
    fn setup(self, k: usize) -> Vec<(&'static str, Packet)> {
        if self.is_warm_single() {
            return vec![(self.ingress(), self.packet(k))];
        }
        if self != Path::TrackedFlow {
            return Vec::new();
        }
        let (i, sport, spread) = tuple(k);
        let dport = 9000 + spread;
        vec![
            ("pub0", Packet::tcp(WEB[i], DB[i], sport, dport, TCP_SYN)),
            (
                "priv0",
                Packet::tcp(DB[i], WEB[i], dport, sport, TCP_SYN | TCP_ACK),
            ),
        ]
    }
}

/// (instance index, source port, destination port offset) of the `k`th distinct tuple.
fn tuple(k: usize) -> (usize, u16, u16) {
    let rest = k / WEB.len();
    let sport = 1024 + rest / PORT_SPREAD;
    (
        k % WEB.len(),
        u16::try_from(sport).expect("fewer than 2^22 distinct tuples"),
        (rest % PORT_SPREAD) as u16,
    )
}

/// One path's figures in one configuration.
#[derive(Clone, Debug)]
pub struct PathCost {
    pub path: Path,
    /// Median ns per packet, the path and the floor.
    pub ns: f64,
    pub floor_ns: f64,
    /// Program runs in total (path only).
    pub runs: u64,
    /// Packets whose verdict was not the expected one.
    pub unexpected: usize,
}

impl PathCost {
    pub fn ratio(&self) -> f64 {
        self.ns / self.floor_ns
    }
}

/// Everything measured in one configuration.
#[derive(Clone, Debug)]
pub struct ConfigCost {
    pub sizes: Sizes,
    pub paths: Vec<PathCost>,
    /// Floor at repeat 1 minus floor at repeat [`STEADY_REPEAT`]: the per-call timer overhead
    /// inside every new-flow sample.
    pub timer_overhead_ns: f64,
}

impl ConfigCost {
    pub fn get(&self, path: Path) -> Option<&PathCost> {
        self.paths.iter().find(|p| p.path == path)
    }
}

/// The kernel repeats a run on its own output: a forwarded frame leaves addressed to the next
/// hop's MAC, and the datapath drops a frame not addressed to the port it arrives on
/// (`not_for_router`). The repeated paths forward from pub0 to the hosts behind priv0, so
/// their static neighbours get pub0's router MAC: every repeat is addressed to the router, as
/// a real packet is, and takes the path it measures.
fn address_repeats_to_the_router(topo: &Topology) -> Result<()> {
    let ingress = vpc_tests::topology::mac(topo.port_named("pub0").index, false);
    let lladdr = ingress
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let out = topo.port_named("priv0");
    for addr in &out.addrs {
        let addr = addr.to_string();
        topo.router.ip(&[
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &lladdr,
            "dev",
            &out.ifname,
            "nud",
            "permanent",
        ])?;
    }
    Ok(())
}

/// Builds the topology for `sizes`, loads the datapath and the floor with room for the
/// connections, pre-fills CONNTRACK and measures every path.
pub fn measure_config(sizes: Sizes) -> Result<ConfigCost> {
    let topo = Topology::build(&yaml(&sizes), None, true).context("benchmark topology")?;
    address_repeats_to_the_router(&topo)?;
    let mut compiled = topo.compiled.clone();
    super::fixture::add_routes(&mut compiled, sizes.routes)?;
    let mut ebpf = load(&topo, &compiled, conntrack_capacity(sizes.conntrack))?;
    prefill_conntrack(&mut ebpf, sizes.conntrack)?;
    let _inside = topo.router.enter()?;
    let path_prog = xdp(&ebpf, programs::XDP)?;
    let floor_prog = xdp(&ebpf, programs::FLOOR)?;
    let progs = Progs {
        path: path_prog,
        floor: floor_prog,
    };
    let mut paths = Vec::new();
    for path in Path::ALL {
        // The agent drains the flow counters every interval; a map left full by the previous
        // path's 64k new flows would put every packet on the (slower) SKIPDATA branch.
        drain_flows(&ebpf)?;
        let started = std::time::Instant::now();
        let before = drops(&ebpf)?;
        let cost = measure_path(&topo, &progs, path)
            .with_context(|| format!("path {} at {sizes:?}", path.name()))?;
        eprintln!(
            "bench:   {:<22} {:>7.1} ns  floor {:>6.1} ns  x{:.2}  ({:.1} s){}",
            path.name(),
            cost.ns,
            cost.floor_ns,
            cost.ratio(),
            started.elapsed().as_secs_f64(),
            if cost.unexpected > 0 {
                format!(
                    "  {} unexpected verdicts, drops {:?}",
                    cost.unexpected,
                    grown(&before, &drops(&ebpf)?)
                )
            } else {
                String::new()
            }
        );
        paths.push(cost);
    }
    let timer_overhead_ns = timer_overhead(&topo, &progs)?;
    Ok(ConfigCost {
        sizes,
        paths,
        timer_overhead_ns,
    })
}

/// Empties FLOWS, as the agent's drain does (through a second handle: the programs borrow
/// `ebpf` while they run).
fn drain_flows(ebpf: &Ebpf) -> Result<()> {
    let Some(Map::PerCpuHashMap(data)) = ebpf.map(maps::FLOWS) else {
        bail!("FLOWS is missing or not a per-CPU hash");
    };
    let id = data.info().context("FLOWS info")?.id();
    let data = MapData::from_id(id).context("FLOWS by id")?;
    let mut flows: PerCpuHashMap<MapData, FlowKey, FlowStats> =
        PerCpuHashMap::try_from(Map::PerCpuHashMap(data))?;
    let keys: Vec<FlowKey> = flows.keys().collect::<Result<_, _>>()?;
    for key in keys {
        flows.remove(&key)?;
    }
    Ok(())
}

/// CONNTRACK capacity for a configuration: the pre-filled connections, the ones the benchmark
/// creates, and room so that the LRU does not evict.
fn conntrack_capacity(prefill: usize) -> u32 {
    let needed = prefill + prefill / 4 + (1 << 20);
    u32::try_from(needed.next_power_of_two()).expect("capacity fits u32")
}

/// Loads the embedded object (datapath and floor) with CONNTRACK and NAT_PORTS resized, and
/// writes the compiled definition (in the router namespace: DEVICES holds ifindexes).
fn load(topo: &Topology, compiled: &Compiled, conntrack: u32) -> Result<Ebpf> {
    let _inside = topo.router.enter()?;
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(maps::CONNTRACK, conntrack)
        .map_max_entries(maps::NAT_PORTS, 1 << 20)
        .load(OBJECT)
        .context("loading the eBPF object")?;
    for name in [
        programs::XDP,
        programs::XDP_OUTSIDE,
        programs::XDP6,
        programs::XDP6_ROUTE,
        programs::XDP6_INBOUND,
        programs::FLOOR,
    ] {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        vpc_agent::datapath::loader::load_retrying(|| prog.load())
            .with_context(|| format!("loading {name}"))?;
    }
    // The TC programs are not loaded here: only the XDP hand-over is linked.
    vpc_agent::datapath::loader::set_xdp_outside(&mut ebpf).context("linking vpc_xdp_outside")?;
    vpc_agent::datapath::sync::apply(&mut ebpf, compiled, 1).context("writing the definition")?;
    keep_in_dispatcher(topo, &mut ebpf)?;
    Ok(ebpf)
}

/// Attaches both programs (native mode) to a spare veth pair of the router namespace. An XDP
/// test run puts its program into the kernel's XDP dispatcher and takes it out again, each
/// an RCU grace period (milliseconds a call); a program already attached natively is in the
/// dispatcher, so its test runs change nothing there. The pair carries no traffic.
fn keep_in_dispatcher(topo: &Topology, ebpf: &mut Ebpf) -> Result<()> {
    let (a, b) = ("bnch0", "bnch1");
    topo.router
        .ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
    topo.router.ip(&["link", "set", a, "up"])?;
    topo.router.ip(&["link", "set", b, "up"])?;
    for (name, interface) in [(programs::XDP, a), (programs::FLOOR, b)] {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.attach(interface, aya::programs::XdpMode::Driver)
            .with_context(|| format!("attaching {name} to {interface}"))?;
    }
    Ok(())
}

type Drops = std::collections::BTreeMap<vpc_common::DropReason, u64>;

/// Drops per reason so far.
fn drops(ebpf: &Ebpf) -> Result<Drops> {
    let map = ebpf
        .map(maps::DROP_COUNTERS)
        .context("DROP_COUNTERS missing")?;
    Ok(vpc_agent::datapath::drop_counters(map)?)
}

/// The reasons counted between `before` and `after`, with their counts.
fn grown(before: &Drops, after: &Drops) -> Vec<(&'static str, u64)> {
    after
        .iter()
        .map(|(r, n)| (r.name(), n - before.get(r).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    Ok(ebpf
        .program(name)
        .with_context(|| format!("program {name} missing"))?
        .try_into()?)
}

/// `count` established TCP connections that no benchmark packet belongs to (172.16.0.0/12
/// sources), as the datapath would have created them.
fn prefill_conntrack(ebpf: &mut Ebpf, count: usize) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    let now = monotonic_ns()?;
    let mut ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(
        ebpf.map_mut(maps::CONNTRACK)
            .context("CONNTRACK map missing")?,
    )?;
    let entry = CtEntry {
        created_ns: now,
        last_seen_ns: now,
        state: CT_TCP_ESTABLISHED,
        ..CtEntry::default()
    };
    let base = u32::from_be_bytes([172, 16, 0, 0]);
    for k in 0..count {
        let src = (base + k as u32).to_be_bytes();
        let key = CtKey {
            src: ip_raw(src),
            dst: ip_raw([10, 0, 1, 10]),
            sport: 40000,
            dport: 443,
            proto: 6,
            _pad: [0; 3],
        };
        ct.insert(key, entry, 0).context("pre-filling CONNTRACK")?;
    }
    Ok(())
}

/// CLOCK_MONOTONIC in ns (what `bpf_ktime_get_ns` reads).
fn monotonic_ns() -> Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        bail!("clock_gettime: {}", std::io::Error::last_os_error());
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Writes a path's first frame to `target/bench/frames/` (the method section tells a reader
/// how to run it with `bpftool prog run`).
fn save_frame(path: Path, suffix: &str, frame: &[u8]) -> Result<()> {
    let dir = super::workspace_root().join("target/bench/frames");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.name().replace([' ', '/'], "-").replace(':', "");
    let file = dir.join(format!("{name}{suffix}.bin"));
    std::fs::write(&file, frame).with_context(|| format!("writing {}", file.display()))
}

struct Progs<'a> {
    path: &'a Xdp,
    floor: &'a Xdp,
}

fn measure_path(topo: &Topology, progs: &Progs<'_>, path: Path) -> Result<PathCost> {
    let ifindex = topo.port_named(path.ingress()).ifindex;
    let repeat = path.repeat();
    let (mut costs, mut floors) = (Vec::new(), Vec::new());
    let mut unexpected = 0;
    for k in 0..path.distinct() {
        for (ingress, packet) in path.setup(k) {
            let setup_if = topo.port_named(ingress).ifindex;
            let frame = topo.frame(ingress, &packet);
            if k == 0 {
                save_frame(path, ".setup", &frame)?;
            }
            run_xdp_repeat(progs.path, &frame, Some(setup_if), 1)?;
        }
        let frame = topo.frame(path.ingress(), &path.packet(k));
        if k == 0 {
            save_frame(path, "", &frame)?;
        }
        let out = run_xdp_repeat(progs.path, &frame, Some(ifindex), repeat)?;
        if out.verdict != path.expected() {
            if unexpected == 0 {
                eprintln!(
                    "bench:   {}: verdict {:?}, expected {:?}",
                    path.name(),
                    out.verdict,
                    path.expected()
                );
            }
            unexpected += 1;
        }
        costs.push(ns(out.duration));
        floors.push(ns(run_xdp_repeat(
            progs.floor,
            &frame,
            Some(ifindex),
            repeat,
        )?
        .duration));
    }
    Ok(PathCost {
        path,
        ns: median(&mut costs),
        floor_ns: median(&mut floors),
        runs: path.distinct() as u64 * u64::from(repeat),
        unexpected,
    })
}

/// The floor's median at repeat 1 minus at repeat [`STEADY_REPEAT`], on the local-forward
/// packets.
fn timer_overhead(topo: &Topology, progs: &Progs<'_>) -> Result<f64> {
    let ifindex = topo.port_named("pub0").ifindex;
    let (mut single, mut repeated) = (Vec::new(), Vec::new());
    for k in 0..STEADY_DISTINCT {
        let frame = topo.frame("pub0", &Path::LocalForward.packet(k));
        single.push(ns(
            run_xdp_repeat(progs.floor, &frame, Some(ifindex), 1)?.duration
        ));
        repeated.push(ns(run_xdp_repeat(
            progs.floor,
            &frame,
            Some(ifindex),
            STEADY_REPEAT,
        )?
        .duration));
    }
    Ok(median(&mut single) - median(&mut repeated))
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// Median of `values` (sorted in place); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}
