//! mkcp <-> mkcp on 127.0.0.1: bulk transfer, many streams, half-close, a vanishing
//! peer, listener restart, backpressure. Every test is bounded by tokio timeouts.
//!
//! Throughput figure (release build):
//! `CARGO_TARGET_DIR=/work/target-rt cargo test -p mkcp --release --test loopback bulk -- --nocapture`

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp::{Config, KcpEndpoint, KcpListener, KcpStream, State};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::timeout;

mod common;
use common::read_hashed;

/// Writes `len` seeded random bytes in 64 KiB chunks; returns their SHA-256.
async fn write_random<W: AsyncWrite + Unpin>(
    w: &mut W,
    len: usize,
    seed: u64,
) -> io::Result<[u8; 32]> {
    common::write_random(w, len, 64 * 1024, seed).await
}

const MIB: usize = 1 << 20;

/// Echoes every accepted stream until end-of-stream, then half-closes it.
fn spawn_echo(listener: KcpListener) -> JoinHandle<KcpListener> {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await?;
                io::Result::Ok(())
            });
        }
        listener
    })
}

fn fast_timeout_config(idle_ms: u32) -> Config {
    let mut c = Config::default();
    c.tuning.idle_timeout_ms = idle_ms;
    c.tuning.ping_interval_ms = idle_ms / 4;
    c
}

fn bulk_bytes() -> usize {
    std::env::var("MKCP_BULK_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64)
        * MIB
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_64mib_both_directions_at_once_sha256() {
    let len = bulk_bytes();
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (mut r, mut w) = stream.into_split();
        let send = tokio::spawn(async move {
            let h = write_random(&mut w, len, 2).await?;
            w.shutdown().await?;
            io::Result::Ok((h, w))
        });
        let got = read_hashed(&mut r).await?;
        let (sent, _w) = send.await.expect("server writer panicked")?;
        io::Result::Ok((got, sent, listener))
    });
    let stream = KcpStream::connect(addr, Config::default()).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let send = tokio::spawn(async move {
        let h = write_random(&mut w, len, 1).await?;
        w.shutdown().await?;
        io::Result::Ok((h, w))
    });
    let run = async {
        let got = read_hashed(&mut r).await?;
        let (sent, w) = send.await.expect("client writer panicked")?;
        let (server_got, server_sent, listener) = server.await.expect("server panicked")?;
        io::Result::Ok((got, sent, server_got, server_sent, w, listener))
    };
    let (got, sent, server_got, server_sent, w, _listener) = timeout(Duration::from_secs(240), run)
        .await
        .expect("bulk transfer timed out")
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(server_got, (len, sent), "client -> server data differs");
    assert_eq!(got, (len, server_sent), "server -> client data differs");
    let stats = w.stats();
    let mibps = (2 * len) as f64 / MIB as f64 / elapsed.as_secs_f64();
    eprintln!(
        "bulk: {} MiB each way at once in {:.2?}: {:.1} MiB/s total ({:.1} MiB/s per direction); \
         client srtt {} ms, {} retransmissions of {} data segments",
        len / MIB,
        elapsed,
        mibps,
        mibps / 2.0,
        stats.srtt_ms,
        stats.retransmissions,
        stats.data_segments_sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_streams_on_one_listener() {
    const STREAMS: usize = 200;
    const LEN: usize = 32 * 1024;
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = spawn_echo(listener);
    // Half of the streams share one client socket, the others have one each.
    let shared = KcpEndpoint::client("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let stream = if i % 2 == 0 {
                shared.connect(addr).await?
            } else {
                KcpStream::connect(addr, Config::default()).await?
            };
            let (mut r, mut w) = tokio::io::split(stream);
            let writer = async {
                let h = write_random(&mut w, LEN, i as u64).await?;
                w.shutdown().await?;
                io::Result::Ok(h)
            };
            let (sent, got) = tokio::try_join!(writer, read_hashed(&mut r))?;
            assert_eq!(got, (LEN, sent), "stream {i}: echo differs");
            io::Result::Ok(())
        }));
    }
    let all = async {
        for t in tasks {
            t.await.expect("stream task panicked").unwrap();
        }
    };
    timeout(Duration::from_secs(60), all)
        .await
        .expect("200 streams timed out");
    let listener = echo;
    drop(listener); // the accept loop ends with the test runtime
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_client_shuts_down_write_server_replies_fully() {
    const REQUEST: usize = 3 * MIB / 2;
    const REPLY: usize = 2 * MIB;
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        // Read the whole request to end-of-stream first...
        let got = read_hashed(&mut s).await?;
        // ...then reply on the still-open other direction.
        let sent = write_random(&mut s, REPLY, 20).await?;
        s.shutdown().await?;
        io::Result::Ok((got, sent, s, listener))
    });
    let run = async {
        let mut c = KcpStream::connect(addr, Config::default()).await?;
        let sent = write_random(&mut c, REQUEST, 10).await?;
        c.shutdown().await?;
        assert!(
            c.write(b"x").await.is_err(),
            "write after shutdown must fail"
        );
        let got = read_hashed(&mut c).await?;
        let (server_got, server_sent, _s, _l) = server.await.expect("server panicked")?;
        io::Result::Ok((sent, got, server_got, server_sent, c))
    };
    let (sent, got, server_got, server_sent, c) = timeout(Duration::from_secs(60), run)
        .await
        .expect("half-close timed out")
        .unwrap();
    assert_eq!(server_got, (REQUEST, sent));
    assert_eq!(got, (REPLY, server_sent));
    // Both directions ended cleanly; closing the V2Ray way succeeds at once.
    timeout(Duration::from_secs(10), c.close())
        .await
        .expect("close timed out")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_vanishing_gives_timed_out_from_the_idle_timeout() {
    const IDLE_MS: u32 = 2_000;
    let config = fast_timeout_config(IDLE_MS);
    let listener = KcpListener::bind("127.0.0.1:0", config.clone())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = KcpStream::connect(addr, config).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 5];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    // The server disappears without a word.
    let t0 = Instant::now();
    listener.abort();
    let err = timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("no error within 10 s")
        .expect_err("read must fail");
    let waited = t0.elapsed();
    // The idle timeout (not the 10 s bound above) ended the read; how long it took on
    // this machine is printed below, not asserted (wall-clock bounds flake on loaded CI).
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert_eq!(
        c.write(b"more").await.expect_err("write must fail").kind(),
        io::ErrorKind::TimedOut
    );
    // The aborted side's stream reports its stopped endpoint.
    let e = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .expect_err("aborted side");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
    eprintln!("peer vanished: TimedOut after {waited:?} (idle timeout {IDLE_MS} ms)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_restart_on_the_same_port() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let run = async {
        let echo = spawn_echo(listener);
        let mut c = KcpStream::connect(addr, Config::default()).await?;
        c.write_all(b"first").await?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"first");
        // Graceful close of the listener: the client reads end-of-stream.
        echo.abort();
        let listener = echo.await;
        assert!(listener.is_err(), "accept loop was aborted"); // dropping it closed the listener
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await?;
        assert!(rest.is_empty());
        // Wait until the port is free (the closing listener releases it within CLOSE_TIMEOUT).
        let deadline = Instant::now() + mkcp::CLOSE_TIMEOUT + Duration::from_secs(1);
        let listener = loop {
            match KcpListener::bind(addr, Config::default()).await {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let _echo = spawn_echo(listener);
        let mut c2 = KcpStream::connect(addr, Config::default()).await?;
        c2.write_all(b"second").await?;
        c2.shutdown().await?;
        let mut got = Vec::new();
        c2.read_to_end(&mut got).await?;
        assert_eq!(got, b"second");
        io::Result::Ok(())
    };
    timeout(Duration::from_secs(30), run)
        .await
        .expect("restart timed out")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_then_rebind_is_immediate() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = KcpStream::connect(addr, Config::default()).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let (_s, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    timeout(Duration::from_secs(10), listener.close())
        .await
        .expect("close timed out");
    let again = KcpListener::bind(addr, Config::default())
        .await
        .expect("port free after close()");
    drop(again);
    let mut rest = Vec::new();
    timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_that_does_not_read_blocks_the_writer() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = KcpStream::connect(addr, Config::default()).await.unwrap();
    c.write_all(b"start").await.unwrap();
    let (mut s, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    // The server never reads: the writer must stall with bounded memory.
    let big = vec![0x5au8; 64 * MIB];
    let r = timeout(Duration::from_secs(3), c.write_all(&big)).await;
    assert!(r.is_err(), "64 MiB went into a peer that does not read");
    let written = c.stats().bytes_written as usize;
    // Receive window (<= readBufferSize) + send buffer (<= writeBufferSize) + slack.
    assert!(
        written < 6 * MIB,
        "{written} bytes accepted by a stalled connection"
    );
    // Reading again resumes the flow.
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while total < 5 + MIB {
        total += timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    eprintln!("stalled writer: {written} bytes accepted before backpressure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_still_delivers_queued_data() {
    const LEN: usize = 2 * MIB;
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let run = async {
        let mut c = KcpStream::connect(addr, Config::default()).await?;
        let sent = write_random(&mut c, LEN, 3).await?;
        drop(c); // graceful close in the background
        let (mut s, _) = listener.accept().await?;
        let got = read_hashed(&mut s).await?;
        assert_eq!(got, (LEN, sent));
        // The peer's Close made this side's writes fail.
        let e = s.write_all(b"late").await.expect_err("peer closed");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
        drop(s);
        // Both sessions wind down: the listener's table empties.
        let deadline = Instant::now() + Duration::from_secs(15);
        while listener.live_sessions() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(listener.live_sessions(), 0);
        io::Result::Ok(())
    };
    timeout(Duration::from_secs(40), run)
        .await
        .expect("timed out")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_acknowledgement_and_reports_success() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // A sink: reads to end-of-stream (a Close from the peer ends it too), never writes.
    let sink = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let got = read_hashed(&mut s).await?;
        io::Result::Ok((got, listener))
    });
    let mut c = KcpStream::connect(addr, Config::default()).await.unwrap();
    let sent = write_random(&mut c, MIB, 5).await.unwrap();
    assert!(
        c.stats().bytes_acked < MIB as u64,
        "close must have something to wait for"
    );
    timeout(Duration::from_secs(20), c.close())
        .await
        .expect("close timed out")
        .unwrap();
    let (got, _listener) = timeout(Duration::from_secs(10), sink)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, (MIB, sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reports_data_the_peer_threw_away() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = KcpStream::connect(addr, Config::default()).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    let (s, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    // The server does not read: the client's writes stall with data queued...
    let big = vec![1u8; 16 * MIB];
    let stalled = timeout(Duration::from_secs(1), c.write_all(&big)).await;
    assert!(
        stalled.is_err(),
        "16 MiB went into a peer that does not read"
    );
    assert!(c.stats().bytes_acked < c.stats().bytes_written);
    // ...then the server closes first: the queued data can no longer be delivered.
    s.close().await.unwrap();
    let e = timeout(Duration::from_secs(20), c.close())
        .await
        .unwrap()
        .expect_err("undelivered");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reports_addresses_state_and_stats() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = KcpStream::connect(addr, Config::default()).await.unwrap();
    c.write_all(&[1u8; 10_000]).await.unwrap();
    let (mut s, peer) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    // The dialer's socket is bound to 0.0.0.0 (as V2Ray's is): compare ports.
    assert_eq!(peer.port(), c.local_addr().unwrap().port());
    assert_eq!(s.peer_addr().unwrap(), peer);
    assert_eq!(c.peer_addr().unwrap(), addr);
    assert_eq!(s.local_addr().unwrap(), addr);
    let mut buf = vec![0u8; 10_000];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.state(), State::Active);
    assert_eq!(s.stats().bytes_read, 10_000);
    assert_eq!(c.stats().bytes_written, 10_000);
    assert!(listener.stats().datagrams_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_and_closed_endpoint_errors() {
    let mut bad = Config::default();
    bad.mtu = 100;
    let e = KcpListener::bind("127.0.0.1:0", bad)
        .await
        .expect_err("mtu 100");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let client = KcpEndpoint::client("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let e = client
        .accept()
        .await
        .expect_err("client endpoints do not accept");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    client.close().await;
    let e = client.connect("127.0.0.1:9").await.expect_err("closed");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_header_and_envelope_between_two_mkcp_peers() {
    for header in ["none", "srtp", "utp", "wechat-video", "dtls", "wireguard"] {
        for seed in [None, Some("s"), Some("")] {
            let json = match seed {
                None => format!(r#"{{"header": {{"type": "{header}"}}}}"#),
                Some(s) => format!(r#"{{"header": {{"type": "{header}"}}, "seed": "{s}"}}"#),
            };
            let config = Config::from_kcp_settings_json(&json).unwrap();
            let listener = KcpListener::bind("127.0.0.1:0", config.clone())
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let _echo = spawn_echo(listener);
            let run = async {
                let mut c = KcpStream::connect(addr, config).await?;
                c.write_all(b"hello over mKCP").await?;
                c.shutdown().await?;
                let mut echo = Vec::new();
                c.read_to_end(&mut echo).await?;
                io::Result::Ok(echo)
            };
            let echo = timeout(Duration::from_secs(10), run)
                .await
                .unwrap_or_else(|_| panic!("{json}: timed out"))
                .unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(echo, b"hello over mKCP", "{json}");
        }
    }
}

/// Regression: the socket task used to be spawned before the first handle was
/// counted; when it ran first it saw no handle and stopped at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_endpoint_never_stops_before_its_first_use() {
    for _ in 0..300 {
        let endpoint = KcpEndpoint::client("127.0.0.1:0", Config::default())
            .await
            .unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(50)).await;
        let s = endpoint
            .connect("127.0.0.1:9")
            .await
            .expect("endpoint alive");
        drop(s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_gives_the_server_stream_timed_out() {
    const IDLE_MS: u32 = 2_000;
    let config = fast_timeout_config(IDLE_MS);
    let listener = KcpListener::bind("127.0.0.1:0", config.clone())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let client = KcpEndpoint::client("127.0.0.1:0", config).await.unwrap();
    let mut c = client.connect(addr).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (mut s, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 5];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let t0 = Instant::now();
    client.abort();
    let e = timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no error within 10 s")
        .expect_err("read must fail");
    // TimedOut (the idle timeout fired), not the 10 s bound above; the time is printed.
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    eprintln!(
        "client vanished: TimedOut after {:?} (idle timeout {IDLE_MS} ms)",
        t0.elapsed()
    );
    let e = c.write(b"x").await.expect_err("aborted endpoint");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
    // The timed-out session leaves the listener's table.
    let deadline = Instant::now() + Duration::from_secs(15);
    drop(s);
    while listener.live_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listener.live_sessions(), 0);
}

/// The runtime also works on tokio's single-threaded scheduler.
#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    const LEN: usize = 4 * MIB;
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let _echo = spawn_echo(listener);
    let run = async {
        let c = KcpStream::connect(addr, Config::default()).await?;
        let (mut r, mut w) = c.into_split();
        let writer = async {
            let h = write_random(&mut w, LEN, 9).await?;
            w.shutdown().await?;
            io::Result::Ok(h)
        };
        let (sent, got) = tokio::try_join!(writer, read_hashed(&mut r))?;
        assert_eq!(got, (LEN, sent));
        io::Result::Ok(())
    };
    timeout(Duration::from_secs(60), run)
        .await
        .expect("timed out")
        .unwrap();
}
