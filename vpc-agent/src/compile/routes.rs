//! `ROUTES` entries: every table of a VPC holds the VPC's local routes (one per subnet, one
//! per CIDR block) plus its own routes; each VPC also has a local-only table. A route to a
//! peering connection the peer VPC has not accepted (declared too) is a blackhole route.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnet::Ipv4Net;
use vpc_common::route::{
    ROUTE_TABLE_BITS, RouteKey, RouteValue, TARGET_BLACKHOLE, TARGET_GATEWAY, TARGET_INSTANCE,
    TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY, TARGET_PEERING, uplink_spoof_table,
};

use super::{ids::Ids, net_raw, topology::VpcLinks};
use crate::config::{
    ValidatedConfig,
    validated::{GatewayKind, RouteTarget, VpcDef},
};
use vpc_common::ip_raw;

/// Source ranges no host on the internet has (RFC 6890: "this network", loopback,
/// link-local, multicast, reserved).
pub const MARTIANS: [Ipv4Net; 5] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// The anti-spoofing table of generation `slot` (`uplink_spoof_table`): every VPC block,
/// every VPN gateway's customer network, the router's own addresses (`uplink_addresses`,
/// public and elastic IPs; the subnet routers are inside the blocks) and the martians.
pub fn uplink_spoof_routes(
    config: &ValidatedConfig,
    slot: u32,
    uplink_addresses: &[Ipv4Addr],
    out: &mut BTreeMap<RoutePrefix, RouteValue>,
) {
    let table = uplink_spoof_table(slot);
    let host = |ip: Ipv4Addr| Ipv4Net::new_assert(ip, 32);
    let mut nets: Vec<Ipv4Net> = MARTIANS.to_vec();
    for vpc in &config.vpcs {
        nets.extend(&vpc.cidr_blocks);
        // The customer networks behind VPN gateways are private: only their link carries them.
        let vpn = vpc.gateways.iter().filter(|g| g.kind == GatewayKind::Vpn);
        nets.extend(vpn.flat_map(|g| &g.networks));
        nets.extend(vpc.instances.iter().filter_map(|i| i.public_ip).map(host));
        nets.extend(vpc.nat_gateways.iter().map(|n| host(n.elastic_ip)));
    }
    nets.extend(uplink_addresses.iter().copied().map(host));
    for net in nets {
        out.insert(RoutePrefix::new(table, net), value(TARGET_BLACKHOLE, 0));
    }
}

/// An LPM trie key: `prefix_len` counts the table id's 32 bits first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutePrefix {
    pub prefix_len: u32,
    pub key: RouteKey,
}

impl RoutePrefix {
    pub fn new(table: u32, net: Ipv4Net) -> Self {
        Self {
            prefix_len: ROUTE_TABLE_BITS + u32::from(net.prefix_len()),
            key: RouteKey {
                table,
                addr: net_raw(net).0,
            },
        }
    }
}

fn value(target: u8, target_id: u32) -> RouteValue {
    RouteValue {
        target,
        target_id,
        ..Default::default()
    }
}

/// The VPC's local routes in `table`. Blocks first, so that a subnet that is exactly a block
/// overrides the block's "no subnet here" entry.
fn local_routes(
    vpc: &VpcDef,
    subnet_ids: &[u32],
    table: u32,
    out: &mut BTreeMap<RoutePrefix, RouteValue>,
) {
    for block in &vpc.cidr_blocks {
        out.insert(RoutePrefix::new(table, *block), value(TARGET_LOCAL, 0));
    }
    for (subnet, id) in vpc.subnets.iter().zip(subnet_ids) {
        out.insert(
            RoutePrefix::new(table, subnet.cidr),
            value(TARGET_LOCAL, *id),
        );
    }
}

/// Every route entry of VPC `v`, whose routes lead to `links`.
pub fn vpc_routes(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    links: &VpcLinks,
    out: &mut BTreeMap<RoutePrefix, RouteValue>,
) {
    let subnet_ids = &ids.subnet[v];
    local_routes(vpc, subnet_ids, ids.local_table[v], out);
    for (table, table_id) in vpc.route_tables.iter().zip(&ids.route_table[v]) {
        local_routes(vpc, subnet_ids, *table_id, out);
        for route in &table.routes {
            // The IPv6 forwarding pipeline is not built yet: IPv6 routes are validated, not
            // compiled (`ROUTES` is keyed by IPv4 addresses).
            let Some(destination) = route.ipv4_destination() else {
                continue;
            };
            let target = match &route.target {
                RouteTarget::InternetGateway => value(TARGET_INTERNET_GATEWAY, links.igw),
                // IPv6 only (validated), so never the target of an IPv4 route: no entry.
                RouteTarget::EgressOnlyGateway => continue,
                RouteTarget::NatGateway(n) => value(TARGET_NAT_GATEWAY, ids.nat_gateway[v][*n]),
                RouteTarget::Peering(p) => {
                    let pcx = &vpc.peering_connections[*p];
                    if pcx.accepted {
                        value(TARGET_PEERING, ids.vpc[pcx.peer_vpc])
                    } else {
                        // Not accepted (the peer does not declare it): no path to the peer.
                        // AWS shows such routes as blackhole too; the drop is `blackhole`.
                        value(TARGET_BLACKHOLE, 0)
                    }
                }
                RouteTarget::Gateway(g) => value(TARGET_GATEWAY, links.gateways[*g]),
                RouteTarget::Instance(i) => value(
                    TARGET_INSTANCE,
                    ip_raw(vpc.instances[*i].private_ip.octets()),
                ),
                RouteTarget::Blackhole => value(TARGET_BLACKHOLE, 0),
            };
            out.insert(RoutePrefix::new(*table_id, destination), target);
        }
    }
    gateway_source_routes(vpc, v, ids, links, out);
}

/// Each gateway's source table (`IfaceInfo::source_table` of its link): the networks behind
/// it, the only sources its link accepts.
fn gateway_source_routes(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    links: &VpcLinks,
    out: &mut BTreeMap<RoutePrefix, RouteValue>,
) {
    for (g, gateway) in vpc.gateways.iter().enumerate() {
        let table = ids.gateway_table[v][g];
        for net in &gateway.networks {
            out.insert(
                RoutePrefix::new(table, *net),
                value(TARGET_GATEWAY, links.gateways[g]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{compile, tests::ifindex};
    use crate::config::load_str;

    /// A dual-stack VPC; `ROUTES6` is replaced by the tables' IPv6 routes (or nothing).
    const YAML: &str = "vpcs:
  - name: prod
    cidr_blocks: [10.0.0.0/16]
    ipv6_cidr_block: 2001:db8:1234:1a00::/56
    internet_gateway: { name: igw, interface: up }
    egress_only_internet_gateway: { name: eigw, interface: up }
    subnets:
      - { name: pub, cidr: 10.0.0.0/24, ipv6_cidr: 2001:db8:1234:1a00::/64, interface: s-pub, route_table: public }
      - { name: priv, cidr: 10.0.1.0/24, ipv6_cidr: 2001:db8:1234:1a01::/64, interface: s-priv, route_table: private }
    route_tables:
      - name: public
        routes:
          - { destination: 0.0.0.0/0, target: igw }
          ROUTES6_PUBLIC
      - name: private
        routes:
          - { destination: 192.0.2.0/24, target: blackhole }
          ROUTES6_PRIVATE
";

    #[test]
    fn ipv6_routes_are_validated_not_compiled() {
        let with = YAML
            .replace("ROUTES6_PUBLIC", "- { destination: '::/0', target: igw }")
            .replace("ROUTES6_PRIVATE", "- { destination: '::/0', target: eigw }");
        let without = YAML
            .replace("ROUTES6_PUBLIC", "")
            .replace("ROUTES6_PRIVATE", "");
        let with = load_str("t.yaml", &with).expect("valid");
        let without = load_str("t.yaml", &without).expect("valid");
        let ipv6 = |c: &crate::config::ValidatedConfig| {
            c.vpcs[0]
                .route_tables
                .iter()
                .flat_map(|t| &t.routes)
                .filter(|r| r.ipv4_destination().is_none())
                .count()
        };
        assert_eq!((ipv6(&with), ipv6(&without)), (2, 0));
        let with = compile(&with, 0, &ifindex).expect("compiles");
        let without = compile(&without, 0, &ifindex).expect("compiles");
        assert!(!without.routes.is_empty());
        assert_eq!(with.routes, without.routes);
    }
}
