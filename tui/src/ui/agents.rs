//! The Agents panel: one row per node (health, load, clock offset, last
//! heard), coloured by liveness, saturated agents flagged, then the nodes of
//! another protocol version.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget};

use super::format::{self, Col};
use super::theme;
use crate::app::{App, Liveness, Panel};

const COLS: [Col; 11] = [
    Col::new("Name", 0, 18, false),
    Col::new("Id", 7, 8, false),
    Col::new("Labels", 9, 22, false),
    Col::new("State", 1, 24, false),
    Col::new("Engines", 10, 18, false),
    Col::new("CPU%", 4, 5, true),
    Col::new("MemMB", 6, 6, true),
    Col::new("req/s", 2, 7, true),
    Col::new("Err", 5, 6, true),
    Col::new("Offs ms", 8, 7, true),
    Col::new("Heard", 3, 6, true),
];

/// Draws the Agents panel.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let rows = app.agent_rows();
    let alive = rows
        .iter()
        .filter(|r| app.liveness(r) == Liveness::Alive)
        .count();
    let block = Block::bordered().title(Line::styled(
        format!(" Agents: {alive} alive of {} ", rows.len()),
        theme::title(),
    ));
    let inner = block.inner(area);
    block.render(area, buf);
    if rows.is_empty() && app.incompatible.is_empty() {
        Paragraph::new(Line::styled(
            "no nodes heard yet: start `bfgg node` on the machines of the cluster",
            theme::dim(),
        ))
        .centered()
        .render(super::center_row(inner), buf);
        return;
    }
    let mut text: Vec<Vec<String>> = Vec::new();
    for r in &rows {
        let h = &r.health;
        let flag = if h.keeping_schedule { "" } else { "! " };
        text.push(vec![
            format!("{flag}{}", h.name),
            h.node.short().to_string(),
            h.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            format::node_state(&h.state),
            h.engines
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            format!("{:.0}", h.cpu_pct),
            format!("{}", h.mem_bytes / 1_000_000),
            format!("{:.0}", r.rps),
            r.errors.to_string(),
            format!("{:+}", r.offset_ms),
            format::ago(app.now_ms.saturating_sub(r.heard_ms)),
        ]);
    }
    let mark = theme::SELECTED_MARK.len() as u16;
    let fitted = format::fit(&COLS, &text, inner.width.saturating_sub(mark));
    let mut table_rows: Vec<Row> = text
        .iter()
        .zip(&rows)
        .map(|(cells, r)| {
            let style = match app.liveness(r) {
                Liveness::Alive if !r.health.keeping_schedule => theme::saturated(),
                l => theme::liveness(l),
            };
            Row::new(fitted.row(&COLS, cells)).style(style)
        })
        .collect();
    // Nodes of another protocol: what they announced spans from the State
    // column to the end.
    for (node, protocol) in &app.incompatible {
        let mut cells = Vec::new();
        for (k, (c, _)) in fitted.cols.iter().enumerate() {
            match c {
                0 => cells.push(Cell::from("?")),
                1 => cells.push(Cell::from(node.short().to_string())),
                3 => {
                    let span = (fitted.cols.len() - k) as u16;
                    cells.push(
                        Cell::from(format!("incompatible: protocol {protocol}")).column_span(span),
                    );
                    break;
                }
                _ => cells.push(Cell::from("")),
            }
        }
        table_rows.push(Row::new(cells).style(theme::incompatible()));
    }
    let table = Table::new(table_rows, fitted.widths())
        .column_spacing(fitted.spacing)
        .header(Row::new(fitted.header(&COLS)).style(theme::header()))
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK);
    let selected =
        (!rows.is_empty()).then(|| app.selected[Panel::Agents.index()].min(rows.len() - 1));
    let mut state = TableState::new().with_selected(selected);
    StatefulWidget::render(table, inner, buf, &mut state);
}
