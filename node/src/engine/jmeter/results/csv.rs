//! RFC 4180 rows from a growing byte stream, bounded and strict: what JMeter
//! writes (fields quoted when they hold the delimiter, a quote or a line
//! break; quotes doubled inside) is read exactly, anything else is reported
//! as a broken row and skipped, never guessed at. No row ends inside quotes,
//! so a label or message spanning lines is one field; a row not finished yet
//! (no newline after it) waits for more bytes. Every decision depends only
//! on the bytes, never on how they were split into chunks.
//!
//! Bounds: a row (its line breaks included) may take [`MAX_ROW`] bytes and
//! [`MAX_FIELDS`] fields. Past them, and after a broken row, reading picks
//! up again at the first place a row can start:
//! - a row that broke after a line break inside quotes (an opening quote
//!   that corruption put there, or a quote it took away, makes quotes
//!   swallow the lines after it): right after that line break, so that
//!   only its first line is lost;
//! - a line with no line break within the bound: after its next line break.

use std::ops::Range;

/// Longest row, in bytes, line breaks inside quotes and the final one
/// included. JMeter's rows are a few hundred bytes; a label or message this
/// long is not one anybody reads.
pub(crate) const MAX_ROW: usize = 64 * 1024;
/// Most fields in a row (JMeter writes 15 to 25, plus `sample_variables`).
pub(crate) const MAX_FIELDS: usize = 256;

/// What [`Rows::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A row, its fields in [`Rows::field`].
    Row,
    /// A broken row, skipped.
    Broken,
    /// A row past [`MAX_ROW`], skipped.
    Overlong,
    /// Nothing complete until more bytes come.
    Wait,
}

/// The scan for the end of the row being read, resumed where it stopped
/// when more bytes come.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Bytes of the row scanned so far.
    done: usize,
    /// Whether the scan is inside quotes there.
    quoted: bool,
    /// The first line break inside quotes, from the row's start.
    quoted_break: Option<usize>,
}

/// The rows of a byte stream, fed in order.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    /// Bytes fed and not consumed yet, from `start` on.
    buf: Vec<u8>,
    /// Where the row being read starts in `buf`.
    start: usize,
    scan: Scan,
    /// Discarding up to the next line break (after an overlong line).
    skipping: bool,
    /// The last row returned: where it started and its first line break
    /// inside quotes, for [`Rows::reject`].
    last: Option<(usize, Option<usize>)>,
    /// The last row's fields, unquoted, one after the other.
    text: Vec<u8>,
    fields: Vec<Range<usize>>,
}

impl Rows {
    /// Takes the next bytes of the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.last = None;
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes of a row not finished yet.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Fields of the last [`Next::Row`].
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i` of the last [`Next::Row`] (empty past its end).
    pub(crate) fn field(&self, i: usize) -> &[u8] {
        self.fields
            .get(i)
            .map_or(&[][..], |r| &self.text[r.clone()])
    }

    /// Marks the last row returned as broken though its quoting was sound
    /// (a value the caller refused): reading resumes as after a broken row.
    /// Only until the next [`Rows::push`].
    pub(crate) fn reject(&mut self) {
        if let Some((row_start, Some(quoted_break))) = self.last.take() {
            self.start = row_start + quoted_break + 1;
        }
    }

    /// The next row, or why there is none.
    pub(crate) fn next(&mut self) -> Next {
        loop {
            if self.skipping {
                match memchr(b'\n', &self.buf[self.start..]) {
                    Some(i) => {
                        self.start += i + 1;
                        self.skipping = false;
                    }
                    None => {
                        self.start = self.buf.len();
                        return Next::Wait;
                    }
                }
            }
            let row = &self.buf[self.start..];
            let bound = row.len().min(MAX_ROW);
            let mut scan = self.scan;
            let mut end = None;
            for (i, &b) in row.iter().enumerate().take(bound).skip(scan.done) {
                match b {
                    b'"' => scan.quoted = !scan.quoted,
                    b'\n' if !scan.quoted => {
                        end = Some(i);
                        break;
                    }
                    b'\n' => {
                        scan.quoted_break.get_or_insert(i);
                    }
                    _ => {}
                }
            }
            let row_start = self.start;
            let Some(end) = end else {
                if row.len() < MAX_ROW {
                    scan.done = bound;
                    self.scan = scan;
                    return Next::Wait;
                }
                self.scan = Scan::default();
                return match scan.quoted_break {
                    Some(b) => {
                        self.start += b + 1;
                        Next::Broken
                    }
                    None => {
                        self.start += MAX_ROW;
                        self.skipping = true;
                        Next::Overlong
                    }
                };
            };
            self.scan = Scan::default();
            self.start += end + 1;
            let line = row[..end].strip_suffix(b"\r").unwrap_or(&row[..end]);
            if line.is_empty() {
                continue;
            }
            self.last = Some((row_start, scan.quoted_break));
            if split(line, &mut self.text, &mut self.fields) {
                return Next::Row;
            }
            self.reject();
            return Next::Broken;
        }
    }
}

/// Splits `line` (a whole row without its final line break) into unquoted
/// fields; false if its quoting is broken or it has too many fields.
fn split(line: &[u8], text: &mut Vec<u8>, fields: &mut Vec<Range<usize>>) -> bool {
    text.clear();
    fields.clear();
    let mut i = 0;
    loop {
        if fields.len() == MAX_FIELDS {
            return false;
        }
        let from = text.len();
        if line.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match line.get(i) {
                    None => return false,
                    Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                        text.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        text.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            let end = memchr(b',', &line[i..]).map_or(line.len(), |n| i + n);
            let value = &line[i..end];
            if memchr(b'"', value).is_some() {
                return false;
            }
            text.extend_from_slice(value);
            i = end;
        }
        fields.push(from..text.len());
        match line.get(i) {
            None => return true,
            Some(b',') => i += 1,
            // Something after a closing quote.
            Some(_) => return false,
        }
    }
}

/// The first `needle` in `haystack`.
fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
