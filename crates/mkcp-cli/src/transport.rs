//! The one place that names the mKCP runtime (`crates/mkcp`), so that the rest of the
//! command does not depend on its API details.
//!
//! WORKAROUND for a start-up race in `mkcp` 0.1 (`KcpEndpoint::from_socket` spawns the
//! socket task before registering its first handle, so on a multi-threaded runtime the
//! task can see zero handles, conclude nobody needs it and stop at once; the listener then
//! fails every `accept` and a dialer every `connect`). [`bind`] checks the fresh listener
//! and binds again if its task is already gone; [`connect`] retries a dial whose endpoint
//! died the same way. Both are harmless once the race is fixed in `crates/mkcp`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use mkcp_proto::Config;
use tracing::debug;

pub use mkcp::{KcpListener, KcpStream};

const ATTEMPTS: usize = 5;

/// A listener, plus a session its start-up check may have accepted early.
#[derive(Debug)]
pub struct Listener {
    inner: KcpListener,
    early: Mutex<Option<(KcpStream, SocketAddr)>>,
}

impl Listener {
    /// The next session started by a peer.
    pub async fn accept(&self) -> io::Result<(KcpStream, SocketAddr)> {
        let early = self
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match early {
            Some(s) => Ok(s),
            None => self.inner.accept().await,
        }
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Tells every peer and closes the socket (bounded by [`mkcp::CLOSE_TIMEOUT`]).
    pub async fn close(self) {
        self.inner.close().await;
    }
}

/// Binds an mKCP listener on `addr` (see the module docs for the start-up check).
pub async fn bind(addr: SocketAddr, config: Config) -> io::Result<Listener> {
    let mut addr = addr;
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        let listener = KcpListener::bind(addr, config.clone()).await?;
        // Give the socket task the chance to run its first round, then look once.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let probe = tokio::select! {
            biased;
            r = listener.accept() => Some(r),
            _ = std::future::ready(()) => None,
        };
        match probe {
            None => {
                return Ok(Listener {
                    inner: listener,
                    early: Mutex::new(None),
                })
            }
            Some(Ok(session)) => {
                return Ok(Listener {
                    inner: listener,
                    early: Mutex::new(Some(session)),
                })
            }
            Some(Err(e)) => {
                debug!(
                    attempt,
                    "fresh mKCP listener was already stopped ({e}); binding again"
                );
                // Same port again (it was picked by the first bind if 0 was asked for).
                addr = listener.local_addr().unwrap_or(addr);
                listener.abort();
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("could not start the mKCP listener")))
}

/// Opens an mKCP conversation to `peer` from a new UDP socket of its own, as V2Ray's
/// dialer does (see the module docs for the retry).
pub async fn connect(peer: SocketAddr, config: Config) -> io::Result<KcpStream> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        let endpoint = mkcp::KcpEndpoint::client(any, config.clone()).await?;
        match endpoint.connect(peer).await {
            // The stream keeps the socket alive once the endpoint handle is gone.
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                debug!(
                    attempt,
                    "fresh mKCP endpoint was already stopped ({e}); again"
                );
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("could not start an mKCP endpoint")))
}
