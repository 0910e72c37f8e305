//! The `mkcp` command: a TCP-over-mKCP tunnel that speaks V2Ray's mKCP (`server`,
//! `client`), a user-space link emulator (`netem`) and a self-contained live demo
//! (`demo`).
//!
//! Exit codes: 0 success (also after a SIGINT/SIGTERM shutdown, and `mkcp check` or
//! `--check` of valid settings), 1 a runtime error, 2 a bad command line or
//! configuration, 130 a forced exit on a second signal. Errors are one line on stderr:
//! `mkcp: error: ...`, the error chain joined by ": ".

mod cli;
mod config;
mod demo;
mod memory;
mod metrics;
mod netem;
mod runfile;
mod stats;
mod transport;
mod tunnel;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use cli::{CheckArgs, Cli, ClientArgs, Command, LogFormat, RunArgs, ServerArgs};
use config::UsageError;
use tunnel::Tunnel;

/// How long sessions get to close after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(&cli.command))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("starting the async runtime")),
    };
    let result = runtime.block_on(run(cli.command));
    // Do not wait for stray blocking tasks (e.g. a DNS lookup) at exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ForcedExit>().is_some() => ExitCode::from(130),
        Err(e) => fail(&e),
    }
}

/// Worker threads of the runtime: one per available core (tokio's default), and at
/// least one per shard of `mkcp server --shards N`, so that every shard's socket task
/// can run at the same time as the others.
fn worker_threads(command: &Command) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match command {
        Command::Server(args) => cores.max(args.shards.map_or(0, usize::from)),
        _ => cores,
    }
}

/// A second SIGINT/SIGTERM cut the graceful stop short: exit 130, like a shell does for
/// an interrupted command (already logged, so nothing more is printed).
#[derive(Debug)]
struct ForcedExit;

impl std::fmt::Display for ForcedExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("forced exit on a second signal")
    }
}

impl std::error::Error for ForcedExit {}

/// Prints the error as one line; usage errors exit 2, the others 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("mkcp: error: {}", one_line(&format!("{e:#}")));
    if e.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Help and version go to stdout with exit 0; every parse error is one line, exit 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!(
                "mkcp: error: {} (see {} --help)",
                one_line(&clap_message(&e)),
                help_command()
            );
            ExitCode::from(2)
        }
    }
}

/// The one-line message of a parse error, from its kind and context.
fn clap_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ErrorKind};
    let ctx = |kind: ContextKind| e.get(kind).map(ToString::to_string);
    let arg = ctx(ContextKind::InvalidArg).unwrap_or_default();
    // `--uplink <MIB_S>` -> `--uplink`.
    let flag = arg.split_whitespace().next().unwrap_or("").to_string();
    let suggestion = |kind: ContextKind| {
        ctx(kind)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default()
    };
    match e.kind() {
        ErrorKind::ValueValidation => match std::error::Error::source(e) {
            Some(source) => format!("invalid {flag}: {source}"),
            None => format!(
                "invalid value {:?} for {flag}",
                ctx(ContextKind::InvalidValue).unwrap_or_default()
            ),
        },
        ErrorKind::UnknownArgument => format!(
            "unexpected argument {arg:?}{}",
            suggestion(ContextKind::SuggestedArg)
        ),
        ErrorKind::InvalidSubcommand => format!(
            "unknown command {:?}{}",
            ctx(ContextKind::InvalidSubcommand).unwrap_or_default(),
            suggestion(ContextKind::SuggestedSubcommand)
        ),
        ErrorKind::MissingRequiredArgument => format!("missing required {arg}"),
        ErrorKind::ArgumentConflict => format!(
            "{} cannot be used with {}",
            arg.trim_end_matches("..."),
            ctx(ContextKind::PriorArg)
                .unwrap_or_default()
                .trim_end_matches("...")
        ),
        ErrorKind::InvalidValue => format!(
            "invalid value {:?} for {flag}{}",
            ctx(ContextKind::InvalidValue).unwrap_or_default(),
            ctx(ContextKind::ValidValue)
                .map(|v| format!(" (possible: {v})"))
                .unwrap_or_default()
        ),
        // Rarer kinds: clap's own first line.
        _ => e
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

/// `mkcp SUBCOMMAND` when the command line names one, else `mkcp`.
fn help_command() -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let sub = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    match sub {
        Some(s) if command.find_subcommand(&s).is_some() => format!("mkcp {s}"),
        _ => "mkcp".to_string(),
    }
}

fn init_logging(cli: &Cli) {
    // The demo draws its own display; its parts only log problems unless asked.
    let quiet_default = matches!(cli.command, Command::Demo(_));
    let level = if cli.quiet {
        "warn"
    } else {
        match cli.verbose {
            0 if quiet_default => "warn",
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => {
            EnvFilter::try_new(&s).unwrap_or_else(|_| EnvFilter::new(level))
        }
        _ => EnvFilter::new(level),
    };
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(color).init(),
        // One object per line: timestamp (RFC 3339 UTC), level, fields (message
        // included) and the spans' fields.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .init(),
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Server(args) => run_server(args).await,
        Command::Client(args) => run_client(args).await,
        Command::Check(args) => run_check(args),
        Command::Run(args) => run_file(args).await,
        Command::Netem(args) => netem::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        #[cfg(feature = "bench")]
        Command::Bench(args) => mkcp_bench::run(args).await,
    }
}

/// Parses an address given on the command line (exit 2 when it is not one).
async fn cli_addr(flag: &str, addr: &str) -> Result<std::net::SocketAddr> {
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

/// The process-wide limit (`--max-rate-total`): it must be the same for every tunnel.
fn total_limit(prepared: &[Prepared]) -> Result<Option<u64>> {
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

fn run_check(args: CheckArgs) -> Result<()> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    print_check(&loaded, &[]);
    Ok(())
}

/// A tunnel checked and ready to start.
struct Prepared {
    /// The tunnel's name in a tunnels file (prefixes its `--stats` lines).
    name: Option<String>,
    role: &'static str,
    loaded: config::Loaded,
    listen: std::net::SocketAddr,
    /// `target` (server) or `server` (client), as given and as resolved now.
    peer: (&'static str, String, std::net::SocketAddr),
    metrics: Option<std::net::SocketAddr>,
    options: tunnel::Options,
    stats: u64,
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

fn print_prepared(p: &Prepared) {
    let mut addresses = vec![("listen", p.listen), (p.peer.0, p.peer.2)];
    addresses.extend(p.metrics.map(|m| ("metrics", m)));
    print_check(&p.loaded, &addresses);
}

async fn run_server(args: ServerArgs) -> Result<()> {
    let check = args.run.check;
    let prepared = prepare_server(args).await?;
    run_prepared(vec![prepared], check).await
}

async fn run_client(args: ClientArgs) -> Result<()> {
    let check = args.run.check;
    let prepared = prepare_client(args).await?;
    run_prepared(vec![prepared], check).await
}

/// `mkcp run FILE`: every tunnel is checked before any starts.
async fn run_file(args: cli::RunFileArgs) -> Result<()> {
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

async fn run_prepared(mut prepared: Vec<Prepared>, check: bool) -> Result<()> {
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

async fn metrics_addr(run: &RunArgs) -> Result<Option<std::net::SocketAddr>> {
    match &run.metrics {
        Some(a) => Ok(Some(cli_addr("--metrics", a).await?)),
        None => Ok(None),
    }
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
