//! Route tables: destinations and targets.

use super::*;

/// A route's destination as written: a CIDR, or a prefix list (`pl:NAME`) by index in the
/// VPC's `prefix_lists`. [`Validator::route_fits_target`] decides which targets each allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RouteDestination {
    Cidr(Ipv4Net),
    PrefixList(usize),
}

impl Validator {
    /// Names a route may target: the internet gateway, NAT gateways, peering connections and
    /// instances (NAT instances) share one namespace (a route names its target by name alone).
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
            let mut seen: BTreeMap<RouteDestination, u32> = BTreeMap::new();
            let mut routes = Vec::new();
            for (j, route) in table.routes.iter().enumerate() {
                let rpath = format!("{tpath}.routes[{j}]");
                let dest = self.route_destination(&route.value, &rpath, scope);
                if let Some(d) = dest {
                    if let Some(line) = seen.get(&d) {
                        let shown = match d {
                            RouteDestination::Cidr(net) => net.to_string(),
                            RouteDestination::PrefixList(_) => {
                                route.value.destination.value.clone()
                            }
                        };
                        let msg = format!(
                            "duplicate destination {shown} in route table '{}' (also at line {line})",
                            table.name.value
                        );
                        self.err(
                            route.value.destination.pos,
                            format!("{rpath}.destination"),
                            msg,
                        );
                    } else {
                        seen.insert(d, route.value.destination.pos.line);
                    }
                }
                let target = self.route_target(
                    &route.value.target,
                    &format!("{rpath}.target"),
                    scope,
                    targets,
                );
                let destination = dest.and_then(|d| {
                    self.route_fits_target(d, target.as_ref(), &route.value.destination, &rpath)
                });
                routes.push(
                    destination
                        .zip(target)
                        .map(|(destination, target)| RouteDef {
                            destination,
                            target,
                            propagated: false,
                        }),
                );
            }
            out.push(resolve(|| {
                let routes = routes.into_iter().collect::<Option<_>>()?;
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
    /// inside, a VPC block (the local route covers those).
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
        let dest = self.cidr(&route.destination, &dpath)?;
        let pos = route.destination.pos;
        if let Some(block) = scope.blocks.iter().find(|b| b.contains(&dest)) {
            let msg = if *block == dest {
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

    /// The one place a destination meets its target (`None`: the target did not resolve).
    /// A prefix list is only a destination for a gateway endpoint, which the format does not
    /// have yet: every `pl:NAME` route is refused.
    fn route_fits_target(
        &mut self,
        dest: RouteDestination,
        _target: Option<&RouteTarget>,
        written: &Loc<String>,
        path: &str,
    ) -> Option<Ipv4Net> {
        match dest {
            RouteDestination::Cidr(net) => Some(net),
            RouteDestination::PrefixList(_) => {
                let msg = format!(
                    "a prefix-list destination needs a gateway endpoint target, and gateway \
                     endpoints are not supported yet: '{}' cannot be routed",
                    written.value
                );
                self.err(written.pos, format!("{path}.destination"), msg);
                None
            }
        }
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
                "unknown route target '{name}': not an internet gateway, VPN gateway, NAT gateway, peering connection or NAT instance of VPC '{vpc}', nor 'blackhole'"
            )
        };
        self.err(target.pos, path, msg);
        None
    }
}
