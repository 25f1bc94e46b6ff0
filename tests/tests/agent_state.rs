//! The agent's record of itself (`AGENT_STATE`) holds what `status`, `flows`, the metrics and
//! `trace` need, whatever its size: a router with 500 interfaces gives a record of more than
//! 4 KiB (it names every interface), which must come back whole from the pinned map, and every
//! reader must work with it. A record too large for the map is refused, never cut short. And a
//! running agent with as many instance ports as one generation holds (`IFACES`: 256) writes a
//! record of more than 4 KiB that `status`, `flows`, the metrics and `trace` read.

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
    agent::{Agent, Bpffs, Scratch, cli, cli_in},
    flowlog::http_get,
    netns::NetNs,
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

/// `vpc-agent ARGS`, in `ns` when given (where a running agent's interfaces are).
fn run_ok(ns: Option<&NetNs>, args: &[&str]) -> String {
    let out = match ns {
        Some(ns) => cli_in(ns, args),
        None => cli(args),
    }
    .expect("run vpc-agent");
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

/// `status`, `flows` and `trace` (its definition from the record) read the record of `bpffs`:
/// status names `interfaces` interfaces. Returns the status.
fn readers_work(
    ns: Option<&NetNs>,
    bpffs: &Bpffs,
    interfaces: usize,
    from: &str,
    to: &str,
) -> Value {
    let status: Value =
        serde_json::from_str(&run_ok(ns, &["status", "--json", "--bpffs", bpffs.arg()]))
            .expect("status JSON");
    let named = status["agent"]["interfaces"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    assert_eq!(named, interfaces, "status names every interface");
    let flows: Value =
        serde_json::from_str(&run_ok(ns, &["flows", "--json", "--bpffs", bpffs.arg()]))
            .expect("flows JSON");
    assert!(flows.is_array(), "flows lists the live table: {flows}");
    let trace = run_ok(
        ns,
        &[
            "trace",
            "--bpffs",
            bpffs.arg(),
            "--from",
            from,
            "--to",
            to,
            "--proto",
            "tcp",
            "--dport",
            "22",
        ],
    );
    assert!(trace.contains(to), "trace explains the packet: {trace}");
    status
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

    // Without --config, trace reads the definition path from the record.
    let status = readers_work(None, &bpffs, 500, "10.0.1.10", "203.0.113.50");
    assert_eq!(status["agent_running"], Value::Bool(false), "{status}");
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

/// Instance ports of the daemon test: one generation holds 256 interfaces.
const PORTS: u32 = 250;

/// One VPC whose instances each have a router port of their own, `eni-port-NNN`.
fn many_ports() -> String {
    let mut y = String::from(
        "vpcs:\n  - name: many\n    cidr_blocks: [10.0.0.0/16]\n    subnets:\n      \
         - { name: ports, cidr: 10.0.0.0/23 }\n    instances:\n",
    );
    for i in 0..PORTS {
        let ip = 10 + i;
        y.push_str(&format!(
            "      - {{ name: i{i:03}, subnet: ports, interface: eni-port-{i:03}, \
             private_ip: 10.0.{}.{} }}\n",
            ip / 256,
            ip % 256
        ));
    }
    y
}

#[test]
fn a_running_agent_with_250_instance_ports_writes_a_record_every_reader_reads() {
    require_kernel!();
    let router = NetNs::new("st").expect("router namespace");
    // Veth pairs with both ends in the router: nothing sends on them, the agent only needs the
    // ports to exist (the TC program alone on virtual devices, the default mode).
    let batch: String = (0..PORTS)
        .map(|i| {
            format!(
                "link add eni-port-{i:03} type veth peer name peer-{i:03}\n\
                 link set eni-port-{i:03} up\nlink set peer-{i:03} up\n"
            )
        })
        .collect();
    let scratch = Scratch::new().expect("scratch");
    let batch_file = scratch.write("links.batch", &batch).expect("batch file");
    router
        .ip(&["-batch", batch_file.to_str().expect("path")])
        .expect("create the ports");
    let config = scratch
        .write("vpc.yaml", &many_ports())
        .expect("definition");
    let bpffs = Bpffs::new().expect("bpffs");
    const METRICS: &str = "127.0.0.1:9477";
    let log = scratch.dir.join("agent.log");
    let mut agent =
        Agent::spawn(&router, &config, &bpffs, log, &["--metrics", METRICS]).expect("spawn");
    agent
        .wait_for("running config=", 1, std::time::Duration::from_secs(180))
        .expect("the agent runs");

    let record = pin::read_record(&bpffs.path)
        .expect("read the record")
        .expect("the agent wrote its record");
    assert_eq!(
        record.interfaces.len(),
        PORTS as usize,
        "every port is named"
    );
    let bytes = serde_json::to_vec(&record).expect("json").len();
    assert!(bytes > 4096, "the record is {bytes} bytes, more than 4 KiB");

    let status = readers_work(
        Some(&router),
        &bpffs,
        PORTS as usize,
        "10.0.0.10",
        "10.0.0.11",
    );
    assert_eq!(status["agent_running"], Value::Bool(true), "{status}");
    let metrics = http_get(&router, &format!("http://{METRICS}/metrics")).expect("metrics");
    assert!(
        metrics.contains("vpc_config_generation 1"),
        "the metrics answer:\n{metrics}"
    );
    agent.signal("TERM").expect("stop");
    let _ = agent.wait_exit(std::time::Duration::from_secs(30));
}
