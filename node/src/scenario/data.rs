//! CSV data pools: loading, partitioning across nodes and workers, and cursors.
//!
//! Rows are read once at load time into an `Arc` shared by every partition and
//! cursor; nothing here copies rows per worker or allocates per draw. This
//! module hands out row indices only; substituting values into requests is
//! [`crate::scenario::context`]'s job.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a pool hands out rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In file order, wrapping around at the end.
    Circular,
    /// Uniformly at random, with replacement.
    Random,
    /// Each row once across the whole run (partitioned across workers); then
    /// [`OnExhausted`] applies.
    Unique,
}

/// What happens when a [`Strategy::Unique`] pool has no rows left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExhausted {
    /// The run stops gracefully ("data pool users exhausted after N rows").
    Stop,
    /// The iteration is skipped and counted as `ErrorKind::DataExhausted(pool)`.
    Skip,
}

/// A loaded data pool, or one partition of it.
///
/// Cloning and [`PoolSpec::partition`] are cheap: the rows are shared. A
/// partition sees the rows `i` of [`PoolSpec::rows`] with
/// `i >= offset && (i - offset) % stride == 0`.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// The pool's name (`[data.users]` → `users`).
    pub name: String,
    /// The CSV file it came from (empty when built in memory).
    pub path: PathBuf,
    /// Header names, in file order.
    pub columns: Vec<String>,
    /// Every row of the file (not just this partition's), each as wide as
    /// `columns`. Shared, never copied per worker.
    pub rows: Arc<Vec<Vec<String>>>,
    /// How rows are handed out.
    pub strategy: Strategy,
    /// What a unique pool does when it runs out.
    pub on_exhausted: OnExhausted,
    /// First row index of this partition.
    offset: usize,
    /// Distance between consecutive row indices of this partition (>= 1).
    stride: usize,
}

/// Why a data file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read data file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The CSV syntax is broken (or the text is not UTF-8).
    #[error("{}:{line}: invalid csv", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line where the problem was found.
        line: u64,
        /// The parser's error.
        #[source]
        source: csv::Error,
    },
    /// The file has no header line.
    #[error("{}: data file is empty (expected a header line)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A row's width differs from the header's.
    #[error("{}:{line}: row has {found} fields, the header has {expected}", path.display())]
    RowWidth {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// Number of header columns.
        expected: usize,
        /// Number of fields in the row.
        found: usize,
    },
    /// Two header columns have the same name.
    #[error("{}: duplicate column \"{column}\"", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        column: String,
    },
}

impl PoolSpec {
    /// Reads the CSV file at `path`; its first line is the header.
    ///
    /// Fields may be quoted (`"a, b"`, `""` for a quote); header names are
    /// trimmed, values are kept verbatim, and blank lines are skipped. A header
    /// without rows is a valid, empty pool (the loader decides whether that is
    /// acceptable).
    pub fn load(
        name: &str,
        path: &Path,
        strategy: Strategy,
        on_exhausted: OnExhausted,
    ) -> Result<PoolSpec, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Read {
            path: path.to_owned(),
            source,
        })?;
        // The csv crate's own line numbers skip blank lines and miscount CRLF
        // files, so lines are computed from record byte offsets instead.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::Headers)
            .from_reader(bytes.as_slice());
        let csv_error = |source: csv::Error, fallback: &csv::Position| DataError::Csv {
            path: path.to_owned(),
            line: line_of(&bytes, source.position().unwrap_or(fallback).byte()),
            source,
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(header) => header.iter().map(str::to_owned).collect(),
            Err(e) => return Err(csv_error(e, reader.position())),
        };
        if columns.is_empty() || columns.iter().all(String::is_empty) {
            return Err(DataError::Empty {
                path: path.to_owned(),
            });
        }
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(csv_error(e, reader.position())),
            }
            if record.len() != columns.len() {
                let start = record.position().unwrap_or(reader.position());
                return Err(DataError::RowWidth {
                    path: path.to_owned(),
                    line: line_of(&bytes, start.byte()),
                    expected: columns.len(),
                    found: record.len(),
                });
            }
            rows.push(record.iter().map(str::to_owned).collect());
        }
        Self::build(name, path, columns, rows, strategy, on_exhausted)
    }

    /// A pool from rows already in memory (tests, generated data). `path` is
    /// empty; row `i` is reported as line `i + 2`, as if read from a file.
    pub fn from_rows(
        name: &str,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        strategy: Strategy,
        on_exhausted: OnExhausted,
    ) -> Result<PoolSpec, DataError> {
        let path = Path::new("");
        if columns.is_empty() {
            return Err(DataError::Empty {
                path: path.to_owned(),
            });
        }
        if let Some((i, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, row)| row.len() != columns.len())
        {
            return Err(DataError::RowWidth {
                path: path.to_owned(),
                line: i as u64 + 2,
                expected: columns.len(),
                found: row.len(),
            });
        }
        Self::build(name, path, columns, rows, strategy, on_exhausted)
    }

    /// Checks column names and assembles an unpartitioned pool.
    fn build(
        name: &str,
        path: &Path,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        strategy: Strategy,
        on_exhausted: OnExhausted,
    ) -> Result<PoolSpec, DataError> {
        let mut seen = HashSet::new();
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(DataError::DuplicateColumn {
                path: path.to_owned(),
                column: dup.clone(),
            });
        }
        Ok(PoolSpec {
            name: name.to_owned(),
            path: path.to_owned(),
            columns,
            rows: Arc::new(rows),
            strategy,
            on_exhausted,
            offset: 0,
            stride: 1,
        })
    }

    /// Position of column `name` in each row, if the header has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Number of rows in this (possibly partitioned) pool.
    pub fn len(&self) -> usize {
        let total = self.rows.len();
        if self.offset >= total {
            0
        } else {
            (total - self.offset).div_ceil(self.stride)
        }
    }

    /// True when this (possibly partitioned) pool has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index into [`PoolSpec::rows`] of this partition's `nth` row
    /// (`nth < self.len()`).
    pub fn row_index(&self, nth: usize) -> usize {
        self.offset + nth * self.stride
    }

    /// The value at `row` (an index into [`PoolSpec::rows`]) and `column`.
    pub fn value(&self, row: usize, column: usize) -> Option<&str> {
        self.rows.get(row)?.get(column).map(String::as_str)
    }

    /// Share `index` of `count` (`index < count`): this partition's rows at
    /// positions `index, index + count, …`. Over `index in 0..count` the shares
    /// are disjoint and together hold every row of `self` exactly once; this
    /// holds again when a share is partitioned (a node's share split per
    /// worker). Shares may be empty when `count > self.len()`. A `count` of 0
    /// is treated as 1.
    pub fn partition(&self, index: usize, count: usize) -> PoolSpec {
        let count = count.max(1);
        debug_assert!(index < count, "partition index {index} of {count}");
        PoolSpec {
            offset: self
                .offset
                .saturating_add(index.saturating_mul(self.stride)),
            stride: self.stride.saturating_mul(count),
            ..self.clone()
        }
    }
}

/// The 1-based line of the record the csv reader started reading at `byte`.
/// The reader reports where the previous record ended, so blank lines and line
/// terminators are skipped first.
fn line_of(bytes: &[u8], byte: u64) -> u64 {
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
        start += 1;
    }
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

/// One worker's position in one pool. Owns no randomness: the caller passes
/// its rng to [`PoolCursor::next_row`].
#[derive(Debug, Clone)]
pub struct PoolCursor {
    spec: PoolSpec,
    /// Next position within the partition (circular and unique).
    next: usize,
    /// Rows handed out so far.
    used: u64,
}

impl PoolCursor {
    /// A cursor over `spec`. `start` is where a circular pool begins (modulo
    /// its length), so workers don't all begin at row 0; other strategies
    /// ignore it.
    pub fn new(spec: PoolSpec, start: usize) -> PoolCursor {
        let next = match spec.strategy {
            Strategy::Circular if !spec.is_empty() => start % spec.len(),
            _ => 0,
        };
        PoolCursor {
            spec,
            next,
            used: 0,
        }
    }

    /// The next row, as an index into `spec().rows`.
    ///
    /// Circular wraps around in order, Random draws uniformly, Unique hands out
    /// each row of its partition once. `None` means exhausted: a unique pool
    /// that handed out every row, or an empty pool of any strategy.
    pub fn next_row<R: rand::Rng + ?Sized>(&mut self, rng: &mut R) -> Option<usize> {
        let len = self.spec.len();
        if len == 0 {
            return None;
        }
        let nth = match self.spec.strategy {
            Strategy::Circular => {
                let nth = self.next;
                self.next = if nth + 1 == len { 0 } else { nth + 1 };
                nth
            }
            Strategy::Random => rng.random_range(0..len),
            Strategy::Unique => {
                let nth = self.next;
                if nth >= len {
                    return None;
                }
                self.next += 1;
                nth
            }
        };
        self.used += 1;
        Some(self.spec.row_index(nth))
    }

    /// The pool (partition) this cursor walks.
    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// Rows handed out so far.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests;
