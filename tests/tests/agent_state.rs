//! The agent's record of itself (`AGENT_STATE`) holds what `status`, `flows`, the metrics and
//! `trace` need, whatever its size: a router with 500 interfaces gives a record of more than
//! 4 KiB (it names every interface), which must come back whole from the pinned map, and every
//! reader must work with it. A record too large for the map is refused, never cut short.

use std::collections::BTreeMap;

use serde_json::Value;
use vpc_agent::{
    datapath::{
        Datapath,
        pin::{self, AgentRecord, PinError},
    },
    inspect::{metrics, status},
};
use vpc_common::agent_state::AGENT_STATE_CHUNK_BYTES;
use vpc_tests::{
    agent::{Bpffs, Scratch, cli},
    require_kernel,
};

const FIXTURE: &str = include_str!("../fixtures/nat.yaml");

/// The record of an agent managing `n` interfaces, as the daemon writes it.
fn record(config: &std::path::Path, n: u32) -> AgentRecord {
    AgentRecord {
        config: config.to_owned(),
        pid: std::process::id(),
        xdp_mode: "skb".into(),
        version: "test".into(),
        interfaces: (0..n)
            .map(|i| (1000 + i, format!("eni-port{i:05}")))
            .collect(),
        ..AgentRecord::default()
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = cli(args).expect("run vpc-agent");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "vpc-agent {}: {}\n{stdout}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_record_of_500_interfaces_is_read_back_whole_by_status_flows_metrics_and_trace() {
    require_kernel!();
    let scratch = Scratch::new().expect("scratch");
    let config = scratch.write("vpc.yaml", FIXTURE).expect("definition");
    let bpffs = Bpffs::new().expect("bpffs");
    pin::ensure_bpffs(&bpffs.path).expect("bpffs directory");
    let _datapath = Datapath::open_pinned(&bpffs.path).expect("load and pin the maps");

    // The record's map is pinned with BTF like the others (bpftool names its value's fields).
    let shown = std::process::Command::new("bpftool")
        .args(["-j", "map", "show", "pinned"])
        .arg(bpffs.path.join("AGENT_STATE"))
        .output()
        .expect("bpftool");
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("bpftool JSON");
    assert!(
        shown["btf_id"].as_u64().is_some_and(|id| id > 0),
        "AGENT_STATE carries BTF: {shown}"
    );

    let big = record(&config, 500);
    let bytes = serde_json::to_vec(&big).expect("json").len();
    assert!(bytes > 4096, "the record is {bytes} bytes, more than 4 KiB");
    pin::write_record(&bpffs.path, &big).expect("write the record");
    assert_eq!(
        pin::read_record(&bpffs.path).expect("read the record"),
        Some(big.clone()),
        "the record comes back whole"
    );

    let status: Value =
        serde_json::from_str(&run_ok(&["status", "--json", "--bpffs", bpffs.arg()]))
            .expect("status JSON");
    let named = status["agent"]["interfaces"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    assert_eq!(named, 500, "status shows the agent's 500 interfaces");
    let flows: Value = serde_json::from_str(&run_ok(&["flows", "--json", "--bpffs", bpffs.arg()]))
        .expect("flows JSON");
    assert!(flows.is_array(), "flows lists the live table: {flows}");
    // Without --config, trace reads the definition path from the record.
    let trace = run_ok(&[
        "trace",
        "--bpffs",
        bpffs.arg(),
        "--from",
        "10.0.1.10",
        "--to",
        "203.0.113.50",
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    assert!(
        trace.contains("10.0.1.10"),
        "trace explains the packet: {trace}"
    );
    let collected = status::collect(&bpffs.path).expect("status for the metrics");
    let text = metrics::render(&collected);
    let entries = bytes.div_ceil(AGENT_STATE_CHUNK_BYTES);
    assert!(
        text.contains(&format!("vpc_map_entries{{map=\"AGENT_STATE\"}} {entries}")),
        "the record fills {entries} entries of AGENT_STATE:\n{text}"
    );

    // A shorter record replaces it entirely (nothing of the longer one's tail is read).
    let small = record(&config, 2);
    pin::write_record(&bpffs.path, &small).expect("write the short record");
    assert_eq!(pin::read_record(&bpffs.path).expect("read"), Some(small));

    // One too large for the map is an error and leaves the record as it was.
    let mut huge = record(&config, 0);
    huge.interfaces = (0..20_000)
        .map(|i| (i, format!("{i:015}")))
        .collect::<BTreeMap<_, _>>();
    let err = pin::write_record(&bpffs.path, &huge).expect_err("too large");
    assert!(matches!(err, PinError::StateTooLarge { .. }), "{err}");
    assert_eq!(
        pin::read_record(&bpffs.path).expect("read"),
        Some(record(&config, 2)),
        "the refused write changed nothing"
    );
}
