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

mod display;
mod streams;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mkcp_harness::net::EchoServer;
use mkcp_netem::{LinkConfig, Relay};
use tokio::task::JoinSet;

use crate::cli::DemoArgs;
use crate::{config, netem, stats, tunnel};
use display::{live_lines, summary, Sample};
use streams::{demo_stream, in_flight_limit, Counters};

/// How long the echo may take to come back after the pushing stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
const LOCALHOST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const REFRESH: Duration = Duration::from_millis(200);
/// Window of the "now" rates shown live.
const RATE_WINDOW: Duration = Duration::from_secs(1);

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
