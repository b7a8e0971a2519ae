//! The S3 sink as people see it: `--s3` on `bfgg run` (after the results
//! are written, local and cluster runs alike) and `bfgg runs upload`. A
//! progress bar on a terminal for uploads that take more than a second, one
//! line with the outcome; a failed upload never changes a run's exit code
//! and never touches the results on disk.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_node::results::upload::{self, Progress, S3Config, UploadError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{S3Args, UploadArgs};

/// The upload configuration `args` ask for, else the config file's `[s3]`,
/// if any.
pub(crate) fn config_of(args: &S3Args) -> anyhow::Result<Option<S3Config>> {
    let mut config = match args.s3.clone() {
        Some(url) => {
            let mut c = S3Config::new(url);
            c.endpoint = args.s3_endpoint.clone();
            c.region = args.s3_region.clone();
            c
        }
        None => match crate::config::load()?.s3 {
            Some(section) => section.to_config()?,
            None => return Ok(None),
        },
    };
    if let Ok(part) = std::env::var("BFGG_S3_PART_SIZE")
        && let Ok(n) = part.parse::<usize>()
    {
        // Tests cross the multipart boundary with small files.
        config.part_size = n;
    }
    Ok(Some(config))
}

/// Uploads `dir` as `run` and prints the outcome on stderr. `None` without
/// `--s3`; else whether everything is in the store.
pub(crate) fn after_run(args: &S3Args, dir: &Path, run: &str) -> Option<bool> {
    let config = match config_of(args) {
        Ok(c) => c?,
        Err(e) => {
            eprintln!(
                "upload failed: {e:#}\n  the results stay in {}",
                dir.display()
            );
            return Some(false);
        }
    };
    Some(match upload(&config, dir, run) {
        Ok(url) => {
            eprintln!("uploaded: {url}");
            true
        }
        Err(e) => {
            eprintln!(
                "upload failed: {e}\n  the results stay in {}; retry with: bfgg runs upload {} --s3 {}{}",
                dir.display(),
                dir.display(),
                config.url,
                config
                    .endpoint
                    .as_ref()
                    .map(|e| format!(" --s3-endpoint {e}"))
                    .unwrap_or_default()
            );
            false
        }
    })
}

/// `bfgg runs upload RUN`: exit 0 when every file is in the store, 2 when
/// not (the results stay on disk).
pub(crate) fn runs_upload(args: UploadArgs) -> anyhow::Result<ExitCode> {
    let dir = resolve_run(&args.run)?;
    anyhow::ensure!(
        config_of(&args.s3)?.is_some(),
        "--s3 s3://bucket/prefix is required (or [s3] url in {})",
        crate::config::path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config.toml".into())
    );
    let run = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("a results directory has a name")?;
    Ok(match after_run(&args.s3, &dir, &run) {
        Some(true) => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    })
}

/// A results directory given as a path, or by name in the results store.
fn resolve_run(run: &str) -> anyhow::Result<PathBuf> {
    let store = bfgg_node::results::store::default_store()?;
    Ok(bfgg_node::results::store::resolve(&store, run)?.dir)
}

fn upload(config: &S3Config, dir: &Path, run: &str) -> Result<String, UploadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} uploading {msg} {bytes}/{total_bytes} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    // Shown once an upload has taken this long (tests lower it).
    let after = std::env::var("BFGG_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis);
    let mut shown = false;
    let result = rt.block_on(upload::upload_results(config, dir, run, |p: &Progress| {
        if terminal && !shown && started.elapsed() >= after {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.file.clone());
    }));
    // A bar that was shown stays, complete, above the outcome line.
    if shown {
        bar.finish();
    }
    result
}
