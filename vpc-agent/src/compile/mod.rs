//! Compilation: the pure function from a validated definition to the exact entries of every
//! datapath map, for one generation slot (vpc-common documents each map). Nothing here touches
//! the kernel; the caller applies [`Compiled`] (and only if this succeeded, so a definition
//! that does not fit is rejected before anything changes).

pub mod acl;
pub mod ids;
pub mod routes;
pub mod topology;

use std::{collections::BTreeMap, fmt};

use ipnet::Ipv4Net;
use vpc_common::{
    acl::{ACL_INBOUND, ACL_OUTBOUND, AclTable, MAX_ACL_RULES, MAX_ACLS, acl_index},
    capacity,
    iface::{
        Endpoint, EndpointKey, IfaceInfo, IfaceKey, NatGatewayInfo, PublicKey, PublicTarget,
        SubnetInfo, VpcInfo,
    },
    ip_raw, mask_raw,
    route::RouteValue,
};

pub use ids::{Ids, NameTable, ObjectKind, QualifiedName};
pub use routes::RoutePrefix;

use crate::config::ValidatedConfig;

/// Every map entry of one generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    pub slot: u32,
    pub ifaces: BTreeMap<IfaceKey, IfaceInfo>,
    pub subnets: BTreeMap<u32, SubnetInfo>,
    pub vpcs: BTreeMap<u32, VpcInfo>,
    pub endpoints: BTreeMap<EndpointKey, Endpoint>,
    pub public_ips: BTreeMap<PublicKey, PublicTarget>,
    pub nat_gateways: BTreeMap<u32, NatGatewayInfo>,
    pub routes: BTreeMap<RoutePrefix, RouteValue>,
    /// Keyed by `acl_index(acl_id, direction)`.
    pub acls: BTreeMap<u32, AclTable>,
    pub names: NameTable,
    pub ids: Ids,
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
    (ip_raw(net.network().octets()), mask_raw(net.prefix_len()))
}

/// Compiles `config` into generation `slot`; `ifindex` resolves interface names.
pub fn compile(
    config: &ValidatedConfig,
    slot: u32,
    ifindex: &dyn Fn(&str) -> Option<u32>,
) -> Result<Compiled, CompileError> {
    if slot > 1 {
        return Err(CompileError::InvalidSlot { slot });
    }
    let ids = Ids::allocate(config, slot);
    let mut out = Compiled {
        slot,
        names: NameTable::build(config, &ids),
        ..Default::default()
    };
    let mut ifaces = topology::Interfaces {
        resolve: ifindex,
        missing: Vec::new(),
    };
    let mut acl_overflow = Vec::new();
    for (v, vpc) in config.vpcs.iter().enumerate() {
        let igw_ifindex = topology::vpc_topology(vpc, v, &ids, &mut ifaces, &mut out)?;
        routes::vpc_routes(vpc, v, &ids, igw_ifindex, &mut out.routes);
        for (a, def) in vpc.network_acls.iter().enumerate() {
            let acl_id = ids.acl[v][a];
            for (dir, rules) in [(ACL_INBOUND, &def.inbound), (ACL_OUTBOUND, &def.outbound)] {
                match acl::encode_table(rules) {
                    Some(table) => {
                        out.acls.insert(acl_index(acl_id, dir), table);
                    }
                    None => acl_overflow.push(Overflow {
                        map: "ACLS (rules of one direction of one ACL)",
                        needed: rules.len(),
                        limit: MAX_ACL_RULES,
                    }),
                }
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
        ("PUBLIC_IPS", out.public_ips.len(), capacity::PUBLIC_IPS),
        (
            "NAT_GATEWAYS",
            out.nat_gateways.len(),
            capacity::NAT_GATEWAYS,
        ),
        ("ROUTES", out.routes.len(), capacity::ROUTES),
        ("ACLS (network ACLs)", acl_count, MAX_ACLS),
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
