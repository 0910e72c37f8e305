//! Property tests of the wire layer (PROTOCOL.md §1, §2, §8): segment encode/decode round trips,
//! multi-segment datagrams through every envelope and header, and hostile input that must
//! never panic.

use mkcp_proto::wire::envelope::Envelope;
use mkcp_proto::wire::header::HeaderKind;
use mkcp_proto::wire::segment::{
    segments, AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, CMD_ACK, CMD_DATA,
    MAX_ACK_NUMBERS,
};
use mkcp_proto::wire::{Codec, Security, WireError, MAX_DATAGRAM};
#[cfg(feature = "json")]
use mkcp_proto::Config;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A segment that owns its payload / number list.
#[derive(Clone, Debug)]
enum Owned {
    Data {
        conv: u16,
        option: u8,
        timestamp: u32,
        number: u32,
        sending_next: u32,
        payload: Vec<u8>,
    },
    Ack {
        conv: u16,
        option: u8,
        receiving_window: u32,
        receiving_next: u32,
        timestamp: u32,
        numbers: Vec<u32>,
    },
    Cmd(CmdSegment),
}

impl Owned {
    fn segment(&self) -> Segment<'_> {
        match self {
            Owned::Data {
                conv,
                option,
                timestamp,
                number,
                sending_next,
                payload,
            } => Segment::Data(DataSegment {
                conv: *conv,
                option: *option,
                timestamp: *timestamp,
                number: *number,
                sending_next: *sending_next,
                payload,
            }),
            Owned::Ack {
                conv,
                option,
                receiving_window,
                receiving_next,
                timestamp,
                numbers,
            } => Segment::Ack(AckSegment {
                conv: *conv,
                option: *option,
                receiving_window: *receiving_window,
                receiving_next: *receiving_next,
                timestamp: *timestamp,
                numbers: AckNumbers::List(numbers),
            }),
            Owned::Cmd(c) => Segment::Cmd(*c),
        }
    }
}

fn data(max_payload: usize) -> impl Strategy<Value = Owned> {
    (
        any::<u16>(),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 1..=max_payload),
    )
        .prop_map(
            |(conv, option, timestamp, number, sending_next, payload)| Owned::Data {
                conv,
                option,
                timestamp,
                number,
                sending_next,
                payload,
            },
        )
}

fn ack(max_numbers: usize) -> impl Strategy<Value = Owned> {
    (
        any::<u16>(),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..=max_numbers),
    )
        .prop_map(
            |(conv, option, receiving_window, receiving_next, timestamp, numbers)| Owned::Ack {
                conv,
                option,
                receiving_window,
                receiving_next,
                timestamp,
                numbers,
            },
        )
}

fn cmd() -> impl Strategy<Value = Owned> {
    (
        any::<u16>(),
        (2u8..=255),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(conv, cmd, option, sending_next, receiving_next, peer_rto)| {
                Owned::Cmd(CmdSegment {
                    conv,
                    cmd,
                    option,
                    sending_next,
                    receiving_next,
                    peer_rto,
                })
            },
        )
}

/// Any segment we may emit; sizes kept so a handful fit one datagram.
fn segment() -> impl Strategy<Value = Owned> {
    prop_oneof![data(400), ack(64), cmd()]
}

fn securities() -> Vec<Security> {
    vec![
        Security::Legacy,
        Security::AesGcm {
            seed: "proptest-seed".to_string(),
        },
        Security::AesGcm {
            seed: String::new(),
        },
        Security::Raw,
    ]
}

fn header_kinds() -> Vec<HeaderKind> {
    vec![
        HeaderKind::None,
        HeaderKind::Srtp,
        HeaderKind::Utp,
        HeaderKind::WechatVideo,
        HeaderKind::Dtls,
        HeaderKind::Wireguard,
        HeaderKind::dns("").unwrap(),
        HeaderKind::dns("example.org").unwrap(),
    ]
}

/// Every (header, envelope) pair, with a codec seeded from `seed`.
fn codecs(seed: u64) -> Vec<Codec> {
    let mut out = Vec::new();
    for security in securities() {
        for kind in header_kinds() {
            out.push(Codec::new(kind, &security, StdRng::seed_from_u64(seed)));
        }
    }
    out
}

fn emit_all(segs: &[Owned]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segs {
        let seg = s.segment();
        let at = out.len();
        out.resize(at + seg.encoded_len(), 0);
        let n = seg.emit(&mut out[at..]).expect("emit");
        assert_eq!(n, seg.encoded_len());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Spec §2.2-2.4: emit then parse gives the same segment and consumes exactly it.
    #[test]
    fn segment_round_trip(s in prop_oneof![data(1500), ack(MAX_ACK_NUMBERS), cmd()],
                          trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        let seg = s.segment();
        let mut buf = vec![0u8; seg.encoded_len()];
        prop_assert_eq!(seg.emit(&mut buf).unwrap(), buf.len());
        prop_assert_eq!(buf[2], seg.cmd());
        let (parsed, used) = Segment::parse(&buf).unwrap();
        prop_assert_eq!(parsed, seg);
        prop_assert_eq!(used, buf.len());
        // Trailing bytes do not change what the first segment is.
        buf.extend_from_slice(&trailing);
        let (parsed, used) = Segment::parse(&buf).unwrap();
        prop_assert_eq!((parsed, used), (seg, seg.encoded_len()));
    }

    /// Emission never produces what V2Ray cannot parse.
    #[test]
    fn emit_refuses_unparseable_segments(conv in any::<u16>(), extra in 0usize..64) {
        let empty = Segment::Data(DataSegment {
            conv, option: 0, timestamp: 0, number: 0, sending_next: 0, payload: &[],
        });
        prop_assert_eq!(empty.emit(&mut [0u8; 64]), Err(WireError::EmptyData));
        let numbers = vec![0u32; MAX_ACK_NUMBERS + 1 + extra];
        let big = Segment::Ack(AckSegment {
            conv, option: 0, receiving_window: 0, receiving_next: 0, timestamp: 0,
            numbers: AckNumbers::List(&numbers),
        });
        let mut buf = vec![0u8; big.encoded_len()];
        prop_assert_eq!(
            big.emit(&mut buf),
            Err(WireError::TooManyAckNumbers { count: numbers.len() })
        );
    }

    /// Spec §1.1/§2.6: several segments packed into one datagram come back in order
    /// through every envelope (legacy, AES-GCM, raw) and every header.
    #[test]
    fn multi_segment_datagrams_round_trip(segs in prop::collection::vec(segment(), 1..6),
                                          seed in any::<u64>()) {
        let plaintext = emit_all(&segs);
        for mut codec in codecs(seed) {
            if plaintext.len() > codec.max_plaintext(MAX_DATAGRAM) {
                continue;
            }
            let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
            let at = codec.plaintext_offset();
            buf[at..at + plaintext.len()].copy_from_slice(&plaintext);
            let n = codec.seal(&mut buf, plaintext.len()).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert!(n <= MAX_DATAGRAM);
            prop_assert_eq!(
                n,
                codec.header_len() + codec.envelope().prefix_len() + plaintext.len()
                    + codec.envelope().suffix_len()
            );
            let opened = codec.open(&mut buf).unwrap();
            prop_assert_eq!(opened, &plaintext[..]);
            let parsed: Vec<Segment<'_>> = segments(opened).collect();
            let expected: Vec<Segment<'_>> = segs.iter().map(Owned::segment).collect();
            prop_assert_eq!(parsed, expected);
        }
    }

    /// Sealing the same plaintext twice gives different GCM nonces (fresh per datagram).
    #[test]
    fn gcm_nonces_are_fresh(s in segment(), seed in any::<u64>()) {
        let plaintext = emit_all(&[s]);
        let security = Security::AesGcm { seed: "n".to_string() };
        let mut codec = Codec::new(HeaderKind::None, &security, StdRng::seed_from_u64(seed));
        let seal = |codec: &mut Codec| {
            let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
            buf[12..12 + plaintext.len()].copy_from_slice(&plaintext);
            codec.seal(&mut buf, plaintext.len()).unwrap();
            buf
        };
        let a = seal(&mut codec);
        let b = seal(&mut codec);
        prop_assert_ne!(&a[..12], &b[..12]);
    }

    /// Spec §1.5: any single bit flipped after the header makes AES-GCM reject the datagram.
    #[test]
    fn gcm_rejects_any_bit_flip(s in segment(), bit in any::<prop::sample::Index>()) {
        let plaintext = emit_all(&[s]);
        let security = Security::AesGcm { seed: "flip".to_string() };
        let mut codec = Codec::new(HeaderKind::Srtp, &security, StdRng::seed_from_u64(1));
        let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
        let at = codec.plaintext_offset();
        buf[at..at + plaintext.len()].copy_from_slice(&plaintext);
        codec.seal(&mut buf, plaintext.len()).unwrap();
        let body_bits = (buf.len() - 4) * 8;
        let i = 4 * 8 + bit.index(body_bits);
        buf[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(codec.open(&mut buf), Err(WireError::AuthenticationFailed));
    }

    /// Spec §1.2: receivers skip the header without looking at it.
    #[test]
    fn header_bytes_are_never_checked(s in segment(), garbage in any::<[u8; 31]>()) {
        let plaintext = emit_all(&[s]);
        for mut codec in codecs(3) {
            let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
            let at = codec.plaintext_offset();
            buf[at..at + plaintext.len()].copy_from_slice(&plaintext);
            codec.seal(&mut buf, plaintext.len()).unwrap();
            let h = codec.header_len();
            buf[..h].copy_from_slice(&garbage[..h]);
            prop_assert_eq!(codec.open(&mut buf).unwrap(), &plaintext[..]);
        }
    }

    /// Hostile plaintext: the segment walker and parser never panic, never read past the
    /// input, and what they return re-emits to the exact bytes it came from.
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut rest = &bytes[..];
        let mut count = 0;
        while let Ok((seg, used)) = Segment::parse(rest) {
            prop_assert!(used <= rest.len());
            prop_assert_eq!(used, seg.encoded_len());
            let mut out = vec![0u8; used];
            if seg.emit(&mut out).is_ok() {
                prop_assert_eq!(&out[..], &rest[..used]);
            }
            rest = &rest[used..];
            count += 1;
        }
        prop_assert_eq!(segments(&bytes).count(), count);
    }

    /// Hostile bytes shaped like segments (valid prefixes, random lengths and counts).
    #[test]
    fn parsing_segment_shaped_bytes_never_panics(
        cmd in prop_oneof![Just(CMD_DATA), Just(CMD_ACK), any::<u8>()],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![0x12, 0x34, cmd, 0];
        bytes.extend_from_slice(&body);
        for n in 0..=bytes.len() {
            let _ = Segment::parse(&bytes[..n]);
            let _ = segments(&bytes[..n]).count();
        }
    }

    /// Hostile datagrams: opening under every envelope and header never panics, and a
    /// successful open yields a non-empty plaintext inside the datagram.
    #[test]
    fn opening_arbitrary_datagrams_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for codec in codecs(5) {
            let mut buf = bytes.clone();
            match codec.open(&mut buf) {
                Ok(plaintext) => {
                    prop_assert!(!plaintext.is_empty());
                    prop_assert!(plaintext.len() + codec.overhead() == bytes.len());
                    let _ = segments(plaintext).count();
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// Oversized datagrams (more than V2Ray's 2048-byte read buffer) are rejected.
    #[test]
    fn oversized_datagrams_are_rejected(extra in 1usize..100) {
        let len = MAX_DATAGRAM + extra;
        let mut buf = vec![0u8; len];
        for codec in codecs(6) {
            prop_assert_eq!(codec.open(&mut buf), Err(WireError::TooLong { len }));
        }
    }

    /// Envelopes alone: seal/open round trip for any plaintext (legacy up to its u16
    /// length field).
    #[test]
    fn envelopes_round_trip(plaintext in prop::collection::vec(any::<u8>(), 1..2100),
                            seed in any::<u64>()) {
        for security in securities() {
            let env = Envelope::new(&security);
            let mut buf = vec![0u8; env.prefix_len() + plaintext.len() + env.suffix_len()];
            let at = env.prefix_len();
            buf[at..at + plaintext.len()].copy_from_slice(&plaintext);
            let n = env.seal(&mut buf, plaintext.len(), &mut StdRng::seed_from_u64(seed)).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(env.open(&mut buf).unwrap(), &plaintext[..]);
        }
    }

    /// Spec §4: valid kcpSettings values survive the JSON import and the derived sizes
    /// follow §3.3/§3.4.
    #[cfg(feature = "json")]
    #[test]
    fn kcp_settings_import_round_trip(
        mtu in 576u32..=1460, tti in 10u32..=100, up in 0u32..=4095, down in 0u32..=4095,
        congestion in any::<bool>(), rb in 0u32..=4095, wb in 0u32..=4095,
        header in prop::sample::select(vec!["none", "srtp", "utp", "wechat-video", "dtls", "wireguard", "dns"]),
        seed in prop::option::of("[a-z]{0,8}"),
    ) {
        let mut json = format!(
            r#"{{"mtu":{mtu},"tti":{tti},"uplinkCapacity":{up},"downlinkCapacity":{down},
                "congestion":{congestion},"readBufferSize":{rb},"writeBufferSize":{wb},
                "header":{{"type":"{header}"}}"#
        );
        if let Some(seed) = &seed {
            json.push_str(&format!(r#","seed":"{seed}""#));
        }
        json.push('}');
        let c = Config::from_kcp_settings_json(&json).unwrap();
        prop_assert_eq!((c.mtu, c.tti, c.uplink_capacity, c.downlink_capacity), (mtu, tti, up, down));
        prop_assert_eq!(c.congestion, congestion);
        let bytes = |mib: u32| if mib == 0 { 512 * 1024 } else { mib << 20 };
        prop_assert_eq!((c.read_buffer_size, c.write_buffer_size), (bytes(rb), bytes(wb)));
        prop_assert_eq!(c.header.name(), header);
        prop_assert_eq!(c.security.name(), if seed.is_some() { "aes-128-gcm" } else { "legacy" });
        let window = |cap: u32| ((u64::from(cap) << 20) / u64::from(mtu) / u64::from(1000 / tti)).max(8);
        prop_assert_eq!(u64::from(c.sending_window()), window(up));
        prop_assert_eq!(u64::from(c.receiving_window()), window(down));
        prop_assert_eq!(c.send_buffer_segments(), bytes(wb) / mtu);
        let overhead = if seed.is_some() { 16 } else { 6 };
        prop_assert_eq!(c.v2ray_mss(), mtu - c.header_size() - overhead - 18);
        prop_assert!(c.validate().is_ok());
    }

    /// Out-of-range numbers are rejected with the field named.
    #[cfg(feature = "json")]
    #[test]
    fn kcp_settings_out_of_range_is_rejected(
        field in prop::sample::select(vec!["mtu", "tti", "uplinkCapacity", "downlinkCapacity", "readBufferSize", "writeBufferSize"]),
        value in any::<u32>(),
    ) {
        let ok = match field {
            "mtu" => (576..=1460).contains(&value),
            "tti" => (10..=100).contains(&value),
            _ => value <= 4095,
        };
        let result = Config::from_kcp_settings_json(&format!(r#"{{"{field}":{value}}}"#));
        if ok {
            prop_assert!(result.is_ok());
        } else {
            let msg = result.unwrap_err().to_string();
            prop_assert!(msg.contains(field) && msg.contains(&value.to_string()), "{}", msg);
        }
    }
}

/// Spec §1.1: we never produce a datagram V2Ray's 2048-byte read buffer would cut.
#[test]
fn seal_refuses_datagrams_over_2048_bytes() {
    for mut codec in codecs(9) {
        let max = codec.max_plaintext(MAX_DATAGRAM);
        let mut buf = vec![0u8; MAX_DATAGRAM + 64];
        assert_eq!(
            codec.seal(&mut buf, max + 1),
            Err(WireError::TooLong {
                len: MAX_DATAGRAM + 1
            })
        );
        assert_eq!(codec.seal(&mut buf, max), Ok(MAX_DATAGRAM));
    }
}

/// A refused segment leaves the output buffer untouched.
#[test]
fn emit_errors_write_nothing() {
    let numbers = vec![7u32; MAX_ACK_NUMBERS + 1];
    let big_payload = vec![1u8; usize::from(u16::MAX) + 1];
    let refused = [
        Segment::Data(DataSegment {
            conv: 1,
            option: 1,
            timestamp: 2,
            number: 3,
            sending_next: 4,
            payload: &[],
        }),
        Segment::Data(DataSegment {
            conv: 1,
            option: 1,
            timestamp: 2,
            number: 3,
            sending_next: 4,
            payload: &big_payload,
        }),
        Segment::Ack(AckSegment {
            conv: 1,
            option: 1,
            receiving_window: 2,
            receiving_next: 3,
            timestamp: 4,
            numbers: AckNumbers::List(&numbers),
        }),
    ];
    for seg in refused {
        let mut buf = vec![0xAAu8; seg.encoded_len().max(64)];
        assert!(seg.emit(&mut buf).is_err());
        assert!(buf.iter().all(|&b| b == 0xAA), "{seg:?}");
    }
}

// ------------------------------------------- legacy envelope against a plain reference

/// FNV-1a 32, byte by byte, as PROTOCOL.md §1.4 states it.
fn reference_fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The legacy seal as PROTOCOL.md §1.4 states it: checksum, length, byte-serial xor cascade.
fn reference_legacy_seal(plaintext: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 6];
    buf.extend_from_slice(plaintext);
    let len = u16::try_from(plaintext.len()).expect("short plaintext");
    buf[4..6].copy_from_slice(&len.to_be_bytes());
    let hash = reference_fnv1a32(&buf[4..]);
    buf[0..4].copy_from_slice(&hash.to_be_bytes());
    for i in 4..buf.len() {
        buf[i] ^= buf[i - 4];
    }
    buf
}

/// The legacy open as PROTOCOL.md §1.4 states it; the buffer as it is left, and the result.
fn reference_legacy_open(mut buf: Vec<u8>) -> (Vec<u8>, Result<Vec<u8>, WireError>) {
    if buf.len() < 6 {
        return (
            buf.clone(),
            Err(WireError::TooShort {
                len: buf.len(),
                min: 5,
            }),
        );
    }
    for i in (4..buf.len()).rev() {
        buf[i] ^= buf[i - 4];
    }
    let declared_hash = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let result = if declared_hash != reference_fnv1a32(&buf[4..]) {
        Err(WireError::ChecksumMismatch)
    } else {
        let declared = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        let actual = buf.len() - 6;
        if declared == actual {
            Ok(buf[6..].to_vec())
        } else {
            Err(WireError::LengthMismatch { declared, actual })
        }
    };
    (buf, result)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fnv1a32_equals_reference(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert_eq!(
            mkcp_proto::wire::envelope::fnv1a32(&bytes),
            reference_fnv1a32(&bytes)
        );
    }

    #[test]
    fn legacy_seal_and_open_equal_reference(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        junk in any::<[u8; 6]>(),
    ) {
        use mkcp_proto::wire::envelope::{legacy_open, legacy_seal};
        let expected = reference_legacy_seal(&plaintext);
        // The 6 free bytes may hold anything before sealing.
        let mut buf = junk.to_vec();
        buf.extend_from_slice(&plaintext);
        legacy_seal(&mut buf, plaintext.len()).expect("seal");
        prop_assert_eq!(&buf, &expected);
        prop_assert_eq!(legacy_open(&mut buf).map(<[u8]>::to_vec), Ok(plaintext));
    }

    #[test]
    fn legacy_open_of_any_bytes_equals_reference(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        flip in any::<proptest::sample::Index>(),
    ) {
        use mkcp_proto::wire::envelope::legacy_open;
        // Arbitrary bytes (almost always a checksum mismatch) ...
        let (ref_buf, ref_result) = reference_legacy_open(bytes.clone());
        let mut buf = bytes.clone();
        let got = legacy_open(&mut buf).map(<[u8]>::to_vec);
        prop_assert_eq!(got, ref_result);
        prop_assert_eq!(&buf, &ref_buf);
        // ... and a valid envelope with one bit flipped (a checksum or length mismatch).
        if bytes.len() <= 2042 {
            let mut sealed = reference_legacy_seal(&bytes);
            let i = flip.index(sealed.len());
            sealed[i] ^= 1;
            let (ref_buf, ref_result) = reference_legacy_open(sealed.clone());
            let got = legacy_open(&mut sealed).map(<[u8]>::to_vec);
            prop_assert_eq!(got, ref_result);
            prop_assert_eq!(&sealed, &ref_buf);
        }
    }
}

// ------------------------------------ grouped legacy envelope against the single one

/// A group of datagrams: mostly of one length (a batch of full-size segments), some of
/// other lengths, some shorter than the envelope.
fn datagram_group() -> impl Strategy<Value = Vec<Vec<u8>>> {
    (
        0usize..1400,
        proptest::collection::vec((any::<bool>(), 0usize..1400, any::<u8>()), 0..10),
    )
        .prop_map(|(common, specs)| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (same, len, fill))| {
                    let len = if same { common } else { len };
                    (0..len)
                        .map(|j| (j as u8).wrapping_mul(31) ^ fill ^ i as u8)
                        .collect()
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn legacy_seal_many_equals_one_at_a_time(
        plaintexts in datagram_group().prop_map(|g| {
            g.into_iter().map(|mut p| { p.truncate(1400); p }).collect::<Vec<_>>()
        }),
    ) {
        use mkcp_proto::wire::envelope::{legacy_seal, legacy_seal_many};
        let mut one: Vec<Vec<u8>> = Vec::new();
        for p in &plaintexts {
            let mut buf = vec![0u8; 6];
            buf.extend_from_slice(p);
            legacy_seal(&mut buf, p.len()).expect("seal");
            one.push(buf);
        }
        let mut many: Vec<Vec<u8>> = plaintexts
            .iter()
            .map(|p| [&[0xEEu8; 6][..], p].concat())
            .collect();
        let mut refs: Vec<&mut [u8]> = many.iter_mut().map(|b| &mut b[..]).collect();
        legacy_seal_many(&mut refs).expect("seal many");
        prop_assert_eq!(many, one);
    }

    #[test]
    fn legacy_open_many_equals_one_at_a_time(
        group in datagram_group(),
        seal in proptest::collection::vec(any::<bool>(), 10),
        flip in proptest::collection::vec(any::<Option<proptest::sample::Index>>(), 10),
    ) {
        use mkcp_proto::wire::envelope::{legacy_open, legacy_open_many, legacy_seal};
        // Some datagrams sealed (valid, or with one bit flipped), others arbitrary bytes.
        let inputs: Vec<Vec<u8>> = group
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                if !seal[i] {
                    return bytes;
                }
                let mut buf = vec![0u8; 6];
                buf.extend_from_slice(&bytes);
                legacy_seal(&mut buf, bytes.len()).expect("seal");
                if let Some(at) = &flip[i] {
                    let at = at.index(buf.len());
                    buf[at] ^= 0x10;
                }
                buf
            })
            .collect();
        let mut expected = Vec::new();
        let mut opened_one = Vec::new();
        for input in &inputs {
            let mut buf = input.clone();
            expected.push(legacy_open(&mut buf).map(|_| ()));
            opened_one.push(buf);
        }
        let mut many = inputs.clone();
        let mut refs: Vec<&mut [u8]> = many.iter_mut().map(|b| &mut b[..]).collect();
        let mut results = vec![Ok(()); refs.len()];
        legacy_open_many(&mut refs, &mut results);
        prop_assert_eq!(results, expected);
        prop_assert_eq!(many, opened_one);
    }
}
