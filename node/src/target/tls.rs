//! TLS for the target server (`bfgg target --tls`, `--tls-cert`/`--tls-key`):
//! where the certificate comes from ([`TlsSource`]) and the rustls server
//! config built from it (ring provider, TLS 1.2 and 1.3, ALPN `h2` then
//! `http/1.1`).
//!
//! A self-signed certificate is generated afresh at every start for
//! `localhost`, `127.0.0.1` and `::1`; clients either trust it (tests get it
//! from [`super::TargetServer::certificate`]) or skip verification
//! (`insecure_tls = true` in a scenario).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Names a generated self-signed certificate is valid for.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Where the target server's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A fresh self-signed certificate for [`SELF_SIGNED_NAMES`], generated
    /// when the server starts (ECDSA P-256).
    SelfSigned,
    /// A certificate chain and its private key from PEM files.
    Files {
        /// PEM file with the certificate chain, leaf first.
        cert: PathBuf,
        /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// What the server needs for TLS: the acceptor, and the leaf certificate it
/// presents.
pub(super) struct ServerTls {
    pub(super) acceptor: TlsAcceptor,
    pub(super) certificate: CertificateDer<'static>,
}

impl ServerTls {
    /// Generates or loads the certificate and builds the rustls acceptor.
    /// Errors name the file and what is wrong with it.
    pub(super) fn new(source: &TlsSource) -> anyhow::Result<ServerTls> {
        let (chain, key) = match source {
            TlsSource::SelfSigned => self_signed()?,
            TlsSource::Files { cert, key } => (load_chain(cert)?, load_key(key)?),
        };
        let certificate = chain
            .first()
            .cloned()
            .context("internal: empty TLS certificate chain")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("configuring TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                let problem = match e {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        "the key and the certificate do not match".to_string()
                    }
                    e => e.to_string(),
                };
                match source {
                    TlsSource::SelfSigned => {
                        anyhow::anyhow!("using the self-signed certificate: {problem}")
                    }
                    TlsSource::Files { cert, key } => anyhow::anyhow!(
                        "TLS certificate {} with key {}: {problem}",
                        cert.display(),
                        key.display()
                    ),
                }
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }
}

/// A new key pair and a certificate for [`SELF_SIGNED_NAMES`] signed by it.
fn self_signed() -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed TLS certificate")?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::from(generated.signing_key);
    Ok((vec![cert], key))
}

/// Every `CERTIFICATE` section of the PEM file `path`, in order.
fn load_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: {}", path.display(), pem_problem(&e)))?;
    if chain.is_empty() {
        anyhow::bail!(
            "TLS certificate {}: no PEM CERTIFICATE section found",
            path.display()
        );
    }
    Ok(chain)
}

/// The first private key of the PEM file `path`.
fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow::anyhow!(
            "TLS key {}: no PEM private key found (expected PRIVATE KEY, \
             RSA PRIVATE KEY or EC PRIVATE KEY)",
            path.display()
        ),
        e => anyhow::anyhow!("TLS key {}: {}", path.display(), pem_problem(&e)),
    })
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading TLS {what} {}", path.display()))
}

/// A PEM parse error in words (the `Debug` of byte strings is unreadable).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "invalid PEM: missing end marker {}",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "invalid PEM: bad section start {}",
            String::from_utf8_lossy(line)
        ),
        e => format!("invalid PEM: {e}"),
    }
}
