//! The demo cluster starts, points its scenario at its own target, and
//! leaves nothing behind when shut down.

use super::*;

const FILES: DemoFiles<'static> = DemoFiles {
    scenario: "[target]\nbase_url = \"http://127.0.0.1:8080\"\n",
    users: "user\nalice\n",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_its_nodes_and_cleans_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("demo");
    let demo = Demo::start(dir.clone(), FILES)
        .await
        .expect("the demo starts");

    let scenario = std::fs::read_to_string(&demo.scenario).expect("the scenario");
    assert!(
        scenario.contains(&format!("base_url = \"{}\"", demo.target_url)),
        "{scenario}"
    );
    assert_ne!(demo.target_url, SCENARIO_TARGET);
    assert_eq!(
        std::fs::read_to_string(demo.scenarios_dir.join("data/users.csv")).expect("the data"),
        FILES.users
    );
    assert!(demo.scenario.starts_with(&demo.scenarios_dir));
    let key = std::fs::read_to_string(&demo.key_file).expect("the key");
    assert!(ClusterKey::parse(&key).is_ok(), "{key}");
    assert!(
        demo.join.starts_with("/ip4/127.0.0.1/tcp/") && demo.join.contains("/p2p/"),
        "{}",
        demo.join
    );
    assert_eq!(demo.nodes.len(), Demo::NODES);
    for i in 1..=Demo::NODES {
        assert!(dir.join(format!("node-{i}")).is_dir(), "node {i}'s data");
    }

    demo.shutdown().await;
    assert!(!dir.exists(), "the demo's directory is removed");
}
