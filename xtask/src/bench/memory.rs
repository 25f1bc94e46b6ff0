//! The memory of every map at its default size, as `bpftool map show` reports it (memlock).
use std::{collections::BTreeSet, process::Command};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use vpc_agent::{datapath::Datapath, ebpf::programs};

/// One map of the datapath.
#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub kind: String,
    pub max_entries: u64,
    pub memlock: u64,
}

/// Loads the datapath as the agent does (default sizes) and reads every map its programs use.
pub fn default_maps() -> Result<Vec<MapMemory>> {
    let datapath = Datapath::load().context("loading the datapath")?;
    let mut ids = BTreeSet::new();
    let prog_ids = [
        datapath.xdp().info()?.id(),
        datapath.tc(programs::TC_INGRESS).info()?.id(),
        datapath.tc(programs::TC_EGRESS).info()?.id(),
    ];
    for id in prog_ids {
        let prog = bpftool(&["prog", "show", "id", &id.to_string()])?;
        for map in prog["map_ids"].as_array().into_iter().flatten() {
            ids.extend(map.as_u64());
        }
    }
    let mut maps = ids
        .into_iter()
        .map(|id| {
            let m = bpftool(&["map", "show", "id", &id.to_string()])?;
            Ok(MapMemory {
                name: m["name"].as_str().unwrap_or("?").to_string(),
                kind: m["type"].as_str().unwrap_or("?").to_string(),
                max_entries: m["max_entries"].as_u64().unwrap_or(0),
                memlock: m["bytes_memlock"].as_u64().unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Internal maps (.rodata, .bss) are not the datapath's tables.
    maps.retain(|m| !m.name.contains('.'));
    maps.sort_by_key(|m| std::cmp::Reverse(m.memlock));
    Ok(maps)
}

/// `bpftool -j ARGS`, parsed.
fn bpftool(args: &[&str]) -> Result<Value> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .context("cannot start bpftool")?;
    if !out.status.success() {
        bail!(
            "bpftool {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("bpftool {} output", args.join(" ")))
}
