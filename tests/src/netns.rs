//! Network namespaces for tests: unique names, removed on drop (also when the test panics).
//!
//! Like aya's `test_helpers::NetNsGuard`, but namespaces are named (`ip netns`), so tests can
//! run commands in them (`ip netns exec`), and several hosts can exist at once.

use std::{
    fs::File,
    os::fd::AsFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, bail};
use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name with a short prefix (interface names are limited to 15 bytes).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command, failing with its stderr when it does not succeed.
pub fn sh(program: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// A named network namespace, deleted (with every interface in it) on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named `vt<pid>x<n>` with a prefix, loopback up.
    pub fn new(prefix: &str) -> Result<Self> {
        let name = unique_name(&format!("vt{prefix}"));
        sh("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Runs a command inside the namespace; fails if it exits non-zero.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    /// Runs a command inside the namespace and returns its output whatever its status.
    pub fn exec_status(&self, program: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .with_context(|| format!("cannot start {program} in {}", self.name))
    }

    /// `ip netns exec NS sysctl -qw key=value`.
    pub fn sysctl(&self, key_value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", key_value]).map(drop)
    }

    /// Moves the calling thread into the namespace until the returned guard is dropped
    /// (for loading and attaching programs there).
    pub fn enter(&self) -> Result<Entered> {
        let old = File::open("/proc/thread-self/ns/net").context("open own netns")?;
        let new = File::open(format!("/var/run/netns/{}", self.name))
            .with_context(|| format!("open netns {}", self.name))?;
        setns(new.as_fd(), CloneFlags::CLONE_NEWNET).context("setns into test namespace")?;
        Ok(Entered { old })
    }

    /// The interface index of `ifname` inside the namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32> {
        let out = self.exec("cat", &[&format!("/sys/class/net/{ifname}/ifindex")])?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("ifindex of {ifname} in {}", self.name))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = sh("ip", &["netns", "del", &self.name]) {
            eprintln!("cleanup: {e:#}");
        }
    }
}

/// The thread is inside a test namespace; dropping it returns to the previous one.
pub struct Entered {
    old: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(self.old.as_fd(), CloneFlags::CLONE_NEWNET) {
            // A thread left in the wrong namespace would poison later tests on this thread.
            panic!("cannot return to the original network namespace: {e}");
        }
    }
}

/// A veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up. Deleted with either namespace.
pub fn veth(ns_a: &NetNs, a: &str, ns_b: &NetNs, b: &str) -> Result<()> {
    ns_a.ip(&[
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
    ])?;
    ns_a.ip(&["link", "set", a, "up"])?;
    ns_b.ip(&["link", "set", b, "up"])?;
    Ok(())
}

/// A host: a namespace with one interface `eth0` wired to `router_if` in the router namespace,
/// with an address and a default route via `gateway`.
pub struct Host {
    pub ns: NetNs,
    pub ip: String,
}

impl Host {
    /// `addr` is `a.b.c.d/len`; `gateway` the router's address on that link.
    pub fn new(
        prefix: &str,
        router: &NetNs,
        router_if: &str,
        addr: &str,
        gateway: &str,
    ) -> Result<Self> {
        let ns = NetNs::new(prefix)?;
        veth(router, router_if, &ns, "eth0")?;
        ns.ip(&["addr", "add", addr, "dev", "eth0"])?;
        ns.ip(&["route", "add", "default", "via", gateway])?;
        let ip = addr.split('/').next().unwrap_or(addr).to_string();
        Ok(Self { ns, ip })
    }

    /// `ping -c count` from this host (0.2 s apart, 1 s deadline per reply): true when every
    /// reply came back.
    pub fn ping(&self, dst: &str, count: u32) -> Result<bool> {
        Ok(crate::traffic::ping(&self.ns, &self.ip, dst, count)? == count)
    }
}
