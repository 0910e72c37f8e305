//! `mkcp netem`: a UDP relay emulating a bad link each way ([`mkcp_netem::Relay`]), until
//! SIGINT/SIGTERM; prints its counters on exit.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use mkcp_netem::{LinkConfig, LinkStats, Relay, RelayStats};
use tracing::info;

use crate::cli::{DownLinkArgs, LinkArgs, NetemArgs};
use crate::stats;

/// How long a reordered packet is held back when `--reorder-gap` is not given.
pub const DEFAULT_REORDER_GAP: Duration = Duration::from_millis(10);

/// The bottleneck queue when `--queue` is not given: 100 ms at the rate, at least 64 kB.
pub fn default_queue(rate_bps: u64) -> usize {
    usize::try_from(rate_bps / 8 / 10)
        .unwrap_or(usize::MAX)
        .max(64_000)
}

/// The up direction's link from the flags.
pub fn up_link(a: &LinkArgs) -> LinkConfig {
    let mut link = LinkConfig::default()
        .delay(a.delay.unwrap_or_default())
        .jitter(a.jitter.unwrap_or_default())
        .loss(a.loss.unwrap_or(0.0))
        .duplicate(a.dup.unwrap_or(0.0))
        .reorder(
            a.reorder.unwrap_or(0.0),
            a.reorder_gap.unwrap_or(DEFAULT_REORDER_GAP),
        )
        .seed(a.seed.unwrap_or(1));
    if let Some(rate) = a.rate {
        link = link
            .rate_bps(rate)
            .queue_bytes(a.queue.unwrap_or_else(|| default_queue(rate)));
    }
    link
}

/// The down direction: the up link with the `--down-*` overrides and the next seed.
pub fn down_link(up: &LinkConfig, a: &LinkArgs, d: &DownLinkArgs) -> LinkConfig {
    let mut link = up.clone().seed(up.seed.wrapping_add(1));
    if let Some(v) = d.down_delay {
        link = link.delay(v);
    }
    if let Some(v) = d.down_jitter {
        link = link.jitter(v);
    }
    if let Some(v) = d.down_loss {
        link = link.loss(v);
    }
    if let Some(v) = d.down_dup {
        link = link.duplicate(v);
    }
    if let Some(v) = d.down_reorder {
        link = link.reorder(v, a.reorder_gap.unwrap_or(DEFAULT_REORDER_GAP));
    }
    if let Some(rate) = d.down_rate {
        let queue = d
            .down_queue
            .or(a.queue)
            .unwrap_or_else(|| default_queue(rate));
        link = link.rate_bps(rate).queue_bytes(queue);
    } else if let Some(q) = d.down_queue {
        link = link.queue_bytes(q);
    }
    link
}

/// One line describing a link, e.g. `delay 30ms, loss 2%, rate 100.0 Mbit/s (queue 1.2 MB)`.
pub fn describe(link: &LinkConfig) -> String {
    let mut parts = Vec::new();
    parts.push(format!("delay {:?}", link.delay));
    if !link.jitter.is_zero() {
        parts.push(format!("jitter {:?}", link.jitter));
    }
    parts.push(format!("loss {}%", percent(link.loss)));
    if link.duplicate > 0.0 {
        parts.push(format!("dup {}%", percent(link.duplicate)));
    }
    if link.reorder > 0.0 {
        parts.push(format!(
            "reorder {}% (+{:?})",
            percent(link.reorder),
            link.reorder_extra
        ));
    }
    match link.rate_bps {
        Some(bps) => parts.push(format!(
            "rate {} (queue {})",
            stats::bits_per_sec(bps as f64),
            stats::bytes(link.queue_bytes as u64)
        )),
        None => parts.push("rate unlimited".to_string()),
    }
    parts.join(", ")
}

fn percent(p: f64) -> String {
    let s = format!("{:.3}", p * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The counters of both directions as a small table.
pub fn counters_table(s: &RelayStats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22}{:>22}{:>22}",
        "", "up (client->target)", "down (target->client)"
    );
    let row = |out: &mut String, name: &str, f: &dyn Fn(&LinkStats) -> String| {
        let _ = writeln!(out, "{:<22}{:>22}{:>22}", name, f(&s.up), f(&s.down));
    };
    row(&mut out, "packets in", &|l| l.packets_in.to_string());
    row(&mut out, "bytes in", &|l| stats::bytes(l.bytes_in));
    row(&mut out, "lost (random)", &|l| {
        format!("{} ({})", l.dropped_loss, pct(l.dropped_loss, l.packets_in))
    });
    row(&mut out, "dropped (queue full)", &|l| {
        format!(
            "{} ({})",
            l.dropped_queue,
            pct(l.dropped_queue, l.packets_in)
        )
    });
    row(&mut out, "duplicated", &|l| l.duplicated.to_string());
    row(&mut out, "packets out", &|l| l.packets_out.to_string());
    row(&mut out, "bytes out", &|l| stats::bytes(l.bytes_out));
    let _ = write!(
        out,
        "sessions {} total, {} open; rejected {}, orphaned {}, send errors {}, receive errors {}",
        s.sessions_total, s.sessions, s.sessions_rejected, s.orphaned, s.send_errors, s.recv_errors
    );
    out
}

/// `part` as a percentage of `whole`.
pub fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.2}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Runs `mkcp netem`.
pub async fn run(args: NetemArgs) -> Result<()> {
    let listen = crate::cli_addr("--listen", &args.listen).await?;
    let to = crate::cli_addr("--to", &args.to).await?;
    let up = up_link(&args.link);
    let down = down_link(&up, &args.link, &args.down);
    let relay = Relay::start(listen, to, up.clone(), down.clone())
        .await
        .with_context(|| format!("cannot start the relay on udp {listen}"))?;
    info!(
        "netem relay listening on udp {}, forwarding to udp {to}",
        relay.local_addr()
    );
    info!("up   (client->target): {}", describe(&up));
    info!("down (target->client): {}", describe(&down));
    let started = Instant::now();
    let mut signals = crate::Signals::new()?;
    let every = Duration::from_secs(args.stats.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let signal = loop {
        tokio::select! {
            name = signals.recv() => break name,
            _ = tick.tick(), if args.stats > 0 => {
                let s = relay.stats();
                println!(
                    "up: {} in, {} lost, {} queue-dropped, {} out | down: {} in, {} lost, {} queue-dropped, {} out",
                    s.up.packets_in, s.up.dropped_loss, s.up.dropped_queue, s.up.packets_out,
                    s.down.packets_in, s.down.dropped_loss, s.down.dropped_queue, s.down.packets_out,
                );
            }
        }
    };
    info!("{signal} received: stopping");
    let stats = relay.stats();
    relay.shutdown().await;
    println!(
        "netem counters after {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        counters_table(&stats)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_copies_up_with_overrides() {
        let a = LinkArgs {
            delay: Some(Duration::from_millis(30)),
            loss: Some(0.02),
            rate: Some(100_000_000),
            seed: Some(7),
            ..LinkArgs::default()
        };
        let up = up_link(&a);
        assert_eq!(up.queue_bytes, 1_250_000);
        let d = DownLinkArgs {
            down_loss: Some(0.1),
            ..DownLinkArgs::default()
        };
        let down = down_link(&up, &a, &d);
        assert_eq!(down.delay, Duration::from_millis(30));
        assert_eq!(down.loss, 0.1);
        assert_eq!(down.rate_bps, Some(100_000_000));
        assert_eq!(down.seed, 8);
        assert_eq!(
            describe(&up),
            "delay 30ms, loss 2%, rate 100.0 Mbit/s (queue 1.2 MB)"
        );
    }
}
