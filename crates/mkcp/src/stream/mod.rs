//! [`KcpStream`]: one reliable mKCP byte stream, `AsyncRead + AsyncWrite`.

mod split;

pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mkcp_proto::{Config, ConnId, ConnectionStats, EndpointConfig, State};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{lookup_host, ToSocketAddrs};

use crate::driver::{now, Inner, Shared};
use crate::endpoint::KcpEndpoint;
use crate::error::{io_err, Error};
use crate::socket;

/// A read-only view of one stream's counters ([`KcpStream::stats_probe`]).
#[derive(Clone, Debug)]
pub struct StatsProbe {
    shared: Arc<Shared>,
    id: ConnId,
}

impl StatsProbe {
    /// The connection's counters, or `None` once it has been released and is gone.
    pub fn stats(&self) -> Option<ConnectionStats> {
        self.shared.lock().endpoint.connection_stats(self.id)
    }
}

/// The part of a stream shared by its halves; dropping the last one releases the
/// connection (a graceful close in the background).
#[derive(Debug)]
struct StreamInner {
    shared: Arc<Shared>,
    id: ConnId,
    peer: SocketAddr,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.conns.remove(&self.id);
        inner.endpoint.release(self.id, now());
        inner.handles = inner.handles.saturating_sub(1);
        drop(inner);
        self.shared.wake_driver();
    }
}

impl StreamInner {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut inner = self.shared.lock();
        let dst = buf.initialize_unfilled();
        match inner.endpoint.read(self.id, now(), dst) {
            Ok(Some(n)) => {
                drop(inner);
                if n > 0 {
                    buf.advance(n);
                    // Reading may reopen the receive window: the peer must hear of it.
                    self.shared.wake_driver();
                }
                Poll::Ready(Ok(()))
            }
            Ok(None) if inner.done => Poll::Ready(Err(io_err(Error::EndpointClosed))),
            Ok(None) => {
                if let Some(w) = inner.conns.get_mut(&self.id) {
                    w.read = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = self.shared.lock();
        if inner.done {
            return Poll::Ready(Err(io_err(Error::EndpointClosed)));
        }
        match inner.endpoint.write(self.id, now(), data) {
            Ok(0) => {
                // The send buffer is full; the core reports Writable once acks free room.
                if let Some(w) = inner.conns.get_mut(&self.id) {
                    w.write = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Ok(n) => {
                drop(inner);
                self.shared.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(io_err(e))),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let r = self.shared.lock().endpoint.shutdown_write(self.id, now());
        self.shared.wake_driver();
        r.map_err(io_err)
    }

    fn stats(&self) -> ConnectionStats {
        self.shared
            .lock()
            .endpoint
            .connection_stats(self.id)
            .unwrap_or_default()
    }
}

/// A reliable, ordered byte stream over mKCP, compatible with V2Ray 4.34 peers.
///
/// Obtained from [`KcpStream::connect`], [`KcpEndpoint::connect`] or
/// [`crate::KcpListener::accept`]. It implements tokio's [`AsyncRead`] and
/// [`AsyncWrite`]:
///
/// * a write takes what fits in the send buffer; when it is full the writer waits
///   until the peer acknowledges data (backpressure, memory stays bounded);
/// * a reader that does not read lets the receive window close, so the peer stops
///   sending (memory stays bounded on this side too);
/// * [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) is a
///   **half-close**: the peer reads end-of-stream after the data already written, and
///   this side can still read. (A V2Ray peer has no half-close and ignores it; see
///   [`KcpStream::close`].)
/// * dropping the stream closes it gracefully in the background: queued data is still
///   delivered, then the peer is told (V2Ray's Close and Terminate).
///
/// Reads fail with [`io::ErrorKind::TimedOut`] when the peer has been silent for the
/// idle timeout (30 s by default); writes fail with [`io::ErrorKind::BrokenPipe`] once
/// the peer closed.
///
/// ```
/// use mkcp::{Config, KcpListener, KcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
/// let addr = listener.local_addr()?;
/// let server = tokio::spawn(async move {
///     let (mut s, _) = listener.accept().await?;
///     let mut request = Vec::new();
///     s.read_to_end(&mut request).await?; // until the client's half-close
///     s.write_all(&request.to_ascii_uppercase()).await?;
///     s.shutdown().await?;
///     std::io::Result::Ok(listener)
/// });
///
/// let mut stream = KcpStream::connect(addr, Config::default()).await?;
/// stream.write_all(b"hello").await?;
/// stream.shutdown().await?; // half-close: we can still read
/// let mut reply = Vec::new();
/// stream.read_to_end(&mut reply).await?;
/// assert_eq!(reply, b"HELLO");
/// # let _listener = server.await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KcpStream {
    inner: Arc<StreamInner>,
}

impl KcpStream {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        inner: &mut Inner,
        id: ConnId,
        peer: SocketAddr,
    ) -> KcpStream {
        inner.handles += 1;
        KcpStream {
            inner: Arc::new(StreamInner {
                shared: shared.clone(),
                id,
                peer,
            }),
        }
    }

    /// Opens a stream to the mKCP server at `addr` from a new UDP socket of its own
    /// (bound to an ephemeral port of the wildcard address), as V2Ray's dialer does. To open many streams over
    /// one socket, use [`KcpEndpoint::client`] and [`KcpEndpoint::connect`].
    ///
    /// mKCP has no handshake, so this does not wait for the server: an absent server
    /// shows as a [`io::ErrorKind::TimedOut`] error after the idle timeout.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let stream = mkcp::KcpStream::connect(listener.local_addr()?, mkcp::Config::default()).await?;
    /// let (accepted, _) = listener.accept().await?; // the client announces itself at once
    /// // The dialer's socket is bound to the wildcard address, as V2Ray's is.
    /// assert_eq!(accepted.peer_addr()?.port(), stream.local_addr()?.port());
    /// # Ok(()) }
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs, config: Config) -> io::Result<KcpStream> {
        KcpStream::connect_with(addr, config, None).await
    }

    /// [`KcpStream::connect`], with the stream's socket sending under `limiter` (a rate
    /// limit shared with other sockets, e.g. all streams of a process) if given.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let total = mkcp::RateLimiter::new(4 << 20);
    /// let a = mkcp::KcpStream::connect_with("127.0.0.1:9", mkcp::Config::default(), Some(total.clone())).await?;
    /// let b = mkcp::KcpStream::connect_with("127.0.0.1:9", mkcp::Config::default(), Some(total)).await?;
    /// # drop((a, b)); Ok(()) }
    /// ```
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        config: Config,
        limiter: Option<crate::RateLimiter>,
    ) -> io::Result<KcpStream> {
        let mut last = None;
        for peer in lookup_host(addr).await? {
            let endpoint = match KcpEndpoint::bind(
                socket::unspecified_for(peer),
                EndpointConfig::client(config.clone()),
            )
            .await
            {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            if limiter.is_some() {
                endpoint.set_rate_limiter(limiter);
            }
            // The stream keeps the socket task alive after the endpoint handle is gone.
            return endpoint.connect(peer).await;
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        }))
    }

    /// The peer's address.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// assert_eq!(s.peer_addr()?, "127.0.0.1:9".parse().unwrap());
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }

    /// The local address of the UDP socket carrying this stream.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// assert_ne!(s.local_addr()?.port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.shared.local_addr)
    }

    /// A read-only view of this stream's counters that stays usable when the stream
    /// itself is moved away (e.g. into a task that pumps it); it reports `None` once the
    /// connection is gone.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let probe = s.stats_probe();
    /// let pump = tokio::spawn(async move { drop(s) });
    /// let _ = probe.stats().map(|st| st.datagrams_received);
    /// pump.await.unwrap();
    /// # Ok(()) }
    /// ```
    pub fn stats_probe(&self) -> StatsProbe {
        StatsProbe {
            shared: self.inner.shared.clone(),
            id: self.inner.id,
        }
    }

    /// Counters and estimates of this connection: smoothed RTT, RTO, bytes written,
    /// acknowledged and read, datagrams, retransmissions...
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let stats = s.stats();
    /// assert_eq!(stats.bytes_written, 0);
    /// println!("srtt {} ms, rto {} ms", stats.srtt_ms, stats.rto_ms);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats()
    }

    /// The connection's state (PROTOCOL.md §3.8): `Active` while open, then the closing states.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// assert_eq!(s.state(), mkcp::State::Active);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> State {
        let inner = self.inner.shared.lock();
        inner
            .endpoint
            .connection(self.inner.id)
            .map_or(State::Terminated, |c| c.state())
    }

    /// Closes the stream the V2Ray way and waits until it is done: everything written
    /// is delivered and acknowledged, then the peer is told (Close, Terminate) and
    /// nothing more is read.
    ///
    /// Returns `Ok(())` only if the peer acknowledged every byte written. Fails with
    /// [`io::ErrorKind::ConnectionReset`] if some data was not delivered (the peer closed
    /// first, or stopped acknowledging for 15 s), with [`io::ErrorKind::TimedOut`] if
    /// the peer had gone silent.
    ///
    /// Against a V2Ray peer this is how a conversation should end: V2Ray has no
    /// half-close, and a V2Ray side that sees the Close discards the data it has not
    /// sent yet, so read everything you expect first.
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let mut s = mkcp::KcpStream::connect(listener.local_addr()?, mkcp::Config::default()).await?;
    /// s.write_all(b"bye").await?;
    /// let (_accepted, _) = listener.accept().await?;
    /// s.close().await?; // "bye" was acknowledged
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> io::Result<()> {
        let (shared, id) = (&self.inner.shared, self.inner.id);
        // An unknown id means the connection is already gone: checked below.
        let _ = shared.lock().endpoint.close(id, now());
        shared.wake_driver();
        poll_fn(|cx| {
            let mut inner = shared.lock();
            let Some(conn) = inner.endpoint.connection(id) else {
                return Poll::Ready(Ok(()));
            };
            let state = conn.state();
            let closed = matches!(state, State::Terminating | State::Terminated);
            if !closed && !inner.done {
                if let Some(w) = inner.conns.get_mut(&id) {
                    w.write = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if let Some(e) = conn.error() {
                return Poll::Ready(Err(io_err(e.clone())));
            }
            let stats = conn.stats();
            if stats.bytes_acked < stats.bytes_written {
                return Poll::Ready(Err(io_err(Error::Undelivered {
                    unacked: stats.bytes_written - stats.bytes_acked,
                })));
            }
            if !closed {
                return Poll::Ready(Err(io_err(Error::EndpointClosed)));
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

impl AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

impl AsyncWrite for KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    /// Written data is already queued in the connection; nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-close: see [`KcpStream`]. Returns as soon as the end of stream is queued.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_write())
    }
}
