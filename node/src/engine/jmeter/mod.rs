//! The JMeter engine (`engine = "jmeter"`): real Apache JMeter, assembled
//! from Maven Central, run headless (`-n`) on the user's plan, its samples
//! read back from the CSV results file it writes. It follows the steps of
//! [`super::external`] (all *done*):
//!
//! 1. [`prepare`] (before the start instant): Java 17 or later; JMeter's
//!    home assembled once per node and version into the node's cache
//!    ([`install`]: Maven offline first, an atomic rename, reused without
//!    Maven); the plan loaded once by JMeter's own classes
//!    (`check-plan.groovy`, run by the Groovy in JMeter's `lib/`:
//!    `SaveService.loadTree` and `JMeter.convertSubTree`, what `jmeter -n
//!    -t` does before it runs anything, with no thread started), so a plan
//!    it cannot load fails here with JMeter's message
//!    ([`JmeterError::Plan`]).
//! 2. [`start`]: this agent's slices of `partition`ed CSV files written and
//!    a copy of the plan naming them ([`partition`]); at time zero `java
//!    -jar <home>/bin/ApacheJMeter-<version>.jar -n -t <plan> -l
//!    <results.csv> -j <jmeter.log>` with [`properties`]: the scenario's
//!    `properties`, this agent's exact share of each `split` number,
//!    `bfgg.*`, the UDP shutdown listener off, autoflush, then
//!    [`results::FORCED_PROPERTIES`] last, so that no user property changes
//!    the columns bfgg reads (the validator refuses them too).
//! 3. Measure: every 100 ms the new bytes of the results file go through
//!    [`results::Decoder`] (columns by the header's names, RFC 4180
//!    quoting, a half-written last line waits, broken rows counted and
//!    skipped) into `Intervals` by their end (start + elapsed): label as
//!    the name, failures classified by [`results::Record::error`], bytes,
//!    active threads as the gauge (`external::follow`, shared with
//!    Gatling). Rows are flushed as samples end, so intervals ship once
//!    settled, without holding for a buffer.
//! 4. Stop within a second: SIGTERM to the JVM (JMeter's shutdown hook ends
//!    the test; autoflush wrote every finished sample already), the process
//!    group killed 0.8 s later; what reached the results file counts.
//! 5. End: a JMeter that exits with a failure is reported with the tail of
//!    its log.
//!
//! [`plan`] reads what bfgg needs of a `.jmx` without JMeter: the CSV files
//! to ship, and whether a split name is read (`bfgg check`'s warning).

pub mod install;
mod partition;
pub mod plan;
pub mod results;
mod run;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use install::{DEFAULT_VERSION, JmeterHome, install};
pub use run::{Prepared, prepare, properties, start};

use super::jvm;
use crate::scenario::{JmeterSpec, split_share};

/// The oldest Java bfgg runs JMeter on.
pub const MIN_JAVA: u32 = 17;

/// Why JMeter cannot run here; the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum JmeterError {
    /// No Java, or one too old.
    #[error(
        "cannot run {java}: {error} (install Java {MIN_JAVA} or later, e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
    )]
    NoJava {
        /// The executable tried.
        java: String,
        /// The OS error, its output, or its version.
        error: String,
    },
    /// No Maven.
    #[error(
        "cannot run {maven}: {error} (install Maven 3.6 or later, e.g. apt-get install maven: bfgg assembles JMeter from Maven Central with it, once per node)"
    )]
    NoMaven {
        /// The executable tried.
        maven: String,
        /// The OS error or its output.
        error: String,
    },
    /// Maven ran and failed.
    #[error(
        "Maven could not assemble JMeter {version} (it needs Maven Central, or a local repository ~/.m2 that already has jmeter-maven-plugin {plugin} and JMeter {version}):\n{detail}",
        plugin = install::PLUGIN_VERSION
    )]
    Maven {
        /// The JMeter version asked for.
        version: String,
        /// Maven's errors, or the tail of its output.
        detail: String,
    },
    /// Maven succeeded without leaving a JMeter home where it should be.
    #[error(
        "Maven left no JMeter {version} home under {dir} (looked for {expected}); remove {dir} and try again"
    )]
    Layout {
        /// The JMeter version asked for.
        version: String,
        /// Where it was looked for.
        dir: PathBuf,
        /// The file that was missing.
        expected: String,
    },
    /// JMeter cannot load the test plan.
    #[error("JMeter cannot load the test plan {}:\n{detail}", plan.display())]
    Plan {
        /// The plan.
        plan: PathBuf,
        /// JMeter's message (the exception and its causes).
        detail: String,
    },
    /// A version that is not one.
    #[error("JMeter version {0:?} is not a version (digits and dots, e.g. {DEFAULT_VERSION})")]
    BadVersion(String),
    /// Anything else (file system errors, Maven's time limit).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The versions of Java and Maven here, for node health (`via maven 3.8.7,
/// java 17.0.15`); `None` if either is missing or Java is older than
/// [`MIN_JAVA`]. Runs no Maven goal: nothing is downloaded.
pub async fn probe() -> Option<String> {
    let versions = jvm::versions().await?;
    let major = jvm::java_major(&versions.java)?;
    (major >= MIN_JAVA).then(|| versions.to_string())
}

/// The `split` names the plan never reads as a property
/// (`${__P(threads)}`): a plan that does not read a number runs it in full
/// on every agent. For `bfgg check` and the run plan.
pub fn unread_split(spec: &JmeterSpec) -> Vec<String> {
    // Not here (a cluster client of a [source] scenario): nothing to say.
    let Ok(text) = std::fs::read_to_string(&spec.plan) else {
        return Vec::new();
    };
    spec.split
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !plan::reads_property(&text, name))
        .cloned()
        .collect()
}

/// What each of `agents` (their names, in plan order) gets of the split,
/// one line per number (`threads = 10: a 5, b 5`), or that without a split
/// every agent runs the whole plan; then a warning per split name the plan
/// never reads, and what is partitioned.
pub fn split_plan(spec: &JmeterSpec, agents: &[&str]) -> Vec<String> {
    let count = agents.len().max(1) as u64;
    let mut lines = Vec::new();
    if spec.split.is_empty() {
        lines.push(
            "no split: every agent runs the whole plan as written (its thread groups' numbers are not \
             divided; name them in [jmeter] split and read them as ${__P(name)})"
                .to_owned(),
        );
    }
    for (name, total) in &spec.split {
        let shares: Vec<String> = agents
            .iter()
            .enumerate()
            .map(|(i, agent)| format!("{agent} {}", split_share(*total, i as u64, count)))
            .collect();
        lines.push(format!(
            "split {name} = {}: {}",
            split_share(*total, 0, 1),
            shares.join(", ")
        ));
    }
    for name in unread_split(spec) {
        lines.push(format!(
            "warning: the plan never reads the property `{name}` (${{__P({name})}}): every agent runs \
             the whole of what it sets"
        ));
    }
    for p in &spec.partition {
        lines.push(format!(
            "partition {}: each agent gets every {count}th data row, each row used by one agent",
            p.display()
        ));
    }
    lines
}

/// Java's version when it runs and is [`MIN_JAVA`] or later.
pub(crate) async fn java_version(java: &str) -> Result<String, JmeterError> {
    let no = |error: String| JmeterError::NoJava {
        java: java.to_owned(),
        error,
    };
    let version = jvm::java_version(java).await.map_err(no)?;
    match jvm::java_major(&version) {
        Some(major) if major >= MIN_JAVA => Ok(version),
        _ => Err(no(format!(
            "its version is {version}; bfgg runs JMeter on Java {MIN_JAVA} or later"
        ))),
    }
}
