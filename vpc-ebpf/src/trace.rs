//! Trace mode (see `vpc_common::trace`): the pipeline takes a [`Mode`], a compile-time
//! parameter. XDP and the TC ingress program run [`Live`], whose hooks compile to nothing and
//! whose gates are constant: their code is the pipeline's alone. A test run of the TC ingress
//! program with the magic in `cb[]` is handed over (tail call through `TRACE_PROG`) to
//! `vpc_tc_trace`, the same pipeline monomorphised for [`Trace`]: it records each decision
//! point in the per-CPU `TRACE` buffer and skips every map write.
//!
//! (A runtime flag in one program was tried first: the verifier then explores every gate both
//! ways and the TC program exceeds its complexity limit.)

use aya_ebpf::{
    btf_maps::{PerCpuArray, ProgramArray},
    macros::btf_map,
    programs::TcContext,
};
use vpc_common::{
    DropReason,
    trace::{
        CT_NEW, CT_ORIGINAL, CT_REPLY, CT_UNTRACKED, STEP_CONNTRACK, TRACE_MAGIC, TRACE_REFUSED,
        TRACE_RETURNED, TRACE_SENT, TRACE_STEPS, TraceBuf, TraceStep,
    },
};

use crate::{conntrack::Track, verdict::Verdict};

/// This CPU's trace of the last TC ingress run.
#[btf_map]
pub static TRACE: PerCpuArray<TraceBuf, 1> = PerCpuArray::new();

/// How a pipeline run records and whether it may write state.
pub trait Mode: Copy {
    /// Whether this run only traces: no map but `TRACE` (and per-CPU scratch) is written.
    fn tracing(self) -> bool;
    /// Records a decision point (see `vpc_common::trace::STEP_*`).
    fn step(self, kind: u8, code: u8, small: u16, a: u32, b: u32, c: u32);
}

/// Packets on the wire (XDP): nothing recorded, everything written.
#[derive(Clone, Copy)]
pub struct Live;

impl Mode for Live {
    #[inline(always)]
    fn tracing(self) -> bool {
        false
    }

    #[inline(always)]
    fn step(self, _: u8, _: u8, _: u16, _: u32, _: u32, _: u32) {}
}

/// The TC ingress pipeline's trace-mode twin (`vpc_tc_trace`): records everything, writes
/// nothing.
#[derive(Clone, Copy)]
pub struct Trace;

impl Mode for Trace {
    #[inline(always)]
    fn tracing(self) -> bool {
        true
    }

    #[inline(always)]
    fn step(self, kind: u8, code: u8, small: u16, a: u32, b: u32, c: u32) {
        let Some(t) = TRACE.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: this CPU's slot, written only by this program run.
        let t = unsafe { &mut *t };
        let n = t.count as usize;
        if n < TRACE_STEPS {
            t.steps[n] = TraceStep {
                kind,
                code,
                small,
                a,
                b,
                c,
            };
            t.count += 1;
        } else {
            t.lost += 1;
        }
    }
}

/// `TRACE_PROG[0]`: the trace-mode program (`vpc_tc_trace`), set by the agent when it loads
/// the object.
#[btf_map]
pub static TRACE_PROG: ProgramArray<1> = ProgramArray::new();

/// Whether the skb is a test run's in trace mode: `cb[0..2]` holds the magic (a packet on the
/// wire cannot set `cb`).
#[inline(always)]
pub fn requested(ctx: &TcContext) -> bool {
    // SAFETY: reading cb[] of the skb being processed.
    let (lo, hi) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.cb[0], skb.cb[1])
    };
    (u64::from(hi) << 32 | u64::from(lo)) == TRACE_MAGIC
}

/// Goes on in the trace-mode program; returns only if that fails (no program set).
#[inline(always)]
pub fn hand_over(ctx: &TcContext) {
    // SAFETY: a tail call into a program of the same type on the same context.
    unsafe { TRACE_PROG.tail_call(ctx, 0) };
}

/// At the start of the trace-mode program: a fresh buffer for this run, `cb[2]` its number.
#[inline(always)]
pub fn begin(ctx: &TcContext) {
    // SAFETY: reading cb[] of the skb being processed.
    let seq = unsafe { (*ctx.skb.skb).cb[2] };
    let Some(t) = TRACE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, written only by this program run.
    let t = unsafe { &mut *t };
    t.active = 1;
    t.seq = seq;
    t.verdict = 0;
    t.reason = 0;
    t.action = 0;
    t.count = 0;
    t.lost = 0;
    t.smac = [0; 6];
    t.dmac = [0; 6];
}

/// At the TC ingress program's exit: the verdict of a trace-mode run (kind, drop reason and
/// the action a live run would return).
#[inline(always)]
pub fn end(verdict: u32, reason: u32, action: i32) {
    let Some(t) = TRACE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, written only by this program run.
    let t = unsafe { &mut *t };
    t.verdict = verdict;
    t.reason = reason;
    t.action = action;
}

/// Records the next hop's MACs (trace mode).
#[inline(always)]
pub fn macs(smac: &[u8; 6], dmac: &[u8; 6]) {
    let Some(t) = TRACE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, written only by this program run.
    let t = unsafe { &mut *t };
    t.smac = *smac;
    t.dmac = *dmac;
}

/// Records how the packet relates to the tracked connections.
#[inline(always)]
pub fn connection<M: Mode>(mode: M, track: &Track) {
    if !mode.tracing() {
        return;
    }
    match *track {
        Track::Untracked => mode.step(STEP_CONNTRACK, CT_UNTRACKED, 0, 0, 0, 0),
        Track::New => mode.step(STEP_CONNTRACK, CT_NEW, 0, 0, 0, 0),
        Track::Tracked {
            reply,
            entry,
            assured,
        } => {
            let code = if reply { CT_REPLY } else { CT_ORIGINAL };
            let state = u32::from(entry.get().state);
            mode.step(STEP_CONNTRACK, code, 0, state, assured as u32, 0);
        }
    }
}

/// The end of a trace-mode run: how the program would have ended (`drop`: its action for a
/// packet dropped without an answer).
#[inline(always)]
pub fn end_verdict(verdict: &Result<Verdict<i32>, DropReason>, drop: i32) {
    match verdict {
        Ok(Verdict::Return(action)) => end(TRACE_RETURNED, 0, *action),
        Ok(Verdict::Sent(action)) => end(TRACE_SENT, 0, *action),
        Ok(Verdict::Refused { reason, answer }) => {
            end(TRACE_REFUSED, *reason as u32, answer.unwrap_or(drop));
        }
        Err(reason) => end(TRACE_REFUSED, *reason as u32, drop),
    }
}
