//! NAT gateway translations. The connection's state lives in `CONNTRACK` (keyed by the inside
//! tuple, with `nat_ip`/`nat_port` set); `NAT_PORTS` is its reverse index, keyed by what the
//! internet sees, so that a reply finds the inside endpoint and a new connection finds a free
//! port. Ports are unique per (elastic IP, remote IP, remote port, protocol): up to one range
//! of ports (by default 1024-65535) per destination.
//!
//! For ICMP echo the "port" is the identifier and `remote_port` is 0.

use crate::{assert_size, pod};

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
