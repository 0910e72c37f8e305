//! Hostile networks (issue 11): anti-amplification budgets, reaping and eviction of
//! sessions whose peer never proved reachability, and slow peers, in virtual time.

mod support;

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::{EndpointConfig, EndpointError, Event};
use mkcp_proto::wire::segment::{CmdSegment, DataSegment, Segment, CMD_PING};
use mkcp_proto::{
    Codec, Config, ConnectionError, Endpoint, HeaderKind, Security, AMPLIFICATION_FACTOR, STALL_US,
    UNPROVEN_US,
};
use mkcp_sim::link::LinkConfig;
use mkcp_sim::net::Network;
use rand::rngs::StdRng;
use rand::SeedableRng;
use support::{addr, random_bytes, Pair, SimPeer};

fn codec() -> Codec {
    Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(2),
    )
}

fn sealed(codec: &mut Codec, seg: Segment<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let off = codec.plaintext_offset();
    let n = seg.emit(&mut buf[off..]).unwrap();
    let len = codec.seal(&mut buf, n).unwrap();
    buf.truncate(len);
    buf
}

fn ping(conv: u16) -> Segment<'static> {
    Segment::Cmd(CmdSegment {
        conv,
        cmd: CMD_PING,
        option: 0,
        sending_next: 0,
        receiving_next: 0,
        peer_rto: 100,
    })
}

fn data(conv: u16, payload: &[u8]) -> Segment<'_> {
    Segment::Data(DataSegment {
        conv,
        option: 0,
        timestamp: 0,
        number: 0,
        sending_next: 0,
        payload,
    })
}

/// A listener whose application writes `banner` to every new session (a target that
/// speaks first, connected eagerly: the worst case), driven by hand in virtual time.
struct Server {
    ep: Endpoint,
    banner: Vec<u8>,
    now: Instant,
    sent_to: HashMap<SocketAddr, u64>,
    buf: Vec<u8>,
}

impl Server {
    fn new(cfg: EndpointConfig, banner: Vec<u8>) -> Server {
        Server {
            ep: Endpoint::new(cfg, StdRng::seed_from_u64(1)),
            banner,
            now: Instant::now(),
            sent_to: HashMap::new(),
            buf: vec![0; 2048],
        }
    }

    fn input(&mut self, peer: SocketAddr, mut datagram: Vec<u8>) {
        self.ep.handle_datagram(self.now, peer, &mut datagram);
        self.service();
    }

    fn service(&mut self) {
        while let Some(ev) = self.ep.poll_event() {
            if let Event::NewConnection(id) = ev {
                if !self.banner.is_empty() {
                    let banner = self.banner.clone();
                    let _ = self.ep.write(id, self.now, &banner);
                }
            }
        }
        while let Some(t) = self.ep.poll_transmit(self.now, &mut self.buf) {
            *self.sent_to.entry(t.destination).or_default() += t.len as u64;
        }
    }

    /// Runs timers until `until` (virtual time).
    fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.ep.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            self.service();
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

#[test]
fn a_spoofed_ping_gets_back_at_most_three_times_what_it_sent_and_is_reaped_in_seconds() {
    let mut s = Server::new(EndpointConfig::server(Config::default()), vec![b'B'; 1000]);
    let victim = addr("127.0.0.2:5000");
    let mut c = codec();
    let dgram = sealed(&mut c, ping(7));
    let sent = dgram.len() as u64;
    s.input(victim, dgram);
    assert_eq!(s.ep.live_sessions(), 1);
    s.run_for(Duration::from_secs(60));
    let back = s.sent_to.get(&victim).copied().unwrap_or(0);
    assert!(
        back <= AMPLIFICATION_FACTOR * sent,
        "{back} bytes sent back for {sent} received (a 1000-byte banner waited)"
    );
    assert_eq!(s.ep.live_sessions(), 0, "the unproven session is reaped");
    assert_eq!(s.ep.stats().sessions_reaped_unproven, 1);
    assert!(s.ep.stats().transmits_budget_limited > 0);
}

#[test]
fn unproven_sessions_are_reaped_after_the_bound_not_the_idle_timeout() {
    let mut s = Server::new(EndpointConfig::server(Config::default()), Vec::new());
    let mut c = codec();
    let start = s.now;
    s.input(addr("127.0.0.3:5000"), sealed(&mut c, ping(9)));
    // Keep-alive Pings from the peer keep it only up to the bound.
    let bound = Duration::from_micros(UNPROVEN_US);
    for k in 1..=8 {
        s.run_until(start + Duration::from_secs(k));
        s.input(addr("127.0.0.3:5000"), sealed(&mut c, ping(9)));
    }
    s.run_until(start + bound - Duration::from_millis(100));
    assert_eq!(s.ep.live_sessions(), 1, "alive before the bound");
    s.run_until(start + bound + Duration::from_millis(100));
    assert_eq!(s.ep.live_sessions(), 0, "reaped right after the bound");
    assert_eq!(s.ep.stats().sessions_reaped_unproven, 1);
}

#[test]
fn a_full_table_evicts_the_oldest_unproven_session_never_a_proven_one() {
    let mut cfg = EndpointConfig::server(Config::default());
    cfg.max_sessions = 8;
    cfg.max_sessions_per_ip = 8;
    let mut s = Server::new(cfg, Vec::new());
    let mut c = codec();
    // Four proven sessions (each sent stream data), then four spoofed Pings.
    for i in 0..4u16 {
        let peer = addr(&format!("127.0.1.{}:4000", i + 1));
        s.input(peer, sealed(&mut c, data(100 + i, b"hello")));
    }
    for i in 0..4u16 {
        let peer = addr(&format!("127.0.2.{}:4000", i + 1));
        s.input(peer, sealed(&mut c, ping(200 + i)));
    }
    assert_eq!(s.ep.live_sessions(), 8);
    let ids = s.ep.connection_ids();
    // A flood of newcomers: each takes the place of the oldest unproven one.
    for i in 0..20u16 {
        let peer = addr(&format!("127.0.3.{}:4000", i + 1));
        s.input(peer, sealed(&mut c, ping(300 + i)));
    }
    assert_eq!(s.ep.live_sessions(), 8);
    assert_eq!(s.ep.stats().sessions_evicted, 20);
    assert_eq!(s.ep.stats().sessions_refused, 0);
    for id in &ids[..4] {
        let conn = s.ep.connection(*id).expect("proven session kept");
        assert!(conn.peer_reachable());
        assert_eq!(conn.state(), mkcp_proto::State::Active);
    }
    // A table full of proven sessions refuses newcomers instead.
    for i in 0..4u16 {
        let peer = addr(&format!("127.0.4.{}:4000", i + 1));
        s.input(peer, sealed(&mut c, data(400 + i, b"hello")));
    }
    let refused = s.ep.stats().sessions_refused;
    s.input(addr("127.0.5.1:4000"), sealed(&mut c, ping(500)));
    assert_eq!(s.ep.stats().sessions_refused, refused + 1);
    assert_eq!(s.ep.live_sessions(), 8);
}

#[test]
fn a_legitimate_client_connects_at_once_while_fakes_fill_the_table() {
    let mut cfg = EndpointConfig::server(Config::default());
    cfg.max_sessions = 16;
    let mut p = Pair::new(Config::default(), link(), link(), 7);
    let server = p.server;
    p.net.add_node(server, SimPeer::new(cfg, 3));
    // Fill the table with fakes (spoofed Pings straight into the endpoint).
    let mut c = codec();
    let now = p.net.now();
    for i in 0..16u16 {
        let peer = addr(&format!("127.0.6.{}:4000", i + 1));
        let mut d = sealed(&mut c, ping(i));
        p.s().ep.handle_datagram(now, peer, &mut d);
    }
    assert_eq!(p.s().ep.live_sessions(), 16);
    // The first NewConnection was a fake: let the app take the real one.
    while p.s().ep.poll_event().is_some() {}
    p.s().app.id = None;
    let payload = random_bytes(3, 256 << 10);
    p.c().app.to_send = payload.clone();
    let t = p.net.now();
    p.c().pump(t);
    assert!(
        p.run_until(Duration::from_secs(5), |_, s| s.app.received.len()
            >= payload.len())
    );
    assert!(p.s().app.received == payload);
    assert!(p.s().ep.stats().sessions_evicted >= 1);
}

fn link() -> LinkConfig {
    LinkConfig::default()
        .delay(Duration::from_millis(20))
        .rate_bps(50_000_000)
        .queue_bytes(256 * 1024)
}

/// Runs until `client` has received `len` bytes (at most 30 s of virtual time).
fn downloaded(net: &mut Network, client: SocketAddr, len: usize) -> bool {
    net.run_until_cond(Duration::from_secs(30), |net| {
        net.node::<SimPeer>(client)
            .is_some_and(|c| c.app.received.len() >= len)
    })
    .unwrap()
}

/// A V2Ray client (the V2Ray model) whose first datagram is a 1-byte Data segment and
/// that then downloads: the limit is gone once it acknowledges our first (small) data.
#[test]
fn a_v2ray_client_with_a_one_byte_request_downloads_at_full_speed() {
    let client = addr("10.0.0.1:1000");
    let server = addr("10.0.0.2:2000");
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_link(client, server, link());
    net.set_link(server, client, link());
    let mut v2 = Config::default();
    v2.tuning.v2ray_compat = true;
    let mut srv = SimPeer::new(EndpointConfig::server(Config::default()), 11);
    let reply = random_bytes(9, 4 << 20);
    srv.app.to_send = reply.clone();
    net.add_node(server, srv);
    let mut cli = SimPeer::client(v2, 12, t0, server);
    let id = cli.app.id.unwrap();
    cli.ep.write(id, t0, b"?").unwrap();
    cli.pump(t0);
    net.add_node(client, cli);
    assert!(
        downloaded(&mut net, client, reply.len()),
        "download did not finish"
    );
    let secs = (net.now() - t0).as_secs_f64();
    assert!(secs < 10.0, "took {secs} s");
    let c = net.node::<SimPeer>(client).unwrap();
    assert!(c.app.received == reply);
}

/// A V2Ray client that opens with a Ping and sends its first Data 5 s later survives:
/// its Data is proof of life, its Pings kept it until then.
#[test]
fn a_v2ray_client_that_waits_5_s_before_its_first_data_still_works() {
    let mut s = Server::new(EndpointConfig::server(Config::default()), Vec::new());
    let mut c = codec();
    let peer = addr("127.0.0.9:5000");
    let start = s.now;
    s.input(peer, sealed(&mut c, ping(42)));
    s.run_until(start + Duration::from_secs(5));
    s.input(peer, sealed(&mut c, data(42, b"GET / HTTP/1.0\r\n\r\n")));
    let id = s.ep.connection_ids()[0];
    s.run_until(start + Duration::from_secs(25));
    let conn = s.ep.connection(id).expect("still there");
    assert!(conn.peer_reachable());
    assert_eq!(conn.state(), mkcp_proto::State::Active);
    assert_eq!(s.ep.stats().sessions_reaped_unproven, 0);
}

/// A peer whose application never reads keeps its window at zero while it answers:
/// the sender gives up after the bound, with an error saying why.
#[test]
fn a_peer_that_never_opens_its_window_is_closed_after_the_bound() {
    let mut kcp = Config::default();
    // The idle timeout must not be what ends it: the peer keeps answering.
    kcp.tuning.idle_timeout_ms = 30_000;
    let mut p = Pair::new(kcp, link(), link(), 5);
    p.c().app.paused = true;
    p.c().app.to_send = b"hi".to_vec();
    p.s().app.to_send = random_bytes(4, 32 << 20);
    let t = p.net.now();
    p.c().pump(t);
    let bound = Duration::from_micros(STALL_US);
    assert!(p.run_until(bound + Duration::from_secs(20), |_, s| s
        .app
        .error
        .is_some()));
    let err = p.s().app.error.clone().unwrap();
    assert!(
        matches!(
            err,
            EndpointError::Connection(ConnectionError::ZeroWindow { timeout_ms: 60_000 })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no receive window for 60000 ms"));
    assert!(p.elapsed() >= bound, "not before the bound");
    assert_eq!(p.s().ep.stats().sessions_stalled, 0, "still terminating");
}

/// Keep-alives to an unproven peer that never answers stop after two, even with
/// budget to spare (ten Pings' worth).
#[test]
fn keep_alives_to_a_silent_unproven_peer_stop_after_two() {
    let mut kcp = Config::default();
    kcp.tuning.ping_interval_ms = 1_000;
    let mut s = Server::new(EndpointConfig::server(kcp), Vec::new());
    let mut c = codec();
    let peer = addr("127.0.0.4:5000");
    for _ in 0..10 {
        s.input(peer, sealed(&mut c, ping(11)));
    }
    let mut datagrams = 0;
    let mut buf = vec![0u8; 2048];
    let until = s.now + Duration::from_secs(9);
    while let Some(t) = s.ep.poll_timeout() {
        if t > until {
            break;
        }
        s.now = s.now.max(t);
        s.ep.handle_timeout(s.now);
        while s.ep.poll_transmit(s.now, &mut buf).is_some() {
            datagrams += 1;
        }
    }
    assert!(
        datagrams <= 2,
        "{datagrams} datagrams sent to a silent unproven peer in 9 s"
    );
    assert_eq!(s.ep.live_sessions(), 1, "not reaped yet");
}

/// A V2Ray client's first reply is lost (2 % loss, this seed loses it): the server must
/// be able to resend it before the client has proved anything. With a budget of 1x
/// what the client sent, our ack and the reply had spent it, and each of our keep-alives
/// cost what the client's Pings (every 5 s) gave: the echo never came back (found by
/// `mkcp bench`, V2Ray client -> mkcp server on the 30 ms / 2 % link).
#[test]
fn a_v2ray_client_gets_a_lost_first_reply_resent() {
    let link = LinkConfig::default()
        .delay(Duration::from_millis(30))
        .loss(0.02)
        .rate_bps(100_000_000)
        .queue_bytes(750_000);
    let client = addr("10.0.0.1:1000");
    let server = addr("10.0.0.2:2000");
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_link(client, server, link.clone().seed(1));
    net.set_link(server, client, link.seed(2));
    let mut srv = SimPeer::new(EndpointConfig::server(Config::default()), 11);
    srv.app.echo = true;
    srv.app.read_delay = Some(Duration::ZERO);
    let mut v2ray = Config::default();
    v2ray.tuning.v2ray_compat = true;
    let mut cli = SimPeer::client(v2ray, 12, t0, server);
    cli.app.read_delay = Some(Duration::ZERO);
    net.add_node(server, srv);
    net.add_node(client, cli);
    for i in 0..20u8 {
        let now = net.now();
        let c = net.node_mut::<SimPeer>(client).unwrap();
        let want = c.app.received.len() + 64;
        c.app.to_send.extend_from_slice(&[i; 64]);
        c.pump(now);
        let start = net.now();
        let back = net
            .run_until_cond(Duration::from_secs(20), |net| {
                net.node::<SimPeer>(client).unwrap().app.received.len() >= want
            })
            .unwrap();
        assert!(back, "echo {i} never came back");
        assert!(
            net.now() - start < Duration::from_secs(1),
            "echo {i} took {:?}",
            net.now() - start
        );
    }
}

/// A V2Ray client that only downloads (a target that speaks first) shows itself with
/// a Ping after about 5 s, which buys a reply of a few bytes. If that one datagram is
/// lost, the next budget came with its next Ping, 5 s later (`mkcp bench`: V2Ray
/// client <- mkcp server on the 30 ms / 2 % link, no byte in 10 s). So a reply that
/// the budget keeps that small goes twice, in two datagrams: a single loss no longer
/// costs a ping interval.
#[test]
fn a_pinging_v2ray_client_gets_its_first_bytes_even_if_the_first_reply_is_lost() {
    let client = addr("10.0.0.1:1000");
    let server = addr("10.0.0.2:2000");
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    let link = LinkConfig::default()
        .delay(Duration::from_millis(30))
        .rate_bps(100_000_000)
        .queue_bytes(256 * 1024);
    net.set_link(client, server, link.clone());
    net.set_link(server, client, link);
    let mut v2 = Config::default();
    v2.tuning.v2ray_compat = true;
    let mut srv = SimPeer::new(EndpointConfig::server(Config::default()), 11);
    let reply = random_bytes(9, 1 << 20);
    srv.app.to_send = reply.clone();
    net.add_node(server, srv);
    let cli = SimPeer::client(v2, 12, t0, server);
    net.add_node(client, cli);
    // The server's first datagram is lost; and when did the client first speak?
    let first_in = Rc::new(Cell::new(None));
    let dropped = Rc::new(Cell::new(false));
    let (f, d) = (first_in.clone(), dropped.clone());
    net.set_tap(move |now, src, _, _| {
        if src == client && f.get().is_none() {
            f.set(Some(now));
        }
        if src == server && !d.get() {
            d.set(true);
            return false;
        }
        true
    });
    let got = net
        .run_until_cond(Duration::from_secs(30), |net| {
            net.node::<SimPeer>(client)
                .is_some_and(|c| !c.app.received.is_empty())
        })
        .unwrap();
    assert!(got, "no byte reached the V2Ray client");
    assert!(dropped.get());
    let waited = net.now() - first_in.get().expect("the client spoke");
    assert!(
        waited < Duration::from_secs(1),
        "first bytes {waited:?} after the client's first datagram"
    );
    assert!(
        downloaded(&mut net, client, reply.len()),
        "download did not finish"
    );
    assert!(net.node::<SimPeer>(client).unwrap().app.received == reply);
}
