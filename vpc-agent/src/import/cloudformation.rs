//! `vpc-agent import cloudformation`: a template's VPC resources into an [`Inventory`].
//!
//! Resources are read in phases (containers first: VPCs, subnets, tables, ACLs, groups,
//! gateways, instances; then what attaches to them: routes, associations, entries, rules), each
//! phase in template order, so that a template may declare them in any order. Every property a
//! handler does not consume is reported: as ignored when it has no meaning for the router
//! (tags, placement, DNS), else as not imported.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    ImportError, Imported, Options, Report, Severity,
    intrinsics::{self, Context, Val},
    inventory::{
        AclEntry, CidrEntry, ElasticIp, FlowLog, Interface, InternetGateway, Inventory, NatAddress,
        NatGateway, NetworkAcl, Origin, Peering, PrefixList, Propagation, PublicIp, Route,
        RouteTable, RouteTo, SecurityGroup, SgPeer, SgRule, Subnet, Vpc, VpnConnection, VpnGateway,
    },
    node::{self, Node},
};

/// Resource attributes that are not properties and mean nothing to the router.
const RESOURCE_KEYS: [&str; 9] = [
    "Type",
    "Properties",
    "Condition",
    "DependsOn",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "CreationPolicy",
    "UpdatePolicy",
];

/// The order resource types are read in (see the module documentation); a type not listed
/// is reported in the last phase.
const PHASES: [&[&str]; 3] = [
    &[
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::RouteTable",
        "AWS::EC2::NetworkAcl",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPNGateway",
        "AWS::EC2::PrefixList",
        "AWS::EC2::EIP",
        "AWS::EC2::VPCPeeringConnection",
        "AWS::EC2::FlowLog",
        "AWS::EC2::NetworkInterface",
    ],
    &[
        "AWS::EC2::VPCCidrBlock",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::VPNConnection",
        "AWS::EC2::NatGateway",
        "AWS::EC2::Instance",
    ],
    &[
        "AWS::EC2::Route",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::NetworkAclEntry",
        "AWS::EC2::SubnetNetworkAclAssociation",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::EIPAssociation",
        "AWS::EC2::NetworkInterfaceAttachment",
        "AWS::EC2::VPNConnectionRoute",
        "AWS::EC2::VPNGatewayRoutePropagation",
    ],
];

/// Types the format has no counterpart for (yet).
const UNSUPPORTED: [(&str, &str); 5] = [
    (
        "AWS::EC2::VPCEndpoint",
        "VPC endpoints are not part of the format yet",
    ),
    (
        "AWS::EC2::TransitGateway",
        "transit gateways are not part of the format",
    ),
    (
        "AWS::EC2::TransitGatewayAttachment",
        "transit gateways are not part of the format",
    ),
    (
        "AWS::EC2::TransitGatewayVpcAttachment",
        "transit gateways are not part of the format",
    ),
    (
        "AWS::EC2::CarrierGateway",
        "carrier gateways are not part of the format",
    ),
];

/// Types without meaning for the router.
const NO_MEANING: [&str; 3] = [
    "AWS::EC2::DHCPOptions",
    "AWS::EC2::VPCDHCPOptionsAssociation",
    "AWS::EC2::KeyPair",
];

/// Properties of other services that put network interfaces into a VPC: such a resource has
/// hosts the import cannot know.
const NETWORK_KEYS: [&str; 7] = [
    "SubnetIds",
    "Subnets",
    "VPCZoneIdentifier",
    "VpcConfig",
    "VpcSecurityGroupIds",
    "DBSubnetGroupName",
    "NetworkConfiguration",
];

/// Properties never reported: labels for people.
const SILENT: [&str; 3] = ["Tags", "Description", "GroupDescription"];

/// Reads a template (YAML or JSON) and imports it.
pub fn import(file: &str, text: &str, options: &Options) -> Result<Imported, ImportError> {
    let doc = if node::looks_like_json(text) {
        node::parse_json(text).map_err(|source| ImportError::Json {
            file: file.to_owned(),
            source,
        })?
    } else {
        node::parse_yaml(text).map_err(|source| ImportError::Yaml {
            file: file.to_owned(),
            source: Box::new(source),
        })?
    };
    let Some(resources) = doc.get("Resources").filter(|r| !r.entries().is_empty()) else {
        return Err(ImportError::Input {
            file: file.to_owned(),
            reason: "not a CloudFormation template: no Resources".to_owned(),
        });
    };
    let declared = doc.get("Parameters");
    let known = intrinsics::known_parameters(declared);
    if let Some(unknown) = options.parameters.keys().find(|k| !known.contains(*k)) {
        return Err(ImportError::Parameter(format!(
            "{unknown}: the template declares no such parameter"
        )));
    }
    let mut parameters: BTreeMap<String, Val> = declared
        .map(|p| {
            p.entries()
                .iter()
                .map(|(name, decl)| {
                    let given = options.parameters.get(name).map(String::as_str);
                    (name.clone(), intrinsics::parameter_value(decl, given))
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in &options.parameters {
        parameters
            .entry(name.clone())
            .or_insert_with(|| Val::Str(value.clone()));
    }
    let conditions = doc
        .get("Conditions")
        .map(|c| c.entries().iter().map(|(k, n)| (k.clone(), n)).collect())
        .unwrap_or_default();
    let table = super::intrinsics::resource_table(resources);
    let ctx = Context::new(parameters, doc.get("Mappings"), conditions, table);
    let mut reader = Reader {
        ctx,
        report: Report::new(file),
        inv: Inventory::default(),
        public_unset: Vec::new(),
        instance_primary: BTreeMap::new(),
    };
    if doc.get("Transform").is_some() {
        let origin =
            reader.template_origin("Transform", doc.get("Transform").map_or(0, |n| n.line));
        reader.report.add(
            &origin,
            0,
            Severity::NotImported,
            "template transforms (SAM, macros) are not expanded: resources they would add are missing",
        );
    }
    // Template order (JSON objects come back sorted: their lines restore it).
    let mut ordered: Vec<&(String, Node)> = resources.entries().iter().collect();
    ordered.sort_by_key(|(_, n)| n.line);
    let phase_of = |kind: &str| {
        PHASES
            .iter()
            .position(|p| p.contains(&kind))
            .unwrap_or(PHASES.len())
    };
    for phase in 0..=PHASES.len() {
        for (id, res) in &ordered {
            let kind = res.get("Type").and_then(Node::as_str).unwrap_or("");
            if phase_of(kind) == phase {
                reader.resource(id, res);
            }
        }
    }
    reader.launch_addresses();
    super::finish(
        &reader.inv,
        options,
        reader.report,
        "vpc-agent import cloudformation",
        false,
    )
}

/// The properties of one resource (or of one nested object): values read mark the key used,
/// [`Props::finish`] reports the rest.
struct Props<'n> {
    origin: Origin,
    node: Option<&'n Node>,
    val: Val,
    used: BTreeSet<String>,
}

impl<'n> Props<'n> {
    fn new(origin: Origin, node: Option<&'n Node>, val: Val) -> Self {
        Self {
            origin,
            node,
            val,
            used: BTreeSet::new(),
        }
    }

    fn line(&self, key: &str) -> u32 {
        self.node
            .and_then(|n| n.get(key))
            .map_or(self.origin.line, |n| n.line)
    }

    fn val(&mut self, key: &str) -> Option<Val> {
        self.used.insert(key.to_owned());
        match self.val.get(key) {
            None | Some(Val::NoValue | Val::Null) => None,
            Some(v) => Some(v.clone()),
        }
    }

    /// A property converted by `get`; a value it does not take (`what` it should be) is
    /// reported.
    fn typed<T>(
        &mut self,
        key: &str,
        report: &mut Report,
        what: &str,
        get: impl Fn(&Val) -> Option<T>,
    ) -> Option<T> {
        let v = self.val(key)?;
        get(&v).or_else(|| {
            let msg = format!("{key}: {}", v.why_not(what));
            report.add(&self.origin, self.line(key), Severity::NotImported, msg);
            None
        })
    }

    /// A text property; a value that is not text is reported.
    fn text(&mut self, key: &str, report: &mut Report) -> Option<String> {
        self.typed(key, report, "text", Val::text)
    }

    fn int(&mut self, key: &str, report: &mut Report) -> Option<i64> {
        self.typed(key, report, "a number", Val::int)
    }

    fn bool(&mut self, key: &str, report: &mut Report) -> Option<bool> {
        self.typed(key, report, "true or false", Val::bool)
    }

    /// A reference to another resource (`!Ref X`, `!GetAtt X.Id`) or an ID written out.
    fn target(&mut self, key: &str, report: &mut Report) -> Option<String> {
        self.typed(key, report, "a resource", target_of)
    }

    /// A list of references.
    fn targets(&mut self, key: &str, report: &mut Report) -> Vec<String> {
        let Some(v) = self.val(key) else {
            return Vec::new();
        };
        let items = match &v {
            Val::List(items) => items.clone(),
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for item in items {
            match target_of(&item) {
                Some(t) => out.push(t),
                None => {
                    let msg = format!("{key}: {}", item.why_not("a resource"));
                    report.add(&self.origin, self.line(key), Severity::NotImported, msg);
                }
            }
        }
        out
    }

    /// Nested objects under `key` (a list of mappings), each with its own node when the
    /// template wrote the list out.
    fn objects(&mut self, key: &str) -> Vec<Props<'n>> {
        let Some(v) = self.val(key) else {
            return Vec::new();
        };
        let raw = self
            .node
            .and_then(|n| n.get(key))
            .map(Node::items)
            .unwrap_or_default();
        let items = v.list();
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let node = (raw.len() == items.len()).then(|| &raw[i]);
                let mut origin = self.origin.clone();
                origin.line = node.map_or(self.line(key), |n| n.line);
                Props::new(origin, node, item.clone())
            })
            .collect()
    }

    /// A nested mapping (`PortRange`, `Icmp`).
    fn object(&mut self, key: &str) -> Option<Props<'n>> {
        let v = self.val(key)?;
        let node = self.node.and_then(|n| n.get(key));
        let mut origin = self.origin.clone();
        origin.line = self.line(key);
        Some(Props::new(origin, node, v))
    }

    /// Reports every property not read: `ignored` ones as without meaning for the router,
    /// the others as not imported.
    fn finish(self, report: &mut Report, ignored: &[&str]) {
        let Val::Map(entries) = &self.val else {
            return;
        };
        for (key, _) in entries {
            // Tags (the Name tag is read for names) and descriptions: nothing to report.
            if self.used.contains(key) || SILENT.contains(&key.as_str()) {
                continue;
            }
            let line = self.line(key);
            if ignored.contains(&key.as_str()) {
                let msg = format!("{key} has no meaning for the router");
                report.add(&self.origin, line, Severity::Ignored, msg);
            } else {
                let msg = format!("property {key} is not imported (the format has no counterpart)");
                report.add(&self.origin, line, Severity::NotImported, msg);
            }
        }
    }
}

fn target_of(v: &Val) -> Option<String> {
    intrinsics::target(v).or_else(|| match v {
        Val::Str(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    })
}

/// The IP protocol number of `IpProtocol`/`Protocol` (-1 = all).
pub fn protocol_number(text: &str) -> Option<i64> {
    match text.to_ascii_lowercase().as_str() {
        "-1" | "all" => Some(-1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" => Some(58),
        n => n.parse().ok().filter(|n| (0..=255).contains(n)),
    }
}

/// A route target by its ID (`RouteTo::Gateway`, ...).
type RouteKind = fn(String) -> RouteTo;

struct Reader<'a> {
    ctx: Context<'a>,
    report: Report,
    inv: Inventory,
    /// Primary interfaces that did not say whether they get a public IP: the subnet decides.
    public_unset: Vec<usize>,
    /// Instance ID -> index of its primary interface.
    instance_primary: BTreeMap<String, usize>,
}

impl<'a> Reader<'a> {
    fn template_origin(&self, id: &str, line: u32) -> Origin {
        Origin {
            id: id.to_owned(),
            kind: "template".to_owned(),
            line,
            name_tag: None,
            file: None,
        }
    }

    fn resource(&mut self, id: &str, res: &'a Node) {
        let kind = res
            .get("Type")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_owned();
        let props_node = res.get("Properties");
        let props_val = props_node.map_or(Val::Map(Vec::new()), |n| self.ctx.eval(n));
        let name_tag = name_tag(&props_val);
        let origin = Origin {
            id: id.to_owned(),
            kind: kind.clone(),
            line: res.line,
            name_tag,
            file: None,
        };
        if kind.is_empty() {
            self.report
                .add(&origin, 0, Severity::NotImported, "a resource without Type");
            return;
        }
        for (key, n) in res.entries() {
            if !RESOURCE_KEYS.contains(&key.as_str()) {
                let msg = format!("resource attribute {key} is not understood");
                self.report.add(&origin, n.line, Severity::Ignored, msg);
            }
        }
        if let Some(cond) = res.get("Condition") {
            let name = self.ctx.eval(cond).text().unwrap_or_default();
            match self.ctx.condition(&name) {
                Ok(true) => {}
                Ok(false) => {
                    let msg = format!("condition {name} is false: the resource is not created");
                    self.report.add(&origin, cond.line, Severity::Ignored, msg);
                    return;
                }
                Err(why) => {
                    let msg = format!("condition {name} cannot be decided ({why}): left out");
                    self.report
                        .add(&origin, cond.line, Severity::NotImported, msg);
                    return;
                }
            }
        }
        let mut p = Props::new(origin.clone(), props_node, props_val);
        let ignored: &[&str] = match kind.as_str() {
            "AWS::EC2::VPC" => self.vpc(&mut p),
            "AWS::EC2::VPCCidrBlock" => self.vpc_cidr_block(&mut p),
            "AWS::EC2::Subnet" => self.subnet(&mut p),
            "AWS::EC2::RouteTable" => self.route_table(&mut p),
            "AWS::EC2::Route" => self.route(&mut p),
            "AWS::EC2::SubnetRouteTableAssociation" => self.table_association(&mut p),
            "AWS::EC2::InternetGateway" => {
                self.inv.internet_gateways.push(InternetGateway {
                    origin: origin.clone(),
                    vpcs: Vec::new(),
                });
                &["Tags"]
            }
            "AWS::EC2::VPCGatewayAttachment" => self.gateway_attachment(&mut p),
            "AWS::EC2::EgressOnlyInternetGateway" => self.egress_only_gateway(&mut p),
            "AWS::EC2::SubnetCidrBlock" => self.subnet_cidr_block(&mut p),
            "AWS::EC2::VPNGateway" => {
                if let Some(t) = p.text("Type", &mut self.report)
                    && t != "ipsec.1"
                {
                    let msg = format!("Type {t}: the format's VPN gateway is AWS's ipsec.1");
                    self.report
                        .add(&origin, p.line("Type"), Severity::Assumed, msg);
                }
                self.inv.vpn_gateways.push(VpnGateway {
                    origin: origin.clone(),
                    vpcs: Vec::new(),
                });
                &["Tags", "AmazonSideAsn"]
            }
            "AWS::EC2::VPNConnection" => self.vpn_connection(&mut p),
            "AWS::EC2::VPNConnectionRoute" => self.vpn_connection_route(&mut p),
            "AWS::EC2::VPNGatewayRoutePropagation" => self.route_propagation(&mut p),
            "AWS::EC2::PrefixList" => self.prefix_list(&mut p),
            "AWS::EC2::NatGateway" => self.nat_gateway(&mut p),
            "AWS::EC2::EIP" => self.eip(&mut p),
            "AWS::EC2::EIPAssociation" => self.eip_association(&mut p),
            "AWS::EC2::NetworkAcl" => {
                if let Some(vpc) = p.target("VpcId", &mut self.report) {
                    self.inv.network_acls.push(NetworkAcl {
                        origin: origin.clone(),
                        vpc,
                        default: false,
                        entries: Vec::new(),
                        subnets: Vec::new(),
                    });
                }
                &["Tags"]
            }
            "AWS::EC2::NetworkAclEntry" => self.acl_entry(&mut p),
            "AWS::EC2::SubnetNetworkAclAssociation" => self.acl_association(&mut p),
            "AWS::EC2::SecurityGroup" => self.security_group(&mut p),
            "AWS::EC2::SecurityGroupIngress" | "AWS::EC2::SecurityGroupEgress" => {
                self.group_rule_resource(&mut p, kind.ends_with("Egress"))
            }
            "AWS::EC2::Instance" => self.instance(&mut p),
            "AWS::EC2::NetworkInterface" => self.network_interface(&mut p),
            "AWS::EC2::NetworkInterfaceAttachment" => self.interface_attachment(&mut p),
            "AWS::EC2::VPCPeeringConnection" => self.peering(&mut p),
            "AWS::EC2::FlowLog" => self.flow_log(&mut p),
            other => {
                self.other_type(&origin, other, &mut p);
                return;
            }
        };
        p.finish(&mut self.report, ignored);
    }

    fn other_type(&mut self, origin: &Origin, kind: &str, p: &mut Props<'_>) {
        let (severity, msg) = if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| *k == kind) {
            (Severity::NotImported, (*why).to_owned())
        } else if kind == "AWS::EC2::CustomerGateway" {
            (
                Severity::Ignored,
                "the far end of the VPN: the tunnel to it is the VPN gateway's router interface, set up outside the format"
                    .to_owned(),
            )
        } else if NO_MEANING.contains(&kind) {
            (
                Severity::Ignored,
                "has no meaning for the router".to_owned(),
            )
        } else if kind.starts_with("AWS::EC2::") {
            (
                Severity::NotImported,
                "this resource type is not imported".to_owned(),
            )
        } else if NETWORK_KEYS.iter().any(|k| p.val.get(k).is_some()) {
            (
                Severity::NotImported,
                "it places network interfaces in the VPC that a template does not list; add them as instances"
                    .to_owned(),
            )
        } else {
            (Severity::Ignored, "not a VPC network resource".to_owned())
        };
        self.report.add(origin, 0, severity, msg);
    }

    fn vpc(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        if let Some(cidr) = p.text("CidrBlock", &mut self.report) {
            self.inv.vpcs.push(Vpc {
                origin: p.origin.clone(),
                cidr_blocks: vec![cidr],
                ipv6_blocks: Vec::new(),
            });
        } else {
            let msg = "no CidrBlock the importer can compute (IPAM pools are not supported): the VPC is left out";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
        }
        &[
            "EnableDnsSupport",
            "EnableDnsHostnames",
            "InstanceTenancy",
            "Tags",
        ]
    }

    /// An added block: IPv4 (`CidrBlock`) or IPv6 (`Ipv6CidrBlock`). A block AWS (or IPAM)
    /// assigns has no value in the template.
    fn vpc_cidr_block(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpc = p.target("VpcId", &mut self.report);
        let block = p.text("CidrBlock", &mut self.report);
        let ipv6 = self.ipv6_entry(p, "Ipv6CidrBlock");
        let assigned = ["AmazonProvidedIpv6CidrBlock", "Ipv6Pool", "Ipv6IpamPoolId"]
            .into_iter()
            .find(|k| p.val.get(k).is_some());
        for k in [
            "AmazonProvidedIpv6CidrBlock",
            "Ipv6Pool",
            "Ipv6IpamPoolId",
            "Ipv6NetmaskLength",
        ] {
            p.used.insert(k.to_owned());
        }
        if block.is_none() && ipv6.is_none() {
            let msg = match assigned {
                Some(k) => format!(
                    "{k}: the IPv6 block is assigned by AWS when the stack is created, so the template has no value for it: not imported (fill in ipv6_cidr_block: with the VPC's /56, and the subnets' ipv6_cidr: /64s)"
                ),
                None => "the block needs a CidrBlock or an Ipv6CidrBlock the importer can compute (IPAM pools are not supported): not imported".to_owned(),
            };
            let line = assigned.map_or(0, |k| p.line(k));
            self.report.add(&p.origin, line, Severity::NotImported, msg);
            return &[];
        }
        let Some(vpc) = vpc else { return &[] };
        match self.inv.vpcs.iter_mut().find(|v| v.origin.id == vpc) {
            Some(v) => {
                v.cidr_blocks.extend(block);
                v.ipv6_blocks.extend(ipv6);
            }
            None => self.missing(&p.origin.clone(), "VpcId", &vpc, "VPC"),
        }
        &[]
    }

    /// An IPv6 CIDR property, with the line it is written on.
    fn ipv6_entry(&mut self, p: &mut Props<'_>, key: &str) -> Option<CidrEntry> {
        let cidr = p.text(key, &mut self.report)?;
        let mut origin = p.origin.clone();
        origin.line = p.line(key);
        Some(CidrEntry { origin, cidr })
    }

    /// `AWS::EC2::SubnetCidrBlock`: a subnet's IPv6 block.
    fn subnet_cidr_block(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let subnet = p.target("SubnetId", &mut self.report);
        let Some(block) = self.ipv6_entry(p, "Ipv6CidrBlock") else {
            let msg = "no Ipv6CidrBlock the importer can compute (IPAM pools are not supported): not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            p.used
                .extend(["Ipv6IpamPoolId", "Ipv6NetmaskLength"].map(str::to_owned));
            return &[];
        };
        let Some(subnet) = subnet else { return &[] };
        match self.inv.subnets.iter_mut().find(|s| s.origin.id == subnet) {
            Some(s) if s.ipv6_cidr.is_none() => s.ipv6_cidr = Some(block),
            Some(_) => {
                let msg = format!(
                    "subnet {subnet} already has an IPv6 block: a subnet has one, not imported"
                );
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
            }
            None => self.missing(&p.origin.clone(), "SubnetId", &subnet, "subnet"),
        }
        &[]
    }

    /// `AWS::EC2::EgressOnlyInternetGateway`: attached to its VPC by `VpcId`.
    fn egress_only_gateway(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpcs = p.target("VpcId", &mut self.report).into_iter().collect();
        self.inv.egress_only_gateways.push(InternetGateway {
            origin: p.origin.clone(),
            vpcs,
        });
        &["Tags"]
    }

    /// Reports a reference to something the inventory does not have.
    fn missing(&mut self, origin: &Origin, key: &str, id: &str, what: &str) {
        let msg =
            format!("{key} '{id}' is no {what} of the template (or it was left out): not imported");
        self.report.add(origin, 0, Severity::NotImported, msg);
    }

    fn subnet(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpc = p.target("VpcId", &mut self.report);
        let cidr = p.text("CidrBlock", &mut self.report);
        let ipv6_cidr = self.ipv6_entry(p, "Ipv6CidrBlock");
        let map_public_ip = p
            .bool("MapPublicIpOnLaunch", &mut self.report)
            .unwrap_or(false);
        match (vpc, cidr) {
            (Some(vpc), Some(cidr)) => self.inv.subnets.push(Subnet {
                origin: p.origin.clone(),
                vpc,
                cidr,
                ipv6_cidr,
                map_public_ip,
            }),
            _ => {
                let msg = "the subnet needs a VpcId and an IPv4 CidrBlock: left out";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
            }
        }
        &[
            "AvailabilityZone",
            "AvailabilityZoneId",
            "Tags",
            "PrivateDnsNameOptionsOnLaunch",
            "EnableDns64",
            "EnableLniAtDeviceIndex",
        ]
    }

    fn route_table(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        if let Some(vpc) = p.target("VpcId", &mut self.report) {
            self.inv.route_tables.push(RouteTable {
                origin: p.origin.clone(),
                vpc,
                main: false,
                routes: Vec::new(),
                subnets: Vec::new(),
                propagations: Vec::new(),
            });
        }
        &["Tags"]
    }

    fn route(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let table = p.target("RouteTableId", &mut self.report);
        let destination = p
            .text("DestinationCidrBlock", &mut self.report)
            .or_else(|| p.text("DestinationIpv6CidrBlock", &mut self.report));
        let mut targets = Vec::new();
        let simple: [(&str, RouteKind); 4] = [
            ("GatewayId", RouteTo::Gateway),
            ("NatGatewayId", RouteTo::NatGateway),
            ("VpcPeeringConnectionId", RouteTo::Peering),
            ("EgressOnlyInternetGatewayId", RouteTo::EgressOnly),
        ];
        for (key, to) in simple {
            if let Some(t) = p.target(key, &mut self.report) {
                targets.push(to(t));
            }
        }
        let unsupported = [
            ("InstanceId", "an instance (NAT instance)"),
            ("NetworkInterfaceId", "a network interface"),
            ("TransitGatewayId", "a transit gateway"),
            ("VpcEndpointId", "a VPC endpoint"),
            ("CarrierGatewayId", "a carrier gateway"),
            ("LocalGatewayId", "a local gateway"),
            ("CoreNetworkArn", "a core network"),
        ];
        for (key, what) in unsupported {
            if let Some(v) = p.val(key) {
                let t = target_of(&v).unwrap_or_default();
                targets.push(RouteTo::Unsupported(format!("{what} {t}")));
            }
        }
        if p.val("DestinationPrefixListId").is_some() {
            let msg = "routes to prefix lists are not part of the format yet: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &[];
        }
        let (Some(table), Some(destination)) = (table, destination) else {
            let msg = "the route needs a RouteTableId and a DestinationCidrBlock or DestinationIpv6CidrBlock: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &[];
        };
        let target = match targets.as_slice() {
            [one] => one.clone(),
            [] => {
                let msg = "the route has no target: not imported";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
                return &[];
            }
            _ => {
                let msg = "the route has more than one target: not imported";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
                return &[];
            }
        };
        match self
            .inv
            .route_tables
            .iter_mut()
            .find(|t| t.origin.id == table)
        {
            Some(t) => t.routes.push(Route {
                origin: p.origin.clone(),
                destination,
                target,
            }),
            None => self.missing(&p.origin.clone(), "RouteTableId", &table, "route table"),
        }
        &[]
    }

    fn table_association(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let subnet = p.target("SubnetId", &mut self.report);
        let table = p.target("RouteTableId", &mut self.report);
        if p.val("GatewayId").is_some() {
            let msg = "gateway route tables (edge associations) are not part of the format";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
        }
        if let (Some(subnet), Some(table)) = (subnet, table) {
            match self
                .inv
                .route_tables
                .iter_mut()
                .find(|t| t.origin.id == table)
            {
                Some(t) => t.subnets.push(subnet),
                None => self.missing(&p.origin.clone(), "RouteTableId", &table, "route table"),
            }
        }
        &[]
    }

    fn gateway_attachment(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpc = p.target("VpcId", &mut self.report);
        if let (Some(vpc), Some(vgw)) = (&vpc, p.target("VpnGatewayId", &mut self.report)) {
            match self
                .inv
                .vpn_gateways
                .iter_mut()
                .find(|g| g.origin.id == vgw)
            {
                Some(g) => g.vpcs.push(vpc.clone()),
                None => self.missing(&p.origin.clone(), "VpnGatewayId", &vgw, "VPN gateway"),
            }
        }
        if let (Some(vpc), Some(igw)) = (vpc, p.target("InternetGatewayId", &mut self.report)) {
            match self
                .inv
                .internet_gateways
                .iter_mut()
                .find(|g| g.origin.id == igw)
            {
                Some(g) => g.vpcs.push(vpc),
                None => self.missing(
                    &p.origin.clone(),
                    "InternetGatewayId",
                    &igw,
                    "internet gateway",
                ),
            }
        }
        &[]
    }

    fn vpn_connection(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let gateway = p.target("VpnGatewayId", &mut self.report);
        // The far end: its own resource (AWS::EC2::CustomerGateway) is reported.
        p.val("CustomerGatewayId");
        let static_only = p
            .bool("StaticRoutesOnly", &mut self.report)
            .unwrap_or(false);
        if let Some(tgw) = p.target("TransitGatewayId", &mut self.report) {
            let msg = format!(
                "a VPN connection on transit gateway {tgw}: transit gateways are not part of the format, not imported"
            );
            self.report.add(
                &p.origin,
                p.line("TransitGatewayId"),
                Severity::NotImported,
                msg,
            );
            return &["Tags", "Type"];
        }
        if gateway.is_none() {
            let msg = "the VPN connection names no VpnGatewayId: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
        }
        self.inv.vpn_connections.push(VpnConnection {
            origin: p.origin.clone(),
            gateway,
            static_only,
            routes: Vec::new(),
        });
        &["Tags", "Type"]
    }

    fn vpn_connection_route(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let connection = p.target("VpnConnectionId", &mut self.report);
        let cidr = p.text("DestinationCidrBlock", &mut self.report);
        let (Some(connection), Some(cidr)) = (connection, cidr) else {
            let msg = "the route needs a VpnConnectionId and a DestinationCidrBlock: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &[];
        };
        match self
            .inv
            .vpn_connections
            .iter_mut()
            .find(|c| c.origin.id == connection)
        {
            Some(c) => c.routes.push(CidrEntry {
                origin: p.origin.clone(),
                cidr,
            }),
            None => self.missing(
                &p.origin.clone(),
                "VpnConnectionId",
                &connection,
                "VPN connection",
            ),
        }
        &[]
    }

    fn route_propagation(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let tables = p.targets("RouteTableIds", &mut self.report);
        let Some(gateway) = p.target("VpnGatewayId", &mut self.report) else {
            let msg = "the propagation names no VpnGatewayId: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &[];
        };
        for table in tables {
            match self
                .inv
                .route_tables
                .iter_mut()
                .find(|t| t.origin.id == table)
            {
                Some(t) => t.propagations.push(Propagation {
                    origin: p.origin.clone(),
                    gateway: gateway.clone(),
                }),
                None => self.missing(&p.origin.clone(), "RouteTableIds", &table, "route table"),
            }
        }
        &[]
    }

    fn prefix_list(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let family = p
            .text("AddressFamily", &mut self.report)
            .unwrap_or_else(|| "IPv4".to_owned());
        let name = p.text("PrefixListName", &mut self.report);
        let mut cidrs = Vec::new();
        for mut e in p.objects("Entries") {
            if let Some(cidr) = e.text("Cidr", &mut self.report) {
                cidrs.push(CidrEntry {
                    origin: e.origin.clone(),
                    cidr,
                });
            }
            e.finish(&mut self.report, &["Description"]);
        }
        let mut origin = p.origin.clone();
        // The list's own name, unless a Name tag gives another.
        origin.name_tag = origin.name_tag.or(name);
        self.inv.prefix_lists.push(PrefixList {
            origin,
            family,
            aws_managed: false,
            cidrs: Some(cidrs),
        });
        &["Tags", "MaxEntries"]
    }

    fn nat_gateway(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let subnet = p.target("SubnetId", &mut self.report);
        let connectivity = p.text("ConnectivityType", &mut self.report);
        let private_ip = p.text("PrivateIpAddress", &mut self.report);
        let allocation = p.target("AllocationId", &mut self.report);
        if connectivity.as_deref() == Some("private") {
            let msg = "private NAT gateways (no elastic IP) are not part of the format: left out";
            self.report.add(
                &p.origin,
                p.line("ConnectivityType"),
                Severity::NotImported,
                msg,
            );
            return &["Tags"];
        }
        let Some(subnet) = subnet else {
            let msg = "the NAT gateway needs a SubnetId: left out";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &["Tags"];
        };
        self.inv.nat_gateways.push(NatGateway {
            origin: p.origin.clone(),
            subnet,
            private_ip,
            elastic_ip: allocation.map_or(NatAddress::Unknown, NatAddress::Allocation),
        });
        &["Tags", "MaxDrainDurationSeconds"]
    }

    fn eip(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let associated = p.target("InstanceId", &mut self.report);
        let address = p.text("Address", &mut self.report);
        if p.text("Domain", &mut self.report)
            .is_some_and(|d| d != "vpc")
        {
            let msg = "Domain standard (EC2-Classic) is treated as vpc";
            self.report
                .add(&p.origin, p.line("Domain"), Severity::Ignored, msg);
        }
        self.inv.elastic_ips.push(ElasticIp {
            origin: p.origin.clone(),
            address,
            associated,
        });
        &[
            "Tags",
            "PublicIpv4Pool",
            "NetworkBorderGroup",
            "TransferAddress",
            "IpamPoolId",
        ]
    }

    fn eip_association(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let eip = p
            .target("AllocationId", &mut self.report)
            .or_else(|| p.target("EIP", &mut self.report));
        let to = p
            .target("NetworkInterfaceId", &mut self.report)
            .or_else(|| p.target("InstanceId", &mut self.report));
        if p.val("PrivateIpAddress").is_some() {
            let msg = "the elastic IP goes to the interface's primary address (secondary addresses are not part of the format)";
            self.report.add(
                &p.origin,
                p.line("PrivateIpAddress"),
                Severity::Assumed,
                msg,
            );
        }
        match (eip, to) {
            (Some(eip), Some(to)) => {
                match self.inv.elastic_ips.iter_mut().find(|e| e.origin.id == eip) {
                    Some(e) => e.associated = Some(to),
                    None => self.missing(&p.origin.clone(), "AllocationId", &eip, "elastic IP"),
                }
            }
            _ => {
                let msg = "the association needs an elastic IP and an instance or interface";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
            }
        }
        &[]
    }

    fn acl_entry(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let acl = p.target("NetworkAclId", &mut self.report);
        let rule = p.int("RuleNumber", &mut self.report);
        let protocol = p.text("Protocol", &mut self.report);
        let action = p.text("RuleAction", &mut self.report);
        let egress = p.bool("Egress", &mut self.report).unwrap_or(false);
        let cidr = p
            .text("CidrBlock", &mut self.report)
            .or_else(|| p.text("Ipv6CidrBlock", &mut self.report));
        let ports = p.object("PortRange").map(|mut r| {
            let range = (
                r.int("From", &mut self.report),
                r.int("To", &mut self.report),
            );
            r.finish(&mut self.report, &[]);
            range
        });
        let icmp = p.object("Icmp").map(|mut r| {
            let v = (
                r.int("Type", &mut self.report),
                r.int("Code", &mut self.report),
            );
            r.finish(&mut self.report, &[]);
            v
        });
        let protocol_n = protocol.as_deref().and_then(protocol_number);
        let allow = match action.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("allow") => Some(true),
            Some("deny") => Some(false),
            _ => None,
        };
        let (Some(acl), Some(rule), Some(protocol), Some(cidr), Some(allow)) =
            (acl, rule, protocol_n, cidr, allow)
        else {
            let msg = "the entry needs NetworkAclId, RuleNumber, Protocol, RuleAction and CidrBlock or Ipv6CidrBlock: not imported";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &[];
        };
        let entry = AclEntry {
            origin: p.origin.clone(),
            egress,
            rule,
            protocol,
            ports: ports.and_then(|(a, b)| Some((a?, b?))),
            icmp: icmp.map(|(t, c)| (t.unwrap_or(-1), c.unwrap_or(-1))),
            cidr,
            allow,
        };
        if acl.ends_with(".DefaultNetworkAcl") {
            let msg = "entries of the VPC's default network ACL are not imported (the default ACL stays allow-all)";
            self.report.add(
                &p.origin,
                p.line("NetworkAclId"),
                Severity::NotImported,
                msg,
            );
            return &[];
        }
        if let Some(a) = self.network_acl(p, &acl) {
            a.entries.push(entry);
        }
        &[]
    }

    /// The template's network ACL `acl` (named by `p`'s `NetworkAclId`); reported if absent.
    fn network_acl(
        &mut self,
        p: &Props<'_>,
        acl: &str,
    ) -> Option<&mut super::inventory::NetworkAcl> {
        let found = self
            .inv
            .network_acls
            .iter()
            .position(|a| a.origin.id == acl);
        if found.is_none() {
            self.missing(&p.origin.clone(), "NetworkAclId", acl, "network ACL");
        }
        found.map(|i| &mut self.inv.network_acls[i])
    }

    fn acl_association(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let subnet = p.target("SubnetId", &mut self.report);
        let acl = p.target("NetworkAclId", &mut self.report);
        if let (Some(subnet), Some(acl)) = (subnet, acl) {
            if acl.ends_with(".DefaultNetworkAcl") {
                // Association with the default ACL: what an unassociated subnet has.
                return &[];
            }
            if let Some(a) = self.network_acl(p, &acl) {
                a.subnets.push(subnet);
            }
        }
        &[]
    }

    fn security_group(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpc = p.target("VpcId", &mut self.report);
        let group_name = p.text("GroupName", &mut self.report);
        let mut inbound = Vec::new();
        for mut r in p.objects("SecurityGroupIngress") {
            inbound.extend(self.group_rule(&mut r, false));
            r.finish(
                &mut self.report,
                &["Description", "SourceSecurityGroupOwnerId"],
            );
        }
        let mut outbound = Vec::new();
        let egress_given = p.val.get("SecurityGroupEgress").is_some();
        for mut r in p.objects("SecurityGroupEgress") {
            outbound.extend(self.group_rule(&mut r, true));
            r.finish(&mut self.report, &["Description"]);
        }
        let Some(vpc) = vpc else {
            let msg =
                "a security group without VpcId belongs to the account's default VPC: left out";
            self.report.add(&p.origin, 0, Severity::NotImported, msg);
            return &["GroupDescription", "Tags"];
        };
        self.inv.security_groups.push(SecurityGroup {
            origin: p.origin.clone(),
            vpc,
            group_name,
            inbound,
            outbound: egress_given.then_some(outbound),
        });
        &["GroupDescription", "Tags"]
    }

    /// One rule (inline or a resource of its own): its protocol, ports and peer.
    fn group_rule(&mut self, r: &mut Props<'_>, egress: bool) -> Option<SgRule> {
        let protocol = r.text("IpProtocol", &mut self.report);
        let from_port = r.int("FromPort", &mut self.report);
        let to_port = r.int("ToPort", &mut self.report);
        let (group_key, list_key) = if egress {
            ("DestinationSecurityGroupId", "DestinationPrefixListId")
        } else {
            ("SourceSecurityGroupId", "SourcePrefixListId")
        };
        let cidr = r.text("CidrIp", &mut self.report);
        let cidr6 = r.text("CidrIpv6", &mut self.report);
        let group = r.target(group_key, &mut self.report);
        let group_name = if egress {
            None
        } else {
            r.text("SourceSecurityGroupName", &mut self.report)
        };
        let list = r.target(list_key, &mut self.report);
        let both = cidr.is_some() && cidr6.is_some();
        let peer = match (cidr.or(cidr6), group, group_name, list) {
            (Some(c), None, None, None) if !both => SgPeer::Cidr(c),
            (None, Some(g), None, None) => SgPeer::Group(g),
            (None, None, None, Some(l)) => SgPeer::PrefixList(l),
            (None, None, Some(name), None) => {
                let found = self.inv.security_groups.iter().find(|g| {
                    g.group_name.as_deref() == Some(name.as_str()) || g.origin.id == name
                });
                match found {
                    Some(g) => SgPeer::Group(g.origin.id.clone()),
                    None => {
                        let msg = format!(
                            "SourceSecurityGroupName '{name}' is no group of the template: the rule is not imported"
                        );
                        self.report.add(
                            &r.origin,
                            r.line("SourceSecurityGroupName"),
                            Severity::NotImported,
                            msg,
                        );
                        return None;
                    }
                }
            }
            _ => {
                let msg = "a rule needs exactly one of a CIDR block, a security group or a prefix list: not imported";
                self.report.add(&r.origin, 0, Severity::NotImported, msg);
                return None;
            }
        };
        let Some(protocol) = protocol.as_deref().and_then(protocol_number) else {
            let msg = "the rule needs an IpProtocol (tcp, udp, icmp, -1 or a number): not imported";
            self.report
                .add(&r.origin, r.line("IpProtocol"), Severity::NotImported, msg);
            return None;
        };
        Some(SgRule {
            origin: r.origin.clone(),
            protocol,
            from_port,
            to_port,
            peer,
        })
    }

    fn group_rule_resource(&mut self, p: &mut Props<'_>, egress: bool) -> &'static [&'static str] {
        let group = p.target("GroupId", &mut self.report).or_else(|| {
            let name = p.text("GroupName", &mut self.report)?;
            self.inv
                .security_groups
                .iter()
                .find(|g| g.group_name.as_deref() == Some(name.as_str()))
                .map(|g| g.origin.id.clone())
        });
        let rule = self.group_rule(p, egress);
        let (Some(group), Some(rule)) = (group, rule) else {
            if p.val.get("GroupId").is_none() && p.val.get("GroupName").is_none() {
                let msg = "the rule names no group: not imported";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
            }
            return &["Description", "SourceSecurityGroupOwnerId"];
        };
        if group.ends_with(".DefaultSecurityGroup") {
            let msg = "rules added to the VPC's default security group are not imported (it keeps AWS's default rules)";
            self.report
                .add(&p.origin, p.line("GroupId"), Severity::NotImported, msg);
            return &["Description", "SourceSecurityGroupOwnerId"];
        }
        match self
            .inv
            .security_groups
            .iter_mut()
            .find(|g| g.origin.id == group)
        {
            Some(g) if egress => g.outbound.get_or_insert_with(Vec::new).push(rule),
            Some(g) => g.inbound.push(rule),
            None => self.missing(&p.origin.clone(), "GroupId", &group, "security group"),
        }
        &["Description", "SourceSecurityGroupOwnerId"]
    }

    fn instance(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let subnet = p.target("SubnetId", &mut self.report);
        let private_ip = p.text("PrivateIpAddress", &mut self.report);
        let mut groups = p.targets("SecurityGroupIds", &mut self.report);
        groups.extend(p.targets("SecurityGroups", &mut self.report));
        if p.bool("SourceDestCheck", &mut self.report) == Some(false) {
            let msg = "SourceDestCheck false (a NAT instance) is not imported yet: the instance keeps the source/destination check (add source_dest_check: false by hand)";
            self.report.add(
                &p.origin,
                p.line("SourceDestCheck"),
                Severity::NotImported,
                msg,
            );
        }
        let ipv6_addresses = self.ipv6_addresses(p);
        let id = p.origin.id.clone();
        let enis = p.objects("NetworkInterfaces");
        if enis.is_empty() {
            let Some(subnet) = subnet else {
                let msg =
                    "an instance without SubnetId runs in the account's default VPC: left out";
                self.report.add(&p.origin, 0, Severity::NotImported, msg);
                return INSTANCE_IGNORED;
            };
            self.push_interface(
                Interface {
                    origin: p.origin.clone(),
                    instance: id,
                    eni: None,
                    primary: true,
                    subnet,
                    private_ip,
                    public_ip: PublicIp::None,
                    ipv6_addresses,
                    groups,
                },
                None,
            );
            return INSTANCE_IGNORED;
        }
        for mut e in enis {
            let index = e.int("DeviceIndex", &mut self.report).unwrap_or(0);
            if let Some(existing) = e.target("NetworkInterfaceId", &mut self.report) {
                let found = self
                    .inv
                    .interfaces
                    .iter()
                    .position(|i| i.eni.as_deref() == Some(existing.as_str()));
                match found {
                    Some(n) => {
                        let i = &mut self.inv.interfaces[n];
                        i.instance.clone_from(&id);
                        i.primary = index == 0;
                        if index == 0 {
                            self.instance_primary.insert(id.clone(), n);
                        }
                    }
                    None => self.missing(
                        &e.origin.clone(),
                        "NetworkInterfaceId",
                        &existing,
                        "network interface",
                    ),
                }
                e.finish(&mut self.report, &["DeleteOnTermination", "Description"]);
                continue;
            }
            let (iface, associate) = self.interface_props(&mut e, &id);
            e.finish(&mut self.report, &["DeleteOnTermination", "Description"]);
            let Some(mut i) = iface else { continue };
            i.primary = index == 0;
            if index == 0 {
                if i.private_ip.is_none() {
                    i.private_ip.clone_from(&private_ip);
                }
                if i.groups.is_empty() {
                    i.groups.clone_from(&groups);
                }
                i.origin.id.clone_from(&id);
            } else {
                i.origin.id = format!("{id}.NetworkInterfaces[{index}]");
            }
            self.push_interface(i, associate);
        }
        INSTANCE_IGNORED
    }

    /// The properties an interface has inline (an instance's `NetworkInterfaces` item) or as a
    /// resource: the interface, and `AssociatePublicIpAddress` if given.
    fn interface_props(
        &mut self,
        e: &mut Props<'_>,
        instance: &str,
    ) -> (Option<Interface>, Option<bool>) {
        let subnet = e.target("SubnetId", &mut self.report);
        let mut private_ip = e.text("PrivateIpAddress", &mut self.report);
        let groups = e.targets("GroupSet", &mut self.report);
        let associate = e.bool("AssociatePublicIpAddress", &mut self.report);
        for mut a in e.objects("PrivateIpAddresses") {
            let primary = a.bool("Primary", &mut self.report).unwrap_or(false);
            let ip = a.text("PrivateIpAddress", &mut self.report);
            if primary && private_ip.is_none() {
                private_ip = ip;
            } else if !primary {
                let msg = "secondary private addresses are not part of the format: not imported";
                self.report.add(&a.origin, 0, Severity::NotImported, msg);
            }
            a.finish(&mut self.report, &[]);
        }
        let ipv6_addresses = self.ipv6_addresses(e);
        for key in [
            "SecondaryPrivateIpAddressCount",
            "Ipv4Prefixes",
            "Ipv4PrefixCount",
            "Ipv6Prefixes",
            "Ipv6PrefixCount",
        ] {
            if e.val(key).is_some() {
                let msg = format!("{key} is not part of the format: not imported");
                self.report
                    .add(&e.origin, e.line(key), Severity::NotImported, msg);
            }
        }
        if e.bool("SourceDestCheck", &mut self.report) == Some(false) {
            let msg = "SourceDestCheck false is not part of the format yet: the interface keeps the check";
            self.report.add(
                &e.origin,
                e.line("SourceDestCheck"),
                Severity::NotImported,
                msg,
            );
        }
        let Some(subnet) = subnet else {
            let msg = "the interface needs a SubnetId: left out";
            self.report.add(&e.origin, 0, Severity::NotImported, msg);
            return (None, associate);
        };
        let iface = Interface {
            origin: e.origin.clone(),
            instance: instance.to_owned(),
            eni: None,
            primary: true,
            subnet,
            private_ip,
            public_ip: PublicIp::None,
            ipv6_addresses,
            groups,
        };
        (Some(iface), associate)
    }

    /// `Ipv6Addresses` (`[{ Ipv6Address: ... }]`) of an instance or interface; a count alone
    /// (`Ipv6AddressCount`) leaves the addresses to AWS and is reported.
    fn ipv6_addresses(&mut self, e: &mut Props<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for mut a in e.objects("Ipv6Addresses") {
            out.extend(a.text("Ipv6Address", &mut self.report));
            a.finish(&mut self.report, &[]);
        }
        if e.val("Ipv6AddressCount").is_some() {
            let msg = "Ipv6AddressCount: AWS assigns the addresses at launch, the template has none: not imported (list them in ipv6_addresses:)";
            self.report.add(
                &e.origin,
                e.line("Ipv6AddressCount"),
                Severity::NotImported,
                msg,
            );
        }
        out
    }

    fn push_interface(&mut self, mut iface: Interface, associate: Option<bool>) {
        match associate {
            Some(true) => iface.public_ip = PublicIp::Launch,
            Some(false) => {}
            None if iface.primary => self.public_unset.push(self.inv.interfaces.len()),
            None => {}
        }
        if iface.primary {
            self.instance_primary
                .insert(iface.instance.clone(), self.inv.interfaces.len());
        }
        self.inv.interfaces.push(iface);
    }

    fn network_interface(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let id = p.origin.id.clone();
        let (iface, _) = self.interface_props(p, &id);
        if let Some(mut i) = iface {
            i.eni = Some(id);
            // Standalone until an instance or attachment claims it; it is its own host.
            self.inv.interfaces.push(i);
        }
        &[
            "Description",
            "Tags",
            "InterfaceType",
            "ConnectionTrackingSpecification",
            "EnablePrimaryIpv6",
        ]
    }

    fn interface_attachment(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let instance = p.target("InstanceId", &mut self.report);
        let eni = p.target("NetworkInterfaceId", &mut self.report);
        let index = p.int("DeviceIndex", &mut self.report).unwrap_or(1);
        if let (Some(instance), Some(eni)) = (instance, eni) {
            match self
                .inv
                .interfaces
                .iter_mut()
                .find(|i| i.eni.as_deref() == Some(eni.as_str()))
            {
                Some(i) => {
                    i.instance = instance;
                    i.primary = index == 0;
                }
                None => self.missing(
                    &p.origin.clone(),
                    "NetworkInterfaceId",
                    &eni,
                    "network interface",
                ),
            }
        }
        &["DeleteOnTermination", "EnaSrdSpecification"]
    }

    fn peering(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let vpc = p.target("VpcId", &mut self.report);
        let peer = p.target("PeerVpcId", &mut self.report);
        for key in ["PeerOwnerId", "PeerRegion", "PeerRoleArn"] {
            if p.val(key).is_some() {
                let msg =
                    format!("{key}: a peer in another account or region is outside this import");
                self.report
                    .add(&p.origin, p.line(key), Severity::Ignored, msg);
            }
        }
        let Some(vpc) = vpc else {
            return &["Tags"];
        };
        let in_template = peer
            .as_deref()
            .is_some_and(|peer| self.inv.vpcs.iter().any(|v| v.origin.id == peer));
        if !in_template {
            let msg = format!(
                "the peer VPC {} is not in the template: the connection cannot be expressed, and routes to it are not imported",
                peer.as_deref().unwrap_or("?")
            );
            self.report
                .add(&p.origin, p.line("PeerVpcId"), Severity::NotImported, msg);
        }
        self.inv.peerings.push(Peering {
            origin: p.origin.clone(),
            vpc,
            peer_vpc: peer.filter(|_| in_template),
        });
        &["Tags"]
    }

    fn flow_log(&mut self, p: &mut Props<'_>) -> &'static [&'static str] {
        let interval = p.int("MaxAggregationInterval", &mut self.report);
        let format = p.text("LogFormat", &mut self.report);
        if let Some(traffic) = p.text("TrafficType", &mut self.report)
            && traffic != "ALL"
        {
            let msg = format!(
                "TrafficType {traffic}: the agent logs accepted and rejected traffic (ALL)"
            );
            self.report
                .add(&p.origin, p.line("TrafficType"), Severity::NotImported, msg);
        }
        let scope = p.text("ResourceType", &mut self.report);
        let resource = p
            .text("ResourceId", &mut self.report)
            .or_else(|| p.target("ResourceId", &mut self.report));
        if let Some(scope) = scope {
            let msg = format!(
                "scope {scope} {}: the agent logs every interface it manages",
                resource.unwrap_or_default()
            );
            self.report
                .add(&p.origin, p.line("ResourceType"), Severity::Assumed, msg);
        }
        for key in [
            "LogDestinationType",
            "LogDestination",
            "LogGroupName",
            "DeliverLogsPermissionArn",
            "DeliverCrossAccountRole",
            "DestinationOptions",
        ] {
            if p.val(key).is_some() {
                let msg = format!(
                    "{key}: records go to stdout (choose with `vpc-agent run --flow-log` or flow_logs.destination)"
                );
                self.report
                    .add(&p.origin, p.line(key), Severity::Assumed, msg);
            }
        }
        self.inv.flow_logs.push(FlowLog {
            origin: p.origin.clone(),
            interval,
            format,
        });
        &["Tags"]
    }

    /// Primary interfaces that did not say: a public IP if the subnet maps one on launch.
    fn launch_addresses(&mut self) {
        for &i in &self.public_unset {
            let iface = &mut self.inv.interfaces[i];
            let maps = self
                .inv
                .subnets
                .iter()
                .any(|s| s.origin.id == iface.subnet && s.map_public_ip);
            if maps {
                iface.public_ip = PublicIp::Launch;
            }
        }
    }
}

/// Instance properties without meaning for the router.
const INSTANCE_IGNORED: &[&str] = &[
    "ImageId",
    "InstanceType",
    "KeyName",
    "UserData",
    "Tags",
    "AvailabilityZone",
    "IamInstanceProfile",
    "BlockDeviceMappings",
    "Monitoring",
    "EbsOptimized",
    "Tenancy",
    "PlacementGroupName",
    "DisableApiTermination",
    "CreditSpecification",
    "MetadataOptions",
    "InstanceInitiatedShutdownBehavior",
    "Volumes",
    "HibernationOptions",
    "CpuOptions",
    "EnclaveOptions",
    "PropagateTagsToVolumeOnCreation",
    "PrivateDnsNameOptions",
    "HostId",
    "Affinity",
    "KernelId",
    "RamdiskId",
];

/// The `Name` tag of a resource's properties.
fn name_tag(props: &Val) -> Option<String> {
    props
        .get("Tags")?
        .list()
        .iter()
        .find_map(|t| (t.get("Key")?.text()? == "Name").then(|| t.get("Value")?.text())?)
}
