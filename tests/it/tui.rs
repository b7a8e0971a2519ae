//! The cockpit in a real terminal: tmux runs `bfgg tui` against two real
//! `bfgg node` processes on 127.0.0.1. The test presses `s` (and Enter
//! through the start dialog), waits for live req/s on screen, stops the run
//! with `x`, quits with `q` and checks the terminal was restored.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::harness::{Target, bfgg_bin, run_with_timeout, skip};

/// A tmux server of its own (socket `<name>.sock` in the test's
/// workspace) with one window running a bare shell.
pub(crate) struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    pub(crate) fn start(dir: &Path, name: &str, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            return skip("tmux is not installed (apt-get install tmux)");
        }
        let tmux = Tmux {
            socket: dir.join(format!("{name}.sock")),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "cockpit",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "bash --norc --noprofile",
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        run_with_timeout(cmd, Duration::from_secs(10))
    }

    /// Types `keys` (tmux key names: "s", "Enter", "Escape", ...).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "cockpit"];
        args.extend(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    /// Types a shell line.
    pub(crate) fn line(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "cockpit", "-l", text]);
        assert!(out.status.success(), "send-keys: {out:?}");
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "cockpit"]).stdout)
            .to_string()
    }

    fn alternate_screen(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "cockpit", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits until `pred` holds for the screen; returns that screen.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// True once the shell printed `marker` at the start of a line (the typed
/// command line holds it too, after the prompt).
fn exited(screen: &str, marker: &str) -> bool {
    screen.lines().any(|l| l.starts_with(marker))
}

/// The req/s figure of the cockpit's top line, if it shows one.
pub(crate) fn top_line_rps(screen: &str) -> Option<u64> {
    let top = screen.lines().next()?;
    let at = top.find(" req/s")?;
    top[..at]
        .rsplit(|c: char| !c.is_ascii_digit() && c != ',')
        .next()
        .and_then(|n| n.replace(',', "").parse().ok())
}

#[test]
fn the_cockpit_starts_and_stops_a_run_from_the_keyboard_in_a_real_terminal() {
    let target = Target::start(&[]);
    let cluster = Cluster::start(2, &[]);
    let ws = &cluster.ws;
    let Some(tmux) = Tmux::start(ws.path(), "first", 120, 40) else {
        return;
    };
    // 300/s for 60 s (stopped long before): ws/cluster.toml.
    crate::cluster::scenario(ws, &target, "open", "60s");
    let scenarios = ws.path().to_path_buf();
    let home = ws.path().display().to_string();
    let cockpit = |join: &str| {
        format!(
            "HOME={home} XDG_DATA_HOME={home}/data XDG_CONFIG_HOME={home}/config {bin} tui --no-mdns --join {join} --cluster-key-file {key} --scenarios {dir}; echo TUI-EXIT=$?",
            bin = bfgg_bin(),
            key = cluster.key.display(),
            dir = scenarios.display(),
        )
    };
    tmux.line(&cockpit(&cluster.nodes[0].addr));
    // The Overview is the default: both nodes show up, alive, in its
    // agents box, beside the empty load and latency charts.
    tmux.wait_for("both nodes on the Overview", Duration::from_secs(30), |s| {
        s.contains("Agents: 2 alive of 2")
            && s.contains("n0")
            && s.contains("n1")
            && s.contains("idle")
            && s.contains("no run yet")
    });
    assert!(
        tmux.alternate_screen(),
        "the cockpit draws on the alternate screen"
    );

    // s: the start dialog; Enter picks the scenario, Enter all agents, Enter starts.
    tmux.keys(&["s"]);
    tmux.wait_for("the start dialog", Duration::from_secs(10), |s| {
        s.contains("cluster")
    });
    tmux.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("live req/s above zero", Duration::from_secs(40), |s| {
        top_line_rps(s).is_some_and(|n| n > 0)
    });
    assert!(screen.contains("running"), "{screen}");
    // The Overview draws the run live: the load curve against its target
    // (300/s), the percentiles over time and the histogram, on an axis that
    // spans the planned run (60 s and a graceful stop of 1 s).
    let screen = tmux.wait_for(
        "the Overview's charts of the run",
        Duration::from_secs(20),
        |s| {
            s.contains("target 300")
                && s.contains("latency (ms) of (all): p99")
                && s.contains("response times, whole run:")
        },
    );
    assert!(screen.contains("coord"), "a coordinator flagged: {screen}");
    assert!(
        screen.contains("1m1s"),
        "the axis ends at the plan's end: {screen}"
    );

    // A second cockpit (joined to the other node) sees the same run live;
    // quitting it leaves the run alone.
    let second = Tmux::start(ws.path(), "second", 100, 30).expect("tmux");
    second.line(&cockpit(&cluster.nodes[1].addr));
    second.wait_for(
        "the run in a second cockpit",
        Duration::from_secs(30),
        |s| top_line_rps(s).is_some_and(|n| n > 0),
    );
    second.keys(&["q"]);
    let gone = second.wait_for("the second cockpit gone", Duration::from_secs(20), |s| {
        exited(s, "TUI-EXIT=")
    });
    assert!(gone.lines().any(|l| l == "TUI-EXIT=0"), "{gone}");
    let before = target.stats()["total"].as_u64().expect("served");
    std::thread::sleep(Duration::from_secs(2));
    let after = target.stats()["total"].as_u64().expect("served");
    assert!(
        after > before + 100,
        "the run goes on: {before} then {after}"
    );

    // x, then y: the run stops, and the nodes finish it.
    tmux.keys(&["x"]);
    tmux.wait_for("the stop confirmation", Duration::from_secs(10), |s| {
        s.contains("Stop run")
    });
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("the run finished", Duration::from_secs(60), |s| {
        s.contains("finished")
    });
    let served = target.stats()["total"].as_u64().expect("served");
    assert!(served > 0, "{screen}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        target.stats()["total"].as_u64(),
        Some(served),
        "no load after the stop"
    );

    // The cockpit that started the run keeps its results where a local run
    // would, and lists them in the Runs panel.
    let store = ws.path().join("data/bfgg/runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = loop {
        let found = std::fs::read_dir(&store).ok().and_then(|mut d| {
            d.find_map(|e| {
                let p = e.ok()?.path();
                p.join("summary.json").is_file().then_some(p)
            })
        });
        if let Some(dir) = found {
            break dir;
        }
        assert!(
            Instant::now() < deadline,
            "no results in {}",
            store.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("summary.json")).expect("summary"))
            .expect("summary json");
    assert_eq!(summary["stopped_early"], true, "{summary:#}");
    assert!(saved.join("latency.hlog").is_file() && saved.join("scenario.toml").is_file());
    tmux.keys(&["6"]);
    let name = saved
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    tmux.wait_for("the run in the Runs panel", Duration::from_secs(10), |s| {
        s.contains(&name[..name.len().min(20)])
    });

    // q: the cockpit leaves and the shell is back on the normal screen.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell again", Duration::from_secs(20), |s| {
        exited(s, "TUI-EXIT=")
    });
    assert!(screen.lines().any(|l| l == "TUI-EXIT=0"), "{screen}");
    assert!(
        !tmux.alternate_screen(),
        "the terminal left the alternate screen"
    );
    let probe = tmux.run(&["display-message", "-p", "-t", "cockpit", "#{cursor_flag}"]);
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "1",
        "the cursor is visible again"
    );
}

#[test]
fn the_cockpit_refuses_a_pipe_and_points_at_bfgg_run() {
    let ws = crate::harness::Workspace::new();
    let mut cmd = crate::harness::bfgg(ws.path());
    cmd.args(["tui", "--no-mdns"]);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs a terminal") && stderr.contains("bfgg run"),
        "{stderr}"
    );
}

#[test]
fn the_demo_opens_the_cockpit_on_three_local_nodes_ready_to_start() {
    let ws = crate::harness::Workspace::new();
    let Some(tmux) = Tmux::start(ws.path(), "demo", 120, 40) else {
        return;
    };
    let home = ws.path().display().to_string();
    tmux.line(&format!(
        "cd {home} && HOME={home} XDG_DATA_HOME={home}/data XDG_CONFIG_HOME={home}/config {bin} demo; echo DEMO-EXIT=$?",
        bin = bfgg_bin(),
    ));
    tmux.wait_for("three demo nodes", Duration::from_secs(40), |s| {
        ["demo-1", "demo-2", "demo-3"].iter().all(|n| s.contains(n))
    });
    tmux.keys(&["s"]);
    tmux.wait_for("the demo scenario offered", Duration::from_secs(10), |s| {
        s.contains("demo")
    });
    for _ in 0..3 {
        tmux.keys(&["Enter"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    tmux.wait_for("live req/s", Duration::from_secs(40), |s| {
        top_line_rps(s).is_some_and(|n| n > 0)
    });
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the shell again", Duration::from_secs(30), |s| {
        exited(s, "DEMO-EXIT=")
    });
    assert!(screen.lines().any(|l| l == "DEMO-EXIT=0"), "{screen}");
    assert!(!tmux.alternate_screen());
}
