//! `mkcp demo`: the whole tunnel on 127.0.0.1 over an emulated lossy link, with live
//! numbers.
//!
//! ```text
//!  demo streams --tcp--> mkcp client ==udp==> netem relay ==udp==> mkcp server --tcp--> echo
//!   (write, verify                       delay, loss, rate                          target
//!    the echo)                           each way
//! ```
//!
//! Every stream writes a seeded byte pattern for `--duration`, reads the echo back and
//! checks it byte for byte. Goodput is counted where the data arrives (at the echo target
//! for "up", back at the demo for "down"), so it is what an application would see; loss is
//! what the relay dropped; retransmissions and RTT are the mKCP connections' own counters.
//! Each stream keeps at most about one second of the recently measured goodput
//! outstanding (see [`in_flight_limit`]), so when the time is up the echo drains in about a
//! second and the demo ends on time, whatever the link.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mkcp_harness::net::EchoServer;
use mkcp_netem::{LinkConfig, Relay, RelayStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::cli::DemoArgs;
use crate::stats::{self, Snapshot};
use crate::{config, netem, tunnel};

/// Most bytes a stream may have written but not yet seen echoed back: two seconds of the
/// echo goodput measured lately (`echo_bytes_per_sec`, all streams), shared among the
/// streams, at least 512 KiB and at most one second of the link rate (or 8 MiB).
///
/// While the limit is what holds a stream back, goodput is about limit / round trip, so
/// the limit grows every round until the path is full; it never holds more than about two
/// seconds of data, which bounds what the final drain costs.
pub fn in_flight_limit(echo_bytes_per_sec: u64, rate_bps: u64, streams: u16) -> u64 {
    let streams = u64::from(streams.max(1));
    let floor = 512 * 1024;
    let cap = (rate_bps / 8 / streams).clamp(floor, 8 * 1024 * 1024);
    (echo_bytes_per_sec.saturating_mul(2) / streams).clamp(floor, cap)
}
/// How long the echo may take to come back after the pushing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
const LOCALHOST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const REFRESH: Duration = Duration::from_millis(200);
/// Window of the "now" rates shown live.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Deterministic test bytes: 8 bytes per position block, from SplitMix64.
fn pattern_block(key: u64, block: u64) -> [u8; 8] {
    let mut z = key ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// Fills `out` with the pattern bytes at stream offsets `offset..`.
fn fill_pattern(key: u64, offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *b = pattern_block(key, pos / 8)[(pos % 8) as usize];
    }
}

/// Counters shared by the demo's tasks.
#[derive(Default)]
struct Counters {
    /// Bytes written by the demo streams.
    written: AtomicU64,
    /// Bytes read back by the demo streams (and found correct).
    echoed: AtomicU64,
    /// A stream saw a byte that differs from what it sent.
    corrupt: AtomicBool,
    /// The current [`in_flight_limit`] per stream.
    in_flight_limit: AtomicU64,
}

/// One demo stream: writes the pattern until `stop_at`, then half-closes and reads the
/// echo to the end, checking every byte.
async fn demo_stream(
    entry: SocketAddr,
    key: u64,
    stop_at: tokio::time::Instant,
    counters: Arc<Counters>,
) -> Result<()> {
    let s = TcpStream::connect(entry)
        .await
        .with_context(|| format!("connecting to the mkcp client at {entry}"))?;
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let echoed = Arc::new(AtomicU64::new(0));
    let room = Arc::new(Notify::new());

    let writer = {
        let (written, echoed, room, counters) = (
            written.clone(),
            echoed.clone(),
            room.clone(),
            counters.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let w = written.load(Ordering::Relaxed);
                let in_flight = w - echoed.load(Ordering::Relaxed);
                let limit = counters.in_flight_limit.load(Ordering::Relaxed);
                if in_flight + buf.len() as u64 > limit {
                    let notified = room.notified();
                    tokio::select! {
                        _ = notified => continue,
                        _ = tokio::time::sleep_until(stop_at) => break,
                    }
                }
                fill_pattern(key, w, &mut buf);
                // `write` (unlike `write_all`) is cancel-safe: when the time is up first,
                // nothing was written, so `written` stays exact.
                let n = tokio::select! {
                    r = wr.write(&buf) => r.context("writing to the tunnel")?,
                    _ = tokio::time::sleep_until(stop_at) => break,
                };
                if n == 0 {
                    bail!("the tunnel accepted no more data");
                }
                written.fetch_add(n as u64, Ordering::Relaxed);
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
                if tokio::time::Instant::now() >= stop_at {
                    break;
                }
            }
            wr.shutdown()
                .await
                .context("closing the tunnel for writing")?;
            anyhow::Ok(())
        })
    };

    let mut buf = vec![0u8; 64 * 1024];
    let mut expect = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    loop {
        let n = rd.read(&mut buf).await.context("reading the echo")?;
        if n == 0 {
            break;
        }
        fill_pattern(key, pos, &mut expect[..n]);
        if buf[..n] != expect[..n] {
            counters.corrupt.store(true, Ordering::Relaxed);
            bail!("the echo differs from what was sent near byte {pos}");
        }
        pos += n as u64;
        echoed.store(pos, Ordering::Relaxed);
        counters.echoed.fetch_add(n as u64, Ordering::Relaxed);
        room.notify_one();
    }
    writer.await.context("writer task")??;
    let sent = written.load(Ordering::Relaxed);
    if pos != sent {
        bail!("the echo ended after {pos} of {sent} bytes");
    }
    Ok(())
}

/// What the display shows at one moment.
#[derive(Clone, Default)]
struct Sample {
    at: Duration,
    at_target: u64,
    echoed: u64,
    client: Snapshot,
    server: Snapshot,
    relay: RelayStats,
}

impl Sample {
    fn retransmissions(&self) -> u64 {
        self.client.totals.retransmissions + self.server.totals.retransmissions
    }
    fn data_segments(&self) -> u64 {
        self.client.totals.data_segments_sent + self.server.totals.data_segments_sent
    }
    /// Payload delivered, both ways.
    fn payload(&self) -> u64 {
        self.at_target + self.echoed
    }
    fn wire(&self) -> u64 {
        self.relay.up.bytes_in + self.relay.down.bytes_in
    }
}

fn opt_ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn fmt_pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{:.1}%", p * 100.0))
}

/// The live lines for the interval `old..new` (rates) and totals so far.
fn live_lines(old: &Sample, new: &Sample) -> [String; 3] {
    let dt = new.at.saturating_sub(old.at);
    let up = stats::rate(new.at_target - old.at_target, dt);
    let down = stats::rate(new.echoed - old.echoed, dt);
    let rtt = new
        .client
        .srtt_ms
        .map_or("-".into(), |ms| format!("{ms:.0} ms"));
    let lost = |l: &mkcp_netem::LinkStats, o: &mkcp_netem::LinkStats| {
        fmt_pct(opt_ratio(
            l.dropped() - o.dropped(),
            l.packets_in - o.packets_in,
        ))
    };
    let retrans = new.retransmissions() - old.retransmissions();
    let segs = new.data_segments() - old.data_segments();
    // Over the whole run: over a short window, delivery bursts (a hole filled releases
    // much buffered data at once) make the ratio jump around.
    let wire = opt_ratio(new.wire(), new.payload()).map_or("-".into(), |r| format!("{r:.2}"));
    [
        format!("goodput  up {up:>13}   down {down:>13}"),
        format!(
            "rtt {rtt:>7}   link drops up {:>6} down {:>6}   retransmitted {:>5} of data segments",
            lost(&new.relay.up, &old.relay.up),
            lost(&new.relay.down, &old.relay.down),
            fmt_pct(opt_ratio(retrans, segs)),
        ),
        format!(
            "wire/payload {wire}   moved up {} down {}   sessions {}",
            stats::bytes(new.at_target),
            stats::bytes(new.echoed),
            new.client.active,
        ),
    ]
}

/// Runs `mkcp demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    let loaded = config::load(&args.kcp)?;
    let kcp = loaded.config;
    let link = LinkConfig::default()
        .delay(args.delay)
        .loss(args.loss)
        .rate_bps(args.rate)
        .queue_bytes(netem::default_queue(args.rate))
        .seed(args.link_seed);
    let down_link = link.clone().seed(args.link_seed.wrapping_add(1));

    let counters = Arc::new(Counters::default());
    counters.in_flight_limit.store(
        in_flight_limit(0, args.rate, args.streams),
        Ordering::Relaxed,
    );
    // The echo target counts what arrives at it: the "up" goodput.
    let echo = EchoServer::start().context("starting the echo target")?;
    let echo_addr = echo.addr();
    let options = tunnel::Options {
        linger: Some(Duration::from_secs(5)),
        ..tunnel::Options::default()
    };
    let server = tunnel::start_server(
        LOCALHOST,
        echo_addr.to_string(),
        kcp.clone(),
        options.clone(),
    )
    .await?;
    let relay = Relay::start(LOCALHOST, server.local_addr(), link.clone(), down_link)
        .await
        .context("starting the netem relay")?;
    let client = tunnel::start_client(
        LOCALHOST,
        relay.local_addr().to_string(),
        kcp.clone(),
        options,
    )
    .await?;

    println!("mkcp demo: TCP over mKCP through an emulated link, all on 127.0.0.1");
    println!(
        "  {} --tcp--> mkcp client {} ==mKCP/udp==> netem relay {}",
        if args.streams == 1 {
            "1 TCP stream".to_string()
        } else {
            format!("{} TCP streams", args.streams)
        },
        client.local_addr(),
        relay.local_addr()
    );
    println!(
        "  ==mKCP/udp==> mkcp server {} --tcp--> echo target {}",
        server.local_addr(),
        echo_addr
    );
    println!("  link, each way: {}", netem::describe(&link));
    let [windows, envelope] = config::describe_parts(&kcp);
    println!("  mKCP: {windows},\n        {envelope}");
    println!(
        "  pushing data for {:.1} s; every byte is echoed back and checked",
        args.duration.as_secs_f64()
    );
    println!();

    let started = Instant::now();
    let stop_at = tokio::time::Instant::now() + args.duration;
    let mut streams = JoinSet::new();
    for i in 0..args.streams {
        let key = args.link_seed ^ (u64::from(i) + 1).wrapping_mul(0xA076_1D64_78BD_642F);
        streams.spawn(demo_stream(
            client.local_addr(),
            key,
            stop_at,
            counters.clone(),
        ));
    }

    let sample = |at: Duration| Sample {
        at,
        at_target: echo.received(),
        echoed: counters.echoed.load(Ordering::Relaxed),
        client: client.registry().snapshot(),
        server: server.registry().snapshot(),
        relay: relay.stats(),
    };

    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::with_draw_target(
            Some(args.duration.as_millis() as u64),
            ProgressDrawTarget::stderr_with_hz(8),
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} pushing [{bar:40.cyan/blue}] {prefix}\n  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> ")
            .tick_chars("⠁⠂⠄⡀⢀⠠⠐⠈ "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    // Live phase.
    let mut history: Vec<Sample> = vec![sample(Duration::ZERO)];
    let mut next_plain = Duration::from_secs(1);
    let mut tick = tokio::time::interval(REFRESH);
    let mut failure: Option<anyhow::Error> = None;
    let mut pushed_end: Option<Sample> = None;
    // Mean of the smoothed RTT sampled while pushing.
    let (mut rtt_sum, mut rtt_n) = (0.0f64, 0u32);
    let drain_deadline = stop_at + DRAIN_TIMEOUT;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            done = streams.join_next(), if !streams.is_empty() => {
                if let Some(r) = done {
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => { failure.get_or_insert(e); }
                        Err(e) => { failure.get_or_insert(anyhow::Error::new(e).context("demo stream")); }
                    }
                }
            }
        }
        let now = started.elapsed();
        let s = sample(now);
        if pushed_end.is_none() && now >= args.duration {
            pushed_end = Some(s.clone());
            bar.set_position(args.duration.as_millis() as u64);
            bar.set_prefix(format!(
                "{:.1}s done; draining the echo",
                args.duration.as_secs_f64()
            ));
        }
        let old = history
            .iter()
            .rev()
            .find(|h| now.saturating_sub(h.at) >= RATE_WINDOW)
            .unwrap_or(&history[0])
            .clone();
        let lines = live_lines(&old, &s);
        let window = s.at.saturating_sub(old.at).as_secs_f64();
        if window > 0.0 {
            let echo_rate = ((s.echoed - old.echoed) as f64 / window) as u64;
            counters.in_flight_limit.store(
                in_flight_limit(echo_rate, args.rate, args.streams),
                Ordering::Relaxed,
            );
        }
        if pushed_end.is_none() {
            if let Some(ms) = s.client.srtt_ms {
                rtt_sum += ms;
                rtt_n += 1;
            }
        }
        if pushed_end.is_none() {
            bar.set_position(now.as_millis() as u64);
            bar.set_prefix(format!(
                "{:>4.1}s / {:.1}s",
                now.as_secs_f64(),
                args.duration.as_secs_f64()
            ));
        }
        bar.set_message(lines.join("\n  "));
        if !tty && now >= next_plain && pushed_end.is_none() {
            println!("[{:>5.1}s] {}", now.as_secs_f64(), lines.join(" | "));
            next_plain += Duration::from_secs(1);
        }
        history.push(s);
        if history.len() > 64 {
            history.drain(..history.len() - 64);
        }
        if streams.is_empty() || failure.is_some() {
            break;
        }
        if tokio::time::Instant::now() >= drain_deadline {
            failure = Some(anyhow::anyhow!(
                "the echo did not come back within {DRAIN_TIMEOUT:?} after pushing stopped \
                 ({} written, {} echoed)",
                stats::bytes(counters.written.load(Ordering::Relaxed)),
                stats::bytes(counters.echoed.load(Ordering::Relaxed))
            ));
            break;
        }
    }
    bar.finish_and_clear();
    streams.abort_all();
    let end = sample(started.elapsed());
    let pushed = pushed_end.unwrap_or_else(|| end.clone());
    let drained_in = end.at.saturating_sub(args.duration);

    // Tear down: client first (its sessions close over the link), then relay and server.
    client.shutdown(Duration::from_secs(3)).await;
    relay.shutdown().await;
    server.shutdown(Duration::from_secs(3)).await;
    // Joins the echo threads; their connections are closed by now.
    drop(echo);

    let mean_rtt = (rtt_n > 0).then(|| rtt_sum / f64::from(rtt_n));
    println!(
        "{}",
        summary(&link, &pushed, &end, drained_in, mean_rtt, &counters)
    );
    if let Some(e) = failure {
        return Err(e.context("demo failed"));
    }
    if counters.echoed.load(Ordering::Relaxed) == 0 {
        bail!("demo failed: no data came back through the tunnel");
    }
    Ok(())
}

/// The final table.
fn summary(
    link: &LinkConfig,
    pushed: &Sample,
    end: &Sample,
    drained_in: Duration,
    mean_rtt_ms: Option<f64>,
    counters: &Counters,
) -> String {
    let secs = pushed.at;
    let mut t = String::new();
    let row = |t: &mut String, name: &str, up: String, down: String| {
        let _ = writeln!(t, "  {name:<26}{up:>18}{down:>18}");
    };
    let _ = writeln!(
        t,
        "mkcp demo summary: {:.1} s of pushing over {}",
        secs.as_secs_f64(),
        netem::describe(link)
    );
    let _ = writeln!(t, "  {:<26}{:>18}{:>18}", "", "up", "down");
    row(
        &mut t,
        "goodput (average)",
        stats::rate(pushed.at_target, secs),
        stats::rate(pushed.echoed, secs),
    );
    row(
        &mut t,
        "payload delivered",
        stats::bytes(end.at_target),
        stats::bytes(end.echoed),
    );
    let r = &end.relay;
    row(
        &mut t,
        "datagrams on the link",
        r.up.packets_in.to_string(),
        r.down.packets_in.to_string(),
    );
    row(
        &mut t,
        "dropped by the link",
        format!(
            "{} ({})",
            r.up.dropped(),
            netem::pct(r.up.dropped(), r.up.packets_in)
        ),
        format!(
            "{} ({})",
            r.down.dropped(),
            netem::pct(r.down.dropped(), r.down.packets_in)
        ),
    );
    row(
        &mut t,
        "  of which queue overflow",
        r.up.dropped_queue.to_string(),
        r.down.dropped_queue.to_string(),
    );
    let c = &end.client.totals;
    let s = &end.server.totals;
    row(
        &mut t,
        "data segments sent",
        c.data_segments_sent.to_string(),
        s.data_segments_sent.to_string(),
    );
    row(
        &mut t,
        "retransmissions",
        format!(
            "{} ({})",
            c.retransmissions,
            fmt_pct(c.retransmission_rate())
        ),
        format!(
            "{} ({})",
            s.retransmissions,
            fmt_pct(s.retransmission_rate())
        ),
    );
    row(
        &mut t,
        "wire bytes / payload byte",
        opt_ratio(r.up.bytes_in, end.at_target).map_or("-".into(), |x| format!("{x:.3}")),
        opt_ratio(r.down.bytes_in, end.echoed).map_or("-".into(), |x| format!("{x:.3}")),
    );
    let base_rtt = link.delay * 2;
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "rtt (mKCP srtt, mean)",
        mean_rtt_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
    );
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "rtt of the empty link",
        format!("{} ms", base_rtt.as_millis())
    );
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "sessions",
        format!("{} (one per stream)", end.client.total_sessions),
    );
    let verdict = if counters.corrupt.load(Ordering::Relaxed) {
        "CORRUPTED: the echo differs from what was sent".to_string()
    } else {
        let w = counters.written.load(Ordering::Relaxed);
        let e = counters.echoed.load(Ordering::Relaxed);
        if w == e {
            format!(
                "all {} echoed back intact (drained in {:.1} s)",
                stats::bytes(w),
                drained_in.as_secs_f64()
            )
        } else {
            format!(
                "{} of {} echoed back (checked, intact so far)",
                stats::bytes(e),
                stats::bytes(w)
            )
        }
    };
    let _ = write!(t, "  {:<26}{}", "integrity", verdict);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_limit_follows_goodput_within_bounds() {
        assert_eq!(in_flight_limit(0, 100_000_000, 1), 512 * 1024);
        assert_eq!(in_flight_limit(1_000_000, 100_000_000, 1), 2_000_000);
        assert_eq!(in_flight_limit(1_000_000, 100_000_000, 2), 1_000_000);
        assert_eq!(in_flight_limit(50_000_000, 100_000_000, 1), 8 * 1024 * 1024);
        assert_eq!(in_flight_limit(50_000_000, 1_000_000, 1), 512 * 1024);
    }

    #[test]
    fn pattern_is_position_addressed() {
        let mut a = vec![0u8; 100];
        fill_pattern(7, 0, &mut a);
        let mut b = vec![0u8; 37];
        fill_pattern(7, 63, &mut b);
        assert_eq!(&a[63..], &b[..]);
        let mut c = vec![0u8; 100];
        fill_pattern(8, 0, &mut c);
        assert_ne!(a, c);
    }
}
