//! `[source]`: a scenario whose files are in a git repository, loaded
//! without a checkout (files deferred) and with one (files from its `path`).

use super::*;

/// A native scenario reading a pool and a body file, from `[source]`.
fn with_source(source: &str) -> String {
    format!(
        r#"{source}
[target]
base_url = "http://127.0.0.1:8080"
[load]
model = "closed"
users = 1
duration = "1s"
[data.users]
file = "data/users.csv"
[[request]]
method = "POST"
path = "/x/{{{{users.name}}}}"
body_file = "bodies/one.json"
"#
    )
}

#[test]
fn without_a_checkout_the_files_are_not_read_and_the_source_is_kept() {
    let s = ok(&with_source(
        "[source]\ngit = \"https://git.example/perf.git\"",
    ));
    assert!(s.files_deferred);
    assert_eq!(
        s.git,
        Some(GitSource {
            url: "https://git.example/perf.git".into(),
            rev: "HEAD".into(),
            path: String::new(),
        })
    );
    // Without [source], the same files must exist beside the scenario.
    let errs = errors(&with_source(""));
    assert!(
        errs.iter().any(|e| e.contains("data file not found")),
        "{errs:?}"
    );
}

#[test]
fn with_a_checkout_files_are_read_from_its_path() {
    let checkout = tempfile::tempdir().expect("tempdir");
    let load = checkout.path().join("perf/load");
    std::fs::create_dir_all(load.join("data")).expect("mkdir");
    std::fs::create_dir_all(load.join("bodies")).expect("mkdir");
    std::fs::write(load.join("data/users.csv"), "name\nada\n").expect("csv");
    std::fs::write(load.join("bodies/one.json"), "{}").expect("body");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        with_source(
            "[source]\ngit = \"file:///srv/perf.git\"\nrev = \"v1.2\"\npath = \"perf/load/\"",
        ),
    )
    .expect("toml");
    let s = load_in(&file, checkout.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!s.files_deferred);
    assert_eq!(s.base_dir, load);
    assert_eq!(s.pools[0].path, load.join("data/users.csv"));
    let git = s.git.expect("source");
    assert_eq!((git.rev.as_str(), git.path.as_str()), ("v1.2", "perf/load"));
    // A file the commit lacks is reported as missing there.
    std::fs::remove_file(load.join("bodies/one.json")).expect("rm");
    let err = load_in(&file, checkout.path())
        .expect_err("missing body")
        .to_string();
    assert!(
        err.contains("body file not found") && err.contains("perf/load/bodies"),
        "{err}"
    );
}

#[test]
fn a_wrong_source_is_reported_where_it_is() {
    assert_eq!(
        errors(&with_source(
            "[source]\ngit = \"--upload-pack=touch /tmp/x\"\nrev = \"main..dev\"\npath = \"../elsewhere\""
        )),
        [
            "2:7 source.git: `--upload-pack=touch /tmp/x` is not a repository URL",
            "3:7 source.rev: `main..dev` is not a branch, tag or commit",
            "4:8 source.path: `../elsewhere` is not a directory inside the repository",
        ]
    );
    let (summary, help) = single(&with_source("[source]\nrev = \"main\""));
    assert_eq!(
        summary,
        "1:1 source.git: missing `git`: the repository to read the scenario's files from"
    );
    assert!(help.is_some_and(|h| h.contains("file://")));
    let (summary, _) = single(&with_source("[source]\ngit = \"x\"\nbranch = \"main\""));
    assert!(summary.contains("branch"), "{summary}");
}
