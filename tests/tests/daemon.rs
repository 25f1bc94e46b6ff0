//! The daemon (`vpc-agent run`) in a router namespace with traffic running: reloads lose no
//! packet of an allowed flow, a denied flow never passes across kill -9 and restart, a restart
//! adopts the pinned links (one program per hook afterwards), the same file applied twice
//! writes nothing, an invalid file keeps the running generation, a second agent on the same
//! directory is refused, detach leaves nothing, incompatible pinned maps are refused.
//!
//! The flows are plain ICMP echo (network ACLs are stateless: subnet b's ACL denies ICMP in).

use std::time::Duration;

use aya::programs::{SchedClassifier, TcAttachType};
use vpc_tests::{
    agent::{Agent, Bpffs, PingStream, Scratch, cli},
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

    /// (XDP programs, tcx ingress programs, tcx egress programs) on router interface `ifname`.
    fn programs_on(&self, ifname: &str) -> (usize, usize, usize) {
        let link = self
            .topology
            .router
            .ip(&["-d", "link", "show", "dev", ifname])
            .expect("ip link");
        let xdp = String::from_utf8_lossy(&link.stdout)
            .matches("prog/xdp id")
            .count();
        let _inside = self.topology.router.enter().expect("enter router");
        let tcx = |side| {
            SchedClassifier::query_tcx(ifname, side)
                .map(|(_, programs)| programs.len())
                .unwrap_or(0)
        };
        (xdp, tcx(TcAttachType::Ingress), tcx(TcAttachType::Egress))
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
    let stream = PingStream::start(setup.host("da"), C, 20, "0.01").expect("ping");
    assert_eq!(
        stream.finish().expect("ping").1,
        20,
        "allowed after SIGTERM"
    );
    let stream = PingStream::start(setup.host("da"), B, 20, "0.01").expect("ping");
    assert_eq!(stream.finish().expect("ping").1, 0, "denied after SIGTERM");

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
    assert!(!log.contains("] attached program"), "no new link: {log}");
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
    vpc_agent::pin::ensure_bpffs(&setup.bpffs.path).expect("bpffs dir");
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
