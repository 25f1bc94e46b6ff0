//! The benchmark's VPC, generated with tables of a given size.
//!
//! Two subnets: `pub0` (public: internet gateway, the NAT gateway, "web" instances with public
//! IPs) and `priv0` (private: "db" instances reached locally, "app" instances that reach the
//! internet through the NAT gateway). Filler entries never match a benchmark packet but sit in
//! the tables the packet is looked up in:
//! - routes: `100.64.0.0/10` /28 blackholes in the public subnet's table (local, internet
//!   gateway and the NAT gateway's second lookup use it);
//! - network ACLs: `deny tcp 9 from 198.18.k.0/24` before the allow rule, in both directions of
//!   both subnets' ACLs (every packet scans all of them);
//! - security groups: `tcp 20000+k` rules in both directions of the one group every instance
//!   has, beside the two rules that allow the traffic (tcp 1-19999, udp).
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use vpc_agent::compile::{Compiled, RoutePrefix};
use vpc_common::{
    ip_raw,
    route::{ROUTE_TABLE_BITS, RouteKey},
};

/// Table sizes of one benchmark configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Routes in the public subnet's route table (default route included).
    pub routes: usize,
    /// Rules per direction in each network ACL.
    pub acl_rules: usize,
    /// Security group rules per instance and direction (at least the 2 that allow traffic).
    pub sg_rules: usize,
    /// Connections pre-filled into CONNTRACK before measuring.
    pub conntrack: usize,
}

pub const WEB: [&str; 4] = ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"];
pub const WEB_PUBLIC: [&str; 4] = [
    "198.51.100.20",
    "198.51.100.21",
    "198.51.100.22",
    "198.51.100.23",
];
pub const DB: [&str; 4] = ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.13"];
pub const APP: [&str; 4] = ["10.0.1.20", "10.0.1.21", "10.0.1.22", "10.0.1.23"];
pub const NAT_ELASTIC: &str = "198.51.100.5";
/// Security group rules that are not fillers.
pub const SG_FUNCTIONAL_RULES: usize = 2;

/// The VPC definition for `sizes`.
pub fn yaml(sizes: &Sizes) -> String {
    let mut y = String::from(HEADER);
    route_tables(&mut y, sizes.routes);
    network_acls(&mut y, sizes.acl_rules);
    security_groups(&mut y, sizes.sg_rules);
    instances(&mut y);
    y
}

const HEADER: &str = "\
vpcs:
  - name: bench
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up0 }
    nat_gateways:
      - { name: nat, subnet: pub, private_ip: 10.0.0.5, elastic_ip: 198.51.100.5 }
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, interface: pub0, route_table: public, network_acl: pub-acl }
      - { name: priv, cidr: 10.0.1.0/24, interface: priv0, route_table: private, network_acl: priv-acl }
";

/// Routes written in the YAML at most: the YAML parser's node budget refuses 100k routes, so
/// the rest are added to the compiled definition by [`add_routes`].
const YAML_ROUTES_MAX: usize = 10;

/// The `k`th filler route: a /28 of 100.64.0.0/10 (2^18 of them).
fn filler_route(k: usize) -> [u8; 4] {
    ((100u32 << 24) | (64 << 16) | ((k as u32) << 4)).to_be_bytes()
}

/// Adds the filler routes beyond [`YAML_ROUTES_MAX`] to `compiled`, like the YAML ones
/// (same table, same blackhole target).
pub fn add_routes(compiled: &mut Compiled, routes: usize) -> Result<()> {
    let fillers = routes.saturating_sub(1);
    let first = YAML_ROUTES_MAX - 1;
    if fillers <= first {
        return Ok(());
    }
    let (table, value) = compiled
        .routes
        .iter()
        .find(|(p, _)| p.key.addr == ip_raw(filler_route(0)))
        .map(|(p, v)| (p.key.table, *v))
        .context("the first filler route is not in the compiled definition")?;
    for k in first..fillers {
        let prefix = RoutePrefix {
            prefix_len: ROUTE_TABLE_BITS + 28,
            key: RouteKey {
                table,
                addr: ip_raw(filler_route(k)),
            },
        };
        compiled.routes.insert(prefix, value);
    }
    Ok(())
}

fn route_tables(y: &mut String, routes: usize) {
    y.push_str("    route_tables:\n      - name: main\n      - name: private\n");
    y.push_str("        routes:\n          - { destination: 0.0.0.0/0, target: nat }\n");
    y.push_str("      - name: public\n        routes:\n");
    y.push_str("          - { destination: 0.0.0.0/0, target: igw }\n");
    for k in 0..routes.min(YAML_ROUTES_MAX).saturating_sub(1) {
        let [a, b, c, d] = filler_route(k);
        let _ = writeln!(
            y,
            "          - {{ destination: {a}.{b}.{c}.{d}/28, target: blackhole }}"
        );
    }
}

fn network_acls(y: &mut String, rules: usize) {
    y.push_str("    network_acls:\n");
    // The public subnet only lets the VPC in: traffic from the internet to a public IP falls
    // through every rule to the implicit deny (the ACL-deny path).
    for (name, inbound_from) in [("pub-acl", "10.0.0.0/8"), ("priv-acl", "0.0.0.0/0")] {
        let _ = writeln!(y, "      - name: {name}");
        for (direction, allowed) in [("inbound", inbound_from), ("outbound", "0.0.0.0/0")] {
            let _ = writeln!(y, "        {direction}:");
            acl_rules(y, rules, allowed);
        }
    }
}

fn acl_rules(y: &mut String, rules: usize, allowed: &str) {
    for k in 0..rules.saturating_sub(1) {
        let _ = writeln!(
            y,
            "          - {{ rule: {}, protocol: tcp, ports: 9, cidr: 198.18.{k}.0/24, action: deny }}",
            k + 1
        );
    }
    let _ = writeln!(
        y,
        "          - {{ rule: 32000, protocol: all, cidr: {allowed}, action: allow }}"
    );
}

fn security_groups(y: &mut String, rules: usize) {
    y.push_str("    security_groups:\n      - name: bench\n");
    for (direction, remote) in [("inbound", "source"), ("outbound", "destination")] {
        let _ = writeln!(y, "        {direction}:");
        let _ = writeln!(
            y,
            "          - {{ protocol: tcp, ports: 1-19999, {remote}: 10.0.0.0/8 }}"
        );
        let _ = writeln!(y, "          - {{ protocol: udp, {remote}: 0.0.0.0/0 }}");
        for k in 0..rules.saturating_sub(SG_FUNCTIONAL_RULES) {
            let _ = writeln!(
                y,
                "          - {{ protocol: tcp, ports: {}, {remote}: 0.0.0.0/0 }}",
                20000 + k
            );
        }
    }
}

fn instances(y: &mut String) {
    y.push_str("    instances:\n");
    let groups = "security_groups: [bench]";
    for (i, (ip, public)) in WEB.iter().zip(WEB_PUBLIC).enumerate() {
        let _ = writeln!(
            y,
            "      - {{ name: web{i}, subnet: pub, private_ip: {ip}, public_ip: {public}, {groups} }}"
        );
    }
    for (name, ips) in [("db", DB), ("app", APP)] {
        for (i, ip) in ips.iter().enumerate() {
            let _ = writeln!(
                y,
                "      - {{ name: {name}{i}, subnet: priv, private_ip: {ip}, {groups} }}"
            );
        }
    }
}
