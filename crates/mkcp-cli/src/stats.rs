//! Counters of a running tunnel: one [`Session`] per mKCP conversation, a [`Registry`]
//! of them, and the one-line report `--stats` prints.
//!
//! Goodput is counted by the tunnel itself (bytes it handed on to the next hop), so it is
//! what the applications at either end saw. Wire bytes, RTT and retransmissions come from
//! the mKCP connection's own counters ([`ConnectionStats`]), snapshotted by each session
//! while it runs and kept in the totals when it ends.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mkcp_proto::{ConnectionStats, EndpointStats};

/// Per-peer counters of ended sessions are kept for at most this many addresses; the
/// rest are folded into [`Snapshot::peers_other`], so memory stays bounded.
pub const MAX_TRACKED_PEERS: usize = 4096;

/// One tunnelled conversation's counters, shared between its task and the registry.
#[derive(Debug, Default)]
pub struct Session {
    /// Bytes read from TCP and written into the mKCP stream.
    pub to_kcp: AtomicU64,
    /// Bytes read from the mKCP stream and written to TCP.
    pub from_kcp: AtomicU64,
    stats: Mutex<ConnectionStats>,
    peer: Option<IpAddr>,
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

    fn moved(&self) -> u64 {
        self.to_kcp.load(Ordering::Relaxed) + self.from_kcp.load(Ordering::Relaxed)
    }
}

/// Whether a connection has measured its RTT: the smoothed RTT is 0 both before the
/// first sample and after samples below 1 ms (loopback), so the minimum RTT (at least
/// 1 µs once measured) tells the two apart.
fn rtt_of(s: &ConnectionStats) -> Option<f64> {
    if s.srtt_ms > 0 {
        Some(f64::from(s.srtt_ms))
    } else if s.min_rtt_us > 0 {
        Some(s.min_rtt_us as f64 / 1000.0)
    } else {
        None
    }
}

/// Counters of one peer (an IP address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTotals {
    /// Sessions with this peer, running or ended.
    pub sessions: u64,
    /// Sessions with this peer running now.
    pub active: u64,
    /// Bytes carried TCP -> mKCP.
    pub to_kcp: u64,
    /// Bytes carried mKCP -> TCP.
    pub from_kcp: u64,
}

impl PeerTotals {
    fn add(&mut self, other: &PeerTotals) {
        self.sessions += other.sessions;
        self.active += other.active;
        self.to_kcp += other.to_kcp;
        self.from_kcp += other.from_kcp;
    }

    /// Bytes both ways.
    pub fn bytes(&self) -> u64 {
        self.to_kcp + self.from_kcp
    }
}

/// A source of the endpoint's counters (the server's UDP listener).
pub type EndpointSource = Box<dyn Fn() -> EndpointStats + Send + Sync>;

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
    /// The RTT of the last session that ended having measured one (ms): what `--stats`
    /// shows for an interval in which data moved but the sessions have ended since.
    pub last_ended_srtt_ms: Option<f64>,
    /// Per-peer counters (running and ended sessions), by IP address; sessions
    /// registered without a peer are not in here.
    pub peers: HashMap<IpAddr, PeerTotals>,
    /// Ended sessions of peers beyond [`MAX_TRACKED_PEERS`].
    pub peers_other: PeerTotals,
    /// The UDP endpoint's counters (dropped datagrams by reason), when known.
    pub endpoint: Option<EndpointStats>,
}

impl Snapshot {
    /// The `n` peers that carried the most bytes, largest first, and the sum of the
    /// others (bounded cardinality for metrics).
    pub fn top_peers(&self, n: usize) -> (Vec<(IpAddr, PeerTotals)>, PeerTotals) {
        let mut all: Vec<(IpAddr, PeerTotals)> =
            self.peers.iter().map(|(a, t)| (*a, t.clone())).collect();
        all.sort_by(|a, b| b.1.bytes().cmp(&a.1.bytes()).then(a.0.cmp(&b.0)));
        let mut other = self.peers_other.clone();
        for (_, t) in all.iter().skip(n) {
            other.add(t);
        }
        all.truncate(n);
        (all, other)
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<Session>>,
    ended: Totals,
    last_ended_srtt_ms: Option<f64>,
    ended_peers: HashMap<IpAddr, PeerTotals>,
    ended_peers_other: PeerTotals,
}

/// All sessions of a tunnel.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    endpoint: Mutex<Option<EndpointSource>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Adds a session; it leaves (its counters kept in the totals) when the guard drops.
    #[cfg(test)]
    pub fn register(self: &Arc<Self>) -> SessionGuard {
        self.register_session(None)
    }

    /// Adds a session for `peer` (it leaves, its counters kept in the totals, when the
    /// guard drops), counted in [`Snapshot::peers`] by its IP address (without the
    /// port: each conversation of a dialler may use a new one).
    pub fn register_from(self: &Arc<Self>, peer: SocketAddr) -> SessionGuard {
        self.register_session(Some(peer.ip()))
    }

    /// Makes [`Registry::snapshot`] include the endpoint's counters (e.g. from
    /// `KcpListener::endpoint`), which count datagrams no session saw.
    pub fn set_endpoint_source(&self, source: EndpointSource) {
        *lock(&self.endpoint) = Some(source);
    }

    fn register_session(self: &Arc<Self>, peer: Option<IpAddr>) -> SessionGuard {
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        let session = Arc::new(Session {
            peer,
            ..Session::default()
        });
        inner.live.insert(id, session.clone());
        SessionGuard {
            id,
            session,
            registry: self.clone(),
        }
    }

    /// Current counters.
    pub fn snapshot(&self) -> Snapshot {
        let endpoint = lock(&self.endpoint).as_ref().map(|f| f());
        let inner = lock(&self.inner);
        let mut totals = inner.ended.clone();
        let mut peers = inner.ended_peers.clone();
        let (mut rtt_sum, mut rtt_n) = (0f64, 0u64);
        for s in inner.live.values() {
            let stats = s.stats();
            let (to_kcp, from_kcp) = (
                s.to_kcp.load(Ordering::Relaxed),
                s.from_kcp.load(Ordering::Relaxed),
            );
            totals.add(to_kcp, from_kcp, &stats);
            if let Some(rtt) = rtt_of(&stats) {
                rtt_sum += rtt;
                rtt_n += 1;
            }
            if let Some(peer) = s.peer {
                peers.entry(peer).or_default().add(&PeerTotals {
                    sessions: 1,
                    active: 1,
                    to_kcp,
                    from_kcp,
                });
            }
        }
        Snapshot {
            active: inner.live.len(),
            total_sessions: inner.next_id,
            totals,
            srtt_ms: (rtt_n > 0).then(|| rtt_sum / rtt_n as f64),
            last_ended_srtt_ms: inner.last_ended_srtt_ms,
            peers,
            peers_other: inner.ended_peers_other.clone(),
            endpoint,
        }
    }
}

/// Keeps a session registered; see [`Registry::register_from`].
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
            let (to_kcp, from_kcp) = (
                s.to_kcp.load(Ordering::Relaxed),
                s.from_kcp.load(Ordering::Relaxed),
            );
            inner.ended.add(to_kcp, from_kcp, &stats);
            if s.moved() > 0 {
                if let Some(rtt) = rtt_of(&stats) {
                    inner.last_ended_srtt_ms = Some(rtt);
                }
            }
            if let Some(peer) = s.peer {
                let t = PeerTotals {
                    sessions: 1,
                    active: 0,
                    to_kcp,
                    from_kcp,
                };
                let tracked = inner.ended_peers.len();
                match inner.ended_peers.get_mut(&peer) {
                    Some(p) => p.add(&t),
                    None if tracked < MAX_TRACKED_PEERS => {
                        inner.ended_peers.insert(peer, t);
                    }
                    None => inner.ended_peers_other.add(&t),
                }
            }
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

/// `t` as an RFC 3339 UTC timestamp with milliseconds: `2026-12-02T06:28:51.123Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (the well-known era
/// arithmetic: 400-year eras of 146097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Decides which `--stats` lines are printed: one for every interval in which
/// something happened (data moved, a session started or ended), one more when activity
/// stops, and none while idle (keepalives of idle sessions do not count).
#[derive(Debug)]
pub struct StatsPrinter {
    before: Snapshot,
    was_active: bool,
}

impl StatsPrinter {
    /// Starts counting from `now`.
    pub fn new(now: Snapshot) -> StatsPrinter {
        StatsPrinter {
            before: now,
            was_active: false,
        }
    }

    /// The line for the interval ending at `now` (`elapsed` long, ending at wall-clock
    /// `at`), or `None` when it stays quiet.
    pub fn line(
        &mut self,
        now: Snapshot,
        elapsed: Duration,
        at: std::time::SystemTime,
    ) -> Option<String> {
        let d = now.totals.since(&self.before.totals);
        // Wire bytes alone do not count: an idle session's keepalives move them.
        let active = d.to_kcp + d.from_kcp + d.acked + d.data_segments_sent > 0
            || now.total_sessions != self.before.total_sessions
            || now.active != self.before.active
            || dropped_since(&self.before, &now) != (0, 0);
        let print = active || self.was_active;
        let line = print.then(|| {
            format!(
                "{} {}",
                rfc3339(at),
                stats_line(&self.before, &now, elapsed)
            )
        });
        self.was_active = active;
        self.before = now;
        line
    }
}

/// Datagrams dropped by the endpoint between two snapshots: (invalid: failed
/// authentication or decoding, unknown: no session and none may be created).
fn dropped_since(before: &Snapshot, now: &Snapshot) -> (u64, u64) {
    match (&before.endpoint, &now.endpoint) {
        (Some(b), Some(n)) => (
            n.dropped_invalid.saturating_sub(b.dropped_invalid),
            n.dropped_unknown.saturating_sub(b.dropped_unknown),
        ),
        (None, Some(n)) => (n.dropped_invalid, n.dropped_unknown),
        _ => (0, 0),
    }
}

/// The `--stats` line (without its timestamp) for the interval from `before` to `now`.
pub fn stats_line(before: &Snapshot, now: &Snapshot, elapsed: Duration) -> String {
    let d = now.totals.since(&before.totals);
    let moved = d.to_kcp + d.from_kcp > 0;
    let mut line = format!(
        "sessions {} active, {} total | tcp->kcp {}, kcp->tcp {}",
        now.active,
        now.total_sessions,
        rate(d.to_kcp, elapsed),
        rate(d.from_kcp, elapsed),
    );
    // Sessions that moved data in the interval but ended before its end still have
    // an RTT to show.
    let rtt = now
        .srtt_ms
        .or(if moved { now.last_ended_srtt_ms } else { None });
    match rtt {
        Some(ms) if ms < 1.0 => line.push_str(" | rtt <1 ms"),
        Some(ms) => {
            let _ = write!(line, " | rtt {ms:.0} ms");
        }
        // mKCP measures RTT from the acks of its own data: a side that only receives
        // has no sample, however much it moves.
        None if moved && d.acked == 0 => line.push_str(" | rtt n/a (only receiving)"),
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
    let (invalid, unknown) = dropped_since(before, now);
    if invalid + unknown > 0 {
        let _ = write!(line, " | dropped {invalid} invalid, {unknown} unknown");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_reports_dropped_datagrams_of_the_interval() {
        let before = Snapshot::default();
        let mut now = Snapshot::default();
        let mut e = mkcp_proto::EndpointStats::default();
        e.dropped_invalid = 3;
        now.endpoint = Some(e);
        let line = stats_line(&before, &now, Duration::from_secs(1));
        assert!(line.ends_with("| dropped 3 invalid, 0 unknown"), "{line}");
        assert!(!stats_line(&now, &now, Duration::from_secs(1)).contains("dropped"));
    }

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
            ..Snapshot::default()
        };
        assert_eq!(
            stats_line(&before, &now, Duration::from_secs(1)),
            "sessions 1 active, 3 total | tcp->kcp 10.0 Mbit/s, kcp->tcp 0 bit/s | rtt 63 ms \
             | retrans 20 (2.0%) | wire/payload 1.08"
        );
    }

    #[test]
    fn loopback_rtt_below_1_ms_is_not_unknown() {
        let reg = Registry::new();
        let a = reg.register();
        let mut s = stats(100, 1, 0, 0);
        s.min_rtt_us = 180;
        a.session().set_stats(s);
        a.session().to_kcp.store(10, Ordering::Relaxed);
        let now = reg.snapshot();
        assert_eq!(now.srtt_ms, Some(0.18));
        let line = stats_line(&Snapshot::default(), &now, Duration::from_secs(1));
        assert!(line.contains("| rtt <1 ms |"), "{line}");
        // Ended within the interval: its RTT is still shown.
        drop(a);
        let after = reg.snapshot();
        assert_eq!(after.srtt_ms, None);
        let line = stats_line(&Snapshot::default(), &after, Duration::from_secs(1));
        assert!(line.contains("| rtt <1 ms |"), "{line}");
    }

    #[test]
    fn receive_only_sessions_say_why_there_is_no_rtt() {
        let reg = Registry::new();
        let a = reg.register();
        a.session().from_kcp.store(5_000_000, Ordering::Relaxed);
        let line = stats_line(
            &Snapshot::default(),
            &reg.snapshot(),
            Duration::from_secs(1),
        );
        assert!(line.contains("| rtt n/a (only receiving) |"), "{line}");
        a.session().from_kcp.store(0, Ordering::Relaxed);
        let line = stats_line(
            &Snapshot::default(),
            &reg.snapshot(),
            Duration::from_secs(1),
        );
        assert!(line.contains("| rtt - |"), "{line}");
    }

    #[test]
    fn printer_is_quiet_when_idle_and_timestamps_lines() {
        let reg = Registry::new();
        let mut p = StatsPrinter::new(reg.snapshot());
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_796_192_931_042);
        let sec = Duration::from_secs(1);
        assert_eq!(p.line(reg.snapshot(), sec, at), None, "idle from the start");
        let a = reg.register();
        a.session().to_kcp.store(1000, Ordering::Relaxed);
        let l = p
            .line(reg.snapshot(), sec, at)
            .expect("activity is printed");
        assert!(
            l.starts_with("2026-12-02T06:28:51.042Z sessions 1 active, 1 total"),
            "{l}"
        );
        // Nothing moved: one line to show it stopped, then quiet.
        let l = p
            .line(reg.snapshot(), sec, at)
            .expect("the line after activity");
        assert!(l.contains("tcp->kcp 0 bit/s, kcp->tcp 0 bit/s"), "{l}");
        assert_eq!(p.line(reg.snapshot(), sec, at), None);
        let mut keepalive = stats(100, 0, 0, 0);
        keepalive.wire_bytes_received = 60;
        a.session().set_stats(keepalive);
        assert_eq!(p.line(reg.snapshot(), sec, at), None, "keepalives are idle");
        drop(a);
        assert!(p.line(reg.snapshot(), sec, at).is_some(), "a session ended");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn peers_are_bounded_and_ranked() {
        let reg = Registry::new();
        let mut guards = Vec::new();
        for i in 0..20u8 {
            let g = reg.register_from(SocketAddr::from(([10, 0, 0, i], 4000)));
            g.session()
                .from_kcp
                .store(u64::from(i) * 100, Ordering::Relaxed);
            guards.push(g);
        }
        let _other_port = reg.register_from(SocketAddr::from(([10, 0, 0, 19], 4001)));
        let s = reg.snapshot();
        assert_eq!(s.peers.len(), 20);
        let (top, other) = s.top_peers(16);
        assert_eq!(top.len(), 16);
        assert_eq!(top[0].0, IpAddr::from([10, 0, 0, 19]));
        assert_eq!((top[0].1.sessions, top[0].1.active), (2, 2));
        // 10.0.0.0 to 10.0.0.3 carried the least.
        assert_eq!(other.sessions, 4);
        assert_eq!(other.from_kcp, 600);
        guards.clear();
        let s = reg.snapshot();
        assert_eq!(s.peers[&IpAddr::from([10, 0, 0, 5])].active, 0);
        assert_eq!(s.peers[&IpAddr::from([10, 0, 0, 5])].from_kcp, 500);
    }

    #[test]
    fn units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(bits_per_sec(45_200_000.0), "45.2 Mbit/s");
        assert_eq!(rate(1, Duration::ZERO), "-");
    }
}
