//! End-to-end benchmarks of mkcp side by side with V2Ray 4.34 (`mkcp bench`).
//!
//! For every link scenario, kcp variant and endpoint pair (mkcp↔mkcp, mkcp client →
//! V2Ray server, V2Ray client → mkcp server, V2Ray↔V2Ray), repeated `--runs` times:
//!
//! ```text
//!  bench ──TCP──▶ client endpoint ──mKCP/UDP──▶ netem relay ──UDP──▶ server endpoint ──TCP──▶ bench target
//!  (writer, echo)   (own process)                (this process)        (own process)          (sink, echo)
//! ```
//!
//! 1. 64-byte echo round trips on the idle link (p50, p99);
//! 2. a bulk transfer client → server for `--duration`: goodput at the sink, CPU seconds
//!    of each endpoint process per GB of payload (`/proc/<pid>/stat`), peak RSS
//!    (`VmHWM`), and wire bytes (UDP payloads into the relay, both ways) per payload byte.
//!
//! Results go to `--out` (default `bench-results/`): `results.md` (medians table, target
//! check, failures), `results.json` (every run) and one SVG chart per metric.
//!
//! Every step is bounded in time; endpoint processes are killed when their run ends,
//! on error, on Ctrl-C (the run is cancelled and unwound), and by the kernel if this
//! process dies (`PR_SET_PDEATHSIG`).
#![warn(missing_docs)]

pub mod args;
pub mod chart;
pub mod procs;
pub mod report;
pub mod runner;
pub mod stats;
pub mod target;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use args::{BenchArgs, KcpVariant, LinkScenario, PairKind};
use report::{RunRecord, Summary};
use runner::{Env, RunSpec};

/// Runs the benchmark matrix described by `args` and writes the report.
///
/// The work runs on a thread of its own (it is mostly blocking: processes, sockets,
/// sleeps); this future waits for it or for Ctrl-C, which cancels the current run, kills
/// its processes and still writes the report of the runs completed so far.
pub async fn run(args: BenchArgs) -> Result<()> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker_cancel = cancel.clone();
    std::thread::Builder::new()
        .name("mkcp-bench".into())
        .spawn(move || {
            let _ = tx.send(run_blocking(&args, &worker_cancel));
        })
        .context("starting the benchmark thread")?;
    let mut rx = rx;
    tokio::select! {
        r = &mut rx => r.map_err(|_| anyhow!("the benchmark thread panicked"))?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("mkcp bench: interrupted, stopping the current run");
            cancel.store(true, Ordering::Relaxed);
            match tokio::time::timeout(Duration::from_secs(30), rx).await {
                Ok(Ok(Ok(()))) | Ok(Ok(Err(_))) => bail!("interrupted"),
                _ => bail!("interrupted (the benchmark thread did not stop within 30 s)"),
            }
        }
    }
}

/// The whole benchmark, blocking; `cancel` stops it between and within runs.
pub fn run_blocking(args: &BenchArgs, cancel: &AtomicBool) -> Result<()> {
    let scenarios = args::dedup_keep_order(&args.scenarios);
    let variants = args::dedup_keep_order(&args.variants);
    let pairs = args::dedup_keep_order(&args.pairs);
    if scenarios.is_empty() || variants.is_empty() || pairs.is_empty() {
        bail!("nothing to run: --scenarios, --kcp and --pairs must each name at least one");
    }
    let mkcp_bin = if pairs.iter().any(|p| p.needs_mkcp()) {
        Some(procs::locate_mkcp(args.mkcp_bin.as_deref())?)
    } else {
        None
    };
    let v2ray = if pairs.iter().any(|p| p.needs_v2ray()) {
        let bin = match &args.v2ray_bin {
            Some(p) => mkcp_v2ray::V2rayBin::from_path(p),
            None => mkcp_v2ray::locate().map_err(|e| anyhow!("{e}"))?,
        };
        Some(bin)
    } else {
        None
    };
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let env = Env::new(mkcp_bin.clone(), v2ray.clone())?;

    let cells = scenarios.len() * variants.len() * pairs.len();
    let total = cells * args.runs as usize;
    let per_run = args.duration + args.rtt_time + Duration::from_secs(3);
    eprintln!(
        "mkcp bench: {total} runs ({} link(s) x {} kcp variant(s) x {} pair(s) x {} run(s)), about {} min",
        scenarios.len(),
        variants.len(),
        pairs.len(),
        args.runs,
        (per_run.as_secs() as usize * total).div_ceil(60)
    );
    let started = Instant::now();
    let mut records = Vec::with_capacity(total);
    'outer: for run in 0..args.runs {
        for &scenario in &scenarios {
            for &variant in &variants {
                for &pair in &pairs {
                    if cancel.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let spec = RunSpec {
                        scenario,
                        variant,
                        pair,
                        run,
                        duration: args.duration,
                        rtt_samples: args.rtt_samples,
                        rtt_time: args.rtt_time,
                        seed: args.seed,
                    };
                    let result = runner::run_one(&env, &spec, cancel).map_err(|e| format!("{e:#}"));
                    eprintln!(
                        "[{}/{total}] {scenario} {variant} {pair} run {}: {}",
                        records.len() + 1,
                        run + 1,
                        match &result {
                            Ok(m) => format!(
                                "{:.2} MB/s, CPU {:.1}+{:.1} s/GB, wire {:.3}, echo p50 {} ms, load {}",
                                m.goodput_mb_s,
                                m.cpu_client_s_per_gb,
                                m.cpu_server_s_per_gb,
                                m.wire_ratio,
                                m.rtt_p50_ms.map_or("-".into(), |v| format!("{v:.1}")),
                                m.load_average.map_or("-".into(), |v| format!("{v:.2}")),
                            ),
                            Err(e) => format!("FAILED: {e}"),
                        }
                    );
                    records.push(RunRecord {
                        scenario,
                        variant,
                        pair,
                        run,
                        result,
                    });
                }
            }
        }
    }
    let summaries = report::summarize(&records);
    let context = RunContext {
        args,
        mkcp_bin: mkcp_bin.as_deref(),
        v2ray: v2ray.as_ref(),
        elapsed: started.elapsed(),
        interrupted: cancel.load(Ordering::Relaxed),
    };
    write_outputs(&args.out, &records, &summaries, &context)?;
    println!("{}", report::markdown_table(&summaries));
    let targets = report::targets_section(&summaries);
    if !targets.is_empty() {
        println!("{targets}");
    }
    eprintln!("mkcp bench: results in {}", args.out.display());
    if context.interrupted {
        bail!("interrupted");
    }
    Ok(())
}

/// What the report says about how it was made.
struct RunContext<'a> {
    args: &'a BenchArgs,
    mkcp_bin: Option<&'a Path>,
    v2ray: Option<&'a mkcp_v2ray::V2rayBin>,
    elapsed: Duration,
    interrupted: bool,
}

fn write_outputs(
    out: &Path,
    records: &[RunRecord],
    summaries: &[Summary],
    ctx: &RunContext<'_>,
) -> Result<()> {
    let json = serde_json::json!({
        "duration_s": ctx.args.duration.as_secs_f64(),
        "runs": ctx.args.runs,
        "rtt_samples": ctx.args.rtt_samples,
        "seed": ctx.args.seed,
        "records": records,
        "summaries": summaries,
    });
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json).context("serialising results")?,
    )
    .context("writing results.json")?;

    let mut charts = Vec::new();
    if !summaries.is_empty() {
        for m in &chart::METRICS {
            let svg = chart::render(m, summaries)?;
            let name = format!("{}.svg", m.file);
            fs::write(out.join(&name), svg).with_context(|| format!("writing {name}"))?;
            charts.push(name);
        }
    }

    let mut md = String::new();
    md.push_str("# mkcp bench results\n\n");
    let _ = writeln!(
        md,
        "{} run(s) per cell, {:.0} s bulk transfer, {} echo samples (≤ {:.0} s) per run; \
         took {:.0} s{}.\n",
        ctx.args.runs,
        ctx.args.duration.as_secs_f64(),
        ctx.args.rtt_samples,
        ctx.args.rtt_time.as_secs_f64(),
        ctx.elapsed.as_secs_f64(),
        if ctx.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if let Some(p) = ctx.mkcp_bin {
        let _ = writeln!(md, "- mkcp: `{}`", p.display());
    }
    if let Some(v) = ctx.v2ray {
        let version = v.version().unwrap_or_else(|e| format!("unknown ({e})"));
        let _ = writeln!(md, "- V2Ray: `{}` ({version})", v.path().display());
    }
    let _ = writeln!(
        md,
        "- machine: {} CPU(s); medians; MB = 10^6 bytes, GB = 10^9 bytes; wire = UDP payload \
         bytes into the relay, both ways; load = 1-minute load average at the start of the runs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    md.push_str(&report::markdown_table(summaries));
    let targets = report::targets_section(summaries);
    if !targets.is_empty() {
        md.push_str("\n## Targets (mkcp↔mkcp)\n\n");
        md.push_str(&targets);
    }
    let failures = report::failures(records);
    if !failures.is_empty() {
        md.push_str("\n## Failed runs\n\n");
        md.push_str(&failures);
    }
    if !charts.is_empty() {
        md.push_str("\n## Charts\n\n");
        for c in &charts {
            let _ = writeln!(md, "![{c}]({c})");
        }
    }
    fs::write(out.join("results.md"), md).context("writing results.md")?;
    Ok(())
}
