//! `engine = "locust"`: the `[locust]` table checked into a [`LocustSpec`],
//! and the parts of a scenario that only the native engine runs (requests,
//! journeys, data pools, most `[target]` keys) reported when they appear in
//! a Locust scenario.
//!
//! Locust's own files are not read here: a class name or tag that the
//! locustfile does not define is Locust's to report when it starts.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::{Validator, key_path};
use crate::scenario::model::LocustSpec;
use crate::scenario::raw::{OrderedMap, RawJourney, RawLocust, RawPool, RawStep, RawTarget};

/// Help for a missing locustfile.
const FILE_HELP: &str = "write [locust] file = \"locustfile.py\"";
/// Help for paths that do not exist.
const PATH_HELP: &str = "paths are relative to the scenario file's directory";

impl Validator<'_, '_> {
    // ---- [locust] ---------------------------------------------------------

    /// The `[locust]` table of a Locust scenario; `engine` is the span of
    /// `engine = "locust"`, where a missing table is reported.
    pub(super) fn locust(
        &mut self,
        table: Option<&Spanned<RawLocust>>,
        engine: Option<Range<usize>>,
    ) -> Option<LocustSpec> {
        let Some(table) = table else {
            self.sink
                .error(
                    engine,
                    "locust.file",
                    "engine = \"locust\" needs a locustfile, and there is no [locust] table",
                )
                .help(FILE_HELP);
            return None;
        };
        let raw = table.get_ref();
        let file = match &raw.file {
            None => {
                self.sink
                    .error(
                        Some(table.span()),
                        "locust.file",
                        "missing `file`: the locustfile to run",
                    )
                    .help(FILE_HELP);
                None
            }
            Some(file) => self.locustfile(file),
        };
        let mut include = Vec::new();
        let mut ok = true;
        for (i, path) in list(raw.include.as_ref()).iter().enumerate() {
            match self.existing(path, &format!("locust.include[{i}]"), "included path") {
                Some(p) => include.push(p),
                None => ok = false,
            }
        }
        let user_classes = self.names(
            raw.user_classes.as_ref(),
            "locust.user_classes",
            Name::Class,
        );
        let tags = self.names(raw.tags.as_ref(), "locust.tags", Name::Tag);
        let exclude_tags = self.names(raw.exclude_tags.as_ref(), "locust.exclude_tags", Name::Tag);
        let processes = match &raw.processes {
            None => Some(None),
            Some(p) => self
                .whole(
                    p,
                    "locust.processes",
                    1,
                    "processes = 4 (or remove it for one per core)",
                )
                .map(|n| Some(n as usize)),
        };
        if !ok {
            return None;
        }
        Some(LocustSpec {
            file: file?,
            include,
            user_classes: user_classes?,
            tags: tags?,
            exclude_tags: exclude_tags?,
            processes: processes?,
        })
    }

    /// `locust.file`: an existing `.py` file.
    fn locustfile(&mut self, file: &Spanned<String>) -> Option<PathBuf> {
        let field = "locust.file";
        let written = file.get_ref();
        let path = self.existing(file, field, "locustfile")?;
        if path.is_dir() {
            self.sink
                .error(
                    Some(file.span()),
                    field,
                    format!(
                        "`{written}` is a directory ({}), not a locustfile",
                        path.display()
                    ),
                )
                .help("name the locustfile itself, e.g. file = \"locustfile.py\"; list the files and directories it needs in `include`");
            return None;
        }
        if path.extension().is_none_or(|e| e != "py") {
            self.sink
                .error(
                    Some(file.span()),
                    field,
                    format!("the locustfile must be a Python file ending in .py, found `{written}`"),
                )
                .help("Locust imports the locustfile as a Python module; list data files in `include`");
            return None;
        }
        Some(path)
    }

    /// `value` resolved against the scenario's directory, when it names a
    /// file or a directory; `what` names it in messages.
    fn existing(&mut self, value: &Spanned<String>, field: &str, what: &str) -> Option<PathBuf> {
        let written = value.get_ref();
        if written.trim().is_empty() {
            self.sink
                .error(Some(value.span()), field, "the path is empty")
                .help(PATH_HELP);
            return None;
        }
        let path = self.base_dir.join(written);
        if path.is_file() || path.is_dir() || self.deferred {
            return Some(path);
        }
        let message = if path.exists() {
            format!(
                "`{written}` is neither a file nor a directory ({})",
                path.display()
            )
        } else {
            format!(
                "{what} not found: `{written}` (looked for {})",
                path.display()
            )
        };
        self.sink
            .error(Some(value.span()), field, message)
            .help(PATH_HELP);
        None
    }

    /// `user_classes`, `tags` or `exclude_tags`: each entry checked.
    fn names(
        &mut self,
        values: Option<&Spanned<Vec<Spanned<String>>>>,
        field: &str,
        kind: Name,
    ) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, value) in list(values).iter().enumerate() {
            let text = value.get_ref();
            let (valid, message, help) = match kind {
                Name::Class => (
                    is_class_name(text),
                    format!("`{text}` is not a Python class name"),
                    "name a User class of the locustfile, e.g. user_classes = [\"WebsiteUser\"]",
                ),
                Name::Tag => (
                    is_tag(text),
                    format!("invalid tag `{text}`"),
                    "tags are the names given to @tag(...) in the locustfile: not empty, without spaces, not starting with `-`",
                ),
            };
            if valid {
                out.push(text.clone());
            } else {
                self.sink
                    .error(Some(value.span()), &format!("{field}[{i}]"), message)
                    .help(help);
                ok = false;
            }
        }
        ok.then_some(out)
    }

    /// `[locust]` in a scenario whose engine is not Locust.
    pub(super) fn locust_without_engine(&mut self, table: &Spanned<RawLocust>, engine: &str) {
        self.sink
            .error(
                Some(table.span()),
                "locust",
                format!("[locust] only applies to engine = \"locust\", and this scenario runs the {engine} engine"),
            )
            .help("add engine = \"locust\" to [scenario]");
    }

    // ---- what a Locust scenario cannot have -------------------------------

    /// `[[request]]` and `[[journey]]` in a Locust scenario: one error for
    /// each kind, at its first table.
    pub(super) fn locust_steps(
        &mut self,
        requests: &[Spanned<RawStep>],
        journeys: &[Spanned<RawJourney>],
    ) {
        if let Some(first) = requests.first() {
            self.sink
                .error(
                    Some(first.span()),
                    "request[0]",
                    "a Locust scenario has no [[request]] tables: its locustfile defines what users do",
                )
                .help("write these requests as @task methods of a User class in the locustfile, or set engine = \"native\"");
        }
        if let Some(first) = journeys.first() {
            self.sink
                .error(
                    Some(first.span()),
                    "journey[0]",
                    "a Locust scenario has no [[journey]] tables: its locustfile defines what users do",
                )
                .help("write each journey as a User class (or a SequentialTaskSet) in the locustfile, or set engine = \"native\"");
        }
    }

    /// `[data.*]` pools in a Locust scenario: one error each.
    pub(super) fn locust_pools(&mut self, data: &OrderedMap<Spanned<RawPool>>) {
        for (name, _) in &data.0 {
            self.sink
                .error(
                    Some(name.span()),
                    &key_path("data", name.get_ref()),
                    "data pools are for the native engine: a Locust scenario reads its data in the locustfile",
                )
                .help("put data files in [locust] include = [\"data/\"] and read them from the locustfile (e.g. with csv)");
        }
    }

    /// `[target]` keys Locust cannot honour: one error each.
    pub(super) fn locust_target_keys(&mut self, raw: &RawTarget) {
        let spans = [
            (
                "headers",
                raw.headers.as_ref().map(Spanned::span),
                "set them in on_start, e.g. self.client.headers.update({\"accept\": \"application/json\"})",
            ),
            (
                "connect_timeout",
                raw.connect_timeout.as_ref().map(Spanned::span),
                "pass timeout=(connect, read) in seconds to self.client calls (HttpUser), or set connection_timeout on a FastHttpUser",
            ),
            (
                "request_timeout",
                raw.request_timeout.as_ref().map(Spanned::span),
                "pass timeout=(connect, read) in seconds to self.client calls (HttpUser), or set network_timeout on a FastHttpUser",
            ),
            (
                "insecure_tls",
                raw.insecure_tls.as_ref().map(Spanned::span),
                "set self.client.verify = False in on_start (HttpUser); a FastHttpUser skips verification by default",
            ),
            (
                "http2",
                raw.http2.as_ref().map(Spanned::span),
                "Locust's HttpUser and FastHttpUser speak HTTP/1.1; remove it",
            ),
        ];
        for (key, span, help) in spans {
            if let Some(span) = span {
                self.sink
                    .error(
                        Some(span),
                        &format!("target.{key}"),
                        format!("`{key}` applies to the native engine; with engine = \"locust\", the locustfile sets this on its own client"),
                    )
                    .help(help);
            }
        }
    }
}

/// What a [`Validator::names`] list holds.
#[derive(Clone, Copy)]
enum Name {
    /// `user_classes`: Python identifiers.
    Class,
    /// `tags`, `exclude_tags`.
    Tag,
}

/// The entries of an optional array.
fn list(values: Option<&Spanned<Vec<Spanned<String>>>>) -> &[Spanned<String>] {
    values.map(|v| v.get_ref().as_slice()).unwrap_or_default()
}

/// A Python identifier (approximately: a letter or `_`, then letters,
/// digits and `_`).
fn is_class_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// A tag Locust's `--tags` can take as one argument: not empty, without
/// whitespace or control characters, not an option (`-x`).
fn is_tag(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
