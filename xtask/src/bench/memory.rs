//! The memory of every map at its default size, as `bpftool map show` reports it (memlock).
use std::{collections::BTreeSet, process::Command};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use vpc_agent::datapath::{Datapath, object::programs};

/// One map of the datapath.
#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub kind: String,
    pub max_entries: u64,
    pub memlock: u64,
    pub key_size: u64,
    pub value_size: u64,
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
                key_size: m["bytes_key"].as_u64().unwrap_or(0),
                value_size: m["bytes_value"].as_u64().unwrap_or(0),
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

/// Map memory one tracked connection takes, all in: its entry in the connection table (the
/// larger of CONNTRACK's and CT_UNASSURED's: a connection lives in one of them), its NAT_PORTS
/// entry (a connection through a NAT gateway) and its FLOWS entry (flow counters, per CPU),
/// each the map's memlock divided by its entries (hash maps are preallocated).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerConnection {
    pub conntrack: f64,
    pub nat_ports: f64,
    pub flows: f64,
}

impl PerConnection {
    pub fn of(maps: &[MapMemory]) -> Self {
        let per_entry = |name: &str| {
            maps.iter()
                .find(|m| m.name == name && m.max_entries > 0)
                .map_or(0.0, |m| m.memlock as f64 / m.max_entries as f64)
        };
        Self {
            conntrack: per_entry("CONNTRACK").max(per_entry("CT_UNASSURED")),
            nat_ports: per_entry("NAT_PORTS"),
            flows: per_entry("FLOWS"),
        }
    }

    pub fn total(&self) -> f64 {
        self.conntrack + self.nat_ports + self.flows
    }
}

/// The size of Linux's connection-tracking object (`nf_conntrack` slab, /proc/slabinfo) on this
/// kernel: the baseline for the bytes a tracked connection takes (its hash-table slot and
/// extensions such as NAT come on top).
pub fn linux_conntrack_object() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/slabinfo").ok()?;
    slab_object_size(&info, "nf_conntrack")
}

fn slab_object_size(slabinfo: &str, cache: &str) -> Option<u64> {
    slabinfo.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == cache).then_some(())?;
        // name active_objs num_objs objsize ...
        fields.nth(2)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, max_entries: u64, memlock: u64) -> MapMemory {
        MapMemory {
            name: name.into(),
            kind: "hash".into(),
            max_entries,
            memlock,
            key_size: 16,
            value_size: 128,
        }
    }

    #[test]
    fn a_connection_costs_one_entry_of_each_connection_map() {
        let maps = [
            map("CONNTRACK", 1024, 1024 * 192),
            map("CT_UNASSURED", 512, 512 * 200),
            map("NAT_PORTS", 2048, 2048 * 96),
            map("FLOWS", 256, 256 * 208),
            map("ROUTES", 10, 1 << 20),
        ];
        let c = PerConnection::of(&maps);
        assert_eq!(c.conntrack, 200.0);
        assert_eq!(c.nat_ports, 96.0);
        assert_eq!(c.flows, 208.0);
        assert_eq!(c.total(), 504.0);
    }

    #[test]
    fn the_conntrack_slab_object_size_is_read_from_slabinfo() {
        let info = "slabinfo - version: 2.1\n\
                    # name <active_objs> <num_objs> <objsize> <objperslab> ...\n\
                    nf_conntrack_expect 0 0 208 19 1 : tunables 0 0 0\n\
                    nf_conntrack           0      0    256   16    1 : tunables    0    0    0\n";
        assert_eq!(slab_object_size(info, "nf_conntrack"), Some(256));
        assert_eq!(slab_object_size(info, "nf_nat"), None);
    }
}
