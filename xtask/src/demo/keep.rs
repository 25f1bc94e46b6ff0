//! `--keep` leaves the demo running and records what it left in `/run/vpc-demo/<router>.state`
//! (one `key value` per line); `--down` removes everything every such file records.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vpc_tests::{
    agent::{agent_bin, cli},
    netns::sh,
    topology::{INTERNET_CLIENT_IP, INTERNET_IP},
};

use super::topology::Vpc;

const STATE_DIR: &str = "/run/vpc-demo";

/// Records the running demo, prints what to try, and lets it live past this process.
pub fn leave_running(vpc: Vpc) -> Result<()> {
    fs::create_dir_all(STATE_DIR).with_context(|| format!("create {STATE_DIR}"))?;
    let state = Path::new(STATE_DIR).join(format!("{}.state", vpc.router.name()));
    let mut text = format!(
        "agent {}\nbpffs {}\nscratch {}\n",
        vpc.agent.pid(),
        vpc.bpffs.arg(),
        vpc.scratch.dir.display()
    );
    for ns in vpc.namespaces() {
        text.push_str(&format!("netns {ns}\n"));
    }
    fs::write(&state, text).with_context(|| format!("write {}", state.display()))?;
    print_commands(&vpc);
    // Everything (agent process, pins, namespaces) now belongs to `--down`.
    std::mem::forget(vpc);
    Ok(())
}

fn print_commands(vpc: &Vpc) {
    let ns = |name: &str| vpc.host(name).map_or("?", |h| h.ns.name());
    let agent = agent_bin();
    let agent = agent.display();
    let dir = vpc.bpffs.arg();
    let internet = vpc.internet.name();
    println!("\nthe VPC is still running (--keep). Things to try:");
    println!(
        "  # an HTTPS-port server on web-1 (group web allows 443 from anywhere), then reach it from the internet on the public IP"
    );
    println!(
        "  ip netns exec {} socat TCP-LISTEN:443,fork,reuseaddr SYSTEM:'echo hello from web-1, you are $SOCAT_PEERADDR' &",
        ns("web-1")
    );
    let public = vpc
        .def()
        .instances
        .iter()
        .find_map(|i| i.public_ip)
        .map_or("?".to_owned(), |ip| ip.to_string());
    println!("  ip netns exec {internet} socat - TCP:{public}:443,bind={INTERNET_CLIENT_IP}");
    println!("  ip netns exec {} ping -c 3 {INTERNET_IP}", ns("jumpbox"));
    println!("  {agent} status --bpffs {dir}");
    let ip = |name: &str| vpc.host(name).map_or("?", |h| h.ip.as_str());
    println!(
        "  {agent} trace --bpffs {dir} --from {} --to {} --proto tcp --dport 5432",
        ip("web-1"),
        ip("db-1")
    );
    println!("  bpftool map dump pinned {dir}/DROP_COUNTERS");
    println!("  ip netns exec {} bpftool net", vpc.router.name());
    println!(
        "  # edit {} and the agent reloads it (log: {})",
        vpc.config_file.display(),
        vpc.scratch.dir.join("agent.log").display()
    );
    println!("  # namespaces: {}", vpc.namespaces().join(" "));
    println!("when done: cargo xtask demo --down");
}

/// Removes every demo left running by `--keep`.
pub fn down() -> Result<()> {
    let entries = match fs::read_dir(STATE_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no demo is running");
            return Ok(());
        }
        Err(e) => return Err(e).context(format!("read {STATE_DIR}")),
    };
    let mut found = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "state") {
            tear_down(&path).with_context(|| format!("tear down {}", path.display()))?;
            found += 1;
        }
    }
    println!("removed {found} demo(s)");
    Ok(())
}

fn tear_down(state: &Path) -> Result<()> {
    let text = fs::read_to_string(state)?;
    let values = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::to_owned)
            .collect()
    };
    for pid in values("agent") {
        stop_agent(&pid);
    }
    for dir in values("bpffs") {
        let _ = cli(&["detach", "--bpffs", &dir]);
        let _ = fs::remove_dir_all(&dir);
    }
    for ns in values("netns") {
        let _ = sh("ip", &["netns", "del", &ns]);
    }
    for dir in values("scratch") {
        let _ = fs::remove_dir_all(PathBuf::from(dir));
    }
    fs::remove_file(state)?;
    println!("removed the demo recorded in {}", state.display());
    Ok(())
}

/// SIGTERM to the agent (if that pid still is a vpc-agent), waiting up to 5 s for it to exit.
fn stop_agent(pid: &str) {
    let proc = PathBuf::from("/proc").join(pid);
    let is_agent = fs::read(proc.join("cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("vpc-agent"));
    if !is_agent {
        return;
    }
    let _ = sh("kill", &["-TERM", pid]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
