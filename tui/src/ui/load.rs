//! The Load panel: achieved req/s of the watched run (merged and per agent)
//! against its target, and active users / requests in flight under it, on
//! the run's shared time axis. The Overview draws its rate chart too.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, LegendPosition, Widget};

use super::axis::{self, TimeAxis};
use super::theme;
use crate::app::{App, Point, RunView};

/// Per-agent curves drawn at most (beyond that the chart is unreadable).
const MAX_AGENT_CURVES: usize = 6;

/// Draws the Load panel.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(run) = waiting(app, " Load ", area, buf) else {
        return;
    };
    let active_h = match area.height {
        h if h >= 16 => 6,
        h if h >= 12 => 5,
        _ => 0,
    };
    let [chart_area, active_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(active_h)]).areas(area);
    let axis = TimeAxis::of(app, run);
    render_rate(app, run, axis, true, chart_area, buf);
    if active_h > 0 {
        render_active(run, axis, active_area, buf);
    }
}

/// The watched run once it has a point to draw; otherwise draws a block
/// titled `title` with why there is nothing yet and returns `None`.
pub(super) fn waiting<'a>(
    app: &'a App,
    title: &str,
    area: Rect,
    buf: &mut Buffer,
) -> Option<&'a RunView> {
    let hint = match app.run.as_ref() {
        None => "no run yet: press s to start one".to_string(),
        Some(r) if r.points.is_empty() => format!("run {}: waiting for its first interval", r.id),
        Some(r) => return Some(r),
    };
    let block = Block::bordered().title(Line::styled(title.to_string(), theme::title()));
    let inner = block.inner(area);
    block.render(area, buf);
    super::hint(&hint, inner, buf);
    None
}

/// `(interval index, value)` pairs of a series, inside the axis' window.
fn series(axis: TimeAxis, points: impl Iterator<Item = (u32, u64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(i, _)| axis.shows(*i))
        .map(|(i, v)| (f64::from(i), v as f64))
        .collect()
}

/// The req/s chart: merged, the target and (`per_agent`) each agent's.
pub(super) fn render_rate(
    app: &App,
    run: &RunView,
    axis: TimeAxis,
    per_agent: bool,
    area: Rect,
    buf: &mut Buffer,
) {
    let total = series(axis, run.points.iter().map(|p| (p.index, p.requests)));
    let target = series(axis, run.points.iter().map(|p| (p.index, p.scheduled)));
    let open_model = run.points.iter().any(|p| p.scheduled > 0);
    let mut agents: Vec<(String, Vec<(f64, f64)>)> = if per_agent {
        run.agents
            .iter()
            .map(|(node, a)| {
                (
                    super::agent_name(app, node),
                    series(axis, a.points.iter().map(|p| (p.index, p.requests))),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    agents.sort_by(|a, b| a.0.cmp(&b.0));
    let hidden = agents.len().saturating_sub(MAX_AGENT_CURVES);
    agents.truncate(MAX_AGENT_CURVES);

    let peak = total
        .iter()
        .chain(if open_model { &target[..] } else { &[] })
        .map(|p| p.1)
        .fold(1.0f64, f64::max);
    let y_max = (peak * 1.1).ceil();

    let mut datasets = Vec::new();
    for (i, (name, data)) in agents.iter().enumerate() {
        datasets.push(
            Dataset::default()
                .name(name.clone())
                .data(data)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme::agent_series(i)),
        );
    }
    if open_model {
        datasets.push(
            Dataset::default()
                .name("target")
                .data(&target)
                .marker(Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(theme::target_series()),
        );
    }
    datasets.push(
        Dataset::default()
            .name("total")
            .data(&total)
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme::total_series()),
    );
    let now = run.latest().map_or(0, |p| p.requests);
    let mut title = format!(" req/s: {now} now");
    if open_model {
        title.push_str(&format!(
            ", target {}",
            run.latest().map_or(0, |p| p.scheduled)
        ));
    }
    if hidden > 0 {
        title.push_str(&format!(" ({hidden} more agents not drawn)"));
    }
    title.push(' ');
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(Line::styled(title, theme::title())))
        .x_axis(axis.axis(area.width))
        .y_axis(axis::y_axis(
            y_max,
            [
                "0".to_string(),
                format!("{:.0}", y_max / 2.0),
                format!("{y_max:.0}"),
            ],
        ))
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 3), Constraint::Ratio(3, 4)));
    chart.render(area, buf);
}

/// Active users / requests in flight on the same time axis.
fn render_active(run: &RunView, axis: TimeAxis, area: Rect, buf: &mut Buffer) {
    let open_model = run.points.iter().any(|p| p.scheduled > 0);
    let what = if open_model {
        "requests in flight"
    } else {
        "active users"
    };
    let now = run.latest().map_or(0, |p| p.active);
    let peak = run.points.iter().map(|p| p.active).max().unwrap_or(0);
    let data = series(axis, run.points.iter().map(|p: &Point| (p.index, p.active)));
    let y_max = (peak.max(1) as f64 * 1.1).ceil();
    Chart::new(vec![
        Dataset::default()
            .data(&data)
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(theme::active_series()),
    ])
    .block(Block::bordered().title(Line::styled(
        format!(" {what}: {now} now, {peak} peak "),
        theme::title(),
    )))
    .x_axis(Axis::default().bounds([f64::from(axis.first), f64::from(axis.last)]))
    .y_axis(axis::y_axis(
        y_max,
        ["0".to_string(), format!("{y_max:.0}")],
    ))
    .render(area, buf);
}
