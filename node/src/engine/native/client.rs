//! One HTTP connection of a worker: connect (TCP, optional TLS), send one
//! request at a time, read the response, classify failures into
//! [`ErrorKind`]s. HTTP/1.1 goes through bfgg's own codec (`h1.rs`, the hot
//! path); HTTP/2 through hyper's connection-level API. Either way the worker
//! owns its connections outright (no shared pool, no locks).

use std::sync::Arc;
use std::time::Duration;

use bfgg_protocol::ErrorKind;
use bytes::{Bytes, BytesMut};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::h1::{H1, H1Error, H1Response, Want};
use crate::scenario::{Scheme, Target};

/// A hyper executor that runs connection tasks on the worker's `LocalSet`.
#[derive(Clone, Copy, Debug)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// How a worker reaches the target: resolved once per worker.
#[derive(Clone)]
pub(crate) struct Connector {
    host: String,
    port: u16,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    http2: bool,
    connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(target: &Target) -> anyhow::Result<Self> {
        let tls = match target.scheme {
            Scheme::Http => None,
            Scheme::Https => {
                let config = tls_config(target.insecure_tls, target.http2)?;
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| anyhow::anyhow!("invalid TLS server name {}: {e}", target.host))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
        };
        Ok(Self {
            host: target.host.clone(),
            port: target.port,
            tls,
            http2: target.http2,
            connect_timeout: target.connect_timeout,
        })
    }

    /// Opens a connection, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<Conn, ErrorKind> {
        match tokio::time::timeout(self.connect_timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(ErrorKind::ConnectTimeout),
        }
    }

    async fn connect_inner(&self) -> Result<Conn, ErrorKind> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None if !self.http2 => Ok(Conn::Tcp(H1::new(tcp))),
            None => self.handshake(TokioIo::new(tcp), false).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ErrorKind::Tls(short(&e.to_string())))?;
                if !self.http2 {
                    return Ok(Conn::Tls(Box::new(H1::new(tls))));
                }
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                self.handshake(TokioIo::new(tls), h2).await
            }
        }
    }

    async fn handshake<T>(&self, io: T, alpn_h2: bool) -> Result<Conn, ErrorKind>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        if self.http2 || alpn_h2 {
            let (send, conn) = http2::handshake(LocalExec, io)
                .await
                .map_err(|e| ErrorKind::Connect(short(&e.to_string())))?;
            tokio::task::spawn_local(conn);
            Ok(Conn::Hyper2(send))
        } else {
            let (send, conn) = http1::handshake(io)
                .await
                .map_err(|e| ErrorKind::Connect(short(&e.to_string())))?;
            tokio::task::spawn_local(conn);
            Ok(Conn::Hyper1(send))
        }
    }
}

/// An open connection.
pub(crate) enum Conn {
    /// HTTP/1.1 over TCP, bfgg's codec.
    Tcp(H1<TcpStream>),
    /// HTTP/1.1 over TLS, bfgg's codec (boxed: the TLS state is large).
    Tls(Box<H1<TlsStream<TcpStream>>>),
    /// hyper HTTP/1.1 (only when HTTP/2 was asked for but ALPN chose 1.1).
    Hyper1(http1::SendRequest<Full<Bytes>>),
    /// hyper HTTP/2.
    Hyper2(http2::SendRequest<Full<Bytes>>),
}

/// What came back (the same shape whichever codec read it).
pub(crate) type Response = H1Response;

impl Conn {
    /// True when the connection can take another request.
    pub(crate) fn is_usable(&self) -> bool {
        match self {
            Conn::Tcp(c) => c.is_usable(),
            Conn::Tls(c) => c.is_usable(),
            Conn::Hyper1(s) => !s.is_closed(),
            Conn::Hyper2(s) => !s.is_closed(),
        }
    }

    /// Sends a serialized HTTP/1.1 request on a bfgg-codec connection.
    pub(crate) async fn send_bytes(
        &mut self,
        request: &[u8],
        want: Want,
    ) -> Result<Response, H1Error> {
        match self {
            Conn::Tcp(c) => c.round_trip(request, want).await,
            Conn::Tls(c) => c.round_trip(request, want).await,
            Conn::Hyper1(_) | Conn::Hyper2(_) => Err(H1Error::Failed(ErrorKind::Io(
                "internal: serialized request on a hyper connection".into(),
            ))),
        }
    }

    /// Sends one request through hyper and reads the whole response. With
    /// `keep_body` the body is returned, otherwise it is read, counted and
    /// dropped. Dropping the future drops the request; the connection must
    /// then be discarded.
    pub(crate) async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        keep_body: bool,
    ) -> Result<Response, ErrorKind> {
        let resp = match self {
            Conn::Hyper1(s) => {
                s.ready().await.map_err(|e| hyper_error(&e))?;
                s.send_request(req).await
            }
            Conn::Hyper2(s) => {
                s.ready().await.map_err(|e| hyper_error(&e))?;
                s.send_request(req).await
            }
            Conn::Tcp(_) | Conn::Tls(_) => {
                return Err(ErrorKind::Io(
                    "internal: hyper request on a bfgg-codec connection".into(),
                ));
            }
        }
        .map_err(|e| hyper_error(&e))?;
        let (parts, mut body) = resp.into_parts();
        let mut bytes_in = 0u64;
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| hyper_error(&e))?;
            if let Some(data) = frame.data_ref() {
                bytes_in += data.len() as u64;
                if keep_body {
                    kept.extend_from_slice(data);
                }
            }
        }
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: kept.freeze(),
            bytes_in,
        })
    }
}

/// Keeps error messages short and low-cardinality (they are grouped by text).
fn short(msg: &str) -> String {
    crate::engine::cut_message(msg, 80)
}

fn connect_error(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => ErrorKind::ConnectRefused,
        K::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::Connect(short(&e.to_string())),
    }
}

fn hyper_error(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::RequestTimeout;
    }
    if e.is_incomplete_message() {
        return ErrorKind::Io("connection closed before the response completed".into());
    }
    if e.is_closed() || e.is_canceled() {
        return ErrorKind::Io("connection closed".into());
    }
    if e.is_parse() || e.is_parse_status() {
        return ErrorKind::Io("invalid http response".into());
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return ErrorKind::Io(
                match io.kind() {
                    K::ConnectionReset => "connection reset",
                    K::BrokenPipe => "broken pipe",
                    K::ConnectionAborted => "connection aborted",
                    K::UnexpectedEof => "unexpected eof",
                    _ => return ErrorKind::Io(short(&io.to_string())),
                }
                .into(),
            );
        }
        source = s.source();
    }
    ErrorKind::Io(short(&e.to_string()))
}

fn tls_config(insecure: bool, http2: bool) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// `insecure_tls = true`: accepts any certificate chain (self-signed test
/// servers) but still checks that handshake signatures are valid.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
