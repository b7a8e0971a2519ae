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
        LogKind::Merged | LogKind::Agents => {
            let dir = results_dir(&ctx.data_dir, run);
            let file = match log {
                LogKind::Agents => crate::results::AGENTS_FILE,
                _ => LOG_FILE,
            };
            (dir.join(file), dir.join("summary.json").is_file())
        }
    };
    if !path.is_file() {
        return ControlResponse::Rejected {
            reason: match log {
                LogKind::Own => format!("no measurements of run {run} here"),
                LogKind::Merged => format!("run {run} has no results here (yet)"),
                LogKind::Agents => format!("run {run} has no per-agent curves here"),
            },
        };
    }
    if log == LogKind::Agents {
        return match read_lines_page(&path, offset, MAX_PAGE_BYTES) {
            Ok((bytes, at_end)) => ControlResponse::LogPage {
                next_offset: offset + bytes.len() as u64,
                frames: bytes,
                complete: done && at_end,
            },
            Err(e) => ControlResponse::Rejected {
                reason: format!("{e:#}"),
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

/// Whole lines of the text file `path` from byte `offset`, at most
/// `max_bytes` (a longer first line is returned whole), and whether they
/// reach its end.
fn read_lines_page(path: &Path, offset: u64, max_bytes: usize) -> anyhow::Result<(Vec<u8>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(offset.min(len)))?;
    let mut buf = Vec::new();
    f.take(max_bytes as u64).read_to_end(&mut buf)?;
    let at_end = offset + buf.len() as u64 >= len;
    if !at_end {
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => buf.truncate(i + 1),
            None => anyhow::bail!("a line of {} longer than {max_bytes} bytes", path.display()),
        }
    }
    Ok((buf, at_end))
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
                let count = if log == LogKind::Agents {
                    frames.iter().filter(|&&b| b == b'\n').count() as u64
                } else {
                    interval_log::split_frames(&frames)?.len() as u64
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_file_pages_in_whole_lines_and_reassembles_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.csv");
        let text: String = (0..5_000)
            .map(|i| format!("{i},agent-{},{},0,{}\n", i % 7, i * 3, i % 11))
            .collect();
        std::fs::write(&path, &text).unwrap();
        // Pages of at most 1 KiB over a ~100 KiB file: many pages, each of
        // whole lines, together the file.
        let mut offset = 0u64;
        let mut copy = Vec::new();
        let mut pages = 0;
        loop {
            let (bytes, at_end) = read_lines_page(&path, offset, 1024).unwrap();
            assert!(bytes.len() <= 1024);
            assert!(at_end || bytes.ends_with(b"\n"), "whole lines");
            offset += bytes.len() as u64;
            copy.extend(bytes);
            pages += 1;
            if at_end {
                break;
            }
        }
        assert!(pages > 50, "{pages}");
        assert_eq!(copy, text.as_bytes());
        // A line longer than a page is an error, not a cut line.
        std::fs::write(&path, format!("{}\nx\n", "y".repeat(2048))).unwrap();
        assert!(read_lines_page(&path, 0, 1024).is_err());
    }
}
