//! Counters of a running tunnel: one [`Session`] per mKCP conversation, a [`Registry`]
//! of them, and the one-line report `--stats` prints.
//!
//! Goodput is counted by the tunnel itself (bytes it handed on to the next hop), so it is
//! what the applications at either end saw. Wire bytes, RTT and retransmissions come from
//! the mKCP connection's own counters ([`ConnectionStats`]), snapshotted by each session
//! while it runs and kept in the totals when it ends.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mkcp_proto::ConnectionStats;

/// One tunnelled conversation's counters, shared between its task and the registry.
#[derive(Debug, Default)]
pub struct Session {
    /// Bytes read from TCP and written into the mKCP stream.
    pub to_kcp: AtomicU64,
    /// Bytes read from the mKCP stream and written to TCP.
    pub from_kcp: AtomicU64,
    stats: Mutex<ConnectionStats>,
}

impl Session {
    /// Records the latest snapshot of the connection's counters.
    pub fn set_stats(&self, stats: ConnectionStats) {
        *lock(&self.stats) = stats;
    }

    /// The latest snapshot.
    pub fn stats(&self) -> ConnectionStats {
        lock(&self.stats).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sums over sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes carried TCP -> mKCP.
    pub to_kcp: u64,
    /// Bytes carried mKCP -> TCP.
    pub from_kcp: u64,
    /// Stream bytes sent over mKCP and acknowledged by the peer.
    pub acked: u64,
    /// UDP payload bytes sent (headers, envelopes, acks, retransmissions included).
    pub wire_sent: u64,
    /// UDP payload bytes received.
    pub wire_received: u64,
    /// Data segments sent, retransmissions included.
    pub data_segments_sent: u64,
    /// Data segment retransmissions.
    pub retransmissions: u64,
}

impl Totals {
    fn add(&mut self, to_kcp: u64, from_kcp: u64, s: &ConnectionStats) {
        self.to_kcp += to_kcp;
        self.from_kcp += from_kcp;
        self.acked += s.bytes_acked;
        self.wire_sent += s.wire_bytes_sent;
        self.wire_received += s.wire_bytes_received;
        self.data_segments_sent += s.data_segments_sent;
        self.retransmissions += s.retransmissions;
    }

    /// `self - earlier`, field by field (saturating).
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            to_kcp: self.to_kcp.saturating_sub(earlier.to_kcp),
            from_kcp: self.from_kcp.saturating_sub(earlier.from_kcp),
            acked: self.acked.saturating_sub(earlier.acked),
            wire_sent: self.wire_sent.saturating_sub(earlier.wire_sent),
            wire_received: self.wire_received.saturating_sub(earlier.wire_received),
            data_segments_sent: self
                .data_segments_sent
                .saturating_sub(earlier.data_segments_sent),
            retransmissions: self.retransmissions.saturating_sub(earlier.retransmissions),
        }
    }

    /// Wire bytes (both ways) per payload byte that crossed the link (both ways: what
    /// the peer acknowledged, and what was received), if any did. Payload still waiting
    /// in the send buffer is not counted, so short intervals are not skewed by it.
    pub fn wire_ratio(&self) -> Option<f64> {
        let payload = self.acked + self.from_kcp;
        (payload > 0).then(|| (self.wire_sent + self.wire_received) as f64 / payload as f64)
    }

    /// Retransmissions per data segment sent, if any was sent.
    pub fn retransmission_rate(&self) -> Option<f64> {
        (self.data_segments_sent > 0)
            .then(|| self.retransmissions as f64 / self.data_segments_sent as f64)
    }
}

/// A point-in-time view of a registry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Sessions running now.
    pub active: usize,
    /// Sessions since the start.
    pub total_sessions: u64,
    /// Counters of every session, running or ended.
    pub totals: Totals,
    /// Mean smoothed RTT over running sessions that have a sample (ms).
    pub srtt_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<Session>>,
    ended: Totals,
}

/// All sessions of a tunnel.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Adds a session; it leaves (its counters kept in the totals) when the guard drops.
    pub fn register(self: &Arc<Self>) -> SessionGuard {
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        let session = Arc::new(Session::default());
        inner.live.insert(id, session.clone());
        SessionGuard {
            id,
            session,
            registry: self.clone(),
        }
    }

    /// Current counters.
    pub fn snapshot(&self) -> Snapshot {
        let inner = lock(&self.inner);
        let mut totals = inner.ended.clone();
        let (mut rtt_sum, mut rtt_n) = (0u64, 0u64);
        for s in inner.live.values() {
            let stats = s.stats();
            totals.add(
                s.to_kcp.load(Ordering::Relaxed),
                s.from_kcp.load(Ordering::Relaxed),
                &stats,
            );
            if stats.srtt_ms > 0 {
                rtt_sum += u64::from(stats.srtt_ms);
                rtt_n += 1;
            }
        }
        Snapshot {
            active: inner.live.len(),
            total_sessions: inner.next_id,
            totals,
            srtt_ms: (rtt_n > 0).then(|| rtt_sum as f64 / rtt_n as f64),
        }
    }
}

/// Keeps a session registered; see [`Registry::register`].
#[derive(Debug)]
pub struct SessionGuard {
    id: u64,
    session: Arc<Session>,
    registry: Arc<Registry>,
}

impl SessionGuard {
    /// The session's number (1, 2, ... in order of registration).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The counters.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = lock(&self.registry.inner);
        if let Some(s) = inner.live.remove(&self.id) {
            let stats = s.stats();
            inner.ended.add(
                s.to_kcp.load(Ordering::Relaxed),
                s.from_kcp.load(Ordering::Relaxed),
                &stats,
            );
        }
    }
}

/// Bits per second of `bytes` over `elapsed`, in human units (`45.2 Mbit/s`).
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_string();
    }
    bits_per_sec(bytes as f64 * 8.0 / secs)
}

/// A bit rate in human units.
pub fn bits_per_sec(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} Gbit/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.1} Mbit/s", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.1} kbit/s", bps / 1e3)
    } else {
        format!("{bps:.0} bit/s")
    }
}

/// A byte count in human units (`12.3 MB`, decimal).
pub fn bytes(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

/// The `--stats` line for the interval from `before` to `now`.
pub fn stats_line(before: &Snapshot, now: &Snapshot, elapsed: Duration) -> String {
    let d = now.totals.since(&before.totals);
    let mut line = format!(
        "sessions {} active, {} total | tcp->kcp {}, kcp->tcp {}",
        now.active,
        now.total_sessions,
        rate(d.to_kcp, elapsed),
        rate(d.from_kcp, elapsed),
    );
    match now.srtt_ms {
        Some(ms) => {
            let _ = write!(line, " | rtt {ms:.0} ms");
        }
        None => line.push_str(" | rtt -"),
    }
    let _ = write!(line, " | retrans {}", d.retransmissions);
    if let Some(r) = d.retransmission_rate() {
        let _ = write!(line, " ({:.1}%)", r * 100.0);
    }
    match d.wire_ratio() {
        Some(r) => {
            let _ = write!(line, " | wire/payload {r:.2}");
        }
        None => line.push_str(" | wire/payload -"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(wire: u64, segs: u64, retrans: u64, srtt: u32) -> ConnectionStats {
        let mut s = ConnectionStats::default();
        s.wire_bytes_sent = wire;
        s.wire_bytes_received = wire / 10;
        s.data_segments_sent = segs;
        s.retransmissions = retrans;
        s.srtt_ms = srtt;
        s
    }

    #[test]
    fn totals_keep_ended_sessions() {
        let reg = Registry::new();
        let a = reg.register();
        let b = reg.register();
        a.session().to_kcp.store(1000, Ordering::Relaxed);
        a.session().set_stats(stats(1100, 10, 1, 60));
        b.session().from_kcp.store(500, Ordering::Relaxed);
        b.session().set_stats(stats(100, 0, 0, 40));
        let s = reg.snapshot();
        assert_eq!((s.active, s.total_sessions), (2, 2));
        assert_eq!(s.totals.to_kcp, 1000);
        assert_eq!(s.srtt_ms, Some(50.0));
        drop(a);
        let s2 = reg.snapshot();
        assert_eq!((s2.active, s2.total_sessions), (1, 2));
        assert_eq!(s2.totals, s.totals);
        assert_eq!(s2.srtt_ms, Some(40.0));
    }

    #[test]
    fn line_reports_interval_rates() {
        let before = Snapshot::default();
        let now = Snapshot {
            active: 1,
            total_sessions: 3,
            totals: Totals {
                to_kcp: 1_250_000,
                from_kcp: 0,
                acked: 1_250_000,
                wire_sent: 1_300_000,
                wire_received: 50_000,
                data_segments_sent: 1000,
                retransmissions: 20,
            },
            srtt_ms: Some(63.4),
        };
        assert_eq!(
            stats_line(&before, &now, Duration::from_secs(1)),
            "sessions 1 active, 3 total | tcp->kcp 10.0 Mbit/s, kcp->tcp 0 bit/s | rtt 63 ms \
             | retrans 20 (2.0%) | wire/payload 1.08"
        );
    }

    #[test]
    fn units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(bits_per_sec(45_200_000.0), "45.2 Mbit/s");
        assert_eq!(rate(1, Duration::ZERO), "-");
    }
}
