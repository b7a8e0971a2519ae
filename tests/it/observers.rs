//! Operators and observers with real processes on 127.0.0.1: two `bfgg
//! node`s with an operators list (one from `--operators`, one from its
//! config dir's file), an operator and an observer, each with a home of its
//! own (and so an operator key of its own, `bfgg id`). The observer sees the
//! run; its `run --cluster` and `stop` are refused with exit 2 and the run
//! goes on untouched; the operator's work as before.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Node, key_text, scenario, status_json, wait_output};
use crate::harness::{Target, Workspace, bfgg, bfgg_bin, run_with_timeout};
use crate::tui::{Tmux, top_line_rps};

/// `bfgg id` for the user whose home is `home`: the id on stdout.
fn bfgg_id(home: &Path) -> String {
    let mut cmd = bfgg(home);
    cmd.arg("id");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(out.status.success(), "bfgg id: {out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("12D3KooW"), "{id}");
    id
}

/// A client command of the user whose home is `home`, joined to `cluster`.
fn client(home: &Path, cluster: &Cluster, args: &[&str]) -> Command {
    let mut cmd = bfgg(home);
    cmd.env("BFGG_LOG", "warn")
        .args(args)
        .args(["--no-mdns", "--join", &cluster.nodes[0].addr])
        .arg("--cluster-key-file")
        .arg(&cluster.key);
    cmd
}

fn served(target: &Target) -> u64 {
    target.stats()["total"].as_u64().expect("served")
}

#[test]
fn observers_watch_and_operators_act() {
    let target = Target::start(&[]);
    let operator = Workspace::new();
    let observer = Workspace::new();
    let op_id = bfgg_id(operator.path());
    assert_eq!(
        op_id,
        bfgg_id(operator.path()),
        "an operator's id is stable"
    );
    let obs_id = bfgg_id(observer.path());
    assert_ne!(op_id, obs_id);

    // n0 takes its list from --operators, n1 from <config dir>/operators.
    let ws = Workspace::new();
    let key = ws.write("cluster.key", &key_text(0x42));
    let n0 = Node::start(ws.path(), "n0", Some(&key), &[], &["--operators", &op_id]);
    let n1_config = ws.path().join("n1-config");
    std::fs::create_dir_all(n1_config.join("bfgg")).expect("config dir");
    std::fs::write(
        n1_config.join("bfgg/operators"),
        format!("# who may act\n{op_id}\n"),
    )
    .expect("operators file");
    let n1_config = n1_config.display().to_string();
    let n1 = Node::start_env(
        ws.path(),
        "n1",
        Some(&key),
        &[&n0.addr],
        &[],
        &[("XDG_CONFIG_HOME", n1_config.as_str())],
    );
    let cluster = Cluster {
        ws,
        key,
        nodes: vec![n0, n1],
    };
    cluster.wait_for_nodes(2);
    for (i, what) in [(0, "from --operators"), (1, "from")] {
        let log = std::fs::read_to_string(cluster.ws.path().join(format!("node-n{i}.log")))
            .expect("node log");
        assert!(
            log.contains(&format!("1 operators {what}")),
            "node n{i} says where its list is:\n{log}"
        );
    }
    // 300/s for 60 s, stopped long before.
    let file = scenario(&cluster.ws, &target, "open", "60s");
    let file = file.display().to_string();

    // The observer cannot start a run: exit 2, the missing right named.
    let out = run_with_timeout(
        client(observer.path(), &cluster, &["run", &file, "--cluster"]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("read-only: {obs_id} is not an operator of node"))
            && stderr.contains("starting a run"),
        "{stderr}"
    );
    assert_eq!(served(&target), 0, "nothing was sent");

    // The operator's run starts.
    let mut cmd = client(
        operator.path(),
        &cluster,
        &["run", &file, "--cluster", "--json"],
    );
    cmd.arg("--out")
        .arg(operator.path().join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = cmd.spawn().expect("spawn the operator's run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while served(&target) < 300 {
        assert!(
            Instant::now() < deadline,
            "the operator's run never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The observer sees it...
    let nodes = status_json(observer.path(), &cluster.nodes[0].addr, Some(&cluster.key));
    let run_id = nodes
        .iter()
        .find_map(|n| {
            // `Running(RunId("<run>"))`
            let state = n["state"].as_str()?;
            let run = state.strip_prefix("Running(RunId(\"")?;
            Some(run.trim_end_matches("\"))").to_string())
        })
        .unwrap_or_else(|| panic!("the observer sees no running node: {nodes:#?}"));

    // ...its cockpit too, which says it is read-only and whose x (stop)
    // only says so.
    if let Some(tmux) = Tmux::start(observer.path(), "observer", 140, 40) {
        let home = observer.path().display();
        tmux.line(&format!(
            "HOME={home} XDG_DATA_HOME={home}/data XDG_CONFIG_HOME={home}/config {bin} tui --no-mdns --join {join} --cluster-key-file {key}; echo TUI-EXIT=$?",
            bin = bfgg_bin(),
            join = cluster.nodes[0].addr,
            key = cluster.key.display(),
        ));
        let read_only = format!("read-only: ask an operator to add {obs_id}");
        tmux.wait_for(
            "the run, read-only, on the observer's cockpit",
            Duration::from_secs(40),
            |s| top_line_rps(s).is_some_and(|n| n > 0) && s.contains(&read_only),
        );
        tmux.keys(&["x"]);
        std::thread::sleep(Duration::from_millis(500));
        let screen = tmux.wait_for("still read-only", Duration::from_secs(10), |s| {
            s.contains(&read_only)
        });
        assert!(!screen.contains("Stop run"), "no stop dialog: {screen}");
        tmux.keys(&["q"]);
        tmux.wait_for("the cockpit gone", Duration::from_secs(20), |s| {
            s.lines().any(|l| l == "TUI-EXIT=0")
        });
    }

    // ...but cannot stop it, through either node; the run goes on.
    for node in 0..2 {
        let mut cmd = bfgg(observer.path());
        cmd.env("BFGG_LOG", "warn")
            .args([
                "stop",
                &run_id,
                "--no-mdns",
                "--join",
                &cluster.nodes[node].addr,
            ])
            .arg("--cluster-key-file")
            .arg(&cluster.key);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("read-only") && stderr.contains(&format!("stopping run {run_id}")),
            "{stderr}"
        );
    }
    let before = served(&target);
    std::thread::sleep(Duration::from_secs(2));
    let after = served(&target);
    assert!(
        after > before + 300,
        "the run goes on after the observer's stops: {before} then {after}"
    );

    // The operator stops it, through the second node.
    let mut cmd = client(operator.path(), &cluster, &["stop", &run_id]);
    cmd.args(["--join", &cluster.nodes[1].addr]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    let (code, summary, stderr) = wait_output(run, Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    let summary = summary.expect("summary");
    assert_eq!(summary["stopped_early"], true, "{summary:#}");
    assert!(
        summary["total"]["requests"].as_u64() > Some(300),
        "{summary:#}"
    );
}

#[test]
fn a_bad_operators_list_stops_the_node_before_it_makes_anything() {
    let ws = Workspace::new();
    let mut cmd = bfgg(ws.path());
    cmd.args(["node", "--no-mdns", "--operators", "12D3KooWnot-a-peer-id"])
        .arg("--data-dir")
        .arg(ws.path().join("node"));
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--operators: \"12D3KooWnot-a-peer-id\" is not a peer id"),
        "{stderr}"
    );
    assert!(!ws.path().join("node").exists(), "no data dir made");
    assert!(
        !ws.path().join("config/bfgg/cluster.key").exists(),
        "no cluster key made"
    );

    // The file form names its line.
    let list = ws.path().join("config/bfgg/operators");
    std::fs::create_dir_all(list.parent().expect("dir")).expect("config dir");
    std::fs::write(&list, "# ops\n\nnope\n").expect("list");
    let mut cmd = bfgg(ws.path());
    cmd.args(["node", "--no-mdns"])
        .arg("--data-dir")
        .arg(ws.path().join("node"));
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3: \"nope\" is not a peer id", list.display())),
        "{stderr}"
    );
}
