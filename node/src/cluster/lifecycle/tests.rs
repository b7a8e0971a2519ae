//! Transitions of a run's lifecycle, without a network: takeover, lost
//! agents, rebalance, stop (also during prepare), finalizing (and what
//! happens to it when an agent or the coordinator is lost), duplicate and
//! late events.

use std::collections::BTreeSet;

use bfgg_protocol::RunId;
use bfgg_protocol::mesh::Participant;

use super::*;

fn id(n: u8) -> NodeId {
    NodeId(format!("node-{n}"))
}

/// A plan coordinated by node 0 with agents `agents`, started at 1,000 ms,
/// 10 s of load.
fn plan(agents: &[u8], rebalance: bool) -> RunPlan {
    RunPlan {
        run: RunId("r".into()),
        coordinator: id(0),
        participants: agents
            .iter()
            .enumerate()
            .map(|(i, n)| Participant {
                node: id(*n),
                name: format!("n{n}"),
                index: i as u32,
            })
            .collect(),
        start_at_ms: 1_000,
        files: Vec::new(),
        target: None,
        duration_ms: None,
        rebalance,
        load_ms: 10_000,
        source_commit: None,
        mandate: None,
    }
}

/// The world around the state: who this node is, the time, who is dead.
struct World {
    me: NodeId,
    now_ms: u64,
    dead: BTreeSet<NodeId>,
}

impl World {
    fn at(me: u8, now_ms: u64) -> Self {
        Self {
            me: id(me),
            now_ms,
            dead: BTreeSet::new(),
        }
    }

    fn apply(&self, state: &mut RunState, event: Event) -> Vec<Action> {
        let liveness = |n: &NodeId| {
            if self.dead.contains(n) {
                Liveness::Dead
            } else {
                Liveness::Alive
            }
        };
        let last_heard = |_: &NodeId| 777;
        let facts = Facts {
            me: &self.me,
            now_ms: self.now_ms,
            liveness: &liveness,
            last_heard_ms: &last_heard,
        };
        state.apply(event, &facts)
    }
}

fn finished(node: u8) -> Event {
    Event::Run {
        from: id(node),
        event: RunEvent::AgentFinished {
            node: id(node),
            intervals: 10,
            started_at_ms: 1_000,
            clock_offset_us: 0,
            stop_reason: None,
            load_ms: 10_000,
            mesh_bytes: 1,
        },
    }
}

fn snapshot(index: u32) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    s.by_name.entry("r".into()).or_default().requests = 1;
    s
}

fn publishes(actions: &[Action]) -> Vec<&RunEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn the_coordinator_finalizes_once_every_agent_reported_and_retires_when_written() {
    let w = World::at(0, 5_000);
    let mut s = RunState::new(plan(&[0, 1], false));
    assert!(w.apply(&mut s, finished(1)).is_empty());
    assert!(
        w.apply(&mut s, Event::Tick).is_empty(),
        "agent 0 still runs"
    );
    assert!(w.apply(&mut s, finished(0)).is_empty());
    assert_eq!(w.apply(&mut s, Event::Tick), [Action::Finalize]);
    assert_eq!(s.phase, Phase::Finalizing);
    // Finalizing: no second finalize, whatever happens meanwhile.
    assert!(w.apply(&mut s, Event::Tick).is_empty());
    assert!(w.apply(&mut s, finished(1)).is_empty(), "a duplicate");
    assert_eq!(
        w.apply(&mut s, Event::Finalized { ok: true }),
        [Action::Retire]
    );
}

#[test]
fn a_failed_finalize_is_tried_again_at_the_next_tick() {
    let w = World::at(0, 5_000);
    let mut s = RunState::new(plan(&[1], false));
    w.apply(&mut s, finished(1));
    assert_eq!(w.apply(&mut s, Event::Tick), [Action::Finalize]);
    assert!(w.apply(&mut s, Event::Finalized { ok: false }).is_empty());
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(w.apply(&mut s, Event::Tick), [Action::Finalize]);
}

#[test]
fn past_the_plans_end_and_the_slack_the_coordinator_finalizes_without_reports() {
    let end = 1_000 + 10_000 + END_SLACK.as_millis() as u64;
    let mut s = RunState::new(plan(&[1, 2], false));
    assert!(World::at(0, end).apply(&mut s, Event::Tick).is_empty());
    assert_eq!(
        World::at(0, end + 1).apply(&mut s, Event::Tick),
        [Action::Finalize]
    );
}

#[test]
fn a_dead_agent_is_declared_lost_once_with_when_it_was_last_heard() {
    let mut w = World::at(0, 5_000);
    w.dead.insert(id(2));
    let mut s = RunState::new(plan(&[1, 2], false));
    let actions = w.apply(&mut s, Event::Tick);
    assert_eq!(
        publishes(&actions),
        [&RunEvent::AgentLost {
            node: id(2),
            last_heard_ms: 777
        }]
    );
    assert_eq!(s.lost.get(&id(2)), Some(&777));
    assert!(w.apply(&mut s, Event::Tick).is_empty(), "declared once");
    // Its loss, heard back from gossip, changes nothing.
    let again = Event::Run {
        from: id(0),
        event: RunEvent::AgentLost {
            node: id(2),
            last_heard_ms: 1,
        },
    };
    assert!(w.apply(&mut s, again).is_empty());
    assert_eq!(s.lost.get(&id(2)), Some(&777));
    // The live agent reports: every agent accounted for.
    w.apply(&mut s, finished(1));
    assert_eq!(w.apply(&mut s, Event::Tick), [Action::Finalize]);
}

#[test]
fn with_rebalance_a_lost_agents_share_is_split_among_the_live_agents_once() {
    let mut w = World::at(1, 5_000);
    w.me = id(0);
    w.dead.insert(id(3));
    let mut s = RunState::new(plan(&[0, 1, 3], true));
    let actions = w.apply(&mut s, Event::Tick);
    let Some(RunEvent::Rebalanced {
        lost,
        from_ms,
        shares,
    }) = publishes(&actions).into_iter().nth(1).cloned()
    else {
        panic!("no rebalance in {actions:?}");
    };
    assert_eq!(lost, id(3));
    assert_eq!(from_ms, 5_000 + REBALANCE_LEAD.as_millis() as u64);
    // Agent 3 had every third arrival from index 2: nodes 0 and 1 take
    // every sixth, from 2 and from 5.
    let got: Vec<(NodeId, u64, u64)> = shares
        .iter()
        .map(|s| (s.node.clone(), s.offset, s.stride))
        .collect();
    assert_eq!(got, [(id(0), 2, 6), (id(1), 5, 6)]);
    // This node (0) takes its part at once.
    assert!(actions.contains(&Action::TakeMovedShare {
        segment: Segment {
            offset: 2,
            stride: 6
        },
        from_ms
    }));
    // The coordinator's own event heard back, or a duplicate: nothing more.
    let echo = Event::Run {
        from: id(0),
        event: RunEvent::Rebalanced {
            lost: id(3),
            from_ms,
            shares: shares.clone(),
        },
    };
    assert!(w.apply(&mut s, echo).is_empty());
    assert_eq!(s.moved.len(), 2);
    // Node 1 learns its share from the event.
    let mut other = RunState::new(plan(&[0, 1, 3], true));
    let heard = World::at(1, 5_000).apply(
        &mut other,
        Event::Run {
            from: id(0),
            event: RunEvent::Rebalanced {
                lost: id(3),
                from_ms,
                shares,
            },
        },
    );
    assert_eq!(
        heard,
        [Action::TakeMovedShare {
            segment: Segment {
                offset: 5,
                stride: 6
            },
            from_ms
        }]
    );
}

#[test]
fn a_rebalance_from_anyone_but_the_coordinator_is_ignored() {
    let mut s = RunState::new(plan(&[0, 1, 3], true));
    let forged = Event::Run {
        from: id(1),
        event: RunEvent::Rebalanced {
            lost: id(3),
            from_ms: 1,
            shares: Vec::new(),
        },
    };
    assert!(World::at(1, 5_000).apply(&mut s, forged).is_empty());
    assert!(s.rebalanced.is_empty());
}

#[test]
fn the_lowest_live_participant_takes_over_a_dead_coordinator_and_finishes_the_run() {
    // Node 0 coordinates and takes no share; agents 1 and 2.
    let mut s1 = RunState::new(plan(&[1, 2], false));
    let mut s2 = RunState::new(plan(&[1, 2], false));
    let mut w1 = World::at(1, 5_000);
    w1.dead.insert(id(0));
    let mut w2 = World::at(2, 5_000);
    w2.dead.insert(id(0));
    assert!(
        w2.apply(&mut s2, Event::Tick).is_empty(),
        "node 2 is not the lowest"
    );
    let actions = w1.apply(&mut s1, Event::Tick);
    assert_eq!(
        publishes(&actions),
        [&RunEvent::CoordinatorChanged { node: id(1) }]
    );
    assert_eq!(s1.coordinator, id(1));
    // Node 2 hears of it and follows the new coordinator.
    let changed = Event::Run {
        from: id(1),
        event: RunEvent::CoordinatorChanged { node: id(1) },
    };
    w2.apply(&mut s2, changed);
    assert_eq!(s2.coordinator, id(1));
    // The new coordinator collects the reports and finalizes.
    w1.apply(&mut s1, finished(1));
    w1.apply(&mut s1, finished(2));
    assert_eq!(w1.apply(&mut s1, Event::Tick), [Action::Finalize]);
}

#[test]
fn the_coordinator_lost_while_finalizing_is_taken_over_and_finalized_again() {
    // Agents do not see the coordinator's finalizing: both finished, then
    // the coordinator dies before announcing the results.
    let mut s = RunState::new(plan(&[1, 2], false));
    let mut w = World::at(1, 5_000);
    w.apply(&mut s, finished(1));
    w.apply(&mut s, finished(2));
    assert!(w.apply(&mut s, Event::Tick).is_empty());
    w.dead.insert(id(0));
    let actions = w.apply(&mut s, Event::Tick);
    assert_eq!(
        actions,
        [
            Action::Publish(RunEvent::CoordinatorChanged { node: id(1) }),
            Action::Finalize
        ],
        "the agents keep their logs until confirmed, so the new coordinator has them"
    );
}

#[test]
fn an_agent_lost_while_finalizing_changes_nothing_more() {
    let mut w = World::at(0, 5_000);
    let mut s = RunState::new(plan(&[1, 2], false));
    w.apply(&mut s, finished(1));
    w.apply(&mut s, finished(2));
    assert_eq!(w.apply(&mut s, Event::Tick), [Action::Finalize]);
    // Agent 2 dies while its log is being fetched: finalizing deals with it
    // (its live copies stand in); no loss is declared, no second finalize.
    w.dead.insert(id(2));
    assert!(w.apply(&mut s, Event::Tick).is_empty());
    assert!(s.lost.is_empty());
    assert_eq!(
        w.apply(&mut s, Event::Finalized { ok: true }),
        [Action::Retire]
    );
}

#[test]
fn a_stop_is_fanned_out_and_announced_once_by_the_coordinator() {
    let w = World::at(0, 5_000);
    let mut s = RunState::new(plan(&[0, 1], false));
    let first = w.apply(
        &mut s,
        Event::Stop {
            reason: "stopped by request".into(),
        },
    );
    assert_eq!(
        first,
        [
            Action::StopAgent {
                reason: "stopped by request".into()
            },
            Action::StopAgents,
            Action::Publish(RunEvent::Stopping {
                reason: "stopped by request".into()
            }),
        ]
    );
    // Asked again (another client): told again, announced once; the first
    // reason stands.
    let again = w.apply(
        &mut s,
        Event::Stop {
            reason: "other".into(),
        },
    );
    assert_eq!(
        again,
        [
            Action::StopAgent {
                reason: "stopped by request".into()
            },
            Action::StopAgents
        ]
    );
    // An agent stops its own part on the coordinator's event only.
    let mut agent = RunState::new(plan(&[0, 1], false));
    let stopping = |from| Event::Run {
        from,
        event: RunEvent::Stopping {
            reason: "why".into(),
        },
    };
    let w1 = World::at(1, 5_000);
    assert!(w1.apply(&mut agent, stopping(id(1))).is_empty());
    assert_eq!(
        w1.apply(&mut agent, stopping(id(0))),
        [Action::StopAgent {
            reason: "why".into()
        }]
    );
}

#[test]
fn a_stop_during_prepare_keeps_the_run_from_starting() {
    let w = World::at(0, 5_000);
    let mut p = plan(&[0, 1], false);
    p.start_at_ms = 0;
    let mut s = RunState::new(p);
    assert_eq!(s.phase, Phase::Starting);
    let actions = w.apply(
        &mut s,
        Event::Stop {
            reason: "stopped by request".into(),
        },
    );
    assert!(actions.contains(&Action::StopAgents));
    assert!(
        s.stopping.is_some(),
        "the node refuses to start it (node.rs)"
    );
    // Nothing is watched while starting: no loss, no finalize.
    let mut dead = World::at(0, 999_999);
    dead.dead.insert(id(1));
    assert!(dead.apply(&mut s, Event::Tick).is_empty());
    assert_eq!(w.apply(&mut s, Event::PrepareFailed), [Action::Retire]);
}

#[test]
fn agents_live_intervals_are_merged_by_the_coordinator_only() {
    let w = World::at(0, 5_000);
    let mut s = RunState::new(plan(&[1, 2], false));
    let interval = |from: u8, i| Event::Interval {
        from: id(from),
        snapshot: snapshot(i),
    };
    assert!(w.apply(&mut s, interval(1, 0)).is_empty());
    let actions = w.apply(&mut s, interval(2, 0));
    let [Action::PublishMerged(merged)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(merged[0].sources, 2);
    assert_eq!(merged[0].snapshot.total().requests, 2);
    // From a stranger, or at a node that does not coordinate: nothing.
    assert!(w.apply(&mut s, interval(9, 1)).is_empty());
    let mut agent = RunState::new(plan(&[1, 2], false));
    assert!(
        World::at(1, 5_000)
            .apply(&mut agent, interval(2, 0))
            .is_empty()
    );
    // An agent's end releases what waited for it.
    w.apply(&mut s, interval(1, 1));
    let actions = w.apply(&mut s, finished(2));
    assert!(
        matches!(&actions[..], [Action::PublishMerged(m)] if m[0].snapshot.index == 1),
        "{actions:?}"
    );
}

#[test]
fn late_and_forged_events_are_ignored() {
    let w = World::at(1, 5_000);
    let mut s = RunState::new(plan(&[1, 2], false));
    // An AgentFinished sent by someone else than the agent.
    let forged = Event::Run {
        from: id(2),
        event: match finished(1) {
            Event::Run { event, .. } => event,
            _ => unreachable!(),
        },
    };
    assert!(w.apply(&mut s, forged).is_empty());
    assert!(s.finished.is_empty());
    // A coordinator change announced by another node than the new one.
    let forged = Event::Run {
        from: id(2),
        event: RunEvent::CoordinatorChanged { node: id(1) },
    };
    w.apply(&mut s, forged);
    assert_eq!(s.coordinator, id(0));
    // Finished from the coordinator: this participant retires the run.
    let done = Event::Run {
        from: id(0),
        event: RunEvent::Finished {
            summary: Box::default(),
        },
    };
    assert_eq!(w.apply(&mut s, done), [Action::Retire]);
    // A late Started changes nothing once running.
    assert!(
        w.apply(&mut s, Event::Started { start_at_ms: 9 })
            .is_empty()
    );
    assert_eq!(s.plan.start_at_ms, 1_000);
}

#[test]
fn a_participant_that_missed_the_end_asks_the_coordinator_now_and_then() {
    let after = 1_000 + 10_000 + (END_SLACK + ASK_AFTER).as_millis() as u64 + 1;
    let mut s = RunState::new(plan(&[1, 2], false));
    assert!(
        World::at(1, after - 2)
            .apply(&mut s, Event::Tick)
            .is_empty()
    );
    assert_eq!(
        World::at(1, after).apply(&mut s, Event::Tick),
        [Action::AskCoordinator(id(0))]
    );
    assert!(
        World::at(1, after + 1)
            .apply(&mut s, Event::Tick)
            .is_empty()
    );
    let next = after + ASK_EVERY.as_millis() as u64;
    assert_eq!(
        World::at(1, next).apply(&mut s, Event::Tick),
        [Action::AskCoordinator(id(0))]
    );
    assert_eq!(
        World::at(1, next).apply(&mut s, Event::FinishedElsewhere),
        [Action::Retire]
    );
}

#[test]
fn an_agent_prepared_for_a_run_whose_coordinator_died_before_the_start_lets_it_go() {
    let mut p = plan(&[1, 2], false);
    p.start_at_ms = 0;
    let mut s = RunState::new(p);
    let mut w = World::at(1, 5_000);
    assert!(
        w.apply(&mut s, Event::Tick).is_empty(),
        "waiting for the start"
    );
    w.dead.insert(id(0));
    assert_eq!(
        w.apply(&mut s, Event::Tick),
        [
            Action::StopAgent {
                reason: "the coordinator died before the start".into()
            },
            Action::Retire
        ]
    );
}
