//! `bfgg runs` over the local results store (`XDG_DATA_HOME` of a temp
//! workspace): list, show, compare flagging a deliberately slower run and
//! `--fail-if` setting the exit code, rm (refused for a run whose upload
//! failed, unless forced).

use std::path::Path;
use std::time::Duration;

use crate::harness::{Target, Workspace, bfgg, run_with_timeout};

fn scenario(ws: &Workspace, url: &str) -> std::path::PathBuf {
    ws.write(
        "runs.toml",
        &format!(
            r#"
[scenario]
name = "runs"
[target]
base_url = "{url}"
[load]
model = "open"
rate = 100
duration = "2s"
[[request]]
name = "home"
path = "/"
"#
        ),
    )
}

/// `bfgg ARGS` in `home`: (exit code, stdout, stderr).
fn bfgg_in(home: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = bfgg(home);
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_are_listed_shown_compared_and_removed() {
    let fast = Target::start(&[]);
    let slow = Target::start(&["--latency", "25ms"]);
    let ws = Workspace::new();
    let home = ws.path();
    let file = scenario(&ws, &fast.url);
    let file = file.to_str().expect("utf-8");
    // A: fast. B: the same scenario against a target 25 ms slower.
    let (code, _, stderr) = bfgg_in(home, &["run", file]);
    assert_eq!(code, 0, "{stderr}");
    std::thread::sleep(Duration::from_millis(1100)); // names carry a 1 s stamp
    let (code, _, stderr) = bfgg_in(home, &["run", file, "--target", &slow.url]);
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, _) = bfgg_in(home, &["runs", "list", "--json"]);
    assert_eq!(code, 0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("json");
    assert_eq!(list.len(), 2, "{stdout}");
    let (b, a) = (
        list[0]["name"].as_str().expect("name").to_owned(),
        list[1]["name"].as_str().expect("name").to_owned(),
    );
    assert!(b > a, "newest first: {b} {a}");
    assert_eq!(list[0]["requests"], 200);
    let (code, table, _) = bfgg_in(home, &["runs", "list"]);
    assert_eq!(code, 0);
    assert!(table.contains(&a) && table.contains(&b), "{table}");

    // The report is written again on demand.
    let report = Path::new(list[1]["dir"].as_str().expect("dir")).join("report.html");
    std::fs::remove_file(&report).expect("the run wrote a report");
    let (code, out, stderr) = bfgg_in(home, &["runs", "report", &a]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("report.html") && report.is_file(), "{out}");
    let (code, shown, _) = bfgg_in(home, &["runs", "show", &a]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("home") && shown.contains("results:"),
        "{shown}"
    );

    let (code, compared, stderr) = bfgg_in(home, &["runs", "compare", &a, &b]);
    assert_eq!(code, 0, "no rule: exit 0 ({stderr})");
    // The median: 25 ms apart whatever a loaded box does to a 200-request
    // run's p99 (one stall in A once made it 27.8 ms against B's 28.7).
    let p50_line = compared
        .lines()
        .find(|l| l.trim_start().starts_with('*') && l.contains("p50 "))
        .unwrap_or_else(|| panic!("{compared}"));
    assert!(p50_line.ends_with("worse"), "B is slower: {p50_line}");
    let (code, out, _) = bfgg_in(
        home,
        &["runs", "compare", &a, &b, "--fail-if", "p50 > +10%"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL p50 > +10%"), "{out}");
    let (code, out, _) = bfgg_in(
        home,
        &[
            "runs",
            "compare",
            &b,
            &a,
            "--fail-if",
            "p50 > +10%",
            "--json",
        ],
    );
    assert_eq!(code, 0, "A is faster than B: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["rules"][0]["failed"], false);
    let (code, _, stderr) = bfgg_in(home, &["runs", "compare", &a, &b, "--fail-if", "p99 >> 1"]);
    assert_eq!(code, 2, "a malformed rule is a usage error");
    assert!(stderr.contains("is not a rule"), "{stderr}");

    // A failed upload makes the store the only copy: rm refuses unless forced.
    let dir_b = Path::new(list[0]["dir"].as_str().expect("dir")).to_path_buf();
    let (code, _, stderr) = bfgg_in(
        home,
        &[
            "runs",
            "upload",
            &b,
            "--s3",
            "s3://nowhere-bucket/x",
            "--s3-endpoint",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bfgg_in(home, &["runs", "rm", &b]);
    assert_eq!(code, 2);
    assert!(stderr.contains("only copy"), "{stderr}");
    assert!(dir_b.exists());
    let (code, out, _) = bfgg_in(home, &["runs", "rm", &a, &b, "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(!dir_b.exists());
    let (_, stdout, _) = bfgg_in(home, &["runs", "list", "--json"]);
    assert_eq!(stdout.trim(), "[]");
}
