//! Tests of the swarm actor over real TCP on 127.0.0.1 (mDNS off: it skips
//! loopback; peers dial explicitly), plus the cluster key, the identity file
//! and the control codec. Every wait gives up after [`TIMEOUT`] (the negative
//! "never connects" check waits [`QUIET`]); readiness always comes from an
//! event, never from a sleep.

use std::path::Path;
use std::time::Duration;

use bfgg_protocol::RunId;
use bfgg_protocol::mesh::{ControlResponse, MAX_CONTROL_BYTES, NodeHealth, NodeState, RunEvent};
use tempfile::TempDir;
use tokio::time::Instant;

use super::*;

/// Every wait gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(5);
/// One round of "publish, then look for it" while subscriptions settle.
const ROUND: Duration = Duration::from_millis(300);

/// A test node config: listen on 127.0.0.1 port 0, mDNS off, `join` as given,
/// identity in `<dir>/<name>.id`, other settings from [`NetConfig::new`].
fn config(dir: &Path, name: &str, key: &ClusterKey, join: Vec<String>) -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        join,
        mdns: false,
        ..NetConfig::new(dir.join(format!("{name}.id")), key.clone())
    }
}

/// A running node whose requests are answered by a pump task.
struct TestNode {
    handle: NetHandle,
    /// Every event but requests.
    events: mpsc::Receiver<NetEvent>,
    /// Its 127.0.0.1 listen address with `/p2p/<id>`.
    addr: String,
    id: NodeId,
}

/// The pump's answers: `Clock` echoes `sent_us` with `now_us` 42, `Health`
/// gives [`answered_health`], anything else gets `Done`.
fn answer(req: &ControlRequest) -> ControlResponse {
    match req {
        ControlRequest::Clock { sent_us } => ControlResponse::Clock {
            sent_us: *sent_us,
            now_us: 42,
        },
        ControlRequest::Health { node } => ControlResponse::Health(Box::new(answered_health(node))),
        _ => ControlResponse::Done,
    }
}

/// What a test node answers when asked for `node`'s full health: named
/// "answered", revision 7.
fn answered_health(node: &NodeId) -> NodeHealth {
    NodeHealth {
        node: node.clone(),
        name: "answered".into(),
        labels: Default::default(),
        state: NodeState::Idle,
        engines: Vec::new(),
        cpu_pct: 0.0,
        mem_bytes: 0,
        keeping_schedule: true,
        sent_at_ms: 0,
        bfgg_version: "test".into(),
        protocol_version: bfgg_protocol::PROTOCOL_VERSION,
        dropped_messages: 0,
        listen_addrs: Vec::new(),
        period_ms: 1_000,
        revision: 7,
    }
}

/// Answers requests and forwards every other event (dropping them if the
/// test is not reading, so answering never stalls).
async fn pump(mut rx: mpsc::Receiver<NetEvent>, tx: mpsc::Sender<NetEvent>) {
    while let Some(event) = rx.recv().await {
        match event {
            NetEvent::Request { req, reply, .. } => reply.send(answer(&req)),
            other => {
                let _ = tx.try_send(other);
            }
        }
    }
}

async fn start(dir: &Path, name: &str, key: &ClusterKey, join: Vec<String>) -> TestNode {
    start_with(config(dir, name, key, join)).await
}

/// [`start`] with a config of one's own (built from [`config`]).
async fn start_with(config: NetConfig) -> TestNode {
    let (handle, rx) = spawn(config).expect("network starts");
    let (tx, mut events) = mpsc::channel(1024);
    tokio::spawn(pump(rx, tx));
    let addr = wait_for(&mut events, |ev| match ev {
        NetEvent::Listening { addr } if addr.starts_with("/ip4/127.0.0.1/tcp/") => {
            Some(addr.clone())
        }
        _ => None,
    })
    .await
    .expect("a listen address");
    assert!(
        addr.ends_with(&format!("/p2p/{}", handle.local_id())),
        "{addr}"
    );
    let id = handle.local_id().clone();
    TestNode {
        handle,
        events,
        addr,
        id,
    }
}

/// Waits up to `within` for an event `f` picks; other events are discarded.
async fn wait_within<T>(
    events: &mut mpsc::Receiver<NetEvent>,
    within: Duration,
    mut f: impl FnMut(&NetEvent) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = f(&event) {
                    return Some(found);
                }
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

async fn wait_for<T>(
    events: &mut mpsc::Receiver<NetEvent>,
    f: impl FnMut(&NetEvent) -> Option<T>,
) -> Option<T> {
    wait_within(events, TIMEOUT, f).await
}

/// Waits until `node` reported a connection to every one of `peers`.
async fn wait_connected(node: &mut TestNode, peers: &[&NodeId]) {
    let mut missing: Vec<NodeId> = peers.iter().map(|p| (*p).clone()).collect();
    while !missing.is_empty() {
        let up = wait_for(&mut node.events, |ev| match ev {
            NetEvent::PeerConnected(peer) => Some(peer.clone()),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("{} never connected to {missing:?}", node.id));
        missing.retain(|p| *p != up);
    }
}

/// Nodes A and B (B joined to A), connected both ways.
async fn two_connected(dir: &Path) -> (TestNode, TestNode) {
    let key = ClusterKey::generate();
    let mut a = start(dir, "a", &key, vec![]).await;
    let mut b = start(dir, "b", &key, vec![a.addr.clone()]).await;
    wait_connected(&mut a, &[&b.id]).await;
    wait_connected(&mut b, &[&a.id]).await;
    (a, b)
}

fn health(node: &TestNode) -> Gossip {
    Gossip::Health(NodeHealth {
        name: "test".into(),
        listen_addrs: vec![node.addr.clone()],
        revision: 1,
        ..answered_health(&node.id)
    })
}

/// Publishes (retrying on `NoPeers`) until `f` finds the expected event on
/// `watch`, bounded by [`TIMEOUT`].
async fn publish_until<T>(
    from: &NetHandle,
    topic: &str,
    msg: &Gossip,
    watch: &mut mpsc::Receiver<NetEvent>,
    mut f: impl FnMut(&NetEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "{topic} gossip never arrived");
        match from.publish(topic, msg).await {
            Ok(()) | Err(NetError::NoPeers) => {}
            Err(e) => panic!("publish failed: {e}"),
        }
        if let Some(found) = wait_within(watch, ROUND, &mut f).await {
            return found;
        }
    }
}

#[tokio::test]
async fn three_nodes_connect_gossip_and_answer_requests() {
    let dir = TempDir::new().unwrap();
    let key = ClusterKey::generate();
    let mut a = start(dir.path(), "a", &key, vec![]).await;
    let mut b = start(dir.path(), "b", &key, vec![a.addr.clone()]).await;
    // C joins by address without `/p2p/…`, which is learned on connection.
    let bare = a.addr.split("/p2p/").next().unwrap().to_string();
    let mut c = start(dir.path(), "c", &key, vec![bare]).await;

    wait_connected(&mut a, &[&b.id, &c.id]).await;
    wait_connected(&mut b, &[&a.id]).await;
    wait_connected(&mut c, &[&a.id]).await;

    // Health gossip carries listen addresses: B and C, both joined only to A,
    // find and dial each other.
    let c_id = c.id.clone();
    let b_health = health(&b);
    publish_until(&b.handle, HEALTH_TOPIC, &b_health, &mut c.events, |ev| {
        matches!(ev, NetEvent::PeerConnected(p) if *p == b.id).then_some(())
    })
    .await;
    wait_connected(&mut b, &[&c_id]).await;
    let mut peers = b.handle.connected_peers().await.unwrap();
    peers.sort();
    let mut expected = vec![a.id.clone(), c_id.clone()];
    expected.sort();
    assert_eq!(peers, expected);

    // A gossip published by C reaches A and B, with C as its author.
    let msg = Gossip::Run {
        run: RunId("20261123-120000-test-abcd".into()),
        event: RunEvent::Stopping {
            reason: "test".into(),
        },
    };
    let from_c = |ev: &NetEvent| match ev {
        NetEvent::Gossip { from, msg: got } if *from == c.id && *got == msg => Some(()),
        _ => None,
    };
    let deadline = Instant::now() + TIMEOUT;
    let (mut at_a, mut at_b) = (false, false);
    while !(at_a && at_b) {
        assert!(
            Instant::now() < deadline,
            "A got it: {at_a}, B got it: {at_b}"
        );
        match c.handle.publish(RUN_TOPIC, &msg).await {
            Ok(()) | Err(NetError::NoPeers) => {}
            Err(e) => panic!("publish failed: {e}"),
        }
        let (got_a, got_b) = tokio::join!(
            wait_within(&mut a.events, ROUND, from_c),
            wait_within(&mut b.events, ROUND, from_c),
        );
        at_a |= got_a.is_some();
        at_b |= got_b.is_some();
    }
    assert!(c.handle.stats().gossip_out >= 1);
    assert!(a.handle.stats().gossip_in >= 1);
    assert!(a.handle.stats().gossip_in_bytes > 0);

    // A request from A to C gets its answer.
    let resp = a
        .handle
        .request(&c.id, ControlRequest::Clock { sent_us: 7 })
        .await
        .unwrap();
    assert_eq!(
        resp,
        ControlResponse::Clock {
            sent_us: 7,
            now_us: 42
        }
    );
    // And one over the connection B and C made themselves.
    let resp = c
        .handle
        .request(
            &b.id,
            ControlRequest::Stop {
                run: RunId("r".into()),
                mandate: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resp, ControlResponse::Done);
    for node in [&a, &b, &c] {
        assert_eq!(node.handle.stats().dropped, 0);
    }
}

#[tokio::test]
async fn beats_arrive_as_full_health_and_an_unknown_revision_is_asked_of_the_relay() {
    let dir = TempDir::new().unwrap();
    let (mut a, b) = two_connected(dir.path()).await;

    // A holds no full health of B: B's beat (revision 7) makes A ask B, the
    // relay, whose answer (revision 7) completed by the beat is what A's
    // consumer sees.
    let mut busy = answered_health(&b.id);
    busy.state = NodeState::Running(RunId("20261202-120000-t-abcd".into()));
    busy.cpu_pct = 33.0;
    busy.sent_at_ms = 5;
    let b_id = b.id.clone();
    let got = publish_until(
        &b.handle,
        HEALTH_TOPIC,
        &Gossip::Beat(busy.beat()),
        &mut a.events,
        |ev| match ev {
            NetEvent::Gossip {
                from,
                msg: Gossip::Health(h),
            } if *from == b_id => Some(h.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(got, busy, "the relay's full health completed by the beat");
    assert!(a.handle.stats().requests_out >= 1, "A asked B");

    // B's full health of revision 8, then a beat of it: expanded at A with
    // the facts of the full health (not the relay's answer, revision 7).
    let mut full = busy.clone();
    full.name = "full".into();
    full.revision = 8;
    publish_until(
        &b.handle,
        HEALTH_TOPIC,
        &Gossip::Health(full.clone()),
        &mut a.events,
        |ev| {
            matches!(ev, NetEvent::Gossip { msg: Gossip::Health(h), .. } if h.revision == 8)
                .then_some(())
        },
    )
    .await;
    let mut later = full.clone();
    later.cpu_pct = 44.0;
    later.sent_at_ms = 6;
    let got = publish_until(
        &b.handle,
        HEALTH_TOPIC,
        &Gossip::Beat(later.beat()),
        &mut a.events,
        |ev| match ev {
            NetEvent::Gossip {
                from,
                msg: Gossip::Health(h),
            } if *from == b_id && h.sent_at_ms == 6 => Some(h.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(got, later);
}

#[tokio::test]
async fn a_node_with_another_key_never_connects() {
    let dir = TempDir::new().unwrap();
    let mut a = start(dir.path(), "a", &ClusterKey::generate(), vec![]).await;
    // D also joins A, so the re-dial path runs too.
    let mut d = start(
        dir.path(),
        "d",
        &ClusterKey::generate(),
        vec![a.addr.clone()],
    )
    .await;

    // The dial, a request (which dials A's now known address again) and the
    // watch for connections run together: a stranger's dial fails only at
    // the upgrade timeout (see behaviour.rs).
    let connected = |ev: &NetEvent| matches!(ev, NetEvent::PeerConnected(_)).then_some(());
    let (dial, request, at_a, at_d) = tokio::join!(
        tokio::time::timeout(TIMEOUT, d.handle.dial(&a.addr)),
        tokio::time::timeout(
            TIMEOUT,
            d.handle
                .request(&a.id, ControlRequest::Clock { sent_us: 1 })
        ),
        wait_within(&mut a.events, QUIET, connected),
        wait_within(&mut d.events, QUIET, connected),
    );
    let dial = dial.expect("the dial ends");
    assert!(matches!(dial, Err(NetError::Dial(_))), "{dial:?}");
    let request = request.expect("the request ends");
    assert!(matches!(request, Err(NetError::Dial(_))), "{request:?}");
    assert!(at_a.is_none() && at_d.is_none(), "a stranger connected");
    assert!(a.handle.connected_peers().await.unwrap().is_empty());
    assert!(d.handle.connected_peers().await.unwrap().is_empty());
    // A request to a peer never seen has nowhere to go.
    let stranger = NodeId(
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_base58(),
    );
    let err = d
        .handle
        .request(&stranger, ControlRequest::Clock { sent_us: 1 })
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::UnknownPeer(_)), "{err:?}");
    let err = d
        .handle
        .request(
            &NodeId("not a peer id".into()),
            ControlRequest::Clock { sent_us: 1 },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::UnknownPeer(_)), "{err:?}");
}

#[tokio::test]
async fn a_peer_of_another_protocol_version_is_reported_and_asked_nothing() {
    let dir = TempDir::new().unwrap();
    let key = ClusterKey::generate();
    let mut a = start(dir.path(), "a", &key, vec![]).await;
    let mut x = start_with(NetConfig {
        identify_protocol: "/bfgg/999".into(),
        ..config(dir.path(), "x", &key, vec![a.addr.clone()])
    })
    .await;
    let x_id = x.id.clone();

    // A reports X (which dialed it) as incompatible, naming its version ...
    let (protocol, agent) = wait_for(&mut a.events, |ev| match ev {
        NetEvent::Incompatible {
            peer,
            protocol,
            agent,
        } if *peer == x_id => Some((protocol.clone(), agent.clone())),
        _ => None,
    })
    .await
    .expect("A reports X as incompatible");
    assert_eq!(protocol, "/bfgg/999");
    assert_eq!(agent, format!("bfgg/{}", env!("CARGO_PKG_VERSION")));
    // ... and X reports A, which speaks ours.
    let protocol = wait_for(&mut x.events, |ev| match ev {
        NetEvent::Incompatible { peer, protocol, .. } if *peer == a.id => Some(protocol.clone()),
        _ => None,
    })
    .await
    .expect("X reports A as incompatible");
    assert_eq!(protocol, identify_protocol());

    // Nothing is asked of it.
    let err = a
        .handle
        .request(&x_id, ControlRequest::Clock { sent_us: 1 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::Incompatible(ref p) if *p == x_id),
        "{err:?}"
    );

    // A compatible peer is not reported.
    let mut b = start(dir.path(), "b", &key, vec![a.addr.clone()]).await;
    wait_connected(&mut b, &[&a.id]).await;
    let b_id = b.id.clone();
    // A sees B connected (B may see A first), and never as incompatible.
    let connected = wait_for(&mut a.events, |ev| match ev {
        NetEvent::PeerConnected(peer) if *peer == b_id => Some(true),
        NetEvent::Incompatible { peer, .. } if *peer == b_id => Some(false),
        _ => None,
    })
    .await;
    assert_eq!(
        connected,
        Some(true),
        "A never saw B connected, or called it incompatible"
    );
    let reported = wait_within(&mut a.events, QUIET, |ev| match ev {
        NetEvent::Incompatible { peer, .. } if *peer == b_id => Some(()),
        _ => None,
    });
    let (reported, _) = tokio::join!(reported, async {
        // And it is asked as usual meanwhile.
        let resp = a
            .handle
            .request(&b_id, ControlRequest::Clock { sent_us: 2 })
            .await;
        assert!(resp.is_ok(), "{resp:?}");
    });
    assert!(
        reported.is_none(),
        "a compatible peer reported as incompatible"
    );
}

#[tokio::test]
async fn malformed_messages_are_dropped_counted_and_survived() {
    let dir = TempDir::new().unwrap();
    let (a, mut b) = two_connected(dir.path()).await;

    // Malformed gossip: rejected, counted and reported by B.
    let deadline = Instant::now() + TIMEOUT;
    let a_id = a.id.clone();
    loop {
        assert!(Instant::now() < deadline, "malformed gossip never reported");
        match a
            .handle
            .publish_raw(RUN_TOPIC, vec![0xde, 0xad, 0xbe, 0xef])
            .await
        {
            Ok(()) | Err(NetError::NoPeers) => {}
            Err(e) => panic!("publish failed: {e}"),
        }
        let dropped = wait_within(&mut b.events, ROUND, |ev| match ev {
            NetEvent::Dropped { from, reason } if reason.starts_with("gossip") => {
                Some(from.clone())
            }
            _ => None,
        })
        .await;
        if let Some(from) = dropped {
            assert_eq!(from, Some(a_id.clone()));
            break;
        }
    }
    let after_gossip = b.handle.stats().dropped;
    assert!(after_gossip >= 1);
    assert_eq!(b.handle.stats().gossip_in, 0);

    // A malformed control request: the asker gets an error, B counts it.
    let err = a
        .handle
        .request_raw(&b.id, vec![0xff; 10])
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Request(_)), "{err:?}");
    let from = wait_for(&mut b.events, |ev| match ev {
        NetEvent::Dropped { from, reason } if reason.starts_with("control request") => {
            Some(from.clone())
        }
        _ => None,
    })
    .await
    .expect("a Dropped event for the request");
    assert_eq!(from, Some(a_id));
    assert!(b.handle.stats().dropped > after_gossip);

    // B still answers, both typed and raw.
    let resp = a
        .handle
        .request(&b.id, ControlRequest::Clock { sent_us: 3 })
        .await
        .unwrap();
    assert_eq!(
        resp,
        ControlResponse::Clock {
            sent_us: 3,
            now_us: 42
        }
    );
    let raw = bfgg_protocol::encode(&ControlRequest::Clock { sent_us: 4 }).unwrap();
    let bytes = a.handle.request_raw(&b.id, raw).await.unwrap();
    assert_eq!(
        bfgg_protocol::decode::<ControlResponse>(&bytes).unwrap(),
        ControlResponse::Clock {
            sent_us: 4,
            now_us: 42
        }
    );
}

#[tokio::test]
async fn the_identity_file_keeps_the_node_id() {
    let dir = TempDir::new().unwrap();
    let key = ClusterKey::generate();
    let no_listen = |name: &str| NetConfig {
        listen: Vec::new(),
        ..config(dir.path(), name, &key, vec![])
    };
    let (first, _events) = spawn(no_listen("one")).unwrap();
    let (again, _events) = spawn(no_listen("one")).unwrap();
    let (other, _events) = spawn(no_listen("two")).unwrap();
    assert_eq!(first.local_id(), again.local_id());
    assert_ne!(first.local_id(), other.local_id());
    assert!(
        first.local_id().0.starts_with("12D3KooW"),
        "{}",
        first.local_id()
    );

    let path = dir.path().join("one.id");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A file that is not a key is an error, not a silently new identity.
    std::fs::write(dir.path().join("bad.id"), b"not a key").unwrap();
    let err = spawn(no_listen("bad")).unwrap_err();
    assert!(
        format!("{err:#}").contains("not a libp2p identity key"),
        "{err:#}"
    );
    // The identity directory is created when missing.
    let nested = NetConfig {
        identity_file: dir.path().join("x/y/node.id"),
        ..no_listen("unused")
    };
    spawn(nested).unwrap();
    assert!(dir.path().join("x/y/node.id").exists());
}

#[tokio::test]
async fn a_joined_peer_is_redialed_when_it_comes_back() {
    let dir = TempDir::new().unwrap();
    let key = ClusterKey::generate();
    let a = start(dir.path(), "a", &key, vec![]).await;
    let mut b = start(dir.path(), "b", &key, vec![a.addr.clone()]).await;
    wait_connected(&mut b, &[&a.id]).await;

    // A stops (its last handle is dropped) ...
    let (a_id, a_addr) = (a.id.clone(), a.addr.clone());
    drop(a);
    wait_for(&mut b.events, |ev| {
        matches!(ev, NetEvent::PeerDisconnected(p) if *p == a_id).then_some(())
    })
    .await
    .expect("B notices A is gone");
    // ... and comes back on the same address with the same identity.
    let same_addr = a_addr.split("/p2p/").next().unwrap().to_string();
    let (a2, _a2_events) = spawn(NetConfig {
        listen: vec![same_addr],
        ..config(dir.path(), "a", &key, vec![])
    })
    .unwrap();
    assert_eq!(a2.local_id(), &a_id);
    wait_for(&mut b.events, |ev| {
        matches!(ev, NetEvent::PeerConnected(p) if *p == a_id).then_some(())
    })
    .await
    .expect("B re-dials A");
}

#[tokio::test]
async fn a_node_starts_with_mdns_on() {
    // Discovery itself needs non-loopback interfaces (see NOTES.md); this
    // only checks that the mDNS behaviour builds and the node runs.
    let dir = TempDir::new().unwrap();
    let cfg = NetConfig {
        mdns: true,
        ..config(dir.path(), "m", &ClusterKey::generate(), vec![])
    };
    let (handle, mut events) = spawn(cfg).unwrap();
    let addr = wait_for(&mut events, |ev| match ev {
        NetEvent::Listening { addr } => Some(addr.clone()),
        _ => None,
    })
    .await;
    assert!(addr.is_some());
    assert!(handle.connected_peers().await.unwrap().is_empty());
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let dir = TempDir::new().unwrap();
    let cfg = config(dir.path(), "a", &ClusterKey::generate(), vec![]);
    let err = spawn(cfg).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn cluster_keys_parse_both_formats() {
    let file = format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}\n");
    let key = ClusterKey::parse(&file).unwrap();
    assert_eq!(key.to_file_text(), file);
    assert_eq!(ClusterKey::parse(HEX).unwrap(), key);
    assert_eq!(ClusterKey::parse(&format!("  {HEX}\n")).unwrap(), key);
    assert_eq!(
        ClusterKey::parse(&HEX.to_uppercase()).unwrap(),
        key,
        "upper-case hex"
    );
    assert_eq!(
        ClusterKey::parse(&file.replace('\n', "\r\n")).unwrap(),
        key,
        "CRLF"
    );
    // The text is what libp2p itself reads.
    let psk: libp2p::pnet::PreSharedKey = file.parse().unwrap();
    assert_eq!(psk.fingerprint().to_string(), key.fingerprint());

    let fresh = ClusterKey::generate();
    assert_ne!(fresh, ClusterKey::generate());
    assert_eq!(ClusterKey::parse(&fresh.to_file_text()).unwrap(), fresh);
    assert!(!format!("{fresh:?}").contains(&fresh.to_file_text()[31..63]));
}

#[test]
fn bad_cluster_keys_are_refused() {
    for bad in [
        String::new(),
        "\n\n".into(),
        HEX[..63].into(),
        format!("{HEX}0"),
        HEX.replace('a', "g"),
        format!("/key/swarm/psk/1.0.0/\n/base64/\n{HEX}\n"),
        format!("/key/swarm/psk/1.0.0/\n{HEX}\n"),
        format!("/key/swarm/psk/2.0.0/\n/base16/\n{HEX}\n"),
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}\nextra\n"),
        format!("{HEX}\n{HEX}"),
    ] {
        let err = ClusterKey::parse(&bad).unwrap_err();
        assert!(matches!(err, KeyError::Invalid { .. }), "{bad:?}: {err:?}");
    }
}

#[test]
fn the_fingerprint_is_stable_and_tells_keys_apart() {
    let key = ClusterKey::parse(HEX).unwrap();
    assert_eq!(
        key.fingerprint(),
        ClusterKey::parse(HEX).unwrap().fingerprint()
    );
    assert_ne!(key.fingerprint(), ClusterKey::generate().fingerprint());
    assert!(!key.fingerprint().contains(HEX));
}

#[test]
fn cluster_key_resolution_order() {
    let dir = TempDir::new().unwrap();
    let config_dir = dir.path().join("config");
    let explicit = dir.path().join("explicit.key");
    let file_key = ClusterKey::generate();
    std::fs::write(&explicit, file_key.to_file_text()).unwrap();
    let env_key = ClusterKey::generate();
    let env_text = env_key.to_file_text();

    // Nothing given: a fresh key is created (0600), then found again.
    let (created, source) = ClusterKey::resolve(None, None, &config_dir).unwrap();
    let path = config_dir.join(CLUSTER_KEY_FILE);
    assert_eq!(source, KeySource::Created(path.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        source.to_string().starts_with("new key written to "),
        "{source}"
    );
    let (existing, source) = ClusterKey::resolve(None, Some(""), &config_dir).unwrap();
    assert_eq!(source, KeySource::Existing(path.clone()));
    assert_eq!(existing, created);

    // The environment beats the config directory; the bare hex form works too.
    let (key, source) = ClusterKey::resolve(None, Some(&env_text), &config_dir).unwrap();
    assert_eq!((key, source), (env_key.clone(), KeySource::Env));
    let bare = env_text.lines().nth(2).unwrap();
    let (key, _) = ClusterKey::resolve(None, Some(bare), &config_dir).unwrap();
    assert_eq!(key, env_key);

    // An explicit file beats both.
    let (key, source) = ClusterKey::resolve(Some(&explicit), Some(&env_text), &config_dir).unwrap();
    assert_eq!((key, source), (file_key, KeySource::File(explicit.clone())));

    // Errors name their origin.
    let err = ClusterKey::resolve(None, Some("nope"), &config_dir).unwrap_err();
    assert!(err.to_string().starts_with("BFGG_CLUSTER_KEY"), "{err}");
    std::fs::write(&explicit, "nope").unwrap();
    let err = ClusterKey::resolve(Some(&explicit), None, &config_dir).unwrap_err();
    assert!(err.to_string().contains("explicit.key"), "{err}");
    let missing = dir.path().join("missing.key");
    let err = ClusterKey::resolve(Some(&missing), None, &config_dir).unwrap_err();
    assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_allocation() {
    // A prefix claiming 4 GiB followed by nothing: refused as InvalidData
    // from the prefix alone (an attempt to read the body would instead end
    // in UnexpectedEof).
    let mut io = libp2p::futures::io::Cursor::new(vec![0xFF, 0xFF, 0xFF, 0xFF]);
    let err = codec::read_frame(&mut io, MAX_CONTROL_BYTES)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("exceeds"), "{err}");

    let just_over = u32::try_from(MAX_CONTROL_BYTES + 1).unwrap().to_be_bytes();
    let mut io = libp2p::futures::io::Cursor::new(just_over.to_vec());
    let err = codec::read_frame(&mut io, MAX_CONTROL_BYTES)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    // Writing refuses it too.
    let mut out = Vec::new();
    let err = codec::write_frame(&mut out, &vec![0; MAX_CONTROL_BYTES + 1])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(out.is_empty());
}

#[tokio::test]
async fn frames_round_trip_and_truncation_is_an_error() {
    let mut out = Vec::new();
    codec::write_frame(&mut out, b"hello").await.unwrap();
    assert_eq!(out, [0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    let mut io = libp2p::futures::io::Cursor::new(out.clone());
    assert_eq!(codec::read_frame(&mut io, 5).await.unwrap(), b"hello");
    let mut io = libp2p::futures::io::Cursor::new(out.clone());
    assert_eq!(
        codec::read_frame(&mut io, 4).await.unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
    let mut io = libp2p::futures::io::Cursor::new(out[..7].to_vec());
    assert_eq!(
        codec::read_frame(&mut io, 5).await.unwrap_err().kind(),
        std::io::ErrorKind::UnexpectedEof
    );
}

#[test]
fn gossip_message_ids_are_8_bytes_and_tell_messages_apart() {
    use libp2p::gossipsub::{Message, TopicHash};
    let author = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let message = |seqno: u64, data: &[u8]| Message {
        source: Some(author),
        data: data.to_vec(),
        sequence_number: Some(seqno),
        topic: TopicHash::from_raw("bfgg/5/health"),
    };
    let id = |m: &Message| super::behaviour::short_message_id(m).0;
    assert_eq!(id(&message(1, b"a")).len(), 8);
    assert_eq!(
        id(&message(1, b"a")),
        id(&message(1, b"a")),
        "the same message, the same id"
    );
    assert_ne!(
        id(&message(1, b"a")),
        id(&message(2, b"a")),
        "a repeated health is a new message"
    );
    assert_ne!(id(&message(1, b"a")), id(&message(1, b"b")));
    let mut other = message(1, b"a");
    other.source = Some(
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id(),
    );
    assert_ne!(id(&message(1, b"a")), id(&other), "another author");
}
