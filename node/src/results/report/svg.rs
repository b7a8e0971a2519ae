//! The charts of `report.html` as inline SVG: a line chart over the run's
//! seconds (one or two y axes, a legend, ticks and labels) and a bar chart
//! of the latency distribution on a log axis. Pure: numbers in, markup out;
//! every label passed in is escaped here ([`super::escape`]), numbers are
//! printed with one decimal to keep the page light.
//!
//! A long run is drawn, not trimmed: when there are more points than pixel
//! columns, each column draws the largest value of the seconds it covers
//! ([`downsample`]), so a one-second spike still shows. Tables in the page
//! never go through this and keep every row.

use std::fmt::Write as _;
use std::ops::Range;

use super::escape;

/// The chart's drawing size in SVG user units (scaled to the page width).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 42.0;

/// Pixel columns of the plot area: the most points a line draws.
pub(crate) const PLOT_COLUMNS: usize = (WIDTH - LEFT - RIGHT) as usize;

const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Which y axis a line is scaled to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axis {
    Left,
    Right,
}

/// One series of a line chart: a value (or a gap) per x.
pub(crate) struct Line<'a> {
    pub(crate) name: &'a str,
    pub(crate) color: &'a str,
    pub(crate) dashed: bool,
    pub(crate) axis: Axis,
    pub(crate) ys: Vec<Option<f64>>,
}

/// A line chart over seconds since the run start.
pub(crate) struct LineChart<'a> {
    /// For screen readers (`aria-label`).
    pub(crate) title: &'a str,
    /// Seconds since the start, increasing; one per value of every line.
    pub(crate) xs: &'a [u32],
    pub(crate) left_label: &'a str,
    pub(crate) right_label: Option<&'a str>,
    pub(crate) lines: Vec<Line<'a>>,
}

/// Groups the indices of `xs` (increasing) by the pixel column they fall
/// in, over `columns` columns; one group per point when they fit.
pub(crate) fn pixel_groups(xs: &[u32], columns: usize) -> Vec<Range<usize>> {
    if xs.len() <= columns {
        return (0..xs.len()).map(|i| i..i + 1).collect();
    }
    let (first, last) = (f64::from(xs[0]), f64::from(xs[xs.len() - 1]));
    let span = (last - first).max(1.0);
    let column = |x: u32| {
        (((f64::from(x) - first) / span * columns as f64) as usize).min(columns.saturating_sub(1))
    };
    let mut groups = Vec::with_capacity(columns);
    let mut start = 0;
    for i in 1..xs.len() {
        if column(xs[i]) != column(xs[start]) {
            groups.push(start..i);
            start = i;
        }
    }
    groups.push(start..xs.len());
    groups
}

/// The largest value of each group (a gap when the group has none).
pub(crate) fn downsample(ys: &[Option<f64>], groups: &[Range<usize>]) -> Vec<Option<f64>> {
    groups
        .iter()
        .map(|g| ys[g.clone()].iter().flatten().copied().reduce(f64::max))
        .collect()
}

/// A "nice" step (1, 2 or 5 × 10^k) giving about `ticks` ticks up to `max`,
/// and the axis top (a multiple of the step, at least `max`).
pub(crate) fn nice_scale(max: f64, ticks: u32) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / f64::from(ticks.max(1));
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step, (max / step).ceil() * step)
}

/// A tick label: no needless decimals, k/M for large values.
pub(crate) fn tick_label(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.3}"))
    }
}

/// A time label: `42s` for short runs, `m:ss` or `h:mm:ss` for longer ones.
fn time_label(s: u32, long: bool) -> String {
    if !long {
        return format!("{s}s");
    }
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A step in seconds for about eight time ticks over `span` seconds.
fn time_step(span: u32) -> u32 {
    const STEPS: [u32; 14] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 8)
        .unwrap_or_else(|| span.div_ceil(8).max(1))
}

fn open_svg(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">"#,
        escape(title)
    );
    // The plot frame.
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#9ca3af"/>"##
    );
}

/// Horizontal grid lines and labels of a y axis scaled to `top` by `step`.
fn y_axis(out: &mut String, step: f64, top: f64, side: Axis, label: &str) {
    let mut v = 0.0;
    let mut i = 0;
    while v <= top * (1.0 + 1e-9) && i <= 50 {
        let y = TOP + PLOT_H - v / top * PLOT_H;
        match side {
            Axis::Left => {
                if v > 0.0 {
                    let _ = write!(
                        out,
                        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e7eb"/>"##,
                        LEFT + PLOT_W
                    );
                }
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    LEFT - 6.0,
                    y + 4.0,
                    tick_label(v)
                );
            }
            Axis::Right => {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"#,
                    LEFT + PLOT_W + 6.0,
                    y + 4.0,
                    tick_label(v)
                );
            }
        }
        i += 1;
        v = step * f64::from(i);
    }
    let (x, rotate) = match side {
        Axis::Left => (14.0, -90),
        Axis::Right => (WIDTH - 10.0, 90),
    };
    let y = TOP + PLOT_H / 2.0;
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="middle" transform="rotate({rotate} {x} {y})">{}</text>"#,
        escape(label)
    );
}

fn legend(out: &mut String, items: &[(&str, &str, bool)]) {
    let mut x = LEFT;
    for (name, color, dashed) in items {
        let dash = if *dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="16" x2="{:.1}" y2="16" stroke="{color}" stroke-width="2.5"{dash}/><text x="{:.1}" y="20">{}</text>"#,
            x + 22.0,
            x + 27.0,
            escape(name)
        );
        x += 27.0 + 7.0 * name.chars().count() as f64 + 20.0;
    }
}

/// A line chart; "no data" markup when there are no points.
pub(crate) fn line_chart(chart: &LineChart<'_>) -> String {
    let mut out = String::new();
    open_svg(&mut out, chart.title);
    let xs = chart.xs;
    let (first, last) = match (xs.first(), xs.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => (0, 1),
    };
    let span = last.saturating_sub(first).max(1);
    let px = |x: f64| LEFT + (x - f64::from(first)) / f64::from(span) * PLOT_W;
    let groups = pixel_groups(xs, PLOT_COLUMNS);
    let drawn: Vec<Vec<Option<f64>>> = chart
        .lines
        .iter()
        .map(|l| downsample(&l.ys, &groups))
        .collect();
    let axis_max = |axis: Axis| {
        chart
            .lines
            .iter()
            .zip(&drawn)
            .filter(|(l, _)| l.axis == axis)
            .flat_map(|(_, ys)| ys.iter().flatten().copied())
            .fold(0.0, f64::max)
    };
    let (left_step, left_top) = nice_scale(axis_max(Axis::Left), 5);
    y_axis(&mut out, left_step, left_top, Axis::Left, chart.left_label);
    let right = chart.right_label.map(|label| {
        let (step, top) = nice_scale(axis_max(Axis::Right), 5);
        y_axis(&mut out, step, top, Axis::Right, label);
        top
    });
    // Time ticks.
    let long = last >= 120;
    let step = time_step(span);
    let mut t = first.div_ceil(step) * step;
    while t <= last || (t == first && first == last) {
        let x = px(f64::from(t));
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#6b7280"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 5.0,
            TOP + PLOT_H + 18.0,
            time_label(t, long)
        );
        match t.checked_add(step) {
            Some(next) if next > t => t = next,
            _ => break,
        }
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start</text>"#,
        LEFT + PLOT_W / 2.0,
        HEIGHT - 4.0
    );
    // The lines, split at gaps.
    for (line, ys) in chart.lines.iter().zip(&drawn) {
        let top = match line.axis {
            Axis::Left => left_top,
            Axis::Right => right.unwrap_or(left_top),
        };
        let py = |y: f64| TOP + PLOT_H - (y / top).clamp(0.0, 1.0) * PLOT_H;
        let dash = if line.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let flush = |out: &mut String, segment: &mut Vec<(f64, f64)>| {
            match segment.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                        segment[0].0, segment[0].1, line.color
                    );
                }
                _ => {
                    out.push_str(r#"<polyline fill="none" stroke-width="1.6" stroke-linejoin="round" stroke=""#);
                    out.push_str(line.color);
                    out.push('"');
                    out.push_str(dash);
                    out.push_str(r#" points=""#);
                    for (i, (x, y)) in segment.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{x:.1},{y:.1}");
                    }
                    out.push_str(r#""/>"#);
                }
            }
            segment.clear();
        };
        for (g, y) in groups.iter().zip(ys) {
            match y {
                Some(y) => segment.push((px(f64::from(xs[g.start])), py(*y))),
                None => flush(&mut out, &mut segment),
            }
        }
        flush(&mut out, &mut segment);
    }
    let items: Vec<(&str, &str, bool)> = chart
        .lines
        .iter()
        .map(|l| (l.name, l.color, l.dashed))
        .collect();
    legend(&mut out, &items);
    out.push_str("</svg>");
    out
}

/// One bar of the latency distribution: `[lo_ms, hi_ms)` holding `count`.
pub(crate) struct Bar {
    pub(crate) lo_ms: f64,
    pub(crate) hi_ms: f64,
    pub(crate) count: u64,
}

/// A bar chart of `bars` (increasing, non-empty) on a log latency axis,
/// with vertical markers (`("p99", 12.5)`).
pub(crate) fn histogram_chart(title: &str, bars: &[Bar], markers: &[(&str, f64)]) -> String {
    let mut out = String::new();
    open_svg(&mut out, title);
    let lo = bars
        .iter()
        .map(|b| b.lo_ms)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3);
    let hi = bars.iter().map(|b| b.hi_ms).fold(0.0, f64::max).max(lo);
    let d0 = lo.log10().floor();
    let d1 = hi.log10().ceil().max(d0 + 1.0);
    let px = |ms: f64| LEFT + (ms.max(1e-3).log10() - d0) / (d1 - d0) * PLOT_W;
    let max_count = bars.iter().map(|b| b.count).max().unwrap_or(0) as f64;
    let (step, top) = nice_scale(max_count, 5);
    y_axis(&mut out, step, top, Axis::Left, "requests");
    // Decade ticks.
    let mut d = d0;
    while d <= d1 + 1e-9 {
        let x = px(10f64.powf(d));
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#6b7280"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 5.0,
            TOP + PLOT_H + 18.0,
            decade_label(d as i32)
        );
        d += 1.0;
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">response time (log scale)</text>"#,
        LEFT + PLOT_W / 2.0,
        HEIGHT - 4.0
    );
    for b in bars {
        let (x0, x1) = (px(b.lo_ms), px(b.hi_ms));
        let h = b.count as f64 / top * PLOT_H;
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#60a5fa"><title>{} – {} ms: {}</title></rect>"##,
            TOP + PLOT_H - h,
            (x1 - x0 - 1.0).max(1.0),
            tick_label(b.lo_ms),
            tick_label(b.hi_ms),
            b.count
        );
    }
    let colors = ["#16a34a", "#ea580c", "#dc2626", "#7c3aed"];
    let mut items = Vec::new();
    for (i, (name, ms)) in markers.iter().enumerate() {
        if !(ms.is_finite() && *ms > 0.0) {
            continue;
        }
        let color = colors[i % colors.len()];
        let x = px(*ms);
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3" points="{x:.1},{TOP:.1} {x:.1},{:.1}"/>"#,
            TOP + PLOT_H
        );
        items.push((*name, color, true));
    }
    legend(&mut out, &items);
    out.push_str("</svg>");
    out
}

fn decade_label(d: i32) -> String {
    match d {
        ..=-1 => format!("{} µs", 10f64.powi(d + 3).round()),
        0..=2 => format!("{} ms", 10f64.powi(d).round()),
        _ => format!("{} s", 10f64.powi(d - 3).round()),
    }
}
