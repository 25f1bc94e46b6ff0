//! Flow logs with the real agent in a router namespace: exact records for known traffic
//! (ACCEPT seen by both ENIs, REJECT by the destination's inbound ACL), the partial interval
//! flushed on SIGTERM, NODATA for idle ENIs every interval, SKIPDATA when FLOWS is full, and the
//! observability around it: `flows --json`, `status --json` fill levels, `bpftool` field names,
//! the metrics endpoint.
//!
//! Subnets a, b, c (interfaces da, db, dc); b's ACL denies ICMP inbound.

use std::time::Duration;

use vpc_tests::{
    agent::{Agent, Bpffs, Scratch, cli},
    flowlog::{DUMMY_IFINDEX, fill_flows, http_get, records},
    netns::sh,
    require_kernel,
    topology::Topology,
    traffic::ping,
};

const A: &str = "10.30.1.10";
const B: &str = "10.30.2.10";
const C: &str = "10.30.3.10";
const WAIT: Duration = Duration::from_secs(20);
const METRICS: &str = "127.0.0.1:9464";

const DEFINITION: &str = concat!(
    include_str!("../fixtures/three-subnets.yaml"),
    "flow_logs:
  aggregation_interval: 60
  destination: stdout
  format: '${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${flow-direction} ${instance-id}'
"
);

struct Setup {
    topology: Topology,
    bpffs: Bpffs,
    scratch: Scratch,
}

impl Setup {
    fn new() -> Self {
        Self::with(DEFINITION)
    }

    fn with(definition: &str) -> Self {
        let topology = Topology::build(definition, None, false).expect("topology");
        topology
            .router
            .ip(&["link", "set", "lo", "up"])
            .expect("router lo up");
        let scratch = Scratch::new().expect("scratch");
        scratch.write("vpc.yaml", definition).expect("write");
        Self {
            topology,
            bpffs: Bpffs::new().expect("bpffs"),
            scratch,
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.scratch.dir.join("flows.log")
    }

    /// The agent with the flow log in a file and the given interval (ms).
    fn start(&self, interval_ms: u64) -> Agent {
        let dest = format!("file:{}", self.log_path().display());
        let interval = interval_ms.to_string();
        let mut agent = Agent::spawn(
            &self.topology.router,
            &self.scratch.dir.join("vpc.yaml"),
            &self.bpffs,
            self.scratch.dir.join("agent.log"),
            &[
                "--flow-log",
                &dest,
                "--flow-log-interval-ms",
                &interval,
                "--metrics",
                METRICS,
            ],
        )
        .expect("spawn agent");
        agent.wait_running().expect("agent runs");
        agent
    }

    fn host(&self, ifname: &str) -> &vpc_tests::netns::NetNs {
        &self.topology.ports[ifname].ns
    }

    fn json(&self, command: &str) -> serde_json::Value {
        let out = cli(&[command, "--json", "--bpffs", self.bpffs.arg()]).expect(command);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

/// The records (fields from the third on: interface-id ... instance-id) of `interface`.
fn of(records: &[Vec<String>], interface: &str) -> Vec<Vec<String>> {
    records
        .iter()
        .filter(|r| r.get(2).map(String::as_str) == Some(interface))
        .cloned()
        .collect()
}

fn fields(r: &[String], picks: &[usize]) -> Vec<String> {
    picks.iter().map(|&i| r[i].clone()).collect()
}

#[test]
fn known_traffic_gives_exact_records_flushed_on_sigterm() {
    require_kernel!();
    let setup = Setup::new();
    // A long interval: everything lands in the interval SIGTERM flushes.
    let mut agent = setup.start(600_000);
    let a = setup.host("da");
    assert_eq!(ping(a, A, C, 3).expect("ping"), 3, "a -> c allowed");
    assert_eq!(
        ping(a, A, B, 2).expect("ping"),
        0,
        "a -> b denied by b's ACL"
    );

    // Live: flows --json.
    let live = setup.json("flows");
    let live = live.as_array().expect("array");
    let request = live
        .iter()
        .find(|f| f["src"] == A && f["dst"] == C && f["interface"] == "da")
        .unwrap_or_else(|| panic!("no live a -> c flow: {live:?}"));
    assert_eq!(request["packets"], 3);
    assert_eq!(request["action"], "ACCEPT");
    assert_eq!(request["out_interface"], "dc");
    let denied = live
        .iter()
        .find(|f| f["src"] == A && f["dst"] == B)
        .unwrap_or_else(|| panic!("no live a -> b flow: {live:?}"));
    assert_eq!(denied["packets"], 2);
    assert_eq!(denied["action"], "REJECT");
    assert_eq!(denied["reason"], "acl_inbound");

    let table = cli(&["flows", "--bpffs", setup.bpffs.arg()]).expect("flows");
    eprintln!(
        "vpc-agent flows:\n{}",
        String::from_utf8_lossy(&table.stdout)
    );

    // Status: fill levels against capacity (CONNTRACK, NAT_PORTS, FLOWS), drops, conntrack.
    let status = setup.json("status");
    let map = |name: &str| {
        status["maps"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no map {name} in status"))
    };
    assert_eq!(map("FLOWS")["capacity"], 65536);
    assert!(map("FLOWS")["entries"].as_u64().unwrap_or(0) >= 3);
    assert!(map("CONNTRACK")["entries"].as_u64().unwrap_or(0) >= 1);
    assert!(map("NAT_PORTS")["capacity"].as_u64().unwrap_or(0) > 0);
    assert_eq!(status["drops"]["acl_inbound"], 2);
    assert!(status["conntrack"]["created"].as_u64().unwrap_or(0) >= 1);

    // bpftool prints the named fields of the pinned map (BTF).
    let dump = sh(
        "bpftool",
        &[
            "-j",
            "map",
            "dump",
            "pinned",
            &format!("{}/FLOWS", setup.bpffs.arg()),
        ],
    )
    .expect("bpftool");
    let dump = String::from_utf8_lossy(&dump.stdout);
    for field in [
        "\"ifindex\"",
        "\"sport\"",
        "\"action\"",
        "\"packets\"",
        "\"first_ns\"",
        "\"pkt_dst\"",
    ] {
        assert!(
            dump.contains(field),
            "bpftool dump lacks {field}: {dump:.400}"
        );
    }

    let routes = sh(
        "bpftool",
        &[
            "-j",
            "map",
            "dump",
            "pinned",
            &format!("{}/ROUTES", setup.bpffs.arg()),
        ],
    )
    .expect("bpftool");
    let routes = String::from_utf8_lossy(&routes.stdout);
    for field in ["\"table\"", "\"target\"", "\"target_id\""] {
        assert!(
            routes.contains(field),
            "bpftool ROUTES dump lacks {field}: {routes:.400}"
        );
    }

    // Metrics, from inside the router namespace.
    let metrics = http_get(&setup.topology.router, &format!("http://{METRICS}/metrics"))
        .expect("metrics answer");
    for line in [
        "vpc_drops_total{reason=\"acl_inbound\"} 2",
        "vpc_drops_total{reason=\"nat_port_exhausted\"} 0",
        "vpc_map_capacity{map=\"FLOWS\"} 65536",
        "vpc_packets_total{action=\"REJECT\"} 2",
        "vpc_flow_log_records_written_total 0",
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }

    eprintln!("metrics:\n{metrics}");

    // Nothing written before the interval ends; SIGTERM flushes it.
    assert!(records(&setup.log_path()).is_empty());
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
    let all = records(&setup.log_path());
    eprintln!(
        "flow log:\n{}",
        std::fs::read_to_string(setup.log_path()).unwrap_or_default()
    );
    // interface-id srcaddr dstaddr protocol packets action log-status flow-direction instance
    let picks = [2, 3, 4, 7, 8, 12, 13, 14, 15];
    let row = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let icmp = |rs: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rs.iter()
            .filter(|r| r[7] == "1")
            .map(|r| fields(r, &picks))
            .collect()
    };
    assert_eq!(
        icmp(of(&all, "eni-v-ha")),
        // The rejected a -> b pings are hb's (its inbound ACL), as in AWS.
        [
            row("eni-v-ha 10.30.1.10 10.30.3.10 1 3 ACCEPT OK egress ha"),
            row("eni-v-ha 10.30.3.10 10.30.1.10 1 3 ACCEPT OK ingress ha"),
        ],
        "records of ha:\n{all:?}"
    );
    assert_eq!(
        icmp(of(&all, "eni-v-hb")),
        [row(
            "eni-v-hb 10.30.1.10 10.30.2.10 1 2 REJECT OK ingress hb"
        )],
        "records of hb:\n{all:?}"
    );
    assert_eq!(
        icmp(of(&all, "eni-v-hc")),
        [
            row("eni-v-hc 10.30.1.10 10.30.3.10 1 3 ACCEPT OK ingress hc"),
            row("eni-v-hc 10.30.3.10 10.30.1.10 1 3 ACCEPT OK egress hc"),
        ],
        "records of hc:\n{all:?}"
    );
    for r in &all {
        assert_eq!(r[0], "2", "version: {r:?}");
        assert_eq!(r[1], "-", "account-id: {r:?}");
        if r[13] == "OK" {
            // ICMP has no ports: 0 as in AWS; start <= end, both Unix seconds of now-ish.
            assert_eq!((r[5].as_str(), r[6].as_str()), ("0", "0"));
            let (start, end): (u64, u64) =
                (r[10].parse().expect("start"), r[11].parse().expect("end"));
            assert!(start <= end && start > 1_600_000_000, "times: {r:?}");
        }
    }
    assert!(agent.log().contains("flow log: interval ended"));
}

#[test]
fn idle_enis_get_nodata_and_a_full_flows_map_gives_skipdata() {
    require_kernel!();
    let setup = Setup::new();
    let mut agent = setup.start(3000);
    // Two intervals without traffic: NODATA for every ENI each time.
    agent
        .wait_for("flow log: interval ended", 2, WAIT)
        .expect("two intervals");
    let nodata = records(&setup.log_path());
    for eni in ["eni-v-ha", "eni-v-hb", "eni-v-hc"] {
        let n = of(&nodata, eni)
            .iter()
            .filter(|r| r[13] == "NODATA" && r[3] == "-" && r[8] == "-" && r[12] == "-")
            .count();
        assert!(n >= 2, "{eni}: {n} NODATA records:\n{nodata:?}");
    }

    // Right after an interval ends: fill FLOWS, then traffic that cannot be recorded.
    agent
        .wait_for("flow log: interval ended", 3, WAIT)
        .expect("third interval");
    let (inserted, secs) = fill_flows(&setup.bpffs.path, 65_536).expect("fill FLOWS");
    eprintln!("filled FLOWS with {inserted} dummy entries in {secs:.3} s");
    assert!(inserted > 60_000, "FLOWS took only {inserted} entries");
    assert_eq!(ping(setup.host("da"), A, C, 2).expect("ping"), 2);
    let status = setup.json("status");
    assert!(
        status["flows"]["live_skipped"]["da"].as_u64().unwrap_or(0) >= 1,
        "status: {:#}",
        status["flows"]
    );
    agent
        .wait_for("flow log: interval ended", 4, WAIT)
        .expect("fourth interval");
    let all = records(&setup.log_path());
    let skipdata = |iface: &str| {
        of(&all, iface)
            .iter()
            .any(|r| r[13] == "SKIPDATA" && r[3] == "-" && r[8] == "-")
    };
    assert!(skipdata("da"), "no SKIPDATA for da");
    assert!(skipdata("dc"), "no SKIPDATA for dc (the replies)");
    let dummies = of(&all, &format!("if{DUMMY_IFINDEX}")).len();
    assert_eq!(
        dummies, inserted as usize,
        "every dummy entry is one record"
    );
    let log = agent.log();
    let drain = log
        .lines()
        .find(|l| l.contains(&format!("flows={inserted} ")))
        .unwrap_or_else(|| panic!("no drain of {inserted} flows logged:\n{log}"));
    eprintln!("drain of a full map: {drain}");
    let status = setup.json("status");
    assert!(
        status["flows"]["flow_log"]["skipdata_records"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    assert!(
        status["flows"]["flow_log"]["packets_skipped"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
}

#[test]
fn the_sweep_removes_expired_connections_and_counts_them() {
    require_kernel!();
    let definition = format!("{DEFINITION}connection_tracking:\n  icmp_timeout: 1\n");
    let setup = Setup::with(&definition);
    let mut agent = setup.start(600_000);
    assert_eq!(ping(setup.host("da"), A, C, 1).expect("ping"), 1);
    agent
        .wait_for("msg=\"conntrack sweep\" removed=1 ", 1, WAIT)
        .expect("the expired echo connection is swept");
    let status = setup.json("status");
    assert_eq!(status["conntrack"]["swept"], 1, "{:#}", status["conntrack"]);
    assert_eq!(status["conntrack"]["live"], 0);
    assert_eq!(status["conntrack"]["evictions"], 0);
    let metrics = http_get(&setup.topology.router, &format!("http://{METRICS}/metrics"))
        .expect("metrics answer");
    assert!(
        metrics.contains("vpc_conntrack_total{event=\"swept\"} 1"),
        "{metrics}"
    );
    agent.signal("TERM").expect("SIGTERM");
    assert_eq!(agent.wait_exit(WAIT).expect("exit"), Some(0));
}
