//! The node's identity: an ed25519 keypair kept in a file (libp2p protobuf
//! encoding, mode 0600), so the peer id, and hence the [`NodeId`], is stable
//! across restarts. Also the one helper that writes private files.
//!
//! [`NodeId`]: bfgg_protocol::NodeId

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use libp2p::identity::Keypair;

/// Loads the keypair in `path`, or creates one there (and its directory) if
/// the file does not exist.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<Keypair> {
    match fs::read(path) {
        Ok(bytes) => decode(path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .context("encoding a fresh identity key")?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)
                    .with_context(|| format!("creating directory {}", dir.display()))?;
            }
            match write_new_private_file(path, &bytes) {
                Ok(()) => Ok(keypair),
                // Another process won the race: its key is the one on disk.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let bytes = fs::read(path)
                        .with_context(|| format!("reading identity file {}", path.display()))?;
                    decode(path, &bytes)
                }
                Err(e) => {
                    Err(e).with_context(|| format!("writing identity file {}", path.display()))
                }
            }
        }
        Err(e) => Err(e).with_context(|| format!("reading identity file {}", path.display())),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> anyhow::Result<Keypair> {
    Keypair::from_protobuf_encoding(bytes)
        .with_context(|| format!("{} is not a libp2p identity key", path.display()))
}

/// Writes `bytes` to a new file at `path` readable by its owner only (0600 on
/// Unix). Fails with `AlreadyExists` rather than replacing a file.
pub(crate) fn write_new_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
