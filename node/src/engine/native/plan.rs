//! A scenario compiled for execution: request names numbered, header names
//! parsed, literal parts (URIs, header values, bodies) built once so the hot
//! path only clones cheap handles. Shared read-only by every worker.

use std::io::Write as _;
use std::sync::Arc;

use bfgg_protocol::ErrorKind;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;

use super::h1::Want;
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
    /// Request line, host and headers serialized once, when none is templated
    /// (without content-length and the blank line).
    fixed_head: Option<Vec<u8>>,
    /// What checks and extraction need from the response.
    pub(crate) want: Want,
}

/// Per-slot buffers for serializing requests, reused across requests.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Rendered templates (path, header values).
    text: String,
    /// A rendered body.
    body: String,
    /// The serialized request.
    pub(crate) wire: Vec<u8>,
}

fn rendered_value_ok(v: &str) -> bool {
    !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
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
    /// Requests go through bfgg's HTTP/1.1 codec (serialized bytes) rather than
    /// hyper (HTTP/2).
    pub(crate) serialized: bool,
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
                planned.push(plan_step(&scenario, journey, step, name_id, &host)?);
            }
            steps.push(planned);
        }
        Ok(Self {
            serialized: !scenario.target.http2,
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

    /// Serializes the request of a step into `scratch.wire` (HTTP/1.1),
    /// rendering templates through `ctx`. Returns the bytes to send.
    pub(crate) fn serialize(
        &self,
        step: &PlannedStep,
        ctx: &mut IterationContext,
        pools: &mut Pools,
        scratch: &mut Scratch,
    ) -> Result<(), ErrorKind> {
        let Scratch { text, body, wire } = scratch;
        wire.clear();
        let body: &[u8] = match &step.body {
            None => &[],
            Some(Part::Fixed(b)) => b,
            Some(Part::Templated(t)) => {
                body.clear();
                ctx.render(t, pools, body)?;
                body.as_bytes()
            }
        };
        match &step.fixed_head {
            Some(head) => wire.extend_from_slice(head),
            None => {
                wire.extend_from_slice(step.method.as_str().as_bytes());
                wire.push(b' ');
                match &step.path {
                    Part::Fixed(uri) => wire.extend_from_slice(uri_text(uri).as_bytes()),
                    Part::Templated(t) => {
                        text.clear();
                        text.push_str(&self.scenario.target.base_path);
                        ctx.render(t, pools, text)?;
                        if text.is_empty()
                            || !text.starts_with('/')
                            || text.bytes().any(|b| b <= b' ' || b == 0x7f)
                        {
                            return Err(ErrorKind::Extract(format!(
                                "path {} rendered to an invalid request target",
                                t.source()
                            )));
                        }
                        wire.extend_from_slice(text.as_bytes());
                    }
                }
                wire.extend_from_slice(b" HTTP/1.1\r\nhost: ");
                wire.extend_from_slice(self.host.as_bytes());
                wire.extend_from_slice(b"\r\n");
                for (name, value) in &step.headers {
                    wire.extend_from_slice(name.as_str().as_bytes());
                    wire.extend_from_slice(b": ");
                    match value {
                        Part::Fixed(v) => wire.extend_from_slice(v.as_bytes()),
                        Part::Templated(t) => {
                            text.clear();
                            ctx.render(t, pools, text)?;
                            if !rendered_value_ok(text) {
                                return Err(ErrorKind::Extract(format!(
                                    "header {name} rendered to an invalid value"
                                )));
                            }
                            wire.extend_from_slice(text.as_bytes());
                        }
                    }
                    wire.extend_from_slice(b"\r\n");
                }
            }
        }
        if !body.is_empty() || step.body.is_some() || needs_length(&step.method) {
            // Writing into a Vec cannot fail.
            let _ = write!(wire, "content-length: {}\r\n", body.len());
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(body);
        Ok(())
    }

    /// Builds the request of a step, rendering templates through `ctx`.
    /// Returns the request and its size in bytes as sent (approximately:
    /// request line, headers and body).
    pub(crate) fn build_request(
        &self,
        step: &PlannedStep,
        ctx: &mut IterationContext,
        pools: &mut Pools,
        scratch: &mut Scratch,
    ) -> Result<(Request<Full<Bytes>>, u64), ErrorKind> {
        let scratch = &mut scratch.text;
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

fn needs_length(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// Path and query of a parsed origin-form URI.
fn uri_text(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn plan_step(
    scenario: &Scenario,
    journey: &Journey,
    step: &Step,
    name_id: usize,
    host: &HeaderValue,
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
    use crate::scenario::check::Check;
    use crate::scenario::extract::Extractor;
    let want = Want {
        body: step
            .checks
            .iter()
            .any(|c| matches!(c, Check::BodyContains(_) | Check::JsonEquals { .. }))
            || step
                .extract
                .iter()
                .any(|(_, e)| !matches!(e, Extractor::Header(_))),
        headers: step
            .checks
            .iter()
            .any(|c| matches!(c, Check::HeaderPresent(_)))
            || step
                .extract
                .iter()
                .any(|(_, e)| matches!(e, Extractor::Header(_))),
        head_request: step.method == http::Method::HEAD,
    };
    let fixed_head = match &path {
        Part::Fixed(uri) if headers.iter().all(|(_, v)| matches!(v, Part::Fixed(_))) => {
            let mut head = Vec::new();
            head.extend_from_slice(step.method.as_str().as_bytes());
            head.push(b' ');
            head.extend_from_slice(uri_text(uri).as_bytes());
            head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
            head.extend_from_slice(host.as_bytes());
            head.extend_from_slice(b"\r\n");
            for (name, value) in &headers {
                if let Part::Fixed(v) = value {
                    head.extend_from_slice(name.as_str().as_bytes());
                    head.extend_from_slice(b": ");
                    head.extend_from_slice(v.as_bytes());
                    head.extend_from_slice(b"\r\n");
                }
            }
            Some(head)
        }
        _ => None,
    };
    Ok(PlannedStep {
        name_id,
        method: step.method.clone(),
        path,
        headers,
        body,
        fixed_head,
        want,
    })
}
