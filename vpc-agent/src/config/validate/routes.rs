//! Route tables: destinations (IPv4 or IPv6) and targets.

use super::*;

/// A route's destination as written: a CIDR (IPv4 or IPv6), or a prefix list (`pl:NAME`) by
/// index in the VPC's `prefix_lists`. [`Validator::route_fits_target`] decides which targets
/// each allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RouteDestination {
    Cidr(IpNet),
    PrefixList(usize),
}

/// The prefixes a table already routes, of both families: by whom (the destination as
/// resolved) and its line.
type Seen = HashMap<IpNet, (RouteDestination, u32)>;

/// The prefixes a destination stands for: the CIDR, or every CIDR of the prefix list (`None`:
/// some list is invalid, already reported).
fn destination_prefixes(dest: RouteDestination, scope: &VpcScope<'_>) -> Option<Vec<IpNet>> {
    match dest {
        RouteDestination::Cidr(net) => Some(vec![net]),
        RouteDestination::PrefixList(l) => scope
            .prefix_list_defs
            .map(|defs| defs[l].cidrs.iter().copied().map(IpNet::V4).collect()),
    }
}

/// Why `target` (named `name`) cannot carry destination `net`, if it cannot: the address
/// families each target carries. The internet gateway and `blackhole` take both; the
/// egress-only internet gateway IPv6 only; a NAT gateway (it translates to its elastic IPv4
/// address) and the VPN gateway (its customer network is IPv4) IPv4 only; a NAT instance
/// IPv6 too if it has IPv6 addresses; a peering connection IPv6 too if the peer VPC has an
/// IPv6 block as well (the route's own VPC has one, or the destination was refused already).
fn family_clash(net: IpNet, target: &RouteTarget, name: &str, targets: &Targets) -> Option<String> {
    let IpNet::V6(_) = net else {
        return (*target == RouteTarget::EgressOnlyGateway).then(|| {
            format!(
                "the egress-only internet gateway carries IPv6 only: '{name}' cannot be the \
                 target of IPv4 destination {net}"
            )
        });
    };
    let why = match target {
        RouteTarget::NatGateway(_) => format!("NAT gateway '{name}' translates IPv4 only"),
        // A gateway endpoint takes only its prefix list (checked before): this is the VPN
        // gateway.
        RouteTarget::Gateway(_) => {
            format!("VPN gateway '{name}' carries the customer network's IPv4 prefixes only")
        }
        RouteTarget::Instance(i) if !targets.ipv6_instances.contains(i) => format!(
            "instance '{name}' has no ipv6_addresses, so as a NAT instance it carries IPv4 only"
        ),
        RouteTarget::Peering(p) => {
            let peer = targets.ipv4_only_peerings.get(p)?;
            format!(
                "peering connection '{name}' carries IPv6 only between VPCs that both have an \
                 ipv6_cidr_block, and its peer VPC '{peer}' has none"
            )
        }
        RouteTarget::InternetGateway
        | RouteTarget::EgressOnlyGateway
        | RouteTarget::Instance(_)
        | RouteTarget::Blackhole => return None,
    };
    Some(format!(
        "{why}: it cannot be the target of IPv6 destination {net}"
    ))
}

impl Validator {
    /// Names a route may target: the internet gateway, the VPN gateway, NAT gateways, peering
    /// connections, instances (NAT instances) and gateway endpoints share one namespace (a
    /// route names its target by name alone).
    pub(super) fn target_names(&mut self, vpc: &model::Vpc, path: &str) -> Targets {
        let mut targets = Targets::default();
        let mut seen: HashMap<String, (String, u32)> = HashMap::new();
        let mut add = |me: &mut Self, name: &Loc<String>, npath: String, kind: &str| {
            if name.value == TARGET_LOCAL || name.value == TARGET_BLACKHOLE {
                let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                let msg = format!(
                    "'{}' is reserved as a route target and cannot name {article} {kind}",
                    name.value
                );
                me.err(name.pos, npath, msg);
                return false;
            }
            if name.value.is_empty() {
                me.err(name.pos, npath, format!("a {kind} name must not be empty"));
                return false;
            }
            if let Some((other, line)) = seen.get(&name.value) {
                let msg = format!(
                    "duplicate route target name '{}': also the {other} at line {line}",
                    name.value
                );
                me.err(name.pos, npath, msg);
                return false;
            }
            seen.insert(name.value.clone(), (kind.to_owned(), name.pos.line));
            true
        };
        if let Some(igw) = &vpc.internet_gateway {
            let npath = format!("{path}.internet_gateway.name");
            if add(self, &igw.value.name, npath, "internet gateway") {
                targets.igw = Some(igw.value.name.value.clone());
            }
        }
        if let Some(eigw) = &vpc.egress_only_internet_gateway {
            let npath = format!("{path}.egress_only_internet_gateway.name");
            if add(
                self,
                &eigw.value.name,
                npath,
                "egress-only internet gateway",
            ) {
                targets.eigw = Some(eigw.value.name.value.clone());
            }
        }
        if let Some(vgw) = &vpc.vpn_gateway {
            let npath = format!("{path}.vpn_gateway.name");
            if add(self, &vgw.value.name, npath, "VPN gateway") {
                targets.gateways.insert(vgw.value.name.value.clone(), 0);
            }
        }
        for (i, nat) in vpc.nat_gateways.iter().enumerate() {
            let npath = format!("{path}.nat_gateways[{i}].name");
            if add(self, &nat.value.name, npath, "NAT gateway") {
                targets.nats.insert(nat.value.name.value.clone(), i);
            }
        }
        for (i, pcx) in vpc.peering_connections.iter().enumerate() {
            let npath = format!("{path}.peering_connections[{i}].name");
            if add(self, &pcx.value.name, npath, "peering connection") {
                targets.peerings.insert(pcx.value.name.value.clone(), i);
                let peer = &pcx.value.peer_vpc.value;
                // An unknown peer is reported on the connection.
                let known = self.globals.vpc_index.contains_key(peer);
                if known && !self.globals.ipv6_vpcs.contains(peer) {
                    targets.ipv4_only_peerings.insert(i, peer.clone());
                }
            }
        }
        for (i, inst) in vpc.instances.iter().enumerate() {
            let inst = &inst.value;
            // Empty and duplicate instance names are reported with the instances.
            if inst.name.value.is_empty() || targets.instances.contains_key(&inst.name.value) {
                continue;
            }
            let npath = format!("{path}.instances[{i}].name");
            let check = inst.source_dest_check.as_ref().is_none_or(|c| c.value);
            if add(self, &inst.name, npath, "instance") {
                targets
                    .instances
                    .insert(inst.name.value.clone(), (i, check));
                if !inst.ipv6_addresses.is_empty() {
                    targets.ipv6_instances.insert(i);
                }
            }
        }
        // Endpoints come after the VPN gateway in `gateways`.
        let first_endpoint = usize::from(vpc.vpn_gateway.is_some());
        for (i, ep) in vpc.gateway_endpoints.iter().enumerate() {
            let npath = format!("{path}.gateway_endpoints[{i}].name");
            if add(self, &ep.value.name, npath, "gateway endpoint") {
                let g = first_endpoint + i;
                targets.gateways.insert(ep.value.name.value.clone(), g);
                let list = ep.value.prefix_list.value.clone();
                targets.endpoint_lists.insert(g, list);
            }
        }
        targets
    }

    pub(super) fn route_tables(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        targets: &Targets,
        gateways: Option<&[GatewayDef]>,
    ) -> Option<Vec<RouteTableDef>> {
        let mut out = Vec::new();
        for (i, table) in vpc.route_tables.iter().enumerate() {
            let table = &table.value;
            let tpath = format!("{path}.route_tables[{i}]");
            let propagate = self.propagations(table, &tpath, vpc, targets);
            let mut seen = Seen::new();
            let mut routes = Vec::new();
            for (j, route) in table.routes.iter().enumerate() {
                let rpath = format!("{tpath}.routes[{j}]");
                let dest = self.route_destination(&route.value, &rpath, scope);
                let written = &route.value.destination;
                if let Some(d) = dest {
                    self.unique_destination(
                        &mut seen,
                        d,
                        written,
                        &rpath,
                        &table.name.value,
                        scope,
                    );
                }
                let target = self.route_target(
                    &route.value.target,
                    &format!("{rpath}.target"),
                    scope,
                    targets,
                );
                let prefixes = dest.and_then(|d| {
                    self.route_fits_target(d, target.as_ref(), &route.value, &rpath, scope, targets)
                });
                routes.push(prefixes.zip(target).map(|(prefixes, target)| {
                    prefixes
                        .into_iter()
                        .map(|destination| RouteDef {
                            destination,
                            target: target.clone(),
                            propagated: false,
                        })
                        .collect::<Vec<_>>()
                }));
            }
            out.push(resolve(|| {
                let routes: Vec<Vec<RouteDef>> = routes.into_iter().collect::<Option<_>>()?;
                let routes = routes.into_iter().flatten().collect();
                Some(RouteTableDef {
                    name: table.name.value.clone(),
                    implicit: false,
                    routes: gateways::with_propagated(routes, &propagate?, gateways?),
                })
            }));
        }
        out.into_iter().collect()
    }

    /// A route's destination: a prefix list of the VPC, or a CIDR that is not, and is not
    /// inside, a VPC block (the local route covers those). An IPv6 CIDR needs the VPC's IPv6
    /// block, and is held against it as an IPv4 one against the IPv4 blocks.
    pub(super) fn route_destination(
        &mut self,
        route: &model::Route,
        path: &str,
        scope: &VpcScope<'_>,
    ) -> Option<RouteDestination> {
        let dpath = format!("{path}.destination");
        if let Some(name) = prefix_lists::prefix_list_name(&route.destination.value) {
            return self
                .prefix_list_ref(
                    &route.destination,
                    name,
                    &dpath,
                    scope.name,
                    scope.prefix_lists,
                )
                .map(RouteDestination::PrefixList);
        }
        let dest = self.ip_cidr(&route.destination, &dpath)?;
        let pos = route.destination.pos;
        if dest.addr().is_ipv6() {
            match scope.ipv6_block {
                ipv6::V6Block::Absent => {
                    let msg = format!(
                        "IPv6 destination {dest} needs an IPv6 block in its VPC, and VPC '{}' \
                         has no ipv6_cidr_block",
                        scope.name
                    );
                    self.err(pos, dpath, msg);
                    return None;
                }
                ipv6::V6Block::Invalid => return None,
                ipv6::V6Block::Block(_) => {}
            }
        }
        let local_blocks = scope.blocks.iter().copied().map(IpNet::V4);
        let mut local_blocks = local_blocks.chain(scope.ipv6_block.net().map(IpNet::V6));
        if let Some(block) = local_blocks.find(|b| b.contains(&dest)) {
            let msg = if block == dest {
                format!("destination {dest} is the VPC's local route and cannot be overridden")
            } else {
                format!(
                    "destination {dest} is more specific than the local route {block}; no route may be inside a VPC CIDR block"
                )
            };
            self.err(pos, dpath, msg);
            return None;
        }
        Some(RouteDestination::Cidr(dest))
    }

    /// A table routes each prefix once: a route whose destination (a CIDR, or any CIDR of
    /// its prefix list) a former route of the table already holds is a duplicate. A prefix
    /// list and a CIDR route may overlap (the longest prefix wins), not hold the same prefix.
    fn unique_destination(
        &mut self,
        seen: &mut Seen,
        dest: RouteDestination,
        written: &Loc<String>,
        path: &str,
        table: &str,
        scope: &VpcScope<'_>,
    ) {
        let Some(prefixes) = destination_prefixes(dest, scope) else {
            return;
        };
        let clash = prefixes
            .iter()
            .find_map(|net| seen.get(net).map(|first| (*net, *first)));
        if let Some((net, (first, line))) = clash {
            let list = |d: RouteDestination| match d {
                RouteDestination::PrefixList(l) => scope
                    .prefix_list_defs
                    .map(|defs| defs[l].name.as_str())
                    .map(|name| format!("{PL_REF}{name}")),
                RouteDestination::Cidr(_) => None,
            };
            let msg = match (list(dest), list(first)) {
                _ if dest == first => format!(
                    "duplicate destination {} in route table '{table}' (also at line {line})",
                    list(dest).unwrap_or_else(|| net.to_string())
                ),
                (mine, theirs) => format!(
                    "duplicate destination {net}{} in route table '{table}' (also at line {line}{})",
                    mine.map(|m| format!(" (in {m})")).unwrap_or_default(),
                    theirs.map(|t| format!(", in {t}")).unwrap_or_default(),
                ),
            };
            self.err(written.pos, format!("{path}.destination"), msg);
            return;
        }
        for net in prefixes {
            seen.insert(net, (dest, written.pos.line));
        }
    }

    /// The one place a destination meets its target: the prefixes the route stands for
    /// (`None`: refused, or the target did not resolve). A prefix list (`pl:NAME`) is the
    /// destination of a gateway endpoint serving that very list, and only of one; it stands
    /// for each CIDR of the list. A gateway endpoint carries nothing but its list.
    fn route_fits_target(
        &mut self,
        dest: RouteDestination,
        target: Option<&RouteTarget>,
        route: &model::Route,
        path: &str,
        scope: &VpcScope<'_>,
        targets: &Targets,
    ) -> Option<Vec<IpNet>> {
        let written = &route.destination;
        let endpoint = match target {
            Some(RouteTarget::Gateway(g)) => targets.endpoint_lists.get(g),
            _ => None,
        };
        let target_name = &route.target.value;
        let msg = match (dest, endpoint) {
            (RouteDestination::Cidr(net), None) => {
                let clash = target.and_then(|t| family_clash(net, t, target_name, targets));
                let Some(msg) = clash else {
                    return Some(vec![net]);
                };
                self.err(route.target.pos, format!("{path}.target"), msg);
                return None;
            }
            (RouteDestination::Cidr(net), Some(list)) => format!(
                "gateway endpoint '{target_name}' carries only its prefix list: route \
                 {PL_REF}{list} to it, not {net}"
            ),
            (RouteDestination::PrefixList(_), None) if target.is_none() => return None,
            (RouteDestination::PrefixList(_), None) => format!(
                "a prefix-list destination needs a gateway endpoint target: '{}' cannot be \
                 routed to '{target_name}'",
                written.value
            ),
            (RouteDestination::PrefixList(l), Some(list)) => {
                let served = scope.prefix_lists.get(list).map(|(i, _)| *i);
                match served {
                    // The endpoint's own list is unknown: reported on the endpoint.
                    None => return None,
                    Some(s) if s == l => return destination_prefixes(dest, scope),
                    Some(_) => format!(
                        "gateway endpoint '{target_name}' serves prefix list '{list}', not '{}'",
                        prefix_lists::prefix_list_name(&written.value).unwrap_or_default()
                    ),
                }
            }
        };
        self.err(written.pos, format!("{path}.destination"), msg);
        None
    }

    pub(super) fn route_target(
        &mut self,
        target: &Loc<String>,
        path: &str,
        scope: &VpcScope<'_>,
        targets: &Targets,
    ) -> Option<RouteTarget> {
        let name = target.value.as_str();
        if name == TARGET_BLACKHOLE {
            return Some(RouteTarget::Blackhole);
        }
        if targets.igw.as_deref() == Some(name) {
            return Some(RouteTarget::InternetGateway);
        }
        if targets.eigw.as_deref() == Some(name) {
            return Some(RouteTarget::EgressOnlyGateway);
        }
        if let Some(i) = targets.nats.get(name) {
            return Some(RouteTarget::NatGateway(*i));
        }
        if let Some(i) = targets.peerings.get(name) {
            return Some(RouteTarget::Peering(*i));
        }
        if let Some(g) = targets.gateways.get(name) {
            return Some(RouteTarget::Gateway(*g));
        }
        let vpc = scope.name;
        if let Some(&(i, check)) = targets.instances.get(name) {
            if !check {
                return Some(RouteTarget::Instance(i));
            }
            // AWS: a NAT instance must have its source/destination check disabled, else the
            // packets routed to it (not addressed to it) are dropped.
            let msg = format!(
                "instance '{name}' has its source/destination check on (the default): a route \
                 can target an instance only as a NAT instance, with source_dest_check: false"
            );
            self.err(target.pos, path, msg);
            return None;
        }
        let msg = if name == TARGET_LOCAL {
            "the local route is implicit for the VPC's CIDR blocks; 'local' cannot be a route's target"
                .to_owned()
        } else if let Some(other) = self.globals.igws.get(name) {
            format!(
                "internet gateway '{name}' belongs to VPC '{other}'; a route can only target the internet gateway of its own VPC '{vpc}'"
            )
        } else if let Some(others) = self.globals.instances.get(name) {
            format!(
                "instance '{name}' is in VPC '{}'; a route can only target an instance of its own VPC '{vpc}'",
                others.join("', '")
            )
        } else if let Some(others) = self.globals.nats.get(name) {
            format!(
                "NAT gateway '{name}' is in VPC '{}'; a route can only target a NAT gateway of its own VPC '{vpc}'",
                others.join("', '")
            )
        } else {
            format!(
                "unknown route target '{name}': not an internet gateway, egress-only internet gateway, VPN gateway, NAT gateway, peering connection, NAT instance or gateway endpoint of VPC '{vpc}', nor 'blackhole'"
            )
        };
        self.err(target.pos, path, msg);
        None
    }
}
