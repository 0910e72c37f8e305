//! The socket task: one tokio task per UDP socket drives the sans-IO [`Endpoint`].
//!
//! ```text
//!   app tasks (KcpStream, KcpListener)          socket task (this file)
//!     lock; endpoint.read/write/...; unlock       loop {
//!     wake_driver.notify_one()  ───────────────▶    lock: feed received datagrams,
//!     wait on the per-connection waker ◀────────      run due timers, route events to
//!                                                     wakers, take datagrams to send; unlock
//!                                                   send them (batched, udp.rs)
//!                                                   wait: socket readable | notify | timer
//!                                                 }
//! ```
//!
//! The state the task shares with the application is in `shared.rs`; the batched
//! socket in `udp.rs`. There is no task and no timer per connection: the endpoint
//! reports one deadline for all of them ([`Endpoint::poll_timeout`]) and the task sleeps
//! until it.
//!
//! The task ends when the endpoint is closed (after every session has been told, or a
//! short deadline), or when no handle is left and every session has finished
//! closing. Either way the socket is closed *before* waiters of [`Shared::wait_done`]
//! are released, so the address can be bound again at once.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mkcp_proto::Endpoint;
use tokio::net::UdpSocket;
use tokio::sync::watch;

pub(crate) use crate::shared::{now, Inner, Shared, Wakers};
use crate::udp::{TxBatch, UdpIo};

/// Binds `socket` to a new shared state and starts its task. The state starts with
/// one handle (the caller's endpoint handle, an acceptor if `acceptor`), counted before
/// the task is spawned: a task that ran first would otherwise see no handle and stop.
pub(crate) fn start(
    socket: UdpSocket,
    endpoint: Endpoint,
    acceptor: bool,
) -> io::Result<Arc<Shared>> {
    let socket = UdpIo::new(socket)?;
    let (shared, done_tx) = Shared::new(endpoint, acceptor, socket.local_addr()?);
    let driver = Driver {
        shared: shared.clone(),
        socket: Some(socket),
        done_tx,
    };
    let handle = tokio::spawn(driver.run());
    shared.set_abort_handle(handle.abort_handle());
    Ok(shared)
}

/// The socket task's own state. Dropping it (normal end, abort, runtime shutdown)
/// closes the socket first, then marks the endpoint done and wakes every waiter.
struct Driver {
    shared: Arc<Shared>,
    socket: Option<UdpIo>,
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

impl Driver {
    async fn run(mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let shared = self.shared.clone();
        let mut rx = socket.rx_batch();
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
                feed(&mut inner, &mut rx, now);
                if inner.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    inner.endpoint.handle_timeout(now);
                }
                inner.route_events(now);
                // A shared rate limit (limit.rs): take no more than its budget; while it
                // is in debt, take nothing and wake when it is paid.
                let mut limited = None;
                let more = match &inner.limiter {
                    None => tx.fill(&mut inner.endpoint, now),
                    Some(limiter) => match limiter.budget(now) {
                        Ok(budget) => {
                            let limiter = limiter.clone();
                            let more = tx.fill_up_to(&mut inner.endpoint, now, budget);
                            limiter.charge(now, tx.bytes());
                            if more {
                                limited = limiter.budget(now).err();
                            }
                            more && limited.is_none()
                        }
                        Err(at) => {
                            limited = Some(at);
                            false
                        }
                    },
                };
                inner.route_events(now);
                let stop = inner.should_stop(now);
                let mut deadline = inner.endpoint.poll_timeout();
                if let Some(at) = limited {
                    // What is ready to go waits for the limit; other timers still count.
                    deadline = Some(deadline.filter(|d| *d > now).map_or(at, |d| d.min(at)));
                }
                if let Some(c) = inner.closing {
                    deadline = Some(deadline.map_or(c, |d| d.min(c)));
                }
                (deadline, more, stop)
            };
            if !tx.is_empty() {
                socket.send(&mut tx).await;
            }
            if stop {
                break;
            }
            if more {
                // More to send: take what arrived meanwhile, then go round again.
                socket.try_recv(&mut rx);
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
                        socket.try_recv(&mut rx);
                    }
                }
                _ = shared.driver_woken() => {}
                _ = &mut sleep, if deadline.is_some() => {}
            }
        }
        // Put the socket back so that Drop closes it before signalling "done".
        self.socket = Some(socket);
    }
}

/// Feeds every received datagram to the endpoint.
fn feed(inner: &mut Inner, rx: &mut crate::udp::RxBatch, now: std::time::Instant) {
    if !rx.is_empty() {
        inner.endpoint.handle_datagrams(now, rx.drain());
    }
}
