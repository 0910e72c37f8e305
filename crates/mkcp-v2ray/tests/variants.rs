//! Non-default settings, cross-header interop, envelope mismatches (must fail), and the
//! sink / source directions, all V2Ray client -> V2Ray server over loopback mKCP.

mod common;

use std::time::{Duration, Instant};

use common::{echo_through_pair, run_concurrently, CELL_BYTES};
use mkcp_v2ray::net::{self, EchoServer, SinkServer, SourceServer, TransferError};
use mkcp_v2ray::{require_v2ray_or_skip, HeaderType, KcpParams, V2rayBin, V2rayPair};

#[test]
fn congestion_and_small_mtu_fast_tti() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let congestion = KcpParams {
        congestion: true,
        ..KcpParams::with(HeaderType::Srtp, Some("some-seed"))
    };
    let small = KcpParams {
        mtu: 576,
        tti: 10,
        ..KcpParams::with(HeaderType::WechatVideo, Some("some-seed"))
    };
    let small_legacy = KcpParams {
        mtu: 576,
        tti: 10,
        ..KcpParams::default()
    };
    run_concurrently(
        &bin,
        vec![
            (congestion.clone(), congestion),
            (small.clone(), small),
            (small_legacy.clone(), small_legacy),
        ],
        CELL_BYTES,
    );
}

#[test]
fn asymmetric_local_settings_interoperate() {
    // Spec §4: only header size and seed must agree; mtu/tti/capacities/buffers/congestion
    // are one-sided.
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let server = KcpParams {
        mtu: 1460,
        tti: 100,
        uplink_capacity: 1,
        downlink_capacity: 1,
        congestion: true,
        read_buffer_size: 0,
        write_buffer_size: 0,
        ..KcpParams::with(HeaderType::Dtls, Some("k"))
    };
    let client = KcpParams {
        mtu: 576,
        tti: 10,
        uplink_capacity: 50,
        downlink_capacity: 100,
        ..KcpParams::with(HeaderType::Dtls, Some("k"))
    };
    echo_through_pair(&bin, &server, &client, CELL_BYTES, 7).unwrap();
}

#[test]
fn same_size_headers_interoperate() {
    // Spec §1.2: receivers skip H bytes without looking, so srtp/utp/wireguard (4 bytes)
    // mix, and so do wechat-video/dtls (13 bytes).
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let k = |h| KcpParams::with(h, Some("some-seed"));
    run_concurrently(
        &bin,
        vec![
            (k(HeaderType::Srtp), k(HeaderType::Wireguard)),
            (k(HeaderType::Utp), k(HeaderType::Srtp)),
            (k(HeaderType::WechatVideo), k(HeaderType::Dtls)),
        ],
        64 * 1024,
    );
}

/// The transfer through mismatched endpoints must not complete.
fn assert_no_traffic(bin: &V2rayBin, server: KcpParams, client: KcpParams) {
    let echo = EchoServer::start().unwrap();
    let pair = V2rayPair::start(bin, echo.addr(), &server, &client).unwrap();
    let t0 = Instant::now();
    let r = net::transfer_echo(pair.entry(), 4096, 3, Duration::from_secs(3));
    assert!(
        matches!(
            r,
            Err(TransferError::Timeout { received: 0, .. })
                | Err(TransferError::Eof { received: 0, .. })
        ),
        "server {} / client {}: expected no data, got {r:?}",
        server.label(),
        client.label()
    );
    eprintln!(
        "{} / {}: no traffic, given up after {:?}",
        server.label(),
        client.label(),
        t0.elapsed()
    );
    // The server never produced an upstream TCP connection.
    assert_eq!(
        echo.accepted(),
        0,
        "{} / {}",
        server.label(),
        client.label()
    );
}

#[test]
fn mismatched_envelopes_do_not_talk() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let cases = [
        // Spec §1.3: "" is AES-GCM with key SHA-256("")[..16], not the legacy envelope.
        (
            KcpParams::with(HeaderType::None, None),
            KcpParams::with(HeaderType::None, Some("")),
        ),
        (
            KcpParams::with(HeaderType::None, Some("a")),
            KcpParams::with(HeaderType::None, Some("b")),
        ),
        // Header sizes differ (0 vs 13).
        (
            KcpParams::with(HeaderType::None, Some("s")),
            KcpParams::with(HeaderType::WechatVideo, Some("s")),
        ),
    ];
    std::thread::scope(|s| {
        for (server, client) in cases {
            let bin = &bin;
            s.spawn(move || assert_no_traffic(bin, server, client));
        }
    });
}

#[test]
fn upload_to_sink_and_download_from_source() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    const LEN: u64 = 1024 * 1024;
    let kcp = KcpParams::with(HeaderType::Utp, Some("some-seed"));

    let sink = SinkServer::start_hashing().unwrap();
    let up = V2rayPair::start(&bin, sink.addr(), &kcp, &kcp).unwrap();
    let r = net::transfer_to_sink(up.entry(), &sink, LEN, 11, Duration::from_secs(30)).unwrap();
    assert_eq!(r.sha256, net::pattern_sha256(11, LEN));
    // After the client closed, V2Ray tears the mKCP stream down and the sink sees EOF
    // (up to ~5 s later: a local Close waits for the next flush, PROTOCOL.md §3.8).
    let closed = Instant::now();
    assert!(
        sink.wait_records(1, Duration::from_secs(20)),
        "sink never saw EOF"
    );
    eprintln!(
        "EOF reached the sink {:?} after the client closed",
        closed.elapsed()
    );
    let rec = &sink.records()[0];
    assert_eq!(rec.bytes, LEN);
    assert_eq!(rec.sha256, Some(r.sha256));
    eprintln!("upload {LEN} B: {:.2} MiB/s", r.mib_per_sec());

    let source = SourceServer::start(LEN, 12).unwrap();
    let down = V2rayPair::start(&bin, source.addr(), &kcp, &kcp).unwrap();
    let r = net::receive_from_source(down.entry(), LEN, 12, Duration::from_secs(30)).unwrap();
    assert_eq!(source.accepted(), 1);
    // Slow start is expected: the dialer sends nothing until the application writes, so
    // the server only learns of the session from the ~5 s Ping (PROTOCOL.md §3.14).
    eprintln!(
        "download {LEN} B in {:?} (includes ~5 s until the first Ping)",
        r.elapsed
    );
}
