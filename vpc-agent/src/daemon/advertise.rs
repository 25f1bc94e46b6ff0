//! Unsolicited router advertisements (RFC 4861 6.2.4) on IPv6 instance ports.
//!
//! The datapath answers a host's router solicitation, but a host solicits only when its link
//! comes up, and forgets its default router when the advertised router lifetime
//! (`vpc_common::ndp::ROUTER_LIFETIME`) runs out. So the agent advertises on every IPv6 port
//! itself: once each time it applies a definition (a host that came up before the agent
//! learns its router and prefix at once) and then every `--router-advertisement-interval`
//! (200 s by default, well inside the 1800 s router lifetime). The frame is the one the datapath answers
//! with (`vpc_common::ndp::router_advertisement`), to all nodes (`ff02::1`).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use vpc_common::{
    iface::router_link_local,
    ndp::{ALL_NODES, ALL_NODES_MAC, RA_LEN, router_advertisement},
};

/// The interval between unsolicited advertisements unless `--router-advertisement-interval`
/// says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(200);

#[derive(Debug, thiserror::Error)]
pub enum AdvertiseError {
    #[error("cannot open a packet socket")]
    Socket(#[source] io::Error),
    #[error("cannot send a router advertisement on {interface}")]
    Send {
        interface: String,
        #[source]
        source: io::Error,
    },
}

/// The unsolicited router advertisement of the port with `mac` in the subnet with /64
/// `prefix`: from the router's link-local address to all nodes.
pub fn frame(mac: &[u8; 6], prefix: &[u8; 8]) -> [u8; RA_LEN] {
    let mut f = [0u8; RA_LEN];
    let src = router_link_local(mac);
    router_advertisement(&mut f, &ALL_NODES_MAC, mac, &src, &ALL_NODES, prefix);
    f
}

/// A send-only packet socket (protocol 0: it receives nothing).
pub struct Advertiser {
    fd: OwnedFd,
}

impl Advertiser {
    pub fn new() -> Result<Self, AdvertiseError> {
        // SAFETY: a plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(AdvertiseError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a socket just opened and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Sends `frame` (a whole Ethernet frame) out of interface `ifindex` (`interface`).
    pub fn send(&self, interface: &str, ifindex: u32, frame: &[u8]) -> Result<(), AdvertiseError> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = 0x86ddu16.to_be();
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `addr` are valid for the lengths given for the call's duration.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                // Never blocks the event loop: a full queue loses this one, the next follows.
                libc::MSG_DONTWAIT,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(AdvertiseError::Send {
                interface: interface.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unsolicited_advertisement_goes_to_all_nodes_from_the_router_link_local() {
        let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let prefix = [0x20, 0x01, 0x0d, 0xb8, 0x12, 0x00, 0x00, 0x01];
        let f = frame(&mac, &prefix);
        assert_eq!(&f[0..6], &ALL_NODES_MAC);
        assert_eq!(&f[6..12], &mac);
        let src: std::net::Ipv6Addr = <[u8; 16]>::try_from(&f[22..38]).unwrap().into();
        assert_eq!(
            src,
            "fe80::11:22ff:fe33:4455"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(&f[38..54], &ALL_NODES);
        assert_eq!(&f[54 + 40..54 + 48], &prefix);
    }
}
