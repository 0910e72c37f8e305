//! Rules of PROTOCOL.md §3 checked one by one in the simulated network: half-close, idle
//! timeout, the close/terminate timers, flow control, and the endpoint's session rules.

mod support;

use std::time::Duration;

use mkcp_proto::endpoint::{EndpointConfig, Event};
use mkcp_proto::wire::segment::{
    AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, CMD_PING, CMD_TERMINATE,
};
use mkcp_proto::{
    Codec, Config, ConnEvent, Endpoint, EndpointError, HeaderKind, Security, State, CMD_HELLO,
};
use mkcp_sim::link::LinkConfig;
use rand::rngs::StdRng;
use rand::SeedableRng;
use support::{addr, random_bytes, Pair, SimPeer};

fn link(delay_ms: u64) -> LinkConfig {
    LinkConfig::default().delay(Duration::from_millis(delay_ms))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn half_close_lets_the_peer_deliver_its_whole_reply() {
    let mut p = Pair::new(
        Config::default(),
        link(20).loss(0.05).seed(1),
        link(20).loss(0.05).seed(2),
        3,
    );
    let request = b"GET /big HTTP/1.0\r\n\r\n".to_vec();
    let reply = random_bytes(5, 3 << 20);
    p.c().app.to_send = request.clone();
    p.c().app.shutdown_after_send = true;
    p.s().app.reply_on_eof = Some(reply.clone());
    p.s().app.shutdown_after_send = true;
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(
        p.run_until(secs(120), |c, _| c.app.eof),
        "client never saw end of the reply"
    );
    assert_eq!(p.s().app.received, request);
    assert!(
        p.s().app.eof,
        "server saw the client's half-close as end-of-stream"
    );
    assert!(
        p.c().app.received == reply,
        "reply truncated: {} of {}",
        p.c().app.received.len(),
        reply.len()
    );
    assert_eq!(
        p.c().state(),
        Some(State::Active),
        "half-close is not a full close"
    );
}

#[test]
fn peer_that_vanishes_gives_a_timeout_error_within_the_idle_timeout() {
    let mut p = Pair::new(Config::default(), link(10), link(10), 4);
    p.c().app.to_send = b"hello".to_vec();
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(p.run_until(secs(5), |_, s| s.app.received == b"hello"));
    let vanished_at = p.net.now();
    let server = p.server;
    p.net.remove_node(server);
    let client = p.client;
    let got_error = p
        .net
        .run_until_cond(secs(60), |net| {
            net.node::<SimPeer>(client)
                .is_some_and(|c| c.app.error.is_some())
        })
        .unwrap();
    assert!(got_error, "no error after the peer vanished");
    let c = p.net.node::<SimPeer>(client).unwrap();
    let after = c.app.error_at.unwrap() - vanished_at;
    assert!(
        after <= secs(31),
        "error came {after:?} after the peer vanished"
    );
    assert!(after >= secs(29), "error came too early: {after:?}");
    assert!(matches!(
        c.app.error,
        Some(EndpointError::Connection(
            mkcp_proto::ConnectionError::TimedOut { timeout_ms: 30_000 }
        ))
    ));
    // The session ends on its own: Terminating lasts 8 s.
    assert!(p.run_until_client(secs(10), |c| c.state() == Some(State::Terminated)));
}

#[test]
fn close_handshake_follows_the_state_timers() {
    // Client closes with nothing queued: Terminating at once, sends Terminate.
    // Server's application does not close: PeerTerminating, then after 4 s Terminating,
    // whose Terminate kills the client at once (PROTOCOL.md §3.8).
    let mut p = Pair::new(Config::default(), link(10), link(10), 5);
    p.c().app.to_send = b"x".to_vec();
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(p.run_until(secs(5), |_, s| s.app.received == b"x"));
    assert!(p.run_until(secs(5), |c, _| c
        .ep
        .connection(c.app.id.unwrap())
        .unwrap()
        .unacked_bytes()
        == 0));
    let id = p.c().app.id.unwrap();
    let now = p.net.now();
    p.c().ep.close(id, now).unwrap();
    p.c().app.closed = true;
    let closed_at = now;
    assert_eq!(p.c().state(), Some(State::Terminating));
    assert!(p.run_until(secs(1), |_, s| s.state() == Some(State::PeerTerminating)));
    let peer_term_at = p.net.now();
    assert!(
        peer_term_at - closed_at <= Duration::from_millis(11),
        "Terminate is sent at once"
    );
    // The server app reads EOF but keeps the connection open.
    assert!(p.run_until(secs(1), |_, s| s.app.eof));
    assert!(p.run_until(secs(10), |_, s| s.state() == Some(State::Terminating)));
    let waited = p.net.now() - peer_term_at;
    assert!(
        waited > secs(4) && waited < secs(4) + Duration::from_millis(100),
        "PeerTerminating lasted {waited:?}"
    );
    assert!(p.run_until(secs(1), |c, _| c.state() == Some(State::Terminated)));
    // The server, with no answer, dies 8 s after entering Terminating.
    let term_at = p.net.now();
    assert!(p.run_until(secs(20), |_, s| s.state() == Some(State::Terminated)));
    let lasted = p.net.now() - term_at;
    assert!(
        lasted > secs(7) && lasted <= secs(8) + Duration::from_millis(600),
        "Terminating lasted {lasted:?}"
    );
}

#[test]
fn closing_side_dies_after_8_s_when_the_peer_closes_silently() {
    // Typical V2Ray close: the peer's application closes on EOF, so PeerTerminating ->
    // Terminated silently; the closing side gives up 8 s after entering Terminating.
    let mut p = Pair::new(Config::default(), link(10), link(10), 6);
    p.c().app.to_send = b"bye".to_vec();
    p.s().app.close_after_eof = true;
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(p.run_until(secs(5), |_, s| s.app.received == b"bye"));
    assert!(p.run_until(secs(5), |c, _| c
        .ep
        .connection(c.app.id.unwrap())
        .unwrap()
        .unacked_bytes()
        == 0));
    let id = p.c().app.id.unwrap();
    let now = p.net.now();
    p.c().ep.close(id, now).unwrap();
    p.c().app.closed = true;
    assert!(p.run_until(secs(1), |_, s| s.state() == Some(State::Terminated)));
    assert!(p.run_until(secs(20), |c, _| c.state() == Some(State::Terminated)));
    let lasted = p.net.now() - now;
    assert!(
        lasted > secs(8) && lasted <= secs(8) + Duration::from_millis(600),
        "lasted {lasted:?}"
    );
}

#[test]
fn reader_that_does_not_read_closes_the_window_instead_of_growing_memory() {
    let mut p = Pair::new(Config::default(), link(5), link(5), 7);
    p.s().app.paused = true;
    p.c().app.to_send = random_bytes(8, 20 << 20);
    let t0 = p.net.now();
    p.c().pump(t0);
    p.net.run_for(secs(5)).unwrap();
    let c = p.c();
    let sent = c.app.sent;
    let cstats = c.ep.connection(c.app.id.unwrap()).unwrap().stats();
    // The receive window (readBufferSize 2 MiB) bounds what the receiver holds; the
    // sender's buffer (writeBufferSize 2 MiB) bounds what the writer could queue.
    assert!(
        cstats.bytes_acked <= 2 << 20,
        "receiver accepted {} bytes without reading",
        cstats.bytes_acked
    );
    assert!(
        sent <= 4 << 20,
        "writer was not blocked: queued {sent} bytes"
    );
    // Once the reader reads, everything flows.
    p.s().app.paused = false;
    let now = p.net.now();
    p.s().pump(now);
    p.c().app.shutdown_after_send = true;
    p.c().pump(now);
    assert!(p.run_until(secs(120), |_, s| s.app.eof));
    assert_eq!(p.s().app.received.len(), 20 << 20);
}

fn sealed(codec: &mut Codec, seg: Segment<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let off = codec.plaintext_offset();
    let n = seg.emit(&mut buf[off..]).unwrap();
    let len = codec.seal(&mut buf, n).unwrap();
    buf.truncate(len);
    buf
}

fn ping(conv: u16, cmd: u8) -> Segment<'static> {
    Segment::Cmd(CmdSegment {
        conv,
        cmd,
        option: 0,
        sending_next: 0,
        receiving_next: 0,
        peer_rto: 100,
    })
}

/// A listener and a client-side codec for hand-made datagrams.
fn listener_and_codec() -> (Endpoint, Codec) {
    let ep = Endpoint::new(
        EndpointConfig::server(Config::default()),
        StdRng::seed_from_u64(1),
    );
    let codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(2),
    );
    (ep, codec)
}

#[test]
fn listener_ignores_terminate_for_unknown_sessions_and_creates_them_from_anything_else() {
    let now = std::time::Instant::now();
    let (mut ep, mut codec) = listener_and_codec();
    let peer = addr("10.1.1.1:5000");
    ep.handle_datagram(now, peer, &mut sealed(&mut codec, ping(7, CMD_TERMINATE)));
    assert_eq!(ep.poll_event(), None);
    assert_eq!(ep.live_sessions(), 0);
    ep.handle_datagram(now, peer, &mut sealed(&mut codec, ping(7, 0x7F)));
    assert!(matches!(ep.poll_event(), Some(Event::NewConnection(_))));
    let data = Segment::Data(DataSegment {
        conv: 8,
        option: 0,
        timestamp: 0,
        number: 0,
        sending_next: 0,
        payload: b"hi",
    });
    ep.handle_datagram(now, peer, &mut sealed(&mut codec, data));
    assert!(matches!(ep.poll_event(), Some(Event::NewConnection(_))));
    assert_eq!(ep.live_sessions(), 2, "keyed by (address, conv)");
}

/// A closing peer's Terminate may follow an ack or a hello in its datagram; for a
/// session we no longer have, it must not open one (the new session answered with a
/// Terminate of its own and cut the peer's 8 s closing wait to 4.5 s).
#[test]
fn listener_ignores_terminate_behind_other_segments_for_unknown_sessions() {
    let now = std::time::Instant::now();
    let (mut ep, mut codec) = listener_and_codec();
    let peer = addr("10.1.1.1:5000");
    let ack = Segment::Ack(AckSegment {
        conv: 7,
        option: 0,
        receiving_window: 32,
        receiving_next: 0,
        timestamp: 0,
        numbers: AckNumbers::List(&[]),
    });
    for first in [ack, ping(7, CMD_HELLO)] {
        let mut buf = vec![0u8; 2048];
        let off = codec.plaintext_offset();
        let mut n = first.emit(&mut buf[off..]).unwrap();
        n += ping(7, CMD_TERMINATE).emit(&mut buf[off + n..]).unwrap();
        let len = codec.seal(&mut buf, n).unwrap();
        buf.truncate(len);
        ep.handle_datagram(now, peer, &mut buf);
        assert_eq!(ep.poll_event(), None);
        assert_eq!(ep.live_sessions(), 0);
    }
    assert_eq!(ep.stats().dropped_unknown, 2);
}

/// A duplicate of data we already have is answered at once by a cumulative ack, but
/// towards a peer that has not said hello (V2Ray resends in bursts) only once no ack
/// went for 10 ms; an mkcp peer's duplicates are each answered.
#[test]
fn duplicates_from_a_peer_without_hello_are_answered_at_most_every_10_ms() {
    let t0 = std::time::Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let data = Segment::Data(DataSegment {
        conv: 9,
        option: 0,
        timestamp: 0,
        number: 0,
        sending_next: 0,
        payload: b"hi",
    });
    for hello in [false, true] {
        let (mut ep, mut codec) = listener_and_codec();
        let peer = addr("10.1.1.1:5000");
        if hello {
            ep.handle_datagram(t0, peer, &mut sealed(&mut codec, ping(9, CMD_HELLO)));
        }
        let mut answers = Vec::new();
        let mut id = None;
        for at in [0, 1, 2, 5, 20, 21] {
            ep.handle_datagram(ms(at), peer, &mut sealed(&mut codec, data));
            while let Some(ev) = ep.poll_event() {
                if let Event::NewConnection(c) = ev {
                    id = Some(c);
                }
            }
            // Read at once, as an application does: the copies that follow are old.
            let mut buf = vec![0u8; 2048];
            let _ = ep.read(id.unwrap(), ms(at), &mut buf);
            let mut n = 0;
            while ep.poll_transmit(ms(at), &mut buf).is_some() {
                n += 1;
            }
            answers.push(n);
        }
        let want = if hello {
            vec![1, 1, 1, 1, 1, 1]
        } else {
            // The first arrival's ack, then silence until 10 ms after it.
            vec![1, 0, 0, 0, 1, 0]
        };
        assert_eq!(answers, want, "hello {hello}");
    }
}

#[test]
fn session_limits_bound_a_flood_of_new_conversations() {
    let now = std::time::Instant::now();
    let mut cfg = EndpointConfig::server(Config::default());
    cfg.max_sessions = 100;
    cfg.max_sessions_per_ip = 10;
    let mut ep = Endpoint::new(cfg, StdRng::seed_from_u64(1));
    let mut codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(2),
    );
    for ip in 0..20u16 {
        for conv in 0..50u16 {
            let peer = addr(&format!("10.2.{}.{}:4000", ip / 256, ip % 256));
            ep.handle_datagram(now, peer, &mut sealed(&mut codec, ping(conv, CMD_PING)));
        }
    }
    // None of them proved reachability: each newcomer evicts the oldest unproven
    // session (of its own address once that address is at its limit), none is refused.
    assert_eq!(ep.live_sessions(), 100);
    assert_eq!(ep.stats().sessions_refused, 0);
    assert_eq!(ep.stats().sessions_evicted, 20 * 50 - 100);
}

#[test]
fn dialer_drops_datagrams_from_unknown_sessions() {
    let now = std::time::Instant::now();
    let mut ep = Endpoint::new(
        EndpointConfig::client(Config::default()),
        StdRng::seed_from_u64(1),
    );
    let mut codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(2),
    );
    let id = ep.connect(now, addr("10.3.0.1:443")).unwrap();
    let conv = ep.connection(id).unwrap().conv();
    // Right conv, wrong source: not ours.
    ep.handle_datagram(
        now,
        addr("10.9.9.9:443"),
        &mut sealed(&mut codec, ping(conv, CMD_PING)),
    );
    assert_eq!(ep.stats().dropped_unknown, 1);
    while ep.poll_event().is_some() {}
    assert_eq!(ep.live_sessions(), 1);
}

#[test]
fn forged_cumulative_ack_beyond_what_was_sent_does_not_lose_data() {
    // V2Ray applies any receivingNext (PROTOCOL.md §5 item 8); we reject implausible ones.
    let mut p = Pair::new(Config::default(), link(10), link(10), 9);
    let data = random_bytes(10, 200_000);
    p.c().app.to_send = data.clone();
    p.c().app.shutdown_after_send = true;
    let client = p.client;
    let server = p.server;
    let t0 = p.net.now();
    p.c().pump(t0);
    // Inject a forged Ping claiming everything up to 1_000_000 was received.
    let c = p.c();
    let conv = c.ep.connection(c.app.id.unwrap()).unwrap().conv();
    let mut codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(3),
    );
    let forged = sealed(
        &mut codec,
        Segment::Cmd(CmdSegment {
            conv,
            cmd: CMD_PING,
            option: 0,
            sending_next: 0,
            receiving_next: 1_000_000,
            peer_rto: 100,
        }),
    );
    p.net.inject(server, client, &forged);
    assert!(p.run_until(secs(60), |_, s| s.app.eof));
    assert!(p.s().app.received == data);
    let c = p.c();
    assert!(
        c.ep.connection(c.app.id.unwrap())
            .unwrap()
            .stats()
            .implausible
            >= 1
    );
}

#[test]
fn events_report_readable_and_terminated() {
    let now = std::time::Instant::now();
    let mut server = Endpoint::new(
        EndpointConfig::server(Config::default()),
        StdRng::seed_from_u64(1),
    );
    let mut client = Endpoint::new(
        EndpointConfig::client(Config::default()),
        StdRng::seed_from_u64(2),
    );
    let saddr = addr("10.4.0.1:1");
    let caddr = addr("10.4.0.2:2");
    let id = client.connect(now, saddr).unwrap();
    client.write(id, now, b"ping").unwrap();
    let mut buf = vec![0u8; 2048];
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        assert_eq!(t.destination, saddr);
        server.handle_datagram(now, caddr, &mut buf[..t.len]);
    }
    let mut events = Vec::new();
    while let Some(e) = server.poll_event() {
        events.push(e);
    }
    let sid = match events[0] {
        Event::NewConnection(sid) => sid,
        e => panic!("first event {e:?}"),
    };
    assert!(events.contains(&Event::Connection(sid, ConnEvent::Readable)));
    let mut out = [0u8; 16];
    assert_eq!(server.read(sid, now, &mut out).unwrap(), Some(4));
    assert_eq!(&out[..4], b"ping");
}

/// Counts datagrams and segments of each kind that one side sends, by opening a copy
/// of every datagram the link delivers.
fn count_segments(
    p: &mut Pair,
    from: std::net::SocketAddr,
) -> std::rc::Rc<std::cell::RefCell<(u64, u64, u64, u64)>> {
    let counts = std::rc::Rc::new(std::cell::RefCell::new((0u64, 0u64, 0u64, 0u64)));
    let c2 = counts.clone();
    let codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(0),
    );
    p.net.set_tap(move |_, src, _, data| {
        if src == from {
            let mut copy = data.clone();
            if let Ok(pt) = codec.open(&mut copy) {
                let mut c = c2.borrow_mut();
                c.0 += 1; // datagrams
                let mut n = 0;
                for seg in mkcp_proto::wire::segments(pt) {
                    n += 1;
                    match seg {
                        Segment::Ack(_) => c.1 += 1,
                        Segment::Data(_) => c.2 += 1,
                        Segment::Cmd(_) => {}
                    }
                }
                if n > 1 {
                    c.3 += 1; // datagrams carrying several segments
                }
            }
        }
        true
    });
    counts
}

#[test]
fn acks_ride_in_the_same_datagram_as_data() {
    let mut p = Pair::new(Config::default(), link(10), link(10), 11);
    // Both sides talk at once: acks for one direction pack with the other's data.
    p.c().app.to_send = random_bytes(1, 300);
    p.s().app.reply_on_eof = None;
    let client = p.client;
    let counts = count_segments(&mut p, client);
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(p.run_until(secs(2), |_, s| s.app.received.len() == 300));
    // The server answers with small writes; each answer also acks the client's data.
    for i in 0..20 {
        let now = p.net.now();
        p.s().app.to_send.extend_from_slice(&[i; 100]);
        p.s().pump(now);
        p.c().app.to_send.extend_from_slice(&[i; 100]);
        let want = p.c().app.received.len() + 100;
        assert!(p.run_until(secs(2), |c, _| c.app.received.len() >= want));
        let now = p.net.now();
        p.c().pump(now);
    }
    let c = counts.borrow();
    assert!(c.3 > 0, "no datagram carried more than one segment: {c:?}");
}

#[test]
fn each_arrival_is_acked_at_most_twice_not_every_50_ms() {
    // V2Ray re-sends the ack of a single Data segment every 50-100 ms until the peer's
    // sendingNext passes it: 69 acks in 5 s (vector connection_ack_repeat_after_single_data).
    let mut p = Pair::new(Config::default(), link(10), link(10), 12);
    let server = p.server;
    let counts = count_segments(&mut p, server);
    p.c().app.to_send = b"x".to_vec();
    let t0 = p.net.now();
    p.c().pump(t0);
    p.net.run_for(secs(5)).unwrap();
    let c = counts.borrow();
    assert!(
        c.1 >= 1 && c.1 <= 2,
        "server sent {} acks for one segment",
        c.1
    );
}

#[test]
fn retransmissions_back_off_while_the_peer_is_unreachable() {
    let mut p = Pair::new(Config::default(), link(10), link(10), 13);
    let server = p.server;
    p.net.remove_node(server);
    p.c().app.to_send = b"lost".to_vec();
    let t0 = p.net.now();
    p.c().pump(t0);
    p.net.run_for(secs(10)).unwrap();
    let c = p.c();
    let st = c.ep.connection(c.app.id.unwrap()).unwrap().stats();
    // V2Ray retransmits every RTO (100 ms): about 100 times in 10 s.
    assert!(
        st.retransmissions <= 15,
        "{} retransmissions in 10 s",
        st.retransmissions
    );
    assert!(
        st.retransmissions >= 5,
        "gave up too early: {}",
        st.retransmissions
    );
}

#[test]
fn rtt_is_learned_when_it_exceeds_the_initial_rto() {
    // 130 ms one way: every first transmission times out (initial RTO 100 ms) before its
    // ack returns, so Karn's rule alone would never give a sample.
    let mut p = Pair::new(Config::default(), link(130), link(130), 14);
    let data = random_bytes(3, 2 << 20);
    p.c().app.to_send = data.clone();
    p.c().app.shutdown_after_send = true;
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(p.run_until(secs(60), |_, s| s.app.eof));
    assert!(p.s().app.received == data);
    let c = p.c();
    let st = c.ep.connection(c.app.id.unwrap()).unwrap().stats();
    assert!(
        (250..=300).contains(&st.srtt_ms),
        "srtt {} ms for a 260 ms path",
        st.srtt_ms
    );
    assert!(
        st.retransmissions * 10 < st.data_segments_sent,
        "{} retransmissions of {} segments",
        st.retransmissions,
        st.data_segments_sent
    );
}
