//! The dry run against the loopback target: every journey once, each request
//! reported as sent with its status and extractions; a journey stops at its
//! first failed extraction or transport failure, not at a failed check.

use std::net::SocketAddr;

use super::super::fixtures;
use super::*;

const LOAD: &str = "[load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n";

async fn dry(addr: SocketAddr, journeys: &str) -> Vec<DryRunStep> {
    let scenario = fixtures::scenario(addr, &format!("{LOAD}{journeys}"));
    tokio::time::timeout(fixtures::TIMEOUT, dry_run(scenario))
        .await
        .expect("the dry run ends")
        .expect("the dry run starts")
}

/// `journey/name request status error`, one per line, for comparing.
fn lines(steps: &[DryRunStep]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            format!(
                "{}/{} {} {:?} {:?}",
                s.journey, s.name, s.request, s.status, s.error
            )
        })
        .collect()
}

#[tokio::test]
async fn each_journey_runs_once_and_each_request_is_reported_as_sent() {
    let target = fixtures::target().await;
    let steps = dry(
        target.local_addr(),
        r#"[[journey]]
name = "login-flow"
  [[journey.step]]
  name = "login"
  method = "POST"
  path = "/login"
  json = { user = "ada", password = "secret" }
  extract = { token = { json = "/token" } }
  check = { status = 200 }
  [[journey.step]]
  name = "me"
  path = "/me?as={{token}}"
  headers = { authorization = "Bearer {{token}}" }
  check = { status = 200, body_contains = "ada" }
[[journey]]
name = "probe"
  [[journey.step]]
  name = "empty"
  path = "/status/204"
"#,
    )
    .await;
    assert_eq!(
        lines(&steps),
        [
            "login-flow/login POST /login Some(200) None",
            "login-flow/me GET /me?as=tok-ada Some(200) None",
            "probe/empty GET /status/204 Some(204) None",
        ]
    );
    assert_eq!(
        steps[0].extracted,
        [("token".to_string(), "tok-ada".to_string())]
    );
    assert!(steps[1].extracted.is_empty());
    assert_eq!(target.stats().total, 3, "one request per step");
}

#[tokio::test]
async fn a_journey_stops_at_a_failed_extraction_but_not_at_a_failed_check() {
    let target = fixtures::target().await;
    let steps = dry(
        target.local_addr(),
        r#"[[journey]]
name = "j"
  [[journey.step]]
  name = "down"
  path = "/status/503"
  check = { status = 200 }
  [[journey.step]]
  name = "json"
  path = "/json"
  extract = { x = { json = "/nope" } }
  [[journey.step]]
  name = "never"
  path = "/"
[[journey]]
name = "next"
  [[journey.step]]
  name = "root"
  path = "/"
"#,
    )
    .await;
    assert_eq!(
        lines(&steps),
        [
            r#"j/down GET /status/503 Some(503) Some("check failed: status 503 expected 200")"#,
            r#"j/json GET /json Some(200) Some("extract failed: x from json /nope")"#,
            "next/root GET / Some(200) None",
        ]
    );
}

#[tokio::test]
async fn an_unreachable_target_ends_each_journey_at_its_first_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed = listener.local_addr().expect("addr");
    drop(listener);
    let steps = dry(
        closed,
        r#"[[journey]]
name = "a"
  [[journey.step]]
  name = "first"
  path = "/one?x=1"
  [[journey.step]]
  name = "second"
  path = "/two"
[[journey]]
name = "b"
  [[journey.step]]
  name = "only"
  method = "DELETE"
  path = "/three"
"#,
    )
    .await;
    let refused = ErrorKind::ConnectRefused.to_string();
    assert_eq!(
        lines(&steps),
        [
            format!("a/first GET /one?x=1 None Some({refused:?})"),
            format!("b/only DELETE /three None Some({refused:?})"),
        ],
        "the request as written when nothing was sent"
    );
    assert!(steps.iter().all(|s| s.elapsed == Duration::ZERO));
}
