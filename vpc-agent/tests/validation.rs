//! One test per rule of the format: the exact message, path and line:column of the node.

use vpc_agent::config::{
    load_str,
    validated::{SgPeer, SgRuleDef, TrafficMatch},
};

/// Every diagnostic line of `yaml` (empty if it is valid).
fn errors(yaml: &str) -> Vec<String> {
    match load_str("t.yaml", yaml) {
        Ok(_) => Vec::new(),
        Err(d) => d.lines().collect(),
    }
}

/// A valid VPC (6 lines); tests append to it, so their lines start at 7.
macro_rules! base {
    () => {
        "vpcs:
  - name: prod
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: uplink0 }
    subnets:
      - { name: a, cidr: 10.0.0.0/24, interface: sub0 }
"
    };
}

/// `rejects!(test_name, yaml, "LINE:COL: PATH: message", ...)`: exactly these diagnostics.
macro_rules! rejects {
    ($name:ident, $yaml:expr, $($expected:expr),+ $(,)?) => {
        #[test]
        fn $name() {
            let expected: Vec<String> = vec![$(format!("t.yaml:{}", $expected)),+];
            assert_eq!(errors($yaml), expected);
        }
    };
}

#[test]
fn base_is_valid() {
    assert_eq!(errors(base!()), Vec::<String>::new());
}

// ----- VPCs and CIDR blocks -----

rejects!(
    vpc_names_are_unique,
    concat!(base!(), "  - { name: prod, cidr_blocks: [10.1.0.0/16] }\n"),
    "7:13: vpcs[1].name: duplicate VPC name 'prod' (first defined at line 2)"
);
rejects!(
    vpc_name_not_empty,
    "vpcs:\n  - { name: '', cidr_blocks: [10.1.0.0/16] }\n",
    "2:13: vpcs[0].name: a VPC name must not be empty"
);
rejects!(
    vpc_needs_a_block,
    "vpcs:\n  - { name: x, cidr_blocks: [] }\n",
    "2:29: vpcs[0].cidr_blocks: a VPC needs at least one CIDR block"
);
rejects!(
    cidr_must_parse,
    "vpcs:\n  - { name: x, cidr_blocks: [10.0.0/16] }\n",
    "2:30: vpcs[0].cidr_blocks[0]: invalid CIDR '10.0.0/16': expected an IPv4 network such as 10.0.0.0/16"
);
rejects!(
    cidr_without_host_bits,
    "vpcs:\n  - { name: x, cidr_blocks: [10.0.0.1/16] }\n",
    "2:30: vpcs[0].cidr_blocks[0]: CIDR 10.0.0.1/16 has host bits set (the network is 10.0.0.0/16)"
);
rejects!(
    vpc_block_at_most_16,
    "vpcs:\n  - { name: x, cidr_blocks: [10.0.0.0/8] }\n",
    "2:30: vpcs[0].cidr_blocks[0]: a VPC CIDR block must be between /16 and /28, got /8"
);
rejects!(
    vpc_block_at_least_28,
    "vpcs:\n  - { name: x, cidr_blocks: [10.0.0.0/29] }\n",
    "2:30: vpcs[0].cidr_blocks[0]: a VPC CIDR block must be between /16 and /28, got /29"
);
rejects!(
    secondary_blocks_do_not_overlap,
    "vpcs:\n  - { name: x, cidr_blocks: [10.0.0.0/16, 10.0.128.0/17] }\n",
    "2:43: vpcs[0].cidr_blocks[1]: CIDR block 10.0.128.0/17 overlaps 10.0.0.0/16 (cidr_blocks[0])"
);

// ----- Subnets and interfaces -----

rejects!(
    subnet_inside_vpc,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.1.0.0/24, interface: sub1 }\n"
    ),
    "7:26: vpcs[0].subnets[1].cidr: subnet 10.1.0.0/24 is not inside a CIDR block of VPC 'prod'"
);
rejects!(
    subnets_do_not_overlap,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.0.0/23, interface: sub1 }\n"
    ),
    "7:26: vpcs[0].subnets[1].cidr: subnet 10.0.0.0/23 overlaps subnet 'a' (10.0.0.0/24)"
);
rejects!(
    subnet_prefix_range,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/29, interface: sub1 }\n"
    ),
    "7:26: vpcs[0].subnets[1].cidr: a subnet CIDR block must be between /16 and /28, got /29"
);
rejects!(
    subnet_names_are_unique,
    concat!(
        base!(),
        "      - { name: a, cidr: 10.0.1.0/24, interface: sub1 }\n"
    ),
    "7:17: vpcs[0].subnets[1].name: duplicate subnet name 'a' (first defined at line 6)"
);
rejects!(
    interfaces_are_unique_across_subnets_and_uplinks,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24, interface: uplink0 }\n"
    ),
    "7:50: vpcs[0].subnets[1].interface: interface 'uplink0' is already used by internet gateway 'igw' of VPC 'prod'"
);
rejects!(
    interfaces_are_unique_across_vpcs,
    concat!(
        base!(),
        "  - name: dev\n    cidr_blocks: [10.1.0.0/16]\n    subnets:\n",
        "      - { name: a, cidr: 10.1.0.0/24, interface: sub0 }\n"
    ),
    "10:50: vpcs[1].subnets[0].interface: interface 'sub0' is already used by subnet 'a' of VPC 'prod'"
);
// ----- Instance ports (ENIs) -----

rejects!(
    instance_ports_are_unique_interfaces,
    concat!(
        base!(),
        "    instances:\n",
        "      - { name: i1, subnet: a, interface: eni1, private_ip: 10.0.0.10 }\n",
        "      - { name: i2, subnet: a, interface: eni1, private_ip: 10.0.0.11 }\n",
        "      - { name: i3, subnet: a, interface: sub0, private_ip: 10.0.0.12 }\n"
    ),
    "9:43: vpcs[0].instances[1].interface: interface 'eni1' is already used by instance 'i1' of VPC 'prod'",
    "10:43: vpcs[0].instances[2].interface: interface 'sub0' is already used by subnet 'a' of VPC 'prod'"
);
rejects!(
    an_instance_without_a_port_needs_a_shared_segment,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24 }\n",
        "    instances:\n",
        "      - { name: i1, subnet: b, private_ip: 10.0.1.10 }\n",
        "      - { name: i2, subnet: b, interface: eni2, private_ip: 10.0.1.11 }\n"
    ),
    "9:17: vpcs[0].instances[0].interface: instance 'i1' needs an interface of its own (its router port): subnet 'b' has no shared segment (interface)"
);

/// The warnings of a valid file.
fn warnings(yaml: &str) -> Vec<String> {
    let config = load_str("t.yaml", yaml).expect("valid");
    config.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn a_shared_segment_whose_groups_would_forbid_is_a_warning() {
    let segment = concat!(
        base!(),
        "    security_groups:\n",
        "      - { name: web, inbound: [{ protocol: tcp, ports: 443, source: 0.0.0.0/0 }] }\n",
        "    instances:\n",
        "      - { name: w1, subnet: a, private_ip: 10.0.0.10, security_groups: [web] }\n",
        "      - { name: w2, subnet: a, private_ip: 10.0.0.11, security_groups: [web] }\n"
    );
    assert_eq!(
        warnings(segment),
        [
            "6:50: vpcs[0].subnets[0].interface: warning: subnet 'a' is a shared segment: its hosts \
          reach each other without the router, so security groups between them are not enforced \
          (instance 'w1' would not allow everything from 'w2'); give each instance its own \
          `interface` to enforce them"
        ]
    );
    // Members of the default group allow each other everything: nothing to warn about; nor
    // with the instances on ports of their own.
    let members = concat!(
        base!(),
        "    instances:\n",
        "      - { name: w1, subnet: a, private_ip: 10.0.0.10 }\n",
        "      - { name: w2, subnet: a, private_ip: 10.0.0.11 }\n"
    );
    assert_eq!(warnings(members), Vec::<String>::new());
    let ports = segment
        .replace(
            "private_ip: 10.0.0.10",
            "interface: e1, private_ip: 10.0.0.10",
        )
        .replace(
            "private_ip: 10.0.0.11",
            "interface: e2, private_ip: 10.0.0.11",
        );
    assert_eq!(warnings(&ports), Vec::<String>::new());
}

rejects!(
    subnet_route_table_exists,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24, interface: sub1, route_table: rt }\n"
    ),
    "7:69: vpcs[0].subnets[1].route_table: unknown route table in VPC 'prod': 'rt'"
);
rejects!(
    subnet_network_acl_exists,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24, interface: sub1, network_acl: acl }\n"
    ),
    "7:69: vpcs[0].subnets[1].network_acl: unknown network ACL in VPC 'prod': 'acl'"
);

// ----- Addresses -----

rejects!(
    instance_address_parses,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.300 }\n"
    ),
    "8:43: vpcs[0].instances[0].private_ip: invalid IPv4 address '10.0.0.300'"
);
rejects!(
    instance_address_inside_subnet,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.1.10 }\n"
    ),
    "8:43: vpcs[0].instances[0].private_ip: address 10.0.1.10 is not inside subnet 'a' (10.0.0.0/24)"
);
rejects!(
    router_address_is_reserved,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.1 }\n"
    ),
    "8:43: vpcs[0].instances[0].private_ip: address 10.0.0.1 is reserved in subnet 'a' (AWS reserves 10.0.0.0 to 10.0.0.3 and 10.0.0.255; the router is 10.0.0.1)"
);
rejects!(
    broadcast_address_is_reserved,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.255 }\n"
    ),
    "8:43: vpcs[0].instances[0].private_ip: address 10.0.0.255 is reserved in subnet 'a' (AWS reserves 10.0.0.0 to 10.0.0.3 and 10.0.0.255; the router is 10.0.0.1)"
);
rejects!(
    instance_subnet_exists,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: z, private_ip: 10.0.0.10 }\n"
    ),
    "8:28: vpcs[0].instances[0].subnet: unknown subnet in VPC 'prod': 'z'"
);
rejects!(
    private_addresses_are_unique,
    concat!(
        base!(),
        "    nat_gateways:\n      - { name: nat, subnet: a, private_ip: 10.0.0.10, elastic_ip: 198.51.100.1 }\n",
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10 }\n"
    ),
    "10:43: vpcs[0].instances[0].private_ip: address 10.0.0.10 is already used by NAT gateway 'nat'"
);
rejects!(
    nat_address_not_reserved,
    concat!(
        base!(),
        "    nat_gateways:\n      - { name: nat, subnet: a, private_ip: 10.0.0.2, elastic_ip: 198.51.100.1 }\n"
    ),
    "8:45: vpcs[0].nat_gateways[0].private_ip: address 10.0.0.2 is reserved in subnet 'a' (AWS reserves 10.0.0.0 to 10.0.0.3 and 10.0.0.255; the router is 10.0.0.1)"
);
rejects!(
    public_addresses_are_unique,
    concat!(
        base!(),
        "    nat_gateways:\n      - { name: nat, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }\n",
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10, public_ip: 198.51.100.1 }\n"
    ),
    "10:65: vpcs[0].instances[0].public_ip: public address 198.51.100.1 is already used by NAT gateway 'nat' of VPC 'prod'"
);
rejects!(
    public_address_needs_internet_gateway,
    "vpcs:\n  - name: x\n    cidr_blocks: [10.0.0.0/16]\n    subnets: [{ name: a, cidr: 10.0.0.0/24, interface: s }]\n    instances: [{ name: i, subnet: a, private_ip: 10.0.0.10, public_ip: 198.51.100.1 }]\n",
    "5:73: vpcs[0].instances[0].public_ip: a public address needs an internet gateway, and VPC 'x' has none"
);
rejects!(
    instance_names_are_unique,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10 }\n",
        "      - { name: i, subnet: a, private_ip: 10.0.0.11 }\n"
    ),
    "9:17: vpcs[0].instances[1].name: duplicate instance name 'i' (first defined at line 8)"
);
rejects!(
    instance_security_groups_exist,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10, security_groups: [web] }\n"
    ),
    "8:72: vpcs[0].instances[0].security_groups[0]: unknown security group in VPC 'prod': 'web'"
);
rejects!(
    instance_security_groups_listed_once,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10, security_groups: [default, default] }\n"
    ),
    "8:81: vpcs[0].instances[0].security_groups[1]: security group 'default' is listed twice"
);
rejects!(
    instance_needs_a_security_group,
    concat!(
        base!(),
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.10, security_groups: [] }\n"
    ),
    "8:71: vpcs[0].instances[0].security_groups: an instance needs at least one security group (omit the key for 'default')"
);

// ----- Route tables -----

rejects!(
    route_destination_is_not_a_local_block,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes: [{ destination: 10.0.0.0/16, target: igw }]\n"
    ),
    "9:33: vpcs[0].route_tables[0].routes[0].destination: destination 10.0.0.0/16 is the VPC's local route and cannot be overridden"
);
rejects!(
    route_not_more_specific_than_local,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes: [{ destination: 10.0.1.0/24, target: igw }]\n"
    ),
    "9:33: vpcs[0].route_tables[0].routes[0].destination: destination 10.0.1.0/24 is more specific than the local route 10.0.0.0/16; no route may be inside a VPC CIDR block"
);
rejects!(
    route_destination_without_host_bits,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes: [{ destination: 0.0.0.1/0, target: igw }]\n"
    ),
    "9:33: vpcs[0].route_tables[0].routes[0].destination: CIDR 0.0.0.1/0 has host bits set (the network is 0.0.0.0/0)"
);
rejects!(
    route_destinations_are_unique,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes:\n",
        "          - { destination: 0.0.0.0/0, target: igw }\n",
        "          - { destination: 0.0.0.0/0, target: blackhole }\n"
    ),
    "11:28: vpcs[0].route_tables[0].routes[1].destination: duplicate destination 0.0.0.0/0 in route table 'rt' (also at line 10)"
);
rejects!(
    route_table_names_are_unique,
    concat!(base!(), "    route_tables: [{ name: rt }, { name: rt }]\n"),
    "7:42: vpcs[0].route_tables[1].name: duplicate route table name 'rt' (first defined at line 7)"
);
rejects!(
    route_target_exists,
    concat!(
        base!(),
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: nat-z }] }]\n"
    ),
    "7:75: vpcs[0].route_tables[0].routes[0].target: unknown route target 'nat-z': not an internet gateway, egress-only internet gateway, VPN gateway, NAT gateway, peering connection, NAT instance or gateway endpoint of VPC 'prod', nor 'blackhole'"
);
rejects!(
    route_target_is_not_local,
    concat!(
        base!(),
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: local }] }]\n"
    ),
    "7:75: vpcs[0].route_tables[0].routes[0].target: the local route is implicit for the VPC's CIDR blocks; 'local' cannot be a route's target"
);
rejects!(
    internet_gateway_target_only_in_its_vpc,
    concat!(
        base!(),
        "  - name: dev\n    cidr_blocks: [10.1.0.0/16]\n",
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: igw }] }]\n"
    ),
    "9:75: vpcs[1].route_tables[0].routes[0].target: internet gateway 'igw' belongs to VPC 'prod'; a route can only target the internet gateway of its own VPC 'dev'"
);
rejects!(
    nat_gateway_target_only_in_its_vpc,
    concat!(
        base!(),
        "    nat_gateways: [{ name: nat, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]\n",
        "  - name: dev\n    cidr_blocks: [10.1.0.0/16]\n",
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: nat }] }]\n"
    ),
    "10:75: vpcs[1].route_tables[0].routes[0].target: NAT gateway 'nat' is in VPC 'prod'; a route can only target a NAT gateway of its own VPC 'dev'"
);
rejects!(
    route_target_names_are_not_keywords,
    concat!(
        base!(),
        "    nat_gateways: [{ name: blackhole, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]\n"
    ),
    "7:28: vpcs[0].nat_gateways[0].name: 'blackhole' is reserved as a route target and cannot name a NAT gateway"
);
rejects!(
    route_target_names_are_unique,
    concat!(
        base!(),
        "    nat_gateways: [{ name: igw, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]\n"
    ),
    "7:28: vpcs[0].nat_gateways[0].name: duplicate route target name 'igw': also the internet gateway at line 4"
);

// ----- Network ACL rules -----

/// A VPC with one ACL whose inbound rules are `rules` (flow mappings, one a line from 8).
macro_rules! acl {
    ($($rule:expr),+) => {
        concat!(base!(), "    network_acls:\n      - name: n\n        inbound:\n", $("          - ", $rule, "\n"),+)
    };
}

rejects!(
    rule_number_at_least_1,
    acl!("{ rule: 0, protocol: all, cidr: 0.0.0.0/0, action: allow }"),
    "10:21: vpcs[0].network_acls[0].inbound[0].rule: rule number must be between 1 and 32766, got 0"
);
rejects!(
    rule_number_at_most_32766,
    acl!("{ rule: 32767, protocol: all, cidr: 0.0.0.0/0, action: allow }"),
    "10:21: vpcs[0].network_acls[0].inbound[0].rule: rule number must be between 1 and 32766, got 32767"
);
rejects!(
    rule_numbers_unique_per_direction,
    acl!(
        "{ rule: 100, protocol: all, cidr: 0.0.0.0/0, action: allow }",
        "{ rule: 100, protocol: all, cidr: 0.0.0.0/0, action: deny }"
    ),
    "11:21: vpcs[0].network_acls[0].inbound[1].rule: duplicate rule number 100 in this direction (also at line 10)"
);
rejects!(
    protocol_is_known,
    acl!("{ rule: 1, protocol: sctp, cidr: 0.0.0.0/0, action: allow }"),
    "10:34: vpcs[0].network_acls[0].inbound[0].protocol: unknown protocol 'sctp': expected tcp, udp, icmp, icmpv6, all or a number 0-255"
);
rejects!(
    protocol_number_at_most_255,
    acl!("{ rule: 1, protocol: 256, cidr: 0.0.0.0/0, action: allow }"),
    "10:34: vpcs[0].network_acls[0].inbound[0].protocol: protocol number must be between 0 and 255, got 256"
);
rejects!(
    ports_only_for_tcp_and_udp,
    acl!("{ rule: 1, protocol: icmp, ports: 80, cidr: 0.0.0.0/0, action: allow }"),
    "10:47: vpcs[0].network_acls[0].inbound[0].ports: ports are only allowed with protocol tcp or udp"
);
rejects!(
    ports_parse,
    acl!("{ rule: 1, protocol: tcp, ports: http, cidr: 0.0.0.0/0, action: allow }"),
    "10:46: vpcs[0].network_acls[0].inbound[0].ports: invalid ports 'http': expected N or A-B"
);
rejects!(
    port_at_least_1,
    acl!("{ rule: 1, protocol: udp, ports: 0-53, cidr: 0.0.0.0/0, action: allow }"),
    "10:46: vpcs[0].network_acls[0].inbound[0].ports: port 0 is out of range 1-65535"
);
rejects!(
    port_at_most_65535,
    acl!("{ rule: 1, protocol: udp, ports: 65536, cidr: 0.0.0.0/0, action: allow }"),
    "10:46: vpcs[0].network_acls[0].inbound[0].ports: port 65536 is out of range 1-65535"
);
rejects!(
    port_range_in_order,
    acl!("{ rule: 1, protocol: tcp, ports: 443-80, cidr: 0.0.0.0/0, action: allow }"),
    "10:46: vpcs[0].network_acls[0].inbound[0].ports: port range 443-80 is reversed (the first port must not exceed the second)"
);
rejects!(
    icmp_only_with_icmp,
    acl!("{ rule: 1, protocol: tcp, icmp: { type: 8 }, cidr: 0.0.0.0/0, action: allow }"),
    "10:45: vpcs[0].network_acls[0].inbound[0].icmp: icmp type and code are only allowed with protocol icmp or icmpv6"
);
rejects!(
    icmp_type_range,
    acl!("{ rule: 1, protocol: icmp, icmp: { type: 256 }, cidr: 0.0.0.0/0, action: allow }"),
    "10:54: vpcs[0].network_acls[0].inbound[0].icmp.type: ICMP type must be -1 (any) or 0-255, got 256"
);
rejects!(
    icmp_code_range,
    acl!(
        "{ rule: 1, protocol: icmp, icmp: { type: 3, code: -2 }, cidr: 0.0.0.0/0, action: allow }"
    ),
    "10:63: vpcs[0].network_acls[0].inbound[0].icmp.code: ICMP code must be -1 (any) or 0-255, got -2"
);
rejects!(
    acl_rule_cidr_parses,
    acl!("{ rule: 1, protocol: all, cidr: anywhere, action: allow }"),
    "10:45: vpcs[0].network_acls[0].inbound[0].cidr: invalid CIDR 'anywhere': expected an IPv4 network such as 10.0.0.0/16"
);
rejects!(
    acl_names_are_unique,
    concat!(base!(), "    network_acls: [{ name: n }, { name: n }]\n"),
    "7:41: vpcs[0].network_acls[1].name: duplicate network ACL name 'n' (first defined at line 7)"
);

#[test]
fn acl_rules_fit_the_datapath() {
    let mut yaml = String::from(concat!(
        base!(),
        "    network_acls:\n      - name: n\n        outbound:\n"
    ));
    for n in 1..=129 {
        yaml.push_str(&format!(
            "          - {{ rule: {n}, protocol: all, cidr: 0.0.0.0/0, action: allow }}\n"
        ));
    }
    assert_eq!(
        errors(&yaml),
        [
            "t.yaml:8:9: vpcs[0].network_acls[0].outbound: 129 outbound rules: the datapath holds at most 128 per direction"
        ]
    );
}

// ----- Security groups -----

rejects!(
    security_group_reference_exists,
    concat!(
        base!(),
        "    security_groups:\n      - name: web\n        inbound: [{ protocol: tcp, ports: 22, source: sg:bastion }]\n"
    ),
    "9:55: vpcs[0].security_groups[0].inbound[0].source: unknown security group in VPC 'prod': 'bastion'"
);
rejects!(
    security_group_cidr_parses,
    concat!(
        base!(),
        "    security_groups:\n      - name: web\n        outbound: [{ protocol: udp, destination: 10.0.0.0/33 }]\n"
    ),
    "9:50: vpcs[0].security_groups[0].outbound[0].destination: invalid CIDR '10.0.0.0/33': expected an IPv4 network such as 10.0.0.0/16"
);
rejects!(
    security_group_rules_check_ports,
    concat!(
        base!(),
        "    security_groups:\n      - name: web\n        inbound: [{ protocol: all, ports: 22, source: 0.0.0.0/0 }]\n"
    ),
    "9:43: vpcs[0].security_groups[0].inbound[0].ports: ports are only allowed with protocol tcp or udp"
);
rejects!(
    security_group_names_are_unique,
    concat!(
        base!(),
        "    security_groups: [{ name: web }, { name: web }]\n"
    ),
    "7:46: vpcs[0].security_groups[1].name: duplicate security group name 'web' (first defined at line 7)"
);

// ----- Prefix lists -----

/// `base!()` with prefix lists (line 7 on) and what follows them.
macro_rules! lists {
    ($($line:expr),* $(,)?) => {
        concat!(
            base!(),
            "    prefix_lists:\n",
            "      - { name: s3, cidrs: [192.0.2.0/26, 198.51.100.64/26] }\n",
            $($line),*
        )
    };
}

#[test]
fn prefix_lists_resolve_and_rules_name_them_both_ways() {
    let config = load_str(
        "t.yaml",
        lists!(
            "      - { name: office, cidrs: [203.0.113.0/24] }\n",
            "    security_groups:\n",
            "      - name: web\n",
            "        inbound: [{ protocol: tcp, ports: 22, source: pl:office }]\n",
            "        outbound: [{ protocol: tcp, ports: 443, destination: pl:s3 }]\n",
        ),
    )
    .expect("valid");
    let vpc = &config.vpcs[0];
    let names: Vec<&str> = vpc.prefix_lists.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["s3", "office"]);
    assert_eq!(
        vpc.prefix_list(0).cidrs,
        [
            "192.0.2.0/26".parse::<ipnet::Ipv4Net>().expect("net"),
            "198.51.100.64/26".parse().expect("net")
        ]
    );
    assert_eq!(
        vpc.security_groups[0].inbound[0].peer,
        SgPeer::PrefixList(1)
    );
    assert_eq!(
        vpc.security_groups[0].outbound[0].peer,
        SgPeer::PrefixList(0)
    );
}

rejects!(
    prefix_list_names_are_unique,
    lists!("      - { name: s3, cidrs: [203.0.113.0/24] }\n"),
    "9:17: vpcs[0].prefix_lists[1].name: duplicate prefix list name 's3' (first defined at line 8)"
);
rejects!(
    prefix_list_errors_are_all_reported_at_their_nodes,
    lists!(
        "      - { name: '', cidrs: [10.1.0.0/16] }\n",
        "      - { name: empty, cidrs: [] }\n",
        "      - { name: bad, cidrs: [10.1.0.0/33, 10.2.0.1/16] }\n",
        "      - { name: twice, cidrs: [10.3.0.0/16, 10.4.0.0/16,\n",
        "                               10.3.0.0/16] }\n",
    ),
    "9:17: vpcs[0].prefix_lists[1].name: a prefix list name must not be empty",
    "10:31: vpcs[0].prefix_lists[2].cidrs: a prefix list needs at least one CIDR",
    "11:30: vpcs[0].prefix_lists[3].cidrs[0]: invalid CIDR '10.1.0.0/33': expected an IPv4 network such as 10.0.0.0/16",
    "11:43: vpcs[0].prefix_lists[3].cidrs[1]: CIDR 10.2.0.1/16 has host bits set (the network is 10.2.0.0/16)",
    "13:32: vpcs[0].prefix_lists[4].cidrs[2]: duplicate CIDR 10.3.0.0/16 in prefix list 'twice' (also at line 12)",
);
rejects!(
    prefix_list_keys_are_checked,
    concat!(
        base!(),
        "    prefix_lists: [{ name: s3, cidr: 192.0.2.0/26 }]\n"
    ),
    "7:32: vpcs[0].prefix_lists[0].cidr: unknown field `cidr`, expected one of name, cidrs"
);
rejects!(
    a_rule_names_a_prefix_list_of_its_vpc,
    lists!(
        "    security_groups:\n",
        "      - name: web\n",
        "        inbound: [{ protocol: tcp, ports: 22, source: pl:office }]\n",
        "        outbound: [{ protocol: tcp, ports: 443, destination: pl:S3 }]\n",
    ),
    "11:55: vpcs[0].security_groups[0].inbound[0].source: unknown prefix list in VPC 'prod': 'office'",
    "12:62: vpcs[0].security_groups[0].outbound[0].destination: unknown prefix list in VPC 'prod': 'S3'",
);
rejects!(
    network_acls_cannot_reference_prefix_lists,
    lists!(
        "    network_acls:\n",
        "      - name: n\n",
        "        outbound: [{ rule: 1, protocol: all, cidr: pl:s3, action: allow }]\n",
    ),
    "11:52: vpcs[0].network_acls[0].outbound[0].cidr: network ACLs cannot reference prefix lists: give a CIDR instead of 'pl:s3'"
);
rejects!(
    a_prefix_list_route_needs_a_gateway_endpoint,
    lists!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: pl:s3, target: igw }\n",
        "          - { destination: pl:nope, target: igw }\n",
    ),
    "12:28: vpcs[0].route_tables[0].routes[0].destination: a prefix-list destination needs a gateway endpoint target: 'pl:s3' cannot be routed to 'igw'",
    "13:28: vpcs[0].route_tables[0].routes[1].destination: unknown prefix list in VPC 'prod': 'nope'",
);

// ----- Gateway endpoints -----

/// `lists!()` with a second list `other` (line 9) and endpoint `s3-endpoint` (line 11);
/// tests append from line 12 (`gateway_endpoints` entries first, 6 spaces in).
macro_rules! endpoints {
    ($($line:expr),* $(,)?) => {
        lists!(
            "      - { name: other, cidrs: [203.0.113.128/26] }\n",
            "    gateway_endpoints:\n",
            "      - { name: s3-endpoint, interface: svc0, prefix_list: s3 }\n",
            $($line),*
        )
    };
}

#[test]
fn a_prefix_list_route_expands_to_each_cidr_of_the_list() {
    use vpc_agent::config::validated::{GatewayKind, RouteTarget};
    let yaml = endpoints!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: 0.0.0.0/0, target: igw }\n",
        "          - { destination: pl:s3, target: s3-endpoint }\n",
        "          - { destination: 198.51.100.64/27, target: blackhole }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.gateways.len(), 1);
    let ep = &vpc.gateways[0];
    assert_eq!(
        (ep.name.as_str(), ep.kind, ep.interface.as_str()),
        (
            "s3-endpoint",
            GatewayKind::Endpoint { prefix_list: 0 },
            "svc0"
        )
    );
    assert_eq!(ep.networks, vpc.prefix_list(0).cidrs);
    let routes: Vec<_> = vpc.route_tables[0]
        .routes
        .iter()
        .map(|r| (r.destination.to_string(), r.target.clone()))
        .collect();
    assert_eq!(
        routes,
        [
            ("0.0.0.0/0".to_owned(), RouteTarget::InternetGateway),
            ("192.0.2.0/26".to_owned(), RouteTarget::Gateway(0)),
            ("198.51.100.64/26".to_owned(), RouteTarget::Gateway(0)),
            // A more specific CIDR route may sit inside the list's prefixes.
            ("198.51.100.64/27".to_owned(), RouteTarget::Blackhole),
        ]
    );
    assert!(config.interfaces().contains(&(
        "svc0",
        vpc_agent::config::validated::InterfaceRole::Gateway { vpc: 0, gateway: 0 }
    )));
}

#[test]
fn endpoints_come_after_the_vpn_gateway() {
    use vpc_agent::config::validated::{GatewayKind, RouteTarget};
    let yaml = endpoints!(
        "    vpn_gateway: { name: vgw, interface: vpn0, routes: [172.16.0.0/16] }\n",
        "    route_tables:\n",
        "      - { name: rt, routes: [{ destination: pl:s3, target: s3-endpoint }] }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    let kinds: Vec<GatewayKind> = vpc.gateways.iter().map(|g| g.kind).collect();
    assert_eq!(
        kinds,
        [GatewayKind::Vpn, GatewayKind::Endpoint { prefix_list: 0 }]
    );
    assert!(
        vpc.route_tables[0]
            .routes
            .iter()
            .all(|r| r.target == RouteTarget::Gateway(1))
    );
}

rejects!(
    an_endpoint_names_a_prefix_list_of_its_vpc_and_a_free_interface,
    endpoints!(
        "      - { name: nope-endpoint, interface: sub0, prefix_list: nope }\n",
        "      - { name: pl-endpoint, interface: svc1, prefix_list: pl:s3 }\n",
    ),
    "12:43: vpcs[0].gateway_endpoints[1].interface: interface 'sub0' is already used by subnet 'a' of VPC 'prod'",
    "12:62: vpcs[0].gateway_endpoints[1].prefix_list: unknown prefix list in VPC 'prod': 'nope'",
    "13:60: vpcs[0].gateway_endpoints[2].prefix_list: unknown prefix list in VPC 'prod': 'pl:s3'",
);
rejects!(
    an_endpoint_list_stays_outside_every_vpc,
    concat!(
        base!(),
        "    prefix_lists: [{ name: inside, cidrs: [10.0.8.0/24, 0.0.0.0/0, 192.0.2.0/26] }]\n",
        "    gateway_endpoints: [{ name: e, interface: svc0, prefix_list: inside }]\n",
    ),
    "8:66: vpcs[0].gateway_endpoints[0].prefix_list: prefix list 'inside' holds 10.0.8.0/24, which overlaps 10.0.0.0/16 of VPC 'prod': a gateway endpoint's services must be outside every VPC (its interface may send from them)",
    "8:66: vpcs[0].gateway_endpoints[0].prefix_list: prefix list 'inside' holds 0.0.0.0/0, which overlaps 10.0.0.0/16 of VPC 'prod': a gateway endpoint's services must be outside every VPC (its interface may send from them)",
);
rejects!(
    an_endpoint_name_is_a_route_target_name,
    endpoints!(
        "      - { name: igw, interface: svc1, prefix_list: other }\n",
        "      - { name: local, interface: svc2, prefix_list: other }\n",
        "    peering_connections: [{ name: s3-endpoint, peer_vpc: prod }]\n",
    ),
    "11:17: vpcs[0].gateway_endpoints[0].name: duplicate route target name 's3-endpoint': also the peering connection at line 14",
    "12:17: vpcs[0].gateway_endpoints[1].name: duplicate route target name 'igw': also the internet gateway at line 4",
    "13:17: vpcs[0].gateway_endpoints[2].name: 'local' is reserved as a route target and cannot name a gateway endpoint",
    "14:58: vpcs[0].peering_connections[0].peer_vpc: a peering connection cannot connect VPC 'prod' to itself",
);
rejects!(
    an_endpoint_takes_only_its_own_prefix_list,
    endpoints!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: pl:other, target: s3-endpoint }\n",
        "          - { destination: 198.51.100.0/24, target: s3-endpoint }\n",
        "          - { destination: pl:other, target: blackhole }\n",
    ),
    "15:28: vpcs[0].route_tables[0].routes[0].destination: gateway endpoint 's3-endpoint' serves prefix list 's3', not 'other'",
    "16:28: vpcs[0].route_tables[0].routes[1].destination: gateway endpoint 's3-endpoint' carries only its prefix list: route pl:s3 to it, not 198.51.100.0/24",
    "17:28: vpcs[0].route_tables[0].routes[2].destination: duplicate destination pl:other in route table 'rt' (also at line 15)",
    "17:28: vpcs[0].route_tables[0].routes[2].destination: a prefix-list destination needs a gateway endpoint target: 'pl:other' cannot be routed to 'blackhole'",
);
rejects!(
    a_prefix_list_route_and_a_cidr_route_do_not_hold_the_same_prefix,
    endpoints!(
        "      - { name: other-endpoint, interface: svc1, prefix_list: other }\n",
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: 198.51.100.64/26, target: igw }\n",
        "          - { destination: pl:s3, target: s3-endpoint }\n",
        "          - { destination: 203.0.113.128/26, target: blackhole }\n",
        "          - { destination: pl:other, target: other-endpoint }\n",
        "          - { destination: 192.0.2.0/26, target: igw }\n",
    ),
    "17:28: vpcs[0].route_tables[0].routes[1].destination: duplicate destination 198.51.100.64/26 (in pl:s3) in route table 'rt' (also at line 16)",
    "19:28: vpcs[0].route_tables[0].routes[3].destination: duplicate destination 203.0.113.128/26 (in pl:other) in route table 'rt' (also at line 18)",
);
rejects!(
    a_cidr_route_does_not_repeat_a_prefix_of_a_list_route,
    endpoints!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: pl:s3, target: s3-endpoint }\n",
        "          - { destination: 192.0.2.0/26, target: igw }\n",
    ),
    "16:28: vpcs[0].route_tables[0].routes[1].destination: duplicate destination 192.0.2.0/26 in route table 'rt' (also at line 15, in pl:s3)",
);
rejects!(
    gateway_endpoint_keys_are_checked,
    concat!(
        base!(),
        "    gateway_endpoints: [{ name: e, interface: svc0, prefix_lists: s3 }]\n",
    ),
    "7:53: vpcs[0].gateway_endpoints[0].prefix_lists: unknown field `prefix_lists`, expected one of name, interface, prefix_list",
);

// ----- Peering -----

rejects!(
    peer_vpc_exists,
    concat!(
        base!(),
        "    peering_connections: [{ name: pcx, peer_vpc: shared }]\n"
    ),
    "7:50: vpcs[0].peering_connections[0].peer_vpc: unknown VPC 'shared'"
);
rejects!(
    peer_vpc_is_not_itself,
    concat!(
        base!(),
        "    peering_connections: [{ name: pcx, peer_vpc: prod }]\n"
    ),
    "7:50: vpcs[0].peering_connections[0].peer_vpc: a peering connection cannot connect VPC 'prod' to itself"
);
/// `base!()` declaring pcx-1 to VPC `shared` (line 7), `prod_groups` from line 8, then VPC
/// `shared` (two lines): tests append `shared`'s own keys (4 spaces in).
macro_rules! peered {
    ($prod_groups:expr) => {
        concat!(
            base!(),
            "    peering_connections: [{ name: pcx-1, peer_vpc: shared }]\n",
            $prod_groups,
            "  - name: shared\n",
            "    cidr_blocks: [10.1.0.0/16]\n"
        )
    };
}

/// Two lines (8, 9) of `prod`: group `web`, admitting tcp/443 from `source`.
macro_rules! web_from {
    ($source:expr) => {
        concat!(
            "    security_groups:\n",
            "      - { name: web, inbound: [{ protocol: tcp, ports: 443, source: ",
            $source,
            " }] }\n"
        )
    };
}

#[test]
fn a_peering_is_accepted_when_both_vpcs_declare_it() {
    let both = concat!(
        peered!(""),
        "    peering_connections: [{ name: pcx-1, peer_vpc: prod }]\n"
    );
    let config = load_str("t.yaml", both).expect("valid");
    assert_eq!(config.warnings, []);
    for (vpc, peer) in [(0, 1), (1, 0)] {
        let pcx = &config.vpcs[vpc].peering_connections[0];
        assert_eq!((pcx.peer_vpc, pcx.accepted), (peer, true));
    }
}

#[test]
fn a_one_sided_peering_is_a_warning_and_not_accepted() {
    let one_sided = peered!("");
    assert_eq!(
        warnings(one_sided),
        [
            "7:27: vpcs[0].peering_connections[0]: warning: peering connection 'pcx-1' is not \
             accepted: VPC 'shared' declares no peering connection 'pcx-1' with peer_vpc 'prod'; \
             until it does, the connection carries nothing (routes to it drop packets as \
             blackhole)"
        ]
    );
    let config = load_str("t.yaml", one_sided).expect("valid");
    assert!(!config.vpcs[0].peering_connections[0].accepted);
    // The peer declaring another name does not accept it either.
    let other_name = concat!(
        peered!(""),
        "    peering_connections: [{ name: pcx-2, peer_vpc: prod }]\n"
    );
    assert_eq!(warnings(other_name).len(), 2, "both sides are one-sided");
}

rejects!(
    the_peer_declaring_the_connection_towards_a_third_vpc_is_an_error_at_both,
    concat!(
        peered!(""),
        "    peering_connections: [{ name: pcx-1, peer_vpc: dev }]\n",
        "  - { name: dev, cidr_blocks: [10.2.0.0/16] }\n"
    ),
    "7:52: vpcs[0].peering_connections[0].peer_vpc: VPC 'shared' declares peering connection 'pcx-1' with peer_vpc 'dev' (line 10), not 'prod': both sides must name each other",
    "10:52: vpcs[1].peering_connections[0].peer_vpc: VPC 'prod' declares peering connection 'pcx-1' with peer_vpc 'shared' (line 7), but here it connects to 'dev': both sides must name each other"
);

#[test]
fn a_peer_vpcs_group_resolves_over_an_accepted_peering() {
    let yaml = concat!(
        peered!(web_from!("sg:shared/db")),
        "    peering_connections: [{ name: pcx-1, peer_vpc: prod }]\n",
        "    security_groups: [{ name: other, inbound: [] }, { name: db, inbound: [] }]\n"
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    assert_eq!(
        config.vpcs[0].security_groups[0].inbound[0].peer,
        SgPeer::PeerGroup { vpc: 1, group: 1 }
    );
    // The peer's implicit default group is a group too.
    let default = yaml.replace("sg:shared/db", "sg:shared/default");
    let config = load_str("t.yaml", &default).expect("valid");
    assert_eq!(
        config.vpcs[0].security_groups[0].inbound[0].peer,
        SgPeer::PeerGroup { vpc: 1, group: 2 }
    );
}

rejects!(
    a_peer_group_needs_an_accepted_peering,
    peered!(web_from!("sg:shared/db")),
    "9:69: vpcs[0].security_groups[0].inbound[0].source: 'sg:shared/db': peering connection 'pcx-1' with VPC 'shared' is not accepted (VPC 'shared' does not declare it towards 'prod'); a peer's groups are only visible over an accepted peering connection"
);
rejects!(
    a_peer_group_needs_a_peering,
    concat!(
        base!(),
        web_from!("sg:shared/db"),
        "  - { name: shared, cidr_blocks: [10.1.0.0/16] }\n"
    ),
    "8:69: vpcs[0].security_groups[0].inbound[0].source: 'sg:shared/db': VPC 'prod' has no peering connection with VPC 'shared'; a peer's groups are only visible over an accepted peering connection"
);
rejects!(
    a_peer_group_is_in_a_known_vpc,
    concat!(base!(), web_from!("sg:nowhere/db")),
    "8:69: vpcs[0].security_groups[0].inbound[0].source: 'sg:nowhere/db': unknown VPC 'nowhere'"
);
rejects!(
    a_peer_group_exists_in_the_peer,
    concat!(
        peered!(web_from!("sg:shared/db")),
        "    peering_connections: [{ name: pcx-1, peer_vpc: prod }]\n"
    ),
    "9:69: vpcs[0].security_groups[0].inbound[0].source: 'sg:shared/db': unknown security group in VPC 'shared': 'db'"
);
rejects!(
    a_group_of_the_own_vpc_is_not_named_by_vpc,
    concat!(base!(), web_from!("sg:prod/web")),
    "8:69: vpcs[0].security_groups[0].inbound[0].source: 'sg:prod/web' names a group of this VPC: write 'sg:web'"
);
rejects!(
    outbound_peer_groups_are_checked_too,
    concat!(
        base!(),
        "    security_groups:\n",
        "      - { name: web, inbound: [], outbound: [{ protocol: all, destination: sg:x/y }] }\n"
    ),
    "8:76: vpcs[0].security_groups[0].outbound[0].destination: 'sg:x/y': unknown VPC 'x'"
);
rejects!(
    peered_vpcs_do_not_overlap,
    concat!(
        base!(),
        "    peering_connections: [{ name: pcx, peer_vpc: shared }]\n",
        "  - { name: shared, cidr_blocks: [10.0.0.0/20] }\n"
    ),
    "8:35: vpcs[1].cidr_blocks[0]: CIDR block 10.0.0.0/20 overlaps 10.0.0.0/16 of VPC 'prod' (line 3): VPCs on one router must not overlap"
);
rejects!(
    vpcs_on_one_router_do_not_overlap,
    concat!(
        base!(),
        "  - { name: dev, cidr_blocks: [10.1.0.0/16, 10.0.128.0/17] }\n"
    ),
    "7:45: vpcs[1].cidr_blocks[1]: CIDR block 10.0.128.0/17 overlaps 10.0.0.0/16 of VPC 'prod' (line 3): VPCs on one router must not overlap"
);

rejects!(
    nat_connections_per_destination_in_range,
    concat!(
        base!(),
        "connection_tracking: { nat_connections_per_destination: 0 }\n"
    ),
    "7:57: connection_tracking.nat_connections_per_destination: must be between 1 and 65535, got 0"
);

// ----- Flow logs -----

rejects!(
    aggregation_interval_60_or_600,
    concat!(base!(), "flow_logs: { aggregation_interval: 30 }\n"),
    "7:36: flow_logs.aggregation_interval: aggregation_interval must be 60 or 600 seconds, got 30"
);
rejects!(
    flow_log_destination_known,
    concat!(base!(), "flow_logs: { destination: syslog }\n"),
    "7:27: flow_logs.destination: destination must be 'stdout', 'file:/path' or \
     'ipfix:HOST:PORT', got 'syslog'"
);
rejects!(
    flow_log_file_absolute,
    concat!(base!(), "flow_logs: { destination: 'file:flows.log' }\n"),
    "7:27: flow_logs.destination: a flow log file must be an absolute path, got 'flows.log'"
);
rejects!(
    flow_log_format_fields_known,
    concat!(base!(), "flow_logs: { format: '${srcaddr} ${color}' }\n"),
    "7:22: flow_logs.format: unknown flow log field '${color}'"
);
rejects!(
    flow_log_format_shape,
    concat!(base!(), "flow_logs: { format: 'srcaddr dstaddr' }\n"),
    "7:22: flow_logs.format: format must be 'default' or fields such as '${srcaddr} ${dstaddr}', got 'srcaddr'"
);

// ----- YAML structure -----

rejects!(
    unknown_keys_are_errors,
    concat!(base!(), "    subnet: []\n"),
    "7:5: vpcs[0].subnet: unknown field `subnet`, expected one of name, cidr_blocks, internet_gateway, ipv6_cidr_block, egress_only_internet_gateway, vpn_gateway, nat_gateways, subnets, route_tables, network_acls, security_groups, instances, peering_connections, prefix_lists, gateway_endpoints"
);
rejects!(
    duplicate_keys_are_errors,
    concat!(base!(), "    name: again\n"),
    "7:5: vpcs[0]: duplicate mapping key: name, set DuplicateKeyPolicy in Options if acceptable"
);
rejects!(
    multiple_documents_are_errors,
    concat!(base!(), "---\n", base!()),
    "8:1: (root): multiple YAML documents detected; use from_str_multiple or from_str_multiple_with_options"
);
rejects!(
    syntax_errors_have_locations,
    "vpcs: [\n",
    "1:7: vpcs: unclosed bracket '['"
);
rejects!(
    types_are_checked,
    concat!(
        base!(),
        "    network_acls: [{ name: n, inbound: [{ rule: first, protocol: all, cidr: 0.0.0.0/0, action: allow }] }]\n"
    ),
    "7:49: vpcs[0].network_acls[0].inbound[0].rule: expected an integer (i64)"
);

#[test]
fn alias_bombs_are_rejected() {
    // One anchored VPC of ~40 events replayed 5000 times: far past the replay budget, which
    // stops it before it costs memory (an exponential bomb hits the same limit sooner).
    let mut yaml = String::from("vpcs:\n  - &v { name: x, cidr_blocks: [10.0.0.0/16], subnets: [");
    for i in 0..8 {
        yaml.push_str(&format!(
            "{{ name: s{i}, cidr: 10.0.{i}.0/24, interface: i{i} }}, "
        ));
    }
    yaml.push_str("] }\n");
    for _ in 0..5000 {
        yaml.push_str("  - *v\n");
    }
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("t.yaml:"), "{errors:?}");
    assert!(
        errors[0].contains("alias replay limit exceeded"),
        "{errors:?}"
    );
}

#[test]
fn all_errors_are_reported_sorted_by_position() {
    let yaml = concat!(
        base!(),
        "      - { name: b, cidr: 10.1.0.0/24, interface: sub1 }\n",
        "    instances:\n      - { name: i, subnet: a, private_ip: 10.0.0.0 }\n",
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: nowhere }] }]\n"
    );
    let errors = errors(yaml);
    let positions: Vec<&str> = errors
        .iter()
        .map(|e| &e[..e.find(": ").unwrap_or(0)])
        .collect();
    assert_eq!(positions, ["t.yaml:7:26", "t.yaml:9:43", "t.yaml:10:75"]);
}

// ----- AWS defaults -----

#[test]
fn defaults_are_applied() {
    let config = load_str(
        "t.yaml",
        concat!(
            base!(),
            "    instances: [{ name: i, subnet: a, private_ip: 10.0.0.10 }]\n",
            "    security_groups: [{ name: web, inbound: [] }]\n",
        ),
    )
    .expect("valid");
    let vpc = &config.vpcs[0];
    // Implicit main table, used by the subnet.
    assert_eq!(vpc.route_tables.len(), 1);
    assert!(vpc.route_tables[0].implicit);
    assert_eq!(vpc.route_tables[vpc.main_route_table].name, "main");
    assert_eq!(vpc.subnets[0].route_table, vpc.main_route_table);
    // Default ACL: rule 100 allows everything both ways.
    let acl = &vpc.network_acls[vpc.subnets[0].network_acl];
    assert_eq!(acl.name, "default");
    assert_eq!((acl.inbound[0].number, acl.inbound[0].allow), (100, true));
    assert_eq!(acl.inbound[0].traffic, TrafficMatch::ANY);
    assert_eq!(acl.outbound, acl.inbound);
    // Default group: from members of default, all outbound; instances without groups are in it.
    let default = vpc
        .security_groups
        .iter()
        .position(|g| g.name == "default")
        .expect("default sg");
    assert_eq!(vpc.instances[0].security_groups, [default]);
    assert_eq!(
        vpc.security_groups[default].inbound[0].peer,
        SgPeer::Group(default)
    );
    // A group with outbound omitted allows all outbound (IPv4: the VPC has no IPv6 block).
    assert_eq!(
        vpc.security_groups[0].outbound,
        [SgRuleDef {
            traffic: TrafficMatch::ANY,
            peer: SgPeer::Cidr("0.0.0.0/0".parse().unwrap()),
        }]
    );
}

#[test]
fn a_defined_default_acl_and_main_table_replace_the_implicit_ones() {
    let config = load_str(
        "t.yaml",
        concat!(
            base!(),
            "    network_acls: [{ name: default }]\n",
            "    route_tables: [{ name: other }, { name: main }]\n",
        ),
    )
    .expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.network_acls.len(), 1);
    assert!(
        vpc.network_acls[0].inbound.is_empty(),
        "a new ACL without rules denies all"
    );
    assert_eq!(vpc.route_tables.len(), 2);
    assert_eq!(vpc.main_route_table, 1);
    assert_eq!(vpc.subnets[0].route_table, 1);
}

#[test]
fn acl_rules_are_sorted_by_number() {
    let config = load_str(
        "t.yaml",
        acl!(
            "{ rule: 200, protocol: all, cidr: 0.0.0.0/0, action: deny }",
            "{ rule: 100, protocol: tcp, ports: 22, cidr: 0.0.0.0/0, action: allow }"
        ),
    )
    .expect("valid");
    let numbers: Vec<u16> = config.vpcs[0].network_acls[0]
        .inbound
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(numbers, [100, 200]);
}

// ----- Connection tracking (an addition to the format) -----

#[test]
fn connection_tracking_defaults_to_the_aws_timeouts() {
    use vpc_common::conntrack::DEFAULT_TIMEOUTS;
    let config = load_str("t.yaml", base!()).expect("valid");
    assert_eq!(config.connection_tracking, DEFAULT_TIMEOUTS);
    let yaml = concat!(
        base!(),
        "connection_tracking: { udp_timeout: 45, tcp_established_timeout: 60 }\n"
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let expected = vpc_common::conntrack::CtTimeouts {
        udp: 45,
        tcp_established: 60,
        ..DEFAULT_TIMEOUTS
    };
    assert_eq!(config.connection_tracking, expected);
}

rejects!(
    connection_tracking_timeouts_are_in_range,
    concat!(
        base!(),
        "connection_tracking:\n  tcp_established_timeout: 59\n  udp_timeout: 0\n  nat_idle_timeout: 432001\n"
    ),
    "8:28: connection_tracking.tcp_established_timeout: tcp_established_timeout must be between 60 and 432000 seconds, got 59",
    "9:16: connection_tracking.udp_timeout: udp_timeout must be between 1 and 432000 seconds, got 0",
    "10:21: connection_tracking.nat_idle_timeout: nat_idle_timeout must be between 1 and 432000 seconds, got 432001"
);

#[test]
fn connection_tracking_rejects_unknown_keys() {
    let found = errors(concat!(
        base!(),
        "connection_tracking: { tcp_timeout: 5 }\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("t.yaml:7:") && found[0].contains("tcp_timeout"),
        "{found:?}"
    );
}

#[test]
fn nat_port_range_is_validated_and_defaults_to_aws() {
    let base = "vpcs:\n  - name: v\n    cidr_blocks: [10.0.0.0/16]\n";
    let config = vpc_agent::config::load_str("t.yaml", base).expect("valid");
    assert_eq!(config.nat_port_range, (1024, 65535));
    let text = format!("{base}connection_tracking:\n  nat_port_range: 2000-2003\n");
    let config = vpc_agent::config::load_str("t.yaml", &text).expect("valid");
    assert_eq!(config.nat_port_range, (2000, 2003));
    let text = format!("{base}connection_tracking:\n  nat_port_range: 3000-2000\n");
    let err = vpc_agent::config::load_str("t.yaml", &text).expect_err("reversed");
    let lines: Vec<String> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "t.yaml:5:19: connection_tracking.nat_port_range: port range 3000-2000 is reversed (the first port must not exceed the second)"
        ]
    );
}

// ----- Blank values (issue 14.5): a key with no value is an error, never "any" -----

#[test]
fn blank_values_are_errors_not_wildcards() {
    let sg = |rule: &str| {
        format!(
            "{}    security_groups:\n      - name: web\n        inbound:\n          - {rule}\n",
            base!()
        )
    };
    // `ports:` blank would allow every port.
    let blank_ports = sg("protocol: tcp\n            ports:\n            source: 0.0.0.0/0");
    let e = errors(&blank_ports);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:11:18: vpcs[0].security_groups[0].inbound[0].ports: ")
            && e[0].contains("blank"),
        "{e:?}"
    );
    // `network_acl:` blank would mean the allow-all default ACL.
    let blank_acl = base!().replace("interface: sub0 }", "interface: sub0, network_acl: }");
    let e = errors(&blank_acl);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:6:67: vpcs[0].subnets[0].network_acl: ") && e[0].contains("blank"),
        "{e:?}"
    );
    // `security_groups:` blank would mean the default group (while `[]` is refused).
    let blank_groups = format!(
        "{}    instances:\n      - name: i\n        subnet: a\n        private_ip: 10.0.0.10\n        security_groups:\n",
        base!()
    );
    let e = errors(&blank_groups);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:11:24: vpcs[0].instances[0].security_groups: ")
            && e[0].contains("blank"),
        "{e:?}"
    );
    // Likewise an ACL rule's ports, a group's `outbound:` (blank would allow everything out),
    // and `~`/`null` written out.
    for yaml in [
        format!(
            "{}    network_acls:\n      - name: n\n        inbound:\n          - {{ rule: 100, protocol: tcp, ports: ~, cidr: 0.0.0.0/0, action: allow }}\n",
            base!()
        ),
        format!(
            "{}    security_groups:\n      - name: web\n        outbound:\n",
            base!()
        ),
        base!().replace("interface: sub0 }", "interface: sub0, route_table: null }"),
    ] {
        let e = errors(&yaml);
        assert!(e.len() == 1 && e[0].contains("blank"), "{yaml}\n{e:?}");
    }
}

// ----- Addresses that are not host addresses, public addresses inside a VPC (issue 14.9) -----

rejects!(
    a_public_ip_must_not_be_another_instances_private_ip,
    concat!(
        base!(),
        "    instances:\n",
        "      - { name: i1, subnet: a, private_ip: 10.0.0.10 }\n",
        "      - { name: i2, subnet: a, private_ip: 10.0.0.11, public_ip: 10.0.0.10 }\n"
    ),
    "9:66: vpcs[0].instances[1].public_ip: public address 10.0.0.10 is inside VPC 'prod' (10.0.0.0/16): a public address must not be one of a VPC's own addresses"
);
rejects!(
    an_elastic_ip_must_not_be_inside_another_vpc,
    concat!(
        base!(),
        "    nat_gateways:\n",
        "      - { name: n, subnet: a, private_ip: 10.0.0.5, elastic_ip: 10.9.0.5 }\n",
        "  - { name: other, cidr_blocks: [10.9.0.0/16] }\n"
    ),
    "8:65: vpcs[0].nat_gateways[0].elastic_ip: public address 10.9.0.5 is inside VPC 'other' (10.9.0.0/16): a public address must not be one of a VPC's own addresses"
);

#[test]
fn host_addresses_must_be_unicast() {
    for (ip, why) in [
        ("0.0.0.0", "in 0.0.0.0/8 (\"this network\")"),
        ("127.0.0.1", "a loopback address (127.0.0.0/8)"),
        ("224.0.0.1", "a multicast address (224.0.0.0/4)"),
        ("239.255.255.250", "a multicast address (224.0.0.0/4)"),
        ("255.255.255.255", "the broadcast address"),
        ("240.0.0.1", "reserved (240.0.0.0/4)"),
    ] {
        let yaml = format!(
            "{}    instances:\n      - {{ name: i, subnet: a, private_ip: 10.0.0.10, public_ip: '{ip}' }}\n",
            base!()
        );
        assert_eq!(
            errors(&yaml),
            vec![format!(
                "t.yaml:8:65: vpcs[0].instances[0].public_ip: address {ip} is {why}, not a host address"
            )],
            "{ip}"
        );
    }
    // A VPC whose block is loopback or multicast would give its instances such addresses.
    for (block, why) in [
        ("127.0.0.0/16", "a loopback address (127.0.0.0/8)"),
        ("224.1.0.0/16", "a multicast address (224.0.0.0/4)"),
        ("0.0.0.0/16", "in 0.0.0.0/8 (\"this network\")"),
    ] {
        let yaml = format!("vpcs:\n  - {{ name: x, cidr_blocks: ['{block}'] }}\n");
        assert_eq!(
            errors(&yaml),
            vec![format!(
                "t.yaml:2:30: vpcs[0].cidr_blocks[0]: a VPC CIDR block must hold unicast addresses: {block} is {why}"
            )],
            "{block}"
        );
    }
}

// A syntax error inside a flow collection is reported where the collection opened.
rejects!(
    an_unclosed_flow_sequence_is_reported_where_it_opened,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes: [\n          { destination: 0.0.0.0/0, target: igw }\n    instances: []\n"
    ),
    "9:17: vpcs[0].route_tables[0].routes: unclosed '[' (the parser stopped at 11:14: illegal \
     placement of ':' indicator)"
);

// A bracket in a quoted string or a comment closes nothing.
rejects!(
    brackets_in_quotes_and_comments_close_nothing,
    concat!(
        base!(),
        "    route_tables:\n      - name: \"rt]\"\n        routes: [ # ] not this one\n          { destination: '0.0.0.0/0', target: \"i]gw\" }\n    instances: []\n"
    ),
    "9:17: vpcs[0].route_tables[0].routes: unclosed '[' (the parser stopped at 11:14: illegal \
     placement of ':' indicator)"
);

rejects!(
    flow_log_lists_check_each_log,
    concat!(
        base!(),
        "flow_logs:\n",
        "  - { destination: 'ipfix:collector', traffic_type: REJECT }\n",
        "  - { traffic_type: DENY, scope: { subnet: nope } }\n",
        "  - { aggregation_interval: 600, scope: { vpc: prod, subnet: a, instance: x } }\n",
    ),
    "8:20: flow_logs[0].destination: an IPFIX collector is ipfix:HOST:PORT, got 'ipfix:collector'",
    "9:21: flow_logs[1].traffic_type: traffic_type must be ACCEPT, REJECT or ALL, got 'DENY'",
    "9:44: flow_logs[1].scope.subnet: no subnet 'nope'",
    "10:75: flow_logs[2].scope.instance: a scope is a VPC, a subnet or an instance, not both",
);

rejects!(
    flow_logs_share_one_interval,
    concat!(
        base!(),
        "flow_logs:\n",
        "  - { destination: stdout }\n",
        "  - { destination: 'file:/var/log/f.log', scope: { vpc: prod } }\n",
        "  - { destination: 'ipfix:127.0.0.1:4739', aggregation_interval: 60 }\n",
    ),
    // The AWS default is 600 seconds.
    "10:66: flow_logs[2].aggregation_interval: every flow log must have the same \
     aggregation_interval (the counters are drained once for all)",
);

#[test]
fn flow_logs_resolve_traffic_type_scope_and_ipfix() {
    use vpc_agent::config::validated::{FlowLogDestination, FlowLogScope, TrafficType};
    let yaml = concat!(
        base!(),
        "    instances:\n",
        "      - { name: web, subnet: a, private_ip: 10.0.0.10 }\n",
        "flow_logs:\n",
        "  - { destination: 'ipfix:[::1]:4739', traffic_type: ACCEPT }\n",
        "  - { traffic_type: REJECT, scope: { instance: web } }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let [ipfix, rejects] = config.flow_logs.as_slice() else {
        panic!("two logs: {:?}", config.flow_logs);
    };
    assert_eq!(
        ipfix.destination,
        FlowLogDestination::Ipfix {
            host: "::1".into(),
            port: 4739
        }
    );
    assert_eq!(ipfix.traffic_type, TrafficType::Accept);
    assert_eq!(ipfix.scope, FlowLogScope::default());
    assert_eq!(rejects.destination, FlowLogDestination::Stdout);
    assert_eq!(rejects.traffic_type, TrafficType::Reject);
    assert_eq!(
        rejects.scope,
        FlowLogScope {
            vpc: Some("prod".into()),
            subnet: None,
            instance: Some("web".into()),
        }
    );
    // One mapping is still one log of everything.
    let one = load_str(
        "t.yaml",
        concat!(base!(), "flow_logs: { destination: stdout }\n"),
    )
    .expect("valid");
    assert_eq!(one.flow_logs.len(), 1);
    assert_eq!(one.flow_logs[0].traffic_type, TrafficType::All);
}

// ----- VPN gateway -----

rejects!(
    vpn_gateway_routes_are_valid_unique_and_outside_every_vpc,
    concat!(
        base!(),
        "    vpn_gateway:\n",
        "      name: vgw\n",
        "      interface: vpn0\n",
        "      routes: [172.16.0.0/33, 172.16.0.0/16, 172.16.0.0/16, 10.0.8.0/24]\n",
    ),
    "10:16: vpcs[0].vpn_gateway.routes[0]: invalid CIDR '172.16.0.0/33': expected an IPv4 network such as 10.0.0.0/16",
    "10:46: vpcs[0].vpn_gateway.routes[2]: duplicate VPN route 172.16.0.0/16 (also at line 10)",
    "10:61: vpcs[0].vpn_gateway.routes[3]: VPN route 10.0.8.0/24 overlaps 10.0.0.0/16 of VPC 'prod': the customer network and the VPCs must not overlap (their addresses are kept across the VPN)"
);
rejects!(
    vpn_gateway_needs_routes,
    concat!(
        base!(),
        "    vpn_gateway: { name: vgw, interface: vpn0, routes: [] }\n"
    ),
    "7:56: vpcs[0].vpn_gateway.routes: a VPN gateway needs the customer network's prefixes in `routes`"
);
rejects!(
    vpn_gateway_names_and_interfaces_are_unique,
    concat!(
        base!(),
        "    vpn_gateway: { name: igw, interface: sub0, routes: [172.16.0.0/16] }\n"
    ),
    // Gateways are checked before subnets: the clash is reported on the subnet.
    "6:50: vpcs[0].subnets[0].interface: interface 'sub0' is already used by VPN gateway 'igw' of VPC 'prod'",
    "7:26: vpcs[0].vpn_gateway.name: duplicate route target name 'igw': also the internet gateway at line 4"
);
rejects!(
    only_the_vpn_gateway_propagates,
    concat!(
        base!(),
        "    route_tables:\n",
        "      - { name: rt, propagate: [igw, vgw] }\n",
        "  - name: dev\n",
        "    cidr_blocks: [10.1.0.0/16]\n",
        "    vpn_gateway: { name: vgw, interface: vpn0, routes: [172.16.0.0/16] }\n",
        "    route_tables:\n",
        "      - { name: rt, propagate: [vgw, vgw, igw] }\n",
    ),
    "8:33: vpcs[0].route_tables[0].propagate[0]: 'igw' cannot propagate routes: VPC 'prod' has no VPN gateway",
    "8:38: vpcs[0].route_tables[0].propagate[1]: 'vgw' cannot propagate routes: VPC 'prod' has no VPN gateway",
    "13:38: vpcs[1].route_tables[0].propagate[1]: VPN gateway 'vgw' is propagated twice",
    "13:43: vpcs[1].route_tables[0].propagate[2]: unknown VPN gateway 'igw': only the VPC's VPN gateway 'vgw' propagates routes"
);

/// Propagated routes join the table; a static route for the same prefix wins over one.
#[test]
fn propagated_routes_yield_to_static_ones_for_the_same_prefix() {
    use vpc_agent::config::validated::{GatewayKind, RouteTarget};
    let yaml = concat!(
        base!(),
        "    vpn_gateway: { name: vgw, interface: vpn0, routes: [172.16.0.0/16, 172.17.0.0/16] }\n",
        "    route_tables:\n",
        "      - name: rt\n",
        "        propagate: [vgw]\n",
        "        routes: [{ destination: 172.16.0.0/16, target: blackhole }]\n",
        "      - { name: plain, routes: [{ destination: 172.17.0.0/16, target: vgw }] }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(vpc.gateways.len(), 1);
    assert_eq!(vpc.gateways[0].kind, GatewayKind::Vpn);
    assert_eq!(vpc.gateways[0].interface, "vpn0");
    let routes: Vec<_> = vpc.route_tables[0]
        .routes
        .iter()
        .map(|r| (r.destination.to_string(), r.target.clone(), r.propagated))
        .collect();
    assert_eq!(
        routes,
        [
            ("172.16.0.0/16".to_owned(), RouteTarget::Blackhole, false),
            ("172.17.0.0/16".to_owned(), RouteTarget::Gateway(0), true),
        ]
    );
    // Without `propagate` a table has only its own routes; a static route may name the gateway.
    let plain = &vpc.route_tables[1].routes;
    assert_eq!(plain.len(), 1);
    assert_eq!(
        (plain[0].target.clone(), plain[0].propagated),
        (RouteTarget::Gateway(0), false)
    );
}

// NAT instances: `source_dest_check: false` and routes naming an instance.

/// `base!()` with a second subnet `b` (line 7) and the NAT instance `natbox` in `a` (line 8),
/// its check given by `$check` (a whole `, source_dest_check: ...` or nothing).
macro_rules! with_natbox {
    ($check:expr) => {
        concat!(
            base!(),
            "      - { name: b, cidr: 10.0.1.0/24, interface: sub1 }\n",
            "    instances: [{ name: natbox, subnet: a, interface: eni0, private_ip: 10.0.0.20",
            $check,
            " }]\n"
        )
    };
}

#[test]
fn a_route_may_target_a_nat_instance() {
    let yaml = concat!(
        with_natbox!(", source_dest_check: false"),
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: natbox }] }]\n"
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    assert!(!vpc.instances[0].source_dest_check);
    let rt = vpc.route_tables.iter().find(|t| t.name == "rt").unwrap();
    assert_eq!(
        rt.routes[0].target,
        vpc_agent::config::validated::RouteTarget::Instance(0)
    );
}

#[test]
fn the_source_dest_check_is_on_by_default() {
    let config = load_str("t.yaml", with_natbox!("")).expect("valid");
    assert!(config.vpcs[0].instances[0].source_dest_check);
    let config = load_str("t.yaml", with_natbox!(", source_dest_check: true")).expect("valid");
    assert!(config.vpcs[0].instances[0].source_dest_check);
}

rejects!(
    a_route_to_an_instance_needs_its_check_off,
    concat!(
        with_natbox!(""),
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: natbox }] }]\n"
    ),
    "9:75: vpcs[0].route_tables[0].routes[0].target: instance 'natbox' has its source/destination check on (the default): a route can target an instance only as a NAT instance, with source_dest_check: false"
);
rejects!(
    a_route_to_an_instance_with_the_check_on_explicitly_is_refused,
    concat!(
        with_natbox!(", source_dest_check: true"),
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: natbox }] }]\n"
    ),
    "9:75: vpcs[0].route_tables[0].routes[0].target: instance 'natbox' has its source/destination check on (the default): a route can target an instance only as a NAT instance, with source_dest_check: false"
);
rejects!(
    a_nat_instance_target_only_in_its_vpc,
    concat!(
        with_natbox!(", source_dest_check: false"),
        "  - name: dev\n    cidr_blocks: [10.1.0.0/16]\n",
        "    route_tables: [{ name: rt, routes: [{ destination: 0.0.0.0/0, target: natbox }] }]\n"
    ),
    "11:75: vpcs[1].route_tables[0].routes[0].target: instance 'natbox' is in VPC 'prod'; a route can only target an instance of its own VPC 'dev'"
);
rejects!(
    an_instance_name_may_not_clash_with_another_route_target,
    concat!(
        base!(),
        "    instances: [{ name: igw, subnet: a, interface: eni0, private_ip: 10.0.0.20 }]\n"
    ),
    "7:25: vpcs[0].instances[0].name: duplicate route target name 'igw': also the internet gateway at line 4"
);
rejects!(
    the_check_is_off_only_on_an_instances_own_port,
    concat!(
        base!(),
        "    instances: [{ name: natbox, subnet: a, private_ip: 10.0.0.20, source_dest_check: false }]\n"
    ),
    "7:86: vpcs[0].instances[0].source_dest_check: instance 'natbox' turns its source/destination check off but has no interface of its own: the check can only be off on an instance's own port (on a shared segment the router cannot tell which host sent a packet)"
);
rejects!(
    the_check_is_a_boolean,
    with_natbox!(", source_dest_check: off"),
    "8:103: vpcs[0].instances[0].source_dest_check: invalid boolean (strict mode expects true/false)"
);
rejects!(
    instance_keys_are_checked,
    with_natbox!(", source_dest_checks: false"),
    "8:84: vpcs[0].instances[0].source_dest_checks: unknown field `source_dest_checks`, expected one of name, subnet, interface, private_ip, public_ip, ipv6_addresses, security_groups, source_dest_check"
);

// ----- IPv6 -----

/// `base!()` with an IPv6 /56 (line 7), a subnet `b` with a /64 (line 9) and what follows.
macro_rules! v6 {
    ($($line:expr),* $(,)?) => {
        concat!(
            "vpcs:\n",
            "  - name: prod\n",
            "    cidr_blocks: [10.0.0.0/16]\n",
            "    internet_gateway: { name: igw, interface: uplink0 }\n",
            "    subnets:\n",
            "      - { name: a, cidr: 10.0.0.0/24, interface: sub0 }\n",
            "      - { name: b, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1234:1a01::/64, interface: sub1 }\n",
            "    ipv6_cidr_block: 2001:db8:1234:1a00::/56\n",
            $($line),*
        )
    };
}

#[test]
fn ipv6_keys_resolve_and_warn_once() {
    let yaml = v6!(
        "    egress_only_internet_gateway: { name: eigw, interface: uplink0 }\n",
        "    instances:\n",
        "      - { name: w, subnet: b, interface: eni0, private_ip: 10.0.1.10, ipv6_addresses: [2001:db8:1234:1a01::10] }\n",
        "  - name: other\n",
        "    cidr_blocks: [10.1.0.0/16]\n",
        "    ipv6_cidr_block: 2001:db8:1234:1b00::/56\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(
        vpc.ipv6_cidr_block,
        Some("2001:db8:1234:1a00::/56".parse().unwrap())
    );
    assert_eq!(
        vpc.egress_only_internet_gateway
            .as_ref()
            .map(|g| (g.name.as_str(), g.interface.as_str())),
        Some(("eigw", "uplink0"))
    );
    assert_eq!(vpc.subnets[0].ipv6_cidr, None);
    assert_eq!(
        vpc.subnets[1].ipv6_cidr,
        Some("2001:db8:1234:1a01::/64".parse().unwrap())
    );
    assert_eq!(
        vpc.instances[0].ipv6_addresses,
        ["2001:db8:1234:1a01::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()]
    );
    assert_eq!(
        warnings(yaml),
        [
            "8:22: vpcs[0].ipv6_cidr_block: warning: IPv6 is forwarded only for instances on \
          their own ports, between them and through the internet and egress-only gateways (not \
          yet over peering connections, NAT instances, VPN gateways or shared segments: dropped \
          as not_ipv4)"
        ]
    );
    assert_eq!(warnings(base!()), Vec::<String>::new());
}

rejects!(
    ipv6_vpc_block_is_a_56,
    concat!(base!(), "    ipv6_cidr_block: 2001:db8:1234::/48\n"),
    "7:22: vpcs[0].ipv6_cidr_block: a VPC IPv6 CIDR block must be a /56, got /48"
);
rejects!(
    ipv6_vpc_block_parses,
    concat!(base!(), "    ipv6_cidr_block: 10.0.0.0/16\n"),
    "7:22: vpcs[0].ipv6_cidr_block: invalid IPv6 CIDR '10.0.0.0/16': expected an IPv6 network such as 2001:db8:1234:1a00::/56"
);
rejects!(
    ipv6_vpc_block_has_no_host_bits,
    concat!(base!(), "    ipv6_cidr_block: 2001:db8:1234:1a01::/56\n"),
    "7:22: vpcs[0].ipv6_cidr_block: CIDR 2001:db8:1234:1a01::/56 has host bits set (the network is 2001:db8:1234:1a00::/56)"
);
rejects!(
    ipv6_vpc_blocks_do_not_overlap,
    v6!(
        "  - { name: other, cidr_blocks: [10.1.0.0/16], ipv6_cidr_block: 2001:db8:1234:1a00::/56 }\n"
    ),
    "9:65: vpcs[1].ipv6_cidr_block: IPv6 CIDR block 2001:db8:1234:1a00::/56 overlaps 2001:db8:1234:1a00::/56 of VPC 'prod'"
);
rejects!(
    ipv6_subnet_needs_the_vpc_block,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1234:1a01::/64, interface: sub1 }\n"
    ),
    "7:50: vpcs[0].subnets[1].ipv6_cidr: subnet 2001:db8:1234:1a01::/64 needs an IPv6 block in its VPC, and VPC 'prod' has no ipv6_cidr_block"
);
rejects!(
    ipv6_subnet_is_a_64_inside_the_vpc_block,
    concat!(
        "vpcs:\n",
        "  - name: prod\n",
        "    cidr_blocks: [10.0.0.0/16]\n",
        "    ipv6_cidr_block: 2001:db8:1234:1a00::/56\n",
        "    subnets:\n",
        "      - { name: a, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1234:1b00::/64, interface: s0 }\n",
        "      - { name: b, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1234:1a00::/60, interface: s1 }\n",
        "      - { name: c, cidr: 10.0.2.0/24, ipv6_cidr: 2001:db8:1234:1a05::/64, interface: s2 }\n",
        "      - { name: d, cidr: 10.0.3.0/24, ipv6_cidr: 2001:db8:1234:1a05::/64, interface: s3 }\n",
    ),
    "6:50: vpcs[0].subnets[0].ipv6_cidr: subnet 2001:db8:1234:1b00::/64 is not inside the IPv6 block 2001:db8:1234:1a00::/56 of VPC 'prod'",
    "7:50: vpcs[0].subnets[1].ipv6_cidr: a subnet IPv6 CIDR block must be a /64, got /60",
    "9:50: vpcs[0].subnets[3].ipv6_cidr: subnet 2001:db8:1234:1a05::/64 is already the IPv6 block of subnet 'c'"
);
rejects!(
    ipv6_instance_addresses_fit_their_subnet,
    v6!(
        "    instances:\n",
        "      - { name: i1, subnet: a, private_ip: 10.0.0.10, ipv6_addresses: [2001:db8:1234:1a01::10] }\n",
        "      - { name: i2, subnet: b, private_ip: 10.0.1.10, ipv6_addresses: [2001:db8:1234:1a02::10, '2001:db8:1234:1a01::3', 'nope'] }\n",
        "      - { name: i3, subnet: b, private_ip: 10.0.1.11, ipv6_addresses: ['2001:db8:1234:1a01:ffff:ffff:ffff:ffff', '2001:db8:1234:1a01::4'] }\n",
        "      - { name: i4, subnet: b, private_ip: 10.0.1.12, ipv6_addresses: ['2001:db8:1234:1a01::4'] }\n",
    ),
    "10:72: vpcs[0].instances[0].ipv6_addresses[0]: address 2001:db8:1234:1a01::10 needs an IPv6 block in its subnet, and subnet 'a' has no ipv6_cidr",
    "11:72: vpcs[0].instances[1].ipv6_addresses[0]: address 2001:db8:1234:1a02::10 is not inside subnet 'b' (2001:db8:1234:1a01::/64)",
    "11:96: vpcs[0].instances[1].ipv6_addresses[1]: address 2001:db8:1234:1a01::3 is reserved in subnet 'b' (AWS reserves 2001:db8:1234:1a01:: to 2001:db8:1234:1a01::3 and 2001:db8:1234:1a01:ffff:ffff:ffff:ffff)",
    "11:121: vpcs[0].instances[1].ipv6_addresses[2]: invalid IPv6 address 'nope'",
    "12:72: vpcs[0].instances[2].ipv6_addresses[0]: address 2001:db8:1234:1a01:ffff:ffff:ffff:ffff is reserved in subnet 'b' (AWS reserves 2001:db8:1234:1a01:: to 2001:db8:1234:1a01::3 and 2001:db8:1234:1a01:ffff:ffff:ffff:ffff)",
    "13:72: vpcs[0].instances[3].ipv6_addresses[0]: address 2001:db8:1234:1a01::4 is already used by instance 'i3'"
);
rejects!(
    ipv6_an_invalid_subnet_block_is_reported_once,
    concat!(
        base!(),
        "      - { name: b, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8::/60, interface: sub1 }\n",
        "    ipv6_cidr_block: 2001:db8::/56\n",
        "    instances:\n",
        "      - { name: i, subnet: b, interface: eni0, private_ip: 10.0.1.10, ipv6_addresses: ['2001:db8::10'] }\n",
    ),
    "7:50: vpcs[0].subnets[1].ipv6_cidr: a subnet IPv6 CIDR block must be a /64, got /60"
);
rejects!(
    egress_only_gateway_names_and_interfaces,
    concat!(
        base!(),
        "    egress_only_internet_gateway: { name: igw, interface: sub0 }\n"
    ),
    // The uplink is registered first (as the internet gateway's): a clash is reported on the subnet.
    "6:50: vpcs[0].subnets[0].interface: interface 'sub0' is already used by egress-only internet gateway 'igw' of VPC 'prod'",
    "7:43: vpcs[0].egress_only_internet_gateway.name: duplicate route target name 'igw': also the internet gateway at line 4"
);
rejects!(
    egress_only_gateway_carries_ipv6_only,
    v6!(
        "    egress_only_internet_gateway: { name: eigw, interface: uplink0 }\n",
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes: [{ destination: 0.0.0.0/0, target: eigw }]\n",
    ),
    "12:52: vpcs[0].route_tables[0].routes[0].target: the egress-only internet gateway carries IPv6 only: 'eigw' cannot be the target of IPv4 destination 0.0.0.0/0"
);

#[test]
fn ipv6_routes_to_the_internet_and_egress_only_gateways() {
    use vpc_agent::config::validated::{RouteDef, RouteTarget};
    let yaml = v6!(
        "    egress_only_internet_gateway: { name: eigw, interface: uplink0 }\n",
        "    route_tables:\n",
        "      - name: public\n",
        "        routes:\n",
        "          - { destination: 0.0.0.0/0, target: igw }\n",
        "          - { destination: '::/0', target: igw }\n",
        "      - name: private\n",
        "        routes:\n",
        "          - { destination: '::/0', target: eigw }\n",
        "          - { destination: '2001:db8:ffff::/48', target: blackhole }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let route = |destination: &str, target| RouteDef {
        destination: destination.parse().unwrap(),
        target,
        propagated: false,
    };
    let tables = &config.vpcs[0].route_tables;
    assert_eq!(
        tables[0].routes,
        [
            route("0.0.0.0/0", RouteTarget::InternetGateway),
            route("::/0", RouteTarget::InternetGateway),
        ]
    );
    assert_eq!(
        tables[1].routes,
        [
            route("::/0", RouteTarget::EgressOnlyGateway),
            route("2001:db8:ffff::/48", RouteTarget::Blackhole),
        ]
    );
}

rejects!(
    ipv6_route_needs_the_vpc_block,
    concat!(
        base!(),
        "    route_tables:\n      - name: rt\n        routes: [{ destination: '::/0', target: igw }]\n"
    ),
    "9:33: vpcs[0].route_tables[0].routes[0].destination: IPv6 destination ::/0 needs an IPv6 block in its VPC, and VPC 'prod' has no ipv6_cidr_block"
);
rejects!(
    ipv6_route_with_an_invalid_vpc_block_is_reported_once,
    concat!(
        base!(),
        "    ipv6_cidr_block: 2001:db8::/48\n",
        "    route_tables:\n      - name: rt\n        routes: [{ destination: '::/0', target: igw }]\n"
    ),
    "7:22: vpcs[0].ipv6_cidr_block: a VPC IPv6 CIDR block must be a /56, got /48"
);
rejects!(
    ipv6_route_destinations_are_checked,
    v6!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: '2001:db8:ffff::1/48', target: igw }\n",
        "          - { destination: '2001:db8:zz::/48', target: igw }\n",
    ),
    "12:28: vpcs[0].route_tables[0].routes[0].destination: CIDR 2001:db8:ffff::1/48 has host bits set (the network is 2001:db8:ffff::/48)",
    "13:28: vpcs[0].route_tables[0].routes[1].destination: invalid CIDR '2001:db8:zz::/48': expected an IPv6 network such as 2001:db8:99::/64"
);
rejects!(
    ipv6_route_is_not_the_local_route_nor_inside_it,
    v6!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: '2001:db8:1234:1a00::/56', target: igw }\n",
        "          - { destination: '2001:db8:1234:1a01::/64', target: igw }\n",
        "          - { destination: '2001:db8:1234:1a00::/55', target: blackhole }\n",
    ),
    "12:28: vpcs[0].route_tables[0].routes[0].destination: destination 2001:db8:1234:1a00::/56 is the VPC's local route and cannot be overridden",
    "13:28: vpcs[0].route_tables[0].routes[1].destination: destination 2001:db8:1234:1a01::/64 is more specific than the local route 2001:db8:1234:1a00::/56; no route may be inside a VPC CIDR block"
);
rejects!(
    ipv6_route_destinations_are_unique,
    v6!(
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: '::/0', target: igw }\n",
        "          - { destination: 0.0.0.0/0, target: igw }\n",
        "          - { destination: '2001:db8:ffff::/48', target: igw }\n",
        "          - { destination: '::/0', target: blackhole }\n",
        "          - { destination: '2001:db8:ffff:0::/48', target: blackhole }\n",
    ),
    "15:28: vpcs[0].route_tables[0].routes[3].destination: duplicate destination ::/0 in route table 'rt' (also at line 12)",
    "16:28: vpcs[0].route_tables[0].routes[4].destination: duplicate destination 2001:db8:ffff::/48 in route table 'rt' (also at line 14)"
);
rejects!(
    ipv6_route_targets_carry_ipv6,
    v6!(
        "    nat_gateways: [{ name: nat, subnet: a, private_ip: 10.0.0.5, elastic_ip: 198.51.100.1 }]\n",
        "    vpn_gateway: { name: vgw, interface: vpn0, routes: [172.16.0.0/16] }\n",
        "    instances:\n",
        "      - { name: natbox, subnet: a, interface: eni0, private_ip: 10.0.0.20, source_dest_check: false }\n",
        "    peering_connections: [{ name: pcx, peer_vpc: shared }]\n",
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: '::/0', target: nat }\n",
        "          - { destination: '2001:db8:aaaa::/48', target: vgw }\n",
        "          - { destination: '2001:db8:bbbb::/48', target: natbox }\n",
        "          - { destination: '2001:db8:cccc::/48', target: pcx }\n",
        "  - name: shared\n",
        "    cidr_blocks: [10.1.0.0/16]\n",
        "    peering_connections: [{ name: pcx, peer_vpc: prod }]\n",
    ),
    "17:44: vpcs[0].route_tables[0].routes[0].target: NAT gateway 'nat' translates IPv4 only: it cannot be the target of IPv6 destination ::/0",
    "18:58: vpcs[0].route_tables[0].routes[1].target: VPN gateway 'vgw' carries the customer network's IPv4 prefixes only: it cannot be the target of IPv6 destination 2001:db8:aaaa::/48",
    "19:58: vpcs[0].route_tables[0].routes[2].target: instance 'natbox' has no ipv6_addresses, so as a NAT instance it carries IPv4 only: it cannot be the target of IPv6 destination 2001:db8:bbbb::/48",
    "20:58: vpcs[0].route_tables[0].routes[3].target: peering connection 'pcx' carries IPv6 only between VPCs that both have an ipv6_cidr_block, and its peer VPC 'shared' has none: it cannot be the target of IPv6 destination 2001:db8:cccc::/48"
);

#[test]
fn ipv6_routes_to_a_nat_instance_with_ipv6_and_a_dual_stack_peer() {
    use vpc_agent::config::validated::RouteTarget;
    let yaml = v6!(
        "    instances:\n",
        "      - { name: natbox, subnet: b, interface: eni0, private_ip: 10.0.1.20, ipv6_addresses: ['2001:db8:1234:1a01::20'], source_dest_check: false }\n",
        "    peering_connections: [{ name: pcx, peer_vpc: shared }]\n",
        "    route_tables:\n",
        "      - name: rt\n",
        "        routes:\n",
        "          - { destination: '2001:db8:bbbb::/48', target: natbox }\n",
        "          - { destination: '2001:db8:1234:1b00::/56', target: pcx }\n",
        "  - name: shared\n",
        "    cidr_blocks: [10.1.0.0/16]\n",
        "    ipv6_cidr_block: 2001:db8:1234:1b00::/56\n",
        "    peering_connections: [{ name: pcx, peer_vpc: prod }]\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let targets: Vec<&RouteTarget> = config.vpcs[0].route_tables[0]
        .routes
        .iter()
        .map(|r| &r.target)
        .collect();
    assert_eq!(
        targets,
        [&RouteTarget::Instance(0), &RouteTarget::Peering(0)]
    );
}

#[test]
fn ipv6_defaults_allow_all_ipv6_only_with_an_ipv6_block() {
    use vpc_agent::config::validated::AclRuleDef;
    let any_v4: ipnet::IpNet = "0.0.0.0/0".parse().unwrap();
    let any_v6: ipnet::IpNet = "::/0".parse().unwrap();
    let acl_rule = |number, cidr| AclRuleDef {
        number,
        traffic: TrafficMatch::ANY,
        cidr,
        allow: true,
    };
    let config = load_str("t.yaml", v6!()).expect("valid");
    let vpc = &config.vpcs[0];
    let acl = vpc.network_acls.last().unwrap();
    let both = [acl_rule(100, any_v4), acl_rule(101, any_v6)];
    assert_eq!(
        (acl.name.as_str(), &acl.inbound[..], &acl.outbound[..]),
        ("default", &both[..], &both[..])
    );
    let sg = vpc.security_groups.last().unwrap();
    let out = |cidr| SgRuleDef {
        traffic: TrafficMatch::ANY,
        peer: SgPeer::Cidr(cidr),
    };
    assert_eq!(sg.outbound, [out(any_v4), out(any_v6)]);
    // A group of its own with outbound omitted: everything, both families, too.
    let with_group = v6!(
        "    security_groups:\n",
        "      - { name: web, inbound: [{ protocol: tcp, ports: 443, source: \"::/0\" }] }\n",
    );
    let config = load_str("t.yaml", with_group).expect("valid");
    let web = &config.vpcs[0].security_groups[0];
    assert_eq!(
        (web.name.as_str(), &web.outbound[..]),
        ("web", &[out(any_v4), out(any_v6)][..])
    );
    // Without an IPv6 block: IPv4 only, as before.
    let config = load_str("t.yaml", base!()).expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(
        vpc.network_acls.last().unwrap().inbound,
        [acl_rule(100, any_v4)]
    );
    assert_eq!(vpc.security_groups.last().unwrap().outbound, [out(any_v4)]);
}

#[test]
fn ipv6_cidrs_in_acl_and_group_rules() {
    let yaml = v6!(
        "    network_acls:\n",
        "      - name: n\n",
        "        inbound: [{ rule: 100, protocol: tcp, ports: 443, cidr: '::/0', action: allow }]\n",
        "    security_groups:\n",
        "      - name: web\n",
        "        inbound:\n",
        "          - { protocol: tcp, ports: 443, source: '::/0' }\n",
        "          - { protocol: tcp, ports: 22, source: '2001:db8:99::/64' }\n",
        "          - { protocol: tcp, ports: 80, source: 0.0.0.0/0 }\n",
    );
    let config = load_str("t.yaml", yaml).expect("valid");
    let vpc = &config.vpcs[0];
    assert_eq!(
        vpc.network_acls[0].inbound[0].cidr,
        "::/0".parse::<ipnet::IpNet>().unwrap()
    );
    let peers: Vec<&SgPeer> = vpc.security_groups[0]
        .inbound
        .iter()
        .map(|r| &r.peer)
        .collect();
    let cidr = |s: &str| SgPeer::Cidr(s.parse().unwrap());
    assert_eq!(
        peers,
        [&cidr("::/0"), &cidr("2001:db8:99::/64"), &cidr("0.0.0.0/0")]
    );
}

rejects!(
    ipv6_rule_cidrs_are_checked,
    v6!(
        "    network_acls:\n",
        "      - name: n\n",
        "        inbound: [{ rule: 100, protocol: all, cidr: '2001:db8:99::1/64', action: allow }]\n",
        "    security_groups:\n",
        "      - { name: web, inbound: [{ protocol: tcp, ports: 22, source: '2001:db8:zz::/64' }] }\n",
    ),
    "11:53: vpcs[0].network_acls[0].inbound[0].cidr: CIDR 2001:db8:99::1/64 has host bits set (the network is 2001:db8:99::/64)",
    "13:68: vpcs[0].security_groups[0].inbound[0].source: invalid CIDR '2001:db8:zz::/64': expected an IPv6 network such as 2001:db8:99::/64"
);
