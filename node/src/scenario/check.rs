//! Judging a response: checks, and the [`ResponseView`] that checks and
//! extraction share.
//!
//! A failed check is data to count (`ErrorKind::Check(reason)`), not a Rust
//! error. Reasons are grouped by exact text in reports, so they never carry
//! per-request values beyond a short, truncated actual value. The body is
//! parsed as JSON at most once per response, and only when asked.

use std::cell::OnceCell;
use std::fmt::Write as _;

use bfgg_protocol::ErrorKind;

/// One assertion on a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The status is one of these. An empty set means "below 400".
    Status(Vec<u16>),
    /// The body, as bytes, contains this text.
    BodyContains(String),
    /// The JSON body has `expected` at the RFC 6901 `pointer` (`/user/id`).
    /// Numbers compare by value, so `1` equals `1.0`.
    JsonEquals {
        /// Where to look; `""` is the whole document.
        pointer: String,
        /// The value that must be there.
        expected: serde_json::Value,
    },
    /// A header with this (lowercase) name is present.
    HeaderPresent(String),
}

/// A received response as checks and extractors see it.
///
/// Holds a lazily parsed JSON body, so every check and extraction of one
/// response share a single parse. Not `Sync`; build one per response.
#[derive(Debug)]
pub struct ResponseView<'a> {
    status: u16,
    headers: &'a http::HeaderMap,
    body: &'a [u8],
    /// `Some(None)` once parsing was tried and the body is not JSON.
    json: OnceCell<Option<serde_json::Value>>,
}

impl<'a> ResponseView<'a> {
    /// A view of one response; nothing is parsed yet.
    pub fn new(status: u16, headers: &'a http::HeaderMap, body: &'a [u8]) -> Self {
        ResponseView {
            status,
            headers,
            body,
            json: OnceCell::new(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &http::HeaderMap {
        self.headers
    }

    /// The whole response body.
    pub fn body(&self) -> &[u8] {
        self.body
    }

    /// The body parsed as JSON on first call (and cached), or `None` when it is
    /// not JSON (including an empty body).
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }
}

/// Runs every check in order; the first failure is returned as the error to count.
/// With no checks at all, a status >= 400 fails as `ErrorKind::Status(code)`.
pub fn run_checks(checks: &[Check], resp: &ResponseView<'_>) -> Result<(), ErrorKind> {
    if checks.is_empty() {
        return if resp.status >= 400 {
            Err(ErrorKind::Status(resp.status))
        } else {
            Ok(())
        };
    }
    for check in checks {
        if let Some(reason) = failure(check, resp) {
            return Err(ErrorKind::Check(reason));
        }
    }
    Ok(())
}

/// Checks that `pointer` is an RFC 6901 JSON pointer: empty, or `/`-separated
/// tokens in which `~` is always followed by `0` or `1`. The error is a
/// lowercase message for the scenario author.
pub fn validate_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "invalid json pointer \"{pointer}\": it must be empty or start with \"/\" (try \"/{pointer}\")"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "invalid json pointer \"{pointer}\": \"~\" must be followed by 0 or 1"
            ));
        }
    }
    Ok(())
}

/// Longest actual value (in characters) quoted in a failure reason.
const MAX_ACTUAL_CHARS: usize = 40;

/// The reason `check` fails on `resp`, or `None` when it passes.
fn failure(check: &Check, resp: &ResponseView<'_>) -> Option<String> {
    match check {
        Check::Status(expected) => {
            let status = resp.status;
            match expected.as_slice() {
                [] if status < 400 => None,
                [] => Some(format!("status {status} expected < 400")),
                set if set.contains(&status) => None,
                [one] => Some(format!("status {status} expected {one}")),
                set => {
                    let mut reason = format!("status {status} expected one of ");
                    for (i, code) in set.iter().enumerate() {
                        if i > 0 {
                            reason.push_str(", ");
                        }
                        let _ = write!(reason, "{code}");
                    }
                    Some(reason)
                }
            }
        }
        Check::BodyContains(needle) => {
            if contains(resp.body, needle.as_bytes()) {
                None
            } else {
                Some(format!("body does not contain \"{needle}\""))
            }
        }
        Check::JsonEquals { pointer, expected } => {
            let Some(doc) = resp.json() else {
                return Some(format!(
                    "body is not json (json {pointer} expected {expected})"
                ));
            };
            match doc.pointer(pointer) {
                None => Some(format!("json {pointer} missing expected {expected}")),
                Some(actual) if json_eq(actual, expected) => None,
                Some(actual) => Some(format!(
                    "json {pointer} is {} expected {expected}",
                    truncate(&actual.to_string(), MAX_ACTUAL_CHARS)
                )),
            }
        }
        Check::HeaderPresent(name) => {
            if resp.headers.contains_key(name.as_str()) {
                None
            } else {
                Some(format!("header {name} missing"))
            }
        }
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
fn json_eq(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
        }
        _ => actual == expected,
    }
}

/// `text` cut to at most `max` characters, with `…` marking a cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// True when `needle` occurs in `haystack` (an empty needle always does).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
