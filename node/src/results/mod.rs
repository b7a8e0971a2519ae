//! The results directory of a run and the one pipeline that writes it, for
//! local and cluster runs alike. It is written as the run goes so that
//! nothing measured is lost if the process dies: `intervals.log` (the exact
//! merged snapshots, which a coordinator serves to clients), `latency.hlog`
//! and `timeseries.csv` grow one interval at a time; `summary.json` is
//! written last, by [`ResultsWriter::finish`], the only place a
//! [`RunSummary`] is built (totals, generator, agents, thresholds). A client
//! that followed a cluster run stores the coordinator's summary as it is
//! ([`ResultsWriter::store`]). Later sinks (a report, an upload) take the
//! finished directory and its summary from there.
//!
//! Layout (documented in README.md, "Results"):
//! `summary.json`, `timeseries.csv`, `latency.hlog`, `intervals.log`,
//! `scenario.toml`, and, derived after `summary.json` (a failure there is a
//! warning, never a lost run), `report.html` ([`report`]) and `junit.xml`
//! ([`junit`]).

pub mod compare;
mod hlog;
pub mod junit;
pub mod report;
pub mod store;
mod text;
mod timeseries;
pub mod upload;

pub use text::render_summary;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use bfgg_protocol::summary::{
    AgentSummary, GeneratorSummary, NameSummary, Percentiles, RunSummary,
};
use bfgg_protocol::{GeneratorStats, IntervalSnapshot, NameStats};

use crate::interval_log::IntervalLog;
use crate::merge::RunTotals;
use crate::scenario::Scenario;

/// Facts about the run that the measurements alone don't carry.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Seconds of load (to the stop, or the configured duration).
    pub duration_s: f64,
    /// Why the run ended before its duration, if it did.
    pub stop_reason: Option<String>,
}

/// Accumulates merged interval snapshots into the files of one results
/// directory.
pub struct ResultsWriter {
    dir: PathBuf,
    hlog: hlog::HlogWriter<BufWriter<File>>,
    timeseries: timeseries::TimeseriesWriter<BufWriter<File>>,
    log: IntervalLog,
    totals: RunTotals,
    busy_intervals: u32,
    /// `agents.csv`, once a cluster run's coordinator adds an agent's interval.
    agents: Option<BufWriter<File>>,
}

/// A cluster run's per-agent curves (written by its coordinator).
pub const AGENTS_FILE: &str = "agents.csv";

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl ResultsWriter {
    /// Creates `dir` (and parents), copies the scenario file into it and opens
    /// the streamed files.
    pub fn create(dir: &Path, scenario: &Scenario, started_at: SystemTime) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating results directory {}", dir.display()))?;
        if !scenario.source.as_os_str().is_empty() {
            std::fs::copy(&scenario.source, dir.join("scenario.toml")).with_context(|| {
                format!(
                    "copying {} into {}",
                    scenario.source.display(),
                    dir.display()
                )
            })?;
        }
        let open = |name: &str| -> anyhow::Result<BufWriter<File>> {
            let path = dir.join(name);
            Ok(BufWriter::new(
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            ))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            hlog: hlog::HlogWriter::new(open("latency.hlog")?, started_at)?,
            timeseries: timeseries::TimeseriesWriter::new(open("timeseries.csv")?)?,
            log: IntervalLog::create(dir)?,
            totals: RunTotals::default(),
            busy_intervals: 0,
            agents: None,
        })
    }

    /// The directory being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds one merged interval (all sources). Call in interval order.
    pub fn add_interval(&mut self, snap: &IntervalSnapshot) -> anyhow::Result<()> {
        self.log.append(snap)?;
        self.hlog.write_interval(snap)?;
        self.timeseries.write_interval(snap)?;
        self.totals.add(snap);
        if snap.generator.cpu_busy_permille > BUSY_PERMILLE {
            self.busy_intervals += 1;
        }
        Ok(())
    }

    /// Adds one agent's interval to `agents.csv` (a cluster run's per-agent
    /// curves: `second,agent,requests,errors,active`), created on first use.
    /// Call before the merged interval it is part of.
    pub fn add_agent_interval(
        &mut self,
        agent: &str,
        snap: &IntervalSnapshot,
    ) -> anyhow::Result<()> {
        if self.agents.is_none() {
            let path = self.dir.join(AGENTS_FILE);
            let mut f = BufWriter::new(
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            );
            writeln!(f, "second,agent,requests,errors,active")?;
            self.agents = Some(f);
        }
        if let Some(f) = self.agents.as_mut() {
            let total = snap.total();
            writeln!(
                f,
                "{},{},{},{},{}",
                snap.index,
                csv_field(agent),
                total.requests,
                total.error_count(),
                snap.generator.active
            )?;
        }
        Ok(())
    }

    /// Totals so far, per request name.
    pub fn totals(&self) -> &RunTotals {
        &self.totals
    }

    /// Totals so far, all names merged.
    pub fn total(&self) -> NameStats {
        self.totals.total()
    }

    /// Builds the run's summary from what was added, the `facts` and the
    /// cluster's `agents` (empty for a local run), judges the scenario's
    /// thresholds on it, and writes `summary.json`.
    pub fn finish(
        self,
        scenario: &Scenario,
        facts: &RunFacts,
        agents: Vec<AgentSummary>,
    ) -> anyhow::Result<(RunSummary, PathBuf)> {
        let d = facts.duration_s;
        let by_name: BTreeMap<String, NameSummary> = self
            .totals
            .by_name
            .iter()
            .map(|(name, s)| (name.clone(), NameSummary::from_stats(s, d)))
            .collect();
        let total = NameSummary::from_stats(&self.total(), d);
        let mut summary = RunSummary {
            scenario: scenario.name.clone(),
            engine: scenario.engine.as_str().to_string(),
            model: scenario.load.model.as_str().into(),
            target: format!("{}{}", scenario.target.origin, scenario.target.base_path),
            started_at_ms: facts
                .started_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            duration_s: d,
            stopped_early: facts.stop_reason.is_some(),
            stop_reason: facts.stop_reason.clone(),
            total,
            by_name,
            thresholds: Vec::new(),
            generator: self.generator_summary(),
            partial: agents.iter().any(|a| a.status != "complete"),
            agents,
        };
        summary.thresholds = scenario
            .thresholds
            .iter()
            .map(|t| t.evaluate(&summary))
            .collect();
        let dir = self.close()?;
        write_summary(&dir, &summary)?;
        report::write_derived(&dir, &summary);
        Ok((summary, dir))
    }

    /// Stores `summary` as built elsewhere (a client keeping what a cluster
    /// run's coordinator produced, with the merged intervals it fetched).
    pub fn store(self, summary: &RunSummary) -> anyhow::Result<PathBuf> {
        let dir = self.close()?;
        write_summary(&dir, summary)?;
        report::write_derived(&dir, summary);
        Ok(dir)
    }

    fn close(mut self) -> anyhow::Result<PathBuf> {
        self.hlog.flush()?;
        self.timeseries.flush()?;
        if let Some(f) = self.agents.as_mut() {
            f.flush()?;
        }
        Ok(self.dir)
    }

    fn generator_summary(&self) -> GeneratorSummary {
        let g = &self.totals.generator;
        let mut warnings = Vec::new();
        if self.busy_intervals > 0 {
            warnings.push(format!(
                "a generator core was over {}% busy in {} of {} intervals: the generator may be the bottleneck (add cores or nodes)",
                BUSY_PERMILLE / 10,
                self.busy_intervals,
                self.totals.intervals
            ));
        }
        if g.scheduled > 0 && g.late_starts * 100 > g.scheduled {
            warnings.push(format!(
                "{} of {} arrivals started more than {} ms late (p99 lag {} ms): the generator could not keep its schedule (max_in_flight reached, or the generator is saturated)",
                g.late_starts,
                g.scheduled,
                GeneratorStats::LATE_THRESHOLD_US / 1000,
                g.schedule_lag.quantile_us(0.99) as f64 / 1000.0
            ));
        }
        if g.missed > 0 {
            warnings.push(format!(
                "{} arrivals due before the end of load never started: the generator was behind when the run stopped, or still behind when the graceful stop ran out (raise max_in_flight, or add cores or nodes)",
                g.missed
            ));
        }
        GeneratorSummary {
            scheduled: g.scheduled,
            late_starts: g.late_starts,
            missed: g.missed,
            schedule_lag_ms: Percentiles::from_histogram(&g.schedule_lag),
            max_cpu_busy_pct: f64::from(g.cpu_busy_permille) / 10.0,
            peak_active: g.active,
            warnings,
        }
    }
}

/// Above this, a generator core counts as saturated (per mille).
pub const BUSY_PERMILLE: u32 = 800;

/// Writes `summary.json` into `dir`.
pub fn write_summary(dir: &Path, summary: &RunSummary) -> anyhow::Result<()> {
    let path = dir.join("summary.json");
    let mut f = BufWriter::new(
        File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    serde_json::to_writer_pretty(&mut f, summary)?;
    f.write_all(b"\n")?;
    f.flush()?;
    Ok(())
}

/// The default results directory for a run started at `at`:
/// `<data dir>/runs/<UTC yyyymmdd-hhmmss>-<scenario name>`.
pub fn default_dir(scenario_name: &str, at: SystemTime) -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "bfgg")
        .context("cannot find a home directory for the default results location; pass --out DIR")?;
    Ok(dirs
        .data_dir()
        .join("runs")
        .join(dir_name(scenario_name, at)))
}

/// The name of a run's directory in a results store: `<UTC stamp>-<scenario>`.
pub fn dir_name(scenario_name: &str, at: SystemTime) -> String {
    format!("{}-{}", utc_stamp(at), sanitize(scenario_name))
}

/// Writes a cluster run's results into `dir` as a local run would: the
/// merged `intervals` read from a fetched log (time series, hlog, the log
/// itself), a copy of the scenario, and `summary` (the coordinator's, with
/// its per-agent part) as it is.
pub fn store_cluster_results(
    dir: &Path,
    scenario: &Scenario,
    started_at: SystemTime,
    intervals: impl Iterator<Item = anyhow::Result<IntervalSnapshot>>,
    summary: &RunSummary,
) -> anyhow::Result<()> {
    let mut writer = ResultsWriter::create(dir, scenario, started_at)?;
    for snap in intervals {
        writer.add_interval(&snap?)?;
    }
    writer.store(summary)?;
    Ok(())
}

/// `name` made safe as one path segment or object-key part (letters,
/// digits, `-` and `_`; anything else becomes `_`).
pub fn safe_name(name: &str) -> String {
    sanitize(name)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `yyyymmdd-hhmmss` in UTC (civil-from-days, no date crate needed).
pub fn utc_stamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_stamp_formats_known_dates() {
        assert_eq!(utc_stamp(SystemTime::UNIX_EPOCH), "19700101-000000");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_444_895);
        assert_eq!(utc_stamp(t), "20261123-144135");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_stamp(leap), "20000229-000000");
    }
}
