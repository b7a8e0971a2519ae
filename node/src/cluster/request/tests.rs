//! A spec becomes a request: the bundle holds the scenario and its data, and
//! the overrides and the choice of agents travel as they were given.

use std::time::Duration;

use bfgg_protocol::mesh::AgentSelection;

use super::*;

/// A scenario with a data pool, in a fresh directory (kept alive by the
/// returned guard).
fn scenario() -> (tempfile::TempDir, Scenario) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/users.csv"), "user\nalice\n").expect("write");
    let text = "[scenario]\nname = \"s\"\n[target]\nbase_url = \"http://127.0.0.1:9\"\n\
                [load]\nmodel = \"open\"\nrate = 1\nduration = \"1s\"\n\
                [data.users]\nfile = \"data/users.csv\"\n\
                [[request]]\nname = \"r\"\npath = \"/{{users.user}}\"\n";
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).expect("write");
    let scenario = crate::scenario::load(&path).expect("a valid scenario");
    (dir, scenario)
}

#[test]
fn the_default_spec_runs_the_scenario_as_written_on_every_idle_agent() {
    let (_dir, scenario) = scenario();
    let req = RunSpec::default().request(&scenario).expect("request");
    let paths: Vec<&str> = req.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["s.toml", "data/users.csv"], "the scenario first");
    assert_eq!(req.contents[1], b"user\nalice\n");
    assert_eq!(req.selection, AgentSelection::All);
    assert_eq!(
        (req.target, req.duration_ms, req.rebalance),
        (None, None, false)
    );
}

#[test]
fn overrides_and_the_choice_of_agents_travel_with_the_request() {
    let (_dir, scenario) = scenario();
    let spec = RunSpec {
        selection: AgentSelection::Labels([("zone".into(), "b".into())].into()),
        target: Some("http://10.0.0.9:8080".into()),
        duration: Some(Duration::from_millis(2_500)),
        rebalance: true,
    };
    let req = spec.request(&scenario).expect("request");
    assert_eq!(req.selection, spec.selection);
    assert_eq!(req.target.as_deref(), Some("http://10.0.0.9:8080"));
    assert_eq!(req.duration_ms, Some(2_500));
    assert!(req.rebalance);
}
