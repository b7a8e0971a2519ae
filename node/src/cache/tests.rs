//! Pruning by last use, with real directories and modification times.

use std::time::{Duration, SystemTime};

use super::*;

fn entry(root: &Path, name: &str, used_secs_ago: u64) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("done"), name).expect("marker");
    let file = std::fs::File::options()
        .append(true)
        .open(dir.join("done"))
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(used_secs_ago))
        .expect("set mtime");
}

fn names(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn past_the_limit_the_least_recently_used_entries_go() {
    let root = tempfile::tempdir().expect("tempdir");
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        entry(root.path(), name, 100 - 10 * i as u64);
    }
    // "a" is the oldest, but used now: it stays.
    touch(&root.path().join("a/done"));
    // An entry still being made (no marker), and leftovers of interrupted
    // builds: a fresh one stays, an hour-old one goes.
    std::fs::create_dir_all(root.path().join("building")).expect("mkdir");
    std::fs::create_dir_all(root.path().join("f.tmp-1")).expect("mkdir");
    let old_tmp = root.path().join("g.tmp-2");
    std::fs::create_dir_all(&old_tmp).expect("mkdir");
    let stamp = std::fs::File::open(&old_tmp).expect("open dir");
    stamp
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .expect("set mtime");
    assert_eq!(prune(root.path(), "done", 3), 2);
    assert_eq!(names(root.path()), ["a", "building", "d", "e", "f.tmp-1"]);
    // Within the limit nothing goes.
    assert_eq!(prune(root.path(), "done", 3), 0);
    assert_eq!(prune(&root.path().join("missing"), "done", 0), 0);
}
