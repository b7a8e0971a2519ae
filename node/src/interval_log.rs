//! Interval snapshots of a run on disk, as frames of
//! `u32 big-endian length ++ bfgg_protocol::encode(snapshot)`, appended and
//! flushed once per interval, in interval order:
//! - an agent's own, kept until a coordinator confirms it has them:
//!   `<data dir>/agent/<run>/intervals.log`;
//! - a run's merged intervals, part of its results (`intervals.log` in the
//!   results directory), written by [`crate::results`];
//! - [`LiveCopies`]: every agent's live snapshots as its coordinator
//!   received them (for agents lost mid-run):
//!   `<data dir>/runs/<run>/live/<node>.log`, so memory stays flat however
//!   long the run;
//! - an agent's log as fetched by a coordinator:
//!   `<data dir>/runs/<run>/fetched/<node>.log`.
//!
//! Logs are read front to back one frame at a time ([`LogReader`]) or served
//! by byte offset one page at a time ([`read_page`]): neither cost grows with
//! the part of the log already read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bfgg_protocol::{IntervalSnapshot, NodeId};

/// The log of one run.
pub struct IntervalLog {
    path: PathBuf,
    out: BufWriter<File>,
}

/// The name of an interval log file, wherever it is kept.
pub const LOG_FILE: &str = "intervals.log";

/// Where the log of `run` lives under `data_dir`.
pub(crate) fn dir_of(data_dir: &Path, run: &str) -> PathBuf {
    data_dir.join("agent").join(run)
}

impl IntervalLog {
    /// Creates (truncating) the log file `intervals.log` in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Appends one snapshot and flushes it to the OS.
    pub fn append(&mut self, snap: &IntervalSnapshot) -> anyhow::Result<()> {
        self.out.write_all(&frame(snap)?)?;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// One frame: `u32 big-endian length ++ encoded snapshot`.
fn frame(snap: &IntervalSnapshot) -> anyhow::Result<Vec<u8>> {
    let bytes = bfgg_protocol::encode(snap)?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    Ok(frame)
}

/// Reads every complete frame of the log file `path` into memory (a torn
/// last frame, from a crash mid-write, is ignored). For small files (live
/// copies of one agent, tests); runs are read with [`LogReader`].
pub(crate) fn read_file(path: &Path) -> anyhow::Result<Vec<IntervalSnapshot>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            break;
        }
        let snap = bfgg_protocol::decode(&rest[4..4 + len])
            .with_context(|| format!("corrupt frame in {}", path.display()))?;
        out.push(snap);
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Reads a log file front to back, one snapshot at a time (memory: one
/// frame), for merging logs of any length.
pub struct LogReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl LogReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            input: BufReader::new(file),
        })
    }

    /// The next snapshot; `None` at the end (a torn last frame is the end).
    pub fn next_snapshot(&mut self) -> anyhow::Result<Option<IntervalSnapshot>> {
        let mut len = [0u8; 4];
        if !read_full(&mut self.input, &mut len)
            .with_context(|| format!("reading {}", self.path.display()))?
        {
            return Ok(None);
        }
        let len = u32::from_be_bytes(len) as usize;
        anyhow::ensure!(
            len <= bfgg_protocol::mesh::MAX_CONTROL_BYTES,
            "corrupt frame in {}: length {len}",
            self.path.display()
        );
        let mut body = vec![0u8; len];
        if !read_full(&mut self.input, &mut body)
            .with_context(|| format!("reading {}", self.path.display()))?
        {
            return Ok(None);
        }
        let snap = bfgg_protocol::decode(&body)
            .with_context(|| format!("corrupt frame in {}", self.path.display()))?;
        Ok(Some(snap))
    }
}

impl Iterator for LogReader {
    type Item = anyhow::Result<IntervalSnapshot>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_snapshot().transpose()
    }
}

/// Fills `buf`; false if the input ended first (at its start or mid-way).
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A page of a log file: whole frames, as stored.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) frames: Vec<u8>,
    /// Where the next page starts.
    pub(crate) next_offset: u64,
    /// No whole frame follows `next_offset` (yet: the writer may add more).
    pub(crate) at_end: bool,
}

/// Largest page in bytes (a single larger frame still goes alone), well
/// under the control message limit. Each page is held a few times over
/// while it is encoded, compressed and sent (and decoded on the other side),
/// so this bounds the memory finalizing takes on the agent and the
/// coordinator: at 4 MiB a 30-minute soak's nodes peaked ~15-25 MiB above
/// their running size while finalizing (docs/MESH.md).
pub(crate) const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Reads the page of `path` that starts at `offset`: up to `max_frames`
/// whole frames and about `max_bytes` (at least one frame when one is
/// there). Costs the page's size, however long the log.
pub(crate) fn read_page(
    path: &Path,
    offset: u64,
    max_frames: u32,
    max_bytes: usize,
) -> anyhow::Result<Page> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    anyhow::ensure!(
        offset <= size,
        "offset {offset} is past the end of {} ({size} bytes)",
        path.display()
    );
    file.seek(SeekFrom::Start(offset))?;
    let mut input = BufReader::new(file.take(size - offset));
    let mut frames = Vec::new();
    let mut next = offset;
    let mut count = 0u32;
    let at_end = loop {
        if count >= max_frames.max(1) {
            break size - next < 4;
        }
        let mut len = [0u8; 4];
        if !read_full(&mut input, &mut len)? {
            break true;
        }
        let n = u32::from_be_bytes(len) as usize;
        anyhow::ensure!(
            n <= bfgg_protocol::mesh::MAX_CONTROL_BYTES,
            "corrupt frame at byte {next} of {}",
            path.display()
        );
        if count > 0 && frames.len() + 4 + n > max_bytes {
            break false;
        }
        let start = frames.len();
        frames.extend_from_slice(&len);
        frames.resize(start + 4 + n, 0);
        if !read_full(&mut input, &mut frames[start + 4..])? {
            // Torn: the writer is mid-append (or crashed there).
            frames.truncate(start);
            break true;
        }
        next += 4 + n as u64;
        count += 1;
    };
    Ok(Page {
        frames,
        next_offset: next,
        at_end,
    })
}

/// Splits a page received from the network into its frames' bodies,
/// checking that it holds whole frames only.
pub(crate) fn split_frames(mut bytes: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        anyhow::ensure!(bytes.len() >= 4, "a torn frame header in a log page");
        let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        anyhow::ensure!(bytes.len() >= 4 + n, "a torn frame in a log page");
        out.push(&bytes[4..4 + n]);
        bytes = &bytes[4 + n..];
    }
    Ok(out)
}

/// Every agent's live snapshots of one run, as its coordinator received
/// them: one file per agent under `dir`, created on its first snapshot. Each append
/// opens and closes its file, so a run of 1,000 agents holds no 1,000 file
/// descriptors open.
#[derive(Debug)]
pub(crate) struct LiveCopies {
    dir: PathBuf,
    /// Agents with a file.
    kept: BTreeSet<NodeId>,
    /// No more copies: after the first write error (reported once; the
    /// agents' own logs still hold everything) or once discarded.
    closed: bool,
}

impl LiveCopies {
    /// Copies kept under `dir` (nothing is created until the first one).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            kept: BTreeSet::new(),
            closed: false,
        }
    }

    fn path_of(&self, node: &NodeId) -> PathBuf {
        self.dir.join(format!("{}.log", node.0))
    }

    /// Appends `snap`, sent by `node`.
    pub(crate) fn keep(&mut self, node: &NodeId, snap: &IntervalSnapshot) {
        if self.closed {
            return;
        }
        if let Err(e) = self.append(node, snap) {
            self.closed = true;
            tracing::warn!(dir = %self.dir.display(), "cannot keep live intervals: {e:#}");
        }
    }

    fn append(&mut self, node: &NodeId, snap: &IntervalSnapshot) -> anyhow::Result<()> {
        if self.kept.is_empty() {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("creating {}", self.dir.display()))?;
        }
        let path = self.path_of(node);
        let frame = frame(snap)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&frame))
            .with_context(|| format!("appending to {}", path.display()))?;
        self.kept.insert(node.clone());
        Ok(())
    }

    /// Where `node`'s copies are (read them with [`read_copies`], outside
    /// any lock).
    pub(crate) fn file_of(&self, node: &NodeId) -> Option<PathBuf> {
        self.kept.contains(node).then(|| self.path_of(node))
    }

    /// Deletes the copies and keeps no more (the run's results are written).
    pub(crate) fn discard(&mut self) {
        self.closed = true;
        self.kept.clear();
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::debug!(dir = %self.dir.display(), "cannot remove live copies: {e}");
        }
    }
}

/// The snapshots in a [`LiveCopies`] file, one per interval (the last one
/// heard wins), in order; none if it cannot be read.
pub(crate) fn read_copies(path: Option<&Path>) -> Vec<IntervalSnapshot> {
    let Some(path) = path else {
        return Vec::new();
    };
    match read_file(path) {
        Ok(snaps) => {
            let by_index: BTreeMap<u32, IntervalSnapshot> =
                snaps.into_iter().map(|s| (s.index, s)).collect();
            by_index.into_values().collect()
        }
        Err(e) => {
            tracing::warn!("live intervals unreadable: {e:#}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_survive_the_round_trip_and_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = IntervalLog::create(dir.path()).expect("create");
        for i in 0..3 {
            let mut s = IntervalSnapshot::new(i);
            s.by_name.entry("a".into()).or_default().requests = u64::from(i) + 1;
            log.append(&s).expect("append");
        }
        drop(log);
        // A crash mid-frame leaves a partial frame at the end.
        let path = dir.path().join("intervals.log");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[0, 0, 0, 50, 1, 2]);
        std::fs::write(&path, bytes).expect("write");
        let back = read_file(&dir.path().join(LOG_FILE)).expect("read_file");
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].by_name["a"].requests, 3);
    }

    #[test]
    fn live_copies_keep_one_snapshot_per_interval_on_disk_until_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut copies = LiveCopies::new(dir.path().join("live"));
        let a = NodeId("a".into());
        let b = NodeId("b".into());
        assert_eq!(copies.file_of(&a), None);
        for (i, n) in [(0, 1), (1, 2), (1, 3), (2, 4)] {
            let mut s = IntervalSnapshot::new(i);
            s.by_name.entry("x".into()).or_default().requests = n;
            copies.keep(&a, &s);
        }
        copies.keep(&b, &IntervalSnapshot::new(0));
        let back = read_copies(copies.file_of(&a).as_deref());
        let got: Vec<(u32, u64)> = back
            .iter()
            .map(|s| (s.index, s.by_name["x"].requests))
            .collect();
        // Interval 1 was heard twice: the last copy wins.
        assert_eq!(got, [(0, 1), (1, 3), (2, 4)]);
        assert_eq!(read_copies(copies.file_of(&b).as_deref()).len(), 1);
        copies.discard();
        assert!(!dir.path().join("live").exists());
        copies.keep(&a, &IntervalSnapshot::new(3));
        assert!(!dir.path().join("live").exists(), "nothing kept after");
        assert!(read_copies(None).is_empty());
    }

    fn log_of(dir: &Path, n: u32) -> PathBuf {
        let mut log = IntervalLog::create(dir).expect("create");
        for i in 0..n {
            let mut s = IntervalSnapshot::new(i);
            s.by_name.entry("a".into()).or_default().requests = u64::from(i);
            log.append(&s).expect("append");
        }
        dir.join(LOG_FILE)
    }

    fn indices(frames: &[u8]) -> Vec<u32> {
        split_frames(frames)
            .expect("whole frames")
            .into_iter()
            .map(|f| {
                bfgg_protocol::decode::<IntervalSnapshot>(f)
                    .expect("decode")
                    .index
            })
            .collect()
    }

    #[test]
    fn pages_by_offset_cover_a_long_log_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Longer than any page, and than the old 200-interval clamp.
        let path = log_of(dir.path(), 1_000);
        let mut offset = 0;
        let mut seen = Vec::new();
        loop {
            let page = read_page(&path, offset, 7, MAX_PAGE_BYTES).expect("page");
            assert!(indices(&page.frames).len() <= 7);
            seen.extend(indices(&page.frames));
            assert_eq!(page.next_offset, offset + page.frames.len() as u64);
            offset = page.next_offset;
            if page.at_end {
                break;
            }
        }
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>());
        assert_eq!(offset, std::fs::metadata(&path).expect("meta").len());
        // A byte limit cuts pages too, but never below one frame.
        let page = read_page(&path, 0, u32::MAX, 1).expect("page");
        assert_eq!(indices(&page.frames), [0]);
        assert!(!page.at_end);
        // Past the end is refused; at the end is an empty last page.
        let end = std::fs::metadata(&path).expect("meta").len();
        assert!(read_page(&path, end + 1, 10, MAX_PAGE_BYTES).is_err());
        let last = read_page(&path, end, 10, MAX_PAGE_BYTES).expect("page");
        assert!(last.frames.is_empty() && last.at_end);
    }

    #[test]
    fn a_page_stops_before_a_frame_still_being_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = log_of(dir.path(), 3);
        let whole = std::fs::metadata(&path).expect("meta").len();
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[0, 0, 0, 9, 1, 2]);
        std::fs::write(&path, bytes).expect("write");
        let page = read_page(&path, 0, 100, MAX_PAGE_BYTES).expect("page");
        assert_eq!(indices(&page.frames), [0, 1, 2]);
        assert_eq!(
            page.next_offset, whole,
            "the next page starts at the torn frame"
        );
        assert!(page.at_end);
        let all: Vec<u32> = LogReader::open(&path)
            .expect("open")
            .map(|s| s.expect("snapshot").index)
            .collect();
        assert_eq!(all, [0, 1, 2]);
    }

    #[test]
    fn torn_or_corrupt_pages_from_the_network_are_refused() {
        assert!(split_frames(&[0, 0, 0, 5, 1]).is_err());
        assert!(split_frames(&[0, 0]).is_err());
        assert_eq!(split_frames(&[]).expect("empty").len(), 0);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE);
        std::fs::write(&path, [0, 0, 0, 3, 0xff, 0xff, 0xff]).expect("write");
        let err = LogReader::open(&path)
            .expect("open")
            .next()
            .expect("an item");
        assert!(format!("{:#}", err.unwrap_err()).contains("corrupt frame"));
    }
}
