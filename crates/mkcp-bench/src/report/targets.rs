//! The target checks of the report (issues 6 and 12) and the failed-runs list.

use std::fmt::Write as _;

use crate::args::{Direction, KcpVariant, LinkScenario, PairKind, Workload};

use super::tables::{num, pct};
use super::{RunRecord, Summary};

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
