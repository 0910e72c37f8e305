//! The markdown tables of the report: bulk, echo under load, streams, ceilings.

use std::fmt::Write as _;

use crate::args::{LinkScenario, Workload};
use crate::ceiling::Ceilings;
use crate::limits::fraction;
use crate::stats::median;

use super::Summary;

pub(super) fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "–".into(),
    }
}

pub(super) fn pct(v: Option<f64>, decimals: usize) -> String {
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
