//! Text helpers shared by the regions: numbers in table-sized form, short
//! ids, fitting table columns into the width there is, and drawing a
//! selectable list table.

use bfgg_protocol::RunId;
use bfgg_protocol::mesh::NodeState;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row, StatefulWidget, Table, TableState};

use super::theme;

/// A latency in µs as milliseconds with 1-3 decimals ("0.412", "12.35",
/// "250.1").
pub(crate) fn ms(us: u64) -> String {
    ms_f(us as f64 / 1000.0)
}

/// Milliseconds with 1-3 decimals, fewer as the value grows.
pub(crate) fn ms_f(ms: f64) -> String {
    if !ms.is_finite() {
        "-".into()
    } else if ms < 10.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// A measured value of any unit: small fractions keep 4 decimals, the rest
/// as [`ms_f`].
pub(crate) fn num(x: f64) -> String {
    if x.abs() < 0.1 {
        format!("{x:.4}")
    } else {
        ms_f(x)
    }
}

/// A count in at most 5 columns ("812", "12.3k", "4.5M").
pub(crate) fn compact(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else if n < 1_000_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        format!("{:.1}G", n as f64 / 1e9)
    }
}

/// `part` as a percentage of `whole`, 0 when `whole` is 0.
pub(crate) fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// How long ago, from a duration in ms ("0.4s", "7s", "3m", "2h").
pub(crate) fn ago(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 120_000 {
        format!("{}s", ms / 1000)
    } else if ms < 7_200_000 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}h", ms / 3_600_000)
    }
}

/// A histogram bucket's upper bound as a chart label ("500µs", "2ms", "10s").
pub(crate) fn bound_label(us: u64) -> String {
    if us == u64::MAX {
        "more".into()
    } else if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{}ms", us / 1_000)
    } else {
        format!("{}s", us / 1_000_000)
    }
}

/// A run id without its leading `yyyymmdd-hhmmss-` stamp
/// ("checkout-a1b2"), or the whole id when it has none.
pub(crate) fn run_name(run: &RunId) -> &str {
    let s = run.0.as_str();
    let b = s.as_bytes();
    let stamped = b.len() > 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'-';
    if stamped { &s[16..] } else { s }
}

/// The last part of a run id (its random tag, "a1b2"), for narrow columns.
pub(crate) fn run_tag(run: &RunId) -> &str {
    run.0.rsplit('-').next().unwrap_or(&run.0)
}

/// A node's state in one word ("idle", "running"), where the run is known.
pub(crate) fn node_state_word(state: &NodeState) -> &'static str {
    match state {
        NodeState::Idle => "idle",
        NodeState::Preparing(_) => "preparing",
        NodeState::Running(_) => "running",
        NodeState::Finishing(_) => "finishing",
    }
}

/// A node's state in a few words ("idle", "running a1b2").
pub(crate) fn node_state(state: &NodeState) -> String {
    match state {
        NodeState::Idle => "idle".into(),
        NodeState::Preparing(r) => format!("preparing {}", run_tag(r)),
        NodeState::Running(r) => format!("running {}", run_tag(r)),
        NodeState::Finishing(r) => format!("finishing {}", run_tag(r)),
    }
}

/// One table column: its header, how much it matters (0 first) when the
/// width runs out, the width it gets before others are added, whether
/// numbers align right, and whether it takes the width left over.
pub(crate) struct Col {
    pub(crate) title: &'static str,
    pub(crate) priority: u8,
    pub(crate) max: u16,
    pub(crate) right: bool,
    pub(crate) grow: bool,
}

impl Col {
    pub(crate) const fn new(title: &'static str, priority: u8, max: u16, right: bool) -> Self {
        Self {
            title,
            priority,
            max,
            right,
            grow: false,
        }
    }

    /// This column takes the width left over.
    pub(crate) const fn grow(mut self) -> Self {
        self.grow = true;
        self
    }
}

/// Columns fitted into a width.
pub(crate) struct Fitted {
    /// Kept columns in display order, with their widths.
    pub(crate) cols: Vec<(usize, u16)>,
    /// Spaces between columns.
    pub(crate) spacing: u16,
}

/// The columns that fit in `avail`, in display order, with their widths.
/// Each starts as wide as its widest cell capped at its `max`; the least
/// important are dropped until the rest fit with one space between them.
/// Width left over first widens capped columns back to their widest cell (in
/// importance order), then goes to the `grow` column, or else to the spacing
/// (up to 3).
pub(crate) fn fit(cols: &[Col], rows: &[Vec<String>], avail: u16) -> Fitted {
    let widest: Vec<u16> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let w = rows
                .iter()
                .filter_map(|r| r.get(i))
                .flat_map(|s| s.lines())
                .map(|s| Line::from(s).width())
                .max()
                .unwrap_or(0)
                .max(c.title.len());
            u16::try_from(w).unwrap_or(u16::MAX).max(1)
        })
        .collect();
    let mut want: Vec<u16> = widest
        .iter()
        .zip(cols)
        .map(|(w, c)| (*w).min(c.max).max(1))
        .collect();
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|i| (cols[*i].priority, *i));
    let mut kept = vec![false; cols.len()];
    let mut used = 0u16;
    for &i in &order {
        let extra = if used == 0 { want[i] } else { want[i] + 1 };
        if used.saturating_add(extra) <= avail {
            kept[i] = true;
            used += extra;
        }
    }
    let mut slack = avail - used;
    for &i in order.iter().filter(|i| kept[**i]) {
        let more = (widest[i] - want[i]).min(slack);
        want[i] += more;
        slack -= more;
    }
    let n = kept.iter().filter(|k| **k).count() as u16;
    let mut spacing = 1;
    if let Some(g) = (0..cols.len()).find(|i| kept[*i] && cols[*i].grow) {
        want[g] = want[g].saturating_add(slack);
    } else if n > 1 {
        spacing += (slack / (n - 1)).min(2);
    }
    Fitted {
        cols: (0..cols.len())
            .filter(|i| kept[*i])
            .map(|i| (i, want[i]))
            .collect(),
        spacing,
    }
}

impl Fitted {
    /// Table constraints of the kept columns.
    pub(crate) fn widths(&self) -> Vec<Constraint> {
        self.cols
            .iter()
            .map(|(_, w)| Constraint::Length(*w))
            .collect()
    }

    /// Header cells of the kept columns.
    pub(crate) fn header<'a>(&self, cols: &[Col]) -> Vec<Cell<'a>> {
        self.cols
            .iter()
            .map(|(i, _)| cell(&cols[*i], cols[*i].title.to_string()))
            .collect()
    }

    /// The kept cells of one row.
    pub(crate) fn row<'a>(&self, cols: &[Col], cells: &[String]) -> Vec<Cell<'a>> {
        self.cols
            .iter()
            .map(|(i, _)| cell(&cols[*i], cells.get(*i).cloned().unwrap_or_default()))
            .collect()
    }
}

/// A cell aligned as its column wants; a multi-line text gets one line per
/// `\n`.
pub(crate) fn cell<'a>(col: &Col, text: String) -> Cell<'a> {
    let lines: Vec<Line<'a>> = text
        .split('\n')
        .map(|l| {
            let line = Line::from(l.to_string());
            if col.right {
                line.right_aligned()
            } else {
                line
            }
        })
        .collect();
    Cell::from(ratatui::text::Text::from(lines))
}

/// Draws a list table into `area`: `text` fitted to the width (room kept
/// for the selection mark), a bold header, each row styled by `style(i)`,
/// row `selected` (clamped to the rows) highlighted and scrolled into view.
pub(crate) fn render_list(
    cols: &[Col],
    text: &[Vec<String>],
    style: impl Fn(usize) -> Style,
    selected: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    let mark = theme::SELECTED_MARK.len() as u16;
    let fitted = fit(cols, text, area.width.saturating_sub(mark));
    let rows = text
        .iter()
        .enumerate()
        .map(|(i, cells)| Row::new(fitted.row(cols, cells)).style(style(i)));
    let table = Table::new(rows, fitted.widths())
        .column_spacing(fitted.spacing)
        .header(Row::new(fitted.header(cols)).style(theme::header()))
        .row_highlight_style(theme::selected())
        .highlight_symbol(theme::SELECTED_MARK);
    let selected = (!text.is_empty()).then(|| selected.min(text.len() - 1));
    let mut state = TableState::new().with_selected(selected);
    StatefulWidget::render(table, area, buf, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_three_significant_places() {
        assert_eq!(ms(412), "0.412");
        assert_eq!(ms(12_345), "12.35");
        assert_eq!(ms(250_080), "250.1");
        assert_eq!(ms(0), "0.000");
    }

    #[test]
    fn bounds_read_as_units() {
        assert_eq!(bound_label(500), "500µs");
        assert_eq!(bound_label(1_000), "1ms");
        assert_eq!(bound_label(20_000), "20ms");
        assert_eq!(bound_label(5_000_000), "5s");
        assert_eq!(bound_label(u64::MAX), "more");
    }

    #[test]
    fn run_ids_lose_their_stamp() {
        assert_eq!(
            run_name(&RunId("20261115-101500-checkout-a1b2".into())),
            "checkout-a1b2"
        );
        assert_eq!(run_name(&RunId("r".into())), "r");
        assert_eq!(
            run_tag(&RunId("20261115-101500-checkout-a1b2".into())),
            "a1b2"
        );
    }

    #[test]
    fn columns_drop_the_least_important_first() {
        let cols = [
            Col::new("name", 0, 10, false),
            Col::new("extra", 2, 10, false),
            Col::new("n", 1, 5, true),
        ];
        let rows = vec![vec!["abcdef".into(), "xxxxxxxx".into(), "12345".into()]];
        let all = fit(&cols, &rows, 40);
        assert_eq!(all.cols.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(all.spacing, 3, "no column grows: spacing takes the slack");
        let some = fit(&cols, &rows, 14);
        assert_eq!(some.cols.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 2]);
        assert!(fit(&cols, &rows, 0).cols.is_empty());
        let capped = [
            Col::new("name", 0, 3, false).grow(),
            Col::new("n", 1, 5, true),
        ];
        let rows = vec![vec!["abcdef".into(), "12345".into()]];
        let f = fit(&capped, &rows, 9);
        assert_eq!(f.cols, [(0, 3), (1, 5)], "capped until the number fits");
        let f = fit(&capped, &rows, 30);
        assert_eq!(f.cols, [(0, 24), (1, 5)], "then widest, then the rest");
    }
}
