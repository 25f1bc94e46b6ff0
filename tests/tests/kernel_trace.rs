//! `vpc-agent trace` against a running agent: the attached TC ingress program in trace mode.
//!
//! - every row of the table: the trace's verdict, drop reason and output bytes are those of a
//!   BPF_PROG_TEST_RUN of the same frame through the TC ingress program (a datapath of the
//!   same definition loaded by the test), and the evaluator agrees (exit 0) except where the
//!   row says it cannot (exit 3, the disagreement printed);
//! - no map changes: every pinned map is dumped (bpftool) before and after each trace, with
//!   the agent paused (SIGSTOP) so that its own interval work does not write meanwhile;
//! - `--reply` traces the return packet of a live NAT connection, read-only;
//! - a tcpdump capture of real traffic replays (`--pcap`) with the verdicts the traffic met:
//!   the replay's drops by reason equal the live drop counters' growth.

use std::{collections::BTreeMap, path::Path, thread, time::Duration};

use serde_json::Value;
use vpc_tests::{
    agent::{Agent, Bpffs, Scratch, agent_bin, cli},
    require_kernel,
    testrun::{TcVerdict, run_tc},
    topology::Topology,
};

const FIXTURE: &str = include_str!("../fixtures/nat.yaml");

/// Maps that a trace-mode run writes and that are no state: the trace buffer itself, the
/// per-CPU packet clock (`NOW`, set by every run at its entry), and the per-CPU scratch slots
/// (`CT_SCRATCH`: trace mode advances a copy of the connection there; `ICMP_SCRATCH`: where
/// an ICMP error or RST is built; `NEIGH_SCRATCH`: the next hop handed to the redirect).
const NOT_STATE: [&str; 5] = [
    "TRACE",
    "NOW",
    "CT_SCRATCH",
    "ICMP_SCRATCH",
    "NEIGH_SCRATCH",
];

struct Setup {
    topology: Topology,
    bpffs: Bpffs,
    _scratch: Scratch,
    agent: Agent,
}

impl Setup {
    fn start() -> Self {
        let topology = Topology::build(FIXTURE, None, false).expect("topology");
        let scratch = Scratch::new().expect("scratch");
        let config = scratch.write("vpc.yaml", FIXTURE).expect("write");
        let bpffs = Bpffs::new().expect("bpffs");
        let log = scratch.dir.join("agent.log");
        let mut agent = Agent::spawn(&topology.router, &config, &bpffs, log, &[]).expect("spawn");
        agent.wait_running().expect("agent runs");
        Self {
            topology,
            bpffs,
            _scratch: scratch,
            agent,
        }
    }

    /// `vpc-agent trace ARGS --json --bpffs DIR` in the router namespace: (exit code, JSON).
    fn trace(&self, args: &[&str]) -> (i32, Value) {
        let mut all: Vec<&str> = vec!["trace", "--json", "--bpffs", self.bpffs.arg()];
        all.extend_from_slice(args);
        let out = in_router(&self.topology, &all);
        let code = out.status.code().unwrap_or(-1);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "trace {args:?} (exit {code}): {e}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, json)
    }

    /// Every pinned map's dump, by name.
    fn dump_maps(&self) -> BTreeMap<String, String> {
        let mut maps = BTreeMap::new();
        for entry in std::fs::read_dir(&self.bpffs.path).expect("bpffs dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if NOT_STATE.contains(&name.as_str()) {
                continue;
            }
            maps.insert(name, dump(&path));
        }
        assert!(maps.contains_key("CONNTRACK") && maps.contains_key("DROP_COUNTERS"));
        maps
    }

    /// Runs `trace ARGS` with the agent paused and every map dumped before and after; a map
    /// that changed fails the test. A host's own spontaneous packets (IPv6 neighbour
    /// discovery) are counted by the live program too, so a changed dump is retried twice: a
    /// side effect of the trace changes it every time.
    fn trace_read_only(&self, args: &[&str]) -> (i32, Value) {
        let mut last = Vec::new();
        for _ in 0..3 {
            self.agent.signal("STOP").expect("SIGSTOP");
            let before = self.dump_maps();
            let result = self.trace(args);
            let after = self.dump_maps();
            self.agent.signal("CONT").expect("SIGCONT");
            let changed: Vec<String> = before
                .iter()
                .filter(|(name, dump)| after.get(*name) != Some(dump))
                .map(|(name, _)| name.clone())
                .collect();
            if changed.is_empty() {
                return result;
            }
            last = changed;
            thread::sleep(Duration::from_millis(300));
        }
        panic!("trace {args:?} changed maps {last:?}");
    }
}

/// `vpc-agent ARGS` in the router's network namespace (nsenter, as the agent runs: `ip
/// netns exec` would mount a /sys without the bpffs).
fn in_router(topo: &Topology, args: &[&str]) -> std::process::Output {
    std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", topo.router.name()))
        .arg(agent_bin())
        .args(args)
        .output()
        .expect("run vpc-agent")
}

fn dump(path: &Path) -> String {
    let out = std::process::Command::new("bpftool")
        .args(["map", "dump", "pinned"])
        .arg(path)
        .output()
        .expect("bpftool");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// (ingress, from, to, proto, dport, flags, expected: "deliver IF SRC DST" / "drop REASON" /
/// "to_host", exit code)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u16,
    &'static str,
    &'static str,
    i32,
);

const ROWS: [Row; 14] = [
    (
        "pub0",
        "10.0.0.10",
        "192.0.2.100",
        "tcp",
        443,
        "S",
        "deliver up0 198.51.100.20 192.0.2.100",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "192.0.2.100",
        "tcp",
        443,
        "S",
        "deliver up0 198.51.100.10 192.0.2.100",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "192.0.2.100",
        "udp",
        123,
        "",
        "drop acl_outbound",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "10.0.0.10",
        "tcp",
        22,
        "S",
        "drop security_group_inbound",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "10.0.0.10",
        "tcp",
        80,
        "S",
        "deliver pub0 10.0.1.10 10.0.0.10",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "10.0.0.10",
        "tcp",
        25,
        "S",
        "drop acl_inbound",
        0,
    ),
    (
        "priv0",
        "10.0.1.99",
        "10.0.0.10",
        "tcp",
        80,
        "S",
        "drop spoofed",
        0,
    ),
    (
        "up0",
        "203.0.113.50",
        "198.51.100.20",
        "tcp",
        80,
        "S",
        "deliver pub0 203.0.113.50 10.0.0.10",
        0,
    ),
    (
        "up0",
        "203.0.113.50",
        "198.51.100.20",
        "tcp",
        22,
        "S",
        "drop security_group_inbound",
        0,
    ),
    (
        "up0",
        "203.0.113.50",
        "10.0.1.10",
        "tcp",
        22,
        "S",
        "drop uplink_unsolicited",
        0,
    ),
    (
        "up0",
        "203.0.113.50",
        "198.51.100.10",
        "tcp",
        80,
        "S",
        "drop nat_unsolicited",
        0,
    ),
    (
        "pub0",
        "10.0.0.10",
        "192.0.2.100",
        "icmp",
        0,
        "",
        "deliver up0 198.51.100.20 192.0.2.100",
        0,
    ),
    (
        "priv0",
        "10.0.1.10",
        "10.0.1.1",
        "icmp",
        0,
        "",
        "to_host",
        0,
    ),
    // A lone ACK without a connection: the kernel drops it, the (stateless) evaluator, which
    // does not judge TCP flags, delivers it: printed as a disagreement, exit 3.
    (
        "priv0",
        "10.0.1.10",
        "10.0.0.10",
        "tcp",
        80,
        "A",
        "drop invalid_tcp_flags",
        3,
    ),
];

fn expected_text(v: &Value) -> String {
    match v["verdict"].as_str() {
        Some("deliver") => format!(
            "deliver {} {} {}",
            v["interface"].as_str().unwrap_or("?"),
            v["src"].as_str().unwrap_or("?"),
            v["dst"].as_str().unwrap_or("?")
        ),
        Some("drop") => format!("drop {}", v["reason"].as_str().unwrap_or("?")),
        Some("to_host") => "to_host".to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn trace_gives_the_test_run_s_verdict_and_bytes_changes_no_map_and_replays_a_capture() {
    require_kernel!();
    let setup = Setup::start();
    let topo = &setup.topology;
    let prog = topo
        .datapath
        .tc(vpc_agent::datapath::object::programs::TC_INGRESS);
    for (row, (ingress, from, to, proto, dport, flags, expected, code)) in ROWS.iter().enumerate() {
        let (ingress, from, to, proto, dport, flags, expected, code) = (
            *ingress, *from, *to, *proto, *dport, *flags, *expected, *code,
        );
        let dport_text = dport.to_string();
        // A source port of its own: the plain test run below creates connections in the
        // test's datapath, which no other row may meet.
        let sport_text = (41000 + row).to_string();
        let mut args = vec![
            "--from",
            from,
            "--to",
            to,
            "--proto",
            proto,
            "--sport",
            &sport_text,
            "--dport",
            &dport_text,
            "--ingress",
            ingress,
        ];
        if !flags.is_empty() {
            args.extend(["--flags", flags]);
        }
        let (exit, json) = setup.trace_read_only(&args);
        let kernel = &json["kernel"];
        assert_eq!(expected_text(kernel), expected, "row {args:?}: {json:#}");
        assert_eq!(exit, code, "row {args:?} exit: {json:#}");
        if code == 0 {
            assert!(json["disagreement"].is_null(), "{json:#}");
            assert_eq!(
                expected_text(&json["evaluator"]),
                expected,
                "the evaluator agrees: {json:#}"
            );
        } else {
            assert!(json["disagreement"].is_string(), "{json:#}");
        }
        if let Some(out) = kernel["output"].as_object()
            && expected.starts_with("deliver")
        {
            assert_eq!(out["ttl"], 63, "TTL decremented: {json:#}");
            assert_eq!(out["checksums_valid"], true, "{json:#}");
        }
        // The same frame through a plain test run of the TC ingress program (the test's own
        // datapath of the same definition).
        let frame = unhex(json["input_hex"].as_str().expect("input"));
        let ifindex = topo.port_named(ingress).ifindex;
        let before = topo.datapath.drop_counters().expect("counters");
        let run = {
            let _inside = topo.router.enter().expect("router namespace");
            run_tc(prog, &frame, ifindex).expect("test run")
        };
        let after = topo.datapath.drop_counters().expect("counters");
        let grown: Vec<&'static str> = after
            .iter()
            .filter(|(r, n)| before.get(*r).copied().unwrap_or(0) < **n)
            .map(|(r, _)| r.name())
            .collect();
        let action = match run.verdict {
            TcVerdict::Ok => 0,
            TcVerdict::Shot => 2,
            TcVerdict::Redirect => 7,
            TcVerdict::Other(n) => n,
        };
        assert_eq!(kernel["action"], action, "row {args:?}: action {json:#}");
        assert_eq!(
            unhex(kernel["output_hex"].as_str().expect("output")),
            run.output,
            "row {args:?}: the output bytes of the test run"
        );
        // The hosts are live while the test runs: at Linux defaults they send IPv6 (router
        // solicitations, MLD, DAD), which the router drops as `not_ipv4` at any moment. That
        // one reason may grow besides the frame's own; the frame here is always IPv4.
        let expected_reasons: Vec<&str> = kernel["reason"].as_str().into_iter().collect();
        let frame_reasons: Vec<&str> = grown
            .iter()
            .copied()
            .filter(|r| *r != "not_ipv4" || expected_reasons.contains(r))
            .collect();
        assert_eq!(frame_reasons, expected_reasons, "row {args:?}: drop reason");
    }

    // The text form: the steps in the style of the evaluator's trace, both verdicts.
    let text = in_router(
        topo,
        &[
            "trace",
            "--bpffs",
            setup.bpffs.arg(),
            "--from",
            "10.0.1.10",
            "--to",
            "10.0.0.10",
            "--proto",
            "tcp",
            "--dport",
            "25",
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    println!("{text}");
    for needle in [
        "source check of 10.0.1.10: pass",
        "inbound (remote 10.0.1.10): denied by rule 90",
        "verdict: DROP (acl_inbound)",
        "evaluator (reference, from the definition):",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("verdict: DROP (acl_inbound)").count(),
        2,
        "{text}"
    );

    // --reply: a UDP datagram through the NAT gateway, then its return packet traced.
    let jumpbox = &topo.ports["priv0"].ns;
    jumpbox
        .exec(
            "sh",
            &[
                "-c",
                "echo x | socat -u - UDP4-SENDTO:192.0.2.100:5353,sourceport=40001",
            ],
        )
        .expect("socat");
    thread::sleep(Duration::from_millis(200));
    let (exit, json) = setup.trace_read_only(&[
        "--from",
        "10.0.1.10",
        "--to",
        "192.0.2.100",
        "--proto",
        "udp",
        "--sport",
        "40001",
        "--dport",
        "5353",
        "--reply",
    ]);
    assert_eq!(exit, 0, "{json:#}");
    assert_eq!(
        json["ingress"], "up0",
        "the reply enters on the uplink: {json:#}"
    );
    assert_eq!(
        expected_text(&json["kernel"]),
        "deliver priv0 192.0.2.100 10.0.1.10",
        "{json:#}"
    );
    let steps = json["kernel"]["steps"].to_string();
    assert!(steps.contains("reply of a connection"), "{steps}");
    assert_eq!(json["kernel"]["output"]["dport"], 40001, "{json:#}");
    // --reply of a connection that does not exist is refused.
    let (exit, _) = {
        let out = in_router(
            topo,
            &[
                "trace",
                "--bpffs",
                setup.bpffs.arg(),
                "--from",
                "10.0.1.10",
                "--to",
                "192.0.2.100",
                "--proto",
                "udp",
                "--sport",
                "40002",
                "--dport",
                "5353",
                "--reply",
            ],
        );
        (out.status.code(), ())
    };
    assert_eq!(exit, Some(1), "no such connection");

    replay(&setup);
}

fn drops(setup: &Setup) -> BTreeMap<String, u64> {
    let out = cli(&["status", "--json", "--bpffs", setup.bpffs.arg()]).expect("status");
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    status["drops"]
        .as_object()
        .expect("drops")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect()
}

/// tcpdump (inbound: `-Q in`, the frames the program met) on the private subnet's interface while the jumpbox pings the internet (allowed,
/// through NAT), sends NTP (denied by the NAT subnet's ACL out) and UDP to web (denied by its
/// group); the replay's drops equal the live counters' growth, reason by reason.
fn replay(setup: &Setup) {
    let topo = &setup.topology;
    let pcap = setup._scratch.dir.join("priv0.pcap");
    let pcap_text = pcap.to_str().unwrap().to_owned();
    let mut tcpdump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            topo.router.name(),
            "tcpdump",
            "-U",
            "-n",
            "-Q",
            "in",
            "-i",
            "priv0",
        ])
        .args(["-w", &pcap_text, "ip"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    thread::sleep(Duration::from_millis(1500));
    let before = drops(setup);
    let jumpbox = &topo.ports["priv0"].ns;
    jumpbox
        .exec("ping", &["-c", "3", "-i", "0.2", "-W", "1", "192.0.2.100"])
        .expect("ping");
    for (dst, port) in [("192.0.2.100", 123), ("10.0.0.10", 22)] {
        for _ in 0..3 {
            let cmd = format!("echo x | socat -u - UDP4-SENDTO:{dst}:{port}");
            jumpbox.exec("sh", &["-c", &cmd]).expect("socat");
        }
    }
    thread::sleep(Duration::from_millis(1000));
    let after = drops(setup);
    // SAFETY: signalling the tcpdump this test started, by its pid.
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    let _ = tcpdump.wait();
    let (exit, json) = setup.trace(&["--pcap", &pcap_text]);
    assert_eq!(exit, 0, "{json:#}");
    let summary = json["summary"].as_object().expect("summary");
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    for (reason, n) in &after {
        let grown = n - before.get(reason).copied().unwrap_or(0);
        if grown > 0 && reason != "not_ipv4" {
            live.insert(format!("drop {reason}"), grown);
        }
    }
    let replayed: BTreeMap<String, u64> = summary
        .iter()
        .filter(|(k, _)| k.starts_with("drop "))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(live.get("drop acl_outbound"), Some(&3), "live: {live:?}");
    assert_eq!(
        live.get("drop security_group_inbound"),
        Some(&3),
        "live: {live:?}"
    );
    assert_eq!(replayed, live, "replay summary vs live drops: {json:#}");
    assert!(
        summary["deliver"].as_u64().unwrap_or(0) >= 3,
        "the echo requests replay as delivered: {json:#}"
    );
}
