//! End-to-end benchmarks of mkcp side by side with V2Ray 4.34 (`mkcp bench`).
//!
//! For every link scenario, kcp variant and endpoint pair (mkcp↔mkcp, mkcp client →
//! V2Ray server, V2Ray client → mkcp server, V2Ray↔V2Ray), repeated `--runs` times:
//!
//! ```text
//!  bench ──TCP──▶ client endpoint ──mKCP/UDP──▶ netem relay ──UDP──▶ server endpoint ──TCP──▶ bench target
//!  (writer,         (own process)                (this process)        (own process)          (sink, source,
//!   reader, echo)                                                                              echo)
//! ```
//!
//! 1. 64-byte echo round trips on the idle link (p50, p99);
//! 2. a bulk transfer for `--duration` in one of `--directions`: up (client → server,
//!    counted at the sink behind the server) or down (server → client: a seeded stream
//!    from the target, read and checked at the client endpoint); goodput at the receiving
//!    application, CPU seconds of each endpoint process per GB of payload
//!    (`/proc/<pid>/stat`), peak RSS (`VmHWM`), and wire bytes (UDP payloads into the
//!    relay, both ways) per payload byte. Each direction is a run of its own, on fresh
//!    endpoints. With `--bytes` each transfer moves that much instead (the issues'
//!    measure, e.g. 64 MiB): goodput is the amount over the time until the receiving
//!    application has all of it, and the wire bytes are those of the whole transfer (a
//!    timed run also counts, as wire, what is in flight or buffered when it stops:
//!    several percent on a long path).
//!
//! 3. `--workloads echo-load`: one connection uploads for `--duration` while a second
//!    connection of the same client endpoint (its own mKCP session) does 64-byte echo
//!    round trips after a short warm-up (p50, p90, p99, max next to the path RTT);
//! 4. `--workloads streams`: `--streams` concurrent uploads, each its own tunnelled
//!    connection, through the same link (aggregate and per-stream goodput, Jain's
//!    fairness index, queue drops of the bottleneck).
//!
//! Every goodput is printed next to the most the link can carry
//! ([`LinkScenario::limit_mb_s`]). The `direct` scenario has no relay; its runs print
//! the raw-UDP and plain-TCP ceilings measured in the same run ([`ceiling`]).
//!
//! Results go to `--out` (default `bench-results/`): `results.md` (medians table, target
//! check, failures), `results.json` (every run) and one SVG chart per metric.
//!
//! Every step is bounded in time; endpoint processes are killed when their run ends,
//! on error, on Ctrl-C (the run is cancelled and unwound), and by the kernel if this
//! process dies (`PR_SET_PDEATHSIG`).
#![warn(missing_docs)]

pub mod args;
pub mod ceiling;
pub mod chart;
pub mod limits;
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
use serde::{Deserialize, Serialize};

pub use args::{BenchArgs, Direction, KcpVariant, LinkScenario, PairKind, Workload};
use ceiling::Ceilings;
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
    if let Some(path) = &args.report_from {
        return rerender(path, &args.out);
    }
    let scenarios = args::dedup_keep_order(&args.scenarios);
    let variants = args::dedup_keep_order(&args.variants);
    let pairs = args::dedup_keep_order(&args.pairs);
    let directions = args::dedup_keep_order(&args.directions);
    if scenarios.is_empty() || variants.is_empty() || pairs.is_empty() || directions.is_empty() {
        bail!(
            "nothing to run: --scenarios, --kcp, --pairs and --directions must each name at \
             least one"
        );
    }
    if args.bytes.is_some() && args.workloads.iter().any(|w| *w != Workload::Bulk) {
        bail!("--bytes sizes bulk transfers only: leave out --workloads or give --workloads bulk");
    }
    // (workload, direction) of every run of a cell of a scenario.
    let jobs = |scenario: LinkScenario| -> Vec<(Workload, Direction)> {
        let workloads = if args.bytes.is_some() {
            vec![Workload::Bulk]
        } else {
            Workload::for_scenario(scenario, &args.workloads)
        };
        workloads
            .into_iter()
            .flat_map(|w| w.directions(&directions).into_iter().map(move |d| (w, d)))
            .collect()
    };
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

    let cells: usize = scenarios
        .iter()
        .map(|&sc| variants.len() * pairs.len() * jobs(sc).len())
        .sum();
    let total = cells * args.runs as usize;
    let per_run = args.duration + args.rtt_time + Duration::from_secs(3);
    let with_ceilings = scenarios.contains(&LinkScenario::Direct);
    let ceiling_time = if with_ceilings {
        2 * (args.duration.as_secs() as usize + 1) * args.runs as usize
    } else {
        0
    };
    eprintln!(
        "mkcp bench: {total} runs ({} link(s) x {} kcp variant(s) x {} pair(s) x workloads and directions x {} run(s)), about {} min",
        scenarios.len(),
        variants.len(),
        pairs.len(),
        args.runs,
        (per_run.as_secs() as usize * total + ceiling_time).div_ceil(60)
    );
    let started = Instant::now();
    let mut records = Vec::with_capacity(total);
    let mut ceilings: Vec<Ceilings> = Vec::new();
    let mut ceiling_failures: Vec<String> = Vec::new();
    'outer: for run in 0..args.runs {
        for &scenario in &scenarios {
            if scenario == LinkScenario::Direct && !cancel.load(Ordering::Relaxed) {
                match ceiling::measure(&env.target, run, args.duration, cancel) {
                    Ok(c) => {
                        eprintln!(
                            "[ceilings] run {}: raw UDP {:.1} MB/s at {:.2} CPU s/GB ({:.1} % lost), plain TCP {:.1} MB/s",
                            run + 1,
                            c.raw_udp_mb_s,
                            c.raw_udp_cpu_s_per_gb,
                            c.raw_udp_lost * 100.0,
                            c.tcp_mb_s
                        );
                        ceilings.push(c);
                    }
                    Err(e) => {
                        eprintln!("[ceilings] run {}: FAILED: {e:#}", run + 1);
                        ceiling_failures.push(format!("- ceilings run {}: {e:#}", run + 1));
                    }
                }
            }
            for &variant in &variants {
                for &pair in &pairs {
                    for (workload, direction) in jobs(scenario) {
                        if cancel.load(Ordering::Relaxed) {
                            break 'outer;
                        }
                        let spec = RunSpec {
                            scenario,
                            variant,
                            pair,
                            workload,
                            direction,
                            streams: args.streams,
                            run,
                            duration: args.duration,
                            bytes: args.bytes,
                            rtt_samples: args.rtt_samples,
                            rtt_time: args.rtt_time,
                            seed: args.seed,
                        };
                        let result =
                            runner::run_one(&env, &spec, cancel).map_err(|e| format!("{e:#}"));
                        eprintln!(
                            "[{}/{total}] {scenario} {variant} {pair} {workload} {direction} run {}: {}",
                            records.len() + 1,
                            run + 1,
                            progress(&result)
                        );
                        records.push(RunRecord {
                            scenario,
                            variant,
                            pair,
                            workload,
                            direction,
                            run,
                            result,
                        });
                    }
                }
            }
        }
    }
    let summaries = report::summarize(&records);
    let meta = Meta {
        runs: args.runs,
        duration_s: args.duration.as_secs_f64(),
        bytes: args.bytes,
        rtt_samples: args.rtt_samples,
        rtt_time_s: args.rtt_time.as_secs_f64(),
        seed: args.seed,
        mkcp_bin: mkcp_bin.as_ref().map(|p| p.display().to_string()),
        v2ray: v2ray.as_ref().map(|v| {
            let version = v.version().unwrap_or_else(|e| format!("unknown ({e})"));
            format!("{} ({version})", v.path().display())
        }),
        elapsed_s: started.elapsed().as_secs_f64(),
        interrupted: cancel.load(Ordering::Relaxed),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        streams: args.streams,
        ceilings,
        ceiling_failures,
    };
    write_outputs(&args.out, &records, &summaries, &meta)?;
    println!("{}", report::all_tables(&summaries, &meta.ceilings));
    let targets = report::targets_section(&summaries);
    if !targets.is_empty() {
        println!("{targets}");
    }
    eprintln!("mkcp bench: results in {}", args.out.display());
    if meta.interrupted {
        bail!("interrupted");
    }
    Ok(())
}

/// One line of progress for a finished run.
fn progress(result: &std::result::Result<report::Measurement, String>) -> String {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    match result {
        Ok(m) => {
            let mut s = format!(
                "{:.2} MB/s, CPU {:.1}+{:.1} s/GB, wire {}, load {}",
                m.goodput_mb_s,
                m.cpu_client_s_per_gb,
                m.cpu_server_s_per_gb,
                m.wire_ratio.map_or("-".into(), |v| format!("{v:.3}")),
                m.load_average.map_or("-".into(), |v| format!("{v:.2}")),
            );
            if m.rtt_samples > 0 {
                let _ = write!(s, ", echo p50 {} ms", ms(m.rtt_p50_ms));
            }
            if let Some(e) = &m.load_echo {
                let _ = write!(
                    s,
                    ", echo under load p50 {} p99 {} ms ({} samples)",
                    ms(e.p50_ms),
                    ms(e.p99_ms),
                    e.samples
                );
            }
            if !m.streams_mb_s.is_empty() {
                let per: Vec<String> = m.streams_mb_s.iter().map(|v| format!("{v:.2}")).collect();
                let _ = write!(
                    s,
                    ", streams {} MB/s, Jain {}, queue drops {}",
                    per.join("/"),
                    limits::jain(&m.streams_mb_s).map_or("-".into(), |j| format!("{j:.3}")),
                    m.queue_drop_fraction()
                        .map_or("-".into(), |q| format!("{:.2} %", q * 100.0)),
                );
            }
            s
        }
        Err(e) => format!("FAILED: {e}"),
    }
}

/// How a set of results was made; stored in `results.json` next to the records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Runs per cell.
    pub runs: u32,
    /// Bulk transfer length (s); with `bytes`, the time a transfer could take.
    pub duration_s: f64,
    /// Bytes per bulk transfer, if the transfers were sized (`--bytes`).
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Echo samples asked for per run.
    pub rtt_samples: usize,
    /// Echo time budget per run (s).
    pub rtt_time_s: f64,
    /// Link seed base.
    pub seed: u64,
    /// The mkcp binary used.
    pub mkcp_bin: Option<String>,
    /// The V2Ray binary used, with its version.
    pub v2ray: Option<String>,
    /// Wall-clock time of the whole matrix (s).
    pub elapsed_s: f64,
    /// Whether Ctrl-C cut the matrix short.
    pub interrupted: bool,
    /// CPUs of the machine.
    pub cpus: usize,
    /// Concurrent uploads of the streams workload.
    pub streams: u8,
    /// The direct scenario's ceilings, one per repetition that ran it.
    pub ceilings: Vec<Ceilings>,
    /// Why a repetition's ceilings could not be measured, one line each.
    pub ceiling_failures: Vec<String>,
}

/// The contents of `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    /// How the results were made.
    #[serde(flatten)]
    pub meta: Meta,
    /// Every run.
    pub records: Vec<RunRecord>,
    /// Medians per cell (recomputed from `records` when re-rendering).
    #[serde(default)]
    pub summaries: Vec<Summary>,
}

/// `--report-from`: rewrites the report and charts of an earlier `results.json` into `out`.
fn rerender(path: &Path, out: &Path) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: ResultsFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let summaries = report::summarize(&file.records);
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_outputs(out, &file.records, &summaries, &file.meta)?;
    println!("{}", report::all_tables(&summaries, &file.meta.ceilings));
    eprintln!("mkcp bench: report written to {}", out.display());
    Ok(())
}

fn write_outputs(
    out: &Path,
    records: &[RunRecord],
    summaries: &[Summary],
    meta: &Meta,
) -> Result<()> {
    let file = ResultsFile {
        meta: meta.clone(),
        records: records.to_vec(),
        summaries: summaries.to_vec(),
    };
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&file).context("serialising results")?,
    )
    .context("writing results.json")?;

    let mut charts = Vec::new();
    for (name, svg) in chart::render_all(summaries)? {
        let name = format!("{name}.svg");
        fs::write(out.join(&name), svg).with_context(|| format!("writing {name}"))?;
        charts.push(name);
    }

    let mut md = String::new();
    md.push_str("# mkcp bench results\n\n");
    let transfer = match meta.bytes {
        Some(n) => format!(
            "bulk transfers of {n} bytes ({:.1} MiB, at most {:.0} s each)",
            n as f64 / 1048576.0,
            meta.duration_s
        ),
        None => format!("{:.0} s bulk transfer", meta.duration_s),
    };
    let _ = writeln!(
        md,
        "{} run(s) per cell, {transfer}, {} echo samples (≤ {:.0} s) per run; \
         took {:.0} s{}.\n",
        meta.runs,
        meta.rtt_samples,
        meta.rtt_time_s,
        meta.elapsed_s,
        if meta.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    if let Some(p) = &meta.mkcp_bin {
        let _ = writeln!(md, "- mkcp: `{p}`");
    }
    if let Some(v) = &meta.v2ray {
        let _ = writeln!(md, "- V2Ray: `{v}`");
    }
    let _ = writeln!(
        md,
        "- machine: {} CPU(s); medians; MB = 10^6 bytes, GB = 10^9 bytes; wire = UDP payload \
         bytes into the relay, both ways; load = 1-minute load average at the start of the runs\n\
         - limit = what the link can carry one way: rate × (1 − loss) × payload share of a \
         full datagram under the kcp settings used (1326 / 1350 with V2Ray's defaults); path \
         RTT = twice the one-way delay, without queueing\n",
        if meta.cpus > 0 {
            meta.cpus.to_string()
        } else {
            "?".into()
        }
    );
    md.push_str(&report::all_tables(summaries, &meta.ceilings));
    let targets = report::targets_section(summaries);
    if !targets.is_empty() {
        md.push_str("\n## Targets (mkcp↔mkcp)\n\n");
        md.push_str(&targets);
    }
    let issue12 = report::issue12_section(summaries);
    if !issue12.is_empty() {
        md.push_str("\n## Targets of issue 12 (mkcp↔mkcp, lossy links; medians of this run)\n\n");
        md.push_str(&issue12);
    }
    let mut failures = report::failures(records);
    for f in &meta.ceiling_failures {
        failures.push_str(&f.replace('\n', " "));
        failures.push('\n');
    }
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
