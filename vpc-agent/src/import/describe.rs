//! `vpc-agent import describe`: the JSON of `aws ec2 describe-vpcs`, `describe-subnets`,
//! `describe-route-tables`, `describe-network-acls`, `describe-security-groups`,
//! `describe-instances`, `describe-nat-gateways`, `describe-addresses`,
//! `describe-internet-gateways`, `describe-vpn-gateways`, `describe-vpn-connections`,
//! `describe-managed-prefix-lists` (and `describe-vpc-peering-connections`), one file each or
//! merged into one object, into an [`Inventory`]. A list's entries (`aws ec2
//! get-managed-prefix-list-entries`, which does not name the list) come from a file named after
//! the list's ID (`pl-0123456789abcdef0.json`), or as `Entries` added to the list's object.
//! Things are named by their `Name` tag, else their ID. Output fields that are state or
//! bookkeeping (`OwnerId`, `State` of a live resource, ARNs) are not reported; what changes
//! enforcement and the format lacks (IPv6, routes to prefix lists, BGP, secondary addresses,
//! source/destination check) is.

use super::{
    ImportError, Imported, Options, Report, Severity,
    cloudformation::protocol_number,
    inventory::{
        AclEntry, CidrEntry, ElasticIp, Interface, InternetGateway, Inventory, NatAddress,
        NatGateway, NetworkAcl, Origin, Peering, PrefixList, Propagation, PublicIp, Route,
        RouteTable, RouteTo, SecurityGroup, SgPeer, SgRule, Subnet, Vpc, VpnConnection, VpnGateway,
    },
    node::{self, Node, Value},
};

/// The top-level keys read, with the command that prints them.
const SECTIONS: [(&str, &str); 15] = [
    ("Vpcs", "describe-vpcs"),
    ("Subnets", "describe-subnets"),
    ("RouteTables", "describe-route-tables"),
    ("NetworkAcls", "describe-network-acls"),
    ("SecurityGroups", "describe-security-groups"),
    ("Reservations", "describe-instances"),
    ("NatGateways", "describe-nat-gateways"),
    ("Addresses", "describe-addresses"),
    ("InternetGateways", "describe-internet-gateways"),
    (
        "EgressOnlyInternetGateways",
        "describe-egress-only-internet-gateways",
    ),
    ("VpcPeeringConnections", "describe-vpc-peering-connections"),
    ("VpnGateways", "describe-vpn-gateways"),
    ("VpnConnections", "describe-vpn-connections"),
    ("PrefixLists", "describe-managed-prefix-lists"),
    ("Entries", ENTRIES_COMMAND),
];

/// The command whose output (`Entries`) is one prefix list's entries.
const ENTRIES_COMMAND: &str = "get-managed-prefix-list-entries";

/// The prefix list ID in a file name (`pl-0123.json`, `entries-pl-0123.json`).
fn prefix_list_id_in(file: &str) -> Option<String> {
    let stem = std::path::Path::new(file).file_stem()?.to_str()?;
    let start = stem.find("pl-")?;
    let id: String = stem[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (id.len() > 3).then_some(id)
}

/// Imports `docs` (file name, text); `source` names the input in the report.
pub fn import(
    source: &str,
    docs: &[(String, String)],
    options: &Options,
) -> Result<Imported, ImportError> {
    let mut r = Reader {
        report: Report::new(source),
        inv: Inventory::default(),
        file: String::new(),
        several: docs.len() > 1,
        entries: Vec::new(),
    };
    for (file, text) in docs {
        let doc = node::parse_json(text).map_err(|source| ImportError::Json {
            file: file.clone(),
            source,
        })?;
        if !matches!(doc.value, Value::Map(_)) {
            return Err(ImportError::Input {
                file: file.clone(),
                reason: "expected the JSON object an `aws ec2 describe-*` command prints"
                    .to_owned(),
            });
        }
        r.file.clone_from(file);
        let mut known = 0;
        for (key, value) in doc.entries() {
            let Some((_, command)) = SECTIONS.iter().find(|(k, _)| k == key) else {
                if key != "NextToken" {
                    let o = r.origin(key, "describe output", value.line, None);
                    r.report.add(
                        &o,
                        0,
                        Severity::Ignored,
                        "not the output of a describe command the importer reads",
                    );
                }
                continue;
            };
            known += 1;
            if key == "Entries" {
                r.entries_file(value);
                continue;
            }
            for item in value.items() {
                r.item(key, command, item);
            }
        }
        if known == 0 {
            return Err(ImportError::Input {
                file: file.clone(),
                reason: format!(
                    "no describe-* output in it: expected one of {}",
                    SECTIONS.map(|(k, _)| k).join(", ")
                ),
            });
        }
    }
    r.attach_entries();
    super::finish(&r.inv, options, r.report, "vpc-agent import describe", true)
}

fn text(n: &Node, key: &str) -> Option<String> {
    match &n.get(key)?.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int(n: &Node, key: &str) -> Option<i64> {
    match &n.get(key)?.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn flag(n: &Node, key: &str) -> Option<bool> {
    match &n.get(key)?.value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn items<'n>(n: &'n Node, key: &str) -> &'n [Node] {
    n.get(key).map(Node::items).unwrap_or_default()
}

fn name_tag(n: &Node) -> Option<String> {
    items(n, "Tags")
        .iter()
        .find(|t| text(t, "Key").as_deref() == Some("Name"))
        .and_then(|t| text(t, "Value"))
}

/// An internet gateway or an egress-only one: the VPCs it is attached to.
fn gateway(origin: Origin, n: &Node) -> InternetGateway {
    InternetGateway {
        vpcs: items(n, "Attachments")
            .iter()
            .filter(|a| text(a, "State").is_none_or(|s| s == "available" || s == "attached"))
            .filter_map(|a| text(a, "VpcId"))
            .collect(),
        origin,
    }
}

struct Reader {
    report: Report,
    inv: Inventory,
    file: String,
    several: bool,
    /// Prefix list entries read from their own files: the list's ID, where, the CIDRs.
    entries: Vec<(String, Origin, Vec<CidrEntry>)>,
}

impl Reader {
    fn origin(&self, id: &str, kind: &str, line: u32, name_tag: Option<String>) -> Origin {
        Origin {
            id: id.to_owned(),
            kind: kind.to_owned(),
            line,
            name_tag,
            file: self.several.then(|| self.file.clone()),
        }
    }

    fn note(&mut self, o: &Origin, line: u32, severity: Severity, msg: impl Into<String>) {
        self.report.add(o, line, severity, msg);
    }

    fn item(&mut self, section: &str, command: &str, n: &Node) {
        let id_key = match section {
            "Vpcs" => "VpcId",
            "Subnets" => "SubnetId",
            "RouteTables" => "RouteTableId",
            "NetworkAcls" => "NetworkAclId",
            "SecurityGroups" => "GroupId",
            "NatGateways" => "NatGatewayId",
            "Addresses" => "AllocationId",
            "InternetGateways" => "InternetGatewayId",
            "EgressOnlyInternetGateways" => "EgressOnlyInternetGatewayId",
            "VpcPeeringConnections" => "VpcPeeringConnectionId",
            "VpnGateways" => "VpnGatewayId",
            "VpnConnections" => "VpnConnectionId",
            "PrefixLists" => "PrefixListId",
            _ => "",
        };
        if section == "Reservations" {
            for i in items(n, "Instances") {
                self.instance(command, i);
            }
            return;
        }
        let id = text(n, id_key)
            .or_else(|| text(n, "PublicIp"))
            .unwrap_or_default();
        let o = self.origin(&id, command, n.line, name_tag(n));
        if id.is_empty() {
            let msg = format!("an entry without {id_key}: not imported");
            self.note(&o, 0, Severity::NotImported, msg);
            return;
        }
        match section {
            "Vpcs" => self.vpc(o, n),
            "Subnets" => self.subnet(o, n),
            "RouteTables" => self.route_table(o, n),
            "NetworkAcls" => self.network_acl(o, n),
            "SecurityGroups" => self.security_group(o, n),
            "NatGateways" => self.nat_gateway(o, n),
            "Addresses" => self.inv.elastic_ips.push(ElasticIp {
                address: text(n, "PublicIp"),
                associated: text(n, "NetworkInterfaceId").or_else(|| text(n, "InstanceId")),
                origin: o,
            }),
            "InternetGateways" => {
                let g = gateway(o, n);
                self.inv.internet_gateways.push(g);
            }
            "EgressOnlyInternetGateways" => {
                let g = gateway(o, n);
                self.inv.egress_only_gateways.push(g);
            }
            "VpcPeeringConnections" => self.peering(o, n),
            "VpnGateways" => self.vpn_gateway(o, n),
            "VpnConnections" => self.vpn_connection(o, n),
            "PrefixLists" => self.prefix_list(o, n),
            _ => {}
        }
    }

    /// The associated IPv6 blocks of a VPC or subnet (`Ipv6CidrBlockAssociationSet`); the others
    /// (disassociated, failed) are reported.
    fn ipv6_sets(&mut self, o: &Origin, n: &Node) -> Vec<CidrEntry> {
        let mut blocks = Vec::new();
        for a in items(n, "Ipv6CidrBlockAssociationSet") {
            let Some(cidr) = text(a, "Ipv6CidrBlock") else {
                continue;
            };
            let state = a.get("Ipv6CidrBlockState").and_then(|s| text(s, "State"));
            let origin = Origin {
                line: a.line,
                ..o.clone()
            };
            match state.as_deref() {
                None | Some("associated") => blocks.push(CidrEntry { origin, cidr }),
                Some(state) => {
                    let msg = format!("IPv6 block {cidr} is {state}: not imported");
                    self.note(&origin, 0, Severity::NotImported, msg);
                }
            }
        }
        blocks
    }

    fn vpc(&mut self, o: Origin, n: &Node) {
        let mut blocks: Vec<String> = text(n, "CidrBlock").into_iter().collect();
        for a in items(n, "CidrBlockAssociationSet") {
            let state = a.get("CidrBlockState").and_then(|s| text(s, "State"));
            if let Some(b) = text(a, "CidrBlock")
                && state.as_deref().is_none_or(|s| s == "associated")
                && !blocks.contains(&b)
            {
                blocks.push(b);
            }
        }
        let ipv6_blocks = self.ipv6_sets(&o, n);
        self.inv.vpcs.push(Vpc {
            origin: o,
            cidr_blocks: blocks,
            ipv6_blocks,
        });
    }

    fn subnet(&mut self, o: Origin, n: &Node) {
        let ipv6_cidr = self.ipv6_sets(&o, n).into_iter().next();
        let (Some(vpc), Some(cidr)) = (text(n, "VpcId"), text(n, "CidrBlock")) else {
            self.note(
                &o,
                0,
                Severity::NotImported,
                "a subnet needs VpcId and CidrBlock: not imported",
            );
            return;
        };
        self.inv.subnets.push(Subnet {
            map_public_ip: flag(n, "MapPublicIpOnLaunch").unwrap_or(false),
            origin: o,
            vpc,
            cidr,
            ipv6_cidr,
        });
    }

    fn route_table(&mut self, o: Origin, n: &Node) {
        let Some(vpc) = text(n, "VpcId") else { return };
        let mut main = false;
        let mut subnets = Vec::new();
        for a in items(n, "Associations") {
            if flag(a, "Main") == Some(true) {
                main = true;
            }
            if let Some(s) = text(a, "SubnetId") {
                subnets.push(s);
            }
            if text(a, "GatewayId").is_some() {
                self.note(
                    &o,
                    a.line,
                    Severity::NotImported,
                    "gateway route tables (edge associations) are not part of the format",
                );
            }
        }
        let propagations = items(n, "PropagatingVgws")
            .iter()
            .filter_map(|v| {
                Some(Propagation {
                    gateway: text(v, "GatewayId")?,
                    origin: Origin {
                        line: v.line,
                        ..o.clone()
                    },
                })
            })
            .collect();
        let mut routes = Vec::new();
        for r in items(n, "Routes") {
            let ro = Origin {
                line: r.line,
                ..o.clone()
            };
            if text(r, "Origin").as_deref() == Some("EnableVgwRoutePropagation") {
                continue; // Propagated: `propagate` adds the VPN gateway's routes.
            }
            let Some(destination) =
                text(r, "DestinationCidrBlock").or_else(|| text(r, "DestinationIpv6CidrBlock"))
            else {
                let msg = "routes to prefix lists are not part of the format yet: not imported";
                self.note(&ro, 0, Severity::NotImported, msg);
                continue;
            };
            let gateway = text(r, "GatewayId");
            if gateway.as_deref() == Some("local") {
                continue; // The implicit local route.
            }
            let target = if text(r, "State").as_deref() == Some("blackhole") {
                RouteTo::Blackhole
            } else if let Some(g) = gateway {
                RouteTo::Gateway(g)
            } else if let Some(nat) = text(r, "NatGatewayId") {
                RouteTo::NatGateway(nat)
            } else if let Some(p) = text(r, "VpcPeeringConnectionId") {
                RouteTo::Peering(p)
            } else if let Some(g) = text(r, "EgressOnlyInternetGatewayId") {
                RouteTo::EgressOnly(g)
            } else {
                let others = [
                    ("InstanceId", "an instance (NAT instance)"),
                    ("NetworkInterfaceId", "a network interface"),
                    ("TransitGatewayId", "a transit gateway"),
                    ("CarrierGatewayId", "a carrier gateway"),
                    ("LocalGatewayId", "a local gateway"),
                    ("CoreNetworkArn", "a core network"),
                ];
                let what = others
                    .iter()
                    .find_map(|(k, what)| text(r, k).map(|v| format!("{what} {v}")))
                    .unwrap_or_else(|| "an unknown target".to_owned());
                RouteTo::Unsupported(what)
            };
            routes.push(Route {
                origin: ro,
                destination,
                target,
            });
        }
        self.inv.route_tables.push(RouteTable {
            origin: o,
            vpc,
            main,
            routes,
            subnets,
            propagations,
        });
    }

    fn network_acl(&mut self, o: Origin, n: &Node) {
        let Some(vpc) = text(n, "VpcId") else { return };
        let mut entries = Vec::new();
        for e in items(n, "Entries") {
            let eo = Origin {
                line: e.line,
                ..o.clone()
            };
            let rule = int(e, "RuleNumber").unwrap_or(0);
            let Some(cidr) = text(e, "CidrBlock").or_else(|| text(e, "Ipv6CidrBlock")) else {
                let msg = format!("rule {rule}: an entry without a CIDR block: not imported");
                self.note(&eo, 0, Severity::NotImported, msg);
                continue;
            };
            let Some(protocol) = text(e, "Protocol").as_deref().and_then(protocol_number) else {
                self.note(
                    &eo,
                    0,
                    Severity::NotImported,
                    "an entry without a protocol: not imported",
                );
                continue;
            };
            let range = e
                .get("PortRange")
                .map(|p| (int(p, "From").unwrap_or(0), int(p, "To").unwrap_or(65535)));
            let icmp = e
                .get("IcmpTypeCode")
                .map(|p| (int(p, "Type").unwrap_or(-1), int(p, "Code").unwrap_or(-1)));
            entries.push(AclEntry {
                origin: eo,
                egress: flag(e, "Egress").unwrap_or(false),
                rule,
                protocol,
                ports: range,
                icmp,
                cidr,
                allow: text(e, "RuleAction").as_deref() == Some("allow"),
            });
        }
        let subnets = items(n, "Associations")
            .iter()
            .filter_map(|a| text(a, "SubnetId"))
            .collect();
        self.inv.network_acls.push(NetworkAcl {
            default: flag(n, "IsDefault").unwrap_or(false),
            origin: o,
            vpc,
            entries,
            subnets,
        });
    }

    fn permissions(&mut self, o: &Origin, n: &Node, key: &str) -> Vec<SgRule> {
        let mut rules = Vec::new();
        for p in items(n, key) {
            let po = Origin {
                line: p.line,
                ..o.clone()
            };
            let Some(protocol) = text(p, "IpProtocol").as_deref().and_then(protocol_number) else {
                self.note(
                    &po,
                    0,
                    Severity::NotImported,
                    "a permission without IpProtocol: not imported",
                );
                continue;
            };
            let from_port = int(p, "FromPort");
            let to_port = int(p, "ToPort");
            let mut peers: Vec<SgPeer> = items(p, "IpRanges")
                .iter()
                .filter_map(|r| text(r, "CidrIp"))
                .chain(
                    items(p, "Ipv6Ranges")
                        .iter()
                        .filter_map(|r| text(r, "CidrIpv6")),
                )
                .map(SgPeer::Cidr)
                .collect();
            for pair in items(p, "UserIdGroupPairs") {
                if let Some(g) = text(pair, "GroupId") {
                    peers.push(SgPeer::Group(g));
                }
            }
            peers.extend(
                items(p, "PrefixListIds")
                    .iter()
                    .filter_map(|l| text(l, "PrefixListId"))
                    .map(SgPeer::PrefixList),
            );
            for peer in peers {
                rules.push(SgRule {
                    origin: po.clone(),
                    protocol,
                    from_port,
                    to_port,
                    peer,
                });
            }
        }
        rules
    }

    fn security_group(&mut self, o: Origin, n: &Node) {
        let Some(vpc) = text(n, "VpcId") else { return };
        let inbound = self.permissions(&o, n, "IpPermissions");
        let outbound = n
            .get("IpPermissionsEgress")
            .map(|_| self.permissions(&o, n, "IpPermissionsEgress"));
        self.inv.security_groups.push(SecurityGroup {
            group_name: text(n, "GroupName"),
            origin: o,
            vpc,
            inbound,
            outbound,
        });
    }

    fn nat_gateway(&mut self, o: Origin, n: &Node) {
        if self.gone(&o, n) {
            return;
        }
        if text(n, "ConnectivityType").as_deref() == Some("private") {
            self.note(
                &o,
                0,
                Severity::NotImported,
                "private NAT gateways (no elastic IP) are not part of the format",
            );
            return;
        }
        let Some(subnet) = text(n, "SubnetId") else {
            return;
        };
        let addresses = items(n, "NatGatewayAddresses");
        let primary = addresses
            .iter()
            .find(|a| flag(a, "IsPrimary") == Some(true))
            .or_else(|| addresses.first());
        if addresses.len() > 1 {
            self.note(
                &o,
                0,
                Severity::NotImported,
                "secondary addresses of the NAT gateway are not part of the format",
            );
        }
        self.inv.nat_gateways.push(NatGateway {
            private_ip: primary.and_then(|a| text(a, "PrivateIp")),
            elastic_ip: primary
                .and_then(|a| text(a, "PublicIp"))
                .map_or(NatAddress::Unknown, NatAddress::Address),
            origin: o,
            subnet,
        });
    }

    fn instance(&mut self, command: &str, n: &Node) {
        let id = text(n, "InstanceId").unwrap_or_default();
        let o = self.origin(&id, command, n.line, name_tag(n));
        if let Some(state) = n.get("State").and_then(|s| text(s, "Name"))
            && matches!(state.as_str(), "terminated" | "shutting-down")
        {
            self.note(
                &o,
                0,
                Severity::Ignored,
                format!("state {state}: not imported"),
            );
            return;
        }
        if flag(n, "SourceDestCheck") == Some(false) {
            let msg = "SourceDestCheck false (a NAT instance) is not imported yet: the instance keeps the check (add source_dest_check: false by hand)";
            self.note(&o, 0, Severity::NotImported, msg);
        }
        let groups: Vec<String> = items(n, "SecurityGroups")
            .iter()
            .filter_map(|g| text(g, "GroupId"))
            .collect();
        let enis = items(n, "NetworkInterfaces");
        if enis.is_empty() {
            let Some(subnet) = text(n, "SubnetId") else {
                self.note(
                    &o,
                    0,
                    Severity::NotImported,
                    "an instance without a subnet: not imported",
                );
                return;
            };
            let public_ip = text(n, "PublicIpAddress").map_or(PublicIp::None, PublicIp::Address);
            self.inv.interfaces.push(Interface {
                instance: id.clone(),
                eni: None,
                primary: true,
                subnet,
                private_ip: text(n, "PrivateIpAddress"),
                public_ip,
                ipv6_addresses: Vec::new(),
                groups,
                origin: o,
            });
            return;
        }
        for e in enis {
            let index = e
                .get("Attachment")
                .and_then(|a| int(a, "DeviceIndex"))
                .unwrap_or(0);
            let eni = text(e, "NetworkInterfaceId");
            let mut eo = o.clone();
            if index != 0 {
                eo.id = eni.clone().unwrap_or_else(|| format!("{id}.eth{index}"));
                eo.line = e.line;
            }
            let Some(subnet) = text(e, "SubnetId").or_else(|| text(n, "SubnetId")) else {
                continue;
            };
            let secondary = items(e, "PrivateIpAddresses")
                .iter()
                .filter(|a| flag(a, "Primary") == Some(false))
                .count();
            if secondary > 0 {
                let msg = format!(
                    "{secondary} secondary private address(es) are not part of the format: not imported"
                );
                self.note(&eo, e.line, Severity::NotImported, msg);
            }
            let public = e
                .get("Association")
                .and_then(|a| text(a, "PublicIp"))
                .or_else(|| (index == 0).then(|| text(n, "PublicIpAddress")).flatten());
            let eni_groups: Vec<String> = items(e, "Groups")
                .iter()
                .filter_map(|g| text(g, "GroupId"))
                .collect();
            self.inv.interfaces.push(Interface {
                origin: eo,
                instance: id.clone(),
                eni,
                primary: index == 0,
                subnet,
                private_ip: text(e, "PrivateIpAddress")
                    .or_else(|| (index == 0).then(|| text(n, "PrivateIpAddress")).flatten()),
                public_ip: public.map_or(PublicIp::None, PublicIp::Address),
                ipv6_addresses: items(e, "Ipv6Addresses")
                    .iter()
                    .filter_map(|a| text(a, "Ipv6Address"))
                    .collect(),
                groups: if eni_groups.is_empty() && index == 0 {
                    groups.clone()
                } else {
                    eni_groups
                },
            });
        }
    }

    fn peering(&mut self, o: Origin, n: &Node) {
        if let Some(code) = n.get("Status").and_then(|s| text(s, "Code"))
            && code != "active"
        {
            self.note(
                &o,
                0,
                Severity::Ignored,
                format!("status {code}: not imported"),
            );
            return;
        }
        let requester = n.get("RequesterVpcInfo").and_then(|i| text(i, "VpcId"));
        let accepter = n.get("AccepterVpcInfo").and_then(|i| text(i, "VpcId"));
        let Some(vpc) = requester else { return };
        self.inv.peerings.push(Peering {
            origin: o,
            vpc,
            peer_vpc: accepter,
        });
    }

    /// A state that means the resource is gone (or going): reported as ignored.
    fn gone(&mut self, o: &Origin, n: &Node) -> bool {
        let Some(state) = text(n, "State") else {
            return false;
        };
        if !matches!(state.as_str(), "deleted" | "deleting" | "failed") {
            return false;
        }
        self.note(
            o,
            0,
            Severity::Ignored,
            format!("state {state}: not imported"),
        );
        true
    }

    fn vpn_gateway(&mut self, o: Origin, n: &Node) {
        if self.gone(&o, n) {
            return;
        }
        let vpcs = items(n, "VpcAttachments")
            .iter()
            .filter(|a| text(a, "State").is_none_or(|s| s == "attached"))
            .filter_map(|a| text(a, "VpcId"))
            .collect();
        self.inv.vpn_gateways.push(VpnGateway { origin: o, vpcs });
    }

    fn vpn_connection(&mut self, o: Origin, n: &Node) {
        if self.gone(&o, n) {
            return;
        }
        if let Some(tgw) = text(n, "TransitGatewayId") {
            let msg = format!(
                "a VPN connection on transit gateway {tgw}: transit gateways are not part of the format, not imported"
            );
            self.note(&o, 0, Severity::NotImported, msg);
            return;
        }
        let mut routes = Vec::new();
        for r in items(n, "Routes") {
            let ro = Origin {
                line: r.line,
                ..o.clone()
            };
            let Some(cidr) = text(r, "DestinationCidrBlock") else {
                continue;
            };
            match text(r, "State") {
                Some(state) if state != "available" => {
                    let msg = format!("static route {cidr} is {state}: not imported");
                    self.note(&ro, 0, Severity::Ignored, msg);
                }
                _ => routes.push(CidrEntry { origin: ro, cidr }),
            }
        }
        let gateway = text(n, "VpnGatewayId");
        if gateway.is_none() {
            let msg = "the VPN connection is on no VPN gateway: not imported";
            self.note(&o, 0, Severity::NotImported, msg);
        }
        let static_only = n
            .get("Options")
            .and_then(|opts| flag(opts, "StaticRoutesOnly"))
            .unwrap_or(false);
        self.inv.vpn_connections.push(VpnConnection {
            origin: o,
            gateway,
            static_only,
            routes,
        });
    }

    /// A list's CIDRs (`Entries` of get-managed-prefix-list-entries).
    fn cidr_entries(&self, o: &Origin, entries: &Node) -> Vec<CidrEntry> {
        entries
            .items()
            .iter()
            .filter_map(|e| {
                Some(CidrEntry {
                    cidr: text(e, "Cidr")?,
                    origin: Origin {
                        line: e.line,
                        ..o.clone()
                    },
                })
            })
            .collect()
    }

    fn prefix_list(&mut self, mut o: Origin, n: &Node) {
        if self.gone(&o, n) {
            return;
        }
        let name = text(n, "PrefixListName");
        o.name_tag = o.name_tag.or_else(|| name.clone());
        let cidrs = n.get("Entries").map(|e| self.cidr_entries(&o, e));
        self.inv.prefix_lists.push(PrefixList {
            family: text(n, "AddressFamily").unwrap_or_else(|| "IPv4".to_owned()),
            aws_managed: text(n, "OwnerId").as_deref() == Some("AWS")
                || name.is_some_and(|n| n.starts_with("com.amazonaws.")),
            cidrs,
            origin: o,
        });
    }

    /// A file of get-managed-prefix-list-entries output: the list it belongs to is in its name.
    fn entries_file(&mut self, value: &Node) {
        let id = prefix_list_id_in(&self.file);
        let o = self.origin(
            id.as_deref().unwrap_or("Entries"),
            ENTRIES_COMMAND,
            value.line,
            None,
        );
        let Some(id) = id else {
            let msg = "prefix list entries without the list's ID: name the file after it (pl-0123456789abcdef0.json); not imported";
            self.note(&o, 0, Severity::NotImported, msg);
            return;
        };
        let cidrs = self.cidr_entries(&o, value);
        self.entries.push((id, o, cidrs));
    }

    /// Gives each prefix list the entries read from its own file.
    fn attach_entries(&mut self) {
        for (id, o, cidrs) in std::mem::take(&mut self.entries) {
            match self.inv.prefix_lists.iter_mut().find(|l| l.origin.id == id) {
                Some(l) => l.cidrs.get_or_insert_with(Vec::new).extend(cidrs),
                None => {
                    let msg = format!(
                        "entries of prefix list {id}, which no describe-managed-prefix-lists output holds: not imported"
                    );
                    self.note(&o, 0, Severity::NotImported, msg);
                }
            }
        }
    }
}
