//! Semantic validation: a [`RawScenario`] in, a [`Scenario`] out, with every
//! problem found reported to the [`Sink`] (not just the first).
//!
//! Also owns the base-URL grammar ([`parse_base_url`]) and the CLI's target
//! override ([`Scenario::with_target`]). This is the only place that decides
//! what a valid scenario is; engines trust the model it builds.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::scenario::check::{Check, validate_pointer};
use crate::scenario::data::{OnExhausted, PoolSpec, Strategy};
use crate::scenario::diagnostic::{Sink, closest};
use crate::scenario::duration::{self, parse_duration, parse_think_time};
use crate::scenario::extract::Extractor;
use crate::scenario::model::{
    Body, EngineKind, Journey, Load, LoadModel, Profile, Scenario, Scheme, Stage, Step, Target,
    ThinkTime,
};
use crate::scenario::raw::{
    OrderedMap, RawCheck, RawExtract, RawJourney, RawLoad, RawMeta, RawPool, RawScenario, RawStep,
    RawTarget, RawValue,
};
use crate::scenario::template::{Template, VarRef};
use crate::scenario::threshold::Threshold;

/// Default `target.connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `target.request_timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `load.graceful_stop`.
const GRACEFUL_STOP: Duration = Duration::from_secs(5);
/// Default `load.max_in_flight`.
const MAX_IN_FLIGHT: usize = 10_000;
/// Methods a step may use.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
];

/// Checks `raw` and builds the scenario; `None` when anything was reported.
pub(crate) fn validate(
    raw: RawScenario,
    sink: &mut Sink<'_>,
    source: &Path,
    base_dir: &Path,
) -> Option<Scenario> {
    let mut v = Validator {
        sink,
        base_dir,
        pools: Vec::new(),
    };
    let (name, engine, thresholds) = v.meta(raw.scenario.as_ref(), raw.thresholds.as_ref(), source);
    let target = v.target(raw.target.as_ref());
    let load = v.load(raw.load.as_ref());
    if let Some(data) = &raw.data {
        for (name, pool) in &data.0 {
            v.pool(name, pool);
        }
    }
    let mut journeys = Vec::new();
    for (i, request) in raw.request.iter().enumerate() {
        if let Some(journey) = v.request(i, request, &target) {
            journeys.push(journey);
        }
    }
    let mut journey_names: HashMap<String, usize> = HashMap::new();
    for (i, journey) in raw.journey.iter().enumerate() {
        if let Some(name) = &journey.get_ref().name {
            if let Some(first) = journey_names.get(name.get_ref()) {
                v.sink
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
        if let Some(journey) = v.journey(i, journey, &target) {
            journeys.push(journey);
        }
    }
    if raw.request.is_empty() && raw.journey.is_empty() {
        v.sink
            .error(None, "", "the scenario sends no requests")
            .help("add a [[request]] (one request) or a [[journey]] with [[journey.step]] tables");
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
        if let Some(scope) = &threshold.scope
            && !step_names.contains(&scope.as_str())
            && !journeys.is_empty()
        {
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
        }
        parsed_thresholds.push(threshold);
    }
    if v.sink.has_errors() {
        return None;
    }
    Some(Scenario {
        name,
        source: source.to_owned(),
        base_dir: base_dir.to_owned(),
        engine,
        target: target?,
        load: load?,
        journeys,
        pools: v.pools.into_iter().filter_map(|(_, pool)| pool).collect(),
        thresholds: parsed_thresholds,
    })
}

/// `a, b, c` (at most 12, then `…`).
fn list(names: &[&str]) -> String {
    let mut out: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    if names.len() > 12 {
        out.push("…".to_owned());
    }
    out.join(", ")
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
        available: &'a HashSet<String>,
        later: &'a HashMap<String, String>,
        single: bool,
    },
}

struct Validator<'s, 'a> {
    sink: &'s mut Sink<'a>,
    base_dir: &'s Path,
    /// Declared pools by name; `None` when the pool itself had errors (its
    /// columns are then not checked).
    pools: Vec<(String, Option<PoolSpec>)>,
}

impl Validator<'_, '_> {
    // ---- [scenario] -------------------------------------------------------

    #[allow(clippy::type_complexity)]
    fn meta(
        &mut self,
        meta: Option<&Spanned<RawMeta>>,
        top_thresholds: Option<&Spanned<Vec<Spanned<String>>>>,
        source: &Path,
    ) -> (String, EngineKind, Vec<(Threshold, Range<usize>, String)>) {
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
        let engine = match meta.and_then(|m| m.engine.as_ref()) {
            None => EngineKind::Native,
            Some(e) if e.get_ref() == "native" => EngineKind::Native,
            Some(e) => {
                self.sink
                    .error(
                        Some(e.span()),
                        "scenario.engine",
                        format!("unknown engine `{}`", e.get_ref()),
                    )
                    .help("the engines that exist are: native");
                EngineKind::Native
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

    fn target(&mut self, target: Option<&Spanned<RawTarget>>) -> Option<Target> {
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
        let headers = self.headers(raw.headers.as_ref(), "target.headers", &Vars::Target);
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
            insecure_tls: raw.insecure_tls.unwrap_or(false),
            http2: raw.http2.unwrap_or(false),
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
            let field = format!("{field}.{}", name.get_ref());
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

    // ---- [load] -----------------------------------------------------------

    fn load(&mut self, load: Option<&Spanned<RawLoad>>) -> Option<Load> {
        let Some(load) = load else {
            self.sink
                .error(None, "", "missing [load] table")
                .help("add [load] with model = \"open\", rate = 10, duration = \"30s\"");
            return None;
        };
        let span = load.span();
        let raw = load.get_ref();
        let duration = self.opt_positive_duration(raw.duration.as_ref(), "load.duration");
        let graceful_stop = match &raw.graceful_stop {
            Some(g) => self.duration(g, "load.graceful_stop"),
            None => Some(GRACEFUL_STOP),
        };
        let stages = self.stages(raw);
        let model = match &raw.model {
            None => {
                self.sink
                    .error(Some(span.clone()), "load", "missing `model`")
                    .help("add model = \"open\" (arrivals per second) or model = \"closed\" (virtual users)");
                None
            }
            Some(m) if m.get_ref() == "open" => self.open(raw, stages.as_deref()),
            Some(m) if m.get_ref() == "closed" => self.closed(raw, span.clone(), stages.as_deref()),
            Some(m) => {
                let d = self.sink.error(
                    Some(m.span()),
                    "load.model",
                    format!("unknown load model `{}`", m.get_ref()),
                );
                match closest(m.get_ref(), &["open", "closed"]) {
                    Some(c) => d.help(format!("did you mean \"{c}\"?")),
                    None => d.help(
                        "expected \"open\" (arrivals per second) or \"closed\" (virtual users)",
                    ),
                };
                None
            }
        };
        let implied =
            raw.stages.is_some() || raw.step_users.is_some() || raw.step_duration.is_some();
        if raw.duration.is_none() && !implied {
            self.sink
                .error(Some(span), "load", "missing `duration`")
                .help("add e.g. duration = \"30s\" (with `stages`, it defaults to their total)");
            return None;
        }
        let (model, profile_duration) = model?;
        let duration = match raw.duration {
            // Reported above when it did not parse.
            Some(_) => duration?,
            None => profile_duration?,
        };
        Some(Load {
            model,
            duration,
            graceful_stop: graceful_stop?,
        })
    }

    /// `load.stages`, checked the same way for both models (targets are
    /// checked per model). `None` when absent or broken.
    fn stages(&mut self, raw: &RawLoad) -> Option<Vec<(Stage, Range<usize>)>> {
        let stages = raw.stages.as_ref()?;
        if stages.get_ref().is_empty() {
            self.sink
                .error(Some(stages.span()), "load.stages", "`stages` is empty")
                .help("write e.g. stages = [{ duration = \"10s\", target = 100 }]");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, stage) in stages.get_ref().iter().enumerate() {
            let field = format!("load.stages[{i}]");
            let s = stage.get_ref();
            let duration = match &s.duration {
                Some(d) => self.positive_duration(d, &format!("{field}.duration")),
                None => {
                    self.sink
                        .error(Some(stage.span()), &field, "missing `duration`")
                        .help("write e.g. { duration = \"10s\", target = 100 }");
                    None
                }
            };
            let target = match &s.target {
                Some(t) if !t.get_ref().is_finite() || *t.get_ref() < 0.0 => {
                    self.sink.error(
                        Some(t.span()),
                        &format!("{field}.target"),
                        format!("the target must be 0 or more, found {}", t.get_ref()),
                    );
                    None
                }
                Some(t) => Some((*t.get_ref(), t.span())),
                None => {
                    self.sink
                        .error(Some(stage.span()), &field, "missing `target`")
                        .help("write e.g. { duration = \"10s\", target = 100 }");
                    None
                }
            };
            match (duration, target) {
                (Some(duration), Some((target, span))) => {
                    out.push((Stage { duration, target }, span));
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reports keys of the other model.
    fn foreign_keys(
        &mut self,
        keys: &[(&str, Option<Range<usize>>)],
        model: &str,
        other: &str,
        hint: &str,
    ) {
        for (key, span) in keys {
            if let Some(span) = span {
                self.sink
                    .error(
                        Some(span.clone()),
                        &format!("load.{key}"),
                        format!("`{key}` only applies to the {other} model, but this load has model = \"{model}\""),
                    )
                    .help(hint.to_owned());
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn open(
        &mut self,
        raw: &RawLoad,
        stages: Option<&[(Stage, Range<usize>)]>,
    ) -> Option<(LoadModel, Option<Duration>)> {
        let span_of = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        self.foreign_keys(
            &[
                ("users", span_of(&raw.users)),
                ("spawn_rate", span_of(&raw.spawn_rate)),
                ("step_users", span_of(&raw.step_users)),
                ("step_duration", raw.step_duration.as_ref().map(Spanned::span)),
            ],
            "open",
            "closed",
            "the open model sets arrivals per second with `rate` or `stages`; to simulate users, use model = \"closed\"",
        );
        let max_in_flight = match &raw.max_in_flight {
            Some(m) => self.whole(m, "load.max_in_flight", 1, "max_in_flight = 1000")? as usize,
            None => MAX_IN_FLIGHT,
        };
        let profile = match (&raw.rate, &raw.stages) {
            (Some(_), Some(stages)) => {
                self.sink
                    .error(
                        Some(stages.span()),
                        "load.stages",
                        "both `rate` and `stages` are set",
                    )
                    .help(
                        "use `rate` for a constant arrival rate, or `stages` for a ramp, not both",
                    );
                return None;
            }
            (None, None) => {
                self.sink
                    .error(
                        raw.model.as_ref().map(Spanned::span),
                        "load",
                        "the open model needs `rate` or `stages`",
                    )
                    .help("write e.g. rate = 100 (arrivals per second)");
                return None;
            }
            (Some(rate), None) => {
                if let Some(start) = &raw.start_rate {
                    self.sink
                        .error(Some(start.span()), "load.start_rate", "`start_rate` only applies with `stages`")
                        .help("remove it, or replace `rate` with stages = [{ duration = \"10s\", target = 100 }]");
                }
                let rate = self.positive(rate, "load.rate", "the rate", "rate = 100")?;
                Profile::constant(rate)
            }
            (None, Some(_)) => {
                let stages = stages?;
                let start = match &raw.start_rate {
                    Some(s) if !s.get_ref().is_finite() || *s.get_ref() < 0.0 => {
                        self.sink.error(
                            Some(s.span()),
                            "load.start_rate",
                            format!("the start rate must be 0 or more, found {}", s.get_ref()),
                        );
                        return None;
                    }
                    Some(s) => *s.get_ref(),
                    None => 0.0,
                };
                let profile = Profile {
                    start,
                    stages: stages.iter().map(|(s, _)| s.clone()).collect(),
                    step: false,
                };
                if profile.peak() <= 0.0 {
                    self.sink
                        .error(
                            raw.stages.as_ref().map(Spanned::span),
                            "load.stages",
                            "the rate never rises above 0",
                        )
                        .help("give at least one stage a target above 0");
                    return None;
                }
                profile
            }
        };
        let total = (!profile.stages.is_empty()).then(|| profile.stages_duration());
        Some((
            LoadModel::Open {
                rate: profile,
                max_in_flight,
            },
            total,
        ))
    }

    #[allow(clippy::type_complexity)]
    fn closed(
        &mut self,
        raw: &RawLoad,
        span: Range<usize>,
        stages: Option<&[(Stage, Range<usize>)]>,
    ) -> Option<(LoadModel, Option<Duration>)> {
        let span_of = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        self.foreign_keys(
            &[
                ("rate", span_of(&raw.rate)),
                ("start_rate", span_of(&raw.start_rate)),
                ("max_in_flight", span_of(&raw.max_in_flight)),
            ],
            "closed",
            "open",
            "the closed model sets virtual users with `users`, `stages` or step_users/step_duration; for arrivals per second, use model = \"open\"",
        );
        let spawn_rate = match &raw.spawn_rate {
            Some(s) => {
                Some(self.positive(s, "load.spawn_rate", "the spawn rate", "spawn_rate = 10")?)
            }
            None => None,
        };
        let step = raw.step_users.is_some() || raw.step_duration.is_some();
        match (&raw.users, &raw.stages, step) {
            (Some(_), Some(stages), _) => {
                self.sink
                    .error(Some(stages.span()), "load.stages", "both `users` and `stages` are set")
                    .help("use `users` for a constant number of users, or `stages` for a ramp, not both");
                None
            }
            (None, Some(stages_raw), true) => {
                let at = raw
                    .step_users
                    .as_ref()
                    .map(Spanned::span)
                    .or_else(|| raw.step_duration.as_ref().map(Spanned::span))
                    .unwrap_or_else(|| stages_raw.span());
                self.sink
                    .error(Some(at), "load", "step load (`step_users`, `step_duration`) cannot be combined with `stages`")
                    .help("for steps, set users, step_users and step_duration; for ramps, use stages");
                None
            }
            (None, None, _) => {
                self.sink
                    .error(
                        Some(span),
                        "load",
                        "the closed model needs `users` or `stages`",
                    )
                    .help("write e.g. users = 50");
                None
            }
            (None, Some(_), false) => {
                let stages = stages?;
                let mut ok = true;
                for (i, (stage, span)) in stages.iter().enumerate() {
                    if stage.target.fract() != 0.0 {
                        self.sink.error(
                            Some(span.clone()),
                            &format!("load.stages[{i}].target"),
                            format!("users must be a whole number, found {}", stage.target),
                        );
                        ok = false;
                    }
                }
                let profile = Profile {
                    start: 0.0,
                    stages: stages.iter().map(|(s, _)| s.clone()).collect(),
                    step: false,
                };
                if ok && profile.peak() <= 0.0 {
                    self.sink
                        .error(
                            raw.stages.as_ref().map(Spanned::span),
                            "load.stages",
                            "the number of users never rises above 0",
                        )
                        .help("give at least one stage a target above 0");
                    ok = false;
                }
                if !ok {
                    return None;
                }
                let total = profile.stages_duration();
                let spawn_rate = spawn_rate.unwrap_or(profile.peak());
                Some((
                    LoadModel::Closed {
                        users: profile,
                        spawn_rate,
                    },
                    Some(total),
                ))
            }
            (Some(users), None, false) => {
                let users = self.whole(users, "load.users", 1, "users = 50")? as f64;
                Some((
                    LoadModel::Closed {
                        users: Profile::constant(users),
                        spawn_rate: spawn_rate.unwrap_or(users),
                    },
                    None,
                ))
            }
            (Some(users_raw), None, true) => {
                let users = self.whole(users_raw, "load.users", 1, "users = 50");
                let step_users = match &raw.step_users {
                    Some(s) => self.whole(s, "load.step_users", 1, "step_users = 10"),
                    None => {
                        self.sink
                            .error(
                                raw.step_duration.as_ref().map(Spanned::span),
                                "load.step_duration",
                                "`step_duration` needs `step_users`",
                            )
                            .help("add e.g. step_users = 10 (users added at each step)");
                        None
                    }
                };
                let step_duration = match &raw.step_duration {
                    Some(d) => self.positive_duration(d, "load.step_duration"),
                    None => {
                        self.sink
                            .error(
                                raw.step_users.as_ref().map(Spanned::span),
                                "load.step_users",
                                "`step_users` needs `step_duration`",
                            )
                            .help("add e.g. step_duration = \"10s\" (how long each step lasts)");
                        None
                    }
                };
                let (users, step_users, step_duration) = (users?, step_users?, step_duration?);
                if step_users > users {
                    self.sink
                        .error(raw.step_users.as_ref().map(Spanned::span), "load.step_users", format!("step_users ({step_users}) is above users ({users})"))
                        .help("`users` is the final number of users; each step adds step_users until it is reached");
                    return None;
                }
                let mut stages = Vec::new();
                let mut level = 0;
                while level < users {
                    level = (level + step_users).min(users);
                    stages.push(Stage {
                        duration: step_duration,
                        target: level as f64,
                    });
                }
                let profile = Profile {
                    start: step_users as f64,
                    stages,
                    step: true,
                };
                let total = profile.stages_duration();
                Some((
                    LoadModel::Closed {
                        users: profile,
                        spawn_rate: spawn_rate.unwrap_or(step_users as f64),
                    },
                    Some(total),
                ))
            }
        }
    }

    // ---- [data.*] ---------------------------------------------------------

    fn pool(&mut self, name: &Spanned<String>, pool: &Spanned<RawPool>) {
        let field = format!("data.{}", name.get_ref());
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
        if !path.is_file() {
            self.sink
                .error(Some(file.span()), &file_field, format!("data file not found: {}", path.display()))
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
                self.sink.error(Some(file.span()), &file_field, error_chain(&e));
                None
            }
        };
        self.pools.push((name.get_ref().clone(), spec));
    }

    // ---- [[request]] and [[journey]] --------------------------------------

    fn request(
        &mut self,
        i: usize,
        request: &Spanned<RawStep>,
        target: &Option<Target>,
    ) -> Option<Journey> {
        let field = format!("request[{i}]");
        let weight = self.weight(request.get_ref().weight.as_ref(), &field);
        let no_vars = HashSet::new();
        let later = extract_names(std::slice::from_ref(request));
        let vars = Vars::Step {
            available: &no_vars,
            later: &later,
            single: true,
        };
        let step = self.step(request, &field, &vars, target);
        let step = step?;
        Some(Journey {
            name: step.name.clone(),
            weight: weight?,
            steps: vec![step],
        })
    }

    fn journey(
        &mut self,
        i: usize,
        journey: &Spanned<RawJourney>,
        target: &Option<Target>,
    ) -> Option<Journey> {
        let field = format!("journey[{i}]");
        let raw = journey.get_ref();
        let weight = self.weight(raw.weight.as_ref(), &field);
        let name = match &raw.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.sink.error(
                    Some(n.span()),
                    &format!("{field}.name"),
                    "the name is empty",
                );
                None
            }
            Some(n) => Some(n.get_ref().clone()),
            None => Some(format!("journey {}", i + 1)),
        };
        if raw.step.is_empty() {
            self.sink
                .error(Some(journey.span()), &field, "the journey has no steps")
                .help(
                    "add [[journey.step]] tables after this [[journey]] header, each with a path",
                );
            return None;
        }
        let mut available = HashSet::new();
        let mut steps = Vec::new();
        let mut ok = true;
        for (j, step) in raw.step.iter().enumerate() {
            let step_field = format!("{field}.step[{j}]");
            if let Some(w) = &step.get_ref().weight {
                self.sink
                    .error(
                        Some(w.span()),
                        &format!("{step_field}.weight"),
                        "steps have no weight",
                    )
                    .help("put `weight` on the [[journey]]: the whole journey is chosen by weight");
                ok = false;
            }
            let later = extract_names(&raw.step[j..]);
            let vars = Vars::Step {
                available: &available,
                later: &later,
                single: false,
            };
            match self.step(step, &step_field, &vars, target) {
                Some(s) => steps.push(s),
                None => ok = false,
            }
            if let Some(extract) = &step.get_ref().extract {
                available.extend(extract.0.iter().map(|(k, _)| k.get_ref().clone()));
            }
        }
        let (name, weight) = (name?, weight?);
        ok.then_some(Journey {
            name,
            weight,
            steps,
        })
    }

    fn weight(&mut self, weight: Option<&Spanned<f64>>, field: &str) -> Option<u32> {
        let Some(w) = weight else { return Some(1) };
        let value = *w.get_ref();
        if value == 0.0 {
            self.sink
                .error(
                    Some(w.span()),
                    &format!("{field}.weight"),
                    "the weight is 0",
                )
                .help("weights are 1 or more; to stop sending it, comment it out");
            return None;
        }
        let n = self.whole(w, &format!("{field}.weight"), 1, "weight = 3")?;
        u32::try_from(n).ok().or_else(|| {
            self.sink.error(
                Some(w.span()),
                &format!("{field}.weight"),
                "the weight is too large",
            );
            None
        })
    }

    fn step(
        &mut self,
        step: &Spanned<RawStep>,
        field: &str,
        vars: &Vars<'_>,
        target: &Option<Target>,
    ) -> Option<Step> {
        let raw = step.get_ref();
        let mut ok = true;
        let method = match &raw.method {
            None => Some(http::Method::GET),
            Some(m) => {
                let upper = m.get_ref().to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    http::Method::from_bytes(upper.as_bytes()).ok()
                } else {
                    let d = self.sink.error(
                        Some(m.span()),
                        &format!("{field}.method"),
                        format!("unknown HTTP method `{}`", m.get_ref()),
                    );
                    match closest(&upper, &METHODS) {
                        Some(c) => d.help(format!("did you mean \"{c}\"?")),
                        None => d.help(format!("expected one of: {}", METHODS.join(", "))),
                    };
                    None
                }
            }
        };
        let path = match &raw.path {
            None => {
                self.sink
                    .error(Some(step.span()), field, "missing `path`")
                    .help("write e.g. path = \"/\" (relative to target.base_url)");
                None
            }
            Some(p) if !p.get_ref().starts_with('/') => {
                let text = p.get_ref();
                let help = if text.starts_with("http://") || text.starts_with("https://") {
                    "paths are relative to [target] base_url: write only the path, e.g. \"/items?page=1\"".to_owned()
                } else {
                    format!("write path = \"/{text}\"")
                };
                self.sink
                    .error(
                        Some(p.span()),
                        &format!("{field}.path"),
                        "the path must start with `/`",
                    )
                    .help(help);
                None
            }
            Some(p) => self.template(p, &format!("{field}.path"), vars),
        };
        let mut headers = self.headers(raw.headers.as_ref(), &format!("{field}.headers"), vars);
        let body = self.body(raw, field, vars);
        let checks = match &raw.check {
            Some(c) => self.checks(c, &format!("{field}.check")),
            None => Some(Vec::new()),
        };
        let mut extract = Vec::new();
        for (name, ex) in raw
            .extract
            .as_ref()
            .map(|e| e.0.as_slice())
            .unwrap_or_default()
        {
            match self.extractor(name, ex, &format!("{field}.extract.{}", name.get_ref())) {
                Some(e) => extract.push((name.get_ref().clone(), e)),
                None => ok = false,
            }
        }
        let think_time = match &raw.think_time {
            None => Some(None),
            Some(t) => match parse_think_time(t.get_ref()) {
                Ok(t) => Some(Some(t)),
                Err(e) => {
                    let help = if t.get_ref().contains("..") {
                        "write e.g. think_time = \"100ms..500ms\" (a uniform range, minimum first)"
                    } else {
                        duration::HELP
                    };
                    self.sink
                        .error(Some(t.span()), &format!("{field}.think_time"), e)
                        .help(help);
                    None
                }
            },
        };
        let (method, path, body, checks, think_time) =
            (method?, path?, body?, checks?, think_time?);
        if !ok {
            return None;
        }
        if let Some(body) = &body {
            let given = |h: &[(String, Template)]| h.iter().any(|(n, _)| n == "content-type");
            let on_target = target.as_ref().is_some_and(|t| given(&t.headers));
            if !given(&headers) && !on_target {
                let content_type = match body {
                    Body::Json(_) => "application/json",
                    Body::Text(_) => "text/plain",
                    Body::File { .. } => "application/octet-stream",
                };
                headers.push(("content-type".to_owned(), Template::literal(content_type)));
            }
        }
        let name = match &raw.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.sink.error(
                    Some(n.span()),
                    &format!("{field}.name"),
                    "the name is empty",
                );
                return None;
            }
            Some(n) => n.get_ref().clone(),
            None => format!("{} {}", method, path.source()),
        };
        Some(Step {
            name,
            method,
            path,
            headers,
            body,
            checks,
            extract,
            think_time: think_time.filter(|t| *t != ThinkTime::Fixed(Duration::ZERO)),
        })
    }

    /// The body: at most one of `json`, `body`, `body_file`. `Some(None)`
    /// when there is none.
    fn body(&mut self, raw: &RawStep, field: &str, vars: &Vars<'_>) -> Option<Option<Body>> {
        let given: Vec<(&str, Range<usize>)> = [
            ("json", raw.json.as_ref().map(Spanned::span)),
            ("body", raw.body.as_ref().map(Spanned::span)),
            ("body_file", raw.body_file.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
        let mut given = given;
        given.sort_by_key(|(_, span)| span.start);
        if given.len() > 1 {
            let (second, span) = given[1].clone();
            self.sink
                .error(
                    Some(span),
                    &format!("{field}.{second}"),
                    format!("the body is given twice: `{}` and `{second}`", given[0].0),
                )
                .help("a request has one body: keep one of `json`, `body` or `body_file`");
            return None;
        }
        if let Some(json) = &raw.json {
            let field = format!("{field}.json");
            let mut text = String::new();
            let ok = self.json_body(json, &field, vars, &mut text);
            if !ok {
                return None;
            }
            return match Template::parse(&text) {
                Ok(t) => Some(Some(Body::Json(t))),
                Err(e) => {
                    self.sink.error(Some(json.span()), &field, e.message);
                    None
                }
            };
        }
        if let Some(body) = &raw.body {
            return self
                .template(body, &format!("{field}.body"), vars)
                .map(|t| Some(Body::Text(t)));
        }
        if let Some(file) = &raw.body_file {
            let path: PathBuf = self.base_dir.join(file.get_ref());
            return match std::fs::read(&path) {
                Ok(bytes) => Some(Some(Body::File {
                    path,
                    bytes: bytes.into(),
                })),
                Err(e) => {
                    let message = if e.kind() == std::io::ErrorKind::NotFound {
                        format!("body file not found: {}", path.display())
                    } else {
                        format!("cannot read body file {}: {e}", path.display())
                    };
                    self.sink
                        .error(Some(file.span()), &format!("{field}.body_file"), message)
                        .help("paths are relative to the scenario file's directory");
                    None
                }
            };
        }
        Some(None)
    }

    /// Writes `value` as compact JSON into `out`, in file order, checking
    /// every string as a template. False when anything was reported.
    fn json_body(
        &mut self,
        value: &Spanned<RawValue>,
        field: &str,
        vars: &Vars<'_>,
        out: &mut String,
    ) -> bool {
        match value.get_ref() {
            RawValue::String(s) => {
                let spanned = Spanned::new(value.span(), s.clone());
                let ok = self.template(&spanned, field, vars).is_some();
                out.push_str(&serde_json::Value::String(s.clone()).to_string());
                ok
            }
            RawValue::Integer(n) => {
                out.push_str(&n.to_string());
                true
            }
            RawValue::Float(f) if f.is_finite() => {
                out.push_str(&serde_json::Value::from(*f).to_string());
                true
            }
            RawValue::Float(_) => {
                self.sink
                    .error(Some(value.span()), field, "JSON has no nan or inf");
                false
            }
            RawValue::Boolean(b) => {
                out.push_str(if *b { "true" } else { "false" });
                true
            }
            RawValue::Array(items) => {
                out.push('[');
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ok &= self.json_body(item, &format!("{field}[{i}]"), vars, out);
                }
                out.push(']');
                ok
            }
            RawValue::Table(entries) => {
                out.push('{');
                let mut ok = true;
                for (i, (key, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.get_ref().clone()).to_string());
                    out.push(':');
                    ok &= self.json_body(item, &format!("{field}.{}", key.get_ref()), vars, out);
                }
                out.push('}');
                ok
            }
        }
    }

    fn checks(&mut self, check: &Spanned<RawCheck>, field: &str) -> Option<Vec<Check>> {
        let raw = check.get_ref();
        let mut out = Vec::new();
        let mut ok = true;
        if let Some(status) = &raw.status {
            let field = format!("{field}.status");
            let items: Vec<Spanned<RawValue>> = match status.get_ref() {
                RawValue::Array(items) if items.is_empty() => {
                    self.sink
                        .error(
                            Some(status.span()),
                            &field,
                            "the list of status codes is empty",
                        )
                        .help("write e.g. status = 200 or status = [200, 201]");
                    Vec::new()
                }
                RawValue::Array(items) => items.clone(),
                _ => vec![status.clone()],
            };
            let mut codes = Vec::new();
            for item in &items {
                match item.get_ref() {
                    RawValue::Integer(n) if (100..=599).contains(n) => codes.push(*n as u16),
                    RawValue::Integer(n) => {
                        self.sink
                            .error(
                                Some(item.span()),
                                &field,
                                format!("status {n} is not an HTTP status code"),
                            )
                            .help("status codes are between 100 and 599");
                    }
                    other => {
                        self.sink
                            .error(
                                Some(item.span()),
                                &field,
                                format!("expected a status code, found {}", other.kind()),
                            )
                            .help("write e.g. status = 200 or status = [200, 201]");
                    }
                }
            }
            if codes.len() == items.len() && !codes.is_empty() {
                out.push(Check::Status(codes));
            } else {
                ok = false;
            }
        }
        if let Some(needle) = &raw.body_contains {
            out.push(Check::BodyContains(needle.get_ref().clone()));
        }
        for (pointer, expected) in raw
            .json
            .as_ref()
            .map(|j| j.0.as_slice())
            .unwrap_or_default()
        {
            let f = format!("{field}.json.{}", pointer.get_ref());
            if let Err(e) = validate_pointer(pointer.get_ref()) {
                self.sink.error(Some(pointer.span()), &f, e);
                ok = false;
                continue;
            }
            match to_json(expected.get_ref()) {
                Ok(expected) => out.push(Check::JsonEquals {
                    pointer: pointer.get_ref().clone(),
                    expected,
                }),
                Err(e) => {
                    self.sink.error(Some(expected.span()), &f, e);
                    ok = false;
                }
            }
        }
        if let Some(names) = &raw.headers_present {
            let field = format!("{field}.headers_present");
            let items = match names.get_ref() {
                RawValue::Array(items) => items.clone(),
                _ => vec![names.clone()],
            };
            for item in &items {
                let RawValue::String(name) = item.get_ref() else {
                    self.sink
                        .error(
                            Some(item.span()),
                            &field,
                            format!("expected a header name, found {}", item.get_ref().kind()),
                        )
                        .help("write e.g. headers_present = [\"x-request-id\"]");
                    ok = false;
                    continue;
                };
                match http::HeaderName::from_bytes(name.as_bytes()) {
                    Ok(h) => out.push(Check::HeaderPresent(h.as_str().to_owned())),
                    Err(_) => {
                        self.sink.error(
                            Some(item.span()),
                            &field,
                            format!("invalid header name `{name}`"),
                        );
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(out)
    }

    fn extractor(
        &mut self,
        name: &Spanned<String>,
        ex: &Spanned<RawExtract>,
        field: &str,
    ) -> Option<Extractor> {
        if !is_name(name.get_ref()) {
            self.sink
                .error(Some(name.span()), field, format!("invalid variable name `{}`", name.get_ref()))
                .help("variables are used as {{name}}: use letters, digits, _ and -, starting with a letter");
            return None;
        }
        let raw = ex.get_ref();
        let given: Vec<(&str, &Spanned<String>)> = [
            ("json", &raw.json),
            ("header", &raw.header),
            ("regex", &raw.regex),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let example = format!("write e.g. {} = {{ json = \"/token\" }}", name.get_ref());
        match given.as_slice() {
            [] => {
                self.sink
                    .error(
                        Some(ex.span()),
                        field,
                        "the extractor is empty: expected `json`, `header` or `regex`",
                    )
                    .help(example);
                None
            }
            [(kind, value)] => {
                let built = match *kind {
                    "json" => Extractor::json(value.get_ref()),
                    "header" => Extractor::header(value.get_ref()),
                    _ => Extractor::regex(value.get_ref()),
                };
                built
                    .map_err(|e| {
                        self.sink
                            .error(Some(value.span()), &format!("{field}.{kind}"), e);
                    })
                    .ok()
            }
            [(first, _), (second, value), ..] => {
                self.sink
                    .error(
                        Some(value.span()),
                        &format!("{field}.{second}"),
                        format!("an extractor takes one source, found `{first}` and `{second}`"),
                    )
                    .help("extract each value into its own variable");
                None
            }
        }
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
                let at = source_offset(self.sink.text(), &value.span(), e.offset);
                self.sink
                    .error(Some(at..at + 2), field, format!("invalid template: {}", e.message))
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
fn extract_names(steps: &[Spanned<RawStep>]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for step in steps {
        let raw = step.get_ref();
        let step_name = raw
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .or_else(|| raw.path.as_ref().map(|p| p.get_ref().clone()))
            .unwrap_or_default();
        for (name, _) in raw
            .extract
            .as_ref()
            .map(|e| e.0.as_slice())
            .unwrap_or_default()
        {
            out.entry(name.get_ref().clone())
                .or_insert_with(|| step_name.clone());
        }
    }
    out
}

/// A TOML value as JSON (for `check.json` expectations).
fn to_json(value: &RawValue) -> Result<serde_json::Value, String> {
    Ok(match value {
        RawValue::String(s) => serde_json::Value::String(s.clone()),
        RawValue::Integer(n) => serde_json::Value::from(*n),
        RawValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or("JSON has no nan or inf")?,
        RawValue::Boolean(b) => serde_json::Value::Bool(*b),
        RawValue::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|i| to_json(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        RawValue::Table(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.get_ref().clone(), to_json(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

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
                "IPv6 addresses must be in brackets: write {}://[{authority}]",
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
