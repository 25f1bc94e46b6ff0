//! Topology entries: interfaces, subnets, VPCs, registered addresses, public addresses and NAT
//! gateways.

use vpc_common::{
    iface::{
        ENDPOINT_INSTANCE, ENDPOINT_NAT_GATEWAY, Endpoint, Endpoint6Key, EndpointKey,
        IFACE_F_NO_SOURCE_CHECK, IFACE_F_VIRTUAL, IFACE_GATEWAY, IFACE_SUBNET, IFACE_UPLINK,
        IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey, PublicTarget, Subnet6Info, SubnetInfo,
        VpcInfo,
    },
    ip_raw,
};

use super::{CompileError, Compiled, ids::Ids, net_raw};
use crate::config::validated::VpcDef;

/// What the machine says about a router interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    /// Its own MAC address (the source of the ARP answers on an instance port).
    pub mac: [u8; 6],
    /// A virtual device (veth, tap, ...): `IFACE_F_VIRTUAL`.
    pub virtual_device: bool,
}

/// Resolves interface names. Any `Fn(&str) -> Option<u32>` (ifindex only) is one.
pub trait Links {
    fn link(&self, name: &str) -> Option<Link>;

    /// The interface's own IPv4 addresses (the uplink's are never valid internet sources).
    fn addresses(&self, _name: &str) -> Vec<std::net::Ipv4Addr> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> Option<u32>> Links for F {
    fn link(&self, name: &str) -> Option<Link> {
        self(name).map(|ifindex| Link {
            ifindex,
            ..Link::default()
        })
    }
}

/// Resolves interface names to links, collecting the names that do not resolve.
pub struct Interfaces<'a> {
    pub resolve: &'a dyn Links,
    pub missing: Vec<String>,
}

impl Interfaces<'_> {
    fn get(&mut self, name: &str) -> Link {
        self.resolve.link(name).unwrap_or_else(|| {
            self.missing.push(name.to_owned());
            Link::default()
        })
    }

    /// The router's own address on a link outside the VPC (an uplink, a gateway's link): the
    /// interface's first address (network order), 0 when it has none.
    fn first_address(&self, name: &str) -> u32 {
        self.resolve
            .addresses(name)
            .first()
            .map_or(0, |a| ip_raw(a.octets()))
    }
}

/// The `IFACES` value of an interface of `kind` resolved to `link`.
fn iface_info(
    kind: u8,
    link: &Link,
    (vpc_id, subnet_id): (u32, u32),
    instance_ip: u32,
    router_ip: u32,
) -> IfaceInfo {
    IfaceInfo {
        kind,
        flags: if link.virtual_device {
            IFACE_F_VIRTUAL
        } else {
            0
        },
        mac: link.mac,
        vpc_id,
        subnet_id,
        instance_ip,
        router_ip,
        source_table: 0,
    }
}

/// Adds an `IFACES` entry; two names resolving to one ifindex is an error.
fn add_iface(
    out: &mut Compiled,
    ifindex: u32,
    info: IfaceInfo,
    name: &str,
) -> Result<(), CompileError> {
    let key = IfaceKey {
        ifindex,
        slot: out.slot,
    };
    if ifindex != 0 && out.ifaces.insert(key, info).is_some() {
        return Err(CompileError::SharedIfindex {
            interface: name.to_owned(),
            ifindex,
        });
    }
    Ok(())
}

/// The ifindexes routes of a VPC lead to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpcLinks {
    /// The internet gateway's uplink (0: none).
    pub igw: u32,
    /// The egress-only internet gateway's uplink (0: none, or its interface is not there).
    pub eigw: u32,
    /// Each gateway's link, in `VpcDef::gateways` order.
    pub gateways: Vec<u32>,
}

/// The topology entries of VPC `v`; returns the links its routes lead to.
pub fn vpc_topology(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    ifaces: &mut Interfaces<'_>,
    out: &mut Compiled,
) -> Result<VpcLinks, CompileError> {
    let vpc_id = ids.vpc[v];
    let igw_ifindex = match &vpc.internet_gateway {
        Some(igw) => {
            let link = ifaces.get(&igw.interface);
            // The uplink's first address: the source of the ICMP errors sent there.
            let own = ifaces.first_address(&igw.interface);
            let info = iface_info(IFACE_UPLINK, &link, (vpc_id, 0), 0, own);
            add_iface(out, link.ifindex, info, &igw.interface)?;
            link.ifindex
        }
        None => 0,
    };
    // Not an interface of its own to the datapath (no IFACES entry, nothing attached): the
    // IPv6 routes to it carry its uplink's ifindex, and IPv6 replies come in there (the
    // internet gateway's uplink, which it usually shares). Resolved leniently, since the
    // definition's interfaces (what `validate` stands in for) do not include it.
    let eigw = vpc.egress_only_internet_gateway.as_ref().map_or(0, |eigw| {
        ifaces
            .resolve
            .link(&eigw.interface)
            .map_or(0, |link| link.ifindex)
    });
    let vpc_info = VpcInfo {
        igw_ifindex,
        local_table: ids.local_table[v],
        eigw_ifindex: eigw,
    };
    out.vpcs.insert(vpc_id, vpc_info);
    let gateways = gateway_links(vpc, v, ids, ifaces, out)?;
    subnets(vpc, v, ids, ifaces, out)?;
    let ports = instance_ports(vpc, v, ids, ifaces, out)?;
    endpoints(vpc, v, ids, &ports, out);
    Ok(VpcLinks {
        igw: igw_ifindex,
        eigw,
        gateways,
    })
}

/// Each gateway's link: an `IFACES` entry naming the table of the sources it accepts
/// (`routes::gateway_source_routes` fills it). The router's own address there is the
/// link's first one (the only destination beyond the VPC a packet from it may have).
fn gateway_links(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    ifaces: &mut Interfaces<'_>,
    out: &mut Compiled,
) -> Result<Vec<u32>, CompileError> {
    let mut links = Vec::with_capacity(vpc.gateways.len());
    for (g, gateway) in vpc.gateways.iter().enumerate() {
        let link = ifaces.get(&gateway.interface);
        let own = ifaces.first_address(&gateway.interface);
        let mut info = iface_info(IFACE_GATEWAY, &link, (ids.vpc[v], 0), 0, own);
        info.source_table = ids.gateway_table[v][g];
        add_iface(out, link.ifindex, info, &gateway.interface)?;
        links.push(link.ifindex);
    }
    Ok(links)
}

fn subnets(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    ifaces: &mut Interfaces<'_>,
    out: &mut Compiled,
) -> Result<(), CompileError> {
    let vpc_id = ids.vpc[v];
    for (s, subnet) in vpc.subnets.iter().enumerate() {
        let subnet_id = ids.subnet[v][s];
        let ifindex = match &subnet.interface {
            Some(name) => {
                let link = ifaces.get(name);
                let router = ip_raw(subnet.router_ip().octets());
                let info = iface_info(IFACE_SUBNET, &link, (vpc_id, subnet_id), 0, router);
                add_iface(out, link.ifindex, info, name)?;
                link.ifindex
            }
            None => 0,
        };
        let (cidr, mask) = net_raw(subnet.cidr);
        let info = SubnetInfo {
            ifindex,
            vpc_id,
            route_table: ids.route_table[v][subnet.route_table],
            acl_id: ids.acl[v][subnet.network_acl],
            cidr,
            mask,
            router_ip: ip_raw(subnet.router_ip().octets()),
            _pad: 0,
        };
        out.subnets.insert(subnet_id, info);
        if let Some(net) = subnet.ipv6_cidr {
            let mut prefix = [0; 8];
            prefix.copy_from_slice(&net.network().octets()[..8]);
            out.subnets6.insert(subnet_id, Subnet6Info { prefix });
        }
    }
    Ok(())
}

/// The instances' own ports (ENIs): each bound to its instance's address. Returns each
/// instance's port ifindex (0: none, it sits on its subnet's shared segment).
fn instance_ports(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    ifaces: &mut Interfaces<'_>,
    out: &mut Compiled,
) -> Result<Vec<u32>, CompileError> {
    let mut ports = Vec::with_capacity(vpc.instances.len());
    for inst in &vpc.instances {
        let Some(name) = &inst.interface else {
            ports.push(0);
            continue;
        };
        let link = ifaces.get(name);
        let ip = ip_raw(inst.private_ip.octets());
        let router = ip_raw(vpc.subnets[inst.subnet].router_ip().octets());
        let ids = (ids.vpc[v], ids.subnet[v][inst.subnet]);
        let mut info = iface_info(IFACE_SUBNET, &link, ids, ip, router);
        if !inst.source_dest_check {
            info.flags |= IFACE_F_NO_SOURCE_CHECK;
        }
        add_iface(out, link.ifindex, info, name)?;
        ports.push(link.ifindex);
    }
    Ok(ports)
}

fn endpoints(vpc: &VpcDef, v: usize, ids: &Ids, ports: &[u32], out: &mut Compiled) {
    let vpc_id = ids.vpc[v];
    let slot = out.slot;
    for (i, inst) in vpc.instances.iter().enumerate() {
        let id = ids.instance[v][i];
        let ip = ip_raw(inst.private_ip.octets());
        let public_ip = inst.public_ip.map_or(0, |p| ip_raw(p.octets()));
        let endpoint = Endpoint {
            kind: ENDPOINT_INSTANCE,
            subnet_id: ids.subnet[v][inst.subnet],
            id,
            public_ip,
            sg_set: ids.sg_set[v][i],
            ifindex: ports[i],
            ..Default::default()
        };
        out.endpoints.insert(EndpointKey { vpc_id, ip }, endpoint);
        for addr in &inst.ipv6_addresses {
            let key = Endpoint6Key {
                vpc_id,
                addr: addr.octets(),
            };
            out.endpoints6.insert(key, endpoint);
        }
        if public_ip != 0 {
            let target = PublicTarget {
                kind: ENDPOINT_INSTANCE,
                vpc_id,
                private_ip: ip,
                id,
                ..Default::default()
            };
            out.public_ips.insert(
                PublicKey {
                    ip: public_ip,
                    slot,
                },
                target,
            );
        }
    }
    for (n, nat) in vpc.nat_gateways.iter().enumerate() {
        let id = ids.nat_gateway[v][n];
        let subnet_id = ids.subnet[v][nat.subnet];
        let private_ip = ip_raw(nat.private_ip.octets());
        let elastic_ip = ip_raw(nat.elastic_ip.octets());
        let endpoint = Endpoint {
            kind: ENDPOINT_NAT_GATEWAY,
            subnet_id,
            id,
            ..Default::default()
        };
        out.endpoints.insert(
            EndpointKey {
                vpc_id,
                ip: private_ip,
            },
            endpoint,
        );
        let target = PublicTarget {
            kind: ENDPOINT_NAT_GATEWAY,
            vpc_id,
            private_ip,
            id,
            ..Default::default()
        };
        out.public_ips.insert(
            PublicKey {
                ip: elastic_ip,
                slot,
            },
            target,
        );
        let info = NatGatewayInfo {
            vpc_id,
            subnet_id,
            private_ip,
            elastic_ip,
        };
        out.nat_gateways.insert(id, info);
    }
}
