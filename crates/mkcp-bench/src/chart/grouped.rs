//! The grouped-bar charts: echo under load (percentiles per pair) and concurrent
//! streams (one bar per stream per pair).

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::args::{Direction, KcpVariant, LinkScenario, PairKind, Workload};
use crate::report::Summary;

use super::{bar_panel, colour, err, legend_entry};

/// One bar of a [`Panel`].
struct Bar {
    value: Option<f64>,
    colour: RGBColor,
}

/// One panel of a grouped chart: bars in groups (one group per pair), a dashed
/// reference level, and a note under each group.
struct Panel {
    caption: String,
    groups: Vec<(Vec<Bar>, Option<String>)>,
    reference: Option<(f64, String)>,
}

/// Panels of the cells of `workload`, in order of first appearance, with `group(s)` the
/// bars (and note) of one summary, groups ordered as [`PairKind::ALL`].
fn panels_of(
    summaries: &[Summary],
    workload: Workload,
    group: impl Fn(&Summary) -> (Vec<Bar>, Option<String>),
    reference: impl Fn(&Summary) -> Option<(f64, String)>,
) -> Vec<Panel> {
    let mine: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.workload == workload)
        .collect();
    let mut cells: Vec<(LinkScenario, KcpVariant)> = Vec::new();
    for s in &mine {
        if !cells.contains(&(s.scenario, s.variant)) {
            cells.push((s.scenario, s.variant));
        }
    }
    cells
        .into_iter()
        .map(|(scenario, variant)| {
            let here: Vec<&&Summary> = mine
                .iter()
                .filter(|s| s.scenario == scenario && s.variant == variant)
                .collect();
            let mut groups = Vec::new();
            let mut refv = None;
            for p in PairKind::ALL {
                if let Some(s) = here.iter().find(|s| s.pair == p) {
                    groups.push(group(s));
                    refv = refv.or_else(|| reference(s));
                }
            }
            Panel {
                caption: format!("{} / {}", scenario.describe(), variant),
                groups,
                reference: refv,
            }
        })
        .collect()
}

/// `steps` shades of `c` from full to lighter (for percentiles, streams).
fn shade(c: RGBColor, i: usize, steps: usize) -> RGBColor {
    let f = if steps <= 1 {
        0.0
    } else {
        0.65 * i as f64 / (steps - 1) as f64
    };
    let l = |v: u8| (v as f64 + (255.0 - v as f64) * f).round() as u8;
    RGBColor(l(c.0), l(c.1), l(c.2))
}

fn pair_colour(p: PairKind) -> RGBColor {
    colour(p, Direction::Up)
}

/// The echo-under-load chart: p50, p90, p99 and max of the echoes per pair, the path
/// RTT dashed.
pub fn render_echo_load(summaries: &[Summary]) -> Result<String> {
    const LABELS: [&str; 4] = ["p50", "p90", "p99", "max"];
    let panels = panels_of(
        summaries,
        Workload::EchoLoad,
        |s| {
            let e = s.load_echo.clone().unwrap_or_default();
            let vals = [e.p50_ms, e.p90_ms, e.p99_ms, e.max_ms];
            let bars = vals
                .iter()
                .enumerate()
                .map(|(i, v)| Bar {
                    value: *v,
                    colour: shade(pair_colour(s.pair), i, LABELS.len()),
                })
                .collect();
            let note = s.load_p99_over_path().map(|r| format!("p99/RTT {r:.2}"));
            (bars, note)
        },
        |s| s.path_rtt_ms.map(|r| (r, format!("path RTT {r:.0}"))),
    );
    let legend = format!("bars per pair, dark to light: {} (ms)", LABELS.join(", "));
    render_panels(
        "Echo round trips under load, ms: 64-byte echoes on a second connection during an \
         upload (lower is better)",
        &panels,
        &legend,
        summaries,
        Workload::EchoLoad,
        1,
    )
}

/// The streams chart: each stream's goodput per pair, the link's limit divided by the
/// number of streams dashed, Jain's index under each pair's bars.
pub fn render_streams(summaries: &[Summary]) -> Result<String> {
    let panels = panels_of(
        summaries,
        Workload::Streams,
        |s| {
            let n = s.streams_mb_s.len();
            let bars = s
                .streams_mb_s
                .iter()
                .enumerate()
                .map(|(i, v)| Bar {
                    value: Some(*v),
                    colour: shade(pair_colour(s.pair), i, n),
                })
                .collect();
            let note = Some(match s.jain {
                Some(j) => format!("Jain {j:.3}"),
                None => "Jain –".into(),
            });
            (bars, note)
        },
        |s| {
            let n = s.streams_mb_s.len();
            match s.limit_mb_s {
                Some(l) if n > 0 => {
                    Some((l / n as f64, format!("limit / {n} = {:.2}", l / n as f64)))
                }
                _ => None,
            }
        },
    );
    render_panels(
        "Goodput of each concurrent upload, MB/s, and Jain's fairness index (higher is better)",
        &panels,
        "one bar per stream",
        summaries,
        Workload::Streams,
        2,
    )
}

/// Draws grouped-bar panels side by side with a pair legend and a note line.
fn render_panels(
    title: &str,
    panels: &[Panel],
    note: &str,
    summaries: &[Summary],
    workload: Workload,
    decimals: usize,
) -> Result<String> {
    let pairs: Vec<PairKind> = PairKind::ALL
        .into_iter()
        .filter(|p| {
            summaries
                .iter()
                .any(|s| s.workload == workload && s.pair == *p)
        })
        .collect();
    let most_bars = panels
        .iter()
        .map(|p| p.groups.iter().map(|g| g.0.len() + 1).sum::<usize>())
        .max()
        .unwrap_or(1);
    let panel_width = (60 + 30 * most_bars as u32).max(240);
    let width = (panel_width * panels.len().max(1) as u32).max(720);
    let height = 460;
    let legend_height = 56;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(36);
        let (body, legend) = rest.split_vertically(height - 36 - legend_height);
        top.draw(&Text::new(
            title,
            (10, 10),
            ("sans-serif", 16).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        let areas = body.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            // Slots: each group's bars, then a gap.
            let slots: usize = panel
                .groups
                .iter()
                .map(|g| g.0.len() + 1)
                .sum::<usize>()
                .max(1);
            let max = panel
                .groups
                .iter()
                .flat_map(|g| g.0.iter().filter_map(|b| b.value))
                .filter(|v| v.is_finite())
                .chain(panel.reference.as_ref().map(|r| r.0))
                .fold(0.0f64, f64::max);
            let ymax = if max > 0.0 { max * 1.25 } else { 1.0 };
            let mut chart = bar_panel(area, &panel.caption, slots as f64, ymax)?;
            let label_style = ("sans-serif", 9)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            let mut x = 0usize;
            for (bars, group_note) in &panel.groups {
                let first = x;
                for b in bars {
                    let (x0, x1) = (x as f64 + 0.1, x as f64 + 0.9);
                    match b.value.filter(|v| v.is_finite()) {
                        Some(v) => {
                            chart
                                .draw_series(std::iter::once(Rectangle::new(
                                    [(x0, 0.0), (x1, v)],
                                    b.colour.filled(),
                                )))
                                .map_err(err)?;
                            chart
                                .draw_series(std::iter::once(Text::new(
                                    format!("{v:.decimals$}"),
                                    (x as f64 + 0.5, v + ymax * 0.01),
                                    label_style.clone(),
                                )))
                                .map_err(err)?;
                        }
                        None => {
                            chart
                                .draw_series(std::iter::once(Text::new(
                                    "n/a",
                                    (x as f64 + 0.5, ymax * 0.01),
                                    label_style.clone(),
                                )))
                                .map_err(err)?;
                        }
                    }
                    x += 1;
                }
                if let Some(n) = group_note {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            n.clone(),
                            ((first + x) as f64 / 2.0, ymax * 0.97),
                            ("sans-serif", 10)
                                .into_font()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Center, VPos::Top)),
                        )))
                        .map_err(err)?;
                }
                x += 1;
            }
            if let Some((r, label)) = &panel.reference {
                let n = slots as f64;
                chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, *r), (n, *r)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        (n, *r),
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
            legend_entry(&legend, (x, 8), pair_colour(*p), &p.arrow())?;
        }
        legend
            .draw(&Text::new(
                note.to_string(),
                (10, 32),
                ("sans-serif", 13).into_font().color(&BLACK),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
