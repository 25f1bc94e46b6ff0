//! Compilation: the pure function from a validated definition to the exact entries of every
//! datapath map, for one generation slot (vpc-common documents each map). Nothing here touches
//! the kernel; the caller applies [`Compiled`] (and only if this succeeded, so a definition
//! that does not fit is rejected before anything changes).

pub mod acl;
pub mod check;
pub mod family;
pub mod ids;
pub mod routes;
pub mod security_groups;
pub mod topology;

use std::{collections::BTreeMap, fmt};

use ipnet::{Ipv4Net, Ipv6Net};
use vpc_common::{
    acl::{ACL_INBOUND, ACL_OUTBOUND, AclTable, AclTable6, MAX_ACLS, acl_index},
    capacity,
    conntrack::CtTimeouts,
    iface::{
        Endpoint, Endpoint6Key, EndpointKey, IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey,
        PublicTarget, Subnet6Info, SubnetInfo, VpcInfo,
    },
    route::RouteValue,
    security_group::SgRuleValue,
};

pub use ids::{Ids, NameTable, ObjectKind, QualifiedName};
pub use routes::{Route6Prefix, RoutePrefix};
pub use security_groups::{SgRemote6Prefix, SgRemotePrefix, SgRulePrefix};
pub use topology::{Link, Links};

use crate::config::ValidatedConfig;

/// Every map entry of one generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    pub slot: u32,
    pub ifaces: BTreeMap<IfaceKey, IfaceInfo>,
    pub subnets: BTreeMap<u32, SubnetInfo>,
    /// The IPv6 /64s of the subnets that have one.
    pub subnets6: BTreeMap<u32, Subnet6Info>,
    pub vpcs: BTreeMap<u32, VpcInfo>,
    pub endpoints: BTreeMap<EndpointKey, Endpoint>,
    /// The instances' IPv6 addresses, each with its instance's endpoint.
    pub endpoints6: BTreeMap<Endpoint6Key, Endpoint>,
    pub public_ips: BTreeMap<PublicKey, PublicTarget>,
    pub nat_gateways: BTreeMap<u32, NatGatewayInfo>,
    pub routes: BTreeMap<RoutePrefix, RouteValue>,
    /// The IPv6 routes of every table (`ROUTES6`): local ones and the tables' IPv6 routes.
    pub routes6: BTreeMap<Route6Prefix, RouteValue>,
    /// Keyed by `acl_index(acl_id, direction)`: the ACLs' IPv4 rules.
    pub acls: BTreeMap<u32, AclTable>,
    /// The ACLs' IPv6 rules (`ACLS6`), at the same indexes as `acls`.
    pub acls6: BTreeMap<u32, AclTable6>,
    /// Remote address -> class, per VPC.
    pub sg_remotes: BTreeMap<SgRemotePrefix, u32>,
    /// The same for IPv6 remotes (`SG_REMOTES6`), classes numbered after the IPv4 ones.
    pub sg_remotes6: BTreeMap<SgRemote6Prefix, u32>,
    /// (instance, class, direction, protocol, port block) -> the rule that allows it (both
    /// families: their classes differ).
    pub sg_rules: BTreeMap<SgRulePrefix, SgRuleValue>,
    /// `CT_TIMEOUTS[0]`, every field set.
    pub ct_timeouts: CtTimeouts,
    /// The NAT gateways' port range (`NAT_CONFIG[0]`).
    pub nat_config: vpc_common::nat::NatConfig,
    pub names: NameTable,
    pub ids: Ids,
}

impl Compiled {
    /// The interfaces XDP may redirect to (`DEVICES`): all but virtual devices, into which a
    /// redirected frame is delivered only when the peer runs NAPI (XDP hands those to TC).
    pub fn redirect_targets(&self) -> impl Iterator<Item = u32> + '_ {
        self.ifaces
            .iter()
            .filter(|(_, info)| info.flags & vpc_common::iface::IFACE_F_VIRTUAL == 0)
            .map(|(key, _)| key.ifindex)
    }
}

/// A map that would need more entries than one generation has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    pub map: &'static str,
    pub needed: usize,
    pub limit: usize,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} would need {} entries, the datapath holds {} per generation",
            self.map, self.needed, self.limit
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("generation slot {slot} does not exist (0 or 1)")]
    InvalidSlot { slot: u32 },
    #[error("interfaces not found: {}", names.join(", "))]
    UnknownInterfaces { names: Vec<String> },
    #[error(
        "interface {interface} has ifindex {ifindex}, which another interface of the definition also has"
    )]
    SharedIfindex { interface: String, ifindex: u32 },
    #[error("the definition does not fit the datapath: {}", join(overflows))]
    Capacity { overflows: Vec<Overflow> },
}

fn join(overflows: &[Overflow]) -> String {
    let parts: Vec<String> = overflows.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// A network as stored in maps: (address, mask), network order.
pub(crate) fn net_raw(net: Ipv4Net) -> (u32, u32) {
    family::Family::raw(&net)
}

/// The overflow of one ACL direction's rules of each family.
const ACLS_RULES: &str = "ACLS (IPv4 rules of one direction of one ACL)";
const ACLS6_RULES: &str = "ACLS6 (IPv6 rules of one direction of one ACL)";

/// Compiles `config` into generation `slot`; `links` resolves interface names (an
/// ifindex-only `Fn(&str) -> Option<u32>` will do).
pub fn compile(
    config: &ValidatedConfig,
    slot: u32,
    links: &dyn Links,
) -> Result<Compiled, CompileError> {
    if slot > 1 {
        return Err(CompileError::InvalidSlot { slot });
    }
    let ids = Ids::allocate(config, slot);
    let mut out = Compiled {
        slot,
        ct_timeouts: config.connection_tracking,
        nat_config: vpc_common::nat::NatConfig {
            port_min: config.nat_ports().0,
            port_max: config.nat_ports().1,
            _pad: 0,
        },
        names: NameTable::build(config, &ids),
        ..Default::default()
    };
    let mut ifaces = topology::Interfaces {
        resolve: links,
        missing: Vec::new(),
    };
    let uplink_addresses: Vec<std::net::Ipv4Addr> = config
        .vpcs
        .iter()
        .filter_map(|v| v.internet_gateway.as_ref())
        .flat_map(|igw| links.addresses(&igw.interface))
        .collect();
    routes::uplink_spoof_routes(config, slot, &uplink_addresses, &mut out.routes);
    routes::uplink_vpc_blocks6(config, slot, &ids, &mut out.routes6);
    let mut acl_overflow = Vec::new();
    for (v, vpc) in config.vpcs.iter().enumerate() {
        let links = topology::vpc_topology(vpc, v, &ids, &mut ifaces, &mut out)?;
        let route_maps = routes::RouteMaps {
            v4: &mut out.routes,
            v6: &mut out.routes6,
        };
        routes::vpc_routes(vpc, v, &ids, &links, route_maps);
        let remotes = security_groups::Remotes {
            v4: &mut out.sg_remotes,
            v6: &mut out.sg_remotes6,
        };
        security_groups::vpc_security_groups(&config.vpcs, v, &ids, remotes, &mut out.sg_rules);
        for (a, def) in vpc.network_acls.iter().enumerate() {
            let acl_id = ids.acl[v][a];
            for (dir, rules) in [(ACL_INBOUND, &def.inbound), (ACL_OUTBOUND, &def.outbound)] {
                let index = acl_index(acl_id, dir);
                let (acls, acls6) = (&mut out.acls, &mut out.acls6);
                acl::encode_into::<Ipv4Net>(ACLS_RULES, rules, index, acls, &mut acl_overflow);
                acl::encode_into::<Ipv6Net>(ACLS6_RULES, rules, index, acls6, &mut acl_overflow);
            }
        }
    }
    if !ifaces.missing.is_empty() {
        return Err(CompileError::UnknownInterfaces {
            names: ifaces.missing,
        });
    }
    out.ids = ids;
    check_capacity(out, acl_overflow)
}

/// Rejects entries that would not fit one generation, naming every map that overflows.
fn check_capacity(out: Compiled, mut overflows: Vec<Overflow>) -> Result<Compiled, CompileError> {
    let acl_count: usize = out.ids.acl.iter().map(Vec::len).sum();
    let counts = [
        ("IFACES", out.ifaces.len(), capacity::IFACES),
        ("SUBNETS", out.subnets.len(), capacity::SUBNETS),
        ("VPCS", out.vpcs.len(), capacity::VPCS),
        ("ENDPOINTS", out.endpoints.len(), capacity::ENDPOINTS),
        ("ENDPOINTS6", out.endpoints6.len(), capacity::ENDPOINTS),
        ("PUBLIC_IPS", out.public_ips.len(), capacity::PUBLIC_IPS),
        (
            "NAT_GATEWAYS",
            out.nat_gateways.len(),
            capacity::NAT_GATEWAYS,
        ),
        ("ROUTES", out.routes.len(), capacity::ROUTES),
        ("ROUTES6", out.routes6.len(), capacity::ROUTES),
        ("ACLS (network ACLs)", acl_count, MAX_ACLS),
        ("SG_REMOTES", out.sg_remotes.len(), capacity::SG_REMOTES),
        ("SG_REMOTES6", out.sg_remotes6.len(), capacity::SG_REMOTES),
        ("SG_RULES", out.sg_rules.len(), capacity::SG_RULES),
    ];
    for (map, needed, limit) in counts {
        let limit = limit as usize;
        if needed > limit {
            overflows.push(Overflow { map, needed, limit });
        }
    }
    if overflows.is_empty() {
        Ok(out)
    } else {
        Err(CompileError::Capacity { overflows })
    }
}

#[cfg(test)]
mod tests {
    use vpc_common::{
        acl::{ACL_ANY_ICMP_CODE, ACL_ANY_ICMP_TYPE, ACL_ANY_PROTO, ACL_DENY},
        iface::{ENDPOINT_INSTANCE, ENDPOINT_NAT_GATEWAY, IFACE_SUBNET, IFACE_UPLINK, slot_id},
        ip_raw,
        route::{TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY},
    };

    use super::*;
    use crate::config::load_str;

    const YAML: &str = "vpcs:
  - name: prod
    cidr_blocks: [10.0.0.0/16]
    internet_gateway: { name: igw, interface: up }
    nat_gateways: [{ name: nat, subnet: pub, private_ip: 10.0.0.5, elastic_ip: 198.51.100.10 }]
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, interface: s-pub, route_table: public }
      - { name: priv, cidr: 10.0.1.0/24, interface: s-priv, network_acl: locked }
    route_tables:
      - { name: public, routes: [{ destination: 0.0.0.0/0, target: igw }] }
      - { name: main, routes: [{ destination: 0.0.0.0/0, target: nat }] }
    network_acls:
      - name: locked
        inbound:
          - { rule: 200, protocol: all, cidr: 0.0.0.0/0, action: deny }
          - { rule: 100, protocol: tcp, ports: 22-23, cidr: 10.0.0.0/24, action: allow }
    instances:
      - { name: web, subnet: pub, private_ip: 10.0.0.10, public_ip: 198.51.100.20 }
";

    /// The ifindexes of the interfaces the unit tests' definitions name.
    pub(super) fn ifindex(name: &str) -> Option<u32> {
        match name {
            "up" => Some(2),
            "s-pub" => Some(3),
            "s-priv" => Some(4),
            _ => None,
        }
    }

    /// A dual-stack VPC with instance ports, IPv6 ACL and security group rules (ICMPv6 too).
    pub(super) const DUAL_STACK: &str = r#"vpcs:
  - name: dual
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1234:1a00::/56
    internet_gateway: { name: igw, interface: up }
    egress_only_internet_gateway: { name: eigw, interface: up }
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, ipv6_cidr: "2001:db8:1234:1a00::/64", route_table: public, network_acl: edge }
      - { name: priv, cidr: 10.0.1.0/24, ipv6_cidr: "2001:db8:1234:1a01::/64", route_table: private }
    route_tables:
      - name: public
        routes:
          - { destination: 0.0.0.0/0, target: igw }
          - { destination: "::/0", target: igw }
      - name: private
        routes:
          - { destination: "::/0", target: eigw }
          - { destination: "2001:db8:ffff::/48", target: blackhole }
    network_acls:
      - name: edge
        inbound:
          - { rule: 100, protocol: tcp, ports: 443, cidr: "::/0", action: allow }
          - { rule: 90, protocol: icmpv6, icmp: { type: 128, code: -1 }, cidr: "2001:db8:1234:1a00::/56", action: allow }
          - { rule: 200, protocol: all, cidr: 0.0.0.0/0, action: allow }
        outbound:
          - { rule: 100, protocol: all, cidr: "::/0", action: allow }
    security_groups:
      - name: web
        inbound:
          - { protocol: tcp, ports: 443, source: "::/0" }
          - { protocol: icmpv6, icmp: { type: 128 }, source: sg:app }
          - { protocol: tcp, ports: 22, source: "2001:db8:ffff::/64" }
        outbound:
          - { protocol: all, destination: "::/0" }
      - name: app
        inbound:
          - { protocol: tcp, ports: 443, source: sg:web }
        outbound: []
    instances:
      - { name: web-1, subnet: pub, interface: eni-web1, private_ip: 10.0.0.10, ipv6_addresses: ["2001:db8:1234:1a00::10"], security_groups: [web] }
      - { name: app-1, subnet: priv, interface: eni-app1, private_ip: 10.0.1.10, ipv6_addresses: ["2001:db8:1234:1a01::10", "2001:db8:1234:1a01::11"], security_groups: [app] }
"#;

    /// The ifindexes of [`DUAL_STACK`]'s interfaces.
    pub(super) fn ifindex6(name: &str) -> Option<u32> {
        match name {
            "up" => Some(2),
            "eni-web1" => Some(5),
            "eni-app1" => Some(6),
            _ => None,
        }
    }

    fn compiled(slot: u32) -> Compiled {
        let config = load_str("t.yaml", YAML).expect("valid");
        compile(&config, slot, &ifindex).expect("compiles")
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        ip_raw([a, b, c, d])
    }

    #[test]
    fn topology_entries() {
        let c = compiled(1);
        let (vpc, public, private) = (slot_id(1, 1), slot_id(1, 1), slot_id(1, 2));
        // Tables: public = 1, main = 2, then the local table = 3. ACLs: locked = 256, default = 257.
        let (t_public, t_main, t_local) = (slot_id(1, 1), slot_id(1, 2), slot_id(1, 3));
        assert_eq!(
            c.ifaces
                .keys()
                .map(|k| (k.ifindex, k.slot))
                .collect::<Vec<_>>(),
            [(2, 1), (3, 1), (4, 1)]
        );
        assert_eq!(
            c.ifaces[&IfaceKey {
                ifindex: 2,
                slot: 1
            }]
                .kind,
            IFACE_UPLINK
        );
        let sub = c.ifaces[&IfaceKey {
            ifindex: 4,
            slot: 1,
        }];
        assert_eq!(
            (sub.kind, sub.vpc_id, sub.subnet_id),
            (IFACE_SUBNET, vpc, private)
        );
        assert_eq!(
            c.vpcs[&vpc],
            VpcInfo {
                igw_ifindex: 2,
                local_table: t_local,
                eigw_ifindex: 0,
            }
        );
        let expected = SubnetInfo {
            ifindex: 4,
            vpc_id: vpc,
            route_table: t_main,
            acl_id: MAX_ACLS,
            cidr: ip(10, 0, 1, 0),
            mask: ip(255, 255, 255, 0),
            router_ip: ip(10, 0, 1, 1),
            _pad: 0,
        };
        assert_eq!(c.subnets[&private], expected);
        assert_eq!(c.subnets[&public].route_table, t_public);
        assert_eq!(c.subnets[&public].acl_id, MAX_ACLS + 1);
        let web = c.endpoints[&EndpointKey {
            vpc_id: vpc,
            ip: ip(10, 0, 0, 10),
        }];
        assert_eq!(
            (web.kind, web.subnet_id, web.id, web.public_ip),
            (
                ENDPOINT_INSTANCE,
                public,
                slot_id(1, 1),
                ip(198, 51, 100, 20)
            )
        );
        let nat = c.endpoints[&EndpointKey {
            vpc_id: vpc,
            ip: ip(10, 0, 0, 5),
        }];
        assert_eq!((nat.kind, nat.id), (ENDPOINT_NAT_GATEWAY, slot_id(1, 1)));
        let eip = c.public_ips[&PublicKey {
            ip: ip(198, 51, 100, 10),
            slot: 1,
        }];
        assert_eq!(
            (eip.kind, eip.private_ip),
            (ENDPOINT_NAT_GATEWAY, ip(10, 0, 0, 5))
        );
        let expected = NatGatewayInfo {
            vpc_id: vpc,
            subnet_id: public,
            private_ip: ip(10, 0, 0, 5),
            elastic_ip: ip(198, 51, 100, 10),
        };
        assert_eq!(c.nat_gateways[&slot_id(1, 1)], expected);
        assert_eq!(
            c.names.id(ObjectKind::Subnet, "prod", "priv"),
            Some(private)
        );
    }

    #[test]
    fn route_entries_include_the_local_routes_in_every_table() {
        let c = compiled(0);
        let entry = |table, net: &str, target, target_id| {
            let net: Ipv4Net = net.parse().expect("net");
            let value = RouteValue {
                target,
                target_id,
                ..Default::default()
            };
            (RoutePrefix::new(table, net), value)
        };
        let local = |t| {
            [
                entry(t, "10.0.0.0/16", TARGET_LOCAL, 0),
                entry(t, "10.0.0.0/24", TARGET_LOCAL, 1),
                entry(t, "10.0.1.0/24", TARGET_LOCAL, 2),
            ]
        };
        let mut expected: BTreeMap<RoutePrefix, RouteValue> = BTreeMap::new();
        expected.extend(local(1));
        expected.extend([entry(1, "0.0.0.0/0", TARGET_INTERNET_GATEWAY, 2)]);
        expected.extend(local(2));
        expected.extend([entry(2, "0.0.0.0/0", TARGET_NAT_GATEWAY, 1)]);
        expected.extend(local(3));
        let spoof_table = vpc_common::route::uplink_spoof_table(0);
        let (spoof, routes): (BTreeMap<_, _>, BTreeMap<_, _>) = c
            .routes
            .clone()
            .into_iter()
            .partition(|(k, _)| k.key.table == spoof_table);
        assert_eq!(routes, expected);
        // Anti-spoofing: the VPC block, the public and elastic IPs, the martians.
        let mut want: Vec<&str> = vec![
            "10.0.0.0/16",
            "198.51.100.20/32",
            "198.51.100.10/32",
            "0.0.0.0/8",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
        ];
        want.sort_unstable();
        let mut have: Vec<String> = spoof
            .iter()
            .map(|(k, v)| {
                assert_eq!(v.target, vpc_common::route::TARGET_BLACKHOLE);
                let addr = std::net::Ipv4Addr::from(vpc_common::ip_from_raw(k.key.addr));
                format!("{addr}/{}", k.prefix_len - 32)
            })
            .collect();
        have.sort_unstable();
        assert_eq!(have, want);
        let first = c.routes.keys().next().expect("entry");
        assert_eq!(first.prefix_len, 32);
    }

    #[test]
    fn acl_tables_are_sorted_and_encoded() {
        let c = compiled(0);
        let locked = &c.acls[&acl_index(0, ACL_INBOUND)];
        assert_eq!(locked.count, 2);
        let ssh = locked.rules[0];
        assert_eq!(
            (
                ssh.rule_number,
                ssh.proto,
                ssh.port_lo,
                ssh.port_hi,
                ssh.action
            ),
            (100, 6, 22, 23, vpc_common::acl::ACL_ALLOW)
        );
        assert_eq!(
            (ssh.addr, ssh.mask),
            (ip(10, 0, 0, 0), ip(255, 255, 255, 0))
        );
        assert_eq!(ssh.flags, ACL_ANY_ICMP_TYPE | ACL_ANY_ICMP_CODE);
        let deny = locked.rules[1];
        assert_eq!(
            (deny.rule_number, deny.action, deny.port_hi),
            (200, ACL_DENY, u16::MAX)
        );
        assert_eq!(
            deny.flags,
            ACL_ANY_PROTO | ACL_ANY_ICMP_TYPE | ACL_ANY_ICMP_CODE
        );
        assert_eq!(
            c.acls[&acl_index(0, ACL_OUTBOUND)].count,
            0,
            "no rules: deny all"
        );
        // The implicit default ACL: rule 100 allows all, both ways.
        for dir in [ACL_INBOUND, ACL_OUTBOUND] {
            let default = &c.acls[&acl_index(1, dir)];
            assert_eq!((default.count, default.rules[0].rule_number), (1, 100));
        }
    }

    #[test]
    fn missing_interfaces_and_bad_slots_are_errors() {
        let config = load_str("t.yaml", YAML).expect("valid");
        let err =
            compile(&config, 0, &|n: &str| ifindex(n).filter(|_| n != "up")).expect_err("missing");
        assert_eq!(
            err,
            CompileError::UnknownInterfaces {
                names: vec!["up".into()]
            }
        );
        let err = compile(&config, 2, &ifindex).expect_err("slot");
        assert_eq!(err, CompileError::InvalidSlot { slot: 2 });
        let err = compile(&config, 0, &|_: &str| Some(9)).expect_err("shared ifindex");
        assert!(matches!(
            err,
            CompileError::SharedIfindex { ifindex: 9, .. }
        ));
    }

    #[test]
    fn capacity_overflow_names_the_map() {
        use std::fmt::Write as _;
        // 65 VPCs: one more than VPCS holds.
        let mut yaml = String::from("vpcs:\n");
        for v in 0..65 {
            let _ = writeln!(yaml, "  - {{ name: v{v}, cidr_blocks: [10.{v}.0.0/16] }}");
        }
        let config = load_str("t.yaml", &yaml).expect("valid");
        let err = compile(&config, 0, &ifindex).expect_err("too many VPCs");
        let CompileError::Capacity { overflows } = err else {
            panic!("{err}");
        };
        assert_eq!(
            overflows,
            [Overflow {
                map: "VPCS",
                needed: 65,
                limit: 64
            }]
        );
    }

    #[test]
    fn security_group_rule_overflow_names_the_map() {
        let config = load_str("t.yaml", &many_instances(true)).expect("valid");
        let err = compile(&config, 0, &ifindex).expect_err("too many rules");
        let CompileError::Capacity { overflows } = err else {
            panic!("{err}");
        };
        assert_eq!(
            overflows,
            [Overflow {
                map: "SG_RULES",
                needed: 271_700,
                limit: 262_144
            }]
        );
    }

    #[test]
    fn instances_with_the_same_groups_share_their_rules() {
        let config = load_str("t.yaml", &many_instances(false)).expect("valid");
        let c = compile(&config, 0, &ifindex).expect("fits");
        assert_eq!(
            c.sg_rules.len(),
            2717,
            "one set's entries, not 100 instances'"
        );
        let sets: std::collections::BTreeSet<u32> =
            c.endpoints.values().map(|e| e.sg_set).collect();
        assert_eq!(sets.len(), 1);
    }

    /// 100 instances in group g: tcp 1-65535 (16 port blocks) from anywhere for 151 classes
    /// (150 /32s + class 0), one entry per /32 rule, all out to 151 classes: 2717 entries per
    /// security group set. With `distinct`, each instance also has its own empty group, so
    /// every instance is a set of its own: 271,700 entries.
    fn many_instances(distinct: bool) -> String {
        use std::fmt::Write as _;
        let mut yaml = String::from(
            "vpcs:
  - name: v
    cidr_blocks: [10.0.0.0/16]
    subnets: [{ name: a, cidr: 10.0.0.0/20, interface: s-pub }]
    security_groups:
      - name: g
        inbound:
          - { protocol: tcp, ports: 1-65535, source: 0.0.0.0/0 }
",
        );
        for k in 0..150 {
            let _ = writeln!(
                yaml,
                "          - {{ protocol: all, source: 192.168.{}.{}/32 }}",
                k / 100,
                k % 100
            );
        }
        for i in 0..100 {
            if distinct {
                let _ = writeln!(yaml, "      - {{ name: h{i}, inbound: [], outbound: [] }}");
            }
        }
        yaml.push_str("    instances:\n");
        for i in 0..100 {
            let groups = if distinct {
                format!("g, h{i}")
            } else {
                "g".to_owned()
            };
            let _ = writeln!(
                yaml,
                "      - {{ name: i{i}, subnet: a, private_ip: 10.0.1.{}, security_groups: [{groups}] }}",
                i + 10
            );
        }
        yaml
    }

    #[test]
    fn nat_ports_hold_55000_connections_per_destination_by_default() {
        let c = compiled(0);
        assert_eq!(
            (c.nat_config.port_min, c.nat_config.port_max),
            (1024, 56023)
        );
        let yaml = format!(
            "{YAML}connection_tracking: {{ nat_port_range: 2000-2999, nat_connections_per_destination: 100 }}\n"
        );
        let config = load_str("t.yaml", &yaml).expect("valid");
        let c = compile(&config, 0, &ifindex).expect("compiles");
        assert_eq!((c.nat_config.port_min, c.nat_config.port_max), (2000, 2099));
    }

    #[test]
    fn connection_tracking_timeouts_are_compiled_with_defaults_filled_in() {
        let c = compiled(0);
        assert_eq!(c.ct_timeouts, vpc_common::conntrack::DEFAULT_TIMEOUTS);
        let yaml = format!("{YAML}connection_tracking: {{ icmp_timeout: 5 }}\n");
        let config = load_str("t.yaml", &yaml).expect("valid");
        let c = compile(&config, 0, &ifindex).expect("compiles");
        assert_eq!(c.ct_timeouts.icmp, 5);
        assert_eq!(c.ct_timeouts.nat, 350);
    }

    fn net6(s: &str) -> Ipv6Net {
        s.parse().expect("net")
    }

    #[test]
    fn dual_stack_acls_hold_each_familys_rules_at_the_same_index() {
        use vpc_common::{acl::ACL_ALLOW, proto::PROTO_ICMPV6};
        let config = load_str("t.yaml", DUAL_STACK).expect("valid");
        let c = compile(&config, 1, &ifindex6).expect("compiles");
        // edge = ACL 256 (slot 1), the implicit default 257.
        let (edge, default) = (MAX_ACLS, MAX_ACLS + 1);
        let inbound6 = &c.acls6[&acl_index(edge, ACL_INBOUND)];
        assert_eq!(inbound6.count, 2);
        let echo = inbound6.rules[0];
        let (prefix, mask) = family::Family::raw(&net6("2001:db8:1234:1a00::/56"));
        assert_eq!(
            (
                echo.rule_number,
                echo.proto,
                echo.icmp_type,
                echo.addr,
                echo.mask
            ),
            (90, PROTO_ICMPV6, 128, prefix, mask)
        );
        assert_eq!(echo.flags, ACL_ANY_ICMP_CODE, "type 128, any code");
        let https = inbound6.rules[1];
        assert_eq!(
            (https.rule_number, https.proto, https.port_lo, https.port_hi),
            (100, 6, 443, 443)
        );
        assert_eq!(
            (https.addr, https.mask, https.action),
            ([0; 16], [0; 16], ACL_ALLOW)
        );
        // The IPv4 rule stays in ACLS, alone.
        let inbound = &c.acls[&acl_index(edge, ACL_INBOUND)];
        assert_eq!((inbound.count, inbound.rules[0].rule_number), (1, 200));
        assert_eq!(c.acls[&acl_index(edge, ACL_OUTBOUND)].count, 0);
        assert_eq!(c.acls6[&acl_index(edge, ACL_OUTBOUND)].count, 1);
        // The default ACL of a VPC with an IPv6 block: rule 100 (IPv4) and 101 (IPv6) allow all.
        for dir in [ACL_INBOUND, ACL_OUTBOUND] {
            let (v4, v6) = (
                &c.acls[&acl_index(default, dir)],
                &c.acls6[&acl_index(default, dir)],
            );
            assert_eq!((v4.count, v4.rules[0].rule_number), (1, 100));
            assert_eq!((v6.count, v6.rules[0].rule_number), (1, 101));
        }
        assert_eq!(
            c.acls.keys().collect::<Vec<_>>(),
            c.acls6.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn dual_stack_security_groups_classify_ipv6_remotes_after_the_ipv4_ones() {
        use vpc_common::{proto::PROTO_ICMPV6, security_group::SG_ANY_PROTO};
        let config = load_str("t.yaml", DUAL_STACK).expect("valid");
        let c = compile(&config, 0, &ifindex6).expect("compiles");
        let vpc = slot_id(0, 1);
        // IPv4: the members of the referenced groups web (web-1) and app (app-1).
        let v4: BTreeMap<SgRemotePrefix, u32> = [("10.0.0.10/32", 1), ("10.0.1.10/32", 2)]
            .into_iter()
            .map(|(n, class)| {
                (
                    SgRemotePrefix::new(vpc, n.parse::<Ipv4Net>().unwrap()),
                    class,
                )
            })
            .collect();
        assert_eq!(c.sg_remotes, v4);
        // IPv6: ::/0 first (never class 0), then the members' addresses and the named /64.
        let v6: BTreeMap<SgRemote6Prefix, u32> = [
            ("::/0", 3),
            ("2001:db8:1234:1a00::10/128", 4),
            ("2001:db8:1234:1a01::10/128", 5),
            ("2001:db8:1234:1a01::11/128", 6),
            ("2001:db8:ffff::/64", 7),
        ]
        .into_iter()
        .map(|(n, class)| (SgRemotePrefix::new(vpc, net6(n)), class))
        .collect();
        assert_eq!(c.sg_remotes6, v6);
        let any6 = c.sg_remotes6.keys().next().expect("::/0");
        assert_eq!((any6.prefix_len, any6.key.vpc_id), (32, vpc));
        let hosts = c.sg_remotes6.keys().filter(|k| k.prefix_len == 32 + 128);
        assert_eq!(hosts.count(), 3, "the members' addresses as /128s");

        // Sets: web-1 = 1 (web), app-1 = 2 (app); groups web 0, app 1.
        let (web, app) = (1, 2);
        let (inb, out) = (ACL_INBOUND as u8, ACL_OUTBOUND as u8);
        let mut expected = BTreeMap::new();
        let mut add = |endpoint, classes: &[u32], direction, (proto, port, bits), rule: u32| {
            for &class in classes {
                let key = SgRulePrefix {
                    prefix_len: vpc_common::security_group::SG_RULE_FIXED_BITS + bits,
                    key: vpc_common::security_group::SgRuleKey {
                        endpoint,
                        class,
                        direction,
                        proto,
                        port_be: u16::to_be(port),
                    },
                };
                expected.insert(key, SgRuleValue { rule });
            }
        };
        let ipv6_everyone = [3, 4, 5, 6, 7];
        add(web, &ipv6_everyone, inb, (6, 443, 16), 0);
        // sg:app: app-1's IPv4 and IPv6 addresses; ICMPv6 echo request = type 128, any code.
        add(web, &[2, 5, 6], inb, (PROTO_ICMPV6, 128 << 8, 8), 1);
        add(web, &[7], inb, (6, 22, 16), 2);
        add(web, &ipv6_everyone, out, (SG_ANY_PROTO, 0, 0), 0);
        add(app, &[1, 4], inb, (6, 443, 16), 1 << 16);
        assert_eq!(c.sg_rules, expected);
    }

    #[test]
    fn ipv6_map_overflow_names_the_map() {
        let mut out = Compiled::default();
        let v6 = |n: u32| net6(&format!("2001:db8:{:x}:{:x}::/64", n >> 16, n & 0xffff));
        for n in 0..=capacity::ROUTES {
            out.routes6
                .insert(RoutePrefix::new(1, v6(n)), RouteValue::default());
        }
        for n in 0..=capacity::SG_REMOTES {
            out.sg_remotes6.insert(SgRemotePrefix::new(1, v6(n)), n);
        }
        let err = check_capacity(out, Vec::new()).expect_err("too many");
        let CompileError::Capacity { overflows } = err else {
            panic!("{err}");
        };
        let maps: Vec<(&str, usize)> = overflows.iter().map(|o| (o.map, o.needed)).collect();
        assert_eq!(
            maps,
            [
                ("ROUTES6", capacity::ROUTES as usize + 1),
                ("SG_REMOTES6", capacity::SG_REMOTES as usize + 1)
            ]
        );
    }
}
