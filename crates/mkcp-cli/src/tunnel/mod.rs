//! The TCP-over-mKCP tunnel: `mkcp server` and `mkcp client`.
//!
//! ```text
//!  app --tcp--> [mkcp client] ==mKCP/udp==> [mkcp server] --tcp--> target
//!               one mKCP conversation           one TCP connection
//!               per TCP connection              per mKCP session
//! ```
//!
//! Either end may be V2Ray instead: `mkcp client` talks to a V2Ray inbound
//! (dokodemo-door over kcp), and a V2Ray outbound (freedom over kcp) talks to
//! `mkcp server`. Each session is a [`pump::Pump`] in its own task; a [`Tunnel`] is the
//! accept loop plus those tasks, stopped by [`Tunnel::shutdown`].

pub mod pump;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use mkcp_proto::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::stats::{self, Registry};
use crate::transport::{KcpListener, KcpStream};
use pump::{Ended, Pump};

/// How long a TCP connect to the target, or an mKCP dial, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session may take to close its mKCP stream once the tunnel stops.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Behaviour of the sessions.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// See [`Pump::with_linger`].
    pub linger: Option<Duration>,
}

/// A running tunnel end (server or client).
pub struct Tunnel {
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

impl Tunnel {
    /// The address it accepts on (UDP for a server, TCP for a client).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its sessions' counters.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops accepting, closes every session (mKCP streams are shut down and closed,
    /// which sends the terminate handshake) and waits for them, at most `grace`; sessions
    /// still running then are aborted.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!("{e:#}"),
            Ok(Err(e)) => warn!("tunnel task: {e}"),
            Err(_) => {
                warn!("sessions did not close within {grace:?}; aborting them");
                self.task.abort();
                let _ = self.task.await;
            }
        }
    }

    /// Completes only if the tunnel stops by itself, which is an error (its socket
    /// failed); returns it.
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => anyhow!("the tunnel stopped unexpectedly"),
            Err(e) => anyhow::Error::new(e).context("tunnel task"),
        }
    }
}

/// Resolves `addr` (`host:port` or `ip:port`) to its first address.
pub async fn resolve(what: &str, addr: &str) -> Result<SocketAddr> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {what} {addr:?} (expected host:port)"))?
        .next()
        .ok_or_else(|| anyhow!("{what} {addr:?} resolves to no address"))
}

fn stop_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// Starts `mkcp server`: mKCP sessions on UDP `listen`, each connected to TCP `target`.
pub async fn start_server(
    listen: SocketAddr,
    target: String,
    config: Config,
    options: Options,
) -> Result<Tunnel> {
    let listener = KcpListener::bind(listen, config)
        .await
        .with_context(|| format!("cannot listen for mKCP on udp {listen}"))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let registry = Registry::new();
    let (stop, stop_rx) = watch::channel(false);
    let reg = registry.clone();
    let task = tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        let stopping = stop_signal(&stop_rx);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                accepted = listener.accept() => match accepted {
                    Ok((kcp, peer)) => {
                        let guard = reg.register();
                        let stop = stop_signal(&stop_rx);
                        let target = target.clone();
                        let options = options.clone();
                        sessions.spawn(async move {
                            let id = guard.id();
                            info!(session = id, %peer, "mKCP session accepted; connecting to {target}");
                            let tcp = match connect_tcp(&target).await {
                                Ok(tcp) => tcp,
                                Err(e) => {
                                    warn!(session = id, "{e:#}; closing the mKCP session");
                                    close_kcp(kcp, id).await;
                                    return;
                                }
                            };
                            serve(id, kcp, tcp, &guard, stop, &options).await;
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                        sessions.abort_all();
                        return Err(anyhow::Error::new(e).context("the mKCP listener stopped"));
                    }
                    Err(e) => {
                        warn!("accepting mKCP sessions failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        drain(&mut sessions).await;
        // Tells every remaining peer and closes the socket (bounded by mkcp::CLOSE_TIMEOUT).
        listener.close().await;
        Ok(())
    });
    Ok(Tunnel {
        local_addr,
        registry,
        stop,
        task,
    })
}

/// Starts `mkcp client`: TCP connections on `listen`, each carried over its own mKCP
/// conversation to `server` (resolved for each connection).
pub async fn start_client(
    listen: SocketAddr,
    server: String,
    config: Config,
    options: Options,
) -> Result<Tunnel> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on tcp {listen}"))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let registry = Registry::new();
    let (stop, stop_rx) = watch::channel(false);
    let reg = registry.clone();
    let task = tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        let stopping = stop_signal(&stop_rx);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let guard = reg.register();
                        let stop = stop_signal(&stop_rx);
                        let server = server.clone();
                        let config = config.clone();
                        let options = options.clone();
                        sessions.spawn(async move {
                            let id = guard.id();
                            let _ = tcp.set_nodelay(true);
                            let kcp = match dial(&server, config).await {
                                Ok(kcp) => kcp,
                                Err(e) => {
                                    warn!(session = id, %peer, "{e:#}; closing the TCP connection");
                                    return;
                                }
                            };
                            info!(session = id, %peer, "TCP connection accepted; carried over mKCP to {server}");
                            serve(id, kcp, tcp, &guard, stop, &options).await;
                        });
                    }
                    Err(e) => {
                        // E.g. too many open files: keep serving the others.
                        warn!("accepting TCP connections failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        drop(listener);
        drain(&mut sessions).await;
        Ok(())
    });
    Ok(Tunnel {
        local_addr,
        registry,
        stop,
        task,
    })
}

async fn connect_tcp(target: &str) -> Result<TcpStream> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| anyhow!("connecting to target {target} timed out after {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("cannot connect to target {target}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn dial(server: &str, config: Config) -> Result<KcpStream> {
    let addr = resolve("server", server).await?;
    // Its own UDP socket per conversation, as V2Ray's dialer does.
    tokio::time::timeout(CONNECT_TIMEOUT, KcpStream::connect(addr, config))
        .await
        .map_err(|_| anyhow!("mKCP dial to {addr} timed out after {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("cannot open an mKCP conversation to {addr}"))
}

/// Waits for the sessions to end (the caller bounds the time).
async fn drain(sessions: &mut JoinSet<()>) {
    if !sessions.is_empty() {
        info!("closing {} session(s)", sessions.len());
    }
    while sessions.join_next().await.is_some() {}
}

/// Closes the mKCP stream the V2Ray way (what was written is delivered, then the peer
/// is told), bounded by [`CLOSE_TIMEOUT`]; past that, dropping it finishes the close in
/// the background.
async fn close_kcp(kcp: KcpStream, id: u64) {
    match tokio::time::timeout(CLOSE_TIMEOUT, kcp.close()).await {
        Ok(Ok(())) => debug!(session = id, "mKCP stream closed"),
        Ok(Err(e)) => debug!(session = id, "closing the mKCP stream: {e}"),
        Err(_) => debug!(session = id, "closing the mKCP stream timed out"),
    }
}

/// Runs one session's pump and logs how it ended.
async fn serve(
    id: u64,
    kcp: KcpStream,
    tcp: TcpStream,
    guard: &stats::SessionGuard,
    stop: impl Future<Output = ()> + Send + 'static,
    options: &Options,
) {
    let started = Instant::now();
    let session = guard.session().clone();
    let mut pump = Pump::new(kcp, tcp, session.clone(), stop).with_linger(options.linger);
    let result = pump.run().await;
    let (kcp, mut tcp) = pump.into_inner();
    let s = session.stats();
    let summary = format!(
        "after {:.1} s: tcp->kcp {}, kcp->tcp {}, rtt {} ms, {} retransmissions",
        started.elapsed().as_secs_f64(),
        stats::bytes(session.to_kcp.load(std::sync::atomic::Ordering::Relaxed)),
        stats::bytes(session.from_kcp.load(std::sync::atomic::Ordering::Relaxed)),
        s.srtt_ms,
        s.retransmissions,
    );
    match result {
        Ok(Ended::Finished) => {
            info!(session = id, "closed {summary}");
            drop(tcp);
            close_kcp(kcp, id).await;
        }
        Ok(Ended::Lingered) => {
            let linger = options.linger.unwrap_or_default();
            info!(
                session = id,
                "closing: one direction ended and the other was silent for {linger:?} {summary}"
            );
            let _ = tcp.shutdown().await;
            drop(tcp);
            close_kcp(kcp, id).await;
        }
        Ok(Ended::Stopped) => {
            info!(session = id, "closing (shutting down) {summary}");
            let _ = tcp.shutdown().await;
            drop(tcp);
            close_kcp(kcp, id).await;
        }
        Err(e) => {
            info!(session = id, "ended: {e} {summary}");
            drop(tcp);
            close_kcp(kcp, id).await;
        }
    }
}
