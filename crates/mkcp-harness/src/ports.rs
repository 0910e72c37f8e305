//! Free-port helpers on 127.0.0.1, and the retry on a fresh port.
//!
//! The port is found by binding port 0 and releasing it, so another process may in
//! principle grab it before the program it is meant for binds it; within this process a
//! port is never handed out twice (so concurrent tests do not collide with each other).
//! Callers that start a process on such a port retry with a fresh one on a conflict:
//! [`retry_on_port_conflict`].

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

fn pick(mut bind: impl FnMut() -> io::Result<u16>) -> io::Result<u16> {
    // Keep the probe sockets of rejected ports alive so the kernel offers new ones.
    for _ in 0..64 {
        let port = bind()?;
        let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no fresh port found after 64 attempts",
    ))
}

/// A currently unused UDP port on 127.0.0.1 (not handed out before by this process).
pub fn free_udp_port() -> io::Result<u16> {
    pick(|| Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()))
}

/// A currently unused TCP port on 127.0.0.1 (not handed out before by this process).
pub fn free_tcp_port() -> io::Result<u16> {
    pick(|| Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()))
}

/// Runs `attempt` (which should pick fresh ports each time) up to `attempts` times (at
/// least once), trying again only while it fails with an error `is_conflict` accepts,
/// such as a port another process took in the meantime. Returns the first success or the
/// last error.
///
/// ```
/// use mkcp_harness::ports::retry_on_port_conflict;
/// let mut tries = 0;
/// let r: Result<u32, &str> = retry_on_port_conflict(
///     3,
///     || {
///         tries += 1;
///         if tries < 2 { Err("in use") } else { Ok(tries) }
///     },
///     |e| *e == "in use",
/// );
/// assert_eq!(r, Ok(2));
/// ```
pub fn retry_on_port_conflict<T, E>(
    attempts: usize,
    mut attempt: impl FnMut() -> Result<T, E>,
    is_conflict: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut left = attempts.max(1);
    loop {
        left -= 1;
        match attempt() {
            Err(e) if left > 0 && is_conflict(&e) => continue,
            other => return other,
        }
    }
}

/// `127.0.0.1:port`.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let u = free_udp_port().unwrap();
            let t = free_tcp_port().unwrap();
            assert!(seen.insert(('u', u)) && seen.insert(('t', t)));
            UdpSocket::bind(localhost(u)).unwrap();
            TcpListener::bind(localhost(t)).unwrap();
        }
    }
}
