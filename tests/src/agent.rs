//! Running the built `vpc-agent` binary in a test: a unique bpffs directory (detached and
//! removed on drop), the agent process inside a router namespace (killed on drop), its log, and
//! bounded traffic streams between hosts.
//!
//! The agent is started with `nsenter --net=/var/run/netns/NS`, not `ip netns exec`: the latter
//! also remounts /sys in a private mount namespace, where the host's bpffs is not visible (pins
//! made there would vanish with the process).
//!
//! The binary is `target/<profile>/vpc-agent` next to the test executable (cargo builds it for
//! the agent's own integration tests), or `$VPC_AGENT_BIN`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::netns::{NetNs, unique_name};

/// The `vpc-agent` binary under test.
pub fn agent_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("VPC_AGENT_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/vpc-agent
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("vpc-agent"))
        .unwrap_or_else(|| PathBuf::from("vpc-agent"))
}

/// Runs `vpc-agent ARGS` (outside any namespace) and returns its output whatever its status.
pub fn cli(args: &[&str]) -> Result<Output> {
    Command::new(agent_bin())
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", agent_bin().display()))
}

/// `vpc-agent ARGS` in network namespace `ns`, as the agent runs there (nsenter: the host's
/// bpffs stays visible). What runs the attached programs (`trace`) needs the agent's
/// interfaces, so it runs where they are.
pub fn cli_in(ns: &crate::netns::NetNs, args: &[&str]) -> Result<Output> {
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", ns.name()))
        .arg(agent_bin())
        .args(args)
        .output()
        .with_context(|| format!("cannot run {} in {}", agent_bin().display(), ns.name()))
}

/// A unique bpffs directory `/sys/fs/bpf/vt<pid>x<n>`; on drop everything pinned there is
/// detached and removed (`vpc-agent detach`, then a forced removal).
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn new() -> Result<Self> {
        static MOUNT: Once = Once::new();
        // Mount bpffs once, before agents race to do it.
        MOUNT.call_once(|| {
            let _ = vpc_agent::datapath::pin::ensure_bpffs(Path::new("/sys/fs/bpf/vt-probe"));
            let _ = fs::remove_dir("/sys/fs/bpf/vt-probe");
        });
        let path = PathBuf::from("/sys/fs/bpf").join(unique_name("vt"));
        Ok(Self { path })
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if !self.path.exists() {
            return;
        }
        let _ = cli(&["detach", "--bpffs", self.arg()]);
        if self.path.exists() {
            eprintln!("cleanup: removing {} by force", self.path.display());
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A scratch directory for definition files and logs, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(unique_name("vpc-daemon-test-"));
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// Writes `name` atomically (rename), so the agent never reads half a file.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A `vpc-agent run` process inside a namespace; killed (SIGKILL) on drop if still running.
pub struct Agent {
    child: Child,
    log: PathBuf,
    pub started: Instant,
}

impl Agent {
    /// Starts `vpc-agent run --config CONFIG --bpffs DIR EXTRA...` in `router`'s namespace,
    /// stderr to `log`.
    pub fn spawn(
        router: &NetNs,
        config: &Path,
        bpffs: &Bpffs,
        log: PathBuf,
        extra: &[&str],
    ) -> Result<Self> {
        Self::spawn_with_env(router, config, bpffs, log, extra, &[])
    }

    /// [`Agent::spawn`] with more environment variables (`NOTIFY_SOCKET`, ...).
    pub fn spawn_with_env(
        router: &NetNs,
        config: &Path,
        bpffs: &Bpffs,
        log: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let file = fs::File::create(&log)?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", router.name()))
            .arg(agent_bin())
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(["--bpffs", bpffs.arg()])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("cannot start vpc-agent")?;
        Ok(Self {
            child,
            log,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` at least `count` times.
    pub fn wait_for(&mut self, needle: &str, count: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("agent exited ({status}) before logging {needle:?}:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("agent did not log {needle:?} {count} times within {timeout:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the agent runs (attached and reconciled).
    pub fn wait_running(&mut self) -> Result<Duration> {
        // Verification of every program takes 5 s on a quiet machine and over 15 s under load:
        // a generous bound (it only limits how long a broken start takes to report).
        self.wait_for("running config=", 1, Duration::from_secs(60))?;
        Ok(self.started.elapsed())
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the agent.
    pub fn signal(&self, signal: &str) -> Result<()> {
        crate::netns::sh("kill", &["-s", signal, &self.pid().to_string()]).map(drop)
    }

    /// Waits (bounded) for the agent to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!("agent still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A bounded ping stream started in the background: `count` echo requests every `interval_ms`.
pub struct PingStream {
    child: Child,
}

impl PingStream {
    pub fn start(from: &NetNs, dst: &str, count: u32, interval: &str) -> Result<Self> {
        let child = Command::new("ip")
            .args(["netns", "exec", from.name(), "ping", "-n", "-q"])
            .args(["-c", &count.to_string(), "-i", interval, "-W", "1", dst])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start ping")?;
        Ok(Self { child })
    }

    /// Waits for the stream to end: (transmitted, received).
    pub fn finish(self) -> Result<(u32, u32)> {
        let out = self.child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let number_before = |word: &str| -> Option<u32> {
            let words: Vec<&str> = text.split_whitespace().collect();
            let i = words.iter().position(|w| w.trim_end_matches(',') == word)?;
            words.get(i.checked_sub(1)?)?.parse().ok()
        };
        match (number_before("packets"), number_before("received")) {
            (Some(sent), Some(received)) => Ok((sent, received)),
            _ => bail!("cannot read the ping summary: {text}"),
        }
    }
}

/// (XDP programs, tcx ingress programs, tcx egress programs) on interface `ifname` of `ns`.
pub fn programs_on(ns: &NetNs, ifname: &str) -> (usize, usize, usize) {
    use aya::programs::{SchedClassifier, TcAttachType};
    let xdp = ns
        .ip(&["-d", "link", "show", "dev", ifname])
        .map(|link| {
            String::from_utf8_lossy(&link.stdout)
                .matches("prog/xdp id")
                .count()
        })
        .unwrap_or(0);
    let Ok(_inside) = ns.enter() else {
        return (xdp, 0, 0);
    };
    let tcx = |side| {
        SchedClassifier::query_tcx(ifname, side)
            .map(|(_, programs)| programs.len())
            .unwrap_or(0)
    };
    (xdp, tcx(TcAttachType::Ingress), tcx(TcAttachType::Egress))
}
