//! Real traffic between test namespaces with socat: servers that answer every client with the
//! address they saw it come from (`peer=A.B.C.D`), and bounded clients.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::netns::NetNs;

/// A server process inside a namespace, killed on drop. It lives at most 30 s.
///
/// `ip netns exec` becomes `timeout`, which forks socat: the server runs in its own process
/// group, and drop kills the whole group (killing `timeout` alone would orphan socat, which
/// would then outlive its time limit and keep the deleted namespace alive).
pub struct Server {
    child: Child,
}

impl Server {
    fn spawn(ns: &NetNs, listen: String, ss: &[&str]) -> Result<Self> {
        Self::spawn_raw(ns, &listen, "SYSTEM:echo peer=$SOCAT_PEERADDR", ss)
    }

    /// `socat LISTEN ACTION` inside `ns` (e.g. `PIPE` for an echo server), ready once `ss ARGS`
    /// lists its socket.
    pub fn spawn_raw(ns: &NetNs, listen: &str, action: &str, ss: &[&str]) -> Result<Self> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "timeout", "30", "socat"])
            .arg(listen)
            .arg(action)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawn socat server")?;
        let server = Self { child };
        // Wait until the socket exists (bounded).
        for _ in 0..50 {
            let out = ns.exec_status("ss", ss)?;
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return Ok(server);
            }
            sleep(Duration::from_millis(20));
        }
        anyhow::bail!("server {ss:?} did not start in {}", ns.name())
    }

    /// A TCP echo server on `ip:port` (one connection: for [`EchoSession`]).
    pub fn tcp_echo(ns: &NetNs, ip: &str, port: u16) -> Result<Self> {
        Self::spawn_raw(
            ns,
            &format!("TCP-LISTEN:{port},bind={ip},reuseaddr"),
            "PIPE",
            &["-ltnH", "sport", "=", &format!(":{port}")],
        )
    }

    /// A TCP server on `ip:port` (an IPv6 address in brackets: `[2001:db8::1]`).
    pub fn tcp(ns: &NetNs, ip: &str, port: u16) -> Result<Self> {
        Self::spawn(
            ns,
            format!("TCP-LISTEN:{port},bind={ip},reuseaddr,fork{}", family(ip)),
            &["-ltnH", "sport", "=", &format!(":{port}")],
        )
    }

    /// A UDP server on `ip:port` (answers each datagram's sender; IPv6 as for [`Self::tcp`]).
    pub fn udp(ns: &NetNs, ip: &str, port: u16) -> Result<Self> {
        Self::spawn(
            ns,
            format!("UDP-RECVFROM:{port},bind={ip},fork{}", family(ip)),
            &["-lunH", "sport", "=", &format!(":{port}")],
        )
    }
}

/// The socat option a listener bound to `ip` needs: IPv6 (`[...]`) is not its default.
fn family(ip: &str) -> &'static str {
    if ip.starts_with('[') { ",pf=ip6" } else { "" }
}

/// Kills `child`'s whole process group (it was spawned as a group leader) and reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; -pgid names the child's group.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// A long-lived TCP session from `src` (in `ns`) to an echo server (`Server::spawn_raw` with
/// `PIPE`): `socat - TCP:DST:PORT` living at most `limit_s` seconds, in its own process group
/// (killed on drop); lines are written to it and the echoes read back with their arrival time.
pub struct EchoSession {
    child: Child,
    input: ChildStdin,
    echoes: mpsc::Receiver<(String, Instant)>,
}

/// What [`EchoSession::stream`] saw.
#[derive(Debug)]
pub struct EchoReport {
    pub sent: u32,
    /// When each echo arrived, in order.
    pub arrivals: Vec<Instant>,
}

impl EchoReport {
    /// The longest time without an echo between `from` and the last echo (the outage).
    pub fn longest_gap(&self, from: Instant) -> Duration {
        let mut last = from;
        let mut gap = Duration::ZERO;
        for &t in self.arrivals.iter().filter(|t| **t >= from) {
            gap = gap.max(t - last);
            last = t;
        }
        gap
    }
}

impl EchoSession {
    pub fn connect(ns: &NetNs, src: &str, dst: &str, port: u16, limit_s: u32) -> Result<Self> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "timeout", &limit_s.to_string()])
            .args(["socat", "-", &format!("TCP:{dst}:{port},bind={src}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawn socat client")?;
        let input = child.stdin.take().context("client stdin")?;
        let output = child.stdout.take().context("client stdout")?;
        let (tx, echoes) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if tx.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            input,
            echoes,
        })
    }

    /// Writes `line` and waits (at most `timeout`) for its echo.
    pub fn echo(&mut self, line: &str, timeout: Duration) -> Option<String> {
        writeln!(self.input, "{line}").ok()?;
        self.input.flush().ok()?;
        self.echoes.recv_timeout(timeout).ok().map(|(l, _)| l)
    }

    /// Writes a numbered line every `period` for `duration` (then waits up to `drain` for the
    /// last echoes), in a thread: the caller changes the world meanwhile.
    pub fn stream(
        mut self,
        period: Duration,
        duration: Duration,
        drain: Duration,
    ) -> std::thread::JoinHandle<EchoReport> {
        std::thread::spawn(move || {
            let end = Instant::now() + duration;
            let mut report = EchoReport {
                sent: 0,
                arrivals: Vec::new(),
            };
            while Instant::now() < end {
                if writeln!(self.input, "line {}", report.sent).is_ok() {
                    let _ = self.input.flush();
                    report.sent += 1;
                }
                let next = Instant::now() + period;
                while let Some(left) = next.checked_duration_since(Instant::now()) {
                    match self.echoes.recv_timeout(left) {
                        Ok((_, at)) => report.arrivals.push(at),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            sleep(left);
                            break;
                        }
                    }
                }
            }
            let deadline = Instant::now() + drain;
            while report.arrivals.len() < report.sent as usize {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                match self.echoes.recv_timeout(left) {
                    Ok((_, at)) => report.arrivals.push(at),
                    Err(_) => break,
                }
            }
            report
        })
    }
}

impl Drop for EchoSession {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Connects from `src` (an address in `ns`) to `dst:port` over TCP and returns what the server
/// answered (`peer=...`), or `None` when no answer came within 2 s.
pub fn tcp_request(ns: &NetNs, src: &str, dst: &str, port: u16) -> Result<Option<String>> {
    request(
        ns,
        &format!("TCP:{dst}:{port},bind={src},connect-timeout=2"),
    )
}

/// Sends a UDP datagram from `src` to `dst:port`; the server's answer or `None` within 2 s.
pub fn udp_request(ns: &NetNs, src: &str, dst: &str, port: u16) -> Result<Option<String>> {
    request(ns, &format!("UDP:{dst}:{port},bind={src}"))
}

fn request(ns: &NetNs, address: &str) -> Result<Option<String>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo hello | ip netns exec {} timeout 3 socat -T2 - {address}",
            ns.name()
        ))
        .output()
        .context("run socat client")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!text.is_empty()).then_some(text))
}

/// `ping` from `src` in `ns`: how many of `count` echo requests were answered (0.2 s apart,
/// 1 s deadline per reply).
pub fn ping(ns: &NetNs, src: &str, dst: &str, count: u32) -> Result<u32> {
    let out = ns.exec_status(
        "ping",
        &[
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-W",
            "1",
            "-i",
            "0.2",
            "-I",
            src,
            dst,
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let received = text
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Ok(received)
}

/// Repeats a request up to 3 times until it is answered: for flows that must pass, so that a
/// loaded machine (a lost first packet, a slow start) does not fail the test. Flows that must
/// not pass are asserted with a single request.
pub fn retry(mut request: impl FnMut() -> Result<Option<String>>) -> Option<String> {
    for _ in 0..3 {
        match request() {
            Ok(Some(answer)) => return Some(answer),
            Ok(None) => {}
            Err(e) => panic!("request failed to run: {e:#}"),
        }
    }
    None
}

/// Polls `check` every 200 ms for up to `secs` seconds; its last answer.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        sleep(Duration::from_millis(200));
    }
    check()
}
