//! The Runs panel: the local results store, newest first, with the keys
//! that act on the selected run.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::format::{self, Col};
use super::theme;
use crate::app::{App, Panel};

const COLS: [Col; 4] = [
    Col::new("Run", 0, 60, false).grow(),
    Col::new("Requests", 1, 10, true),
    Col::new("Errors", 2, 8, true),
    Col::new("p99 ms", 3, 9, true),
];

/// Draws the Runs panel.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered().title(Line::styled(
        format!(" Runs: {} stored ", app.history.len()),
        theme::title(),
    ));
    let inner = block.inner(area);
    block.render(area, buf);
    if app.history.is_empty() {
        Paragraph::new(Line::styled(
            "no stored runs yet (results/ is empty)",
            theme::dim(),
        ))
        .centered()
        .render(super::center_row(inner), buf);
        return;
    }
    let hint_h = u16::from(inner.height >= 3);
    let [table_area, hint_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(hint_h)]).areas(inner);
    let dash = || "-".to_string();
    let text: Vec<Vec<String>> = app
        .history
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.requests.map_or_else(dash, |n| n.to_string()),
                h.errors.map_or_else(dash, |n| n.to_string()),
                h.p99_ms.map_or_else(dash, format::ms_f),
            ]
        })
        .collect();
    format::render_list(
        &COLS,
        &text,
        |_| theme::text(),
        app.selected[Panel::Runs.index()],
        table_area,
        buf,
    );
    let hint = Line::from(vec![
        Span::styled("Enter", theme::key()),
        Span::styled(" summary · ", theme::dim()),
        Span::styled("r", theme::key()),
        Span::styled(" re-run · ", theme::dim()),
        Span::styled("d", theme::key()),
        Span::styled(" delete", theme::dim()),
    ]);
    Paragraph::new(hint).render(hint_area, buf);
}
