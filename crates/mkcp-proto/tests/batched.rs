//! The batched endpoint calls (`handle_datagrams`, `poll_transmits`) do exactly what one
//! call per datagram does: two identical worlds, one driven datagram by datagram and one
//! in batches, send the same bytes, deliver the same data and count the same.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::{EndpointConfig, Event, Transmit};
use mkcp_proto::wire::{HeaderKind, MAX_DATAGRAM};
use mkcp_proto::{Config, ConnId, Endpoint, Security};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SERVER: &str = "10.0.0.1:1";
const CLIENT: &str = "10.0.0.2:2";

/// A client uploading to a server, all in memory.
struct World {
    client: Endpoint,
    server: Endpoint,
    cid: ConnId,
    sid: Option<ConnId>,
    received: Vec<u8>,
    batched: bool,
}

impl World {
    fn new(config: &Config, batched: bool, now: Instant) -> World {
        let mut client = Endpoint::new(
            EndpointConfig::client(config.clone()),
            StdRng::seed_from_u64(2),
        );
        let server = Endpoint::new(
            EndpointConfig::server(config.clone()),
            StdRng::seed_from_u64(1),
        );
        let cid = client.connect(now, SERVER.parse().unwrap()).unwrap();
        World {
            client,
            server,
            cid,
            sid: None,
            received: Vec::new(),
            batched,
        }
    }

    /// Everything `ep` has to send now, as separate datagrams; batches of up to
    /// `batch` datagrams when batched.
    fn take(ep: &mut Endpoint, batched: bool, now: Instant, batch: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if batched {
            let mut buf = vec![0u8; 9 * MAX_DATAGRAM];
            let mut meta: Vec<Transmit> = Vec::new();
            loop {
                meta.clear();
                let used = ep.poll_transmits(now, &mut buf, batch, usize::MAX, &mut meta);
                assert_eq!(used, meta.iter().map(|t| t.len).sum::<usize>());
                let mut off = 0;
                for t in &meta {
                    out.push(buf[off..off + t.len].to_vec());
                    off += t.len;
                }
                if meta.len() < batch {
                    return out;
                }
            }
        }
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Some(t) = ep.poll_transmit(now, &mut buf) {
            out.push(buf[..t.len].to_vec());
        }
        out
    }

    /// Hands `datagrams` to `ep`, all at once when batched.
    fn give(ep: &mut Endpoint, batched: bool, now: Instant, from: &str, datagrams: &mut [Vec<u8>]) {
        let peer: SocketAddr = from.parse().unwrap();
        if batched {
            ep.handle_datagrams(now, datagrams.iter_mut().map(|d| (peer, &mut d[..])));
        } else {
            for d in datagrams.iter_mut() {
                ep.handle_datagram(now, peer, d);
            }
        }
    }
}

/// Copies of some datagrams damaged in ways the envelope must catch, or cut short.
fn spoil(datagrams: &[Vec<u8>], rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for d in datagrams {
        out.push(d.clone());
        match rng.gen_range(0..12) {
            0 => {
                let mut bad = d.clone();
                let i = rng.gen_range(0..bad.len());
                bad[i] ^= 0x40;
                out.push(bad);
            }
            1 => out.push(d[..rng.gen_range(0..d.len().min(9))].to_vec()),
            2 => out.push(vec![0u8; MAX_DATAGRAM + 1]),
            _ => {}
        }
    }
    out
}

fn run(config: Config) {
    let start = Instant::now();
    let mut worlds = [
        World::new(&config, false, start),
        World::new(&config, true, start),
    ];
    let payload: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut written = [0usize; 2];
    let mut rng = StdRng::seed_from_u64(9);
    let mut now = start;
    let mut rbuf = vec![0u8; 256 * 1024];
    for step in 0..4000 {
        now += Duration::from_micros(500);
        let batch = rng.gen_range(1..10);
        let drop_one = rng.gen_range(0..4) == 0;
        let mut sent = Vec::new();
        for (w, written) in worlds.iter_mut().zip(written.iter_mut()) {
            while *written < payload.len() {
                match w.client.write(w.cid, now, &payload[*written..]) {
                    Ok(n) if n > 0 => *written += n,
                    _ => break,
                }
            }
            let mut up = World::take(&mut w.client, w.batched, now, batch);
            // Some loss, so that retransmissions and acknowledgement lists happen.
            if drop_one && up.len() > 2 {
                up.remove(up.len() / 2);
            }
            sent.push(up);
        }
        assert_eq!(sent[0], sent[1], "client datagrams differ at step {step}");
        let up = spoil(&sent[0], &mut rng);
        let mut down_sent = Vec::new();
        for w in worlds.iter_mut() {
            World::give(&mut w.server, w.batched, now, CLIENT, &mut up.clone());
            while let Some(e) = w.server.poll_event() {
                if let Event::NewConnection(id) = e {
                    w.sid = Some(id);
                }
            }
            if let Some(id) = w.sid {
                while let Ok(Some(n)) = w.server.read(id, now, &mut rbuf) {
                    if n == 0 {
                        break;
                    }
                    w.received.extend_from_slice(&rbuf[..n]);
                }
            }
            down_sent.push(World::take(&mut w.server, w.batched, now, batch));
        }
        assert_eq!(
            down_sent[0], down_sent[1],
            "server datagrams differ at step {step}"
        );
        let down = spoil(&down_sent[0], &mut rng);
        for w in worlds.iter_mut() {
            World::give(&mut w.client, w.batched, now, SERVER, &mut down.clone());
            while w.client.poll_event().is_some() {}
            w.client.handle_timeout(now);
            w.server.handle_timeout(now);
        }
        if worlds[0].received.len() == payload.len() {
            break;
        }
    }
    let [a, b] = &worlds;
    assert_eq!(a.received.len(), payload.len(), "transfer did not finish");
    assert!(
        a.received == payload && b.received == payload,
        "data differs"
    );
    assert_eq!(a.client.stats(), b.client.stats());
    assert_eq!(a.server.stats(), b.server.stats());
    assert!(
        a.server.stats().dropped_invalid > 0,
        "no damaged datagram was caught"
    );
    println!("{:?}\n{:?}", a.client.stats(), a.server.stats());
}

#[test]
fn batched_calls_equal_single_calls_with_the_legacy_envelope() {
    run(Config::default());
}

#[test]
fn batched_calls_equal_single_calls_with_a_header_and_the_legacy_envelope() {
    let mut config = Config::default();
    config.header = HeaderKind::Srtp;
    run(config);
}

#[test]
fn batched_calls_equal_single_calls_with_aes_gcm() {
    let mut config = Config::default();
    config.security = Security::AesGcm {
        seed: "batched".into(),
    };
    config.header = HeaderKind::Wireguard;
    run(config);
}
