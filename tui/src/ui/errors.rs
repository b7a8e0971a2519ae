//! The Errors panel: the watched run's errors grouped by kind, most frequent
//! first, with the agents they came from.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Widget};

use super::format::{self, Col};
use super::theme;
use crate::app::{App, Panel};

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
        super::hint(hint, inner, buf);
        return;
    };
    let groups = run.error_groups();
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
    format::render_list(
        &COLS,
        &text,
        |_| theme::bad(),
        app.selected[Panel::Errors.index()],
        inner,
        buf,
    );
}
