//! `engine = "gatling"`: the `[gatling]` table checked into a
//! [`GatlingSpec`], and the parts of a scenario that only the native engine
//! runs (requests, journeys, data pools, most `[target]` keys) reported when
//! they appear in a Gatling scenario.
//!
//! The project's code is not compiled here: a missing class or a compile
//! error is Maven's to report when an agent prepares the run (and
//! `bfgg check`'s, which prepares it the same way).

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::{Validator, key_path};
use crate::scenario::model::{EngineKind, GatlingSpec};
use crate::scenario::raw::{
    OrderedMap, RawGatling, RawJourney, RawPool, RawStep, RawTarget, RawValue,
};

/// Help for a missing project.
const PROJECT_HELP: &str = "write [gatling] project = \"gatling\" (the directory holding its pom.xml, relative to the scenario file)";
/// Help for a missing or malformed simulation.
const SIMULATION_HELP: &str = "write the simulation's fully qualified class name, e.g. simulation = \"example.DemoSimulation\"";
/// System properties bfgg sets itself.
const RESERVED_PREFIX: &str = "bfgg.";
/// JMeter properties that shape its results file, which bfgg sets
/// (`engine::jmeter::results::FORCED_PROPERTIES`) and reads.
const JMETER_FORCED_PREFIXES: &[&str] = &["jmeter.save.saveservice.", "sampleresult."];

impl Validator<'_, '_> {
    /// The `[gatling]` table of a Gatling scenario; `engine` is the span of
    /// `engine = "gatling"`, where a missing table is reported.
    pub(super) fn gatling(
        &mut self,
        table: Option<&Spanned<RawGatling>>,
        engine: Option<Range<usize>>,
    ) -> Option<GatlingSpec> {
        let Some(table) = table else {
            self.sink
                .error(
                    engine,
                    "gatling.project",
                    "engine = \"gatling\" needs a Maven project and a simulation, and there is no [gatling] table",
                )
                .help(PROJECT_HELP);
            return None;
        };
        let raw = table.get_ref();
        let project = match &raw.project {
            None => {
                self.sink
                    .error(
                        Some(table.span()),
                        "gatling.project",
                        "missing `project`: the Maven project holding the simulation",
                    )
                    .help(PROJECT_HELP);
                None
            }
            Some(p) => self.project(p),
        };
        let simulation = match &raw.simulation {
            None => {
                self.sink
                    .error(
                        Some(table.span()),
                        "gatling.simulation",
                        "missing `simulation`: the simulation class to run",
                    )
                    .help(SIMULATION_HELP);
                None
            }
            Some(s) if !is_class_name(s.get_ref()) => {
                self.sink
                    .error(
                        Some(s.span()),
                        "gatling.simulation",
                        format!("`{}` is not a Java class name", s.get_ref()),
                    )
                    .help(SIMULATION_HELP);
                None
            }
            Some(s) => Some(s.get_ref().clone()),
        };
        let java_opts = self.java_opts(raw.java_opts.as_ref(), EngineKind::Gatling);
        let split = self.split(raw.split.as_ref(), EngineKind::Gatling);
        let properties = self.properties(
            raw.properties.as_ref(),
            raw.split.as_ref(),
            EngineKind::Gatling,
        );
        Some(GatlingSpec {
            project: project?,
            simulation: simulation?,
            java_opts: java_opts?,
            properties: properties?,
            split: split?,
            keep_native_report: raw
                .keep_native_report
                .as_ref()
                .is_some_and(|k| *k.get_ref()),
        })
    }

    /// `gatling.project`: an existing directory with a `pom.xml`.
    fn project(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let field = "gatling.project";
        let written = value.get_ref();
        if written.trim().is_empty() {
            self.sink
                .error(Some(value.span()), field, "the path is empty")
                .help(PROJECT_HELP);
            return None;
        }
        let path = self.base_dir.join(written);
        let problem = if self.deferred {
            return Some(path);
        } else if !path.exists() {
            format!(
                "project directory not found: `{written}` (looked for {})",
                path.display()
            )
        } else if !path.is_dir() {
            format!("`{written}` is not a directory ({})", path.display())
        } else if !path.join("pom.xml").is_file() {
            format!(
                "`{written}` has no pom.xml ({}): bfgg builds Gatling projects with Maven",
                path.display()
            )
        } else {
            return Some(path);
        };
        self.sink
            .error(Some(value.span()), field, problem)
            .help("name the directory of a Maven project using gatling-maven-plugin; paths are relative to the scenario file's directory");
        None
    }

    /// `<engine>.java_opts` (Gatling, JMeter): JVM options (each starts
    /// with `-`; the class path is bfgg's to set).
    pub(super) fn java_opts(
        &mut self,
        values: Option<&Spanned<Vec<Spanned<String>>>>,
        engine: EngineKind,
    ) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, value) in values
            .map(|v| v.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let text = value.get_ref();
            let field = format!("{}.java_opts[{i}]", engine.as_str());
            let problem = if !text.starts_with('-') {
                Some(format!(
                    "`{text}` is not a JVM option (they start with `-`)"
                ))
            } else if ["-cp", "-classpath", "--class-path", "-jar"].contains(&text.as_str())
                || text.starts_with("--class-path=")
            {
                Some(format!(
                    "`{text}` cannot be set: bfgg sets the class path ({})",
                    match engine {
                        EngineKind::Jmeter => "JMeter's own launcher",
                        _ => "the project's own",
                    }
                ))
            } else {
                None
            };
            match problem {
                Some(message) => {
                    self.sink
                        .error(Some(value.span()), &field, message)
                        .help("write e.g. java_opts = [\"-Xmx2g\", \"-XX:+UseG1GC\"]; properties go in `properties`");
                    ok = false;
                }
                None => out.push(text.clone()),
            }
        }
        ok.then_some(out)
    }

    /// `<engine>.split` (Gatling, JMeter): numbers of 0 or more.
    pub(super) fn split(
        &mut self,
        table: Option<&Spanned<OrderedMap<Spanned<f64>>>>,
        engine: EngineKind,
    ) -> Option<Vec<(String, f64)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in table.map(|t| t.get_ref().0.as_slice()).unwrap_or_default() {
            let field = key_path(&format!("{}.split", engine.as_str()), name.get_ref());
            ok &= self.property_name(name, &field, engine);
            let v = *value.get_ref();
            if !v.is_finite() || v < 0.0 {
                self.sink
                    .error(
                        Some(value.span()),
                        &field,
                        format!("a share of load must be 0 or more, found {v}"),
                    )
                    .help("write e.g. split = { threads = 300, throughput = 90 }");
                ok = false;
                continue;
            }
            out.push((name.get_ref().clone(), v));
        }
        ok.then_some(out)
    }

    /// `<engine>.properties` (Gatling, JMeter): strings, numbers or
    /// booleans, as the JVM gets them; a name in `split` too is reported.
    pub(super) fn properties(
        &mut self,
        table: Option<&Spanned<OrderedMap<Spanned<RawValue>>>>,
        split: Option<&Spanned<OrderedMap<Spanned<f64>>>>,
        engine: EngineKind,
    ) -> Option<Vec<(String, String)>> {
        let in_split = |name: &str| {
            split.is_some_and(|s| s.get_ref().0.iter().any(|(k, _)| k.get_ref() == name))
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in table.map(|t| t.get_ref().0.as_slice()).unwrap_or_default() {
            let field = key_path(&format!("{}.properties", engine.as_str()), name.get_ref());
            ok &= self.property_name(name, &field, engine);
            if in_split(name.get_ref()) {
                self.sink
                    .error(
                        Some(name.span()),
                        &field,
                        format!("`{}` is in both `properties` and `split`", name.get_ref()),
                    )
                    .help("keep it in `split` to give each agent its share, or in `properties` to give every agent the same value");
                ok = false;
                continue;
            }
            let text = match value.get_ref() {
                RawValue::String(s) => s.clone(),
                RawValue::Integer(i) => i.to_string(),
                RawValue::Float(f) => f.to_string(),
                RawValue::Boolean(b) => b.to_string(),
                other => {
                    self.sink
                        .error(
                            Some(value.span()),
                            &field,
                            format!(
                                "a property is a string, a number or a boolean, found {}",
                                other.kind()
                            ),
                        )
                        .help("write e.g. properties = { baseUrl = \"http://127.0.0.1:8080\", pauseMs = 100 }");
                    ok = false;
                    continue;
                }
            };
            out.push((name.get_ref().clone(), text));
        }
        ok.then_some(out)
    }

    /// A property name the JVM takes as one `-Dname=value` (or JMeter as
    /// `-Jname=value`): not empty, without whitespace, `=` or control
    /// characters, not one of bfgg's own (`bfgg.*`), and for JMeter not one
    /// that sets the results file's format (bfgg reads that file).
    fn property_name(&mut self, name: &Spanned<String>, field: &str, engine: EngineKind) -> bool {
        let text = name.get_ref();
        let message = if text.is_empty()
            || text.contains('=')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            format!("`{text}` is not a property name")
        } else if text.starts_with(RESERVED_PREFIX) {
            format!("`{text}` is set by bfgg (bfgg.agent.index, bfgg.agent.count, bfgg.duration)")
        } else if engine == EngineKind::Jmeter
            && JMETER_FORCED_PREFIXES.iter().any(|p| text.starts_with(p))
        {
            format!(
                "`{text}` would change the results file bfgg reads: bfgg sets the jmeter.save.saveservice.* and sampleresult.* properties itself"
            )
        } else {
            return true;
        };
        let help = match engine {
            EngineKind::Jmeter => {
                "name it as the plan reads it, e.g. ${__P(threads,10)} reads `threads`"
            }
            _ => {
                "name it as the simulation reads it, e.g. Integer.getInteger(\"users\", 10) reads `users`"
            }
        };
        self.sink
            .error(Some(name.span()), field, message)
            .help(help);
        false
    }

    /// `[gatling]` in a scenario whose engine is not Gatling.
    pub(super) fn gatling_without_engine(&mut self, table: &Spanned<RawGatling>, engine: &str) {
        self.sink
            .error(
                Some(table.span()),
                "gatling",
                format!(
                    "[gatling] only applies to engine = \"gatling\", and this scenario runs the {engine} engine"
                ),
            )
            .help("add engine = \"gatling\" to [scenario]");
    }

    // ---- what a Gatling scenario cannot have ------------------------------

    /// `[[request]]` and `[[journey]]` in a Gatling or JMeter scenario: one
    /// error for each kind, at its first table.
    pub(super) fn scripted_steps(
        &mut self,
        requests: &[Spanned<RawStep>],
        journeys: &[Spanned<RawJourney>],
        engine: EngineKind,
    ) {
        let (what, help) = match engine {
            EngineKind::Jmeter => (
                "a JMeter scenario has no {kind} tables: its test plan defines what threads do",
                "write these requests as samplers in the test plan, or set engine = \"native\"",
            ),
            _ => (
                "a Gatling scenario has no {kind} tables: its simulation defines what users do",
                "write these requests in the simulation's scenario(...) chain, or set engine = \"native\"",
            ),
        };
        for (span, field, kind) in [
            (
                requests.first().map(Spanned::span),
                "request[0]",
                "[[request]]",
            ),
            (
                journeys.first().map(Spanned::span),
                "journey[0]",
                "[[journey]]",
            ),
        ] {
            if let Some(span) = span {
                self.sink
                    .error(Some(span), field, what.replace("{kind}", kind))
                    .help(help);
            }
        }
    }

    /// `[data.*]` pools in a Gatling or JMeter scenario: one error each.
    pub(super) fn scripted_pools(
        &mut self,
        data: &OrderedMap<Spanned<RawPool>>,
        engine: EngineKind,
    ) {
        let (what, help) = match engine {
            EngineKind::Jmeter => (
                "data pools are for the native engine: a JMeter plan reads its data with a CSV Data Set Config",
                "name the CSV in the plan's CSV Data Set Config (it is shipped with the plan), and list it in [jmeter] partition to divide its rows across agents",
            ),
            _ => (
                "data pools are for the native engine: a Gatling simulation reads its data with feeders",
                "put the file in the project's src/test/resources and read it with csv(\"users.csv\") in the simulation",
            ),
        };
        for (name, _) in &data.0 {
            self.sink
                .error(Some(name.span()), &key_path("data", name.get_ref()), what)
                .help(help);
        }
    }

    /// `[target]` keys a Gatling simulation or a JMeter plan sets itself:
    /// one error each.
    pub(super) fn scripted_target_keys(&mut self, raw: &RawTarget, engine: EngineKind) {
        let spans = [
            ("headers", raw.headers.as_ref().map(Spanned::span)),
            (
                "connect_timeout",
                raw.connect_timeout.as_ref().map(Spanned::span),
            ),
            (
                "request_timeout",
                raw.request_timeout.as_ref().map(Spanned::span),
            ),
            ("insecure_tls", raw.insecure_tls.as_ref().map(Spanned::span)),
            ("http2", raw.http2.as_ref().map(Spanned::span)),
        ];
        let (who, help) = match engine {
            EngineKind::Jmeter => (
                "the test plan's HTTP Request Defaults and Header Manager set this",
                "set it in the test plan (HTTP Request Defaults, HTTP Header Manager)",
            ),
            _ => (
                "the simulation's http protocol sets this",
                "set it on the simulation's HttpProtocolBuilder (e.g. .header(...), .enableHttp2()) or in its gatling.conf",
            ),
        };
        for (key, span) in spans {
            if let Some(span) = span {
                self.sink
                    .error(
                        Some(span),
                        &format!("target.{key}"),
                        format!(
                            "`{key}` applies to the native engine; with engine = \"{}\", {who}",
                            engine.as_str()
                        ),
                    )
                    .help(help);
            }
        }
    }
}

/// A Java class name, fully qualified: identifiers separated by dots.
fn is_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}
