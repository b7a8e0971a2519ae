//! The binary `simulation.log` of Gatling 3.13 on, as written by gatling-core's
//! `LogFileDataWriter` (3.13.0 to 3.15.1 write the same layout). Big-endian
//! Java `DataOutput` values; each record is a header byte and its fields:
//!
//! * Run (0): version, simulation class (strings), start (i64 Unix ms),
//!   description (string), scenario count (i32) and names (strings),
//!   assertion count (i32) and each assertion's bytes (i32 length + bytes).
//! * Request (1): groups (i32 count + cached strings), name (cached string),
//!   start and end (i32 ms after the run start), OK (bool), message (cached
//!   string, empty for none).
//! * User (2): scenario index (i32, into the run header's list), start (bool),
//!   time (i32 offset).
//! * Group (3): groups, start, end (i32 offsets), cumulated response time
//!   (i32 ms), OK (bool).
//! * Error (4): message (cached string), time (i32 offset).
//!
//! A string is an i32 byte length, then (only when the length is not 0) the
//! bytes of Java's internal array and its coder byte: 0 = Latin-1, one byte a
//! character; 1 = UTF-16 in the writing machine's byte order (little-endian
//! on x86-64 and aarch64, which is what this decoder assumes). A cached
//! string is an i32 first: a positive index is a new entry, numbered from 1
//! in order and followed by the string; a negative one, `-k`, repeats entry
//! `k` and nothing follows. Like Gatling's reader, cached strings have tabs
//! and line breaks turned into spaces.

use std::sync::Arc;

use super::{Group, LogErrorKind, MAX_FIELD, Record, Request, Run, Step, Stop, message};

const RUN: u8 = 0;
const REQUEST: u8 = 1;
const USER: u8 = 2;
const GROUP: u8 = 3;
const ERROR: u8 = 4;

/// Most groups nested around one request (Gatling has no limit; real
/// simulations nest a handful).
const MAX_GROUPS: i32 = 1024;
/// Most scenarios or assertions in one run header.
const MAX_COUNT: i32 = 1 << 16;

/// Decoding state carried from record to record.
#[derive(Default)]
pub(super) struct Binary {
    /// The run header's start and scenarios, once read.
    run: Option<(i64, Vec<Arc<str>>)>,
    /// The string cache: entry `k` is `cache[k - 1]`.
    cache: Vec<Arc<str>>,
}

impl Binary {
    /// Decodes the complete records at the front of `buf` into `out`.
    pub(super) fn decode(&mut self, buf: &[u8], out: &mut Vec<Record>) -> Step {
        let mut step = Step {
            used: 0,
            records: 0,
            error: None,
        };
        while step.used < buf.len() {
            let cached = self.cache.len();
            let mut r = Reader {
                buf,
                pos: step.used,
            };
            match self.record(&mut r) {
                Ok(record) => {
                    out.push(record);
                    step.used = r.pos;
                    step.records += 1;
                }
                Err(stop) => {
                    // Entries added by the unfinished record are read again
                    // with it; a broken one must not leave them either.
                    self.cache.truncate(cached);
                    if let Stop::Bad(kind) = stop {
                        step.error = Some(kind);
                    }
                    break;
                }
            }
        }
        step
    }

    fn record(&mut self, r: &mut Reader<'_>) -> Result<Record, Stop> {
        let header = r.u8()?;
        let Some((start, scenarios)) = &self.run else {
            if header != RUN {
                return Err(
                    LogErrorKind::RunHeader("the first record is not the run header").into(),
                );
            }
            let run = run(r)?;
            self.run = Some((run.start_ms, run.scenarios.clone()));
            return Ok(Record::Run(run));
        };
        let start = *start;
        match header {
            RUN => Err(LogErrorKind::RunHeader("a second run header").into()),
            USER => {
                let index = r.i32()?;
                let scenario = usize::try_from(index)
                    .ok()
                    .and_then(|i| scenarios.get(i))
                    .ok_or(LogErrorKind::Scenario {
                        index,
                        count: scenarios.len(),
                    })?
                    .clone();
                let started = r.bool("user start")?;
                let at = r.i32()?;
                Ok(Record::User {
                    scenario,
                    start: started,
                    at_ms: start.saturating_add(i64::from(at)),
                })
            }
            REQUEST => {
                let groups = self.groups(r)?;
                let name = self.cached(r)?;
                let (s, e) = (r.i32()?, r.i32()?);
                let ok = r.bool("request status")?;
                let msg = self.cached(r)?;
                Ok(Record::Request(Request {
                    groups,
                    name,
                    start_ms: start.saturating_add(i64::from(s)),
                    end_ms: start.saturating_add(i64::from(e)),
                    ok,
                    message: message(&msg),
                }))
            }
            GROUP => {
                let groups = self.groups(r)?;
                let (s, e) = (r.i32()?, r.i32()?);
                let cumulated = r.i32()?;
                let ok = r.bool("group status")?;
                Ok(Record::Group(Group {
                    groups,
                    start_ms: start.saturating_add(i64::from(s)),
                    end_ms: start.saturating_add(i64::from(e)),
                    cumulated_response_time_ms: i64::from(cumulated),
                    ok,
                }))
            }
            ERROR => {
                let msg = self.cached(r)?;
                let at = r.i32()?;
                Ok(Record::Error {
                    message: message(&msg).unwrap_or(msg),
                    at_ms: start.saturating_add(i64::from(at)),
                })
            }
            other => Err(LogErrorKind::UnknownHeader(other).into()),
        }
    }

    fn groups(&mut self, r: &mut Reader<'_>) -> Result<Vec<Arc<str>>, Stop> {
        let n = r.count("group count", MAX_GROUPS)?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push(self.cached(r)?);
        }
        Ok(groups)
    }

    fn cached(&mut self, r: &mut Reader<'_>) -> Result<Arc<str>, Stop> {
        let index = r.i32()?;
        let entries = self.cache.len();
        let bad = LogErrorKind::CacheIndex { index, entries };
        if index > 0 {
            // Gatling numbers new entries 1, 2, 3... in the order it writes
            // them; any other positive index means the bytes are not a log.
            if usize::try_from(index).ok() != Some(entries + 1) {
                return Err(bad.into());
            }
            let s = sanitize(r.string()?);
            self.cache.push(Arc::from(s));
            Ok(self.cache[entries].clone())
        } else {
            // 0 is never written (it would be its own reference), and
            // i32::MIN has no positive counterpart.
            let k = index
                .checked_neg()
                .and_then(|k| usize::try_from(k).ok())
                .filter(|k| (1..=entries).contains(k))
                .ok_or(bad)?;
            Ok(self.cache[k - 1].clone())
        }
    }
}

fn run(r: &mut Reader<'_>) -> Result<Run, Stop> {
    let gatling_version = r.string()?;
    let simulation = r.string()?;
    let start_ms = r.i64()?;
    let description = r.string()?;
    let n = r.count("scenario count", MAX_COUNT)?;
    let mut scenarios = Vec::with_capacity(n);
    for _ in 0..n {
        scenarios.push(Arc::from(sanitize(r.string()?)));
    }
    let assertions = r.count("assertion count", MAX_COUNT)?;
    for _ in 0..assertions {
        // Boopickled assertions: bfgg has its own thresholds, so skipped.
        let len = r.length("assertion length")?;
        r.take(len)?;
    }
    Ok(Run {
        simulation,
        start_ms,
        gatling_version,
        description,
        scenarios,
        assertions,
    })
}

/// Tabs and line breaks become spaces, as in Gatling's own reader.
fn sanitize(s: String) -> String {
    if s.contains(['\t', '\n', '\r']) {
        s.replace(['\t', '\n', '\r'], " ")
    } else {
        s
    }
}

/// A cursor over the buffer; running out of bytes is [`Stop::Incomplete`].
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let buf: &'a [u8] = self.buf;
        let end = self.pos.checked_add(n).ok_or(Stop::Incomplete)?;
        let bytes = buf.get(self.pos..end).ok_or(Stop::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, Stop> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, Stop> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes(b.try_into().expect("took 8 bytes")))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, Stop> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(LogErrorKind::Boolean { what, value }.into()),
        }
    }

    /// An i32 count in `0..=max`.
    fn count(&mut self, what: &'static str, max: i32) -> Result<usize, Stop> {
        let n = self.i32()?;
        if !(0..=max).contains(&n) {
            return Err(LogErrorKind::OutOfRange {
                what,
                value: n.into(),
            }
            .into());
        }
        Ok(usize::try_from(n).expect("checked non-negative"))
    }

    /// An i32 byte length in `0..=MAX_FIELD`.
    fn length(&mut self, what: &'static str) -> Result<usize, Stop> {
        let max = i32::try_from(MAX_FIELD).expect("MAX_FIELD fits an i32");
        self.count(what, max)
    }

    fn string(&mut self) -> Result<String, Stop> {
        let len = self.length("string length")?;
        if len == 0 {
            // The writer puts no coder byte after an empty string.
            return Ok(String::new());
        }
        let bytes = self.take(len)?;
        match self.u8()? {
            0 => Ok(latin1(bytes)),
            1 if len % 2 == 0 => Ok(utf16le(bytes)),
            1 => Err(LogErrorKind::OutOfRange {
                what: "UTF-16 string length",
                value: i64::try_from(len).unwrap_or(i64::MAX),
            }
            .into()),
            coder => Err(LogErrorKind::Coder(coder).into()),
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    // Latin-1 maps each byte to the code point of the same value.
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    // Java strings may hold lone surrogates; they become U+FFFD.
    String::from_utf16_lossy(&units)
}
