//! Reading the pinned datapath back out, whether or not an agent runs: `status`, the live
//! `flows`, the `conntrack`/`nat`/`routes` listings, the Prometheus `metrics` and `trace`.

pub mod flows;
pub mod frame;
pub mod kernel_trace;
pub mod listing;
pub mod metrics;
pub mod pcap;
pub mod status;
pub mod trace;
