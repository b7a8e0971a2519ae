//! Interval logs between nodes: serving a page of a log by byte offset
//! (`FetchLog`), and copying a node's log page by page, following `complete`
//! to the end. Every consumer of a log goes through [`copy_log`] (remote
//! nodes) or reads the file itself (this node's own log): never through a
//! page of the wire format, so no page size can cut a log short.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bfgg_protocol::mesh::{ControlRequest, ControlResponse, LogKind};
use bfgg_protocol::{NodeId, RunId};

use super::node::Ctx;
use crate::interval_log::{self, LOG_FILE, MAX_PAGE_BYTES};
use crate::net::NetHandle;

/// How many intervals a page holds at most, unless `bfgg node
/// --page-intervals` says otherwise.
pub const DEFAULT_PAGE_INTERVALS: u32 = 200;

/// This node's own interval log of `run`.
pub(crate) fn own_log(data_dir: &Path, run: &RunId) -> PathBuf {
    interval_log::dir_of(data_dir, &run.0).join(LOG_FILE)
}

/// The results directory of a run this node coordinated.
pub(crate) fn results_dir(data_dir: &Path, run: &RunId) -> PathBuf {
    data_dir.join("runs").join(&run.0).join("results")
}

/// `FetchLog`: the page of `log` at `offset`, at most `max` intervals (and
/// this node's page size). `writing`: whether this node's engine may still
/// append to its own log of `run`, read before the page (a log that was
/// complete then holds every frame the page can see).
pub(crate) fn serve(
    ctx: &Ctx,
    run: &RunId,
    log: LogKind,
    offset: u64,
    max: u32,
    writing: bool,
) -> ControlResponse {
    let (path, done) = match log {
        LogKind::Own => (own_log(&ctx.data_dir, run), !writing),
        LogKind::Merged => {
            let dir = results_dir(&ctx.data_dir, run);
            (dir.join(LOG_FILE), dir.join("summary.json").is_file())
        }
    };
    if !path.is_file() {
        return ControlResponse::Rejected {
            reason: match log {
                LogKind::Own => format!("no measurements of run {run} here"),
                LogKind::Merged => format!("run {run} has no results here (yet)"),
            },
        };
    }
    match interval_log::read_page(&path, offset, max.min(ctx.page_intervals), MAX_PAGE_BYTES) {
        Ok(page) => ControlResponse::LogPage {
            frames: page.frames,
            next_offset: page.next_offset,
            complete: done && page.at_end,
        },
        Err(e) => ControlResponse::Rejected {
            reason: format!("{e:#}"),
        },
    }
}

/// Copies `node`'s `log` of `run` into the file `dest` (created or
/// truncated), page by page until the node says it is complete; a node
/// still writing is asked again every 200 ms until `give_up`. Returns the
/// number of intervals copied.
pub(crate) async fn copy_log(
    net: &NetHandle,
    node: &NodeId,
    run: &RunId,
    log: LogKind,
    dest: &Path,
    give_up: Instant,
) -> anyhow::Result<u64> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?,
    );
    let mut offset = 0u64;
    let mut intervals = 0u64;
    loop {
        let resp = net
            .request(
                node,
                ControlRequest::FetchLog {
                    run: run.clone(),
                    log,
                    offset,
                    max: u32::MAX,
                },
            )
            .await?;
        match resp {
            ControlResponse::LogPage {
                frames,
                next_offset,
                complete,
            } => {
                let count = interval_log::split_frames(&frames)?.len() as u64;
                anyhow::ensure!(
                    next_offset == offset + frames.len() as u64,
                    "a page from {offset} with {} bytes says the next starts at {next_offset}",
                    frames.len()
                );
                out.write_all(&frames)
                    .with_context(|| format!("writing {}", dest.display()))?;
                intervals += count;
                offset = next_offset;
                if complete {
                    out.flush()
                        .with_context(|| format!("writing {}", dest.display()))?;
                    return Ok(intervals);
                }
                if count == 0 {
                    anyhow::ensure!(
                        Instant::now() < give_up,
                        "the log was still incomplete after {intervals} intervals"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            ControlResponse::Rejected { reason } => anyhow::bail!("{reason}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
}
