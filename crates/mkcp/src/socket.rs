//! Creating the UDP sockets: large kernel buffers, non-blocking, registered with tokio;
//! for a sharded listener, several sockets on one address with `SO_REUSEPORT`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Kernel buffer size asked for (the kernel may cap it, e.g. at `net.core.rmem_max`).
/// A burst of a full sending window must not overflow the receive queue.
const SOCKET_BUFFER: usize = 4 << 20;

/// Attempts at finding a free port for a sharded listener bound to port 0 (another
/// socket may take the port between the probe and the shards' binds).
const PORT_ATTEMPTS: usize = 4;

/// Binds a UDP socket on `addr` for an endpoint.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(addr)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A non-blocking UDP socket of `addr`'s family with large buffers, not yet bound.
fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the defaults work too, only with more loss under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Binds `shards` UDP sockets on `addr` (one port, `SO_REUSEPORT`), among which the
/// kernel spreads the peers by a hash of their address. With `shards <= 1`, or where
/// that cannot be done (not Linux, or the option is refused), binds one socket as
/// [`bind`] does, with a warning in the second case.
///
/// An address another socket holds is refused as by [`bind`], even when that socket
/// has `SO_REUSEPORT` too (say a second `mkcp server` on the same port by mistake): a
/// plain socket is bound to the address first, as a probe, and only if that succeeds
/// are the shards bound. A port of 0 is resolved by the probe, so that the shards do
/// not join some other process's group on an ephemeral port.
pub(crate) fn bind_shards(addr: SocketAddr, shards: usize) -> io::Result<Vec<UdpSocket>> {
    if shards <= 1 {
        return Ok(vec![bind(addr)?]);
    }
    let mut attempt = 0;
    loop {
        let port = probe(addr)?;
        let at = SocketAddr::new(addr.ip(), port);
        match bind_reuse_port(at, shards) {
            Ok(sockets) => return Ok(sockets),
            // Someone took the probed ephemeral port meanwhile: probe another.
            Err(e)
                if addr.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && attempt + 1 < PORT_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(e) => {
                tracing::warn!(
                    %addr,
                    shards,
                    error = %e,
                    "cannot share the listening port between sockets (SO_REUSEPORT); \
                     listening on one socket, so one core"
                );
                return Ok(vec![bind(at)?]);
            }
        }
    }
}

/// Binds a plain socket to `addr`, closes it, and returns the port it got: fails with
/// [`io::ErrorKind::AddrInUse`] if any socket holds the address.
fn probe(addr: SocketAddr) -> io::Result<u16> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&addr.into())?;
    let port = socket
        .local_addr()?
        .as_socket()
        .map_or(addr.port(), |a| a.port());
    Ok(port)
}

/// `shards` sockets bound to `addr` with `SO_REUSEPORT` (Linux and Android, where the
/// kernel balances datagrams across the group by a hash of the 4-tuple).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_reuse_port(addr: SocketAddr, shards: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(shards);
    for _ in 0..shards {
        let socket = new_socket(addr)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        sockets.push(UdpSocket::from_std(socket.into())?);
    }
    Ok(sockets)
}

/// Elsewhere `SO_REUSEPORT` does not balance (BSDs and macOS give each datagram to one
/// socket of the group, not by peer): one socket.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_reuse_port(_addr: SocketAddr, _shards: usize) -> io::Result<Vec<UdpSocket>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT load balancing is Linux-only",
    ))
}

/// The wildcard address of `peer`'s family, port 0: where a dialer binds.
pub(crate) fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
