//! Starting prepared tunnels and serving them until SIGINT/SIGTERM: `--metrics`,
//! `--stats` lines, the graceful stop.

use std::time::Duration;

use anyhow::Result;
use tracing::{info, warn};

use crate::prepare::{print_prepared, total_limit, Prepared};
use crate::tunnel::{self, Tunnel};
use crate::{config, metrics, stats, transport, ForcedExit};

/// How long sessions get to close after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The startup lines about the settings; `prefix` names the tunnel of a tunnels file.
fn log_settings(loaded: &config::Loaded, prefix: &str) {
    if let Some(source) = &loaded.source {
        info!("{prefix}mKCP settings from {source}");
    }
    if let Some(source) = &loaded.seed_source {
        info!("{prefix}seed from {source}");
    }
    if let Some(order) = loaded.finalmask_order {
        info!(
            "{prefix}finalmask.udp read as {} (--finalmask-order to change)",
            order.describe()
        );
    }
    info!(
        "{prefix}mKCP settings: {}",
        config::describe(&loaded.config)
    );
    if let Some(rate) = loaded.config.tuning.max_send_rate {
        info!(
            "{prefix}rate limit per session: {}",
            config::show_rate(rate)
        );
    }
    if let Some(rate) = loaded.max_rate_total {
        info!(
            "{prefix}rate limit for all sessions of the process: {}",
            config::show_rate(rate)
        );
    }
}

pub(crate) async fn run_prepared(mut prepared: Vec<Prepared>, check: bool) -> Result<()> {
    let total = total_limit(&prepared)?;
    if check {
        for p in &prepared {
            print_prepared(p);
        }
        return Ok(());
    }
    // One bucket for every mKCP socket of the process (each dialled session has its own).
    if let Some(rate) = total {
        let limiter = transport::RateLimiter::new(rate);
        for p in &mut prepared {
            p.options.limiter = Some(limiter.clone());
        }
    }
    // Before "listening" is logged, so that a signal from then on stops gracefully.
    let signals = Signals::new()?;
    let mut running = Vec::new();
    for p in prepared {
        let name = p.name.clone();
        let started = start_prepared(p).await.map_err(|e| match name {
            Some(n) => e.context(format!("tunnel {n}")),
            None => e,
        })?;
        running.push(started);
    }
    serve_until_signal(running, signals).await
}

/// A started tunnel with its metrics endpoint.
struct Running {
    name: Option<String>,
    tunnel: Tunnel,
    stats: u64,
    _metrics: Option<metrics::MetricsServer>,
}

async fn start_prepared(p: Prepared) -> Result<Running> {
    let prefix = p
        .name
        .as_ref()
        .map(|n| format!("tunnel {n}: "))
        .unwrap_or_default();
    log_settings(&p.loaded, &prefix);
    // Where mKCP traffic goes: the server's UDP address, or the server a client dials.
    let mkcp_at = if p.role == "server" {
        p.listen
    } else {
        p.peer.2
    };
    if let Some(w) = config::legacy_warning(&p.loaded.config, &mkcp_at) {
        warn!("{prefix}{w}");
    }
    let (_, peer, _) = p.peer;
    let tunnel = if p.role == "server" {
        let t = tunnel::start_server(p.listen, peer.clone(), p.loaded.config, p.options).await?;
        info!(
            "{prefix}mkcp server listening on udp {}, forwarding to tcp {peer}",
            t.local_addr()
        );
        t
    } else {
        let t = tunnel::start_client(p.listen, peer.clone(), p.loaded.config, p.options).await?;
        info!(
            "{prefix}mkcp client listening on tcp {}, carrying connections over mKCP to udp {peer}",
            t.local_addr()
        );
        t
    };
    let metrics = start_metrics(p.metrics, &tunnel, p.role, &prefix).await?;
    Ok(Running {
        name: p.name,
        tunnel,
        stats: p.stats,
        _metrics: metrics,
    })
}

/// Starts `--metrics` if asked; it is served until the returned value drops.
async fn start_metrics(
    addr: Option<std::net::SocketAddr>,
    tunnel: &Tunnel,
    role: &'static str,
    prefix: &str,
) -> Result<Option<metrics::MetricsServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let server = metrics::MetricsServer::start(addr, tunnel.registry().clone(), role).await?;
    info!(
        "{prefix}metrics on http://{}/metrics (Prometheus) and /metrics.json",
        server.local_addr()
    );
    Ok(Some(server))
}

/// Prints a tunnel's `--stats` lines every `secs` seconds (see [`stats::StatsPrinter`]).
async fn print_stats(registry: std::sync::Arc<stats::Registry>, secs: u64, prefix: String) {
    let every = Duration::from_secs(secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut printer = stats::StatsPrinter::new(registry.snapshot());
    let mut at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let line = printer.line(
            registry.snapshot(),
            at.elapsed(),
            std::time::SystemTime::now(),
        );
        if let Some(line) = line {
            println!("{prefix}{line}");
        }
        at = tokio::time::Instant::now();
    }
}

/// Runs until SIGINT or SIGTERM, printing `--stats` lines, then shuts every tunnel down
/// gracefully. A tunnel that fails stops the others and is the error. A second signal
/// exits at once, with [`ForcedExit`].
async fn serve_until_signal(running: Vec<Running>, mut signals: Signals) -> Result<()> {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tunnels = tokio::task::JoinSet::new();
    let mut printers = tokio::task::JoinSet::new();
    for r in running {
        let Running {
            name,
            mut tunnel,
            stats,
            _metrics,
        } = r;
        if stats > 0 {
            let prefix = name.map(|n| format!("[{n}] ")).unwrap_or_default();
            printers.spawn(print_stats(tunnel.registry().clone(), stats, prefix));
        }
        let mut stop_rx = stop_rx.clone();
        tunnels.spawn(async move {
            let _metrics = _metrics;
            tokio::select! {
                e = tunnel.failed() => Err(e),
                _ = async { let _ = stop_rx.wait_for(|s| *s).await; } => {
                    tunnel.shutdown(SHUTDOWN_GRACE).await;
                    Ok(())
                }
            }
        });
    }
    let outcome = loop {
        tokio::select! {
            name = signals.recv() => break Ok(name),
            Some(done) = tunnels.join_next() => match done {
                Ok(Err(e)) => break Err(e),
                Ok(Ok(())) => {}
                Err(e) => break Err(anyhow::Error::new(e).context("tunnel task")),
            },
        }
    };
    printers.abort_all();
    let _ = stop.send(true);
    let name = match outcome {
        Ok(name) => name,
        Err(e) => {
            // Let the others close their sessions before reporting it.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while tunnels.join_next().await.is_some() {}
            })
            .await;
            return Err(e);
        }
    };
    info!(
        "{name} received: stopping (sessions get {SHUTDOWN_GRACE:?} to close; signal again to exit now)"
    );
    tokio::select! {
        _ = async { while tunnels.join_next().await.is_some() {} } => info!("stopped"),
        name = signals.recv() => {
            warn!("{name} received again: exiting now");
            return Err(ForcedExit.into());
        }
    }
    Ok(())
}

/// SIGINT and SIGTERM, listened to from creation on (so none is missed in between).
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())
                .map_err(|e| anyhow::Error::new(e).context("installing the SIGINT handler"))?,
            term: signal(SignalKind::terminate())
                .map_err(|e| anyhow::Error::new(e).context("installing the SIGTERM handler"))?,
        })
    }

    /// The next signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
