//! The virtual-clock network with small test nodes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp_sim::link::LinkConfig;
use mkcp_sim::net::{Network, Node, SimError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends a numbered ping every time the previous pong came back (or at `start`), and
/// records round-trip times. Retries after `retry` if a ping or pong is lost.
struct Pinger {
    peer: SocketAddr,
    next_ping: Option<Instant>,
    retry: Duration,
    seq: u32,
    sent_at: Option<Instant>,
    rtts: Vec<Duration>,
    outbox: VecDeque<Vec<u8>>,
}

impl Pinger {
    fn new(peer: SocketAddr, start: Instant, retry: Duration) -> Self {
        Self {
            peer,
            next_ping: Some(start),
            retry,
            seq: 0,
            sent_at: None,
            rtts: Vec::new(),
            outbox: VecDeque::new(),
        }
    }
}

impl Node for Pinger {
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &mut [u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(&*data) else {
            return;
        };
        if u32::from_be_bytes(bytes) == self.seq {
            if let Some(sent) = self.sent_at.take() {
                self.rtts.push(now - sent);
            }
            self.seq += 1;
            self.next_ping = Some(now);
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let data = self.outbox.pop_front()?;
        buf[..data.len()].copy_from_slice(&data);
        Some((self.peer, data.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_ping
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.outbox.push_back(self.seq.to_be_bytes().to_vec());
        self.sent_at = Some(now);
        self.next_ping = Some(now + self.retry);
    }
}

/// Replies to every datagram with the same bytes.
#[derive(Default)]
struct Echo {
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    received: u64,
}

impl Node for Echo {
    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &mut [u8]) {
        self.received += 1;
        self.outbox.push_back((from, data.to_vec()));
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let (to, data) = self.outbox.pop_front()?;
        buf[..data.len()].copy_from_slice(&data);
        Some((to, data.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Sends `remaining` datagrams of `len` bytes, one every `gap`, and counts what it gets.
struct Blaster {
    peer: SocketAddr,
    len: usize,
    gap: Duration,
    next: Option<Instant>,
    remaining: u64,
    due: u64,
    received: u64,
    log: Vec<(Instant, u64)>,
    keep_log: bool,
}

impl Blaster {
    fn new(peer: SocketAddr, start: Instant, n: u64, len: usize, gap: Duration) -> Self {
        Self {
            peer,
            len,
            gap,
            next: Some(start),
            remaining: n,
            due: 0,
            received: 0,
            log: Vec::new(),
            keep_log: false,
        }
    }
}

impl Node for Blaster {
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &mut [u8]) {
        self.received += 1;
        if self.keep_log {
            let id = data
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(u64::MAX, u64::from_be_bytes);
            self.log.push((now, id));
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        if self.due == 0 {
            return None;
        }
        self.due -= 1;
        buf[..8].copy_from_slice(&self.remaining.to_be_bytes());
        Some((self.peer, self.len))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.remaining == 0 {
            self.next = None;
            return;
        }
        self.remaining -= 1;
        self.due += 1;
        self.next = Some(now + self.gap);
    }
}

#[test]
fn ping_pong_round_trip_is_twice_the_one_way_delay() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1000"), addr("10.0.0.2:2000"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(15)));
    net.add_node(a, Pinger::new(b, t0, ms(500)));
    net.add_node(b, Echo::default());
    net.run_until(t0 + ms(300)).unwrap();
    let pinger: &Pinger = net.node(a).unwrap();
    assert_eq!(pinger.rtts, vec![ms(30); 10]);
    assert_eq!(net.node::<Echo>(b).unwrap().received, 10);
    assert_eq!(net.link_stats(a, b).bytes_out, 40);
    assert_eq!(net.link_stats(b, a).packets_out, 10);
    assert_eq!(net.now(), t0 + ms(300));
}

#[test]
fn asymmetric_paths_and_losses_are_per_direction() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1000"), addr("10.0.0.2:2000"));
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_link(a, b, LinkConfig::default().delay(ms(10)));
    net.set_link(b, a, LinkConfig::default().delay(ms(40)));
    net.add_node(a, Pinger::new(b, t0, ms(500)));
    net.add_node(b, Echo::default());
    net.run_until(t0 + ms(100)).unwrap();
    assert_eq!(net.node::<Pinger>(a).unwrap().rtts, vec![ms(50); 2]);

    // Now lose everything from b to a: pings keep arriving, no pong comes back.
    net.set_link(b, a, LinkConfig::default().loss(1.0));
    net.run_until(t0 + ms(3000)).unwrap();
    let s = net.link_stats(b, a);
    assert!(s.dropped_loss >= 5, "{s:?}");
    assert_eq!(net.node::<Pinger>(a).unwrap().rtts.len(), 2);
}

#[test]
fn lossy_ping_pong_recovers_by_retrying() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1000"), addr("[fd00::2]:2000"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(5)).loss(0.3).seed(7));
    net.add_node(a, Pinger::new(b, t0, ms(50)));
    net.add_node(b, Echo::default());
    let done = net
        .run_until_cond(Duration::from_secs(60), |net| {
            net.node::<Pinger>(a).unwrap().rtts.len() >= 100
        })
        .unwrap();
    assert!(done);
    let rtts = &net.node::<Pinger>(a).unwrap().rtts;
    assert!(rtts.iter().all(|&r| r == ms(10) || r >= ms(10)));
    assert!(net.link_stats(a, b).dropped_loss > 10);
}

#[test]
fn timers_run_in_virtual_time() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(1)));
    // One datagram every 30 s for an hour of virtual time.
    net.add_node(a, Blaster::new(b, t0, 120, 100, Duration::from_secs(30)));
    net.add_node(b, Echo::default());
    let wall = std::time::Instant::now();
    net.run_until(t0 + Duration::from_secs(3600)).unwrap();
    assert!(wall.elapsed() < Duration::from_secs(1));
    assert_eq!(net.node::<Echo>(b).unwrap().received, 120);
    assert_eq!(net.node::<Blaster>(a).unwrap().received, 120);
    assert_eq!(net.stats().timeouts, 121);
}

#[test]
fn run_until_cond_stops_at_the_instant_the_condition_holds() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(7)));
    net.add_node(a, Pinger::new(b, t0, ms(500)));
    net.add_node(b, Echo::default());
    let met = net
        .run_until_cond(ms(1000), |net| {
            net.node::<Pinger>(a).is_some_and(|p| p.rtts.len() == 3)
        })
        .unwrap();
    assert!(met);
    assert_eq!(net.now(), t0 + ms(42));
    // A condition that never holds: runs to the limit and reports false.
    let met = net.run_until_cond(ms(100), |_| false).unwrap();
    assert!(!met);
    assert_eq!(net.now(), t0 + ms(142));
}

#[test]
fn idle_network_jumps_to_the_deadline() {
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    assert!(!net.step().unwrap());
    assert_eq!(net.next_event(), None);
    net.run_until(t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(net.now(), t0 + Duration::from_secs(5));
}

/// Always due, never satisfied: the kind of bug the stall guard catches.
struct Stuck;

impl Node for Stuck {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &mut [u8]) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<(SocketAddr, usize)> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(Instant::now() - Duration::from_secs(1))
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

#[test]
fn a_node_whose_timeout_never_clears_is_reported_as_stalled() {
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_stall_limit(10_000);
    net.add_node(addr("10.0.0.1:1"), Stuck);
    let err = net.run_until(t0 + ms(1)).unwrap_err();
    assert!(
        matches!(err, SimError::Stalled { events: 10_001, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("stalled"));
}

#[test]
fn zero_delay_ping_pong_is_reported_as_stalled() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_stall_limit(1000);
    net.add_node(a, Echo::default());
    net.add_node(
        b,
        Echo {
            outbox: VecDeque::from([(a, vec![1])]),
            received: 0,
        },
    );
    assert!(matches!(
        net.run_until(t0 + ms(1)),
        Err(SimError::Stalled { .. })
    ));
}

#[test]
fn datagrams_to_nowhere_are_counted_undeliverable() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(1)));
    net.add_node(a, Blaster::new(b, t0, 5, 100, ms(1)));
    net.run_until(t0 + ms(100)).unwrap();
    assert_eq!(net.stats().undeliverable, 5);
    assert_eq!(net.link_stats(a, b).bytes_out, 500);
}

#[test]
fn nodes_are_reached_by_address_and_type() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(2)));
    net.add_node(a, Echo::default());
    net.add_node(b, Echo::default());
    assert!(net.node::<Pinger>(a).is_none());
    assert!(net.node::<Echo>(addr("10.0.0.3:3")).is_none());
    // Queue a datagram from the test; the next step picks it up.
    net.node_mut::<Echo>(a)
        .unwrap()
        .outbox
        .push_back((b, vec![9; 10]));
    net.run_until(t0 + ms(3)).unwrap();
    assert_eq!(net.node::<Echo>(b).unwrap().received, 1);
    assert_eq!(net.addrs().collect::<Vec<_>>(), vec![a, b]);
    // Replace b (a restart) and remove a.
    assert!(net.add_node(b, Echo::default()));
    assert_eq!(net.node::<Echo>(b).unwrap().received, 0);
    assert!(net.remove_node(a));
    assert!(!net.remove_node(a));
    assert_eq!(net.addrs().collect::<Vec<_>>(), vec![b]);
    net.run_until(t0 + ms(10)).unwrap();
    assert_eq!(net.stats().undeliverable, 1);
}

#[test]
fn tap_can_drop_and_rewrite_datagrams() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(1)));
    let mut blaster = Blaster::new(b, t0, 10, 16, ms(1));
    blaster.keep_log = true;
    net.add_node(a, blaster);
    net.add_node(b, Echo::default());
    // Drop every a->b datagram with an odd id; zero the id of the replies.
    net.set_tap(move |_, from, _, data| {
        if from == a {
            data[7] % 2 == 0
        } else {
            data[..8].fill(0);
            true
        }
    });
    net.run_until(t0 + ms(100)).unwrap();
    assert_eq!(net.stats().tapped, 5);
    let log = &net.node::<Blaster>(a).unwrap().log;
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|&(_, id)| id == 0));
}

/// Runs a busy lossy, jittery, reordering, rate-limited exchange and returns the
/// blaster's receive log relative to the start.
fn lossy_run(seed: u64) -> Vec<(Duration, u64)> {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let cfg = LinkConfig::default()
        .delay(ms(20))
        .jitter(ms(5))
        .loss(0.1)
        .duplicate(0.01)
        .reorder(0.05, ms(3))
        .rate_bps(20_000_000)
        .queue_bytes(20_000)
        .seed(seed);
    let mut net = Network::new(t0, cfg);
    let mut blaster = Blaster::new(b, t0, 5000, 1200, Duration::from_micros(600));
    blaster.keep_log = true;
    net.add_node(a, blaster);
    net.add_node(b, Echo::default());
    net.run_until_idle().unwrap();
    let log = &net.node::<Blaster>(a).unwrap().log;
    log.iter().map(|&(t, id)| (t - t0, id)).collect()
}

#[test]
fn same_seed_gives_an_identical_run() {
    let a = lossy_run(5);
    assert_eq!(a, lossy_run(5));
    assert_ne!(a, lossy_run(6));
    // Something was lost and something reordered.
    assert!(a.len() < 5000 && a.len() > 3000);
    assert!(a.windows(2).any(|w| w[0].1 < w[1].1));
}

#[test]
fn a_million_packets_take_seconds_not_minutes() {
    let t0 = Instant::now();
    let (a, b) = (addr("10.0.0.1:1"), addr("10.0.0.2:2"));
    let cfg = LinkConfig::default()
        .delay(ms(10))
        .jitter(ms(2))
        .loss(0.01)
        .rate_bps(10_000_000_000)
        .seed(1);
    let mut net = Network::new(t0, cfg);
    // 500k each way = 1M packets crossing links.
    net.add_node(
        a,
        Blaster::new(b, t0, 500_000, 1300, Duration::from_micros(2)),
    );
    net.add_node(b, Echo::default());
    let wall = std::time::Instant::now();
    net.run_until_idle().unwrap();
    let elapsed = wall.elapsed();
    let total = net.link_stats(a, b).packets_out + net.link_stats(b, a).packets_out;
    assert!(total > 950_000, "{total}");
    eprintln!(
        "{total} packets in {elapsed:?} ({:.2} M packets/s)",
        total as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert!(elapsed < Duration::from_secs(30));
}

#[test]
fn injected_datagrams_cross_the_link_like_any_other() {
    let t0 = Instant::now();
    let (attacker, b) = (addr("192.0.2.66:6666"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default().delay(ms(4)));
    net.add_node(b, Echo::default());
    assert!(matches!(
        net.inject(attacker, b, &[0xff; 3]),
        mkcp_sim::Verdict::Scheduled { .. }
    ));
    net.run_until(t0 + ms(3)).unwrap();
    assert_eq!(net.node::<Echo>(b).unwrap().received, 0);
    net.run_until(t0 + ms(10)).unwrap();
    assert_eq!(net.node::<Echo>(b).unwrap().received, 1);
    // The echo went back to an address with no node.
    assert_eq!(net.stats().undeliverable, 1);
    assert_eq!(net.link_stats(b, attacker).bytes_out, 3);
}

/// Sends `count` datagrams of `len` bytes to `peer` at once.
struct Burst {
    peer: SocketAddr,
    left: usize,
    len: usize,
}

impl Node for Burst {
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _data: &mut [u8]) {}
    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        buf[..self.len].fill(0xAB);
        Some((self.peer, self.len))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

/// Flows from two sockets made to share one link meet one queue and one rate limit:
/// what the queue cannot hold is dropped across both, the counters add up, and every
/// datagram that crosses reaches its own destination.
#[test]
fn shared_link_is_one_bottleneck_for_several_address_pairs() {
    let t0 = Instant::now();
    let (a1, a2) = (addr("10.0.0.1:1"), addr("10.0.0.1:2"));
    let (b1, b2) = (addr("10.0.0.2:1"), addr("10.0.0.2:2"));
    let mut net = Network::new(t0, LinkConfig::default());
    // 1 Mbit/s with room for 10 datagrams of 1000 bytes.
    net.set_link(
        a1,
        b1,
        LinkConfig::default()
            .rate_bps(1_000_000)
            .queue_bytes(10_000),
    );
    net.share_link(a2, b2, a1, b1);
    net.add_node(b1, Echo::default());
    net.add_node(b2, Echo::default());
    net.add_node(
        a1,
        Burst {
            peer: b1,
            left: 8,
            len: 1000,
        },
    );
    net.add_node(
        a2,
        Burst {
            peer: b2,
            left: 8,
            len: 1000,
        },
    );
    net.run_for(Duration::from_secs(1)).unwrap();
    let shared = net.link_stats(a1, b1);
    assert_eq!(shared.packets_in, 16);
    assert!(shared.dropped_queue >= 5, "{shared:?}");
    assert_eq!(shared.packets_out + shared.dropped_queue, 16);
    let got1 = net.node::<Echo>(b1).unwrap().received;
    let got2 = net.node::<Echo>(b2).unwrap().received;
    assert_eq!(got1 + got2, shared.packets_out);
    assert!(got1 > 0 && got2 > 0, "{got1} {got2}");
    // The counters are the link's: both pairs report the same.
    assert_eq!(net.link_stats(a2, b2), shared);
}
