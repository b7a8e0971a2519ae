//! The Load panel: achieved req/s of the watched run (merged and per agent)
//! against its target, and active users / requests in flight under it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{
    Axis, Block, Chart, Dataset, GraphType, LegendPosition, Paragraph, Sparkline, Widget,
};

use super::theme;
use crate::app::{App, Point, RunView};

/// Per-agent curves drawn at most (beyond that the chart is unreadable).
const MAX_AGENT_CURVES: usize = 6;

/// Draws the Load panel.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let run = app.run.as_ref();
    let hint = match run {
        None => Some("no run yet: press s to start one".to_string()),
        Some(r) if r.points.is_empty() => {
            Some(format!("run {}: waiting for its first interval", r.id))
        }
        Some(_) => None,
    };
    let (Some(run), None) = (run, hint.as_ref()) else {
        let block = Block::bordered().title(Line::styled(" Load ", theme::title()));
        let inner = block.inner(area);
        block.render(area, buf);
        Paragraph::new(Line::styled(hint.unwrap_or_default(), theme::dim()))
            .centered()
            .render(super::center_row(inner), buf);
        return;
    };
    let spark_h = match area.height {
        h if h >= 16 => 5,
        h if h >= 12 => 4,
        _ => 0,
    };
    let [chart_area, spark_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(spark_h)]).areas(area);
    render_rate(app, run, chart_area, buf);
    if spark_h > 0 {
        render_active(run, spark_area, buf);
    }
}

/// `(interval index, value)` pairs of a series.
fn series(points: impl Iterator<Item = (u32, u64)>) -> Vec<(f64, f64)> {
    points.map(|(i, v)| (f64::from(i), v as f64)).collect()
}

/// The req/s chart: merged, per agent, and the target.
fn render_rate(app: &App, run: &RunView, area: Rect, buf: &mut Buffer) {
    let total = series(run.points.iter().map(|p| (p.index, p.requests)));
    let target = series(run.points.iter().map(|p| (p.index, p.scheduled)));
    let open_model = run.points.iter().any(|p| p.scheduled > 0);
    let mut agents: Vec<(String, Vec<(f64, f64)>)> = run
        .agents
        .iter()
        .map(|(node, a)| {
            (
                super::agent_name(app, node),
                series(a.points.iter().map(|p| (p.index, p.requests))),
            )
        })
        .collect();
    agents.sort_by(|a, b| a.0.cmp(&b.0));
    let hidden = agents.len().saturating_sub(MAX_AGENT_CURVES);
    agents.truncate(MAX_AGENT_CURVES);

    let first = run.points.front().map_or(0, |p| p.index);
    let last = run.points.back().map_or(0, |p| p.index).max(first + 1);
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
    let mid = first + (last - first) / 2;
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(Line::styled(title, theme::title())))
        .x_axis(
            Axis::default()
                .title("s")
                .style(theme::dim())
                .bounds([f64::from(first), f64::from(last)])
                .labels([first.to_string(), mid.to_string(), last.to_string()]),
        )
        .y_axis(
            Axis::default()
                .style(theme::dim())
                .bounds([0.0, y_max])
                .labels([
                    "0".to_string(),
                    format!("{:.0}", y_max / 2.0),
                    format!("{y_max:.0}"),
                ]),
        )
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 3), Constraint::Ratio(3, 4)));
    chart.render(area, buf);
}

/// The active users / in-flight sparkline, newest on the right.
fn render_active(run: &RunView, area: Rect, buf: &mut Buffer) {
    let open_model = run.points.iter().any(|p| p.scheduled > 0);
    let what = if open_model {
        "requests in flight"
    } else {
        "active users"
    };
    let now = run.latest().map_or(0, |p| p.active);
    let peak = run.points.iter().map(|p| p.active).max().unwrap_or(0);
    let block = Block::bordered().title(Line::styled(
        format!(" {what}: {now} now, {peak} peak "),
        theme::title(),
    ));
    let width = usize::from(block.inner(area).width);
    let skip = run.points.len().saturating_sub(width);
    let data: Vec<u64> = run
        .points
        .iter()
        .skip(skip)
        .map(|p: &Point| p.active)
        .collect();
    Sparkline::default()
        .block(block)
        .data(data)
        .max(peak.max(1))
        .style(theme::active_series())
        .render(area, buf);
}
