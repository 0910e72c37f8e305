//! A pure, sans-IO model of **one direction** of a network path.
//!
//! A [`Link`] takes packets in with [`Link::push`] and hands them out, at their delivery
//! time, with [`Link::poll`]. It never reads a clock: every call takes `now` as a value, so
//! the same model runs under a virtual clock ([`crate::net::Network`]) and under real time
//! (`mkcp-netem`'s relay).
//!
//! # What happens to a packet
//!
//! ```text
//!  push(now, len, p)
//!    | 1. random loss (`loss`)                   -> dropped_loss   (on entry, like loss on the wire:
//!    |                                                               a lost packet takes no queue room)
//!    | 2. duplication (`duplicate`): a second copy follows the original through steps 3-5
//!    | 3. in-flight cap (`limit`)                -> dropped_queue
//!    | 4. bottleneck (`rate_bps`, `queue_bytes`): the packet waits behind the bytes not yet
//!    |    serialized; tail drop if they would exceed `queue_bytes` -> dropped_queue
//!    |    it leaves the bottleneck when its last bit is serialized: `departure`
//!    | 5. propagation: departure + delay + U[0, jitter], never earlier than the packet
//!    |    before it (jitter does not reorder); with probability `reorder` the packet is held
//!    |    back a further `reorder_extra`, so packets behind it overtake it
//!    v
//!  poll(now) -> packets whose delivery time is <= now, in delivery-time order
//! ```
//!
//! `delay` is therefore the *minimum* one-way delay (plus serialization at `rate_bps`), and
//! `jitter` only ever adds to it. Because jitter preserves order, closely spaced packets
//! tend to share the latest delivery time drawn among them (a FIFO path with variable
//! queueing behaves the same way); only `reorder` changes the order of packets.
//!
//! Deliveries are kept in a min-heap keyed by (delivery time, arrival sequence), so every
//! operation is O(log n) and packets due at the same instant come out in the order they
//! went in.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mkcp_sim::link::{Link, LinkConfig, Verdict};
//!
//! let t0 = Instant::now(); // the only clock read: the model itself never reads one
//! let ms = Duration::from_millis;
//! let mut link = Link::new(LinkConfig::default().delay(ms(30)).seed(7));
//!
//! assert!(matches!(link.push(t0, 100, "hello"), Verdict::Scheduled { .. }));
//! assert_eq!(link.next_delivery(), Some(t0 + ms(30)));
//! assert_eq!(link.poll(t0 + ms(29)), None);
//! assert_eq!(link.poll(t0 + ms(30)), Some("hello"));
//! assert_eq!(link.stats().packets_out, 1);
//! ```

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Impairments of one direction of a path. `Default` is a perfect link: no delay, no loss,
/// unlimited rate and queue.
///
/// Build one with the chained setters:
///
/// ```
/// use std::time::Duration;
/// use mkcp_sim::link::LinkConfig;
///
/// let cfg = LinkConfig::default()
///     .delay(Duration::from_millis(40))
///     .jitter(Duration::from_millis(5))
///     .loss(0.02)
///     .rate_bps(20_000_000)
///     .queue_bytes(64 * 1024)
///     .seed(1);
/// assert_eq!(cfg.loss, 0.02);
/// ```
///
/// Probabilities outside `0..=1` are clamped and NaN counts as 0, so no value can make the
/// model panic.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Minimum one-way propagation delay, added after serialization.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet; never reorders packets.
    pub jitter: Duration,
    /// Probability that a packet is lost on entry (`0.0..=1.0`).
    pub loss: f64,
    /// Probability that a packet is delivered twice (`0.0..=1.0`).
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_extra`, so later packets overtake
    /// it (`0.0..=1.0`).
    pub reorder: f64,
    /// How long a reordered packet is held back beyond its normal delivery time.
    pub reorder_extra: Duration,
    /// Bottleneck rate in bits per second; `None` is unlimited (no serialization delay and
    /// no queue). `Some(0)` passes nothing: every packet is a queue drop.
    pub rate_bps: Option<u64>,
    /// Capacity of the bottleneck queue in bytes waiting to be serialized (tail drop).
    /// Only meaningful with `rate_bps`. An empty queue always admits one packet, however
    /// large. `usize::MAX` (the default) is unbounded.
    pub queue_bytes: usize,
    /// Maximum number of packets held by the link at once (queued and propagating), like
    /// netem's `limit`; further packets are counted in `dropped_queue`. Bounds memory when
    /// there is no rate limit. `usize::MAX` (the default) is unbounded.
    pub limit: usize,
    /// Seed of the link's random number generator: same seed and same inputs give the same
    /// drops, copies and delivery times.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::perfect()
    }
}

impl LinkConfig {
    /// A perfect link: instant, lossless, unlimited. Same as `LinkConfig::default()`.
    pub const fn perfect() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_extra: Duration::ZERO,
            rate_bps: None,
            queue_bytes: usize::MAX,
            limit: usize::MAX,
            seed: 0,
        }
    }

    /// Sets the minimum one-way delay.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the jitter: each packet gets an extra delay uniform in `0..=jitter`.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the loss probability (`0.0..=1.0`).
    #[must_use]
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the duplication probability (`0.0..=1.0`).
    #[must_use]
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the reordering probability and how long a reordered packet is held back.
    #[must_use]
    pub fn reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_extra = extra;
        self
    }

    /// Limits the bottleneck rate to `bps` bits per second.
    #[must_use]
    pub fn rate_bps(mut self, bps: u64) -> Self {
        self.rate_bps = Some(bps);
        self
    }

    /// Bounds the bottleneck queue to `bytes` (tail drop beyond).
    #[must_use]
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Bounds the number of packets held by the link at once.
    #[must_use]
    pub fn limit(mut self, packets: usize) -> Self {
        self.limit = packets;
        self
    }

    /// Sets the random seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// True when the link neither delays, drops, copies nor reorders anything.
    pub fn is_perfect(&self) -> bool {
        self.delay.is_zero()
            && self.jitter.is_zero()
            && prob(self.loss) == 0.0
            && prob(self.duplicate) == 0.0
            && (prob(self.reorder) == 0.0 || self.reorder_extra.is_zero())
            && self.rate_bps.is_none()
            && self.limit == usize::MAX
    }
}

/// A probability made safe: NaN is 0, the rest is clamped into `0..=1`.
fn prob(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Counters of one link (one direction). Packets and bytes in are everything offered to
/// [`Link::push`]; every packet in (plus every copy made) ends up dropped, delivered, or
/// still in the link:
///
/// `packets_in + duplicated == dropped_loss + dropped_queue + packets_out + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Packets offered to the link.
    pub packets_in: u64,
    /// Bytes offered to the link.
    pub bytes_in: u64,
    /// Packets dropped by random loss.
    pub dropped_loss: u64,
    /// Packets (originals or copies) dropped because the bottleneck queue or the link's
    /// packet limit was full.
    pub dropped_queue: u64,
    /// Extra copies scheduled by duplication (before any queue drop of the copy).
    pub duplicated: u64,
    /// Packets handed out by [`Link::poll`].
    pub packets_out: u64,
    /// Bytes handed out by [`Link::poll`].
    pub bytes_out: u64,
}

impl LinkStats {
    /// All packets dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_queue
    }
}

/// What [`Link::push`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Lost on entry (random loss); the packet was dropped.
    Lost,
    /// Dropped at the bottleneck: its queue (or the link's packet limit) was full.
    QueueFull,
    /// Scheduled for delivery at `at`. If the packet was duplicated, `copy_at` is when the
    /// copy will arrive (`None` if there was no copy or the copy was dropped).
    Scheduled {
        /// Delivery time of the packet.
        at: Instant,
        /// Delivery time of its duplicate, if one was scheduled.
        copy_at: Option<Instant>,
    },
}

/// A scheduled delivery: ordered by (time, sequence) only, so `P` needs no `Ord`.
#[derive(Debug)]
struct Scheduled<P> {
    at: Instant,
    seq: u64,
    len: usize,
    packet: P,
}

impl<P> PartialEq for Scheduled<P> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<P> Eq for Scheduled<P> {}

impl<P> PartialOrd for Scheduled<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<P> Ord for Scheduled<P> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of a simulated path, generic over the packet type `P`.
///
/// See the [module docs](self) for the order in which impairments apply.
#[derive(Debug)]
pub struct Link<P> {
    cfg: LinkConfig,
    rng: StdRng,
    heap: BinaryHeap<Scheduled<P>>,
    next_seq: u64,
    /// When the bottleneck finishes serializing everything admitted so far.
    busy_until: Option<Instant>,
    /// Delivery time of the last packet that was not reordered: later ones never arrive
    /// before it (jitter keeps order).
    fifo_floor: Option<Instant>,
    stats: LinkStats,
}

impl<P> Link<P> {
    /// A link with the given impairments and an RNG seeded from `cfg.seed`.
    pub fn new(cfg: LinkConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            heap: BinaryHeap::new(),
            next_seq: 0,
            busy_until: None,
            fifo_floor: None,
            stats: LinkStats::default(),
        }
    }

    /// The link's current impairments.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Changes the impairments from now on (an outage, a rate change...). Packets already in
    /// the link keep their delivery times, and the RNG carries on: `cfg.seed` is ignored.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        self.cfg = cfg;
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Packets held by the link (queued or propagating), not yet handed out.
    pub fn in_flight(&self) -> usize {
        self.heap.len()
    }

    /// When the next packet is due, if any.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.heap.peek().map(|s| s.at)
    }

    /// Bytes waiting at the bottleneck at `now` (not yet serialized). Always 0 without a
    /// rate limit.
    pub fn backlog_bytes(&self, now: Instant) -> usize {
        match (self.cfg.rate_bps, self.busy_until) {
            (Some(rate), Some(busy)) => backlog(busy.saturating_duration_since(now), rate),
            _ => 0,
        }
    }

    /// Offers a packet of `len` wire bytes at `now`. `P: Clone` is needed only to make a
    /// duplicate.
    ///
    /// `now` should not go backwards between calls; if it does, it is treated as the
    /// latest time seen by the bottleneck, and nothing panics.
    pub fn push(&mut self, now: Instant, len: usize, packet: P) -> Verdict
    where
        P: Clone,
    {
        self.stats.packets_in += 1;
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(len as u64);

        if self.chance(self.cfg.loss) {
            self.stats.dropped_loss += 1;
            return Verdict::Lost;
        }
        let copy = if self.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            Some(packet.clone())
        } else {
            None
        };
        let Some(at) = self.schedule(now, len, packet) else {
            // The copy, if any, would meet the same full queue: it is dropped too.
            if copy.is_some() {
                self.stats.dropped_queue += 1;
            }
            return Verdict::QueueFull;
        };
        let copy_at = copy.and_then(|c| self.schedule(now, len, c));
        Verdict::Scheduled { at, copy_at }
    }

    /// Hands out the earliest packet due at or before `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<P> {
        self.poll_scheduled(now).map(|(_, p)| p)
    }

    /// Like [`poll`](Self::poll), also returning the time the packet was due.
    pub fn poll_scheduled(&mut self, now: Instant) -> Option<(Instant, P)> {
        if self.heap.peek()?.at > now {
            return None;
        }
        let s = self.heap.pop()?;
        self.stats.packets_out += 1;
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(s.len as u64);
        Some((s.at, s.packet))
    }

    /// Drops every packet in the link without counting it out; counters are kept. Use it to
    /// model a path that loses everything in flight (a route change, a reboot).
    pub fn clear(&mut self) -> usize {
        let n = self.heap.len();
        self.heap.clear();
        self.busy_until = None;
        self.fifo_floor = None;
        self.stats.dropped_queue += n as u64;
        n
    }

    /// Draws one Bernoulli trial; draws nothing for probability 0, so a perfect link uses
    /// no randomness at all.
    fn chance(&mut self, p: f64) -> bool {
        let p = prob(p);
        p > 0.0 && self.rng.gen::<f64>() < p
    }

    /// Steps 3-5 of the module docs for one copy; `None` if it was dropped at the queue.
    fn schedule(&mut self, now: Instant, len: usize, packet: P) -> Option<Instant> {
        if self.heap.len() >= self.cfg.limit {
            self.stats.dropped_queue += 1;
            return None;
        }
        let departure = match self.cfg.rate_bps {
            None => now,
            Some(rate) => {
                let start = match self.busy_until {
                    Some(busy) if busy > now => busy,
                    _ => now,
                };
                let queued = backlog(start.saturating_duration_since(now), rate);
                let fits = queued
                    .checked_add(len)
                    .is_some_and(|total| total <= self.cfg.queue_bytes);
                let done = serialization(len, rate).and_then(|d| start.checked_add(d));
                match done {
                    Some(done) if queued == 0 || fits => {
                        self.busy_until = Some(done);
                        done
                    }
                    _ => {
                        self.stats.dropped_queue += 1;
                        return None;
                    }
                }
            }
        };

        let jitter = self.draw_jitter();
        let reordered = self.chance(self.cfg.reorder);
        let mut at = match departure
            .checked_add(self.cfg.delay)
            .and_then(|t| t.checked_add(jitter))
        {
            Some(at) => at,
            // Delivery time past what `Instant` can hold: never delivered.
            None => {
                self.stats.dropped_loss += 1;
                return None;
            }
        };
        if reordered {
            match at.checked_add(self.cfg.reorder_extra) {
                Some(later) => at = later,
                None => {
                    self.stats.dropped_loss += 1;
                    return None;
                }
            }
        } else {
            if let Some(floor) = self.fifo_floor {
                at = at.max(floor);
            }
            self.fifo_floor = Some(at);
        }

        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Scheduled {
            at,
            seq,
            len,
            packet,
        });
        Some(at)
    }

    /// Extra delay uniform in `0..=jitter` (nanosecond resolution).
    fn draw_jitter(&mut self) -> Duration {
        if self.cfg.jitter.is_zero() {
            return Duration::ZERO;
        }
        let max = u64::try_from(self.cfg.jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.gen_range(0..=max))
    }
}

/// Time to serialize `len` bytes at `rate` bits/s, rounded up to the nanosecond; `None`
/// when it cannot be represented (rate 0).
fn serialization(len: usize, rate: u64) -> Option<Duration> {
    if rate == 0 {
        return None;
    }
    let bits = len as u128 * 8;
    let nanos = (bits * 1_000_000_000).div_ceil(u128::from(rate));
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// Bytes still to serialize when the bottleneck needs `remaining` more time at `rate`
/// (rounded down, which undoes the rounding up of [`serialization`]).
fn backlog(remaining: Duration, rate: u64) -> usize {
    let bits = remaining.as_nanos().saturating_mul(u128::from(rate));
    let bytes = bits / (8 * 1_000_000_000);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn serialization_time_is_exact_for_round_numbers() {
        assert_eq!(serialization(1000, 8_000), Some(Duration::from_secs(1)));
        assert_eq!(
            serialization(1250, 100_000_000),
            Some(Duration::from_micros(100))
        );
        assert_eq!(
            serialization(1, 3),
            Some(Duration::from_nanos(2_666_666_667))
        );
        assert_eq!(serialization(10, 0), None);
    }

    #[test]
    fn backlog_inverts_serialization() {
        for len in [1usize, 99, 1300, 65_535] {
            for rate in [1_000u64, 8_000, 1_000_000, 123_456_789] {
                let d = serialization(len, rate).unwrap();
                assert_eq!(backlog(d, rate), len, "len {len} rate {rate}");
            }
        }
    }

    #[test]
    fn hostile_config_values_do_not_panic() {
        let t0 = Instant::now();
        let cfg = LinkConfig::default()
            .loss(f64::NAN)
            .duplicate(7.0)
            .reorder(-1.0, Duration::MAX)
            .delay(Duration::MAX)
            .jitter(Duration::MAX)
            .rate_bps(0)
            .queue_bytes(0);
        let mut link = Link::new(cfg.clone());
        for i in 0..100 {
            link.push(t0 + ms(i), usize::MAX, i);
        }
        let mut link = Link::new(LinkConfig {
            rate_bps: None,
            ..cfg
        });
        for i in 0..100 {
            link.push(t0 + ms(i), usize::MAX / 2, i);
        }
        assert_eq!(link.poll(t0 + ms(1000)), None);
    }
}
