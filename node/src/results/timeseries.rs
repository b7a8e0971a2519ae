//! `timeseries.csv`: one row per second per request name, plus a `*` row with
//! all names merged. Columns are documented in README.md ("Results").

use std::io::Write;

use bfgg_protocol::{IntervalSnapshot, NameStats};

pub(crate) struct TimeseriesWriter<W: Write> {
    out: W,
}

/// The header row; keep README.md in step.
pub(crate) const HEADER: &str = "second,name,requests,errors,rps,bytes_in,p50_ms,p90_ms,p99_ms,max_ms,service_p99_ms,active,late_starts,cpu_busy_pct";

impl<W: Write> TimeseriesWriter<W> {
    pub(crate) fn new(mut out: W) -> std::io::Result<Self> {
        writeln!(out, "{HEADER}")?;
        Ok(Self { out })
    }

    pub(crate) fn write_interval(&mut self, snap: &IntervalSnapshot) -> std::io::Result<()> {
        let total = snap.total();
        self.row(snap, "*", &total)?;
        for (name, stats) in &snap.by_name {
            self.row(snap, name, stats)?;
        }
        Ok(())
    }

    fn row(&mut self, snap: &IntervalSnapshot, name: &str, s: &NameStats) -> std::io::Result<()> {
        let ms = |us: u64| us as f64 / 1000.0;
        let name = if name.contains([',', '"', '\n']) {
            format!("\"{}\"", name.replace('"', "\"\""))
        } else {
            name.to_string()
        };
        writeln!(
            self.out,
            "{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.1}",
            snap.index,
            name,
            s.requests,
            s.error_count(),
            s.requests,
            s.bytes_in,
            ms(s.response_time.quantile_us(0.5)),
            ms(s.response_time.quantile_us(0.9)),
            ms(s.response_time.quantile_us(0.99)),
            ms(s.response_time.max_us()),
            ms(s.service_time.quantile_us(0.99)),
            snap.generator.active,
            snap.generator.late_starts,
            f64::from(snap.generator.cpu_busy_permille) / 10.0,
        )
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
