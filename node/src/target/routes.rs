//! Per-request behaviour of the target server: routing, the configured
//! latency/error/size behaviour, the fixed test routes and the stall window.
//!
//! One [`Handler`] serves one connection and owns that connection's RNG, so
//! the hot path takes no lock. Responses that need no waiting are returned as
//! ready futures without allocating; only delayed or body-reading routes box
//! a future. Every wait is a tokio timer; nothing here blocks a thread.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ALLOW, AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::Service;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::TargetConfig;
use super::spec::Latency;
use super::stats::Counters;

/// Largest request body `/echo` and `/login` read; larger ones get 413.
const MAX_BODY: usize = 16 * 1024 * 1024;

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const X_TENANT: HeaderName = HeaderName::from_static("x-tenant");
/// Request headers `/echo` copies back, and the response header each becomes.
const ECHOED: [(HeaderName, HeaderName); 3] = [
    (
        AUTHORIZATION,
        HeaderName::from_static("x-echo-authorization"),
    ),
    (X_TENANT, HeaderName::from_static("x-echo-x-tenant")),
    (COOKIE, HeaderName::from_static("x-echo-cookie")),
];

/// A response; bodies are always complete in memory.
type Resp = Response<Full<Bytes>>;
/// A response that still has to wait (latency, stall) or read a body.
type Pending = Pin<Box<dyn Future<Output = Resp> + Send>>;

/// Server-wide state every connection shares, fixed at start except for the
/// atomics.
pub(super) struct Shared {
    latency: Latency,
    error_rate: f64,
    error_status: StatusCode,
    /// The normal response body, built once; cloning `Bytes` is a refcount.
    normal_body: Bytes,
    error_body: Bytes,
    /// `[from, until)` in tokio time; `None` when no stall is configured.
    stall: Option<(Instant, Instant)>,
    pub(super) counters: Counters,
    /// The last `id` handed out by `/json`.
    json_ids: AtomicU64,
}

impl Shared {
    /// Precomputes bodies and the stall window. `config` must be validated.
    pub(super) fn new(config: &TargetConfig, started: Instant) -> anyhow::Result<Self> {
        let error_status = StatusCode::from_u16(config.error_status)?;
        let mut normal = b"ok".to_vec();
        normal.resize(config.response_size, b'.');
        let stall = config.stall.and_then(|stall| {
            let from = started.checked_add(stall.at)?;
            Some((from, from.checked_add(stall.duration)?))
        });
        Ok(Shared {
            latency: config.latency,
            error_rate: config.error_rate,
            error_status,
            normal_body: Bytes::from(normal),
            error_body: Bytes::from(format!("status {}", error_status.as_u16())),
            stall,
            counters: Counters::new(),
            json_ids: AtomicU64::new(0),
        })
    }

    /// When a response sent now would be released, if a stall holds it.
    fn stall_end(&self) -> Option<Instant> {
        let (from, until) = self.stall?;
        let now = Instant::now();
        (from <= now && now < until).then_some(until)
    }

    /// Holds `resp` through the stall if one is on, then counts it.
    async fn finish(&self, resp: Resp) -> Resp {
        if let Some(until) = self.stall_end() {
            tokio::time::sleep_until(until).await;
        }
        self.counters.record(resp.status());
        resp
    }
}

/// The hyper service for one connection.
pub(super) struct Handler {
    shared: Arc<Shared>,
    /// This connection's RNG; only borrowed inside `call`, never across an
    /// await, so the borrow can't fail.
    rng: RefCell<SmallRng>,
}

impl Handler {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Handler {
            shared,
            rng: RefCell::new(SmallRng::from_rng(&mut rand::rng())),
        }
    }

    /// `/` and every unlisted path: the configured error rate, latency and size.
    fn configured(&self) -> Reply {
        let shared = &*self.shared;
        let (failed, delay) = {
            let mut rng = self.rng.borrow_mut();
            let failed = shared.error_rate > 0.0 && rng.random::<f64>() < shared.error_rate;
            (failed, shared.latency.sample(&mut *rng))
        };
        let resp = if failed {
            text(shared.error_status, shared.error_body.clone())
        } else {
            text(StatusCode::OK, shared.normal_body.clone())
        };
        self.respond(resp, delay)
    }

    /// Sends `resp` after `delay` and any stall; without either, at once and
    /// without allocating.
    fn respond(&self, resp: Resp, delay: Duration) -> Reply {
        if delay.is_zero() && self.shared.stall_end().is_none() {
            self.shared.counters.record(resp.status());
            return Reply::Now(ready(Ok(resp)));
        }
        let shared = self.shared.clone();
        Reply::Later(Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            shared.finish(resp).await
        }))
    }

    /// Runs `work` (which reads the request body), then stall and counting.
    fn respond_later(&self, work: impl Future<Output = Resp> + Send + 'static) -> Reply {
        let shared = self.shared.clone();
        Reply::Later(Box::pin(async move {
            let resp = work.await;
            shared.finish(resp).await
        }))
    }

    fn json_route(&self) -> Resp {
        let id = self.shared.json_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let token: u64 = self.rng.borrow_mut().random();
        json(
            StatusCode::OK,
            format!(r#"{{"status":"ok","token":"{token:016x}","id":{id}}}"#),
        )
    }
}

impl Service<Request<Incoming>> for Handler {
    type Response = Resp;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path();
        if path == "/" {
            return self.configured();
        }
        let resp = match path {
            "/json" => self.json_route(),
            "/me" => me(&req),
            "/stats" if req.method() == Method::GET || req.method() == Method::HEAD => {
                // The control plane: neither counted nor stalled.
                let body = serde_json::to_vec(&self.shared.counters.snapshot());
                let resp = match body {
                    Ok(body) => json(StatusCode::OK, body),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                };
                return Reply::Now(ready(Ok(resp)));
            }
            "/stats" => not_allowed("GET, HEAD"),
            "/echo" => return self.respond_later(echo(req)),
            "/login" if req.method() == Method::POST => return self.respond_later(login(req)),
            "/login" => not_allowed("POST"),
            _ => {
                if let Some(code) = path.strip_prefix("/status/") {
                    status_route(code)
                } else if let Some(ms) = path.strip_prefix("/delay/") {
                    match parse_digits(ms) {
                        Some(ms) => {
                            let resp = text(StatusCode::OK, self.shared.normal_body.clone());
                            return self.respond(resp, Duration::from_millis(ms));
                        }
                        None => text(
                            StatusCode::BAD_REQUEST,
                            format!("bad delay {ms:?}: expected whole milliseconds"),
                        ),
                    }
                } else {
                    return self.configured();
                }
            }
        };
        self.respond(resp, Duration::ZERO)
    }
}

/// The future [`Handler`] returns: ready (no allocation) or boxed.
pub(super) enum Reply {
    Now(Ready<Result<Resp, Infallible>>),
    Later(Pending),
}

impl Future for Reply {
    type Output = Result<Resp, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Reply::Now(now) => Pin::new(now).poll(cx),
            Reply::Later(later) => later.as_mut().poll(cx).map(Ok),
        }
    }
}

/// `/status/{code}`: that status at once, body `status {code}` (empty for
/// statuses that can't have one). Informational codes are refused.
fn status_route(code: &str) -> Resp {
    let status = parse_digits(code)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .filter(|s| !s.is_informational());
    match status {
        Some(
            status
            @ (StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED),
        ) => text(status, Bytes::new()),
        Some(status) => text(status, format!("status {}", status.as_u16())),
        None => text(
            StatusCode::BAD_REQUEST,
            format!("bad status code {code:?}: expected 200..=999"),
        ),
    }
}

/// `/me`: who the bearer token `tok-<user>` belongs to, else 401.
fn me(req: &Request<Incoming>) -> Resp {
    let user = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| v.strip_prefix("tok-"))
        .filter(|user| valid_user(user));
    match user {
        Some(user) => json(
            StatusCode::OK,
            serde_json::json!({ "user": user }).to_string(),
        ),
        None => {
            let mut resp = json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"expected authorization: Bearer tok-<user>"}"#,
            );
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// `/echo`: the request body and content-type back, plus the echoed headers.
async fn echo(req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let mut resp = Response::new(Full::new(body));
    let headers = resp.headers_mut();
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    for (from, to) in ECHOED {
        for value in parts.headers.get_all(&from) {
            headers.append(to.clone(), value.clone());
        }
    }
    resp
}

/// `POST /login`: `{"user": U, "password": P}` with a valid user and a
/// non-empty password gets `{"token":"tok-U"}` and `set-cookie: sid=U`.
async fn login(req: Request<Incoming>) -> Resp {
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let bad = || {
        json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"expected {\"user\":\"<1-64 of A-Z a-z 0-9 . _ @ ->\",\"password\":\"<non-empty>\"}"}"#,
        )
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad();
    };
    let user = value.get("user").and_then(|v| v.as_str());
    let password = value.get("password").and_then(|v| v.as_str());
    let (Some(user), Some(password)) = (user, password) else {
        return bad();
    };
    if !valid_user(user) || password.is_empty() {
        return bad();
    }
    let Ok(cookie) = HeaderValue::try_from(format!("sid={user}")) else {
        return bad();
    };
    let mut resp = json(
        StatusCode::OK,
        serde_json::json!({ "token": format!("tok-{user}") }).to_string(),
    );
    resp.headers_mut().insert(SET_COOKIE, cookie);
    resp
}

/// Users are 1 to 64 of `A-Z a-z 0-9 . _ @ -`, so they are safe in a cookie
/// and a header without quoting.
fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// Reads a whole request body, or the response to send instead.
async fn read_body(body: Incoming) -> Result<Bytes, Resp> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        )),
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("reading request body: {e}"),
        )),
    }
}

/// A non-empty run of ASCII digits as a number.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    with_type(status, body.into(), TEXT_PLAIN)
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    with_type(status, body.into(), APPLICATION_JSON)
}

fn not_allowed(allow: &'static str) -> Resp {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

fn with_type(status: StatusCode, body: Bytes, content_type: HeaderValue) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}
