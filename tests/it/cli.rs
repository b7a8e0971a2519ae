//! The command line: help, bad arguments, scenario validation errors with
//! file:line:column, `check` and `check --dry-run`, shell completions and man
//! pages.

use std::time::Duration;

use crate::harness::{Target, Workspace, bfgg, bfgg_bin, run_with_timeout};

fn run(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    let mut cmd = bfgg(ws.path());
    cmd.args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_commands() {
    let ws = Workspace::new();
    let (code, stdout, _) = run(&ws, &["--help"]);
    assert_eq!(code, 0);
    for cmd in ["run", "check", "target", "demo"] {
        assert!(stdout.contains(cmd), "{cmd} missing from:\n{stdout}");
    }
}

#[test]
fn every_bfgg_process_returns_freed_memory_at_once() {
    // The binary runs itself again with mimalloc's purge delay at 0 (see
    // `purge_at_once` in src/main.rs): the long-running process has it in
    // its environment, under the same pid, with its own arguments.
    let target = Target::start(&[]);
    let environ = std::fs::read(format!("/proc/{}/environ", target.pid())).expect("environ");
    assert!(
        environ
            .split(|&b| b == 0)
            .any(|kv| kv == b"MIMALLOC_PURGE_DELAY=0"),
        "MIMALLOC_PURGE_DELAY=0 not in the target's environment"
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", target.pid())).expect("cmdline");
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    assert_eq!(args[0], bfgg_bin().as_bytes(), "argv[0] as given");
    assert_eq!(&args[1..4], [&b"target"[..], b"--listen", b"127.0.0.1:0"]);
}

#[test]
fn completions_cover_every_command_and_bash_parses_them() {
    let ws = Workspace::new();
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, stderr) = run(&ws, &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for word in [
            "run",
            "node",
            "tui",
            "runs",
            "cluster-key-file",
            "s3-endpoint",
        ] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
        if shell == "bash" {
            let file = ws.write("bfgg.bash", &script);
            let out = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .expect("bash");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let (code, _, stderr) = run(&ws, &["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}

#[test]
fn man_pages_describe_every_command_and_its_flags() {
    let ws = Workspace::new();
    let (code, page, stderr) = run(&ws, &["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH bfgg 1"),
        "{page}"
    );
    assert!(page.contains(".SH NAME") && page.contains("node"), "{page}");
    let dir = ws.path().join("man");
    let dir_arg = dir.to_str().expect("utf-8");
    let (code, out, stderr) = run(&ws, &["man", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("man pages written"), "{out}");
    for (file, flag) in [
        ("bfgg.1", "completions"),
        ("bfgg-run.1", "\\-\\-cluster"),
        ("bfgg-node.1", "\\-\\-join"),
        ("bfgg-runs-upload.1", "\\-\\-s3"),
    ] {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            text.contains(".SH NAME") && text.contains(flag),
            "{file} lacks {flag}"
        );
    }
    assert!(!dir.join("bfgg-help.1").exists(), "no page for `help`");
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let ws = Workspace::new();
    let (code, _, stderr) = run(&ws, &["run", "x.toml", "--bogus"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn a_missing_scenario_file_names_the_path() {
    let ws = Workspace::new();
    let (code, _, stderr) = run(&ws, &["run", "does-not-exist.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("does-not-exist.toml"), "{stderr}");
}

#[test]
fn a_broken_scenario_gives_file_line_column_and_exit_2() {
    let ws = Workspace::new();
    let file = ws.write(
        "broken.toml",
        "[target]\nbase_url = \"http://127.0.0.1:1\"\n\n[load]\nmodel = \"open\"\nrate = \"fast\"\nduration = \"5s\"\n\n[[request]]\npath = \"/\"\n",
    );
    let (code, _, stderr) = run(&ws, &["run", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("broken.toml:6:8"),
        "expected file:line:column in:\n{stderr}"
    );
    assert!(stderr.contains("rate"), "{stderr}");

    let (code, _, stderr) = run(&ws, &["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("broken.toml:6:8"), "{stderr}");
}

#[test]
fn a_toml_syntax_error_points_at_its_position() {
    let ws = Workspace::new();
    let file = ws.write("syntax.toml", "[load]\nmodel = \"open\nrate = 5\n");
    let (code, _, stderr) = run(&ws, &["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("syntax.toml:2:"), "{stderr}");
}

#[test]
fn every_example_scenario_checks() {
    let ws = Workspace::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    // Examples with files of their own (a locustfile) have a directory.
    for dir in [dir.clone(), dir.join("locust")] {
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let (code, stdout, stderr) = run(&ws, &["check", path.to_str().expect("utf-8")]);
                assert_eq!(code, 0, "{}: {stderr}", path.display());
                assert!(stdout.starts_with("ok: "), "{stdout}");
                n += 1;
            }
        }
    }
    assert!(n >= 5, "expected the example scenarios, found {n}");
}

#[test]
fn dry_run_sends_each_journey_once_and_shows_extractions() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = ws.write(
        "journey.toml",
        r#"
[target]
base_url = "http://127.0.0.1:1"
[load]
model = "closed"
users = 1
duration = "1s"
[[journey]]
name = "login-flow"
  [[journey.step]]
  name = "login"
  method = "POST"
  path = "/login"
  json = { user = "ada", password = "secret" }
  extract = { token = { json = "/token" } }
  check = { status = 200 }
  [[journey.step]]
  name = "me"
  path = "/me"
  headers = { authorization = "Bearer {{token}}" }
  check = { status = 200, body_contains = "ada" }
"#,
    );
    let (code, stdout, stderr) = run(
        &ws,
        &[
            "check",
            "--dry-run",
            "--target",
            &target.url,
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("login"), "{stdout}");
    assert!(stdout.contains("token = tok-ada"), "{stdout}");
    assert!(stdout.contains("GET /me"), "{stdout}");
    assert_eq!(
        target.stats()["total"].as_u64(),
        Some(2),
        "one request per step"
    );
}

#[test]
fn dry_run_reports_a_failed_check_with_exit_1() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = ws.write(
        "fail.toml",
        r#"
[target]
base_url = "http://127.0.0.1:1"
[load]
model = "closed"
users = 1
duration = "1s"
[[request]]
name = "down"
path = "/status/503"
check = { status = 200 }
"#,
    );
    let (code, stdout, _) = run(
        &ws,
        &[
            "check",
            "--dry-run",
            "--target",
            &target.url,
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("check failed: status 503 expected 200"),
        "{stdout}"
    );
}
