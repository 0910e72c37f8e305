//! SVG bar charts of the medians (plotters, SVG backend only: no system fonts needed,
//! text is left to the SVG viewer).
//!
//! Each chart is a row of panels, one per (link, kcp) cell, each with its own y scale
//! (goodput on a clean loopback and on a 20 Mbit/s link differ by orders of magnitude),
//! and one bar per endpoint pair and direction, labelled with its value: uploads (client →
//! server) in the pair's colour, downloads (server → client) in a light shade of it,
//! next to each other.
//!
//! The echo-under-load chart has one bar per pair and percentile (p50, p90, p99, max:
//! ever lighter shades of the pair's colour) with the path RTT dashed; the streams chart
//! one bar per pair and stream, with the link's limit shared out evenly dashed and each
//! pair's Jain index under its bars.
//!
//! The per-metric bar charts of the bulk runs are here; the grouped charts (echo under
//! load, streams) are in `grouped` (re-exported here).

mod grouped;

pub use grouped::{render_echo_load, render_streams};

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::args::{Direction, PairKind, Workload};
use crate::report::Summary;

/// Bar colours by pair, in [`PairKind::ALL`] order.
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xd6, 0x27, 0x28),
];

fn colour(pair: PairKind, direction: Direction) -> RGBColor {
    let i = PairKind::ALL.iter().position(|p| *p == pair).unwrap_or(0);
    let c = COLOURS[i % COLOURS.len()];
    match direction {
        Direction::Up => c,
        Direction::Down => lighten(c),
    }
}

/// Halfway to white.
fn lighten(c: RGBColor) -> RGBColor {
    let l = |v: u8| v + (255 - v) / 2;
    RGBColor(l(c.0), l(c.1), l(c.2))
}

/// The legend's label of a direction.
fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up: client → server",
        Direction::Down => "down: server → client (light)",
    }
}

/// One chart to draw: a metric of the summaries.
pub struct Metric {
    /// File name (without `.svg`).
    pub file: &'static str,
    /// Chart title.
    pub title: &'static str,
    /// Decimals of the value labels.
    pub decimals: usize,
    /// The value of a summary.
    pub value: fn(&Summary) -> Option<f64>,
    /// A reference level drawn as a dashed line in a panel, from any summary of the
    /// panel (the link's limit for goodput, the path RTT for echoes).
    pub reference: fn(&Summary) -> Option<f64>,
    /// What the dashed line is, in its label.
    pub reference_label: &'static str,
}

fn no_reference(_: &Summary) -> Option<f64> {
    None
}

/// The charts `mkcp bench` writes.
pub const METRICS: [Metric; 6] = [
    Metric {
        file: "goodput",
        title: "Goodput, MB/s (higher is better)",
        decimals: 2,
        value: |s| s.goodput_mb_s,
        reference: |s| s.limit_mb_s,
        reference_label: "limit",
    },
    Metric {
        file: "cpu_per_gb",
        title: "CPU seconds per GB, client + server (lower is better)",
        decimals: 1,
        value: |s| s.cpu_total_s_per_gb,
        reference: no_reference,
        reference_label: "",
    },
    Metric {
        file: "wire_ratio",
        title: "Wire bytes / payload bytes, both directions (lower is better)",
        decimals: 3,
        value: |s| s.wire_ratio,
        reference: no_reference,
        reference_label: "",
    },
    Metric {
        file: "rtt_p50",
        title: "Echo round trip p50, ms (lower is better)",
        decimals: 1,
        value: |s| s.rtt_p50_ms,
        reference: |s| s.path_rtt_ms,
        reference_label: "path RTT",
    },
    Metric {
        file: "rtt_p99",
        title: "Echo round trip p99, ms (lower is better)",
        decimals: 1,
        value: |s| s.rtt_p99_ms,
        reference: |s| s.path_rtt_ms,
        reference_label: "path RTT",
    },
    Metric {
        file: "peak_rss",
        title: "Peak RSS, client + server, MiB (lower is better)",
        decimals: 1,
        value: |s| match (s.rss_client_mib, s.rss_server_mib) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        },
        reference: no_reference,
        reference_label: "",
    },
];

/// Every chart of `summaries`: (file name without `.svg`, SVG document). The
/// [`METRICS`] of the bulk runs, then the echo-under-load and streams charts when those
/// workloads ran.
pub fn render_all(summaries: &[Summary]) -> Result<Vec<(&'static str, String)>> {
    let bulk: Vec<Summary> = summaries
        .iter()
        .filter(|s| s.workload == Workload::Bulk)
        .cloned()
        .collect();
    let mut out = Vec::new();
    if !bulk.is_empty() {
        for m in &METRICS {
            out.push((m.file, render(m, &bulk)?));
        }
    }
    if summaries.iter().any(|s| s.workload == Workload::EchoLoad) {
        out.push((ECHO_LOAD_FILE, render_echo_load(summaries)?));
    }
    if summaries.iter().any(|s| s.workload == Workload::Streams) {
        out.push((STREAMS_FILE, render_streams(summaries)?));
    }
    Ok(out)
}

/// File name of the echo-under-load chart.
pub const ECHO_LOAD_FILE: &str = "echo_under_load";
/// File name of the streams chart.
pub const STREAMS_FILE: &str = "streams";

/// Renders `metric` over `summaries` as an SVG document.
pub fn render(metric: &Metric, summaries: &[Summary]) -> Result<String> {
    // Panels: (scenario, variant) in order of first appearance; bars: (pair, direction).
    let mut cells = Vec::new();
    for s in summaries {
        if !cells.contains(&(s.scenario, s.variant)) {
            cells.push((s.scenario, s.variant));
        }
    }
    let mut pairs: Vec<PairKind> = Vec::new();
    for p in PairKind::ALL {
        if summaries.iter().any(|s| s.pair == p) {
            pairs.push(p);
        }
    }
    let directions: Vec<Direction> = Direction::ALL
        .into_iter()
        .filter(|d| summaries.iter().any(|s| s.direction == *d))
        .collect();
    let slots: Vec<(PairKind, Direction)> = pairs
        .iter()
        .flat_map(|p| directions.iter().map(move |d| (*p, *d)))
        .collect();
    let panels = cells.len().max(1);
    let panel_width = (60 + 42 * slots.len() as u32).max(220);
    let width = (panel_width * panels as u32).max(720);
    let height = 440;
    let legend_height = 56;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(36);
        let (body, legend) = rest.split_vertically(height - 36 - legend_height);
        top.draw(&Text::new(
            metric.title,
            (10, 10),
            ("sans-serif", 18).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        let areas = body.split_evenly((1, panels));
        for (area, (scenario, variant)) in areas.iter().zip(&cells) {
            let bars: Vec<((PairKind, Direction), Option<f64>)> = slots
                .iter()
                .map(|&(p, d)| {
                    let v = summaries
                        .iter()
                        .find(|s| {
                            s.scenario == *scenario
                                && s.variant == *variant
                                && s.pair == p
                                && s.direction == d
                        })
                        .and_then(metric.value)
                        .filter(|v| v.is_finite());
                    ((p, d), v)
                })
                .collect();
            let reference = summaries
                .iter()
                .filter(|s| s.scenario == *scenario && s.variant == *variant)
                .find_map(metric.reference);
            let max = bars
                .iter()
                .filter_map(|b| b.1)
                .chain(reference)
                .fold(0.0f64, f64::max);
            let ymax = if max > 0.0 { max * 1.2 } else { 1.0 };
            let caption = format!("{} / {}", scenario.describe(), variant);
            let mut chart = bar_panel(area, &caption, bars.len().max(1) as f64, ymax)?;
            let label_style = ("sans-serif", 10)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            for (i, ((pair, direction), v)) in bars.iter().enumerate() {
                let x0 = i as f64 + 0.12;
                let x1 = i as f64 + 0.88;
                match v {
                    Some(v) => {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x0, 0.0), (x1, *v)],
                                colour(*pair, *direction).filled(),
                            )))
                            .map_err(err)?;
                        chart
                            .draw_series(std::iter::once(Text::new(
                                format!("{v:.prec$}", prec = metric.decimals),
                                (i as f64 + 0.5, *v + ymax * 0.01),
                                label_style.clone(),
                            )))
                            .map_err(err)?;
                    }
                    None => {
                        chart
                            .draw_series(std::iter::once(Text::new(
                                "n/a",
                                (i as f64 + 0.5, ymax * 0.01),
                                label_style.clone(),
                            )))
                            .map_err(err)?;
                    }
                }
            }
            if let Some(r) = reference {
                let n = bars.len().max(1) as f64;
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, r), (n, r)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{} {r:.1}", metric.reference_label),
                        (n, r),
                        ("sans-serif", 10)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Right, VPos::Bottom)),
                    )))
                    .map_err(err)?;
            }
        }
        for (i, p) in pairs.iter().enumerate() {
            let x = 10 + 170 * i as i32;
            legend_entry(&legend, (x, 8), colour(*p, Direction::Up), &p.arrow())?;
        }
        let grey = RGBColor(0x60, 0x60, 0x60);
        for (i, d) in directions.iter().enumerate() {
            let x = 10 + 260 * i as i32;
            let swatch = match d {
                Direction::Up => grey,
                Direction::Down => lighten(grey),
            };
            legend_entry(&legend, (x, 32), swatch, direction_label(*d))?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One panel of bars: `slots` bar positions on x (no axis), 0..`ymax` on y with its
/// labels and light grid lines.
fn bar_panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    slots: f64,
    ymax: f64,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 13))
        .margin(6)
        .x_label_area_size(8)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..slots, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .light_line_style(TRANSPARENT)
        .y_labels(6)
        .y_label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// One legend entry at `at`: a colour swatch and its label.
fn legend_entry(
    legend: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    at: (i32, i32),
    swatch: RGBColor,
    label: &str,
) -> Result<()> {
    let (x, y) = at;
    legend
        .draw(&Rectangle::new([(x, y), (x + 14, y + 14)], swatch.filled()))
        .map_err(err)?;
    legend
        .draw(&Text::new(
            label.to_string(),
            (x + 20, y),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}
