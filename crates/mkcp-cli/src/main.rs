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
mod prepare;
mod runfile;
mod serve;
mod stats;
mod transport;
mod tunnel;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};
use config::UsageError;
use prepare::{cli_addr, run_check, run_client, run_file, run_server};
use serve::Signals;

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
