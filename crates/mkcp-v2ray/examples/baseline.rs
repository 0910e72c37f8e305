//! Baseline: real V2Ray client <-> real V2Ray server over loopback mKCP.
//!
//! ```text
//! cargo run --release -p mkcp-v2ray --example baseline -- [--mib 64] [--rtt 200]
//!     [--header none|srtp|utp|wechat-video|dtls|wireguard] [--seed S] [--runs 1]
//!     [--mtu 1350] [--tti 50]
//! ```
//!
//! 1. Bulk: `--mib` MiB one way, TCP -> V2Ray client -> mKCP -> V2Ray server -> TCP sink;
//!    MiB/s from connect until the sink has counted the last byte; CPU seconds and peak
//!    RSS of both V2Ray processes.
//!    (`--mib 0` skips this.)
//! 2. Latency: `--rtt` ping-pongs of 64 bytes through a pair with a TCP echo behind it
//!    (20 warm-up rounds), p50 / p90 / p99; plus the same over plain loopback TCP.
//!
//! Settings are V2Ray's defaults (mtu 1350, tti 50, uplink 5, downlink 20, no congestion
//! control, 2 MiB buffers), no header and the legacy envelope unless overridden.

use std::time::Duration;

use mkcp_v2ray::net::{self, EchoServer, RttStats, SinkServer};
use mkcp_v2ray::{locate, HeaderType, KcpParams, V2rayPair, V2rayProcess};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
        })
        .unwrap_or(default)
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn usage(p: &V2rayProcess) -> (f64, u64) {
    (
        p.cpu_time_secs().unwrap_or(f64::NAN),
        p.peak_rss_bytes().unwrap_or(0),
    )
}

fn print_rtt(what: &str, s: &RttStats) {
    println!(
        "{what}: n={} p50={} p90={} p99={} mean={} max={}",
        s.samples.len(),
        fmt_ms(s.p50()),
        fmt_ms(s.percentile(90.0)),
        fmt_ms(s.percentile(99.0)),
        fmt_ms(s.mean()),
        fmt_ms(s.percentile(100.0)),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = arg(&args, "--mib", 64);
    let rtt_n: usize = arg(&args, "--rtt", 200);
    let runs: usize = arg(&args, "--runs", 1);
    let header_name: String = arg(&args, "--header", "none".to_string());
    let header = HeaderType::ALL
        .into_iter()
        .find(|h| h.as_str() == header_name)
        .unwrap_or_else(|| panic!("unknown header {header_name}"));
    let seed: Option<String> = args
        .iter()
        .position(|a| a == "--seed")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    let kcp = KcpParams {
        mtu: arg(&args, "--mtu", 1350),
        tti: arg(&args, "--tti", 50),
        header,
        seed,
        ..KcpParams::default()
    };

    let bin = locate().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "v2ray: {} ({})",
        bin.path().display(),
        bin.version().unwrap()
    );
    println!("kcpSettings: {}", kcp.to_json());

    let len = mib * 1024 * 1024;
    for run in (1..=runs).filter(|_| mib > 0) {
        let sink = SinkServer::start().unwrap();
        let pair = V2rayPair::start(&bin, sink.addr(), &kcp, &kcp).unwrap();
        let (c0, _) = usage(&pair.client);
        let (s0, _) = usage(&pair.server);
        let r = net::transfer_to_sink(
            pair.entry(),
            &sink,
            len,
            run as u64,
            Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("bulk transfer failed: {e}"));
        let (c1, crss) = usage(&pair.client);
        let (s1, srss) = usage(&pair.server);
        println!(
            "bulk run {run}: {mib} MiB in {:.2} s = {:.2} MiB/s | cpu client {:.2} s, server {:.2} s | peak RSS client {:.1} MiB, server {:.1} MiB",
            r.elapsed.as_secs_f64(),
            r.mib_per_sec(),
            c1 - c0,
            s1 - s0,
            crss as f64 / 1048576.0,
            srss as f64 / 1048576.0,
        );
    }

    if rtt_n > 0 {
        let echo = EchoServer::start().unwrap();
        let direct = net::echo_rtt(echo.addr(), 64, 20, rtt_n, Duration::from_secs(60)).unwrap();
        print_rtt("rtt 64 B plain TCP loopback", &direct);
        let pair = V2rayPair::start(&bin, echo.addr(), &kcp, &kcp).unwrap();
        let s = net::echo_rtt(pair.entry(), 64, 20, rtt_n, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("rtt failed: {e}"));
        print_rtt("rtt 64 B via V2Ray mKCP pair", &s);
    }
}
