//! The time axis every chart of the watched run shares: run seconds, the
//! window [`crate::app::RunView::window`] chose, labels at even steps in
//! `1m30s` form. Charts of the same run line up because they all take it
//! from here.

use ratatui::text::Line;
use ratatui::widgets::Axis;

use super::theme;
use crate::app::{App, RunView};

/// The x range of the watched run's charts, in run seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeAxis {
    /// First second shown.
    pub(crate) first: u32,
    /// Last second shown (exclusive end of the newest interval or later).
    pub(crate) last: u32,
}

impl TimeAxis {
    /// The axis of `run` under the cockpit's window.
    pub(crate) fn of(app: &App, run: &RunView) -> Self {
        let (first, last) = run.window(app.window);
        TimeAxis {
            first,
            last: last.max(first + 1),
        }
    }

    /// True if interval `index` falls in the window.
    pub(crate) fn shows(&self, index: u32) -> bool {
        (self.first..=self.last).contains(&index)
    }

    /// The ratatui axis for a chart `width` cells wide: bounds and labels
    /// (3, or 5 when there is room), each naming the second under it.
    pub(crate) fn axis(&self, width: u16) -> Axis<'static> {
        let n: u32 = if width >= 100 { 5 } else { 3 };
        let labels: Vec<Line<'static>> = self
            .label_seconds(n)
            .into_iter()
            .map(|s| Line::from(run_time(s)))
            .collect();
        Axis::default()
            .style(theme::dim())
            .bounds([f64::from(self.first), f64::from(self.last)])
            .labels(labels)
    }
}

/// Y-axis labels are padded to this width so that charts stacked in one
/// column have their plot areas, and so their seconds, in line.
const Y_LABEL_WIDTH: usize = 6;

/// A y axis from 0 to `max` with `labels` (bottom first), padded to a
/// common width.
pub(crate) fn y_axis(max: f64, labels: impl IntoIterator<Item = String>) -> Axis<'static> {
    let labels: Vec<Line<'static>> = labels
        .into_iter()
        .map(|l| Line::from(format!("{l:>Y_LABEL_WIDTH$}")))
        .collect();
    Axis::default()
        .style(theme::dim())
        .bounds([0.0, max])
        .labels(labels)
}

impl TimeAxis {
    /// The seconds `n` labels stand at. Ratatui draws the first and the last
    /// at the ends and the middle label `i` centred in the `i`-th of `n`
    /// equal slots, i.e. at `(2i + 1) / 2n` of the width: the labels name
    /// those seconds.
    pub(crate) fn label_seconds(&self, n: u32) -> Vec<u32> {
        let span = u64::from(self.last - self.first);
        let n64 = u64::from(n);
        (0..n)
            .map(|i| {
                let at = match i {
                    0 => 0,
                    i if i + 1 == n => span,
                    i => (span * (2 * u64::from(i) + 1) + n64) / (2 * n64),
                };
                self.first + at as u32
            })
            .collect()
    }
}

/// Run seconds for an axis label: `45s`, `2m`, `1m30s`, `1h5m`.
pub(crate) fn run_time(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::{TimeAxis, run_time};

    #[test]
    fn labels_name_the_seconds_they_stand_at() {
        let axis = TimeAxis {
            first: 0,
            last: 120,
        };
        assert_eq!(axis.label_seconds(3), [0, 60, 120]);
        assert_eq!(axis.label_seconds(5), [0, 36, 60, 84, 120]);
        let axis = TimeAxis {
            first: 80,
            last: 200,
        };
        assert_eq!(axis.label_seconds(3), [80, 140, 200]);
    }

    #[test]
    fn run_time_labels_are_short() {
        assert_eq!(run_time(0), "0s");
        assert_eq!(run_time(45), "45s");
        assert_eq!(run_time(120), "2m");
        assert_eq!(run_time(90), "1m30s");
        assert_eq!(run_time(3600), "1h");
        assert_eq!(run_time(3900), "1h5m");
    }
}
