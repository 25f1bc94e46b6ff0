//! `cargo xtask setup`: installs, idempotently, what building and testing need:
//! - the nightly toolchain's `rust-src` (eBPF crate is built with `-Z build-std=core`);
//! - `bpf-linker`, built against the nightly toolchain's own libLLVM (no LLVM download): a
//!   permanent prefix holds `lib/libLLVM.so` symlinks to the sysroot's library;
//! - the Debian tools the tests and the demo use;
//! - the Python package the flow log format test reads records with (`flowlogs-reader`, AWS's
//!   own reader of flow log records), for the `python3` on the PATH.
//!
//! Fast when everything is present: a few `rustc`/`dpkg` queries.
use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// The toolchain that builds the eBPF crate (aya-build's default).
pub const NIGHTLY: &str = "nightly";

/// Debian packages and a command each provides (checked before installing).
const DEBIAN_TOOLS: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("bpftool", "bpftool"),
    ("tcpdump", "tcpdump"),
    ("nftables", "nft"),
    ("iperf3", "iperf3"),
    ("iputils-ping", "ping"),
    ("netcat-openbsd", "nc"),
    ("socat", "socat"),
    ("hping3", "hping3"),
    // promtool: the metrics exposition test.
    ("prometheus", "promtool"),
    // nfcapd/nfdump: the IPFIX export test.
    ("nfdump", "nfdump"),
    // systemd-analyze: the unit file test.
    ("systemd", "systemd-analyze"),
];

pub fn run() -> Result<()> {
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    ensure_debian_tools()?;
    ensure_python_packages()?;
    Ok(())
}

/// Python packages the tests use: (package on PyPI, module it provides).
const PYTHON_PACKAGES: &[(&str, &str)] = &[("flowlogs-reader", "flowlogs_reader")];

/// Installs the missing [`PYTHON_PACKAGES`] with pip for the user (a system Python that is
/// "externally managed", PEP 668, is told that a user install is what is meant).
fn ensure_python_packages() -> Result<()> {
    let imports = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(_, module)| !imports(module))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Python packages: {}", missing.join(" "));
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--user",
                "--no-warn-script-location",
            ])
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .args(extra)
            .args(&missing)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !pip(&[]) && !pip(&["--break-system-packages"]) {
        bail!(
            "could not install the Python packages {} (python3 -m pip install --user)",
            missing.join(" ")
        );
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn have_command(name: &str) -> bool {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

fn nightly_sysroot() -> Result<PathBuf> {
    Ok(PathBuf::from(output(
        Command::new("rustc")
            .arg(format!("+{NIGHTLY}"))
            .args(["--print", "sysroot"]),
    )?))
}

fn ensure_nightly() -> Result<()> {
    if nightly_sysroot().is_ok() {
        return Ok(());
    }
    eprintln!("setup: installing the {NIGHTLY} toolchain");
    crate::run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
    ]))
    .context("the nightly Rust toolchain is missing and could not be installed")
}

fn ensure_rust_src() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to {NIGHTLY}");
    crate::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))
    .context("rust-src for the nightly toolchain could not be installed")
}

/// The nightly sysroot's libLLVM (e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`) and its major
/// version (22).
fn nightly_llvm(sysroot: &Path) -> Result<(String, u32)> {
    let lib = sysroot.join("lib");
    let mut found = None;
    for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if let Some(version) = name.strip_prefix("libLLVM.so.") {
            let major = version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .with_context(|| format!("cannot read the LLVM version of {name}"))?;
            found = Some((name, major));
        }
    }
    found.with_context(|| format!("no libLLVM.so.* in {}", lib.display()))
}

fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn ensure_bpf_linker() -> Result<()> {
    let sysroot = nightly_sysroot()?;
    let (llvm_lib, major) = nightly_llvm(&sysroot)?;
    // The prefix must outlive the install: bpf-linker's runpath points into it.
    let home = env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home)
        .join(".local/share/vpc-toolchain")
        .join(&llvm_lib);
    let prefix_lib = prefix.join("lib");
    let target = sysroot.join("lib").join(&llvm_lib);
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for name in ["libLLVM.so", llvm_lib.as_str()] {
        let link = prefix_lib.join(name);
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
        }
    }
    if bpf_linker_works() {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker against {llvm_lib} (about a minute)");
    crate::run(
        crate::cargo()
            .env("LLVM_PREFIX", &prefix)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}")),
    )
    .context("bpf-linker could not be installed")?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but does not run (is ~/.cargo/bin on PATH?)");
    }
    Ok(())
}

fn ensure_debian_tools() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_TOOLS
        .iter()
        .filter(|(_, cmd)| !have_command(cmd))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have_command("apt-get") {
        bail!(
            "these tools are missing and this machine has no apt-get to install them: {}",
            missing.join(", ")
        );
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    crate::run(Command::new("apt-get").args(["update", "-qq"])).context("apt-get update failed")?;
    crate::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("could not install {}", missing.join(" ")))
}
