//! The Overview panel, the cockpit's default: the agents (compact), the load
//! curve against its target and the latency (percentiles over time and the
//! histogram) at once. Three layouts by size:
//!
//! - large (at least [`LARGE`]): on the left the agents, the most frequent
//!   errors and the histogram; on the right the load curve over the
//!   percentiles over time (one column, so their time axes line up);
//! - medium (at least [`MEDIUM`]): the same without the errors box;
//! - small: the agents (a few rows), the load curve and the percentiles over
//!   time stacked, no histogram.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};

use super::axis::TimeAxis;
use super::format::{self, Col};
use super::{latency, load, theme};
use crate::app::{App, Liveness, Panel, RunView};

/// The smallest area (width, height of the panel's body) of the large
/// layout: a 160x48 terminal.
pub(crate) const LARGE: (u16, u16) = (160, 45);
/// The smallest area of the medium layout: a 120x40 terminal.
pub(crate) const MEDIUM: (u16, u16) = (120, 37);
/// Agent rows the small layout shows at most, half as many under 30 lines
/// (the table scrolls to the selected one; the Agents panel has them all).
const SMALL_AGENT_ROWS: u16 = 4;
/// Error groups the large layout lists.
const ERROR_ROWS: u16 = 6;

/// The state is one word (the watched run is the Overview's), and the flags
/// matter more than CPU and errors when the width runs out.
const AGENT_COLS: [Col; 6] = [
    Col::new("Name", 0, 18, false).grow(),
    Col::new("State", 1, 9, false),
    Col::new("CPU%", 4, 5, true),
    Col::new("req/s", 3, 7, true),
    Col::new("Err", 5, 6, true),
    Col::new("Flags", 2, 17, false),
];

/// Draws the Overview.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let fits = |(w, h): (u16, u16)| area.width >= w && area.height >= h;
    let large = fits(LARGE);
    if large || fits(MEDIUM) {
        // The time charts share the right column, so their seconds line up.
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(area);
        let [load_area, time_area] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(right);
        let errors_h = if large { ERROR_ROWS + 2 } else { 0 };
        let [agents_area, errors_area, hist_area] = Layout::vertical([
            Constraint::Min(0),
            Constraint::Length(errors_h),
            Constraint::Percentage(50),
        ])
        .areas(left);
        render_agents(app, agents_area, buf);
        if large {
            render_errors(app, errors_area, buf);
        }
        render_load(app, load_area, buf);
        match app.run.as_ref().filter(|r| !r.points.is_empty()) {
            Some(run) => {
                latency::render_over_time(app, run, time_area, buf);
                latency::render_focus_histogram(app, run, hist_area, buf);
            }
            None => {
                waiting(app, time_area, buf);
                waiting(app, hist_area, buf);
            }
        }
    } else {
        let most = if area.height >= 30 {
            SMALL_AGENT_ROWS
        } else {
            SMALL_AGENT_ROWS / 2
        };
        let rows = (app.agents.len() as u16).clamp(1, most);
        let [agents_area, load_area, time_area] = Layout::vertical([
            Constraint::Length(rows + 3),
            Constraint::Percentage(50),
            Constraint::Percentage(50),
        ])
        .areas(area);
        render_agents(app, agents_area, buf);
        render_load(app, load_area, buf);
        match app.run.as_ref().filter(|r| !r.points.is_empty()) {
            Some(run) => latency::render_over_time(app, run, time_area, buf),
            None => waiting(app, time_area, buf),
        }
    }
}

/// The load curve and its target (per-agent curves are on the Load panel).
fn render_load(app: &App, area: Rect, buf: &mut Buffer) {
    if let Some(run) = load::waiting(app, " Load ", area, buf) {
        load::render_rate(app, run, TimeAxis::of(app, run), false, area, buf);
    }
}

/// The latency area before the first interval.
fn waiting(app: &App, area: Rect, buf: &mut Buffer) {
    let _ = load::waiting(app, " Latency (ms) ", area, buf);
}

/// A compact agents table: name, state, CPU, req/s, errors and flags
/// (coordinating the watched run, behind its schedule, lost from it).
fn render_agents(app: &App, area: Rect, buf: &mut Buffer) {
    let rows = app.agent_rows();
    let alive = rows
        .iter()
        .filter(|r| app.liveness(r) == Liveness::Alive)
        .count();
    let run = app.run.as_ref();
    let errors = run.map_or(0, RunView::error_count);
    let mut title = format!(" Agents: {alive} alive of {}", rows.len());
    if !app.incompatible.is_empty() {
        title.push_str(&format!(", {} incompatible", app.incompatible.len()));
    }
    if errors > 0 {
        title.push_str(&format!(" · {errors} errors"));
    }
    title.push(' ');
    let block = Block::bordered().title(Line::styled(title, theme::title()));
    let inner = block.inner(area);
    block.render(area, buf);
    if rows.is_empty() {
        super::hint(
            "no nodes heard yet: start `bfgg node` on the machines of the cluster",
            inner,
            buf,
        );
        return;
    }
    let coordinator = run.and_then(|r| r.plan.as_ref()).map(|p| &p.coordinator);
    let text: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let h = &r.health;
            let mut flags = Vec::new();
            if coordinator == Some(&h.node) {
                flags.push("coord");
            }
            if !h.keeping_schedule {
                flags.push("behind");
            }
            if run.is_some_and(|run| run.lost.contains(&h.node)) {
                flags.push("lost");
            }
            vec![
                h.name.clone(),
                format::node_state_word(&h.state).to_string(),
                format!("{:.0}", h.cpu_pct),
                format!("{:.0}", r.rps),
                r.errors.to_string(),
                flags.join(","),
            ]
        })
        .collect();
    let style = |i: usize| match app.liveness(rows[i]) {
        Liveness::Alive if !rows[i].health.keeping_schedule => theme::saturated(),
        l => theme::liveness(l),
    };
    format::render_list(
        &AGENT_COLS,
        &text,
        style,
        app.selected[Panel::Overview.index()],
        inner,
        buf,
    );
}

/// The most frequent error groups: count, share of requests, message.
fn render_errors(app: &App, area: Rect, buf: &mut Buffer) {
    let run = app.run.as_ref();
    let requests = run.map_or(0, |r| r.totals().requests);
    let block = Block::bordered().title(Line::styled(" Errors ", theme::title()));
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.is_empty() {
        return;
    }
    let Some(run) = run.filter(|r| !r.errors.is_empty()) else {
        let hint = if run.is_some() { "none" } else { "no run yet" };
        super::hint(hint, inner, buf);
        return;
    };
    let groups = run.error_groups();
    let shown = usize::from(inner.height);
    let more = groups.len().saturating_sub(shown);
    let lines: Vec<Line> = groups
        .iter()
        .take(if more > 0 { shown - 1 } else { shown })
        .map(|(kind, (count, _))| {
            Line::styled(
                format!("{count:>7} {:>5.1}%  {kind}", format::pct(*count, requests)),
                theme::bad(),
            )
        })
        .chain((more > 0).then(|| {
            Line::styled(
                format!("{} more groups: Errors panel (5)", more + 1),
                theme::dim(),
            )
        }))
        .collect();
    Paragraph::new(lines).render(inner, buf);
}
