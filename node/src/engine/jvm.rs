//! Java and Maven on this host, for the engines that run on the JVM
//! (Gatling, JMeter): which executables, their versions (for node health and
//! error messages), and one Maven run that tries offline first and goes
//! online only when it has to. Errors come back as text; each engine wraps
//! them in its own error type, whose message names the fix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for `java -version` or `mvn -v`.
const PROBE_LIMIT: Duration = Duration::from_secs(30);
/// Most `[ERROR]` lines of Maven's output kept in a message.
const ERROR_LINES: usize = 25;

/// The Java and Maven executables: `$JAVA_HOME/bin/java` when JAVA_HOME is
/// set, else `java` on PATH; `mvn` on PATH.
pub(crate) fn tools() -> (String, String) {
    (jdk_tool("java"), "mvn".to_owned())
}

/// `$JAVA_HOME/bin/<name>` when JAVA_HOME is set and has it, else `name`.
pub(crate) fn jdk_tool(name: &str) -> String {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join(name))
        .filter(|p| p.is_file())
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// The Java and Maven versions of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versions {
    /// `17.0.15`.
    pub(crate) java: String,
    /// `3.8.7`.
    pub(crate) maven: String,
}

impl fmt::Display for Versions {
    /// `via maven 3.8.7, java 17.0.15`: what node health shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "via maven {}, java {}", self.maven, self.java)
    }
}

/// The versions of Java and Maven here; `None` if either is missing.
pub(crate) async fn versions() -> Option<Versions> {
    let (java, maven) = tools();
    let (j, m) = tokio::join!(java_version(&java), maven_version(&maven));
    Some(Versions {
        java: j.ok()?,
        maven: m.ok()?,
    })
}

/// Java's version (`17.0.15`), from `java -version`; the error says why not.
pub(crate) async fn java_version(java: &str) -> Result<String, String> {
    let out = output(tokio::process::Command::new(java).arg("-version")).await?;
    // `openjdk version "17.0.15" 2025-04-15` (on stderr).
    out.lines()
        .find_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .ok_or_else(|| format!("unexpected output of -version: {}", out.trim()))
}

/// The major version of a Java version string: 17 for `17.0.15`, 8 for
/// `1.8.0_392`.
pub(crate) fn java_major(version: &str) -> Option<u32> {
    let mut parts = version.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

/// Maven's version (`3.8.7`), from `mvn -v`; the error says why not.
pub(crate) async fn maven_version(maven: &str) -> Result<String, String> {
    let out = output(tokio::process::Command::new(maven).args(["-B", "-v"])).await?;
    // `Apache Maven 3.8.7` (maybe with colour codes around it).
    out.lines()
        .find_map(|l| l.split("Apache Maven ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|v| {
            v.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("unexpected output of -v: {}", out.trim()))
}

/// A probe command's stdout and stderr together, when it succeeds.
async fn output(cmd: &mut tokio::process::Command) -> Result<String, String> {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(PROBE_LIMIT, cmd.output())
        .await
        .map_err(|_| format!("no answer within {} s", PROBE_LIMIT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("{}: {}", out.status, text.trim()));
    }
    Ok(text)
}

/// Why a Maven run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MavenFailure {
    /// Maven could not be started (the OS error).
    NotRun(String),
    /// It did not finish within its time limit.
    TimedOut(Duration),
    /// It ran and failed: its output, stdout then stderr.
    Failed(String),
}

/// `maven -B <args>` in `dir`, offline (`-o`) first; run again online only
/// when the offline run failed and `online_helps` says so of its output
/// (`fetching` is logged then: the first run on this host downloads).
pub(crate) async fn run_offline_first(
    dir: &Path,
    maven: &str,
    args: &[String],
    limit: Duration,
    online_helps: impl Fn(&str) -> bool,
    fetching: &str,
) -> Result<(), MavenFailure> {
    match run_maven(dir, maven, args, limit, true).await {
        Err(MavenFailure::Failed(output)) if online_helps(&output) => {
            tracing::info!("{fetching}");
            run_maven(dir, maven, args, limit, false).await
        }
        done => done,
    }
}

/// One Maven run.
async fn run_maven(
    dir: &Path,
    maven: &str,
    args: &[String],
    limit: Duration,
    offline: bool,
) -> Result<(), MavenFailure> {
    let mut cmd = tokio::process::Command::new(maven);
    cmd.current_dir(dir)
        .arg("-B")
        .args(offline.then_some("-o"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| MavenFailure::TimedOut(limit))?
        .map_err(|e| MavenFailure::NotRun(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(MavenFailure::Failed(text))
}

/// Whether a failed offline Maven run failed for want of downloads.
pub(crate) fn needs_network(output: &str) -> bool {
    output.contains("offline mode")
        || output.contains("has not been downloaded from it before")
        || output.contains("Cannot access central")
}

/// Maven's `[ERROR]` lines (the compiler's messages among them), without
/// its generic advice, or the output's tail when there are none.
pub(crate) fn maven_errors(output: &str) -> String {
    let errors: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("[ERROR]"))
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("->")
                && !l.starts_with("To see the full stack trace")
                && !l.starts_with("Re-run Maven")
                && !l.starts_with("For more information about the errors")
                && !l.starts_with("[Help 1]")
        })
        .take(ERROR_LINES)
        .collect();
    if errors.is_empty() {
        let lines: Vec<&str> = output.lines().collect();
        lines[lines.len().saturating_sub(ERROR_LINES)..].join("\n")
    } else {
        errors.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_errors_keep_the_compiler_and_drop_the_advice() {
        let out = "[INFO] Scanning\n[ERROR] COMPILATION ERROR : \n[ERROR] /p/src/test/java/example/X.java:[3,5] ';' expected\n[ERROR] -> [Help 1]\n[ERROR] \n[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n";
        assert_eq!(
            maven_errors(out),
            "COMPILATION ERROR :\n/p/src/test/java/example/X.java:[3,5] ';' expected"
        );
        assert_eq!(maven_errors("a\nb"), "a\nb");
        assert!(needs_network(
            "[ERROR] Cannot access central (https://repo.maven.apache.org/maven2) in offline mode"
        ));
        assert!(!needs_network("[ERROR] ';' expected"));
    }

    #[test]
    fn past_the_line_cap_the_first_errors_or_the_last_lines_are_kept() {
        let many: String = (0..ERROR_LINES + 10)
            .map(|i| format!("[ERROR] X.java:[{i},1] cannot find symbol\n"))
            .collect();
        let kept = maven_errors(&many);
        assert_eq!(kept.lines().count(), ERROR_LINES);
        assert!(kept.starts_with("X.java:[0,1]"), "the first errors: {kept}");
        // Without [ERROR] lines, the output's tail.
        let plain: String = (0..ERROR_LINES + 10)
            .map(|i| format!("line {i}\n"))
            .collect();
        let tail = maven_errors(&plain);
        assert_eq!(tail.lines().count(), ERROR_LINES);
        assert!(
            tail.ends_with(&format!("line {}", ERROR_LINES + 9)),
            "{tail}"
        );
    }

    #[test]
    fn java_majors_old_and_new() {
        assert_eq!(java_major("17.0.15"), Some(17));
        assert_eq!(java_major("21"), Some(21));
        assert_eq!(java_major("1.8.0_392"), Some(8));
        assert_eq!(java_major("22-ea"), Some(22));
        assert_eq!(java_major("x"), None);
    }

    #[tokio::test]
    async fn a_missing_tool_says_why() {
        let e = java_version("/nonexistent/java").await.expect_err("none");
        assert!(e.contains("No such file"), "{e}");
        let e = maven_version("/nonexistent/mvn").await.expect_err("none");
        assert!(e.contains("No such file"), "{e}");
    }
}
