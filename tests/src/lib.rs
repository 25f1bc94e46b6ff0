//! Test harness for kernel-level tests: network namespaces with cleanup, a packet builder, a
//! BPF_PROG_TEST_RUN helper and the datapath loader.
//!
//! Kernel tests start with [`require_kernel!`]: without root or BPF they are skipped with a
//! message, except under `CI=true`, where they fail (a kernel test never passes by skipping).

pub mod agent;
pub mod bridge;
pub mod cases;
pub mod datapath;
pub mod flowlog;
pub mod ifchange;
pub mod netns;
pub mod observe;
pub mod packet;
pub mod packet6;
pub mod rng;
pub mod testrun;
pub mod topology;
pub mod traffic;

use std::sync::OnceLock;

/// Why kernel tests cannot run here, or `None` when they can.
pub fn kernel_unavailable() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Some("not running as root".to_string());
            }
            match datapath::Datapath::load() {
                Ok(_) => None,
                Err(e) => {
                    // The whole chain: the verifier's log is in the innermost source.
                    let mut reason = format!("cannot load the eBPF object: {e}");
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        reason.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    Some(reason)
                }
            }
        })
        .as_deref()
}

/// Whether a kernel test that cannot run must fail instead of being skipped.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Starts a kernel test: returns from the test (skipped, with a message) when the kernel
/// facilities are missing, or panics under `CI=true`.
#[macro_export]
macro_rules! require_kernel {
    () => {
        if let Some(reason) = $crate::kernel_unavailable() {
            if $crate::strict() {
                panic!("kernel test cannot run under CI=true: {reason}");
            }
            eprintln!("SKIPPED (kernel test): {reason}");
            return;
        }
    };
}
