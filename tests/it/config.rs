//! Configuration in layers: `<config dir>/config.toml`, then `BFGG_*`
//! variables, then flags; `bfgg config show`; a broken file refused with its
//! file, line and key.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Target, Workspace, bfgg, run_with_timeout};

/// `bfgg ARGS` in `ws` with the variables `env`: (exit code, stdout, stderr).
fn bfgg_env(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = bfgg(ws.path());
    cmd.args(args).envs(env.iter().copied());
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `<config dir>/config.toml` (XDG_CONFIG_HOME is `<ws>/config`).
fn write_config(ws: &Workspace, text: &str) -> std::path::PathBuf {
    let dir = ws.path().join("config/bfgg");
    std::fs::create_dir_all(&dir).expect("config dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, text).expect("config.toml");
    file
}

fn scenario(ws: &Workspace, url: &str) -> String {
    ws.write(
        "config-run.toml",
        &format!(
            "[scenario]\nname = \"layers\"\n[target]\nbase_url = \"{url}\"\n\
             [load]\nmodel = \"open\"\nrate = 20\nduration = \"1s\"\n\
             [[request]]\nname = \"home\"\npath = \"/\"\n"
        ),
    )
    .to_str()
    .expect("utf-8")
    .to_owned()
}

fn has_results(dir: &Path) -> bool {
    dir.join("summary.json").is_file()
}

#[test]
fn the_file_then_the_environment_then_flags_set_an_option() {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = scenario(&ws, &target.url);
    let (from_file, from_env, from_flag) = (
        ws.path().join("out-file"),
        ws.path().join("out-env"),
        ws.path().join("out-flag"),
    );
    write_config(
        &ws,
        &format!("[run]\nout = \"{}\"\njson = true\n", from_file.display()),
    );
    // The file alone: --out and --json from it.
    let (code, stdout, stderr) = bfgg_env(&ws, &["run", &file], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(has_results(&from_file), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("--json from the file");
    assert_eq!(summary["total"]["requests"], 20);
    // The variable wins over the file.
    let env_out = from_env.to_str().expect("utf-8");
    let (code, _, stderr) = bfgg_env(&ws, &["run", &file], &[("BFGG_OUT", env_out)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(has_results(&from_env), "{stderr}");
    // The flag wins over both; a variable can also turn a switch off.
    let flag_out = from_flag.to_str().expect("utf-8");
    let (code, stdout, stderr) = bfgg_env(
        &ws,
        &["run", &file, "--out", flag_out],
        &[("BFGG_OUT", env_out), ("BFGG_JSON", "false")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(has_results(&from_flag), "{stderr}");
    assert!(
        serde_json::from_str::<serde_json::Value>(stdout.trim()).is_err(),
        "BFGG_JSON=false wins over the file's json = true: {stdout}"
    );
}

#[test]
fn config_show_names_where_each_value_comes_from() {
    let ws = Workspace::new();
    let file = write_config(
        &ws,
        "[node]\nname = \"from-file\"\nworkers = 2\n\n[tui]\njoin = [\"/ip4/127.0.0.1/tcp/7\"]\n",
    );
    let (code, out, stderr) = bfgg_env(&ws, &["config", "show"], &[("BFGG_WORKERS", "5")]);
    assert_eq!(code, 0, "{stderr}");
    // (value, source) of `key` in `[section]`.
    let row = |section: &str, key: &str| -> (String, String) {
        let start = out
            .find(&format!("[{section}]"))
            .unwrap_or_else(|| panic!("{out}"));
        let line = out[start..]
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing from [{section}]:\n{out}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[1].to_owned(), fields[2..].join(" "))
    };
    let shown = file.display().to_string();
    assert_eq!(
        row("node", "name"),
        ("from-file".into(), format!("{shown}:2"))
    );
    assert_eq!(
        row("node", "workers"),
        ("5".into(), "env BFGG_WORKERS".into())
    );
    assert_eq!(
        row("run", "workers"),
        ("5".into(), "env BFGG_WORKERS".into())
    );
    assert_eq!(
        row("tui", "join"),
        ("/ip4/127.0.0.1/tcp/7".into(), format!("{shown}:6"))
    );
    assert_eq!(row("run", "python"), ("python3".into(), "default".into()));
    assert_eq!(row("run", "json"), ("false".into(), "default".into()));
    assert_eq!(row("run", "target"), ("-".into(), "unset".into()));
}

#[test]
fn a_broken_file_names_its_line_and_key_and_nothing_runs() {
    let ws = Workspace::new();
    let cases = [
        (
            "[run]\nworkers = 2\nbogus = 1\n",
            ":3: [run] unknown key `bogus`",
        ),
        (
            "[run]\n\nworkers = \"many\"\n",
            ":3: [run] workers: invalid value 'many'",
        ),
        (
            "[run]\njson = \"yes\"\n",
            ":2: [run] json: expected true or false",
        ),
        (
            "[run]\nduration = [\"1s\", \"2s\"]\n",
            ":2: [run] duration: takes one value",
        ),
        ("[runn]\nworkers = 1\n", ":1: unknown field `runn`"),
        ("[run\n", ":1:"),
    ];
    for (text, want) in cases {
        let file = write_config(&ws, text);
        let (code, stdout, stderr) = bfgg_env(&ws, &["run", "missing.toml"], &[]);
        assert_eq!(code, 2, "{text}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let expected = format!("{}{want}", file.display());
        assert!(
            stderr.contains(&expected),
            "{text}: want {expected} in {stderr}"
        );
    }
    // A bad variable is refused by its flag.
    write_config(&ws, "");
    let (code, _, stderr) = bfgg_env(&ws, &["run", "missing.toml"], &[("BFGG_WORKERS", "x")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--workers"), "{stderr}");
}
