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
use mkcp_proto::{Config, EndpointConfig, EndpointStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::stats::{self, Registry};
use crate::transport::{KcpListener, KcpStream, ListenerOptions, RateLimiter, StatsProbe};
use pump::{Ended, Pump};

/// How long a TCP connect to the target, or an mKCP dial, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session may take to close its mKCP stream once the tunnel stops.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Bytes of the first read of a lazily connected session (see `serve_lazily`).
const FIRST_READ: usize = 512;

/// At most one summary line of session churn per this interval (`mkcp server`).
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// The rate-limited summary of how many sessions were opened and dropped, and why:
/// under a flood of spoofed openers, per-session lines are DEBUG only (those sessions
/// never carry data) and this line says what happened instead.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    last: EndpointStats,
}

impl SessionSummary {
    /// Starts from the endpoint's current counters.
    pub fn new(now: EndpointStats) -> SessionSummary {
        SessionSummary { last: now }
    }

    /// The line for what changed since the last call (`None`: no session was opened or
    /// dropped, nothing to say).
    pub fn update(&mut self, now: EndpointStats) -> Option<String> {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let opened = d(now.sessions_created, self.last.sessions_created);
        let evicted = d(now.sessions_evicted, self.last.sessions_evicted);
        let refused = d(now.sessions_refused, self.last.sessions_refused);
        let reaped = d(
            now.sessions_reaped_unproven,
            self.last.sessions_reaped_unproven,
        );
        let timed_out = d(now.sessions_timed_out, self.last.sessions_timed_out);
        let stalled = d(now.sessions_stalled, self.last.sessions_stalled);
        let invalid = d(now.dropped_invalid, self.last.dropped_invalid);
        self.last = now;
        if opened + evicted + refused + reaped + timed_out + stalled + invalid == 0 {
            return None;
        }
        Some(format!(
            "sessions in the last {}s: {opened} opened, {evicted} evicted (table full, peer never \
             proved reachability), {refused} refused (table full of proven sessions), {reaped} \
             reaped (peer proved nothing within {} s), {timed_out} timed out (peer silent), \
             {stalled} closed (peer took no data for {} s); {invalid} invalid datagrams dropped",
            SUMMARY_INTERVAL.as_secs(),
            mkcp_proto::UNPROVEN_US / 1_000_000,
            mkcp_proto::STALL_US / 1_000_000,
        ))
    }
}

/// Behaviour of the sessions.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// See [`Pump::with_linger`].
    pub linger: Option<Duration>,
    /// `mkcp server`: connect to the target as soon as a session opens rather than at
    /// its first stream bytes (for targets that speak first to clients that wait).
    pub connect_on_open: bool,
    /// `--max-rate-total`: the process-wide limit every mKCP socket of the tunnel shares.
    pub limiter: Option<RateLimiter>,
    /// `mkcp server`: sockets sharing the listening port (`None`: one per available
    /// core, see [`mkcp::ListenerOptions::default_shards`]).
    pub shards: Option<usize>,
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
    let mut listen_options = ListenerOptions::new(EndpointConfig::server(config));
    if let Some(shards) = options.shards {
        listen_options.shards = shards;
    }
    let listener = KcpListener::bind_with_options(listen, listen_options)
        .await
        .with_context(|| format!("cannot listen for mKCP on udp {listen}"))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    listener.set_rate_limiter(options.limiter.clone());
    if listener.shards() > 1 {
        info!(
            "{} UDP sockets share udp {local_addr} (SO_REUSEPORT), each served on its own task",
            listener.shards()
        );
    }
    let registry = Registry::new();
    // Every shard's counters, summed; the probe does not keep the listener open.
    let probe = listener.probe();
    registry.set_endpoint_source(Box::new(move || probe.stats()));
    let (stop, stop_rx) = watch::channel(false);
    let reg = registry.clone();
    let task = tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        let stopping = stop_signal(&stop_rx);
        tokio::pin!(stopping);
        let mut summary = SessionSummary::new(listener.stats());
        let mut live_at_last_tick = 0usize;
        let mut summary_tick = tokio::time::interval(SUMMARY_INTERVAL);
        summary_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopping => break,
                _ = summary_tick.tick() => {
                    if let Some(line) = summary.update(listener.stats()) {
                        info!("{line}");
                    }
                    // Many sessions ended since the last tick (a flood reaped, a burst
                    // of transfers done): hand their memory back to the system.
                    let live = listener.live_sessions();
                    if live_at_last_tick >= live + GIVE_BACK_AFTER_ENDED {
                        crate::memory::give_back();
                    }
                    live_at_last_tick = live;
                    for (source, n) in listener.take_invalid_sources() {
                        warn!(
                            "{n} datagram(s) from {source} failed authentication in the last {} s: \
                             do --seed and --header match the peer's?",
                            SUMMARY_INTERVAL.as_secs()
                        );
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((kcp, peer)) => {
                        let guard = reg.register_from(peer);
                        let stop_rx = stop_rx.clone();
                        let target = target.clone();
                        let options = options.clone();
                        sessions.spawn(async move {
                            serve_lazily(kcp, peer, &target, &guard, &stop_rx, &options).await;
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
                        let guard = reg.register_from(peer);
                        let stop = stop_signal(&stop_rx);
                        let server = server.clone();
                        let config = config.clone();
                        let options = options.clone();
                        sessions.spawn(async move {
                            let id = guard.id();
                            let _ = tcp.set_nodelay(true);
                            let kcp = match dial(&server, config, options.limiter.clone()).await {
                                Ok(kcp) => kcp,
                                Err(e) => {
                                    warn!(session = id, %peer, "{e:#}; closing the TCP connection");
                                    return;
                                }
                            };
                            info!(session = id, %peer, "TCP connection accepted; carried over mKCP to {server}");
                            let unanswered = watch_for_answer(id, server.clone(), kcp.stats_probe());
                            let stop = async move {
                                tokio::select! {
                                    _ = stop => {}
                                    _ = unanswered => {}
                                }
                            };
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

/// One `mkcp server` session: the target is connected only once the session's first
/// stream bytes arrive, so a session that never carries data (a spoofed opener, a
/// client that never sends) costs no target connection and logs nothing at INFO
/// (unless [`Options::connect_on_open`]).
async fn serve_lazily(
    mut kcp: KcpStream,
    peer: SocketAddr,
    target: &str,
    guard: &stats::SessionGuard,
    stop_rx: &watch::Receiver<bool>,
    options: &Options,
) {
    let id = guard.id();
    if options.connect_on_open {
        info!(session = id, %peer, "mKCP session accepted; connecting to {target}");
        match connect_tcp(target).await {
            Ok(tcp) => serve(id, kcp, tcp, guard, stop_signal(stop_rx), options).await,
            Err(e) => {
                warn!(session = id, "{e:#}; closing the mKCP session");
                close_kcp(kcp, id).await;
            }
        }
        return;
    }
    debug!(session = id, %peer, "mKCP session opened; waiting for its first data");
    // Small: every waiting session holds it (a flood of openers fills the table with
    // them); the pump moves the rest.
    let mut first = [0u8; FIRST_READ];
    let n = tokio::select! {
        r = kcp.read(&mut first) => r,
        _ = stop_signal(stop_rx) => {
            debug!(session = id, "closing (shutting down) before any data");
            close_kcp(kcp, id).await;
            return;
        }
    };
    let n = match n {
        Ok(0) => {
            debug!(session = id, "mKCP session ended before any data");
            close_kcp(kcp, id).await;
            return;
        }
        Ok(n) => n,
        Err(e) => {
            debug!(session = id, "mKCP session ended before any data: {e}");
            drop(kcp);
            return;
        }
    };
    info!(session = id, %peer, "mKCP session accepted; connecting to {target}");
    let mut tcp = match connect_tcp(target).await {
        Ok(tcp) => tcp,
        Err(e) => {
            warn!(session = id, "{e:#}; closing the mKCP session");
            close_kcp(kcp, id).await;
            return;
        }
    };
    if let Err(e) = tcp.write_all(&first[..n]).await {
        warn!(
            session = id,
            "writing to target {target}: {e}; closing the mKCP session"
        );
        close_kcp(kcp, id).await;
        return;
    }
    guard
        .session()
        .from_kcp
        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    serve(id, kcp, tcp, guard, stop_signal(stop_rx), options).await;
}

async fn connect_tcp(target: &str) -> Result<TcpStream> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| anyhow!("connecting to target {target} timed out after {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("cannot connect to target {target}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn dial(server: &str, config: Config, limiter: Option<RateLimiter>) -> Result<KcpStream> {
    let addr = resolve("server", server).await?;
    // Its own UDP socket per conversation, as V2Ray's dialer does.
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        KcpStream::connect_with(addr, config, limiter),
    )
    .await
    .map_err(|_| anyhow!("mKCP dial to {addr} timed out after {CONNECT_TIMEOUT:?}"))?
    .with_context(|| format!("cannot open an mKCP conversation to {addr}"))
}

/// Sessions that must have ended between two summary ticks before the server hands
/// freed memory back to the system (`memory.rs`).
const GIVE_BACK_AFTER_ENDED: usize = 64;

/// How long a dialled session may hear nothing from its server before we say so. A
/// server that has nothing to send still pings within about 5 s (V2Ray's ping updater,
/// our keep-alive), so an idle but healthy session is heard before this.
pub const NO_ANSWER_WARN: Duration = Duration::from_secs(7);
/// How long a dialled session may hear nothing before its TCP connection is closed
/// (well before the 30 s idle timeout: the application learns early).
pub const NO_ANSWER_CLOSE: Duration = Duration::from_secs(15);

/// Completes (after logging why) if the session has received nothing at all from its
/// server [`NO_ANSWER_CLOSE`] after it was dialled; warns at [`NO_ANSWER_WARN`]. Never
/// completes once anything arrived.
async fn watch_for_answer(id: u64, server: String, probe: StatsProbe) {
    // A connection already gone is not ours to judge: the pump ends it.
    let heard = || probe.stats().is_none_or(|s| s.datagrams_received > 0);
    tokio::time::sleep(NO_ANSWER_WARN).await;
    if heard() {
        return std::future::pending().await;
    }
    warn!(
        session = id,
        "no reply from the mKCP server {server} within {} s: is it running there, and do \
         --seed and --header match its settings?",
        NO_ANSWER_WARN.as_secs()
    );
    tokio::time::sleep(NO_ANSWER_CLOSE - NO_ANSWER_WARN).await;
    if heard() {
        return std::future::pending().await;
    }
    warn!(
        session = id,
        "closing the TCP connection: the mKCP server {server} never answered in {} s",
        NO_ANSWER_CLOSE.as_secs()
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_changed_and_nothing_when_nothing_did() {
        let mut s = SessionSummary::new(EndpointStats::default());
        assert_eq!(s.update(EndpointStats::default()), None);
        let mut now = EndpointStats::default();
        now.sessions_created = 40;
        now.sessions_evicted = 7;
        now.sessions_reaped_unproven = 30;
        let line = s.update(now.clone()).expect("a line");
        assert!(line.contains("40 opened"), "{line}");
        assert!(line.contains("7 evicted"), "{line}");
        assert!(line.contains("30 reaped"), "{line}");
        assert!(line.contains("0 refused"), "{line}");
        assert_eq!(s.update(now), None, "counts are per interval");
    }
}
