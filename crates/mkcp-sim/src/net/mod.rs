//! A deterministic **network simulator** with a virtual clock.
//!
//! A [`Network`] owns sans-IO [`Node`]s, each at a `SocketAddr`, and one [`Link`] per
//! directed pair of addresses (created on first use from a default [`LinkConfig`], or set
//! with [`Network::set_link`]). It never sleeps and never reads a clock: [`Network::step`]
//! jumps the virtual clock straight to the earliest pending event (a link delivery or a
//! node timeout), handles everything due then, and after every event drains the affected
//! node's `poll_transmit` into the links. A 30-second idle timeout therefore takes
//! microseconds to simulate, and the same seeds always give the same run.
//!
//! ```text
//!     node A --poll_transmit--> Link(A->B) --delivery--> handle_datagram-- node B
//!            <--handle_datagram-- Link(B->A) <--poll_transmit----------
//!     each node: poll_timeout() -> handle_timeout(now) when the clock reaches it
//! ```
//!
//! Events at the same instant are handled in a fixed order: deliveries first (links in the
//! order they were created, each link in delivery order), then due timeouts (nodes in the
//! order they were added). Tests reach their concrete node types with
//! [`Network::node`]/[`Network::node_mut`] to write and read stream data between steps.
//!
//! # Example: an echo server and a pinger
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use mkcp_sim::link::LinkConfig;
//! use mkcp_sim::net::{Network, Node};
//!
//! /// Replies to every datagram with the same bytes.
//! struct Echo { pending: Vec<(SocketAddr, Vec<u8>)> }
//! impl Node for Echo {
//!     fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &mut [u8]) {
//!         self.pending.push((from, data.to_vec()));
//!     }
//!     fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
//!         let (to, data) = self.pending.pop()?;
//!         buf[..data.len()].copy_from_slice(&data);
//!         Some((to, data.len()))
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//! }
//!
//! let t0 = Instant::now();
//! let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
//! let mut net = Network::new(t0, LinkConfig::default().delay(Duration::from_millis(25)));
//! net.add_node(a, Echo { pending: vec![] });
//! net.add_node(b, Echo { pending: vec![(a, b"ping".to_vec())] }); // b says ping first
//! // The two echo forever; run one virtual second (40 one-way trips of 25 ms).
//! net.run_until(t0 + Duration::from_secs(1)).unwrap();
//! assert_eq!(net.link_stats(b, a).packets_out, 20);
//! assert_eq!(net.link_stats(a, b).packets_out, 20);
//! assert_eq!(net.now(), t0 + Duration::from_secs(1));
//! ```

mod run;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::link::{Link, LinkConfig, LinkStats, Verdict};

/// A sans-IO participant in the simulated network: the same four calls a protocol core
/// (an mKCP endpoint) exposes to its runtime.
pub trait Node: Any {
    /// A datagram from `from` arrived at `now`. The node may modify `data` in place (to
    /// decrypt it, say).
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]);

    /// The next datagram to send, written into `buf`: returns its destination and length.
    /// Called until it returns `None` after every event. `buf` is 64 KiB; a length beyond
    /// `buf.len()` is discarded and counted in [`NetStats::oversize`].
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)>;

    /// When the node next wants [`handle_timeout`](Self::handle_timeout), if ever. A time
    /// in the past means "as soon as possible".
    fn poll_timeout(&self) -> Option<Instant>;

    /// The clock reached the node's timeout.
    fn handle_timeout(&mut self, now: Instant);
}

/// Object-safe view of a node that can also be downcast to its concrete type.
trait AnyNode: Node {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Node> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// More than the stall limit of events (deliveries, timeouts, transmits) happened
    /// without the clock moving: a node keeps asking for a timeout that is already due, or
    /// transmits without end, or nodes ping-pong over zero-delay links.
    Stalled {
        /// The instant the clock was stuck at.
        at: Instant,
        /// How many events were handled at that instant.
        events: u64,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Stalled { events, .. } => write!(
                f,
                "simulation stalled: {events} events without the virtual clock advancing \
                 (a node's poll_timeout stays due after handle_timeout, it transmits without \
                 end, or nodes ping-pong over zero-delay links)"
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// Network-wide counters (per-direction wire counters are in [`Network::link_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Datagrams handed to a node's `handle_datagram`.
    pub delivered: u64,
    /// Datagrams that reached an address with no node (dropped after crossing the link).
    pub undeliverable: u64,
    /// Datagrams the tap chose to drop.
    pub tapped: u64,
    /// Transmits whose length exceeded the buffer (discarded).
    pub oversize: u64,
    /// Calls to `handle_timeout`.
    pub timeouts: u64,
}

/// A function shown every datagram as it is about to be delivered: it may inspect or
/// rewrite the bytes, and returns `false` to drop the datagram.
pub type Tap = Box<dyn FnMut(Instant, SocketAddr, SocketAddr, &mut Vec<u8>) -> bool>;

struct NodeEntry {
    addr: SocketAddr,
    node: Box<dyn AnyNode>,
}

struct LinkEntry {
    link: Link<Datagram>,
}

/// A datagram on a simulated link, with its addresses (a shared bottleneck carries
/// datagrams of several address pairs).
#[derive(Clone, Debug)]
pub struct Datagram {
    /// The sender's address.
    pub from: SocketAddr,
    /// The destination's address.
    pub to: SocketAddr,
    /// The payload.
    pub data: Vec<u8>,
}

/// Size of the buffer handed to `poll_transmit`: the largest UDP payload.
const TRANSMIT_BUF: usize = 64 * 1024;
/// Default for [`Network::set_stall_limit`].
const DEFAULT_STALL_LIMIT: u64 = 1_000_000;
/// Packet buffers kept for reuse.
const POOL_MAX: usize = 4096;

/// The simulated network: nodes, links, and the virtual clock. See the [module docs](self).
pub struct Network {
    now: Instant,
    nodes: Vec<NodeEntry>,
    node_index: HashMap<SocketAddr, usize>,
    links: Vec<LinkEntry>,
    link_index: HashMap<(SocketAddr, SocketAddr), usize>,
    default_link: LinkConfig,
    buf: Vec<u8>,
    pool: Vec<Vec<u8>>,
    tap: Option<Tap>,
    stats: NetStats,
    stall_limit: u64,
    events_at_now: u64,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("now", &self.now)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
            )
            .field("links", &self.links.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// An empty network whose clock starts at `start`. Links are created on first use
    /// from `default_link`, each with its own seed derived from `default_link.seed` and the
    /// two addresses.
    pub fn new(start: Instant, default_link: LinkConfig) -> Self {
        Self {
            now: start,
            nodes: Vec::new(),
            node_index: HashMap::new(),
            links: Vec::new(),
            link_index: HashMap::new(),
            default_link,
            buf: vec![0; TRANSMIT_BUF],
            pool: Vec::new(),
            tap: None,
            stats: NetStats::default(),
            stall_limit: DEFAULT_STALL_LIMIT,
            events_at_now: 0,
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Network-wide counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Adds `node` at `addr`, replacing (and dropping) any node already there, which
    /// models a restart. Returns whether a node was replaced.
    pub fn add_node<N: Node>(&mut self, addr: SocketAddr, node: N) -> bool {
        let entry = NodeEntry {
            addr,
            node: Box::new(node),
        };
        match self.node_index.get(&addr) {
            Some(&i) => {
                self.nodes[i] = entry;
                true
            }
            None => {
                self.node_index.insert(addr, self.nodes.len());
                self.nodes.push(entry);
                false
            }
        }
    }

    /// Removes the node at `addr`; datagrams to it are then counted as undeliverable.
    /// Returns whether there was one.
    pub fn remove_node(&mut self, addr: SocketAddr) -> bool {
        let Some(i) = self.node_index.remove(&addr) else {
            return false;
        };
        self.nodes.remove(i);
        for (j, n) in self.nodes.iter().enumerate().skip(i) {
            self.node_index.insert(n.addr, j);
        }
        true
    }

    /// Addresses of all nodes, in the order they were added.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.nodes.iter().map(|n| n.addr)
    }

    /// The node at `addr` as its concrete type `N`; `None` if there is no node there or it
    /// is of another type.
    pub fn node<N: Node>(&self, addr: SocketAddr) -> Option<&N> {
        let i = *self.node_index.get(&addr)?;
        self.nodes[i].node.as_any().downcast_ref()
    }

    /// Mutable access to the node at `addr` as its concrete type `N`. Whatever it queues
    /// for sending is picked up at the next [`step`](Self::step).
    pub fn node_mut<N: Node>(&mut self, addr: SocketAddr) -> Option<&mut N> {
        let i = *self.node_index.get(&addr)?;
        self.nodes[i].node.as_any_mut().downcast_mut()
    }

    /// Sets the configuration used for links created from now on.
    pub fn set_default_link(&mut self, cfg: LinkConfig) {
        self.default_link = cfg;
    }

    /// Configures the link `from -> to`. A new link is seeded with `cfg.seed`; an existing
    /// one keeps its packets in flight and its RNG ([`Link::set_config`]), so this also
    /// models a change of conditions mid-run (an outage: `loss(1.0)`).
    pub fn set_link(&mut self, from: SocketAddr, to: SocketAddr, cfg: LinkConfig) {
        match self.link_index.get(&(from, to)) {
            Some(&i) => self.links[i].link.set_config(cfg),
            None => {
                self.insert_link(from, to, cfg);
            }
        }
    }

    /// Configures both directions between `a` and `b` alike: `a -> b` with `cfg`, `b -> a`
    /// with `cfg` and a seed derived from `cfg.seed` (so the two directions draw different
    /// losses).
    pub fn set_path(&mut self, a: SocketAddr, b: SocketAddr, cfg: LinkConfig) {
        let back = LinkConfig {
            seed: splitmix64(cfg.seed),
            ..cfg.clone()
        };
        self.set_link(a, b, cfg);
        self.set_link(b, a, back);
    }

    /// The link `from -> to`, if it exists yet.
    pub fn link(&self, from: SocketAddr, to: SocketAddr) -> Option<&Link<Datagram>> {
        let i = *self.link_index.get(&(from, to))?;
        Some(&self.links[i].link)
    }

    /// The link `from -> to`, created from the default configuration if needed.
    pub fn link_mut(&mut self, from: SocketAddr, to: SocketAddr) -> &mut Link<Datagram> {
        let i = self.link_id(from, to);
        &mut self.links[i].link
    }

    /// Counters of the link `from -> to` (wire packets and bytes in that direction); all
    /// zero if nothing was ever sent that way.
    pub fn link_stats(&self, from: SocketAddr, to: SocketAddr) -> LinkStats {
        self.link(from, to).map(Link::stats).unwrap_or_default()
    }

    /// Puts a datagram on the wire from `from` to `to` at the current time, as if a host
    /// at `from` (which needs no node) had sent it: it crosses the link `from -> to` like
    /// any other. Use it to feed hostile or replayed bytes to a node.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> Verdict {
        let mut packet = self.pool.pop().unwrap_or_default();
        packet.clear();
        packet.extend_from_slice(data);
        let now = self.now;
        let len = data.len();
        self.link_mut(from, to).push(
            now,
            len,
            Datagram {
                from,
                to,
                data: packet,
            },
        )
    }

    /// Makes `from -> to` use the same link as `via_from -> via_to` (created from the
    /// default configuration if needed): one queue, one rate limit and one set of
    /// counters for both, as flows from several sockets share a bottleneck. Datagrams
    /// keep their own addresses. Replaces a link `from -> to` that had no traffic yet.
    pub fn share_link(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        via_from: SocketAddr,
        via_to: SocketAddr,
    ) {
        let i = self.link_id(via_from, via_to);
        self.link_index.insert((from, to), i);
    }

    /// Installs a tap that sees (and may rewrite or drop) every datagram at delivery.
    pub fn set_tap<F>(&mut self, tap: F)
    where
        F: FnMut(Instant, SocketAddr, SocketAddr, &mut Vec<u8>) -> bool + 'static,
    {
        self.tap = Some(Box::new(tap));
    }

    /// Removes the tap.
    pub fn clear_tap(&mut self) {
        self.tap = None;
    }

    /// How many events may happen at one instant before a run fails with
    /// [`SimError::Stalled`] (default one million).
    pub fn set_stall_limit(&mut self, events: u64) {
        self.stall_limit = events;
    }

    fn recycle(&mut self, data: Vec<u8>) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(data);
        }
    }

    fn link_id(&mut self, from: SocketAddr, to: SocketAddr) -> usize {
        if let Some(&i) = self.link_index.get(&(from, to)) {
            return i;
        }
        let cfg = LinkConfig {
            seed: link_seed(self.default_link.seed, from, to),
            ..self.default_link.clone()
        };
        self.insert_link(from, to, cfg)
    }

    fn insert_link(&mut self, from: SocketAddr, to: SocketAddr, cfg: LinkConfig) -> usize {
        let i = self.links.len();
        self.links.push(LinkEntry {
            link: Link::new(cfg),
        });
        self.link_index.insert((from, to), i);
        i
    }
}

/// A seed for the link `from -> to` derived from a base seed, stable across runs and
/// platforms (FNV-1a over the addresses, finished with splitmix64).
fn link_seed(base: u64, from: SocketAddr, to: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ base;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for addr in [from, to] {
        match addr {
            SocketAddr::V4(a) => eat(&a.ip().octets()),
            SocketAddr::V6(a) => eat(&a.ip().octets()),
        }
        eat(&addr.port().to_be_bytes());
    }
    splitmix64(h)
}

/// The splitmix64 finalizer: a cheap, well-mixed 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
