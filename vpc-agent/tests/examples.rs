//! Every file in examples/ is valid and fits the datapath; the `validate` command's contract;
//! the reference evaluator on the demo scenario (public and private subnets with NAT, security
//! groups).

use std::{net::Ipv4Addr, path::PathBuf, process::Command};

use vpc_agent::{
    compile::check::check_file,
    config::{ValidatedConfig, load_file},
    evaluator::{Hop, Ingress, Packet, Verdict, evaluate},
};
use vpc_common::DropReason;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_example_validates_and_fits() {
    let mut checked = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Err(e) = check_file(&path) {
                panic!("{}: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples");
}

fn vpc_agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpc-agent"))
}

#[test]
fn validate_prints_a_summary_and_exits_0() {
    let file = examples_dir().join("public-private-nat.yaml");
    let out = vpc_agent()
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!(
            "{}: valid: 1 VPC, 2 subnets, 3 route tables, 1 network ACL, 4 security groups, 3 instances, 1 NAT gateway",
            file.display()
        )
    );
}

#[test]
fn validate_prints_every_error_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("vpc-agent-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.yaml");
    let yaml = "vpcs:\n  - name: x\n    cidr_blocks: [10.0.0.1/16, 10.0.0.0/8]\n";
    std::fs::write(&file, yaml).expect("write");
    let out = vpc_agent()
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "{f}:3:19: vpcs[0].cidr_blocks[0]: CIDR 10.0.0.1/16 has host bits set (the network is 10.0.0.0/16)"
            ),
            format!(
                "{f}:3:32: vpcs[0].cidr_blocks[1]: a VPC CIDR block must be between /16 and /28, got /8"
            ),
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn validate_reports_an_unreadable_file() {
    let out = vpc_agent()
        .args(["validate", "/nonexistent/vpc.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("/nonexistent/vpc.yaml: cannot read the file: No such file"),
        "{stderr}"
    );
}

// ----- IPv6: AWS's "Getting started with IPv6" -----

#[test]
fn the_ipv6_example_routes_both_families_and_enforces_ipv4() {
    use vpc_agent::config::validated::RouteTarget;
    let path = examples_dir().join("ipv6-getting-started.yaml");
    let config = load_file(&path).expect("valid");
    let vpc = &config.vpcs[0];
    let routes: Vec<(&str, String, &RouteTarget)> = vpc
        .route_tables
        .iter()
        .flat_map(|t| {
            t.routes
                .iter()
                .map(move |r| (t.name.as_str(), r.destination.to_string(), &r.target))
        })
        .collect();
    assert_eq!(
        routes,
        [
            (
                "public",
                "0.0.0.0/0".to_owned(),
                &RouteTarget::InternetGateway
            ),
            ("public", "::/0".to_owned(), &RouteTarget::InternetGateway),
            (
                "private",
                "::/0".to_owned(),
                &RouteTarget::EgressOnlyGateway
            ),
        ]
    );
    // The one warning: IPv6 is forwarded for instance ports only.
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("forwarded only for instances on their own ports"),
        "{warnings:?}"
    );
    // IPv4 as before: web-1 goes out with its public address; app-1's table has an IPv6
    // default route only, so IPv4 to the internet finds no route.
    let out = |from: &str, src: &str| {
        let p = tcp(src, "192.0.2.7", 443);
        evaluate(&config, Ingress::Interface(from), &p)
            .expect("known ingress")
            .verdict
    };
    assert_eq!(
        out("eni-web1", "10.0.0.10"),
        deliver("uplink0", "198.51.100.20", "192.0.2.7")
    );
    assert_eq!(
        out("eni-app1", "10.0.1.10"),
        Verdict::Drop(DropReason::NoRoute)
    );
}

// ----- The reference evaluator on the demo scenario -----

fn demo() -> ValidatedConfig {
    load_file(&examples_dir().join("public-private-nat.yaml")).expect("valid")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet {
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        sport: 40000,
        dport,
        icmp_type: 0,
        icmp_code: 0,
    }
}

/// The verdict for `p` entering on `from`: the uplink by name, or `sub-pub0` / `sub-priv0`
/// for the public / private subnet (the port of the instance sending it).
fn verdict(config: &ValidatedConfig, from: &str, p: Packet) -> Verdict {
    let ingress = match from {
        "sub-pub0" => Ingress::Subnet {
            vpc: "demo",
            subnet: "public",
        },
        "sub-priv0" => Ingress::Subnet {
            vpc: "demo",
            subnet: "private",
        },
        interface => Ingress::Interface(interface),
    };
    evaluate(config, ingress, &p)
        .expect("known ingress")
        .verdict
}

fn deliver(interface: &str, src: &str, dst: &str) -> Verdict {
    Verdict::Deliver {
        interface: interface.to_owned(),
        src: ip(src).into(),
        dst: ip(dst).into(),
    }
}

#[test]
fn web_server_reaches_the_internet_with_its_public_ip() {
    let v = verdict(&demo(), "sub-pub0", tcp("10.0.0.10", "192.0.2.7", 443));
    assert_eq!(v, deliver("uplink0", "198.51.100.20", "192.0.2.7"));
}

#[test]
fn private_hosts_reach_the_internet_through_the_nat_gateway() {
    let trace = evaluate(
        &demo(),
        Ingress::Interface("eni-db1"),
        &tcp("10.0.1.20", "192.0.2.7", 443),
    )
    .expect("trace");
    assert_eq!(
        trace.verdict,
        deliver("uplink0", "198.51.100.10", "192.0.2.7")
    );
    assert!(trace.hops.contains(&Hop::SourceNat {
        by: "nat-a".into(),
        from: ip("10.0.1.20"),
        to: ip("198.51.100.10"),
    }));
}

#[test]
fn internet_reaches_the_web_server_through_its_public_ip() {
    let v = verdict(&demo(), "uplink0", tcp("203.0.113.5", "198.51.100.20", 22));
    assert_eq!(v, deliver("eni-web1", "203.0.113.5", "10.0.0.10"));
}

#[test]
fn unsolicited_traffic_to_the_nat_gateway_is_dropped() {
    let v = verdict(&demo(), "uplink0", tcp("203.0.113.5", "198.51.100.10", 22));
    assert_eq!(v, Verdict::Drop(DropReason::NatUnsolicited));
    let v = verdict(&demo(), "uplink0", tcp("203.0.113.5", "10.0.1.10", 22));
    assert_eq!(v, Verdict::Drop(DropReason::UplinkUnsolicited));
}

#[test]
fn uplink_traffic_not_aimed_at_the_vpc_is_the_routers_own() {
    let v = verdict(&demo(), "uplink0", tcp("203.0.113.5", "198.51.100.99", 22));
    assert_eq!(v, Verdict::ToHost);
}

#[test]
fn subnets_reach_each_other_and_spoofing_is_dropped() {
    let config = demo();
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.20", 5432));
    assert_eq!(v, deliver("eni-db1", "10.0.0.10", "10.0.1.20"));
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.11", "10.0.1.20", 5432));
    assert_eq!(v, Verdict::Drop(DropReason::Spoofed));
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.99", 5432));
    assert_eq!(v, Verdict::Drop(DropReason::UnknownDestination));
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.0.1", 22));
    assert_eq!(v, Verdict::ToHost);
}

#[test]
fn the_demo_security_groups_filter_new_connections() {
    let config = demo();
    let sg_in = Verdict::Drop(DropReason::SecurityGroupInbound);
    // The web server admits HTTPS from anywhere, SSH only from home.
    let v = verdict(&config, "uplink0", tcp("192.0.2.7", "198.51.100.20", 443));
    assert_eq!(v, deliver("eni-web1", "192.0.2.7", "10.0.0.10"));
    let v = verdict(&config, "uplink0", tcp("192.0.2.7", "198.51.100.20", 22));
    assert_eq!(v, sg_in);
    // SSH: the web tier reaches the jumpbox (sg:web), only the jumpbox reaches the database.
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.10", 22));
    assert_eq!(v, deliver("eni-jumpbox", "10.0.0.10", "10.0.1.10"));
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.20", 22));
    assert_eq!(v, sg_in);
    let v = verdict(&config, "sub-priv0", tcp("10.0.1.10", "10.0.1.20", 22));
    assert_eq!(v, deliver("eni-db1", "10.0.1.10", "10.0.1.20"));
    // Ping (echo request) to the database from inside the VPC, nothing else by ICMP.
    let ping = |code| Packet {
        proto: 1,
        icmp_type: 8,
        icmp_code: code,
        ..tcp("10.0.0.10", "10.0.1.20", 0)
    };
    assert_eq!(
        verdict(&config, "sub-pub0", ping(0)),
        deliver("eni-db1", "10.0.0.10", "10.0.1.20")
    );
    assert_eq!(verdict(&config, "sub-pub0", ping(1)), sg_in);
}

#[test]
fn recommended_acls_are_enforced() {
    let config =
        load_file(&examples_dir().join("public-private-nat-recommended-acls.yaml")).expect("valid");
    // SSH from outside the home network: the public subnet's inbound ACL has no rule for it
    // below the ephemeral range, so the implicit deny applies.
    let trace = evaluate(
        &config,
        Ingress::Interface("uplink0"),
        &tcp("192.0.2.7", "198.51.100.20", 22),
    )
    .expect("trace");
    assert_eq!(trace.verdict, Verdict::Drop(DropReason::AclInbound));
    // From home it passes (rule 120).
    let v = verdict(&config, "uplink0", tcp("203.0.113.9", "198.51.100.20", 22));
    assert_eq!(v, deliver("eni-web1", "203.0.113.9", "10.0.0.10"));
    // The database is reachable from the web server; SMTP (no rule below the ephemeral
    // range) is not.
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.20", 5432));
    assert_eq!(v, deliver("eni-db1", "10.0.0.10", "10.0.1.20"));
    let v = verdict(&config, "sub-pub0", tcp("10.0.0.10", "10.0.1.20", 25));
    assert_eq!(v, Verdict::Drop(DropReason::AclOutbound));
}

mod no_panics {
    use proptest::prelude::*;
    use vpc_agent::{compile::check::check_capacity, config::load_str};

    const DEMO: &str = include_str!("../../examples/public-private-nat-recommended-acls.yaml");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any edit of a valid file (or random text) gives a result or diagnostics, never a
        /// panic, and a diagnostic always has a position.
        #[test]
        fn edited_files_never_panic(
            at in any::<prop::sample::Index>(),
            cut in 0usize..40,
            insert in "[ -~\n]{0,12}",
        ) {
            let start = at.index(DEMO.len());
            let end = (start + cut).min(DEMO.len());
            let mut text = DEMO.to_owned();
            if text.is_char_boundary(start) && text.is_char_boundary(end) {
                text.replace_range(start..end, &insert);
            }
            match load_str("t.yaml", &text) {
                Ok(config) => {
                    let _ = check_capacity("t.yaml", &config);
                }
                Err(d) => {
                    prop_assert!(!d.items.is_empty());
                    prop_assert!(d.items.iter().all(|i| i.pos.line >= 1));
                }
            }
        }
    }
}
