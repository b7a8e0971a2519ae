//! Decoding JMeter's CSV results file (`-l`) as it grows: pure, incremental,
//! no I/O. bfgg fixes the file's format with [`FORCED_PROPERTIES`] (passed
//! as `-J` after the user's), and still reads columns by the names of the
//! header line, never by position: a column JMeter adds or moves cannot
//! mislabel a value, and a file whose header lacks a column bfgg needs is
//! refused naming it ([`ResultsError`]). Rows go through the strict,
//! bounded reader of [`csv`]; a row that breaks (its quoting, a field count
//! unlike the header's, a value that is not one) is counted and skipped,
//! and the rows after it still count. A failed sample's error is grouped
//! like the native engine's ([`Record::error`]).

mod csv;

use std::path::Path;
use std::sync::Arc;

use bfgg_protocol::ErrorKind;

use crate::engine::cut_message;
use crate::engine::external::Interner;
use csv::{Next, Rows};

/// JMeter properties bfgg passes as `-J` so that the results file has the
/// columns [`Decoder`] reads: CSV with a header, times in ms since the
/// epoch, each sample's start as its time stamp, one row per sample (no
/// sub-results), and only the columns below. Property names as in JMeter
/// 5.6.3's `bin/jmeter.properties`.
pub const FORCED_PROPERTIES: &[(&str, &str)] = &[
    ("jmeter.save.saveservice.output_format", "csv"),
    ("jmeter.save.saveservice.print_field_names", "true"),
    ("jmeter.save.saveservice.timestamp_format", "ms"),
    ("jmeter.save.saveservice.default_delimiter", ","),
    ("sampleresult.timestamp.start", "true"),
    ("jmeter.save.saveservice.label", "true"),
    ("jmeter.save.saveservice.time", "true"),
    ("jmeter.save.saveservice.successful", "true"),
    ("jmeter.save.saveservice.response_code", "true"),
    ("jmeter.save.saveservice.response_message", "true"),
    ("jmeter.save.saveservice.thread_name", "true"),
    (
        "jmeter.save.saveservice.assertion_results_failure_message",
        "true",
    ),
    ("jmeter.save.saveservice.bytes", "true"),
    ("jmeter.save.saveservice.sent_bytes", "true"),
    ("jmeter.save.saveservice.thread_counts", "true"),
    ("jmeter.save.saveservice.latency", "true"),
    ("jmeter.save.saveservice.connect_time", "true"),
    ("jmeter.save.saveservice.idle_time", "true"),
    ("jmeter.save.saveservice.url", "false"),
    ("jmeter.save.saveservice.data_type", "false"),
    ("jmeter.save.saveservice.subresults", "false"),
    ("jmeter.save.saveservice.encoding", "false"),
    ("jmeter.save.saveservice.sample_count", "false"),
    ("jmeter.save.saveservice.hostname", "false"),
    ("jmeter.save.saveservice.filename", "false"),
];

/// [`FORCED_PROPERTIES`] as JMeter arguments (`-Jname=value`).
pub fn forced_arguments() -> impl Iterator<Item = String> {
    FORCED_PROPERTIES
        .iter()
        .map(|(name, value)| format!("-J{name}={value}"))
}

/// The columns a record is made of, each with the property that makes
/// JMeter write it; [`col`] names their positions here.
const REQUIRED: [(&str, &str); 13] = [
    ("timeStamp", "jmeter.save.saveservice.timestamp_format=ms"),
    ("elapsed", "jmeter.save.saveservice.time=true"),
    ("label", "jmeter.save.saveservice.label=true"),
    ("responseCode", "jmeter.save.saveservice.response_code=true"),
    (
        "responseMessage",
        "jmeter.save.saveservice.response_message=true",
    ),
    ("success", "jmeter.save.saveservice.successful=true"),
    (
        "failureMessage",
        "jmeter.save.saveservice.assertion_results_failure_message=true",
    ),
    ("bytes", "jmeter.save.saveservice.bytes=true"),
    ("sentBytes", "jmeter.save.saveservice.sent_bytes=true"),
    ("grpThreads", "jmeter.save.saveservice.thread_counts=true"),
    ("allThreads", "jmeter.save.saveservice.thread_counts=true"),
    ("Latency", "jmeter.save.saveservice.latency=true"),
    ("Connect", "jmeter.save.saveservice.connect_time=true"),
];

/// Positions in [`REQUIRED`].
mod col {
    pub(super) const TIME_STAMP: usize = 0;
    pub(super) const ELAPSED: usize = 1;
    pub(super) const LABEL: usize = 2;
    pub(super) const CODE: usize = 3;
    pub(super) const MESSAGE: usize = 4;
    pub(super) const SUCCESS: usize = 5;
    pub(super) const FAILURE: usize = 6;
    pub(super) const BYTES: usize = 7;
    pub(super) const SENT_BYTES: usize = 8;
    pub(super) const GROUP_THREADS: usize = 9;
    pub(super) const ALL_THREADS: usize = 10;
    pub(super) const LATENCY: usize = 11;
    pub(super) const CONNECT: usize = 12;
}

/// Longest assertion or engine message kept in an error, in characters.
const MAX_MESSAGE: usize = 200;
/// Longest transport error message kept (as the native engine's).
const MAX_TRANSPORT_MESSAGE: usize = 80;

/// Why a results file cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultsError {
    /// The first line is not a header (or not readable).
    #[error(
        "JMeter's results file has no header line (it starts with {0:?}); bfgg reads columns by name and passes -Jjmeter.save.saveservice.print_field_names=true for it"
    )]
    NoHeader(String),
    /// The header lacks columns bfgg needs.
    #[error(
        "JMeter's results file has no column {}: JMeter writes it with {} (bfgg passes these on its command line; this file was written without them)",
        .columns.join(", "),
        .properties.iter().map(|p| format!("-J{p}")).collect::<Vec<_>>().join(" ")
    )]
    MissingColumns {
        /// The columns missing.
        columns: Vec<&'static str>,
        /// The properties that would add them.
        properties: Vec<&'static str>,
    },
}

/// One sample, as JMeter wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the sample started, ms since the epoch.
    pub start_ms: u64,
    /// How long it took, ms (its end is `start_ms + elapsed_ms`).
    pub elapsed_ms: u64,
    /// The sampler's name (its label).
    pub label: Arc<str>,
    /// `200`, or `Non HTTP response code: <exception class>`.
    pub response_code: Arc<str>,
    /// `OK`, or `Non HTTP response message: <exception message>`.
    pub response_message: Arc<str>,
    /// Whether JMeter counted it a success.
    pub success: bool,
    /// The first failed assertion's message; empty without one.
    pub failure_message: Arc<str>,
    /// Bytes received.
    pub bytes: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Threads active in the sample's thread group when it ended.
    pub group_threads: u64,
    /// Threads active in all thread groups when it ended.
    pub all_threads: u64,
    /// Time to the first byte of the response, ms.
    pub latency_ms: u64,
    /// Time to connect, ms (0 on a reused connection).
    pub connect_ms: u64,
}

impl Record {
    /// When the sample ended, ms since the epoch.
    pub fn end_ms(&self) -> u64 {
        self.start_ms.saturating_add(self.elapsed_ms)
    }

    /// Why it failed, for people: the failed assertion's message, else (for
    /// a failure) the response message; `None` for a success.
    pub fn message(&self) -> Option<&str> {
        if !self.failure_message.is_empty() {
            Some(&self.failure_message)
        } else if !self.success {
            Some(&self.response_message)
        } else {
            None
        }
    }

    /// The error a failed sample counts as (`None` for a success), grouped
    /// like the native engine's: a failed assertion is a failed check, an
    /// HTTP status of 400 or more a status, JMeter's `Non HTTP response
    /// code: <exception>` a connect, timeout, TLS or I/O error by its
    /// exception; anything else the engine's message.
    pub fn error(&self) -> Option<ErrorKind> {
        if self.success {
            return None;
        }
        if !self.failure_message.is_empty() {
            return Some(ErrorKind::Check(cut_message(
                &self.failure_message,
                MAX_MESSAGE,
            )));
        }
        let code = &*self.response_code;
        if let Some(exception) = code.strip_prefix("Non HTTP response code: ") {
            let message = self
                .response_message
                .trim_start_matches("Non HTTP response message: ");
            return Some(transport_error(exception, message));
        }
        if let Ok(status) = code.parse::<u16>()
            && status >= 400
        {
            return Some(ErrorKind::Status(status));
        }
        let text = match (code.is_empty(), self.response_message.is_empty()) {
            (true, true) => "failed".to_owned(),
            (true, false) => self.response_message.to_string(),
            (false, true) => code.to_owned(),
            (false, false) => format!("{code} {}", self.response_message),
        };
        Some(ErrorKind::Engine(cut_message(&text, MAX_MESSAGE)))
    }
}

/// The error of a request JMeter got no HTTP response to: `exception` is
/// the Java exception's class, `message` its message.
fn transport_error(exception: &str, message: &str) -> ErrorKind {
    let class = exception.rsplit('.').next().unwrap_or(exception);
    let lower = message.to_ascii_lowercase();
    let connecting = matches!(
        class,
        "ConnectException"
            | "HttpHostConnectException"
            | "ConnectTimeoutException"
            | "UnknownHostException"
            | "NoRouteToHostException"
            | "PortUnreachableException"
    );
    let short = |text: &str| cut_message(text, MAX_TRANSPORT_MESSAGE);
    if lower.contains("connection refused") {
        ErrorKind::ConnectRefused
    } else if class == "ConnectTimeoutException"
        || ((connecting || class == "SocketTimeoutException")
            && lower.contains("connect timed out"))
    {
        ErrorKind::ConnectTimeout
    } else if class == "SocketTimeoutException" {
        ErrorKind::RequestTimeout
    } else if connecting {
        ErrorKind::Connect(short(&format!("{class}: {message}")))
    } else if class.starts_with("SSL") {
        ErrorKind::Tls(short(message))
    } else {
        ErrorKind::Io(short(&format!("{class}: {message}")))
    }
}

/// Where each [`REQUIRED`] column is in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    at: [usize; REQUIRED.len()],
    /// Fields in every row (the header's).
    count: usize,
}

impl Columns {
    /// The columns of the header row now in `rows`.
    fn from_header(rows: &Rows) -> Result<Self, ResultsError> {
        let names: Vec<&[u8]> = (0..rows.len()).map(|i| rows.field(i)).collect();
        let mut at = [0; REQUIRED.len()];
        let (mut columns, mut properties) = (Vec::new(), Vec::new());
        for (slot, (name, property)) in at.iter_mut().zip(REQUIRED) {
            match names.iter().position(|n| *n == name.as_bytes()) {
                Some(i) => *slot = i,
                None => {
                    columns.push(name);
                    if !properties.contains(&property) {
                        properties.push(property);
                    }
                }
            }
        }
        if columns.len() == REQUIRED.len() {
            let first: Vec<String> = names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            return Err(ResultsError::NoHeader(cut_message(&first.join(","), 80)));
        }
        if !columns.is_empty() {
            return Err(ResultsError::MissingColumns {
                columns,
                properties,
            });
        }
        Ok(Columns {
            at,
            count: names.len(),
        })
    }

    /// The record of the row now in `rows`, if its fields are sound.
    fn record(&self, rows: &Rows, strings: &mut Interner) -> Option<Record> {
        if rows.len() != self.count {
            return None;
        }
        let field = |column: usize| rows.field(self.at[column]);
        let number = |column: usize| -> Option<u64> {
            std::str::from_utf8(field(column)).ok()?.parse().ok()
        };
        let mut text = |column: usize| strings.get(&String::from_utf8_lossy(field(column)));
        let success = match field(col::SUCCESS) {
            b"true" => true,
            b"false" => false,
            _ => return None,
        };
        Some(Record {
            start_ms: number(col::TIME_STAMP)?,
            elapsed_ms: number(col::ELAPSED)?,
            label: text(col::LABEL),
            response_code: text(col::CODE),
            response_message: text(col::MESSAGE),
            success,
            failure_message: text(col::FAILURE),
            bytes: number(col::BYTES)?,
            sent_bytes: number(col::SENT_BYTES)?,
            group_threads: number(col::GROUP_THREADS)?,
            all_threads: number(col::ALL_THREADS)?,
            latency_ms: number(col::LATENCY)?,
            connect_ms: number(col::CONNECT)?,
        })
    }
}

/// Incremental decoder of one results file, fed its bytes in order.
///
/// ```text
/// let mut decoder = Decoder::new();
/// let mut records = Vec::new();
/// decoder.feed(&bytes_read_so_far, &mut records)?; // again with each new read
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    rows: Rows,
    /// Known once the header has been read.
    columns: Option<Columns>,
    /// The header was refused: nothing more is decoded.
    failed: Option<ResultsError>,
    strings: Interner,
    records: u64,
    broken: u64,
    overlong: u64,
}

impl Decoder {
    /// A decoder at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the file (any split: a row may start in one
    /// call and end in a later one). Appends every record completed by them
    /// to `out`, counts and skips broken rows, and keeps an unfinished last
    /// row for the next call. Fails only on the header, and then every
    /// later call fails the same way.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Record>) -> Result<(), ResultsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.rows.push(bytes);
        loop {
            let next = self.rows.next();
            let Some(columns) = &self.columns else {
                let header = match next {
                    Next::Wait => return Ok(()),
                    Next::Row => Columns::from_header(&self.rows),
                    Next::Broken | Next::Overlong => {
                        Err(ResultsError::NoHeader("a line that is not CSV".to_owned()))
                    }
                };
                match header {
                    Ok(columns) => self.columns = Some(columns),
                    Err(e) => {
                        self.failed = Some(e.clone());
                        return Err(e);
                    }
                }
                continue;
            };
            match next {
                Next::Wait => return Ok(()),
                Next::Row => match columns.record(&self.rows, &mut self.strings) {
                    Some(record) => {
                        out.push(record);
                        self.records += 1;
                    }
                    None => {
                        self.rows.reject();
                        self.broken += 1;
                    }
                },
                Next::Broken => self.broken += 1,
                Next::Overlong => {
                    self.broken += 1;
                    self.overlong += 1;
                }
            }
        }
    }

    /// Records decoded so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Rows skipped as broken so far (overlong ones included).
    pub fn broken(&self) -> u64 {
        self.broken
    }

    /// Of those, rows longer than the bound.
    pub fn overlong(&self) -> u64 {
        self.overlong
    }

    /// Bytes of a row not finished yet: non-zero once JMeter has exited
    /// means its last row was cut.
    pub fn pending(&self) -> usize {
        self.rows.pending()
    }
}

/// What a whole results file holds, decoded as a run decodes it: for tools
/// and tests that hold a run's counts against JMeter's file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResultsCounts {
    /// Samples.
    pub records: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Rows skipped as broken.
    pub broken: u64,
    /// Bytes of a last row without its line break.
    pub pending: usize,
}

/// Counts the samples of the results file at `path`; fails when it cannot
/// be read or its header is refused.
pub fn count_file(path: &Path) -> anyhow::Result<ResultsCounts> {
    let in_file = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let bytes = std::fs::read(path).map_err(|e| in_file(&e))?;
    let (mut decoder, mut records) = (Decoder::new(), Vec::new());
    decoder
        .feed(&bytes, &mut records)
        .map_err(|e| in_file(&e))?;
    Ok(ResultsCounts {
        records: decoder.records(),
        failed: records.iter().filter(|r| !r.success).count() as u64,
        broken: decoder.broken(),
        pending: decoder.pending(),
    })
}

#[cfg(test)]
mod tests;
