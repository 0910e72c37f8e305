//! **mkcp** on tokio: V2Ray's mKCP transport (reliable streams over UDP), byte-compatible
//! with V2Ray 4.34.
//!
//! ```text
//!   KcpListener ── accept() ──▶ KcpStream (AsyncRead + AsyncWrite)
//!   KcpStream::connect / KcpEndpoint::connect ──▶ KcpStream
//!        │
//!   one tokio task per UDP socket drives mkcp_proto::Endpoint (sans-IO core):
//!   datagrams in, timers, datagrams out; application calls wake it.
//! ```
//!
//! * [`KcpListener`]: accept sessions on a UDP port (a server).
//! * [`KcpStream`]: one reliable byte stream; [`KcpStream::connect`] dials from its own
//!   socket, as V2Ray's dialer does.
//! * [`KcpEndpoint`]: many streams over one UDP socket (dial and/or accept).
//! * [`RateLimiter`]: a limit on bytes per second shared by any number of sockets (all
//!   sessions of a process); the per-session cap is [`Tuning::max_send_rate`].
//! * [`ListenerOptions`]: a listener on several sockets sharing its port
//!   (`SO_REUSEPORT`), one driver task each, to use more than one core.
//!
//! Settings are V2Ray's `kcpSettings` ([`Config`], importable from V2Ray JSON with
//! [`Config::from_kcp_settings_json`]); both ends must use the same header, seed and MTU.
//!
//! ```
//! use mkcp::{Config, KcpListener, KcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let config = Config::from_kcp_settings_json(r#"{"header": {"type": "srtp"}, "seed": "s"}"#)
//!     .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
//! let listener = KcpListener::bind("127.0.0.1:0", config.clone()).await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((stream, _peer)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let (mut r, mut w) = tokio::io::split(stream);
//!             tokio::io::copy(&mut r, &mut w).await?;
//!             w.shutdown().await // half-close once the client's data ended
//!         });
//!     }
//! });
//!
//! let mut stream = KcpStream::connect(addr, config).await?;
//! stream.write_all(b"hello over mKCP").await?;
//! stream.shutdown().await?;
//! let mut echo = String::new();
//! stream.read_to_string(&mut echo).await?;
//! assert_eq!(echo, "hello over mKCP");
//! # Ok(()) }
//! ```
//!
//! ## Closing
//! * `shutdown()` (AsyncWriteExt) is a half-close for mkcp peers; V2Ray ignores it.
//! * [`KcpStream::close`] is V2Ray's close: waits until everything written is
//!   acknowledged, then tells the peer.
//! * Dropping a stream closes it gracefully in the background.
//! * Against V2Ray, read everything you expect before closing: a V2Ray side that sees
//!   the Close discards what it has not sent yet (it has no half-close).
//!
//! ## Errors
//! Methods return [`std::io::Error`]s whose kind says what happened (`TimedOut`: the
//! peer has been silent for the idle timeout; `BrokenPipe`: the connection was closed;
//! `ConnectionAborted`: the socket task stopped) and which carry an [`Error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod endpoint;
mod error;
mod limit;
mod listener;
mod shared;
mod socket;
mod stream;
mod udp;

pub use endpoint::KcpEndpoint;
pub use error::Error;
pub use limit::{Accounting, RateLimiter};
pub use listener::{KcpListener, ListenerOptions, ListenerProbe};
pub use shared::CLOSE_TIMEOUT;
pub use stream::{KcpStream, OwnedReadHalf, OwnedWriteHalf, ReuniteError, StatsProbe};

pub use mkcp_proto::{
    Config, ConfigError, ConnectionStats, EndpointConfig, EndpointStats, HeaderKind, Security,
    State, Tuning,
};

/// The sans-IO core this crate runs on.
pub use mkcp_proto as proto;
