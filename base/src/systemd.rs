//! The systemd service protocol (`Type=notify`, `WatchdogSec=`), without a library: a
//! datagram to `$NOTIFY_SOCKET`. Outside systemd every call does nothing.

use std::time::Duration;

/// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STOPPING=1`) to the service manager; false
/// when there is none or it cannot be reached.
pub fn notify(state: &str) -> bool {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => send(&path.to_string_lossy(), state).is_ok(),
        None => false,
    }
}

#[cfg(target_os = "linux")]
fn send(path: &str, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sock = UnixDatagram::unbound()?;
    // "@name" is a socket in the abstract namespace.
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(path)?,
    };
    sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send(_path: &str, _state: &str) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// How often to send `WATCHDOG=1`: half the `WatchdogSec=` systemd set for this process
/// (`$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset or this process); `None` without one.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_and_nothing_happens_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        assert!(send(path.to_str().unwrap(), "READY=1").is_ok());
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        // A socket that is gone is an error, not a panic.
        drop(rx);
        assert!(send(path.to_str().unwrap(), "WATCHDOG=1").is_err());
    }
}
