//! Checking the settings of `mkcp server`, `client`, `run FILE` and `check`, and turning
//! them into tunnels ready to start ([`Prepared`]); starting them is in `serve`.

use std::time::Duration;

use anyhow::Result;
use tracing::warn;

use crate::cli::{self, CheckArgs, ClientArgs, RunArgs, ServerArgs};
use crate::config::{self, UsageError};
use crate::serve::run_prepared;
use crate::{runfile, tunnel};

/// Parses an address given on the command line (exit 2 when it is not one).
pub(crate) async fn cli_addr(flag: &str, addr: &str) -> Result<std::net::SocketAddr> {
    tunnel::resolve(flag, addr)
        .await
        .map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))
}

fn options(run: &RunArgs) -> tunnel::Options {
    tunnel::Options {
        linger: (run.linger > 0).then(|| Duration::from_secs(run.linger)),
        ..tunnel::Options::default()
    }
}

/// The process-wide limit (`--max-rate-total`): it must be the same for every tunnel.
pub(crate) fn total_limit(prepared: &[Prepared]) -> Result<Option<u64>> {
    let first = prepared.first().and_then(|p| p.loaded.max_rate_total);
    if let Some(other) = prepared.iter().find(|p| p.loaded.max_rate_total != first) {
        let show = |r: Option<u64>| r.map_or("none".to_string(), config::show_rate);
        return Err(UsageError(format!(
            "--max-rate-total differs between tunnels ({} and {} for tunnel {}): it limits \
             the whole process, so give it once, after the tunnels file",
            show(first),
            show(other.loaded.max_rate_total),
            other.name.as_deref().unwrap_or("?"),
        ))
        .into());
    }
    Ok(first)
}

/// Logs each key of the file that is not applied as a WARN line.
fn log_warnings(loaded: &config::Loaded) {
    for w in &loaded.warnings {
        warn!("{w}");
    }
}

/// Prints the effective settings of a valid configuration (`mkcp check`, `--check`).
fn print_check(loaded: &config::Loaded, addresses: &[(&str, std::net::SocketAddr)]) {
    println!("mkcp check: the settings are valid");
    for line in config::report(loaded) {
        println!("{line}");
    }
    for (flag, addr) in addresses {
        println!("{flag}: {addr}");
    }
}

pub(crate) fn run_check(args: CheckArgs) -> Result<()> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    print_check(&loaded, &[]);
    Ok(())
}

/// A tunnel checked and ready to start.
pub(crate) struct Prepared {
    /// The tunnel's name in a tunnels file (prefixes its `--stats` lines).
    pub(crate) name: Option<String>,
    pub(crate) role: &'static str,
    pub(crate) loaded: config::Loaded,
    pub(crate) listen: std::net::SocketAddr,
    /// `target` (server) or `server` (client), as given and as resolved now.
    pub(crate) peer: (&'static str, String, std::net::SocketAddr),
    pub(crate) metrics: Option<std::net::SocketAddr>,
    pub(crate) options: tunnel::Options,
    pub(crate) stats: u64,
}

async fn prepare_server(args: ServerArgs) -> Result<Prepared> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    let listen = cli_addr("--listen", &args.listen).await?;
    // The target is resolved for each session; check it is an address now.
    let target = cli_addr("--target", &args.target).await?;
    Ok(Prepared {
        name: None,
        role: "server",
        loaded,
        listen,
        peer: ("target", args.target, target),
        metrics: metrics_addr(&args.run).await?,
        options: tunnel::Options {
            connect_on_open: args.connect_on_open,
            shards: args.shards.map(usize::from),
            ..options(&args.run)
        },
        stats: args.run.stats,
    })
}

async fn prepare_client(args: ClientArgs) -> Result<Prepared> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    let listen = cli_addr("--listen", &args.listen).await?;
    let server = cli_addr("--server", &args.server).await?;
    Ok(Prepared {
        name: None,
        role: "client",
        loaded,
        listen,
        peer: ("server", args.server, server),
        metrics: metrics_addr(&args.run).await?,
        options: options(&args.run),
        stats: args.run.stats,
    })
}

pub(crate) fn print_prepared(p: &Prepared) {
    let mut addresses = vec![("listen", p.listen), (p.peer.0, p.peer.2)];
    addresses.extend(p.metrics.map(|m| ("metrics", m)));
    print_check(&p.loaded, &addresses);
}

pub(crate) async fn run_server(args: ServerArgs) -> Result<()> {
    let check = args.run.check;
    let prepared = prepare_server(args).await?;
    run_prepared(vec![prepared], check).await
}

pub(crate) async fn run_client(args: ClientArgs) -> Result<()> {
    let check = args.run.check;
    let prepared = prepare_client(args).await?;
    run_prepared(vec![prepared], check).await
}

/// `mkcp run FILE`: every tunnel is checked before any starts.
pub(crate) async fn run_file(args: cli::RunFileArgs) -> Result<()> {
    let tunnels = runfile::load(&args.file, &args.flags)?;
    let mut prepared = Vec::new();
    let mut check = args.check;
    for t in tunnels {
        let in_tunnel = |e: anyhow::Error| {
            let usage = e.downcast_ref::<UsageError>().is_some();
            let msg = format!("tunnel {}: {e:#}", t.name);
            if usage {
                anyhow::Error::new(UsageError(msg))
            } else {
                anyhow::anyhow!(msg)
            }
        };
        let mut p = match t.spec {
            runfile::Spec::Server(a) => {
                check |= a.run.check;
                prepare_server(a).await
            }
            runfile::Spec::Client(a) => {
                check |= a.run.check;
                prepare_client(a).await
            }
        }
        .map_err(in_tunnel)?;
        p.name = Some(t.name.clone());
        prepared.push(p);
    }
    total_limit(&prepared)?;
    if check {
        for p in &prepared {
            if let Some(name) = &p.name {
                println!("== tunnel {name} ({}) ==", p.role);
            }
            print_prepared(p);
        }
        return Ok(());
    }
    run_prepared(prepared, false).await
}

async fn metrics_addr(run: &RunArgs) -> Result<Option<std::net::SocketAddr>> {
    match &run.metrics {
        Some(a) => Ok(Some(cli_addr("--metrics", a).await?)),
        None => Ok(None),
    }
}
