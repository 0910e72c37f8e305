//! [`KcpListener`]: accepts mKCP sessions on a UDP port.

use std::io;
use std::net::SocketAddr;

use mkcp_proto::{Config, EndpointConfig, EndpointStats};
use tokio::net::ToSocketAddrs;

use crate::driver::now;
use crate::endpoint::KcpEndpoint;
use crate::stream::KcpStream;

/// An mKCP server socket: accepts sessions that peers (mkcp or V2Ray clients) start.
///
/// mKCP has no handshake: a session exists as soon as its first datagram arrives
/// (V2Ray's listener behaves the same, PROTOCOL.md §3.13). Unaccepted sessions wait in a
/// backlog of 1024; more are closed at once.
///
/// The listener owns its socket: closing or dropping it **ends every session it
/// accepted**, gracefully (queued data is still sent, then each peer is told; at most
/// [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT)). Keep the listener alive as long as its
/// streams are in use. [`KcpListener::close`] waits for that to finish, after which the
/// port can be bound again.
///
/// ```
/// use mkcp::{Config, KcpListener, KcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
/// let addr = listener.local_addr()?;
///
/// let mut client = KcpStream::connect(addr, Config::default()).await?;
/// client.write_all(b"ping").await?;
///
/// let (mut server, peer) = listener.accept().await?;
/// assert_eq!(peer.port(), client.local_addr()?.port());
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
///
/// listener.close().await; // the client reads end-of-stream
/// let mut rest = Vec::new();
/// client.read_to_end(&mut rest).await?;
/// assert!(rest.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KcpListener {
    endpoint: KcpEndpoint,
}

impl KcpListener {
    /// Binds a listener on `addr` with default session limits (16384 sessions, 1024 per
    /// source address). Fails with [`io::ErrorKind::InvalidInput`] if `config` is
    /// invalid, and as `UdpSocket::bind` does otherwise.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let config = mkcp::Config::from_kcp_settings_json(r#"{"seed": "s3cret", "header": {"type": "wechat-video"}}"#)
    ///     .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", config).await?;
    /// # drop(listener);
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<KcpListener> {
        KcpListener::bind_with(addr, EndpointConfig::server(config)).await
    }

    /// Binds a listener with explicit endpoint settings (session limits).
    /// `accept_incoming` is forced on.
    ///
    /// ```
    /// use mkcp::{Config, EndpointConfig, KcpListener};
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let mut settings = EndpointConfig::server(Config::default());
    /// settings.max_sessions_per_ip = 16;
    /// let listener = KcpListener::bind_with("127.0.0.1:0", settings).await?;
    /// # drop(listener);
    /// # Ok(()) }
    /// ```
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        mut config: EndpointConfig,
    ) -> io::Result<KcpListener> {
        config.accept_incoming = true;
        Ok(KcpListener {
            endpoint: KcpEndpoint::bind(addr, config).await?,
        })
    }

    /// Waits for the next session and returns its stream and the peer's address.
    /// Fails with [`io::ErrorKind::ConnectionAborted`] once the listener is closed.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("0.0.0.0:4000", mkcp::Config::default()).await?;
    /// loop {
    ///     let (stream, peer) = listener.accept().await?;
    ///     tokio::spawn(async move {
    ///         let (mut r, mut w) = tokio::io::split(stream);
    ///         let _ = tokio::io::copy(&mut r, &mut w).await;
    ///     });
    ///     println!("echoing for {peer}");
    /// }
    /// # }
    /// ```
    pub async fn accept(&self) -> io::Result<(KcpStream, SocketAddr)> {
        self.endpoint.accept().await
    }

    /// The local address of the UDP socket (useful after binding port 0).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The listener's endpoint: it can also dial out from the listening port
    /// ([`KcpEndpoint::connect`]). Closing the listener closes it too.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.endpoint().local_addr()?, listener.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn endpoint(&self) -> &KcpEndpoint {
        &self.endpoint
    }

    /// Endpoint-wide counters.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.stats().sessions_refused, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> EndpointStats {
        self.endpoint.stats()
    }

    /// The sources of datagrams that failed authentication or decoding since the last
    /// call, busiest first (see [`mkcp_proto::Endpoint::take_invalid_sources`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert!(listener.take_invalid_sources().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn take_invalid_sources(&self) -> Vec<(std::net::SocketAddr, u64)> {
        self.endpoint.take_invalid_sources()
    }

    /// Shares `limiter` (a process-wide rate limit) with every session of this
    /// listener, or removes the limit (`None`); see [`KcpEndpoint::set_rate_limiter`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// listener.set_rate_limiter(Some(mkcp::RateLimiter::new(1 << 20)));
    /// # Ok(()) }
    /// ```
    pub fn set_rate_limiter(&self, limiter: Option<crate::RateLimiter>) {
        self.endpoint.set_rate_limiter(limiter);
    }

    /// Sessions not yet terminated.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.live_sessions(), 0);
    /// # Ok(()) }
    /// ```
    pub fn live_sessions(&self) -> usize {
        self.endpoint.live_sessions()
    }

    /// Closes the listener and every session gracefully, and waits until every peer has
    /// been told (at most [`CLOSE_TIMEOUT`](crate::CLOSE_TIMEOUT)) and the socket is
    /// closed. Dropping the listener does the same in the background.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let addr = listener.local_addr()?;
    /// listener.close().await;
    /// let again = mkcp::KcpListener::bind(addr, mkcp::Config::default()).await?;
    /// # drop(again);
    /// # Ok(()) }
    /// ```
    pub async fn close(self) {
        self.endpoint.close().await;
    }

    /// Stops at once without telling any peer (they see a timeout), and closes the
    /// socket. Meant for tests and emergencies; prefer [`KcpListener::close`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// listener.abort();
    /// # Ok(()) }
    /// ```
    pub fn abort(self) {
        self.endpoint.abort();
    }
}

impl Drop for KcpListener {
    fn drop(&mut self) {
        self.endpoint.shared.lock().begin_close(now());
        self.endpoint.shared.wake_driver();
    }
}
