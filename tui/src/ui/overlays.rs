//! Popups drawn over the panel: help, the start dialog's steps, the stop and
//! delete confirmations, one agent's detail and a stored run's summary. Each
//! is centred, clears what is under it, and is clipped to the panel.

use bfgg_protocol::NodeId;
use bfgg_protocol::summary::RunSummary;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Chart, Clear, Dataset, GraphType, Padding, Paragraph, Widget};

use super::axis::TimeAxis;
use super::{format, theme};
use crate::app::{AgentChoice, App, Liveness, Mode, StartDialog, StartStep};

/// Draws the popup of the current mode, if it has one.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    match &app.mode {
        Mode::Normal => {}
        Mode::Help => help(area, buf),
        Mode::Start(d) => start(app, d, area, buf),
        Mode::ConfirmStop(run) => text_popup(
            " Stop run ",
            vec![
                Line::from(vec![
                    Span::raw("Stop run "),
                    Span::styled(run.0.clone(), theme::header()),
                    Span::raw("? "),
                    Span::styled("y/Enter", theme::key()),
                ]),
                Line::styled("(any other key cancels)", theme::dim()),
            ],
            area,
            buf,
        ),
        Mode::ConfirmDelete(dir) => {
            let name = dir
                .file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
            text_popup(
                " Delete results ",
                vec![
                    Line::from(vec![
                        Span::raw("Delete "),
                        Span::styled(name, theme::header()),
                        Span::raw("? "),
                        Span::styled("y/Enter", theme::key()),
                    ]),
                    Line::styled(dir.display().to_string(), theme::dim()),
                    Line::styled("(any other key cancels)", theme::dim()),
                ],
                area,
                buf,
            );
        }
        Mode::Agent(node) => agent(app, node, area, buf),
        Mode::Summary(s) => summary(s, area, buf),
    }
}

/// Clears a `width` x `height` rectangle centred in `area` (clipped to it),
/// draws a titled border, and returns the inside (less a column of padding
/// each side).
fn popup(title: &str, width: u16, height: u16, area: Rect, buf: &mut Buffer) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    Clear.render(rect, buf);
    let block = Block::bordered()
        .border_style(theme::popup())
        .padding(Padding::horizontal(1))
        .title(Line::styled(title.to_string(), theme::title()));
    let inner = block.inner(rect);
    block.render(rect, buf);
    inner
}

/// A popup sized to its lines (one column of margin each side).
fn text_popup(title: &str, lines: Vec<Line<'static>>, area: Rect, buf: &mut Buffer) {
    let width = lines
        .iter()
        .map(Line::width)
        .chain([title.len()])
        .max()
        .unwrap_or(0)
        .saturating_add(4)
        .min(usize::from(u16::MAX)) as u16;
    let height = (lines.len() + 2).min(usize::from(u16::MAX)) as u16;
    let inner = popup(title, width, height, area, buf);
    Paragraph::new(lines).render(inner, buf);
}

/// `key  what` with the key in a column of `w`.
fn key_line(key: &str, what: &str, w: usize) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<w$}"), theme::key()),
        Span::raw(what.to_string()),
    ])
}

/// Every key of the panels.
const PANEL_KEYS: [(&str, &str); 13] = [
    ("s", "start a run"),
    ("x", "stop the run"),
    ("Tab/S-Tab", "next/previous panel"),
    ("1-6", "go to panel"),
    ("w", "whole run / last 2 min"),
    ("↑↓ j/k", "select a row"),
    ("Enter", "agent / run summary"),
    ("r", "re-run selected run"),
    ("d", "delete selected run"),
    ("?", "this help"),
    ("q", "quit (runs go on)"),
    ("Esc", "close a popup"),
    ("Ctrl-C", "quit"),
];

/// Every key of the start dialog.
const START_KEYS: [(&str, &str); 6] = [
    ("j/k ↑↓", "pick a scenario"),
    ("Enter", "next step / start"),
    ("Esc", "back / cancel"),
    ("Tab/a", "all/count/label"),
    ("+/- ←→", "change count/label"),
    ("r", "rebalance on/off"),
];

/// Every key of the confirmations.
const CONFIRM_KEYS: [(&str, &str); 2] = [("y/Enter", "confirm"), ("other", "cancel")];

/// The help popup: every key, in two columns when they fit.
fn help(area: Rect, buf: &mut Buffer) {
    const KEY_W: usize = 10;
    let heading = |s: &str| Line::styled(s.to_string(), theme::header());
    let mut left = vec![heading("Panels")];
    left.extend(PANEL_KEYS.iter().map(|(k, w)| key_line(k, w, KEY_W)));
    let mut right = vec![heading("Start dialog")];
    right.extend(START_KEYS.iter().map(|(k, w)| key_line(k, w, KEY_W)));
    right.push(Line::default());
    right.push(heading("Stop / delete popups"));
    right.extend(CONFIRM_KEYS.iter().map(|(k, w)| key_line(k, w, KEY_W)));
    let col_w = |lines: &[Line]| lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let (lw, rw) = (col_w(&left), col_w(&right));
    let two_w = lw + 3 + rw + 4;
    if area.width >= two_w {
        let height = left.len().max(right.len()) as u16 + 2;
        let inner = popup(" Help: keys ", two_w, height, area, buf);
        let [l, _, r] = Layout::horizontal([
            Constraint::Length(lw + 1),
            Constraint::Length(2),
            Constraint::Min(0),
        ])
        .areas(inner);
        Paragraph::new(left).render(l, buf);
        Paragraph::new(right).render(r, buf);
    } else {
        left.push(Line::default());
        left.extend(right);
        text_popup(" Help: keys ", left, area, buf);
    }
}

/// How the dialog's agent choice reads ("all idle agents (3 now)").
fn agents_text(app: &App, d: &StartDialog) -> String {
    match d.choice {
        AgentChoice::All => format!("all idle agents ({} now)", app.idle_agents()),
        AgentChoice::Count => {
            format!("{} agent{}", d.count, if d.count == 1 { "" } else { "s" })
        }
        AgentChoice::Label => match app.labels().get(d.label) {
            Some(l) => format!("agents labelled {l}"),
            None => "agents with a label (none known)".into(),
        },
    }
}

/// Whether a lost agent's share moves (`--rebalance`).
fn rebalance_line(d: &StartDialog) -> Line<'static> {
    if d.rebalance {
        Line::from(vec![
            Span::raw("Rebalance: "),
            Span::styled("on", theme::header()),
            Span::raw(" (a lost agent's share moves to the live ones)"),
        ])
    } else {
        Line::from(vec![
            Span::raw("Rebalance: off "),
            Span::styled("(a lost agent's share is not moved)", theme::dim()),
        ])
    }
}

/// The start dialog, one step at a time.
fn start(app: &App, d: &StartDialog, area: Rect, buf: &mut Buffer) {
    let scenario = app.scenarios.get(d.scenario);
    let scenario_name = scenario.map_or_else(|| "?".to_string(), |s| s.label.clone());
    match d.step {
        StartStep::Scenario => {
            let width = app
                .scenarios
                .iter()
                .map(|s| s.label.len() + s.path.display().to_string().len() + 8)
                .max()
                .unwrap_or(0)
                .clamp(40, 100) as u16;
            let visible = usize::from(area.height.saturating_sub(4)).max(1);
            let height = app.scenarios.len().min(visible) as u16 + 4;
            let inner = popup(" Start a run (1/3): scenario ", width, height, area, buf);
            let first = d.scenario.saturating_sub(visible - 1);
            let mut lines: Vec<Line> = app
                .scenarios
                .iter()
                .enumerate()
                .skip(first)
                .take(visible)
                .map(|(i, s)| {
                    let on = i == d.scenario;
                    let line = Line::from(vec![
                        Span::raw(if on { theme::SELECTED_MARK } else { "  " }),
                        Span::styled(s.label.clone(), theme::header()),
                        Span::raw("  "),
                        Span::styled(s.path.display().to_string(), theme::dim()),
                    ]);
                    if on {
                        line.style(theme::selected())
                    } else {
                        line
                    }
                })
                .collect();
            if lines.is_empty() {
                lines.push(Line::styled("no scenarios found", theme::dim()));
            }
            lines.push(Line::default());
            lines.push(Line::styled(
                "j/k pick · Enter next · Esc cancel",
                theme::dim(),
            ));
            Paragraph::new(lines).render(inner, buf);
        }
        StartStep::Agents => {
            let labels = app.labels();
            let label = labels
                .get(d.label)
                .map_or_else(|| "(none known)".to_string(), |l| l.clone());
            let options = [
                (
                    AgentChoice::All,
                    format!("All idle agents ({})", app.idle_agents()),
                ),
                (AgentChoice::Count, format!("Count: {}", d.count)),
                (
                    AgentChoice::Label,
                    if labels.is_empty() {
                        format!("Label: {label}")
                    } else {
                        format!("Label: {label}  ({} of {})", d.label + 1, labels.len())
                    },
                ),
            ];
            let mut lines = vec![
                Line::from(vec![
                    Span::raw("Scenario: "),
                    Span::styled(scenario_name, theme::header()),
                ]),
                Line::default(),
            ];
            for (choice, text) in options {
                let on = choice == d.choice;
                let line = Line::from(format!(
                    "{}{text}",
                    if on { theme::SELECTED_MARK } else { "  " }
                ));
                lines.push(if on {
                    line.style(theme::selected())
                } else {
                    line
                });
            }
            lines.push(Line::default());
            lines.push(rebalance_line(d));
            lines.push(Line::default());
            lines.push(Line::styled(
                "Tab/a all/count/label · +/- change · r rebalance · Enter next · Esc back",
                theme::dim(),
            ));
            text_popup(" Start a run (2/3): agents ", lines, area, buf);
        }
        StartStep::Confirm => {
            let lines = vec![
                Line::from(vec![
                    Span::raw("Start "),
                    Span::styled(scenario_name, theme::header()),
                    Span::raw(" on "),
                    Span::styled(agents_text(app, d), theme::header()),
                    Span::raw("?"),
                ]),
                rebalance_line(d),
                Line::default(),
                Line::from(vec![
                    Span::styled("Enter", theme::key()),
                    Span::raw(" to start, "),
                    Span::styled("r", theme::key()),
                    Span::raw(" rebalance, "),
                    Span::styled("Esc", theme::key()),
                    Span::raw(" back"),
                ]),
            ];
            text_popup(" Start a run (3/3): confirm ", lines, area, buf);
        }
    }
}

/// Width of the labels of [`field`]s.
const LABEL_W: usize = 11;

/// `label value` with the label dimmed.
fn field(label: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<LABEL_W$}"), theme::dim()),
        Span::raw(value),
    ])
}

/// One agent: its health, its share of the watched run and its own req/s.
fn agent(app: &App, node: &NodeId, area: Rect, buf: &mut Buffer) {
    let width = area.width.saturating_sub(4).min(100);
    let Some(row) = app.agents.get(node) else {
        text_popup(
            " Agent ",
            vec![Line::from(format!(
                "agent …{} is not heard any more",
                node.short()
            ))],
            area,
            buf,
        );
        return;
    };
    let h = &row.health;
    let title = format!(" Agent {} ", h.name);
    let inner = popup(&title, width, area.height.saturating_sub(2), area, buf);
    let liveness = app.liveness(row);
    let labels = if h.labels.is_empty() {
        "-".to_string()
    } else {
        h.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let engines = h
        .engines
        .iter()
        .map(|e| format!("{} {}", e.name, e.version))
        .collect::<Vec<_>>()
        .join(", ");
    let schedule = if h.keeping_schedule {
        Span::styled("keeping its schedule", theme::good())
    } else {
        Span::styled("! saturated: behind its schedule", theme::saturated())
    };
    let left = vec![
        field("state", format::node_state(&h.state)),
        field("labels", labels),
        field("engines", engines),
        field(
            "version",
            format!("bfgg {} · protocol {}", h.bfgg_version, h.protocol_version),
        ),
        field(
            "listens",
            h.listen_addrs
                .first()
                .map(|a| a.split("/p2p/").next().unwrap_or(a).to_string())
                .unwrap_or_default(),
        ),
    ];
    let right = vec![
        field("CPU", format!("{:.1}%", h.cpu_pct)),
        field("memory", format!("{} MB", h.mem_bytes / 1_000_000)),
        field("offset", format!("{:+} ms", row.offset_ms)),
        Line::from(vec![
            Span::styled(format!("{:<LABEL_W$}", "heard"), theme::dim()),
            Span::styled(
                format!(
                    "{} ago ({})",
                    format::ago(app.now_ms.saturating_sub(row.heard_ms)),
                    match liveness {
                        Liveness::Alive => "alive",
                        Liveness::Unresponsive => "unresponsive",
                        Liveness::Dead => "dead",
                    }
                ),
                theme::liveness(liveness),
            ),
        ]),
        field("dropped", format!("{} messages", h.dropped_messages)),
    ];
    let share = app
        .run
        .as_ref()
        .and_then(|r| r.agents.get(node).map(|a| (r, a)));
    let run_lines = match share {
        Some((r, a)) => vec![
            Line::default(),
            field("run", format::run_name(&r.id).to_string()),
            field(
                "its share",
                format!(
                    "{} requests · {} errors · p50 {} · p99 {} ms",
                    a.total.requests,
                    a.total.error_count(),
                    format::ms(a.total.response_time.quantile_us(0.5)),
                    format::ms(a.total.response_time.quantile_us(0.99)),
                ),
            ),
        ],
        None => vec![
            Line::default(),
            Line::styled("not in the watched run", theme::dim()),
        ],
    };
    let top = vec![
        Line::from(vec![
            Span::styled(format!("{:<LABEL_W$}", "id"), theme::dim()),
            Span::raw(node.0.clone()),
        ]),
        Line::from(schedule),
    ];
    let two_columns = inner.width >= 70;
    let fields_h = if two_columns {
        left.len().max(right.len())
    } else {
        left.len() + right.len()
    } as u16;
    let [head, fields, run_area, chart_area] = Layout::vertical([
        Constraint::Length(top.len() as u16),
        Constraint::Length(fields_h),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .areas(inner);
    Paragraph::new(top).render(head, buf);
    if two_columns {
        let [l, _, r] = Layout::horizontal([
            Constraint::Percentage(60),
            Constraint::Length(2),
            Constraint::Min(0),
        ])
        .areas(fields);
        Paragraph::new(left).render(l, buf);
        Paragraph::new(right).render(r, buf);
    } else {
        let mut all = left;
        all.extend(right);
        Paragraph::new(all).render(fields, buf);
    }
    Paragraph::new(run_lines).render(run_area, buf);
    if chart_area.height >= 5
        && let Some((r, a)) = share
    {
        // Its own curve, and beside it (when there is room) its histogram.
        let (chart_area, hist_area) = if chart_area.width >= 60 {
            let [c, h] = Layout::horizontal([Constraint::Percentage(55), Constraint::Min(0)])
                .areas(chart_area);
            (c, Some(h))
        } else {
            (chart_area, None)
        };
        if let Some(hist_area) = hist_area {
            super::latency::render_histogram(
                &a.total.response_time,
                &format!(" {} response times ", h.name),
                hist_area,
                buf,
            );
        }
        // On the run's time axis, like the panels' charts.
        let axis = TimeAxis::of(app, r);
        let data: Vec<(f64, f64)> = a
            .points
            .iter()
            .filter(|p| axis.shows(p.index))
            .map(|p| (f64::from(p.index), p.requests as f64))
            .collect();
        let peak = data.iter().map(|p| p.1).fold(1.0f64, f64::max);
        let y_max = (peak * 1.1).ceil();
        Chart::new(vec![
            Dataset::default()
                .data(&data)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme::total_series()),
        ])
        .block(Block::bordered().title(Line::styled(format!(" {} req/s ", h.name), theme::title())))
        .x_axis(axis.axis(chart_area.width))
        .y_axis(super::axis::y_axis(
            y_max,
            ["0".to_string(), format!("{y_max:.0}")],
        ))
        .render(chart_area, buf);
    }
}

/// A stored (or just finished) run's summary.
fn summary(s: &RunSummary, area: Rect, buf: &mut Buffer) {
    let t = &s.total;
    let l = &t.latency_ms;
    let mut lines = vec![
        field(
            "scenario",
            format!("{} · {} engine · {} model", s.scenario, s.engine, s.model),
        ),
        field("target", s.target.clone()),
        field("duration", format!("{:.1} s", s.duration_s)),
    ];
    if s.stopped_early {
        lines.push(Line::styled(
            format!(
                "stopped early: {}",
                s.stop_reason.as_deref().unwrap_or("no reason given")
            ),
            theme::warn(),
        ));
    }
    lines.push(Line::default());
    lines.push(field(
        "requests",
        format!(
            "{} · errors {} ({:.2}%) · {:.1} req/s",
            t.requests,
            t.errors,
            t.error_rate * 100.0,
            t.rps
        ),
    ));
    lines.push(field(
        "latency",
        format!(
            "p50 {} · p90 {} · p99 {} · max {} ms",
            format::ms_f(l.p50),
            format::ms_f(l.p90),
            format::ms_f(l.p99),
            format::ms_f(l.max)
        ),
    ));
    lines.push(Line::default());
    if s.thresholds.is_empty() {
        lines.push(field("thresholds", "none".into()));
    } else {
        let verdict = if s.thresholds_passed() {
            Span::styled("all passed", theme::good())
        } else {
            Span::styled("FAILED", theme::bad())
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<LABEL_W$}", "thresholds"), theme::dim()),
            verdict,
        ]));
        for th in &s.thresholds {
            let (mark, style) = if th.passed {
                ("pass", theme::good())
            } else {
                ("FAIL", theme::bad())
            };
            lines.push(Line::from(vec![
                Span::raw("  "),
                Span::styled(mark, style),
                Span::raw(format!(
                    "  {}  (actual {})",
                    th.expression,
                    format::num(th.actual)
                )),
            ]));
        }
    }
    if !s.agents.is_empty() {
        lines.push(Line::default());
        let lost = s.agents.iter().filter(|a| a.status != "complete").count();
        let mut spans = vec![
            Span::styled(format!("{:<LABEL_W$}", "agents"), theme::dim()),
            Span::raw(format!("{}", s.agents.len())),
        ];
        if s.partial {
            spans.push(Span::styled(
                format!(" · partial: {lost} lost"),
                theme::warn(),
            ));
        }
        lines.push(Line::from(spans));
    }
    text_popup(&format!(" Summary: {} ", s.scenario), lines, area, buf);
}
