//! [`KcpListener`]: accepts mKCP sessions on a UDP port, on one socket or on several
//! sharing it (`SO_REUSEPORT`, one sans-IO endpoint and one driver task each).
//!
//! ```text
//!   kernel: hash(peer addr, local addr) ──▶ socket k of the group
//!   shard k: UDP socket ── driver task ── mkcp_proto::Endpoint (its own sessions)
//!   KcpListener::accept ◀── new sessions of every shard, merged
//!   KcpListener::stats  ◀── counters of every shard, summed
//! ```

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;

use mkcp_proto::{Config, EndpointConfig, EndpointStats};
use tokio::net::{lookup_host, ToSocketAddrs};

use crate::driver::Shared;
use crate::endpoint::KcpEndpoint;
use crate::error::io_err;
use crate::socket;
use crate::stream::KcpStream;

/// At most this many sources are reported by [`KcpListener::take_invalid_sources`], as
/// by one endpoint.
const MAX_INVALID_SOURCES: usize = 16;

/// Settings of a listener: the endpoint's, and how many sockets share the port.
///
/// ```
/// use mkcp::{Config, EndpointConfig, ListenerOptions};
///
/// let mut options = ListenerOptions::new(EndpointConfig::server(Config::default()));
/// assert_eq!(options.shards, ListenerOptions::default_shards());
/// options.shards = 2;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// Session limits and mKCP settings. The limits are for the whole listener: each
    /// shard enforces its share of them (see [`KcpListener::bind_with_options`]).
    /// `accept_incoming` is forced on.
    pub endpoint: EndpointConfig,
    /// UDP sockets bound to the address with `SO_REUSEPORT`, each with its own sans-IO
    /// endpoint and driver task, so that a multi-threaded runtime spreads the sessions
    /// over that many cores. 1 is one socket; 0 counts as 1.
    pub shards: usize,
}

impl ListenerOptions {
    /// `endpoint`'s settings on [`ListenerOptions::default_shards`] sockets.
    pub fn new(endpoint: EndpointConfig) -> ListenerOptions {
        ListenerOptions {
            endpoint,
            shards: ListenerOptions::default_shards(),
        }
    }

    /// The default number of shards: on Linux the cores available to this process
    /// ([`std::thread::available_parallelism`], 1 if that is unknown); elsewhere 1, since
    /// only Linux balances a shared port between sockets.
    pub fn default_shards() -> usize {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            1
        }
    }
}

/// An mKCP server socket: accepts sessions that peers (mkcp or V2Ray clients) start.
/// [`KcpListener::bind_with_options`] makes it several sockets sharing the port, one
/// driver task each, to use more than one core.
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
    /// One endpoint per socket; never empty.
    shards: Vec<KcpEndpoint>,
    probe: ListenerProbe,
    /// The shard `accept` looks at first, rotating so that none is starved.
    next: AtomicUsize,
}

impl KcpListener {
    /// Binds a listener on `addr` with default session limits (16384 sessions, 1024 per
    /// source address), on one socket (see [`KcpListener::bind_with_options`] for more).
    /// Fails with [`io::ErrorKind::InvalidInput`] if `config` is
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

    /// Binds a listener with explicit endpoint settings (session limits), on one socket.
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
        config: EndpointConfig,
    ) -> io::Result<KcpListener> {
        let mut options = ListenerOptions::new(config);
        options.shards = 1;
        KcpListener::bind_with_options(addr, options).await
    }

    /// Binds a listener on [`ListenerOptions::shards`] UDP sockets sharing `addr`
    /// (`SO_REUSEPORT`), each with its own sans-IO endpoint and driver task. The kernel
    /// sends each peer address to one socket (a hash of the 4-tuple), so a session
    /// stays on its shard; [`KcpListener::accept`] merges the shards' new sessions and
    /// [`KcpListener::stats`] sums their counters.
    ///
    /// Limits with N shards: the table (`max_sessions`) is divided, each shard holding
    /// `ceil(max_sessions / N)`, so the listener holds at most N - 1 sessions more than
    /// the limit, and a shard that the hash gives more than its share of peers refuses
    /// (or evicts) a little before the listener as a whole is full. The per-address
    /// limit (`max_sessions_per_ip`) holds on each shard (capped by the shard's table):
    /// an address whose sessions come from many ports (V2Ray's and mkcp's dialers use
    /// one port per session) spreads over the shards and may hold up to N times it, but
    /// an address multiplexing its sessions over one port (a [`KcpEndpoint`] client)
    /// has them all on one shard and still gets the whole limit.
    ///
    /// Where the port cannot be shared (not Linux, or the kernel refuses
    /// `SO_REUSEPORT`) the listener warns and uses one socket. An address already held by
    /// another socket is refused as by [`KcpListener::bind`], even if that socket has
    /// `SO_REUSEPORT` too.
    ///
    /// With more than one shard, dialing from the listening port
    /// ([`KcpListener::endpoint`]) does not work reliably: the kernel may hand the
    /// peer's replies to another shard.
    ///
    /// ```
    /// use mkcp::{Config, EndpointConfig, KcpListener, ListenerOptions};
    ///
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let mut options = ListenerOptions::new(EndpointConfig::server(Config::default()));
    /// options.shards = 2;
    /// let listener = KcpListener::bind_with_options("127.0.0.1:0", options).await?;
    /// # #[cfg(target_os = "linux")]
    /// assert_eq!(listener.shards(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn bind_with_options(
        addr: impl ToSocketAddrs,
        options: ListenerOptions,
    ) -> io::Result<KcpListener> {
        options.endpoint.kcp.validate().map_err(io_err)?;
        let mut last = None;
        for addr in lookup_host(addr).await? {
            match socket::bind_shards(addr, options.shards) {
                Ok(sockets) => return KcpListener::from_sockets(sockets, &options.endpoint),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to")
        }))
    }

    fn from_sockets(
        sockets: Vec<tokio::net::UdpSocket>,
        config: &EndpointConfig,
    ) -> io::Result<KcpListener> {
        let config = shard_config(config, sockets.len());
        let mut shards = Vec::with_capacity(sockets.len());
        for sock in sockets {
            // On an error, the shards already started close as they are dropped.
            shards.push(KcpEndpoint::from_socket(sock, config.clone())?);
        }
        let probe = ListenerProbe {
            shards: shards.iter().map(|s| s.shared.clone()).collect(),
        };
        Ok(KcpListener {
            shards,
            probe,
            next: AtomicUsize::new(0),
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
        poll_fn(|cx| {
            let n = self.shards.len();
            let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let mut stopped = None;
            for i in 0..n {
                let shard = (first + i) % n;
                match self.shards[shard].poll_accept(cx) {
                    Poll::Ready(Ok(accepted)) => {
                        if n > 1 {
                            tracing::debug!(peer = %accepted.1, shard, "session accepted");
                        }
                        return Poll::Ready(Ok(accepted));
                    }
                    // A shard that stopped (closed, or its task ended): the listener
                    // no longer serves its peers, so it has stopped as a whole.
                    Poll::Ready(Err(e)) => stopped = Some(e),
                    Poll::Pending => {}
                }
            }
            stopped.map_or(Poll::Pending, |e| Poll::Ready(Err(e)))
        })
        .await
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
        self.shards[0].local_addr()
    }

    /// The listener's endpoint: it can also dial out from the listening port
    /// ([`KcpEndpoint::connect`]). Closing the listener closes it too. With several
    /// shards this is the first one's, whose counters are only its own, and dialing from
    /// it is unreliable (the peer's replies may reach another shard).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.endpoint().local_addr()?, listener.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn endpoint(&self) -> &KcpEndpoint {
        &self.shards[0]
    }

    /// How many sockets (shards) share the port: [`ListenerOptions::shards`], or 1 if the
    /// port could not be shared.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.shards(), 1);
    /// # Ok(()) }
    /// ```
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// A handle that reads the listener's counters from elsewhere (a metrics task, a
    /// statistics line); it does not keep the listener open.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// let probe = listener.probe();
    /// assert_eq!(probe.stats(), listener.stats());
    /// # Ok(()) }
    /// ```
    pub fn probe(&self) -> ListenerProbe {
        self.probe.clone()
    }

    /// Listener-wide counters (the sum over the shards).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.stats().sessions_refused, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> EndpointStats {
        self.probe.stats()
    }

    /// Each shard's counters, in shard order (one entry with one shard).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.shard_stats().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn shard_stats(&self) -> Vec<EndpointStats> {
        self.probe.shard_stats()
    }

    /// The sources of datagrams that failed authentication or decoding since the last
    /// call, over every shard, busiest first, at most 16 (see
    /// [`mkcp_proto::Endpoint::take_invalid_sources`]).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert!(listener.take_invalid_sources().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn take_invalid_sources(&self) -> Vec<(std::net::SocketAddr, u64)> {
        self.probe.take_invalid_sources()
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
        // One bucket shared by every shard: the limit stays the listener's (the
        // process's) whatever the number of sockets.
        for shard in &self.shards {
            shard.set_rate_limiter(limiter.clone());
        }
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
        self.probe.live_sessions()
    }

    /// Sessions not yet terminated, per shard (in shard order).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> std::io::Result<()> {
    /// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
    /// assert_eq!(listener.shard_live_sessions(), vec![0]);
    /// # Ok(()) }
    /// ```
    pub fn shard_live_sessions(&self) -> Vec<usize> {
        self.probe.shard_live_sessions()
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
        // Every shard closes at once; then wait for each (at most CLOSE_TIMEOUT in all).
        for shard in &self.shards {
            shard.begin_close();
        }
        for shard in &self.shards {
            shard.shared.wait_done().await;
        }
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
        for shard in &self.shards {
            shard.abort();
        }
    }
}

impl Drop for KcpListener {
    fn drop(&mut self) {
        for shard in &self.shards {
            shard.begin_close();
        }
    }
}

/// Reads a [`KcpListener`]'s counters without keeping it open: every method sums (or
/// merges) over the shards. Cheap to clone. Once the listener has stopped, the counters
/// stay at their last values (the probe keeps the shards' state in memory, not their
/// sockets).
#[derive(Debug, Clone)]
pub struct ListenerProbe {
    shards: Vec<Arc<Shared>>,
}

impl ListenerProbe {
    /// Listener-wide counters, as [`KcpListener::stats`].
    pub fn stats(&self) -> EndpointStats {
        let mut total = EndpointStats::default();
        for shard in &self.shards {
            add_stats(&mut total, shard.lock().endpoint.stats());
        }
        total
    }

    /// Each shard's counters, as [`KcpListener::shard_stats`].
    pub fn shard_stats(&self) -> Vec<EndpointStats> {
        self.shards
            .iter()
            .map(|s| s.lock().endpoint.stats().clone())
            .collect()
    }

    /// Sessions not yet terminated, as [`KcpListener::live_sessions`].
    pub fn live_sessions(&self) -> usize {
        self.shard_live_sessions().iter().sum()
    }

    /// Sessions not yet terminated per shard, as [`KcpListener::shard_live_sessions`].
    pub fn shard_live_sessions(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.lock().endpoint.live_sessions())
            .collect()
    }

    /// As [`KcpListener::take_invalid_sources`].
    pub fn take_invalid_sources(&self) -> Vec<(SocketAddr, u64)> {
        if let [one] = &self.shards[..] {
            return one.lock().endpoint.take_invalid_sources();
        }
        // A source's datagrams all reach one shard; summing anyway costs nothing.
        let mut merged: HashMap<SocketAddr, u64> = HashMap::new();
        for shard in &self.shards {
            for (source, n) in shard.lock().endpoint.take_invalid_sources() {
                *merged.entry(source).or_default() += n;
            }
        }
        let mut sources: Vec<_> = merged.into_iter().collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        sources.truncate(MAX_INVALID_SOURCES);
        sources
    }
}

/// One shard's settings: `ceil(max_sessions / shards)` of the table, and the whole
/// per-address limit (at most the shard's table), see [`KcpListener::bind_with_options`].
fn shard_config(config: &EndpointConfig, shards: usize) -> EndpointConfig {
    let shards = shards.max(1);
    let mut shard = config.clone();
    shard.accept_incoming = true;
    shard.max_sessions = config.max_sessions.div_ceil(shards).max(1);
    shard.max_sessions_per_ip = config.max_sessions_per_ip.min(shard.max_sessions);
    shard
}

/// Adds one shard's counters to `total`.
fn add_stats(total: &mut EndpointStats, s: &EndpointStats) {
    total.datagrams_received += s.datagrams_received;
    total.dropped_invalid += s.dropped_invalid;
    total.dropped_unknown += s.dropped_unknown;
    total.sessions_refused += s.sessions_refused;
    total.sessions_evicted += s.sessions_evicted;
    total.sessions_reaped_unproven += s.sessions_reaped_unproven;
    total.sessions_timed_out += s.sessions_timed_out;
    total.sessions_stalled += s.sessions_stalled;
    total.transmits_budget_limited += s.transmits_budget_limited;
    total.sessions_created += s.sessions_created;
    total.datagrams_sent += s.datagrams_sent;
    total.wire_bytes_sent += s.wire_bytes_sent;
    total.wire_bytes_received += s.wire_bytes_received;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shard gets its share of the table, rounded up and never zero, and the whole
    /// per-address limit as long as its table holds it.
    #[test]
    fn the_table_is_divided_between_shards() {
        let mut config = EndpointConfig::server(Config::default());
        config.max_sessions = 16384;
        config.max_sessions_per_ip = 1024;
        let one = shard_config(&config, 1);
        assert_eq!((one.max_sessions, one.max_sessions_per_ip), (16384, 1024));
        let four = shard_config(&config, 4);
        assert_eq!((four.max_sessions, four.max_sessions_per_ip), (4096, 1024));
        let five = shard_config(&config, 5);
        assert_eq!((five.max_sessions, five.max_sessions_per_ip), (3277, 1024));
        let many = shard_config(&config, 64);
        assert_eq!((many.max_sessions, many.max_sessions_per_ip), (256, 256));
        config.max_sessions = 3;
        let tiny = shard_config(&config, 8);
        assert_eq!((tiny.max_sessions, tiny.max_sessions_per_ip), (1, 1));
        assert!(shard_config(&config, 0).accept_incoming);
    }

    /// Each counter is added into its own field: distinct values added to zero come
    /// out as they went in, and twice as doubled.
    #[test]
    fn stats_add_up() {
        let mut s = EndpointStats::default();
        s.datagrams_received = 1;
        s.dropped_invalid = 2;
        s.dropped_unknown = 3;
        s.sessions_refused = 4;
        s.sessions_evicted = 5;
        s.sessions_reaped_unproven = 6;
        s.sessions_timed_out = 7;
        s.sessions_stalled = 8;
        s.transmits_budget_limited = 9;
        s.sessions_created = 10;
        s.datagrams_sent = 11;
        s.wire_bytes_sent = 12;
        s.wire_bytes_received = 13;
        let mut total = EndpointStats::default();
        add_stats(&mut total, &s);
        assert_eq!(total, s);
        add_stats(&mut total, &s);
        assert_eq!(total.wire_bytes_received, 26);
        assert_eq!(total.datagrams_received, 2);
    }
}
