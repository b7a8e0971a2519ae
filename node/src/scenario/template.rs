//! `{{...}}` templates: parsing text into literal parts and placeholders.
//!
//! This module only parses and describes templates; it never renders them,
//! because rendering needs variables, data pools and randomness, which live in
//! [`crate::scenario::context`]. Parsing happens once, at scenario load time.

use std::fmt;

/// A parsed template: literal text with `{{...}}` placeholders.
///
/// There is no escape syntax: `{{` always opens a placeholder, while a lone
/// `}}` outside a placeholder is literal text (so JSON bodies need no care).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The text the template was made from.
    source: String,
    /// Literal runs and placeholders in order; adjacent literals are merged,
    /// so a template without placeholders has at most one part.
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Ref(VarRef),
}

/// A borrowed piece of a template, as yielded by [`Template::segments`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Segment<'a> {
    /// Text copied as is.
    Literal(&'a str),
    /// A placeholder to substitute.
    Ref(&'a VarRef),
}

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VarRef {
    /// `{{token}}`: a variable set by an earlier extraction in this iteration.
    Var(String),
    /// `{{users.email}}`: a column of this iteration's row of data pool `users`.
    Pool {
        /// The data pool's name.
        pool: String,
        /// A column of its header.
        column: String,
    },
    /// `{{$uuid}}` and friends: values generated per use.
    Builtin(Builtin),
}

/// Values generated at render time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `{{$uuid}}`: a random v4 UUID, lowercase and hyphenated.
    Uuid,
    /// `{{$rand(1, 100)}}`: a uniform random integer in `lo..=hi`.
    RandInt(i64, i64),
    /// `{{$iteration}}`: the iteration number.
    Iteration,
    /// `{{$timestamp_ms}}`: Unix time now, in milliseconds.
    TimestampMs,
    /// `{{$user}}`: the virtual-user (closed model) or slot (open model) number.
    User,
}

/// Why a template did not parse; `offset` is a byte offset into its text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct TemplateError {
    /// Byte offset of the offending `{{` (unclosed, empty) or of the
    /// placeholder's trimmed content (every other error).
    pub offset: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

impl Template {
    /// Parses `text`. Whitespace inside the braces is ignored (`{{ token }}`).
    ///
    /// Fails on an unclosed `{{`, an empty `{{}}`, a name that is not
    /// `[A-Za-z_][A-Za-z0-9_-]*` (or `pool.column` of two such names), an
    /// unknown `$builtin`, and `$rand(lo, hi)` with bad numbers or `lo > hi`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = 0;
        while let Some(found) = text[rest..].find("{{") {
            let open = rest + found;
            literal.push_str(&text[rest..open]);
            let inner_start = open + 2;
            let Some(len) = text[inner_start..].find("}}") else {
                return Err(TemplateError {
                    offset: open,
                    message: "unclosed \"{{\"".to_owned(),
                });
            };
            let inner = &text[inner_start..inner_start + len];
            let trimmed = inner.trim();
            if trimmed.is_empty() {
                return Err(TemplateError {
                    offset: open,
                    message: "empty \"{{}}\"".to_owned(),
                });
            }
            let content_offset = inner_start + (inner.len() - inner.trim_start().len());
            let var = parse_ref(trimmed).map_err(|message| TemplateError {
                offset: content_offset,
                message,
            })?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Ref(var));
            rest = inner_start + len + 2;
        }
        literal.push_str(&text[rest..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// A template that renders `text` verbatim; `{{` in it is not parsed.
    pub fn literal(text: impl Into<String>) -> Template {
        let source = text.into();
        let parts = if source.is_empty() {
            Vec::new()
        } else {
            vec![Part::Literal(source.clone())]
        };
        Template { source, parts }
    }

    /// The rendered text when the template has no placeholders, else `None`.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Every placeholder in order of appearance (repeats included).
    pub fn refs(&self) -> impl Iterator<Item = &VarRef> {
        self.parts.iter().filter_map(|part| match part {
            Part::Ref(var) => Some(var),
            Part::Literal(_) => None,
        })
    }

    /// Literal runs and placeholders in order, for renderers.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.parts.iter().map(|part| match part {
            Part::Literal(text) => Segment::Literal(text),
            Part::Ref(var) => Segment::Ref(var),
        })
    }

    /// The text the template was parsed (or built) from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for VarRef {
    /// The placeholder's canonical content, without braces: `token`,
    /// `users.email`, `$rand(1, 100)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarRef::Var(name) => f.write_str(name),
            VarRef::Pool { pool, column } => write!(f, "{pool}.{column}"),
            VarRef::Builtin(builtin) => fmt::Display::fmt(builtin, f),
        }
    }
}

impl fmt::Display for Builtin {
    /// The builtin as written in a template, with its `$`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Builtin::Uuid => f.write_str("$uuid"),
            Builtin::RandInt(lo, hi) => write!(f, "$rand({lo}, {hi})"),
            Builtin::Iteration => f.write_str("$iteration"),
            Builtin::TimestampMs => f.write_str("$timestamp_ms"),
            Builtin::User => f.write_str("$user"),
        }
    }
}

/// Parses a placeholder's trimmed, non-empty content.
fn parse_ref(content: &str) -> Result<VarRef, String> {
    if let Some(builtin) = content.strip_prefix('$') {
        return parse_builtin(builtin).map(VarRef::Builtin);
    }
    match content.split_once('.') {
        Some((pool, column)) if is_name(pool) && is_name(column) => Ok(VarRef::Pool {
            pool: pool.to_owned(),
            column: column.to_owned(),
        }),
        None if is_name(content) => Ok(VarRef::Var(content.to_owned())),
        _ => Err(format!(
            "invalid name \"{content}\" (expected a variable, pool.column or $builtin)"
        )),
    }
}

/// Parses the part of a builtin after its `$`.
fn parse_builtin(text: &str) -> Result<Builtin, String> {
    match text {
        "uuid" => return Ok(Builtin::Uuid),
        "iteration" => return Ok(Builtin::Iteration),
        "timestamp_ms" => return Ok(Builtin::TimestampMs),
        "user" => return Ok(Builtin::User),
        _ => {}
    }
    let unknown = || {
        format!(
            "unknown builtin \"${text}\" (expected $uuid, $rand(lo, hi), $iteration, $timestamp_ms or $user)"
        )
    };
    let bad = || format!("invalid arguments in \"${text}\" (expected $rand(lo, hi) with integers)");
    let after = text.strip_prefix("rand").ok_or_else(unknown)?.trim_start();
    let args = match after.strip_prefix('(') {
        Some(args) => args,
        None if after.is_empty() => return Err(bad()),
        None => return Err(unknown()),
    };
    let args = args.strip_suffix(')').ok_or_else(bad)?;
    let (lo, hi) = args.split_once(',').ok_or_else(bad)?;
    let lo: i64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: i64 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(format!(
            "$rand lower bound {lo} is greater than upper bound {hi}"
        ));
    }
    Ok(Builtin::RandInt(lo, hi))
}

/// True for `[A-Za-z_][A-Za-z0-9_-]*`.
fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;
