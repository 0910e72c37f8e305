//! Memory and CPU of many idle sessions (issue 11: 10,000 idle sessions in at most
//! 100 MiB). Two processes:
//!
//! ```text
//! cargo run --release -p mkcp --example idle_sessions -- server 127.0.0.1:4100
//! cargo run --release -p mkcp --example idle_sessions -- clients 127.0.0.1:4100 10000 20
//! ```
//!
//! The server accepts every session, echoes what arrives, and prints its resident memory
//! (VmRSS) and CPU time every 5 s. The clients open N sessions from K source addresses
//! (127.0.0.2 and up, so per-address limits hold), send one byte on each, wait for the
//! echo, then hold every session open and idle (keep-alives only) until killed.
//! Linux only (reads /proc).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mkcp::{Config, EndpointConfig, KcpEndpoint, KcpListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn server(addr: SocketAddr) -> std::io::Result<()> {
    let mut limits = EndpointConfig::server(Config::default());
    limits.max_sessions = 20_000;
    limits.max_sessions_per_ip = 1_000;
    let listener = KcpListener::bind_with(addr, limits).await?;
    println!("listening on {}", listener.local_addr()?);
    let report = listener.endpoint().clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last_cpu = cpu_seconds();
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let cpu = cpu_seconds();
            println!(
                "{:>5.0} s: {} live sessions, VmRSS {}, CPU {:.2} s in the last 5 s",
                start.elapsed().as_secs_f64(),
                report.live_sessions(),
                proc_status("VmRSS:"),
                cpu - last_cpu
            );
            last_cpu = cpu;
        }
    });
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn clients(addr: SocketAddr, total: usize, sources: usize) -> std::io::Result<()> {
    let mut endpoints = Vec::new();
    for k in 0..sources.max(1) {
        let mut limits = EndpointConfig::client(Config::default());
        limits.max_sessions = 20_000;
        limits.max_sessions_per_ip = 20_000;
        let bind = SocketAddr::from(([127, 0, 0, 2 + k as u8], 0));
        endpoints.push(KcpEndpoint::bind(bind, limits).await?);
    }
    let mut streams = Vec::with_capacity(total);
    for i in 0..total {
        let mut s = endpoints[i % endpoints.len()].connect(addr).await?;
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        streams.push(s);
        if (i + 1) % 1000 == 0 {
            println!("{} sessions open", i + 1);
        }
    }
    println!("{total} sessions open and idle; Ctrl-C to end");
    std::future::pending::<()>().await;
    drop(streams);
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: idle_sessions server ADDR | clients ADDR N SOURCES";
    let addr: SocketAddr = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    match args.get(1).map(String::as_str) {
        Some("server") => server(addr).await,
        Some("clients") => {
            let n = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10_000);
            let k = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(20);
            clients(addr, n, k).await
        }
        _ => panic!("{usage}"),
    }
}
