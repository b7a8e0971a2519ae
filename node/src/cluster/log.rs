//! An agent's own interval snapshots of a run, on disk, kept until a
//! coordinator confirms it has them: `<data dir>/agent/<run>/intervals.log`,
//! frames of `u32 big-endian length ++ bfgg_protocol::encode(snapshot)`,
//! appended and flushed once per interval.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bfgg_protocol::IntervalSnapshot;

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
        let bytes = bfgg_protocol::encode(snap)?;
        self.out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        self.out.write_all(&bytes)?;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads every complete frame of the log in `dir` (a torn last frame, from a
/// crash mid-write, is ignored).
pub(crate) fn read_all(dir: &Path) -> anyhow::Result<Vec<IntervalSnapshot>> {
    let path = dir.join("intervals.log");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
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
}
