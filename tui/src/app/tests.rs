//! `App::update` as messages in, effects out: keys and dialogs, the merging
//! of agents' intervals into the watched run, and liveness.

use bfgg_node::cluster::request::RunSpec;
use bfgg_protocol::mesh::{AgentSelection, NodeState, RunEvent};
use bfgg_protocol::summary::RunSummary;
use bfgg_protocol::{ErrorKind, IntervalSnapshot, LatencyHistogram, NameStats, NodeId, RunId};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::*;
use crate::fixtures::{self, NOW, idle_cluster, mid_run, node, plan, run_id};
use crate::msg::{Effect, Msg};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(key(code))
}

fn chars(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

fn dialog(app: &App) -> &StartDialog {
    match &app.mode {
        Mode::Start(d) => d,
        other => panic!("expected the start dialog, got {other:?}"),
    }
}

fn interval(run: &RunId, from: usize, snapshot: IntervalSnapshot) -> Msg {
    Msg::Interval {
        run: run.clone(),
        node: node(from),
        snapshot,
    }
}

/// A snapshot of `index` with `requests` on one name, latencies `lat`.
fn snap(index: u32, requests: u64, lat: &[u64]) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    let mut stats = NameStats {
        requests,
        ..NameStats::default()
    };
    for v in lat {
        stats.response_time.record(*v);
    }
    s.by_name.insert("GET /".into(), stats);
    s
}

/// The alive nodes of [`idle_cluster`] (0-2, all idle) in the order a start
/// asks them to coordinate: by id.
fn coordinators() -> Vec<NodeId> {
    let mut ids = vec![node(0), node(1), node(2)];
    ids.sort();
    ids
}

/// A start of `scenario` on every idle agent.
fn start(scenario: &str, selection: AgentSelection, rebalance: bool) -> Effect {
    Effect::Start {
        scenario: scenario.into(),
        spec: RunSpec {
            selection,
            rebalance,
            ..RunSpec::default()
        },
        nodes: coordinators(),
    }
}

/// An app watching `run_id()` planned on agents 0-2.
fn planned() -> App {
    let mut app = idle_cluster();
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Planned(plan()),
    });
    app
}

#[test]
fn q_quits() {
    let mut app = idle_cluster();
    assert_eq!(press(&mut app, KeyCode::Char('q')), [Effect::Quit]);
    assert!(app.quitting);
}

#[test]
fn ctrl_c_quits_from_any_mode() {
    let mut app = idle_cluster();
    app.mode = Mode::Help;
    let effects = app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(effects, [Effect::Quit]);
}

#[test]
fn release_events_are_ignored() {
    let mut app = idle_cluster();
    let release = KeyEvent::new_with_kind(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
        KeyEventKind::Release,
    );
    assert!(app.update(Msg::Key(release)).is_empty());
    assert!(!app.quitting);
    let release = KeyEvent::new_with_kind(KeyCode::Tab, KeyModifiers::NONE, KeyEventKind::Release);
    app.update(Msg::Key(release));
    assert_eq!(app.panel, Panel::Overview);
}

#[test]
fn s_opens_the_start_dialog_only_with_scenarios_and_no_active_run() {
    let mut empty = App::new();
    assert!(press(&mut empty, KeyCode::Char('s')).is_empty());
    assert_eq!(empty.mode, Mode::Normal);
    assert!(
        empty
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("no scenarios"))
    );

    let mut busy = mid_run();
    press(&mut busy, KeyCode::Char('s'));
    assert_eq!(busy.mode, Mode::Normal);
    assert!(
        busy.notice
            .as_deref()
            .is_some_and(|n| n.contains("stop it"))
    );

    let mut app = idle_cluster();
    press(&mut app, KeyCode::Char('s'));
    let d = dialog(&app);
    assert_eq!(d.step, StartStep::Scenario);
    assert_eq!(d.choice, AgentChoice::All);
    assert_eq!(d.count, 3, "defaults to the idle agents");
}

#[test]
fn the_start_flow_ends_in_a_start_effect() {
    let mut app = idle_cluster();
    assert!(chars(&mut app, "sj").is_empty());
    assert_eq!(dialog(&app).scenario, 1);
    press(&mut app, KeyCode::Enter);
    assert_eq!(dialog(&app).step, StartStep::Agents);
    press(&mut app, KeyCode::Tab);
    assert_eq!(dialog(&app).choice, AgentChoice::Count);
    press(&mut app, KeyCode::Char('+'));
    assert_eq!(dialog(&app).count, 4);
    press(&mut app, KeyCode::Enter);
    assert_eq!(dialog(&app).step, StartStep::Confirm);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [start(
            "scenarios/closed-model.toml",
            AgentSelection::Count(4),
            false
        )]
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn r_in_the_start_dialog_asks_for_rebalancing() {
    let mut app = idle_cluster();
    chars(&mut app, "s");
    // On the scenario list `r` means nothing.
    chars(&mut app, "r");
    assert!(!dialog(&app).rebalance);
    press(&mut app, KeyCode::Enter);
    chars(&mut app, "r");
    assert!(dialog(&app).rebalance);
    press(&mut app, KeyCode::Enter);
    // Still changeable on the confirm step: off and on again.
    chars(&mut app, "rr");
    assert!(dialog(&app).rebalance);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [start(
            "scenarios/open-model.toml",
            AgentSelection::All,
            true
        )]
    );
}

#[test]
fn the_start_dialog_offers_labels_and_bounds_its_choices() {
    let mut app = idle_cluster();
    chars(&mut app, "s");
    // The scenario list is bounded at both ends.
    chars(&mut app, "jjjj");
    assert_eq!(dialog(&app).scenario, 1);
    chars(&mut app, "kkkk");
    assert_eq!(dialog(&app).scenario, 0);
    press(&mut app, KeyCode::Enter);
    // Count never goes below 1.
    press(&mut app, KeyCode::Tab);
    chars(&mut app, "------");
    assert_eq!(dialog(&app).count, 1);
    // Label cycles through the known labels.
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(dialog(&app).choice, AgentChoice::Label);
    assert_eq!(app.labels(), ["tier=large", "zone=eu-west"]);
    chars(&mut app, "+");
    assert_eq!(dialog(&app).label, 1);
    chars(&mut app, "+");
    assert_eq!(dialog(&app).label, 0);
    press(&mut app, KeyCode::Tab);
    assert_eq!(dialog(&app).choice, AgentChoice::All);
    chars(&mut app, "aa+");
    press(&mut app, KeyCode::Enter);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [start(
            "scenarios/open-model.toml",
            AgentSelection::Labels([("zone".into(), "eu-west".into())].into()),
            false
        )]
    );
}

#[test]
fn esc_steps_back_through_the_start_dialog() {
    let mut app = idle_cluster();
    chars(&mut app, "s");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    assert_eq!(dialog(&app).step, StartStep::Confirm);
    press(&mut app, KeyCode::Esc);
    assert_eq!(dialog(&app).step, StartStep::Agents);
    press(&mut app, KeyCode::Esc);
    assert_eq!(dialog(&app).step, StartStep::Scenario);
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn x_asks_then_stops_the_active_run() {
    let mut app = mid_run();
    assert!(chars(&mut app, "x").is_empty());
    assert_eq!(app.mode, Mode::ConfirmStop(run_id()));
    // Any other key cancels.
    chars(&mut app, "n");
    assert_eq!(app.mode, Mode::Normal);
    chars(&mut app, "x");
    // Its coordinator first, then the other alive nodes (agent 3 is not).
    assert_eq!(
        chars(&mut app, "y"),
        [Effect::Stop {
            run: run_id(),
            nodes: vec![node(0), node(1), node(2)],
        }]
    );
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.run.as_ref().map(|r| r.state), Some(RunState::Stopping));
}

#[test]
fn x_without_a_run_only_says_so() {
    let mut app = idle_cluster();
    assert!(chars(&mut app, "x").is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.notice.as_deref(), Some("no run to stop"));
    let mut done = fixtures::finished_run();
    assert!(chars(&mut done, "x").is_empty());
    assert_eq!(done.mode, Mode::Normal);
}

#[test]
fn tab_backtab_and_digits_switch_panels() {
    let mut app = idle_cluster();
    assert_eq!(app.panel, Panel::Overview, "the default");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.panel, Panel::Agents);
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.panel, Panel::Runs);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.panel, Panel::Overview);
    for (c, p) in "123456".chars().zip(Panel::ALL) {
        chars(&mut app, &c.to_string());
        assert_eq!(app.panel, p);
    }
}

#[test]
fn selection_stays_within_the_rows() {
    let mut app = idle_cluster();
    let [overview, agents, load, _, _, runs] = Panel::ALL.map(Panel::index);
    chars(&mut app, "jjjjjjjj");
    assert_eq!(app.selected[overview], 3, "4 agents");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.selected[overview], 2);
    chars(&mut app, "kkkkk");
    assert_eq!(app.selected[overview], 0);
    chars(&mut app, "2jj");
    assert_eq!(app.selected[agents], 2, "the Agents panel lists them too");
    chars(&mut app, "6");
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected[runs], 1, "2 stored runs");
    assert_eq!(
        app.selected[overview], 0,
        "each panel keeps its own selection"
    );
    chars(&mut app, "3j");
    assert_eq!(app.selected[load], 0, "Load has no rows");
}

#[test]
fn enter_on_agents_opens_the_agent() {
    let mut app = idle_cluster();
    chars(&mut app, "j");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.mode, Mode::Agent(node(1)));
    // Other keys leave it open, Esc closes it.
    chars(&mut app, "j");
    assert_eq!(app.mode, Mode::Agent(node(1)));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn enter_on_runs_loads_the_summary() {
    let mut app = idle_cluster();
    chars(&mut app, "6j");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [Effect::LoadSummary {
            dir: app.history[1].dir.clone()
        }]
    );
    app.update(Msg::Summary {
        path: app.history[1].dir.join("summary.json"),
        summary: Box::new(RunSummary::default()),
    });
    assert!(matches!(app.mode, Mode::Summary(_)));
    chars(&mut app, "q");
    assert_eq!(app.mode, Mode::Normal, "q closes the overlay, not the app");
    assert!(!app.quitting);
}

#[test]
fn d_then_y_deletes_the_selected_run() {
    let mut app = idle_cluster();
    chars(&mut app, "6");
    assert!(chars(&mut app, "d").is_empty());
    let dir = app.history[0].dir.clone();
    assert_eq!(app.mode, Mode::ConfirmDelete(dir.clone()));
    app.results_dir = "/home/op/.local/share/bfgg/results".into();
    assert_eq!(
        chars(&mut app, "y"),
        [Effect::DeleteRun {
            dir,
            results_dir: app.results_dir.clone(),
        }]
    );
    // d elsewhere does nothing.
    chars(&mut app, "2d");
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn r_reruns_a_stored_run_from_the_agents_step() {
    let mut app = idle_cluster();
    chars(&mut app, "6r");
    let d = dialog(&app);
    assert_eq!(d.step, StartStep::Agents);
    assert_eq!(d.scenario, 0);
    assert_eq!(
        Some(&app.scenarios[0].path),
        app.history[0].scenario.as_ref()
    );
    assert!(app.scenarios[0].label.starts_with("rerun: "));
    assert_eq!(app.scenarios.len(), 3);
    press(&mut app, KeyCode::Enter);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [Effect::Start {
            scenario: app.history[0]
                .scenario
                .clone()
                .expect("has a scenario copy"),
            spec: RunSpec::default(),
            nodes: coordinators(),
        }]
    );
    // The second stored run kept no scenario copy.
    chars(&mut app, "jr");
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(
        app.notice.as_deref(),
        Some("that run kept no scenario copy")
    );
}

#[test]
fn intervals_from_every_participant_settle_one_exact_point() {
    let mut app = planned();
    let run = run_id();
    let lat: [&[u64]; 3] = [
        &[1_000, 2_000, 3_000],
        &[10_000, 20_000],
        &[500, 90_000, 91_000, 92_000],
    ];
    let mut reference = LatencyHistogram::new();
    for (i, l) in lat.iter().enumerate() {
        for v in *l {
            reference.record(*v);
        }
        app.update(interval(&run, i, snap(0, 100 + i as u64, l)));
        let points = app.run.as_ref().map_or(0, |r| r.points.len());
        assert_eq!(
            points,
            usize::from(i == 2),
            "settles with the last participant"
        );
    }
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.state, RunState::Running);
    let p = r.latest().expect("a point");
    assert_eq!(p.index, 0);
    assert_eq!(p.requests, 100 + 101 + 102);
    assert_eq!(p.p99_us, reference.quantile_us(0.99));
    assert_eq!(p.p50_us, reference.quantile_us(0.5));
    assert_eq!(r.merger.open().count(), 0);
    assert_eq!(r.totals().requests, 303);
    assert_eq!(
        r.last
            .as_ref()
            .map(|s| s.total().response_time.quantile_us(0.99)),
        Some(reference.quantile_us(0.99))
    );
    assert_eq!(app.agents[&node(2)].rps, 102.0);
}

#[test]
fn a_late_snapshot_of_a_settled_interval_adds_counts() {
    let mut app = planned();
    let run = run_id();
    for i in 0..3 {
        app.update(interval(&run, i, snap(0, 10, &[1_000])));
    }
    let mut late = snap(0, 5, &[2_000]);
    late.by_name
        .get_mut("GET /")
        .expect("name")
        .errors
        .insert(ErrorKind::Status(503), 2);
    app.update(interval(&run, 3, late));
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.points.len(), 1);
    assert_eq!(r.points[0].requests, 35);
    assert_eq!(r.points[0].errors, 2);
    assert_eq!(r.totals().requests, 35);
    assert_eq!(r.errors[&ErrorKind::Status(503)].0, 2);
    assert!(r.errors[&ErrorKind::Status(503)].1.contains("agent-d"));
}

#[test]
fn without_a_plan_intervals_settle_two_intervals_later() {
    let mut app = idle_cluster();
    let run = run_id();
    app.update(interval(&run, 0, snap(0, 1, &[])));
    app.update(interval(&run, 0, snap(1, 1, &[])));
    assert!(app.run.as_ref().is_some_and(|r| r.points.is_empty()));
    app.update(interval(&run, 0, snap(2, 1, &[])));
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.points.iter().map(|p| p.index).collect::<Vec<_>>(), [0]);
}

#[test]
fn the_series_is_a_bounded_ring() {
    let mut app = App::new();
    let run = run_id();
    let mut one = plan();
    one.participants.truncate(1);
    app.update(Msg::Run {
        run: run.clone(),
        from: node(0),
        event: RunEvent::Planned(one),
    });
    let n = HISTORY_POINTS + 10;
    for i in 0..n as u32 {
        app.update(interval(&run, 0, snap(i, 1, &[])));
    }
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.points.len(), HISTORY_POINTS);
    assert_eq!(r.points.front().map(|p| p.index), Some(10));
    assert_eq!(r.latest().map(|p| p.index), Some(n as u32 - 1));
    assert_eq!(r.agents[&node(0)].points.len(), HISTORY_POINTS);
    assert_eq!(r.totals().requests, n as u64, "totals keep everything");
}

#[test]
fn finished_sets_state_summary_and_notice() {
    let mut app = mid_run();
    let summary = fixtures::summary(&app);
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Finished {
            summary: Box::new(summary.clone()),
        },
    });
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.state, RunState::Finished);
    assert_eq!(r.summary.as_ref(), Some(&summary));
    assert!(!app.run_active());
    assert!(
        app.notice
            .as_deref()
            .is_some_and(|n| n.contains("finished"))
    );
}

#[test]
fn stopping_and_lost_agents_are_recorded() {
    let mut app = mid_run();
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Stopping {
            reason: "threshold".into(),
        },
    });
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::AgentLost {
            node: node(2),
            last_heard_ms: NOW,
        },
    });
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.state, RunState::Stopping);
    assert_eq!(r.stop_reason.as_deref(), Some("threshold"));
    assert!(r.lost.contains(&node(2)));
}

#[test]
fn another_runs_intervals_are_ignored_while_one_runs() {
    let mut app = mid_run();
    let before = app.run.as_ref().map(|r| r.totals().requests);
    let other = RunId("20261115-104000-other-ffff".into());
    app.update(interval(&other, 3, snap(0, 1_000, &[1_000])));
    app.update(Msg::Run {
        run: other.clone(),
        from: node(3),
        event: RunEvent::Planned(plan()),
    });
    let r = app.run.as_ref().expect("watched");
    assert_eq!(r.id, run_id());
    assert_eq!(Some(r.totals().requests), before);
    // Once the first has finished, the next one is watched.
    let mut app = fixtures::finished_run();
    app.update(interval(&other, 3, snap(0, 1_000, &[1_000])));
    assert_eq!(app.run.as_ref().map(|r| &r.id), Some(&other));
}

#[test]
fn a_plan_counts_only_from_its_coordinator() {
    let mut app = idle_cluster();
    let mut p = plan();
    p.coordinator = node(1);
    app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Planned(p),
    });
    assert!(app.run.is_none());
}

#[test]
fn liveness_follows_the_thresholds() {
    let mut app = App::new();
    let mut h = fixtures::health(0, NodeState::Idle);
    h.sent_at_ms = 1_000;
    app.update(Msg::Health {
        health: h,
        at_ms: 1_050,
    });
    let row = app.agents[&node(0)].clone();
    assert_eq!(row.offset_ms, 50);
    for (now, want) in [
        (1_050, Liveness::Alive),
        (6_049, Liveness::Alive),
        (6_050, Liveness::Unresponsive),
        (16_049, Liveness::Unresponsive),
        (16_050, Liveness::Dead),
    ] {
        app.update(Msg::Tick { now_ms: now });
        assert_eq!(app.liveness(&row), want, "at {now}");
    }
    assert_eq!(app.idle_agents(), 0, "a dead node is not idle");
}

#[test]
fn health_replaces_an_incompatible_entry_and_keeps_load_figures() {
    let mut app = mid_run();
    let rps = app.agents[&node(1)].rps;
    assert!(rps > 0.0);
    app.update(Msg::Health {
        health: fixtures::health(1, NodeState::Idle),
        at_ms: NOW,
    });
    assert_eq!(app.agents[&node(1)].rps, rps);
    let mut h = fixtures::health(4, NodeState::Idle);
    h.name = "late".into();
    assert!(app.incompatible.contains_key(&node(4)));
    app.update(Msg::Health {
        health: h,
        at_ms: NOW,
    });
    assert!(!app.incompatible.contains_key(&node(4)));
}

#[test]
fn history_reload_clamps_the_selection() {
    let mut app = idle_cluster();
    chars(&mut app, "6j");
    assert_eq!(app.selected[Panel::Runs.index()], 1);
    let first = app.history[0].clone();
    app.update(Msg::History(vec![first]));
    assert_eq!(app.selected[Panel::Runs.index()], 0);
}

#[test]
fn a_planned_run_is_followed_by_asking_its_agents_for_their_intervals() {
    let mut app = idle_cluster();
    let effects = app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Planned(plan()),
    });
    let nodes = plan().participants.iter().map(|p| p.node.clone()).collect();
    assert_eq!(
        effects,
        [Effect::Subscribe {
            run: run_id(),
            nodes
        }]
    );
    // Heard again (or answered by the coordinator): asked once only.
    assert!(app.update(Msg::Plan(Box::new(plan()))).is_empty());
}

#[test]
fn a_run_under_way_is_found_from_its_merged_gossip_and_its_coordinator_asked() {
    let mut app = idle_cluster();
    let effects = app.update(Msg::Merged {
        run: run_id(),
        from: node(1),
    });
    assert_eq!(
        effects,
        [Effect::Subscribe {
            run: run_id(),
            nodes: vec![node(1)]
        }]
    );
    assert_eq!(app.run.as_ref().map(|r| &r.id), Some(&run_id()));
    // More of its gossip asks nothing more; its plan then asks the agents.
    assert!(
        app.update(Msg::Merged {
            run: run_id(),
            from: node(1),
        })
        .is_empty()
    );
    let effects = app.update(Msg::Plan(Box::new(plan())));
    assert!(
        matches!(&effects[..], [Effect::Subscribe { nodes, .. }] if nodes.len() == plan().participants.len()),
        "{effects:?}"
    );
}

#[test]
fn what_has_not_come_is_asked_again_every_few_seconds() {
    let mut app = idle_cluster();
    let merged = |app: &mut App| {
        app.update(Msg::Merged {
            run: run_id(),
            from: node(0),
        })
    };
    let at = |app: &mut App, ms: u64| app.update(Msg::Tick { now_ms: NOW + ms });
    assert_eq!(merged(&mut app).len(), 1, "the coordinator asked");
    // Its answer never came (the request failed): asked again, not before
    // RESUBSCRIBE_MS.
    at(&mut app, RESUBSCRIBE_MS - 1);
    assert!(merged(&mut app).is_empty());
    at(&mut app, RESUBSCRIBE_MS);
    assert_eq!(
        merged(&mut app),
        [Effect::Subscribe {
            run: run_id(),
            nodes: vec![node(0)]
        }]
    );
    // The plan came; agent 0 sends intervals, agents 1 and 2 do not: they
    // are asked again, then nobody once all three are heard.
    at(&mut app, 2 * RESUBSCRIBE_MS);
    assert_eq!(app.update(Msg::Plan(Box::new(plan()))).len(), 1);
    app.update(interval(&run_id(), 0, snap(0, 10, &[1_000])));
    at(&mut app, 3 * RESUBSCRIBE_MS);
    assert_eq!(
        merged(&mut app),
        [Effect::Subscribe {
            run: run_id(),
            nodes: vec![node(1), node(2)]
        }]
    );
    app.update(interval(&run_id(), 1, snap(0, 10, &[1_000])));
    app.update(interval(&run_id(), 2, snap(0, 10, &[1_000])));
    at(&mut app, 5 * RESUBSCRIBE_MS);
    assert!(merged(&mut app).is_empty(), "everyone heard");
}

#[test]
fn a_start_asks_alive_nodes_idle_ones_first_and_needs_one() {
    let mut app = idle_cluster();
    // Agent 1 is busy with another run: it is asked last.
    app.update(Msg::Health {
        health: fixtures::health(1, NodeState::Running(RunId("other".into()))),
        at_ms: NOW,
    });
    chars(&mut app, "s");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    let effects = press(&mut app, KeyCode::Enter);
    let mut idle = vec![node(0), node(2)];
    idle.sort();
    idle.push(node(1));
    assert!(
        matches!(&effects[..], [Effect::Start { nodes, .. }] if *nodes == idle),
        "{effects:?}"
    );

    // Nobody heard for a minute: nothing to hand the run to.
    app.update(Msg::Tick {
        now_ms: NOW + 60_000,
    });
    chars(&mut app, "s");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(
        app.notice
            .as_deref()
            .is_some_and(|n| n.contains("no alive node")),
        "{:?}",
        app.notice
    );
}

#[test]
fn a_run_started_here_keeps_its_results_here_once() {
    let mut app = idle_cluster();
    app.results_dir = "/home/op/.local/share/bfgg/runs".into();
    let scenario = std::path::PathBuf::from("scenarios/open-model.toml");
    let effects = app.update(Msg::Started {
        plan: Box::new(plan()),
        scenario: scenario.clone(),
    });
    assert!(matches!(&effects[..], [Effect::Subscribe { .. }]));
    assert_eq!(app.started.get(&run_id()), Some(&scenario));

    let summary = Box::new(RunSummary::default());
    let finished = Msg::Run {
        run: run_id(),
        from: node(2),
        event: RunEvent::Finished {
            summary: summary.clone(),
        },
    };
    assert_eq!(
        app.update(finished.clone()),
        [Effect::SaveResults {
            run: run_id(),
            coordinator: node(2),
            scenario,
            summary,
            results_dir: app.results_dir.clone(),
        }],
        "fetched from whoever wrote the results"
    );
    assert!(app.started.is_empty());
    assert!(app.update(finished).is_empty(), "a repeated Finished");
}

#[test]
fn a_run_started_elsewhere_is_not_saved_here() {
    let mut app = planned();
    let effects = app.update(Msg::Run {
        run: run_id(),
        from: node(0),
        event: RunEvent::Finished {
            summary: Box::new(RunSummary::default()),
        },
    });
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(app.run.as_ref().map(|r| r.state), Some(RunState::Finished));
}

#[test]
fn a_changed_store_is_read_again() {
    let mut app = idle_cluster();
    app.results_dir = "/home/op/.local/share/bfgg/runs".into();
    app.scenario_dirs = vec!["scenarios".into()];
    let effects = app.update(Msg::StoreChanged("deleted x".into()));
    assert_eq!(
        effects,
        [Effect::LoadStore {
            results_dir: app.results_dir.clone(),
            scenario_dirs: app.scenario_dirs.clone(),
        }]
    );
    assert_eq!(effects[0], app.load_store());
    assert_eq!(app.notice.as_deref(), Some("deleted x"));
}

#[test]
fn a_node_announcing_a_slower_health_period_is_judged_by_it() {
    let mut app = App::new();
    let mut h = fixtures::health(0, NodeState::Idle);
    h.sent_at_ms = 1_000;
    h.period_ms = 10_000; // a node of a 100-node cluster
    app.update(Msg::Health {
        health: h,
        at_ms: 1_000,
    });
    let row = app.agents[&node(0)].clone();
    for (now, want) in [
        (20_999, Liveness::Alive),
        (21_000, Liveness::Unresponsive),
        (31_000, Liveness::Dead),
    ] {
        app.update(Msg::Tick { now_ms: now });
        assert_eq!(app.liveness(&row), want, "at {now}");
    }
}

#[test]
fn the_time_window_is_stable_and_w_switches_it() {
    let mut app = mid_run();
    let run = app.run.as_ref().expect("a run");
    // 30 intervals of a run planned for 65 s (duration and graceful stop).
    assert_eq!(run.window(TimeWindow::WholeRun), (0, 65));
    assert_eq!(run.window(TimeWindow::Recent), (0, RECENT_SECONDS));
    assert_eq!(app.window, TimeWindow::WholeRun);
    chars(&mut app, "w");
    assert_eq!(app.window, TimeWindow::Recent);
    chars(&mut app, "w");
    assert_eq!(app.window, TimeWindow::WholeRun);

    // Past its plan (or without one) the whole run ends at a round bound,
    // and the recent window slides one second at a time.
    let run = app.run.as_mut().expect("a run");
    for index in 30..200 {
        run.settled(vec![Merged {
            snapshot: IntervalSnapshot::new(index),
            sources: 1,
        }]);
    }
    assert_eq!(run.window(TimeWindow::WholeRun), (0, 300));
    assert_eq!(run.window(TimeWindow::Recent), (80, 200));
    run.plan = None;
    assert_eq!(run.window(TimeWindow::WholeRun), (0, 300));
}

#[test]
fn round_bounds_grow_in_steps() {
    assert_eq!(round_up(0), 10);
    assert_eq!(round_up(6), 10);
    assert_eq!(round_up(11), 20);
    assert_eq!(round_up(61), 120);
    assert_eq!(round_up(3601), 7200);
    assert_eq!(round_up(86_401), 172_800);
    assert!(
        round_up(u32::MAX) >= u32::MAX / 86_400 * 86_400,
        "saturates"
    );
}

#[test]
fn percentiles_are_kept_per_second_for_the_run_and_each_name() {
    let app = mid_run();
    let run = app.run.as_ref().expect("a run");
    // The fixture sends 30 intervals; the newest two are still settling.
    let settled = run.points.len();
    assert!(settled >= 28, "{settled}");
    for p in &run.points {
        assert!(p.p50_us <= p.p90_us && p.p90_us <= p.p99_us, "{p:?}");
    }
    assert_eq!(
        run.by_name.keys().collect::<Vec<_>>(),
        ["GET /products", "POST /checkout"]
    );
    for points in run.by_name.values() {
        assert_eq!(points.len(), settled);
        let requests: u64 = points.iter().map(|p| p.requests).sum();
        assert!(requests > 0);
    }
    // Per second, the run's median lies between its names' medians and its
    // requests are theirs added.
    let products = &run.by_name["GET /products"];
    let checkout = &run.by_name["POST /checkout"];
    for ((a, b), all) in products.iter().zip(checkout).zip(&run.points) {
        assert_eq!((a.index, b.index), (all.index, all.index));
        assert!(all.p50_us >= a.p50_us.min(b.p50_us) && all.p50_us <= a.p50_us.max(b.p50_us));
        assert_eq!(all.requests, a.requests + b.requests);
    }
}

#[test]
fn names_tracked_over_time_are_bounded() {
    let mut app = mid_run();
    let run = app.run.as_mut().expect("a run");
    let mut snap = IntervalSnapshot::new(100);
    for i in 0..MAX_NAME_SERIES + 10 {
        let mut stats = NameStats {
            requests: 1,
            ..NameStats::default()
        };
        stats.response_time.record(1_000);
        snap.by_name.insert(format!("name {i:03}"), stats);
    }
    run.settled(vec![Merged {
        snapshot: snap,
        sources: 3,
    }]);
    assert_eq!(run.by_name.len(), MAX_NAME_SERIES);
    assert!(
        run.by_name.contains_key("GET /products"),
        "earlier names stay"
    );
}

#[test]
fn the_latency_selection_starts_at_the_whole_run() {
    let mut app = mid_run();
    assert_eq!(app.latency_focus(), None);
    chars(&mut app, "4");
    assert_eq!(app.panel, Panel::Latency);
    chars(&mut app, "j");
    assert_eq!(app.latency_focus(), Some("GET /products"));
    chars(&mut app, "jjjj");
    assert_eq!(
        app.latency_focus(),
        Some("POST /checkout"),
        "2 names and (all)"
    );
    chars(&mut app, "kk");
    assert_eq!(app.latency_focus(), None);
}

#[test]
fn the_first_node_heard_is_asked_for_this_operators_rights() {
    let mut app = App::new();
    app.operator = "12D3KooWme".into();
    let effects = app.update(fixtures::heard(0, NodeState::Idle, 0, 0));
    assert_eq!(effects, [Effect::AskRights { node: node(0) }]);
    assert!(
        app.update(fixtures::heard(1, NodeState::Idle, 0, 0))
            .is_empty(),
        "asked once"
    );
    app.update(Msg::Rights {
        node: node(0),
        may_act: true,
    });
    assert!(!app.read_only);
}

#[test]
fn a_read_only_cockpit_watches_but_its_keys_only_say_so() {
    let mut app = mid_run();
    app.operator = "12D3KooWobserver".into();
    app.update(Msg::Rights {
        node: node(0),
        may_act: false,
    });
    assert!(app.read_only);
    let notice = app.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("read-only") && notice.contains("12D3KooWobserver"),
        "{notice}"
    );
    for keys in ["x", "s", "6r", "6d"] {
        app.notice = None;
        assert!(chars(&mut app, keys).is_empty(), "{keys}");
        assert_eq!(app.mode, Mode::Normal, "{keys}: no dialog opens");
        assert_eq!(
            app.notice.as_deref(),
            Some("read-only: ask an operator to add 12D3KooWobserver"),
            "{keys}"
        );
    }
    // Watching goes on: panels, selection, the summary of a stored run.
    chars(&mut app, "1");
    assert_eq!(app.panel, Panel::Overview);
    chars(&mut app, "6");
    assert!(matches!(
        press(&mut app, KeyCode::Enter)[..],
        [Effect::LoadSummary { .. }]
    ));
}
