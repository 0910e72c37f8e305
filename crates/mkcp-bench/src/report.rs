//! Results: one record per run, medians per matrix cell, the markdown report.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::args::{Direction, KcpVariant, LinkScenario, PairKind};
use crate::stats::median;

/// What one run measured. Rates are decimal: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Payload bytes delivered per second to the receiving application (the sink behind
    /// the server for an upload, the bench's checking reader at the client for a
    /// download), in MB/s.
    pub goodput_mb_s: f64,
    /// Payload bytes delivered to the receiving application during the transfer.
    pub payload_bytes: u64,
    /// Length of the transfer in seconds.
    pub seconds: f64,
    /// CPU seconds of the client process during the transfer.
    pub cpu_client_s: f64,
    /// CPU seconds of the server process during the transfer.
    pub cpu_server_s: f64,
    /// Client CPU seconds per GB of payload.
    pub cpu_client_s_per_gb: f64,
    /// Server CPU seconds per GB of payload.
    pub cpu_server_s_per_gb: f64,
    /// Peak RSS of the client process (bytes), over the whole run.
    pub rss_client_bytes: u64,
    /// Peak RSS of the server process (bytes), over the whole run.
    pub rss_server_bytes: u64,
    /// UDP payload bytes sent client → server into the relay during the transfer.
    pub wire_up_bytes: u64,
    /// UDP payload bytes sent server → client into the relay during the transfer.
    pub wire_down_bytes: u64,
    /// (wire up + wire down) / payload.
    pub wire_ratio: f64,
    /// Datagrams offered to the relay (both ways) during the transfer.
    pub relay_packets: u64,
    /// Datagrams the relay dropped (loss + queue overflow, both ways).
    pub relay_dropped: u64,
    /// Timed echo samples taken.
    pub rtt_samples: usize,
    /// Median echo round trip (ms).
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile echo round trip (ms).
    pub rtt_p99_ms: Option<f64>,
    /// 1-minute load average when the run started.
    pub load_average: Option<f64>,
}

impl Measurement {
    /// Client + server CPU seconds per GB.
    pub fn cpu_total_s_per_gb(&self) -> f64 {
        self.cpu_client_s_per_gb + self.cpu_server_s_per_gb
    }
}

/// One run of one matrix cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Link scenario name.
    pub scenario: LinkScenario,
    /// kcp variant.
    pub variant: KcpVariant,
    /// Endpoint pair.
    pub pair: PairKind,
    /// Direction of the bulk transfer (records written before downloads existed are
    /// uploads).
    #[serde(default)]
    pub direction: Direction,
    /// Repetition index, from 0.
    pub run: u32,
    /// The figures, or why the run failed.
    pub result: Result<Measurement, String>,
}

/// Medians over the successful runs of one (scenario, variant, pair, direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Link scenario.
    pub scenario: LinkScenario,
    /// kcp variant.
    pub variant: KcpVariant,
    /// Endpoint pair.
    pub pair: PairKind,
    /// Direction of the bulk transfer.
    #[serde(default)]
    pub direction: Direction,
    /// Successful runs.
    pub ok: usize,
    /// All runs.
    pub total: usize,
    /// The first failure's message, if any run failed.
    pub first_error: Option<String>,
    /// Median goodput (MB/s).
    pub goodput_mb_s: Option<f64>,
    /// Median goodput as a fraction of the link rate (limited links only).
    pub link_fraction: Option<f64>,
    /// Median client CPU s/GB.
    pub cpu_client_s_per_gb: Option<f64>,
    /// Median server CPU s/GB.
    pub cpu_server_s_per_gb: Option<f64>,
    /// Median of client + server CPU s/GB.
    pub cpu_total_s_per_gb: Option<f64>,
    /// Median client peak RSS (MiB).
    pub rss_client_mib: Option<f64>,
    /// Median server peak RSS (MiB).
    pub rss_server_mib: Option<f64>,
    /// Median wire/payload.
    pub wire_ratio: Option<f64>,
    /// Median of the runs' echo p50 (ms).
    pub rtt_p50_ms: Option<f64>,
    /// Median of the runs' echo p99 (ms).
    pub rtt_p99_ms: Option<f64>,
    /// Median 1-minute load average at the runs' start.
    pub load_average: Option<f64>,
}

/// Groups the records by cell, in the order cells first appear, and takes medians.
pub fn summarize(records: &[RunRecord]) -> Vec<Summary> {
    type Key = (LinkScenario, KcpVariant, PairKind, Direction);
    let key = |r: &RunRecord| -> Key { (r.scenario, r.variant, r.pair, r.direction) };
    let mut keys: Vec<Key> = Vec::new();
    for r in records {
        let k = key(r);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(scenario, variant, pair, direction)| {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| key(r) == (scenario, variant, pair, direction))
                .collect();
            let ok: Vec<&Measurement> =
                runs.iter().filter_map(|r| r.result.as_ref().ok()).collect();
            let med = |f: &dyn Fn(&Measurement) -> Option<f64>| -> Option<f64> {
                median(&ok.iter().filter_map(|m| f(m)).collect::<Vec<f64>>())
            };
            let goodput = med(&|m| Some(m.goodput_mb_s));
            Summary {
                scenario,
                variant,
                pair,
                direction,
                ok: ok.len(),
                total: runs.len(),
                first_error: runs.iter().find_map(|r| r.result.as_ref().err().cloned()),
                goodput_mb_s: goodput,
                link_fraction: scenario
                    .capacity_bytes_per_sec()
                    .and_then(|cap| goodput.map(|g| g * 1e6 / cap)),
                cpu_client_s_per_gb: med(&|m| Some(m.cpu_client_s_per_gb)),
                cpu_server_s_per_gb: med(&|m| Some(m.cpu_server_s_per_gb)),
                cpu_total_s_per_gb: med(&|m| Some(m.cpu_total_s_per_gb())),
                rss_client_mib: med(&|m| Some(m.rss_client_bytes as f64 / 1048576.0)),
                rss_server_mib: med(&|m| Some(m.rss_server_bytes as f64 / 1048576.0)),
                wire_ratio: med(&|m| Some(m.wire_ratio)),
                rtt_p50_ms: med(&|m| m.rtt_p50_ms),
                rtt_p99_ms: med(&|m| m.rtt_p99_ms),
                load_average: med(&|m| m.load_average),
            }
        })
        .collect()
}

fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "–".into(),
    }
}

/// The medians as a markdown table, one row per cell.
///
/// Columns: scenario, kcp, pair, direction (up = client → server, down = server →
/// client), goodput (MB/s and % of the link), CPU s/GB (client,
/// server), peak RSS MiB (client, server), wire/payload, echo p50/p99 (ms), successful
/// runs, load average.
pub fn markdown_table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str(
        "| link | kcp | client → server | direction | goodput MB/s | % of link | CPU s/GB client | CPU s/GB server \
         | peak RSS MiB client / server | wire/payload | echo p50 ms | echo p99 ms | runs ok | load |\n",
    );
    s.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in summaries {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {}/{} | {} |",
            r.scenario.describe(),
            r.variant,
            r.pair.arrow(),
            r.direction,
            num(r.goodput_mb_s, 2),
            r.link_fraction
                .map(|f| format!("{:.0} %", f * 100.0))
                .unwrap_or_else(|| "–".into()),
            num(r.cpu_client_s_per_gb, 1),
            num(r.cpu_server_s_per_gb, 1),
            num(r.rss_client_mib, 1),
            num(r.rss_server_mib, 1),
            num(r.wire_ratio, 3),
            num(r.rtt_p50_ms, 1),
            num(r.rtt_p99_ms, 1),
            r.ok,
            r.total,
            num(r.load_average, 2),
        );
    }
    s
}

/// How mkcp↔mkcp compares with the targets of issue #6, from the medians of the uploads
/// (the direction those targets were set for): on the clean link goodput ≥ 5×
/// V2Ray↔V2Ray at ≤ 1/3 of its CPU per GB; on the 30 ms / 2 % / 100 Mbit/s link goodput
/// ≥ 90 % of the link rate with wire/payload ≤ 1.10.
pub fn targets_section(summaries: &[Summary]) -> String {
    let find = |sc: LinkScenario, v: KcpVariant, p: PairKind| {
        summaries.iter().find(|s| {
            s.scenario == sc && s.variant == v && s.pair == p && s.direction == Direction::Up
        })
    };
    let mut out = String::new();
    for v in [KcpVariant::Default, KcpVariant::Congestion] {
        if let (Some(m), Some(x)) = (
            find(LinkScenario::Clean, v, PairKind::MkcpMkcp),
            find(LinkScenario::Clean, v, PairKind::V2rayV2ray),
        ) {
            let speed = ratio(m.goodput_mb_s, x.goodput_mb_s);
            let cpu = ratio(m.cpu_total_s_per_gb, x.cpu_total_s_per_gb);
            let _ = writeln!(
                out,
                "- clean loopback, kcp {v}: mkcp↔mkcp upload goodput {} × V2Ray↔V2Ray's (target ≥ 5×: {}); \
                 CPU per GB {} of V2Ray's (target ≤ 0.33: {})",
                num(speed, 2),
                verdict(speed.map(|s| s >= 5.0)),
                num(cpu, 2),
                verdict(cpu.map(|c| c <= 1.0 / 3.0)),
            );
        }
        if let Some(m) = find(LinkScenario::Wan30, v, PairKind::MkcpMkcp) {
            let _ = writeln!(
                out,
                "- 30 ms / 2 % / 100 Mbit/s, kcp {v}: mkcp↔mkcp upload goodput {} % of the link rate \
                 (target ≥ 90 %: {}); wire/payload {} (target ≤ 1.10: {})",
                num(m.link_fraction.map(|f| f * 100.0), 0),
                verdict(m.link_fraction.map(|f| f >= 0.9)),
                num(m.wire_ratio, 3),
                verdict(m.wire_ratio.map(|w| w <= 1.10)),
            );
        }
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "not met",
        None => "no data",
    }
}

/// Failed runs, one line each.
pub fn failures(records: &[RunRecord]) -> String {
    let mut s = String::new();
    for r in records {
        if let Err(e) = &r.result {
            let _ = writeln!(
                s,
                "- {} / {} / {} / {} run {}: {}",
                r.scenario,
                r.variant,
                r.pair,
                r.direction,
                r.run + 1,
                e.replace('\n', " ")
            );
        }
    }
    s
}
