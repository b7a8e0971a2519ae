//! Tests of the target server's TLS: rustls clients that trust exactly the
//! served certificate complete requests over HTTP/1.1 and HTTP/2 (ALPN), a
//! client that trusts only the public roots is refused, and certificate or
//! key files that are missing, garbage, truncated or mismatched give errors
//! naming the file. Loopback sockets on port 0 only.

use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::*;

/// Every wait in these tests gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

fn config(tls: TlsSource) -> TargetConfig {
    TargetConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
        ..TargetConfig::default()
    }
}

/// A rustls client config that trusts `roots` only, offering `alpn`.
fn client_config(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A client config trusting exactly `cert`.
fn trusting(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    client_config(roots, alpn)
}

/// TCP connect plus TLS handshake as `name`, bounded.
async fn connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .unwrap()?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio::time::timeout(
        TIMEOUT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
}

/// One `GET path` over HTTP/1.1 with `connection: close`; the raw response.
async fn get_h1(mut tls: tokio_rustls::client::TlsStream<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, tls.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(response).unwrap()
}

/// `label` PEM armour around `der`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A self-signed certificate and key for `localhost`, as PEM text.
fn generated_pem() -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        pem("CERTIFICATE", generated.cert.der()),
        pem("PRIVATE KEY", &generated.signing_key.serialize_der()),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_client_trusting_the_self_signed_certificate_completes_requests() {
    let server = TargetServer::start(config(TlsSource::SelfSigned))
        .await
        .unwrap();
    let cert = server.certificate().unwrap().clone();
    // Valid for every loopback name it claims.
    for name in SELF_SIGNED_NAMES {
        let tls = connect(server.local_addr(), trusting(&cert, &[b"http/1.1"]), name)
            .await
            .unwrap_or_else(|e| panic!("handshake as {name}: {e}"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let response = get_h1(tls, "/status/201").await;
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
        assert!(response.ends_with("status 201"), "{response}");
    }
    assert_eq!(server.stats().total, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn alpn_h2_is_served_as_http2() {
    let server = TargetServer::start(config(TlsSource::SelfSigned))
        .await
        .unwrap();
    let cert = server.certificate().unwrap().clone();
    let tls = connect(
        server.local_addr(),
        trusting(&cert, &[b"h2", b"http/1.1"]),
        "localhost",
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::get("https://localhost/json")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(TIMEOUT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], "ok");
    }
    drop(send);
    let _ = tokio::time::timeout(TIMEOUT, conn).await;
    assert_eq!(server.stats().total, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn every_start_generates_a_new_certificate() {
    let a = TargetServer::start(config(TlsSource::SelfSigned))
        .await
        .unwrap();
    let b = TargetServer::start(config(TlsSource::SelfSigned))
        .await
        .unwrap();
    assert_ne!(a.certificate(), b.certificate());
    // Trusting one server's certificate does not let a client reach the other.
    let cert = a.certificate().unwrap().clone();
    let err = connect(b.local_addr(), trusting(&cert, &[]), "localhost")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_trusting_only_public_roots_is_refused_and_nothing_is_served() {
    let server = TargetServer::start(config(TlsSource::SelfSigned))
        .await
        .unwrap();
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let err = connect(server.local_addr(), client_config(roots, &[]), "localhost")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    assert_eq!(server.stats().total, 0);
    // The server keeps serving others.
    let cert = server.certificate().unwrap().clone();
    let tls = connect(server.local_addr(), trusting(&cert, &[]), "127.0.0.1")
        .await
        .unwrap();
    assert!(get_h1(tls, "/").await.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_server_has_no_certificate() {
    let server = TargetServer::start(TargetConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..TargetConfig::default()
    })
    .await
    .unwrap();
    assert!(server.certificate().is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn certificate_and_key_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = generated_pem();
    let cert = write(dir.path(), "cert.pem", &cert_pem);
    let key = write(dir.path(), "key.pem", &key_pem);
    let server = TargetServer::start(config(TlsSource::Files { cert, key }))
        .await
        .unwrap();
    let served = server.certificate().unwrap().clone();
    assert_eq!(
        pem("CERTIFICATE", &served),
        cert_pem,
        "the file's certificate"
    );
    let tls = connect(server.local_addr(), trusting(&served, &[]), "localhost")
        .await
        .unwrap();
    let response = get_h1(tls, "/status/204").await;
    assert!(response.starts_with("HTTP/1.1 204"), "{response}");
    server.shutdown().await;
}

/// The start error for these files, as a person reads it (all contexts).
async fn start_error(cert: &Path, key: &Path) -> String {
    let source = TlsSource::Files {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    match TargetServer::start(config(source)).await {
        Ok(_) => panic!("started with {cert:?} and {key:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_certificate_or_key_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = generated_pem();
    let (_, other_key_pem) = generated_pem();
    let cert = write(dir.path(), "cert.pem", &cert_pem);
    let key = write(dir.path(), "key.pem", &key_pem);
    let missing = dir.path().join("missing.pem");
    let garbage = write(dir.path(), "garbage.pem", "not a pem file\n");
    let truncated = write(dir.path(), "truncated.pem", &cert_pem[..cert_pem.len() / 2]);
    let other_key = write(dir.path(), "other-key.pem", &other_key_pem);
    // A certificate where the key should be, and the reverse.
    let cases: [(&Path, &Path, &Path, &[&str]); 7] = [
        (
            &missing,
            &key,
            &missing,
            &["reading TLS certificate", "No such file"],
        ),
        (
            &cert,
            &missing,
            &missing,
            &["reading TLS key", "No such file"],
        ),
        (&garbage, &key, &garbage, &["no PEM CERTIFICATE section"]),
        (&cert, &garbage, &garbage, &["no PEM private key"]),
        (&truncated, &key, &truncated, &["invalid PEM"]),
        (&key, &cert, &key, &["no PEM CERTIFICATE section"]),
        (&cert, &other_key, &other_key, &["cert.pem", "do not match"]),
    ];
    for (cert, key, named, expected) in cases {
        let err = start_error(cert, key).await;
        assert!(
            err.contains(&named.display().to_string()),
            "{cert:?} + {key:?}: {err}"
        );
        for text in expected {
            assert!(err.contains(text), "{cert:?} + {key:?}: {err}");
        }
    }
}

#[test]
fn run_blocking_reports_a_bad_certificate_without_calling_ready() {
    let source = TlsSource::Files {
        cert: "/nonexistent/bfgg-cert.pem".into(),
        key: "/nonexistent/bfgg-key.pem".into(),
    };
    let err = run_blocking(config(source), |_| panic!("ready called")).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/bfgg-cert.pem"),
        "{err:#}"
    );
}
