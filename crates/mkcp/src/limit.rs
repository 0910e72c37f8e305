//! A rate limit shared by many sockets: the process-wide cap (`mkcp --max-rate-total`,
//! docs/DESIGN.md "Rate limits").
//!
//! A [`RateLimiter`] is a token bucket behind an `Arc<Mutex<_>>`, so any number of
//! socket tasks (one per dialled stream, or the shards of a listener) can share it from
//! any thread. Each socket task asks it before taking datagrams from its endpoint
//! (`driver.rs`): it takes at most what the bucket holds, charges what it took, and
//! while the bucket is in debt it waits until [`RateLimiter`] says it may go on. What
//! waits stays inside the sans-IO endpoint, unsent and not yet timestamped, so the
//! sessions' own rate models see the limit as a slower path and pace themselves to
//! their share instead of building a queue.
//!
//! The limit counts UDP payload bytes as they leave the socket (every datagram: data,
//! acknowledgements, keep-alives; envelope and obfuscation header included).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The bucket holds at most this long a run at the rate, so a socket task that wakes
/// late (timers are 1 ms coarse; the machine may be busy) loses nothing.
const BURST: Duration = Duration::from_millis(20);
/// ... and at least this many bytes (a dozen full datagrams).
const MIN_BURST: u64 = 16 * 1024;

/// A limit on the bytes per second that every socket using it sends together.
///
/// Clones share one bucket. Give the same limiter to every endpoint, listener and
/// stream that the limit is for ([`crate::KcpEndpoint::set_rate_limiter`],
/// [`crate::KcpListener::set_rate_limiter`], [`crate::KcpStream::connect_with`]).
///
/// ```
/// use mkcp::{Config, KcpListener, KcpStream, RateLimiter};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// // All streams of this process together send at most 2 MiB/s.
/// let total = RateLimiter::new(2 << 20);
/// let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
/// listener.set_rate_limiter(Some(total.clone()));
/// let stream = KcpStream::connect_with(listener.local_addr()?, Config::default(), Some(total.clone())).await?;
/// assert_eq!(total.rate(), 2 << 20);
/// # drop(stream); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    burst: f64,
    /// Bytes that may be sent now; negative: a debt to wait off.
    tokens: f64,
    last: Option<Instant>,
    accounting: Accounting,
}

/// What a [`RateLimiter`] has let through, on the runtime's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accounting {
    /// Bytes charged (sent) in all.
    pub bytes: u64,
    /// Datagram batches charged.
    pub batches: u64,
    /// When the first batch was charged.
    pub first: Option<Instant>,
    /// When the last batch was charged.
    pub last: Option<Instant>,
    /// The bucket's size in bytes: at any time, what was sent since `first` is at most
    /// this plus the rate times the time since `first`, plus one batch.
    pub burst: u64,
}

impl RateLimiter {
    /// A limiter of `bytes_per_sec` (at least 1). The bucket starts full.
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1);
        let burst = (u128::from(rate) * BURST.as_micros() / 1_000_000) as u64;
        let burst = burst.max(MIN_BURST) as f64;
        RateLimiter {
            bucket: Arc::new(Mutex::new(Bucket {
                rate,
                burst,
                tokens: burst,
                last: None,
                accounting: Accounting {
                    bytes: 0,
                    batches: 0,
                    first: None,
                    last: None,
                    burst: burst as u64,
                },
            })),
        }
    }

    /// The limit in bytes per second.
    pub fn rate(&self) -> u64 {
        self.lock().rate
    }

    /// What has been let through so far.
    pub fn accounting(&self) -> Accounting {
        self.lock().accounting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many bytes may go at `now`: `Ok(bytes)` (at least 1), or `Err(at)` when the
    /// bucket is in debt until `at`.
    pub(crate) fn budget(&self, now: Instant) -> Result<usize, Instant> {
        let mut b = self.lock();
        b.refill(now);
        if b.tokens > 0.0 {
            Ok((b.tokens.ceil() as usize).max(1))
        } else {
            let wait_us = ((-b.tokens) * 1e6 / b.rate as f64).ceil().max(1.0);
            Err(now + Duration::from_micros(wait_us as u64))
        }
    }

    /// Accounts for `bytes` sent at `now` (the bucket may go into debt).
    pub(crate) fn charge(&self, now: Instant, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut b = self.lock();
        b.refill(now);
        b.tokens -= bytes as f64;
        let a = &mut b.accounting;
        a.bytes += bytes as u64;
        a.batches += 1;
        a.first.get_or_insert(now);
        a.last = Some(now);
    }
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_the_rate_through_and_no_more() {
        let l = RateLimiter::new(1_000_000); // 1 MB/s: a 20 kB bucket
        let t0 = Instant::now();
        assert_eq!(l.budget(t0), Ok(20_000));
        l.charge(t0, 30_000); // a batch may overdraw: 10 kB of debt
        let Err(at) = l.budget(t0) else {
            panic!("in debt")
        };
        assert_eq!(at - t0, Duration::from_millis(10));
        // 1 ms after the debt is paid: 1 kB.
        assert_eq!(l.budget(at + Duration::from_millis(1)), Ok(1000));
        // A long pause fills the bucket only to its size.
        assert_eq!(l.budget(t0 + Duration::from_secs(10)), Ok(20_000));
        let a = l.accounting();
        assert_eq!(
            (a.bytes, a.batches, a.first, a.last),
            (30_000, 1, Some(t0), Some(t0))
        );
    }

    #[test]
    fn clones_share_one_bucket() {
        let a = RateLimiter::new(1_000_000);
        let b = a.clone();
        let t0 = Instant::now();
        a.charge(t0, 20_000);
        assert!(b.budget(t0).is_err());
        assert_eq!(b.accounting().bytes, 20_000);
    }
}
