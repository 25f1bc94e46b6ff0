//! `vpc-agent trace` against the loaded datapath: the packet runs through the attached TC
//! ingress program with BPF_PROG_TEST_RUN in trace mode (`vpc_common::trace`: the magic in
//! `__sk_buff.cb[0..2]`), which hands it to its trace-mode twin. That run writes no state: no
//! connection created or refreshed, no NAT port claimed, no flow or drop counted. Its steps
//! come back from this CPU's slot of the pinned `TRACE` map (the thread is pinned to one CPU
//! for the run, and `cb[2]` carries a number the slot must echo).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use aya::{
    maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray},
    programs::{
        ProgramError,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
    },
};
use ipnet::Ipv4Net;
use serde::Serialize;
use vpc_common::{
    DropReason,
    acl::ACL_INBOUND,
    ip_raw,
    nat::{NatKey, NatValue},
    route::{
        TARGET_BLACKHOLE, TARGET_GATEWAY, TARGET_INSTANCE, TARGET_INTERNET_GATEWAY, TARGET_LOCAL,
        TARGET_NAT_GATEWAY, TARGET_PEERING,
    },
    trace::*,
};

use crate::{
    config::{
        ValidatedConfig,
        validated::{NatGatewayDef, VpcDef},
    },
    datapath::{
        object::{maps as names, programs},
        pin::{self, PinError},
    },
    evaluator::{self, Evaluator, Ingress, IpPacket, Packet, StatefulPolicy},
    inspect::{
        frame::{self, Decoded},
        listing::{self, state_name},
        status::StatusError,
        trace as reference,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum KernelTraceError {
    #[error(
        "interface {interface} is not in this network namespace: run trace in the agent's \
         (nsenter --net=/var/run/netns/NAME vpc-agent trace ...)"
    )]
    NotHere { interface: String },
    #[error("no TC ingress program is attached to {interface} (no pinned link {})", path.display())]
    NotAttached {
        interface: String,
        path: std::path::PathBuf,
    },
    #[error("pinned link {}", path.display())]
    Link {
        path: std::path::PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("the attached program (id {0}) is not loaded any more")]
    ProgramGone(u32),
    #[error("program")]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("BPF_PROG_TEST_RUN")]
    TestRun(#[source] std::io::Error),
    #[error("cannot pin the thread to one CPU")]
    Affinity(#[source] std::io::Error),
    #[error(
        "the trace buffer does not hold this run (seq {want}, found {found}): the program \
         attached is older than this agent's trace mode"
    )]
    Stale { want: u32, found: u32 },
}

/// What the kernel did with one packet in trace mode.
#[derive(Clone, Debug)]
pub struct KernelRun {
    pub buf: TraceBuf,
    /// The packet as the program left it.
    pub output: Vec<u8>,
}

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it (192 bytes on 6.x).
const SKB_CTX_LEN: usize = 192;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;
const SKB_CB: usize = 48;

/// The TC ingress program attached to `interface` (through its pinned link).
pub fn attached_program(
    dir: &Path,
    interface: &str,
) -> Result<aya::programs::ProgramFd, KernelTraceError> {
    let path = pin::link_path(dir, interface, programs::TC_INGRESS);
    if !path.exists() {
        return Err(KernelTraceError::NotAttached {
            interface: interface.to_owned(),
            path,
        });
    }
    let link_err = |source| KernelTraceError::Link {
        path: path.clone(),
        source,
    };
    let link = FdLink::from(PinnedLink::from_pin(&path).map_err(link_err)?);
    let id = link.info().map_err(link_err)?.program_id();
    for info in loaded_programs() {
        let info = info?;
        if info.id() == id {
            return Ok(info.fd()?);
        }
    }
    Err(KernelTraceError::ProgramGone(id))
}

/// Pins the calling thread to the CPU it runs on (a skb test run runs on the caller's CPU):
/// the trace is then in that CPU's slot. Returns the CPU.
fn pin_to_cpu() -> Result<usize, KernelTraceError> {
    // SAFETY: no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        return Err(KernelTraceError::Affinity(std::io::Error::last_os_error()));
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it; the call reads
    // the set of the size passed.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(KernelTraceError::Affinity(std::io::Error::last_os_error()));
    }
    Ok(cpu as usize)
}

/// Runs `frame` through the TC ingress program attached to `interface` (ifindex `ifindex`)
/// in trace mode, and reads the trace back.
pub fn run(
    dir: &Path,
    interface: &str,
    ifindex: u32,
    frame: &[u8],
) -> Result<KernelRun, KernelTraceError> {
    let prog = attached_program(dir, interface)?;
    let cpu = pin_to_cpu()?;
    let seq: u32 = rand_seq();
    let mut ctx = [0u8; SKB_CTX_LEN];
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    let magic = TRACE_MAGIC;
    ctx[SKB_CB..SKB_CB + 4].copy_from_slice(&(magic as u32).to_ne_bytes());
    ctx[SKB_CB + 4..SKB_CB + 8].copy_from_slice(&((magic >> 32) as u32).to_ne_bytes());
    ctx[SKB_CB + 8..SKB_CB + 12].copy_from_slice(&seq.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 512];
    let size = test_run(prog.as_fd().as_raw_fd(), frame, &mut out, &ctx)?;
    out.truncate(size);
    let map = pin::open_map(dir, names::TRACE)?;
    let map_err = |source| KernelTraceError::Map {
        name: names::TRACE,
        source,
    };
    let array: PerCpuArray<&MapData, TraceBuf> = PerCpuArray::try_from(&map).map_err(map_err)?;
    let values = array.get(&0, 0).map_err(map_err)?;
    let buf = values[cpu];
    if buf.seq != seq || buf.active == 0 {
        return Err(KernelTraceError::Stale {
            want: seq,
            found: buf.seq,
        });
    }
    Ok(KernelRun { buf, output: out })
}

fn rand_seq() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id().rotate_left(16)) | 1
}

/// bpf(BPF_PROG_TEST_RUN) with a context in and out (aya's TestRun needs a program object
/// this process loaded; the attached one is only a file descriptor here). Returns the output
/// size.
fn test_run(
    prog_fd: i32,
    data_in: &[u8],
    data_out: &mut [u8],
    ctx_in: &[u8; SKB_CTX_LEN],
) -> Result<usize, KernelTraceError> {
    let mut ctx_out = [0u8; SKB_CTX_LEN];
    // SAFETY: all-zero is a valid bpf_attr (integers and unions of them).
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the `test` member of the zeroed union; the pointers stored outlive the
    // syscall below.
    unsafe {
        let t = &mut attr.test;
        t.prog_fd = prog_fd as u32;
        t.repeat = 1;
        t.data_in = data_in.as_ptr() as u64;
        t.data_size_in = data_in.len() as u32;
        t.data_out = data_out.as_mut_ptr() as u64;
        t.data_size_out = data_out.len() as u32;
        t.ctx_in = ctx_in.as_ptr() as u64;
        t.ctx_size_in = ctx_in.len() as u32;
        t.ctx_out = ctx_out.as_mut_ptr() as u64;
        t.ctx_size_out = ctx_out.len() as u32;
    }
    // SAFETY: `attr` is a valid bpf_attr of the size passed; the kernel reads and writes only
    // the buffers described in it, all alive and of the sizes given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_PROG_TEST_RUN as libc::c_long,
            std::ptr::from_mut(&mut attr),
            size_of::<aya_obj::generated::bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(KernelTraceError::TestRun(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel filled in the `test` member.
    let size = unsafe { attr.test.data_size_out } as usize;
    Ok(size.min(data_out.len()))
}

/// The connection state the evaluator should assume: the kernel's (whether the packet
/// belongs to a tracked connection, and the NAT gateway translations of `NAT_PORTS`), so
/// that both judge the same packet in the same state and only policy can differ.
pub struct KernelState {
    pub tracked: bool,
    pub nat: BTreeMap<NatKey, NatValue>,
}

impl KernelState {
    pub fn read(dir: &Path, run: &KernelRun) -> Result<Self, KernelTraceError> {
        let tracked = run
            .buf
            .recorded()
            .iter()
            .any(|s| s.kind == STEP_CONNTRACK && matches!(s.code, CT_ORIGINAL | CT_REPLY));
        let map = pin::open_map(dir, names::NAT_PORTS)?;
        let ports: BpfHashMap<&MapData, NatKey, NatValue> =
            BpfHashMap::try_from(&map).map_err(|source| KernelTraceError::Map {
                name: names::NAT_PORTS,
                source,
            })?;
        let nat = ports.iter().filter_map(Result::ok).collect();
        Ok(Self { tracked, nat })
    }
}

impl StatefulPolicy for KernelState {
    fn tracked(&self, _packet: &IpPacket) -> bool {
        self.tracked
    }

    fn nat_reply(&self, _vpc: &VpcDef, _nat: &NatGatewayDef, p: &Packet) -> Option<Packet> {
        let key = NatKey::new(
            ip_raw(p.dst.octets()),
            p.dport,
            ip_raw(p.src.octets()),
            p.sport,
            p.proto,
        );
        let v = self.nat.get(&key)?;
        let inside = Ipv4Addr::from(vpc_common::ip_from_raw(v.inside_ip));
        Some(Packet {
            dst: inside,
            dport: v.inside_port,
            ..*p
        })
    }
}

/// What a run ended in, in the evaluator's terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Outcome {
    Deliver {
        interface: String,
        src: IpAddr,
        dst: IpAddr,
    },
    Drop {
        reason: String,
    },
    ToHost,
    /// Answered in place out of the ingress interface (IPv6 neighbour discovery).
    Answered,
}

impl Outcome {
    pub fn text(&self) -> String {
        match self {
            Outcome::Deliver {
                interface,
                src,
                dst,
            } => format!("DELIVER out of {interface} as {src} -> {dst}"),
            Outcome::Drop { reason } => format!("DROP ({reason})"),
            Outcome::ToHost => "TO ROUTER (the kernel's own address)".to_owned(),
            Outcome::Answered => "ANSWERED by the router, back out of the ingress".to_owned(),
        }
    }

    pub fn of_evaluator(v: &evaluator::Verdict) -> Self {
        match v {
            evaluator::Verdict::Deliver {
                interface,
                src,
                dst,
            } => Outcome::Deliver {
                interface: interface.clone(),
                src: *src,
                dst: *dst,
            },
            evaluator::Verdict::Drop(r) => Outcome::Drop {
                reason: r.name().to_owned(),
            },
            evaluator::Verdict::ToHost => Outcome::ToHost,
            evaluator::Verdict::Answered => Outcome::Answered,
        }
    }
}

fn ifname(index: u32, names: &BTreeMap<u32, String>) -> String {
    names
        .get(&index)
        .cloned()
        .or_else(|| {
            nix::net::if_::if_indextoname(index)
                .ok()
                .and_then(|c| c.into_string().ok())
        })
        .unwrap_or_else(|| format!("ifindex {index}"))
}

fn reason_name(raw: u32) -> String {
    DropReason::from_u32(raw).map_or_else(|| format!("reason {raw}"), |r| r.name().to_owned())
}

fn addr(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(vpc_common::ip_from_raw(raw))
}

/// The kernel run's outcome (`names`: interface names by ifindex).
pub fn kernel_outcome(run: &KernelRun, names: &BTreeMap<u32, String>) -> Outcome {
    match run.buf.verdict {
        TRACE_SENT => {
            let out = run
                .buf
                .recorded()
                .iter()
                .rev()
                .find(|s| s.kind == STEP_NEXT_HOP)
                .map_or(0, |s| s.b);
            let d = frame::decode(&run.output);
            Outcome::Deliver {
                interface: ifname(out, names),
                src: d.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |d| d.src).into(),
                dst: d.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |d| d.dst).into(),
            }
        }
        TRACE_REFUSED => Outcome::Drop {
            reason: reason_name(run.buf.reason),
        },
        _ => Outcome::ToHost,
    }
}

/// An id of the policy generation without its slot bits (`SLOT_SHIFT`).
fn id(raw: u32) -> u32 {
    raw & ((1 << vpc_common::iface::SLOT_SHIFT) - 1)
}

fn direction(d: u16) -> &'static str {
    if u32::from(d) == ACL_INBOUND {
        "inbound"
    } else {
        "outbound"
    }
}

fn ok(code: u8) -> &'static str {
    if code != 0 { "pass" } else { "FAIL" }
}

/// The matching route's prefix in table `table` (with its slot bits) for `dst`.
fn route_prefix(routes: &[listing::Route], table: u32, dst: Ipv4Addr) -> Option<Ipv4Net> {
    let shift = vpc_common::iface::SLOT_SHIFT;
    routes
        .iter()
        .filter(|r| (r.slot << shift | r.table) == table)
        .filter_map(|r| r.destination.parse::<Ipv4Net>().ok())
        .filter(|n| n.contains(&dst))
        .max_by_key(Ipv4Net::prefix_len)
}

/// One line per recorded step.
pub fn describe_steps(
    run: &KernelRun,
    names: &BTreeMap<u32, String>,
    routes: &[listing::Route],
) -> Vec<String> {
    let mut lines: Vec<String> = run
        .buf
        .recorded()
        .iter()
        .map(|s| describe(s, &run.buf, names, routes))
        .collect();
    if run.buf.lost > 0 {
        lines.push(format!("({} more steps not recorded)", run.buf.lost));
    }
    lines
}

fn describe(
    s: &TraceStep,
    buf: &TraceBuf,
    names: &BTreeMap<u32, String>,
    routes: &[listing::Route],
) -> String {
    match s.kind {
        STEP_SOURCE_CHECK => format!("source check of {}: {}", addr(s.a), ok(s.code)),
        STEP_UPLINK_SOURCE_CHECK => format!(
            "anti-spoofing on the uplink (no VPC, router or martian source): {}",
            ok(s.code)
        ),
        STEP_GATEWAY_SOURCE_CHECK => format!(
            "source {} behind the gateway (its networks only): {}",
            addr(s.a),
            ok(s.code)
        ),
        STEP_CONNTRACK => match s.code {
            CT_UNTRACKED => "connection tracking: not tracked (rules decide)".to_owned(),
            CT_NEW => "connection tracking: no connection (a new one)".to_owned(),
            CT_EXPIRED => {
                "connection tracking: an expired entry (seen as absent; left in place)".to_owned()
            }
            code => format!(
                "connection tracking: {} of a connection in {} ({})",
                if code == CT_REPLY {
                    "reply"
                } else {
                    "original direction"
                },
                state_name(s.a as u8),
                if s.b != 0 { "assured" } else { "unassured" }
            ),
        },
        STEP_SECURITY_GROUP => format!(
            "security groups (set {}), {}: {} (remote class {})",
            id(s.c),
            direction(s.small),
            match s.b {
                SG_MATCH_PROTO_PORT => "allowed by a rule for this protocol and port",
                SG_MATCH_ANY_PROTO => "allowed by a rule for every protocol",
                _ => "no rule allows it (new connection)",
            },
            s.a
        ),
        STEP_SECURITY_GROUP_SKIPPED => format!(
            "security groups, {}: skipped, the packet belongs to a tracked connection",
            direction(s.small)
        ),
        STEP_ACL => format!(
            "network ACL {} {} (remote {}): {} by {}",
            s.a,
            direction(s.b as u16),
            addr(s.c),
            if s.code != 0 { "allowed" } else { "denied" },
            if s.small == 0 {
                "the implicit final deny".to_owned()
            } else {
                format!("rule {}", s.small)
            }
        ),
        STEP_ROUTE => {
            let dst = addr(s.c);
            let prefix = route_prefix(routes, s.a, dst)
                .map_or_else(|| "no match".to_owned(), |p| p.to_string());
            let target = match s.code {
                TARGET_LOCAL => format!("local (subnet {})", id(s.b)),
                TARGET_INTERNET_GATEWAY => format!("internet gateway ({})", ifname(s.b, names)),
                TARGET_NAT_GATEWAY => format!("NAT gateway {}", id(s.b)),
                TARGET_PEERING => format!("peering to VPC {}", id(s.b)),
                TARGET_GATEWAY => format!("gateway ({}, untranslated)", ifname(s.b, names)),
                TARGET_INSTANCE => format!("NAT instance {} (unchanged)", addr(s.b)),
                TARGET_BLACKHOLE => "blackhole".to_owned(),
                ROUTE_NONE => "no route".to_owned(),
                t => format!("target {t} ({})", s.b),
            };
            format!("route table {} for {dst}: {prefix} -> {target}", id(s.a))
        }
        STEP_TRANSLATE => {
            let what = if s.code == XLATE_SOURCE {
                "source"
            } else {
                "destination"
            };
            let port = if s.small != 0 {
                format!(" port {}", s.small)
            } else {
                String::new()
            };
            format!("{what} translated: {} -> {}{port}", addr(s.a), addr(s.b))
        }
        STEP_DELIVER => match s.code {
            0 => format!(
                "destination {} registered in subnet {}: FAIL",
                addr(s.c),
                id(s.a)
            ),
            _ => format!(
                "deliver {} in subnet {} out of {}",
                addr(s.c),
                id(s.a),
                ifname(s.b, names)
            ),
        },
        STEP_NEXT_HOP => format!(
            "next hop: FIB answer {} out of {}, {} -> {}",
            s.code,
            ifname(s.a, names),
            frame::mac_text(&buf.smac),
            frame::mac_text(&buf.dmac)
        ),
        STEP_TO_HOST => format!("{} is the router's own: handed to the kernel", addr(s.a)),
        STEP_NAT_GATEWAY => format!(
            "NAT gateway {}: source {}:{} ({})",
            id(s.a),
            addr(s.b),
            if s.small == 0 {
                "a port drawn from the range".to_owned()
            } else {
                s.small.to_string()
            },
            if s.code == 1 {
                "a new translation; nothing claimed in trace mode"
            } else {
                "the connection's translation"
            }
        ),
        STEP_CONNTRACK_NEXT => format!(
            "connection after this packet: {}{} (not written in trace mode)",
            state_name(s.a as u8),
            if s.b != 0 { ", assured" } else { "" }
        ),
        k => format!("step {k} ({}, {}, {}, {})", s.code, s.a, s.b, s.c),
    }
}

/// The rule that decided the packet: the last network ACL or security group step.
pub fn deciding_rule(run: &KernelRun) -> Option<String> {
    run.buf.recorded().iter().rev().find_map(|s| match s.kind {
        STEP_ACL if s.code == 0 || run.buf.verdict != TRACE_REFUSED => Some(if s.small == 0 {
            format!("acl {} implicit deny", s.a)
        } else {
            format!("acl {} rule {}", s.a, s.small)
        }),
        STEP_SECURITY_GROUP => Some(format!(
            "sg {} {}",
            direction(s.small),
            if s.code != 0 { "allow" } else { "no rule" }
        )),
        _ => None,
    })
}

/// A packet traced against both the kernel and the evaluator.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub ingress: String,
    pub packet: Option<Decoded>,
    /// The frame traced, hex.
    pub input_hex: String,
    pub kernel: KernelSide,
    pub evaluator: Option<EvaluatorSide>,
    /// Why the two differ (`None`: they agree, or the evaluator was not asked).
    pub disagreement: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelSide {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The program's action in a live run (`TC_ACT_*`).
    pub action: i32,
    pub rule: Option<String>,
    pub steps: Vec<String>,
    pub output: Option<Decoded>,
    /// The output frame, hex.
    pub output_hex: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvaluatorSide {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub hops: Vec<String>,
}

/// Context for a series of traces.
pub struct Session<'a> {
    pub dir: &'a Path,
    pub config: &'a ValidatedConfig,
    pub names: BTreeMap<u32, String>,
    pub routes: Vec<listing::Route>,
}

impl<'a> Session<'a> {
    pub fn new(dir: &'a Path, config: &'a ValidatedConfig) -> Result<Self, KernelTraceError> {
        let names = pin::read_record(dir)?
            .map(|r| r.interfaces)
            .unwrap_or_default();
        let routes = listing::routes(dir)?;
        Ok(Self {
            dir,
            config,
            names,
            routes,
        })
    }

    /// Traces `frame` arriving on `ingress`; with `compare`, the evaluator judges the same
    /// packet (in the kernel's connection state) and a different verdict is a disagreement.
    pub fn trace(
        &self,
        ingress: &str,
        frame: &[u8],
        compare: bool,
    ) -> Result<Comparison, KernelTraceError> {
        let ifindex = crate::links::ifindex(ingress).ok_or_else(|| KernelTraceError::NotHere {
            interface: ingress.to_owned(),
        })?;
        let run = run(self.dir, ingress, ifindex, frame)?;
        let outcome = kernel_outcome(&run, &self.names);
        let packet = frame::decode(frame);
        let evaluator = match (&packet, compare) {
            (Some(p), true) => {
                let state = KernelState::read(self.dir, &run)?;
                let packet = Packet {
                    src: p.src,
                    dst: p.dst,
                    proto: p.proto,
                    sport: p.sport,
                    dport: p.dport,
                    icmp_type: p.icmp_type,
                    icmp_code: p.icmp_code,
                };
                Evaluator::new(self.config, &state)
                    .evaluate(Ingress::Interface(ingress), &packet)
                    .ok()
                    .map(|t| EvaluatorSide {
                        outcome: Outcome::of_evaluator(&t.verdict),
                        hops: t.hops.iter().map(reference::describe).collect(),
                    })
            }
            _ => None,
        };
        let disagreement = evaluator.as_ref().and_then(|e| {
            (e.outcome != outcome).then(|| {
                format!(
                    "the kernel says {}, the evaluator {}",
                    outcome.text(),
                    e.outcome.text()
                )
            })
        });
        Ok(Comparison {
            ingress: ingress.to_owned(),
            packet,
            input_hex: hex(frame),
            kernel: KernelSide {
                outcome,
                action: run.buf.action,
                rule: deciding_rule(&run),
                steps: describe_steps(&run, &self.names, &self.routes),
                output: frame::decode(&run.output),
                output_hex: hex(&run.output),
            },
            evaluator,
            disagreement,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of one traced packet, in the style of the evaluator's trace.
pub fn render(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(p) = &c.packet {
        let _ = writeln!(
            out,
            "packet {} -> {} proto {} sport {} dport {} ttl {} entering on {}",
            p.src,
            p.dst,
            listing::proto_name(p.proto),
            p.sport,
            p.dport,
            p.ttl,
            c.ingress
        );
    }
    let _ = writeln!(out, "kernel (the attached TC ingress program, trace mode):");
    for (i, s) in c.kernel.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
    }
    let _ = writeln!(out, "verdict: {}", c.kernel.outcome.text());
    if let (Outcome::Deliver { .. }, Some(o)) = (&c.kernel.outcome, &c.kernel.output) {
        let _ = writeln!(
            out,
            "output packet: {}:{} -> {}:{} ttl {} macs {} -> {} (as the program left them; \
             the kernel's neighbour code sets the next hop's), checksums {}",
            o.src,
            o.sport,
            o.dst,
            o.dport,
            o.ttl,
            o.smac,
            o.dmac,
            if o.checksums_valid {
                "valid"
            } else {
                "INVALID"
            }
        );
    }
    if let Some(e) = &c.evaluator {
        let _ = writeln!(out, "evaluator (reference, from the definition):");
        for (i, h) in e.hops.iter().enumerate() {
            let _ = writeln!(out, "  {}. {h}", i + 1);
        }
        let _ = writeln!(out, "verdict: {}", e.outcome.text());
    }
    if let Some(d) = &c.disagreement {
        let _ = writeln!(out, "DISAGREEMENT: {d} (a bug: please report it)");
    }
    out
}
