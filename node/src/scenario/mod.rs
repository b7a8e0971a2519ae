//! Scenarios: TOML in, a validated [`Scenario`] out.
//!
//! `load`/`parse` (in this file) turn text into the model in [`model`];
//! errors name the file, line, column and field. The runtime pieces that
//! engines use per request live beside it: [`template`], [`data`], [`check`],
//! [`extract`], [`context`]; [`threshold`] judges a finished run.
//!
//! Loading happens in three passes: TOML syntax (every syntax error is
//! reported), the serde shape in `raw` (the first unknown key or wrong type
//! stops it), then `validate`, which checks meaning and reports every problem
//! it finds. `diagnostic` renders them all the same way.

pub mod check;
pub mod context;
pub mod data;
pub mod extract;
pub mod model;
pub mod template;
pub mod threshold;

mod diagnostic;
pub mod duration;
mod raw;
mod validate;

pub use diagnostic::Diagnostic;
pub use model::*;
pub use validate::parse_base_url;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use toml::de::DeTable;

use crate::scenario::diagnostic::{PathIndex, Sink};
use crate::scenario::raw::RawScenario;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {}", path.display())]
    Io {
        /// The file, as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid scenario. Displays every
    /// diagnostic, rustc-style, separated by blank lines.
    #[error("{}", Rendered(diagnostics))]
    Invalid {
        /// Every problem found, in file order where possible (at least one).
        diagnostics: Vec<Diagnostic>,
    },
}

/// Display helper for [`ScenarioError::Invalid`].
struct Rendered<'a>(&'a [Diagnostic]);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n\nerror: the scenario has {} errors", self.0.len())?;
        }
        Ok(())
    }
}

/// Reads and validates the scenario at `path`. Relative paths inside it (data
/// files, body files, a locustfile and its includes) resolve against the
/// file's directory; with a `[source]`, they are in a repository and are
/// not read ([`Scenario::files_deferred`]: see [`load_in`]).
///
/// Fails with [`ScenarioError::Io`] when the file cannot be read and
/// [`ScenarioError::Invalid`] when it is not a valid scenario.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse(&text, path, base_dir)
}

/// Loads the scenario at `path` whose `[source]` commit is checked out in
/// `checkout`: its relative paths start from the `[source] path` directory
/// there.
pub fn load_in(path: &Path, checkout: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_with(&text, path, checkout, Some(checkout))
}

/// Validates scenario `text`. `source` names the file in diagnostics and
/// provides the default scenario name (its stem); `base_dir` is where
/// relative data and body files are looked up (and must exist).
///
/// Fails with [`ScenarioError::Invalid`] listing every problem found.
pub fn parse(text: &str, source: &Path, base_dir: &Path) -> Result<Scenario, ScenarioError> {
    parse_with(text, source, base_dir, None)
}

fn parse_with(
    text: &str,
    source: &Path,
    base_dir: &Path,
    checkout: Option<&Path>,
) -> Result<Scenario, ScenarioError> {
    let mut sink = Sink::new(text, source);
    let invalid = |sink: Sink<'_>| ScenarioError::Invalid {
        diagnostics: sink.diagnostics,
    };
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for error in &errors {
            sink.syntax_error(error);
        }
        return Err(invalid(sink));
    }
    if !raw::check_shape(root.get_ref(), &mut sink) {
        return Err(invalid(sink));
    }
    let index = PathIndex::new(root.get_ref());
    let raw = match RawScenario::deserialize(toml::de::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(error) => {
            sink.serde_error(&error, &index);
            return Err(invalid(sink));
        }
    };
    let scenario = validate::validate(raw, &mut sink, source, base_dir, checkout);
    // Validation goes section by section; report in file order.
    sink.diagnostics.sort_by_key(|d| (d.line, d.column));
    match scenario {
        Some(scenario) if !sink.has_errors() => Ok(scenario),
        _ => Err(invalid(sink)),
    }
}

#[cfg(test)]
mod tests;
