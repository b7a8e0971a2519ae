//! The text `simulation.log` of Gatling 3.4 to 3.12: one line per record
//! (ended by the JVM's line separator, `\n` or `\r\n`), fields separated by
//! tabs, times in Unix ms, as written by 3.12's `LogFileDataWriter`:
//!
//! * `ASSERTION <base64>`: one per assertion, before the run line (counted,
//!   content skipped).
//! * `RUN <class> <simulation id> <start> <description> <version>`; the
//!   description is a single space when there is none.
//! * `USER <scenario> START|END <time>`
//! * `REQUEST <groups> <name> <start> <end> OK|KO <message>`; groups are
//!   comma-separated (empty outside any group), the message a single space
//!   when there is none.
//! * `GROUP <groups> <start> <end> <cumulated response time> OK|KO`
//! * `ERROR <message> <time>`; the message is not sanitized by the writer, so
//!   a tab in it is taken as part of it.
//!
//! Only complete lines are decoded: bytes after the last newline wait. Text is
//! UTF-8 (Gatling's default charset); invalid sequences become U+FFFD rather
//! than failing a run over one odd message.

use std::sync::Arc;

use super::{Group, LogErrorKind, MAX_FIELD, Record, Request, Run, Step, message};
use crate::engine::external::Interner;

/// Decoding state carried from line to line.
#[derive(Default)]
pub(super) struct Text {
    /// The run line has been read.
    run_seen: bool,
    /// `ASSERTION` lines before the run line.
    assertions: usize,
    strings: Interner,
}

impl Text {
    /// Decodes the complete lines at the front of `buf` into `out`.
    pub(super) fn decode(&mut self, buf: &[u8], out: &mut Vec<Record>) -> Step {
        let mut step = Step {
            used: 0,
            records: 0,
            error: None,
        };
        while step.used < buf.len() {
            let rest = &buf[step.used..];
            let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > MAX_FIELD {
                    step.error = Some(LogErrorKind::LineTooLong);
                }
                break;
            };
            let line = &rest[..eol];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match self.line(&String::from_utf8_lossy(line)) {
                Ok(Some(record)) => {
                    out.push(record);
                    step.records += 1;
                }
                // An assertion line: consumed, nothing to report.
                Ok(None) => {}
                Err(kind) => {
                    step.error = Some(kind);
                    break;
                }
            }
            step.used += eol + 1;
        }
        step
    }

    fn line(&mut self, line: &str) -> Result<Option<Record>, LogErrorKind> {
        let fields: Vec<&str> = line.split('\t').collect();
        let kind = fields[0];
        if !self.run_seen {
            return match kind {
                "ASSERTION" => {
                    expect(&fields, "ASSERTION", 2)?;
                    self.assertions += 1;
                    Ok(None)
                }
                "RUN" => {
                    expect(&fields, "RUN", 6)?;
                    let start_ms = number(fields[3], "run start")?;
                    self.run_seen = true;
                    Ok(Some(Record::Run(Run {
                        simulation: fields[1].to_owned(),
                        start_ms,
                        gatling_version: fields[5].trim().to_owned(),
                        description: fields[4].trim().to_owned(),
                        scenarios: Vec::new(),
                        assertions: self.assertions,
                    })))
                }
                _ => Err(LogErrorKind::RunHeader(
                    "the first record is not the run header",
                )),
            };
        }
        let record = match kind {
            "USER" => {
                expect(&fields, "USER", 4)?;
                let start = match fields[2] {
                    "START" => true,
                    "END" => false,
                    other => return Err(field("user event", other, "START or END")),
                };
                Record::User {
                    scenario: self.strings.get(fields[1]),
                    start,
                    at_ms: number(fields[3], "user time")?,
                }
            }
            "REQUEST" => {
                expect(&fields, "REQUEST", 7)?;
                Record::Request(Request {
                    groups: self.groups(fields[1]),
                    name: self.strings.get(fields[2]),
                    start_ms: number(fields[3], "request start")?,
                    end_ms: number(fields[4], "request end")?,
                    ok: status(fields[5], "request status")?,
                    message: message(&self.strings.get(fields[6])),
                })
            }
            "GROUP" => {
                expect(&fields, "GROUP", 6)?;
                Record::Group(Group {
                    groups: self.groups(fields[1]),
                    start_ms: number(fields[2], "group start")?,
                    end_ms: number(fields[3], "group end")?,
                    cumulated_response_time_ms: number(fields[4], "group cumulated time")?,
                    ok: status(fields[5], "group status")?,
                })
            }
            "ERROR" => {
                if fields.len() < 3 {
                    expect(&fields, "ERROR", 3)?;
                }
                let last = fields.len() - 1;
                let text = fields[1..last].join(" ");
                let text = self.strings.get(&text);
                Record::Error {
                    message: message(&text).unwrap_or(text),
                    at_ms: number(fields[last], "error time")?,
                }
            }
            "RUN" => return Err(LogErrorKind::RunHeader("a second run header")),
            // Gatling 3.12 writes assertions before the run line only; one
            // after it is skipped like those (bfgg has its own thresholds).
            "ASSERTION" => {
                expect(&fields, "ASSERTION", 2)?;
                return Ok(None);
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(LogErrorKind::UnknownRecord(shown));
            }
        };
        Ok(Some(record))
    }

    /// `a,b` to `[a, b]`; empty for none.
    fn groups(&mut self, s: &str) -> Vec<Arc<str>> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split(',').map(|g| self.strings.get(g)).collect()
        }
    }
}

fn expect(fields: &[&str], record: &'static str, expected: usize) -> Result<(), LogErrorKind> {
    if fields.len() == expected {
        Ok(())
    } else {
        Err(LogErrorKind::FieldCount {
            record,
            found: fields.len(),
            expected,
        })
    }
}

fn field(name: &'static str, value: &str, expected: &'static str) -> LogErrorKind {
    LogErrorKind::Field {
        field: name,
        value: value.chars().take(32).collect(),
        expected,
    }
}

fn number(s: &str, name: &'static str) -> Result<i64, LogErrorKind> {
    s.parse().map_err(|_| field(name, s, "a whole number"))
}

fn status(s: &str, name: &'static str) -> Result<bool, LogErrorKind> {
    match s {
        "OK" => Ok(true),
        "KO" => Ok(false),
        other => Err(field(name, other, "OK or KO")),
    }
}
