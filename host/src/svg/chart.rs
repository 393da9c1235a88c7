//! The sweep's line chart (`host sweep --chart FILE.svg`): one metric against the first
//! `--vary`'s values, one line per strategy (and per value of the other varies). The x
//! axis has one evenly spaced tick per value, labelled with the value as given, so a
//! doubling range (`1GiB..1TiB:x2`) reads as a log axis and a stepped one as linear.
//! A run whose step failed is drawn as a hollow point: the line goes on, the reader sees
//! where the kernel said no.

use std::collections::BTreeMap;

use hotplug_core::size::{format_size, thousands};

use super::Svg;
use crate::sweep::{Sweep, SweepRow};

/// What the chart plots (`host sweep --chart-metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChartMetric {
    /// Memmap of the hot-added and device memory over that memory, per cent.
    Share,
    /// Memmap of the hot-added and device memory, bytes.
    Memmap,
    /// The part of that memmap held in RAM, bytes.
    MemmapInRam,
    /// Hot-added memory present at the end, bytes: where a larger add stops succeeding.
    Added,
    /// Hot-added memory online at the end, bytes.
    Online,
    /// Free pages at the end.
    Free,
}

impl ChartMetric {
    /// The row's value (`None`: a share with nothing added, or a point that did not run).
    fn value(self, r: &SweepRow) -> Option<f64> {
        let m = r.metrics.as_ref()?;
        match self {
            ChartMetric::Share => m.memmap_share_percent,
            ChartMetric::Memmap => Some(m.memmap_bytes as f64),
            ChartMetric::MemmapInRam => Some(m.memmap_in_ram_bytes as f64),
            ChartMetric::Added => Some(m.added_bytes as f64),
            ChartMetric::Online => Some(m.online_bytes as f64),
            ChartMetric::Free => Some(m.free_pages as f64),
        }
    }

    /// The y axis's title.
    pub fn title(self) -> &'static str {
        match self {
            ChartMetric::Share => "memmap share of the hot-added and device memory",
            ChartMetric::Memmap => "memmap of the hot-added and device memory",
            ChartMetric::MemmapInRam => "memmap held in RAM",
            ChartMetric::Added => "hot-added memory present at the end",
            ChartMetric::Online => "hot-added memory online at the end",
            ChartMetric::Free => "free pages at the end",
        }
    }

    fn label(self, v: f64) -> String {
        match self {
            ChartMetric::Share => format!("{v:.2} %"),
            ChartMetric::Free => thousands(v.round() as u64),
            _ => format_size(v.round() as u64),
        }
    }
}

const COLOURS: [&str; 8] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"];
const W: f64 = 960.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 930.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 430.0;

const STYLE: &str = "text{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;fill:#222}\
.title{font-size:16px;font-weight:bold}.caption{font-size:12px;fill:#555}\
.tick{font-size:11px;fill:#444}.ytick{font-size:11px;fill:#444;text-anchor:end}.xtick{font-size:11px;fill:#444;text-anchor:middle}\
.legend-text{font-size:12px}.grid{stroke:#e3e3e3;stroke-width:1}.axis{stroke:#555;stroke-width:1}";

/// One line: its name and its points (x index, value, whether the run failed).
struct Series {
    name: String,
    points: Vec<(usize, f64, bool)>,
}

/// A rounded top for the y axis: 1, 2 or 5 times a power of ten at or above `max`.
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&t| t >= max).unwrap_or(10.0 * power)
}

/// A rounded top for a byte axis: a power of two at or above `max`.
fn byte_top(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    2f64.powf(max.log2().ceil())
}

/// The chart of `metric` over the sweep `s` of `config`.
pub fn line_chart(config: &str, s: &Sweep, metric: ChartMetric) -> String {
    let Some(x_vary) = s.varies.first() else { return String::new() };
    let mut by_name: BTreeMap<(usize, String), Series> = BTreeMap::new();
    let strategies: Vec<&str> = s.strategies.iter().map(|n| crate::report::sweep::strategy_name(n.as_deref())).collect();
    for r in &s.rows {
        let Some(x) = x_vary.values.iter().position(|v| *v == r.values[0]) else { continue };
        let strategy = crate::report::sweep::strategy_name(r.strategy.as_deref());
        let others: Vec<String> = s.varies.iter().zip(&r.values).skip(1).map(|(v, x)| format!("{}={x}", v.key)).collect();
        let name = if others.is_empty() { strategy.to_string() } else { format!("{strategy}, {}", others.join(", ")) };
        let order = strategies.iter().position(|n| *n == strategy).unwrap_or(0);
        let series = by_name.entry((order, name.clone())).or_insert_with(|| Series { name, points: Vec::new() });
        if let Some(v) = metric.value(r) {
            series.points.push((x, v, r.error.is_some()));
        }
    }
    let series: Vec<Series> = by_name.into_values().collect();
    let max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let top = match metric {
        ChartMetric::Share | ChartMetric::Free => nice_top(max),
        _ => byte_top(max),
    };

    let mut svg = Svg::new();
    svg.text(20.0, 28.0, "title", &format!("{} against {} ({config})", metric.title(), x_vary.key));
    svg.text(20.0, 48.0, "caption", "one point per run; a hollow point: a step of that run failed (its error is in the table and the CSV)");
    let n = x_vary.values.len().max(1);
    let x_at = |i: usize| if n == 1 { (LEFT + RIGHT) / 2.0 } else { LEFT + (RIGHT - LEFT) * i as f64 / (n - 1) as f64 };
    let y_at = |v: f64| BOTTOM - (BOTTOM - TOP) * (v / top).clamp(0.0, 1.0);
    for k in 0..=4 {
        let v = top * k as f64 / 4.0;
        let y = y_at(v);
        svg.raw(&format!(r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}"/>"#));
        svg.text(LEFT - 8.0, y + 4.0, "ytick", &metric.label(v));
    }
    svg.raw(&format!(r#"<line class="axis" x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}"/>"#));
    svg.raw(&format!(r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}"/>"#));
    // Every tick labelled when they fit, else every k-th (the first and last always).
    let every = n.div_ceil(16).max(1);
    for (i, v) in x_vary.values.iter().enumerate() {
        if i % every == 0 || i + 1 == n {
            svg.text(x_at(i), BOTTOM + 18.0, "xtick", v);
        }
    }
    svg.text((LEFT + RIGHT) / 2.0 - 40.0, BOTTOM + 40.0, "caption", &x_vary.key);

    for (k, s) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = s.points.iter().map(|&(i, v, _)| format!("{:.1},{:.1}", x_at(i), y_at(v))).collect();
        svg.raw(&format!(r#"<g class="series" data-name="{}" data-points="{}">"#, super::escape(&s.name), s.points.len()));
        svg.raw(&format!(r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, points.join(" ")));
        for &(i, v, failed) in &s.points {
            let fill = if failed { "#ffffff" } else { colour };
            svg.raw(&format!(
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2" data-value="{v}"/>"#,
                x_at(i),
                y_at(v)
            ));
        }
        svg.raw("</g>");
        let (lx, ly) = (LEFT + (k % 3) as f64 * 280.0, BOTTOM + 66.0 + (k / 3) as f64 * 20.0);
        svg.rect(lx, ly - 10.0, 14.0, 14.0, colour, "");
        svg.text(lx + 20.0, ly + 1.5, "legend-text", &s.name);
    }
    let rows = series.len().div_ceil(3) as f64;
    svg.finish(W, BOTTOM + 90.0 + rows * 20.0, STYLE)
}

#[cfg(test)]
mod tests {
    use super::{byte_top, nice_top};

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_top(1.57), 2.0);
        assert_eq!(nice_top(0.31), 0.5);
        assert_eq!(nice_top(7_000.0), 10_000.0);
        assert_eq!(byte_top(3.0 * (1u64 << 30) as f64), (4u64 << 30) as f64);
        assert_eq!(byte_top(0.0), 1.0);
    }
}
