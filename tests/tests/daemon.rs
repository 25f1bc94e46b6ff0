//! The daemon (`vpc-agent run`) in a router namespace with traffic running: reloads lose no
//! packet of an allowed flow, a denied flow never passes across kill -9 and restart, a restart
//! adopts the pinned links (one program per hook afterwards), the same file applied twice
//! writes nothing, an invalid file keeps the running generation, a second agent on the same
//! directory is refused, detach leaves nothing, incompatible pinned maps are refused.
//!
//! The flows are plain ICMP echo (network ACLs are stateless: subnet b's ACL denies ICMP in).

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use vpc_tests::{
    agent::{Agent, Bpffs, PingStream, Scratch, cli, programs_on},
    netns::Host,
    require_kernel,
    topology::Topology,
};

const B: &str = "10.30.2.10";
const C: &str = "10.30.3.10";
const WAIT: Duration = Duration::from_secs(15);

/// Subnets a, b, c (interfaces da, db, dc); b's ACL denies ICMP inbound. `extra` more
/// instances in subnet c (10.30.3.100+i): a policy change that leaves the test flows alone.
fn definition(extra: u8) -> String {
    let mut yaml = String::from(include_str!("../fixtures/three-subnets.yaml"));
    for i in 0..extra {
        yaml.push_str(&format!(
            "      - {{ name: x{i}, subnet: c, private_ip: 10.30.3.{} }}\n",
            100 + u32::from(i)
        ));
    }
    yaml
}

/// Namespaces for [`definition`]; the agent under test does the attaching.
struct Setup {
    topology: Topology,
    bpffs: Bpffs,
    scratch: Scratch,
    runs: u32,
}

impl Setup {
    fn new() -> Self {
        let topology = Topology::build(&definition(0), None, false).expect("topology");
        let scratch = Scratch::new().expect("scratch dir");
        scratch.write("vpc.yaml", &definition(0)).expect("write");
        Self {
            topology,
            bpffs: Bpffs::new().expect("bpffs dir"),
            scratch,
            runs: 0,
        }
    }

    fn config(&self) -> std::path::PathBuf {
        self.scratch.dir.join("vpc.yaml")
    }

    fn spawn(&mut self) -> Agent {
        self.runs += 1;
        let log = self.scratch.dir.join(format!("agent{}.log", self.runs));
        Agent::spawn(&self.topology.router, &self.config(), &self.bpffs, log, &[])
            .expect("spawn agent")
    }

    fn start(&mut self) -> Agent {
        let mut agent = self.spawn();
        agent.wait_running().expect("agent runs");
        agent
    }

    fn host(&self, ifname: &str) -> &vpc_tests::netns::NetNs {
        &self.topology.ports[ifname].ns
    }

    fn status(&self) -> serde_json::Value {
        let out = cli(&["status", "--json", "--bpffs", self.bpffs.arg()]).expect("status");
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// 20 pings da -> C all answered (allowed), 20 da -> B none (b's ACL denies ICMP in).
    fn assert_enforcing(&self, when: &str) {
        let stream = PingStream::start(self.host("da"), C, 20, "0.01").expect("ping");
        assert_eq!(stream.finish().expect("ping").1, 20, "allowed {when}");
        let stream = PingStream::start(self.host("da"), B, 20, "0.01").expect("ping");
        assert_eq!(stream.finish().expect("ping").1, 0, "denied {when}");
    }

    /// (XDP programs, tcx ingress programs, tcx egress programs) on router interface `ifname`.
    fn programs_on(&self, ifname: &str) -> (usize, usize, usize) {
        programs_on(&self.topology.router, ifname)
    }
}

#[test]
fn reloads_under_traffic_lose_no_packet_and_the_same_file_writes_nothing() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    assert!(agent.log().contains("msg=\"start: applied\" generation=1"));

    // 400 echo requests over ~4 s while the policy is switched 4 times.
    let stream = PingStream::start(setup.host("da"), C, 400, "0.01").expect("ping");
    for n in 1..=4u8 {
        std::thread::sleep(Duration::from_millis(500));
        setup
            .scratch
            .write("vpc.yaml", &definition(n))
            .expect("rewrite");
        agent
            .wait_for(
                &format!("msg=\"reload: applied\" generation={}", 1 + n),
                1,
                WAIT,
            )
            .expect("reload applied");
    }
    // The same content again, by SIGHUP: nothing written, not even a flip.
    agent.signal("HUP").expect("SIGHUP");
    agent
        .wait_for(
            "msg=\"reload: definition unchanged, nothing written\" generation=5",
            1,
            WAIT,
        )
        .expect("unchanged");
    let (sent, received) = stream.finish().expect("ping summary");
    eprintln!("ping across 4 reloads: {sent} sent, {received} received");
    assert_eq!(sent, 400);
    assert_eq!(received, sent, "no packet of the allowed flow lost");

    let status = setup.status();
    assert_eq!(status["generation"], 5);
    assert_eq!(
        status["active_slot"], 1,
        "generation 5 is in slot 1 (1,0,1,0,1)"
    );

    // SIGTERM: the agent exits 0 and the datapath keeps enforcing.
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
    setup.assert_enforcing("after SIGTERM");

    // A restart on the same file writes nothing.
    let mut again = setup.start();
    assert!(
        again
            .log()
            .contains("msg=\"start: definition unchanged, nothing written\" generation=5"),
        "{}",
        again.log()
    );
    again.signal("TERM").expect("SIGTERM");
    again.wait_exit(WAIT).expect("exit");
}

#[test]
fn an_invalid_file_is_reported_and_the_running_generation_stays() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    let bad = definition(0).replace("10.30.3.0/24", "10.30.3.0/33");
    setup.scratch.write("vpc.yaml", &bad).expect("write");
    agent
        .wait_for("invalid definition rejected", 1, WAIT)
        .expect("rejected");
    let log = agent.log();
    let config = setup.config().display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("reload: {config}:7:")) && l.contains("subnets[2]")),
        "FILE:LINE:COL diagnostic in the log:\n{log}"
    );
    assert_eq!(setup.status()["generation"], 1);
    let stream = PingStream::start(setup.host("da"), C, 10, "0.01").expect("ping");
    assert_eq!(
        stream.finish().expect("ping").1,
        10,
        "policy still enforced"
    );
    let stream = PingStream::start(setup.host("da"), B, 10, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 0, "deny still enforced");
}

#[test]
fn kill_9_and_restart_keep_enforcing_and_adopt_the_pinned_links() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();

    let denied = PingStream::start(setup.host("da"), B, 300, "0.01").expect("ping");
    let allowed = PingStream::start(setup.host("da"), C, 300, "0.01").expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    agent.kill9().expect("kill -9");
    std::thread::sleep(Duration::from_millis(300));
    let mut restarted = setup.spawn();
    let took = restarted.wait_running().expect("restart");
    eprintln!("restart after kill -9: running in {took:?}");
    let (sent, received) = denied.finish().expect("denied ping");
    assert_eq!(sent, 300);
    assert_eq!(received, 0, "the denied flow never passed");
    let (sent, received) = allowed.finish().expect("allowed ping");
    eprintln!("allowed flow across kill -9 + restart: {sent} sent, {received} received");
    assert_eq!(received, sent, "the allowed flow lost nothing");

    let log = restarted.log();
    assert!(log.contains("pinned_maps=reused"), "{log}");
    assert!(log.contains("start: definition unchanged"), "{log}");
    // veth ports in the default mode: the TC path alone (no XDP).
    assert_eq!(log.matches("adopted pinned link").count(), 6, "{log}");
    assert!(!log.contains("msg=attached program"), "no new link: {log}");
    for ifname in ["da", "db", "dc"] {
        assert_eq!(
            setup.programs_on(ifname),
            (0, 1, 1),
            "one tcx ingress, one tcx egress program on {ifname}, no XDP on a veth"
        );
    }
    let status = setup.status();
    assert_eq!(status["attached"].as_array().map(Vec::len), Some(6));
    assert_eq!(status["agent_running"], true);
}

#[test]
fn a_second_agent_is_refused_and_detach_leaves_nothing() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    let mut second = setup.spawn();
    assert_eq!(second.wait_exit(WAIT).expect("second exits"), Some(2));
    assert!(
        second.log().contains("another agent is running"),
        "{}",
        second.log()
    );
    let busy = cli(&["detach", "--bpffs", setup.bpffs.arg()]).expect("detach");
    assert_eq!(busy.status.code(), Some(2), "detach refused while running");

    agent.signal("INT").expect("SIGINT");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
    let out = cli(&["detach", "--bpffs", setup.bpffs.arg()]).expect("detach");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!setup.bpffs.path.exists(), "nothing pinned is left");
    for ifname in ["da", "db", "dc"] {
        assert_eq!(setup.programs_on(ifname), (0, 0, 0), "{ifname} is bare");
    }
}

#[test]
fn incompatible_pinned_maps_are_refused() {
    require_kernel!();
    let setup = Setup::new();
    vpc_agent::datapath::pin::ensure_bpffs(&setup.bpffs.path).expect("bpffs dir");
    // A CONFIG map with another value size, as an older layout would have left it.
    let old: aya::maps::Array<aya::maps::MapData, [u8; 8]> =
        aya::maps::Array::create(1, 0).expect("create map");
    old.pin(setup.bpffs.path.join("CONFIG")).expect("pin");
    let mut setup = setup;
    let mut agent = setup.spawn();
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(2));
    let log = agent.log();
    assert!(
        log.contains("incompatible") && log.contains("value size 8, expected 16"),
        "{log}"
    );
    for ifname in ["da", "db", "dc"] {
        assert_eq!(setup.programs_on(ifname), (0, 0, 0), "nothing attached");
    }
}

#[test]
fn an_interface_that_comes_back_is_reattached() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    // Re-create dc (new ifindex), as a driver reload or a container restart would.
    let router = &setup.topology.router;
    let host = setup.host("dc");
    router.ip(&["link", "del", "dc"]).expect("del");
    vpc_tests::netns::veth(router, "dc", host, "eth0").expect("veth");
    host.ip(&["addr", "add", "10.30.3.10/24", "dev", "eth0"])
        .expect("addr");
    host.ip(&["route", "add", "default", "via", "10.30.3.1"])
        .expect("route");
    agent
        .wait_for("applied\" generation=2", 1, WAIT)
        .expect("re-applied");
    agent
        .wait_for("attached program=vpc_tc_egress interface=dc", 2, WAIT)
        .expect("re-attached");
    assert_eq!(setup.programs_on("dc"), (0, 1, 1));
    let stream = PingStream::start(setup.host("da"), C, 20, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 20, "the new dc forwards");
}

#[test]
fn a_restart_with_a_definition_that_drops_an_interface_detaches_it() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    assert_eq!(setup.programs_on("dc"), (0, 1, 1));
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
    // Subnet c (interface dc) and its instance removed.
    let without_c: String = definition(0)
        .lines()
        .filter(|l| !l.contains("subnet: c") && !l.contains("name: c,"))
        .map(|l| format!("{l}\n"))
        .collect();
    setup.scratch.write("vpc.yaml", &without_c).expect("write");
    let again = setup.start();
    let log = again.log();
    assert_eq!(
        log.matches("detached program=").count(),
        2,
        "dc's two links (TC ingress and egress: no XDP on a veth) unpinned: {log}"
    );
    assert_eq!(setup.programs_on("dc"), (0, 0, 0), "dc is left alone");
    for ifname in ["da", "db"] {
        assert_eq!(
            setup.programs_on(ifname),
            (0, 1, 1),
            "{ifname} still enforced"
        );
    }
    assert_eq!(setup.status()["attached"].as_array().map(Vec::len), Some(4));
    // da -> db is still denied (b's ACL).
    let stream = PingStream::start(setup.host("da"), B, 20, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 0, "deny still enforced");
}

/// Waits until the log holds one of `needles`; which one.
fn wait_any(agent: &Agent, needles: &[&str], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let log = agent.log();
        if let Some(i) = needles.iter().position(|n| log.contains(n)) {
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_half_written_file_is_not_applied() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    // The new definition (one more instance) written in two steps: first everything up to
    // the instances (valid alone, and it would unregister hc: da -> C dropped), then the rest.
    let full = definition(1);
    let (head, tail) = full.split_at(full.find("    instances:").expect("instances"));
    assert!(vpc_agent::config::load_str("head.yaml", head).is_ok());
    let stream = PingStream::start(setup.host("da"), C, 300, "0.01").expect("ping");
    std::thread::sleep(Duration::from_millis(300));
    setup
        .scratch
        .write("vpc.yaml", head)
        .expect("write the head");
    let seen = wait_any(
        &agent,
        &[
            "reload: the definition changed",
            "reload: applied generation=2",
        ],
        WAIT,
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(setup.config())
        .expect("open");
    file.write_all(tail.as_bytes()).expect("append the rest");
    drop(file);
    agent
        .wait_for("msg=\"reload: applied\" generation=", 1, WAIT)
        .expect("applied");
    std::thread::sleep(Duration::from_millis(1200));
    let (sent, received) = stream.finish().expect("ping summary");
    eprintln!("half-written file: agent saw {seen:?}; da -> C {sent} sent, {received} received");
    assert_eq!(
        received, sent,
        "no packet lost to a half-written definition"
    );
    assert_eq!(
        setup.status()["generation"],
        2,
        "one generation applied: the whole file\n{}",
        agent.log()
    );
}

#[test]
fn a_reload_naming_a_missing_interface_is_applied_when_it_appears() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    let with_d = definition(0).replace(
        "    network_acls:",
        "      - { name: d, cidr: 10.30.4.0/24, interface: dd }\n    network_acls:",
    ) + "      - { name: hd, subnet: d, private_ip: 10.30.4.10 }\n";
    setup.scratch.write("vpc.yaml", &with_d).expect("write");
    agent
        .wait_for(
            "interfaces named by the definition are missing: dd",
            1,
            WAIT,
        )
        .expect("reported");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        setup.status()["generation"],
        1,
        "the running policy stays meanwhile"
    );

    let router = &setup.topology.router;
    let appeared = Instant::now();
    let _host = Host::new("d", router, "dd", "10.30.4.10/24", "10.30.4.1").expect("host d");
    let enforced = loop {
        if programs_on(router, "dd") == (0, 1, 1) {
            break Some(appeared.elapsed());
        }
        if appeared.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("interface dd appeared: enforced after {enforced:?}");
    let enforced = enforced.unwrap_or_else(|| panic!("dd never enforced:\n{}", agent.log()));
    assert!(
        enforced <= Duration::from_secs(2),
        "dd enforced after {enforced:?}"
    );
    assert!(
        agent.log().contains("applied\" generation=2"),
        "{}",
        agent.log()
    );
    let stream = PingStream::start(setup.host("da"), "10.30.4.10", 20, "0.01").expect("ping");
    assert_eq!(
        stream.finish().expect("ping").1,
        20,
        "da -> hd under the new policy"
    );
}

#[test]
fn a_definition_path_that_blocks_neither_wedges_nor_stops_the_agent() {
    require_kernel!();
    let mut setup = Setup::new();
    let mut agent = setup.start();
    // A FIFO renamed over the definition: opening it for reading would block.
    let fifo = setup.scratch.dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::rename(&fifo, setup.config()).expect("rename");
    agent
        .wait_for("not a regular file (a FIFO)", 1, WAIT)
        .expect("reported");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        agent.log().matches("not a regular file").count(),
        1,
        "reported once, not at every poll"
    );
    let stream = PingStream::start(setup.host("da"), B, 10, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 0, "deny still enforced");
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("SIGTERM handled"), Some(0));
}

/// README: "validating or loading a definition that fills ROUTES takes at most 96 MiB".
const ROUTES_FILE_MAX_RSS_KIB: u64 = 96 << 10;

#[test]
fn a_definition_filling_routes_loads_within_the_stated_memory() {
    require_kernel!();
    let mut setup = Setup::new();
    // A route table (used by no subnet) of /32 blackhole routes, as many as fill ROUTES with
    // the implicit local entries of every table.
    let with_routes = |n: u32| {
        let empty = if n == 0 { " []" } else { "" };
        let mut yaml = definition(0).replace(
            "    network_acls:",
            &format!(
                "    route_tables:\n      - name: big\n        routes:{empty}\n    network_acls:"
            ),
        );
        let at = yaml.find("    network_acls:").expect("acls");
        let routes: String = (0..n)
            .map(|i| {
                format!(
                    "          - {{ destination: 100.{}.{}.{}/32, target: blackhole }}\n",
                    64 + (i >> 16),
                    (i >> 8) & 255,
                    i & 255
                )
            })
            .collect();
        yaml.insert_str(at, &routes);
        yaml
    };
    let base = vpc_agent::config::load_str("base.yaml", &with_routes(0)).expect("valid");
    let ifindex = |name: &str| {
        ["da", "db", "dc"]
            .iter()
            .position(|n| *n == name)
            .map(|i| i as u32 + 1)
    };
    let locals = vpc_agent::compile::compile(&base, 0, &ifindex)
        .expect("compiles")
        .routes
        .len() as u32;
    let n = vpc_common::capacity::ROUTES - locals;
    setup
        .scratch
        .write("vpc.yaml", &with_routes(n))
        .expect("write");
    let mut agent = setup.spawn();
    agent
        .wait_for("running config=", 1, Duration::from_secs(120))
        .expect("agent runs");
    let took = agent.started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).expect("status");
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    eprintln!(
        "agent start with {n} routes ({locals} local entries): {took:?}, peak RSS {hwm_kib} KiB"
    );
    let fill = setup.status();
    let routes = fill["maps"]
        .as_array()
        .and_then(|maps| maps.iter().find(|m| m["name"] == "ROUTES"))
        .map(|m| m["entries"].clone());
    assert_eq!(
        routes,
        Some(serde_json::json!(vpc_common::capacity::ROUTES)),
        "one generation fills ROUTES: {fill}"
    );
    assert!(
        hwm_kib <= ROUTES_FILE_MAX_RSS_KIB,
        "peak RSS {hwm_kib} KiB over the {ROUTES_FILE_MAX_RSS_KIB} KiB README states"
    );
    let stream = PingStream::start(setup.host("da"), C, 10, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 10, "policy enforced");
}

#[test]
fn an_agent_refused_from_another_directory_leaves_nothing_behind() {
    require_kernel!();
    let mut setup = Setup::new();
    let _agent = setup.start();
    // A second agent on the same interfaces from another bpffs directory: the interfaces
    // already carry the first agent's programs, so it is refused (exit 2).
    let other = Bpffs::new().expect("bpffs dir");
    let log = setup.scratch.dir.join("other.log");
    let mut second =
        Agent::spawn(&setup.topology.router, &setup.config(), &other, log, &[]).expect("spawn");
    // It loads and verifies the programs before it finds the interfaces taken: as long as a
    // start (see `Agent::wait_running`).
    assert_eq!(
        second.wait_exit(Duration::from_secs(60)).expect("refused"),
        Some(2),
        "{}",
        second.log()
    );
    let left: Vec<_> = std::fs::read_dir(&other.path)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty() && !other.path.exists(),
        "nothing pinned is left in {}: {left:?}\n{}",
        other.path.display(),
        second.log()
    );
    for ifname in ["da", "db", "dc"] {
        assert_eq!(
            setup.programs_on(ifname),
            (0, 1, 1),
            "{ifname}: the first agent's programs only"
        );
    }
    setup.assert_enforcing("with the first agent");
}
