//! The `/metrics` endpoint: a small HTTP/1.1 server (hyper) on its own task
//! that only encodes the [`Metrics`] registry. `GET` (or `HEAD`) `/metrics`
//! answers 200 in the Prometheus text format 0.0.4; anything else 404.
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (others are
//! closed on accept), each for at most [`CONNECTION_LIMIT`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;

/// The page's `Content-Type`: what prometheus-client's text encoder writes.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Scrapes served at once.
const MAX_CONNECTIONS: usize = 16;

/// How long one connection may stay open.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// Listens on `addr`, or says why not (naming it: in use, not an address
/// of this host, no permission).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr} (--metrics-addr)"))
}

/// Serves `metrics` on `listener` until the task is dropped or aborted.
pub(crate) fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::debug!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!("metrics: too many scrapes at once, one refused");
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let page = respond(&metrics, &req);
                    async move { Ok::<_, Infallible>(page) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_LIMIT, conn).await {
                    Ok(Err(e)) => tracing::debug!("metrics: connection: {e}"),
                    Err(_) => {
                        tracing::debug!("metrics: connection closed after {CONNECTION_LIMIT:?}")
                    }
                    Ok(Ok(())) => {}
                }
                drop(permit);
            });
        }
    })
}

/// The answer to `req`.
pub(crate) fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let wanted =
        req.uri().path() == "/metrics" && matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, content_type, body) = if !wanted {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at GET /metrics\n".to_owned(),
        )
    } else {
        match metrics.encode() {
            Ok(page) => (StatusCode::OK, CONTENT_TYPE, page),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("encoding the metrics: {e}\n"),
            ),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
