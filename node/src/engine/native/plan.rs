//! A scenario compiled for execution: request names numbered, header names
//! parsed, literal parts (URIs, header values, bodies) built once so the hot
//! path only clones cheap handles. Shared read-only by every worker.

use std::sync::Arc;

use bfgg_protocol::ErrorKind;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::scenario::context::{IterationContext, Pools};
use crate::scenario::template::Template;
use crate::scenario::{Body, Journey, Scenario, Step};

/// A value that is either fixed (built once) or rendered per request.
#[derive(Debug, Clone)]
enum Part<T> {
    Fixed(T),
    Templated(Template),
}

/// One step, ready to send.
#[derive(Debug)]
pub(crate) struct PlannedStep {
    /// Index into [`Plan::names`].
    pub(crate) name_id: usize,
    method: http::Method,
    path: Part<Uri>,
    headers: Vec<(HeaderName, Part<HeaderValue>)>,
    body: Option<Part<Bytes>>,
    /// Whether checks or extraction need the response body.
    pub(crate) keep_body: bool,
}

/// The compiled scenario.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) scenario: Arc<Scenario>,
    /// Distinct request names; name ids index this.
    pub(crate) names: Vec<String>,
    /// `[journey][step]`.
    pub(crate) steps: Vec<Vec<PlannedStep>>,
    /// Cumulative journey weights, for a weighted choice.
    cumulative_weights: Vec<u64>,
    host: HeaderValue,
}

impl Plan {
    pub(crate) fn new(scenario: Arc<Scenario>) -> anyhow::Result<Self> {
        let t = &scenario.target;
        let default_port = match t.scheme {
            crate::scenario::Scheme::Http => 80,
            crate::scenario::Scheme::Https => 443,
        };
        let host_text = if t.host.contains(':') {
            format!("[{}]", t.host)
        } else {
            t.host.clone()
        };
        let host_text = if t.port == default_port {
            host_text
        } else {
            format!("{host_text}:{}", t.port)
        };
        let host = HeaderValue::from_str(&host_text)?;
        let mut names: Vec<String> = Vec::new();
        let mut steps = Vec::new();
        let mut cumulative_weights = Vec::new();
        let mut acc = 0u64;
        for journey in &scenario.journeys {
            acc += u64::from(journey.weight.max(1));
            cumulative_weights.push(acc);
            let mut planned = Vec::new();
            for step in &journey.steps {
                let name_id = match names.iter().position(|n| n == &step.name) {
                    Some(i) => i,
                    None => {
                        names.push(step.name.clone());
                        names.len() - 1
                    }
                };
                planned.push(plan_step(&scenario, journey, step, name_id)?);
            }
            steps.push(planned);
        }
        Ok(Self {
            scenario,
            names,
            steps,
            cumulative_weights,
            host,
        })
    }

    /// Picks a journey index for `unit`, a uniform sample in `[0, 1)`.
    pub(crate) fn pick_journey(&self, unit: f64) -> usize {
        let total = *self.cumulative_weights.last().unwrap_or(&1);
        let x = (unit * total as f64) as u64;
        self.cumulative_weights
            .iter()
            .position(|&c| x < c)
            .unwrap_or(self.cumulative_weights.len().saturating_sub(1))
    }

    /// The journey at `index`.
    pub(crate) fn journey(&self, index: usize) -> &Journey {
        &self.scenario.journeys[index]
    }

    /// Builds the request of a step, rendering templates through `ctx`.
    /// Returns the request and its size in bytes as sent (approximately:
    /// request line, headers and body).
    pub(crate) fn build_request(
        &self,
        step: &PlannedStep,
        ctx: &mut IterationContext,
        pools: &mut Pools,
        scratch: &mut String,
    ) -> Result<(Request<Full<Bytes>>, u64), ErrorKind> {
        let uri = match &step.path {
            Part::Fixed(u) => u.clone(),
            Part::Templated(t) => {
                scratch.clear();
                scratch.push_str(&self.scenario.target.base_path);
                ctx.render(t, pools, scratch)?;
                Uri::try_from(scratch.as_str()).map_err(|_| {
                    ErrorKind::Extract(format!("rendered path is not a valid uri: {}", t.source()))
                })?
            }
        };
        let body = match &step.body {
            None => Bytes::new(),
            Some(Part::Fixed(b)) => b.clone(),
            Some(Part::Templated(t)) => {
                scratch.clear();
                ctx.render(t, pools, scratch)?;
                Bytes::from(scratch.clone())
            }
        };
        let mut size = (step.method.as_str().len() + uri.path().len() + 12) as u64;
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = step.method.clone();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.reserve(step.headers.len() + 2);
        headers.insert(HOST, self.host.clone());
        for (name, value) in &step.headers {
            let value = match value {
                Part::Fixed(v) => v.clone(),
                Part::Templated(t) => {
                    scratch.clear();
                    ctx.render(t, pools, scratch)?;
                    HeaderValue::from_str(scratch).map_err(|_| {
                        ErrorKind::Extract(format!("header {name} rendered to an invalid value"))
                    })?
                }
            };
            size += (name.as_str().len() + value.len() + 4) as u64;
            headers.insert(name.clone(), value);
        }
        if !body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            size += body.len() as u64;
        }
        Ok((req, size))
    }
}

fn plan_step(
    scenario: &Scenario,
    journey: &Journey,
    step: &Step,
    name_id: usize,
) -> anyhow::Result<PlannedStep> {
    let base = &scenario.target.base_path;
    let path = match step.path.as_literal() {
        Some(p) => Part::Fixed(Uri::try_from(format!("{base}{p}")).map_err(|e| {
            anyhow::anyhow!(
                "journey {}: step {}: invalid path {p:?}: {e}",
                journey.name,
                step.name
            )
        })?),
        None => Part::Templated(step.path.clone()),
    };
    // Target headers first, then the step's, which replace same-named ones.
    let mut headers: Vec<(HeaderName, Part<HeaderValue>)> = Vec::new();
    for (name, value) in scenario.target.headers.iter().chain(step.headers.iter()) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| anyhow::anyhow!("invalid header name {name:?}: {e}"))?;
        let value = match value.as_literal() {
            Some(v) => Part::Fixed(
                HeaderValue::from_str(v)
                    .map_err(|e| anyhow::anyhow!("invalid value of header {name}: {e}"))?,
            ),
            None => Part::Templated(value.clone()),
        };
        headers.retain(|(n, _)| n != name);
        headers.push((name, value));
    }
    let body = match &step.body {
        None => None,
        Some(Body::Text(t)) | Some(Body::Json(t)) => Some(match t.as_literal() {
            Some(text) => Part::Fixed(Bytes::from(text.to_string())),
            None => Part::Templated(t.clone()),
        }),
        Some(Body::File { bytes, .. }) => Some(Part::Fixed(bytes.clone())),
    };
    let keep_body = step.checks.iter().any(|c| {
        matches!(
            c,
            crate::scenario::check::Check::BodyContains(_)
                | crate::scenario::check::Check::JsonEquals { .. }
        )
    }) || step
        .extract
        .iter()
        .any(|(_, e)| !matches!(e, crate::scenario::extract::Extractor::Header(_)));
    Ok(PlannedStep {
        name_id,
        method: step.method.clone(),
        path,
        headers,
        body,
        keep_body,
    })
}
