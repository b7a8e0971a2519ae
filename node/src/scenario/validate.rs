//! Semantic validation: a [`RawScenario`] in, a [`Scenario`] out, with every
//! problem found reported to the [`Sink`] (not just the first).
//!
//! Also owns the base-URL grammar ([`parse_base_url`]) and the CLI's target
//! override ([`Scenario::with_target`]). This is the only place that decides
//! what a valid scenario is; engines trust the model it builds.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::scenario::data::{OnExhausted, PoolSpec, Strategy};
use crate::scenario::diagnostic::{Sink, closest, is_bare_key};
use crate::scenario::duration::{self, parse_duration};
use crate::scenario::model::{EngineKind, Journey, Scenario, Scheme, Target};
use crate::scenario::raw::{OrderedMap, RawMeta, RawPool, RawScenario, RawTarget};
use crate::scenario::template::{Template, VarRef};
use crate::scenario::threshold::Threshold;

mod gatling;
mod jmeter;
mod journey;
mod load;
mod locust;
mod source;

/// Default `target.connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `target.request_timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks `raw` and builds the scenario; `None` when anything was reported.
/// `checkout`: where the commit of the scenario's `[source]` is checked
/// out; without it a scenario with a `[source]` is checked without its files
/// ([`Scenario::files_deferred`]).
pub(crate) fn validate(
    raw: RawScenario,
    sink: &mut Sink<'_>,
    source: &Path,
    base_dir: &Path,
    checkout: Option<&Path>,
) -> Option<Scenario> {
    let git = source::source(raw.source.as_ref(), sink);
    let source_ok = raw.source.is_none() || git.is_some();
    let base_dir = match (&git, checkout) {
        (Some(g), Some(dir)) => dir.join(&g.path),
        _ => base_dir.to_owned(),
    };
    let files_deferred = raw.source.is_some() && checkout.is_none();
    let mut v = Validator {
        sink,
        base_dir: &base_dir,
        deferred: files_deferred,
        pools: Vec::new(),
    };
    let (name, engine, thresholds) = v.meta(raw.scenario.as_ref(), raw.thresholds.as_ref(), source);
    // An unknown engine was reported; judge the rest as Locust or Gatling
    // when there is a [locust] or [gatling] table, else as native.
    let engine_known = engine.is_some();
    let engine = engine.unwrap_or(if raw.locust.is_some() {
        EngineKind::Locust
    } else if raw.gatling.is_some() {
        EngineKind::Gatling
    } else if raw.jmeter.is_some() {
        EngineKind::Jmeter
    } else {
        EngineKind::Native
    });
    let engine_at = raw
        .scenario
        .as_ref()
        .and_then(|m| m.get_ref().engine.as_ref())
        .map(Spanned::span);
    let locust = match (engine, &raw.locust) {
        (EngineKind::Locust, table) => v.locust(table.as_ref(), engine_at.clone()),
        (_, Some(table)) => {
            if engine_known {
                v.locust_without_engine(table, engine.as_str());
            }
            None
        }
        (_, None) => None,
    };
    let jmeter = match (engine, &raw.jmeter) {
        (EngineKind::Jmeter, table) => v.jmeter(table.as_ref(), engine_at.clone()),
        (_, Some(table)) => {
            if engine_known {
                v.jmeter_without_engine(table, engine.as_str());
            }
            None
        }
        (_, None) => None,
    };
    let gatling = match (engine, &raw.gatling) {
        (EngineKind::Gatling, table) => v.gatling(table.as_ref(), engine_at),
        (_, Some(table)) => {
            if engine_known {
                v.gatling_without_engine(table, engine.as_str());
            }
            None
        }
        (_, None) => None,
    };
    // Pools first: templates anywhere (target headers included) refer to them.
    if let Some(data) = &raw.data {
        match engine {
            EngineKind::Native => {
                for (name, pool) in &data.0 {
                    v.pool(name, pool);
                }
            }
            EngineKind::Locust => v.locust_pools(data),
            EngineKind::Gatling | EngineKind::Jmeter => v.scripted_pools(data, engine),
        }
    }
    let target = v.target(raw.target.as_ref(), engine);
    let load = v.load(raw.load.as_ref(), engine);
    let mut journeys = Vec::new();
    match engine {
        EngineKind::Native => v.native_journeys(&raw, target.as_ref(), &mut journeys),
        EngineKind::Locust => v.locust_steps(&raw.request, &raw.journey),
        EngineKind::Gatling | EngineKind::Jmeter => {
            v.scripted_steps(&raw.request, &raw.journey, engine)
        }
    }
    let step_names: Vec<&str> = {
        let mut seen = HashSet::new();
        journeys
            .iter()
            .flat_map(|j| j.steps.iter().map(|s| s.name.as_str()))
            .filter(|n| seen.insert(*n))
            .collect()
    };
    let mut parsed_thresholds = Vec::new();
    for (threshold, span, field) in thresholds {
        // Without journeys (Locust, Gatling, or none valid) request names are
        // not known here: they come from the locustfile or the simulation.
        if let Some(scope) = &threshold.scope
            && !step_names.contains(&scope.as_str())
            && !journeys.is_empty()
        {
            let d = v
                .sink
                .error(Some(span), &field, format!("no request is named `{scope}`"));
            match closest(scope, &step_names) {
                Some(close) => d.help(format!("did you mean `{close}`?")),
                None => d.help(format!("request names are: {}", list(&step_names))),
            };
            continue;
        }
        parsed_thresholds.push(threshold);
    }
    if v.sink.has_errors() || !source_ok {
        return None;
    }
    Some(Scenario {
        name,
        source: source.to_owned(),
        base_dir: base_dir.clone(),
        engine,
        target: target?,
        load: load?,
        journeys,
        pools: v.pools.into_iter().filter_map(|(_, pool)| pool).collect(),
        thresholds: parsed_thresholds,
        locust: match engine {
            EngineKind::Locust => Some(locust?),
            _ => None,
        },
        gatling: match engine {
            EngineKind::Gatling => Some(gatling?),
            _ => None,
        },
        jmeter: match engine {
            EngineKind::Jmeter => Some(jmeter?),
            _ => None,
        },
        git,
        files_deferred,
    })
}

/// A value with the span and field path it came from.
type Located<T> = (T, Range<usize>, String);

/// `a, b, c` (at most 12, then `…`).
fn list(names: &[&str]) -> String {
    let mut out: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    if names.len() > 12 {
        out.push("…".to_owned());
    }
    out.join(", ")
}

/// `field.key`, quoting `key` when it is not a bare TOML key (`"a b"`).
fn key_path(field: &str, key: &str) -> String {
    if is_bare_key(key) {
        format!("{field}.{key}")
    } else {
        format!("{field}.{key:?}")
    }
}

/// True for names usable in templates: `[A-Za-z_][A-Za-z0-9_-]*`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What variables a template may use where it appears.
enum Vars<'a> {
    /// `[target] headers`: sent before any step ran, so no variables.
    Target,
    /// A step: `available` were extracted by earlier steps; `later` maps names
    /// extracted by this or later steps to that step's name.
    Step {
        /// Names extracted by earlier steps of the journey.
        available: &'a HashSet<String>,
        /// Names extracted by this or later steps, with the step's name.
        later: &'a HashMap<String, String>,
        /// A `[[request]]`: there are no earlier steps, ever.
        single: bool,
    },
}

/// The state of one validation: where diagnostics go, where relative files
/// are, and the pools declared so far.
struct Validator<'s, 'a> {
    sink: &'s mut Sink<'a>,
    base_dir: &'s Path,
    /// The files are in a repository not checked out here: paths are taken
    /// as written, nothing is read.
    deferred: bool,
    /// Declared pools by name; `None` when the pool itself had errors (its
    /// columns are then not checked).
    pools: Vec<(String, Option<PoolSpec>)>,
}

impl Validator<'_, '_> {
    // ---- [[request]] and [[journey]] of a native scenario -----------------

    /// Checks every request and journey into `journeys`; reports duplicate
    /// journey names and a scenario without any.
    fn native_journeys(
        &mut self,
        raw: &RawScenario,
        target: Option<&Target>,
        journeys: &mut Vec<Journey>,
    ) {
        for (i, request) in raw.request.iter().enumerate() {
            if let Some(journey) = self.request(i, request, target) {
                journeys.push(journey);
            }
        }
        let mut journey_names: HashMap<String, usize> = HashMap::new();
        for (i, journey) in raw.journey.iter().enumerate() {
            if let Some(name) = &journey.get_ref().name {
                if let Some(first) = journey_names.get(name.get_ref()) {
                    self.sink
                        .error(
                            Some(name.span()),
                            &format!("journey[{i}].name"),
                            format!("duplicate journey name `{}`", name.get_ref()),
                        )
                        .help(format!(
                            "journey[{first}] already uses it; journey names must be unique (request names may repeat)"
                        ));
                } else {
                    journey_names.insert(name.get_ref().clone(), i);
                }
            }
            if let Some(journey) = self.journey(i, journey, target) {
                journeys.push(journey);
            }
        }
        if raw.request.is_empty() && raw.journey.is_empty() {
            self.sink
                .error(None, "", "the scenario sends no requests")
                .help(
                    "add a [[request]] (one request) or a [[journey]] with [[journey.step]] tables",
                );
        }
    }

    // ---- [scenario] -------------------------------------------------------

    fn meta(
        &mut self,
        meta: Option<&Spanned<RawMeta>>,
        top_thresholds: Option<&Spanned<Vec<Spanned<String>>>>,
        source: &Path,
    ) -> (String, Option<EngineKind>, Vec<Located<Threshold>>) {
        let meta = meta.map(Spanned::get_ref);
        let name = match meta.and_then(|m| m.name.as_ref()) {
            Some(name) if name.get_ref().trim().is_empty() => {
                self.sink
                    .error(Some(name.span()), "scenario.name", "the name is empty")
                    .help("write e.g. name = \"checkout\", or remove it to use the file name");
                String::new()
            }
            Some(name) => name.get_ref().clone(),
            None => source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "scenario".to_owned()),
        };
        // `None`: an unknown engine, reported here.
        let engine = match meta.and_then(|m| m.engine.as_ref()) {
            None => Some(EngineKind::Native),
            Some(e) if e.get_ref() == "native" => Some(EngineKind::Native),
            Some(e) if e.get_ref() == "locust" => Some(EngineKind::Locust),
            Some(e) if e.get_ref() == "gatling" => Some(EngineKind::Gatling),
            Some(e) if e.get_ref() == "jmeter" => Some(EngineKind::Jmeter),
            Some(e) => {
                self.sink
                    .error(
                        Some(e.span()),
                        "scenario.engine",
                        format!("unknown engine `{}`", e.get_ref()),
                    )
                    .help("the engines that exist are: native, locust, gatling, jmeter");
                None
            }
        };
        let in_meta = meta.and_then(|m| m.thresholds.as_ref());
        let (list, field) = match (in_meta, top_thresholds) {
            (Some(a), Some(b)) => {
                self.sink
                    .error(
                        Some(b.span()),
                        "thresholds",
                        "thresholds are given twice: here and in [scenario]",
                    )
                    .help("keep one list, in [scenario]");
                (Some(a), "scenario.thresholds")
            }
            (Some(a), None) => (Some(a), "scenario.thresholds"),
            (None, b) => (b, "thresholds"),
        };
        let mut thresholds = Vec::new();
        for (i, text) in list
            .map(|l| l.get_ref().iter())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("{field}[{i}]");
            match text.get_ref().parse::<Threshold>() {
                Ok(t) => thresholds.push((t, text.span(), field)),
                Err(e) => {
                    self.sink.error(Some(text.span()), &field, e).help(
                        "write e.g. \"p99 < 250ms\", \"error_rate < 1%\", \"rps > 50\" or \"p95[request name] < 100ms\"",
                    );
                }
            }
        }
        (name, engine, thresholds)
    }

    // ---- [target] ---------------------------------------------------------

    /// `[target]`; for Locust only `base_url` (its `--host`; Gatling's
    /// simulation gets it as `baseUrl`), the other keys
    /// are reported and their defaults kept.
    fn target(
        &mut self,
        target: Option<&Spanned<RawTarget>>,
        engine: EngineKind,
    ) -> Option<Target> {
        let Some(target) = target else {
            self.sink
                .error(None, "", "missing [target] table")
                .help("add [target] with base_url = \"http://host:port\"");
            return None;
        };
        let raw = target.get_ref();
        let url = match &raw.base_url {
            None => {
                self.sink
                    .error(Some(target.span()), "target", "missing `base_url`")
                    .help("write e.g. base_url = \"http://127.0.0.1:8080\"");
                None
            }
            Some(url) => match parse_base_url(url.get_ref()) {
                Ok(parts) => Some(parts),
                Err(e) => {
                    self.sink
                        .error(Some(url.span()), "target.base_url", e)
                        .help("write e.g. base_url = \"https://api.example.com:8443/v1\"");
                    None
                }
            },
        };
        if engine != EngineKind::Native {
            match engine {
                EngineKind::Gatling | EngineKind::Jmeter => self.scripted_target_keys(raw, engine),
                _ => self.locust_target_keys(raw),
            }
            let (scheme, host, port, base_path) = url?;
            return Some(Target {
                origin: origin(scheme, &host, port),
                scheme,
                host,
                port,
                base_path,
                headers: Vec::new(),
                connect_timeout: CONNECT_TIMEOUT,
                request_timeout: REQUEST_TIMEOUT,
                insecure_tls: false,
                http2: false,
            });
        }
        let headers = self.headers(
            raw.headers.as_ref().map(Spanned::get_ref),
            "target.headers",
            &Vars::Target,
        );
        let connect_timeout = self
            .opt_positive_duration(raw.connect_timeout.as_ref(), "target.connect_timeout")
            .unwrap_or(CONNECT_TIMEOUT);
        let request_timeout = self
            .opt_positive_duration(raw.request_timeout.as_ref(), "target.request_timeout")
            .unwrap_or(REQUEST_TIMEOUT);
        let (scheme, host, port, base_path) = url?;
        Some(Target {
            origin: origin(scheme, &host, port),
            scheme,
            host,
            port,
            base_path,
            headers,
            connect_timeout,
            request_timeout,
            insecure_tls: raw.insecure_tls.as_ref().is_some_and(|b| *b.get_ref()),
            http2: raw.http2.as_ref().is_some_and(|b| *b.get_ref()),
        })
    }

    /// Header tables: names checked and lowercased, values parsed as templates.
    fn headers(
        &mut self,
        headers: Option<&OrderedMap<Spanned<String>>>,
        field: &str,
        vars: &Vars<'_>,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (name, value) in headers.map(|h| h.0.as_slice()).unwrap_or_default() {
            let field = key_path(field, name.get_ref());
            let lower = match http::HeaderName::from_bytes(name.get_ref().as_bytes()) {
                Ok(n) => n.as_str().to_owned(),
                Err(_) => {
                    self.sink
                        .error(
                            Some(name.span()),
                            &field,
                            format!("invalid header name `{}`", name.get_ref()),
                        )
                        .help("header names are letters, digits and -_.!#$%&'*+^`|~");
                    continue;
                }
            };
            if http::HeaderValue::from_str(value.get_ref()).is_err() {
                self.sink.error(
                    Some(value.span()),
                    &field,
                    "invalid header value: it contains a line break or another control character",
                );
                continue;
            }
            if let Some(template) = self.template(value, &field, vars) {
                out.push((lower, template));
            }
        }
        out
    }

    // ---- [data.*] ---------------------------------------------------------

    fn pool(&mut self, name: &Spanned<String>, pool: &Spanned<RawPool>) {
        let field = key_path("data", name.get_ref());
        let raw = pool.get_ref();
        if !is_name(name.get_ref()) {
            self.sink
                .error(Some(name.span()), &field, format!("invalid data pool name `{}`", name.get_ref()))
                .help("pool names are used in templates as {{name.column}}: use letters, digits, _ and -, starting with a letter");
        }
        // `None`: an unknown strategy, already reported.
        let strategy = match raw.strategy.as_ref() {
            None => Some(Strategy::Circular),
            Some(s) => match s.get_ref().as_str() {
                "circular" => Some(Strategy::Circular),
                "random" => Some(Strategy::Random),
                "unique" => Some(Strategy::Unique),
                other => {
                    let d = self.sink.error(
                        Some(s.span()),
                        &format!("{field}.strategy"),
                        format!("unknown strategy `{other}`"),
                    );
                    match closest(other, &["circular", "random", "unique"]) {
                        Some(c) => d.help(format!("did you mean \"{c}\"?")),
                        None => d.help("expected \"circular\", \"random\" or \"unique\""),
                    };
                    None
                }
            },
        };
        let on_exhausted = match raw.on_exhausted.as_ref() {
            None => OnExhausted::Stop,
            Some(o) if strategy.is_some_and(|s| s != Strategy::Unique) => {
                self.sink
                    .error(
                        Some(o.span()),
                        &format!("{field}.on_exhausted"),
                        "`on_exhausted` only applies to strategy = \"unique\"",
                    )
                    .help("circular and random pools never run out; remove it, or set strategy = \"unique\"");
                OnExhausted::Stop
            }
            Some(o) => match o.get_ref().as_str() {
                "stop" => OnExhausted::Stop,
                "skip" => OnExhausted::Skip,
                other => {
                    self.sink
                        .error(
                            Some(o.span()),
                            &format!("{field}.on_exhausted"),
                            format!("unknown on_exhausted `{other}`"),
                        )
                        .help("expected \"stop\" (end the run) or \"skip\" (skip the iteration)");
                    OnExhausted::Stop
                }
            },
        };
        let Some(file) = &raw.file else {
            self.sink
                .error(Some(pool.span()), &field, "missing `file`")
                .help("write e.g. file = \"data/users.csv\" (relative to the scenario file)");
            self.pools.push((name.get_ref().clone(), None));
            return;
        };
        let path = self.base_dir.join(file.get_ref());
        let file_field = format!("{field}.file");
        if self.deferred {
            // Read on the agents, from the checkout; columns unchecked here.
            self.pools.push((name.get_ref().clone(), None));
            return;
        }
        if !path.is_file() {
            self.sink
                .error(
                    Some(file.span()),
                    &file_field,
                    format!("data file not found: {}", path.display()),
                )
                .help("paths are relative to the scenario file's directory");
            self.pools.push((name.get_ref().clone(), None));
            return;
        }
        let strategy = strategy.unwrap_or(Strategy::Circular);
        // Even when the pool's own keys were wrong, its columns are known and
        // templates using it are still checked.
        let spec = match PoolSpec::load(name.get_ref(), &path, strategy, on_exhausted) {
            Ok(spec) if spec.is_empty() => {
                self.sink.error(
                    Some(file.span()),
                    &file_field,
                    format!("data file {} has a header but no rows", path.display()),
                );
                Some(spec)
            }
            Ok(spec) => Some(spec),
            Err(e) => {
                self.sink
                    .error(Some(file.span()), &file_field, error_chain(&e));
                None
            }
        };
        self.pools.push((name.get_ref().clone(), spec));
    }

    // ---- shared helpers ---------------------------------------------------

    /// Parses a template and checks its pool and variable references.
    fn template(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        vars: &Vars<'_>,
    ) -> Option<Template> {
        let text = value.get_ref();
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                // Point at the whole placeholder, from its `{{`.
                let open = text[..(e.offset + 2).min(text.len())]
                    .rfind("{{")
                    .unwrap_or(e.offset);
                let close = text[open + 2..]
                    .find("}}")
                    .map_or(open + 2, |i| open + 2 + i + 2);
                let start = source_offset(self.sink.text(), &value.span(), open);
                let end = source_offset(self.sink.text(), &value.span(), close);
                self.sink
                    .error(Some(start..end), field, format!("invalid template: {}", e.message))
                    .help("placeholders are {{variable}}, {{pool.column}} or {{$uuid}}, {{$rand(1, 100)}}, {{$iteration}}, {{$timestamp_ms}}, {{$user}}");
                return None;
            }
        };
        let mut ok = true;
        let mut seen = HashSet::new();
        for r in template.refs() {
            if !seen.insert(r.clone()) {
                continue;
            }
            let span = ref_span(self.sink.text(), &value.span(), text, r);
            match r {
                VarRef::Builtin(_) => {}
                VarRef::Pool { pool, column } => {
                    let names: Vec<&str> = self.pools.iter().map(|(n, _)| n.as_str()).collect();
                    match self.pools.iter().find(|(n, _)| n == pool) {
                        None => {
                            let d = self.sink.error(
                                Some(span),
                                field,
                                format!("unknown data pool `{pool}` in {{{{{r}}}}}"),
                            );
                            match closest(pool, &names) {
                                Some(c) => d.help(format!("did you mean `{c}`?")),
                                None if names.is_empty() => d.help(format!(
                                    "declare it: [data.{pool}] with file = \"{pool}.csv\""
                                )),
                                None => d.help(format!("declared pools are: {}", list(&names))),
                            };
                            ok = false;
                        }
                        Some((_, Some(spec))) if spec.column(column).is_none() => {
                            let columns: Vec<&str> =
                                spec.columns.iter().map(String::as_str).collect();
                            let d = self.sink.error(
                                Some(span),
                                field,
                                format!("data pool `{pool}` has no column `{column}`"),
                            );
                            match closest(column, &columns) {
                                Some(c) => d.help(format!(
                                    "did you mean `{c}`? (columns come from the first line of {})",
                                    spec.path.display()
                                )),
                                None => d.help(format!("its columns are: {}", list(&columns))),
                            };
                            ok = false;
                        }
                        Some(_) => {}
                    }
                }
                VarRef::Var(name) => match vars {
                    Vars::Target => {
                        self.sink
                            .error(Some(span), field, format!("`{{{{{name}}}}}` is not set when target headers are sent"))
                            .help("variables come from `extract` in a step; set this header on the steps that follow the extraction instead");
                        ok = false;
                    }
                    Vars::Step { available, .. } if available.contains(name) => {}
                    Vars::Step { later, single, .. } => {
                        let d = self.sink.error(
                            Some(span),
                            field,
                            format!("`{{{{{name}}}}}` is not set before this request"),
                        );
                        match (later.get(name), single) {
                            (Some(_), true) => d.help(format!(
                                "this request extracts `{name}` from its own response; use it in a later step of a [[journey]]"
                            )),
                            (Some(step), false) => d.help(format!(
                                "`{name}` is extracted by step `{step}`, which does not run before this one"
                            )),
                            (None, true) => d.help(format!(
                                "a [[request]] has no earlier step; extract `{name}` in a [[journey]] step before using it, or use a data pool ({{{{pool.column}}}})"
                            )),
                            (None, false) => d.help(format!(
                                "extract it in an earlier step, e.g. extract = {{ {name} = {{ json = \"/{name}\" }} }}"
                            )),
                        };
                        ok = false;
                    }
                },
            }
        }
        ok.then_some(template)
    }

    fn duration(&mut self, value: &Spanned<String>, field: &str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.sink
                    .error(Some(value.span()), field, e)
                    .help(duration::HELP);
                None
            }
        }
    }

    fn positive_duration(&mut self, value: &Spanned<String>, field: &str) -> Option<Duration> {
        let d = self.duration(value, field)?;
        if d.is_zero() {
            self.sink
                .error(
                    Some(value.span()),
                    field,
                    "the duration must be longer than 0",
                )
                .help(duration::HELP);
            return None;
        }
        Some(d)
    }

    fn opt_positive_duration(
        &mut self,
        value: Option<&Spanned<String>>,
        field: &str,
    ) -> Option<Duration> {
        self.positive_duration(value?, field)
    }

    /// A finite number above 0.
    fn positive(
        &mut self,
        value: &Spanned<f64>,
        field: &str,
        what: &str,
        example: &str,
    ) -> Option<f64> {
        let v = *value.get_ref();
        if v.is_finite() && v > 0.0 {
            return Some(v);
        }
        self.sink
            .error(
                Some(value.span()),
                field,
                format!("{what} must be above 0, found {v}"),
            )
            .help(format!("write e.g. {example}"));
        None
    }

    /// A whole number of at least `min`.
    fn whole(&mut self, value: &Spanned<f64>, field: &str, min: u64, example: &str) -> Option<u64> {
        let v = *value.get_ref();
        let key = field.rsplit('.').next().unwrap_or(field);
        let message = if !v.is_finite() || v.fract() != 0.0 {
            format!("`{key}` must be a whole number, found {v}")
        } else if v < min as f64 {
            format!("`{key}` must be at least {min}, found {v}")
        } else if v > 1e15 {
            format!("`{key}` is too large")
        } else {
            return Some(v as u64);
        };
        self.sink
            .error(Some(value.span()), field, message)
            .help(format!("write e.g. {example}"));
        None
    }
}

/// Names extracted by `steps`, mapped to the (first) step extracting them.
/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Maps a byte offset into a decoded TOML string to a byte offset into the
/// source, given the string literal's span. Handles basic and literal strings,
/// single- and multi-line, and escapes; falls back to the literal's start.
pub(crate) fn source_offset(text: &str, span: &Range<usize>, decoded_offset: usize) -> usize {
    let Some(raw) = text.get(span.clone()) else {
        return span.start;
    };
    let (delim, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        return span.start;
    };
    let mut content = &raw[delim..];
    let mut start = span.start + delim;
    if delim == 3 {
        for newline in ["\r\n", "\n"] {
            if let Some(rest) = content.strip_prefix(newline) {
                content = rest;
                start += newline.len();
                break;
            }
        }
    }
    if !basic {
        return start + decoded_offset.min(content.len());
    }
    let bytes = content.as_bytes();
    let mut decoded = 0;
    let mut i = 0;
    while i < bytes.len() && decoded < decoded_offset {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'u' | b'U' => {
                    let len = if bytes[i + 1] == b'u' { 4 } else { 8 };
                    let hex = content.get(i + 2..i + 2 + len).unwrap_or("");
                    let c = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{fffd}');
                    decoded += c.len_utf8();
                    i += 2 + len;
                }
                b' ' | b'\t' | b'\n' | b'\r' => {
                    // Line-ending backslash: the newline and following
                    // whitespace vanish.
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                }
                _ => {
                    decoded += 1;
                    i += 2;
                }
            }
        } else {
            let len = content[i..].chars().next().map_or(1, char::len_utf8);
            decoded += len;
            i += len;
        }
    }
    start + i
}

/// The source span of the placeholder for `r` in a string literal, or the
/// whole literal when it cannot be found.
fn ref_span(text: &str, span: &Range<usize>, decoded: &str, r: &VarRef) -> Range<usize> {
    let want = r.to_string();
    let mut from = 0;
    while let Some(found) = decoded[from..].find("{{") {
        let open = from + found;
        let inner = open + 2;
        let Some(len) = decoded[inner..].find("}}") else {
            break;
        };
        if decoded[inner..inner + len].trim() == want {
            let start = source_offset(text, span, open);
            let end = source_offset(text, span, inner + len + 2);
            return start..end.max(start + 1);
        }
        from = inner;
    }
    span.clone()
}

/// Splits a base URL into scheme, host (IPv6 without brackets), port
/// (explicit or the scheme's default) and base path (without a trailing
/// slash, often empty).
///
/// Accepts `http://` and `https://` only; rejects user info, queries and
/// fragments, and IPv6 addresses without brackets. The error is a lowercase
/// sentence for the user.
pub fn parse_base_url(url: &str) -> Result<(Scheme, String, u16, String), String> {
    let Some((scheme_text, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` has no scheme: write e.g. http://{}",
            url.trim_start_matches('/')
        ));
    };
    let scheme = match scheme_text.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(format!(
                "unsupported scheme `{other}`: expected http or https"
            ));
        }
    };
    if url.chars().any(char::is_whitespace) {
        return Err(format!("`{url}` contains whitespace"));
    }
    if rest.contains(['?', '#']) {
        return Err(
            "a base URL cannot have a query or fragment; put query strings in request paths"
                .to_owned(),
        );
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(
            "credentials in the base URL are not supported; send an authorization header instead"
                .to_owned(),
        );
    }
    let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(format!(
                "unclosed `[` in `{authority}`: write IPv6 hosts as [::1]"
            ));
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address `{host}`"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected `{p}` after the IPv6 address"))?,
            ),
        };
        (host, port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(format!(
                "IPv6 addresses must be in brackets, e.g. {}://[::1]:8080",
                scheme_text.to_ascii_lowercase()
            ));
        }
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("invalid host `{host}`"));
    }
    let port = match port_text {
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "invalid port `{p}`: expected a number from 1 to 65535"
                ));
            }
        },
    };
    let base_path = path.trim_end_matches('/').to_owned();
    Ok((scheme, host.to_owned(), port, base_path))
}

/// `http://host[:port]`, with the port only when it is not the default and
/// IPv6 hosts in brackets.
fn origin(scheme: Scheme, host: &str, port: u16) -> String {
    let (name, default) = match scheme {
        Scheme::Http => ("http", 80),
        Scheme::Https => ("https", 443),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == default {
        format!("{name}://{host}")
    } else {
        format!("{name}://{host}:{port}")
    }
}

impl Scenario {
    /// Replaces the whole base URL (scheme, host, port and path prefix) with
    /// `url`, as the CLI's `--target` does; headers, timeouts and TLS options
    /// stay. Fails, leaving nothing changed, when `url` is not a valid base URL
    /// (see [`parse_base_url`]).
    pub fn with_target(mut self, url: &str) -> Result<Scenario, String> {
        let (scheme, host, port, base_path) = parse_base_url(url)?;
        self.target.origin = origin(scheme, &host, port);
        self.target.scheme = scheme;
        self.target.host = host;
        self.target.port = port;
        self.target.base_path = base_path;
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
