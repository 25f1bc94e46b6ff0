//! deploy/vpc-agent.service: `systemd-analyze verify` accepts it (with the binary path pointed
//! at the built agent), it waits for the agent's readiness, a reload fails on an invalid file
//! before the agent is signalled, and file flow logs have a writable directory.

use std::{path::Path, process::Command};

const UNIT: &str = include_str!("../../deploy/vpc-agent.service");
const INSTALLED: &str = "/usr/local/bin/vpc-agent";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vpc-agent")
}

/// The values of `key=` lines of the unit, in order.
fn values(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("unit-verify");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let unit = dir.join("vpc-agent.service");
    std::fs::write(&unit, UNIT.replace(INSTALLED, bin())).expect("write unit");
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: systemd-analyze: {e}");
            return;
        }
        Err(e) => panic!("systemd-analyze is needed (cargo xtask setup): {e}"),
    };
    // verify exits 0 on directives it ignores: any diagnostic is a failure here.
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_unit_waits_for_readiness_and_reload_validates_first() {
    assert_eq!(values("Type"), ["notify"]);
    assert_eq!(values("NotifyAccess"), ["main"]);
    let start = values("ExecStart");
    let config = start[0]
        .split_whitespace()
        .skip_while(|w| *w != "--config")
        .nth(1)
        .expect("--config");
    let reload = values("ExecReload");
    assert_eq!(reload.len(), 2, "{reload:?}");
    assert_eq!(reload[0], format!("{INSTALLED} validate {config}"));
    assert_eq!(reload[1], "/bin/kill -HUP $MAINPID");
    // The first ExecReload= failing fails the reload: validate exits non-zero on a bad file.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("unit-reload");
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("vpc.yaml");
    std::fs::write(&bad, "vpcs:\n  - { name: v\n").expect("write");
    let status = Command::new(bin())
        .arg("validate")
        .arg(&bad)
        .status()
        .expect("validate");
    assert_eq!(status.code(), Some(1));
    // 1 is a bad definition: restarting does not help.
    assert_eq!(values("RestartPreventExitStatus"), ["1"]);
}

#[test]
fn file_flow_logs_have_a_writable_directory_under_the_sandbox() {
    assert_eq!(values("ProtectSystem"), ["strict"]);
    assert_eq!(values("LogsDirectory"), ["vpc-agent"]);
    let logrotate = include_str!("../../deploy/vpc-agent.logrotate");
    assert!(logrotate.contains("/var/log/vpc-agent/*.log"));
    assert!(!logrotate.lines().any(|l| l.trim() == "copytruncate"));
    assert!(logrotate.contains("--signal=HUP"));
}
