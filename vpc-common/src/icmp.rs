//! ICMP errors the router sends itself (time exceeded, fragmentation needed), rate-limited per
//! CPU with a token bucket like Linux's `icmp_msgs_per_sec` / `icmp_msgs_burst`.

use crate::{assert_size, pod};

/// `ICMP_STATS` slots (per CPU): errors sent, by kind, and errors not sent (rate limit).
pub const ICMP_STAT_TIME_EXCEEDED: u32 = 0;
pub const ICMP_STAT_FRAG_NEEDED: u32 = 1;
pub const ICMP_STAT_RATE_LIMITED: u32 = 2;
pub const ICMP_STAT_SLOTS: u32 = 3;

/// Errors per second and burst, per CPU.
pub const ICMP_RATE_PER_SEC: u64 = 1000;
pub const ICMP_BURST: u64 = 50;

/// `ICMP_BUCKET[0]` (per CPU): the token bucket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpBucket {
    /// Tokens, in nanoseconds of credit (one error costs 1e9 / rate).
    pub credit_ns: u64,
    /// When the credit was last topped up.
    pub last_ns: u64,
}
assert_size!(IcmpBucket, 16);

pod!(IcmpBucket);
