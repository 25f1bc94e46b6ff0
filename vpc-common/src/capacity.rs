//! Map capacities. Policy maps hold two generations (double-buffered switch-over), so each
//! map has room for twice the per-generation limit; the agent rejects a definition that does
//! not fit one generation before anything is applied.

/// Interfaces (subnet ports + uplinks) per generation.
pub const IFACES: u32 = 256;
/// Subnets per generation.
pub const SUBNETS: u32 = 1024;
/// VPCs per generation.
pub const VPCS: u32 = 64;
/// Registered addresses (instances and NAT gateways) per generation.
pub const ENDPOINTS: u32 = 32768;
/// Public and elastic IPs per generation.
pub const PUBLIC_IPS: u32 = 8192;
/// NAT gateways per generation.
pub const NAT_GATEWAYS: u32 = 256;
/// LPM entries (routes, including the implicit local entries copied into every table) per
/// generation.
pub const ROUTES: u32 = 131072;
/// Network ACLs per generation (see [`crate::acl::MAX_ACLS`]); rules per direction:
/// [`crate::acl::MAX_ACL_RULES`].
pub const ACLS: u32 = crate::acl::MAX_ACLS;

/// Entries of a double-buffered map holding `per_generation` entries per generation.
pub const fn two_generations(per_generation: u32) -> u32 {
    per_generation * 2
}

/// Remote-address classes for security groups per generation.
pub const SG_REMOTES: u32 = 65536;
/// Compiled security group rule prefixes per generation.
pub const SG_RULES: u32 = 262_144;
