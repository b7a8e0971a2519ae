//! Decoding Gatling's `simulation.log` as it grows: pure, incremental, no I/O.
//! Two layouts exist, told apart by the file's first bytes, never configured:
//! tab-separated text lines (Gatling 3.4 to 3.12, [`text`]) and Java
//! `DataOutput` records (3.13 on, [`binary`]). A record the writer has not
//! finished (Gatling writes through an 8 KiB buffer, so a flush can end in the
//! middle of one) waits for the next bytes and is never misread; malformed
//! input stops decoding with a [`LogError`] naming the byte and what was wrong,
//! and the records decoded before it still count.

mod binary;
mod text;

use std::fmt;
use std::sync::Arc;

/// Longest string (binary) or line (text) accepted. Gatling cannot write a
/// string longer than its buffer (8 KiB; configurable up to 3.13) and cuts
/// error messages at 1,000 characters, so anything near this is corruption.
pub(crate) const MAX_FIELD: usize = 1 << 20;

/// The two layouts of `simulation.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Gatling 3.4 to 3.12: one tab-separated line per record.
    Text,
    /// Gatling 3.13 on: big-endian binary records with a string cache.
    Binary,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Binary => "binary",
        })
    }
}

/// The run header: always the first record (after any `ASSERTION` lines of the
/// text layout, which only count towards [`Run::assertions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// The simulation's class, e.g. `example.DemoSimulation`.
    pub(crate) simulation: String,
    /// When the run started, Unix time in ms. The binary layout stores every
    /// later time as an offset from it; records here carry absolute times.
    pub(crate) start_ms: i64,
    /// The Gatling version that wrote the file, e.g. `3.15.1`.
    pub(crate) gatling_version: String,
    /// The run description (`-rd`), empty when none was given.
    pub(crate) description: String,
    /// Scenario names in the binary header (user records refer to them by
    /// index); empty for the text layout, whose user records name theirs.
    pub(crate) scenarios: Vec<Arc<str>>,
    /// How many assertions the simulation declared (their content is skipped).
    pub(crate) assertions: usize,
}

/// What a whole `simulation.log` holds, decoded as a run decodes it: for
/// tools and tests that hold a run's counts against Gatling's own file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogCounts {
    /// Request records.
    pub requests: u64,
    /// Of those, KO.
    pub ko: u64,
    /// Requests Gatling could not build (`ERROR` records): bfgg counts each
    /// as a failed request without a time.
    pub errors: u64,
    /// Virtual users started.
    pub users: u64,
}

/// Counts the records of the `simulation.log` at `path` (either layout);
/// fails on a malformed or cut file.
pub fn count_file(path: &std::path::Path) -> anyhow::Result<LogCounts> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mut decoder = Decoder::new();
    let mut records = Vec::new();
    decoder
        .feed(&bytes, &mut records)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    anyhow::ensure!(
        decoder.pending() == 0,
        "{} ends in the middle of a record ({} bytes)",
        path.display(),
        decoder.pending()
    );
    let mut counts = LogCounts::default();
    for record in records {
        match record {
            Record::Request(r) => {
                counts.requests += 1;
                counts.ko += u64::from(!r.ok);
            }
            Record::Error { .. } => counts.errors += 1,
            Record::User { start: true, .. } => counts.users += 1,
            _ => {}
        }
    }
    Ok(counts)
}

/// One request (or a check-only pseudo-request) as Gatling logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The enclosing groups, outermost first; empty outside any group.
    pub(crate) groups: Vec<Arc<str>>,
    /// The request's name (`http("name")`).
    pub(crate) name: Arc<str>,
    /// When it was sent, Unix ms.
    pub(crate) start_ms: i64,
    /// When its response ended, Unix ms.
    pub(crate) end_ms: i64,
    /// OK (true) or KO.
    pub(crate) ok: bool,
    /// Why it failed (for a KO), trimmed; `None` when Gatling logged none.
    pub(crate) message: Option<Arc<str>>,
}

/// The end of a `group(...)` block for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    /// The group and its parents, outermost first (the last one ended).
    pub(crate) groups: Vec<Arc<str>>,
    /// When the user entered it, Unix ms.
    pub(crate) start_ms: i64,
    /// When the user left it, Unix ms.
    pub(crate) end_ms: i64,
    /// Sum of the response times of the requests inside, ms.
    pub(crate) cumulated_response_time_ms: i64,
    /// OK when every request inside was.
    pub(crate) ok: bool,
}

/// One record of `simulation.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// The header (exactly once, first).
    Run(Run),
    /// A virtual user started or ended.
    User {
        /// Its scenario's name.
        scenario: Arc<str>,
        /// Started (true) or ended.
        start: bool,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// A request.
    Request(Request),
    /// A group block ended.
    Group(Group),
    /// A request Gatling could not even build (e.g. an undefined session
    /// attribute): no request was sent, so this is not a [`Record::Request`].
    Error {
        /// Gatling's message, `"<request name>: <error>"`, trimmed.
        message: Arc<str>,
        /// When, Unix ms.
        at_ms: i64,
    },
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulation.log byte {offset} (record {record}): {kind}")]
pub(crate) struct LogError {
    /// Where the offending record starts in the file (its first byte).
    pub(crate) offset: u64,
    /// The offending record's position, 0 for the first.
    pub(crate) record: u64,
    /// What was wrong.
    pub(crate) kind: LogErrorKind,
}

/// What was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LogErrorKind {
    /// Neither a text (`RUN`/`ASSERTION` line) nor a binary (byte 0) start.
    #[error("not a Gatling simulation.log: it starts with {0:?}")]
    UnknownFormat(String),
    /// The first record is not the run header, or a second one came.
    #[error("{0}")]
    RunHeader(&'static str),
    /// A binary record header byte other than 0 to 4.
    #[error("unknown binary record header {0}")]
    UnknownHeader(u8),
    /// A text line starting with something other than a record type.
    #[error("unknown text record type {0:?}")]
    UnknownRecord(String),
    /// A length or count outside what Gatling writes.
    #[error("{what} {value} is out of range")]
    OutOfRange { what: &'static str, value: i64 },
    /// A Java string coder other than 0 (Latin-1) or 1 (UTF-16).
    #[error("string coder {0} (expected 0 for Latin-1 or 1 for UTF-16)")]
    Coder(u8),
    /// A boolean byte other than 0 or 1.
    #[error("{what} byte is {value} (expected 0 or 1)")]
    Boolean { what: &'static str, value: u8 },
    /// A string cache index that is neither the next new entry nor a
    /// reference to an existing one.
    #[error("string cache index {index}: {entries} entries so far, so a new one must be {next} and a reference -1 to -{entries}", next = entries + 1)]
    CacheIndex { index: i32, entries: usize },
    /// A user record's scenario index beyond the header's list.
    #[error("scenario index {index} but the run header lists {count}")]
    Scenario { index: i32, count: usize },
    /// A text record with the wrong number of tab-separated fields.
    #[error("{record} line has {found} fields, expected {expected}")]
    FieldCount {
        record: &'static str,
        found: usize,
        expected: usize,
    },
    /// A text field that should be a number, `OK`/`KO` or `START`/`END`.
    #[error("{field} is {value:?}, expected {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A text line without its newline after [`MAX_FIELD`] bytes.
    #[error("line longer than {MAX_FIELD} bytes")]
    LineTooLong,
}

/// A stop inside one record: out of bytes (wait) or broken (fail).
#[derive(Debug)]
enum Stop {
    Incomplete,
    Bad(LogErrorKind),
}

impl From<LogErrorKind> for Stop {
    fn from(kind: LogErrorKind) -> Self {
        Stop::Bad(kind)
    }
}

/// What one format's decoder did with a buffer.
struct Step {
    /// Bytes of the complete records it decoded.
    used: usize,
    /// Records decoded.
    records: u64,
    /// A broken record right after them.
    error: Option<LogErrorKind>,
}

enum State {
    /// Not enough bytes yet to tell the format.
    Detecting,
    Text(text::Text),
    Binary(binary::Binary),
    /// Decoding stopped for good.
    Failed(LogError),
}

/// Incremental decoder of one `simulation.log`, fed its bytes in order.
///
/// ```text
/// let mut decoder = Decoder::new();
/// let mut records = Vec::new();
/// decoder.feed(&bytes_read_so_far, &mut records)?; // again with each new read
/// ```
pub(crate) struct Decoder {
    /// Bytes not decoded yet: the start of an incomplete record.
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    offset: u64,
    /// Records decoded so far.
    records: u64,
    /// Known once the first bytes have told it (kept after a failure).
    format: Option<Format>,
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a file.
    pub(crate) fn new() -> Self {
        Self {
            pending: Vec::new(),
            offset: 0,
            records: 0,
            format: None,
            state: State::Detecting,
        }
    }

    /// Takes the next bytes of the file (any split: a record may start in one
    /// call and end in a later one). Appends every record completed by them to
    /// `out` and keeps the bytes of an incomplete last record for the next
    /// call. On malformed input returns the error, having still appended the
    /// records before it; every later call returns the same error and decodes
    /// nothing.
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<Record>) -> Result<(), LogError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.pending.extend_from_slice(bytes);
        if let State::Detecting = self.state {
            let format = match detect(&self.pending) {
                Ok(None) => return Ok(()),
                Ok(Some(format)) => format,
                Err(kind) => return Err(self.fail(kind)),
            };
            self.format = Some(format);
            self.state = match format {
                Format::Text => State::Text(text::Text::default()),
                Format::Binary => State::Binary(binary::Binary::default()),
            };
        }
        let step = match &mut self.state {
            State::Text(t) => t.decode(&self.pending, out),
            State::Binary(b) => b.decode(&self.pending, out),
            // Both handled above.
            State::Detecting | State::Failed(_) => return Ok(()),
        };
        self.pending.drain(..step.used);
        self.offset += step.used as u64;
        self.records += step.records;
        match step.error {
            Some(kind) => Err(self.fail(kind)),
            None => Ok(()),
        }
    }

    /// The layout, once the first bytes have told it.
    pub(crate) fn format(&self) -> Option<Format> {
        self.format
    }

    /// Bytes held back: the start of a record not complete yet. Non-zero
    /// after the writer has exited means the file was cut short (Gatling was
    /// killed before it flushed).
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes of the file decoded into records so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.offset
    }

    /// Records decoded so far.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    fn fail(&mut self, kind: LogErrorKind) -> LogError {
        let e = LogError {
            offset: self.offset,
            record: self.records,
            kind,
        };
        self.state = State::Failed(e.clone());
        self.pending = Vec::new();
        e
    }
}

/// Tells the layout from the first bytes: `Ok(None)` until there are enough.
fn detect(buf: &[u8]) -> Result<Option<Format>, LogErrorKind> {
    // The binary run header's record byte is 0; a text file starts with its
    // assertions, if any, then the run line.
    const TEXT_STARTS: [&[u8]; 2] = [b"RUN\t", b"ASSERTION\t"];
    match buf.first() {
        None => Ok(None),
        Some(0) => Ok(Some(Format::Binary)),
        Some(_) if TEXT_STARTS.iter().any(|s| buf.starts_with(s)) => Ok(Some(Format::Text)),
        Some(_) if TEXT_STARTS.iter().any(|s| s.starts_with(buf)) => Ok(None),
        Some(_) => {
            let head = &buf[..buf.len().min(16)];
            Err(LogErrorKind::UnknownFormat(
                String::from_utf8_lossy(head).into_owned(),
            ))
        }
    }
}

/// Gatling's message convention: blank means none; surrounding spaces (the
/// text layout writes a lone space for "none", error records end in one) are
/// not part of it.
fn message(s: &Arc<str>) -> Option<Arc<str>> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else if t.len() == s.len() {
        Some(s.clone())
    } else {
        Some(Arc::from(t))
    }
}

#[cfg(test)]
mod tests;
