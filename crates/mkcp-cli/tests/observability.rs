//! `--metrics`, `--stats` and `--log-format json` of the `mkcp` binary on 127.0.0.1:
//! metrics scraped during a real tunnel transfer move; garbage requests get an error
//! status and the tunnel keeps running; `--stats` lines carry an RFC 3339 timestamp and
//! stay quiet while idle; JSON logs are one object per line.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::Proc;
use mkcp_v2ray::net::EchoServer;

const WAIT: Duration = Duration::from_secs(20);

/// Server and client in front of `target`, each with `extra` flags.
fn tunnel(target: SocketAddr, extra: &[&str]) -> (Proc, Proc, SocketAddr) {
    let target = target.to_string();
    let mut args = vec!["server", "--listen", "127.0.0.1:0", "--target", &target];
    args.extend_from_slice(extra);
    let mut server = Proc::spawn(&args);
    let udp = server.listening_addr("udp").to_string();
    let mut args = vec!["client", "--listen", "127.0.0.1:0", "--server", &udp];
    args.extend_from_slice(extra);
    let mut client = Proc::spawn(&args);
    let entry = client.listening_addr("tcp");
    (server, client, entry)
}

/// The address of the `metrics on http://ADDR/metrics` log line.
fn metrics_addr(p: &mut Proc) -> SocketAddr {
    let needle = "metrics on http://";
    let line = p.wait_stderr(needle, Duration::from_secs(10));
    let rest = &line[line.find(needle).unwrap() + needle.len()..];
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Sends `request` raw and returns the whole response.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before all of an oversized request is written.
    let _ = s.write_all(request);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    let r = http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// The value of the sample `name{labels}` in a text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// TCP through the tunnel to an echo server: a writer pushing until told to stop, a
/// reader counting what comes back.
struct Transfer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    writer: thread::JoinHandle<TcpStream>,
    reader: thread::JoinHandle<()>,
}

impl Transfer {
    fn start(entry: SocketAddr) -> Transfer {
        let s = TcpStream::connect(entry).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = s.try_clone().unwrap();
        let mut w = s;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
        let writer = thread::spawn(move || {
            let chunk = vec![0x5au8; 16 * 1024];
            while !st.load(Ordering::Relaxed) {
                w.write_all(&chunk).unwrap();
                se.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            w
        });
        let rc = received.clone();
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        rc.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        Transfer {
            stop,
            sent,
            received,
            writer,
            reader,
        }
    }

    /// Stops writing, waits for every byte to come back, and closes.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let w = self.writer.join().unwrap();
        let total = self.sent.load(Ordering::Relaxed);
        let deadline = Instant::now() + WAIT;
        while self.received.load(Ordering::Relaxed) < total {
            assert!(Instant::now() < deadline, "the echo did not come back");
            thread::sleep(Duration::from_millis(20));
        }
        let _ = w.shutdown(Shutdown::Both);
        let _ = self.reader.join();
    }
}

/// Scrapes `addr` until `series` exceeds `above` (bounded by [`WAIT`]); returns the
/// exposition.
fn scrape_until_above(addr: SocketAddr, series: &str, above: f64) -> (String, f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get(addr, "/metrics");
        if let Some(v) = sample(&text, series) {
            if v > above {
                return (text, v);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{series} did not exceed {above}:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_move_during_a_transfer_and_survive_garbage() {
    let echo = EchoServer::start().unwrap();
    let (mut server, mut client, entry) = tunnel(echo.addr(), &["--metrics", "127.0.0.1:0"]);
    let (server_metrics, client_metrics) = (metrics_addr(&mut server), metrics_addr(&mut client));
    let up = r#"mkcp_tunnel_bytes_total{role="client",direction="tcp_to_kcp"}"#;
    let down = r#"mkcp_tunnel_bytes_total{role="client",direction="kcp_to_tcp"}"#;

    let idle = get(client_metrics, "/metrics");
    assert_eq!(sample(&idle, up), Some(0.0), "{idle}");
    assert_eq!(
        sample(&idle, r#"mkcp_sessions_live{role="client"}"#),
        Some(0.0)
    );

    let transfer = Transfer::start(entry);
    let (text, first) = scrape_until_above(client_metrics, up, 0.0);
    assert_eq!(
        sample(&text, r#"mkcp_sessions_live{role="client"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE mkcp_tunnel_bytes_total counter"),
        "{text}"
    );
    // The figures keep moving while data flows.
    let (_, second) = scrape_until_above(client_metrics, up, first);
    assert!(second > first);
    scrape_until_above(client_metrics, down, 0.0);
    scrape_until_above(
        client_metrics,
        r#"mkcp_wire_bytes_total{role="client",direction="sent"}"#,
        0.0,
    );
    // An RTT is measured while data moves (loopback: well below a second).
    let (text, _) = scrape_until_above(
        client_metrics,
        r#"mkcp_goodput_bytes_per_second{role="client",direction="tcp_to_kcp"}"#,
        0.0,
    );
    let srtt = sample(&text, r#"mkcp_srtt_seconds{role="client"}"#).expect("an srtt series");
    assert!((0.0..1.0).contains(&srtt), "{srtt}");
    let (text, _) = scrape_until_above(
        server_metrics,
        r#"mkcp_tunnel_bytes_total{role="server",direction="kcp_to_tcp"}"#,
        0.0,
    );
    assert_eq!(
        sample(&text, r#"mkcp_sessions_total{role="server"}"#),
        Some(1.0),
        "{text}"
    );

    // Garbage gets an error status; none of it stops the responder or the tunnel.
    let cases: [(&[u8], &str); 6] = [
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            "400",
        ),
        (b"GET /nope HTTP/1.1\r\n\r\n", "404"),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "405",
        ),
        (b"GET /metrics\r\n\r\n", "400"),
        (&[b'A'; 20_000], "431"),
        (b"GET /metrics HTTP/1.1\r\nHost: x", "200"), // closed before the blank line
    ];
    for (request, status) in cases {
        let r = http(client_metrics, request);
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?} -> {r:?}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
    }
    // A connection that sends nothing and one that closes at once.
    let silent = TcpStream::connect(client_metrics).unwrap();
    drop(TcpStream::connect(client_metrics).unwrap());

    let before = sample(&get(client_metrics, "/metrics"), up).unwrap();
    let (_, after) = scrape_until_above(client_metrics, up, before);
    assert!(after > before, "the tunnel kept moving data");
    let json: serde_json::Value =
        serde_json::from_str(&get(client_metrics, "/metrics.json")).unwrap();
    assert_eq!(json["role"], "client");
    assert_eq!(json["sessions"]["live"], 1);
    assert!(json["bytes"]["tcp_to_kcp"].as_u64().unwrap() > 0, "{json}");
    assert!(json["wire_bytes"]["sent"].as_u64().unwrap() > 0, "{json}");
    assert!(json["srtt_ms"].is_number(), "{json}");
    drop(silent);

    transfer.finish();
    scrape_until_above(client_metrics, r#"mkcp_sessions_total{role="client"}"#, 0.0);
}

/// Splits a `--stats` line into its timestamp and the rest, checking the timestamp is
/// RFC 3339 UTC with milliseconds (`2026-12-02T06:28:51.042Z`).
fn split_timestamp(line: &str) -> (&str, &str) {
    let (ts, rest) = line.split_once(' ').unwrap();
    let b = ts.as_bytes();
    let shape = ts.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape, "not an RFC 3339 UTC timestamp: {line:?}");
    (ts, rest)
}

#[test]
fn stats_lines_are_timestamped_show_rtt_and_stay_quiet_when_idle() {
    let echo = EchoServer::start().unwrap();
    let (_server, mut client, entry) = tunnel(echo.addr(), &["--stats", "1"]);
    for round in 0..2 {
        let transfer = Transfer::start(entry);
        client.wait_stdout("sessions 1 active", WAIT);
        // Two lines with data moving, then close.
        let deadline = Instant::now() + WAIT;
        while client
            .stdout()
            .lines()
            .filter(|l| l.contains("sessions 1 active") && !l.contains("tcp->kcp 0 bit/s"))
            .count()
            < 2 * (round + 1)
        {
            assert!(Instant::now() < deadline, "{}", client.stdout());
            thread::sleep(Duration::from_millis(50));
        }
        transfer.finish();
        // One idle line once the session has ended and nothing moves.
        let deadline = Instant::now() + WAIT;
        while client
            .stdout()
            .lines()
            .filter(|l| {
                l.contains("sessions 0 active") && l.contains("tcp->kcp 0 bit/s, kcp->tcp 0 bit/s")
            })
            .count()
            < round + 1
        {
            assert!(Instant::now() < deadline, "{}", client.stdout());
            thread::sleep(Duration::from_millis(50));
        }
        // Idle for a few intervals before the next round (nothing may be printed).
        thread::sleep(Duration::from_millis(3500));
    }
    let out = client.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let mut idle_run = 0;
    for line in &lines {
        let (_, rest) = split_timestamp(line);
        assert!(rest.starts_with("sessions "), "{line}");
        let moved = !rest.contains("tcp->kcp 0 bit/s, kcp->tcp 0 bit/s");
        if moved {
            assert!(
                !rest.contains("| rtt - |"),
                "rtt unknown while data moved: {line}"
            );
            idle_run = 0;
        } else {
            idle_run += 1;
            // At most the line that says it stopped (and one where the session's end
            // falls in an interval of its own).
            assert!(idle_run <= 2, "idle lines kept coming:\n{out}");
        }
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut server = Proc::spawn(&[
        "server",
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--target",
        "127.0.0.1:9",
    ]);
    let line = server.wait_stderr("listening on udp", Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO", "{line}");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("mkcp server listening on udp 127.0.0.1:"),
        "{line}"
    );
    let ts = v["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    for l in server.stderr().lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}"));
        assert!(v["message"].is_string(), "{l}");
    }

    let (status, _, stderr) = common::run(
        &[
            "server",
            "--log-format",
            "yaml",
            "-l",
            "127.0.0.1:0",
            "-t",
            "127.0.0.1:9",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("expected text or json"), "{stderr}");
}
