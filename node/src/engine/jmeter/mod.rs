//! The JMeter engine: real Apache JMeter, assembled from Maven Central, run
//! headless (`-n`) on the user's plan, its samples read back from the CSV
//! results file it writes. It follows the steps of [`super::external`];
//! being built, it is not yet a `[scenario] engine` (what exists is marked
//! *done*, the rest is the wiring step's):
//!
//! 1. Prepare (before the start instant): Java 17 or later; JMeter's home
//!    assembled once per node and version into the node's cache
//!    ([`install`], *done*: Maven offline first, an atomic rename, reused
//!    without Maven); the plan loaded once by JMeter so that a plan it
//!    cannot load fails here with JMeter's message; CSV data files
//!    partitioned across agents.
//! 2. Start: at time zero `java -jar <home>/bin/ApacheJMeter-<version>.jar
//!    -n -t <plan> -l <results.csv> -j <jmeter.log>`, with the scenario's
//!    `properties` and this agent's exact share of each `split` number as
//!    `-J`, then [`results::FORCED_PROPERTIES`] (*done*) last, so that no
//!    user property changes the columns bfgg reads.
//! 3. Measure: every tick the new bytes of the results file go through
//!    [`results::Decoder`] (*done*: columns by the header's names, RFC 4180
//!    quoting, a half-written last line waits, broken rows counted and
//!    skipped) into `Intervals` by their end (start + elapsed): label as the
//!    name, failures classified by [`results::Record::error`] (*done*),
//!    bytes, active threads as the gauge.
//! 4. Stop within a second: JMeter's own shutdown, then the process group
//!    killed; what reached the results file counts.
//! 5. End: a JMeter that exits with a failure is reported with the tail of
//!    its log.

pub mod install;
pub mod results;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use install::{DEFAULT_VERSION, JmeterHome, install};

use super::jvm;

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
