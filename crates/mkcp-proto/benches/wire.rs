//! Micro-benchmarks of the wire layer: envelopes and the segment codec.
//!
//! ```text
//! cargo bench -p mkcp-proto --bench wire
//! ```
//!
//! * `envelope/legacy/{seal,open}`: V2Ray's FNV-1a + xor envelope around a 1350-byte
//!   datagram (1344 bytes of plaintext).
//! * `envelope4/legacy/{seal,open}_many`: the same for four such datagrams at once
//!   (`legacy_seal_many` / `legacy_open_many`, the hashes side by side); throughput in
//!   bytes of the four datagrams, so it compares per byte with the single ones.
//! * `envelope/aes-128-gcm/{seal,open}`: AES-128-GCM around a 1350-byte datagram (1322
//!   bytes of plaintext, random nonce per seal).
//! * `codec/legacy/seal+open`: the whole `Codec` path (no header) for one datagram.
//! * `segment/data/{emit,parse}`: a Data segment with a 1326-byte payload.
//! * `segment/ack128/{emit,parse}`: an Ack segment with 128 numbers (parse includes
//!   walking the numbers, as the receiver does).
//!
//! Throughput is reported in bytes of the datagram or segment per second. Runs are short
//! (1 s warm-up, 3 s measurement) so the whole suite takes well under a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mkcp_proto::wire::envelope::{
    legacy_open, legacy_open_many, legacy_seal, legacy_seal_many, LEGACY_LANES, LEGACY_OVERHEAD,
};
use mkcp_proto::wire::segment::{AckNumbers, AckSegment, DataSegment, Segment};
use mkcp_proto::wire::{segments, Codec, Envelope, HeaderKind, Security};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The datagram size every envelope benchmark works on (V2Ray's default MTU).
const DATAGRAM: usize = 1350;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn envelopes(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(DATAGRAM as u64));

    // Legacy: 6 bytes of checksum + length, then the plaintext.
    let plain = DATAGRAM - LEGACY_OVERHEAD;
    let mut buf = random(DATAGRAM, 1);
    g.bench_function("legacy/seal", |b| {
        b.iter(|| legacy_seal(black_box(&mut buf), plain).expect("seal"))
    });
    let mut sealed = random(DATAGRAM, 2);
    legacy_seal(&mut sealed, plain).expect("seal");
    g.bench_function("legacy/open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |d| legacy_open(black_box(d)).map(<[u8]>::len).expect("open"),
            BatchSize::SmallInput,
        )
    });

    // Four legacy datagrams at once (a batch of full-size segments).
    drop(g);
    let mut g = c.benchmark_group("envelope4");
    g.throughput(Throughput::Bytes((LEGACY_LANES * DATAGRAM) as u64));
    let mut bufs: Vec<Vec<u8>> = (0..LEGACY_LANES as u64)
        .map(|i| random(DATAGRAM, 10 + i))
        .collect();
    g.bench_function("legacy/seal_many", |b| {
        b.iter(|| {
            let mut refs: [&mut [u8]; LEGACY_LANES] = [&mut [], &mut [], &mut [], &mut []];
            for (r, buf) in refs.iter_mut().zip(bufs.iter_mut()) {
                *r = buf;
            }
            legacy_seal_many(black_box(&mut refs)).expect("seal")
        })
    });
    let sealed4 = bufs.clone();
    g.bench_function("legacy/open_many", |b| {
        b.iter_batched_ref(
            || sealed4.clone(),
            |d| {
                let mut refs: [&mut [u8]; LEGACY_LANES] = [&mut [], &mut [], &mut [], &mut []];
                for (r, buf) in refs.iter_mut().zip(d.iter_mut()) {
                    *r = buf;
                }
                let mut results: [Result<(), _>; LEGACY_LANES] = std::array::from_fn(|_| Ok(()));
                legacy_open_many(black_box(&mut refs), &mut results);
                results.iter().filter(|r| r.is_ok()).count()
            },
            BatchSize::SmallInput,
        )
    });
    drop(g);
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Bytes(DATAGRAM as u64));

    // AES-128-GCM: 12-byte nonce, plaintext, 16-byte tag.
    let gcm = Envelope::new(&Security::AesGcm {
        seed: "benchmark".into(),
    });
    let plain = DATAGRAM - gcm.prefix_len() - gcm.suffix_len();
    let mut rng = StdRng::seed_from_u64(3);
    let mut buf = random(DATAGRAM, 4);
    g.bench_function("aes-128-gcm/seal", |b| {
        b.iter(|| {
            gcm.seal(black_box(&mut buf), plain, &mut rng)
                .expect("seal")
        })
    });
    let mut sealed = random(DATAGRAM, 5);
    gcm.seal(&mut sealed, plain, &mut rng).expect("seal");
    g.bench_function("aes-128-gcm/open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |d| gcm.open(black_box(d)).map(<[u8]>::len).expect("open"),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The socket-level codec (header + envelope) as the endpoint uses it.
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(DATAGRAM as u64));
    let mut codec = Codec::new(
        HeaderKind::None,
        &Security::Legacy,
        StdRng::seed_from_u64(6),
    );
    let plain = codec.max_plaintext(DATAGRAM);
    let mut buf = random(DATAGRAM, 7);
    g.bench_function("legacy/seal+open", |b| {
        b.iter(|| {
            let n = codec.seal(black_box(&mut buf), plain).expect("seal");
            codec.open(&mut buf[..n]).map(<[u8]>::len).expect("open")
        })
    });
    g.finish();
}

fn segment_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("segment");

    let payload = random(1326, 8);
    let data = Segment::Data(DataSegment {
        conv: 0x1234,
        option: 0,
        timestamp: 123_456,
        number: 1_000_000,
        sending_next: 999_900,
        payload: &payload,
    });
    let len = data.encoded_len();
    g.throughput(Throughput::Bytes(len as u64));
    let mut buf = vec![0u8; 2048];
    g.bench_function("data1326/emit", |b| {
        b.iter(|| black_box(&data).emit(&mut buf).expect("emit"))
    });
    let n = data.emit(&mut buf).expect("emit");
    let wire = buf[..n].to_vec();
    g.bench_function("data1326/parse", |b| {
        b.iter(|| {
            let (seg, used) = Segment::parse(black_box(&wire)).expect("parse");
            match seg {
                Segment::Data(d) => d.payload.len() + used,
                _ => unreachable!("a data segment"),
            }
        })
    });

    let numbers: Vec<u32> = (0..128u32).map(|i| 1_000_000 + 2 * i).collect();
    let ack = Segment::Ack(AckSegment {
        conv: 0x1234,
        option: 0,
        receiving_window: 1_000_512,
        receiving_next: 999_999,
        timestamp: 123_456,
        numbers: AckNumbers::List(&numbers),
    });
    let len = ack.encoded_len();
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("ack128/emit", |b| {
        b.iter(|| black_box(&ack).emit(&mut buf).expect("emit"))
    });
    let n = ack.emit(&mut buf).expect("emit");
    let wire = buf[..n].to_vec();
    g.bench_function("ack128/parse", |b| {
        b.iter(|| {
            let mut sum = 0u32;
            for seg in segments(black_box(&wire)) {
                if let Segment::Ack(a) = seg {
                    sum = a.numbers.iter().fold(sum, u32::wrapping_add);
                }
            }
            sum
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = envelopes, segment_codec
}
criterion_main!(benches);
