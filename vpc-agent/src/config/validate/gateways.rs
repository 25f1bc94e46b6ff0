//! Gateways that carry packets untranslated: the VPN gateway (a virtual private gateway),
//! route tables' `propagate`, and gateway endpoints (a prefix list's services; their `pl:`
//! routes are checked in `routes.rs`).

use super::*;

impl Validator {
    /// The VPC's VPN gateway: its link, and the customer network's prefixes (valid, none twice,
    /// none overlapping any VPC's block: both sides of the VPN keep their private addresses).
    pub(super) fn vpn_gateway(&mut self, vpc: &model::Vpc, path: &str) -> Option<Vec<GatewayDef>> {
        let Some(vgw) = &vpc.vpn_gateway else {
            return Some(Vec::new());
        };
        let vgw = &vgw.value;
        let gpath = format!("{path}.vpn_gateway");
        let owner = format!(
            "VPN gateway '{}' of VPC '{}'",
            vgw.name.value, vpc.name.value
        );
        self.interface(&vgw.interface, &format!("{gpath}.interface"), owner);
        if vgw.routes.value.is_empty() {
            let msg = "a VPN gateway needs the customer network's prefixes in `routes`";
            self.err(vgw.routes.pos, format!("{gpath}.routes"), msg);
        }
        let mut networks = Vec::new();
        let mut seen: HashMap<Ipv4Net, u32> = HashMap::new();
        for (i, route) in vgw.routes.value.iter().enumerate() {
            let rpath = format!("{gpath}.routes[{i}]");
            let Some(net) = self.cidr(route, &rpath) else {
                networks.push(None);
                continue;
            };
            if let Some(line) = seen.get(&net) {
                let msg = format!("duplicate VPN route {net} (also at line {line})");
                self.err(route.pos, rpath, msg);
                networks.push(None);
                continue;
            }
            seen.insert(net, route.pos.line);
            let clash = self
                .globals
                .vpc_blocks
                .iter()
                .find(|(b, _)| overlaps(b, &net));
            if let Some((block, owner)) = clash {
                let msg = format!(
                    "VPN route {net} overlaps {block} of VPC '{owner}': the customer network \
                     and the VPCs must not overlap (their addresses are kept across the VPN)"
                );
                self.err(route.pos, rpath, msg);
                networks.push(None);
                continue;
            }
            networks.push(Some(net));
        }
        Some(vec![GatewayDef {
            name: vgw.name.value.clone(),
            kind: GatewayKind::Vpn,
            interface: vgw.interface.value.clone(),
            networks: networks.into_iter().collect::<Option<_>>()?,
        }])
    }

    /// The gateways a route table's `propagate` names (indices in `gateways`): only the VPC's
    /// VPN gateway propagates routes, each once.
    pub(super) fn propagations(
        &mut self,
        table: &model::RouteTable,
        path: &str,
        vpc: &model::Vpc,
        targets: &Targets,
    ) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for (i, name) in table.propagate.iter().enumerate() {
            let ppath = format!("{path}.propagate[{i}]");
            let vgw = vpc
                .vpn_gateway
                .as_ref()
                .map(|g| g.value.name.value.as_str());
            let found = targets.gateways.get(&name.value).copied();
            match found {
                Some(g) if vgw == Some(name.value.as_str()) => {
                    if out.contains(&Some(g)) {
                        let msg = format!("VPN gateway '{}' is propagated twice", name.value);
                        self.err(name.pos, ppath, msg);
                        out.push(None);
                    } else {
                        out.push(Some(g));
                    }
                }
                _ => {
                    let msg = match vgw {
                        Some(v) => format!(
                            "unknown VPN gateway '{}': only the VPC's VPN gateway '{v}' propagates routes",
                            name.value
                        ),
                        None => format!(
                            "'{}' cannot propagate routes: VPC '{}' has no VPN gateway",
                            name.value, vpc.name.value
                        ),
                    };
                    self.err(name.pos, ppath, msg);
                    out.push(None);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// A table's routes with the propagated ones added: a gateway's network becomes a route to
/// it unless the table has a static route for that very prefix (AWS "Route priority": the
/// longest prefix wins, and for the same prefix a static route over a propagated one).
pub(super) fn with_propagated(
    mut routes: Vec<RouteDef>,
    propagate: &[usize],
    gateways: &[GatewayDef],
) -> Vec<RouteDef> {
    for &g in propagate {
        for net in &gateways[g].networks {
            let net = IpNet::V4(*net);
            if !routes.iter().any(|r| r.destination == net) {
                routes.push(RouteDef {
                    destination: net,
                    target: RouteTarget::Gateway(g),
                    propagated: true,
                });
            }
        }
    }
    routes
}

impl Validator {
    /// The VPC's gateway endpoints (after the VPN gateway in `gateways`): a unique interface
    /// each, and a prefix list of the VPC whose CIDRs are outside every VPC (the endpoint's
    /// link may send from them, so they must not cover any VPC address).
    pub(super) fn gateway_endpoints(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        lists: &Names,
        defs: Option<&[PrefixListDef]>,
    ) -> Option<Vec<GatewayDef>> {
        let mut out = Vec::new();
        for (i, ep) in vpc.gateway_endpoints.iter().enumerate() {
            let ep = &ep.value;
            let epath = format!("{path}.gateway_endpoints[{i}]");
            let owner = format!(
                "gateway endpoint '{}' of VPC '{}'",
                ep.name.value, vpc.name.value
            );
            self.interface(&ep.interface, &format!("{epath}.interface"), owner);
            let lpath = format!("{epath}.prefix_list");
            let list = &ep.prefix_list;
            let index = self.prefix_list_ref(list, &list.value, &lpath, &vpc.name.value, lists);
            let networks = index.zip(defs).map(|(l, defs)| defs[l].cidrs.clone());
            if let Some(networks) = &networks {
                for net in networks {
                    let clashes = self
                        .globals
                        .vpc_blocks
                        .iter()
                        .filter(|(b, _)| overlaps(b, net));
                    let msgs: Vec<String> = clashes
                        .map(|(block, owner)| {
                            format!(
                                "prefix list '{}' holds {net}, which overlaps {block} of VPC \
                                 '{owner}': a gateway endpoint's services must be outside every \
                                 VPC (its interface may send from them)",
                                list.value
                            )
                        })
                        .collect();
                    for msg in msgs {
                        self.err(list.pos, lpath.clone(), msg);
                    }
                }
            }
            out.push(
                index
                    .zip(networks)
                    .map(|(prefix_list, networks)| GatewayDef {
                        name: ep.name.value.clone(),
                        kind: GatewayKind::Endpoint { prefix_list },
                        interface: ep.interface.value.clone(),
                        networks,
                    }),
            );
        }
        out.into_iter().collect()
    }
}
