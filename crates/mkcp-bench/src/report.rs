//! Results: one record per run, medians per matrix cell, the markdown report.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::args::{Direction, KcpVariant, LinkScenario, PairKind, Workload};
use crate::ceiling::Ceilings;
use crate::limits::{fraction, jain, payload_share};
use crate::stats::{median, percentile};

/// Percentiles of a set of echo round trips (ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EchoStats {
    /// Timed samples taken.
    pub samples: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

impl EchoStats {
    /// The nearest-rank percentiles of `samples` (ms).
    pub fn of(samples: &[f64]) -> Self {
        EchoStats {
            samples: samples.len(),
            p50_ms: percentile(samples, 50.0),
            p90_ms: percentile(samples, 90.0),
            p99_ms: percentile(samples, 99.0),
            max_ms: percentile(samples, 100.0),
        }
    }
}

/// What one run measured. Rates are decimal: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes.
/// Fields added after the first results files default when absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// (wire up + wire down) / payload; `None` without a relay (the direct scenario).
    pub wire_ratio: Option<f64>,
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
    /// Echo-under-load: the echoes on the second connection while the first uploads.
    #[serde(default)]
    pub load_echo: Option<EchoStats>,
    /// Streams: goodput of each upload (MB/s), in stream order.
    #[serde(default)]
    pub streams_mb_s: Vec<f64>,
    /// Datagrams the relay's link of the data direction dropped because its queue was
    /// full, during the transfer.
    #[serde(default)]
    pub queue_dropped: u64,
    /// Datagrams offered to the relay's link of the data direction during the transfer.
    #[serde(default)]
    pub queue_offered: u64,
}

impl Measurement {
    /// Client + server CPU seconds per GB.
    pub fn cpu_total_s_per_gb(&self) -> f64 {
        self.cpu_client_s_per_gb + self.cpu_server_s_per_gb
    }

    /// Queue drops of the data direction as a fraction of the datagrams offered to it.
    pub fn queue_drop_fraction(&self) -> Option<f64> {
        (self.queue_offered > 0).then(|| self.queue_dropped as f64 / self.queue_offered as f64)
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
    /// What the run did (records written before workloads existed are bulk runs).
    #[serde(default)]
    pub workload: Workload,
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
    /// Workload.
    #[serde(default)]
    pub workload: Workload,
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
    /// What the link can carry one way (MB/s of payload): rate × (1 − loss) × payload
    /// share of a full datagram under the kcp settings used (limited links only).
    #[serde(default)]
    pub limit_mb_s: Option<f64>,
    /// Median goodput as a fraction of [`Self::limit_mb_s`].
    #[serde(default)]
    pub limit_fraction: Option<f64>,
    /// The path's round-trip time without queueing (ms; links with a delay only).
    #[serde(default)]
    pub path_rtt_ms: Option<f64>,
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
    /// Echo-under-load: medians of the runs' percentiles (samples: the median count).
    #[serde(default)]
    pub load_echo: Option<EchoStats>,
    /// Streams: median goodput of each stream index (MB/s).
    #[serde(default)]
    pub streams_mb_s: Vec<f64>,
    /// Streams: median of the runs' Jain fairness indices.
    #[serde(default)]
    pub jain: Option<f64>,
    /// Median of the runs' queue drops as a fraction of the datagrams offered (data
    /// direction).
    #[serde(default)]
    pub queue_drop_fraction: Option<f64>,
}

impl Summary {
    /// Idle echo p99 / path RTT.
    pub fn rtt_p99_over_path(&self) -> Option<f64> {
        fraction(self.rtt_p99_ms, self.path_rtt_ms)
    }

    /// Echo-under-load p99 / path RTT.
    pub fn load_p99_over_path(&self) -> Option<f64> {
        fraction(
            self.load_echo.as_ref().and_then(|e| e.p99_ms),
            self.path_rtt_ms,
        )
    }
}

/// Groups the records by cell, in the order cells first appear, and takes medians.
pub fn summarize(records: &[RunRecord]) -> Vec<Summary> {
    type Key = (LinkScenario, KcpVariant, PairKind, Workload, Direction);
    let key = |r: &RunRecord| -> Key { (r.scenario, r.variant, r.pair, r.workload, r.direction) };
    let mut keys: Vec<Key> = Vec::new();
    for r in records {
        let k = key(r);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(scenario, variant, pair, workload, direction)| {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| key(r) == (scenario, variant, pair, workload, direction))
                .collect();
            let ok: Vec<&Measurement> =
                runs.iter().filter_map(|r| r.result.as_ref().ok()).collect();
            let med = |f: &dyn Fn(&Measurement) -> Option<f64>| -> Option<f64> {
                median(&ok.iter().filter_map(|m| f(m)).collect::<Vec<f64>>())
            };
            let goodput = med(&|m| Some(m.goodput_mb_s));
            let limit = scenario.limit_mb_s(payload_share(&variant.params()));
            let echo =
                |f: &dyn Fn(&EchoStats) -> Option<f64>| med(&|m| m.load_echo.as_ref().and_then(f));
            let load_echo = ok.iter().any(|m| m.load_echo.is_some()).then(|| EchoStats {
                samples: med(&|m| m.load_echo.as_ref().map(|e| e.samples as f64))
                    .map_or(0, |v| v.round() as usize),
                p50_ms: echo(&|e| e.p50_ms),
                p90_ms: echo(&|e| e.p90_ms),
                p99_ms: echo(&|e| e.p99_ms),
                max_ms: echo(&|e| e.max_ms),
            });
            let n_streams = ok.iter().map(|m| m.streams_mb_s.len()).max().unwrap_or(0);
            let streams_mb_s = (0..n_streams)
                .filter_map(|i| med(&|m| m.streams_mb_s.get(i).copied()))
                .collect();
            let path_rtt = scenario.path_rtt_ms();
            Summary {
                scenario,
                variant,
                pair,
                workload,
                direction,
                ok: ok.len(),
                total: runs.len(),
                first_error: runs.iter().find_map(|r| r.result.as_ref().err().cloned()),
                goodput_mb_s: goodput,
                link_fraction: scenario
                    .capacity_bytes_per_sec()
                    .and_then(|cap| goodput.map(|g| g * 1e6 / cap)),
                limit_mb_s: limit,
                limit_fraction: fraction(goodput, limit),
                path_rtt_ms: (path_rtt > 0.0).then_some(path_rtt),
                cpu_client_s_per_gb: med(&|m| Some(m.cpu_client_s_per_gb)),
                cpu_server_s_per_gb: med(&|m| Some(m.cpu_server_s_per_gb)),
                cpu_total_s_per_gb: med(&|m| Some(m.cpu_total_s_per_gb())),
                rss_client_mib: med(&|m| Some(m.rss_client_bytes as f64 / 1048576.0)),
                rss_server_mib: med(&|m| Some(m.rss_server_bytes as f64 / 1048576.0)),
                wire_ratio: med(&|m| m.wire_ratio),
                rtt_p50_ms: med(&|m| m.rtt_p50_ms),
                rtt_p99_ms: med(&|m| m.rtt_p99_ms),
                load_average: med(&|m| m.load_average),
                load_echo,
                streams_mb_s,
                jain: med(&|m| jain(&m.streams_mb_s)),
                queue_drop_fraction: med(&|m| m.queue_drop_fraction()),
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

fn pct(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{:.decimals$} %", x * 100.0),
        _ => "–".into(),
    }
}

fn runs_ok(r: &Summary) -> String {
    format!("{}/{}", r.ok, r.total)
}

/// The bulk runs' medians as a markdown table, one row per cell.
///
/// Columns: link, kcp, pair, direction (up = client → server, down = server → client),
/// goodput (MB/s), the link's limit (MB/s) and the goodput as % of it, CPU s/GB
/// (client, server), peak RSS MiB (client, server), wire/payload, idle echo p50/p99
/// (ms), the path RTT (ms) and p99 / path RTT, successful runs, load average.
pub fn markdown_table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str(
        "| link | kcp | client → server | direction | goodput MB/s | limit MB/s | % of limit \
         | CPU s/GB client | CPU s/GB server | peak RSS MiB client / server | wire/payload \
         | echo p50 ms | echo p99 ms | path RTT ms | p99 / RTT | runs ok | load |\n",
    );
    s.push_str(
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in summaries.iter().filter(|r| r.workload == Workload::Bulk) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.describe(),
            r.variant,
            r.pair.arrow(),
            r.direction,
            num(r.goodput_mb_s, 2),
            num(r.limit_mb_s, 2),
            pct(r.limit_fraction, 0),
            num(r.cpu_client_s_per_gb, 1),
            num(r.cpu_server_s_per_gb, 1),
            num(r.rss_client_mib, 1),
            num(r.rss_server_mib, 1),
            num(r.wire_ratio, 3),
            num(r.rtt_p50_ms, 1),
            num(r.rtt_p99_ms, 1),
            num(r.path_rtt_ms, 0),
            num(r.rtt_p99_over_path(), 2),
            runs_ok(r),
            num(r.load_average, 2),
        );
    }
    s
}

/// The echo-under-load runs' medians, one row per cell: the upload's goodput next to
/// the link's limit, and the percentiles of the echoes on the second connection next to
/// the path RTT.
pub fn echo_load_table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str(
        "| link | kcp | client → server | bulk goodput MB/s | limit MB/s | % of limit \
         | echoes | echo p50 ms | echo p90 ms | echo p99 ms | echo max ms | path RTT ms \
         | p50 − RTT ms | p99 / RTT | runs ok | load |\n",
    );
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in summaries
        .iter()
        .filter(|r| r.workload == Workload::EchoLoad)
    {
        let e = r.load_echo.clone().unwrap_or_default();
        let over = match (e.p50_ms, r.path_rtt_ms) {
            (Some(p), Some(rtt)) => Some(p - rtt),
            _ => None,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.describe(),
            r.variant,
            r.pair.arrow(),
            num(r.goodput_mb_s, 2),
            num(r.limit_mb_s, 2),
            pct(r.limit_fraction, 0),
            e.samples,
            num(e.p50_ms, 1),
            num(e.p90_ms, 1),
            num(e.p99_ms, 1),
            num(e.max_ms, 1),
            num(r.path_rtt_ms, 0),
            num(over, 1),
            num(r.load_p99_over_path(), 2),
            runs_ok(r),
            num(r.load_average, 2),
        );
    }
    s
}

/// The streams runs' medians, one row per cell: aggregate goodput next to the link's
/// limit, each stream's goodput, Jain's index, queue drops and wire/payload.
pub fn streams_table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str(
        "| link | kcp | client → server | streams | aggregate MB/s | limit MB/s | % of limit \
         | per stream MB/s | Jain | queue drops | wire/payload | CPU s/GB | runs ok | load |\n",
    );
    s.push_str("|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for r in summaries.iter().filter(|r| r.workload == Workload::Streams) {
        let per: Vec<String> = r.streams_mb_s.iter().map(|v| format!("{v:.2}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.describe(),
            r.variant,
            r.pair.arrow(),
            r.streams_mb_s.len(),
            num(r.goodput_mb_s, 2),
            num(r.limit_mb_s, 2),
            pct(r.limit_fraction, 0),
            if per.is_empty() {
                "–".into()
            } else {
                per.join(" / ")
            },
            num(r.jain, 3),
            pct(r.queue_drop_fraction, 2),
            num(r.wire_ratio, 3),
            num(r.cpu_total_s_per_gb, 1),
            runs_ok(r),
            num(r.load_average, 2),
        );
    }
    s
}

/// The ceilings of the direct scenario (each repetition and the medians), and every
/// direct cell's goodput as a share of plain TCP's and CPU per GB as a multiple of raw
/// UDP's. Empty without ceilings.
pub fn ceilings_section(ceilings: &[Ceilings], summaries: &[Summary]) -> String {
    if ceilings.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    s.push_str(
        "| run | raw UDP MB/s | raw UDP CPU s/GB, send + receive | of which receive | raw UDP lost \
         | plain TCP MB/s | plain TCP CPU s/GB |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let row = |s: &mut String, label: String, c: [Option<f64>; 6]| {
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            num(c[0], 1),
            num(c[1], 2),
            num(c[2], 2),
            pct(c[3], 1),
            num(c[4], 1),
            num(c[5], 2),
        );
    };
    for c in ceilings {
        row(
            &mut s,
            (c.run + 1).to_string(),
            [
                Some(c.raw_udp_mb_s),
                Some(c.raw_udp_cpu_s_per_gb),
                Some(c.raw_udp_rx_cpu_s_per_gb),
                Some(c.raw_udp_lost),
                Some(c.tcp_mb_s),
                Some(c.tcp_cpu_s_per_gb),
            ],
        );
    }
    let m = |f: fn(&Ceilings) -> f64| median(&ceilings.iter().map(f).collect::<Vec<f64>>());
    let udp = m(|c| c.raw_udp_mb_s);
    let udp_cpu = m(|c| c.raw_udp_cpu_s_per_gb);
    let tcp = m(|c| c.tcp_mb_s);
    row(
        &mut s,
        "median".into(),
        [
            udp,
            udp_cpu,
            m(|c| c.raw_udp_rx_cpu_s_per_gb),
            m(|c| c.raw_udp_lost),
            tcp,
            m(|c| c.tcp_cpu_s_per_gb),
        ],
    );
    s.push('\n');
    for r in summaries
        .iter()
        .filter(|r| r.scenario == LinkScenario::Direct)
    {
        let _ = writeln!(
            s,
            "- {} / {} / {} {}: {} MB/s = {} of plain TCP; CPU {} s/GB (client + server) = {} × raw UDP's",
            r.variant,
            r.pair.arrow(),
            r.workload,
            r.direction,
            num(r.goodput_mb_s, 1),
            pct(fraction(r.goodput_mb_s, tcp), 0),
            num(r.cpu_total_s_per_gb, 2),
            num(fraction(r.cpu_total_s_per_gb, udp_cpu), 2),
        );
    }
    s
}

/// Every table of the report, each under a heading, for the workloads present; the
/// ceilings after them when the direct scenario ran.
pub fn all_tables(summaries: &[Summary], ceilings: &[Ceilings]) -> String {
    let mut s = String::new();
    let has = |w: Workload| summaries.iter().any(|r| r.workload == w);
    if has(Workload::Bulk) {
        s.push_str("## Bulk transfer and idle echo\n\n");
        s.push_str(&markdown_table(summaries));
    }
    if has(Workload::EchoLoad) {
        s.push_str(
            "\n## Echo under load (64-byte echoes on a second connection during an upload)\n\n",
        );
        s.push_str(&echo_load_table(summaries));
    }
    if has(Workload::Streams) {
        s.push_str("\n## Concurrent uploads through one bottleneck\n\n");
        s.push_str(&streams_table(summaries));
    }
    let c = ceilings_section(ceilings, summaries);
    if !c.is_empty() {
        s.push_str("\n## Ceilings of the direct scenario (same run)\n\n");
        s.push_str(&c);
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
            s.scenario == sc
                && s.variant == v
                && s.pair == p
                && s.workload == Workload::Bulk
                && s.direction == Direction::Up
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

/// How mkcp↔mkcp compares with the targets of issue 12 on the lossy links, from the
/// medians: bulk goodput ≥ 95 % (30 ms link) / 90 % (100 ms link) of the link's limit
/// in both directions with wire/payload ≤ 1.08; idle echo p99 ≤ 1.5× (2 % loss) / 2×
/// (5 % loss) the path RTT; echoes under load p50 ≤ RTT + 15 ms and p99 ≤ 2× RTT;
/// concurrent uploads ≥ 90 % of the limit together, Jain ≥ 0.9, queue drops ≤ 1 %.
/// Single medians of a loaded machine: a check, not a claim.
pub fn issue12_section(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let mm = summaries
        .iter()
        .filter(|s| s.pair == PairKind::MkcpMkcp && s.scenario.limit_mb_s(1.0).is_some());
    for r in mm {
        let (goodput_target, p99_target) = match r.scenario {
            LinkScenario::Wan30 => (0.95, 1.5),
            _ => (0.90, 2.0),
        };
        let head = format!(
            "- {} / {} / {} {}:",
            r.scenario.describe(),
            r.variant,
            r.workload,
            r.direction
        );
        match r.workload {
            Workload::Bulk => {
                let _ = writeln!(
                    out,
                    "{head} goodput {} of the limit (≥ {:.0} %: {}); wire/payload {} (≤ 1.08: {}); \
                     idle echo p99 / RTT {} (≤ {p99_target}: {})",
                    pct(r.limit_fraction, 0),
                    goodput_target * 100.0,
                    verdict(r.limit_fraction.map(|f| f >= goodput_target)),
                    num(r.wire_ratio, 3),
                    verdict(r.wire_ratio.map(|w| w <= 1.08)),
                    num(r.rtt_p99_over_path(), 2),
                    verdict(r.rtt_p99_over_path().map(|x| x <= p99_target)),
                );
            }
            Workload::EchoLoad => {
                let e = r.load_echo.clone().unwrap_or_default();
                let over = match (e.p50_ms, r.path_rtt_ms) {
                    (Some(p), Some(rtt)) => Some(p - rtt),
                    _ => None,
                };
                let _ = writeln!(
                    out,
                    "{head} echo under load p50 − RTT {} ms (≤ 15: {}); p99 / RTT {} (≤ 2: {})",
                    num(over, 1),
                    verdict(over.map(|o| o <= 15.0)),
                    num(r.load_p99_over_path(), 2),
                    verdict(r.load_p99_over_path().map(|x| x <= 2.0)),
                );
            }
            Workload::Streams => {
                let _ = writeln!(
                    out,
                    "{head} {} streams: {} of the limit together (≥ 90 %: {}); Jain {} (≥ 0.9: {}); \
                     queue drops {} (≤ 1 %: {})",
                    r.streams_mb_s.len(),
                    pct(r.limit_fraction, 0),
                    verdict(r.limit_fraction.map(|f| f >= 0.9)),
                    num(r.jain, 3),
                    verdict(r.jain.map(|j| j >= 0.9)),
                    pct(r.queue_drop_fraction, 2),
                    verdict(r.queue_drop_fraction.map(|q| q <= 0.01)),
                );
            }
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
                "- {} / {} / {} / {} {} run {}: {}",
                r.scenario,
                r.variant,
                r.pair,
                r.workload,
                r.direction,
                r.run + 1,
                e.replace('\n', " ")
            );
        }
    }
    s
}
