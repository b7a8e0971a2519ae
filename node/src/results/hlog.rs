//! `latency.hlog`: an HdrHistogram interval log (format 1.3, V2 compressed
//! histograms, base64), readable by HdrHistogram's own tools (Java
//! `HistogramLogProcessor`, the `hdrhistogram` package on PyPI).
//!
//! Per interval: one untagged line with all request names merged, then one
//! `Tag=<name>` line per request name. Values are response times from the
//! intended start (coordinated-omission corrected) in microseconds;
//! timestamps are seconds relative to `StartTime`; the max column is in ms.

use std::io::Write;
use std::time::SystemTime;

use base64::Engine as _;
use bfgg_protocol::{IntervalSnapshot, LatencyHistogram};

pub(crate) struct HlogWriter<W: Write> {
    out: W,
}

impl<W: Write> HlogWriter<W> {
    pub(crate) fn new(mut out: W, start: SystemTime) -> std::io::Result<Self> {
        let secs = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        writeln!(out, "#[Logged with bfgg {}]", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "#[Histogram log format version 1.3]")?;
        writeln!(
            out,
            "#[StartTime: {secs:.3} (seconds since epoch), {}]",
            super::utc_stamp(start)
        )?;
        writeln!(out, "#[BaseTime: {secs:.3} (seconds since epoch)]")?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(Self { out })
    }

    pub(crate) fn write_interval(&mut self, snap: &IntervalSnapshot) -> std::io::Result<()> {
        let start = f64::from(snap.index);
        let mut total = LatencyHistogram::new();
        for stats in snap.by_name.values() {
            total.add(&stats.response_time);
        }
        self.line(None, start, &total)?;
        for (name, stats) in &snap.by_name {
            self.line(Some(name), start, &stats.response_time)?;
        }
        Ok(())
    }

    fn line(&mut self, tag: Option<&str>, start: f64, h: &LatencyHistogram) -> std::io::Result<()> {
        if let Some(tag) = tag {
            write!(self.out, "Tag={},", sanitize_tag(tag))?;
        }
        let max_ms = h.max_us() as f64 / 1000.0;
        let payload = base64::engine::general_purpose::STANDARD.encode(h.to_v2_deflate());
        writeln!(self.out, "{start:.3},1.000,{max_ms:.3},{payload}")
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Tags may not contain commas or whitespace (they would break the line format).
fn sanitize_tag(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == ',' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn lines_decode_back_to_the_recorded_histograms() {
        let mut snap = IntervalSnapshot::new(2);
        for (name, v) in [("GET /a", 1_000u64), ("b", 50_000)] {
            let s = snap.by_name.entry(name.into()).or_default();
            s.requests = 10;
            for i in 0..10 {
                s.response_time.record(v + i);
            }
        }
        let mut w = HlogWriter::new(Vec::new(), SystemTime::UNIX_EPOCH).expect("header");
        w.write_interval(&snap).expect("writes");
        let text = String::from_utf8(w.out).expect("utf-8");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("2.000,1.000,50.015,"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("Tag=GET_/a,2.000,1.000,1.009,"),
            "{}",
            lines[1]
        );
        let payload = lines[0].rsplit(',').next().expect("payload");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .expect("base64");
        let h: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .expect("v2");
        assert_eq!(h.len(), 20);
    }
}
