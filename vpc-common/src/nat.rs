//! NAT gateway translations. The connection's state lives in `CONNTRACK` (keyed by the inside
//! tuple, with `nat_ip`/`nat_port` set); `NAT_PORTS` is its reverse index, keyed by what the
//! internet sees, so that a reply finds the inside endpoint and a new connection finds a free
//! port. Ports are unique per (elastic IP, remote IP, remote port, protocol): up to one range
//! of ports (by default 1024-65535) per destination.
//!
//! For ICMP echo the "port" is the identifier and `remote_port` is 0.

use crate::{assert_size, conntrack::CtKey, pod, proto::PROTO_ICMP};

/// `NAT_PORTS` key: a translated connection as the internet sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatKey {
    /// The NAT gateway's elastic IP (network order).
    pub nat_ip: u32,
    pub remote_ip: u32,
    /// Host order.
    pub nat_port: u16,
    pub remote_port: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
assert_size!(NatKey, 16);

/// The remote port as `NAT_PORTS` keys it: 0 for ICMP, whose "port" is the identifier.
#[inline(always)]
pub const fn remote_port(proto: u8, port: u16) -> u16 {
    if proto == PROTO_ICMP { 0 } else { port }
}

impl NatKey {
    /// The key of `nat_ip:nat_port` towards `remote_ip:remote_port` (padding zeroed, the remote
    /// port as [`remote_port`] says).
    #[inline(always)]
    pub const fn new(
        nat_ip: u32,
        nat_port: u16,
        remote_ip: u32,
        remote_port_: u16,
        proto: u8,
    ) -> Self {
        Self {
            nat_ip,
            remote_ip,
            nat_port,
            remote_port: remote_port(proto, remote_port_),
            proto,
            _pad: [0; 3],
        }
    }

    /// The reverse entry of a connection whose original direction is `ct` (inside -> remote)
    /// and that is translated to `nat_ip:nat_port`.
    #[inline(always)]
    pub const fn of_connection(ct: &CtKey, nat_ip: u32, nat_port: u16) -> Self {
        Self::new(nat_ip, nat_port, ct.dst, ct.dport, ct.proto)
    }

    /// The inside connection's key (original direction) of this translation, whose inside end
    /// is `inside`. For ICMP echo both ports are the inside identifier.
    #[inline(always)]
    pub const fn connection(&self, inside: &NatValue) -> CtKey {
        let dport = if self.proto == PROTO_ICMP {
            inside.inside_port
        } else {
            self.remote_port
        };
        CtKey::new(
            inside.inside_ip,
            self.remote_ip,
            inside.inside_port,
            dport,
            self.proto,
        )
    }
}

/// `NAT_PORTS` value: the inside endpoint behind a translated port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatValue {
    pub inside_ip: u32,
    pub inside_port: u16,
    pub _pad: u16,
    /// NAT gateway id (`NAT_GATEWAYS` key) when the connection started (its generation's slot:
    /// replies use the running generation's gateway, found by elastic IP).
    pub nat_gateway: u32,
    /// The VPC of the inside endpoint (likewise).
    pub vpc_id: u32,
}
assert_size!(NatValue, 16);

/// `NAT_CONFIG[0]`: the port range translations use (inclusive). Zero fields mean the
/// default 1024-65535.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    pub port_min: u16,
    pub port_max: u16,
    pub _pad: u32,
}
assert_size!(NatConfig, 8);

/// Default port range.
pub const NAT_PORT_MIN: u16 = 1024;
pub const NAT_PORT_MAX: u16 = 65535;

/// Ports tried for a new connection before it is dropped as `nat_port_exhausted`.
pub const NAT_MAX_PROBES: u32 = 1024;

/// Default capacity of `NAT_PORTS`.
pub const NAT_PORTS_ENTRIES: u32 = 262_144;

pod!(NatKey, NatValue, NatConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PROTO_UDP;

    #[test]
    fn a_connection_and_its_reverse_entry_map_both_ways() {
        for (proto, dport) in [(PROTO_UDP, 53), (PROTO_ICMP, 7)] {
            let ct = CtKey::new(10, 20, 7, dport, proto);
            let k = NatKey::of_connection(&ct, 99, 2000);
            assert_eq!(
                (k.nat_ip, k.remote_ip, k.nat_port, k._pad),
                (99, 20, 2000, [0; 3])
            );
            assert_eq!(k.remote_port, if proto == PROTO_ICMP { 0 } else { 53 });
            let inside = NatValue {
                inside_ip: 10,
                inside_port: 7,
                ..NatValue::default()
            };
            assert_eq!(k.connection(&inside), ct);
        }
    }
}
