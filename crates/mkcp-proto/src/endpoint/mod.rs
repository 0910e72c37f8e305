//! The endpoint: many connections on one UDP socket (PROTOCOL.md §3.13, §3.14), sans-IO.
//!
//! It opens incoming datagrams with the socket's [`Codec`], finds the session by
//! (peer address, conversation id of the first segment), creates sessions when it
//! accepts incoming ones (a listener), and seals what the connections send. Limits on
//! the number of sessions, in total and per source address, keep a flood from
//! exhausting memory; when the table is full, the oldest session whose peer never
//! proved reachability makes room (so a flood of spoofed openers cannot lock real
//! clients out), and until a peer proves it receives what we send, its session sends
//! it no more bytes than it received (anti-amplification, docs/DESIGN.md). One timer for all connections: [`Endpoint::poll_timeout`] is the
//! earliest deadline of any of them (a heap with lazy invalidation).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::conn::{Connection, ConnectionError, State};
use crate::wire::segment::{Segment, CMD_LEN};
use crate::wire::{segments, Codec, MAX_DATAGRAM};

mod app;
mod batch;
mod types;

/// Most sources of invalid datagrams remembered between two reports.
const MAX_INVALID_SOURCES: usize = 16;

pub use types::{
    ConnId, EndpointConfig, EndpointError, EndpointStats, Event, Transmit, DEFAULT_MAX_SESSIONS,
    DEFAULT_MAX_SESSIONS_PER_IP,
};

#[derive(Debug)]
struct Entry {
    conn: Connection,
    peer: SocketAddr,
    gen: u32,
    released: bool,
    in_table: bool,
    timer: Option<Instant>,
    ready: bool,
}

/// Many mKCP connections on one socket.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    codec: Codec,
    rng: StdRng,
    slots: Vec<Option<Entry>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    by_key: HashMap<(SocketAddr, u16), u32>,
    per_ip: HashMap<IpAddr, usize>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    ready: VecDeque<u32>,
    /// Accepted sessions in creation order that may still be unproven (index, gen);
    /// entries that got proven or ended are skipped and pruned lazily. Its length
    /// stays within the sessions created in the last `UNPROVEN_US`.
    unproven: VecDeque<(u32, u32)>,
    events: VecDeque<Event>,
    stats: EndpointStats,
    /// Sources of datagrams that failed to open or parse, since the last report.
    invalid_sources: HashMap<SocketAddr, u64>,
    due_scratch: Vec<u32>,
}

impl Endpoint {
    /// An endpoint; `rng` seeds conversation ids, header state and GCM nonces (seed it
    /// from the OS in production, with a constant in simulations).
    pub fn new(config: EndpointConfig, mut rng: StdRng) -> Endpoint {
        let codec_rng =
            StdRng::from_rng(&mut rng).unwrap_or_else(|_| StdRng::seed_from_u64(rng.gen()));
        let codec = Codec::new(config.kcp.header.clone(), &config.kcp.security, codec_rng);
        Endpoint {
            config,
            codec,
            rng,
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            per_ip: HashMap::new(),
            live: 0,
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            unproven: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            invalid_sources: HashMap::new(),
            due_scratch: Vec::new(),
        }
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Live sessions (not yet terminated).
    pub fn live_sessions(&self) -> usize {
        self.live
    }

    /// Largest plaintext per datagram for the configured MTU.
    fn max_plaintext(&self) -> usize {
        self.codec.max_plaintext(self.config.kcp.mtu as usize)
    }

    fn insert(&mut self, conn: Connection, peer: SocketAddr, now: Instant) -> ConnId {
        let _ = now;
        let key = (peer, conn.conv());
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.gens[index as usize];
        self.slots[index as usize] = Some(Entry {
            conn,
            peer,
            gen,
            released: false,
            in_table: true,
            timer: None,
            ready: false,
        });
        self.by_key.insert(key, index);
        *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
        self.live += 1;
        self.stats.sessions_created += 1;
        ConnId { index, gen }
    }

    fn check_limits(&self, peer: SocketAddr) -> Result<(), EndpointError> {
        if self.live >= self.config.max_sessions {
            return Err(EndpointError::TooManySessions {
                limit: self.config.max_sessions,
            });
        }
        if self.per_ip.get(&peer.ip()).copied().unwrap_or(0) >= self.config.max_sessions_per_ip {
            return Err(EndpointError::TooManySessions {
                limit: self.config.max_sessions_per_ip,
            });
        }
        Ok(())
    }

    /// Opens a new connection to `peer` with a random conversation id not in use
    /// towards that peer. Nothing is sent until the runtime polls.
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> Result<ConnId, EndpointError> {
        self.check_limits(peer)?;
        let mut conv = None;
        for _ in 0..64 {
            let c: u16 = self.rng.gen();
            if !self.by_key.contains_key(&(peer, c)) {
                conv = Some(c);
                break;
            }
        }
        let conv = match conv {
            Some(c) => c,
            None => (0..=u16::MAX)
                .find(|c| !self.by_key.contains_key(&(peer, *c)))
                .ok_or(EndpointError::NoConversationId { peer })?,
        };
        let mut conn = Connection::new(conv, &self.config.kcp, self.max_plaintext(), now);
        conn.announce();
        let id = self.insert(conn, peer, now);
        self.service(id.index);
        Ok(id)
    }

    fn note_invalid(sources: &mut HashMap<SocketAddr, u64>, peer: SocketAddr) {
        if let Some(n) = sources.get_mut(&peer) {
            *n += 1;
        } else if sources.len() < MAX_INVALID_SOURCES {
            sources.insert(peer, 1);
        }
    }

    /// The sources of datagrams that failed authentication or decoding since the last
    /// call (at most 16 addresses; the rest are only in
    /// [`EndpointStats::dropped_invalid`]), busiest first. A runtime logs them: a
    /// peer whose every datagram fails almost always has another seed or header.
    pub fn take_invalid_sources(&mut self) -> Vec<(SocketAddr, u64)> {
        let mut v: Vec<_> = self.invalid_sources.drain().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Feeds one received datagram (opened in place, so `data` is scratch afterwards).
    /// A runtime that receives several at a time should use
    /// [`Endpoint::handle_datagrams`], which is cheaper per datagram.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, data: &mut [u8]) {
        let wire_len = data.len();
        let opened = self.codec.open(data).ok();
        self.handle_opened(now, peer, wire_len, opened);
    }

    /// Handles a received datagram of `wire_len` bytes once its envelope is opened:
    /// its plaintext, or `None` when it failed authentication or decoding.
    fn handle_opened(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        wire_len: usize,
        opened: Option<&[u8]>,
    ) {
        self.stats.datagrams_received += 1;
        self.stats.wire_bytes_received += wire_len as u64;
        let Some(plaintext) = opened else {
            self.stats.dropped_invalid += 1;
            Self::note_invalid(&mut self.invalid_sources, peer);
            return;
        };
        let Some(first) = segments(plaintext).next() else {
            self.stats.dropped_invalid += 1;
            Self::note_invalid(&mut self.invalid_sources, peer);
            return;
        };
        let key = (peer, first.conv());
        let index = match self.by_key.get(&key) {
            Some(&i) => i,
            None => {
                // Whatever goes ahead of it (acks, a hello): a datagram that ends a
                // session we do not know must not open one, which would answer with
                // its own Terminate and cut the peer's closing wait short.
                let conv = first.conv();
                let terminate = segments(plaintext)
                    .take_while(|s| s.conv() == conv)
                    .any(|s| matches!(s, Segment::Cmd(c) if c.is_terminate()));
                if !self.config.accept_incoming || terminate {
                    self.stats.dropped_unknown += 1;
                    return;
                }
                if self.check_limits(peer).is_err() && !self.make_room(now, peer) {
                    self.stats.sessions_refused += 1;
                    return;
                }
                let mut conn = Connection::new(key.1, &self.config.kcp, self.max_plaintext(), now);
                conn.set_accepted();
                let id = self.insert(conn, peer, now);
                self.prune_unproven();
                self.unproven.push_back((id.index, id.gen));
                self.events.push_back(Event::NewConnection(id));
                id.index
            }
        };
        if let Some(Some(e)) = self.slots.get_mut(index as usize) {
            e.conn.handle_plaintext(now, plaintext);
            e.conn.count_wire(0, wire_len);
        }
        self.service(index);
    }

    /// Whether the queued entry is a live, still unproven session; its peer address.
    fn unproven_peer(&self, index: u32, gen: u32) -> Option<SocketAddr> {
        match self.slots.get(index as usize) {
            Some(Some(e))
                if e.gen == gen
                    && e.in_table
                    && e.conn.state() != State::Terminated
                    && !e.conn.peer_reachable() =>
            {
                Some(e.peer)
            }
            _ => None,
        }
    }

    /// Drops queue entries at the front that are no longer unproven sessions.
    fn prune_unproven(&mut self) {
        while let Some(&(index, gen)) = self.unproven.front() {
            if self.unproven_peer(index, gen).is_some() {
                break;
            }
            self.unproven.pop_front();
        }
    }

    /// Evicts the oldest unproven session that frees the limit `peer` hit (any for the
    /// total limit, one of the same address for the per-address limit). Proven
    /// sessions are never evicted. Returns whether the new session now fits.
    fn make_room(&mut self, now: Instant, peer: SocketAddr) -> bool {
        self.prune_unproven();
        // One of the same address frees both limits; any frees only the total one.
        let ip_full =
            self.per_ip.get(&peer.ip()).copied().unwrap_or(0) >= self.config.max_sessions_per_ip;
        let pos = self.unproven.iter().position(|&(index, gen)| {
            self.unproven_peer(index, gen)
                .is_some_and(|p| !ip_full || p.ip() == peer.ip())
        });
        let Some(pos) = pos else { return false };
        let Some((index, _)) = self.unproven.remove(pos) else {
            return false;
        };
        if let Some(Some(e)) = self.slots.get_mut(index as usize) {
            e.conn.evict(now);
            self.stats.sessions_evicted += 1;
        }
        self.service(index);
        self.check_limits(peer).is_ok() || self.make_room(now, peer)
    }

    /// Collects a connection's events, updates the session table, marks it as having
    /// possible output and reschedules its timer.
    fn service(&mut self, index: u32) {
        let Some(Some(e)) = self.slots.get_mut(index as usize) else {
            return;
        };
        let id = ConnId { index, gen: e.gen };
        while let Some(ev) = e.conn.poll_event() {
            self.events.push_back(Event::Connection(id, ev));
        }
        if e.conn.state() == State::Terminated {
            if e.in_table {
                e.in_table = false;
                match e.conn.error() {
                    Some(ConnectionError::Unproven { .. }) => {
                        self.stats.sessions_reaped_unproven += 1
                    }
                    Some(ConnectionError::TimedOut { .. }) => self.stats.sessions_timed_out += 1,
                    Some(
                        ConnectionError::ZeroWindow { .. } | ConnectionError::NoProgress { .. },
                    ) => self.stats.sessions_stalled += 1,
                    _ => {}
                }
                let key = (e.peer, e.conn.conv());
                let ip = e.peer.ip();
                if self.by_key.get(&key) == Some(&index) {
                    self.by_key.remove(&key);
                }
                if let Some(n) = self.per_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip.remove(&ip);
                    }
                }
                self.live -= 1;
            }
            if e.released {
                self.free_slot(index);
            }
            return;
        }
        if !e.ready {
            e.ready = true;
            self.ready.push_back(index);
        }
        let t = e.conn.poll_timeout();
        Self::schedule(&mut self.timers, e, index, t);
    }

    /// Keeps one heap entry per connection: a new entry only when the deadline moves
    /// earlier. A later deadline keeps the earlier entry, which then wakes the
    /// connection a little early (it reschedules itself); this keeps the heap from
    /// filling with stale entries when deadlines move on every packet.
    fn schedule(
        timers: &mut BinaryHeap<Reverse<(Instant, u32, u32)>>,
        e: &mut Entry,
        index: u32,
        t: Option<Instant>,
    ) {
        if let Some(t) = t {
            if e.timer.is_none_or(|cur| t < cur) {
                e.timer = Some(t);
                timers.push(Reverse((t, index, e.gen)));
            }
        }
    }

    fn free_slot(&mut self, index: u32) {
        self.slots[index as usize] = None;
        self.gens[index as usize] = self.gens[index as usize].wrapping_add(1);
        self.free.push(index);
    }

    /// The next datagram to send, sealed into `buf` (give it at least
    /// [`MAX_DATAGRAM`] bytes). Round-robin across connections. A runtime that sends
    /// several at a time should use [`Endpoint::poll_transmits`], which is cheaper per
    /// datagram.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let (t, pending) = self.next_transmit(now, buf, false)?;
        debug_assert!(!pending);
        Some(t)
    }

    /// The next datagram to send, in `buf`; with `defer`, a legacy envelope may be left
    /// for [`Codec::finish_seals`] (then the flag returned is true).
    fn next_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        defer: bool,
    ) -> Option<(Transmit, bool)> {
        let off = self.codec.plaintext_offset();
        let suffix = self.codec.envelope().suffix_len();
        let end = buf
            .len()
            .min(MAX_DATAGRAM)
            .saturating_sub(self.codec.envelope().suffix_len());
        if end <= off {
            return None;
        }
        // Each connection keeps within its own plaintext budget (in V2Ray mode, V2Ray's
        // MSS may exceed the MTU budget by the GCM nonce, as V2Ray's own does).
        while let Some(&index) = self.ready.front() {
            let Some(Some(e)) = self.slots.get_mut(index as usize) else {
                self.ready.pop_front();
                continue;
            };
            // Anti-amplification: an unproven peer gets at most AMPLIFICATION_FACTOR times what it sent us.
            let limit = match e.conn.send_budget() {
                None => end,
                Some(b) => {
                    let room = usize::try_from(b)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(off + suffix);
                    off + room.min(end - off)
                }
            };
            if limit < off + CMD_LEN {
                if e.conn.has_output_due() {
                    self.stats.transmits_budget_limited += 1;
                }
                e.ready = false;
                self.ready.pop_front();
                self.service_after_transmit(index);
                continue;
            }
            match e.conn.poll_transmit(now, &mut buf[off..limit]) {
                Some(len) => {
                    let peer = e.peer;
                    let sealed = if defer {
                        self.codec.seal_deferred(buf, len)
                    } else {
                        self.codec.seal(buf, len).map(|n| (n, false))
                    };
                    match sealed {
                        Ok((n, pending)) => {
                            if let Some(Some(e)) = self.slots.get_mut(index as usize) {
                                e.conn.count_wire(n, 0);
                            }
                            self.stats.datagrams_sent += 1;
                            self.stats.wire_bytes_sent += n as u64;
                            // Round robin: this connection goes to the back.
                            self.ready.pop_front();
                            self.ready.push_back(index);
                            let t = Transmit {
                                destination: peer,
                                len: n,
                            };
                            return Some((t, pending));
                        }
                        Err(_) => {
                            if let Some(Some(e)) = self.slots.get_mut(index as usize) {
                                e.ready = false;
                            }
                            self.ready.pop_front();
                            continue;
                        }
                    }
                }
                None => {
                    e.ready = false;
                    self.ready.pop_front();
                    self.service_after_transmit(index);
                }
            }
        }
        None
    }

    fn service_after_transmit(&mut self, index: u32) {
        let Some(Some(e)) = self.slots.get_mut(index as usize) else {
            return;
        };
        let id = ConnId { index, gen: e.gen };
        while let Some(ev) = e.conn.poll_event() {
            self.events.push_back(Event::Connection(id, ev));
        }
        let t = e.conn.poll_timeout();
        Self::schedule(&mut self.timers, e, index, t);
    }

    /// Earliest time `Self::handle_timeout` must run (`None`: no timers).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, index, gen))) = self.timers.peek().copied() {
            match self.slots.get(index as usize) {
                Some(Some(e)) if e.gen == gen && e.timer == Some(t) => return Some(t),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Runs every connection timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Collect first: each due connection runs its timers once per call, even if
        // it asks again for a time that is already due.
        let mut due = std::mem::take(&mut self.due_scratch);
        while let Some(Reverse((t, index, gen))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(Some(e)) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if e.gen != gen || e.timer != Some(t) {
                continue;
            }
            e.timer = None;
            due.push(index);
        }
        for &index in &due {
            if let Some(Some(e)) = self.slots.get_mut(index as usize) {
                e.conn.handle_timeout(now);
                self.service(index);
            }
        }
        due.clear();
        self.due_scratch = due;
    }
}
