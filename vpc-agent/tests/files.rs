//! Issue 14, point 8: definition files are read bounded in size and time, and a definition
//! filling the largest map (ROUTES: 131,072 entries a generation) validates within the memory
//! README states.
//!
//! `vpc-agent validate` runs as a child limited to 1 GiB of address space and killed after a
//! deadline, so that an unbounded read fails the test instead of the machine.

use std::{
    fmt::Write as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// README: "validating or loading a definition that fills ROUTES takes at most 96 MiB".
const ROUTES_FILE_MAX_RSS_KIB: i64 = 96 << 10;

/// What one bounded `vpc-agent validate FILE` did.
struct Run {
    /// `None`: still running at the deadline (killed).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kib: i64,
    took: Duration,
}

fn validate(file: &Path, deadline: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpc-agent"));
    cmd.arg("validate")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn vpc-agent");
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = matches!(child.try_wait(), Ok(None));
    if killed {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    // Reaped by now: its peak RSS is in the kernel's accounting of this process's children
    // (the largest child so far: an upper bound for this one).
    // SAFETY: getrusage writes a rusage into the provided, valid struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    Run {
        code: if killed { None } else { out.status.code() },
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        max_rss_kib: usage.ru_maxrss,
        took: started.elapsed(),
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vpc-files-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_device_is_refused_at_once() {
    let run = validate(Path::new("/dev/zero"), Duration::from_secs(10));
    assert_eq!(run.code, Some(1), "exit 1 ({:?}): {}", run.took, run.stderr);
    assert!(
        run.stderr
            .contains("/dev/zero: not a regular file (a device)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("vpc.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let run = validate(&fifo, Duration::from_secs(10));
    assert_eq!(run.code, Some(1), "exit 1, not blocked ({:?})", run.took);
    assert!(
        run.stderr.contains("not a regular file (a FIFO)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused() {
    let dir = TempDir::new("large");
    let file = dir.0.join("vpc.yaml");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(vpc_agent::config::MAX_FILE_BYTES + 1).unwrap();
    let run = validate(&file, Duration::from_secs(10));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(&format!(
            "larger than {} bytes",
            vpc_agent::config::MAX_FILE_BYTES
        )),
        "{}",
        run.stderr
    );
}

/// A definition whose route table holds `routes` /32 routes to the internet gateway (the
/// two tables' implicit local entries come on top: 6 LPM entries).
pub fn routes_file(routes: u32) -> String {
    let mut yaml = String::from(
        "vpcs:
  - name: big
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up0 }
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: sub0, route_table: big }
    route_tables:
      - name: big
        routes:
",
    );
    for i in 0..routes {
        let _ = writeln!(
            yaml,
            "          - {{ destination: 100.{}.{}.{}/32, target: igw }}",
            64 + (i >> 16),
            (i >> 8) & 255,
            i & 255
        );
    }
    yaml
}

/// Routes that, with the 6 implicit local entries and the 6 of the anti-spoofing table (the
/// VPC block and 5 martian ranges), fill ROUTES exactly.
const FILLING_ROUTES: u32 = vpc_common::capacity::ROUTES - 12;

#[test]
fn a_definition_filling_routes_validates_within_the_stated_memory() {
    let dir = TempDir::new("routes");
    let file = dir.0.join("vpc.yaml");
    std::fs::write(&file, routes_file(FILLING_ROUTES)).unwrap();
    let run = validate(&file, Duration::from_secs(120));
    eprintln!(
        "validate, {FILLING_ROUTES} routes ({} bytes): {:?}, peak RSS {} KiB",
        std::fs::metadata(&file).unwrap().len(),
        run.took,
        run.max_rss_kib
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("valid"), "{}", run.stdout);
    assert!(
        run.max_rss_kib <= ROUTES_FILE_MAX_RSS_KIB,
        "peak RSS {} KiB over the {ROUTES_FILE_MAX_RSS_KIB} KiB README states",
        run.max_rss_kib
    );

    // One route more does not fit: said in words, at the top of the file.
    std::fs::write(&file, routes_file(FILLING_ROUTES + 1)).unwrap();
    let run = validate(&file, Duration::from_secs(120));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(
            "vpc.yaml:1:1: vpcs: too large: ROUTES would need 131073 entries, the datapath \
             holds 131072 per generation"
        ),
        "{}",
        run.stderr
    );
}
