//! The bench crate's pure parts: argument parsing, statistics, summaries, the markdown
//! report and the charts; plus a smoke test of one tiny scenario (ignored: it needs the
//! built `mkcp` binary).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use mkcp_bench::report::{self, Measurement, RunRecord};
use mkcp_bench::stats::{median, percentile};
use mkcp_bench::{chart, BenchArgs, Direction, KcpVariant, LinkScenario, PairKind};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
}

#[test]
fn defaults_cover_the_whole_matrix() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.runs, 3);
    assert_eq!(
        a.scenarios,
        [
            LinkScenario::Clean,
            LinkScenario::Wan30,
            LinkScenario::Wan100
        ]
    );
    assert_eq!(a.variants, [KcpVariant::Default, KcpVariant::Congestion]);
    assert_eq!(a.pairs, PairKind::ALL);
    assert_eq!(a.directions, [Direction::Up, Direction::Down]);
    assert_eq!(a.duration, Duration::from_secs(10));
    assert_eq!(a.out.to_str(), Some("bench-results"));
    assert_eq!(a.rtt_samples, 100);
}

#[test]
fn lists_aliases_and_durations_parse() {
    let a = parse(&[
        "--runs",
        "5",
        "--scenarios",
        "wan30",
        "--kcp",
        "congestion",
        "--pairs",
        "mm,vv,mkcp-v2ray",
        "--duration",
        "1500ms",
        "--rtt-time",
        "2s",
        "--directions",
        "down",
        "--out",
        "/tmp/x",
    ])
    .unwrap();
    assert_eq!(a.directions, [Direction::Down]);
    let b = parse(&["--directions", "download,upload"]).unwrap();
    assert_eq!(b.directions, [Direction::Down, Direction::Up]);
    assert_eq!(a.runs, 5);
    assert_eq!(a.scenarios, [LinkScenario::Wan30]);
    assert_eq!(a.variants, [KcpVariant::Congestion]);
    assert_eq!(
        a.pairs,
        [
            PairKind::MkcpMkcp,
            PairKind::V2rayV2ray,
            PairKind::MkcpV2ray
        ]
    );
    assert_eq!(a.duration, Duration::from_millis(1500));
    assert_eq!(a.rtt_time, Duration::from_secs(2));
}

#[test]
fn bad_arguments_are_rejected() {
    assert!(parse(&["--runs", "0"]).is_err());
    assert!(parse(&["--pairs", "mkcp-quic"]).is_err());
    assert!(parse(&["--scenarios", "mars"]).is_err());
    assert!(parse(&["--directions", "sideways"]).is_err());
    assert!(
        parse(&["--duration", "10"]).is_err(),
        "a duration needs a unit"
    );
    assert!(
        parse(&["--duration", "5ms"]).is_err(),
        "too short to measure"
    );
}

#[test]
fn pairs_know_their_ends() {
    assert_eq!(PairKind::MkcpV2ray.client().name(), "mkcp");
    assert_eq!(PairKind::MkcpV2ray.server().name(), "v2ray");
    assert_eq!(PairKind::V2rayMkcp.arrow(), "v2ray → mkcp");
    assert!(!PairKind::MkcpMkcp.needs_v2ray());
    assert!(!PairKind::V2rayV2ray.needs_mkcp());
}

#[test]
fn scenarios_have_a_one_bdp_queue() {
    assert_eq!(LinkScenario::Wan30.queue_bytes(), 750_000);
    assert_eq!(LinkScenario::Wan100.queue_bytes(), 500_000);
    assert_eq!(LinkScenario::Clean.queue_bytes(), 0);
    let l = LinkScenario::Wan30.link(7);
    assert_eq!(l.delay, Duration::from_millis(30));
    assert_eq!(l.rate_bps, Some(100_000_000));
    assert!((l.loss - 0.02).abs() < 1e-12);
    assert!(LinkScenario::Clean.link(1).is_perfect());
}

#[test]
fn median_handles_odd_even_and_nan() {
    assert_eq!(median(&[5.0]), Some(5.0));
    assert_eq!(median(&[1.0, 9.0]), Some(5.0));
    assert_eq!(median(&[9.0, 1.0, 5.0]), Some(5.0));
    assert_eq!(median(&[f64::NAN, 2.0, 4.0, f64::INFINITY]), Some(3.0));
    assert_eq!(median(&[f64::NAN]), None);
}

#[test]
fn percentile_is_nearest_rank() {
    let v = [15.0, 20.0, 35.0, 40.0, 50.0];
    assert_eq!(percentile(&v, 0.0), Some(15.0));
    assert_eq!(percentile(&v, 30.0), Some(20.0));
    assert_eq!(percentile(&v, 40.0), Some(20.0));
    assert_eq!(percentile(&v, 50.0), Some(35.0));
    assert_eq!(percentile(&v, 99.0), Some(50.0));
    assert_eq!(percentile(&v, 100.0), Some(50.0));
    assert_eq!(percentile(&[], 50.0), None);
    // Order of the input does not matter.
    assert_eq!(
        percentile(&[50.0, 15.0, 40.0, 20.0, 35.0], 50.0),
        Some(35.0)
    );
}

fn measurement(goodput: f64, cpu: f64) -> Measurement {
    Measurement {
        goodput_mb_s: goodput,
        payload_bytes: (goodput * 1e6 * 10.0) as u64,
        seconds: 10.0,
        cpu_client_s: cpu,
        cpu_server_s: cpu,
        cpu_client_s_per_gb: cpu,
        cpu_server_s_per_gb: cpu,
        rss_client_bytes: 10 << 20,
        rss_server_bytes: 20 << 20,
        wire_up_bytes: 0,
        wire_down_bytes: 0,
        wire_ratio: 1.05,
        relay_packets: 0,
        relay_dropped: 0,
        rtt_samples: 10,
        rtt_p50_ms: Some(61.0),
        rtt_p99_ms: Some(80.0),
        load_average: Some(1.0),
    }
}

fn record(
    scenario: LinkScenario,
    pair: PairKind,
    run: u32,
    r: Result<Measurement, String>,
) -> RunRecord {
    record_dir(scenario, pair, Direction::Up, run, r)
}

fn record_dir(
    scenario: LinkScenario,
    pair: PairKind,
    direction: Direction,
    run: u32,
    r: Result<Measurement, String>,
) -> RunRecord {
    RunRecord {
        scenario,
        variant: KcpVariant::Default,
        pair,
        direction,
        run,
        result: r,
    }
}

fn sample_records() -> Vec<RunRecord> {
    vec![
        record(
            LinkScenario::Clean,
            PairKind::MkcpMkcp,
            0,
            Ok(measurement(50.0, 2.0)),
        ),
        record(
            LinkScenario::Clean,
            PairKind::MkcpMkcp,
            1,
            Ok(measurement(40.0, 3.0)),
        ),
        record(
            LinkScenario::Clean,
            PairKind::MkcpMkcp,
            2,
            Ok(measurement(60.0, 4.0)),
        ),
        record(
            LinkScenario::Clean,
            PairKind::V2rayV2ray,
            0,
            Ok(measurement(5.0, 30.0)),
        ),
        record(
            LinkScenario::Clean,
            PairKind::V2rayV2ray,
            1,
            Err("boom".into()),
        ),
        record(
            LinkScenario::Wan30,
            PairKind::MkcpMkcp,
            0,
            Ok(measurement(11.5, 5.0)),
        ),
        // Downloads of the clean cell, interleaved with nothing else.
        record_dir(
            LinkScenario::Clean,
            PairKind::MkcpMkcp,
            Direction::Down,
            0,
            Ok(measurement(33.0, 1.0)),
        ),
        record_dir(
            LinkScenario::Clean,
            PairKind::MkcpMkcp,
            Direction::Down,
            1,
            Ok(measurement(35.0, 1.5)),
        ),
    ]
}

#[test]
fn summaries_take_medians_over_successful_runs() {
    let s = report::summarize(&sample_records());
    assert_eq!(s.len(), 4);
    let mm = &s[0];
    assert_eq!(
        (mm.scenario, mm.pair, mm.direction),
        (LinkScenario::Clean, PairKind::MkcpMkcp, Direction::Up)
    );
    assert_eq!((mm.ok, mm.total), (3, 3));
    assert_eq!(mm.goodput_mb_s, Some(50.0));
    assert_eq!(mm.cpu_total_s_per_gb, Some(6.0));
    assert_eq!(mm.rss_server_mib, Some(20.0));
    assert_eq!(mm.link_fraction, None, "no rate limit on the clean link");
    let vv = &s[1];
    assert_eq!((vv.ok, vv.total), (1, 2));
    assert_eq!(vv.first_error.as_deref(), Some("boom"));
    let wan = &s[2];
    assert!((wan.link_fraction.unwrap() - 0.92).abs() < 1e-9);
    // The downloads of the same cell are a summary of their own.
    let down = &s[3];
    assert_eq!(
        (down.scenario, down.pair, down.direction),
        (LinkScenario::Clean, PairKind::MkcpMkcp, Direction::Down)
    );
    assert_eq!((down.ok, down.total), (2, 2));
    assert_eq!(down.goodput_mb_s, Some(34.0));
    assert_eq!(down.cpu_total_s_per_gb, Some(2.5));
}

#[test]
fn markdown_table_has_one_row_per_cell() {
    let s = report::summarize(&sample_records());
    let t = report::markdown_table(&s);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2 + 4);
    assert!(lines[0].starts_with("| link | kcp | client → server | direction | goodput MB/s |"));
    let cols = |l: &str| l.matches('|').count();
    assert!(lines.iter().all(|l| cols(l) == cols(lines[0])));
    assert!(lines[2]
        .contains("| clean loopback | default | mkcp → mkcp | up | 50.00 | – | 3.0 | 3.0 |"));
    assert!(lines[3].contains("| v2ray → v2ray | up |"));
    assert!(lines[3].contains("| 1/2 |"));
    assert!(lines[4].contains("| up | 11.50 | 92 % |"));
    assert!(lines[5]
        .contains("| clean loopback | default | mkcp → mkcp | down | 34.00 | – | 1.2 | 1.2 |"));
}

#[test]
fn targets_are_judged_from_the_medians() {
    let s = report::summarize(&sample_records());
    let t = report::targets_section(&s);
    // 50 / 5 = 10x the goodput at 6 / 60 = 0.1 of the CPU per GB.
    assert!(
        t.contains("goodput 10.00 × V2Ray↔V2Ray's (target ≥ 5×: met)"),
        "{t}"
    );
    assert!(
        t.contains("CPU per GB 0.10 of V2Ray's (target ≤ 0.33: met)"),
        "{t}"
    );
    assert!(t.contains("goodput 92 % of the link rate (target ≥ 90 %: met); wire/payload 1.050 (target ≤ 1.10: met)"), "{t}");
    let f = report::failures(&sample_records());
    assert_eq!(f.trim(), "- clean / default / v2ray-v2ray / up run 2: boom");
}

#[test]
fn charts_are_svg_with_every_value() {
    let s = report::summarize(&sample_records());
    for m in &chart::METRICS {
        let svg = chart::render(m, &s).unwrap();
        assert!(svg.starts_with("<svg"), "{}", m.file);
        assert!(
            svg.contains(m.title.split(',').next().unwrap()),
            "{}",
            m.file
        );
        assert!(svg.contains("mkcp → mkcp"));
    }
    let goodput = chart::render(&chart::METRICS[0], &s).unwrap();
    for v in ["50.00", "5.00", "11.50"] {
        assert!(goodput.contains(&format!(">\n{v}\n<")), "{v} missing");
    }
    // A pair with no data in a panel is marked, not drawn as zero.
    assert!(goodput.contains(">\nn/a\n<"));
    // Downloads are drawn next to the uploads, in a lighter shade, with a legend.
    assert!(goodput.contains(">\n34.00\n<"), "download bar missing");
    assert!(goodput.contains("down: server → client"));
    assert!(goodput.contains("up: client → server"));
    assert!(goodput.contains("#1F77B4") || goodput.contains("#1f77b4"));
    assert!(goodput.contains("#8FBBD9") || goodput.contains("#8fbbd9"));
}

#[test]
fn charts_of_uploads_only_have_no_download_legend() {
    let ups: Vec<RunRecord> = sample_records()
        .into_iter()
        .filter(|r| r.direction == Direction::Up)
        .collect();
    let svg = chart::render(&chart::METRICS[0], &report::summarize(&ups)).unwrap();
    assert!(svg.contains("up: client → server"));
    assert!(!svg.contains("down: server → client"));
}

#[test]
fn results_round_trip_through_json() {
    let records = sample_records();
    let json = serde_json::to_string(&records).unwrap();
    let back: Vec<RunRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, records);
    assert!(json.contains("\"pair\":\"mkcp-mkcp\""));
    assert!(json.contains("\"direction\":\"down\""));
    // Records written before downloads existed are uploads.
    let old = r#"{"scenario":"clean","variant":"default","pair":"mkcp-mkcp","run":0,"result":{"Err":"x"}}"#;
    let r: RunRecord = serde_json::from_str(old).unwrap();
    assert_eq!(r.direction, Direction::Up);
}

#[test]
fn report_from_rewrites_the_report_of_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::json!({
        "runs": 3,
        "duration_s": 10.0,
        "cpus": 2,
        "records": sample_records(),
    });
    let src = dir.path().join("old.json");
    std::fs::write(&src, json.to_string()).unwrap();
    let out = dir.path().join("out");
    let args = parse(&[
        "--report-from",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    mkcp_bench::run_blocking(&args, &AtomicBool::new(false)).unwrap();
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| clean loopback | default | mkcp → mkcp | up | 50.00 |"),
        "{md}"
    );
    assert!(md.contains("- machine: 2 CPU(s)"), "{md}");
    assert!(md.contains("## Failed runs"));
    assert!(out.join("goodput.svg").is_file());
    let back: mkcp_bench::ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(back.records, sample_records());
    assert_eq!(back.summaries.len(), 4);
}

/// One second of mkcp↔mkcp on the clean link each way (an upload, then a download
/// checked byte for byte), through the real binary.
/// Run with `cargo build -p mkcp-cli && MKCP_BIN=$PWD/target/debug/mkcp
/// cargo test -p mkcp-bench --test pure -- --include-ignored`.
#[test]
#[ignore = "needs the built mkcp binary (MKCP_BIN or next to the test executable)"]
fn smoke_one_tiny_scenario() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap().to_string();
    let args = parse(&[
        "--runs",
        "1",
        "--scenarios",
        "clean",
        "--kcp",
        "default",
        "--pairs",
        "mkcp-mkcp",
        "--directions",
        "up,down",
        "--duration",
        "1s",
        "--rtt-samples",
        "10",
        "--rtt-time",
        "2s",
        "--out",
        &out_arg,
    ])
    .unwrap();
    mkcp_bench::run_blocking(&args, &AtomicBool::new(false)).unwrap();
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    for d in ["up", "down"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| clean loopback | default | mkcp → mkcp | {d} |")))
            .unwrap_or_else(|| panic!("no {d} row:\n{md}"));
        assert!(row.contains("| 1/1 |"), "the {d} run failed:\n{md}");
    }
    assert!(out.path().join("goodput.svg").is_file());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    for (r, d) in records.iter().zip(["up", "down"]) {
        assert_eq!(r["direction"], d);
        let m = &r["result"]["Ok"];
        assert!(m["goodput_mb_s"].as_f64().unwrap() > 0.0, "{d}: {r}");
        assert!(m["payload_bytes"].as_u64().unwrap() > 0, "{d}: {r}");
        assert!(m["wire_ratio"].as_f64().unwrap() >= 1.0, "{d}: {r}");
    }
}
