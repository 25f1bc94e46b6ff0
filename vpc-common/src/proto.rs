//! IP protocol numbers and ICMP message types the datapath and the agent both name.

/// IANA protocol numbers.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// ICMPv6 (next header 58).
pub const PROTO_ICMPV6: u8 = 58;

/// ICMP echo (the only ICMP messages connection tracking follows: the identifier is the port).
pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo (RFC 4443).
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;
