//! Rendering: `render(&App, &mut Frame)`, a pure function of the state.
//! Layout only; each region is drawn by its own module from `&App`, a `Rect`
//! and the frame's buffer. Nothing here reads a clock (time is
//! `App::now_ms`), the environment or any file.

mod agents;
mod axis;
mod errors;
mod format;
mod latency;
mod load;
mod overlays;
mod overview;
mod runs;
mod status;
mod theme;

use bfgg_protocol::NodeId;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::app::{App, Panel};

/// Narrower than this, only the status line and a hint are drawn.
pub const MIN_WIDTH: u16 = 40;
/// Shorter than this, only the status line and a hint are drawn.
pub const MIN_HEIGHT: u16 = 10;

/// Draws the whole cockpit.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    draw(app, area, frame.buffer_mut());
}

/// Draws the cockpit into `area` of `buf`.
fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let area = area.intersection(buf.area);
    if area.is_empty() {
        return;
    }
    let [top, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    status::render_status(app, top, buf);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        Paragraph::new(Line::styled(
            format!(
                "terminal too small ({}x{}): {MIN_WIDTH}x{MIN_HEIGHT} needed",
                area.width, area.height
            ),
            theme::warn(),
        ))
        .wrap(Wrap { trim: true })
        .render(rest, buf);
        return;
    }
    let [tabs, body, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(rest);
    status::render_tabs(app, tabs, buf);
    match app.panel {
        Panel::Overview => overview::render(app, body, buf),
        Panel::Agents => agents::render(app, body, buf),
        Panel::Load => load::render(app, body, buf),
        Panel::Latency => latency::render(app, body, buf),
        Panel::Errors => errors::render(app, body, buf),
        Panel::Runs => runs::render(app, body, buf),
    }
    overlays::render(app, body, buf);
    status::render_hints(app, hints, buf);
}

/// The middle row of `area`, for one-line hints.
fn center_row(area: Rect) -> Rect {
    Rect {
        y: area.y + area.height / 2,
        height: area.height.min(1),
        ..area
    }
}

/// A dim one-line hint in the middle row of `area`.
fn hint(text: &str, area: Rect, buf: &mut Buffer) {
    Paragraph::new(Line::styled(text.to_string(), theme::dim()))
        .centered()
        .render(center_row(area), buf);
}

/// What to call a node: its announced name, its name in the watched run's
/// plan, or its short id.
fn agent_name(app: &App, node: &NodeId) -> String {
    if let Some(a) = app.agents.get(node) {
        return a.health.name.clone();
    }
    app.run
        .as_ref()
        .and_then(|r| r.plan.as_ref())
        .and_then(|p| p.participants.iter().find(|x| &x.node == node))
        .map_or_else(|| node.short().to_string(), |p| p.name.clone())
}

#[cfg(test)]
mod tests;
