//! The router's interfaces as this network namespace has them: ifindex, MAC, addresses and
//! whether the device is virtual. Everything is asked of the kernel through sockets of the
//! calling thread's namespace (netlink for the addresses, ioctls for the driver), never
//! through `/sys` (which shows the namespace it was mounted in).

use std::{ffi::CString, net::Ipv4Addr};

use crate::compile::{Link, Links};

/// Drivers whose devices receive frames straight from a local stack, with partial checksums
/// and GSO aggregates that native XDP cannot see and XDP_REDIRECT would lose.
const VIRTUAL_DRIVERS: [&str; 2] = ["veth", "tun"];

/// The interface index of `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The interfaces of the calling thread's network namespace.
pub struct SystemLinks;

impl Links for SystemLinks {
    fn link(&self, name: &str) -> Option<Link> {
        let ifindex = ifindex(name)?;
        let mac = mac(name).unwrap_or_default();
        let virtual_device = driver(name).is_some_and(|d| VIRTUAL_DRIVERS.contains(&d.as_str()));
        Some(Link {
            ifindex,
            mac,
            virtual_device,
        })
    }

    fn addresses(&self, name: &str) -> Vec<Ipv4Addr> {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        addrs
            .filter(|a| a.interface_name == name)
            .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
            .collect()
    }
}

/// The interface's link-layer address.
pub fn mac(name: &str) -> Option<[u8; 6]> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address?.as_link_addr()?.addr())
}

/// The device's driver name (`ETHTOOL_GDRVINFO`), e.g. `veth`, `tun`, `virtio_net`.
pub fn driver(name: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    let c_name = CString::new(name).ok()?;
    if c_name.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: all-zero is a valid DrvInfo (integers and byte arrays).
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(c_name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut info).cast();
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `req` names the interface and points at `info`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL, &raw mut req) };
    // SAFETY: `fd` is the socket opened above.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    let len = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Some(String::from_utf8_lossy(&info.driver[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_without_being_virtual() {
        let lo = SystemLinks.link("lo").expect("lo exists");
        assert_eq!(lo.ifindex, 1);
        assert!(!lo.virtual_device);
        assert!(SystemLinks.addresses("lo").contains(&Ipv4Addr::LOCALHOST));
        assert!(SystemLinks.link("no-such-if0").is_none());
    }
}
