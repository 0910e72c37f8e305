//! [`KcpEndpoint`]: one UDP socket carrying many mKCP sessions, dialed and/or accepted.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use mkcp_proto::{Config, Endpoint, EndpointConfig, EndpointStats};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::{lookup_host, ToSocketAddrs};

use crate::driver::{self, now, Shared, Wakers};
use crate::error::{io_err, Error};
use crate::socket;
use crate::stream::KcpStream;

/// A UDP socket carrying many mKCP sessions, driven by one background task.
///
/// A client endpoint ([`KcpEndpoint::client`]) opens any number of streams to any
/// servers over one local port; an endpoint made with [`KcpEndpoint::bind`] and
/// [`EndpointConfig::server`] also accepts sessions started by peers (that is what
/// [`crate::KcpListener`] wraps).
///
/// Handles are cheap to clone. Streams keep the socket alive: dropping every endpoint
/// handle does not end the streams already opened; the socket task stops once no
/// handle and no stream is left and every session has finished closing. Use
/// [`KcpEndpoint::close`] to end every session at once.
///
/// ```
/// use mkcp::{Config, KcpEndpoint, KcpListener};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
/// let server = listener.local_addr()?;
/// tokio::spawn(async move {
///     while let Ok((mut s, _)) = listener.accept().await {
///         tokio::spawn(async move {
///             let mut buf = [0; 16];
///             let n = s.read(&mut buf).await?;
///             s.write_all(&buf[..n]).await?;
///             s.shutdown().await
///         });
///     }
/// });
///
/// // Two streams over one local UDP port.
/// let endpoint = KcpEndpoint::client("127.0.0.1:0", Config::default()).await?;
/// let mut a = endpoint.connect(server).await?;
/// let mut b = endpoint.connect(server).await?;
/// assert_eq!(a.local_addr()?, b.local_addr()?);
/// a.write_all(b"one").await?;
/// b.write_all(b"two").await?;
/// let (mut ra, mut rb) = (Vec::new(), Vec::new());
/// a.read_to_end(&mut ra).await?;
/// b.read_to_end(&mut rb).await?;
/// assert_eq!((&ra[..], &rb[..]), (&b"one"[..], &b"two"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KcpEndpoint {
    pub(crate) shared: Arc<Shared>,
    acceptor: bool,
}

impl KcpEndpoint {
    /// Binds a client endpoint on `bind` (use port 0 for an ephemeral port). It only
    /// dials: datagrams of unknown sessions are dropped.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_ne!(endpoint.local_addr()?.port(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn client(bind: impl ToSocketAddrs, config: Config) -> io::Result<KcpEndpoint> {
        KcpEndpoint::bind(bind, EndpointConfig::client(config)).await
    }

    /// Binds an endpoint with explicit settings (session limits, whether it accepts
    /// incoming sessions). Fails with [`io::ErrorKind::InvalidInput`] if the mKCP
    /// settings are invalid.
    ///
    /// ```
    /// use mkcp::{Config, EndpointConfig, KcpEndpoint};
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let mut settings = EndpointConfig::server(Config::default());
    /// settings.max_sessions = 100;
    /// let endpoint = KcpEndpoint::bind("127.0.0.1:0", settings).await?;
    /// // This endpoint both accepts (endpoint.accept()) and dials (endpoint.connect()).
    /// # drop(endpoint);
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: EndpointConfig) -> io::Result<KcpEndpoint> {
        config.kcp.validate().map_err(io_err)?;
        let mut last = None;
        for addr in lookup_host(addr).await? {
            match socket::bind(addr) {
                Ok(sock) => return KcpEndpoint::from_socket(sock, config),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")
        }))
    }

    /// An endpoint on a bound socket, its driver task started.
    pub(crate) fn from_socket(
        sock: tokio::net::UdpSocket,
        config: EndpointConfig,
    ) -> io::Result<Self> {
        let acceptor = config.accept_incoming;
        let endpoint = Endpoint::new(config, StdRng::from_entropy());
        let shared = driver::start(sock, endpoint, acceptor)?;
        Ok(KcpEndpoint { shared, acceptor })
    }

    /// Opens a new stream to the mKCP server at `addr`.
    ///
    /// mKCP has no handshake: this returns at once, and the server learns of the
    /// session from the first datagram (a Ping sent right away, then data). A server
    /// that is not there shows as a [`io::ErrorKind::TimedOut`] error on the stream
    /// after the idle timeout.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("0.0.0.0:0", mkcp::Config::default()).await?;
    /// let stream = endpoint.connect("192.0.2.1:4000").await?;
    /// # drop(stream); Ok(()) }
    /// ```
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<KcpStream> {
        let local = self.shared.local_addr;
        let peer = lookup_host(addr)
            .await?
            .find_map(|a| match (a, local) {
                (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
                    Some(a)
                }
                // An IPv6 socket reaches IPv4 peers through mapped addresses.
                (SocketAddr::V4(v4), SocketAddr::V6(_)) => {
                    Some(SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()))
                }
                (SocketAddr::V6(_), SocketAddr::V4(_)) => None,
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no address the local IPv4 socket {local} can reach"),
                )
            })?;
        let stream = {
            let mut inner = self.shared.lock();
            if inner.is_closing() {
                return Err(io_err(Error::EndpointClosed));
            }
            let id = inner.endpoint.connect(now(), peer).map_err(io_err)?;
            inner.conns.insert(id, Wakers::default());
            KcpStream::new(&self.shared, &mut inner, id, peer)
        };
        self.shared.wake_driver();
        Ok(stream)
    }

    /// Waits for a session started by a peer. Only endpoints made with
    /// [`EndpointConfig::server`] accept; others fail with
    /// [`io::ErrorKind::Unsupported`]. Fails with [`io::ErrorKind::ConnectionAborted`]
    /// once the endpoint is closed.
    ///
    /// ```no_run
    /// use mkcp::{Config, EndpointConfig, KcpEndpoint};
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = KcpEndpoint::bind("0.0.0.0:4000", EndpointConfig::server(Config::default())).await?;
    /// let (stream, peer) = endpoint.accept().await?;
    /// println!("session from {peer}");
    /// # drop(stream); Ok(()) }
    /// ```
    pub async fn accept(&self) -> io::Result<(KcpStream, SocketAddr)> {
        if !self.acceptor {
            return Err(io_err(Error::NotListening));
        }
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Takes a session waiting to be accepted, or registers `cx`'s waker for the next
    /// one (acceptor endpoints only; the caller checks).
    pub(crate) fn poll_accept(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<(KcpStream, SocketAddr)>> {
        let mut inner = self.shared.lock();
        if let Some(id) = inner.poll_accept(cx.waker()) {
            let peer = inner
                .endpoint
                .peer(id)
                .unwrap_or_else(|| socket::unspecified_for(self.shared.local_addr));
            let stream = KcpStream::new(&self.shared, &mut inner, id, peer);
            return Poll::Ready(Ok((stream, peer)));
        }
        if inner.is_closing() {
            return Poll::Ready(Err(io_err(Error::EndpointClosed)));
        }
        Poll::Pending
    }

    /// The local address of the UDP socket.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert!(endpoint.local_addr()?.ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.local_addr)
    }

    /// Endpoint-wide counters (datagrams, bytes, sessions created and refused).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(endpoint.stats().sessions_created, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> EndpointStats {
        self.shared.lock().endpoint.stats().clone()
    }

    /// The sources of datagrams that failed authentication or decoding since the last
    /// call, busiest first (see [`mkcp_proto::Endpoint::take_invalid_sources`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert!(endpoint.take_invalid_sources().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn take_invalid_sources(&self) -> Vec<(std::net::SocketAddr, u64)> {
        self.shared.lock().endpoint.take_invalid_sources()
    }

    /// Shares `limiter` (a process-wide rate limit) with every session of this socket,
    /// or removes the limit (`None`). Takes effect at the socket task's next round.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// endpoint.set_rate_limiter(Some(mkcp::RateLimiter::new(1 << 20)));
    /// # Ok(()) }
    /// ```
    pub fn set_rate_limiter(&self, limiter: Option<crate::RateLimiter>) {
        self.shared.lock().limiter = limiter;
        self.shared.wake_driver();
    }

    /// Sessions not yet terminated (including ones closing in the background).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let _stream = endpoint.connect("127.0.0.1:9").await?;
    /// assert_eq!(endpoint.live_sessions(), 1);
    /// # Ok(()) }
    /// ```
    pub fn live_sessions(&self) -> usize {
        self.shared.lock().endpoint.live_sessions()
    }

    /// Closes every session gracefully (queued data is still sent, then each peer is
    /// told with V2Ray's Close and Terminate), and waits until every peer has been told
    /// or [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT) has passed; then the socket is closed.
    /// Streams still held read end-of-stream (or an error) afterwards.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let addr = endpoint.local_addr()?;
    /// endpoint.close().await;
    /// // The port is free again.
    /// let again = mkcp::KcpEndpoint::client(addr, mkcp::Config::default()).await?;
    /// # drop(again); Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.begin_close();
        self.shared.wait_done().await;
    }

    /// Starts closing every session (what [`KcpEndpoint::close`] does before it waits).
    pub(crate) fn begin_close(&self) {
        self.shared.lock().begin_close(now());
        self.shared.wake_driver();
    }

    /// Stops the socket task at once without telling any peer (they time out) and
    /// closes the socket. Streams fail with [`io::ErrorKind::ConnectionAborted`] or
    /// [`io::ErrorKind::TimedOut`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let endpoint = mkcp::KcpEndpoint::client("127.0.0.1:0", mkcp::Config::default()).await?;
    /// endpoint.abort();
    /// assert!(endpoint.connect("127.0.0.1:9").await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn abort(&self) {
        self.shared.abort();
    }
}

impl Clone for KcpEndpoint {
    fn clone(&self) -> KcpEndpoint {
        self.shared.add_handle(self.acceptor);
        KcpEndpoint {
            shared: self.shared.clone(),
            acceptor: self.acceptor,
        }
    }
}

impl Drop for KcpEndpoint {
    fn drop(&mut self) {
        self.shared.drop_handle(self.acceptor);
    }
}
