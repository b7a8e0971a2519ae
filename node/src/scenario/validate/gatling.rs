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
use crate::scenario::model::GatlingSpec;
use crate::scenario::raw::{
    OrderedMap, RawGatling, RawJourney, RawPool, RawStep, RawTarget, RawValue,
};

/// Help for a missing project.
const PROJECT_HELP: &str = "write [gatling] project = \"gatling\" (the directory holding its pom.xml, relative to the scenario file)";
/// Help for a missing or malformed simulation.
const SIMULATION_HELP: &str = "write the simulation's fully qualified class name, e.g. simulation = \"example.DemoSimulation\"";
/// System properties bfgg sets itself.
const RESERVED_PREFIX: &str = "bfgg.";

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
        let java_opts = self.java_opts(raw.java_opts.as_ref());
        let split = self.split(raw.split.as_ref());
        let properties = self.properties(raw.properties.as_ref(), raw.split.as_ref());
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

    /// `gatling.java_opts`: JVM options (each starts with `-`; the class
    /// path is bfgg's to set).
    fn java_opts(&mut self, values: Option<&Spanned<Vec<Spanned<String>>>>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, value) in values
            .map(|v| v.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let text = value.get_ref();
            let field = format!("gatling.java_opts[{i}]");
            let problem = if !text.starts_with('-') {
                Some(format!(
                    "`{text}` is not a JVM option (they start with `-`)"
                ))
            } else if ["-cp", "-classpath", "--class-path", "-jar"].contains(&text.as_str())
                || text.starts_with("--class-path=")
            {
                Some(format!(
                    "`{text}` cannot be set: bfgg runs the simulation on the project's own class path"
                ))
            } else {
                None
            };
            match problem {
                Some(message) => {
                    self.sink
                        .error(Some(value.span()), &field, message)
                        .help("write e.g. java_opts = [\"-Xmx2g\", \"-XX:+UseG1GC\"]; system properties go in `properties`");
                    ok = false;
                }
                None => out.push(text.clone()),
            }
        }
        ok.then_some(out)
    }

    /// `gatling.split`: numbers of 0 or more.
    fn split(
        &mut self,
        table: Option<&Spanned<OrderedMap<Spanned<f64>>>>,
    ) -> Option<Vec<(String, f64)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in table.map(|t| t.get_ref().0.as_slice()).unwrap_or_default() {
            let field = key_path("gatling.split", name.get_ref());
            ok &= self.property_name(name, &field);
            let v = *value.get_ref();
            if !v.is_finite() || v < 0.0 {
                self.sink
                    .error(
                        Some(value.span()),
                        &field,
                        format!("a share of load must be 0 or more, found {v}"),
                    )
                    .help("write e.g. split = { users = 300, rate = 90 }");
                ok = false;
                continue;
            }
            out.push((name.get_ref().clone(), v));
        }
        ok.then_some(out)
    }

    /// `gatling.properties`: strings, numbers or booleans, as the JVM gets
    /// them; a name in `split` too is reported.
    fn properties(
        &mut self,
        table: Option<&Spanned<OrderedMap<Spanned<RawValue>>>>,
        split: Option<&Spanned<OrderedMap<Spanned<f64>>>>,
    ) -> Option<Vec<(String, String)>> {
        let in_split = |name: &str| {
            split.is_some_and(|s| s.get_ref().0.iter().any(|(k, _)| k.get_ref() == name))
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (name, value) in table.map(|t| t.get_ref().0.as_slice()).unwrap_or_default() {
            let field = key_path("gatling.properties", name.get_ref());
            ok &= self.property_name(name, &field);
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
                                "a system property is a string, a number or a boolean, found {}",
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

    /// A system property name the JVM takes as one `-Dname=value`: not
    /// empty, without whitespace, `=` or control characters, and not one of
    /// bfgg's own (`bfgg.*`).
    fn property_name(&mut self, name: &Spanned<String>, field: &str) -> bool {
        let text = name.get_ref();
        let message = if text.is_empty()
            || text.contains('=')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            format!("`{text}` is not a system property name")
        } else if text.starts_with(RESERVED_PREFIX) {
            format!("`{text}` is set by bfgg (bfgg.agent.index, bfgg.agent.count, bfgg.duration)")
        } else {
            return true;
        };
        self.sink
            .error(Some(name.span()), field, message)
            .help("name it as the simulation reads it, e.g. Integer.getInteger(\"users\", 10) reads `users`");
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

    /// `[[request]]` and `[[journey]]` in a Gatling scenario: one error for
    /// each kind, at its first table.
    pub(super) fn gatling_steps(
        &mut self,
        requests: &[Spanned<RawStep>],
        journeys: &[Spanned<RawJourney>],
    ) {
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
                    .error(
                        Some(span),
                        field,
                        format!("a Gatling scenario has no {kind} tables: its simulation defines what users do"),
                    )
                    .help("write these requests in the simulation's scenario(...) chain, or set engine = \"native\"");
            }
        }
    }

    /// `[data.*]` pools in a Gatling scenario: one error each.
    pub(super) fn gatling_pools(&mut self, data: &OrderedMap<Spanned<RawPool>>) {
        for (name, _) in &data.0 {
            self.sink
                .error(
                    Some(name.span()),
                    &key_path("data", name.get_ref()),
                    "data pools are for the native engine: a Gatling simulation reads its data with feeders",
                )
                .help("put the file in the project's src/test/resources and read it with csv(\"users.csv\") in the simulation");
        }
    }

    /// `[target]` keys Gatling's simulation sets itself: one error each.
    pub(super) fn gatling_target_keys(&mut self, raw: &RawTarget) {
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
        for (key, span) in spans {
            if let Some(span) = span {
                self.sink
                    .error(
                        Some(span),
                        &format!("target.{key}"),
                        format!("`{key}` applies to the native engine; with engine = \"gatling\", the simulation's http protocol sets this"),
                    )
                    .help("set it on the simulation's HttpProtocolBuilder (e.g. .header(...), .enableHttp2()) or in its gatling.conf");
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
