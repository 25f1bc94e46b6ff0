//! Fail closed: a kernel-side guard that outlives the agent, its pins and its programs.
//!
//! The datapath forwards every VPC packet itself (XDP redirect, or TC `bpf_redirect_neigh`),
//! which bypasses the kernel's forwarding path and with it netfilter's `forward` hook. So an
//! nftables table that drops every packet the *kernel* would forward from or into a subnet
//! interface (an instance port or a shared segment) or a gateway's link (a VPN gateway's)
//! costs the datapath nothing while it runs,
//! and stops all VPC forwarding when it does not: after the agent died with its bpffs
//! unmounted (the links close, the programs go), after pins were lost, between a detach and
//! a restart. Only `vpc-agent detach` removes it. Uplinks are not in it: what the kernel
//! forwards between an uplink and interfaces the agent does not manage is the router's own
//! business.
//!
//! One table per agent directory (`inet vpc_agent_<hash of the directory>`), written whole
//! in one nft transaction; the interface set is replaced on every reload.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot run nft (nftables), which the fail-closed guard needs: install nftables")]
    Spawn(#[source] std::io::Error),
    #[error("nft refused the fail-closed guard: {0}")]
    Nft(String),
}

/// The guard's nftables table for agent directory `dir`.
pub fn table_name(dir: &Path) -> String {
    // FNV-1a: stable across runs and versions (the std hasher is not).
    let hash = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("vpc_agent_{:08x}", hash as u32)
}

/// The nft script that (re)creates the guard for `interfaces` in one transaction.
pub fn ruleset(dir: &Path, interfaces: &[&str]) -> String {
    let table = table_name(dir);
    let elements = if interfaces.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = interfaces.iter().map(|i| format!("\"{i}\"")).collect();
        format!(" elements = {{ {} }};", quoted.join(", "))
    };
    format!(
        "table inet {table} {{}}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tcomment \"vpc-agent fail-closed guard ({dir}): the kernel never forwards VPC traffic; removed by vpc-agent detach\"\n\
         \tset subnet_interfaces {{ type ifname;{elements} }}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 10; policy accept;\n\
         \t\tiifname @subnet_interfaces counter drop\n\
         \t\toifname @subnet_interfaces counter drop\n\
         \t}}\n\
         }}\n",
        dir = dir.display()
    )
}

fn nft(script: &str) -> Result<(), GuardError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GuardError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(GuardError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(GuardError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(GuardError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Installs (or replaces) the guard of `dir` for `interfaces`.
pub fn install(dir: &Path, interfaces: &[&str]) -> Result<(), GuardError> {
    // A name is quoted into the nft script: one that could end the quotes is refused.
    if let Some(name) = interfaces.iter().find(|n| n.contains(['"', '\\', '\n'])) {
        return Err(GuardError::Nft(format!(
            "interface name {name:?} cannot be written into an nftables set"
        )));
    }
    nft(&ruleset(dir, interfaces))
}

/// Removes the guard of `dir`; `Ok(false)` when there was none.
pub fn remove(dir: &Path) -> Result<bool, GuardError> {
    let table = table_name(dir);
    let exists = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(GuardError::Spawn)?
        .success();
    if !exists {
        return Ok(false);
    }
    nft(&format!("delete table inet {table}\n"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_per_directory_with_every_subnet_interface() {
        let a = Path::new("/sys/fs/bpf/vpc");
        let b = Path::new("/sys/fs/bpf/other");
        assert_ne!(table_name(a), table_name(b));
        assert_eq!(table_name(a), table_name(a));
        let rules = ruleset(a, &["eni-web1", "sub-priv0"]);
        assert!(rules.contains("elements = { \"eni-web1\", \"sub-priv0\" }"));
        assert!(rules.contains("iifname @subnet_interfaces counter drop"));
        assert!(rules.contains("oifname @subnet_interfaces counter drop"));
        // Replaced whole: created if absent, deleted, created again, in one transaction.
        assert!(rules.starts_with(&format!("table inet {} {{}}\ndelete table", table_name(a))));
        assert!(!ruleset(a, &[]).contains("elements"));
    }

    #[test]
    fn a_name_that_would_break_the_quotes_is_refused_before_nft_runs() {
        let err = install(Path::new("/x"), &["ok0", "bad\"; flush ruleset; \""]).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot be written into an nftables set"),
            "{err}"
        );
    }
}
