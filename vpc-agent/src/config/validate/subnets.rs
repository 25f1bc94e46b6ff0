//! CIDR blocks and subnets: VPC blocks, subnets, their interfaces and the internet gateway.

use super::*;

impl Validator {
    pub(super) fn vpc_blocks(&mut self, vpc: &model::Vpc, path: &str) -> Vec<Option<Ipv4Net>> {
        let list = &vpc.cidr_blocks;
        if list.value.is_empty() {
            let msg = "a VPC needs at least one CIDR block";
            self.err(list.pos, format!("{path}.cidr_blocks"), msg);
        }
        let mut blocks: Vec<Option<Ipv4Net>> = Vec::new();
        for (i, block) in list.value.iter().enumerate() {
            let bpath = format!("{path}.cidr_blocks[{i}]");
            let net = self.block_cidr(block, &bpath, "a VPC CIDR block");
            if let Some(net) = net {
                let other = blocks
                    .iter()
                    .enumerate()
                    .find_map(|(j, b)| b.filter(|b| overlaps(b, &net)).map(|b| (j, b)));
                if let Some((j, other)) = other {
                    let msg = format!("CIDR block {net} overlaps {other} (cidr_blocks[{j}])");
                    self.err(block.pos, bpath, msg);
                }
            }
            blocks.push(net);
        }
        blocks
    }

    /// A CIDR without host bits, any prefix length.
    pub(super) fn cidr(&mut self, v: &Loc<String>, path: &str) -> Option<Ipv4Net> {
        let Ok(net) = v.value.parse::<Ipv4Net>() else {
            let msg = format!(
                "invalid CIDR '{}': expected an IPv4 network such as 10.0.0.0/16",
                v.value
            );
            self.err(v.pos, path, msg);
            return None;
        };
        if net.trunc() != net {
            let msg = format!(
                "CIDR {net} has host bits set (the network is {})",
                net.trunc()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        Some(net)
    }

    /// A VPC or subnet block: a CIDR of /16 to /28.
    pub(super) fn block_cidr(
        &mut self,
        v: &Loc<String>,
        path: &str,
        what: &str,
    ) -> Option<Ipv4Net> {
        let net = self.cidr(v, path)?;
        if let Some(why) = not_unicast(net.network()) {
            let msg = format!("{what} must hold unicast addresses: {net} is {why}");
            self.err(v.pos, path, msg);
            return None;
        }
        if !BLOCK_PREFIX.contains(&net.prefix_len()) {
            let msg = format!(
                "{what} must be between /16 and /28, got /{}",
                net.prefix_len()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        Some(net)
    }

    /// A host address: parses, and is unicast.
    pub(super) fn ip(&mut self, v: &Loc<String>, path: &str) -> Option<Ipv4Addr> {
        let Ok(ip) = v.value.parse::<Ipv4Addr>() else {
            let msg = format!("invalid IPv4 address '{}'", v.value);
            self.err(v.pos, path, msg);
            return None;
        };
        if let Some(why) = not_unicast(ip) {
            let msg = format!("address {ip} is {why}, not a host address");
            self.err(v.pos, path, msg);
            return None;
        }
        Some(ip)
    }

    pub(super) fn subnets(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
        blocks: &[Ipv4Net],
        refs: &SubnetRefs<'_>,
    ) -> Vec<(Option<SubnetDef>, bool)> {
        let mut nets: Vec<(Ipv4Net, &str)> = Vec::new();
        let mut v6_nets = Vec::new();
        let mut out = Vec::new();
        for (i, subnet) in vpc.subnets.iter().enumerate() {
            let subnet = &subnet.value;
            let spath = format!("{path}.subnets[{i}]");
            let cpath = format!("{spath}.cidr");
            let cidr = self.block_cidr(&subnet.cidr, &cpath, "a subnet CIDR block");
            if let Some(net) = cidr {
                if !blocks.is_empty() && !blocks.iter().any(|b| b.contains(&net)) {
                    let msg = format!(
                        "subnet {net} is not inside a CIDR block of VPC '{}'",
                        refs.vpc
                    );
                    self.err(subnet.cidr.pos, &cpath, msg);
                }
                if let Some((other, owner)) = nets.iter().find(|(n, _)| overlaps(n, &net)) {
                    let msg = format!("subnet {net} overlaps subnet '{owner}' ({other})");
                    self.err(subnet.cidr.pos, &cpath, msg);
                }
                nets.push((net, &subnet.name.value));
            }
            let ipv6_cidr =
                self.subnet_ipv6(subnet, &spath, refs.vpc, refs.ipv6_block, &mut v6_nets);
            if let Some(interface) = &subnet.interface {
                let owner = format!("subnet '{}' of VPC '{}'", subnet.name.value, refs.vpc);
                self.interface(interface, &format!("{spath}.interface"), owner);
            }
            let table_ref = Ref {
                names: refs.tables,
                default: refs.main_table,
                default_name: MAIN_TABLE,
                what: &format!("route table in VPC '{}'", refs.vpc),
            };
            let table = self.reference(
                subnet.route_table.as_ref(),
                table_ref,
                &format!("{spath}.route_table"),
            );
            let acl_ref = Ref {
                names: refs.acls,
                default: refs.default_acl,
                default_name: DEFAULT_ACL,
                what: &format!("network ACL in VPC '{}'", refs.vpc),
            };
            let acl = self.reference(
                subnet.network_acl.as_ref(),
                acl_ref,
                &format!("{spath}.network_acl"),
            );
            // Addresses are checked against the subnet's CIDR even if its references failed.
            let def = cidr.map(|cidr| SubnetDef {
                name: subnet.name.value.clone(),
                cidr,
                ipv6_cidr: ipv6_cidr.flatten(),
                interface: subnet.interface.as_ref().map(|i| i.value.clone()),
                route_table: table.unwrap_or_default(),
                network_acl: acl.unwrap_or_default(),
            });
            let complete = table.is_some() && acl.is_some() && ipv6_cidr.is_some();
            out.push((def, complete));
        }
        out
    }

    /// Resolves an optional reference by name: omitted, or the default's name when the file
    /// does not define it, is the (implicit) default.
    pub(super) fn reference(
        &mut self,
        name: Option<&Loc<String>>,
        refs: Ref<'_>,
        path: &str,
    ) -> Option<usize> {
        let Some(name) = name else {
            return Some(refs.default);
        };
        if let Some((i, _)) = refs.names.get(&name.value) {
            return Some(*i);
        }
        if name.value == refs.default_name {
            return Some(refs.default);
        }
        self.err(
            name.pos,
            path,
            format!("unknown {}: '{}'", refs.what, name.value),
        );
        None
    }

    /// Registers an interface name, which must be unique across subnets and uplinks.
    pub(super) fn interface(&mut self, name: &Loc<String>, path: &str, owner: String) {
        if name.value.is_empty() {
            self.err(name.pos, path, "an interface name must not be empty");
        } else if let Some(first) = self.interfaces.get(&name.value) {
            let msg = format!("interface '{}' is already used by {first}", name.value);
            self.err(name.pos, path, msg);
        } else {
            self.interfaces.insert(name.value.clone(), owner);
        }
    }

    pub(super) fn internet_gateway(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
    ) -> Option<Option<InternetGatewayDef>> {
        let Some(igw) = &vpc.internet_gateway else {
            return Some(None);
        };
        let igw = &igw.value;
        let owner = format!(
            "internet gateway '{}' of VPC '{}'",
            igw.name.value, vpc.name.value
        );
        let ipath = format!("{path}.internet_gateway.interface");
        self.interface(&igw.interface, &ipath, owner);
        Some(Some(InternetGatewayDef {
            name: igw.name.value.clone(),
            interface: igw.interface.value.clone(),
        }))
    }
}
