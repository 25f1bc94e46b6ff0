//! `ROUTES` and `ROUTES6` entries: every table of a VPC holds the VPC's local routes (one per
//! subnet, one per CIDR block; in `ROUTES6` one per subnet /64 and one for the VPC's /56) plus
//! its own routes of that family; each VPC also has a local-only table. A route to a
//! peering connection the peer VPC has not accepted (declared too) is a blackhole route.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use vpc_common::{
    Addr6,
    route::{
        ROUTE_TABLE_BITS, RouteKey, RouteValue, TARGET_BLACKHOLE, TARGET_EGRESS_ONLY_GATEWAY,
        TARGET_GATEWAY, TARGET_INSTANCE, TARGET_INTERNET_GATEWAY, TARGET_LOCAL, TARGET_NAT_GATEWAY,
        TARGET_PEERING, uplink_spoof_table,
    },
};

use super::{family::Family, ids::Ids, topology::VpcLinks};
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

/// The IPv6 half of the anti-spoofing table of generation `slot`, in `ROUTES6`: each VPC's
/// IPv6 block as a local route to the VPC (`target_id` = its id). From an uplink, a source in
/// it is spoofed, and a destination in it names the VPC the packet is for.
pub fn uplink_vpc_blocks6(
    config: &ValidatedConfig,
    slot: u32,
    ids: &Ids,
    out: &mut BTreeMap<Route6Prefix, RouteValue>,
) {
    let table = uplink_spoof_table(slot);
    for (v, vpc) in config.vpcs.iter().enumerate() {
        if let Some(block) = vpc.ipv6_cidr_block {
            out.insert(
                RoutePrefix::new(table, block),
                value(TARGET_LOCAL, ids.vpc[v]),
            );
        }
    }
}

/// An LPM trie key: `prefix_len` counts the table id's 32 bits first. `ROUTES` keys have IPv4
/// addresses, `ROUTES6` keys ([`Route6Prefix`]) IPv6 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoutePrefix<A = u32> {
    pub prefix_len: u32,
    pub key: RouteKey<A>,
}

/// A `ROUTES6` key.
pub type Route6Prefix = RoutePrefix<Addr6>;

impl<A> RoutePrefix<A> {
    pub fn new<N: Family<Raw = A>>(table: u32, net: N) -> Self {
        Self {
            prefix_len: ROUTE_TABLE_BITS + u32::from(net.prefix_len()),
            key: RouteKey {
                table,
                addr: net.raw().0,
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

/// The local routes of one family in `table`: each block to "inside the VPC, no subnet"
/// (`TARGET_LOCAL` 0), each subnet to itself. Blocks first, so that a subnet that is exactly a
/// block overrides the block's entry.
fn local_routes<N: Family>(
    blocks: impl IntoIterator<Item = N>,
    subnets: impl IntoIterator<Item = (N, u32)>,
    table: u32,
    out: &mut BTreeMap<RoutePrefix<N::Raw>, RouteValue>,
) {
    for block in blocks {
        out.insert(RoutePrefix::new(table, block), value(TARGET_LOCAL, 0));
    }
    for (net, id) in subnets {
        out.insert(RoutePrefix::new(table, net), value(TARGET_LOCAL, id));
    }
}

/// The route entries of both families.
#[derive(Debug)]
pub struct RouteMaps<'a> {
    pub v4: &'a mut BTreeMap<RoutePrefix, RouteValue>,
    pub v6: &'a mut BTreeMap<Route6Prefix, RouteValue>,
}

impl RouteMaps<'_> {
    /// The VPC's local routes of both families in `table`: its blocks and subnets, its IPv6
    /// /56 and the subnets' /64s.
    fn local(&mut self, vpc: &VpcDef, subnet_ids: &[u32], table: u32) {
        let subnets = vpc.subnets.iter().zip(subnet_ids.iter().copied());
        let v4 = subnets.clone().map(|(s, id)| (s.cidr, id));
        local_routes(vpc.cidr_blocks.iter().copied(), v4, table, self.v4);
        let v6 = subnets.filter_map(|(s, id)| s.ipv6_cidr.map(|net| (net, id)));
        local_routes(vpc.ipv6_cidr_block, v6, table, self.v6);
    }

    fn insert(&mut self, table: u32, destination: IpNet, target: RouteValue) {
        match destination {
            IpNet::V4(net) => self.v4.insert(RoutePrefix::new(table, net), target),
            IpNet::V6(net) => self.v6.insert(RoutePrefix::new(table, net), target),
        };
    }
}

/// The `ROUTES` / `ROUTES6` value of a route to `target` (the same for both families; only
/// IPv6 routes lead to the egress-only gateway, validation sees to it).
fn target_value(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    links: &VpcLinks,
    target: &RouteTarget,
) -> RouteValue {
    match target {
        RouteTarget::InternetGateway => value(TARGET_INTERNET_GATEWAY, links.igw),
        RouteTarget::EgressOnlyGateway => value(TARGET_EGRESS_ONLY_GATEWAY, links.eigw),
        RouteTarget::NatGateway(n) => value(TARGET_NAT_GATEWAY, ids.nat_gateway[v][*n]),
        RouteTarget::Peering(p) => {
            let pcx = &vpc.peering_connections[*p];
            if pcx.accepted {
                value(TARGET_PEERING, ids.vpc[pcx.peer_vpc])
            } else {
                // Not accepted (the peer does not declare it): no path to the peer. AWS
                // shows such routes as blackhole too; the drop is `blackhole`.
                value(TARGET_BLACKHOLE, 0)
            }
        }
        RouteTarget::Gateway(g) => value(TARGET_GATEWAY, links.gateways[*g]),
        // The instance's ENDPOINTS entry (by its private IPv4 address) gives its port, for
        // IPv6 routes too.
        RouteTarget::Instance(i) => value(
            TARGET_INSTANCE,
            ip_raw(vpc.instances[*i].private_ip.octets()),
        ),
        RouteTarget::Blackhole => value(TARGET_BLACKHOLE, 0),
    }
}

/// Every route entry of VPC `v`, whose routes lead to `links`: in every table (and the
/// local-only one) the local routes of both families, then the table's routes, IPv4 ones in
/// `ROUTES`, IPv6 ones in `ROUTES6`.
pub fn vpc_routes(vpc: &VpcDef, v: usize, ids: &Ids, links: &VpcLinks, mut out: RouteMaps<'_>) {
    let subnet_ids = &ids.subnet[v];
    out.local(vpc, subnet_ids, ids.local_table[v]);
    for (table, table_id) in vpc.route_tables.iter().zip(&ids.route_table[v]) {
        out.local(vpc, subnet_ids, *table_id);
        for route in &table.routes {
            let target = target_value(vpc, v, ids, links, &route.target);
            out.insert(*table_id, route.destination, target);
        }
    }
    gateway_source_routes(vpc, v, ids, links, out.v4);
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
    use std::collections::BTreeMap;

    use ipnet::Ipv6Net;
    use vpc_common::route::{
        RouteValue, TARGET_BLACKHOLE, TARGET_EGRESS_ONLY_GATEWAY, TARGET_INTERNET_GATEWAY,
        TARGET_LOCAL,
    };

    use super::{Route6Prefix, RoutePrefix};
    use crate::compile::{compile, tests::DUAL_STACK};
    use crate::config::load_str;

    fn entry(table: u32, net: &str, target: u8, target_id: u32) -> (Route6Prefix, RouteValue) {
        let net: Ipv6Net = net.parse().expect("net");
        let value = RouteValue {
            target,
            target_id,
            ..Default::default()
        };
        (RoutePrefix::new(table, net), value)
    }

    #[test]
    fn every_table_gets_the_ipv6_local_routes_and_its_ipv6_routes() {
        let config = load_str("t.yaml", DUAL_STACK).expect("valid");
        let c = compile(&config, 0, &super::super::tests::ifindex6).expect("compiles");
        let (public, private, main) = (1, 2, 3);
        let local_table = c.ids.local_table[0];
        assert_eq!(
            (c.ids.route_table[0].as_slice(), local_table),
            (&[1, 2, 3][..], 4)
        );
        let mut expected: BTreeMap<Route6Prefix, RouteValue> = BTreeMap::new();
        for table in [public, private, main, local_table] {
            expected.extend([
                entry(table, "2001:db8:1234:1a00::/56", TARGET_LOCAL, 0),
                entry(table, "2001:db8:1234:1a00::/64", TARGET_LOCAL, 1),
                entry(table, "2001:db8:1234:1a01::/64", TARGET_LOCAL, 2),
            ]);
        }
        // The uplink "up" is ifindex 2, for both gateways.
        expected.extend([
            entry(public, "::/0", TARGET_INTERNET_GATEWAY, 2),
            entry(private, "::/0", TARGET_EGRESS_ONLY_GATEWAY, 2),
            entry(private, "2001:db8:ffff::/48", TARGET_BLACKHOLE, 0),
        ]);
        // The uplink table: the VPC's block names the VPC (id 1).
        expected.extend([entry(
            vpc_common::route::uplink_spoof_table(0),
            "2001:db8:1234:1a00::/56",
            TARGET_LOCAL,
            1,
        )]);
        assert_eq!(c.routes6, expected);
        let default = expected
            .keys()
            .find(|k| k.key.addr == [0; 16])
            .expect("::/0");
        assert_eq!(default.prefix_len, 32, "the table id's bits only");
        let subnet = entry(1, "2001:db8:1234:1a01::/64", TARGET_LOCAL, 2).0;
        assert_eq!(subnet.prefix_len, 32 + 64);
        // The IPv4 routes are only the IPv4 ones: no IPv6 route leaks into ROUTES.
        let spoof = vpc_common::route::uplink_spoof_table(0);
        let v4: Vec<_> = c.routes.keys().filter(|k| k.key.table == public).collect();
        assert_eq!(v4.len(), 4, "10.0.0.0/16, two subnets, 0.0.0.0/0: {v4:?}");
        assert!(
            c.routes
                .keys()
                .all(|k| k.key.table != private || k.prefix_len > 32)
        );
        assert!(c.routes.keys().any(|k| k.key.table == spoof));
    }

    #[test]
    fn an_egress_only_gateway_on_a_missing_interface_is_no_error() {
        let yaml = DUAL_STACK.replace(
            "egress_only_internet_gateway: { name: eigw, interface: up }",
            "egress_only_internet_gateway: { name: eigw, interface: elsewhere }",
        );
        let config = load_str("t.yaml", &yaml).expect("valid");
        let c = compile(&config, 0, &super::super::tests::ifindex6).expect("compiles");
        let eigw = entry(2, "::/0", TARGET_EGRESS_ONLY_GATEWAY, 0);
        assert_eq!(c.routes6.get(&eigw.0), Some(&eigw.1));
    }
}
