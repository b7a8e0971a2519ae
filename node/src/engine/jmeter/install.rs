//! JMeter's home, assembled from Maven Central once per node and version
//! into `<cache>/jmeter/<version>/` (`bin/ApacheJMeter-<version>.jar`,
//! `bin/jmeter.properties` and the other property files, `lib/`,
//! `lib/ext/ApacheJMeter_*.jar`). jmeter-maven-plugin's `configure` goal
//! lays it out in a temporary Maven project beside it; the finished home,
//! its marker already inside, is then renamed into place whole, so a
//! half-built home is never seen and two processes installing at once each
//! build and one rename wins. Maven runs offline first (a warm `~/.m2`
//! needs no network) and online only when that fails. A home in place is
//! used as it is, without Java or Maven being run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::JmeterError;
use crate::engine::jvm::{self, MavenFailure};

/// The JMeter version bfgg installs unless told otherwise.
pub const DEFAULT_VERSION: &str = "5.6.3";
/// The plugin that assembles the home. 3.8.0 refuses Maven before 3.9
/// (Debian 12 has 3.8.7); 3.7.0 assembles JMeter 5.6.3 with Maven 3.8.
pub(crate) const PLUGIN_VERSION: &str = "3.7.0";
/// Its coordinates.
const PLUGIN: &str = "com.lazerycode.jmeter:jmeter-maven-plugin";
/// Marks a finished home (its content names what made it); its modification
/// time is the home's last use (`crate::cache`).
const MARKER: &str = "bfgg-jmeter-home";
/// Homes kept per cache (one per JMeter version), by last use.
const KEEP_HOMES: usize = 3;
/// Longest Maven may take (a first install downloads ~80 MB).
const MAVEN_LIMIT: Duration = Duration::from_secs(900);

/// A JMeter installation ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmeterHome {
    dir: PathBuf,
    version: String,
    fresh: bool,
}

impl JmeterHome {
    /// The home directory (`bin/`, `lib/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The launcher, for `java -jar`: `bin/ApacheJMeter-<version>.jar`.
    pub fn launcher(&self) -> PathBuf {
        launcher(&self.dir, &self.version)
    }

    /// JMeter's version (`5.6.3`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether Maven assembled it now (false: it was in the cache).
    pub fn fresh(&self) -> bool {
        self.fresh
    }
}

/// JMeter `version` under `cache_dir` (assembled now with the host's Java
/// and Maven if it is not there yet).
pub async fn install(cache_dir: &Path, version: &str) -> Result<JmeterHome, JmeterError> {
    let (java, maven) = jvm::tools();
    install_with(cache_dir, version, &java, &maven).await
}

/// [`install`] with these Java and Maven executables (run only when the
/// home is not there yet).
pub(crate) async fn install_with(
    cache_dir: &Path,
    version: &str,
    java: &str,
    maven: &str,
) -> Result<JmeterHome, JmeterError> {
    if !is_version(version) {
        return Err(JmeterError::BadVersion(version.to_owned()));
    }
    let root = cache_dir.join("jmeter");
    let dir = root.join(version);
    let home = |fresh| JmeterHome {
        dir: dir.clone(),
        version: version.to_owned(),
        fresh,
    };
    if is_complete(&dir, version) {
        crate::cache::touch(&dir.join(MARKER));
        return Ok(home(false));
    }
    let java_version = super::java_version(java).await?;
    let maven_version = jvm::maven_version(maven)
        .await
        .map_err(|error| JmeterError::NoMaven {
            maven: maven.to_owned(),
            error,
        })?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(
        "{version}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    tracing::info!("assembling JMeter {version} into {}", dir.display());
    let made = format!(
        "jmeter {version}\njmeter-maven-plugin {PLUGIN_VERSION}\nmaven {maven_version}\njava {java_version}\n"
    );
    let placed = match assemble(&tmp, version, maven, &made).await {
        Ok(built) => place(&built, &dir, version).map_err(JmeterError::from),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    placed?;
    if !is_complete(&dir, version) {
        return Err(JmeterError::Layout {
            version: version.to_owned(),
            dir,
            expected: MARKER.to_owned(),
        });
    }
    crate::cache::touch(&dir.join(MARKER));
    crate::cache::prune(&root, MARKER, KEEP_HOMES);
    Ok(home(true))
}

/// Whether `version` can name a JMeter release (and a directory): it starts
/// with a digit, then digits, letters, dots and dashes, no `..`.
fn is_version(version: &str) -> bool {
    version.len() <= 32
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !version.contains("..")
}

/// `bin/ApacheJMeter-<version>.jar` under `home`.
fn launcher(home: &Path, version: &str) -> PathBuf {
    home.join("bin").join(format!("ApacheJMeter-{version}.jar"))
}

/// Whether `home` is a finished JMeter `version`: the marker (written last)
/// and the files a run needs.
fn is_complete(home: &Path, version: &str) -> bool {
    home.join(MARKER).is_file()
        && launcher(home, version).is_file()
        && home.join("bin/jmeter.properties").is_file()
        && home
            .join("lib/ext")
            .join(format!("ApacheJMeter_core-{version}.jar"))
            .is_file()
}

/// The Maven project whose `configure` goal lays JMeter out.
fn pom(version: &str) -> String {
    format!(
        r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>bfgg</groupId><artifactId>jmeter-install</artifactId><version>1</version>
  <packaging>pom</packaging>
  <build><plugins><plugin>
    <groupId>com.lazerycode.jmeter</groupId><artifactId>jmeter-maven-plugin</artifactId><version>{PLUGIN_VERSION}</version>
    <configuration><jmeterVersion>{version}</jmeterVersion></configuration>
  </plugin></plugins></build>
</project>
"#
    )
}

/// Runs the plugin in the project `tmp` and returns the home it laid out
/// (`tmp/target/<uuid>/jmeter/`), `made` written into its marker.
async fn assemble(
    tmp: &Path,
    version: &str,
    maven: &str,
    made: &str,
) -> Result<PathBuf, JmeterError> {
    // The plugin wants a test directory, even an empty one.
    let tests = tmp.join("src/test/jmeter");
    std::fs::create_dir_all(&tests).with_context(|| format!("creating {}", tests.display()))?;
    std::fs::write(tmp.join("pom.xml"), pom(version))
        .with_context(|| format!("writing {}", tmp.join("pom.xml").display()))?;
    let args = [
        "-ntp".to_owned(),
        format!("{PLUGIN}:{PLUGIN_VERSION}:configure"),
    ];
    jvm::run_offline_first(
        tmp,
        maven,
        &args,
        MAVEN_LIMIT,
        // Nothing of the user's is built: any offline failure may be a
        // missing download.
        |_| true,
        &format!("Maven is fetching JMeter {version} (its first install on this node)"),
    )
    .await
    .map_err(|failure| match failure {
        MavenFailure::NotRun(error) => JmeterError::NoMaven {
            maven: maven.to_owned(),
            error,
        },
        MavenFailure::TimedOut(limit) => JmeterError::Other(anyhow::anyhow!(
            "Maven did not finish assembling JMeter {version} within {} s",
            limit.as_secs()
        )),
        MavenFailure::Failed(output) => JmeterError::Maven {
            version: version.to_owned(),
            detail: jvm::maven_errors(&output),
        },
    })?;
    let target = tmp.join("target");
    let home = std::fs::read_dir(&target)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("jmeter"))
        .find(|home| launcher(home, version).is_file())
        .ok_or_else(|| JmeterError::Layout {
            version: version.to_owned(),
            dir: target.clone(),
            expected: format!("*/jmeter/bin/ApacheJMeter-{version}.jar"),
        })?;
    std::fs::write(home.join(MARKER), made)
        .with_context(|| format!("writing {}", home.join(MARKER).display()))?;
    Ok(home)
}

/// Renames the finished home `built` to `dir`. Another process's home
/// already there wins (ours is dropped with its temporary project); a
/// directory there without a marker (never one of bfgg's, which arrive
/// whole) is moved aside and removed first.
fn place(built: &Path, dir: &Path, version: &str) -> anyhow::Result<()> {
    for _ in 0..2 {
        match std::fs::rename(built, dir) {
            Ok(()) => return Ok(()),
            Err(_) if is_complete(dir, version) => return Ok(()),
            Err(e) if !dir.exists() => {
                return Err(e)
                    .with_context(|| format!("moving {} to {}", built.display(), dir.display()));
            }
            Err(_) => {
                let aside = dir
                    .with_file_name(format!("{version}.tmp-stale-{:08x}", rand::random::<u32>()));
                tracing::warn!(
                    "{} is not a finished JMeter home: replacing it",
                    dir.display()
                );
                if std::fs::rename(dir, &aside).is_ok() {
                    let _ = std::fs::remove_dir_all(&aside);
                }
            }
        }
    }
    anyhow::bail!("could not put JMeter's home in place at {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A home's files, without Maven.
    fn fake_home(dir: &Path, version: &str, marker: bool) {
        std::fs::create_dir_all(dir.join("lib/ext")).expect("mkdir");
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        std::fs::write(launcher(dir, version), "jar").expect("write");
        std::fs::write(dir.join("bin/jmeter.properties"), "").expect("write");
        let core = format!("lib/ext/ApacheJMeter_core-{version}.jar");
        std::fs::write(dir.join(core), "jar").expect("write");
        if marker {
            std::fs::write(dir.join(MARKER), "test").expect("write");
        }
    }

    #[test]
    fn versions_are_checked_before_they_name_a_directory() {
        for good in ["5.6.3", "5.6", "6.0.0-rc1"] {
            assert!(is_version(good), "{good}");
        }
        for bad in [
            "",
            "latest",
            "../5.6.3",
            "5..6",
            "5/6",
            "5.6.3 ",
            &"9".repeat(33),
        ] {
            assert!(!is_version(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_home_in_place_is_used_without_java_or_maven() {
        let cache = tempfile::tempdir().expect("tempdir");
        let dir = cache.path().join("jmeter/5.6.3");
        fake_home(&dir, "5.6.3", true);
        let home = install_with(
            cache.path(),
            "5.6.3",
            "/nonexistent/java",
            "/nonexistent/mvn",
        )
        .await
        .expect("the home in place");
        assert_eq!(home.dir(), dir);
        assert_eq!(home.launcher(), dir.join("bin/ApacheJMeter-5.6.3.jar"));
        assert_eq!((home.version(), home.fresh()), ("5.6.3", false));
    }

    #[tokio::test]
    async fn a_home_without_its_marker_is_not_used() {
        let cache = tempfile::tempdir().expect("tempdir");
        fake_home(&cache.path().join("jmeter/5.6.3"), "5.6.3", false);
        let e = install_with(cache.path(), "5.6.3", "/nonexistent/java", "mvn")
            .await
            .expect_err("no Java to build with");
        assert!(matches!(e, JmeterError::NoJava { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("install Java 17 or later"), "{text}");
        let e = install_with(cache.path(), "latest", "java", "mvn")
            .await
            .expect_err("not a version");
        assert!(matches!(e, JmeterError::BadVersion(_)), "{e}");
    }

    #[test]
    fn placing_keeps_the_first_home_and_replaces_a_broken_one() {
        let cache = tempfile::tempdir().expect("tempdir");
        let dir = cache.path().join("5.6.3");
        // Ours goes in place.
        let ours = cache.path().join("a.tmp/jmeter");
        fake_home(&ours, "5.6.3", true);
        place(&ours, &dir, "5.6.3").expect("placed");
        assert!(is_complete(&dir, "5.6.3") && !ours.exists());
        // Another's, finished later, loses the race: the first stays.
        let later = cache.path().join("b.tmp/jmeter");
        fake_home(&later, "5.6.3", true);
        std::fs::write(later.join(MARKER), "later").expect("write");
        place(&later, &dir, "5.6.3").expect("the first one kept");
        assert_eq!(
            std::fs::read_to_string(dir.join(MARKER)).expect("marker"),
            "test"
        );
        // A directory without a marker is replaced.
        std::fs::remove_file(dir.join(MARKER)).expect("rm");
        place(&later, &dir, "5.6.3").expect("replaced");
        assert_eq!(
            std::fs::read_to_string(dir.join(MARKER)).expect("marker"),
            "later"
        );
        let left: Vec<_> = std::fs::read_dir(cache.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("stale"))
            .collect();
        assert!(left.is_empty(), "the broken one removed: {left:?}");
    }
}
