//! The agent's output read by the operators' own tools: `promtool check metrics` accepts the
//! metrics exposition (lint rules included), and the Python package `flowlogs-reader` (what
//! existing AWS flow-log tooling uses) parses the flow log records, every record type: ACCEPT and REJECT (OK), NODATA, SKIPDATA, TCP
//! with ports and flags, ICMP, translated traffic through a NAT gateway, with every field AWS
//! defines that the agent writes. Both of the package's readers are used: the CloudWatch Logs
//! one (`FlowRecord.from_cwl_event` with the format's fields) and the S3 one (a header line of
//! field names, `csv.DictReader` with a space delimiter, as `S3FlowLogsReader` reads files).
//!
//! Without a tool (Debian's prometheus package for promtool, `pip install flowlogs-reader`) its
//! test is skipped, except under CI=true, where it fails.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::IpAddr,
    process::{Command, Output, Stdio},
};

use vpc_agent::{
    config::load_str,
    flowlog::{
        Clock, Drained, Names,
        format::{DEFAULT_FLOW_LOG_FIELDS, EXTRA_FLOW_LOG_FIELDS},
        monotonic_ns, records,
    },
    inspect::metrics,
    inspect::status::{ConntrackStats, FlowStatus, MapFill, Status},
};
use vpc_common::{
    DropReason,
    flow::{FLOW_ACCEPT, FLOW_REJECT, FlowKey, FlowStats},
    ip_raw,
};

/// The flow log unit tests' VPC and an instance without traffic.
const YAML: &str = concat!(
    include_str!("fixtures/flowlog.yaml"),
    "      - { name: idle, subnet: b, private_ip: 10.30.2.20 }\n"
);

const SCRIPT: &str = r#"
import csv, io, json, sys
from flowlogs_reader import FlowRecord
fields = sys.argv[1].split()
text = sys.stdin.read()
out = []
reader = csv.DictReader(io.StringIO(text), delimiter=' ')
reader.fieldnames = [f.replace('-', '_') for f in reader.fieldnames]
for line, row in zip(text.splitlines()[1:], reader):
    cwl = FlowRecord.from_cwl_event({'message': line}, [f.replace('-', '_') for f in fields])
    s3 = FlowRecord(row)
    assert cwl == s3, (line, str(cwl), str(s3))
    out.append({k: str(v) for k, v in s3.to_dict().items()})
print(json.dumps(out))
"#;

/// Runs `program ARGS` with `input` on stdin. `None` (skip) when the tool is missing (it
/// cannot start, or `missing` says so from its stderr), except under CI=true, where that
/// fails the test.
fn pipe(program: &str, args: &[&str], input: &str, missing: fn(&str) -> bool) -> Option<Output> {
    let strict = std::env::var_os("CI").is_some();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if !strict => {
            eprintln!("skipped: {program}: {e}");
            return None;
        }
        Err(e) => panic!("{program} is needed (cargo xtask setup): {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect(program);
    if !out.status.success() && missing(&String::from_utf8_lossy(&out.stderr)) {
        assert!(
            !strict,
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "skipped: {program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(out)
}

fn key(ifindex: u32, src: [u8; 4], dst: [u8; 4], ports: (u16, u16), proto: u8) -> FlowKey<IpAddr> {
    FlowKey {
        ifindex,
        src: src.into(),
        dst: dst.into(),
        sport: ports.0,
        dport: ports.1,
        proto,
        action: FLOW_ACCEPT,
        generation: 0,
        _pad: 0,
    }
}

#[test]
fn flowlogs_reader_parses_every_record_type() {
    let config = load_str("t.yaml", YAML).expect("valid");
    let ifindexes = [("da", 2), ("db", 3), ("up", 4)]
        .map(|(n, i)| (n.to_owned(), i))
        .into_iter()
        .collect();
    let names = Names::new(&config, &ifindexes);
    let now = monotonic_ns();
    let stats = |packets: u64, out: u32, pkt: [[u8; 4]; 2], flags: u8, reason: u32| FlowStats {
        packets,
        bytes: packets * 52,
        first_ns: now - 5_000_000_000,
        last_ns: now - 1_000_000_000,
        out_ifindex: out,
        pkt_src: ip_raw(pkt[0]),
        pkt_dst: ip_raw(pkt[1]),
        reason,
        tcp_flags: flags,
        ..FlowStats::default()
    };
    let rejected = FlowKey {
        action: FLOW_REJECT,
        ..key(4, [203, 0, 113, 9], [198, 51, 100, 10], (50000, 22), 6)
    };
    let drained = Drained {
        flows: vec![
            // TCP ha -> hb, a SYN-ACK seen: tcp-flags 18.
            (
                key(2, [10, 30, 1, 10], [10, 30, 2, 10], (40000, 443), 6),
                stats(4, 3, [[10, 30, 1, 10], [10, 30, 2, 10]], 18, 0),
            ),
            // ICMP hb -> the internet through the NAT gateway.
            (
                key(3, [10, 30, 2, 10], [203, 0, 113, 5], (7, 7), 1),
                stats(2, 4, [[198, 51, 100, 5], [203, 0, 113, 5]], 0, 0),
            ),
            // SSH from the internet to ha's public address, rejected by its security group.
            (
                rejected,
                stats(
                    1,
                    0,
                    [[0; 4]; 2],
                    2,
                    DropReason::SecurityGroupInbound as u32,
                ),
            ),
        ],
        skipped: [(3, 9)].into_iter().collect(),
        ..Drained::default()
    };
    let clock = Clock::now();
    let end = clock.unix_now_secs();
    let all = records(&names, &drained, &clock, end - 60, end);
    let fields: Vec<String> = DEFAULT_FLOW_LOG_FIELDS
        .iter()
        .chain(&EXTRA_FLOW_LOG_FIELDS)
        .map(|f| (*f).to_owned())
        .collect();
    let mut text = fields.join(" ") + "\n";
    for r in &all {
        text.push_str(&r.format(&fields));
        text.push('\n');
    }
    let Some(out) = pipe(
        "python3",
        &["-c", SCRIPT, &fields.join(" ")],
        &text,
        |stderr| stderr.contains("No module named 'flowlogs_reader'"),
    ) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{text}");
    let parsed: Vec<BTreeMap<String, String>> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(parsed.len(), all.len(), "every record parsed:\n{text}");
    let find = |interface: &str, status: &str, action: Option<&str>| {
        parsed
            .iter()
            .find(|r| {
                r["interface_id"] == interface
                    && r["log_status"] == status
                    && action.is_none_or(|a| r.get("action").map(String::as_str) == Some(a))
            })
            .unwrap_or_else(|| panic!("no {interface} {status} {action:?} in {parsed:#?}"))
    };
    let tcp = find("eni-v-ha", "OK", Some("ACCEPT"));
    assert_eq!(tcp["version"], "5", "highest version among the fields");
    assert_eq!(tcp["tcp_flags"], "18");
    assert_eq!(tcp["srcport"], "40000");
    assert_eq!(tcp["bytes"], "208");
    assert_eq!(tcp["flow_direction"], "egress");
    assert_eq!(tcp["traffic_path"], "1");
    assert_eq!(tcp["vpc_id"], "v");
    assert_eq!(tcp["subnet_id"], "a");
    assert_eq!(tcp["instance_id"], "ha");
    assert_eq!(tcp["type"], "IPv4");
    let reject = find("eni-v-ha", "OK", Some("REJECT"));
    assert_eq!(reject["dstaddr"], "10.30.1.10");
    assert_eq!(reject["flow_direction"], "ingress");
    let nat = find("eni-v-nat", "OK", Some("ACCEPT"));
    assert_eq!(nat["protocol"], "1");
    assert_eq!(nat["pkt_dstaddr"], "203.0.113.5");
    let nodata = find("eni-v-idle", "NODATA", None);
    assert!(!nodata.contains_key("srcaddr") && !nodata.contains_key("action"));
    let skip = find("db", "SKIPDATA", None);
    assert!(!skip.contains_key("packets"));
}

fn sample_status() -> Status {
    Status {
        bpffs: "/sys/fs/bpf/vpc".into(),
        agent_running: true,
        agent: None,
        layout_version: 1,
        generation: 7,
        active_slot: 1,
        attached: Vec::new(),
        maps: vec![MapFill {
            name: "CONNTRACK",
            entries: 3,
            capacity: 262_144,
        }],
        drops: [("security_group_inbound", 5)].into_iter().collect(),
        drops_by_hook: vec![vpc_agent::inspect::status::HookDrops {
            reason: "security_group_inbound",
            hook: "xdp",
            packets: 5,
            bytes: 420,
        }],
        conntrack: ConntrackStats {
            created: 9,
            live: 3,
            ..Default::default()
        },
        nat: Default::default(),
        icmp_errors: [("time_exceeded", 2)].into_iter().collect(),
        flows: FlowStatus {
            live_skipped: [("da".to_owned(), 2)].into_iter().collect(),
            ..Default::default()
        },
    }
}

#[test]
fn promtool_accepts_the_metrics_exposition() {
    let text = metrics::render(&sample_status());
    assert!(text.contains("vpc_config_generation 7\n"));
    assert!(text.contains("vpc_flow_log_records_lost_total 0\n"));
    let Some(out) = pipe("promtool", &["check", "metrics"], &text, |_| false) else {
        return;
    };
    // promtool exits 0 with lint findings on stderr: any output is a failure.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
