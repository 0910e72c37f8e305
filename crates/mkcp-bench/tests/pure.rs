//! The bench crate's pure parts: argument parsing, statistics, summaries, the markdown
//! report and the charts; plus a smoke test of one tiny scenario (ignored: it needs the
//! built `mkcp` binary).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use mkcp_bench::ceiling::Ceilings;
use mkcp_bench::limits::{self, jain, payload_share};
use mkcp_bench::report::{self, EchoStats, Measurement, RunRecord};
use mkcp_bench::stats::{median, percentile};
use mkcp_bench::{chart, BenchArgs, Direction, KcpVariant, LinkScenario, PairKind, Workload};
use mkcp_v2ray::{HeaderType, KcpParams};

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
    // No --workloads: bulk everywhere, the new workloads on the rate-limited links.
    assert!(a.workloads.is_empty());
    assert_eq!(
        Workload::for_scenario(LinkScenario::Wan30, &a.workloads),
        Workload::ALL
    );
    assert_eq!(
        Workload::for_scenario(LinkScenario::Wan100, &a.workloads),
        Workload::ALL
    );
    for sc in [LinkScenario::Clean, LinkScenario::Direct] {
        assert_eq!(Workload::for_scenario(sc, &a.workloads), [Workload::Bulk]);
    }
    // Named workloads run on every link named.
    assert_eq!(
        Workload::for_scenario(
            LinkScenario::Direct,
            &[Workload::Streams, Workload::Bulk, Workload::Streams]
        ),
        [Workload::Streams, Workload::Bulk]
    );
    assert_eq!(a.streams, 4);
}

#[test]
fn workloads_streams_and_direct_parse() {
    let a = parse(&[
        "--workloads",
        "echo-load,streams",
        "--streams",
        "8",
        "--scenarios",
        "direct",
    ])
    .unwrap();
    assert_eq!(a.workloads, [Workload::EchoLoad, Workload::Streams]);
    assert_eq!(a.streams, 8);
    assert_eq!(a.scenarios, [LinkScenario::Direct]);
    assert!(parse(&["--workloads", "ping"]).is_err());
    assert!(parse(&["--streams", "1"]).is_err(), "one stream is bulk");
    assert!(parse(&["--streams", "65"]).is_err());
    // The new workloads are uploads only; bulk follows --directions.
    let both = [Direction::Up, Direction::Down];
    assert_eq!(Workload::Bulk.directions(&both), both);
    assert_eq!(Workload::EchoLoad.directions(&both), [Direction::Up]);
    assert_eq!(
        Workload::Streams.directions(&[Direction::Down]),
        [Direction::Up]
    );
    assert!(!LinkScenario::Direct.has_relay());
    assert!(LinkScenario::Clean.has_relay());
}

#[test]
fn the_payload_share_follows_the_kcp_settings() {
    let d = KcpParams::default();
    assert_eq!(limits::mss(&d), 1326);
    assert_eq!(limits::full_datagram(&d), 1350);
    assert!((payload_share(&d) - 1326.0 / 1350.0).abs() < 1e-12);
    // A seed: the tag is counted in the mss, the nonce is not (datagrams of mtu + 12).
    let seeded = KcpParams::with(HeaderType::None, Some(""));
    assert_eq!(limits::mss(&seeded), 1316);
    assert_eq!(limits::full_datagram(&seeded), 1362);
    // A 4-byte header.
    let srtp = KcpParams::with(HeaderType::Srtp, None);
    assert_eq!(limits::mss(&srtp), 1322);
    assert_eq!(limits::full_datagram(&srtp), 1350);
    assert_eq!(
        payload_share(&KcpVariant::Congestion.params()),
        payload_share(&d)
    );
}

#[test]
fn the_limit_is_rate_times_delivery_times_payload_share() {
    let share = 1326.0 / 1350.0;
    // Issue 12: 100 Mbit/s x 0.98 x 1326/1350 = 11.47 MiB/s.
    let wan30 = LinkScenario::Wan30.limit_mb_s(share).unwrap();
    assert!((wan30 - 12.5 * 0.98 * share).abs() < 1e-9);
    assert!((wan30 * 1e6 / 1048576.0 - 11.47).abs() < 0.005, "{wan30}");
    let wan100 = LinkScenario::Wan100.limit_mb_s(share).unwrap();
    assert!((wan100 - 2.5 * 0.95 * share).abs() < 1e-9);
    assert_eq!(LinkScenario::Clean.limit_mb_s(share), None);
    assert_eq!(LinkScenario::Direct.limit_mb_s(share), None);
    assert_eq!(LinkScenario::Wan30.path_rtt_ms(), 60.0);
    assert_eq!(LinkScenario::Direct.path_rtt_ms(), 0.0);
}

#[test]
fn jain_index_is_one_when_fair_and_one_over_n_when_not() {
    assert_eq!(jain(&[3.0, 3.0, 3.0, 3.0]), Some(1.0));
    assert_eq!(jain(&[4.0, 0.0, 0.0, 0.0]), Some(0.25));
    // (1+2+3+4)^2 / (4 x 30) = 100/120.
    assert!((jain(&[1.0, 2.0, 3.0, 4.0]).unwrap() - 100.0 / 120.0).abs() < 1e-12);
    assert_eq!(jain(&[]), None);
    assert_eq!(jain(&[0.0, 0.0]), None);
}

#[test]
fn echo_stats_are_nearest_rank_percentiles() {
    let v: Vec<f64> = (1..=200).map(f64::from).collect();
    let e = EchoStats::of(&v);
    assert_eq!(e.samples, 200);
    assert_eq!(e.p50_ms, Some(100.0));
    assert_eq!(e.p90_ms, Some(180.0));
    assert_eq!(e.p99_ms, Some(198.0));
    assert_eq!(e.max_ms, Some(200.0));
    assert_eq!(EchoStats::of(&[]).p50_ms, None);
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
fn sized_transfers_parse_and_are_bulk_only() {
    assert_eq!(parse(&[]).unwrap().bytes, None);
    assert_eq!(parse(&["--bytes", "64MiB"]).unwrap().bytes, Some(64 << 20));
    assert!(parse(&["--bytes", "0MiB"]).is_err(), "nothing to move");
    assert!(parse(&["--bytes", "lots"]).is_err());
    let out = tempfile::tempdir().unwrap();
    for w in ["streams", "bulk,echo-load"] {
        let args = parse(&[
            "--bytes",
            "1MiB",
            "--workloads",
            w,
            "--out",
            out.path().to_str().unwrap(),
        ])
        .unwrap();
        let e = mkcp_bench::run_blocking(&args, &AtomicBool::new(false)).unwrap_err();
        assert!(
            e.to_string().contains("--bytes sizes bulk transfers only"),
            "{w}: {e}"
        );
    }
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
        wire_ratio: Some(1.05),
        relay_packets: 0,
        relay_dropped: 0,
        rtt_samples: 10,
        rtt_p50_ms: Some(61.0),
        rtt_p99_ms: Some(80.0),
        load_average: Some(1.0),
        ..Measurement::default()
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
        workload: Workload::Bulk,
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
    assert!(lines[0].starts_with(
        "| link | kcp | client → server | direction | goodput MB/s | limit MB/s | % of limit |"
    ));
    let cols = |l: &str| l.matches('|').count();
    assert!(lines.iter().all(|l| cols(l) == cols(lines[0])));
    assert!(lines[2]
        .contains("| clean loopback | default | mkcp → mkcp | up | 50.00 | – | – | 3.0 | 3.0 |"));
    assert!(lines[3].contains("| v2ray → v2ray | up |"));
    assert!(lines[3].contains("| 1/2 |"));
    // 11.5 of 12.5 x 0.98 x 1326/1350 = 12.03 MB/s; echo p99 80 ms on a 60 ms path.
    assert!(
        lines[4].contains("| up | 11.50 | 12.03 | 96 % |"),
        "{}",
        lines[4]
    );
    assert!(
        lines[4].contains("| 61.0 | 80.0 | 60 | 1.33 |"),
        "{}",
        lines[4]
    );
    assert!(lines[5]
        .contains("| clean loopback | default | mkcp → mkcp | down | 34.00 | – | – | 1.2 | 1.2 |"));
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
    let mut all = sample_records();
    all.extend(workload_records());
    let t12 = report::issue12_section(&report::summarize(&all));
    assert!(
        t12.contains("- 30 ms, 2 %, 100 Mbit/s / default / bulk up: goodput 96 % of the limit (≥ 95 %: met); wire/payload 1.050 (≤ 1.08: met); idle echo p99 / RTT 1.33 (≤ 1.5: met)"),
        "{t12}"
    );
    assert!(
        t12.contains("/ echo-load up: echo under load p50 − RTT 10.0 ms (≤ 15: met); p99 / RTT 2.50 (≤ 2: not met)"),
        "{t12}"
    );
    assert!(
        t12.contains("/ streams up: 4 streams: 100 % of the limit together (≥ 90 %: met); Jain 0.947 (≥ 0.9: met); queue drops 2.00 % (≤ 1 %: not met)"),
        "{t12}"
    );
    assert!(!t12.contains("clean"), "{t12}");
    let f = report::failures(&sample_records());
    assert_eq!(
        f.trim(),
        "- clean / default / v2ray-v2ray / bulk up run 2: boom"
    );
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
    // The link's limit (not its raw rate) is the dashed line of goodput, the path RTT
    // that of the echoes.
    assert!(goodput.contains("limit 12.0"), "no limit line");
    let p99 = chart::render(&chart::METRICS[4], &s).unwrap();
    assert!(p99.contains("path RTT 60.0"), "no path RTT line");
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
    // ... and bulk runs; their measurements lack the new fields.
    assert_eq!(r.workload, Workload::Bulk);
    let old_ok = r#"{"scenario":"wan30","variant":"default","pair":"mkcp-mkcp","run":0,"result":{"Ok":
        {"goodput_mb_s":10.0,"payload_bytes":1,"seconds":1.0,"cpu_client_s":1.0,"cpu_server_s":1.0,
         "cpu_client_s_per_gb":1.0,"cpu_server_s_per_gb":1.0,"rss_client_bytes":1,"rss_server_bytes":1,
         "wire_up_bytes":1,"wire_down_bytes":1,"wire_ratio":1.07,"relay_packets":1,"relay_dropped":0,
         "rtt_samples":0,"rtt_p50_ms":null,"rtt_p99_ms":null,"load_average":null}}}"#;
    let r: RunRecord = serde_json::from_str(old_ok).unwrap();
    let m = r.result.unwrap();
    assert_eq!(m.wire_ratio, Some(1.07));
    assert!(m.streams_mb_s.is_empty() && m.load_echo.is_none());
    assert_eq!(m.queue_drop_fraction(), None);
}

fn workload_record(
    scenario: LinkScenario,
    pair: PairKind,
    workload: Workload,
    run: u32,
    m: Measurement,
) -> RunRecord {
    RunRecord {
        workload,
        ..record(scenario, pair, run, Ok(m))
    }
}

fn echo_load_measurement(goodput: f64, p50: f64, p99: f64) -> Measurement {
    Measurement {
        load_echo: Some(EchoStats {
            samples: 40,
            p50_ms: Some(p50),
            p90_ms: Some(p50 + 10.0),
            p99_ms: Some(p99),
            max_ms: Some(p99 + 5.0),
        }),
        ..measurement(goodput, 5.0)
    }
}

fn streams_measurement(per: &[f64], dropped: u64, offered: u64) -> Measurement {
    Measurement {
        streams_mb_s: per.to_vec(),
        queue_dropped: dropped,
        queue_offered: offered,
        ..measurement(per.iter().sum(), 5.0)
    }
}

fn workload_records() -> Vec<RunRecord> {
    let w30 = LinkScenario::Wan30;
    let mm = PairKind::MkcpMkcp;
    vec![
        workload_record(
            w30,
            mm,
            Workload::EchoLoad,
            0,
            echo_load_measurement(11.0, 70.0, 150.0),
        ),
        workload_record(
            w30,
            mm,
            Workload::EchoLoad,
            1,
            echo_load_measurement(10.0, 66.0, 120.0),
        ),
        workload_record(
            w30,
            mm,
            Workload::EchoLoad,
            2,
            echo_load_measurement(9.0, 90.0, 210.0),
        ),
        workload_record(
            w30,
            mm,
            Workload::Streams,
            0,
            streams_measurement(&[3.0, 3.0, 3.0, 3.0], 10, 1000),
        ),
        workload_record(
            w30,
            mm,
            Workload::Streams,
            1,
            streams_measurement(&[4.0, 2.0, 3.0, 3.0], 30, 1000),
        ),
        workload_record(
            w30,
            mm,
            Workload::Streams,
            2,
            streams_measurement(&[2.0, 4.0, 3.0, 3.0], 20, 1000),
        ),
    ]
}

#[test]
fn echo_load_rows_show_percentiles_next_to_the_path_rtt() {
    let s = report::summarize(&workload_records());
    assert_eq!(s.len(), 2);
    let e = &s[0];
    assert_eq!(e.workload, Workload::EchoLoad);
    let st = e.load_echo.as_ref().unwrap();
    assert_eq!(
        (st.p50_ms, st.p99_ms, st.max_ms),
        (Some(70.0), Some(150.0), Some(155.0))
    );
    assert_eq!(e.load_p99_over_path(), Some(2.5));
    let t = report::echo_load_table(&s);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    let cols = |l: &str| l.matches('|').count();
    assert!(lines.iter().all(|l| cols(l) == cols(lines[0])));
    assert!(
        lines[2].contains(
            "| 30 ms, 2 %, 100 Mbit/s | default | mkcp → mkcp | 10.00 | 12.03 | 83 % | 40 | 70.0 | 80.0 | 150.0 | 155.0 | 60 | 10.0 | 2.50 | 3/3 |"
        ),
        "{t}"
    );
    // The bulk table leaves the other workloads out.
    assert_eq!(report::markdown_table(&s).lines().count(), 2);
}

#[test]
fn streams_rows_show_each_stream_jain_and_queue_drops() {
    let s = report::summarize(&workload_records());
    let r = &s[1];
    assert_eq!(r.workload, Workload::Streams);
    // Per index medians: [3, 3, 3, 3]; Jain medians of 1.0, 0.947.., 0.947..
    assert_eq!(r.streams_mb_s, [3.0, 3.0, 3.0, 3.0]);
    let uneven = jain(&[4.0, 2.0, 3.0, 3.0]).unwrap();
    assert!((r.jain.unwrap() - uneven).abs() < 1e-12);
    assert_eq!(r.queue_drop_fraction, Some(0.02));
    assert_eq!(r.goodput_mb_s, Some(12.0));
    let t = report::streams_table(&s);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(
        lines[2].contains(
            "| mkcp → mkcp | 4 | 12.00 | 12.03 | 100 % | 3.00 / 3.00 / 3.00 / 3.00 | 0.947 | 2.00 % | 1.050 | 10.0 | 3/3 |"
        ),
        "{t}"
    );
    let all = report::all_tables(&s, &[]);
    assert!(all.contains("## Echo under load"));
    assert!(all.contains("## Concurrent uploads through one bottleneck"));
    assert!(!all.contains("## Bulk transfer"));
    assert!(!all.contains("## Ceilings"));
}

#[test]
fn the_direct_scenario_prints_its_ceilings() {
    let records = vec![record(
        LinkScenario::Direct,
        PairKind::MkcpMkcp,
        0,
        Ok(Measurement {
            wire_ratio: None,
            ..measurement(200.0, 3.0)
        }),
    )];
    let s = report::summarize(&records);
    assert_eq!(s[0].wire_ratio, None);
    assert_eq!(s[0].limit_mb_s, None);
    assert_eq!(s[0].path_rtt_ms, None);
    let c = |run, udp, tcp| Ceilings {
        run,
        raw_udp_mb_s: udp,
        raw_udp_cpu_s_per_gb: 2.0,
        raw_udp_rx_cpu_s_per_gb: 1.25,
        raw_udp_lost: 0.01,
        tcp_mb_s: tcp,
        tcp_cpu_s_per_gb: 1.0,
    };
    let ceilings = [c(0, 800.0, 400.0), c(1, 900.0, 300.0), c(2, 850.0, 250.0)];
    let t = report::ceilings_section(&ceilings, &s);
    assert!(
        t.contains("| median | 850.0 | 2.00 | 1.25 | 1.0 % | 300.0 | 1.00 |"),
        "{t}"
    );
    assert!(
        t.contains("- default / mkcp → mkcp / bulk up: 200.0 MB/s = 67 % of plain TCP; CPU 6.00 s/GB (client + server) = 3.00 × raw UDP's"),
        "{t}"
    );
    assert!(report::markdown_table(&s)
        .contains("| direct loopback, no relay | default | mkcp → mkcp | up | 200.00 | – | – |"));
    assert!(report::ceilings_section(&[], &s).is_empty());
    assert!(report::all_tables(&s, &ceilings).contains("## Ceilings of the direct scenario"));
}

#[test]
fn the_new_workloads_have_charts() {
    let mut records = sample_records();
    records.extend(workload_records());
    let s = report::summarize(&records);
    let charts = chart::render_all(&s).unwrap();
    let names: Vec<&str> = charts.iter().map(|c| c.0).collect();
    assert!(names.contains(&"goodput"));
    assert!(names.contains(&chart::ECHO_LOAD_FILE));
    assert!(names.contains(&chart::STREAMS_FILE));
    let echo = &charts
        .iter()
        .find(|c| c.0 == chart::ECHO_LOAD_FILE)
        .unwrap()
        .1;
    assert!(echo.starts_with("<svg"));
    for v in ["70.0", "80.0", "150.0", "155.0"] {
        assert!(echo.contains(&format!(">\n{v}\n<")), "{v} missing");
    }
    assert!(echo.contains("path RTT 60"));
    assert!(echo.contains("p99/RTT 2.50"));
    let streams = &charts
        .iter()
        .find(|c| c.0 == chart::STREAMS_FILE)
        .unwrap()
        .1;
    assert!(streams.contains(">\n3.00\n<"));
    assert!(streams.contains("Jain 0.947"));
    assert!(streams.contains("limit / 4 = 3.01"));
    // The bulk charts draw bulk runs only: no panel for wan30 streams in goodput.svg
    // beyond the bulk wan30 cell (11.50), and no 12.00 aggregate bar.
    let goodput = &charts.iter().find(|c| c.0 == "goodput").unwrap().1;
    assert!(!goodput.contains(">\n12.00\n<"));
    // Bulk only: no extra charts.
    let bulk_only = chart::render_all(&report::summarize(&sample_records())).unwrap();
    assert_eq!(bulk_only.len(), chart::METRICS.len());
}

#[test]
fn report_from_rewrites_the_report_of_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::json!({
        "runs": 3,
        "duration_s": 10.0,
        "cpus": 2,
        "records": sample_records(),
        "ceilings": [{"run": 0, "raw_udp_mb_s": 800.0, "raw_udp_cpu_s_per_gb": 2.0,
                      "raw_udp_lost": 0.0, "tcp_mb_s": 400.0, "tcp_cpu_s_per_gb": 1.0}],
        "ceiling_failures": ["- ceilings run 2: no raw UDP datagram arrived"],
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
    assert!(
        md.contains("- ceilings run 2: no raw UDP datagram arrived"),
        "{md}"
    );
    // Ceilings of files without the receiver's part read it as 0.
    assert!(
        md.contains("| 1 | 800.0 | 2.00 | 0.00 | 0.0 % | 400.0 | 1.00 |"),
        "{md}"
    );
    assert!(out.join("goodput.svg").is_file());
    let back: mkcp_bench::ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(back.records, sample_records());
    assert_eq!(back.summaries.len(), 4);
}

/// Runs mkcp↔mkcp on the clean link once each way with `extra` arguments through the
/// real binary; returns results.md and results.json.
fn smoke_clean_both_ways(extra: &[&str]) -> (String, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap().to_string();
    let mut argv = vec![
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
        "--out",
        &out_arg,
    ];
    argv.extend_from_slice(extra);
    let args = parse(&argv).unwrap();
    mkcp_bench::run_blocking(&args, &AtomicBool::new(false)).unwrap();
    assert!(out.path().join("goodput.svg").is_file());
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
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
    (md, json)
}

/// One second of mkcp↔mkcp on the clean link each way (an upload, then a download
/// checked byte for byte), through the real binary.
/// Run with `cargo build -p mkcp-cli && MKCP_BIN=$PWD/target/debug/mkcp
/// cargo test -p mkcp-bench --test pure -- --include-ignored`.
#[test]
#[ignore = "needs the built mkcp binary (MKCP_BIN or next to the test executable)"]
fn smoke_one_tiny_scenario() {
    let (md, _) = smoke_clean_both_ways(&[
        "--workloads",
        "bulk",
        "--duration",
        "1s",
        "--rtt-samples",
        "10",
        "--rtt-time",
        "2s",
    ]);
    for d in ["up", "down"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| clean loopback | default | mkcp → mkcp | {d} |")))
            .unwrap_or_else(|| panic!("no {d} row:\n{md}"));
        assert!(row.contains("| 1/1 |"), "the {d} run failed:\n{md}");
    }
}

/// A sized transfer each way (1 MiB): the run ends when the receiver has it all, every
/// byte counted. Run as the test above.
#[test]
#[ignore = "needs the built mkcp binary (MKCP_BIN or next to the test executable)"]
fn smoke_a_sized_transfer_each_way() {
    let (md, json) =
        smoke_clean_both_ways(&["--bytes", "1MiB", "--duration", "20s", "--rtt-samples", "0"]);
    assert!(md.contains("bulk transfers of 1048576 bytes"), "{md}");
    assert_eq!(json["bytes"], 1 << 20);
    for r in json["records"].as_array().unwrap() {
        let m = &r["result"]["Ok"];
        assert_eq!(m["payload_bytes"].as_u64(), Some(1 << 20), "{r}");
        assert!(m["seconds"].as_f64().unwrap() < 20.0, "{r}");
    }
}

/// Each new workload once, on the 30 ms link and on the direct scenario (with its
/// ceilings), one second each, through the real binary. Run as the test above.
#[test]
#[ignore = "needs the built mkcp binary (MKCP_BIN or next to the test executable)"]
fn smoke_each_new_workload_once() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap().to_string();
    let args = parse(&[
        "--runs",
        "1",
        "--scenarios",
        "wan30,direct",
        "--kcp",
        "default",
        "--pairs",
        "mm",
        "--workloads",
        "echo-load,streams,bulk",
        "--streams",
        "3",
        "--directions",
        "up",
        "--duration",
        "1500ms",
        "--rtt-samples",
        "5",
        "--rtt-time",
        "2s",
        "--out",
        &out_arg,
    ])
    .unwrap();
    mkcp_bench::run_blocking(&args, &AtomicBool::new(false)).unwrap();
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(!md.contains("## Failed runs"), "{md}");
    let file: mkcp_bench::ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(file.records.len(), 6, "{md}");
    assert_eq!(file.meta.ceilings.len(), 1, "{md}");
    let c = &file.meta.ceilings[0];
    assert!(c.raw_udp_mb_s > 0.0 && c.tcp_mb_s > 0.0, "{c:?}");
    for r in &file.records {
        let m = r.result.as_ref().unwrap();
        assert!(m.goodput_mb_s > 0.0, "{r:?}");
        assert_eq!(m.wire_ratio.is_some(), r.scenario.has_relay(), "{r:?}");
        match r.workload {
            Workload::EchoLoad => {
                let e = m.load_echo.as_ref().unwrap();
                assert!(e.samples > 0 && e.p50_ms.unwrap() > 0.0, "{r:?}");
            }
            Workload::Streams => {
                assert_eq!(m.streams_mb_s.len(), 3, "{r:?}");
                assert!(m.streams_mb_s.iter().all(|&g| g > 0.0), "{r:?}");
                if r.scenario.has_relay() {
                    assert!(m.queue_offered > 0, "{r:?}");
                }
            }
            Workload::Bulk => assert!(m.rtt_samples > 0, "{r:?}"),
        }
    }
    assert!(md.contains("## Echo under load"), "{md}");
    assert!(
        md.contains("## Concurrent uploads through one bottleneck"),
        "{md}"
    );
    assert!(md.contains("## Ceilings of the direct scenario"), "{md}");
    assert!(
        md.contains("| direct loopback, no relay | default | mkcp → mkcp | up |"),
        "{md}"
    );
    for f in ["goodput.svg", "echo_under_load.svg", "streams.svg"] {
        assert!(out.path().join(f).is_file(), "{f}");
    }
}

#[test]
fn the_ceilings_measure_loopback() {
    let target = mkcp_bench::target::Target::start().unwrap();
    let c = mkcp_bench::ceiling::measure(
        &target,
        2,
        Duration::from_millis(300),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(c.run, 2);
    assert!(c.raw_udp_mb_s > 0.0 && c.tcp_mb_s > 0.0, "{c:?}");
    // Per-thread CPU time was found (no error) and charged to the bytes moved.
    assert!(
        c.raw_udp_cpu_s_per_gb.is_finite() && c.raw_udp_cpu_s_per_gb >= 0.0,
        "{c:?}"
    );
    assert!(c.raw_udp_rx_cpu_s_per_gb <= c.raw_udp_cpu_s_per_gb, "{c:?}");
    // One thread uses at most one CPU second per second: the receiver's figure is its
    // own, not the whole process's (CPU s/GB x GB/s <= 1, with slack for sampling).
    assert!(
        c.raw_udp_rx_cpu_s_per_gb * c.raw_udp_mb_s / 1e3 <= 1.05,
        "{c:?}"
    );
    assert!((0.0..1.0).contains(&c.raw_udp_lost), "{c:?}");
    assert!(c.tcp_cpu_s_per_gb.is_finite(), "{c:?}");
    // A cancelled measurement stops.
    assert!(mkcp_bench::ceiling::measure(
        &target,
        0,
        Duration::from_secs(30),
        &AtomicBool::new(true)
    )
    .is_err());
}
