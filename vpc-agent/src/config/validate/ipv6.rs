//! IPv6 (docs/format.md, "IPv6"): the VPC's /56, subnets' /64s, instances' IPv6 addresses and
//! the egress-only internet gateway. All of it is validated; the datapath forwards IPv6 only
//! for instances on their own ports so far, so a file using it gets one warning.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::*;

/// The prefix length AWS gives a VPC's IPv6 block and a subnet's.
const VPC_V6_PREFIX: u8 = 56;
const SUBNET_V6_PREFIX: u8 = 64;

/// A VPC's `ipv6_cidr_block` as checked: absent, present but invalid (already reported), or
/// the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum V6Block {
    Absent,
    Invalid,
    Block(Ipv6Net),
}

impl V6Block {
    /// The block, if it is present and valid.
    pub(super) fn net(self) -> Option<Ipv6Net> {
        match self {
            Self::Block(net) => Some(net),
            Self::Absent | Self::Invalid => None,
        }
    }
}

impl Validator {
    /// An IPv6 network of exactly `/prefix`, without host bits.
    fn ipv6_net(&mut self, v: &Loc<String>, path: &str, what: &str, prefix: u8) -> Option<Ipv6Net> {
        let Ok(net) = v.value.parse::<Ipv6Net>() else {
            let msg = format!(
                "invalid IPv6 CIDR '{}': expected an IPv6 network such as 2001:db8:1234:1a00::/{prefix}",
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
        if net.prefix_len() != prefix {
            let msg = format!("{what} must be a /{prefix}, got /{}", net.prefix_len());
            self.err(v.pos, path, msg);
            return None;
        }
        Some(net)
    }

    /// A rule's CIDR: IPv4 (see [`Self::cidr`]) or, written with a colon, IPv6 (any prefix
    /// length, no host bits).
    pub(super) fn ip_cidr(&mut self, v: &Loc<String>, path: &str) -> Option<ipnet::IpNet> {
        if !v.value.contains(':') {
            return self.cidr(v, path).map(ipnet::IpNet::V4);
        }
        let Ok(net) = v.value.parse::<Ipv6Net>() else {
            let msg = format!(
                "invalid CIDR '{}': expected an IPv6 network such as 2001:db8:99::/64",
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
        Some(ipnet::IpNet::V6(net))
    }

    /// The VPC's IPv6 block: a /56 that no earlier VPC's block overlaps (`v`: the VPC's index).
    pub(super) fn vpc_ipv6_block(&mut self, vpc: &model::Vpc, path: &str, v: usize) -> V6Block {
        let Some(block) = &vpc.ipv6_cidr_block else {
            return V6Block::Absent;
        };
        let bpath = format!("{path}.ipv6_cidr_block");
        let Some(net) = self.ipv6_net(block, &bpath, "a VPC IPv6 CIDR block", VPC_V6_PREFIX) else {
            return V6Block::Invalid;
        };
        let clash = self
            .globals
            .vpc_v6_blocks
            .iter()
            .find(|(i, b, _)| *i < v && (b.contains(&net) || net.contains(b)));
        if let Some((_, other, owner)) = clash {
            let msg = format!("IPv6 CIDR block {net} overlaps {other} of VPC '{owner}'");
            self.err(block.pos, bpath, msg);
            return V6Block::Invalid;
        }
        V6Block::Block(net)
    }

    /// A subnet's `ipv6_cidr`: a /64 inside the VPC's IPv6 block, no other subnet's.
    pub(super) fn subnet_ipv6(
        &mut self,
        subnet: &model::Subnet,
        spath: &str,
        vpc: &str,
        block: V6Block,
        seen: &mut Vec<(Ipv6Net, String)>,
    ) -> Option<Option<Ipv6Net>> {
        let Some(cidr) = &subnet.ipv6_cidr else {
            return Some(None);
        };
        let cpath = format!("{spath}.ipv6_cidr");
        let net = self.ipv6_net(cidr, &cpath, "a subnet IPv6 CIDR block", SUBNET_V6_PREFIX)?;
        match block {
            V6Block::Absent => {
                let msg = format!(
                    "subnet {net} needs an IPv6 block in its VPC, and VPC '{vpc}' has no ipv6_cidr_block"
                );
                self.err(cidr.pos, cpath, msg);
                return None;
            }
            V6Block::Invalid => return None,
            V6Block::Block(b) if !b.contains(&net) => {
                let msg = format!("subnet {net} is not inside the IPv6 block {b} of VPC '{vpc}'");
                self.err(cidr.pos, cpath, msg);
                return None;
            }
            V6Block::Block(_) => {}
        }
        if let Some((_, owner)) = seen.iter().find(|(n, _)| *n == net) {
            let msg = format!("subnet {net} is already the IPv6 block of subnet '{owner}'");
            self.err(cidr.pos, cpath, msg);
            return None;
        }
        seen.push((net, subnet.name.value.clone()));
        Some(Some(net))
    }

    /// An instance's IPv6 addresses: each inside its subnet's `ipv6_cidr`, not reserved, not
    /// used twice in the VPC. `written`: the subnet's file entry has an `ipv6_cidr` (if it
    /// did not resolve, that is already reported).
    pub(super) fn instance_ipv6(
        &mut self,
        inst: &model::Instance,
        ipath: &str,
        subnet: Option<&SubnetDef>,
        written: bool,
        used: &mut HashMap<Ipv6Addr, String>,
    ) -> Option<Vec<Ipv6Addr>> {
        let mut out = Vec::new();
        for (k, v) in inst.ipv6_addresses.iter().enumerate() {
            let path = format!("{ipath}.ipv6_addresses[{k}]");
            out.push(self.instance_ipv6_address(v, &path, &inst.name.value, subnet, written, used));
        }
        out.into_iter().collect()
    }

    fn instance_ipv6_address(
        &mut self,
        v: &Loc<String>,
        path: &str,
        owner: &str,
        subnet: Option<&SubnetDef>,
        written: bool,
        used: &mut HashMap<Ipv6Addr, String>,
    ) -> Option<Ipv6Addr> {
        let Ok(ip) = v.value.parse::<Ipv6Addr>() else {
            let msg = format!("invalid IPv6 address '{}'", v.value);
            self.err(v.pos, path, msg);
            return None;
        };
        let subnet = subnet?;
        let Some(net) = subnet.ipv6_cidr else {
            if written {
                return None;
            }
            let msg = format!(
                "address {ip} needs an IPv6 block in its subnet, and subnet '{}' has no ipv6_cidr",
                subnet.name
            );
            self.err(v.pos, path, msg);
            return None;
        };
        if !net.contains(&ip) {
            let msg = format!(
                "address {ip} is not inside subnet '{}' ({net})",
                subnet.name
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if subnet.is_reserved_v6(ip) {
            let last_reserved = Ipv6Addr::from(u128::from(net.network()) + 3);
            let msg = format!(
                "address {ip} is reserved in subnet '{}' (AWS reserves {} to {last_reserved} and {})",
                subnet.name,
                net.network(),
                net.broadcast()
            );
            self.err(v.pos, path, msg);
            return None;
        }
        if let Some(first) = used.get(&ip) {
            let msg = format!("address {ip} is already used by {first}");
            self.err(v.pos, path, msg);
            return None;
        }
        used.insert(ip, format!("instance '{owner}'"));
        Some(ip)
    }

    /// The egress-only internet gateway: its interface is unique like every other, except
    /// that it may be the internet gateway's uplink.
    pub(super) fn egress_only_gateway(
        &mut self,
        vpc: &model::Vpc,
        path: &str,
    ) -> Option<InternetGatewayDef> {
        let eigw = &vpc.egress_only_internet_gateway.as_ref()?.value;
        let uplink = vpc
            .internet_gateway
            .as_ref()
            .map(|igw| igw.value.interface.value.as_str());
        if uplink != Some(eigw.interface.value.as_str()) {
            let owner = format!(
                "egress-only internet gateway '{}' of VPC '{}'",
                eigw.name.value, vpc.name.value
            );
            let ipath = format!("{path}.egress_only_internet_gateway.interface");
            self.interface(&eigw.interface, &ipath, owner);
        }
        Some(InternetGatewayDef {
            name: eigw.name.value.clone(),
            interface: eigw.interface.value.clone(),
        })
    }
}

/// One warning for the whole file, on the first VPC that uses IPv6: the datapath does not
/// forward IPv6.
pub(super) fn ipv6_warning(file: &ConfigFile) -> Option<Diagnostic> {
    file.vpcs.iter().enumerate().find_map(|(v, vpc)| {
        let vpc = &vpc.value;
        let (pos, key) = match (&vpc.ipv6_cidr_block, &vpc.egress_only_internet_gateway) {
            (Some(b), _) => (b.pos, "ipv6_cidr_block"),
            (None, Some(g)) => (g.pos, "egress_only_internet_gateway"),
            (None, None) => return None,
        };
        Some(Diagnostic::new(
            pos,
            format!("vpcs[{v}].{key}"),
            "warning: IPv6 is forwarded only for instances on their own ports, between them and \
             through the internet and egress-only gateways (not yet over peering connections, \
             NAT instances, VPN gateways or shared segments: dropped as not_ipv4)",
        ))
    })
}
