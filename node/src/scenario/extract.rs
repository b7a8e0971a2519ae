//! Mining a response for values that later steps use as variables.
//!
//! Extractors are built and validated once at load time (regexes compiled
//! there); [`Extractor::extract`] only reads a [`ResponseView`], sharing its
//! single JSON parse with the checks. Storing the value is the caller's job.

use crate::scenario::check::{ResponseView, validate_pointer};

/// Where a value comes from in a response.
#[derive(Debug, Clone)]
pub enum Extractor {
    /// An RFC 6901 pointer into the JSON body. Strings extract without quotes,
    /// numbers and booleans as their JSON text, objects and arrays as compact
    /// JSON; `null` counts as no value.
    Json(String),
    /// The first value of a header (lowercase name).
    Header(String),
    /// A regex over the body as UTF-8 (invalid bytes replaced).
    Regex {
        /// The compiled pattern.
        regex: regex::Regex,
        /// The capture group taken: 1 when the pattern has one, else 0 (the
        /// whole match).
        group: usize,
    },
}

impl Extractor {
    /// A JSON extractor; `pointer` must be `""` or start with `/`.
    pub fn json(pointer: &str) -> Result<Extractor, String> {
        validate_pointer(pointer)?;
        Ok(Extractor::Json(pointer.to_owned()))
    }

    /// A header extractor; `name` must be a valid HTTP header name (any case,
    /// stored lowercase).
    pub fn header(name: &str) -> Result<Extractor, String> {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name \"{name}\""))?;
        Ok(Extractor::Header(name.as_str().to_owned()))
    }

    /// A regex extractor taking group 1 if the pattern has a capture group,
    /// else the whole match. The error is the regex compiler's message.
    pub fn regex(pattern: &str) -> Result<Extractor, String> {
        let regex = regex::Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
        let group = usize::from(regex.captures_len() > 1);
        Ok(Extractor::Regex { regex, group })
    }

    /// The value in `resp`, or `None` when there is none (missing pointer or
    /// header, body not JSON, no match).
    pub fn extract(&self, resp: &ResponseView<'_>) -> Option<String> {
        match self {
            Extractor::Json(pointer) => match resp.json()?.pointer(pointer)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            },
            Extractor::Header(name) => {
                let value = resp.headers().get(name.as_str())?;
                Some(match value.to_str() {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                })
            }
            Extractor::Regex { regex, group } => {
                let body = String::from_utf8_lossy(resp.body());
                let found = if *group == 0 {
                    regex.find(&body)
                } else {
                    regex.captures(&body)?.get(*group)
                };
                found.map(|m| m.as_str().to_owned())
            }
        }
    }

    /// A short description for error reasons: `json /token`, `header x-token`,
    /// `regex id=(\d+)`.
    pub fn describe(&self) -> String {
        match self {
            Extractor::Json(pointer) => format!("json {pointer}"),
            Extractor::Header(name) => format!("header {name}"),
            Extractor::Regex { regex, .. } => format!("regex {}", regex.as_str()),
        }
    }
}

impl PartialEq for Extractor {
    /// Regexes compare by pattern text.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Extractor::Json(a), Extractor::Json(b)) => a == b,
            (Extractor::Header(a), Extractor::Header(b)) => a == b,
            (
                Extractor::Regex {
                    regex: a,
                    group: ga,
                },
                Extractor::Regex {
                    regex: b,
                    group: gb,
                },
            ) => a.as_str() == b.as_str() && ga == gb,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
