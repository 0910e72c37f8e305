//! Creating the UDP socket: large kernel buffers, non-blocking, registered with tokio.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Kernel buffer size asked for (the kernel may cap it, e.g. at `net.core.rmem_max`).
/// A burst of a full sending window must not overflow the receive queue.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a UDP socket on `addr` for an endpoint.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the defaults work too, only with more loss under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The wildcard address of `peer`'s family, port 0: where a dialer binds.
pub(crate) fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
