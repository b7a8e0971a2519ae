//! `[[request]]` and `[[journey]]`: steps, bodies, checks and extractors,
//! with every template checked against the variables earlier steps extract.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::{Validator, Vars, is_name, key_path};
use crate::scenario::check::{Check, validate_pointer};
use crate::scenario::diagnostic::closest;
use crate::scenario::duration::{self, parse_think_time};
use crate::scenario::extract::Extractor;
use crate::scenario::model::{Body, Journey, Step, Target, ThinkTime};
use crate::scenario::raw::{RawCheck, RawExtract, RawJourney, RawStep, RawValue};
use crate::scenario::template::Template;

/// Methods a step may use.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
];

impl Validator<'_, '_> {
    // ---- [[request]] and [[journey]] --------------------------------------

    pub(super) fn request(
        &mut self,
        i: usize,
        request: &Spanned<RawStep>,
        target: Option<&Target>,
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
        let step = self.step(request, &field, &vars, target)?;
        Some(Journey {
            name: step.name.clone(),
            weight: weight?,
            steps: vec![step],
        })
    }

    pub(super) fn journey(
        &mut self,
        i: usize,
        journey: &Spanned<RawJourney>,
        target: Option<&Target>,
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
        target: Option<&Target>,
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
            match self.extractor(
                name,
                ex,
                &key_path(&format!("{field}.extract"), name.get_ref()),
            ) {
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
            let on_target = target.is_some_and(|t| given(&t.headers));
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
        let mut given: Vec<(&str, Range<usize>)> = [
            ("json", raw.json.as_ref().map(Spanned::span)),
            ("body", raw.body.as_ref().map(Spanned::span)),
            ("body_file", raw.body_file.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
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
            if self.deferred {
                return Some(Some(Body::File {
                    path,
                    bytes: Vec::new().into(),
                }));
            }
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
                    ok &= self.json_body(item, &key_path(field, key.get_ref()), vars, out);
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
            let f = key_path(&format!("{field}.json"), pointer.get_ref());
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
}

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
