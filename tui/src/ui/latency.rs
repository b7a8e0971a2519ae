//! The Latency panel: percentiles per request name for the last interval and
//! the whole run, and a histogram of the whole run's merged response times.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Paragraph, Row, StatefulWidget, Table, TableState, Widget,
};

use bfgg_protocol::{LatencyHistogram, NameStats};

use super::format::{self, Col};
use super::theme;
use crate::app::{App, log_buckets};

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

/// The shortest histogram worth drawing (borders, bars, labels).
const MIN_HISTOGRAM: u16 = 6;

/// Draws the Latency panel.
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
    let table_h = if area.height >= table_h + MIN_HISTOGRAM {
        table_h
    } else if area.height >= 2 * MIN_HISTOGRAM {
        area.height - MIN_HISTOGRAM
    } else {
        area.height
    };
    let [table_area, hist_area] =
        Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(area);

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
    for (name, whole) in &run.total {
        let last = run
            .last
            .as_ref()
            .and_then(|s| s.by_name.get(name))
            .unwrap_or(&empty);
        push(name, last, whole);
    }
    let all = run.totals();
    push("(all)", last_all.as_ref().unwrap_or(&empty), &all);

    let block = Block::bordered().title(Line::styled(
        " Latency (ms): last interval and whole run ",
        theme::title(),
    ));
    let inner = block.inner(table_area);
    let mark = theme::SELECTED_MARK.len() as u16;
    let fitted = format::fit(&COLS, &text, inner.width.saturating_sub(mark));
    let last_row = text.len() - 1;
    let table_rows = text.iter().enumerate().map(|(i, cells)| {
        let row = Row::new(fitted.row(&COLS, cells)).height(2);
        if i == last_row {
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
    let selected = app.selected[2].min(run.total.len().saturating_sub(1));
    let mut state = TableState::new().with_selected(Some(selected));
    StatefulWidget::render(table, table_area, buf, &mut state);

    if hist_area.height >= MIN_HISTOGRAM {
        render_histogram(
            &all.response_time,
            &format!(
                " response times, whole run: {} samples ",
                all.response_time.len()
            ),
            hist_area,
            buf,
        );
    }
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
