//! The state shared by a socket's driver task and the application's handles
//! ([`crate::KcpEndpoint`], [`crate::KcpListener`], [`crate::KcpStream`]).
//!
//! Everything lives in one [`Shared`] behind a `std::sync::Mutex`, held only for the
//! duration of core calls (never across an `.await`). Application calls lock it, call the
//! sans-IO [`Endpoint`], register their [`Waker`] and poke the driver
//! ([`Shared::wake_driver`]); the driver (`driver.rs`) routes the endpoint's events back
//! to those wakers ([`Inner::route_events`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use mkcp_proto::{ConnEvent, ConnId, Endpoint, Event, State};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

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
    pub(crate) closing: Option<Instant>,
    /// The socket task has stopped; nothing will ever be sent or received again.
    pub(crate) done: bool,
    /// [`Shared::abort`] was called: the task must not send anything more.
    pub(crate) aborted: bool,
    /// A rate limit this socket shares with others (`limit.rs`), consulted by the driver.
    pub(crate) limiter: Option<crate::RateLimiter>,
}

impl Inner {
    /// Routes the endpoint's events to the tasks waiting for them.
    pub(crate) fn route_events(&mut self, now: Instant) {
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
                            // Terminated, and whatever a later core reports: a
                            // spurious wake-up is harmless, a missed one is not.
                            _ => {
                                w.wake_read();
                                w.wake_write();
                            }
                        }
                    }
                }
                // An event this runtime does not know yet concerns no waiter.
                _ => {}
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

    pub(crate) fn should_stop(&self, now: Instant) -> bool {
        if let Some(deadline) = self.closing {
            return now >= deadline || self.all_closed();
        }
        self.handles == 0 && self.all_closed()
    }

    pub(crate) fn wake_all(&mut self) {
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
    /// A new shared state for `endpoint` on a socket bound to `local_addr`, with one
    /// handle (the caller's, an acceptor if `acceptor`). The sender is the driver's: it
    /// says "done" once the socket is closed.
    pub(crate) fn new(
        endpoint: Endpoint,
        acceptor: bool,
        local_addr: SocketAddr,
    ) -> (Arc<Shared>, watch::Sender<bool>) {
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
                limiter: None,
            }),
            wake_driver: Notify::new(),
            local_addr,
            done_rx,
            abort: Mutex::new(None),
        });
        (shared, done_tx)
    }

    /// Remembers how to stop the driver task ([`Shared::abort`]).
    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        *self.abort.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// Resolves after the next [`Shared::wake_driver`] (or at once if one is pending).
    pub(crate) async fn driver_woken(&self) {
        self.wake_driver.notified().await;
    }

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
