//! Colours and styles of the cockpit, in one place.

use ratatui::style::{Color, Modifier, Style};

use crate::app::Liveness;

/// Plain text.
pub(crate) fn text() -> Style {
    Style::new()
}

/// Quieter text: hints, empty values, units.
pub(crate) fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Table headers and labels of fields.
pub(crate) fn header() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// Panel and popup titles.
pub(crate) fn title() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

/// The selected row, tab or choice.
pub(crate) fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// The marker in front of a selected row.
pub(crate) const SELECTED_MARK: &str = "> ";

/// Popup borders.
pub(crate) fn popup() -> Style {
    Style::new().fg(Color::Cyan)
}

/// Keys in hint lines.
pub(crate) fn key() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

/// The notice in the bottom line.
pub(crate) fn notice() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

/// Something went wrong: errors, failed thresholds, dead nodes.
pub(crate) fn bad() -> Style {
    Style::new().fg(Color::Red)
}

/// Something to watch: unresponsive nodes, partial results.
pub(crate) fn warn() -> Style {
    Style::new().fg(Color::Yellow)
}

/// All is well: alive nodes, passed thresholds.
pub(crate) fn good() -> Style {
    Style::new().fg(Color::Green)
}

/// A saturated agent (behind its schedule).
pub(crate) fn saturated() -> Style {
    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
}

/// Nodes of another protocol version.
pub(crate) fn incompatible() -> Style {
    Style::new()
        .fg(Color::DarkGray)
        .add_modifier(Modifier::ITALIC)
}

/// A node row as its liveness colours it.
pub(crate) fn liveness(l: Liveness) -> Style {
    match l {
        Liveness::Alive => text(),
        Liveness::Unresponsive => warn(),
        Liveness::Dead => bad(),
    }
}

/// The merged achieved rate.
pub(crate) fn total_series() -> Style {
    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
}

/// The target rate (scheduled arrivals).
pub(crate) fn target_series() -> Style {
    Style::new().fg(Color::Yellow)
}

/// Active users / requests in flight.
pub(crate) fn active_series() -> Style {
    Style::new().fg(Color::Cyan)
}

/// Median latency over time.
pub(crate) fn p50_series() -> Style {
    Style::new().fg(Color::Green)
}

/// p90 latency over time.
pub(crate) fn p90_series() -> Style {
    Style::new().fg(Color::Yellow)
}

/// p99 latency over time.
pub(crate) fn p99_series() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}

/// Histogram bars.
pub(crate) fn bars() -> Style {
    Style::new().fg(Color::Blue)
}

/// Per-agent series, by position.
pub(crate) fn agent_series(i: usize) -> Style {
    const PALETTE: [Color; 6] = [
        Color::Blue,
        Color::Magenta,
        Color::LightCyan,
        Color::LightRed,
        Color::LightBlue,
        Color::LightMagenta,
    ];
    Style::new().fg(PALETTE[i % PALETTE.len()])
}
