//! The cluster key: the pre-shared key (libp2p `pnet`) every node of one
//! cluster holds. Connections between nodes with different keys fail during
//! the transport upgrade, so a cluster is closed to outsiders even on a shared
//! LAN. This module owns its text format (go-ipfs `swarm.key`), generation and
//! where a node finds it; it never logs the key itself, only its fingerprint.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use libp2p::pnet::PreSharedKey;

use super::identity::write_new_private_file;

/// First line of a `swarm.key` file.
const HEADER: &str = "/key/swarm/psk/1.0.0/";
/// Second line: the only encoding bfgg reads and writes.
const BASE16: &str = "/base16/";
/// File name of the key in the node's config directory.
pub const CLUSTER_KEY_FILE: &str = "cluster.key";

/// The 32-byte pre-shared key of a cluster.
///
/// `Debug` shows the fingerprint, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

/// Where [`ClusterKey::resolve`] found the key, for a message to people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The file named by `--cluster-key-file`.
    File(PathBuf),
    /// The `BFGG_CLUSTER_KEY` environment variable.
    Env,
    /// No key existed: a fresh one was written to this file (mode 0600).
    Created(PathBuf),
    /// The key file in the config directory.
    Existing(PathBuf),
}

/// Why no cluster key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a cluster key.
    #[error("{origin} is not a cluster key: {reason}")]
    Invalid {
        /// What held the text: a path, `BFGG_CLUSTER_KEY` or `text`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file could not be read.
    #[error("cannot read cluster key file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A fresh key file could not be written.
    #[error("cannot write cluster key file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl ClusterKey {
    /// Parses a key: the go-ipfs `swarm.key` format
    /// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits, one per line), or
    /// the 64 hex digits alone on one line (handy in an environment variable).
    /// Surrounding blank lines and whitespace are ignored.
    pub fn parse(text: &str) -> Result<ClusterKey, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            origin: "text".into(),
            reason,
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let hex = match lines.as_slice() {
            [hex] if !hex.starts_with('/') => *hex,
            [HEADER, BASE16, hex] => *hex,
            [HEADER, encoding, _] => {
                return Err(invalid(format!(
                    "encoding {encoding:?} is not supported (only {BASE16:?})"
                )));
            }
            [HEADER, ..] => {
                return Err(invalid(format!(
                    "expected 3 lines ({HEADER:?}, {BASE16:?}, 64 hex digits), found {}",
                    lines.len()
                )));
            }
            [] => return Err(invalid("it is empty".into())),
            _ => {
                return Err(invalid(format!(
                    "expected the swarm.key format ({HEADER:?}, {BASE16:?}, 64 hex digits) \
                     or 64 hex digits alone"
                )));
            }
        };
        decode_hex32(hex).map(ClusterKey).map_err(invalid)
    }

    /// A fresh random key (from the thread-local CSPRNG, seeded by the OS).
    pub fn generate() -> ClusterKey {
        ClusterKey(rand::random())
    }

    /// The key in `swarm.key` format, ending with a newline.
    pub fn to_file_text(&self) -> String {
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{HEADER}\n{BASE16}\n{hex}\n")
    }

    /// libp2p's fingerprint of the key (`PreSharedKey::fingerprint`): safe to
    /// log and show, equal on every node of a cluster.
    pub fn fingerprint(&self) -> String {
        self.psk().fingerprint().to_string()
    }

    /// The key as libp2p's type, for the transport.
    pub(crate) fn psk(&self) -> PreSharedKey {
        PreSharedKey::new(self.0)
    }

    /// Finds the cluster key. Resolution order: the explicit `file`
    /// (`--cluster-key-file`) > `env` (the text of `BFGG_CLUSTER_KEY`; empty
    /// counts as unset) > `<config_dir>/cluster.key` if it exists > a fresh
    /// key written to `<config_dir>/cluster.key` (mode 0600; the directory is
    /// created if needed). Returns the key and where it came from.
    pub fn resolve(
        file: Option<&Path>,
        env: Option<&str>,
        config_dir: &Path,
    ) -> Result<(ClusterKey, KeySource), KeyError> {
        if let Some(path) = file {
            let key = read_key_file(path)?;
            return Ok((key, KeySource::File(path.to_path_buf())));
        }
        if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
            let key = ClusterKey::parse(text).map_err(|e| e.with_origin("BFGG_CLUSTER_KEY"))?;
            return Ok((key, KeySource::Env));
        }
        let path = config_dir.join(CLUSTER_KEY_FILE);
        if path.exists() {
            let key = read_key_file(&path)?;
            return Ok((key, KeySource::Existing(path)));
        }
        let key = ClusterKey::generate();
        let write_err = |source| KeyError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(config_dir).map_err(write_err)?;
        match write_new_private_file(&path, key.to_file_text().as_bytes()) {
            Ok(()) => Ok((key, KeySource::Created(path))),
            // Another process created it between our check and our write: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let key = read_key_file(&path)?;
                Ok((key, KeySource::Existing(path)))
            }
            Err(e) => Err(write_err(e)),
        }
    }
}

impl fmt::Display for KeySource {
    /// For people: "--cluster-key-file /p", "BFGG_CLUSTER_KEY",
    /// "new key written to /p", "/p".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(path) => write!(f, "--cluster-key-file {}", path.display()),
            KeySource::Env => f.write_str("BFGG_CLUSTER_KEY"),
            KeySource::Created(path) => write!(f, "new key written to {}", path.display()),
            KeySource::Existing(path) => write!(f, "{}", path.display()),
        }
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey(fingerprint {})", self.fingerprint())
    }
}

impl KeyError {
    fn with_origin(self, origin: &str) -> KeyError {
        match self {
            KeyError::Invalid { reason, .. } => KeyError::Invalid {
                origin: origin.to_string(),
                reason,
            },
            other => other,
        }
    }
}

fn read_key_file(path: &Path) -> Result<ClusterKey, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    ClusterKey::parse(&text).map_err(|e| e.with_origin(&path.display().to_string()))
}

fn decode_hex32(hex: &str) -> Result<[u8; 32], String> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return Err(format!(
            "expected 64 hex digits, found {} characters",
            hex.chars().count()
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]);
        let lo = hex_value(pair[1]);
        match (hi, lo) {
            (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
            _ => return Err(format!("not a hex digit near position {}", i * 2 + 1)),
        }
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
