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
mod netem;
mod stats;
mod transport;
mod tunnel;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use cli::{CheckArgs, Cli, ClientArgs, Command, RunArgs, ServerArgs};
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .init();
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Server(args) => run_server(args).await,
        Command::Client(args) => run_client(args).await,
        Command::Check(args) => run_check(args),
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

fn log_settings(loaded: &config::Loaded) {
    if let Some(source) = &loaded.source {
        info!("mKCP settings from {source}");
    }
    if let Some(order) = loaded.finalmask_order {
        info!(
            "finalmask.udp read as {} (--finalmask-order to change)",
            order.describe()
        );
    }
    info!("mKCP settings: {}", config::describe(&loaded.config));
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

async fn run_server(args: ServerArgs) -> Result<()> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    let listen = cli_addr("--listen", &args.listen).await?;
    // The target is resolved for each session; check it is an address now.
    let target = cli_addr("--target", &args.target).await?;
    if args.run.check {
        print_check(&loaded, &[("listen", listen), ("target", target)]);
        return Ok(());
    }
    // Before "listening" is logged, so that a signal from then on stops gracefully.
    let signals = Signals::new()?;
    log_settings(&loaded);
    if let Some(w) = config::legacy_warning(&loaded.config, &listen) {
        warn!("{w}");
    }
    let tunnel = tunnel::start_server(
        listen,
        args.target.clone(),
        loaded.config,
        tunnel::Options {
            connect_on_open: args.connect_on_open,
            ..options(&args.run)
        },
    )
    .await?;
    info!(
        "mkcp server listening on udp {}, forwarding to tcp {}",
        tunnel.local_addr(),
        args.target
    );
    serve_until_signal(tunnel, signals, &args.run).await
}

async fn run_client(args: ClientArgs) -> Result<()> {
    let loaded = config::load(&args.kcp)?;
    log_warnings(&loaded);
    let listen = cli_addr("--listen", &args.listen).await?;
    let server = cli_addr("--server", &args.server).await?;
    if args.run.check {
        print_check(&loaded, &[("listen", listen), ("server", server)]);
        return Ok(());
    }
    let signals = Signals::new()?;
    log_settings(&loaded);
    if let Some(w) = config::legacy_warning(&loaded.config, &server) {
        warn!("{w}");
    }
    let tunnel = tunnel::start_client(
        listen,
        args.server.clone(),
        loaded.config,
        options(&args.run),
    )
    .await?;
    info!(
        "mkcp client listening on tcp {}, carrying connections over mKCP to udp {}",
        tunnel.local_addr(),
        args.server
    );
    serve_until_signal(tunnel, signals, &args.run).await
}

/// Runs until SIGINT or SIGTERM, printing `--stats` lines, then shuts down gracefully.
/// A second signal exits at once, with [`ForcedExit`].
async fn serve_until_signal(mut tunnel: Tunnel, mut signals: Signals, run: &RunArgs) -> Result<()> {
    let registry = tunnel.registry().clone();
    let every = Duration::from_secs(run.stats.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut before = registry.snapshot();
    let mut at = tokio::time::Instant::now();
    let name = loop {
        tokio::select! {
            name = signals.recv() => break name,
            e = tunnel.failed() => return Err(e),
            _ = tick.tick(), if run.stats > 0 => {
                let now = registry.snapshot();
                println!("{}", stats::stats_line(&before, &now, at.elapsed()));
                before = now;
                at = tokio::time::Instant::now();
            }
        }
    };
    info!(
        "{name} received: stopping (sessions get {SHUTDOWN_GRACE:?} to close; signal again to exit now)"
    );
    tokio::select! {
        _ = tunnel.shutdown(SHUTDOWN_GRACE) => info!("stopped"),
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
