//! The cockpit's frame lines: the status line at the top (cluster and
//! watched-run summary), the tab bar under it, and the key-hint line at the
//! bottom (with the notice, if any).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs, Widget};

use super::{format, theme};
use crate::app::{App, Liveness, Mode, Panel, RunState, StartStep};

/// Between status segments.
const SEP: &str = " │ ";

/// Draws the status line.
pub(crate) fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    Paragraph::new(status_line(app, area.width)).render(area, buf);
}

/// The status line fitted into `width`: long forms first, then short ones,
/// then the least important segments dropped from the end.
fn status_line(app: &App, width: u16) -> Line<'static> {
    let (mut alive, mut unresponsive, mut dead) = (0, 0, 0);
    for row in app.agents.values() {
        match app.liveness(row) {
            Liveness::Alive => alive += 1,
            Liveness::Unresponsive => unresponsive += 1,
            Liveness::Dead => dead += 1,
        }
    }
    let incompatible = app.incompatible.len();
    let nodes = |level: u8| {
        if level >= 2 {
            let all = alive + unresponsive + dead + incompatible;
            let style = if alive == all {
                theme::good()
            } else {
                theme::warn()
            };
            return vec![Span::styled(format!("{alive}/{all} alive"), style)];
        }
        let short = level == 1;
        let mut spans = vec![Span::styled(
            format!("{alive} alive"),
            if alive > 0 {
                theme::good()
            } else {
                theme::dim()
            },
        )];
        let more = [
            (unresponsive, "unresponsive", "unresp", theme::warn()),
            (dead, "dead", "dead", theme::bad()),
            (
                incompatible,
                "incompatible",
                "incompat",
                theme::incompatible(),
            ),
        ];
        for (n, long, brief, style) in more {
            if n > 0 {
                spans.push(Span::raw(if short { " " } else { ", " }));
                spans.push(Span::styled(
                    format!("{n} {}", if short { brief } else { long }),
                    style,
                ));
            }
        }
        spans
    };
    let mut run_long = vec![Span::styled("no run", theme::dim())];
    let mut run_short = run_long.clone();
    let mut run_tag = run_long.clone();
    let mut rest: Vec<Vec<Span<'static>>> = Vec::new();
    if let Some(run) = &app.run {
        let (state, style) = match run.state {
            RunState::Starting => ("starting", theme::warn()),
            RunState::Running => ("running", theme::good()),
            RunState::Stopping => ("stopping", theme::warn()),
            RunState::Finished => ("finished", theme::dim()),
        };
        let elapsed = run.latest().map_or(0, |p| u64::from(p.index) + 1);
        let tail = vec![
            Span::raw(" "),
            Span::styled(state, style),
            Span::raw(format!(" {elapsed}s")),
        ];
        run_long = vec![Span::styled(run.id.0.clone(), theme::header())];
        run_long.extend(tail.clone());
        run_short = vec![Span::styled(
            format::run_name(&run.id).to_string(),
            theme::header(),
        )];
        run_short.extend(tail.clone());
        run_tag = vec![Span::styled(
            format::run_tag(&run.id).to_string(),
            theme::header(),
        )];
        run_tag.extend(tail);
        if let Some(p) = run.latest() {
            rest.push(vec![Span::raw(format!("{} req/s", p.requests))]);
            rest.push(vec![Span::raw(format!("p99 {}ms", format::ms(p.p99_us)))]);
            let err = format::pct(p.errors, p.requests);
            rest.push(vec![Span::styled(
                format!("err {err:.1}%"),
                if p.errors > 0 {
                    theme::bad()
                } else {
                    theme::text()
                },
            )]);
        }
    }
    if app.dropped > 0 {
        rest.push(vec![Span::styled(
            format!("dropped {}", app.dropped),
            theme::warn(),
        )]);
    }
    let join = |parts: Vec<Vec<Span<'static>>>| {
        let mut spans = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(SEP, theme::dim()));
            }
            spans.extend(part);
        }
        Line::from(spans)
    };
    let levels = [
        (0, &run_long),
        (0, &run_short),
        (1, &run_short),
        (2, &run_short),
        (2, &run_tag),
    ];
    for (level, run) in levels {
        let mut parts = vec![nodes(level), run.clone()];
        parts.extend(rest.iter().cloned());
        let line = join(parts);
        if line.width() <= usize::from(width) {
            return line;
        }
    }
    // Still too wide: drop trailing segments while that helps.
    let mut parts = vec![nodes(2), run_tag];
    parts.extend(rest);
    while parts.len() > 1 {
        let line = join(parts.clone());
        if line.width() <= usize::from(width) {
            return line;
        }
        parts.pop();
    }
    join(parts)
}

/// Draws the tab bar: the six panels numbered 1-6, the visible one
/// highlighted.
pub(crate) fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let titles = Panel::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| Line::from(format!("{} {}", i + 1, p.title())));
    let selected = Panel::ALL.iter().position(|p| *p == app.panel);
    Tabs::new(titles)
        .select(selected)
        .highlight_style(theme::selected())
        .divider(Span::styled("│", theme::dim()))
        .render(area, buf);
}

/// Draws the bottom line: the notice (if any), then the keys of the mode.
pub(crate) fn render_hints(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans = Vec::new();
    if let Some(notice) = &app.notice {
        spans.push(Span::styled(notice.clone(), theme::notice()));
        spans.push(Span::styled(SEP, theme::dim()));
    }
    let mut used: usize = spans.iter().map(Span::width).sum();
    for (i, (key, what)) in hints(app).iter().enumerate() {
        let sep = if i > 0 { " · " } else { "" };
        let width = sep.len() + Span::raw(*key).width() + 1 + what.len();
        if used + width > usize::from(area.width) && i > 0 {
            break;
        }
        used += width;
        spans.push(Span::styled(sep, theme::dim()));
        spans.push(Span::styled(*key, theme::key()));
        spans.push(Span::raw(format!(" {what}")));
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

/// The keys worth showing in the current mode, most useful first.
fn hints(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.mode {
        Mode::Normal => {
            let mut h = Vec::new();
            // The Runs panel shows its own keys under its list.
            if matches!(app.panel, Panel::Agents | Panel::Overview) {
                h.push(("Enter", "agent"));
            }
            if app.run_active() {
                h.push(("x", "stop"));
            } else {
                h.push(("s", "start"));
            }
            h.push(("Tab/1-6", "panels"));
            if matches!(app.panel, Panel::Overview | Panel::Load | Panel::Latency) {
                h.push(("w", "window"));
            }
            h.extend([("j/k", "select"), ("?", "help"), ("q", "quit")]);
            h
        }
        Mode::Help | Mode::Agent(_) | Mode::Summary(_) => vec![("Esc", "close")],
        Mode::Start(d) => match d.step {
            StartStep::Scenario => vec![("j/k", "pick"), ("Enter", "next"), ("Esc", "cancel")],
            StartStep::Agents => vec![
                ("Tab/a", "all/count/label"),
                ("+/-", "change"),
                ("r", "rebalance"),
                ("Enter", "next"),
                ("Esc", "back"),
            ],
            StartStep::Confirm => vec![("Enter", "start"), ("r", "rebalance"), ("Esc", "back")],
        },
        Mode::ConfirmStop(_) | Mode::ConfirmDelete(_) => {
            vec![("y/Enter", "confirm"), ("other keys", "cancel")]
        }
    }
}
