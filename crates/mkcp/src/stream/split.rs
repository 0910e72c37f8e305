//! The owned halves of a [`KcpStream`] ([`KcpStream::into_split`]) and putting them
//! back together.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mkcp_proto::ConnectionStats;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{KcpStream, StreamInner};

impl KcpStream {
    /// Splits the stream into a read half and a write half that can be moved to
    /// different tasks. (`tokio::io::split` works too, with a lock around both.)
    /// Dropping the write half shuts the write side down (half-close); the connection
    /// is released when both halves are gone.
    ///
    /// ```
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// # let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// # let addr = listener.local_addr()?;
    /// # tokio::spawn(async move {
    /// #     let (s, _) = listener.accept().await?;
    /// #     let (mut r, mut w) = tokio::io::split(s);
    /// #     tokio::io::copy(&mut r, &mut w).await?;
    /// #     w.shutdown().await?;
    /// #     std::io::Result::Ok(listener)
    /// # });
    /// let stream = mkcp::KcpStream::connect(addr, mkcp::Config::default()).await?;
    /// let (mut rd, mut wr) = stream.into_split();
    /// let writer = tokio::spawn(async move {
    ///     wr.write_all(&[7u8; 100_000]).await?;
    ///     wr.shutdown().await
    /// });
    /// let mut echoed = Vec::new();
    /// rd.read_to_end(&mut echoed).await?;
    /// writer.await.unwrap()?;
    /// assert_eq!(echoed.len(), 100_000);
    /// # Ok(()) }
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                inner: self.inner.clone(),
            },
            OwnedWriteHalf {
                inner: self.inner,
                shutdown_on_drop: true,
            },
        )
    }
}

/// The read half of a [`KcpStream`], from [`KcpStream::into_split`].
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
/// let (rd, _wr) = s.into_split();
/// assert_eq!(rd.peer_addr()?, "127.0.0.1:9".parse().unwrap());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<StreamInner>,
}

impl OwnedReadHalf {
    /// The peer's address.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// # let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let (rd, _wr) = s.into_split();
    /// println!("reading from {}", rd.peer_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }

    /// Connection statistics; see [`KcpStream::stats`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// # let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let (rd, _wr) = s.into_split();
    /// assert_eq!(rd.stats().bytes_read, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats()
    }
}

impl OwnedReadHalf {
    /// Puts the two halves of one stream back together (for [`KcpStream::close`], for
    /// instance). Fails, giving both back, if they come from different streams.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let (rd, wr) = s.into_split();
    /// let s = rd.reunite(wr).expect("halves of one stream");
    /// assert_eq!(s.state(), mkcp::State::Active); // not shut down by the reunion
    /// # Ok(()) }
    /// ```
    pub fn reunite(self, mut other: OwnedWriteHalf) -> Result<KcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.inner, &other.inner) {
            return Err(ReuniteError(self, other));
        }
        other.shutdown_on_drop = false;
        drop(other);
        Ok(KcpStream { inner: self.inner })
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] belong to different streams.
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let a = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
/// let b = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
/// let (ra, _wa) = a.into_split();
/// let (_rb, wb) = b.into_split();
/// let mkcp::ReuniteError(_ra, _wb) = ra.reunite(wb).unwrap_err();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves of different streams")
    }
}

impl std::error::Error for ReuniteError {}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.poll_read(cx, buf)
    }
}

/// The write half of a [`KcpStream`], from [`KcpStream::into_split`]. Dropping it
/// shuts the write side down (the peer reads end-of-stream).
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
/// let (_rd, wr) = s.into_split();
/// assert_eq!(wr.peer_addr()?, "127.0.0.1:9".parse().unwrap());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<StreamInner>,
    shutdown_on_drop: bool,
}

impl OwnedWriteHalf {
    /// The peer's address.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// # let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let (_rd, wr) = s.into_split();
    /// println!("writing to {}", wr.peer_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }

    /// Connection statistics; see [`KcpStream::stats`].
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// # let s = mkcp::KcpStream::connect("127.0.0.1:9", mkcp::Config::default()).await?;
    /// let (_rd, wr) = s.into_split();
    /// assert_eq!(wr.stats().bytes_written, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats()
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.inner.shutdown_write();
        }
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_on_drop = false;
        Poll::Ready(self.inner.shutdown_write())
    }
}
