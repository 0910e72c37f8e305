//! The UDP relay: listens on one address, forwards to a target through two emulated links.
//!
//! ```text
//!  client A --udp--> [listen socket] --up Link--> [session socket for A] --udp--> target
//!  client A <--udp-- [listen socket] <--down Link-- [session socket for A] <--udp-- target
//! ```
//!
//! Each client source address gets its own upstream ("session") socket, connected to the
//! target, so the target sees one peer per client and its replies route back to the right
//! client. All clients share the same two links, like hosts behind one impaired path (the
//! rate limit is a shared bottleneck).
//!
//! One tokio task does everything: it polls the listen socket, every session socket, a
//! control channel and **one** timer set to the earliest delivery of either link (a heap
//! inside [`Link`]); there is no sleep or task per packet. Time for the model is
//! `tokio::time::Instant::now()` converted to `std::time::Instant`. Packets are released at
//! or after their scheduled time, never before: tokio's timer has millisecond
//! granularity, so a release may be up to about a millisecond late, but the schedule itself
//! (and so the long-run rate) is exact.
//!
//! Memory is bounded: each link holds at most [`RelayOptions::max_in_flight`] packets (and
//! `queue_bytes` at its bottleneck), sessions are capped at [`RelayOptions::max_sessions`]
//! and expire after [`RelayOptions::session_idle`] without traffic, and packet buffers are
//! recycled through a bounded pool.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mkcp_sim::link::{Link, LinkConfig, LinkStats};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

/// Limits of a relay. `Default` suits tests and benchmarks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayOptions {
    /// Most clients served at once; datagrams from further clients are dropped (and
    /// counted in [`RelayStats::sessions_rejected`]). Default 1024.
    pub max_sessions: usize,
    /// A session with no datagram either way for this long is closed. Default 120 s.
    pub session_idle: Duration,
    /// Most packets each link holds at once; lowers the link's own `limit` if that is
    /// larger. Default 65536 (about 85 MB of 1300-byte datagrams per direction).
    pub max_in_flight: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            max_sessions: 1024,
            session_idle: Duration::from_secs(120),
            max_in_flight: 65_536,
        }
    }
}

impl RelayOptions {
    /// Sets [`max_sessions`](Self::max_sessions).
    #[must_use]
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Sets [`session_idle`](Self::session_idle).
    #[must_use]
    pub fn session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = idle;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight).
    #[must_use]
    pub fn max_in_flight(mut self, packets: usize) -> Self {
        self.max_in_flight = packets;
        self
    }
}

/// A snapshot of a relay's counters.
///
/// `up` is client -> target, `down` is target -> client. In each, `packets_in`/`bytes_in`
/// count what the relay received, `dropped_loss`/`dropped_queue` what the link model
/// dropped, and `packets_out`/`bytes_out` what left the link to be sent (a send that then
/// fails is also counted in `send_errors`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Client -> target direction.
    pub up: LinkStats,
    /// Target -> client direction.
    pub down: LinkStats,
    /// Sessions open now.
    pub sessions: u64,
    /// Sessions opened since the start.
    pub sessions_total: u64,
    /// Datagrams dropped because [`RelayOptions::max_sessions`] were open or the session
    /// socket could not be created.
    pub sessions_rejected: u64,
    /// Datagrams that left the up link after their session had expired.
    pub orphaned: u64,
    /// Failed sends (either direction).
    pub send_errors: u64,
    /// Failed receives (either direction), e.g. "connection refused" when the target port
    /// is closed.
    pub recv_errors: u64,
}

/// A user-space netem: a UDP relay with an emulated link each way. See the
/// [module docs](self).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// use mkcp_netem::{LinkConfig, Relay};
///
/// let path = LinkConfig::default().delay(Duration::from_millis(30)).loss(0.01);
/// let relay = Relay::start(
///     "127.0.0.1:0".parse().unwrap(),    // clients send here
///     "127.0.0.1:4000".parse().unwrap(), // the server
///     path.clone().seed(1),
///     path.seed(2),
/// )
/// .await?;
/// println!("relay on {}", relay.local_addr());
/// println!("{:?}", relay.stats());
/// relay.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Relay {
    _private: (),
}

impl Relay {
    /// Binds `listen` and starts relaying to `target` with the given link each way and
    /// default [`RelayOptions`].
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
    ) -> io::Result<RelayHandle> {
        Self::start_with(listen, target, up, down, RelayOptions::default()).await
    }

    /// Like [`start`](Self::start), with explicit limits.
    pub async fn start_with(
        listen: SocketAddr,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        options: RelayOptions,
    ) -> io::Result<RelayHandle> {
        let socket = UdpSocket::bind(listen).await?;
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let (control, control_rx) = mpsc::unbounded_channel();
        let worker = Worker::new(socket, target, up, down, options, stats.clone(), control_rx);
        let task = tokio::spawn(worker.run());
        tracing::debug!(%local_addr, %target, "netem relay started");
        Ok(RelayHandle {
            local_addr,
            target,
            stats,
            control,
            task,
        })
    }
}

/// Controls a running relay. Dropping it stops the relay too (without waiting).
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    target: SocketAddr,
    stats: Arc<Mutex<RelayStats>>,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// The address clients send to (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address datagrams are relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The counters now (a consistent snapshot, updated after every event).
    pub fn stats(&self) -> RelayStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes both links' impairments from now on; packets already in flight keep their
    /// schedule (see [`Link::set_config`]).
    ///
    /// Completes once the relay has applied the change, so every datagram sent after the
    /// `.await` meets the new links. If the relay has stopped there is nothing to
    /// configure and it completes at once.
    pub async fn set_links(&self, up: LinkConfig, down: LinkConfig) {
        let (applied, done) = oneshot::channel();
        let change = Box::new(LinkChange { up, down, applied });
        if self.control.send(Control::SetLinks(change)).is_ok() {
            // An error means the relay stopped before applying it: nothing left to wait for.
            let _ = done.await;
        }
    }

    /// Stops the relay and waits for it to finish: its sockets are closed and packets
    /// still in flight are discarded.
    pub async fn shutdown(self) {
        let _ = self.control.send(Control::Shutdown);
        if let Err(e) = self.task.await {
            tracing::warn!("netem relay task ended abnormally: {e}");
        }
    }
}

enum Control {
    SetLinks(Box<LinkChange>),
    Shutdown,
}

/// New links for both directions, and who to tell once they are in place.
struct LinkChange {
    up: LinkConfig,
    down: LinkConfig,
    applied: oneshot::Sender<()>,
}

/// A datagram inside a link, tagged with the client it belongs to.
#[derive(Clone)]
struct Packet {
    client: SocketAddr,
    data: Vec<u8>,
}

struct Session {
    client: SocketAddr,
    socket: UdpSocket,
    last_active: Instant,
}

enum Event {
    Stop,
    SetLinks(Box<LinkChange>),
    FromClient(SocketAddr, usize),
    FromTarget(usize, usize),
    RecvError,
    Timer,
}

/// Largest UDP payload.
const BUF_SIZE: usize = 64 * 1024;
/// Buffers kept for reuse.
const POOL_MAX: usize = 1024;
/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Worker {
    listen: UdpSocket,
    target: SocketAddr,
    up: Link<Packet>,
    down: Link<Packet>,
    options: RelayOptions,
    sessions: Vec<Session>,
    by_client: HashMap<SocketAddr, usize>,
    buf: Vec<u8>,
    pool: Vec<Vec<u8>>,
    shared: Arc<Mutex<RelayStats>>,
    stats: RelayStats,
    control: mpsc::UnboundedReceiver<Control>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    next_sweep: Instant,
    /// Which socket to poll first next time (0 = listen, i + 1 = session i), for fairness.
    rotate: usize,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn bounded(cfg: LinkConfig, max_in_flight: usize) -> LinkConfig {
    let limit = cfg.limit.min(max_in_flight);
    cfg.limit(limit)
}

impl Worker {
    fn new(
        listen: UdpSocket,
        target: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
        options: RelayOptions,
        shared: Arc<Mutex<RelayStats>>,
        control: mpsc::UnboundedReceiver<Control>,
    ) -> Self {
        let start = now();
        Self {
            listen,
            target,
            up: Link::new(bounded(up, options.max_in_flight)),
            down: Link::new(bounded(down, options.max_in_flight)),
            options,
            sessions: Vec::new(),
            by_client: HashMap::new(),
            buf: vec![0; BUF_SIZE],
            pool: Vec::new(),
            shared,
            stats: RelayStats::default(),
            control,
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                start,
            ))),
            timer_at: None,
            next_sweep: start + SWEEP_EVERY,
            rotate: 0,
        }
    }

    async fn run(mut self) {
        loop {
            self.arm_timer();
            let event = poll_fn(|cx| self.poll_event(cx)).await;
            match event {
                Event::Stop => break,
                Event::SetLinks(change) => {
                    let LinkChange { up, down, applied } = *change;
                    self.up.set_config(bounded(up, self.options.max_in_flight));
                    self.down
                        .set_config(bounded(down, self.options.max_in_flight));
                    // The caller may have stopped waiting; that is fine.
                    let _ = applied.send(());
                }
                Event::FromClient(client, len) => self.on_client_datagram(client, len),
                Event::FromTarget(i, len) => self.on_target_datagram(i, len),
                Event::RecvError | Event::Timer => {}
            }
            self.release_due().await;
            self.sweep();
            self.publish();
        }
        tracing::debug!(local_addr = ?self.listen.local_addr().ok(), "netem relay stopped");
    }

    /// Points the single timer at the earliest thing to do: a delivery, or the idle sweep.
    fn arm_timer(&mut self) {
        let deliveries = [self.up.next_delivery(), self.down.next_delivery()];
        let sweep = (!self.sessions.is_empty()).then_some(self.next_sweep);
        let at = deliveries.into_iter().chain([sweep]).flatten().min();
        if at != self.timer_at {
            self.timer_at = at;
            if let Some(at) = at {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
            }
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        match self.control.poll_recv(cx) {
            Poll::Ready(None) | Poll::Ready(Some(Control::Shutdown)) => {
                return Poll::Ready(Event::Stop)
            }
            Poll::Ready(Some(Control::SetLinks(links))) => {
                return Poll::Ready(Event::SetLinks(links))
            }
            Poll::Pending => {}
        }
        if self.timer_at.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            // Fired: the caller releases what is due and re-arms.
            self.timer_at = None;
            return Poll::Ready(Event::Timer);
        }
        let n = self.sessions.len() + 1;
        for k in 0..n {
            let which = (self.rotate + k) % n;
            let mut rb = ReadBuf::new(&mut self.buf);
            let polled = if which == 0 {
                match self.listen.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(from)) => Some(Ok(Event::FromClient(from, rb.filled().len()))),
                    Poll::Ready(Err(e)) => Some(Err(e)),
                    Poll::Pending => None,
                }
            } else {
                let i = which - 1;
                match self.sessions[i].socket.poll_recv(cx, &mut rb) {
                    Poll::Ready(Ok(())) => Some(Ok(Event::FromTarget(i, rb.filled().len()))),
                    Poll::Ready(Err(e)) => Some(Err(e)),
                    Poll::Pending => None,
                }
            };
            if let Some(result) = polled {
                self.rotate = which + 1;
                return Poll::Ready(match result {
                    Ok(event) => event,
                    Err(e) => {
                        self.stats.recv_errors += 1;
                        tracing::debug!("netem relay receive failed: {e}");
                        Event::RecvError
                    }
                });
            }
        }
        Poll::Pending
    }

    fn packet(&mut self, client: SocketAddr, len: usize) -> Packet {
        let mut data = self.pool.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(self.buf.get(..len).unwrap_or_default());
        Packet { client, data }
    }

    fn recycle(&mut self, data: Vec<u8>) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(data);
        }
    }

    fn on_client_datagram(&mut self, client: SocketAddr, len: usize) {
        let now = now();
        let i = match self.by_client.get(&client) {
            Some(&i) => i,
            None => match self.open_session(client, now) {
                Some(i) => i,
                None => {
                    self.stats.sessions_rejected += 1;
                    return;
                }
            },
        };
        self.sessions[i].last_active = now;
        let packet = self.packet(client, len);
        self.up.push(now, len, packet);
    }

    fn on_target_datagram(&mut self, i: usize, len: usize) {
        let now = now();
        let Some(session) = self.sessions.get_mut(i) else {
            return;
        };
        session.last_active = now;
        let client = session.client;
        let packet = self.packet(client, len);
        self.down.push(now, len, packet);
    }

    fn open_session(&mut self, client: SocketAddr, now: Instant) -> Option<usize> {
        if self.sessions.len() >= self.options.max_sessions {
            tracing::debug!(%client, "netem relay: session limit reached, dropping");
            return None;
        }
        let socket = match upstream_socket(self.target) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%client, "netem relay: cannot open a socket to the target: {e}");
                return None;
            }
        };
        tracing::debug!(%client, upstream = ?socket.local_addr().ok(), "netem relay: new session");
        let i = self.sessions.len();
        self.sessions.push(Session {
            client,
            socket,
            last_active: now,
        });
        self.by_client.insert(client, i);
        self.stats.sessions_total += 1;
        Some(i)
    }

    /// Sends everything both links have due by now.
    async fn release_due(&mut self) {
        let now = now();
        while let Some(p) = self.up.poll(now) {
            match self.by_client.get(&p.client) {
                Some(&i) => {
                    if let Err(e) = self.sessions[i].socket.send(&p.data).await {
                        self.stats.send_errors += 1;
                        tracing::debug!(client = %p.client, "netem relay: send to target failed: {e}");
                    }
                }
                None => self.stats.orphaned += 1,
            }
            self.recycle(p.data);
        }
        while let Some(p) = self.down.poll(now) {
            if let Err(e) = self.listen.send_to(&p.data, p.client).await {
                self.stats.send_errors += 1;
                tracing::debug!(client = %p.client, "netem relay: send to client failed: {e}");
            }
            self.recycle(p.data);
        }
    }

    /// Closes sessions idle for longer than the limit.
    fn sweep(&mut self) {
        let now = now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        let idle = self.options.session_idle;
        let before = self.sessions.len();
        self.sessions
            .retain(|s| now.saturating_duration_since(s.last_active) < idle);
        if self.sessions.len() != before {
            tracing::debug!(
                closed = before - self.sessions.len(),
                "netem relay: idle sessions closed"
            );
            self.by_client.clear();
            for (i, s) in self.sessions.iter().enumerate() {
                self.by_client.insert(s.client, i);
            }
            self.rotate = 0;
        }
    }

    fn publish(&mut self) {
        self.stats.up = self.up.stats();
        self.stats.down = self.down.stats();
        self.stats.sessions = self.sessions.len() as u64;
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = self.stats;
    }
}

/// A socket for one client's traffic to the target: any local port, same address family,
/// connected so that only the target's datagrams are received.
fn upstream_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(target)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}
