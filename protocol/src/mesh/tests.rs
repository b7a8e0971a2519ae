//! Every mesh message round-trips through the codec; hostile bytes never panic.

use super::*;
use crate::{decode, encode};

fn plan() -> RunPlan {
    RunPlan {
        run: RunId("20261123-120000-demo-abcd".into()),
        coordinator: NodeId("12D3KooWcoord".into()),
        participants: vec![Participant {
            node: NodeId("12D3KooWagent".into()),
            name: "a".into(),
            index: 0,
        }],
        start_at_ms: 1_795_444_895_000,
        files: vec![BundleFile {
            path: "demo.toml".into(),
            sha256: "00".repeat(32),
            size: 10,
        }],
        target: Some("http://127.0.0.1:8080".into()),
        duration_ms: None,
        rebalance: true,
        load_ms: 20_000,
        source_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        mandate: None,
    }
}

fn health() -> NodeHealth {
    NodeHealth {
        node: NodeId("12D3KooWx".into()),
        name: "n1".into(),
        labels: [("zone".to_string(), "a".to_string())].into(),
        state: NodeState::Running(RunId("r".into())),
        engines: vec![EngineInfo {
            name: "native".into(),
            version: "0.1.0".into(),
        }],
        cpu_pct: 12.5,
        mem_bytes: 1 << 20,
        keeping_schedule: true,
        sent_at_ms: 1,
        bfgg_version: "0.1.0".into(),
        protocol_version: crate::PROTOCOL_VERSION,
        dropped_messages: 0,
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
        period_ms: 1_000,
        revision: 1,
    }
}

fn gossip_samples() -> Vec<Gossip> {
    let mut snapshot = IntervalSnapshot::new(3);
    snapshot
        .by_name
        .entry("home".into())
        .or_default()
        .response_time
        .record(1200);
    vec![
        Gossip::Health(health()),
        Gossip::Beat(health().beat()),
        Gossip::Pulse {
            run: RunId("r".into()),
            pulse: crate::stats::Pulse::of(&snapshot),
            agents: 3,
        },
        Gossip::Run {
            run: RunId("r".into()),
            event: RunEvent::Planned(plan()),
        },
        Gossip::Run {
            run: RunId("r".into()),
            event: RunEvent::Finished {
                summary: Box::default(),
            },
        },
    ]
}

#[test]
fn gossip_round_trips() {
    for g in gossip_samples() {
        let bytes = encode(&g).expect("encodes");
        assert!(bytes.len() < MAX_GOSSIP_BYTES);
        assert_eq!(decode::<Gossip>(&bytes).expect("decodes"), g);
    }
}

#[test]
fn control_messages_round_trip() {
    let requests = vec![
        ControlRequest::Prepare(plan()),
        ControlRequest::Stop {
            run: RunId("r".into()),
            mandate: Some(Mandate {
                operator: NodeId("12D3KooWop".into()),
                order: Order::Stop {
                    run: RunId("r".into()),
                },
                signed_at_ms: 1,
                signature: vec![1; 64],
            }),
        },
        ControlRequest::Rights {
            operator: NodeId("12D3KooWop".into()),
        },
        ControlRequest::FetchLog {
            run: RunId("r".into()),
            log: LogKind::Merged,
            offset: 4096,
            max: 100,
        },
        ControlRequest::Clock { sent_us: 5 },
        ControlRequest::Interval {
            run: RunId("r".into()),
            snapshot: IntervalSnapshot::new(7),
        },
        ControlRequest::Subscribe {
            run: RunId("r".into()),
        },
        ControlRequest::Nodes,
        ControlRequest::Health {
            node: NodeId("12D3KooWx".into()),
        },
        ControlRequest::Report {
            run: RunId("r".into()),
            event: RunEvent::Stopping {
                reason: "why".into(),
            },
        },
    ];
    for r in requests {
        let bytes = encode(&r).expect("encodes");
        assert_eq!(decode::<ControlRequest>(&bytes).expect("decodes"), r);
    }
    let responses = vec![
        ControlResponse::Prepared {
            clock_offset_us: -42,
        },
        ControlResponse::Busy {
            run: RunId("x".into()),
        },
        ControlResponse::Plan(plan()),
        ControlResponse::Health(Box::new(health())),
        ControlResponse::LogPage {
            frames: vec![0, 0, 0, 1, 7],
            next_offset: 4101,
            complete: true,
        },
    ];
    for r in responses {
        let bytes = encode(&r).expect("encodes");
        assert_eq!(decode::<ControlResponse>(&bytes).expect("decodes"), r);
    }
}

#[test]
fn truncations_and_bit_flips_of_every_message_are_handled() {
    let mut errors = 0;
    for g in gossip_samples() {
        let bytes = encode(&g).expect("encodes");
        for cut in 0..bytes.len() {
            assert!(decode::<Gossip>(&bytes[..cut]).is_err());
            errors += 1;
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if decode::<Gossip>(&b).is_err() {
                errors += 1;
            }
        }
    }
    assert!(errors > 100);
}

#[test]
fn protocol_ids_and_topics_carry_the_protocol_version() {
    let v = crate::PROTOCOL_VERSION;
    assert_eq!(CONTROL_PROTOCOL, format!("/bfgg/control/{v}"));
    assert_eq!(HEALTH_TOPIC, format!("bfgg/{v}/health"));
    assert_eq!(RUN_TOPIC, format!("bfgg/{v}/runs"));
}

#[test]
fn a_mandate_signs_its_order_and_time_and_nothing_else() {
    let run = Order::Run {
        digest: "ab".repeat(32),
    };
    let stop = Order::Stop {
        run: RunId("ab".repeat(32)),
    };
    let a = Mandate::signed_bytes(&run, 5);
    assert_ne!(a, Mandate::signed_bytes(&stop, 5), "orders differ");
    assert_ne!(a, Mandate::signed_bytes(&run, 6), "times differ");
    assert!(a.starts_with(b"bfgg mandate v1\0run\0"));
    assert!(a.ends_with(&5u64.to_be_bytes()));
}

#[test]
fn a_beat_completes_its_revision_only() {
    let full = health();
    let mut later = full.clone();
    later.state = NodeState::Idle;
    later.cpu_pct = 80.0;
    later.sent_at_ms = 99;
    later.period_ms = 10_000;
    assert_eq!(full.with_beat(&later.beat()), Some(later.clone()));
    let mut moved = later.clone();
    moved.revision += 1;
    assert_eq!(full.with_beat(&moved.beat()), None, "another revision");
    assert!(full.same_facts(&later), "a beat changes no fact");
    let mut renamed = full.clone();
    renamed.listen_addrs.push("/ip4/10.0.0.1/tcp/2".into());
    assert!(!full.same_facts(&renamed));
}

#[test]
fn a_beat_is_a_small_fraction_of_the_full_health() {
    // As a node of a real cluster sends them: a base58 peer id, a listen
    // address with its /p2p suffix, a run id in the state.
    let mut h = health();
    h.node = NodeId("12D3KooWGzBn6BDXTs5RP2Gh3ETNGfAr1bVHoNnx1dXZL4wBUfL8".into());
    h.listen_addrs = vec![format!("/ip4/127.0.0.1/tcp/40123/p2p/{}", h.node)];
    h.state = NodeState::Running(RunId("20261202-171800-checkout-ab12".into()));
    h.name = "load-host-17".into();
    let full = encode(&Gossip::Health(h.clone())).expect("encodes").len();
    let beat = encode(&Gossip::Beat(h.beat())).expect("encodes").len();
    assert!(full >= 150, "full health {full} B");
    assert!(beat <= 64, "beat {beat} B (full {full} B)");
}
