//! The Latency panel: percentiles of the whole run and per request name for
//! the last interval and the whole run; for the selected row, p50/p90/p99
//! per second on the run's time axis and a histogram of its response
//! times. The Overview draws the same charts.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph, Row,
    StatefulWidget, Table, TableState, Widget,
};

use bfgg_protocol::{LatencyHistogram, NameStats};

use super::axis::{self, TimeAxis};
use super::format::{self, Col};
use super::theme;
use crate::app::{App, MAX_NAME_SERIES, NamePoint, Panel, Point, RunView, log_buckets};

const COLS: [Col; 8] = [
    Col::new("Request", 0, 24, false).grow(),
    Col::new("", 1, 4, false),
    Col::new("p50", 2, 8, true),
    Col::new("p90", 5, 8, true),
    Col::new("p99", 3, 8, true),
    Col::new("p99.9", 6, 8, true),
    Col::new("max", 4, 9, true),
    Col::new("requests", 7, 8, true),
];

/// The shortest chart worth drawing (borders, a few rows, labels).
const MIN_CHARTS: u16 = 8;
/// The narrowest chart worth drawing beside another.
const MIN_CHART_WIDTH: u16 = 40;
/// The whole run's row.
const ALL: &str = "(all)";

/// Draws the Latency panel: the table, then the selected row's
/// percentiles over time beside its histogram.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(run) = app.run.as_ref().filter(|r| !r.total.is_empty()) else {
        let block = Block::bordered().title(Line::styled(" Latency (ms) ", theme::title()));
        let inner = block.inner(area);
        block.render(area, buf);
        Paragraph::new(Line::styled("no measurements yet", theme::dim()))
            .centered()
            .render(super::center_row(inner), buf);
        return;
    };
    // Two lines per name (last interval, whole run), the "all" row, header,
    // borders.
    let rows = run.total.len() + 1;
    let table_h = (rows * 2 + 3).min(usize::from(u16::MAX)) as u16;
    let table_h = if area.height >= table_h + MIN_CHARTS {
        table_h
    } else if area.height >= 2 * MIN_CHARTS {
        area.height - MIN_CHARTS
    } else {
        area.height
    };
    let [table_area, charts] =
        Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(area);
    render_table(app, run, table_area, buf);
    if charts.height >= MIN_CHARTS {
        render_charts(app, run, charts, buf);
    }
}

/// The percentiles over time and the histogram of the row the Latency
/// panel selects, side by side (the chart alone when narrow).
pub(super) fn render_charts(app: &App, run: &RunView, area: Rect, buf: &mut Buffer) {
    if area.width >= 2 * MIN_CHART_WIDTH {
        let [time, hist] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(area);
        render_over_time(app, run, time, buf);
        render_focus_histogram(app, run, hist, buf);
    } else {
        render_over_time(app, run, area, buf);
    }
}

/// The table: the whole run ("(all)") first, then each request name; for
/// each the last interval and the whole run.
fn render_table(app: &App, run: &RunView, area: Rect, buf: &mut Buffer) {
    let empty = NameStats::default();
    let last_all = run.last.as_ref().map(|s| s.total());
    let mut text: Vec<Vec<String>> = Vec::new();
    let mut push = |name: &str, last: &NameStats, whole: &NameStats| {
        let both = |f: &dyn Fn(&LatencyHistogram) -> u64| {
            let one = |h: &LatencyHistogram| {
                if h.is_empty() {
                    "-".to_string()
                } else {
                    format::ms(f(h))
                }
            };
            format!(
                "{}\n{}",
                one(&last.response_time),
                one(&whole.response_time)
            )
        };
        text.push(vec![
            name.to_string(),
            "last\nrun".into(),
            both(&|h| h.quantile_us(0.5)),
            both(&|h| h.quantile_us(0.9)),
            both(&|h| h.quantile_us(0.99)),
            both(&|h| h.quantile_us(0.999)),
            both(&|h| h.max_us()),
            format!("{}\n{}", last.requests, whole.requests),
        ]);
    };
    let all = run.totals();
    push(ALL, last_all.as_ref().unwrap_or(&empty), &all);
    for (name, whole) in &run.total {
        let last = run
            .last
            .as_ref()
            .and_then(|s| s.by_name.get(name))
            .unwrap_or(&empty);
        push(name, last, whole);
    }

    let block = Block::bordered().title(Line::styled(
        " Latency (ms): last interval and whole run ",
        theme::title(),
    ));
    let inner = block.inner(area);
    let mark = theme::SELECTED_MARK.len() as u16;
    let fitted = format::fit(&COLS, &text, inner.width.saturating_sub(mark));
    let table_rows = text.iter().enumerate().map(|(i, cells)| {
        let row = Row::new(fitted.row(&COLS, cells)).height(2);
        if i == 0 {
            row.style(theme::header())
        } else {
            row
        }
    });
    let table = Table::new(table_rows, fitted.widths())
        .column_spacing(fitted.spacing)
        .block(block)
        .header(Row::new(fitted.header(&COLS)).style(theme::header()))
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK);
    let selected = app.selected[Panel::Latency.index()].min(text.len() - 1);
    let mut state = TableState::new().with_selected(Some(selected));
    StatefulWidget::render(table, area, buf, &mut state);
}

/// p50/p90/p99 per second of the focused row ([`App::latency_focus`]) on
/// the run's time axis; for a request name, the whole run's p99 too, dim,
/// for reference.
pub(super) fn render_over_time(app: &App, run: &RunView, area: Rect, buf: &mut Buffer) {
    let axis = TimeAxis::of(app, run);
    let ms = |us: u64| us as f64 / 1000.0;
    let keep = |i: u32| axis.shows(i);
    let focus = app.latency_focus();
    // A name beyond MAX_NAME_SERIES has no series: drawn empty, said so.
    let untracked = focus.is_some_and(|n| !run.by_name.contains_key(n));
    let points: Vec<NamePoint> = match focus {
        Some(n) => run
            .by_name
            .get(n)
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default(),
        None => run.points.iter().map(Point::percentiles).collect(),
    };
    let (p50, p90, p99): (Vec<_>, Vec<_>, Vec<_>) = points
        .iter()
        .filter(|p| keep(p.index) && p.requests > 0)
        .map(|p| {
            let x = f64::from(p.index);
            ((x, ms(p.p50_us)), (x, ms(p.p90_us)), (x, ms(p.p99_us)))
        })
        .collect();
    let reference: Vec<(f64, f64)> = if focus.is_some() {
        run.points
            .iter()
            .filter(|p| keep(p.index) && p.requests > 0)
            .map(|p| (f64::from(p.index), ms(p.p99_us)))
            .collect()
    } else {
        Vec::new()
    };
    let peak = p99
        .iter()
        .chain(&reference)
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    let y_max = nice_ms(peak * 1.1);
    let mut datasets = Vec::new();
    if !reference.is_empty() {
        datasets.push(line("run p99", &reference, theme::dim()));
    }
    datasets.push(line("p99", &p99, theme::p99_series()));
    datasets.push(line("p90", &p90, theme::p90_series()));
    datasets.push(line("p50", &p50, theme::p50_series()));
    // The newest interval's value; "-" when it had none of these requests.
    let newest = run.latest().map(|l| f64::from(l.index));
    let now = |v: &[(f64, f64)]| {
        v.last()
            .filter(|p| Some(p.0) == newest)
            .map_or_else(|| "-".to_string(), |p| format::ms_f(p.1))
    };
    let title = if untracked {
        format!(
            " latency (ms) of {}: not kept over time (over {MAX_NAME_SERIES} names) ",
            focus.unwrap_or(ALL)
        )
    } else {
        format!(
            " latency (ms) of {}: p99 {} p90 {} p50 {} ",
            focus.unwrap_or(ALL),
            now(&p99),
            now(&p90),
            now(&p50)
        )
    };
    Chart::new(datasets)
        .block(Block::bordered().title(Line::styled(title, theme::title())))
        .x_axis(axis.axis(area.width))
        .y_axis(axis::y_axis(
            y_max,
            ["0".to_string(), bound(y_max / 2.0), bound(y_max)],
        ))
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 3), Constraint::Ratio(3, 4)))
        .render(area, buf);
}

/// A line of a latency chart.
fn line<'a>(name: &'static str, data: &'a [(f64, f64)], style: Style) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .data(data)
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(style)
}

/// An axis bound in ms, without trailing zeros: `200`, `2.5`, `0.1`.
fn bound(ms: f64) -> String {
    format!("{}", (ms * 1000.0).round() / 1000.0)
}

/// The first of 1, 2, 5 times a power of ten (ms) at least `ms`: the
/// latency axis moves only when a percentile passes one of these.
fn nice_ms(ms: f64) -> f64 {
    let mut bound = 0.1;
    while bound < ms && bound < 1e9 {
        for m in [1.0, 2.0, 5.0] {
            if bound * m >= ms {
                return bound * m;
            }
        }
        bound *= 10.0;
    }
    bound
}

/// The histogram of the focused row over the whole run.
pub(super) fn render_focus_histogram(app: &App, run: &RunView, area: Rect, buf: &mut Buffer) {
    let focus = app.latency_focus();
    let all;
    let h = match focus.and_then(|n| run.total.get(n)) {
        Some(stats) => &stats.response_time,
        None => {
            all = run.totals();
            &all.response_time
        }
    };
    render_histogram(
        h,
        &format!(
            " {}, whole run: {} samples ",
            focus.unwrap_or("response times"),
            h.len()
        ),
        area,
        buf,
    );
}

/// A histogram on a 1-2-5 log scale, titled `title` (the merged whole run
/// here, one agent's share in its drill-down).
pub(super) fn render_histogram(h: &LatencyHistogram, title: &str, area: Rect, buf: &mut Buffer) {
    let buckets = log_buckets(h);
    let block = Block::bordered().title(Line::styled(title.to_string(), theme::title()));
    let inner = block.inner(area);
    if buckets.is_empty() {
        block.render(area, buf);
        return;
    }
    let n = buckets.len() as u16;
    // As wide as a label ("500µs") when there is room, narrower when not.
    let bar_width = (inner.width.saturating_add(1) / n)
        .saturating_sub(1)
        .clamp(1, 5);
    let bars: Vec<Bar> = buckets
        .iter()
        .map(|(bound, count)| {
            Bar::default()
                .value(*count)
                .text_value(format::compact(*count))
                .label(Line::from(format::bound_label(*bound)))
        })
        .collect();
    BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .bar_style(theme::bars())
        .value_style(theme::selected())
        .render(area, buf);
}
