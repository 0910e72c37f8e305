//! Copies one mKCP stream and one TCP stream into each other, half-close aware.
//!
//! * TCP end-of-file: everything read is written into the mKCP stream, which is then
//!   shut down for writing (the peer reads end-of-stream);
//! * mKCP end-of-stream: everything read is written to TCP, then `shutdown(Write)`;
//! * the pump finishes when both directions have finished, or at the first error.
//!
//! Unlike `tokio::io::copy_bidirectional`, the pump owns both streams and keeps the mKCP
//! connection's counters current in the session's [`Session`] while it runs (every
//! [`STATS_EVERY`]), and it stops early when the tunnel shuts down.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use mkcp_proto::ConnectionStats;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Interval, MissedTickBehavior, Sleep};

use crate::stats::Session;

/// How often a running session's connection counters are copied to its [`Session`].
pub const STATS_EVERY: Duration = Duration::from_millis(250);

/// Size of each direction's copy buffer.
const BUF: usize = 64 * 1024;

/// A stream whose transport counters can be read while it is in use.
pub trait StatsSource {
    /// The current counters.
    fn stats_snapshot(&self) -> ConnectionStats;
}

impl StatsSource for crate::transport::KcpStream {
    fn stats_snapshot(&self) -> ConnectionStats {
        self.stats()
    }
}

/// How a pump ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both directions reached end-of-stream and were shut down.
    Finished,
    /// The stop signal came first; the streams are left as they are.
    Stopped,
    /// One direction had ended and the other then carried nothing for the linger time
    /// (see [`Pump::with_linger`]).
    Lingered,
}

/// Which side failed.
#[derive(Debug)]
pub enum PumpError {
    /// Reading the TCP stream or writing the mKCP stream (TCP -> mKCP).
    ToKcp(io::Error),
    /// Reading the mKCP stream or writing the TCP stream (mKCP -> TCP).
    FromKcp(io::Error),
}

impl std::fmt::Display for PumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PumpError::ToKcp(e) => write!(f, "tcp->kcp: {e}"),
            PumpError::FromKcp(e) => write!(f, "kcp->tcp: {e}"),
        }
    }
}

impl std::error::Error for PumpError {}

/// One direction's state.
struct Half {
    buf: Box<[u8]>,
    pos: usize,
    cap: usize,
    eof: bool,
    need_flush: bool,
    done: bool,
}

impl Half {
    fn new() -> Half {
        Half {
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            cap: 0,
            eof: false,
            need_flush: false,
            done: false,
        }
    }

    /// Moves data from `r` to `w` until `r` ends (then flushes and shuts `w` down) or
    /// something would block.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        counter: &AtomicU64,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.pos == self.cap && !self.eof {
                let mut rb = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            self.eof = true;
                        } else {
                            self.pos = 0;
                            self.cap = n;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Nothing more to read for now: push out what was written.
                        if self.need_flush {
                            ready!(Pin::new(&mut *w).poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.cap {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.need_flush = true;
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            if self.eof && self.pos == self.cap {
                ready!(Pin::new(&mut *w).poll_flush(cx))?;
                self.need_flush = false;
                ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                self.done = true;
            }
        }
    }
}

/// The bidirectional copy; see the [module docs](self). Await it with
/// [`Pump::run`], then take the streams back with [`Pump::into_inner`].
pub struct Pump<K, T> {
    kcp: K,
    tcp: T,
    to_kcp: Half,
    from_kcp: Half,
    session: Arc<Session>,
    tick: Interval,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    linger: Option<Duration>,
    linger_timer: Option<Pin<Box<Sleep>>>,
    /// Bytes moved both ways when the linger timer was last armed.
    moved_at_arm: u64,
}

impl<K, T> Pump<K, T>
where
    K: AsyncRead + AsyncWrite + StatsSource + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// A pump between `kcp` and `tcp`, counting into `session`, that ends early with
    /// [`Ended::Stopped`] when `stop` completes.
    pub fn new(
        kcp: K,
        tcp: T,
        session: Arc<Session>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Pump<K, T> {
        let mut tick = tokio::time::interval(STATS_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Pump {
            kcp,
            tcp,
            to_kcp: Half::new(),
            from_kcp: Half::new(),
            session,
            tick,
            stop: Box::pin(stop),
            linger: None,
            linger_timer: None,
            moved_at_arm: 0,
        }
    }

    /// Once one direction has ended, end with [`Ended::Lingered`] when the other has
    /// moved nothing for `linger`. This is V2Ray's policy (`uplinkOnly`/`downlinkOnly`)
    /// and what makes sessions with V2Ray peers end: V2Ray never sends a half-close, and
    /// never learns of ours. `None` waits for both directions to end.
    pub fn with_linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger.filter(|d| !d.is_zero());
        self
    }

    fn moved(&self) -> u64 {
        self.session.to_kcp.load(Ordering::Relaxed) + self.session.from_kcp.load(Ordering::Relaxed)
    }

    /// Runs until both directions are done, an error, or the stop signal.
    pub async fn run(&mut self) -> Result<Ended, PumpError> {
        let result = std::future::poll_fn(|cx| self.poll_run(cx)).await;
        self.session.set_stats(self.kcp.stats_snapshot());
        result
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<Ended, PumpError>> {
        while self.tick.poll_tick(cx).is_ready() {
            self.session.set_stats(self.kcp.stats_snapshot());
        }
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(Ended::Stopped));
        }
        let up = self
            .to_kcp
            .poll_copy(cx, &mut self.tcp, &mut self.kcp, &self.session.to_kcp)
            .map_err(PumpError::ToKcp)?;
        let down = self
            .from_kcp
            .poll_copy(cx, &mut self.kcp, &mut self.tcp, &self.session.from_kcp)
            .map_err(PumpError::FromKcp)?;
        if up.is_ready() && down.is_ready() {
            return Poll::Ready(Ok(Ended::Finished));
        }
        if let Some(linger) = self.linger {
            if up.is_ready() || down.is_ready() {
                let moved = self.moved();
                let deadline = tokio::time::Instant::now() + linger;
                match &mut self.linger_timer {
                    None => {
                        self.linger_timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                        self.moved_at_arm = moved;
                    }
                    Some(timer) if moved != self.moved_at_arm => {
                        timer.as_mut().reset(deadline);
                        self.moved_at_arm = moved;
                    }
                    Some(_) => {}
                }
                if let Some(timer) = &mut self.linger_timer {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(Ended::Lingered));
                    }
                }
            }
        }
        Poll::Pending
    }

    /// Whether the TCP -> mKCP direction has finished (TCP ended, mKCP shut down).
    #[cfg(test)]
    pub fn to_kcp_done(&self) -> bool {
        self.to_kcp.done
    }

    /// The two streams, `(kcp, tcp)`.
    pub fn into_inner(self) -> (K, T) {
        (self.kcp, self.tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A duplex pipe standing in for the mKCP stream.
    struct FakeKcp(DuplexStream);

    impl StatsSource for FakeKcp {
        fn stats_snapshot(&self) -> ConnectionStats {
            let mut s = ConnectionStats::default();
            s.srtt_ms = 42;
            s
        }
    }

    impl AsyncRead for FakeKcp {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for FakeKcp {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn half_close_each_way_then_finish() {
        let (kcp_near, mut kcp_far) = duplex(8 * 1024);
        let (tcp_near, mut tcp_far) = duplex(8 * 1024);
        let session = Arc::new(Session::default());
        let mut pump = Pump::new(
            FakeKcp(kcp_near),
            tcp_near,
            session.clone(),
            std::future::pending(),
        );
        let task = tokio::spawn(async move {
            let r = pump.run().await;
            (r.map_err(|e| e.to_string()), pump.to_kcp_done())
        });

        // TCP side sends 300 kB and ends; the mKCP side must read all of it, then EOF,
        // while it can still send its own data the other way.
        let up = pattern(300_000);
        let down = pattern(123_457);
        let up2 = up.clone();
        let writer = tokio::spawn(async move {
            tcp_far.write_all(&up2).await.unwrap();
            tcp_far.shutdown().await.unwrap();
            let mut got = Vec::new();
            tcp_far.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut got_up = Vec::new();
        kcp_far.read_to_end(&mut got_up).await.unwrap();
        assert_eq!(got_up, up);
        kcp_far.write_all(&down).await.unwrap();
        kcp_far.shutdown().await.unwrap();
        let got_down = writer.await.unwrap();
        assert_eq!(got_down, down);

        let (result, to_kcp_done) = task.await.unwrap();
        assert_eq!(result.unwrap(), Ended::Finished);
        assert!(to_kcp_done);
        assert_eq!(session.to_kcp.load(Ordering::Relaxed), 300_000);
        assert_eq!(session.from_kcp.load(Ordering::Relaxed), 123_457);
        assert_eq!(session.stats().srtt_ms, 42);
    }

    #[tokio::test]
    async fn stop_signal_ends_early() {
        let (kcp_near, _kcp_far) = duplex(1024);
        let (tcp_near, _tcp_far) = duplex(1024);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut pump = Pump::new(
            FakeKcp(kcp_near),
            tcp_near,
            Arc::new(Session::default()),
            async move {
                let _ = rx.await;
            },
        );
        let task = tokio::spawn(async move { pump.run().await.map_err(|e| e.to_string()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.unwrap(), Ended::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn linger_ends_a_half_closed_silent_session() {
        let (kcp_near, mut kcp_far) = duplex(1024);
        let (tcp_near, mut tcp_far) = duplex(1024);
        let mut pump = Pump::new(
            FakeKcp(kcp_near),
            tcp_near,
            Arc::new(Session::default()),
            std::future::pending(),
        )
        .with_linger(Some(Duration::from_secs(5)));
        // TCP ends at once; the mKCP side keeps the other direction busy for a while.
        tcp_far.shutdown().await.unwrap();
        let busy = tokio::spawn(async move {
            for _ in 0..8 {
                kcp_far.write_all(b"tick").await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            kcp_far
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = tcp_far.read_to_end(&mut got).await;
            got.len()
        });
        let start = tokio::time::Instant::now();
        let ended = pump.run().await.unwrap();
        assert_eq!(ended, Ended::Lingered);
        // 8 ticks 2 s apart keep it alive for 14 s; it ends 5 s after the last.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(19) && took <= Duration::from_secs(20),
            "{took:?}"
        );
        drop(pump);
        drop(busy.await.unwrap());
        assert_eq!(reader.await.unwrap(), 32);
    }

    #[tokio::test]
    async fn errors_name_the_direction() {
        let (kcp_near, kcp_far) = duplex(1024);
        let (tcp_near, mut tcp_far) = duplex(1024);
        drop(kcp_far);
        let mut pump = Pump::new(
            FakeKcp(kcp_near),
            tcp_near,
            Arc::new(Session::default()),
            std::future::pending(),
        );
        tcp_far.write_all(b"hello").await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), pump.run())
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().starts_with("tcp->kcp: "), "{e}");
    }
}
