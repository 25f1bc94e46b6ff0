//! The address families the maps are compiled for: what differs between an IPv4 and an IPv6
//! network (its address as a map stores it, which of a definition's networks and addresses
//! belong to it), so that the route, ACL and security group compilers are written once.

use std::fmt::Debug;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use vpc_common::{Addr6, ip_raw, mask_raw};

use crate::config::validated::{InstanceDef, PrefixListDef};

/// A network of one address family (`Ipv4Net` or `Ipv6Net`).
pub trait Family: Copy + Ord + Debug {
    /// An address as the maps store it (network order): `u32` or [`Addr6`].
    type Raw: Copy + Ord + Default + Debug;

    /// Whether this family's `/0` is class 0, the class of a remote matching no
    /// `SG_REMOTES` entry (IPv4), rather than a class with its own `/0` entry (IPv6: class 0
    /// holds the rules for `0.0.0.0/0`, which must never match an IPv6 remote, so every
    /// IPv6 remote matches at least the VPC's `::/0` entry).
    const DEFAULT_IS_CLASS_NONE: bool;

    /// The network if `net` is of this family.
    fn of(net: IpNet) -> Option<Self>;

    /// The single-address networks of an instance's addresses of this family (its private
    /// IPv4 address; its IPv6 addresses).
    fn hosts(inst: &InstanceDef) -> Vec<Self>;

    /// The CIDRs of this family of a prefix list (prefix lists hold IPv4 CIDRs only).
    fn prefix_list(list: &PrefixListDef) -> Vec<Self>;

    /// The whole address space (`/0`).
    fn everything() -> Self;

    fn prefix_len(&self) -> u8;

    /// Whether `other` lies inside this network.
    fn contains_net(&self, other: &Self) -> bool;

    /// (network address, mask) as the maps store them.
    fn raw(&self) -> (Self::Raw, Self::Raw);
}

impl Family for Ipv4Net {
    type Raw = u32;
    const DEFAULT_IS_CLASS_NONE: bool = true;

    fn of(net: IpNet) -> Option<Self> {
        match net {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }

    fn hosts(inst: &InstanceDef) -> Vec<Self> {
        vec![Ipv4Net::from(inst.private_ip)]
    }

    fn prefix_list(list: &PrefixListDef) -> Vec<Self> {
        list.cidrs.clone()
    }

    fn everything() -> Self {
        Ipv4Net::default()
    }

    fn prefix_len(&self) -> u8 {
        Ipv4Net::prefix_len(self)
    }

    fn contains_net(&self, other: &Self) -> bool {
        self.contains(other)
    }

    fn raw(&self) -> (u32, u32) {
        (ip_raw(self.network().octets()), mask_raw(self.prefix_len()))
    }
}

impl Family for Ipv6Net {
    type Raw = Addr6;
    const DEFAULT_IS_CLASS_NONE: bool = false;

    fn of(net: IpNet) -> Option<Self> {
        match net {
            IpNet::V6(net) => Some(net),
            IpNet::V4(_) => None,
        }
    }

    fn hosts(inst: &InstanceDef) -> Vec<Self> {
        inst.ipv6_addresses
            .iter()
            .map(|a| Ipv6Net::from(*a))
            .collect()
    }

    fn prefix_list(_: &PrefixListDef) -> Vec<Self> {
        Vec::new()
    }

    fn everything() -> Self {
        Ipv6Net::default()
    }

    fn prefix_len(&self) -> u8 {
        Ipv6Net::prefix_len(self)
    }

    fn contains_net(&self, other: &Self) -> bool {
        self.contains(other)
    }

    fn raw(&self) -> (Addr6, Addr6) {
        (self.network().octets(), self.netmask().octets())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_addresses_and_masks_are_in_network_order() {
        let v4: Ipv4Net = "10.1.2.3/16".parse().unwrap();
        assert_eq!(v4.raw(), (ip_raw([10, 1, 0, 0]), ip_raw([255, 255, 0, 0])));
        let v6: Ipv6Net = "2001:db8:1234:1a00::7/56".parse().unwrap();
        let (addr, mask) = v6.raw();
        assert_eq!(
            addr,
            [
                0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x1a, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            mask,
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert_eq!(Ipv6Net::everything().raw(), ([0; 16], [0; 16]));
    }
}
