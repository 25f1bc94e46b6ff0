//! BPF_PROG_TEST_RUN: run a loaded XDP program on a packet and get the verdict, the output
//! bytes and the kernel-measured duration.

use std::time::Duration;

use anyhow::{Context as _, Result};
use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};

/// XDP verdicts (`enum xdp_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    Other(u32),
}

impl From<u32> for Verdict {
    fn from(v: u32) -> Self {
        match v {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            n => Self::Other(n),
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The packet as the program left it.
    pub output: Vec<u8>,
    /// Average kernel time per run.
    pub duration: Duration,
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Runs `prog` once on `packet`; with `ingress_ifindex`, as if it arrived on that interface
/// (which must exist in the calling thread's network namespace).
pub fn run_xdp(prog: &Xdp, packet: &[u8], ingress_ifindex: Option<u32>) -> Result<Outcome> {
    run_xdp_repeat(prog, packet, ingress_ifindex, 1)
}

/// Like [`run_xdp`], `repeat` times (the duration is the average).
pub fn run_xdp_repeat(
    prog: &Xdp,
    packet: &[u8],
    ingress_ifindex: Option<u32>,
    repeat: u32,
) -> Result<Outcome> {
    let mut out = vec![0u8; packet.len() + 512];
    let md = XdpMd {
        data_end: packet.len() as u32,
        ingress_ifindex: ingress_ifindex.unwrap_or(0),
        ..XdpMd::default()
    };
    // SAFETY: XdpMd is repr(C) plain integers; viewing it as bytes is sound.
    let md_bytes = unsafe {
        std::slice::from_raw_parts((&raw const md).cast::<u8>(), std::mem::size_of::<XdpMd>())
    };
    let opts = TestRunOptions {
        data_in: Some(packet),
        data_out: Some(&mut out),
        ctx_in: ingress_ifindex.map(|_| md_bytes),
        repeat,
        ..TestRunOptions::default()
    };
    let result = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    out.truncate(result.data_size_out as usize);
    Ok(Outcome {
        verdict: Verdict::from(result.return_value),
        output: out,
        duration: result.duration,
    })
}

/// TC verdicts (`TC_ACT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcVerdict {
    Ok,
    Shot,
    Redirect,
    Other(i32),
}

impl From<u32> for TcVerdict {
    fn from(v: u32) -> Self {
        match v as i32 {
            0 => Self::Ok,
            2 => Self::Shot,
            7 => Self::Redirect,
            n => Self::Other(n),
        }
    }
}

/// What one TC run did.
#[derive(Debug)]
pub struct TcOutcome {
    pub verdict: TcVerdict,
    pub output: Vec<u8>,
    /// `skb->mark` after the program.
    pub mark: u32,
}

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it (192 bytes on 6.x): only `mark`,
/// `priority`, `ingress_ifindex`, `ifindex`, `cb` and a few later fields may be non-zero.
const SKB_CTX_LEN: usize = 192;
const SKB_MARK: usize = 8;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;

/// Runs a TC program once on `packet` as if it arrived on (ingress) / left through (egress)
/// `ifindex`, which must exist in the calling thread's network namespace.
pub fn run_tc(prog: &SchedClassifier, packet: &[u8], ifindex: u32) -> Result<TcOutcome> {
    let mut ctx = [0u8; SKB_CTX_LEN];
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    let mut ctx_out = [0u8; SKB_CTX_LEN];
    let mut out = vec![0u8; packet.len() + 512];
    let opts = TestRunOptions {
        data_in: Some(packet),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        ctx_out: Some(&mut ctx_out),
        repeat: 1,
        ..TestRunOptions::default()
    };
    let result = prog.test_run(opts).context("BPF_PROG_TEST_RUN (tc)")?;
    out.truncate(result.data_size_out as usize);
    let mark = u32::from_ne_bytes(ctx_out[SKB_MARK..SKB_MARK + 4].try_into().expect("4 bytes"));
    Ok(TcOutcome {
        verdict: TcVerdict::from(result.return_value),
        output: out,
        mark,
    })
}

/// The CONNTRACK key of a connection's original direction (addresses dotted).
pub fn ct_key(
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    proto: u8,
) -> vpc_common::conntrack::CtKey {
    let ip = |s: &str| {
        vpc_common::ip_raw(
            s.parse::<std::net::Ipv4Addr>()
                .expect("an address")
                .octets(),
        )
    };
    vpc_common::conntrack::CtKey {
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        proto,
        _pad: [0; 3],
    }
}

/// How much each drop counter grew between two snapshots (only those that grew).
pub fn grown(
    before: &std::collections::BTreeMap<vpc_common::DropReason, u64>,
    after: &std::collections::BTreeMap<vpc_common::DropReason, u64>,
) -> std::collections::BTreeMap<vpc_common::DropReason, u64> {
    vpc_common::DropReason::ALL
        .iter()
        .filter_map(|r| {
            let d = after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0);
            (d > 0).then_some((*r, d))
        })
        .collect()
}
