//! `<config dir>/config.toml` (e.g. `~/.config/bfgg/config.toml`): settings
//! a flag would otherwise repeat on every command. Flags win over the file.
//! Today it holds `[s3]` (`url`, `endpoint`, `region`), used by `bfgg run`,
//! `bfgg node` and `bfgg runs upload` when `--s3` is not given. An unknown
//! key or a malformed value is an error naming the file, line and key.

use std::path::PathBuf;

use anyhow::Context as _;
use bfgg_node::results::upload::{S3Config, S3Url};
use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Where results go in S3.
    pub(crate) s3: Option<S3Section>,
}

/// `[s3]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Section {
    /// `s3://bucket/prefix`.
    pub(crate) url: String,
    /// An S3-compatible endpoint.
    pub(crate) endpoint: Option<String>,
    /// The region.
    pub(crate) region: Option<String>,
}

/// Where the file is.
pub(crate) fn path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "bfgg").map(|d| d.config_dir().join("config.toml"))
}

/// The file, or the defaults when there is none.
pub(crate) fn load() -> anyhow::Result<ConfigFile> {
    let Some(path) = path() else {
        return Ok(ConfigFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl S3Section {
    /// As an upload configuration.
    pub(crate) fn to_config(&self) -> anyhow::Result<S3Config> {
        let url: S3Url = self.url.parse().map_err(|e| {
            anyhow::anyhow!(
                "{}: [s3] url: {e}",
                path().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })?;
        let mut config = S3Config::new(url);
        config.endpoint = self.endpoint.clone();
        config.region = self.region.clone();
        Ok(config)
    }
}
