//! Building a Gatling project once per content: the project's files are
//! hashed (SHA-256 over paths and bytes, Maven's `target/` and dot-files
//! left out), copied into `<cache>/gatling/<hash>/`, and compiled there with
//! Maven, which also writes the test-scope class path. The start instant
//! then launches the JVM on that class path, with no Maven in between.
//!
//! Maven runs offline (`-o`) first; only when the local repository lacks
//! something does it run again online. A build that fails is not cached:
//! its message (Maven's `[ERROR]` lines) is the error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::GatlingError;
use crate::engine::jvm::{self, MavenFailure};

/// Longest a Maven build may take (a first build downloads Gatling).
pub(crate) const MAVEN_LIMIT: Duration = Duration::from_secs(900);
/// Marks a finished build in its cache directory.
const DONE: &str = "bfgg-build-done";
/// Builds kept per cache, by last use (see `crate::cache`).
pub(crate) const KEEP_BUILDS: usize = 20;
/// The class path file Maven writes.
const CLASSPATH: &str = "classpath.txt";
/// The version of the Maven that made a build.
const MAVEN_VERSION: &str = "bfgg-maven-version";

/// A compiled project.
#[derive(Debug, Clone)]
pub(crate) struct Build {
    /// The project's copy, where Maven built it (the JVM's working
    /// directory, so the simulation finds its files as under Maven).
    pub(crate) dir: PathBuf,
    /// The JVM class path: compiled tests, compiled main code, then the
    /// dependencies in Maven's order.
    pub(crate) classpath: String,
    /// Whether this build was made now (false: taken from the cache).
    pub(crate) fresh: bool,
}

/// bfgg's launcher (see `Launcher.java`): Gatling's main, plus a stop
/// that flushes `simulation.log`.
const LAUNCHER: &str = include_str!("Launcher.java");
/// Its main class.
pub(crate) const LAUNCHER_CLASS: &str = "bfgg.GatlingLauncher";

/// The launcher compiled with `javac` (of the JDK that runs it) under
/// `cache`, once per source and Java version; returns the class directory.
pub(crate) async fn launcher(
    cache: &Path,
    javac: &str,
    java_version: &str,
) -> Result<PathBuf, GatlingError> {
    let mut hasher = Sha256::new();
    hasher.update(LAUNCHER.as_bytes());
    hasher.update(java_version.as_bytes());
    let hash: String = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache.join("gatling").join(format!("launcher-{hash}"));
    if dir.join("bfgg/GatlingLauncher.class").is_file() {
        return Ok(dir);
    }
    let tmp = cache.join("gatling").join(format!(
        "launcher-{hash}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let src = tmp.join("src/bfgg/GatlingLauncher.java");
    std::fs::create_dir_all(src.parent().unwrap_or(&tmp))
        .with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::write(&src, LAUNCHER).with_context(|| format!("writing {}", src.display()))?;
    let mut cmd = tokio::process::Command::new(javac);
    cmd.arg("-nowarn")
        .arg("-XDignore.symbol.file")
        .arg("-d")
        .arg(&tmp)
        .arg(&src)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .map_err(|_| GatlingError::Other(anyhow::anyhow!("javac took more than 120 s")))?
        .map_err(|e| GatlingError::NoJava {
            java: javac.to_owned(),
            error: format!(
                "{e} (a JDK is needed, not only a JRE: bfgg compiles a small launcher with javac)"
            ),
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(GatlingError::Other(anyhow::anyhow!(
            "compiling bfgg's Gatling launcher failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let _ = std::fs::remove_dir_all(tmp.join("src"));
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if !dir.join("bfgg/GatlingLauncher.class").is_file() {
        return Err(
            anyhow::anyhow!("the launcher's class is missing from {}", dir.display()).into(),
        );
    }
    Ok(dir)
}

/// The files of `project` that make a build: every file but Maven's
/// `target/` at the top and names starting with a dot, sorted.
pub(crate) fn project_files(project: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, top: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            entries.push(
                entry
                    .with_context(|| format!("reading {}", dir.display()))?
                    .path(),
            );
        }
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with('.') || (top && name == "target") {
                continue;
            }
            if path.is_dir() {
                walk(&path, false, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(project, true, &mut out)?;
    Ok(out)
}

/// SHA-256 over the project's files (relative path, length, bytes), hex.
pub(crate) fn project_hash(project: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    for path in project_files(project)? {
        let rel = path.strip_prefix(project).unwrap_or(&path);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The Maven version that made the cached build of the project whose
/// [`project_hash`] is `hash`, if there is one.
pub(crate) fn built_with(cache: &Path, hash: &str) -> Option<String> {
    let dir = cache.join("gatling").join(hash.get(..32)?);
    if !dir.join(DONE).is_file() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join(MAVEN_VERSION)).ok()?;
    Some(text.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The build of `project` (whose [`project_hash`] is `hash`) under `cache`
/// (made now with `maven`, version `maven_version`, if not there), checked to
/// hold `simulation`.
pub(crate) async fn build(
    project: &Path,
    hash: &str,
    simulation: &str,
    cache: &Path,
    maven: &str,
    maven_version: &str,
) -> Result<Build, GatlingError> {
    let root = cache.join("gatling");
    let dir = root.join(&hash[..32]);
    let mut fresh = false;
    if !dir.join(DONE).is_file() {
        fresh = true;
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let tmp = root.join(format!(
            "{}.tmp-{}-{:08x}",
            &hash[..32],
            std::process::id(),
            rand::random::<u32>()
        ));
        let built = async {
            copy_project(project, &tmp)?;
            compile(&tmp, maven).await?;
            std::fs::write(tmp.join(MAVEN_VERSION), maven_version)
                .context("noting the Maven version")?;
            std::fs::write(tmp.join(DONE), hash).context("marking the build done")?;
            Ok::<_, GatlingError>(())
        }
        .await;
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&tmp);
            // The compiler names files in the copy: name them in the project.
            return Err(match e {
                GatlingError::Build { detail } => GatlingError::Build {
                    detail: detail.replace(&format!("{}/", tmp.display()), ""),
                },
                e => e,
            });
        }
        // Another run may have finished the same build meanwhile: keep one.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join(DONE).is_file() {
                return Err(
                    anyhow::anyhow!("could not keep the build in {}", dir.display()).into(),
                );
            }
        }
    }
    crate::cache::touch(&dir.join(DONE));
    if fresh {
        crate::cache::prune(&root, DONE, KEEP_BUILDS);
    }
    let classpath = std::fs::read_to_string(dir.join(CLASSPATH))
        .with_context(|| format!("reading {}", dir.join(CLASSPATH).display()))?;
    let own = [dir.join("target/test-classes"), dir.join("target/classes")];
    if !own.iter().any(|d| class_file(d, simulation).is_file()) {
        return Err(GatlingError::NoSimulation {
            simulation: simulation.to_owned(),
            found: simulations(&own),
        });
    }
    let mut parts: Vec<String> = own.iter().map(|d| d.display().to_string()).collect();
    parts.extend(
        classpath
            .trim()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    Ok(Build {
        dir,
        classpath: parts.join(":"),
        fresh,
    })
}

/// Copies the project's build files into `to`.
fn copy_project(project: &Path, to: &Path) -> anyhow::Result<()> {
    for path in project_files(project)? {
        let rel = path.strip_prefix(project).unwrap_or(&path);
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(&path, &dest)
            .with_context(|| format!("copying {} to {}", path.display(), dest.display()))?;
    }
    Ok(())
}

/// `mvn test-compile dependency:build-classpath` in `dir`: offline first,
/// online when the local repository lacks something.
async fn compile(dir: &Path, maven: &str) -> Result<(), GatlingError> {
    let args = [
        "test-compile".to_owned(),
        "dependency:build-classpath".to_owned(),
        "-Dmdep.includeScope=test".to_owned(),
        format!("-Dmdep.outputFile={}", dir.join(CLASSPATH).display()),
    ];
    jvm::run_offline_first(
        dir,
        maven,
        &args,
        MAVEN_LIMIT,
        jvm::needs_network,
        "Maven is fetching what the project needs (first build of this project here)",
    )
    .await
    .map_err(|failure| match failure {
        MavenFailure::NotRun(error) => GatlingError::NoMaven {
            maven: maven.to_owned(),
            error,
        },
        MavenFailure::TimedOut(limit) => GatlingError::Other(anyhow::anyhow!(
            "Maven did not finish building the project within {} s",
            limit.as_secs()
        )),
        MavenFailure::Failed(output) => GatlingError::Build {
            detail: jvm::maven_errors(&output),
        },
    })
}

/// Where the class file of `class` is under `dir`.
fn class_file(dir: &Path, class: &str) -> PathBuf {
    dir.join(format!("{}.class", class.replace('.', "/")))
}

/// Classes under `dirs` whose name ends in `Simulation` (for "did you
/// mean"), at most 10.
fn simulations(dirs: &[PathBuf]) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Some(rel) = path.strip_prefix(root).ok().and_then(|r| r.to_str())
                && let Some(class) = rel.strip_suffix(".class")
                && !class.contains('$')
                && class.ends_with("Simulation")
            {
                out.push(class.replace('/', "."));
            }
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        walk(dir, dir, &mut out);
    }
    out.truncate(10);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_build_names_the_maven_that_made_it() {
        let cache = tempfile::tempdir().expect("tempdir");
        let hash = "ab".repeat(32);
        assert_eq!(built_with(cache.path(), &hash), None, "no build");
        let dir = cache.path().join("gatling").join(&hash[..32]);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(MAVEN_VERSION), "3.8.7\n").expect("write");
        assert_eq!(built_with(cache.path(), &hash), None, "not finished");
        std::fs::write(dir.join(DONE), &hash).expect("write");
        assert_eq!(built_with(cache.path(), &hash).as_deref(), Some("3.8.7"));
        assert_eq!(built_with(cache.path(), "short"), None);
    }

    #[test]
    fn the_hash_follows_content_and_ignores_build_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        std::fs::write(p.join("pom.xml"), "<project/>").expect("write");
        std::fs::create_dir_all(p.join("src/test/java")).expect("mkdir");
        std::fs::write(p.join("src/test/java/A.java"), "class A {}").expect("write");
        let first = project_hash(p).expect("hash");
        std::fs::create_dir_all(p.join("target/classes")).expect("mkdir");
        std::fs::write(p.join("target/classes/A.class"), "x").expect("write");
        std::fs::write(p.join(".idea"), "x").expect("write");
        assert_eq!(project_hash(p).expect("hash"), first);
        std::fs::write(p.join("src/test/java/A.java"), "class A { }").expect("write");
        assert_ne!(project_hash(p).expect("hash"), first);
        // A file moved is another project, even with the same bytes.
        std::fs::remove_file(p.join("src/test/java/A.java")).expect("rm");
        std::fs::write(p.join("src/test/java/B.java"), "class A { }").expect("write");
        assert_ne!(project_hash(p).expect("hash"), first);
    }
}
