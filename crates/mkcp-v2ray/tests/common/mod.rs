//! Shared helpers for the interop tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use mkcp_v2ray::net::{self, EchoServer, TransferReport};
use mkcp_v2ray::{KcpParams, V2rayBin, V2rayPair};

/// Payload per matrix cell.
pub const CELL_BYTES: u64 = 256 * 1024;
/// Bound for one transfer.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts an echo server and a V2Ray client -> server pair, pushes `len` bytes through
/// and back, and checks SHA-256. Returns a label-prefixed error on failure.
pub fn echo_through_pair(
    bin: &V2rayBin,
    server: &KcpParams,
    client: &KcpParams,
    len: u64,
    seed: u64,
) -> Result<TransferReport, String> {
    let label = format!("server {} / client {}", server.label(), client.label());
    let t0 = Instant::now();
    let echo = EchoServer::start().map_err(|e| format!("{label}: echo server: {e}"))?;
    let mut pair = V2rayPair::start(bin, echo.addr(), server, client)
        .map_err(|e| format!("{label}: starting v2ray: {e}"))?;
    let started = t0.elapsed();
    let report = net::transfer_echo(pair.entry(), len, seed, TRANSFER_TIMEOUT).map_err(|e| {
        format!(
            "{label}: transfer: {e}\n--- server log ---\n{}\n--- client log ---\n{}",
            pair.server.log(),
            pair.client.log()
        )
    })?;
    pair.check_alive()
        .map_err(|e| format!("{label}: v2ray died: {e}"))?;
    eprintln!(
        "ok  {label}: {} B in {:?} (startup {:?}, {:.2} MiB/s) sha256 {}",
        report.bytes,
        report.elapsed,
        started,
        report.mib_per_sec(),
        &net::hex(&report.sha256)[..16]
    );
    Ok(report)
}

/// Runs `cells` concurrently (one thread each) and panics listing every failure.
pub fn run_concurrently(bin: &V2rayBin, cells: Vec<(KcpParams, KcpParams)>, len: u64) {
    let results: Vec<Result<TransferReport, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cells
            .iter()
            .enumerate()
            .map(|(i, (server, client))| {
                s.spawn(move || echo_through_pair(bin, server, client, len, 1000 + i as u64))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("cell panicked".into())))
            .collect()
    });
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} cell(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
