//! Drives a listening `Endpoint` (and so its connections) with an arbitrary sequence of
//! datagrams, time steps and application calls, checking invariants after every step:
//! nothing panics, the session table stays within its limits, no connection holds more
//! than its windows allow, and every byte an application reads is the right byte of its
//! stream (Data payloads are derived from their segment number, so a correct
//! reassembly reads a known pattern; a wrong one reads something else).
//!
//! Shared by the `endpoint` cargo-fuzz target and the stable smoke test
//! `crates/mkcp-proto/tests/fuzz_smoke.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::{ConnId, EndpointConfig, Event};
use mkcp_proto::wire::segment::{AckNumbers, AckSegment, CmdSegment, DataSegment, Segment};
use mkcp_proto::wire::{Codec, HeaderKind, Security, MAX_DATAGRAM};
use mkcp_proto::{Config, Endpoint};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Payload bytes of every Data segment the driver forges.
const SEG: usize = 64;
const MAX_SESSIONS: usize = 8;
const MAX_PER_IP: usize = 4;

/// Byte `j` of the payload of segment `number`.
fn pattern(number: u32, j: usize) -> u8 {
    (number.wrapping_mul(31) as usize).wrapping_add(j * 7) as u8
}

/// Reads the input a byte at a time; zeros once it runs out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn small(&mut self) -> u32 {
        // Mostly small numbers (near the windows), sometimes anything.
        match self.u8() % 4 {
            0 => self.u32(),
            _ => u32::from(self.u8()) | (u32::from(self.u8() % 8) << 8),
        }
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// What the application has read from one connection.
struct Reader {
    id: ConnId,
    offset: u64,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input { data };
    let mut kcp = Config::default();
    kcp.security = if input.u8() % 2 == 0 {
        Security::Legacy
    } else {
        Security::AesGcm {
            seed: "fuzz".into(),
        }
    };
    let mut config = EndpointConfig::server(kcp.clone());
    config.max_sessions = MAX_SESSIONS;
    config.max_sessions_per_ip = MAX_PER_IP;
    let mut ep = Endpoint::new(config, StdRng::seed_from_u64(1));
    let mut codec = Codec::new(HeaderKind::None, &kcp.security, StdRng::seed_from_u64(2));
    let peers: Vec<SocketAddr> = (0..6)
        .map(|i| SocketAddr::from(([10, 0, (i / 2) as u8, 1 + i as u8], 1000 + i as u16)))
        .collect();
    let t0 = Instant::now();
    let mut now = t0;
    let mut readers: Vec<Reader> = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Datagrams held back to be fed in one batch (`handle_datagrams`), as a runtime that
    // receives several at a time does; and the batch output's buffer.
    let mut held: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut batch_buf = vec![0u8; 6 * MAX_DATAGRAM];
    let mut transmits = Vec::new();
    let mut rbuf = vec![0u8; 4096];
    let mut steps = 0;
    while !input.is_empty() && steps < 400 {
        steps += 1;
        match input.u8() % 8 {
            0..=3 => {
                // A datagram of 1-3 forged segments from one of the peers.
                let peer = peers[usize::from(input.u8()) % peers.len()];
                let conv = u16::from(input.u8() % 4);
                let mut plain = [0u8; MAX_DATAGRAM];
                let mut w = 0;
                let budget = codec.max_plaintext(1400);
                let mut numbers = [0u32; 8];
                let payload = [0u8; SEG];
                for _ in 0..1 + input.u8() % 3 {
                    let option = input.u8() & 1;
                    let kind = input.u8() % 4;
                    let mut data_payload = payload;
                    let seg = match kind {
                        0 | 1 => {
                            let number = input.small();
                            for (j, b) in data_payload.iter_mut().enumerate() {
                                *b = pattern(number, j);
                            }
                            Segment::Data(DataSegment {
                                conv,
                                option,
                                timestamp: input.u32(),
                                number,
                                sending_next: input.small(),
                                payload: &[],
                            })
                        }
                        2 => {
                            let count = usize::from(input.u8() % 8);
                            for n in numbers.iter_mut().take(count) {
                                *n = input.small();
                            }
                            Segment::Ack(AckSegment {
                                conv,
                                option,
                                receiving_window: input.small(),
                                receiving_next: input.small(),
                                timestamp: input.u32(),
                                numbers: AckNumbers::List(&numbers[..count]),
                            })
                        }
                        _ => Segment::Cmd(CmdSegment {
                            conv,
                            cmd: [2, 3, 0xF1, 0xF2, 0xF3, 9][usize::from(input.u8()) % 6],
                            option,
                            sending_next: input.small(),
                            receiving_next: input.small(),
                            peer_rto: input.small(),
                        }),
                    };
                    // Data carries its pattern payload (built here so it can borrow).
                    let seg = match seg {
                        Segment::Data(d) => Segment::Data(DataSegment {
                            payload: &data_payload,
                            ..d
                        }),
                        other => other,
                    };
                    if w + seg.encoded_len() > budget {
                        break;
                    }
                    match seg.emit(&mut plain[w..budget]) {
                        Ok(n) => w += n,
                        Err(_) => break,
                    }
                }
                if w == 0 {
                    continue;
                }
                let at = codec.plaintext_offset();
                let mut datagram = vec![0u8; w + codec.overhead()];
                datagram[at..at + w].copy_from_slice(&plain[..w]);
                let Ok(n) = codec.seal(&mut datagram, w) else {
                    continue;
                };
                datagram.truncate(n);
                if input.u8() % 16 == 0 {
                    // Corrupt it: must be dropped, never panic.
                    let i = usize::from(input.u8()) % datagram.len();
                    datagram[i] ^= 0x5A;
                }
                if input.u8() % 2 == 0 {
                    ep.handle_datagram(now, peer, &mut datagram);
                } else {
                    held.push((peer, datagram));
                }
            }
            4 => {
                // Raw garbage.
                let peer = peers[usize::from(input.u8()) % peers.len()];
                let len = usize::from(input.u8()) * 8;
                let mut g: Vec<u8> = (0..len).map(|_| input.u8()).collect();
                if input.u8() % 2 == 0 {
                    ep.handle_datagram(now, peer, &mut g);
                } else {
                    held.push((peer, g));
                }
            }
            5 => {
                // Time passes: up to about 40 s in one step.
                let ms = match input.u8() % 4 {
                    0 => u64::from(input.u8()) * 160,
                    _ => u64::from(input.u8()),
                };
                now += Duration::from_millis(ms);
            }
            6 if !readers.is_empty() => {
                // The application writes to, closes or releases a connection.
                let i = usize::from(input.u8()) % readers.len();
                let id = readers[i].id;
                match input.u8() % 4 {
                    0 => {
                        let _ = ep.write(id, now, &rbuf[..usize::from(input.u8()) * 16]);
                    }
                    1 => {
                        let _ = ep.shutdown_write(id, now);
                    }
                    2 => {
                        let _ = ep.close(id, now);
                    }
                    _ => {
                        ep.release(id, now);
                        readers.swap_remove(i);
                    }
                }
            }
            _ => {}
        }
        // The runtime's loop: held datagrams, timers, output, events, reads.
        if !held.is_empty() && input.u8() % 4 == 0 {
            ep.handle_datagrams(now, held.iter_mut().map(|(p, d)| (*p, &mut d[..])));
            held.clear();
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        let mut sent = 0;
        if input.u8() % 2 == 0 {
            while let Some(t) = ep.poll_transmit(now, &mut buf) {
                assert!(t.len <= MAX_DATAGRAM);
                sent += 1;
                assert!(sent < 100_000, "poll_transmit never ends");
            }
        } else {
            loop {
                transmits.clear();
                let max = usize::from(input.u8() % 8) + 1;
                let used = ep.poll_transmits(now, &mut batch_buf, max, usize::MAX, &mut transmits);
                assert!(transmits.len() <= max);
                assert_eq!(used, transmits.iter().map(|t| t.len).sum::<usize>());
                assert!(transmits.iter().all(|t| t.len <= MAX_DATAGRAM));
                sent += transmits.len();
                assert!(sent < 100_000, "poll_transmits never ends");
                if transmits.is_empty() {
                    break;
                }
            }
        }
        while let Some(ev) = ep.poll_event() {
            if let Event::NewConnection(id) = ev {
                readers.push(Reader { id, offset: 0 });
            }
        }
        for r in &mut readers {
            while let Ok(Some(n)) = ep.read(r.id, now, &mut rbuf) {
                if n == 0 {
                    break;
                }
                for (k, &b) in rbuf[..n].iter().enumerate() {
                    let pos = r.offset + k as u64;
                    let number = (pos / SEG as u64) as u32;
                    let j = (pos % SEG as u64) as usize;
                    assert_eq!(b, pattern(number, j), "wrong byte at stream offset {pos}");
                }
                r.offset += n as u64;
            }
        }
        assert!(ep.live_sessions() <= MAX_SESSIONS);
        assert!(ep.connection_ids().len() <= MAX_SESSIONS + readers.len());
        for id in ep.connection_ids() {
            if let Some(c) = ep.connection(id) {
                // Held data never exceeds what the windows allow.
                assert!(c.unacked_bytes() <= kcp.write_buffer_size as usize);
            }
        }
    }
}
