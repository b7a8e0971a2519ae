//! The agent slot's transitions: claim, prepared, start, stop at each
//! stage, finishing, subscribers, the coordinator moving.

use bfgg_protocol::mesh::Participant;

use super::*;

fn plan(run: &str) -> RunPlan {
    RunPlan {
        run: RunId(run.into()),
        coordinator: NodeId("c".into()),
        participants: vec![Participant {
            node: NodeId("a".into()),
            name: "a".into(),
            index: 0,
        }],
        start_at_ms: 0,
        files: Vec::new(),
        target: None,
        duration_ms: None,
        rebalance: false,
        load_ms: 1_000,
        source_commit: None,
        mandate: None,
    }
}

/// A native engine prepared with `offset_us`.
fn ready(offset_us: i64) -> Ready {
    let scenario = scenario();
    Ready {
        engine: Prepared::Native(scenario.clone()),
        scenario,
        offset_us,
    }
}

fn scenario() -> Arc<Scenario> {
    let text = "[scenario]\nname = \"s\"\n[target]\nbase_url = \"http://127.0.0.1:9\"\n\
                [load]\nmodel = \"open\"\nrate = 1\nduration = \"1s\"\n\
                [[request]]\nname = \"r\"\npath = \"/\"\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).expect("write");
    Arc::new(crate::scenario::load(&path).expect("a valid scenario"))
}

fn run(name: &str) -> RunId {
    RunId(name.into())
}

#[test]
fn one_run_at_a_time_and_a_finishing_slot_is_free() {
    let mut slot = AgentSlot::default();
    assert_eq!(slot.state(), NodeState::Idle);
    slot.claim(&plan("a")).expect("free");
    assert_eq!(slot.state(), NodeState::Preparing(run("a")));
    assert_eq!(slot.claim(&plan("b")), Err(run("a")), "busy");
    slot.prepared(&run("a"), Ok(ready(5))).expect("kept");
    let launch = slot
        .start(&run("a"), 42)
        .expect("starts")
        .expect("a launch");
    assert_eq!(launch.plan.start_at_ms, 42);
    assert_eq!(launch.offset_us, 5);
    assert!(slot.start(&run("a"), 42).expect("repeated").is_none());
    assert_eq!(slot.state(), NodeState::Running(run("a")));
    assert!(slot.is_writing(&run("a")));
    slot.finishing(&run("a"));
    assert!(!slot.is_writing(&run("a")));
    slot.claim(&plan("b"))
        .expect("a finishing slot takes a new run");
    slot.release_finished(&run("a"));
    assert_eq!(slot.state(), NodeState::Preparing(run("b")));
}

#[test]
fn a_stop_while_preparing_cancels_and_the_late_preparation_is_refused() {
    let mut slot = AgentSlot::default();
    slot.claim(&plan("a")).expect("free");
    assert!(slot.stop(&run("a"), "stopped"));
    assert_eq!(slot.state(), NodeState::Idle);
    let late = slot.prepared(&run("a"), Ok(ready(0)));
    assert!(late.unwrap_err().contains("cancelled"));
    assert!(slot.start(&run("a"), 1).is_err(), "not prepared");
    assert!(!slot.stop(&run("a"), "again"), "nothing left to stop");
}

#[test]
fn a_failed_preparation_frees_the_slot() {
    let mut slot = AgentSlot::default();
    slot.claim(&plan("a")).expect("free");
    assert!(matches!(slot.start(&run("a"), 1), Err(e) if e.contains("still preparing")));
    assert_eq!(
        slot.prepared(&run("a"), Err("no such file".into())),
        Err("no such file".into())
    );
    assert_eq!(slot.state(), NodeState::Idle);
}

#[tokio::test]
async fn a_stop_reaches_the_running_engine_once() {
    let mut slot = AgentSlot::default();
    slot.claim(&plan("a")).expect("free");
    slot.prepared(&run("a"), Ok(ready(0))).expect("kept");
    let launch = slot.start(&run("a"), 1).expect("starts").expect("launch");
    assert!(slot.stop(&run("a"), "enough"));
    assert!(slot.stop(&run("a"), "again"), "still its run");
    let request = launch.stop.await.expect("the engine is told");
    assert_eq!(request.reason, "enough");
}

#[test]
fn subscribers_are_bounded_and_follow_the_coordinator() {
    let mut slot = AgentSlot::default();
    assert!(
        slot.subscribe(&run("a"), NodeId("o".into())).is_err(),
        "no run"
    );
    slot.claim(&plan("a")).expect("free");
    slot.prepared(&run("a"), Ok(ready(0))).expect("kept");
    for i in 0..MAX_SUBSCRIBERS {
        slot.subscribe(&run("a"), NodeId(format!("o{i}")))
            .expect("room");
    }
    slot.subscribe(&run("a"), NodeId("o0".into()))
        .expect("already there");
    assert!(
        slot.subscribe(&run("a"), NodeId("one-more".into()))
            .is_err()
    );
    let launch = slot.start(&run("a"), 1).expect("starts").expect("launch");
    assert_eq!(launch.targets.borrow().subscribers.len(), MAX_SUBSCRIBERS);
    slot.coordinator_changed(&run("a"), &NodeId("new".into()));
    assert_eq!(launch.targets.borrow().coordinator, NodeId("new".into()));
}
