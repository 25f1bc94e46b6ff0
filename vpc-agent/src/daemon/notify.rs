//! systemd readiness notification (sd_notify(3), the protocol itself, no libsystemd): one
//! datagram of newline-separated `KEY=VALUE` assignments to the `AF_UNIX` socket
//! `$NOTIFY_SOCKET` names (a path, or `@name` for an abstract socket). Without the variable
//! (not started by systemd with `Type=notify`) nothing is sent.
//!
//! The daemon sends `READY=1` once the programs are attached and the maps reconciled,
//! `RELOADING=1` (with `MONOTONIC_USEC=`) when a reload starts and `READY=1` when it ended,
//! `STATUS=` with the running generation, and `STOPPING=1` on SIGTERM.

use std::{
    io,
    os::unix::net::{SocketAddr, UnixDatagram},
};

/// The address `$NOTIFY_SOCKET` names (`@` for the abstract namespace).
pub fn socket_addr(value: &str) -> io::Result<SocketAddr> {
    match value.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None if value.starts_with('/') => SocketAddr::from_pathname(value),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET={value:?} is neither a path nor @abstract"),
        )),
    }
}

/// Sends `state` to the service manager; `Ok(false)` when there is none ($NOTIFY_SOCKET unset).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let addr = socket_addr(&value.to_string_lossy())?;
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// [`notify`], logging a failure (readiness is best effort: the datapath runs regardless).
pub fn send(state: &str) {
    if let Err(e) = notify(state) {
        log::warn!("cannot notify the service manager: {e} state={state:?}");
    }
}

/// `RELOADING=1` with the `MONOTONIC_USEC=` systemd 253+ asks for.
pub fn reloading() -> String {
    format!(
        "RELOADING=1\nMONOTONIC_USEC={}",
        crate::flowlog::monotonic_ns() / 1_000
    )
}

/// `READY=1` and the status line for `systemctl status`.
pub fn ready(status: &str) -> String {
    format!("READY=1\nSTATUS={status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("vpc-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let addr = socket_addr(path.to_str().expect("utf-8")).expect("addr");
        let sender = UnixDatagram::unbound().expect("socket");
        let state = ready("running generation=3");
        sender.send_to_addr(state.as_bytes(), &addr).expect("send");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=running generation=3");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_and_bad_addresses() {
        let addr = socket_addr("@vpc-agent-test").expect("abstract");
        use std::os::linux::net::SocketAddrExt as _;
        assert_eq!(addr.as_abstract_name(), Some(&b"vpc-agent-test"[..]));
        assert!(socket_addr("relative/path").is_err());
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let text = reloading();
        let usec: u64 = text
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|v| v.parse().ok())
            .expect(&text);
        assert!(usec > 0);
    }
}
