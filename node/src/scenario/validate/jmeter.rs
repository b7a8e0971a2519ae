//! `engine = "jmeter"`: the `[jmeter]` table checked into a [`JmeterSpec`]:
//! the plan exists, the CSV files it names and the `files` listed exist
//! (they are shipped with it), `partition` names CSV files among them, and
//! properties keep off the names bfgg sets. The plan itself is loaded by
//! JMeter when an agent prepares the run (and by `bfgg check`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Validator;
use crate::engine::jmeter::plan;
use crate::scenario::model::{EngineKind, JmeterSpec};
use crate::scenario::raw::RawJmeter;

/// Help for a missing plan.
const PLAN_HELP: &str =
    "write [jmeter] plan = \"checkout.jmx\" (the test plan, relative to the scenario file)";

impl Validator<'_, '_> {
    /// The `[jmeter]` table of a JMeter scenario; `engine` is the span of
    /// `engine = "jmeter"`, where a missing table is reported.
    pub(super) fn jmeter(
        &mut self,
        table: Option<&Spanned<RawJmeter>>,
        engine: Option<Range<usize>>,
    ) -> Option<JmeterSpec> {
        let Some(table) = table else {
            self.sink
                .error(
                    engine,
                    "jmeter.plan",
                    "engine = \"jmeter\" needs a test plan, and there is no [jmeter] table",
                )
                .help(PLAN_HELP);
            return None;
        };
        let raw = table.get_ref();
        let plan = match &raw.plan {
            None => {
                self.sink
                    .error(
                        Some(table.span()),
                        "jmeter.plan",
                        "missing `plan`: the JMeter test plan (.jmx) to run",
                    )
                    .help(PLAN_HELP);
                None
            }
            Some(p) => self.existing_file(p, "jmeter.plan"),
        };
        let mut files = Vec::new();
        let mut ok = true;
        if let (Some(path), Some(written)) = (&plan, &raw.plan)
            && !self.deferred
        {
            ok &= self.plan_files(path, written, &mut files);
        }
        for (i, f) in raw
            .files
            .as_ref()
            .map(|v| v.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match self.existing_file(f, &format!("jmeter.files[{i}]")) {
                Some(path) if !files.contains(&path) => files.push(path),
                Some(_) => {}
                None => ok = false,
            }
        }
        let mut partition = Vec::new();
        for (i, f) in raw
            .partition
            .as_ref()
            .map(|v| v.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let field = format!("jmeter.partition[{i}]");
            let Some(path) = self.existing_file(f, &field) else {
                ok = false;
                continue;
            };
            if !files.contains(&path) && !self.deferred {
                self.sink
                    .error(
                        Some(f.span()),
                        &field,
                        format!(
                            "`{}` is not a file the plan's CSV Data Set Configs read, nor one of `files`",
                            f.get_ref()
                        ),
                    )
                    .help("name the CSV as the plan's CSV Data Set Config does (relative to the plan), written relative to the scenario file");
                ok = false;
                continue;
            }
            if !partition.contains(&path) {
                partition.push(path);
            }
        }
        let java_opts = self.java_opts(raw.java_opts.as_ref(), EngineKind::Jmeter);
        let split = self.split(raw.split.as_ref(), EngineKind::Jmeter);
        let properties = self.properties(
            raw.properties.as_ref(),
            raw.split.as_ref(),
            EngineKind::Jmeter,
        );
        if !ok {
            return None;
        }
        Some(JmeterSpec {
            plan: plan?,
            files,
            partition,
            java_opts: java_opts?,
            properties: properties?,
            split: split?,
        })
    }

    /// A path of the table resolved against the scenario's directory: an
    /// existing file (not checked when the files are deferred).
    fn existing_file(&mut self, value: &Spanned<String>, field: &str) -> Option<PathBuf> {
        let written = value.get_ref();
        let path = self.base_dir.join(written);
        let problem = if written.trim().is_empty() {
            "the path is empty".to_owned()
        } else if self.deferred || path.is_file() {
            return Some(path);
        } else if !path.exists() {
            format!(
                "file not found: `{written}` (looked for {})",
                path.display()
            )
        } else {
            format!("`{written}` is not a file ({})", path.display())
        };
        self.sink
            .error(Some(value.span()), field, problem)
            .help("paths in [jmeter] are relative to the scenario file's directory");
        None
    }

    /// The CSV files the plan at `path` names, resolved as JMeter does
    /// (relative to the plan's directory), into `files`; one named but
    /// missing is reported at `plan`. False when one was.
    fn plan_files(
        &mut self,
        path: &Path,
        written: &Spanned<String>,
        files: &mut Vec<PathBuf>,
    ) -> bool {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                self.sink.error(
                    Some(written.span()),
                    "jmeter.plan",
                    format!("cannot read {}: {e}", path.display()),
                );
                return false;
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut ok = true;
        for name in plan::csv_files(&text) {
            let csv = dir.join(&name);
            if csv.is_file() {
                if Path::new(&name).is_relative() && !files.contains(&csv) {
                    files.push(csv);
                }
                continue;
            }
            self.sink
                .error(
                    Some(written.span()),
                    "jmeter.plan",
                    format!(
                        "the plan's CSV Data Set Config reads `{name}`, which is not there (looked for {})",
                        csv.display()
                    ),
                )
                .help("put the file beside the plan (CSV paths in a plan are relative to the plan's directory)");
            ok = false;
        }
        ok
    }

    /// `[jmeter]` in a scenario whose engine is not JMeter.
    pub(super) fn jmeter_without_engine(&mut self, table: &Spanned<RawJmeter>, engine: &str) {
        self.sink
            .error(
                Some(table.span()),
                "jmeter",
                format!(
                    "[jmeter] only applies to engine = \"jmeter\", and this scenario runs the {engine} engine"
                ),
            )
            .help("add engine = \"jmeter\" to [scenario]");
    }
}
