//! Mandates: signed, checked against the list, bound to their order, their
//! time and (for runs) one run; the list's file and flag forms.

use bfgg_protocol::mesh::{AgentSelection, BundleFile, Order, RunPlan, RunRequest};
use bfgg_protocol::{NodeId, RunId};

use super::*;

const NOW: u64 = 1_800_000_000_000;

fn request() -> RunRequest {
    RunRequest {
        files: vec![BundleFile {
            path: "s.toml".into(),
            sha256: "ab".repeat(32),
            size: 10,
        }],
        contents: vec![b"0123456789".to_vec()],
        target: Some("http://127.0.0.1:1".into()),
        duration_ms: Some(3_000),
        selection: AgentSelection::All,
        rebalance: false,
        mandate: None,
    }
}

fn plan_of(req: &RunRequest, run: &str) -> RunPlan {
    RunPlan {
        run: RunId(run.into()),
        coordinator: NodeId("c".into()),
        participants: Vec::new(),
        start_at_ms: 0,
        files: req.files.clone(),
        target: req.target.clone(),
        duration_ms: req.duration_ms,
        rebalance: req.rebalance,
        load_ms: 0,
        source_commit: None,
        mandate: req.mandate.clone().map(Box::new),
    }
}

#[test]
fn a_node_without_a_list_acts_for_anyone() {
    let ops = Operators::open("n0");
    assert!(!ops.enforced());
    assert!(ops.allows(&NodeId("anyone".into())));
    assert_eq!(ops.check_request(&request(), NOW), Ok(()));
    assert_eq!(ops.check_stop(&RunId("r".into()), None, NOW), Ok(()));
}

#[test]
fn an_operators_mandate_is_honoured_where_it_is_checked() {
    let key = OperatorKey::ephemeral();
    let ops = Operators::only("n0", [key.id()], "test");
    let mut used = UsedMandates::default();
    let mut req = request();
    sign(&key, &mut req, NOW);
    assert_eq!(ops.check_request(&req, NOW + 1_000), Ok(()));
    assert_eq!(
        ops.check_plan(&plan_of(&req, "r1"), NOW + 2_000, &mut used),
        Ok(())
    );
    assert_eq!(
        ops.check_plan(&plan_of(&req, "r1"), NOW + 3_000, &mut used),
        Ok(()),
        "the same run again (a repeated Prepare)"
    );
    let run = RunId("r1".into());
    let stop = key.mandate(Order::Stop { run: run.clone() }, NOW);
    assert_eq!(ops.check_stop(&run, Some(&stop), NOW), Ok(()));
}

#[test]
fn without_a_mandate_or_from_another_peer_nothing_happens() {
    let operator = OperatorKey::ephemeral();
    let observer = OperatorKey::ephemeral();
    let ops = Operators::only("n0", [operator.id()], "/etc/bfgg/operators");
    let err = ops.check_request(&request(), NOW).unwrap_err();
    assert!(matches!(err, Refusal::Missing { .. }), "{err}");
    assert!(
        err.to_string().starts_with("read-only: starting a run"),
        "{err}"
    );

    let mut req = request();
    sign(&observer, &mut req, NOW);
    let err = ops.check_request(&req, NOW).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "read-only: {} is not an operator of node n0",
            observer.id()
        )),
        "{err}"
    );
    assert!(err.to_string().contains("/etc/bfgg/operators"), "{err}");
    let run = RunId("r".into());
    let stop = observer.mandate(Order::Stop { run: run.clone() }, NOW);
    assert!(ops.check_stop(&run, Some(&stop), NOW).is_err());
}

#[test]
fn a_mandate_is_good_for_its_own_order_and_time_only() {
    let key = OperatorKey::ephemeral();
    let ops = Operators::only("n0", [key.id()], "test");
    let mut used = UsedMandates::default();
    let mut req = request();
    sign(&key, &mut req, NOW);

    // Another target than the one signed for.
    let mut other = req.clone();
    other.target = Some("http://127.0.0.1:2".into());
    let err = ops.check_request(&other, NOW).unwrap_err();
    assert!(err.to_string().contains("it orders"), "{err}");
    // Another duration, files or rebalancing in the plan an agent gets.
    let mut plan = plan_of(&req, "r1");
    plan.duration_ms = Some(3_600_000);
    assert!(ops.check_plan(&plan, NOW, &mut used).is_err());
    let mut plan = plan_of(&req, "r1");
    plan.rebalance = true;
    assert!(ops.check_plan(&plan, NOW, &mut used).is_err());

    // Too old, too far ahead.
    let err = ops
        .check_request(&req, NOW + MANDATE_TTL_MS + 1)
        .unwrap_err();
    assert!(err.to_string().contains("s ago"), "{err}");
    let err = ops
        .check_request(&req, NOW - MANDATE_SKEW_MS - 1_000)
        .unwrap_err();
    assert!(err.to_string().contains("future"), "{err}");

    // A stop of one run does not stop another.
    let a = RunId("a".into());
    let stop = key.mandate(Order::Stop { run: a.clone() }, NOW);
    assert!(
        ops.check_stop(&RunId("b".into()), Some(&stop), NOW)
            .is_err()
    );

    // A forged signature, or the operator's id on another's signature.
    let mut forged = req.clone();
    if let Some(m) = forged.mandate.as_mut() {
        m.signature[0] ^= 1;
    }
    let err = ops.check_request(&forged, NOW).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    let thief = OperatorKey::ephemeral();
    let mut stolen = request();
    sign(&thief, &mut stolen, NOW);
    if let Some(m) = stolen.mandate.as_mut() {
        m.operator = key.id();
    }
    assert!(ops.check_request(&stolen, NOW).is_err());
}

#[test]
fn a_run_mandate_starts_one_run_only() {
    let key = OperatorKey::ephemeral();
    let ops = Operators::only("n0", [key.id()], "test");
    let mut used = UsedMandates::default();
    let mut req = request();
    sign(&key, &mut req, NOW);
    assert_eq!(ops.check_plan(&plan_of(&req, "r1"), NOW, &mut used), Ok(()));
    let err = ops
        .check_plan(&plan_of(&req, "r2"), NOW, &mut used)
        .unwrap_err();
    assert!(err.to_string().contains("already used for run r1"), "{err}");
    // Once it has expired it is refused for its age instead, and forgotten.
    let later = NOW + MANDATE_TTL_MS + 1;
    let err = ops
        .check_plan(&plan_of(&req, "r3"), later, &mut used)
        .unwrap_err();
    assert!(err.to_string().contains("s ago"), "{err}");
}

#[test]
fn remembered_mandates_are_bounded() {
    let key = OperatorKey::ephemeral();
    let ops = Operators::only("n0", [key.id()], "test");
    let mut used = UsedMandates::default();
    for i in 0..MAX_REMEMBERED {
        let mut req = request();
        sign(&key, &mut req, NOW + i as u64);
        assert_eq!(
            ops.check_plan(&plan_of(&req, &format!("r{i}")), NOW + i as u64, &mut used),
            Ok(())
        );
    }
    let mut req = request();
    sign(&key, &mut req, NOW + MAX_REMEMBERED as u64);
    let err = ops
        .check_plan(
            &plan_of(&req, "one-too-many"),
            NOW + MAX_REMEMBERED as u64,
            &mut used,
        )
        .unwrap_err();
    assert!(err.to_string().contains("try again later"), "{err}");
    // When the first ones expire there is room again.
    let later = NOW + MANDATE_TTL_MS + 10;
    let mut req = request();
    sign(&key, &mut req, later);
    assert_eq!(
        ops.check_plan(&plan_of(&req, "after"), later, &mut used),
        Ok(())
    );
}

#[test]
fn the_list_comes_from_the_flag_or_the_file() {
    let a = OperatorKey::ephemeral().id();
    let b = OperatorKey::ephemeral().id();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("operators");
    let ops = Operators::load("n0", None, &file).expect("no file");
    assert!(!ops.enforced(), "no file, no list");
    assert!(ops.describe().contains("any peer holding the cluster key"));

    std::fs::write(&file, format!("# the team\n{a}\n\n{b}  # ci\n")).expect("write");
    let ops = Operators::load("n0", None, &file).expect("file");
    assert!(ops.allows(&a) && ops.allows(&b));
    assert!(!ops.allows(&NodeId("12D3KooWsomeoneelse".into())));
    assert!(
        ops.describe().starts_with("2 operators from"),
        "{}",
        ops.describe()
    );

    let ops = Operators::load("n0", Some(&a.0), &file).expect("flag");
    assert!(ops.allows(&a) && !ops.allows(&b), "the flag wins");

    std::fs::write(&file, format!("{a}\nnot-a-peer-id\n")).expect("write");
    let err = Operators::load("n0", None, &file).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}:2:", file.display())) && err.contains("not-a-peer-id"),
        "{err}"
    );
    let err = Operators::load("n0", Some("nope"), &file)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--operators:"), "{err}");
}

#[test]
fn the_operator_key_is_stable() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("operator.key");
    let first = OperatorKey::load_or_create(&path).expect("create").id();
    let again = OperatorKey::load_or_create(&path).expect("load").id();
    assert_eq!(first, again);
    assert!(first.0.starts_with("12D3KooW"), "{first}");
}
