//! `--metrics ADDR`: the tunnel's counters over plain HTTP on TCP.
//!
//! `GET /metrics` answers in the Prometheus text exposition format (version 0.0.4),
//! `GET /metrics.json` with the same figures as one JSON object. Anything else gets an
//! error status (400, 404, 405, 431); every response closes the connection.
//!
//! The responder is deliberately tiny: one task per connection, at most
//! [`MAX_CONNECTIONS`] at once, a request head of at most [`MAX_REQUEST`] bytes read
//! within [`REQUEST_TIMEOUT`]. It only reads the registry's snapshot, so a slow or
//! hostile scraper cannot hold up the tunnel.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::stats::{PeerTotals, Registry, Snapshot};

/// Peers shown by name; the others are summed under `peer="other"`.
pub const TOP_PEERS: usize = 16;
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Largest request head accepted.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval over which goodput is measured.
pub const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// Goodput (bytes/s each way) over the last [`RATE_INTERVAL`].
#[derive(Clone, Copy, Debug, Default)]
struct Goodput {
    to_kcp: f64,
    from_kcp: f64,
}

/// A running metrics endpoint; it stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `registry`'s counters, labelled with `role`
    /// (`server` or `client`).
    pub async fn start(
        addr: SocketAddr,
        registry: Arc<Registry>,
        role: &'static str,
    ) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve --metrics on tcp {addr}"))?;
        let local_addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        let goodput = Arc::new(Mutex::new(Goodput::default()));
        let sampler = tokio::spawn(sample(registry.clone(), goodput.clone()));
        let server = tokio::spawn(serve(listener, registry, goodput, role));
        Ok(MetricsServer {
            local_addr,
            tasks: vec![sampler, server],
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn sample(registry: Arc<Registry>, goodput: Arc<Mutex<Goodput>>) {
    let mut tick = tokio::time::interval(RATE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut before = registry.snapshot().totals;
    let mut at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = registry.snapshot().totals;
        let secs = at.elapsed().as_secs_f64().max(1e-3);
        let d = now.since(&before);
        *goodput.lock().unwrap_or_else(PoisonError::into_inner) = Goodput {
            to_kcp: d.to_kcp as f64 / secs,
            from_kcp: d.from_kcp as f64 / secs,
        };
        before = now;
        at = tokio::time::Instant::now();
    }
}

async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    goodput: Arc<Mutex<Goodput>>,
    role: &'static str,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // E.g. too many open files: keep serving.
                debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let goodput = goodput.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = respond(stream, &registry, &goodput, role).await {
                debug!(%peer, "metrics: {e}");
            }
        });
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Text,
    Json,
    Error(u16, &'static str),
}

/// Reads the request head (up to the blank line) and routes it.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Route> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = find_head_end(&buf) {
                return Ok(route(&buf[..end]));
            }
            if buf.len() >= MAX_REQUEST {
                return Ok(Route::Error(431, "request header fields too large"));
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                // Closed before a whole head: answer what was sent, if it is a
                // request line at all.
                return Ok(if buf.is_empty() {
                    Route::Error(400, "empty request")
                } else {
                    route(&buf)
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Ok(Route::Error(408, "request timeout")),
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// Routes a request head by its first line.
fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::Error(400, "bad request");
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(400, "bad request");
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Error(400, "bad request");
    }
    if method != "GET" {
        return Route::Error(405, "method not allowed");
    }
    // The query string is ignored (Prometheus may add one).
    match target.split('?').next().unwrap_or("") {
        "/metrics" => Route::Text,
        "/metrics.json" => Route::Json,
        _ => Route::Error(404, "not found: try /metrics or /metrics.json"),
    }
}

async fn respond(
    mut stream: TcpStream,
    registry: &Registry,
    goodput: &Mutex<Goodput>,
    role: &'static str,
) -> std::io::Result<()> {
    let route = read_request(&mut stream).await?;
    let (status, reason, content_type, body) = match route {
        Route::Text | Route::Json => {
            let snapshot = registry.snapshot();
            let rate = *goodput.lock().unwrap_or_else(PoisonError::into_inner);
            if route == Route::Text {
                (
                    200,
                    "OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    prometheus(&snapshot, rate, role),
                )
            } else {
                (
                    200,
                    "OK",
                    "application/json",
                    json_body(&snapshot, rate, role),
                )
            }
        }
        Route::Error(code, reason) => (code, reason, "text/plain; charset=utf-8", {
            format!("{code} {reason}\n")
        }),
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(REQUEST_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// A Prometheus label value, escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Text {
    out: String,
    role: &'static str,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP mkcp_{name} {help}");
        let _ = writeln!(self.out, "# TYPE mkcp_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "mkcp_{name}{{role=\"{}\"", self.role);
        for (k, v) in labels {
            let _ = write!(self.out, ",{k}=\"{}\"", label(v));
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn peer_rows(s: &Snapshot) -> Vec<(String, PeerTotals)> {
    let (top, other) = s.top_peers(TOP_PEERS);
    let mut rows: Vec<(String, PeerTotals)> = top
        .into_iter()
        .map(|(ip, t): (IpAddr, PeerTotals)| (ip.to_string(), t))
        .collect();
    if other != PeerTotals::default() {
        rows.push(("other".to_string(), other));
    }
    rows
}

/// The Prometheus text exposition of a snapshot.
fn prometheus(s: &Snapshot, rate: Goodput, role: &'static str) -> String {
    let t = &s.totals;
    let mut p = Text {
        out: String::new(),
        role,
    };
    p.one(
        "sessions_live",
        "gauge",
        "mKCP sessions running now.",
        s.active as f64,
    );
    p.one(
        "sessions_total",
        "counter",
        "mKCP sessions since the start.",
        s.total_sessions as f64,
    );
    p.family(
        "tunnel_bytes_total",
        "counter",
        "Bytes the tunnel carried (goodput), by direction.",
    );
    p.sample(
        "tunnel_bytes_total",
        &[("direction", "tcp_to_kcp")],
        t.to_kcp as f64,
    );
    p.sample(
        "tunnel_bytes_total",
        &[("direction", "kcp_to_tcp")],
        t.from_kcp as f64,
    );
    p.family(
        "goodput_bytes_per_second",
        "gauge",
        "Goodput over the last second, by direction.",
    );
    p.sample(
        "goodput_bytes_per_second",
        &[("direction", "tcp_to_kcp")],
        rate.to_kcp,
    );
    p.sample(
        "goodput_bytes_per_second",
        &[("direction", "kcp_to_tcp")],
        rate.from_kcp,
    );
    if let Some(ms) = s.srtt_ms {
        p.one(
            "srtt_seconds",
            "gauge",
            "Mean smoothed RTT of the running sessions that measured one.",
            ms / 1000.0,
        );
    }
    p.one(
        "acked_bytes_total",
        "counter",
        "Stream bytes sent over mKCP and acknowledged by the peer.",
        t.acked as f64,
    );
    p.one(
        "data_segments_sent_total",
        "counter",
        "Data segments sent, retransmissions included.",
        t.data_segments_sent as f64,
    );
    p.one(
        "retransmissions_total",
        "counter",
        "Data segment retransmissions.",
        t.retransmissions as f64,
    );
    p.family(
        "wire_bytes_total",
        "counter",
        "UDP payload bytes of the sessions (headers, acks, retransmissions included).",
    );
    p.sample(
        "wire_bytes_total",
        &[("direction", "sent")],
        t.wire_sent as f64,
    );
    p.sample(
        "wire_bytes_total",
        &[("direction", "received")],
        t.wire_received as f64,
    );
    if let Some(r) = t.wire_ratio() {
        p.one(
            "wire_payload_ratio",
            "gauge",
            "Wire bytes per payload byte since the start (both ways).",
            r,
        );
    }
    if let Some(e) = &s.endpoint {
        p.family(
            "dropped_datagrams_total",
            "counter",
            "Datagrams the UDP endpoint dropped, by reason (invalid: failed authentication \
             or header parsing, unknown: for no session, refused: a new session over the limits).",
        );
        p.sample(
            "dropped_datagrams_total",
            &[("reason", "invalid")],
            e.dropped_invalid as f64,
        );
        p.sample(
            "dropped_datagrams_total",
            &[("reason", "unknown")],
            e.dropped_unknown as f64,
        );
        p.sample(
            "dropped_datagrams_total",
            &[("reason", "refused")],
            e.sessions_refused as f64,
        );
        p.one(
            "endpoint_datagrams_received_total",
            "counter",
            "Datagrams the UDP endpoint received.",
            e.datagrams_received as f64,
        );
    }
    let rows = peer_rows(s);
    if !rows.is_empty() {
        p.family(
            "peer_sessions_total",
            "counter",
            "Sessions by peer address (the top 16 by bytes; the rest as peer=\"other\").",
        );
        for (peer, t) in &rows {
            p.sample("peer_sessions_total", &[("peer", peer)], t.sessions as f64);
        }
        p.family(
            "peer_sessions_live",
            "gauge",
            "Running sessions by peer address.",
        );
        for (peer, t) in &rows {
            p.sample("peer_sessions_live", &[("peer", peer)], t.active as f64);
        }
        p.family(
            "peer_bytes_total",
            "counter",
            "Bytes carried by peer address and direction.",
        );
        for (peer, t) in &rows {
            p.sample(
                "peer_bytes_total",
                &[("peer", peer), ("direction", "tcp_to_kcp")],
                t.to_kcp as f64,
            );
            p.sample(
                "peer_bytes_total",
                &[("peer", peer), ("direction", "kcp_to_tcp")],
                t.from_kcp as f64,
            );
        }
    }
    p.out
}

/// The same figures as one JSON object.
fn json_body(s: &Snapshot, rate: Goodput, role: &'static str) -> String {
    let t = &s.totals;
    let peers: Vec<_> = peer_rows(s)
        .into_iter()
        .map(|(peer, t)| {
            json!({
                "peer": peer,
                "sessions_total": t.sessions,
                "sessions_live": t.active,
                "tcp_to_kcp_bytes": t.to_kcp,
                "kcp_to_tcp_bytes": t.from_kcp,
            })
        })
        .collect();
    let v = json!({
        "role": role,
        "sessions": {"live": s.active, "total": s.total_sessions},
        "bytes": {"tcp_to_kcp": t.to_kcp, "kcp_to_tcp": t.from_kcp},
        "goodput_bytes_per_second": {"tcp_to_kcp": rate.to_kcp, "kcp_to_tcp": rate.from_kcp},
        "srtt_ms": s.srtt_ms,
        "acked_bytes": t.acked,
        "data_segments_sent": t.data_segments_sent,
        "retransmissions": t.retransmissions,
        "wire_bytes": {"sent": t.wire_sent, "received": t.wire_received},
        "wire_payload_ratio": t.wire_ratio(),
        "dropped_datagrams": s.endpoint.as_ref().map(|e| json!({
            "invalid": e.dropped_invalid,
            "unknown": e.dropped_unknown,
            "refused": e.sessions_refused,
        })),
        "endpoint_datagrams_received": s.endpoint.as_ref().map(|e| e.datagrams_received),
        "peers": peers,
    });
    let mut body = v.to_string();
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_their_first_line() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), Route::Text);
        assert_eq!(route(b"GET /metrics.json?x=1 HTTP/1.0"), Route::Json);
        assert!(matches!(
            route(b"HEAD /metrics HTTP/1.1"),
            Route::Error(405, _)
        ));
        assert!(matches!(
            route(b"POST /metrics HTTP/1.1"),
            Route::Error(405, _)
        ));
        assert!(matches!(route(b"GET / HTTP/1.1"), Route::Error(404, _)));
        assert!(matches!(route(b"\x16\x03\x01\x00"), Route::Error(400, _)));
        assert!(matches!(route(b"GET /metrics"), Route::Error(400, _)));
        assert!(matches!(
            route(b"GET /metrics SPDY/3"),
            Route::Error(400, _)
        ));
    }

    #[test]
    fn text_exposition_has_labels_and_bounded_peers() {
        let reg = Registry::new();
        let mut guards = Vec::new();
        for i in 0..20u8 {
            let g = reg.register_from(SocketAddr::from(([192, 0, 2, i], 1)));
            g.session()
                .to_kcp
                .store(u64::from(i) + 1, std::sync::atomic::Ordering::Relaxed);
            guards.push(g);
        }
        let text = prometheus(&reg.snapshot(), Goodput::default(), "server");
        assert!(
            text.contains("mkcp_sessions_live{role=\"server\"} 20\n"),
            "{text}"
        );
        assert!(
            text.contains("mkcp_peer_bytes_total{role=\"server\",peer=\"192.0.2.19\",direction=\"tcp_to_kcp\"} 20\n"),
            "{text}"
        );
        // 4 peers folded into "other": 1 + 2 + 3 + 4 bytes.
        assert!(
            text.contains("mkcp_peer_bytes_total{role=\"server\",peer=\"other\",direction=\"tcp_to_kcp\"} 10\n"),
            "{text}"
        );
        assert_eq!(text.matches("mkcp_peer_sessions_live{").count(), 17);
        // No RTT sample: no srtt series rather than a made-up 0.
        assert!(!text.contains("mkcp_srtt_seconds{"));
        let v: serde_json::Value =
            serde_json::from_str(&json_body(&reg.snapshot(), Goodput::default(), "server"))
                .unwrap();
        assert_eq!(v["sessions"]["live"], 20);
        assert_eq!(v["peers"].as_array().unwrap().len(), 17);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
