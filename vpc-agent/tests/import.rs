//! `vpc-agent import`: the AWS user guide's scenarios written as CloudFormation templates, a
//! template shaped like AWS's public sample VPC templates (public and private subnets in two
//! zones, a NAT gateway per zone) and describe-* JSON shaped like the AWS CLI reference's
//! examples, and a VPN-only VPC with a prefix list as both. Each import must validate, and the
//! reference evaluator (`vpc-agent trace`) must give the verdicts the AWS documentation states
//! for the scenario.

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf, process::Command};

use vpc_agent::{
    config::{self, ValidatedConfig},
    evaluator::{Ingress, Packet, Verdict, evaluate},
    import::{self, ImportError, NameMap, Options, Severity},
};
use vpc_common::DropReason;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn options(interfaces: &str, addresses: &str) -> Options {
    let map = |opt, arg: &str| {
        if arg.is_empty() {
            NameMap::default()
        } else {
            NameMap::parse(opt, arg).expect("map parses")
        }
    };
    Options {
        interfaces: map("--interfaces", interfaces),
        addresses: map("--addresses", addresses),
        parameters: BTreeMap::new(),
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

/// Where a traced packet enters: a subnet by name, or the VPC's uplink.
enum From {
    Subnet(&'static str),
    Uplink,
}

/// What the documentation says happens.
enum Expect {
    /// Delivered with these addresses (after translation); `None` for "the elastic IP of NAT
    /// gateway X" (the importer allocates it: read it from the result).
    Deliver(Option<&'static str>, &'static str),
    DeliverViaNat(&'static str, &'static str),
    Drop(DropReason),
}

struct Case {
    what: &'static str,
    from: From,
    src: &'static str,
    dst: &'static str,
    proto: u8,
    dport: u16,
    expect: Expect,
}

fn tcp(
    what: &'static str,
    from: From,
    src: &'static str,
    dst: &'static str,
    dport: u16,
    expect: Expect,
) -> Case {
    Case {
        what,
        from,
        src,
        dst,
        proto: 6,
        dport,
        expect,
    }
}

fn check(config: &ValidatedConfig, cases: &[Case]) {
    let vpc = &config.vpcs[0];
    for c in cases {
        let packet = Packet {
            src: ip(c.src),
            dst: ip(c.dst),
            proto: c.proto,
            sport: 40000,
            dport: c.dport,
            icmp_type: if c.proto == 1 { 8 } else { 0 },
            icmp_code: 0,
        };
        let uplink = vpc
            .internet_gateway
            .as_ref()
            .map(|i| i.interface.clone())
            .unwrap_or_default();
        let ingress = match c.from {
            From::Subnet(subnet) => Ingress::Subnet {
                vpc: &vpc.name,
                subnet,
            },
            From::Uplink => Ingress::Interface(&uplink),
        };
        let trace = evaluate(config, ingress, &packet).expect("evaluates");
        match (&c.expect, &trace.verdict) {
            (Expect::Deliver(src, dst), Verdict::Deliver { src: s, dst: d, .. }) => {
                assert_eq!(*s, ip(src.unwrap_or(c.src)), "{}: source", c.what);
                assert_eq!(*d, ip(dst), "{}: destination", c.what);
            }
            (Expect::DeliverViaNat(nat, dst), Verdict::Deliver { src: s, dst: d, .. }) => {
                let nat = vpc
                    .nat_gateways
                    .iter()
                    .find(|n| n.name == *nat)
                    .expect("NAT gateway");
                assert_eq!(*s, nat.elastic_ip, "{}: translated by {}", c.what, nat.name);
                assert_eq!(*d, ip(dst), "{}: destination", c.what);
            }
            (Expect::Drop(reason), Verdict::Drop(got)) => assert_eq!(got, reason, "{}", c.what),
            (_, other) => panic!("{}: got {other:?}; hops {:#?}", c.what, trace.hops),
        }
    }
}

fn load(yaml: &str) -> ValidatedConfig {
    config::load_str("(imported)", yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[test]
fn single_public_subnet_template_gives_the_guide_verdicts() {
    let opts = options(
        "PublicSubnet=sub-pub0,InternetGateway=uplink0",
        "WebServer=10.0.0.10,WebServer.public=198.51.100.20",
    );
    let imported =
        import::cloudformation_file(&fixture("single-public-subnet.yaml"), &opts).expect("imports");
    let config = load(&imported.yaml);
    // What was given is used, and nothing had to be assumed.
    assert_eq!(
        imported.report.count(Severity::Assumed),
        0,
        "{}",
        imported.report
    );
    assert_eq!(
        imported.report.count(Severity::NotImported),
        0,
        "{}",
        imported.report
    );
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.subnets[0].interface.as_deref(), Some("sub-pub0"));
    assert_eq!(vpc.instances[0].public_ip, Some(ip("198.51.100.20")));
    use Expect::*;
    use From::*;
    check(
        &config,
        &[
            tcp(
                "HTTP from the internet",
                Uplink,
                "192.0.2.100",
                "198.51.100.20",
                80,
                Deliver(None, "10.0.0.10"),
            ),
            tcp(
                "HTTPS from the internet",
                Uplink,
                "192.0.2.100",
                "198.51.100.20",
                443,
                Deliver(None, "10.0.0.10"),
            ),
            tcp(
                "SSH from the home network",
                Uplink,
                "203.0.113.50",
                "198.51.100.20",
                22,
                Deliver(None, "10.0.0.10"),
            ),
            tcp(
                "SSH from elsewhere",
                Uplink,
                "192.0.2.100",
                "198.51.100.20",
                22,
                Drop(DropReason::SecurityGroupInbound),
            ),
            tcp(
                "the web server to the internet",
                Subnet("PublicSubnet"),
                "10.0.0.10",
                "192.0.2.100",
                443,
                Deliver(Some("198.51.100.20"), "192.0.2.100"),
            ),
        ],
    );
}

#[test]
fn public_private_nat_template_gives_the_guide_verdicts() {
    let opts = options("", "NatEIP=198.51.100.10,WebServerEIP=198.51.100.20");
    let imported =
        import::cloudformation_file(&fixture("public-private-nat.yaml"), &opts).expect("imports");
    let config = load(&imported.yaml);
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.nat_gateways[0].elastic_ip, ip("198.51.100.10"));
    // The NAT gateway's private address is AWS's to choose: allocated, and reported.
    let nat_private = vpc.nat_gateways[0].private_ip;
    assert!(
        vpc.subnets[vpc.nat_gateways[0].subnet]
            .cidr
            .contains(&nat_private)
    );
    assert!(
        imported
            .report
            .notes
            .iter()
            .any(|n| n.resource == "NatGateway"
                && n.severity == Severity::Assumed
                && n.message.contains(&nat_private.to_string()))
    );
    use Expect::*;
    use From::*;
    check(
        &config,
        &[
            tcp(
                "the database server updates through the NAT gateway",
                Subnet("PrivateSubnet"),
                "10.0.1.20",
                "192.0.2.100",
                443,
                DeliverViaNat("NatGateway", "192.0.2.100"),
            ),
            tcp(
                "the database server may not use SMTP",
                Subnet("PrivateSubnet"),
                "10.0.1.20",
                "192.0.2.100",
                25,
                Drop(DropReason::SecurityGroupOutbound),
            ),
            tcp(
                "the internet cannot reach the private subnet",
                Uplink,
                "192.0.2.100",
                "10.0.1.20",
                22,
                Drop(DropReason::UplinkUnsolicited),
            ),
            tcp(
                "web to database (MySQL)",
                Subnet("PublicSubnet"),
                "10.0.0.10",
                "10.0.1.20",
                3306,
                Deliver(None, "10.0.1.20"),
            ),
            tcp(
                "web to database on another port",
                Subnet("PublicSubnet"),
                "10.0.0.10",
                "10.0.1.20",
                5432,
                Drop(DropReason::SecurityGroupOutbound),
            ),
            tcp(
                "SSH to the web server from home",
                Uplink,
                "203.0.113.50",
                "198.51.100.20",
                22,
                Deliver(None, "10.0.0.10"),
            ),
            tcp(
                "SSH to the web server from elsewhere: the ACL",
                Uplink,
                "192.0.2.100",
                "198.51.100.20",
                22,
                Drop(DropReason::AclInbound),
            ),
            tcp(
                "HTTP to the web server",
                Uplink,
                "192.0.2.100",
                "198.51.100.20",
                80,
                Deliver(None, "10.0.0.10"),
            ),
        ],
    );
}

#[test]
fn sample_two_zone_template_sends_each_private_subnet_through_its_own_nat_gateway() {
    let imported =
        import::cloudformation_file(&fixture("sample-vpc-two-az-nat.yaml"), &Options::default())
            .expect("imports");
    let config = load(&imported.yaml);
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.subnets.len(), 4);
    assert_eq!(vpc.nat_gateways.len(), 2);
    let app = |name: &str| {
        vpc.instances
            .iter()
            .find(|i| i.name == name)
            .expect("instance")
            .private_ip
            .to_string()
    };
    let (app1, app2) = (app("AppServer1"), app("AppServer2"));
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (app1, app2) = (leak(app1), leak(app2));
    // Every router interface and launch-time address was invented, and the report says so.
    let assumed = imported.report.count(Severity::Assumed);
    assert_eq!(assumed, 5 + 2 + 2 + 2, "{}", imported.report);
    assert_eq!(
        imported.report.count(Severity::NotImported),
        0,
        "{}",
        imported.report
    );
    use Expect::*;
    use From::*;
    check(
        &config,
        &[
            tcp(
                "zone 1 goes out through NAT gateway 1",
                Subnet("PrivateSubnet1"),
                app1,
                "192.0.2.100",
                443,
                DeliverViaNat("NatGateway1", "192.0.2.100"),
            ),
            tcp(
                "zone 2 goes out through NAT gateway 2",
                Subnet("PrivateSubnet2"),
                app2,
                "192.0.2.100",
                443,
                DeliverViaNat("NatGateway2", "192.0.2.100"),
            ),
            tcp(
                "no ingress: one app server to the other",
                Subnet("PrivateSubnet1"),
                app1,
                app2,
                22,
                Drop(DropReason::SecurityGroupInbound),
            ),
            tcp(
                "nothing reaches them from the internet",
                Uplink,
                "192.0.2.100",
                app1,
                443,
                Drop(DropReason::UplinkUnsolicited),
            ),
        ],
    );
}

#[test]
fn describe_output_gives_the_same_verdicts_with_the_real_addresses() {
    let imported = import::describe_path(&fixture("describe"), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = load(&imported.yaml);
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.name, "prod", "named by the Name tag");
    // Only router interfaces are invented: every address is in the output.
    assert!(
        imported
            .report
            .notes
            .iter()
            .filter(|n| n.severity == Severity::Assumed)
            .all(|n| n.message.contains("router interface"))
    );
    // IPv6 is imported, its routes too: nothing is left out (the terminated instance is only
    // ignored; the IPv6 local route is the implicit one).
    assert_eq!(
        imported.report.count(Severity::NotImported),
        0,
        "{}",
        imported.report
    );
    assert_lines(
        &imported.yaml,
        &[
            "    cidr_blocks: [10.0.0.0/16]\n    ipv6_cidr_block: 2001:db8:1234:1a00::/56\n",
            "    egress_only_internet_gateway:   # describe-egress-only-internet-gateways eigw-015e0e244eEXAMPLE (line 4)\n      name: my-eigw\n      interface: uplink1\n",
            "        cidr: 10.0.0.0/24\n        ipv6_cidr: 2001:db8:1234:1a00::/64\n",
            "        cidr: 10.0.1.0/24\n        ipv6_cidr: 2001:db8:1234:1a01::/64\n",
            "          - { destination: 0.0.0.0/0, target: nat-a }\n          - { destination: \"::/0\", target: my-eigw }\n",
            "          - { destination: 0.0.0.0/0, target: my-igw }\n          - { destination: \"::/0\", target: my-igw }\n",
            "          - { rule: 101, protocol: all, cidr: \"::/0\", action: allow }\n",
            "          - { rule: 160, protocol: tcp, ports: 1024-65535, cidr: \"::/0\", action: allow }\n",
            "          - { rule: 160, protocol: tcp, ports: 443, cidr: \"::/0\", action: allow }\n",
            "          - { protocol: all, destination: \"::/0\" }\n",
            "          - { protocol: tcp, ports: 443, source: \"::/0\" }\n",
            "        public_ip: 34.253.223.13\n        ipv6_addresses: [2001:db8:1234:1a00::10]\n",
        ],
    );
    // AWS's final IPv6 `*` rule (32768) is the implicit final deny, as 32767 is for IPv4.
    assert!(!imported.yaml.contains("32768"), "{}", imported.yaml);
    let note = imported
        .report
        .notes
        .iter()
        .find(|n| n.resource == "i-0a9b8c7d6e5f40321" && n.message.contains("terminated"))
        .unwrap_or_else(|| panic!("no note on the terminated instance:\n{}", imported.report));
    assert!(note.line > 1 && note.file.is_some(), "{note:?}");
    use Expect::*;
    use From::*;
    let web = "10.0.0.157";
    check(
        &config,
        &[
            tcp(
                "HTTP to web-1's public IP",
                Uplink,
                "198.51.100.100",
                "34.253.223.13",
                80,
                Deliver(None, web),
            ),
            tcp(
                "db-1 out through the NAT gateway",
                Subnet("private-subnet"),
                "10.0.1.20",
                "198.51.100.100",
                443,
                Deliver(Some("54.85.121.213"), "198.51.100.100"),
            ),
            tcp(
                "the blackhole route of the main table",
                Subnet("private-subnet"),
                "10.0.1.20",
                "192.0.2.10",
                443,
                Drop(DropReason::Blackhole),
            ),
            tcp(
                "web-1 to db-1 (MySQL)",
                Subnet("public-subnet"),
                web,
                "10.0.1.20",
                3306,
                Deliver(None, "10.0.1.20"),
            ),
            tcp(
                "SSH from web-1 to db-1: the ACL allows it, the db group does not",
                Subnet("public-subnet"),
                web,
                "10.0.1.20",
                22,
                Drop(DropReason::SecurityGroupInbound),
            ),
            tcp(
                "SMTP from web-1 to db-1: the private ACL",
                Subnet("public-subnet"),
                web,
                "10.0.1.20",
                25,
                Drop(DropReason::AclInbound),
            ),
            Case {
                what: "ping from web-1 to db-1",
                from: Subnet("public-subnet"),
                src: web,
                dst: "10.0.1.20",
                proto: 1,
                dport: 0,
                expect: Deliver(None, "10.0.1.20"),
            },
        ],
    );
}

#[test]
fn what_cannot_be_expressed_is_reported_with_its_line() {
    // Each case: a resource added to a minimal VPC, and what the report must say about it.
    let base = "Resources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24 }\n  RT:\n    Type: AWS::EC2::RouteTable\n    Properties: { VpcId: !Ref VPC }\n";
    let cases: &[(&str, &str, Severity, &str)] = &[
        (
            "  X:\n    Type: AWS::EC2::VPNGateway\n    Properties: { Type: ipsec.1 }\n",
            "X",
            Severity::NotImported,
            "attached to no imported VPC",
        ),
        (
            "  X:\n    Type: AWS::EC2::VPCCidrBlock\n    Properties: { VpcId: !Ref VPC, AmazonProvidedIpv6CidrBlock: true }\n",
            "X",
            Severity::NotImported,
            "the IPv6 block is assigned by AWS when the stack is created",
        ),
        (
            "  X:\n    Type: AWS::EC2::Instance\n    Properties: { SubnetId: !Ref Sub, PrivateIpAddress: 10.0.0.10, Ipv6AddressCount: 1 }\n",
            "X",
            Severity::NotImported,
            "Ipv6AddressCount: AWS assigns the addresses at launch",
        ),
        (
            "  X:\n    Type: AWS::EC2::Route\n    Properties: { RouteTableId: !Ref RT, DestinationCidrBlock: 0.0.0.0/0, InstanceId: i-1 }\n",
            "X",
            Severity::NotImported,
            "NAT instance",
        ),
        (
            "  X:\n    Type: AWS::EC2::Route\n    Properties: { RouteTableId: !Ref RT, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: eigw-1 }\n",
            "X",
            Severity::NotImported,
            "egress-only internet gateway eigw-1 is not attached to VPC VPC: the route to ::/0 is not imported",
        ),
        (
            "  X:\n    Type: AWS::EC2::Route\n    Properties: { RouteTableId: !Ref RT, DestinationCidrBlock: 0.0.0.0/0, GatewayId: vgw-1 }\n",
            "X",
            Severity::NotImported,
            "no internet or VPN gateway of the input",
        ),
        (
            "  X:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      VpcId: !Ref VPC\n      GroupDescription: d\n      SecurityGroupIngress:\n        - { IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 0.0.0.0/0, CidrIpv6: '::/0' }\n",
            "X",
            Severity::NotImported,
            "exactly one of a CIDR block",
        ),
        (
            "  X:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      VpcId: !Ref VPC\n      GroupDescription: d\n      SecurityGroupIngress:\n        - { IpProtocol: tcp, FromPort: 22, ToPort: 22, SourcePrefixListId: pl-1 }\n",
            "X",
            Severity::NotImported,
            "prefix list pl-1 is not in the input",
        ),
        (
            "  X:\n    Type: AWS::EC2::Instance\n    Properties: { SubnetId: !Ref Sub, PrivateIpAddress: 10.0.0.10, SourceDestCheck: false }\n",
            "X",
            Severity::NotImported,
            "SourceDestCheck",
        ),
        (
            "  X:\n    Type: AWS::EC2::Instance\n    Properties: { SubnetId: !Ref Sub, PrivateIpAddress: 10.0.0.10, Frobnicate: 1 }\n",
            "X",
            Severity::NotImported,
            "property Frobnicate",
        ),
        (
            "  X:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: !ImportValue other }\n",
            "X",
            Severity::NotImported,
            "another stack",
        ),
        (
            "  X:\n    Type: AWS::EC2::NatGateway\n    Properties: { SubnetId: !Ref Sub, ConnectivityType: private }\n",
            "X",
            Severity::NotImported,
            "private NAT",
        ),
        (
            "  X:\n    Type: AWS::EC2::NatGateway\n    Properties: { SubnetId: !Ref Sub }\n",
            "X",
            Severity::NotImported,
            "no internet gateway",
        ),
        (
            "  X:\n    Type: AWS::EC2::VPCPeeringConnection\n    Properties: { VpcId: !Ref VPC, PeerVpcId: vpc-0123 }\n",
            "X",
            Severity::NotImported,
            "not in the template",
        ),
        (
            "  X:\n    Type: AWS::EC2::TransitGateway\n",
            "X",
            Severity::NotImported,
            "transit gateways",
        ),
        (
            "  X:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties: { VPCZoneIdentifier: [!Ref Sub], MinSize: 1, MaxSize: 2 }\n",
            "X",
            Severity::NotImported,
            "network interfaces",
        ),
        (
            "  X:\n    Type: AWS::S3::Bucket\n",
            "X",
            Severity::Ignored,
            "not a VPC network resource",
        ),
        (
            "  X:\n    Type: AWS::EC2::FlowLog\n    Properties: { ResourceId: !Ref VPC, ResourceType: VPC, TrafficType: REJECT }\n",
            "X",
            Severity::NotImported,
            "TrafficType REJECT",
        ),
    ];
    for (extra, resource, severity, text) in cases {
        let template = format!("{base}{extra}");
        let line = u32::try_from(base.lines().count() + 1).expect("line");
        let imported = import::cloudformation::import("t.yaml", &template, &Options::default())
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
        load(&imported.yaml);
        let found = imported.report.notes.iter().find(|n| {
            n.resource == *resource && n.severity == *severity && n.message.contains(text)
        });
        let note = found.unwrap_or_else(|| {
            panic!(
                "{extra}: no {severity:?} note with '{text}':\n{}",
                imported.report
            )
        });
        assert!(
            note.line >= line,
            "{extra}: line {} before the resource (line {line})",
            note.line
        );
    }
}

#[test]
fn conditions_and_parameters_decide_what_is_created() {
    let template = "Parameters:\n  WithPublic: { Type: String, Default: 'no' }\nConditions:\n  Public: !Equals [!Ref WithPublic, 'yes']\nResources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n  Extra:\n    Type: AWS::EC2::Subnet\n    Condition: Public\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.9.0/24 }\n";
    for (given, subnets) in [(None, 0), (Some("yes"), 1)] {
        let mut opts = Options::default();
        if let Some(v) = given {
            opts.parameters
                .insert("WithPublic".to_owned(), v.to_owned());
        }
        let imported = import::cloudformation::import("t.yaml", template, &opts).expect("imports");
        assert_eq!(
            load(&imported.yaml).vpcs[0].subnets.len(),
            subnets,
            "WithPublic={given:?}"
        );
        let skipped = imported
            .report
            .notes
            .iter()
            .any(|n| n.resource == "Extra" && n.message.contains("condition Public is false"));
        assert_eq!(skipped, subnets == 0);
    }
    let mut opts = Options::default();
    opts.parameters.insert("Typo".to_owned(), "x".to_owned());
    let err =
        import::cloudformation::import("t.yaml", template, &opts).expect_err("unknown parameter");
    assert!(matches!(err, ImportError::Parameter(_)), "{err}");
}

#[test]
fn a_json_template_imports_with_the_lines_of_its_resources() {
    let template = r#"{
  "Resources": {
    "Vpc": { "Type": "AWS::EC2::VPC", "Properties": { "CidrBlock": "10.1.0.0/16" } },
    "Zeta": {
      "Type": "AWS::EC2::Subnet",
      "Properties": { "VpcId": { "Ref": "Vpc" }, "CidrBlock": { "Fn::Select": [0, { "Fn::Cidr": [{ "Fn::GetAtt": ["Vpc", "CidrBlock"] }, 2, 8] }] } }
    },
    "Alpha": {
      "Type": "AWS::EC2::VPNGateway",
      "Properties": { "Type": "ipsec.1" }
    }
  }
}"#;
    let imported =
        import::cloudformation::import("t.json", template, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    assert_eq!(config.vpcs[0].subnets[0].cidr.to_string(), "10.1.0.0/24");
    let line_of = |id: &str| {
        imported
            .report
            .notes
            .iter()
            .find(|n| n.resource == id)
            .map(|n| n.line)
    };
    assert_eq!(line_of("Alpha"), Some(8));
    assert_eq!(line_of("Zeta"), Some(4), "{}", imported.report);
}

#[test]
fn an_import_that_would_not_validate_is_an_error_that_says_why() {
    // Overlapping subnets: AWS refuses them too, and so must the import.
    let template = "Resources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n  A:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24 }\n  B:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.0.128/25 }\n";
    match import::cloudformation::import("t.yaml", template, &Options::default()) {
        Err(ImportError::Invalid { diagnostics, .. }) => {
            assert!(
                diagnostics.to_string().contains("overlaps"),
                "{diagnostics}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let no_vpc = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n";
    assert!(matches!(
        import::cloudformation::import("t.yaml", no_vpc, &Options::default()),
        Err(ImportError::NoVpc { .. })
    ));
}

#[test]
fn placeholder_interfaces_are_linux_names_and_unique() {
    let template = "Resources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/16 }\n  AVeryLongSubnetLogicalIdNumberOne:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.0.0/24 }\n  AVeryLongSubnetLogicalIdNumberTwo:\n    Type: AWS::EC2::Subnet\n    Properties: { VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24 }\n";
    let imported =
        import::cloudformation::import("t.yaml", template, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    let names: Vec<&str> = config.vpcs[0]
        .subnets
        .iter()
        .filter_map(|s| s.interface.as_deref())
        .collect();
    assert!(
        names.iter().all(|n| n.len() <= 15 && !n.is_empty()),
        "{names:?}"
    );
    assert_ne!(names[0], names[1]);
    assert_eq!(
        imported.report.count(Severity::Assumed),
        2,
        "{}",
        imported.report
    );
}

#[test]
fn name_maps_parse_inline_and_from_a_file_and_unused_keys_are_reported() {
    let inline = NameMap::parse("--interfaces", "A=eth1, B=eth2").expect("parses");
    assert_eq!(inline.entries.get("B").map(String::as_str), Some("eth2"));
    for bad in ["A", "A=", "A=x,A=y"] {
        assert!(NameMap::parse("--interfaces", bad).is_err(), "{bad}");
    }
    let dir = std::env::temp_dir().join(format!("vpc-import-map-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("ifaces.yaml");
    std::fs::write(&file, "PublicSubnet: sub-pub0\nNoSuchThing: eth9\n").expect("write");
    let opts = Options {
        interfaces: NameMap::parse("--interfaces", file.to_str().expect("utf-8"))
            .expect("file parses"),
        ..Options::default()
    };
    let imported =
        import::cloudformation_file(&fixture("single-public-subnet.yaml"), &opts).expect("imports");
    assert_eq!(
        load(&imported.yaml).vpcs[0].subnets[0].interface.as_deref(),
        Some("sub-pub0")
    );
    assert!(
        imported
            .report
            .notes
            .iter()
            .any(|n| n.resource == "--interfaces" && n.message.contains("NoSuchThing"))
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn vpc_agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpc-agent"))
}

#[test]
fn the_command_writes_a_file_that_validate_and_trace_accept() {
    let dir = std::env::temp_dir().join(format!("vpc-import-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out_file = dir.join("vpc.yaml");
    let out = vpc_agent()
        .args(["import", "cloudformation"])
        .arg(fixture("single-public-subnet.yaml"))
        .args([
            "--interfaces",
            "PublicSubnet=sub-pub0",
            "--addresses",
            "WebServer=10.0.0.10",
            "--parameter",
            "HomeNetwork=192.0.2.0/24",
            "-o",
        ])
        .arg(&out_file)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains(
            "InternetGateway (AWS::EC2::InternetGateway): assumed: router interface 'uplink0'"
        ),
        "{report}"
    );
    let validate = vpc_agent()
        .arg("validate")
        .arg(&out_file)
        .output()
        .expect("runs");
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    // The parameter took effect: SSH is now allowed from 192.0.2.0/24.
    let trace = vpc_agent()
        .arg("trace")
        .arg("--config")
        .arg(&out_file)
        .args([
            "--from",
            "192.0.2.7",
            "--to",
            "198.51.100.10",
            "--proto",
            "tcp",
            "--dport",
            "22",
        ])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(
        text.contains("verdict: DELIVER"),
        "{text}{}",
        String::from_utf8_lossy(&trace.stderr)
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "Resources:\n  VPC:\n    Type: AWS::EC2::VPC\n    Properties: { CidrBlock: 10.0.0.0/8 }\n",
    )
    .expect("write");
    let out = vpc_agent()
        .args(["import", "cloudformation"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not validate") && stderr.contains("cidr_blocks"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_group_of_a_peered_vpc_is_referenced_as_vpc_slash_name() {
    let template = "Resources:
  App:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  Shared:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.1.0.0/16 }
  Pcx:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: { VpcId: !Ref App, PeerVpcId: !Ref Shared }
  Web:
    Type: AWS::EC2::SecurityGroup
    Properties: { GroupDescription: web, VpcId: !Ref App }
  Db:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: db
      VpcId: !Ref Shared
      SecurityGroupIngress:
        - { IpProtocol: tcp, FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: !Ref Web }
";
    let imported =
        import::cloudformation::import("t.yaml", template, &Options::default()).expect("imports");
    assert!(
        imported.yaml.contains("source: sg:App/Web }"),
        "{}",
        imported.yaml
    );
    let config = load(&imported.yaml);
    let shared = &config.vpcs[1];
    let db = shared.security_groups.iter().find(|g| g.name == "Db");
    assert_eq!(
        db.map(|g| &g.inbound[0].peer),
        Some(&config::validated::SgPeer::PeerGroup { vpc: 0, group: 0 })
    );
    // Without the peering the reference cannot be expressed: reported, not imported.
    let unpeered = template.replace("AWS::EC2::VPCPeeringConnection", "AWS::S3::Bucket");
    let imported =
        import::cloudformation::import("t.yaml", &unpeered, &Options::default()).expect("imports");
    assert!(
        imported
            .report
            .notes
            .iter()
            .any(|n| n.resource == "Db" && n.message.contains("nor in a VPC peered with it")),
        "{}",
        imported.report
    );
}

/// What both VPN fixtures hold: a VPN gateway with the office connection's two static routes,
/// the private table propagating it and sending everything else to it, and the partners'
/// prefix list used by the app group inbound and outbound. Returns the VPN interface.
fn check_vpn_and_prefix_list(config: &ValidatedConfig, names: [&str; 4]) -> String {
    use config::validated::{GatewayKind, RouteTarget, SgPeer};
    let [vgw, table, list, group] = names;
    let vpc = &config.vpcs[0];
    let [gw] = vpc.gateways.as_slice() else {
        panic!("one gateway: {:?}", vpc.gateways);
    };
    assert_eq!((gw.name.as_str(), gw.kind), (vgw, GatewayKind::Vpn));
    let nets: Vec<String> = gw.networks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["172.16.0.0/16", "192.168.10.0/24"]);
    let table = vpc
        .route_tables
        .iter()
        .find(|t| t.name == table)
        .expect("table");
    let routes: Vec<(String, &RouteTarget, bool)> = table
        .routes
        .iter()
        .map(|r| (r.destination.to_string(), &r.target, r.propagated))
        .collect();
    let to_vgw = RouteTarget::Gateway(0);
    assert_eq!(
        routes,
        [
            ("0.0.0.0/0".to_owned(), &to_vgw, false),
            ("172.16.0.0/16".to_owned(), &to_vgw, true),
            ("192.168.10.0/24".to_owned(), &to_vgw, true),
        ]
    );
    let [pl] = vpc.prefix_lists.as_slice() else {
        panic!("one prefix list: {:?}", vpc.prefix_lists);
    };
    assert_eq!(pl.name, list);
    let cidrs: Vec<String> = pl.cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["192.0.2.0/26", "198.51.100.64/26"]);
    let group = vpc
        .security_groups
        .iter()
        .find(|g| g.name == group)
        .expect("group");
    assert_eq!(group.inbound[1].peer, SgPeer::PrefixList(0));
    // Outbound: the partners' list only (the AWS-managed and IPv6 lists are left out).
    let outbound: Vec<&SgPeer> = group.outbound.iter().map(|r| &r.peer).collect();
    assert_eq!(outbound, [&SgPeer::PrefixList(0)]);
    // The reference evaluator: SSH from the office over the VPN, HTTPS only from partners.
    let iface = gw.interface.clone();
    let verdict = |ingress: Ingress<'_>, src: &str, dst: &str, dport: u16| {
        let packet = Packet {
            src: ip(src),
            dst: ip(dst),
            proto: 6,
            sport: 40000,
            dport,
            icmp_type: 0,
            icmp_code: 0,
        };
        evaluate(config, ingress, &packet)
            .expect("evaluates")
            .verdict
    };
    let app = "10.0.1.10";
    assert!(matches!(
        verdict(Ingress::Interface(&iface), "172.16.0.5", app, 22),
        Verdict::Deliver { .. }
    ));
    assert_eq!(
        verdict(Ingress::Interface(&iface), "172.16.0.5", app, 443),
        Verdict::Drop(DropReason::SecurityGroupInbound)
    );
    let subnet = Ingress::Subnet {
        vpc: &vpc.name,
        subnet: &vpc.subnets[0].name,
    };
    assert_eq!(
        verdict(subnet, app, "192.0.2.10", 443),
        Verdict::Deliver {
            interface: iface.clone(),
            src: ip(app).into(),
            dst: ip("192.0.2.10").into(),
        },
        "to a partner through the VPN (the default route)"
    );
    iface
}

/// The report's line for `resource` saying `text`, as `FILE:LINE: ID (TYPE): severity: ...`.
fn report_line<'r>(lines: &'r [String], start: &str, text: &str) -> &'r str {
    lines
        .iter()
        .find(|l| l.contains(start) && l.contains(text))
        .unwrap_or_else(|| panic!("no line '{start}...{text}':\n{}", lines.join("\n")))
}

#[test]
fn a_template_vpn_gateway_with_static_routes_and_a_prefix_list_are_imported() {
    let path = fixture("vpn-prefix-list.yaml");
    let imported =
        import::cloudformation_file(&path, &options("VPNGateway=vpn-office", "")).expect("imports");
    assert!(
        imported.yaml.contains(
            "    vpn_gateway:   # AWS::EC2::VPNGateway VPNGateway (line 19)\n      name: VPNGateway\n      interface: vpn-office\n      routes: [172.16.0.0/16, 192.168.10.0/24]\n"
        ),
        "{}",
        imported.yaml
    );
    assert!(imported.yaml.contains("        propagate: [VPNGateway]\n"));
    assert!(imported.yaml.contains("source: pl:PartnerList }"));
    let config = load(&imported.yaml);
    let iface = check_vpn_and_prefix_list(
        &config,
        ["VPNGateway", "PrivateRouteTable", "PartnerList", "AppGroup"],
    );
    assert_eq!(iface, "vpn-office");
    let lines = imported.report.lines();
    let file = path.display().to_string();
    for (start, text) in [
        (
            ":41: BackupVPN (AWS::EC2::VPNConnection): not imported: ",
            "dynamic routing (BGP)",
        ),
        (
            ":58: ToS3 (AWS::EC2::Route): not imported: ",
            "routes to prefix lists",
        ),
        (
            ":73: PartnerV6List (AWS::EC2::PrefixList): not imported: ",
            "AddressFamily IPv6",
        ),
        (
            ":89: AppGroup (AWS::EC2::SecurityGroup): not imported: ",
            "prefix list pl-63a5400a is not in the input",
        ),
        (
            ":90: AppGroup (AWS::EC2::SecurityGroup): not imported: ",
            "prefix list PartnerV6List could not be imported",
        ),
        (
            ":25: OfficeGateway (AWS::EC2::CustomerGateway): ignored: ",
            "far end of the VPN",
        ),
    ] {
        let line = report_line(&lines, start, text);
        assert!(line.starts_with(&file), "{line}");
    }
    // Without --interfaces the VPN gateway's link is a placeholder, and the report says so.
    let imported = import::cloudformation_file(&path, &Options::default()).expect("imports");
    let lines = imported.report.lines();
    report_line(
        &lines,
        ":19: VPNGateway (AWS::EC2::VPNGateway): assumed: ",
        "router interface 'vpn0' is a placeholder: give the real one with --interfaces VPNGateway=IFNAME",
    );
    assert_eq!(load(&imported.yaml).vpcs[0].gateways[0].interface, "vpn0");
}

#[test]
fn describe_output_with_a_vpn_gateway_and_prefix_lists_is_imported() {
    let dir = fixture("describe-vpn");
    let imported =
        import::describe_path(&dir, &options("office-vgw=vpn-office", "")).expect("imports");
    let config = load(&imported.yaml);
    let iface = check_vpn_and_prefix_list(
        &config,
        ["office-vgw", "main", "partners", "sg-0a1b2c3d4eEXAMPLE"],
    );
    assert_eq!(iface, "vpn-office");
    assert!(imported.yaml.contains("        propagate: [office-vgw]\n"));
    let lines = imported.report.lines();
    for (start, text) in [
        (
            "vpn-connections.json:21: vpn-99887766ffeeddccb (describe-vpn-connections): not imported: ",
            "dynamic routing (BGP)",
        ),
        (
            "vpn-connections.json:15: vpn-1122334455aabbccd (describe-vpn-connections): ignored: ",
            "static route 192.168.99.0/24 is deleted",
        ),
        (
            "prefix-lists.json:15: pl-63a5400a (describe-managed-prefix-lists): not imported: ",
            "an AWS-managed list: its entries are not in the input",
        ),
        (
            "security-groups.json:24: sg-0a1b2c3d4eEXAMPLE (describe-security-groups): not imported: ",
            "prefix list pl-63a5400a could not be imported",
        ),
        (
            "route-tables.json:19: rtb-0b1c2d3e4fEXAMPLE (describe-route-tables): not imported: ",
            "routes to prefix lists",
        ),
    ] {
        report_line(&lines, start, text);
    }
    // The entries of a list come from the file named after it: without it, the list and the
    // rules naming it are reported, and the import still validates. An AWS-managed list's
    // entries are taken when given, as of the output (reported as assumed).
    let copy = std::env::temp_dir().join(format!("vpc-import-vpn-{}", std::process::id()));
    std::fs::create_dir_all(&copy).expect("dir");
    for entry in std::fs::read_dir(&dir).expect("fixture") {
        let entry = entry.expect("entry").path();
        if !entry.ends_with("pl-0a1b2c3d4e5f60789.json") {
            let name = entry.file_name().expect("name");
            std::fs::copy(&entry, copy.join(name)).expect("copy");
        }
    }
    std::fs::write(
        copy.join("get-managed-prefix-list-entries-pl-63a5400a.json"),
        r#"{ "Entries": [ { "Cidr": "52.216.0.0/15" }, { "Cidr": "3.5.0.0/19" } ] }"#,
    )
    .expect("write");
    let imported = import::describe_path(&copy, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    let lists: Vec<&str> = config.vpcs[0]
        .prefix_lists
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(lists, ["com.amazonaws.us-east-1.s3"]);
    let lines = imported.report.lines();
    report_line(
        &lines,
        "pl-63a5400a (describe-managed-prefix-lists): assumed: ",
        "an AWS-managed list: its entries as of this output",
    );
    report_line(
        &lines,
        "pl-0a1b2c3d4e5f60789 (describe-managed-prefix-lists): not imported: ",
        "its entries are not in the input (save `aws ec2 get-managed-prefix-list-entries --prefix-list-id pl-0a1b2c3d4e5f60789` as pl-0a1b2c3d4e5f60789.json)",
    );
    report_line(
        &lines,
        "vpn-gateways.json:4: vgw-0e1f2a3b4cEXAMPLE (describe-vpn-gateways): assumed: ",
        "router interface 'vpn0' is a placeholder",
    );
    std::fs::remove_dir_all(&copy).ok();
}

#[test]
fn a_vpn_gateway_without_static_routes_or_a_vpc_is_left_out_and_reported() {
    let template = "Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  RT:
    Type: AWS::EC2::RouteTable
    Properties: { VpcId: !Ref VPC }
  VGW:
    Type: AWS::EC2::VPNGateway
    Properties: { Type: ipsec.1 }
  Attach:
    Type: AWS::EC2::VPCGatewayAttachment
    Properties: { VpcId: !Ref VPC, VpnGatewayId: !Ref VGW }
  Bgp:
    Type: AWS::EC2::VPNConnection
    Properties: { Type: ipsec.1, CustomerGatewayId: cgw-1, VpnGatewayId: !Ref VGW }
  Prop:
    Type: AWS::EC2::VPNGatewayRoutePropagation
    Properties: { RouteTableIds: [!Ref RT], VpnGatewayId: !Ref VGW }
  ToVgw:
    Type: AWS::EC2::Route
    Properties: { RouteTableId: !Ref RT, DestinationCidrBlock: 172.16.0.0/16, GatewayId: !Ref VGW }
  Spare:
    Type: AWS::EC2::VPNGateway
    Properties: { Type: ipsec.1 }
  Overlap:
    Type: AWS::EC2::VPNConnection
    Properties: { Type: ipsec.1, StaticRoutesOnly: true, CustomerGatewayId: cgw-1, VpnGatewayId: !Ref VGW }
  Inside:
    Type: AWS::EC2::VPNConnectionRoute
    Properties: { VpnConnectionId: !Ref Overlap, DestinationCidrBlock: 10.0.128.0/20 }
";
    let imported =
        import::cloudformation::import("t.yaml", template, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    assert!(config.vpcs[0].gateways.is_empty(), "{}", imported.yaml);
    assert!(!imported.yaml.contains("propagate"), "{}", imported.yaml);
    let lines = imported.report.lines();
    for (start, text) in [
        (
            "t.yaml:9: VGW (AWS::EC2::VPNGateway): not imported: ",
            "no VPN connection gives it a static route",
        ),
        (
            "t.yaml:15: Bgp (AWS::EC2::VPNConnection): not imported: ",
            "dynamic routing (BGP)",
        ),
        (
            "t.yaml:18: Prop (AWS::EC2::VPNGatewayRoutePropagation): not imported: ",
            "VPN gateway VGW is not imported in VPC VPC: the route propagation into RT",
        ),
        (
            "t.yaml:21: ToVgw (AWS::EC2::Route): not imported: ",
            "VPN gateway VGW is not imported in VPC VPC",
        ),
        (
            "t.yaml:24: Spare (AWS::EC2::VPNGateway): not imported: ",
            "attached to no imported VPC",
        ),
        (
            "t.yaml:30: Inside (AWS::EC2::VPNConnectionRoute): not imported: ",
            "static route 10.0.128.0/20 overlaps the VPC block 10.0.0.0/16",
        ),
    ] {
        report_line(&lines, start, text);
    }
    // A second gateway on the same VPC: the format has one.
    let two = template.replace(
        "  Overlap:",
        "  Attach2:\n    Type: AWS::EC2::VPCGatewayAttachment\n    Properties: { VpcId: !Ref VPC, VpnGatewayId: !Ref Spare }\n  Overlap:",
    );
    let imported =
        import::cloudformation::import("t.yaml", &two, &Options::default()).expect("imports");
    report_line(
        &imported.report.lines(),
        "Spare (AWS::EC2::VPNGateway): not imported: ",
        "a VPC has one VPN gateway: VGW already is VPC VPC's",
    );
}

#[test]
fn a_prefix_list_named_by_two_vpcs_is_written_into_each_and_an_unused_one_is_reported() {
    let template = "Resources:
  A:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  B:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.1.0.0/16 }
  Office:
    Type: AWS::EC2::PrefixList
    Properties:
      PrefixListName: office
      AddressFamily: IPv4
      MaxEntries: 5
      Entries: [{ Cidr: 203.0.113.0/24 }, { Cidr: 203.0.113.0/24 }, { Cidr: 198.51.100.7/24 }]
  Unused:
    Type: AWS::EC2::PrefixList
    Properties: { PrefixListName: unused, AddressFamily: IPv4, MaxEntries: 1, Entries: [{ Cidr: 192.0.2.0/24 }] }
  GroupA:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: a
      VpcId: !Ref A
      SecurityGroupIngress: [{ IpProtocol: tcp, FromPort: 22, ToPort: 22, SourcePrefixListId: !Ref Office }]
  GroupB:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: b
      VpcId: !Ref B
      SecurityGroupIngress: [{ IpProtocol: tcp, FromPort: 22, ToPort: 22, SourcePrefixListId: !Ref Office }]
";
    let imported =
        import::cloudformation::import("t.yaml", template, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    for vpc in &config.vpcs {
        let lists: Vec<(&str, Vec<String>)> = vpc
            .prefix_lists
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    l.cidrs.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            lists,
            [("Office", vec!["203.0.113.0/24".to_owned()])],
            "VPC {}: the entry given twice is written once, the one with host bits not at all",
            vpc.name
        );
        assert_eq!(
            vpc.security_groups[0].inbound[0].peer,
            config::validated::SgPeer::PrefixList(0)
        );
    }
    let lines = imported.report.lines();
    report_line(
        &lines,
        "t.yaml:14: Office (AWS::EC2::PrefixList): not imported: ",
        "entry 198.51.100.7/24 has host bits set (the network is 198.51.100.0/24)",
    );
    report_line(
        &lines,
        "t.yaml:16: Unused (AWS::EC2::PrefixList): ignored: ",
        "no imported security group rule names it",
    );
}

/// Every one of `expected` (consecutive lines) is in `yaml`.
fn assert_lines(yaml: &str, expected: &[&str]) {
    for lines in expected {
        assert!(yaml.contains(lines), "missing:\n{lines}\nin:\n{yaml}");
    }
}

#[test]
fn a_dual_stack_template_imports_its_ipv6_blocks_gateways_routes_and_rules() {
    let imported = import::cloudformation_file(&fixture("ipv6.yaml"), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = load(&imported.yaml);
    // What the validator reads back.
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.name, "VPC");
    assert_eq!(
        vpc.ipv6_cidr_block,
        Some("2001:db8:1234:1a00::/56".parse().expect("net"))
    );
    let eigw = vpc.egress_only_internet_gateway.as_ref().expect("eigw");
    assert_eq!(eigw.name, "EIGW");
    let v6: Vec<String> = vpc
        .subnets
        .iter()
        .map(|s| s.ipv6_cidr.map(|n| n.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(v6, ["2001:db8:1234:1a00::/64", "2001:db8:1234:1a01::/64"]);
    let addresses: Vec<String> = vpc
        .instances
        .iter()
        .flat_map(|i| i.ipv6_addresses.iter().map(ToString::to_string))
        .collect();
    assert_eq!(
        addresses,
        ["2001:db8:1234:1a00::10", "2001:db8:1234:1a01::20"]
    );
    // Both IPv6 routes come across: ::/0 to the internet gateway (public) and to the
    // egress-only one (private).
    let routes: Vec<(String, String, &config::validated::RouteTarget)> = vpc
        .route_tables
        .iter()
        .flat_map(|t| {
            t.routes
                .iter()
                .map(|r| (t.name.clone(), r.destination.to_string(), &r.target))
        })
        .collect();
    use config::validated::RouteTarget::{EgressOnlyGateway, InternetGateway};
    let route = |table: &str, dest: &str, target| (table.to_owned(), dest.to_owned(), target);
    assert_eq!(
        routes,
        [
            route("PublicRT", "0.0.0.0/0", &InternetGateway),
            route("PublicRT", "::/0", &InternetGateway),
            route("PrivateRT", "::/0", &EgressOnlyGateway),
        ]
    );
    // Nothing left out.
    let left_out: Vec<&str> = imported
        .report
        .notes
        .iter()
        .filter(|n| n.severity == Severity::NotImported)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(left_out, Vec::<&str>::new(), "{}", imported.report);
    assert_lines(
        &imported.yaml,
        &[
            "    cidr_blocks: [10.0.0.0/16]\n    ipv6_cidr_block: 2001:db8:1234:1a00::/56\n    internet_gateway:",
            // The egress-only gateway gets an uplink placeholder, as the internet gateway does.
            "      name: IGW\n      interface: uplink0\n    egress_only_internet_gateway:   # AWS::EC2::EgressOnlyInternetGateway EIGW (line 20)\n      name: EIGW\n      interface: uplink1\n",
            // Ipv6CidrBlock on the subnet, and an AWS::EC2::SubnetCidrBlock.
            "        cidr: 10.0.0.0/24\n        ipv6_cidr: 2001:db8:1234:1a00::/64\n        interface: public\n",
            "        cidr: 10.0.1.0/24\n        ipv6_cidr: 2001:db8:1234:1a01::/64\n        interface: private\n",
            "          - { destination: 0.0.0.0/0, target: IGW }\n          - { destination: \"::/0\", target: IGW }\n",
            "      - name: PrivateRT   # AWS::EC2::RouteTable PrivateRT (line 50)\n        routes:\n          - { destination: \"::/0\", target: EIGW }\n",
            "        inbound:\n          - { rule: 100, protocol: tcp, ports: 1024-65535, cidr: \"::/0\", action: allow }\n        outbound:\n          - { rule: 100, protocol: tcp, ports: 443, cidr: \"::/0\", action: allow }\n",
            "          - { protocol: tcp, ports: 443, source: \"::/0\" }\n          - { protocol: tcp, ports: 443, source: 0.0.0.0/0 }\n          - { protocol: tcp, ports: 22, source: 2001:db8:99::/64 }\n",
            "        private_ip: 10.0.0.10\n        ipv6_addresses: [2001:db8:1234:1a00::10]\n        security_groups: [WebSG]\n",
            "        private_ip: 10.0.1.10\n        ipv6_addresses: [2001:db8:1234:1a01::20]\n",
        ],
    );
}

#[test]
fn an_ipv6_route_over_a_peering_connection_needs_both_ipv6_blocks() {
    let template = "Resources:
  App:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  AppV6:
    Type: AWS::EC2::VPCCidrBlock
    Properties: { VpcId: !Ref App, Ipv6CidrBlock: 2001:db8:1234:1a00::/56 }
  Shared:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.1.0.0/16 }
  SharedV6:
    Type: AWS::EC2::VPCCidrBlock
    Properties: { VpcId: !Ref Shared, Ipv6CidrBlock: 2001:db8:1234:1b00::/56 }
  Pcx:
    Type: AWS::EC2::VPCPeeringConnection
    Properties: { VpcId: !Ref App, PeerVpcId: !Ref Shared }
  RT:
    Type: AWS::EC2::RouteTable
    Properties: { VpcId: !Ref App }
  ToShared:
    Type: AWS::EC2::Route
    Properties: { RouteTableId: !Ref RT, DestinationIpv6CidrBlock: 2001:db8:1234:1b00::/56, VpcPeeringConnectionId: !Ref Pcx }
";
    let imported =
        import::cloudformation::import("t.yaml", template, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    let route = &config.vpcs[0].route_tables[0].routes[0];
    assert_eq!(
        (route.destination.to_string(), &route.target),
        (
            "2001:db8:1234:1b00::/56".to_owned(),
            &config::validated::RouteTarget::Peering(0)
        ),
        "{}",
        imported.yaml
    );
    // The peer without an IPv6 block: the connection carries IPv4 only, the route is reported.
    let v4_peer = template.replace(
        "  SharedV6:\n    Type: AWS::EC2::VPCCidrBlock",
        "  SharedV6:\n    Type: AWS::S3::Bucket",
    );
    assert_ne!(v4_peer, template);
    let imported =
        import::cloudformation::import("t.yaml", &v4_peer, &Options::default()).expect("imports");
    let config = load(&imported.yaml);
    assert_eq!(
        config.vpcs[0].route_tables[0].routes,
        [],
        "{}",
        imported.yaml
    );
    let notes: Vec<&str> = imported
        .report
        .notes
        .iter()
        .filter(|n| n.resource == "ToShared")
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(
        notes,
        [
            "peering connection Pcx carries IPv6 only between VPCs that both have an IPv6 block: the route to 2001:db8:1234:1b00::/56 is not imported"
        ],
        "{}",
        imported.report
    );
}

#[test]
fn ipv6_values_the_format_cannot_take_are_reported() {
    // Each case: a replacement in the dual-stack template, what the report must say about which
    // resource, and (part of) the line the note must point at.
    let text = std::fs::read_to_string(fixture("ipv6.yaml")).expect("fixture");
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "Ipv6CidrBlock: 2001:db8:1234:1a00::/56",
            "Ipv6CidrBlock: 2001:db8:1234:1a00::/64",
            "VPCv6",
            "IPv6 block 2001:db8:1234:1a00::/64 is not a /56: not imported",
            "Ipv6CidrBlock: 2001:db8:1234:1a00::/64",
        ),
        (
            "Ipv6CidrBlock: 2001:db8:1234:1a01::/64",
            "Ipv6CidrBlock: 2001:db8:1234:1b01::/64",
            "PrivateV6",
            "IPv6 block 2001:db8:1234:1b01::/64 is not inside VPC VPC's IPv6 block: not imported",
            "Ipv6CidrBlock: 2001:db8:1234:1b01::/64",
        ),
        (
            "      Ipv6CidrBlock: 2001:db8:1234:1a00::/56",
            "      AmazonProvidedIpv6CidrBlock: true",
            "PrivateV6",
            "IPv6 block 2001:db8:1234:1a01::/64: VPC VPC has no IPv6 block (give it its /56 as ipv6_cidr_block): not imported",
            "Ipv6CidrBlock: 2001:db8:1234:1a01::/64",
        ),
        (
            "      Ipv6CidrBlock: 2001:db8:1234:1a00::/56",
            "      AmazonProvidedIpv6CidrBlock: true",
            "VPCv6",
            "AmazonProvidedIpv6CidrBlock: the IPv6 block is assigned by AWS when the stack is created, so the template has no value for it: not imported (fill in ipv6_cidr_block: with the VPC's /56, and the subnets' ipv6_cidr: /64s)",
            "AmazonProvidedIpv6CidrBlock: true",
        ),
        (
            "Ipv6Address: 2001:db8:1234:1a00::10",
            "Ipv6Address: 2001:db8:1234:1a01::10",
            "Web",
            "IPv6 address 2001:db8:1234:1a01::10 is not in its subnet's IPv6 block 2001:db8:1234:1a00::/64: not imported",
            "  Web:",
        ),
        (
            "DestinationIpv6CidrBlock: \"::/0\", EgressOnlyInternetGatewayId",
            "DestinationCidrBlock: 0.0.0.0/0, EgressOnlyInternetGatewayId",
            "PrivateDefaultV6",
            "an egress-only internet gateway carries IPv6 only: the route to 0.0.0.0/0 is not imported",
            "  PrivateDefaultV6:",
        ),
        (
            "      Ipv6CidrBlock: 2001:db8:1234:1a00::/56",
            "      AmazonProvidedIpv6CidrBlock: true",
            "PublicDefaultV6",
            "VPC VPC has no IPv6 block (give it its /56 as ipv6_cidr_block): the route to ::/0 is not imported",
            "  PublicDefaultV6:",
        ),
        (
            "DestinationIpv6CidrBlock: \"::/0\", EgressOnlyInternetGatewayId: !Ref EIGW",
            "DestinationIpv6CidrBlock: \"64:ff9b::/96\", NatGatewayId: nat-1",
            "PrivateDefaultV6",
            "a NAT gateway translates IPv4 only (NAT64 is not part of the format): the route to 64:ff9b::/96 is not imported",
            "  PrivateDefaultV6:",
        ),
    ];
    for (from, to, resource, message, at) in cases {
        assert!(text.contains(from), "{from}");
        let template = text.replace(from, to);
        let report = match import::cloudformation::import("t.yaml", &template, &Options::default())
        {
            Ok(i) => i.report,
            Err(e) => e.report().cloned().unwrap_or_else(|| panic!("{to}: {e}")),
        };
        let note = report
            .notes
            .iter()
            .find(|n| n.resource == *resource && n.message == *message)
            .unwrap_or_else(|| panic!("{to}: no note '{message}' on {resource}:\n{report}"));
        assert_eq!(note.severity, Severity::NotImported);
        // A resource's own notes point at its first line under the logical ID (`Type:`).
        let under_key = usize::from(at.ends_with(':'));
        let line = template.lines().position(|l| l.contains(at)).expect("line") + 1 + under_key;
        assert_eq!(
            note.line as usize, line,
            "{note:?} ('{at}' is on line {line})"
        );
    }
}
