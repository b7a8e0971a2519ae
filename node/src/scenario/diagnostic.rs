//! Scenario diagnostics: positions, field paths and rustc-style rendering.
//!
//! Owns [`Diagnostic`] and the [`Sink`] that collects them while a file is
//! validated, and translates the `toml` crate's syntax and serde errors into
//! the same shape (field path, friendlier wording, "did you mean" hints).
//! It knows nothing about what a valid scenario is; `validate` does.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::scenario::raw::SECTIONS;

/// One problem in a scenario file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario file (as given to `load`/`parse`).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field, when known: `load.rate`,
    /// `journey[1].step[0].extract.token`.
    pub field: Option<String>,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
    /// The source line quoted under the message (`None` for whole-file
    /// problems such as "no requests").
    pub source_line: Option<String>,
    /// How many characters of `source_line` the carets underline (>= 1).
    pub width: usize,
}

impl Diagnostic {
    /// Sets the help line.
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// Renders like rustc:
    ///
    /// ```text
    /// error: load.rate: expected a number of arrivals per second, found a string
    ///   --> scenarios/broken.toml:12:8
    ///    |
    /// 12 | rate = "fast"
    ///    |        ^^^^^^
    ///    = help: write e.g. rate = 100
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "error: {field}: {}", self.message)?,
            None => write!(f, "error: {}", self.message)?,
        }
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        write!(
            f,
            "\n{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        )?;
        if let Some(text) = &self.source_line {
            let indent = " ".repeat(self.column.saturating_sub(1));
            let carets = "^".repeat(self.width.max(1));
            write!(f, "\n{pad} |\n{number} | {text}\n{pad} | {indent}{carets}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file, turning byte spans into positions.
pub(crate) struct Sink<'a> {
    text: &'a str,
    file: &'a Path,
    /// Everything reported so far, in order.
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    /// A sink for `text`, read from `file`.
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        Sink {
            text,
            file,
            diagnostics: Vec::new(),
        }
    }

    /// True once anything was reported.
    pub(crate) fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    /// The source text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// Reports `message` at `span` (`None`: the whole file) for `field`
    /// (empty: no field); returns it so a help line can be attached.
    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let diagnostic = self.diagnostic(span, field, message.into());
        self.diagnostics.push(diagnostic);
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    /// Builds (without recording) a diagnostic at `span`.
    fn diagnostic(&self, span: Option<Range<usize>>, field: &str, message: String) -> Diagnostic {
        let field = (!field.is_empty()).then(|| field.to_owned());
        let Some(span) = span else {
            return Diagnostic {
                file: self.file.to_owned(),
                line: 1,
                column: 1,
                field,
                message,
                help: None,
                source_line: None,
                width: 1,
            };
        };
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let line = self.text[..line_start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(self.text, span.end.clamp(start, line_end));
        let width = self.text[start..end].chars().count().max(1);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field,
            message,
            help: None,
            source_line: Some(line_text.replace('\t', " ")),
            width,
        }
    }

    /// Reports a TOML syntax error (from the parser).
    pub(crate) fn syntax_error(&mut self, error: &toml::de::Error) {
        let span = error.span();
        let mut message = error.message().to_owned();
        let mut help = None;
        if message == "duplicate key" {
            if let Some(key) = span.as_ref().and_then(|s| self.text.get(s.clone())) {
                message = format!("duplicate key `{}`", key.trim());
                help = Some(
                    "each key (and each [table] header) may appear once; [[double]] headers add entries to an array"
                        .to_owned(),
                );
            }
        } else if message.contains("string values must be quoted") {
            help = Some("quote text values, e.g. method = \"GET\"".to_owned());
        }
        let diagnostic = self.error(span, "", format!("invalid TOML: {message}"));
        if let Some(help) = help {
            diagnostic.help(help);
        }
    }

    /// Reports a serde error from deserializing the raw types, with the
    /// field path found through `index` and friendlier wording.
    pub(crate) fn serde_error(&mut self, error: &toml::de::Error, index: &PathIndex) {
        let span = error.span();
        let path = span.as_ref().and_then(|s| index.lookup(s));
        let field = path.as_ref().map(|p| format_path(p)).unwrap_or_default();
        let message = error.message();
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let ticked = backticked(rest);
            let key = ticked.first().copied().unwrap_or("?");
            let expected: Vec<&str> = ticked.iter().skip(1).copied().collect();
            let section = path
                .as_ref()
                .map(|p| section_of(&p[..p.len().saturating_sub(1)]))
                .unwrap_or_default();
            let help = unknown_key_help(key, &expected, &section);
            self.error(span, &field, "unknown key").help(help);
        } else if let Some(rest) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.contains("a spanned value").then_some(message))
        {
            let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            // The document knows better than serde's text (which is confused
            // by dates and by `Spanned` over the wrong kind of value).
            let found = span
                .as_ref()
                .and_then(|s| index.kind_at(s))
                .unwrap_or_else(|| describe_found(found));
            if found == "a date-time" {
                self.error(span, &field, "TOML dates and times are not supported here")
                    .help("quote it to send it as text: \"1979-05-27T07:32:00Z\"");
                return;
            }
            let key = path.as_ref().and_then(|p| last_key(p)).unwrap_or_default();
            let (expected, example) = describe_expected(&key, expected);
            let diagnostic =
                self.error(span, &field, format!("expected {expected}, found {found}"));
            if let Some(help) = type_help(&key, &expected, found, example) {
                diagnostic.help(help);
            }
        } else if let Some(rest) = message.strip_prefix("missing field ") {
            let key = backticked(rest).first().copied().unwrap_or("?").to_owned();
            self.error(span, &field, format!("missing key `{key}`"));
        } else {
            self.error(span, &field, message.to_owned());
        }
    }
}

/// The largest char boundary at or below `i`.
fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// `[Key(journey), Index(1), Key(step)]` -> `journey[1].step`. Keys that are
/// not bare TOML keys are quoted.
pub(crate) fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if is_bare_key(k) {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
        }
    }
    out
}

/// True for keys TOML accepts unquoted: `[A-Za-z0-9_-]+`.
pub(crate) fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The last key of a path (`load.stages[0].target` -> `target`).
fn last_key(path: &[Seg]) -> Option<String> {
    path.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(_) => None,
    })
}

/// The [`SECTIONS`] name of the table at `path`: indices dropped, checks,
/// extractors and data pools normalized (`journey[0].step[2]` ->
/// `journey.step`, `request[1].extract.id` -> `extract.*`).
fn section_of(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        [.., "check"] => "check".to_owned(),
        [.., "extract", _] => "extract.*".to_owned(),
        ["data", _] => "data.*".to_owned(),
        _ => keys.join("."),
    }
}

/// Every `` `x` `` in `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// How a table is written, for messages (`journey.step` -> `[[journey.step]]`).
fn table_name(section: &str) -> String {
    match section {
        "" => "the top level".to_owned(),
        "request" | "journey" | "journey.step" => format!("[[{section}]]"),
        "load.stages" => "a `stages` entry".to_owned(),
        "data.*" => "a [data.<name>] table".to_owned(),
        "extract.*" => "an `extract` entry".to_owned(),
        "check" => "a `check` table".to_owned(),
        other => format!("[{other}]"),
    }
}

/// Help for an unknown key: a close match in its table, the table it belongs
/// to if it is another table's key, or the keys this table accepts.
fn unknown_key_help(key: &str, expected: &[&str], section: &str) -> String {
    if let Some(close) = closest(key, expected) {
        return format!("did you mean `{close}`?");
    }
    let home = if key == "thresholds" {
        Some("[scenario] (or the top of the file, above the first [table] header)".to_owned())
    } else {
        SECTIONS
            .iter()
            .find(|(name, keys)| *name != section && keys.contains(&key))
            .map(|(name, _)| table_name(name))
    };
    if let Some(home) = home {
        let mut help = format!("`{key}` belongs in {home}");
        if !section.is_empty() {
            help.push_str(&format!(
                "; TOML puts every key after a [header] into that table, so this one landed in {}",
                table_name(section)
            ));
        }
        return help;
    }
    if expected.is_empty() {
        "this table takes no keys".to_owned()
    } else {
        format!("expected one of: {}", expected.join(", "))
    }
}

/// The candidate closest to `key` if it is close enough to be a typo.
pub(crate) fn closest<'c>(key: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let key_n = norm(key);
    let limit = match key_n.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .iter()
        .map(|c| {
            let c_n = norm(c);
            // A truncated name (`uniq` for `unique`) is as good as a typo.
            let prefix = key_n.len() >= 3 && c_n.starts_with(&key_n);
            (
                if prefix {
                    0
                } else {
                    edit_distance(&key_n, &c_n)
                },
                *c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// serde's "unexpected" text (`string "fast"`, `integer `5``) as "a string".
fn describe_found(found: &str) -> &'static str {
    let word = found.split_whitespace().next().unwrap_or("");
    match word {
        "string" => "a string",
        "integer" => "an integer",
        "floating" => "a float",
        "boolean" => "a boolean",
        "map" => "a table",
        "sequence" => "an array",
        "character" => "a string",
        _ => "another kind of value",
    }
}

/// What a field expects, in the user's words, and an example assignment.
fn describe_expected(key: &str, serde_expected: &str) -> (String, Option<String>) {
    if key == "target" && serde_expected.starts_with("struct ") {
        return ("a table".to_owned(), None);
    }
    let (desc, example): (&str, Option<&str>) = match key {
        "rate" | "start_rate" => ("a number of arrivals per second", Some("rate = 100")),
        "users" => ("a whole number of virtual users", Some("users = 50")),
        "step_users" => ("a whole number of users", Some("step_users = 10")),
        "spawn_rate" => (
            "a number of users started per second",
            Some("spawn_rate = 10"),
        ),
        "target" => (
            "a number (arrivals per second, or users)",
            Some("stages = [{ duration = \"10s\", target = 100 }]"),
        ),
        "max_in_flight" => ("a whole number", Some("max_in_flight = 1000")),
        "weight" => ("a whole number (1 or more)", Some("weight = 3")),
        "duration" | "graceful_stop" | "step_duration" | "connect_timeout" | "request_timeout" => {
            ("a duration such as \"30s\"", None)
        }
        "think_time" => (
            "a duration such as \"500ms\" or a range \"100ms..500ms\"",
            Some("think_time = \"100ms..500ms\""),
        ),
        "insecure_tls" | "http2" => ("true or false", None),
        "headers" => (
            "a table of header names to values",
            Some("headers = { accept = \"application/json\" }"),
        ),
        "stages" => (
            "an array of { duration, target } tables",
            Some("stages = [{ duration = \"10s\", target = 100 }]"),
        ),
        "check" => ("a table", Some("check = { status = 200 }")),
        "extract" => (
            "a table of variable names to extractors",
            Some("extract = { token = { json = \"/token\" } }"),
        ),
        "thresholds" => (
            "an array of strings",
            Some("thresholds = [\"p99 < 250ms\", \"error_rate < 1%\"]"),
        ),
        "request" => ("[[request]] tables", None),
        "journey" => ("[[journey]] tables", None),
        "step" => ("[[journey.step]] tables", None),
        "scenario" | "load" | "data" | "locust" | "gatling" | "jmeter" | "source" => {
            ("a table", None)
        }
        "git" => (
            "a repository URL",
            Some("git = \"https://github.com/team/perf-tests.git\""),
        ),
        "rev" => ("a branch, tag or commit", Some("rev = \"main\"")),
        "java_opts" => ("an array of JVM options", Some("java_opts = [\"-Xmx2g\"]")),
        "properties" => (
            "a table of system properties",
            Some("properties = { baseUrl = \"http://127.0.0.1:8080\" }"),
        ),
        "split" => (
            "a table of numbers to split across agents",
            Some("split = { users = 300, rate = 90 }"),
        ),
        "include" => (
            "an array of paths",
            Some("include = [\"helpers/\", \"data/users.csv\"]"),
        ),
        "user_classes" => (
            "an array of User class names",
            Some("user_classes = [\"WebsiteUser\"]"),
        ),
        "tags" => ("an array of tags", Some("tags = [\"checkout\"]")),
        "exclude_tags" => ("an array of tags", Some("exclude_tags = [\"slow\"]")),
        "processes" => ("a whole number of processes", Some("processes = 4")),
        _ => ("", None),
    };
    if !desc.is_empty() {
        let example = example.map(str::to_owned).or_else(|| {
            desc.starts_with("a duration")
                .then(|| format!("{key} = \"30s\""))
        });
        return (desc.to_owned(), example);
    }
    let generic = match serde_expected {
        "f64" | "f32" => "a number",
        "i64" | "u64" | "i32" | "u32" | "u16" | "usize" => "a whole number",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        e if e.starts_with("struct ") || e == "a table" || e == "a map" => "a table",
        "" => "another kind of value",
        e => e,
    };
    (generic.to_owned(), None)
}

/// The help line for a type mismatch.
fn type_help(key: &str, expected: &str, found: &str, example: Option<String>) -> Option<String> {
    if expected.starts_with("a duration") && (found == "an integer" || found == "a float") {
        return Some(format!(
            "durations are strings with a unit: write e.g. {key} = \"30s\""
        ));
    }
    example.map(|e| format!("write e.g. {e}"))
}

/// Field paths of every key and value in a parsed document, by byte span, so
/// a serde error's span can be named (`journey[1].step[0].path`).
pub(crate) struct PathIndex {
    /// (span, path, is_key) for every node, parents before children.
    nodes: Vec<(Range<usize>, Vec<Seg>, bool)>,
    /// (span, "a string", ...) for every value.
    kinds: Vec<(Range<usize>, &'static str)>,
}

impl PathIndex {
    /// Indexes a whole document.
    pub(crate) fn new(root: &DeTable<'_>) -> Self {
        let mut index = PathIndex {
            nodes: Vec::new(),
            kinds: Vec::new(),
        };
        index.table(root, &mut Vec::new());
        index
    }

    fn table(&mut self, table: &DeTable<'_>, path: &mut Vec<Seg>) {
        for (key, value) in table.iter() {
            path.push(Seg::Key(key.get_ref().to_string()));
            self.nodes.push((key.span(), path.clone(), true));
            self.value(value, path);
            path.pop();
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>, path: &mut Vec<Seg>) {
        self.nodes.push((value.span(), path.clone(), false));
        self.kinds.push((value.span(), kind(value.get_ref())));
        match value.get_ref() {
            DeValue::Table(t) => self.table(t, path),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.value(item, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// The kind of the innermost value spanning exactly `span`.
    fn kind_at(&self, span: &Range<usize>) -> Option<&'static str> {
        self.kinds
            .iter()
            .rev()
            .find(|(s, _)| s == span)
            .map(|(_, k)| *k)
    }

    /// The path of the key spanning exactly `span`, else the deepest value
    /// spanning exactly `span`, else the innermost node containing it.
    pub(crate) fn lookup(&self, span: &Range<usize>) -> Option<Vec<Seg>> {
        if let Some((_, path, _)) = self.nodes.iter().find(|(s, _, key)| *key && s == span) {
            return Some(path.clone());
        }
        if let Some((_, path, _)) = self
            .nodes
            .iter()
            .filter(|(s, _, key)| !*key && s == span)
            .max_by_key(|(_, p, _)| p.len())
        {
            return Some(path.clone());
        }
        self.nodes
            .iter()
            .filter(|(s, _, _)| s.start <= span.start && span.end <= s.end && s.start < s.end)
            .min_by_key(|(s, p, _)| (s.end - s.start, usize::MAX - p.len()))
            .map(|(_, p, _)| p.clone())
    }
}

/// "a string", "an integer", ...: a value's kind for "found ..." in messages.
pub(crate) fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let text = "[load]\n\n\n\n\n\n\n\n\n\nmodel = \"open\"\nrate = \"fast\"\n";
        let mut sink = Sink::new(text, Path::new("scenarios/broken.toml"));
        let start = text.find("\"fast\"").expect("present");
        sink.error(
            Some(start..start + 6),
            "load.rate",
            "expected a number of arrivals per second, found a string",
        )
        .help("write e.g. rate = 100");
        assert_eq!(
            sink.diagnostics[0].to_string(),
            "error: load.rate: expected a number of arrivals per second, found a string
  --> scenarios/broken.toml:12:8
   |
12 | rate = \"fast\"
   |        ^^^^^^
   = help: write e.g. rate = 100"
        );
    }

    #[test]
    fn renders_whole_file_problems_without_excerpt() {
        let mut sink = Sink::new("", Path::new("a.toml"));
        sink.error(None, "", "no requests");
        assert_eq!(
            sink.diagnostics[0].to_string(),
            "error: no requests\n --> a.toml:1:1"
        );
    }

    #[test]
    fn positions_count_characters_and_clip_to_the_line() {
        let text = "name = \"héllo\" # x\nnext = 1\n";
        let mut sink = Sink::new(text, Path::new("f.toml"));
        let at = text.find("# x").expect("present");
        let d = sink.error(Some(at..text.len()), "", "m").clone();
        assert_eq!((d.line, d.column, d.width), (1, 16, 3));
    }

    #[test]
    fn suggests_close_keys() {
        assert_eq!(closest("rat", &["rate", "users"]), Some("rate"));
        assert_eq!(
            closest("base-url", &["base_url", "headers"]),
            Some("base_url")
        );
        assert_eq!(closest("duraiton", &["duration"]), Some("duration"));
        assert_eq!(closest("xyz", &["rate", "users"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn formats_paths() {
        let path = [
            Seg::Key("journey".into()),
            Seg::Index(1),
            Seg::Key("step".into()),
            Seg::Index(0),
            Seg::Key("headers".into()),
            Seg::Key("x y".into()),
        ];
        assert_eq!(format_path(&path), "journey[1].step[0].headers.\"x y\"");
        assert_eq!(section_of(&path[..4]), "journey.step");
    }
}
