//! The JMeter engine's pieces with the real tool: JMeter assembled by Maven
//! into a fresh cache (twice at once), found again without Maven, then run
//! headless on the fixture plan against a `bfgg target` on 127.0.0.1 with
//! bfgg's forced columns, its results file read by the decoder. Needs Java
//! and Maven (and Maven Central or a warm `~/.m2`): without them it is
//! skipped with a printed reason, unless `BFGG_REQUIRE_EXTERNAL=1`, where
//! that fails.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::target::{TargetConfig, TargetServer};

/// Longest the JMeter run may take (2 s of load, JVM start and stop).
const RUN_LIMIT: Duration = Duration::from_secs(40);

/// Whether Java (17+) and Maven run here; otherwise prints why and returns
/// false, or fails under `BFGG_REQUIRE_EXTERNAL=1`.
async fn tools_here() -> bool {
    let (java, maven) = jvm::tools();
    let missing = match (java_version(&java).await, jvm::maven_version(&maven).await) {
        (Ok(_), Ok(_)) => return true,
        (Err(e), _) => e.to_string(),
        (_, Err(e)) => format!("cannot run {maven}: {e}"),
    };
    let required = std::env::var("BFGG_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(!required, "required external tool unavailable: {missing}");
    eprintln!("SKIPPED: {missing}");
    false
}

/// The counts JMeter's summariser printed last: `summary = 412 in ... Err: 331`.
fn summary(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().rev().find(|l| l.starts_with("summary ="))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    Some((after("=")?, after("Err:")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jmeter_installs_once_and_its_results_decode() {
    if !tools_here().await {
        return;
    }
    let cache = tempfile::tempdir().expect("tempdir");
    // Two installs at once (two nodes on one host): each builds, one
    // rename wins, both get the same finished home.
    let started = Instant::now();
    let (home, other) = tokio::join!(
        install(cache.path(), DEFAULT_VERSION),
        install(cache.path(), DEFAULT_VERSION)
    );
    let first = started.elapsed();
    let (home, other) = (
        home.expect("JMeter assembles"),
        other.expect("JMeter assembles"),
    );
    assert!(home.fresh() && other.fresh());
    assert_eq!(home, other);
    assert!(home.launcher().is_file(), "{}", home.launcher().display());
    assert_eq!(
        home.dir(),
        cache.path().join("jmeter").join(DEFAULT_VERSION)
    );
    let left: Vec<String> = std::fs::read_dir(cache.path().join("jmeter"))
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [DEFAULT_VERSION], "no temporary project left");
    // Again, with neither Java nor Maven to run: the home in place.
    let started = Instant::now();
    let again = install::install_with(
        cache.path(),
        DEFAULT_VERSION,
        "/nonexistent/java",
        "/nonexistent/mvn",
    )
    .await
    .expect("the cached home");
    let cached = started.elapsed();
    assert_eq!((again.dir(), again.fresh()), (home.dir(), false));
    assert!(cached < Duration::from_secs(1), "{cached:?}");
    eprintln!(
        "JMeter {DEFAULT_VERSION}: assembled twice at once in {first:.1?}, found again in {cached:.1?}"
    );

    let target = TargetServer::start(TargetConfig {
        listen: "127.0.0.1:0".parse().expect("an address"),
        error_rate: 0.1,
        ..TargetConfig::default()
    })
    .await
    .expect("the target starts");
    let work = tempfile::tempdir().expect("tempdir");
    let results = work.path().join("results.csv");
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/jmeter/testdata/plan.jmx");
    let (java, _) = jvm::tools();
    let mut cmd = tokio::process::Command::new(java);
    cmd.current_dir(work.path())
        .arg("-jar")
        .arg(home.launcher())
        .args(["-n", "-t"])
        .arg(&plan)
        .arg("-l")
        .arg(&results)
        .arg("-j")
        .arg(work.path().join("jmeter.log"))
        .arg(format!("-Jport={}", target.local_addr().port()))
        .args(["-Jloops=-1", "-Jduration=2"])
        .args(results::forced_arguments())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .expect("JMeter ends in time")
        .expect("JMeter runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", out.status);
    let counts = results::count_file(&results).expect("the results decode");
    assert!(counts.records > 0, "{counts:?}");
    assert_eq!((counts.broken, counts.pending), (0, 0), "{counts:?}");
    // What JMeter counted itself.
    assert_eq!(
        summary(&stdout),
        Some((counts.records, counts.failed)),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&results).expect("read");
    let header = text.lines().next().unwrap_or_default();
    let fixture = include_str!("testdata/jmeter-5.6.3-forced.csv");
    assert_eq!(Some(header), fixture.lines().next(), "the forced columns");
    target.shutdown().await;
}
