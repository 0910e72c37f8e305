//! The socket task: one tokio task per UDP socket drives the sans-IO [`Endpoint`].
//!
//! ```text
//!   app tasks (KcpStream, KcpListener)          socket task (this file)
//!     lock; endpoint.read/write/...; unlock       loop {
//!     wake_driver.notify_one()  ───────────────▶    lock: feed received datagrams,
//!     wait on the per-connection waker ◀────────      run due timers, route events to
//!                                                     wakers, take datagrams to send; unlock
//!                                                   send them
//!                                                   wait: socket readable | notify | timer
//!                                                 }
//! ```
//!
//! All state lives in one [`Shared`] behind a `std::sync::Mutex`, held only for the
//! duration of core calls (never across an `.await`). There is no task and no timer per
//! connection: the endpoint reports one deadline for all of them
//! ([`Endpoint::poll_timeout`]) and the task sleeps until it.
//!
//! The task ends when the endpoint is closed (after every session has been told, or a
//! short deadline), or when no handle is left and every session has finished
//! closing. Either way the socket is closed *before* waiters of [`Shared::wait_done`]
//! are released, so the address can be bound again at once.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use mkcp_proto::wire::MAX_DATAGRAM;
use mkcp_proto::{ConnEvent, ConnId, Endpoint, Event, State};
use tokio::net::UdpSocket;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

/// Datagrams received per lock acquisition.
const RX_BATCH: usize = 64;
/// Datagrams taken from the endpoint per lock acquisition.
const TX_BATCH: usize = 64;
/// Receive slot: a little over the largest valid datagram, so that an oversized one is
/// seen as such (and rejected by the codec) rather than silently truncated to a valid size.
const RX_SLOT: usize = MAX_DATAGRAM + 64;
/// Accepted sessions waiting for [`crate::KcpListener::accept`]; more are closed at once.
pub(crate) const ACCEPT_BACKLOG: usize = 1024;
/// How long a closing endpoint keeps driving its sessions before it stops anyway
/// ([`crate::KcpListener::close`], [`crate::KcpEndpoint::close`], or dropping a listener).
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = mkcp::KcpListener::bind("127.0.0.1:0", mkcp::Config::default()).await?;
/// let closing = tokio::time::timeout(mkcp::CLOSE_TIMEOUT * 2, listener.close()).await;
/// assert!(closing.is_ok());
/// # Ok(()) }
/// ```
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The current time as the core wants it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wakers of one connection held by the application.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    pub(crate) read: Option<Waker>,
    pub(crate) write: Option<Waker>,
}

impl Wakers {
    fn wake_read(&mut self) {
        if let Some(w) = self.read.take() {
            w.wake();
        }
    }
    fn wake_write(&mut self) {
        if let Some(w) = self.write.take() {
            w.wake();
        }
    }
}

/// Everything the socket task and the application handles share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) endpoint: Endpoint,
    /// Connections held by the application (a stream or a half of one).
    pub(crate) conns: HashMap<ConnId, Wakers>,
    accept_queue: VecDeque<ConnId>,
    accept_waker: Option<Waker>,
    /// Handles that can accept (server endpoints, listeners): while there is one, new
    /// sessions are queued for `accept`.
    pub(crate) acceptors: usize,
    /// Live handles (endpoints, listeners, streams). At zero the task winds down.
    pub(crate) handles: usize,
    /// Set by `close`: stop at this deadline even if sessions are still closing.
    closing: Option<Instant>,
    /// The socket task has stopped; nothing will ever be sent or received again.
    pub(crate) done: bool,
    /// [`Shared::abort`] was called: the task must not send anything more.
    aborted: bool,
}

impl Inner {
    /// Routes the endpoint's events to the tasks waiting for them.
    fn route_events(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::NewConnection(id) => {
                    if self.acceptors > 0
                        && self.closing.is_none()
                        && self.accept_queue.len() < ACCEPT_BACKLOG
                    {
                        tracing::debug!(peer = ?self.endpoint.peer(id), "new mKCP session");
                        self.accept_queue.push_back(id);
                        if let Some(w) = self.accept_waker.take() {
                            w.wake();
                        }
                    } else {
                        tracing::debug!(peer = ?self.endpoint.peer(id), "session refused: not accepting");
                        self.endpoint.release(id, now);
                    }
                }
                Event::Connection(id, ev) => {
                    if let Some(w) = self.conns.get_mut(&id) {
                        match ev {
                            ConnEvent::Readable => w.wake_read(),
                            ConnEvent::Writable => w.wake_write(),
                            ConnEvent::Terminated => {
                                w.wake_read();
                                w.wake_write();
                            }
                        }
                    }
                }
            }
        }
    }

    /// True when every session is closed or being closed (the peer has been told).
    fn all_closed(&self) -> bool {
        self.endpoint.connection_ids().into_iter().all(|id| {
            self.endpoint
                .connection(id)
                .is_none_or(|c| matches!(c.state(), State::Terminating | State::Terminated))
        })
    }

    fn should_stop(&self, now: Instant) -> bool {
        if let Some(deadline) = self.closing {
            return now >= deadline || self.all_closed();
        }
        self.handles == 0 && self.all_closed()
    }

    fn wake_all(&mut self) {
        for w in self.conns.values_mut() {
            w.wake_read();
            w.wake_write();
        }
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    /// Takes the next session waiting to be accepted, or registers `waker`.
    pub(crate) fn poll_accept(&mut self, waker: &Waker) -> Option<ConnId> {
        match self.accept_queue.pop_front() {
            Some(id) => {
                self.conns.insert(id, Wakers::default());
                Some(id)
            }
            None => {
                self.accept_waker = Some(waker.clone());
                None
            }
        }
    }

    /// Starts a graceful close of every session; the task stops once all of them have
    /// been told (or at `CLOSE_TIMEOUT`).
    pub(crate) fn begin_close(&mut self, now: Instant) {
        if self.aborted {
            self.closing.get_or_insert(now);
            return;
        }
        self.release_queued(now);
        if self.closing.is_none() {
            self.closing = Some(now + CLOSE_TIMEOUT);
            self.endpoint.close_all(now);
        }
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    /// Closes the sessions nobody accepted (no acceptor is left, or closing).
    pub(crate) fn release_queued(&mut self, now: Instant) {
        for id in self.accept_queue.drain(..) {
            self.endpoint.release(id, now);
        }
    }

    /// Forgets the sessions nobody accepted without closing them (abort).
    fn release_queued_silently(&mut self) {
        self.accept_queue.clear();
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    /// True once the endpoint stopped or is closing (no new sessions are possible).
    pub(crate) fn is_closing(&self) -> bool {
        self.done || self.aborted || self.closing.is_some()
    }
}

/// The shared state of one socket.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the socket task after an application call that may have output.
    wake_driver: Notify,
    pub(crate) local_addr: SocketAddr,
    done_rx: watch::Receiver<bool>,
    abort: Mutex<Option<AbortHandle>>,
}

impl Shared {
    /// Locks the state (a panic elsewhere does not make it unusable).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the socket task to look at the endpoint again.
    pub(crate) fn wake_driver(&self) {
        self.wake_driver.notify_one();
    }

    /// Counts a new endpoint or listener handle (`acceptor`: it can accept sessions).
    pub(crate) fn add_handle(&self, acceptor: bool) {
        let mut inner = self.lock();
        inner.handles += 1;
        inner.acceptors += usize::from(acceptor);
    }

    /// A handle went away.
    pub(crate) fn drop_handle(&self, acceptor: bool) {
        let mut inner = self.lock();
        inner.handles = inner.handles.saturating_sub(1);
        if acceptor {
            inner.acceptors = inner.acceptors.saturating_sub(1);
            if inner.acceptors == 0 {
                inner.release_queued(now());
            }
        }
        drop(inner);
        self.wake_driver();
    }

    /// Waits until the socket task has stopped and closed its socket.
    pub(crate) async fn wait_done(&self) {
        let mut rx = self.done_rx.clone();
        // An error means the task (and its sender) is gone: also done.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Stops the socket task at once, telling no peer.
    pub(crate) fn abort(&self) {
        let mut inner = self.lock();
        inner.aborted = true;
        inner.release_queued_silently();
        drop(inner);
        if let Some(a) = self
            .abort
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            a.abort();
        }
    }
}

/// Binds `socket` to a new shared state and starts its task. The state starts with
/// one handle (the caller's endpoint handle, an acceptor if `acceptor`), counted before
/// the task is spawned: a task that ran first would otherwise see no handle and stop.
pub(crate) fn start(
    socket: UdpSocket,
    endpoint: Endpoint,
    acceptor: bool,
) -> io::Result<Arc<Shared>> {
    let local_addr = socket.local_addr()?;
    let (done_tx, done_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            endpoint,
            conns: HashMap::new(),
            accept_queue: VecDeque::new(),
            accept_waker: None,
            acceptors: usize::from(acceptor),
            handles: 1,
            closing: None,
            done: false,
            aborted: false,
        }),
        wake_driver: Notify::new(),
        local_addr,
        done_rx,
        abort: Mutex::new(None),
    });
    let driver = Driver {
        shared: shared.clone(),
        socket: Some(socket),
        done_tx,
    };
    let handle = tokio::spawn(driver.run());
    *shared.abort.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle.abort_handle());
    Ok(shared)
}

/// The socket task's own state. Dropping it (normal end, abort, runtime shutdown)
/// closes the socket first, then marks the endpoint done and wakes every waiter.
struct Driver {
    shared: Arc<Shared>,
    socket: Option<UdpSocket>,
    done_tx: watch::Sender<bool>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.socket.take());
        let mut inner = self.shared.lock();
        inner.done = true;
        inner.wake_all();
        drop(inner);
        self.done_tx.send_replace(true);
    }
}

/// Received datagrams waiting to be fed to the endpoint.
struct RxBatch {
    buf: Vec<u8>,
    meta: Vec<(SocketAddr, usize)>,
}

impl RxBatch {
    fn new() -> RxBatch {
        RxBatch {
            buf: vec![0; RX_BATCH * RX_SLOT],
            meta: Vec::with_capacity(RX_BATCH),
        }
    }

    /// Receives what the socket has without waiting; returns the number received.
    fn try_recv(&mut self, socket: &UdpSocket) -> usize {
        let start = self.meta.len();
        while self.meta.len() < RX_BATCH {
            let i = self.meta.len();
            let slot = &mut self.buf[i * RX_SLOT..(i + 1) * RX_SLOT];
            match socket.try_recv_from(slot) {
                Ok((n, peer)) => self.meta.push((peer, n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors and the like: UDP is lossy, carry on.
                    tracing::debug!(error = %e, "UDP receive error");
                    break;
                }
            }
        }
        self.meta.len() - start
    }

    fn feed(&mut self, endpoint: &mut Endpoint, now: Instant) {
        for (i, &(peer, n)) in self.meta.iter().enumerate() {
            let slot = &mut self.buf[i * RX_SLOT..i * RX_SLOT + n];
            endpoint.handle_datagram(now, peer, slot);
        }
        self.meta.clear();
    }
}

/// Datagrams taken from the endpoint, waiting to be sent.
struct TxBatch {
    buf: Vec<u8>,
    meta: Vec<(SocketAddr, usize)>,
}

impl TxBatch {
    fn new() -> TxBatch {
        TxBatch {
            buf: vec![0; TX_BATCH * MAX_DATAGRAM],
            meta: Vec::with_capacity(TX_BATCH),
        }
    }

    /// Takes up to `TX_BATCH` datagrams; true if the batch is full (there may be more).
    fn fill(&mut self, endpoint: &mut Endpoint, now: Instant) -> bool {
        while self.meta.len() < TX_BATCH {
            let i = self.meta.len();
            let slot = &mut self.buf[i * MAX_DATAGRAM..(i + 1) * MAX_DATAGRAM];
            match endpoint.poll_transmit(now, slot) {
                Some(t) => self.meta.push((t.destination, t.len)),
                None => return false,
            }
        }
        true
    }

    async fn send(&mut self, socket: &UdpSocket) {
        for (i, &(dest, n)) in self.meta.iter().enumerate() {
            let data = &self.buf[i * MAX_DATAGRAM..i * MAX_DATAGRAM + n];
            let r = match socket.try_send_to(data, dest) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.send_to(data, dest).await,
                r => r,
            };
            if let Err(e) = r {
                // A datagram that cannot be sent is a lost datagram; the protocol copes.
                tracing::debug!(%dest, error = %e, "UDP send error");
            }
        }
        self.meta.clear();
    }
}

impl Driver {
    async fn run(mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let shared = self.shared.clone();
        let mut rx = RxBatch::new();
        let mut tx = TxBatch::new();
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            let now = now();
            let (deadline, more, stop) = {
                let mut inner = shared.lock();
                if inner.aborted {
                    break;
                }
                rx.feed(&mut inner.endpoint, now);
                if inner.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    inner.endpoint.handle_timeout(now);
                }
                inner.route_events(now);
                let more = tx.fill(&mut inner.endpoint, now);
                inner.route_events(now);
                let stop = inner.should_stop(now);
                let mut deadline = inner.endpoint.poll_timeout();
                if let Some(c) = inner.closing {
                    deadline = Some(deadline.map_or(c, |d| d.min(c)));
                }
                (deadline, more, stop)
            };
            tx.send(&socket).await;
            if stop {
                break;
            }
            if more {
                // More to send: take what arrived meanwhile, then go round again.
                rx.try_recv(&socket);
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(d) = deadline {
                if d <= now {
                    // Already due (a timer that fired while we were busy).
                    tokio::task::yield_now().await;
                    continue;
                }
                sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            }
            tokio::select! {
                biased;
                r = socket.readable() => {
                    if r.is_ok() {
                        rx.try_recv(&socket);
                    }
                }
                _ = shared.wake_driver.notified() => {}
                _ = &mut sleep, if deadline.is_some() => {}
            }
        }
        // Put the socket back so that Drop closes it before signalling "done".
        self.socket = Some(socket);
    }
}
