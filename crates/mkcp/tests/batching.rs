//! The batched UDP path end to end: bursts far larger than one receive or send batch
//! arrive complete both ways, and one socket's flushes to several peers at once (runs
//! of different destinations and sizes) reach every peer intact; IPv6 and dual-stack
//! sockets work through the batched path too.

use std::io;
use std::time::Duration;

use mkcp::{Config, KcpEndpoint, KcpListener, KcpStream};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

mod common;
use common::{read_hashed, write_random};

/// 16 MiB each way at once: over 12 000 full datagrams each way, so well over a hundred
/// receive batches and send flushes on each socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thousands_of_datagrams_arrives_complete_both_ways() {
    const LEN: usize = 16 << 20;
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (mut r, mut w) = stream.into_split();
        let send = tokio::spawn(async move {
            let h = write_random(&mut w, LEN, 256 * 1024, 2).await?;
            w.shutdown().await?;
            io::Result::Ok((h, w))
        });
        let got = read_hashed(&mut r).await?;
        let (sent, _w) = send.await.expect("server writer panicked")?;
        let stats = listener.stats();
        io::Result::Ok((got, sent, stats, listener))
    });
    let endpoint = KcpEndpoint::client("127.0.0.1:0", Config::default())
        .await
        .expect("client");
    let stream = endpoint.connect(addr).await.expect("connect");
    let (mut r, mut w) = stream.into_split();
    let send = tokio::spawn(async move {
        let h = write_random(&mut w, LEN, 256 * 1024, 1).await?;
        w.shutdown().await?;
        io::Result::Ok((h, w))
    });
    let run = async {
        let got = read_hashed(&mut r).await?;
        let (sent, w) = send.await.expect("client writer panicked")?;
        let (server_got, server_sent, server_stats, listener) =
            server.await.expect("server panicked")?;
        io::Result::Ok((
            got,
            sent,
            server_got,
            server_sent,
            server_stats,
            w,
            listener,
        ))
    };
    let (got, sent, server_got, server_sent, server_stats, _w, _listener) =
        timeout(Duration::from_secs(240), run)
            .await
            .expect("burst timed out")
            .expect("burst failed");
    assert_eq!(server_got, (LEN, sent), "client -> server data differs");
    assert_eq!(got, (LEN, server_sent), "server -> client data differs");
    let client_stats = endpoint.stats();
    for (side, stats) in [("client", &client_stats), ("server", &server_stats)] {
        assert!(
            stats.datagrams_received > 10_000 && stats.datagrams_sent > 10_000,
            "{side}: {stats:?}"
        );
        assert_eq!(stats.dropped_invalid, 0, "{side}: {stats:?}");
    }
}

/// One server socket answering eight clients at once, each with its own message size,
/// so the server's flushes mix destinations and datagram sizes (full data datagrams,
/// short last ones, acks): every client gets exactly its own bytes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_to_many_peers_of_many_sizes_are_all_delivered() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await?;
                io::Result::Ok(())
            });
        }
    });
    let mut clients = Vec::new();
    for i in 0..8u64 {
        clients.push(tokio::spawn(async move {
            let len = 200_000 + 77_777 * i as usize;
            let chunk = 1 + 517 * i as usize;
            let stream = KcpStream::connect(addr, Config::default()).await?;
            let (mut r, mut w) = stream.into_split();
            let send = tokio::spawn(async move {
                let h = write_random(&mut w, len, chunk, 100 + i).await?;
                w.shutdown().await?;
                io::Result::Ok((h, w))
            });
            let got = read_hashed(&mut r).await?;
            let (sent, _w) = send.await.expect("writer panicked")?;
            io::Result::Ok((len, got, sent))
        }));
    }
    let all = async {
        let mut out = Vec::new();
        for c in clients {
            out.push(c.await.expect("client panicked").expect("client failed"));
        }
        out
    };
    let results = timeout(Duration::from_secs(120), all)
        .await
        .expect("echoes timed out");
    for (i, (len, got, sent)) in results.into_iter().enumerate() {
        assert_eq!(got, (len, sent), "client {i}");
    }
    echo.abort();
}

/// The batched socket on IPv6 (quinn-udp sets different socket options there): an echo
/// over `[::1]` (skipped where the machine has no IPv6 loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_echo() {
    let Ok(listener) = KcpListener::bind("[::1]:0", Config::default()).await else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let addr = listener.local_addr().expect("addr");
    let echo = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        io::Result::Ok(listener)
    });
    let run = async {
        let stream = KcpStream::connect(addr, Config::default()).await?;
        let (mut r, mut w) = stream.into_split();
        let send = tokio::spawn(async move {
            let h = write_random(&mut w, 1 << 20, 4096, 7).await?;
            w.shutdown().await?;
            io::Result::Ok((h, w))
        });
        let got = read_hashed(&mut r).await?;
        let (sent, _w) = send.await.expect("writer panicked")?;
        let _listener = echo.await.expect("echo panicked")?;
        io::Result::Ok((got, sent))
    };
    let (got, sent) = timeout(Duration::from_secs(60), run)
        .await
        .expect("IPv6 echo timed out")
        .expect("IPv6 echo failed");
    assert_eq!(got, (1 << 20, sent));
}

/// A dual-stack client socket (`[::]`) reaching an IPv4 server through mapped
/// addresses (skipped where the machine has no IPv6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_client_reaches_an_ipv4_server() {
    let Ok(endpoint) = KcpEndpoint::client("[::]:0", Config::default()).await else {
        eprintln!("no IPv6 here: skipped");
        return;
    };
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let (mut r, mut w) = tokio::io::split(stream);
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        io::Result::Ok(listener)
    });
    let run = async {
        let stream = endpoint.connect(addr).await?;
        let (mut r, mut w) = stream.into_split();
        let send = tokio::spawn(async move {
            let h = write_random(&mut w, 1 << 20, 4096, 8).await?;
            w.shutdown().await?;
            io::Result::Ok((h, w))
        });
        let got = read_hashed(&mut r).await?;
        let (sent, _w) = send.await.expect("writer panicked")?;
        let _listener = echo.await.expect("echo panicked")?;
        io::Result::Ok((got, sent))
    };
    let (got, sent) = timeout(Duration::from_secs(60), run)
        .await
        .expect("dual-stack echo timed out")
        .expect("dual-stack echo failed");
    assert_eq!(got, (1 << 20, sent));
}
