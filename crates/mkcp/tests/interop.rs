//! Interop with the real V2Ray 4.34 binary, both directions, for every header type x
//! envelope (no seed = legacy, seed "some-seed", seed "" = AES-GCM with the empty key),
//! plus `congestion: true` and `mtu 576 / tti 10`:
//!
//! * **our client -> V2Ray server**: `KcpStream` --mKCP--> V2Ray (dokodemo-door kcp
//!   inbound) --TCP--> echo server; 4 MiB each way at once, SHA-256 checked, then a
//!   clean `close()` (every byte acknowledged).
//! * **V2Ray client -> our server**: TCP --> V2Ray (dokodemo-door, freedom over kcp)
//!   --mKCP--> `KcpListener` whose test app echoes; 4 MiB each way, SHA-256 checked,
//!   and our side must read a clean end-of-stream when V2Ray closes.
//!
//! Our `Config` is built from the very `kcpSettings` JSON V2Ray gets. V2Ray has no
//! half-close (PROTOCOL.md §3.8), so every test reads the whole echo before closing.
//!
//! Fails when V2Ray is missing, unless `MKCP_SKIP_INTEROP=1`. Cells run concurrently
//! (at most `MAX_CONCURRENT_CELLS` across all tests). `MKCP_INTEROP_LOG=debug` runs
//! V2Ray with debug logging (printed on failure).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mkcp::{Config, KcpListener, KcpStream};
use mkcp_v2ray::net::{self, Pattern};
use mkcp_v2ray::{
    free_tcp_port, free_udp_port, localhost, require_v2ray_or_skip, retry_on_port_conflict,
    HeaderType, KcpParams, LogLevel, V2rayBin, V2rayConfig, V2rayError, V2rayProcess,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Payload per cell and direction.
const CELL_BYTES: usize = 4 << 20;
/// Bound for one cell's transfer.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(90);
/// Cells running at once over the whole test binary (V2Ray processes are the load).
const MAX_CONCURRENT_CELLS: usize = 6;
/// The three envelopes: seed key absent, non-empty seed, empty-but-present seed.
const ENVELOPES: [Option<&str>; 3] = [None, Some("some-seed"), Some("")];

static CELLS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_CELLS);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Our KcpStream dials a V2Ray server.
    OursToV2ray,
    /// A V2Ray client dials our KcpListener.
    V2rayToOurs,
}

fn log_level() -> LogLevel {
    match std::env::var("MKCP_INTEROP_LOG").as_deref() {
        Ok("debug") => LogLevel::Debug,
        Ok("info") => LogLevel::Info,
        _ => LogLevel::Warning,
    }
}

/// Our settings, read from the same `kcpSettings` JSON V2Ray is given.
fn our_config(params: &KcpParams) -> Config {
    Config::from_kcp_settings_value(&params.to_json()).expect("kcpSettings accepted")
}

/// Starts V2Ray with a config made for a fresh port, retrying on port conflicts.
fn spawn_v2ray(
    bin: &V2rayBin,
    make: impl Fn() -> io::Result<(V2rayConfig, SocketAddr)>,
) -> Result<(V2rayProcess, SocketAddr), String> {
    let attempt = || {
        let (config, addr) = make().map_err(|e| V2rayError::io("picking a port", e))?;
        V2rayProcess::spawn_with(bin, &config.with_log_level(log_level())).map(|p| (p, addr))
    };
    retry_on_port_conflict(5, attempt, V2rayError::is_port_conflict)
        .map_err(|e| format!("starting v2ray: {e}"))
}

async fn spawn_v2ray_async(
    bin: V2rayBin,
    make: impl Fn() -> io::Result<(V2rayConfig, SocketAddr)> + Send + 'static,
) -> Result<(V2rayProcess, SocketAddr), String> {
    tokio::task::spawn_blocking(move || spawn_v2ray(&bin, make))
        .await
        .map_err(|e| format!("spawn task: {e}"))?
}

async fn write_pattern<W: AsyncWrite + Unpin>(
    w: &mut W,
    len: usize,
    seed: u64,
) -> io::Result<[u8; 32]> {
    let mut p = Pattern::new(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        p.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        h.update(&buf[..n]);
        left -= n;
    }
    Ok(h.finalize().into())
}

async fn read_exact_hashed<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < len {
        let want = (len - got).min(buf.len());
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("end of stream after {got} of {len} bytes"),
            ));
        }
        h.update(&buf[..n]);
        got += n;
    }
    Ok(h.finalize().into())
}

/// Our client -> V2Ray server -> TCP echo.
async fn ours_to_v2ray(bin: V2rayBin, params: KcpParams, seed: u64) -> Result<String, String> {
    let echo = net::EchoServer::start().map_err(|e| format!("echo server: {e}"))?;
    let target = echo.addr();
    let p = params.clone();
    let (mut v2ray, addr) = spawn_v2ray_async(bin, move || {
        let port = free_udp_port()?;
        Ok((
            V2rayConfig::server(port, target, p.clone()),
            localhost(port),
        ))
    })
    .await?;
    let t0 = Instant::now();
    let run = async {
        let stream = KcpStream::connect(addr, our_config(&params)).await?;
        let (mut r, mut w) = stream.into_split();
        let writer = tokio::spawn(async move {
            let h = write_pattern(&mut w, CELL_BYTES, seed).await?;
            io::Result::Ok((h, w))
        });
        let got = read_exact_hashed(&mut r, CELL_BYTES).await?;
        let (sent, w) = writer.await.map_err(io::Error::other)??;
        if got != sent {
            return Err(io::Error::other(
                "SHA-256 of the echo differs from what was sent",
            ));
        }
        let elapsed = t0.elapsed();
        let stream = r.reunite(w).map_err(io::Error::other)?;
        let stats = stream.stats();
        // Clean close: everything we wrote was acknowledged, then V2Ray was told.
        stream.close().await?;
        io::Result::Ok((elapsed, stats))
    };
    let result = timeout(TRANSFER_TIMEOUT, run).await;
    let alive = v2ray.check_alive();
    let (elapsed, stats) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("{e}\n--- v2ray server log ---\n{}", v2ray.log())),
        Err(_) => {
            return Err(format!(
                "timed out after {TRANSFER_TIMEOUT:?}\n--- v2ray server log ---\n{}",
                v2ray.log()
            ))
        }
    };
    alive.map_err(|e: V2rayError| format!("v2ray died: {e}"))?;
    if std::env::var_os("MKCP_INTEROP_STATS").is_some() {
        eprintln!("{stats:#?}");
    }
    Ok(format!(
        "{:.1} MiB/s each way, srtt {} ms, rto {} ms, {} retransmissions of {} data segments ({} RTO expiries)",
        CELL_BYTES as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
        stats.srtt_ms,
        stats.rto_ms,
        stats.retransmissions,
        stats.data_segments_sent,
        stats.timeouts,
    ))
}

/// V2Ray client -> our listener, whose app echoes.
async fn v2ray_to_ours(bin: V2rayBin, params: KcpParams, seed: u64) -> Result<String, String> {
    let listener = KcpListener::bind("127.0.0.1:0", our_config(&params))
        .await
        .map_err(|e| format!("binding our listener: {e}"))?;
    let server = listener.local_addr().map_err(|e| e.to_string())?;
    let endpoint = listener.endpoint().clone();
    // Outcome of each accepted stream: bytes echoed, and how it ended.
    let outcomes: Arc<Mutex<Vec<Result<u64, String>>>> = Arc::default();
    let outcomes2 = outcomes.clone();
    let app = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let outcomes = outcomes2.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                let r = tokio::io::copy(&mut r, &mut w).await;
                outcomes
                    .lock()
                    .unwrap()
                    .push(r.map_err(|e| format!("echo ended with {e}")));
            });
        }
    });
    let p = params.clone();
    let (mut v2ray, entry) = spawn_v2ray_async(bin, move || {
        let port = free_tcp_port()?;
        Ok((
            V2rayConfig::client(port, server, p.clone()),
            localhost(port),
        ))
    })
    .await?;
    let report = tokio::task::spawn_blocking(move || {
        net::transfer_echo(entry, CELL_BYTES as u64, seed, TRANSFER_TIMEOUT)
    })
    .await
    .map_err(|e| format!("transfer task: {e}"))?;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            app.abort();
            return Err(format!(
                "transfer: {e}\n--- v2ray client log ---\n{}",
                v2ray.log()
            ));
        }
    };
    // V2Ray closes its side when the TCP connection ends; our app must see a clean
    // end-of-stream (V2Ray's Terminate) after echoing every byte.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        if let Some(o) = outcomes.lock().unwrap().first().cloned() {
            break o;
        }
        if Instant::now() > deadline {
            break Err("our stream saw no end-of-stream within 20 s of V2Ray closing".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    app.abort();
    let alive = v2ray.check_alive();
    match ended {
        Ok(n) if n == CELL_BYTES as u64 => {}
        Ok(n) => return Err(format!("our app echoed {n} bytes, expected {CELL_BYTES}")),
        Err(e) => return Err(format!("{e}\n--- v2ray client log ---\n{}", v2ray.log())),
    }
    alive.map_err(|e| format!("v2ray died: {e}"))?;
    // Clean close: once our app dropped its stream after V2Ray's Terminate, the
    // session is gone from our table.
    let deadline = Instant::now() + Duration::from_secs(5);
    while endpoint.live_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if endpoint.live_sessions() > 0 {
        return Err(format!(
            "{} session(s) still live after the close",
            endpoint.live_sessions()
        ));
    }
    let accepted = outcomes.lock().unwrap().len();
    if accepted != 1 {
        return Err(format!("{accepted} streams accepted, expected 1"));
    }
    Ok(format!("{:.1} MiB/s each way", report.mib_per_sec()))
}

async fn cell(bin: V2rayBin, params: KcpParams, dir: Direction, seed: u64) -> Result<(), String> {
    let _permit = CELLS.acquire().await.map_err(|e| e.to_string())?;
    let label = format!(
        "{:?} {} mtu {} tti {} congestion {}",
        dir,
        params.label(),
        params.mtu,
        params.tti,
        params.congestion
    );
    let t0 = Instant::now();
    let r = match dir {
        Direction::OursToV2ray => ours_to_v2ray(bin, params, seed).await,
        Direction::V2rayToOurs => v2ray_to_ours(bin, params, seed).await,
    };
    match r {
        Ok(summary) => {
            eprintln!(
                "ok   {label}: {summary} ({:.1?} with startup)",
                t0.elapsed()
            );
            Ok(())
        }
        Err(e) => Err(format!("FAIL {label}: {e}")),
    }
}

/// Runs every (params x both directions) cell concurrently; panics listing failures.
async fn run_cells(all: Vec<KcpParams>) {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let mut tasks = Vec::new();
    for (i, params) in all.into_iter().enumerate() {
        for dir in [Direction::OursToV2ray, Direction::V2rayToOurs] {
            let seed = 100 + 2 * i as u64 + u64::from(dir == Direction::V2rayToOurs);
            tasks.push(tokio::spawn(cell(bin.clone(), params.clone(), dir, seed)));
        }
    }
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("cell panicked: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

async fn header_cells(header: HeaderType) {
    run_cells(
        ENVELOPES
            .iter()
            .map(|seed| KcpParams::with(header, *seed))
            .collect(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_none() {
    header_cells(HeaderType::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_srtp() {
    header_cells(HeaderType::Srtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_utp() {
    header_cells(HeaderType::Utp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_wechat_video() {
    header_cells(HeaderType::WechatVideo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_dtls() {
    header_cells(HeaderType::Dtls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_wireguard() {
    header_cells(HeaderType::Wireguard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_congestion_and_small_mtu_fast_tti() {
    let congestion = KcpParams {
        congestion: true,
        ..KcpParams::with(HeaderType::Srtp, Some("some-seed"))
    };
    let small = KcpParams {
        mtu: 576,
        tti: 10,
        ..KcpParams::with(HeaderType::WechatVideo, None)
    };
    run_cells(vec![congestion, small]).await;
}
