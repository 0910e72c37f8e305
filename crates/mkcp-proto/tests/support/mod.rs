//! Test harness: an mKCP [`Endpoint`] with a scripted application, as a node of the
//! deterministic simulated network (`mkcp-sim`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::{ConnId, Endpoint, EndpointConfig, EndpointError, Event};
use mkcp_proto::{Config, ConnEvent, State};
use mkcp_sim::link::LinkConfig;
use mkcp_sim::net::{Network, Node};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// What the application on one side does with its (single) connection.
#[derive(Debug, Default)]
pub struct App {
    pub id: Option<ConnId>,
    pub to_send: Vec<u8>,
    pub sent: usize,
    pub received: Vec<u8>,
    pub eof: bool,
    pub eof_at: Option<Instant>,
    pub error: Option<EndpointError>,
    pub error_at: Option<Instant>,
    /// Half-close once everything is written.
    pub shutdown_after_send: bool,
    /// Full close once end-of-stream was read and everything was written.
    pub close_after_eof: bool,
    /// When end-of-stream is read, write this (a reply after the peer's half-close).
    pub reply_on_eof: Option<Vec<u8>>,
    /// Stop reading (the receive window must close instead of memory growing).
    pub paused: bool,
    /// Read as a real application does: not inside the endpoint's input processing but
    /// after the endpoint has transmitted, this long after data became readable (zero:
    /// right after the transmit). `None`: read at once, before the endpoint transmits.
    pub read_delay: Option<Duration>,
    /// After a write was cut short (the send buffer full), the application writes again
    /// this long later at the earliest, as a real one whose writer task runs after the
    /// driver (None: at once, in the same step).
    pub write_delay: Option<Duration>,
    /// Write back everything read (an echo server).
    pub echo: bool,
    pub shut: bool,
    pub closed: bool,
    pub closed_at: Option<Instant>,
    pub terminated_at: Option<Instant>,
}

pub struct SimPeer {
    pub ep: Endpoint,
    timeout: Option<Instant>,
    /// When the application reads next (with [`App::read_delay`]).
    read_at: Option<Instant>,
    /// When the application may write next (with [`App::write_delay`]).
    write_at: Option<Instant>,
    pub app: App,
    buf: Vec<u8>,
}

impl SimPeer {
    pub fn new(config: EndpointConfig, seed: u64) -> SimPeer {
        SimPeer {
            ep: Endpoint::new(config, StdRng::seed_from_u64(seed)),
            timeout: None,
            read_at: None,
            write_at: None,
            app: App::default(),
            buf: vec![0; 64 * 1024],
        }
    }

    pub fn server(kcp: Config, seed: u64) -> SimPeer {
        SimPeer::new(EndpointConfig::server(kcp), seed)
    }

    pub fn client(kcp: Config, seed: u64, now: Instant, server: SocketAddr) -> SimPeer {
        let mut p = SimPeer::new(EndpointConfig::client(kcp), seed);
        let id = p.ep.connect(now, server).expect("connect");
        p.app.id = Some(id);
        p.pump(now);
        p
    }

    pub fn state(&self) -> Option<State> {
        self.app
            .id
            .and_then(|id| self.ep.connection(id))
            .map(|c| c.state())
    }

    pub fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::NewConnection(id) if self.app.id.is_none() => {
                    self.app.id = Some(id);
                }
                Event::Connection(id, ConnEvent::Terminated) if Some(id) == self.app.id => {
                    self.app.terminated_at.get_or_insert(now);
                }
                _ => {}
            }
        }
        let Some(id) = self.app.id else {
            self.timeout = self.ep.poll_timeout();
            return;
        };
        if self.write_at.is_some_and(|t| t <= now) {
            self.write_at = None;
        }
        for _ in 0..8 {
            while self.app.sent < self.app.to_send.len()
                && !self.app.closed
                && self.app.error.is_none()
                && self.write_at.is_none()
            {
                let want = self.app.to_send.len() - self.app.sent;
                match self.ep.write(id, now, &self.app.to_send[self.app.sent..]) {
                    Ok(n) if n < want && self.app.write_delay.is_some() => {
                        self.app.sent += n;
                        self.write_at = Some(now + self.app.write_delay.unwrap_or_default());
                        break;
                    }
                    Ok(0) => break,
                    Ok(n) => self.app.sent += n,
                    Err(e) => {
                        self.app.error_at.get_or_insert(now);
                        self.app.error = Some(e);
                        break;
                    }
                }
            }
            if self.app.sent == self.app.to_send.len()
                && self.app.shutdown_after_send
                && self.app.reply_on_eof.is_none()
                && !self.app.shut
                && !self.app.closed
            {
                let _ = self.ep.shutdown_write(id, now);
                self.app.shut = true;
            }
            let may_read = match self.app.read_delay {
                None => true,
                Some(delay) => {
                    if self.read_at.is_some_and(|t| t <= now) {
                        self.read_at = None;
                        true
                    } else {
                        let readable = self.ep.connection(id).is_some_and(|c| c.is_readable());
                        if readable && self.read_at.is_none() {
                            self.read_at = Some(now + delay);
                        }
                        false
                    }
                }
            };
            while may_read
                && !self.app.paused
                && !self.app.closed
                && !self.app.eof
                && self.app.error.is_none()
            {
                match self.ep.read(id, now, &mut self.buf) {
                    Ok(Some(0)) => {
                        self.app.eof = true;
                        self.app.eof_at = Some(now);
                    }
                    Ok(Some(n)) => {
                        self.app.received.extend_from_slice(&self.buf[..n]);
                        if self.app.echo {
                            self.app.to_send.extend_from_slice(&self.buf[..n]);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.app.error_at.get_or_insert(now);
                        self.app.error = Some(e);
                    }
                }
            }
            if self.app.echo && self.app.sent < self.app.to_send.len() {
                continue;
            }
            if self.app.eof {
                if let Some(reply) = self.app.reply_on_eof.take() {
                    self.app.to_send.extend_from_slice(&reply);
                    continue;
                }
            }
            break;
        }
        if self.app.eof
            && self.app.close_after_eof
            && self.app.sent == self.app.to_send.len()
            && !self.app.closed
        {
            let _ = self.ep.close(id, now);
            self.app.closed = true;
            self.app.closed_at = Some(now);
        }
        self.timeout = self.ep.poll_timeout();
    }
}

impl Node for SimPeer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &mut [u8]) {
        self.ep.handle_datagram(now, from, data);
        self.pump(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        match self.ep.poll_transmit(now, buf) {
            Some(t) => {
                if std::env::var("MKCP_SIM_TRACE").is_ok() {
                    eprintln!("TX {now:?} -> {} len {}", t.destination, t.len);
                }
                Some((t.destination, t.len))
            }
            None => {
                self.timeout = self.ep.poll_timeout();
                None
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.timeout, self.read_at, self.write_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.pump(now);
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Client at 10.0.0.1:1000, server at 10.0.0.2:2000, joined by `link` both ways.
pub struct Pair {
    pub net: Network,
    pub t0: Instant,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

impl Pair {
    pub fn new(kcp: Config, up: LinkConfig, down: LinkConfig, seed: u64) -> Pair {
        Pair::with_configs(kcp.clone(), kcp, up, down, seed)
    }

    /// A pair whose client and server have configurations of their own (an mkcp client
    /// and a `v2ray_compat` server, say).
    pub fn with_configs(
        client_kcp: Config,
        server_kcp: Config,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> Pair {
        let t0 = Instant::now();
        let client = addr("10.0.0.1:1000");
        let server = addr("10.0.0.2:2000");
        let mut net = Network::new(t0, LinkConfig::default());
        net.set_link(client, server, up);
        net.set_link(server, client, down);
        net.add_node(
            server,
            SimPeer::server(server_kcp, seed.wrapping_mul(2) + 1),
        );
        net.add_node(
            client,
            SimPeer::client(client_kcp, seed.wrapping_mul(2) + 2, t0, server),
        );
        Pair {
            net,
            t0,
            client,
            server,
        }
    }

    pub fn c(&mut self) -> &mut SimPeer {
        self.net
            .node_mut::<SimPeer>(self.client)
            .expect("client node")
    }

    pub fn s(&mut self) -> &mut SimPeer {
        self.net
            .node_mut::<SimPeer>(self.server)
            .expect("server node")
    }

    pub fn elapsed(&self) -> Duration {
        self.net.now() - self.t0
    }

    /// Runs until `cond(client)` holds (the server node may be gone).
    pub fn run_until_client(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&SimPeer) -> bool,
    ) -> bool {
        let client = self.client;
        self.net
            .run_until_cond(max, |net| {
                net.node::<SimPeer>(client).is_some_and(&mut cond)
            })
            .expect("simulation must not stall")
    }

    /// Runs until `cond(client, server)` holds or `max` virtual time passed; returns
    /// whether it held.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&SimPeer, &SimPeer) -> bool,
    ) -> bool {
        let (client, server) = (self.client, self.server);
        self.net
            .run_until_cond(max, |net| {
                let c = net.node::<SimPeer>(client).expect("client");
                let s = net.node::<SimPeer>(server).expect("server");
                cond(c, s)
            })
            .expect("simulation must not stall")
    }
}

/// `n` client/server pairs whose flows share one bottleneck each way, as sessions from
/// separate client sockets (V2Ray's dialer opens one per tunnelled connection) crossing
/// the same path. Client `i` is 10.0.0.1:(1000 + i), its server 10.0.0.2:(2000 + i).
pub struct Flows {
    pub net: Network,
    pub t0: Instant,
    pub clients: Vec<SocketAddr>,
    pub servers: Vec<SocketAddr>,
}

impl Flows {
    pub fn new(n: usize, kcp: Config, up: LinkConfig, down: LinkConfig, seed: u64) -> Flows {
        let t0 = Instant::now();
        let mut net = Network::new(t0, LinkConfig::default());
        let (mut clients, mut servers) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = addr(&format!("10.0.0.1:{}", 1000 + i));
            let s = addr(&format!("10.0.0.2:{}", 2000 + i));
            if i == 0 {
                net.set_link(c, s, up.clone());
                net.set_link(s, c, down.clone());
            } else {
                net.share_link(c, s, clients[0], servers[0]);
                net.share_link(s, c, servers[0], clients[0]);
            }
            let k = seed.wrapping_mul(16).wrapping_add(2 * i as u64);
            net.add_node(s, SimPeer::server(kcp.clone(), k + 1));
            net.add_node(c, SimPeer::client(kcp.clone(), k + 2, t0, s));
            clients.push(c);
            servers.push(s);
        }
        Flows {
            net,
            t0,
            clients,
            servers,
        }
    }

    pub fn c(&mut self, i: usize) -> &mut SimPeer {
        let a = self.clients[i];
        self.net.node_mut::<SimPeer>(a).expect("client node")
    }

    pub fn s(&mut self, i: usize) -> &mut SimPeer {
        let a = self.servers[i];
        self.net.node_mut::<SimPeer>(a).expect("server node")
    }

    /// Counters of the shared bottleneck towards the servers.
    pub fn up_stats(&self) -> mkcp_sim::link::LinkStats {
        self.net.link_stats(self.clients[0], self.servers[0])
    }

    /// Counters of the shared bottleneck towards the clients.
    pub fn down_stats(&self) -> mkcp_sim::link::LinkStats {
        self.net.link_stats(self.servers[0], self.clients[0])
    }
}
