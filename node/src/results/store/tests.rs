//! The results store: listing, resolving and deleting runs.

use super::*;

fn run(store: &Path, name: &str, requests: u64) -> PathBuf {
    let dir = store.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = RunSummary {
        scenario: name.into(),
        ..RunSummary::default()
    };
    s.total.requests = requests;
    crate::results::write_summary(&dir, &s).unwrap();
    std::fs::write(dir.join("scenario.toml"), "").unwrap();
    dir
}

#[test]
fn runs_list_newest_first_with_their_summaries() {
    let store = tempfile::tempdir().unwrap();
    run(store.path(), "20261201-070000-a", 10);
    run(store.path(), "20261201-080000-b", 20);
    std::fs::create_dir(store.path().join("20261201-090000-killed")).unwrap();
    let runs = list(store.path(), 10);
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "20261201-090000-killed",
            "20261201-080000-b",
            "20261201-070000-a"
        ]
    );
    assert!(
        runs[0].summary.is_none(),
        "a run without a summary is still listed"
    );
    assert_eq!(runs[1].summary.as_ref().map(|s| s.total.requests), Some(20));
    assert!(runs[1].scenario.is_some());
    assert_eq!(list(store.path(), 1).len(), 1);
    assert!(list(&store.path().join("none"), 10).is_empty());
}

#[test]
fn runs_resolve_by_path_or_name_and_delete_only_inside_the_store() {
    let store = tempfile::tempdir().unwrap();
    let dir = run(store.path(), "20261201-070000-a", 10);
    assert_eq!(resolve(store.path(), "20261201-070000-a").unwrap().dir, dir);
    assert_eq!(
        resolve(store.path(), dir.to_str().unwrap()).unwrap().dir,
        dir
    );
    let err = resolve(store.path(), "nope").unwrap_err().to_string();
    assert!(err.contains("bfgg runs list"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = run(elsewhere.path(), "x", 1);
    assert!(delete(store.path(), &outside).is_err());
    assert!(outside.exists());
    delete(store.path(), &dir).unwrap();
    assert!(!dir.exists());
}
