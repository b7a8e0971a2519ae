//! Interval snapshots of a run on disk, as frames of
//! `u32 big-endian length ++ bfgg_protocol::encode(snapshot)`, appended and
//! flushed once per interval:
//! - an agent's own, kept until a coordinator confirms it has them:
//!   `<data dir>/agent/<run>/intervals.log`;
//! - [`GossipCopies`]: every agent's snapshots as this node heard them on
//!   gossip (for a takeover and for lost agents):
//!   `<data dir>/runs/<run>/gossip/<node>.log`, so memory stays flat however
//!   long the run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bfgg_protocol::{IntervalSnapshot, NodeId};

/// The log of one run.
pub(crate) struct IntervalLog {
    path: PathBuf,
    out: BufWriter<File>,
}

/// Where the log of `run` lives under `data_dir`.
pub(crate) fn dir_of(data_dir: &Path, run: &str) -> PathBuf {
    data_dir.join("agent").join(run)
}

impl IntervalLog {
    /// Creates (truncating) the log file in `dir`.
    pub(crate) fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("intervals.log");
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
    pub(crate) fn append(&mut self, snap: &IntervalSnapshot) -> anyhow::Result<()> {
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

/// Reads every complete frame of the log in `dir` (a torn last frame, from a
/// crash mid-write, is ignored).
pub(crate) fn read_all(dir: &Path) -> anyhow::Result<Vec<IntervalSnapshot>> {
    read_file(&dir.join("intervals.log"))
}

/// Reads every complete frame of the log file `path`.
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

/// Every agent's gossiped snapshots of one run, as this node heard them: one
/// file per agent under `dir`, created on its first snapshot. Each append
/// opens and closes its file, so a run of 1,000 agents holds no 1,000 file
/// descriptors open.
#[derive(Debug)]
pub(crate) struct GossipCopies {
    dir: PathBuf,
    /// Agents with a file.
    kept: BTreeSet<NodeId>,
    /// No more copies: after the first write error (reported once; the
    /// agents' own logs still hold everything) or once discarded.
    closed: bool,
}

impl GossipCopies {
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

    /// Appends `snap`, gossiped by `node`.
    pub(crate) fn keep(&mut self, node: &NodeId, snap: &IntervalSnapshot) {
        if self.closed {
            return;
        }
        if let Err(e) = self.append(node, snap) {
            self.closed = true;
            tracing::warn!(dir = %self.dir.display(), "cannot keep gossiped intervals: {e:#}");
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
            tracing::debug!(dir = %self.dir.display(), "cannot remove gossip copies: {e}");
        }
    }
}

/// The snapshots in a [`GossipCopies`] file, one per interval (the last one
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
            tracing::warn!("gossiped intervals unreadable: {e:#}");
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
        let back = read_all(dir.path()).expect("read_all");
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].by_name["a"].requests, 3);
    }

    #[test]
    fn gossip_copies_keep_one_snapshot_per_interval_on_disk_until_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut copies = GossipCopies::new(dir.path().join("gossip"));
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
        assert!(!dir.path().join("gossip").exists());
        copies.keep(&a, &IntervalSnapshot::new(3));
        assert!(!dir.path().join("gossip").exists(), "nothing kept after");
        assert!(read_copies(None).is_empty());
    }
}
