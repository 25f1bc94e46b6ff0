//! Addresses: NAT gateways and instances (private and public addresses, subnets, groups).

use super::*;

/// Where the definition places a NAT gateway or an instance: its subnet, private address and
/// public address (with its key: `elastic_ip` or `public_ip`).
struct Placement<'a> {
    subnet: &'a Loc<String>,
    private_ip: &'a Loc<String>,
    public_ip: Option<(&'static str, &'a Loc<String>)>,
}

/// What [`Validator::addresses`] resolved (`None`: an error was recorded).
struct Addresses<'s> {
    subnet: Option<(usize, Option<&'s SubnetDef>)>,
    private_ip: Option<Ipv4Addr>,
    /// `Some(None)`: no public address given.
    public_ip: Option<Option<Ipv4Addr>>,
}

impl Validator {
    /// A private address: inside its subnet, not reserved, not used twice in the VPC.
    pub(super) fn private_ip(
        &mut self,
        v: &Loc<String>,
        path: &str,
        subnet: Option<&SubnetDef>,
        owner: String,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Ipv4Addr> {
        let ip = self.ip(v, path)?;
        let subnet = subnet?;
        if !subnet.cidr.contains(&ip) {
            let msg = format!(
                "address {ip} is not inside subnet '{}' ({})",
                subnet.name, subnet.cidr
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if subnet.is_reserved(ip) {
            let net = subnet.cidr.network();
            let msg = format!(
                "address {ip} is reserved in subnet '{}' (AWS reserves {net} to {} and {}; the router is {})",
                subnet.name,
                Ipv4Addr::from(u32::from(net) + 3),
                subnet.cidr.broadcast(),
                subnet.router_ip()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if let Some(first) = used.get(&ip) {
            let msg = format!("address {ip} is already used by {first}");
            self.err(v.pos, path, msg);
            return None;
        }
        used.insert(ip, owner);
        Some(ip)
    }

    /// A public (elastic) address: unique across the file, and only in a VPC that has an
    /// internet gateway (as AWS requires), since nothing else could reach it.
    pub(super) fn public_ip(
        &mut self,
        v: &Loc<String>,
        path: &str,
        scope: &VpcScope<'_>,
        owner: String,
    ) -> Option<Ipv4Addr> {
        let ip = self.ip(v, path)?;
        if let Some((net, vpc)) = self
            .globals
            .vpc_blocks
            .iter()
            .find(|(n, _)| n.contains(&ip))
        {
            let msg = format!(
                "public address {ip} is inside VPC '{vpc}' ({net}): a public address must not be \
                 one of a VPC's own addresses"
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if !scope.has_igw {
            let msg = format!(
                "a public address needs an internet gateway, and VPC '{}' has none",
                scope.name
            );
            self.err(v.pos, path, msg);
        }
        if let Some(first) = self.public_ips.get(&ip) {
            let msg = format!("public address {ip} is already used by {first}");
            self.err(v.pos, path, msg);
            return None;
        }
        self.public_ips.insert(ip, owner);
        Some(ip)
    }

    /// Resolves a subnet name of this VPC (None: error recorded, or the subnet is invalid).
    pub(super) fn subnet_ref<'s>(
        &mut self,
        name: &Loc<String>,
        path: &str,
        scope: &VpcScope<'s>,
    ) -> Option<(usize, Option<&'s SubnetDef>)> {
        match scope.subnet_names.get(&name.value) {
            Some((i, _)) => Some((*i, scope.subnets.get(*i).copied().flatten())),
            None => {
                let msg = format!("unknown subnet in VPC '{}': '{}'", scope.name, name.value);
                self.err(name.pos, path, msg);
                None
            }
        }
    }

    /// The addresses a NAT gateway and an instance both have: the subnet they are in, their
    /// private address there and, where the definition gives one, their public (elastic)
    /// address. Every problem is recorded.
    fn addresses<'s>(
        &mut self,
        path: &str,
        owner: &str,
        at: &Placement<'_>,
        scope: &VpcScope<'s>,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Addresses<'s> {
        let subnet = self.subnet_ref(at.subnet, &format!("{path}.subnet"), scope);
        let private_ip = self.private_ip(
            at.private_ip,
            &format!("{path}.private_ip"),
            subnet.and_then(|s| s.1),
            owner.to_owned(),
            used,
        );
        let public_ip = match at.public_ip {
            Some((key, ip)) => {
                let public_owner = format!("{owner} of VPC '{}'", scope.name);
                let path = format!("{path}.{key}");
                self.public_ip(ip, &path, scope, public_owner).map(Some)
            }
            None => Some(None),
        };
        Addresses {
            subnet,
            private_ip,
            public_ip,
        }
    }

    pub(super) fn nat_gateways(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Vec<NatGatewayDef>> {
        let mut out = Vec::new();
        for (i, nat) in vpc.nat_gateways.iter().enumerate() {
            let nat = &nat.value;
            let npath = format!("{path}.nat_gateways[{i}]");
            let owner = format!("NAT gateway '{}'", nat.name.value);
            let at = Placement {
                subnet: &nat.subnet,
                private_ip: &nat.private_ip,
                public_ip: Some(("elastic_ip", &nat.elastic_ip)),
            };
            let a = self.addresses(&npath, &owner, &at, scope, used);
            out.push(resolve(|| {
                Some(NatGatewayDef {
                    name: nat.name.value.clone(),
                    subnet: a.subnet?.0,
                    private_ip: a.private_ip?,
                    elastic_ip: a.public_ip.flatten()?,
                })
            }));
        }
        out.into_iter().collect()
    }

    pub(super) fn instances(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        scope: &VpcScope<'_>,
        groups: &Names,
        default_sg: usize,
        used: &mut HashMap<Ipv4Addr, String>,
    ) -> Option<Vec<InstanceDef>> {
        let mut out = Vec::new();
        let mut used_v6 = HashMap::new();
        for (i, inst) in vpc.instances.iter().enumerate() {
            let inst = &inst.value;
            let ipath = format!("{path}.instances[{i}]");
            let owner = format!("instance '{}'", inst.name.value);
            let at = Placement {
                subnet: &inst.subnet,
                private_ip: &inst.private_ip,
                public_ip: inst.public_ip.as_ref().map(|p| ("public_ip", p)),
            };
            let a = self.addresses(&ipath, &owner, &at, scope, used);
            let subnet = a.subnet;
            let written = subnet.is_some_and(|(s, _)| vpc.subnets[s].value.ipv6_cidr.is_some());
            let ipv6 = self.instance_ipv6(
                inst,
                &ipath,
                subnet.and_then(|s| s.1),
                written,
                &mut used_v6,
            );
            let sgs = self.instance_groups(inst, &ipath, scope.name, groups, default_sg);
            match (&inst.interface, subnet) {
                (Some(interface), _) => {
                    let owner = format!("{owner} of VPC '{}'", scope.name);
                    self.interface(interface, &format!("{ipath}.interface"), owner);
                }
                (None, Some((_, Some(s)))) if s.interface.is_none() => {
                    let msg = format!(
                        "instance '{}' needs an interface of its own (its router port): subnet \
                         '{}' has no shared segment (interface)",
                        inst.name.value, s.name
                    );
                    self.err(inst.name.pos, format!("{ipath}.interface"), msg);
                }
                _ => {}
            }
            if let Some(check) = &inst.source_dest_check
                && !check.value
                && inst.interface.is_none()
            {
                let msg = format!(
                    "instance '{}' turns its source/destination check off but has no interface \
                     of its own: the check can only be off on an instance's own port (on a \
                     shared segment the router cannot tell which host sent a packet)",
                    inst.name.value
                );
                self.err(check.pos, format!("{ipath}.source_dest_check"), msg);
            }
            out.push(resolve(|| {
                Some(InstanceDef {
                    name: inst.name.value.clone(),
                    subnet: subnet?.0,
                    interface: inst.interface.as_ref().map(|i| i.value.clone()),
                    private_ip: a.private_ip?,
                    public_ip: a.public_ip?,
                    ipv6_addresses: ipv6?,
                    security_groups: sgs?,
                    source_dest_check: inst.source_dest_check.as_ref().is_none_or(|c| c.value),
                })
            }));
        }
        out.into_iter().collect()
    }

    pub(super) fn instance_groups(
        &mut self,
        inst: &model::Instance,
        path: &str,
        vpc: &str,
        groups: &Names,
        default_sg: usize,
    ) -> Option<Vec<usize>> {
        let Some(list) = &inst.security_groups else {
            return Some(vec![default_sg]);
        };
        let lpath = format!("{path}.security_groups");
        if list.value.is_empty() {
            let msg = "an instance needs at least one security group (omit the key for 'default')";
            self.err(list.pos, lpath, msg);
            return None;
        }
        let mut out: Vec<Option<usize>> = Vec::new();
        for (i, name) in list.value.iter().enumerate() {
            let gpath = format!("{lpath}[{i}]");
            let index = self.group_ref(name, &gpath, vpc, groups, default_sg);
            if index.is_some() && out.contains(&index) {
                let msg = format!("security group '{}' is listed twice", name.value);
                self.err(name.pos, gpath, msg);
            }
            out.push(index);
        }
        out.into_iter().collect()
    }

    /// A security group of this VPC by name (`default` always exists).
    pub(super) fn group_ref(
        &mut self,
        name: &Loc<String>,
        path: &str,
        vpc: &str,
        groups: &Names,
        default_sg: usize,
    ) -> Option<usize> {
        match groups.get(&name.value) {
            Some((i, _)) => Some(*i),
            None if name.value == DEFAULT_SG => Some(default_sg),
            None => {
                let msg = format!("unknown security group in VPC '{vpc}': '{}'", name.value);
                self.err(name.pos, path, msg);
                None
            }
        }
    }
}
