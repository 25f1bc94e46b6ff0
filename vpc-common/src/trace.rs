//! `vpc-agent trace` against the loaded datapath: the TC ingress program run through
//! BPF_PROG_TEST_RUN in *trace mode* records each decision point of the pipeline into the
//! per-CPU `TRACE` map and writes no other map (no connection created or refreshed, no NAT
//! port claimed, no flow or drop counted). Trace mode is selected by [`TRACE_MAGIC`] in
//! `__sk_buff.cb[0..2]` of the test run's context: a packet on the wire cannot set `cb`.
//!
//! Layout of `TRACE[0]` (one per CPU, [`TraceBuf`], 432 bytes): a header, then `count` of at
//! most [`TRACE_STEPS`] [`TraceStep`]s in pipeline order. Addresses are raw (network order
//! in a `u32`, as in every map), ports and rule numbers host order.

use crate::{assert_size, pod};

/// `cb[0]` (low half) and `cb[1]` (high half) of a test run in trace mode.
pub const TRACE_MAGIC: u64 = 0x7670_6374_7261_6365; // "vpctrace"

/// Steps a trace holds; later ones are counted in `TraceBuf::lost`.
pub const TRACE_STEPS: usize = 24;

/// One decision point.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStep {
    /// `STEP_*`.
    pub kind: u8,
    /// Per kind (pass / allowed: 1, or a target or state).
    pub code: u8,
    /// Per kind (an ACL rule number, a direction).
    pub small: u16,
    pub a: u32,
    pub b: u32,
    pub c: u32,
}
assert_size!(TraceStep, 16);

/// Source check on a subnet interface: code 1 passed; a = the source.
pub const STEP_SOURCE_CHECK: u8 = 1;
/// Anti-spoofing on the uplink: code 1 passed.
pub const STEP_UPLINK_SOURCE_CHECK: u8 = 2;
/// The connection lookup: code `CT_*` below; a = its state (`CT_TCP_*` / `CT_ONE_WAY` /
/// `CT_BOTH_WAYS`), b = 1 assured.
pub const STEP_CONNTRACK: u8 = 3;
/// Security groups of a new connection: code 1 allowed; small = direction (`ACL_INBOUND` /
/// `ACL_OUTBOUND`); a = the remote's class, b = the rule that matched (`SG_MATCH_*`),
/// c = the instance's group set.
pub const STEP_SECURITY_GROUP: u8 = 4;
/// Security groups skipped (tracked connection): small = direction.
pub const STEP_SECURITY_GROUP_SKIPPED: u8 = 5;
/// A network ACL: code 1 allowed; small = the rule number that matched (0: the implicit
/// deny); a = the ACL id, b = direction.
pub const STEP_ACL: u8 = 6;
/// A route lookup: code = `TARGET_*` (`ROUTE_NONE`: no route); a = table, b = target id,
/// c = the address looked up.
pub const STEP_ROUTE: u8 = 7;
/// A translation: code `XLATE_*`; a = old address, b = new address, small = new port (0: kept).
pub const STEP_TRANSLATE: u8 = 8;
/// Local delivery: code 1 the destination is registered there; a = the subnet id, b = the
/// interface out, c = the destination.
pub const STEP_DELIVER: u8 = 9;
/// The next hop (FIB, trace mode only): code = `bpf_fib_lookup`'s answer; a = ifindex out.
/// The MACs are in the header.
pub const STEP_NEXT_HOP: u8 = 10;
/// For the router itself.
pub const STEP_TO_HOST: u8 = 11;
/// Through a NAT gateway: a = its id, b = its elastic IP, small = the port it would take
/// (0: none free now), code 1 = a new translation, 0 = the connection's own.
pub const STEP_NAT_GATEWAY: u8 = 12;
/// The connection's state after this packet (what commit would write): a = state, b = 1
/// assured after it.
pub const STEP_CONNTRACK_NEXT: u8 = 13;
/// Source check on a gateway's link (the networks behind it): `code` 1 = passed; `a` the source.
pub const STEP_GATEWAY_SOURCE_CHECK: u8 = 14;

/// `STEP_CONNTRACK` codes.
pub const CT_UNTRACKED: u8 = 0;
pub const CT_NEW: u8 = 1;
pub const CT_ORIGINAL: u8 = 2;
pub const CT_REPLY: u8 = 3;
/// An expired entry (a live run would remove it and release its translation).
pub const CT_EXPIRED: u8 = 4;

/// `STEP_SECURITY_GROUP` b: which lookup matched.
pub const SG_MATCH_NONE: u32 = 0;
pub const SG_MATCH_PROTO_PORT: u32 = 1;
pub const SG_MATCH_ANY_PROTO: u32 = 2;

/// `STEP_ROUTE` code when nothing matched.
pub const ROUTE_NONE: u8 = 0xff;

/// `STEP_TRANSLATE` codes.
pub const XLATE_SOURCE: u8 = 1;
pub const XLATE_DESTINATION: u8 = 2;

/// `TraceBuf::verdict`.
pub const TRACE_RETURNED: u32 = 1;
pub const TRACE_SENT: u32 = 2;
pub const TRACE_REFUSED: u32 = 3;

/// `TRACE[0]`: one per CPU, rewritten by every packet of the TC ingress program (`active`
/// 0 for live packets).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TraceBuf {
    /// 1 while a trace-mode run is in progress or was the last one on this CPU.
    pub active: u32,
    /// `cb[2]` of the run (a number the caller chooses, to know the buffer is its run's).
    pub seq: u32,
    /// `TRACE_*`: returned to the kernel, forwarded, refused (0: not reached).
    pub verdict: u32,
    /// The `DropReason` of a refused packet.
    pub reason: u32,
    /// The program's action in a live run (trace mode itself always drops).
    pub action: i32,
    /// Steps recorded, and steps that did not fit.
    pub count: u32,
    pub lost: u32,
    pub _pad: u32,
    /// The next hop's MACs as the FIB gives them (`STEP_NEXT_HOP`).
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub _pad2: [u8; 4],
    pub steps: [TraceStep; TRACE_STEPS],
}
assert_size!(TraceBuf, 48 + 16 * TRACE_STEPS);

impl Default for TraceBuf {
    fn default() -> Self {
        Self {
            active: 0,
            seq: 0,
            verdict: 0,
            reason: 0,
            action: 0,
            count: 0,
            lost: 0,
            _pad: 0,
            smac: [0; 6],
            dmac: [0; 6],
            _pad2: [0; 4],
            steps: [TraceStep::default(); TRACE_STEPS],
        }
    }
}

impl TraceBuf {
    /// The recorded steps.
    pub fn recorded(&self) -> &[TraceStep] {
        &self.steps[..(self.count as usize).min(TRACE_STEPS)]
    }
}

pod!(TraceStep, TraceBuf);
