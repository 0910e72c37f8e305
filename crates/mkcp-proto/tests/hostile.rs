//! Nothing the network sends may panic the core or make its state grow without bound
//! (PROTOCOL.md §5): random and adversarial segments fed straight into endpoints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::EndpointConfig;
use mkcp_proto::wire::segment::{AckNumbers, AckSegment, CmdSegment, DataSegment, Segment};
use mkcp_proto::{Codec, Config, Endpoint, HeaderKind, Security};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Clone, Debug)]
enum Op {
    Data {
        conv: u16,
        opt: u8,
        ts: u32,
        number: u32,
        sn: u32,
        len: usize,
    },
    Ack {
        conv: u16,
        opt: u8,
        wnd: u32,
        rn: u32,
        ts: u32,
        numbers: Vec<u32>,
    },
    Cmd {
        conv: u16,
        cmd: u8,
        opt: u8,
        sn: u32,
        rn: u32,
        rto: u32,
    },
    Garbage(Vec<u8>),
    Wait(u16),
    Write(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let conv = 0u16..4;
    let num = prop_oneof![0u32..64, any::<u32>(), (0xFFFF_FFF0u32..=u32::MAX)];
    prop_oneof![
        (
            conv.clone(),
            0u8..3,
            any::<u32>(),
            num.clone(),
            num.clone(),
            1usize..1300
        )
            .prop_map(|(conv, opt, ts, number, sn, len)| Op::Data {
                conv,
                opt,
                ts,
                number,
                sn,
                len
            }),
        (
            conv.clone(),
            0u8..3,
            num.clone(),
            num.clone(),
            any::<u32>(),
            prop::collection::vec(num.clone(), 0..40)
        )
            .prop_map(|(conv, opt, wnd, rn, ts, numbers)| Op::Ack {
                conv,
                opt,
                wnd,
                rn,
                ts,
                numbers
            }),
        (conv, 2u8..6, 0u8..3, num.clone(), num, any::<u32>()).prop_map(
            |(conv, cmd, opt, sn, rn, rto)| Op::Cmd {
                conv,
                cmd,
                opt,
                sn,
                rn,
                rto
            }
        ),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Op::Garbage),
        (0u16..20_000).prop_map(Op::Wait),
        (0u16..5000).prop_map(Op::Write),
    ]
}

fn seal(codec: &mut Codec, seg: Segment<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let off = codec.plaintext_offset();
    let Ok(n) = seg.emit(&mut buf[off..]) else {
        return Vec::new();
    };
    let Ok(len) = codec.seal(&mut buf, n) else {
        return Vec::new();
    };
    buf.truncate(len);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_segments_never_panic_and_state_stays_bounded(ops in prop::collection::vec(op(), 1..300), compat in any::<bool>()) {
        let mut kcp = Config::default();
        kcp.tuning.v2ray_compat = compat;
        let mut cfg = EndpointConfig::server(kcp.clone());
        cfg.max_sessions = 8;
        let mut server = Endpoint::new(cfg, StdRng::seed_from_u64(1));
        let mut client = Endpoint::new(EndpointConfig::client(kcp), StdRng::seed_from_u64(2));
        let mut codec = Codec::new(HeaderKind::None, &Security::Legacy, StdRng::seed_from_u64(3));
        let peer: SocketAddr = "10.0.0.9:9".parse().unwrap();
        let saddr: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let cid = client.connect(Instant::now(), saddr).unwrap();
        let conv = client.connection(cid).unwrap().conv();
        let mut now = Instant::now();
        let payload = vec![0xAB; 1300];
        let mut out = vec![0u8; 2048];
        for op in ops {
            let map = |c: u16| if c == 3 { conv } else { c };
            let dg = match op {
                Op::Data { conv, opt, ts, number, sn, len } => seal(&mut codec, Segment::Data(DataSegment { conv: map(conv), option: opt, timestamp: ts, number, sending_next: sn, payload: &payload[..len] })),
                Op::Ack { conv, opt, wnd, rn, ts, numbers } => seal(&mut codec, Segment::Ack(AckSegment { conv: map(conv), option: opt, receiving_window: wnd, receiving_next: rn, timestamp: ts, numbers: AckNumbers::List(&numbers) })),
                Op::Cmd { conv, cmd, opt, sn, rn, rto } => seal(&mut codec, Segment::Cmd(CmdSegment { conv: map(conv), cmd, option: opt, sending_next: sn, receiving_next: rn, peer_rto: rto })),
                Op::Garbage(g) => g,
                Op::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    server.handle_timeout(now);
                    client.handle_timeout(now);
                    Vec::new()
                }
                Op::Write(n) => {
                    let _ = client.write(cid, now, &payload[..usize::from(n).min(1300)]);
                    Vec::new()
                }
            };
            if !dg.is_empty() {
                let mut a = dg.clone();
                server.handle_datagram(now, peer, &mut a);
                // The same bytes, re-targeted at the client's conversation.
                let mut b = dg;
                client.handle_datagram(now, saddr, &mut b);
            }
            let mut sent = 0;
            while server.poll_transmit(now, &mut out).is_some() {
                sent += 1;
                prop_assert!(sent < 10_000, "server transmits without end");
            }
            let mut sent = 0;
            while client.poll_transmit(now, &mut out).is_some() {
                sent += 1;
                prop_assert!(sent < 10_000, "client transmits without end");
            }
            while server.poll_event().is_some() {}
            while client.poll_event().is_some() {}
            if let Some(t) = server.poll_timeout() { prop_assert!(t + Duration::from_secs(3600) > now); }
            prop_assert!(server.live_sessions() <= 8);
        }
    }
}
