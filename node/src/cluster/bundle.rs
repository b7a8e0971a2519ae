//! Scenario bundles: the scenario file and every file it references (data
//! pools, body files; for Locust the locustfile and its `include`s; for
//! Gatling the Maven project's sources, for JMeter the plan and the files it reads), shipped
//! content-addressed (SHA-256) and verified on arrival.
//!
//! The client builds a bundle from a loaded scenario ([`build`]); nodes keep
//! files in a content store under their data dir ([`Store`]) and materialize
//! a run's bundle into a directory ([`Store::materialize`]) from which the
//! scenario loads exactly as it did on the client. Paths in a bundle are
//! relative, without `..`: a hostile bundle cannot write outside its
//! directory.

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use bfgg_protocol::mesh::BundleFile;
use sha2::{Digest, Sha256};

use crate::scenario::{Body, Scenario};

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The files of a scenario: the scenario file first, then data pools and body
/// files, or the locustfile and every file of its `include`s (directories
/// walked, see [`walk`]), or the Gatling project's files (its top `target/`
/// and dot names left out: agents build it themselves), relative to the
/// scenario's directory, with their contents. A path listed twice is shipped
/// once.
///
/// Fails when a file is outside the scenario's directory or unreadable, or an
/// included directory holds nothing to ship.
pub fn build(scenario: &Scenario) -> anyhow::Result<(Vec<BundleFile>, Vec<Vec<u8>>)> {
    let base = &scenario.base_dir;
    let mut paths: Vec<PathBuf> = vec![scenario.source.clone()];
    if scenario.git.is_some() {
        // Its files come from the repository: each agent checks it out.
        let bytes = std::fs::read(&scenario.source)
            .with_context(|| format!("reading {}", scenario.source.display()))?;
        let name = scenario.source.file_name().map_or_else(
            || "scenario.toml".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let file = BundleFile {
            path: name,
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        };
        return Ok((vec![file], vec![bytes]));
    }
    paths.extend(scenario.pools.iter().map(|p| p.path.clone()));
    for journey in &scenario.journeys {
        for step in &journey.steps {
            if let Some(Body::File { path, .. }) = &step.body {
                paths.push(path.clone());
            }
        }
    }
    if let Some(locust) = &scenario.locust {
        paths.push(locust.file.clone());
        for include in &locust.include {
            if include.is_dir() {
                let before = paths.len();
                walk(include, &mut paths, &mut Vec::new())?;
                anyhow::ensure!(
                    paths.len() > before,
                    "{} (in [locust] include) has no files to ship (__pycache__, *.pyc and dot-files are left out); add a file or remove it from include",
                    include.display()
                );
            } else {
                paths.push(include.clone());
            }
        }
    }
    if let Some(gatling) = &scenario.gatling {
        paths.extend(crate::engine::gatling::build::project_files(
            &gatling.project,
        )?);
    }
    if let Some(jmeter) = &scenario.jmeter {
        paths.push(jmeter.plan.clone());
        paths.extend(jmeter.files.iter().cloned());
    }
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for path in paths {
        let rel = relative_to(&path, base).with_context(|| {
            format!(
                "{} is outside the scenario's directory {}; a cluster run ships only files under it",
                path.display(),
                base.display()
            )
        })?;
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if files.iter().any(|f: &BundleFile| f.path == rel_text) {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push(BundleFile {
            path: rel_text,
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        });
        contents.push(bytes);
    }
    Ok((files, contents))
}

/// Appends the files under `dir` to `out`, depth first with entries in name
/// order, leaving out `__pycache__` directories, `*.pyc` files and names
/// starting with a dot. Symbolic links are followed; `seen` holds the
/// directories entered (canonical), so a link loop is walked once.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let canonical =
        std::fs::canonicalize(dir).with_context(|| format!("reading {}", dir.display()))?;
    if seen.contains(&canonical) {
        return Ok(());
    }
    seen.push(canonical);
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        entries.push(entry.path());
    }
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if name != "__pycache__" {
                walk(&path, out, seen)?;
            }
        } else if path.extension().is_none_or(|e| e != "pyc") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative_to(path: &Path, base: &Path) -> Option<PathBuf> {
    let abs = |p: &Path| std::fs::canonicalize(p).ok();
    let (p, b) = (abs(path)?, abs(base)?);
    p.strip_prefix(&b).ok().map(Path::to_path_buf)
}

/// A bundle path is safe when it is relative and never climbs out.
pub fn safe_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The content store of a node: `<data dir>/store/<sha256>`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("store"),
        }
    }

    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join(sha256))
    }

    /// Whether the store holds `sha256`.
    pub fn has(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_some_and(|p| p.is_file())
    }

    /// The contents of `sha256`, if held.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path_of(sha256)?).ok()
    }

    /// Stores `bytes` if they hash to `sha256`; refuses them otherwise.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self
            .path_of(sha256)
            .with_context(|| format!("invalid content hash {sha256:?}"))?;
        let actual = sha256_hex(bytes);
        anyhow::ensure!(
            actual == sha256,
            "content does not match its hash: expected {sha256}, got {actual}"
        );
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = self.dir.join(format!("{sha256}.tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Lays the bundle's files out under `dir` by their paths; returns the
    /// scenario file's path. Every file must be in the store.
    pub fn materialize(&self, files: &[BundleFile], dir: &Path) -> anyhow::Result<PathBuf> {
        let first = files.first().context("the bundle has no files")?;
        for f in files {
            anyhow::ensure!(safe_path(&f.path), "unsafe path in bundle: {:?}", f.path);
            let bytes = self.get(&f.sha256).with_context(|| {
                format!("bundle file {} ({}) is not in the store", f.path, f.sha256)
            })?;
            let target = dir.join(&f.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&target, bytes)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        Ok(dir.join(&first.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to `root/rel`, making its directories.
    fn write_file(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// A node's store holding `files`, materialized: the node's directory
    /// (kept alive by the caller) and the run's.
    fn ship(files: &[BundleFile], contents: &[Vec<u8>]) -> (tempfile::TempDir, PathBuf) {
        let node = tempfile::tempdir().expect("tempdir");
        let store = Store::new(node.path());
        for (f, c) in files.iter().zip(contents) {
            store.put(&f.sha256, c).expect("put");
        }
        let out = node.path().join("run");
        let first = store.materialize(files, &out).expect("materialize");
        assert_eq!(first, out.join(&files[0].path), "the scenario file first");
        (node, out)
    }

    #[test]
    fn bundles_carry_the_scenario_and_its_files_and_load_back() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(src.path().join("data")).expect("mkdir");
        std::fs::write(src.path().join("data/users.csv"), "user\nada\n").expect("csv");
        std::fs::write(src.path().join("body.bin"), b"\x00\x01").expect("body");
        let toml = r#"
[target]
base_url = "http://127.0.0.1:1"
[load]
model = "closed"
users = 1
duration = "1s"
[data.users]
file = "data/users.csv"
[[request]]
method = "POST"
path = "/x/{{users.user}}"
body_file = "body.bin"
"#;
        std::fs::write(src.path().join("s.toml"), toml).expect("toml");
        let scenario = crate::scenario::load(&src.path().join("s.toml")).expect("loads");
        let (files, contents) = build(&scenario).expect("bundle");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["s.toml", "data/users.csv", "body.bin"]);
        assert_eq!(files[1].sha256, sha256_hex(b"user\nada\n"));

        let node = tempfile::tempdir().expect("tempdir");
        let store = Store::new(node.path());
        for (f, c) in files.iter().zip(&contents) {
            store.put(&f.sha256, c).expect("put");
        }
        assert!(
            store.put(&files[0].sha256, b"tampered").is_err(),
            "hash mismatch refused"
        );
        let out = node.path().join("run");
        let scenario_path = store.materialize(&files, &out).expect("materialize");
        let again = crate::scenario::load(&scenario_path).expect("loads from the bundle");
        assert_eq!(again.journeys.len(), 1);
    }

    #[test]
    fn locust_bundles_carry_the_locustfile_and_its_includes() {
        let src = tempfile::tempdir().expect("tempdir");
        let root = src.path();
        let write = |rel: &str, text: &str| write_file(root, rel, text);
        write("locustfile.py", "from helpers.auth import login\n");
        write("helpers/__init__.py", "");
        write("helpers/auth.py", "def login(): pass\n");
        write("helpers/sub/z.py", "Z = 1\n");
        write("helpers/a.json", "{}\n");
        write("helpers/__pycache__/auth.cpython-312.pyc", "x");
        write("helpers/stale.pyc", "x");
        write("helpers/.hidden", "x");
        write("helpers/.git/config", "x");
        write("data/users.csv", "user\nada\n");
        write("empty/__pycache__/x.pyc", "x");
        let toml = r#"
[scenario]
engine = "locust"
[target]
base_url = "http://127.0.0.1:1"
[locust]
file = "locustfile.py"
include = ["helpers", "data/users.csv", "locustfile.py", "helpers/auth.py"]
[load]
model = "closed"
users = 1
duration = "1s"
"#;
        write("s.toml", toml);
        let scenario = crate::scenario::load(&root.join("s.toml")).expect("loads");
        let (files, contents) = build(&scenario).expect("bundle");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "s.toml",
                "locustfile.py",
                "helpers/__init__.py",
                "helpers/a.json",
                "helpers/auth.py",
                "helpers/sub/z.py",
                "data/users.csv",
            ]
        );

        let (_node, out) = ship(&files, &contents);
        let scenario_path = out.join(&files[0].path);
        let again = crate::scenario::load(&scenario_path).expect("loads from the bundle");
        let spec = again.locust.as_ref().expect("[locust]");
        assert_eq!(spec.file, out.join("locustfile.py"));
        assert_eq!(
            std::fs::read_to_string(out.join("helpers/auth.py")).expect("shipped"),
            "def login(): pass\n"
        );
        assert!(!out.join("helpers/__pycache__").exists());

        // A directory with nothing to ship is refused at the client.
        write("s.toml", &toml.replace("\"helpers\",", "\"empty\","));
        let scenario = crate::scenario::load(&root.join("s.toml")).expect("loads");
        let err = build(&scenario).expect_err("empty include").to_string();
        assert!(err.contains("has no files to ship"), "{err}");
    }

    #[test]
    fn locust_files_outside_the_scenario_directory_are_refused() {
        let outer = tempfile::tempdir().expect("tempdir");
        let dir = outer.path().join("scenario");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(outer.path().join("shared.py"), "").expect("write");
        std::fs::write(dir.join("locustfile.py"), "").expect("write");
        std::fs::write(
            dir.join("s.toml"),
            "[scenario]\nengine = \"locust\"\n[target]\nbase_url = \"http://127.0.0.1:1\"\n\
             [locust]\nfile = \"locustfile.py\"\ninclude = [\"../shared.py\"]\n\
             [load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n",
        )
        .expect("write");
        let scenario = crate::scenario::load(&dir.join("s.toml")).expect("loads");
        let err = format!("{:#}", build(&scenario).expect_err("outside"));
        assert!(err.contains("is outside the scenario's directory"), "{err}");
    }

    #[test]
    fn gatling_bundles_carry_the_project_sources_and_not_its_build_output() {
        let src = tempfile::tempdir().expect("tempdir");
        let root = src.path();
        let write = |rel: &str, text: &str| write_file(root, rel, text);
        write("sim/pom.xml", "<project/>\n");
        write("sim/src/test/java/example/Sim.java", "class Sim {}\n");
        write("sim/src/test/resources/users.csv", "user\nada\n");
        write("sim/target/classes/Sim.class", "built here");
        write("sim/.mvn/jvm.config", "-Xmx1g");
        write(
            "sim/src/target/Kept.java",
            "only the top target/ is build output",
        );
        let toml = r#"
[scenario]
engine = "gatling"
[target]
base_url = "http://127.0.0.1:1"
[gatling]
project = "sim"
simulation = "example.Sim"
[load]
duration = "1s"
"#;
        write("s.toml", toml);
        let scenario = crate::scenario::load(&root.join("s.toml")).expect("loads");
        let (files, contents) = build(&scenario).expect("bundle");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "s.toml",
                "sim/pom.xml",
                "sim/src/target/Kept.java",
                "sim/src/test/java/example/Sim.java",
                "sim/src/test/resources/users.csv",
            ]
        );
        let (_node, out) = ship(&files, &contents);
        let scenario_path = out.join(&files[0].path);
        let again = crate::scenario::load(&scenario_path).expect("loads from the bundle");
        let spec = again.gatling.as_ref().expect("[gatling]");
        assert_eq!(spec.project, out.join("sim"));
        // The agent builds the same project the client holds: same hash.
        assert_eq!(
            crate::engine::gatling::build::project_hash(&spec.project).expect("hash"),
            crate::engine::gatling::build::project_hash(&root.join("sim")).expect("hash"),
        );
    }

    #[test]
    fn a_scenario_with_a_git_source_ships_alone() {
        let src = tempfile::tempdir().expect("tempdir");
        let toml = "[source]\ngit = \"file:///srv/perf.git\"\n[target]\nbase_url = \"http://127.0.0.1:1\"\n\
                    [load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n\
                    [data.users]\nfile = \"data/users.csv\"\n[[request]]\npath = \"/{{users.name}}\"\n";
        std::fs::write(src.path().join("s.toml"), toml).expect("toml");
        let scenario = crate::scenario::load(&src.path().join("s.toml")).expect("loads");
        let (files, contents) = build(&scenario).expect("bundle");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["s.toml"], "the pool comes from the repository");
        assert_eq!(contents[0], toml.as_bytes());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(!safe_path(p), "{p}");
        }
        for p in ["x.csv", "data/x.csv"] {
            assert!(safe_path(p), "{p}");
        }
        let store = Store::new(Path::new("/nonexistent"));
        assert!(!store.has("../../etc/passwd"));
        assert!(store.get("zz").is_none());
    }
}
