//! Byte-exact vectors produced by V2Ray 4.34's own Go code (`fixtures/vectors.json`, a
//! verbatim copy of `spec/vectors.json`), for the wire layer and the config import:
//! categories `legacy_auth`, `aes_gcm`, `segment`, `segment_parse`, `header`, `datagram`
//! and `config` (PROTOCOL.md §7).
//!
//! Every vector of those categories must be checked: each category checker fails on a
//! vector name it does not know, and each test compares the set of checked names with the
//! set of names in the fixture, so a vector added to the file without a check fails here.

#[cfg(feature = "json")]
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use mkcp_proto::wire::envelope::{fnv1a32, legacy_open, seed_key, Envelope, GCM_NONCE_LEN};
#[cfg(feature = "json")]
use mkcp_proto::wire::header::HeaderError;
use mkcp_proto::wire::header::{Header, HeaderKind};
use mkcp_proto::wire::segment::{
    segments, AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, CMD_PING,
};
use mkcp_proto::wire::{Codec, Security, WireError};
#[cfg(feature = "json")]
use mkcp_proto::{Config, ConfigError};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The categories this file covers (the others, `rtt`, `trace`, `connection`, belong to
/// the connection engine).
#[cfg(feature = "json")]
const WIRE_CATEGORIES: [&str; 7] = [
    "legacy_auth",
    "aes_gcm",
    "segment",
    "segment_parse",
    "header",
    "datagram",
    "config",
];

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/vectors.json")).expect("fixture is JSON")
}

fn vectors(fixture: &Value) -> &Vec<Value> {
    fixture["vectors"].as_array().expect("vectors array")
}

fn names_in(fixture: &Value, category: &str) -> BTreeSet<String> {
    vectors(fixture)
        .iter()
        .filter(|v| v["category"] == category)
        .map(|v| name(v).to_string())
        .collect()
}

fn name(v: &Value) -> &str {
    v["name"].as_str().expect("vector name")
}

fn hex_of(v: &Value, key: &str) -> Vec<u8> {
    let text = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no string {key}", name(v)));
    hex::decode(text).unwrap_or_else(|e| panic!("{}: {key} is not hex: {e}", name(v)))
}

fn hex_list(v: &Value, key: &str) -> Vec<Vec<u8>> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no array {key}", name(v)))
        .iter()
        .map(|s| hex::decode(s.as_str().expect("hex string")).expect("hex"))
        .collect()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: no integer {key}", name(v)))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no string {key}", name(v)))
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x6d6b6370)
}

fn codec(header: HeaderKind, security: &Security) -> Codec {
    Codec::new(header, security, rng())
}

/// Opens `datagram` with `codec` and returns the plaintext (owned).
fn open(codec: &Codec, datagram: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut buf = datagram.to_vec();
    codec.open(&mut buf).map(<[u8]>::to_vec)
}

/// Seals `plaintext` with `codec` and returns the datagram.
fn seal(codec: &mut Codec, plaintext: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
    let at = codec.plaintext_offset();
    buf[at..at + plaintext.len()].copy_from_slice(plaintext);
    let n = codec.seal(&mut buf, plaintext.len()).expect("seal");
    buf.truncate(n);
    buf
}

// ---------------------------------------------------------------- legacy_auth (§1.4)

fn check_legacy_auth(v: &Value) {
    let n = name(v);
    let legacy = Security::Legacy;
    match n {
        _ if n.starts_with("legacy_seal_len_") || n == "legacy_seal_ascii_abcdefg" => {
            let plaintext = hex_of(v, "plaintext_hex");
            let pre_xor = hex_of(v, "pre_xor_hex");
            let sealed = hex_of(v, "sealed_hex");
            let fnv = u32::from_str_radix(str_of(v, "fnv1a32"), 16).expect("fnv hex");
            if let Some(len) = n.strip_prefix("legacy_seal_len_") {
                assert_eq!(plaintext.len(), len.parse::<usize>().unwrap(), "{n}");
                let expected: Vec<u8> = (0..plaintext.len()).map(|i| i as u8).collect();
                assert_eq!(plaintext, expected, "{n}: plaintext[i] = i mod 256");
            }
            // FNV-1a over length bytes + plaintext, stored big-endian in front.
            assert_eq!(fnv1a32(&pre_xor[4..]), fnv, "{n}: fnv1a32");
            let mut expected_pre = fnv.to_be_bytes().to_vec();
            expected_pre.extend_from_slice(&(plaintext.len() as u16).to_be_bytes());
            expected_pre.extend_from_slice(&plaintext);
            assert_eq!(pre_xor, expected_pre, "{n}: pre_xor layout");
            // Seal through the envelope and through a header-less codec.
            let env = Envelope::new(&legacy);
            let mut buf = vec![0u8; plaintext.len() + 6];
            buf[6..].copy_from_slice(&plaintext);
            let len = env.seal(&mut buf, plaintext.len(), &mut rng()).unwrap();
            assert_eq!(len, plaintext.len() + 6, "{n}: sealed length");
            assert_eq!(hex::encode(&buf), hex::encode(&sealed), "{n}: sealed bytes");
            assert_eq!(
                seal(&mut codec(HeaderKind::None, &legacy), &plaintext),
                sealed,
                "{n}: codec seal"
            );
            // Open: undoing the cascade leaves exactly pre_xor in the buffer.
            let mut buf = sealed.clone();
            assert_eq!(legacy_open(&mut buf).unwrap(), &plaintext[..], "{n}: open");
            assert_eq!(buf, pre_xor, "{n}: un-xored buffer");
            // The reader drops bodies of 6 bytes or less (the empty plaintext).
            let got = open(&codec(HeaderKind::None, &legacy), &sealed);
            if plaintext.is_empty() {
                assert_eq!(got, Err(WireError::TooShort { len: 6, min: 6 }), "{n}");
            } else {
                assert_eq!(got.unwrap(), plaintext, "{n}: codec open");
            }
        }
        "legacy_open_reject_tampered" => {
            assert_eq!(str_of(v, "expect"), "reject");
            let sealed = hex_of(v, "sealed_hex");
            let mut buf = sealed.clone();
            assert_eq!(legacy_open(&mut buf), Err(WireError::ChecksumMismatch));
            assert_eq!(
                open(&codec(HeaderKind::None, &legacy), &sealed),
                Err(WireError::ChecksumMismatch)
            );
            // Flipping the bit back gives a valid seal of "hello".
            let mut fixed = sealed.clone();
            *fixed.last_mut().unwrap() ^= 1;
            assert_eq!(
                open(&codec(HeaderKind::None, &legacy), &fixed).unwrap(),
                b"hello"
            );
        }
        "legacy_reader_drops_empty" => {
            let datagram = hex_of(v, "datagram_hex");
            assert_eq!(u64_of(v, "expect_segments"), 0);
            // The authenticator alone accepts it ...
            let mut buf = datagram.clone();
            assert_eq!(legacy_open(&mut buf).unwrap(), b"");
            // ... but the reader drops it before opening: no segments.
            let got = open(&codec(HeaderKind::None, &legacy), &datagram);
            assert_eq!(got, Err(WireError::TooShort { len: 6, min: 6 }));
        }
        _ => panic!("legacy_auth vector {n} has no check"),
    }
}

// ---------------------------------------------------------------- aes_gcm (§1.5)

fn check_aes_gcm(v: &Value) {
    let n = name(v);
    assert!(
        n.starts_with("gcm_seed_"),
        "aes_gcm vector {n} has no check"
    );
    let seed = str_of(v, "seed");
    assert_eq!(
        n,
        format!("gcm_seed_{seed:?}"),
        "{n}: name carries the seed"
    );
    assert_eq!(
        seed.as_bytes(),
        &hex_of(v, "seed_utf8_hex")[..],
        "{n}: UTF-8"
    );
    let sha = Sha256::digest(seed.as_bytes());
    assert_eq!(&sha[..], &hex_of(v, "sha256_hex")[..], "{n}: SHA-256");
    assert_eq!(&seed_key(seed)[..], &hex_of(v, "key_hex")[..], "{n}: key");

    let nonce: [u8; GCM_NONCE_LEN] = hex_of(v, "nonce_hex").try_into().expect("12-byte nonce");
    let plaintext = hex_of(v, "plaintext_hex");
    let datagram = hex_of(v, "datagram_hex");
    assert_eq!(datagram[..12], nonce, "{n}: nonce first");
    assert_eq!(
        datagram[12..],
        hex_of(v, "ciphertext_and_tag_hex")[..],
        "{n}: ct || tag"
    );

    let security = Security::AesGcm {
        seed: seed.to_string(),
    };
    let env = Envelope::new(&security);
    let mut buf = vec![0u8; 12 + plaintext.len() + 16];
    buf[12..12 + plaintext.len()].copy_from_slice(&plaintext);
    let len = env
        .seal_with_nonce(&mut buf, plaintext.len(), &nonce)
        .unwrap();
    assert_eq!(len, datagram.len(), "{n}: length");
    assert_eq!(
        hex::encode(&buf),
        hex::encode(&datagram),
        "{n}: sealed bytes"
    );

    let got = open(&codec(HeaderKind::None, &security), &datagram).unwrap();
    assert_eq!(got, plaintext, "{n}: open");
    // The plaintext is a Ping: conv 0x1234, sendingNext 7, receivingNext 9, RTO 100.
    let segs: Vec<_> = segments(&got).collect();
    assert_eq!(
        segs,
        vec![Segment::Cmd(CmdSegment {
            conv: 0x1234,
            cmd: CMD_PING,
            option: 0,
            sending_next: 7,
            receiving_next: 9,
            peer_rto: 100,
        })],
        "{n}"
    );
    // Another seed, the legacy envelope, or a flipped bit: rejected.
    let other = Security::AesGcm {
        seed: format!("{seed}x"),
    };
    assert_eq!(
        open(&codec(HeaderKind::None, &other), &datagram),
        Err(WireError::AuthenticationFailed),
        "{n}: wrong seed"
    );
    assert!(open(&codec(HeaderKind::None, &Security::Legacy), &datagram).is_err());
    let mut tampered = datagram.clone();
    tampered[20] ^= 0x80;
    assert_eq!(
        open(&codec(HeaderKind::None, &security), &tampered),
        Err(WireError::AuthenticationFailed),
        "{n}: tampered"
    );
}

// ---------------------------------------------------------------- segment (§2.2-2.4)

/// Owned field values of a segment vector.
struct Fields {
    conv: u16,
    cmd: u8,
    option: u8,
    a: u32,
    b: u32,
    c: u32,
    payload: Vec<u8>,
    numbers: Vec<u32>,
}

impl Fields {
    fn read(v: &Value) -> Fields {
        let f = &v["fields"];
        let get = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{}: {k}", name(v)));
        let cmd = get("cmd") as u8;
        let (a, b, c) = match cmd {
            1 => (get("timestamp"), get("number"), get("sending_next")),
            0 => (
                get("receiving_window"),
                get("receiving_next"),
                get("timestamp"),
            ),
            _ => (get("sending_next"), get("receiving_next"), get("peer_rto")),
        };
        Fields {
            conv: get("conv") as u16,
            cmd,
            option: get("option") as u8,
            a: a as u32,
            b: b as u32,
            c: c as u32,
            payload: f["payload_hex"]
                .as_str()
                .map(|h| hex::decode(h).unwrap())
                .unwrap_or_default(),
            numbers: f["numbers"]
                .as_array()
                .map(|l| l.iter().map(|x| x.as_u64().unwrap() as u32).collect())
                .unwrap_or_default(),
        }
    }

    fn segment(&self) -> Segment<'_> {
        match self.cmd {
            1 => Segment::Data(DataSegment {
                conv: self.conv,
                option: self.option,
                timestamp: self.a,
                number: self.b,
                sending_next: self.c,
                payload: &self.payload,
            }),
            0 => Segment::Ack(AckSegment {
                conv: self.conv,
                option: self.option,
                receiving_window: self.a,
                receiving_next: self.b,
                timestamp: self.c,
                numbers: AckNumbers::List(&self.numbers),
            }),
            cmd => Segment::Cmd(CmdSegment {
                conv: self.conv,
                cmd,
                option: self.option,
                sending_next: self.a,
                receiving_next: self.b,
                peer_rto: self.c,
            }),
        }
    }
}

fn check_segment(v: &Value) {
    let n = name(v);
    let known = [
        "segment_data",
        "segment_data_close_empty",
        "segment_ack",
        "segment_ack_empty_close",
        "segment_cmd_ping",
        "segment_cmd_terminate_close",
    ];
    assert!(known.contains(&n), "segment vector {n} has no check");
    let bytes = hex_of(v, "bytes_hex");
    let fields = Fields::read(v);
    let expected = fields.segment();
    assert_eq!(expected.encoded_len(), bytes.len(), "{n}: encoded_len");
    assert_eq!(bytes[2], fields.cmd, "{n}: cmd byte");

    if n == "segment_data_close_empty" {
        // V2Ray rejects an empty Data segment at the end of a datagram ...
        assert_eq!(str_of(v, "expect_alone"), "reject");
        assert!(Segment::parse(&bytes).is_err(), "{n}: alone");
        assert_eq!(segments(&bytes).count(), 0, "{n}: alone");
        // ... accepts it when something follows ...
        let followed = hex_of(v, "followed_by_ping_hex");
        assert_eq!(followed[..bytes.len()], bytes[..], "{n}: prefix");
        let (seg, used) = Segment::parse(&followed).unwrap();
        assert_eq!((seg, used), (expected, bytes.len()), "{n}: followed");
        let segs: Vec<_> = segments(&followed).collect();
        assert_eq!(segs.len(), 2, "{n}");
        assert_eq!(segs[0], expected);
        assert_eq!(segs[1].cmd(), CMD_PING);
        // ... and we never emit one.
        let mut buf = vec![0u8; 64];
        assert_eq!(expected.emit(&mut buf), Err(WireError::EmptyData), "{n}");
        return;
    }

    let mut buf = vec![0xEEu8; bytes.len() + 8];
    let len = expected.emit(&mut buf).unwrap();
    assert_eq!(hex::encode(&buf[..len]), hex::encode(&bytes), "{n}: emit");
    assert_eq!(buf[len..], [0xEE; 8], "{n}: emit wrote past the segment");
    let (seg, used) = Segment::parse(&bytes).unwrap();
    assert_eq!((seg, used), (expected, bytes.len()), "{n}: parse");
    assert_eq!(seg.conv(), fields.conv);
    assert_eq!(seg.option(), fields.option);
    // Too small an output buffer is an error, not a panic.
    assert!(matches!(
        expected.emit(&mut vec![0u8; bytes.len() - 1]),
        Err(WireError::BufferTooSmall { .. })
    ));
}

// ---------------------------------------------------------------- segment_parse (§2.6)

fn check_segment_parse(v: &Value) {
    let n = name(v);
    let legacy = Security::Legacy;
    match n {
        "segment_unknown_cmd_parsed_as_cmdonly" => {
            let bytes = hex_of(v, "bytes_hex");
            let e = &v["expect"];
            assert_eq!(e["kind"], "cmdonly");
            let (seg, used) = Segment::parse(&bytes).unwrap();
            assert_eq!(used, 16);
            let Segment::Cmd(cmd) = seg else {
                panic!("{n}: not CmdOnly: {seg:?}")
            };
            assert_eq!(u64::from(cmd.cmd), e["cmd"].as_u64().unwrap());
            assert_eq!(u64::from(cmd.option), e["option"].as_u64().unwrap());
            assert_eq!(
                (cmd.conv, cmd.sending_next, cmd.receiving_next, cmd.peer_rto),
                (1, 1, 2, 3)
            );
            let mut buf = [0u8; 16];
            seg.emit(&mut buf).unwrap();
            assert_eq!(buf[..], bytes[..], "{n}: raw cmd and option kept");
        }
        "datagram_multi_segment" | "datagram_truncated_second_segment" => {
            let datagram = hex_of(v, "datagram_hex");
            let plaintext = hex_of(v, "plaintext_hex");
            let expect = u64_of(v, "expect_segments") as usize;
            let mut c = codec(HeaderKind::None, &legacy);
            assert_eq!(seal(&mut c, &plaintext), datagram, "{n}: seal");
            let got = open(&c, &datagram).unwrap();
            assert_eq!(got, plaintext, "{n}: open");
            let segs: Vec<_> = segments(&got).collect();
            assert_eq!(segs.len(), expect, "{n}: segment count");
            // Both start with the Ping of `segment_cmd_ping`.
            assert_eq!(
                segs[0],
                Segment::Cmd(CmdSegment {
                    conv: 0x1234,
                    cmd: CMD_PING,
                    option: 0,
                    sending_next: 11,
                    receiving_next: 13,
                    peer_rto: 150,
                })
            );
            if n == "datagram_multi_segment" {
                let Segment::Data(d) = segs[1] else {
                    panic!("{n}: second is not Data")
                };
                assert_eq!((d.number, d.payload), (5, &b"hello"[..]));
                let Segment::Ack(a) = segs[2] else {
                    panic!("{n}: third is not Ack")
                };
                assert_eq!(
                    a.numbers.iter().collect::<Vec<_>>(),
                    vec![0x21, 0x22, 0x25, 0xFFFF_FFFF]
                );
                // The 3 trailing garbage bytes are ignored.
                let used: usize = segs.iter().map(Segment::encoded_len).sum();
                assert_eq!(plaintext.len() - used, 3);
            }
        }
        _ if n.starts_with("segment_malformed_") => {
            assert_eq!(str_of(v, "expect"), "reject");
            let bytes = hex_of(v, "bytes_hex");
            assert!(
                matches!(Segment::parse(&bytes), Err(WireError::Truncated { .. })),
                "{n}"
            );
            assert_eq!(segments(&bytes).count(), 0, "{n}");
            // Wrapped in a legacy datagram, the reader yields nothing either.
            let mut c = codec(HeaderKind::None, &legacy);
            let datagram = seal(&mut c, &bytes);
            let got = open(&c, &datagram).unwrap();
            assert_eq!(segments(&got).count(), 0, "{n}");
        }
        _ => panic!("segment_parse vector {n} has no check"),
    }
}

// ---------------------------------------------------------------- header (§1.2, §8.1)

/// Byte positions a header fills with random values (the rest is fixed or a counter).
fn random_positions(kind: &HeaderKind) -> std::ops::Range<usize> {
    match kind {
        HeaderKind::Srtp => 2..4,
        HeaderKind::Utp => 0..2,
        HeaderKind::WechatVideo => 2..6,
        HeaderKind::Dtls => 3..5,
        HeaderKind::Dns { .. } => 0..2,
        _ => 0..0,
    }
}

fn write_all(header: &mut Header, count: usize) -> Vec<Vec<u8>> {
    let size = header.kind().size();
    let mut r = rng();
    (0..count)
        .map(|_| {
            let mut out = vec![0u8; size];
            header.write(&mut out, &mut r);
            out
        })
        .collect()
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn check_header(v: &Value) {
    let n = name(v);
    if n == "header_content_not_checked" {
        let datagram = hex_of(v, "datagram_hex");
        let expect = u64_of(v, "expect_segments") as usize;
        for kind in [HeaderKind::Srtp, HeaderKind::Utp, HeaderKind::Wireguard] {
            let got = open(&codec(kind.clone(), &Security::Legacy), &datagram)
                .unwrap_or_else(|e| panic!("{n}: {kind:?}: {e}"));
            assert_eq!(segments(&got).count(), expect, "{n}: {kind:?}");
        }
        return;
    }
    let json_type = str_of(v, "json_type");
    let size = u64_of(v, "size") as usize;
    let outputs = hex_list(v, "outputs_hex");
    let state = &v["initial_state"];
    let kind = match json_type {
        "dns" => HeaderKind::dns(str_of(v, "domain")).unwrap(),
        other => HeaderKind::from_name(other).unwrap(),
    };
    assert_eq!(kind.size(), size, "{n}: size");
    assert_eq!(kind.name(), json_type, "{n}: name");

    // 1. Deterministic state: exactly the vector's bytes.
    let mut fixed = match (n, &kind) {
        ("header_none", HeaderKind::None) | ("header_wireguard", HeaderKind::Wireguard) => {
            Header::new(kind.clone(), &mut rng())
        }
        ("header_srtp", HeaderKind::Srtp) => {
            Header::srtp_with_counter(state["counter"].as_u64().unwrap() as u16)
        }
        ("header_utp", HeaderKind::Utp) => {
            Header::utp_with_connection_id(state["connection_id"].as_u64().unwrap() as u16)
        }
        ("header_wechat_video", HeaderKind::WechatVideo) => {
            Header::wechat_with_sequence(state["sn"].as_u64().unwrap() as u32)
        }
        ("header_dtls", HeaderKind::Dtls) => {
            assert_eq!(state["sequence"], 0, "{n}: fresh instance");
            assert_eq!(state["length"], 17, "{n}: fresh instance");
            Header::dtls_with_epoch(state["epoch"].as_u64().unwrap() as u16)
        }
        ("header_dns_default" | "header_dns_custom", HeaderKind::Dns { .. }) => {
            let header = Header::new(kind.clone(), &mut rng());
            let ids = state["transaction_ids"].as_array().unwrap();
            assert_eq!(ids.len(), outputs.len());
            for (id, expected) in ids.iter().zip(&outputs) {
                let mut out = vec![0u8; size];
                header.write_dns_with_id(&mut out, id.as_u64().unwrap() as u16);
                assert_eq!(hex::encode(&out), hex::encode(expected), "{n}");
            }
            header
        }
        _ => panic!("header vector {n} has no check"),
    };
    if !matches!(kind, HeaderKind::Dns { .. }) {
        let got = write_all(&mut fixed, outputs.len());
        let got: Vec<String> = got.iter().map(hex::encode).collect();
        let want: Vec<String> = outputs.iter().map(hex::encode).collect();
        assert_eq!(got, want, "{n}: outputs");
    }
    if n == "header_wechat_video" {
        let mut wrap = Header::wechat_with_sequence(u32::MAX);
        let got = write_all(&mut wrap, 2);
        assert_eq!(got, hex_list(v, "outputs_wrap_hex"), "{n}: wrap at 2^32");
    }

    // 2. Random state (as in production): the fixed bytes match the vector and the
    //    counters follow the rules.
    for seed in 0..16u64 {
        let mut random = Header::new(kind.clone(), &mut StdRng::seed_from_u64(seed));
        let got = write_all(&mut random, outputs.len().max(3));
        let positions = random_positions(&kind);
        for (i, out) in got.iter().enumerate() {
            assert_eq!(out.len(), size);
            let reference = &outputs[i.min(outputs.len() - 1)];
            for (j, (a, b)) in out.iter().zip(reference).enumerate() {
                // DTLS sequence/length are checked against the vector below.
                let varies =
                    positions.contains(&j) || (kind == HeaderKind::Dtls && (7..13).contains(&j));
                if !varies {
                    assert_eq!(a, b, "{n}: seed {seed}, header {i}, fixed byte {j}");
                }
            }
        }
        for pair in got.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            match kind {
                HeaderKind::Srtp => assert_eq!(be16(&b[2..]), be16(&a[2..]).wrapping_add(1)),
                HeaderKind::WechatVideo => {
                    assert_eq!(be32(&b[2..]), be32(&a[2..]).wrapping_add(1))
                }
                HeaderKind::Utp => assert_eq!(a[..2], b[..2], "{n}: constant id"),
                HeaderKind::Dtls => assert_eq!(a[3..5], b[3..5], "{n}: constant epoch"),
                _ => {}
            }
        }
        match kind {
            // The first header carries a random u16 start + 1.
            HeaderKind::WechatVideo => assert!(be32(&got[0][2..]) <= 0x1_0000),
            // A fresh DTLS instance: sequence 0, 1, ... and lengths 17, 34, ...
            HeaderKind::Dtls => {
                for (out, reference) in got.iter().zip(&outputs) {
                    assert_eq!(out[5..], reference[5..], "{n}: seed {seed}");
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- datagram (§1.1)

fn check_datagram(v: &Value) {
    let n = name(v);
    let segment = hex_of(v, "segment_hex");
    // The same Data segment in all three: conv 0x4321, ts 1234, number 0, "GET / ...".
    let (seg, used) = Segment::parse(&segment).unwrap();
    assert_eq!(used, segment.len());
    let Segment::Data(d) = seg else {
        panic!("{n}: not a Data segment")
    };
    assert_eq!(
        (d.conv, d.timestamp, d.number, d.sending_next, d.payload),
        (0x4321, 1234, 0, 0, &b"GET / HTTP/1.1\r\n"[..])
    );
    let check_open = |kind: HeaderKind, security: &Security, datagram: &[u8]| {
        let got = open(&codec(kind, security), datagram).unwrap();
        assert_eq!(got, segment, "{n}: open");
        assert_eq!(segments(&got).collect::<Vec<_>>(), vec![seg]);
    };
    match n {
        "datagram_wechat_legacy_data" => {
            let expected = hex_list(v, "datagrams_hex");
            let mut c = Codec::from_parts(
                Header::wechat_with_sequence(100),
                Envelope::new(&Security::Legacy),
                rng(),
            );
            for want in &expected {
                assert_eq!(
                    hex::encode(seal(&mut c, &segment)),
                    hex::encode(want),
                    "{n}"
                );
                check_open(HeaderKind::WechatVideo, &Security::Legacy, want);
                // dtls has the same size, so it reads these too.
                check_open(HeaderKind::Dtls, &Security::Legacy, want);
            }
        }
        "datagram_noheader_legacy_data" => {
            let want = hex_of(v, "datagram_hex");
            let mut c = codec(HeaderKind::None, &Security::Legacy);
            assert_eq!(seal(&mut c, &segment), want, "{n}");
            check_open(HeaderKind::None, &Security::Legacy, &want);
        }
        "datagram_dtls_gcm_data" => {
            let want = hex_of(v, "datagram_hex");
            let security = Security::AesGcm {
                seed: str_of(v, "seed").to_string(),
            };
            let nonce: [u8; 12] = hex_of(v, "nonce_hex").try_into().unwrap();
            let mut header = Header::dtls_with_epoch(0x0102);
            let mut buf = vec![0u8; 13 + 12 + segment.len() + 16];
            header.write(&mut buf[..13], &mut rng());
            buf[25..25 + segment.len()].copy_from_slice(&segment);
            let len = Envelope::new(&security)
                .seal_with_nonce(&mut buf[13..], segment.len(), &nonce)
                .unwrap();
            assert_eq!(13 + len, want.len());
            assert_eq!(hex::encode(&buf), hex::encode(&want), "{n}");
            check_open(HeaderKind::Dtls, &security, &want);
            check_open(HeaderKind::WechatVideo, &security, &want);
        }
        _ => panic!("datagram vector {n} has no check"),
    }
}

// ---------------------------------------------------------------- config (§3.3, §3.4, §4)
// The JSON import's vectors: only with the `json` feature.

#[cfg(feature = "json")]
fn go_header_type(kind: &HeaderKind) -> &'static str {
    match kind {
        HeaderKind::None => "*noop.Config",
        HeaderKind::Srtp => "*srtp.SRTP",
        HeaderKind::Utp => "*utp.UTP",
        HeaderKind::WechatVideo => "*wechat.VideoChat",
        HeaderKind::Dtls => "*tls.DTLS",
        HeaderKind::Wireguard => "*wireguard.WireguardConfig",
        _ => "(not in V2Ray)",
    }
}

#[cfg(feature = "json")]
fn check_config(v: &Value) {
    let n = name(v);
    assert!(n.starts_with("config_"), "config vector {n} has no check");
    let json = str_of(v, "kcpSettings_json");
    let result = Config::from_kcp_settings_json(json);
    // The same through a streamSettings wrapper.
    let stream = format!(r#"{{"network":"kcp","kcpSettings":{json}}}"#);
    let via_stream = Config::from_stream_settings_json(&stream);

    if n == "config_5" {
        // DELIBERATE DIFFERENCE: V2Ray computes 4096 × 1048576 in u32, which overflows to
        // 0, and silently uses the minimum sending window of 8 (the vector's derived
        // value). We reject capacities whose × 1048576 overflows u32 instead (PROTOCOL.md §5
        // item 26; issue #2), naming the field and the allowed range.
        let derived = &v["derived"];
        assert_eq!(derived["uplink_mb"], 4096);
        assert_eq!(
            derived["sending_window_segments"], 8,
            "V2Ray's overflowed value"
        );
        match &result {
            Err(ConfigError::OutOfRange {
                field: "uplinkCapacity",
                value: 4096,
                ..
            }) => {}
            other => panic!("{n}: expected rejection of uplinkCapacity 4096, got {other:?}"),
        }
        let msg = result.unwrap_err().to_string();
        assert!(
            msg.contains("uplinkCapacity") && msg.contains("4096") && msg.contains("0 to 4095")
        );
        assert!(via_stream.is_err());
        return;
    }

    if let Some(error) = v["error"].as_str() {
        let err = result.expect_err(&format!("{n}: V2Ray rejects {json}: {error}"));
        let msg = err.to_string();
        let expected_value = error.rsplit(": ").next().unwrap();
        if error.contains("invalid mKCP MTU size") {
            assert!(
                matches!(err, ConfigError::OutOfRange { field: "mtu", .. }),
                "{n}: {err:?}"
            );
            assert!(
                msg.contains("mtu") && msg.contains(expected_value),
                "{n}: {msg}"
            );
            assert!(msg.contains("576 to 1460"), "{n}: {msg}");
        } else if error.contains("invalid mKCP TTI") {
            assert!(
                matches!(err, ConfigError::OutOfRange { field: "tti", .. }),
                "{n}: {err:?}"
            );
            assert!(
                msg.contains("tti") && msg.contains(expected_value),
                "{n}: {msg}"
            );
            assert!(msg.contains("10 to 100"), "{n}: {msg}");
        } else if error.contains("unknown config id") {
            match &err {
                ConfigError::Header(HeaderError::UnknownType { name, .. }) => {
                    assert_eq!(name, expected_value, "{n}")
                }
                other => panic!("{n}: {other:?}"),
            }
            assert!(
                msg.contains("header") && msg.contains(expected_value),
                "{n}: {msg}"
            );
        } else if error.contains("type not found in JSON context") {
            assert_eq!(err, ConfigError::HeaderTypeMissing, "{n}");
            assert!(msg.contains("header") && msg.contains("type"), "{n}: {msg}");
        } else {
            panic!("{n}: no mapping for V2Ray error {error:?}");
        }
        if let ConfigError::OutOfRange { value, .. } = err {
            assert_eq!(value.to_string(), expected_value, "{n}: value");
        }
        assert_eq!(
            via_stream.map_err(|e| e.innermost().clone()),
            Err(err),
            "{n}: via streamSettings"
        );
        return;
    }

    let c = result.unwrap_or_else(|e| panic!("{n}: {json}: {e}"));
    assert_eq!(via_stream.as_ref(), Ok(&c), "{n}: via streamSettings");
    c.validate().unwrap();
    let d = v["derived"].as_object().expect("derived");
    let mut compared = BTreeSet::new();
    let mut eq = |key: &str, ours: Value| {
        assert_eq!(ours, d[key], "{n}: {key} (kcpSettings {json})");
        compared.insert(key.to_string());
    };
    eq("mtu", c.mtu.into());
    eq("tti_ms", c.tti.into());
    eq("uplink_mb", c.uplink_capacity.into());
    eq("downlink_mb", c.downlink_capacity.into());
    eq("congestion", c.congestion.into());
    eq("read_buffer_bytes", c.read_buffer_size.into());
    eq("write_buffer_bytes", c.write_buffer_size.into());
    eq("header_size", c.header_size().into());
    eq("mss", c.v2ray_mss().into());
    eq("sending_window_segments", c.sending_window().into());
    eq("receiving_window_segments", c.receiving_window().into());
    eq("send_buffer_segments", c.send_buffer_segments().into());
    eq("writer_overhead", c.writer_overhead().into());
    eq("security", c.security.name().into());
    let has_header_key = serde_json::from_str::<Value>(json).unwrap()["header"].is_object();
    let header = if has_header_key {
        go_header_type(&c.header)
    } else {
        assert_eq!(c.header, HeaderKind::None);
        "absent"
    };
    eq("header", header.into());
    let all: BTreeSet<String> = d.keys().cloned().collect();
    assert_eq!(compared, all, "{n}: every derived field compared");
    // Our own MSS additionally accounts for the GCM nonce (PROTOCOL.md §5 item 12).
    let nonce = if c.security.name() == "aes-128-gcm" {
        12
    } else {
        0
    };
    assert_eq!(c.mss() + nonce, c.v2ray_mss(), "{n}: mss");
}

// ---------------------------------------------------------------- the registry

fn checker(category: &str) -> fn(&Value) {
    match category {
        "legacy_auth" => check_legacy_auth,
        "aes_gcm" => check_aes_gcm,
        "segment" => check_segment,
        "segment_parse" => check_segment_parse,
        "header" => check_header,
        "datagram" => check_datagram,
        #[cfg(feature = "json")]
        "config" => check_config,
        other => panic!("no checker for category {other}"),
    }
}

/// Checks every vector of `category` and asserts none was left out; returns the names.
fn run_category(fixture: &Value, category: &str) -> BTreeSet<String> {
    let check = checker(category);
    let mut checked = BTreeSet::new();
    for v in vectors(fixture)
        .iter()
        .filter(|v| v["category"] == category)
    {
        check(v);
        assert!(
            checked.insert(name(v).to_string()),
            "duplicate name {}",
            name(v)
        );
    }
    let expected = names_in(fixture, category);
    assert!(!expected.is_empty(), "category {category} is empty");
    assert_eq!(checked, expected, "{category}: every vector checked");
    println!("{category}: {} vectors checked", checked.len());
    checked
}

#[test]
fn legacy_auth_vectors() {
    assert_eq!(run_category(&fixture(), "legacy_auth").len(), 15);
}

#[test]
fn aes_gcm_vectors() {
    assert_eq!(run_category(&fixture(), "aes_gcm").len(), 3);
}

#[test]
fn segment_vectors() {
    assert_eq!(run_category(&fixture(), "segment").len(), 6);
}

#[test]
fn segment_parse_vectors() {
    assert_eq!(run_category(&fixture(), "segment_parse").len(), 7);
}

#[test]
fn header_vectors() {
    assert_eq!(run_category(&fixture(), "header").len(), 9);
}

#[test]
fn datagram_vectors() {
    assert_eq!(run_category(&fixture(), "datagram").len(), 3);
}

#[cfg(feature = "json")]
#[test]
fn config_vectors() {
    assert_eq!(run_category(&fixture(), "config").len(), 12);
}

/// One test driving all seven categories: the union of checked names must be exactly the
/// set of names in those categories of the fixture.
#[cfg(feature = "json")]
#[test]
fn every_wire_and_config_vector_is_checked() {
    let fixture = fixture();
    assert_eq!(fixture["vector_count"], 63);
    assert_eq!(vectors(&fixture).len(), 63);
    let mut per_category = BTreeMap::new();
    let mut checked = BTreeSet::new();
    for category in WIRE_CATEGORIES {
        let names = run_category(&fixture, category);
        per_category.insert(category, names.len());
        for n in names {
            assert!(checked.insert(n.clone()), "name {n} in two categories");
        }
    }
    let expected: BTreeSet<String> = vectors(&fixture)
        .iter()
        .filter(|v| WIRE_CATEGORIES.iter().any(|c| v["category"] == *c))
        .map(|v| name(v).to_string())
        .collect();
    assert_eq!(checked, expected);
    assert_eq!(checked.len(), 55);
    println!(
        "checked {} wire/config vectors: {per_category:?}",
        checked.len()
    );
}
