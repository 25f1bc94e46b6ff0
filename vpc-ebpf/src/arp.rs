//! ARP on instance ports: the router is the instance's only L2 peer (its ENI), so it answers
//! every ARP request for an address of the subnet itself, with the port's own MAC. The host
//! keeps an ordinary subnet mask and gateway `.1`, and everything it sends, to its own subnet
//! too, reaches the router and its checks.
//!
//! - The sender address must be the instance's (or 0.0.0.0: an address probe); anything else
//!   is an attempt to claim another address and is dropped (`spoofed`). So the kernel's
//!   neighbour table on a port only ever learns the instance's own binding, and no ARP from a
//!   host changes where the router sends another instance's traffic.
//! - A request for another address of the subnet is answered in place (the request becomes
//!   the reply and goes back out of the port).
//! - Everything else (replies to the router's own requests, probes, gratuitous ARP, requests
//!   for addresses outside the subnet) goes to the kernel, which answers only for itself.
//!
//! Shared segments and uplinks leave ARP to the kernel.

use network_types::eth::EthHdr;
use vpc_common::{
    DropReason,
    iface::{IfaceInfo, SubnetInfo},
};

use crate::packet::{ARP_OFF, ARP_REPLY, ARP_REQUEST, Arp, ArpHdr, PacketCtx, header_mut};

/// What to do with an ARP packet that arrived on an instance port.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ArpAction {
    /// Rewritten into the answer: send it back out of the port.
    Answered,
    /// The kernel's business.
    ToKernel,
}

/// Checks an ARP packet from instance port `iface` (of subnet `s`) and answers it in place
/// when it asks for another address of the subnet.
#[inline(always)]
pub fn on_port(
    ctx: &impl PacketCtx,
    iface: &IfaceInfo,
    s: &SubnetInfo,
    arp: &Arp,
) -> Result<ArpAction, DropReason> {
    if arp.sender_ip != iface.instance_ip && arp.sender_ip != 0 {
        return Err(DropReason::Spoofed);
    }
    let in_subnet = arp.target_ip & s.mask == s.cidr;
    if arp.op != ARP_REQUEST
        || arp.sender_ip == 0
        || !in_subnet
        || arp.target_ip == iface.instance_ip
    {
        return Ok(ArpAction::ToKernel);
    }
    // Two borrows of the packet that do not overlap.
    let eth: &mut EthHdr = header_mut(ctx, 0)?;
    let hdr: &mut ArpHdr = header_mut(ctx, ARP_OFF)?;
    eth.dst_addr = eth.src_addr;
    eth.src_addr = iface.mac;
    hdr.op = ARP_REPLY.to_be_bytes();
    hdr.tha = hdr.sha;
    hdr.tpa = hdr.spa;
    hdr.sha = iface.mac;
    hdr.spa = arp.target_ip.to_ne_bytes();
    Ok(ArpAction::Answered)
}
