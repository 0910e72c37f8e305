//! The hello exchange (docs/DESIGN.md "Telling mkcp and V2Ray peers apart"): each side says
//! it is mkcp with a command segment V2Ray takes for a Ping; a receiver that never hears
//! it paces its sender as V2Ray's, with a window of a few segments per TTI, which an
//! mkcp sender takes as a hard limit. So the exchange must survive the losses of a
//! session's first flight, in virtual time.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mkcp_proto::wire::segment::Segment;
use mkcp_proto::{Codec, Config, HeaderKind, Security, CMD_HELLO, CMD_HELLO_HEARD};
use mkcp_sim::link::LinkConfig;
use rand::rngs::StdRng;
use rand::SeedableRng;
use support::Pair;

fn link(seed: u64) -> LinkConfig {
    LinkConfig::default()
        .delay(Duration::from_millis(30))
        .rate_bps(20_000_000)
        .queue_bytes(128 * 1024)
        .seed(seed)
}

/// What one direction's datagrams carried: send time of each hello marker, whether it
/// was the datagram's only segment, and how many datagrams the tap dropped.
#[derive(Default)]
struct Seen {
    hellos: Vec<(Instant, bool)>,
    dropped: u64,
    /// Data segments shorter than a full one (1326 bytes).
    short_data: usize,
}

/// What the tap does to the client's datagrams.
#[derive(Clone, Copy)]
enum Drop {
    /// Leaves them alone.
    Nothing,
    /// Drops every one before this instant (a first flight lost whole at an
    /// overflowing queue, as on the real relay when four sessions start at once).
    Until(Instant),
    /// Takes our first `n` hello markers out of them (the rest of each datagram
    /// arrives): the server never hears the client's own markers.
    Hellos(usize),
}

/// Watches `from`'s datagrams and alters them as `drop` says.
fn watch(p: &mut Pair, from: SocketAddr, drop: Drop) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let s2 = seen.clone();
    let mut codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(0),
    );
    p.net.set_tap(move |now, src, _, data| {
        if src != from {
            return true;
        }
        let mut seen = s2.borrow_mut();
        let mut copy = data.clone();
        let Ok(pt) = codec.open(&mut copy) else {
            return true;
        };
        let segs: Vec<_> = mkcp_proto::wire::segments(pt).collect();
        let alone = segs.len() == 1;
        let mut kept = vec![0u8; 2048];
        let off = codec.plaintext_offset();
        let mut len = 0;
        for seg in &segs {
            match seg {
                Segment::Cmd(c) if c.cmd == CMD_HELLO || c.cmd == CMD_HELLO_HEARD => {
                    seen.hellos.push((now, alone));
                    if matches!(drop, Drop::Hellos(n) if seen.hellos.len() <= n) {
                        seen.dropped += 1;
                        continue;
                    }
                }
                Segment::Data(d) if d.payload.len() < 1326 => seen.short_data += 1,
                _ => {}
            }
            len += seg.emit(&mut kept[off + len..]).unwrap();
        }
        if matches!(drop, Drop::Until(t) if now < t) {
            seen.dropped += 1;
            return false;
        }
        if len == 0 {
            return false;
        }
        let n = codec.seal(&mut kept, len).unwrap();
        kept.truncate(n);
        *data = kept;
        true
    });
    seen
}

/// An upload of `secs` seconds whose client datagrams the tap drops as `drop` says;
/// returns the payload the server received in the last second and what the tap saw of
/// the client's datagrams.
fn upload(drop: impl FnOnce(Instant) -> Drop, secs: u64) -> (usize, Rc<RefCell<Seen>>) {
    let mut p = Pair::new(Config::default(), link(3), link(4), 5);
    p.c().app.to_send = vec![0x5a; 1 << 30];
    let t0 = p.net.now();
    let client = p.client;
    let seen = watch(&mut p, client, drop(t0));
    p.c().pump(t0);
    p.net.run_for(Duration::from_secs(secs - 1)).unwrap();
    let before = p.s().app.received.len();
    p.net.run_for(Duration::from_secs(1)).unwrap();
    (p.s().app.received.len() - before, seen)
}

/// 20 Mbit/s of 1350-byte datagrams: 2.41 MB/s of payload. A server that took the
/// client for V2Ray advertises a window of a segment or so: about 20 KB/s.
const CAPACITY: f64 = 20e6 / 8.0 * 1326.0 / 1350.0;

/// Before: a sender whose data waited for its window or pacer made 63 hello-only
/// datagrams in one go at connect (lost together at an overflowing queue).
#[test]
fn a_bulk_sender_spaces_its_hellos_and_never_sends_one_alone() {
    // Nothing reaches the server for 300 ms: the client's markers keep coming, spaced,
    // each with data in its datagram.
    let (_, seen) = upload(|t0| Drop::Until(t0 + Duration::from_millis(300)), 2);
    let seen = seen.borrow();
    let t0 = seen.hellos.first().expect("a hello was sent").0;
    let early = seen
        .hellos
        .iter()
        .filter(|(t, _)| *t < t0 + Duration::from_millis(300))
        .count();
    assert!(
        (2..=16).contains(&early),
        "{early} hellos in the first 300 ms: spent at once, they are lost at once"
    );
    let alone = seen.hellos.iter().filter(|(_, a)| *a).count();
    assert_eq!(alone, 0, "hello-only datagrams");
    let mut gaps = seen.hellos.windows(2).map(|w| w[1].0 - w[0].0);
    assert!(
        gaps.all(|g| g >= Duration::from_millis(20)),
        "hellos closer than 20 ms: {:?}",
        seen.hellos.iter().map(|(t, _)| *t - t0).collect::<Vec<_>>()
    );
}

#[test]
fn a_server_learns_its_client_is_mkcp_when_the_first_flight_is_lost_whole() {
    for blackout_ms in [150, 700, 2000] {
        let blackout = Duration::from_millis(blackout_ms);
        let (last_second, seen) = upload(|t0| Drop::Until(t0 + blackout), 6);
        assert!(
            last_second as f64 > 0.8 * CAPACITY,
            "blackout {blackout_ms} ms: {last_second} B/s in the 6th second \
             ({} client datagrams dropped, {} hellos sent)",
            seen.borrow().dropped,
            seen.borrow().hellos.len()
        );
    }
}

#[test]
fn a_client_whose_own_hellos_were_all_lost_answers_the_servers() {
    // The client's 64 markers never arrive: the server hears the client only through
    // its answers to the server's own markers.
    let (last_second, seen) = upload(|_| Drop::Hellos(64), 6);
    let seen = seen.borrow();
    assert!(seen.dropped >= 64, "{} dropped", seen.dropped);
    assert!(
        seen.hellos.len() > 64,
        "no answer after the 64 lost: {} markers",
        seen.hellos.len()
    );
    assert!(
        last_second as f64 > 0.8 * CAPACITY,
        "{last_second} B/s in the 6th second"
    );
}

/// Towards V2Ray, which never answers: at most 64 markers, none alone, and only the first
/// few cut a data segment short (each cut leaves a short segment behind, a slot of
/// V2Ray's receive window); a bulk upload's full datagrams leave no room for the rest.
#[test]
fn a_v2ray_peer_costs_64_markers_and_a_few_short_segments() {
    let mut v2ray = Config::default();
    v2ray.tuning.v2ray_compat = true;
    let mut p = Pair::with_configs(Config::default(), v2ray, link(7), link(8), 6);
    p.s().app.read_delay = Some(Duration::ZERO);
    p.c().app.to_send = vec![0x5a; 8 << 20];
    let client = p.client;
    let seen = watch(&mut p, client, Drop::Nothing);
    let t0 = p.net.now();
    p.c().pump(t0);
    assert!(
        p.run_until(Duration::from_secs(60), |_, s| s.app.received.len()
            >= 8 << 20),
        "the upload did not finish"
    );
    let seen = seen.borrow();
    let (hellos, alone, short) = (
        seen.hellos.len(),
        seen.hellos.iter().filter(|(_, a)| *a).count(),
        seen.short_data,
    );
    assert!((1..=64).contains(&hellos), "{hellos} markers sent");
    assert_eq!(alone, 0, "markers alone in a datagram");
    // Four cuts, each a shortened segment and its short tail (retransmissions of them
    // are counted again).
    assert!(short <= 16, "{short} short data segments");
}
