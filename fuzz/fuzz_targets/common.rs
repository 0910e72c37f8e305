//! Shared driver of the datagram fuzz targets.
//!
//! Input: the first byte picks the header (none, srtp, utp, wechat-video, dtls,
//! wireguard, dns); the rest is used twice:
//! 1. as a received datagram: `Codec::open` then segment parsing must never panic, and
//!    every parsed segment must re-emit to exactly the bytes it was parsed from;
//! 2. as plaintext: sealing it and opening the result must give it back (this gets the
//!    parser behind the envelope even for AES-GCM, where random bytes never authenticate).

use mkcp_proto::wire::segment::{segments, Segment};
use mkcp_proto::wire::{Codec, HeaderKind, Security, MAX_DATAGRAM};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub fn header_kind(selector: u8) -> HeaderKind {
    match selector % 7 {
        0 => HeaderKind::None,
        1 => HeaderKind::Srtp,
        2 => HeaderKind::Utp,
        3 => HeaderKind::WechatVideo,
        4 => HeaderKind::Dtls,
        5 => HeaderKind::Wireguard,
        _ => HeaderKind::Dns {
            domain: "www.baidu.com".to_string(),
        },
    }
}

/// Parses `plaintext` as V2Ray does and checks that each segment re-emits byte for byte.
fn parse_and_reemit(plaintext: &[u8]) {
    let mut rest = plaintext;
    let mut parsed = Vec::new();
    while let Ok((seg, used)) = Segment::parse(rest) {
        assert!(used >= 16 && used <= rest.len());
        assert_eq!(used, seg.encoded_len());
        let mut out = vec![0u8; used];
        match seg.emit(&mut out) {
            Ok(n) => {
                assert_eq!(n, used);
                assert_eq!(&out[..], &rest[..used], "re-emitted segment differs");
                let (again, used_again) = Segment::parse(&out).expect("re-parse");
                assert_eq!((again, used_again), (seg, used));
            }
            // The only thing we refuse to emit that V2Ray may send us: an empty Data
            // segment (accepted by the parser when more bytes follow it).
            Err(e) => assert!(
                matches!(seg, Segment::Data(d) if d.payload.is_empty()),
                "emit failed: {e}"
            ),
        }
        parsed.push(seg);
        rest = &rest[used..];
    }
    assert_eq!(segments(plaintext).collect::<Vec<_>>(), parsed);
}

pub fn run(security: &Security, data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut codec = Codec::new(header_kind(selector), security, StdRng::seed_from_u64(7));

    // 1. Hostile datagram.
    let mut datagram = body.to_vec();
    if let Ok(plaintext) = codec.open(&mut datagram) {
        assert!(!plaintext.is_empty());
        parse_and_reemit(plaintext);
    }

    // 2. Seal/open round trip with the body as plaintext.
    let max = codec.max_plaintext(MAX_DATAGRAM);
    let plaintext = &body[..body.len().min(max)];
    let mut buf = vec![0u8; plaintext.len() + codec.overhead()];
    let at = codec.plaintext_offset();
    buf[at..at + plaintext.len()].copy_from_slice(plaintext);
    let n = codec.seal(&mut buf, plaintext.len()).expect("seal");
    assert_eq!(n, buf.len());
    assert!(n <= MAX_DATAGRAM);
    match codec.open(&mut buf) {
        Ok(opened) => {
            assert_eq!(opened, plaintext);
            parse_and_reemit(opened);
        }
        // Only an empty plaintext may fail to come back (the reader drops it).
        Err(e) => assert!(plaintext.is_empty(), "sealed datagram did not open: {e}"),
    }
}
