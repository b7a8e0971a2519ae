//! `bfgg target`: a built-in HTTP test server whose behaviour is exactly
//! controllable, for demos, integration tests and benchmarks of load
//! generators.
//!
//! It speaks HTTP/1.1 with keep-alive and HTTP/2 with prior knowledge, or,
//! with [`TargetConfig::tls`], the same behind a rustls handshake (HTTP/2 when
//! ALPN picks `h2`). It listens on `127.0.0.1:8080` unless told otherwise and
//! never blocks a thread: every delay is a tokio timer. This module owns the
//! listener, the connections and shutdown; `routes` owns what each request
//! gets, `tls` where the certificate comes from.
//!
//! # Routes (all methods unless said)
//!
//! * `/` and any path not listed: the configured behaviour. A fraction
//!   `error_rate` of requests get `error_status` with body `status {code}`;
//!   the rest get 200, `content-type: text/plain` and `response_size` bytes
//!   (`ok` padded with `.`). Both wait the configured [`Latency`] first.
//! * `/status/{code}`: that status at once (200..=999), body `status {code}`.
//! * `/delay/{ms}`: 200 with the normal body after exactly `ms` milliseconds,
//!   ignoring the configured latency and error rate.
//! * `/json`: `{"status":"ok","token":"<16 random hex>","id":<1, 2, ...>}`.
//! * `/echo`: the request body and `content-type` back; `authorization`,
//!   `x-tenant` and `cookie` come back as `x-echo-authorization`, ...
//! * `/login` (POST): `{"user":U,"password":P}` gets 200 `{"token":"tok-U"}`
//!   and `set-cookie: sid=U`; U must be 1-64 of `A-Z a-z 0-9 . _ @ -` and P
//!   a non-empty string, else 400.
//! * `/me`: 200 `{"user":U}` given `authorization: Bearer tok-U`, else 401.
//! * `/stats` (GET): [`TargetStats`] as JSON. Not counted and never stalled.
//!
//! # Latency syntax (`--latency`)
//!
//! * `0` or `5ms`: fixed. Units are `ns`, `us`, `ms`, `s`, `m`, `h`; fractions
//!   such as `1.5ms` are fine.
//! * `1ms..20ms`: uniform between the two, both included.
//! * `5ms|100ms@10%`: bimodal; 10% of requests take 100ms, the rest 5ms.
//!
//! Delays are lower bounds: tokio's timer ticks every millisecond, so a
//! response may go out up to about a millisecond late (more under load).
//!
//! # Stall syntax (`--stall`)
//!
//! `500ms@10s`: from 10s after start, hold every response for 500ms. A
//! response whose send time falls in `[10s, 10.5s)`, whether its request came
//! in before or during the window, is sent at 10.5s.

mod routes;
mod spec;
mod stats;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod tls_tests;

use std::future::{Future, poll_fn};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use routes::{Handler, Shared};
pub use spec::{LATENCY_SYNTAX, Latency, STALL_SYNTAX, SpecError, Stall};
pub use stats::TargetStats;
pub use tls::{SELF_SIGNED_NAMES, TlsSource};

/// How long `shutdown` lets in-flight responses finish before closing their
/// connections anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Pending connections the kernel queues before `accept`; benchmarks open
/// hundreds of connections at once.
const BACKLOG: u32 = 4096;

/// How `bfgg target` behaves. [`Default`] gives `127.0.0.1:8080`, no latency,
/// no errors, a 2-byte `ok` body, no stall, one worker thread and no TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Where to listen; port 0 picks a free port (see
    /// [`TargetServer::local_addr`]). Only a non-loopback address the user
    /// passes exposes the server beyond this machine.
    pub listen: SocketAddr,
    /// Delay before each response on the configured routes.
    pub latency: Latency,
    /// Fraction (`0.0..=1.0`) of configured-route requests answered with
    /// `error_status`.
    pub error_rate: f64,
    /// Status of injected errors (200..=999).
    pub error_status: u16,
    /// Body bytes of a normal response: `ok` padded with `.` (cut short below 2).
    pub response_size: usize,
    /// Hold every response during this window.
    pub stall: Option<Stall>,
    /// Tokio worker threads used by [`run_blocking`] (at least 1). One keeps
    /// the server's CPU use predictable for benchmarks.
    /// [`TargetServer::start`] runs on the caller's runtime and ignores it.
    pub workers: usize,
    /// Serve over TLS with this certificate; `None` serves plain HTTP.
    pub tls: Option<TlsSource>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            latency: Latency::default(),
            error_rate: 0.0,
            error_status: 503,
            response_size: 2,
            stall: None,
            workers: 1,
            tls: None,
        }
    }
}

impl TargetConfig {
    /// Checks the ranges the types can't express; the error names the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            anyhow::bail!("error rate {} is outside 0.0..=1.0", self.error_rate);
        }
        if !(200..=999).contains(&self.error_status) {
            anyhow::bail!("error status {} is outside 200..=999", self.error_status);
        }
        if self.workers == 0 {
            anyhow::bail!("workers must be at least 1");
        }
        self.latency.validate().map_err(anyhow::Error::msg)
    }
}

/// A running target server. Dropping it stops the server as
/// [`TargetServer::shutdown`] does, without waiting for connections to close.
pub struct TargetServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// Set to `true` (or dropped) to stop; the accept loop and every
    /// connection task hold receivers.
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    /// The leaf certificate presented, when serving TLS.
    certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    /// Never receives a message: it yields `None` once the accept loop and
    /// every connection task have dropped their senders, i.e. have ended.
    ended: mpsc::Receiver<()>,
}

impl TargetServer {
    /// Validates `config`, binds the listener and serves on spawned tasks of
    /// the current tokio runtime. When this returns the socket is bound, so a
    /// client may connect at once. Fails on a bad config, an unusable TLS
    /// certificate or key (the error names the file) or a failed bind.
    pub async fn start(config: TargetConfig) -> anyhow::Result<TargetServer> {
        config.validate()?;
        let tls = config.tls.as_ref().map(tls::ServerTls::new).transpose()?;
        let (acceptor, certificate) = match tls {
            Some(tls) => (Some(tls.acceptor), Some(tls.certificate)),
            None => (None, None),
        };
        let listener =
            bind(config.listen).with_context(|| format!("listening on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config, Instant::now())?);
        let (stop, stop_rx) = watch::channel(false);
        let (alive, ended) = mpsc::channel(1);
        let accept = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            acceptor,
            stop_rx,
            alive,
        ));
        tracing::debug!(%local_addr, tls = certificate.is_some(), "target server listening");
        Ok(TargetServer {
            local_addr,
            shared,
            stop,
            accept,
            certificate,
            ended,
        })
    }

    /// The bound address, with the real port when the config asked for 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The leaf certificate the server presents (DER), or `None` without TLS.
    /// A client can trust exactly this one to reach a self-signed server.
    pub fn certificate(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.certificate.as_ref()
    }

    /// Responses sent so far (lock-free; `GET /stats` is not counted).
    pub fn stats(&self) -> TargetStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting at once, lets in-flight responses finish for up to a
    /// second, then closes every connection. Returns when all connection
    /// tasks have ended.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Err(e) = (&mut self.accept).await {
            tracing::warn!("target accept loop ended abnormally: {e}");
        }
        // Every sender is gone once this yields `None`.
        while self.ended.recv().await.is_some() {}
    }
}

/// Runs a target server until Ctrl-C or SIGTERM on a new multi-thread runtime
/// with `config.workers` threads, calling `ready` with the bound address once
/// clients may connect and the signal handlers are in place (the CLI prints
/// `{"listening":"ADDR"}` from it). Returns after a graceful shutdown, or the
/// error from a bad config, bind, runtime or signal handler.
pub fn run_blocking(config: TargetConfig, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    run_until(config, ready, shutdown_signal())
}

/// [`run_blocking`] with the stop condition passed in, so tests can drive it.
fn run_until(
    config: TargetConfig,
    ready: impl FnOnce(SocketAddr),
    stop: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .thread_name("bfgg-target")
        .enable_all()
        .build()
        .context("building the target server runtime")?;
    runtime.block_on(async {
        let server = TargetServer::start(config).await?;
        let mut stop = pin!(stop);
        // Poll `stop` once before `ready`, which installs the signal
        // handlers: a harness may signal as soon as it reads the address.
        let early = poll_fn(|cx| Poll::Ready(stop.as_mut().poll(cx))).await;
        let stopped = match early {
            Poll::Ready(stopped) => stopped,
            Poll::Pending => {
                ready(server.local_addr());
                stop.await
            }
        };
        server.shutdown().await;
        stopped
    })
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM. The handlers are installed on
/// the first poll; until then a signal takes its default action.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            res = tokio::signal::ctrl_c() => res.context("listening for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")
    }
}

/// Binds with a deep backlog and `SO_REUSEADDR`, so a restarted server can
/// take its port back while old connections linger in TIME_WAIT.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts until `stop`, one task per connection. `alive` is cloned into
/// every task; see [`TargetServer::ended`].
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopping.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let shared = shared.clone();
                let stop = stop.clone();
                let alive = alive.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, shared, stop).await,
                        Some(tls) => serve_tls_connection(stream, tls, shared, stop).await,
                    }
                    drop(alive);
                });
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("target server accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection as HTTP/1.1 or, if it opens with the HTTP/2
/// preface, HTTP/2, until the client closes it or the server stops.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    // Latency matters more than packet count for a test server.
    let _ = stream.set_nodelay(true);
    let is_h2 = tokio::select! {
        is_h2 = starts_with_h2_preface(&stream) => is_h2,
        _ = stop.wait_for(|stop| *stop) => return,
    };
    match is_h2 {
        Ok(is_h2) => serve_http(TokioIo::new(stream), is_h2, shared, stop).await,
        Err(e) => tracing::debug!("target connection failed before a request: {e}"),
    }
}

/// Serves one TLS connection: the handshake, then HTTP/2 if ALPN picked `h2`
/// and HTTP/1.1 otherwise, until the client closes it or the server stops.
async fn serve_tls_connection(
    stream: TcpStream,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let accepted = tokio::select! {
        accepted = tls.accept(stream) => accepted,
        _ = stop.wait_for(|stop| *stop) => return,
    };
    match accepted {
        Ok(stream) => {
            let is_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_http(TokioIo::new(stream), is_h2, shared, stop).await;
        }
        // Clients that refuse the certificate end up here (as do scanners).
        Err(e) => tracing::debug!("target TLS handshake failed: {e}"),
    }
}

/// Serves HTTP/2 or HTTP/1.1 with keep-alive on an established connection.
async fn serve_http<I>(io: I, is_h2: bool, shared: Arc<Shared>, stop: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let handler = Handler::new(shared);
    if is_h2 {
        let conn = http2::Builder::new(TokioExecutor::new()).serve_connection(io, handler);
        drive(conn, stop).await;
    } else {
        // No header read timeout: idle keep-alive connections stay open as
        // long as the client wants, and hyper needn't arm a timer per request.
        let conn = http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None)
            .pipeline_flush(true)
            .serve_connection(io, handler);
        drive(conn, stop).await;
    }
}

/// What an HTTP/2 client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Peeks (without consuming) until the first bytes rule the HTTP/2 preface
/// in or out. An HTTP/1 request differs from it at the first byte unless its
/// method starts with `P`, so this is nearly always a single `peek`.
async fn starts_with_h2_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A partial preface: `peek` would return at once with the same bytes,
        // so wait a little for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A hyper server connection that can be asked to finish gracefully.
trait GracefulConnection: Future<Output = hyper::Result<()>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I> GracefulConnection for http1::Connection<I, Handler>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I> GracefulConnection for http2::Connection<I, Handler, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `conn` to completion, or on `stop` finishes in-flight responses for
/// at most [`SHUTDOWN_GRACE`] and then drops (closes) it.
async fn drive(conn: impl GracefulConnection, mut stop: watch::Receiver<bool>) {
    let mut conn = pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("target connection ended: {e}");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful();
    if tokio::time::timeout(SHUTDOWN_GRACE, conn).await.is_err() {
        tracing::debug!("target connection still busy after the shutdown grace; closing it");
    }
}
