//! The Errors panel: the watched run's errors grouped by kind, most frequent
//! first, with the agents they came from.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, StatefulWidget, Table, TableState, Widget};

use super::format::{self, Col};
use super::theme;
use crate::app::App;

const COLS: [Col; 5] = [
    Col::new("Class", 2, 16, false),
    Col::new("Message", 0, 48, false).grow(),
    Col::new("Count", 1, 8, true),
    Col::new("%", 4, 6, true),
    Col::new("Agents", 3, 40, false),
];

/// Draws the Errors panel.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let run = app.run.as_ref();
    let requests = run.map_or(0, |r| r.totals().requests);
    let total: u64 = run.map_or(0, |r| {
        r.errors.values().fold(0u64, |a, e| a.saturating_add(e.0))
    });
    let block = Block::bordered().title(Line::styled(
        format!(
            " Errors: {total} of {requests} requests ({:.2}%) ",
            format::pct(total, requests)
        ),
        theme::title(),
    ));
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(run) = run.filter(|r| !r.errors.is_empty()) else {
        let hint = if run.is_some() {
            "no errors"
        } else {
            "no run yet"
        };
        Paragraph::new(Line::styled(hint, theme::dim()))
            .centered()
            .render(super::center_row(inner), buf);
        return;
    };
    let mut groups: Vec<_> = run.errors.iter().collect();
    groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let text: Vec<Vec<String>> = groups
        .iter()
        .map(|(kind, (count, agents))| {
            vec![
                kind.class().to_string(),
                kind.to_string(),
                count.to_string(),
                format!("{:.2}", format::pct(*count, requests)),
                agents.iter().cloned().collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    let mark = theme::SELECTED_MARK.len() as u16;
    let fitted = format::fit(&COLS, &text, inner.width.saturating_sub(mark));
    let rows = text
        .iter()
        .map(|cells| Row::new(fitted.row(&COLS, cells)).style(theme::bad()));
    let table = Table::new(rows, fitted.widths())
        .column_spacing(fitted.spacing)
        .header(Row::new(fitted.header(&COLS)).style(theme::header()))
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK);
    let selected = app.selected[3].min(text.len() - 1);
    let mut state = TableState::new().with_selected(Some(selected));
    StatefulWidget::render(table, inner, buf, &mut state);
}
