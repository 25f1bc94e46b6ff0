//! Flow log test helpers: reading the records an agent wrote, filling the pinned `FLOWS` map
//! with dummy entries (SKIPDATA without generating 65536 real flows), and scraping the metrics
//! endpoint from inside the router namespace.

use std::{fs, path::Path, time::Instant};

use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, PerCpuHashMap, PerCpuValues};
use vpc_common::flow::{FLOW_ACCEPT, FlowKey, FlowStats};

use crate::netns::NetNs;

/// The records of a flow log file, each split into its fields.
pub fn records(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

/// The ifindex the dummy entries of [`fill_flows`] carry (no interface has it).
pub const DUMMY_IFINDEX: u32 = 999_999;

/// Inserts dummy flows into the pinned `FLOWS` map of `bpffs` until it refuses one (full) or
/// `limit` were inserted, stamped with the generation the kernel records into now (so the next
/// drain takes them). Returns (inserted, seconds taken).
pub fn fill_flows(bpffs: &Path, limit: u32) -> Result<(u32, f64)> {
    let gen_path = bpffs.join("FLOWS_GEN");
    let gen_data =
        MapData::from_pin(&gen_path).with_context(|| format!("open {}", gen_path.display()))?;
    let generation: aya::maps::Array<MapData, u32> =
        aya::maps::Array::try_from(aya::maps::Map::Array(gen_data))?;
    let generation = (generation.get(&0, 0)? & 1) as u8;
    let path = bpffs.join("FLOWS");
    let data = MapData::from_pin(&path).with_context(|| format!("open {}", path.display()))?;
    let mut map: PerCpuHashMap<MapData, FlowKey, FlowStats> =
        PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(data))?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let started = Instant::now();
    let mut inserted = 0;
    for n in 0..limit {
        let key = FlowKey {
            ifindex: DUMMY_IFINDEX,
            // 192.0.2.0/24 + a counter: documentation addresses, never on the wire.
            src: vpc_common::ip_raw([192, 0, 2, 0]) ^ n.to_be(),
            dst: vpc_common::ip_raw([198, 51, 100, 1]),
            sport: (n & 0xffff) as u16,
            dport: 9,
            proto: 17,
            action: FLOW_ACCEPT,
            generation,
            _pad: 0,
        };
        let one = FlowStats {
            packets: 1,
            bytes: 64,
            ..FlowStats::default()
        };
        let mut values = vec![FlowStats::default(); cpus];
        values[0] = one;
        let values = PerCpuValues::try_from(values)?;
        if map.insert(key, values, 0).is_err() {
            break;
        }
        inserted += 1;
    }
    Ok((inserted, started.elapsed().as_secs_f64()))
}

/// `GET http://ADDR/PATH` from inside `ns` (curl, 5 s at most): the body.
pub fn http_get(ns: &NetNs, url: &str) -> Result<String> {
    let out = ns.exec("curl", &["-sS", "--max-time", "5", url])?;
    if !out.status.success() {
        bail!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An IPFIX collector: Debian's `nfcapd` listening on `127.0.0.1:PORT` inside a namespace,
/// writing into `dir`; [`Collector::finish`] stops it and reads the flows back with `nfdump`.
/// Killed on drop if still running.
pub struct Collector {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Collector {
    pub fn start(ns: &NetNs, port: u16, dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns.name(), "nfcapd", "-b", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-t", "3600", "-w"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start nfcapd (cargo xtask setup installs nfdump)")?;
        // nfcapd binds within a few milliseconds; wait for its socket (bounded).
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let needle = format!("127.0.0.1:{port}");
        while Instant::now() < deadline {
            let ss = ns.exec("ss", &["-Hlun", "src", &needle])?;
            if !ss.stdout.is_empty() {
                return Ok(Self {
                    child,
                    dir: dir.to_owned(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bail!("nfcapd did not listen on {needle}")
    }

    /// Stops nfcapd (SIGTERM: it closes its file) and returns `nfdump`'s lines in `format`
    /// (`nfdump -o 'fmt:FORMAT'`), without headers or summary.
    pub fn finish(mut self, format: &str) -> Result<Vec<String>> {
        crate::netns::sh("kill", &["-TERM", &self.child.id().to_string()])?;
        self.child.wait()?;
        let out = std::process::Command::new("nfdump")
            .arg("-R")
            .arg(&self.dir)
            .args(["-q", "-N", "-o", &format!("fmt:{format}")])
            .output()
            .context("cannot run nfdump")?;
        if !out.status.success() {
            bail!("nfdump: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
