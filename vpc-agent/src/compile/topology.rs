//! Topology entries: interfaces, subnets, VPCs, registered addresses, public addresses and NAT
//! gateways.

use vpc_common::{
    iface::{
        ENDPOINT_INSTANCE, ENDPOINT_NAT_GATEWAY, Endpoint, EndpointKey, IFACE_SUBNET, IFACE_UPLINK,
        IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey, PublicTarget, SubnetInfo, VpcInfo,
    },
    ip_raw,
};

use super::{CompileError, Compiled, ids::Ids, net_raw};
use crate::config::validated::VpcDef;

/// Resolves interface names to ifindexes, collecting the names that do not resolve.
pub struct Interfaces<'a> {
    pub resolve: &'a dyn Fn(&str) -> Option<u32>,
    pub missing: Vec<String>,
}

impl Interfaces<'_> {
    fn get(&mut self, name: &str) -> u32 {
        (self.resolve)(name).unwrap_or_else(|| {
            self.missing.push(name.to_owned());
            0
        })
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

/// The topology entries of VPC `v`; returns the uplink's ifindex (0: no internet gateway).
pub fn vpc_topology(
    vpc: &VpcDef,
    v: usize,
    ids: &Ids,
    ifaces: &mut Interfaces<'_>,
    out: &mut Compiled,
) -> Result<u32, CompileError> {
    let vpc_id = ids.vpc[v];
    let igw_ifindex = match &vpc.internet_gateway {
        Some(igw) => {
            let ifindex = ifaces.get(&igw.interface);
            let info = IfaceInfo {
                kind: IFACE_UPLINK,
                vpc_id,
                ..Default::default()
            };
            add_iface(out, ifindex, info, &igw.interface)?;
            ifindex
        }
        None => 0,
    };
    let vpc_info = VpcInfo {
        igw_ifindex,
        local_table: ids.local_table[v],
    };
    out.vpcs.insert(vpc_id, vpc_info);
    subnets(vpc, v, ids, ifaces, out)?;
    endpoints(vpc, v, ids, out);
    Ok(igw_ifindex)
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
        let ifindex = ifaces.get(&subnet.interface);
        let info = IfaceInfo {
            kind: IFACE_SUBNET,
            vpc_id,
            subnet_id,
            ..Default::default()
        };
        add_iface(out, ifindex, info, &subnet.interface)?;
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
    }
    Ok(())
}

fn endpoints(vpc: &VpcDef, v: usize, ids: &Ids, out: &mut Compiled) {
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
            ..Default::default()
        };
        out.endpoints.insert(EndpointKey { vpc_id, ip }, endpoint);
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
