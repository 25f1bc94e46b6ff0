//! The command line as the README documents it ("Exit status"): exit status 0 success, 1 user error (bad
//! file, bad argument), 2 environment error (nothing pinned, interface missing), for every
//! subcommand on each error class it can hit without a kernel; and the log line format (logfmt,
//! `<N>` syslog priorities when stderr is the journal stream).

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vpc-agent")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run vpc-agent")
}

fn code(args: &[&str]) -> i32 {
    let out = run(args);
    out.status
        .code()
        .unwrap_or_else(|| panic!("{args:?} killed"))
}

/// A fresh scratch directory under the target dir (no temp dir races between tests).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// `trace` of a ping from 10.30.1.1 to 10.30.1.2, with `option VALUE` (--config or --bpffs).
fn trace_ping<'a>(option: &'a str, value: &'a str) -> [&'a str; 9] {
    [
        "trace",
        option,
        value,
        "--from",
        "10.30.1.1",
        "--to",
        "10.30.1.2",
        "--proto",
        "icmp",
    ]
}

const VALID: &str = "vpcs:
  - name: v
    cidr_blocks: [10.30.0.0/16]
    subnets:
      - { name: a, cidr: 10.30.1.0/24, interface: vt-no-such-if0 }
";

#[test]
fn bad_arguments_are_user_errors_on_every_subcommand() {
    for args in [
        &["--bogus"][..],
        &[],
        &["no-such-command"],
        &["validate"],
        &["validate", "--bogus", "f"],
        &["run"],
        &["run", "--config", "f", "--xdp-mode", "fast"],
        &["run", "--config", "f", "--metrics", "not-an-address"],
        &["status", "--bogus"],
        &["flows", "--json=3"],
        &["trace", "--from", "10.0.0.1"],
        &["trace", "--from", "x", "--to", "10.0.0.2", "--proto", "tcp"],
        &["detach", "--bogus"],
        &["conntrack", "--bogus"],
        &["nat", "--bogus"],
        &["routes", "--bogus"],
        &["import", "cloudformation"],
    ] {
        assert_eq!(code(args), 1, "vpc-agent {args:?}");
    }
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(code(&["--help"]), 0);
    assert_eq!(code(&["--version"]), 0);
    assert_eq!(code(&["status", "--help"]), 0);
}

#[test]
fn bad_files_are_user_errors() {
    let dir = scratch("files");
    let missing = dir.join("missing.yaml");
    let invalid = dir.join("invalid.yaml");
    std::fs::write(&invalid, "vpcs: [ {name: v\n").expect("write");
    for file in [&missing, &invalid] {
        let f = file.to_str().expect("utf-8");
        assert_eq!(code(&["validate", f]), 1, "validate {f}");
        assert_eq!(
            code(&["run", "--config", f, "--bpffs", "/tmp/x"]),
            1,
            "run {f}"
        );
        let trace = trace_ping("--config", f);
        assert_eq!(code(&trace), 1, "trace {f}");
        assert_eq!(code(&["import", "cloudformation", f]), 1, "import {f}");
        assert_eq!(code(&["import", "describe", f]), 1, "import describe {f}");
    }
    assert_eq!(
        code(&["run", "--config", "f", "--flow-log", "syslog"]),
        1,
        "a bad --flow-log destination"
    );
}

#[test]
fn environment_errors_exit_2() {
    let dir = scratch("env");
    let config = dir.join("vpc.yaml");
    std::fs::write(&config, VALID).expect("write");
    let config = config.to_str().expect("utf-8");
    let nothing = dir.join("not-pinned");
    let nothing = nothing.to_str().expect("utf-8");
    // The definition is valid; its interface does not exist.
    let out = run(&["run", "--config", config, "--bpffs", nothing]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("vt-no-such-if0"));
    for command in ["status", "flows", "conntrack", "nat", "routes"] {
        for json in [false, true] {
            let mut args = vec![command, "--bpffs", nothing];
            if json {
                args.push("--json");
            }
            let out = run(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("nothing is pinned"),
                "{args:?}: {out:?}"
            );
        }
    }
    // trace without --config reads the agent record: none there is a user error (no file).
    let trace = trace_ping("--bpffs", nothing);
    assert_eq!(code(&trace), 1);
}

#[test]
fn validate_and_trace_succeed_on_a_valid_file() {
    let dir = scratch("ok");
    let config = dir.join("vpc.yaml");
    std::fs::write(&config, VALID).expect("write");
    let config = config.to_str().expect("utf-8");
    assert_eq!(code(&["validate", config]), 0);
    let trace = trace_ping("--config", config);
    assert_eq!(code(&trace), 0);
}

/// `detach` of a directory where nothing was ever pinned logs one info line; its exact bytes.
fn detach_log(dir: &Path, journal: bool) -> (i32, String) {
    let log = dir.join("stderr");
    let file = std::fs::File::create(&log).expect("log file");
    let meta = file.metadata().expect("stat");
    let mut cmd = Command::new(bin());
    cmd.args(["detach", "--bpffs"])
        .arg(dir.join("never"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        cmd.env_remove("JOURNAL_STREAM");
    }
    let status = cmd.status().expect("run");
    (
        status.code().expect("exit code"),
        std::fs::read_to_string(&log).expect("read log"),
    )
}

#[test]
fn log_lines_carry_a_syslog_priority_on_the_journal_stream() {
    let dir = scratch("journal");
    let (code, text) = detach_log(&dir, true);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text,
        format!(
            "<6>level=info msg=\"nothing to detach\" bpffs={}\n",
            dir.join("never").display()
        )
    );
}

#[test]
fn log_lines_are_logfmt_with_a_timestamp_elsewhere() {
    let dir = scratch("logfmt");
    let (code, text) = detach_log(&dir, false);
    assert_eq!(code, 0, "{text}");
    let line = text.strip_suffix('\n').expect("one line");
    let (ts, rest) = line
        .strip_prefix("ts=")
        .and_then(|l| l.split_once(' '))
        .expect("ts= first");
    // RFC 3339, UTC, milliseconds: 2026-12-01T23:15:40.123Z
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    assert_eq!(
        rest,
        format!(
            "level=info msg=\"nothing to detach\" bpffs={}",
            dir.join("never").display()
        )
    );
    // A JOURNAL_STREAM naming another file (stderr redirected away from journald) is ignored.
    let log = dir.join("stderr");
    let other = std::fs::metadata(bin()).expect("stat");
    let out = Command::new(bin())
        .args(["detach", "--bpffs"])
        .arg(dir.join("never"))
        .env("JOURNAL_STREAM", format!("{}:{}", other.dev(), other.ino()))
        .stderr(std::fs::File::create(&log).expect("log"))
        .status()
        .expect("run");
    assert!(out.success());
    assert!(
        std::fs::read_to_string(&log)
            .expect("read")
            .starts_with("ts=")
    );
}

/// `trace` on the README's dual-stack example with these arguments after the file.
fn trace_ipv6(args: &[&str]) -> Output {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ipv6-getting-started.yaml"
    );
    let nothing = scratch("trace-ipv6").join("not-pinned");
    let mut all = vec![
        "trace",
        "--config",
        example,
        "--bpffs",
        nothing.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn trace_takes_ipv6_and_says_what_the_datapath_does_with_it() {
    let web = "2001:db8:1234:1a00::10";
    // The instance's own address to the internet: on its port, source checked, the rules
    // and the route to the internet gateway, out of its uplink untranslated.
    let out = trace_ipv6(&[
        "--from",
        web,
        "--to",
        "2001:db8::1",
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text.contains("entering on eni-web1"), "{text}");
    assert!(
        text.contains("source check in subnet public: pass"),
        "{text}"
    );
    assert!(text.contains("::/0 -> internet gateway igw"), "{text}");
    assert!(
        text.contains("verdict: DELIVER out of uplink0 as 2001:db8:1234:1a00::10 -> 2001:db8::1"),
        "{text}"
    );
    // From the internet to app-1, whose subnet routes the internet to the egress-only
    // gateway: a new connection is unsolicited.
    let out = trace_ipv6(&[
        "--from",
        "2001:db8::1",
        "--to",
        "2001:db8:1234:1a01::10",
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text.contains("entering on uplink0"), "{text}");
    assert!(
        text.contains("::/0 -> egress-only internet gateway eigw"),
        "{text}"
    );
    assert!(
        text.contains("verdict: DROP (uplink_unsolicited)"),
        "{text}"
    );
    // To app-1, whose group admits web's members on 443: forwarded out of app-1's port.
    let out = trace_ipv6(&[
        "--from",
        web,
        "--to",
        "2001:db8:1234:1a01::10",
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.contains("security groups of app-1, inbound: allowed by group app rule 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "verdict: DELIVER out of eni-app1 as 2001:db8:1234:1a00::10 -> 2001:db8:1234:1a01::10"
        ),
        "{text}"
    );
    // JSON: a ping from a link-local address to all routers is answered by the router.
    let out = trace_ipv6(&[
        "--from",
        "fe80::1",
        "--to",
        "ff02::2",
        "--proto",
        "icmpv6",
        "--ingress",
        "eni-web1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["ingress"], "eni-web1");
    assert_eq!(json["kernel"], serde_json::Value::Null);
    assert_eq!(
        json["evaluator"]["outcome"]["verdict"], "answered",
        "{json}"
    );
    let hops = json["evaluator"]["hops"].as_array().expect("hops");
    assert!(
        hops[1]
            .as_str()
            .is_some_and(|h| h.contains("echo request to the router")),
        "{json}"
    );
    // A source web-1 does not have, on its port: spoofed.
    let out = trace_ipv6(&[
        "--from",
        "2001:db8:1234:1a00::77",
        "--to",
        "2001:db8::1",
        "--proto",
        "udp",
        "--ingress",
        "eni-web1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict: DROP (spoofed)"), "{out:?}");
    // From the internet, on the uplink: to web-1 by the internet gateway, past its group
    // (HTTPS from anywhere).
    let out = trace_ipv6(&[
        "--from",
        "2001:db8::1",
        "--to",
        web,
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("entering on uplink0"), "{out:?}");
    assert!(
        text.contains("verdict: DELIVER out of eni-web1 as 2001:db8::1 -> 2001:db8:1234:1a00::10"),
        "{out:?}"
    );
    // To an address outside the VPC: the router's own.
    let out = trace_ipv6(&[
        "--from",
        "2001:db8::1",
        "--to",
        "2001:db8::2",
        "--proto",
        "tcp",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("entering on uplink0"), "{out:?}");
    assert!(text.contains("verdict: TO ROUTER"), "{out:?}");
    // Errors name the problem.
    for (args, problem) in [
        (
            &[
                "--from",
                "10.0.0.10",
                "--to",
                "2001:db8::1",
                "--proto",
                "tcp",
            ][..],
            "different address families",
        ),
        (
            &["--from", web, "--to", "2001:db8::1", "--proto", "icmp"],
            "use --proto icmpv6",
        ),
        (
            &[
                "--from",
                "10.0.0.10",
                "--to",
                "192.0.2.1",
                "--proto",
                "icmpv6",
            ],
            "use --proto icmp",
        ),
        (
            &[
                "--from",
                web,
                "--to",
                "2001:db8::1",
                "--proto",
                "tcp",
                "--reply",
            ],
            "the kernel's trace mode, which it asks, takes IPv4 only",
        ),
        (
            &[
                "--from",
                "2001:db8::zz",
                "--to",
                "2001:db8::1",
                "--proto",
                "tcp",
            ],
            "--from",
        ),
    ] {
        let out = trace_ipv6(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
    }
}

/// A classic pcap (microseconds, Ethernet) of `frames`.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Ethernet + IPv6 from `src` to `dst`, next header `next`, hop limit `hop`, then `rest`.
fn ipv6_frame(src: &str, dst: &str, next: u8, hop: u8, rest: &[u8]) -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0,
    ];
    f.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, hop]);
    f.extend_from_slice(&src.parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(rest);
    f
}

#[test]
fn a_capture_s_ipv6_frames_are_replayed_through_the_evaluator() {
    let web = "2001:db8:1234:1a00::10";
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(
        &"2001:db8:1234:1a00::99"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    let tcp = [
        0x9c, 0x40, 1, 187, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let frames = vec![
        // For another address of the /64: answered.
        ipv6_frame("fe80::1", "ff02::1:ff00:99", 58, 255, &ns),
        // The instance's own address to the internet: out of the uplink.
        ipv6_frame(web, "2001:db8::1", 6, 64, &tcp),
        // Another instance's address on web-1's port: spoofed.
        ipv6_frame("2001:db8:1234:1a01::20", "2001:db8::1", 6, 64, &tcp),
        // Behind a destination options header: not modelled, skipped.
        ipv6_frame(web, "2001:db8::1", 60, 64, &[6, 0, 1, 4, 0, 0, 0, 0]),
    ];
    let dir = scratch("trace-pcap6");
    let path = dir.join("six.pcap");
    std::fs::write(&path, pcap(&frames)).expect("write capture");
    let out = trace_ipv6(&[
        "--pcap",
        path.to_str().expect("utf-8"),
        "--ingress",
        "eni-web1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0]
            .starts_with("    1 [fe80::1]:0 -> [ff02::1:ff00:99]:0 icmpv6 on eni-web1: ANSWERED"),
        "{text}"
    );
    assert!(
        lines[1].contains(
            "DELIVER out of uplink0 as 2001:db8:1234:1a00::10 -> 2001:db8::1 (evaluator)"
        ),
        "{text}"
    );
    assert!(lines[2].contains("DROP (spoofed) (evaluator)"), "{text}");
    assert!(text.contains("summary: 3 packets replayed"), "{text}");
    assert!(text.contains(", 1 skipped"), "{text}");
    for key in ["answered: 1", "deliver: 1", "drop spoofed: 1"] {
        assert!(text.contains(key), "{key}: {text}");
    }
}
