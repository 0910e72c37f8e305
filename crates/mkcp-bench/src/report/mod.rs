//! Results: one record per run, medians per matrix cell, the markdown report.
//!
//! The records and their medians are here; the markdown tables are in `tables`, the
//! target checks and the failed-runs list in `targets` (re-exported here).

mod tables;
mod targets;

pub use tables::{all_tables, ceilings_section, echo_load_table, markdown_table, streams_table};
pub use targets::{failures, issue12_section, targets_section};

use serde::{Deserialize, Serialize};

use crate::args::{Direction, KcpVariant, LinkScenario, PairKind, Workload};
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
