//! One iteration: checks and extraction on a response (no network), the
//! exchange against scripted loopback servers (a reused connection closed
//! before answering is retried once on a fresh one, timeouts, refused
//! connections, requests that never render), and whole iterations against
//! the loopback target (where an iteration stops, a pool that stops the run).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bfgg_protocol::IntervalSnapshot;
use bytes::Bytes;
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::super::fixtures::{self, TIMEOUT};
use super::*;
use crate::engine::native::h1::H1Response;
use crate::engine::schedule::Segment;
use crate::scenario::Scenario;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A closed-model load for scenarios whose load does not matter here.
const LOAD: &str = "[load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n";

fn plan_at(addr: SocketAddr, rest: &str) -> Plan {
    Plan::new(fixtures::scenario(addr, rest)).expect("a plan")
}

/// A plan whose target is never reached.
fn plan(rest: &str) -> Plan {
    plan_at("127.0.0.1:1".parse().expect("an address"), rest)
}

fn response(status: u16, body: &'static str) -> Response {
    H1Response {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from_static(body.as_bytes()),
        bytes_in: body.len() as u64,
    }
}

/// `judge` on the first step of the first journey.
fn judge_first(
    plan: &Plan,
    resp: &Response,
    lag: Option<Duration>,
    ctx: &mut IterationContext,
) -> (Sample, bool) {
    let step = &plan.scenario.journeys[0].steps[0];
    match judge(&plan.steps[0][0], step, resp, 40, ms(3), lag, ctx) {
        StepOutcome::Done { sample, keep_going } => (sample, keep_going),
        other => panic!("expected a sample, got {other:?}"),
    }
}

#[test]
fn a_failed_check_is_the_error_and_the_iteration_goes_on() {
    let checked = plan(&format!(
        "{LOAD}[[request]]\npath = \"/a\"\ncheck = {{ status = 200 }}\n"
    ));
    let mut ctx = IterationContext::new(0, 1);
    let (sample, keep_going) = judge_first(&checked, &response(503, "down"), None, &mut ctx);
    assert!(keep_going);
    assert_eq!(
        sample.error,
        Some(ErrorKind::Check("status 503 expected 200".into()))
    );
    assert_eq!(
        sample.response_time,
        Some(ms(3)),
        "no lag in the closed model"
    );
    // Without checks an error status is the error.
    let unchecked = plan(&format!("{LOAD}[[request]]\npath = \"/a\"\n"));
    let (sample, keep_going) = judge_first(&unchecked, &response(502, ""), None, &mut ctx);
    assert!(keep_going);
    assert_eq!(sample.error, Some(ErrorKind::Status(502)));
}

#[test]
fn a_failed_extraction_ends_the_iteration_unless_a_check_failed_first() {
    let plan = plan(&format!(
        "{LOAD}[[request]]\npath = \"/a\"\ncheck = {{ status = 200 }}\n\
         extract = {{ id = {{ json = \"/id\" }} }}\n"
    ));
    let mut ctx = IterationContext::new(0, 1);
    let (sample, keep_going) = judge_first(&plan, &response(200, "{}"), None, &mut ctx);
    assert!(!keep_going);
    assert_eq!(
        sample.error,
        Some(ErrorKind::Extract("id from json /id".into()))
    );
    assert_eq!(ctx.var("id"), None);
    let (sample, keep_going) = judge_first(&plan, &response(500, "{}"), None, &mut ctx);
    assert!(!keep_going);
    assert_eq!(
        sample.error,
        Some(ErrorKind::Check("status 500 expected 200".into())),
        "the check's failure is the one counted"
    );
}

#[test]
fn extracted_values_are_kept_for_the_next_steps_and_times_include_the_lag() {
    let plan = plan(&format!(
        "{LOAD}[[request]]\nname = \"item\"\npath = \"/a\"\n\
         extract = {{ id = {{ json = \"/id\" }} }}\n"
    ));
    let mut ctx = IterationContext::new(0, 1);
    let (sample, keep_going) =
        judge_first(&plan, &response(200, r#"{"id":42}"#), Some(ms(7)), &mut ctx);
    assert!(keep_going);
    assert_eq!(sample.error, None);
    assert_eq!(ctx.var("id"), Some("42"));
    assert_eq!(plan.names[sample.name], "item");
    assert_eq!(sample.service_time, Some(ms(3)));
    assert_eq!(
        sample.response_time,
        Some(ms(10)),
        "measured from the intended start"
    );
    assert_eq!((sample.bytes_in, sample.bytes_out), (9, 40));
}

/// A server that, on its n-th connection, answers `script[n]` requests with
/// an empty 200 and then closes (beyond the script, closes at once). Counts
/// the connections it accepted.
async fn scripted(script: Vec<usize>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answers = script.get(n).copied().unwrap_or(0);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for _ in 0..answers {
                    loop {
                        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..pos + 4);
                            break;
                        }
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                }
                // Wait for the next request, then close without answering.
                let mut chunk = [0u8; 1024];
                let _ = s.read(&mut chunk).await;
            });
        }
    });
    (addr, accepted)
}

/// What `exchange` needs besides the plan, as a slot holds it.
struct Slot {
    connector: Connector,
    conn: Option<Conn>,
    ctx: IterationContext,
    pools: RefCell<Pools>,
    scratch: Scratch,
}

impl Slot {
    fn new(plan: &Plan) -> Self {
        Self {
            connector: Connector::new(&plan.scenario.target).expect("a connector"),
            conn: None,
            ctx: IterationContext::new(0, 1),
            pools: RefCell::new(Pools::new(&plan.scenario.pools, 0, 1)),
            scratch: Scratch::default(),
        }
    }

    /// Sends step `si` of the first journey.
    async fn exchange_step(&mut self, plan: &Plan, si: usize, describe: bool) -> Exchange {
        let planned = &plan.steps[0][si];
        tokio::time::timeout(
            TIMEOUT,
            exchange(
                plan,
                &self.connector,
                &mut self.conn,
                planned,
                &mut self.ctx,
                &self.pools,
                &mut self.scratch,
                planned.want,
                describe,
            ),
        )
        .await
        .expect("the exchange ends")
    }
}

#[tokio::test]
async fn a_reused_connection_closed_before_answering_is_retried_once_on_a_fresh_one() {
    // One answer on the first connection, one on the second, none on the third.
    let (addr, accepted) = scripted(vec![1, 1, 0]).await;
    let plan = plan_at(addr, &format!("{LOAD}[[request]]\npath = \"/a\"\n"));
    let mut slot = Slot::new(&plan);
    for round in 0..2 {
        match slot.exchange_step(&plan, 0, false).await {
            Exchange::Done { resp, request, .. } => {
                assert_eq!(resp.status, 200, "round {round}");
                assert_eq!(request, "", "nothing described in a run");
            }
            other => panic!("round {round}: expected a response, got {other:?}"),
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "retried on a new connection"
    );
    // The second connection closes after its answer too; the retry lands on
    // the third, which closes without one: that is the request's error.
    match slot.exchange_step(&plan, 0, false).await {
        Exchange::Failed {
            error: ErrorKind::Io(message),
            bytes_out,
        } => {
            assert!(message.contains("closed"), "{message}");
            assert!(bytes_out > 0);
        }
        other => panic!("expected an i/o failure, got {other:?}"),
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "retried once, not again"
    );
    assert!(slot.conn.is_none(), "a failed connection is dropped");
}

#[tokio::test]
async fn a_response_later_than_the_request_timeout_is_a_timeout() {
    let target = fixtures::target().await;
    let plan = plan_at(
        target.local_addr(),
        &format!("request_timeout = \"200ms\"\n{LOAD}[[request]]\npath = \"/delay/5000\"\n"),
    );
    let mut slot = Slot::new(&plan);
    match slot.exchange_step(&plan, 0, false).await {
        Exchange::Failed {
            error: ErrorKind::RequestTimeout,
            bytes_out,
        } => assert!(bytes_out > 0, "the request was sent"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(slot.conn.is_none(), "a timed-out connection is dropped");
}

#[tokio::test]
async fn nothing_is_sent_when_connecting_or_rendering_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed = listener.local_addr().expect("addr");
    drop(listener);
    let plan = plan_at(closed, &format!("{LOAD}[[request]]\npath = \"/a\"\n"));
    let mut slot = Slot::new(&plan);
    match slot.exchange_step(&plan, 0, false).await {
        Exchange::NotSent(ErrorKind::ConnectRefused) => {}
        other => panic!("expected a refused connection, got {other:?}"),
    }

    let (addr, accepted) = scripted(vec![1]).await;
    let plan = plan_at(
        addr,
        &format!(
            "{LOAD}[[journey]]\nname = \"j\"\n\
             [[journey.step]]\npath = \"/a\"\nextract = {{ id = {{ json = \"/id\" }} }}\n\
             [[journey.step]]\npath = \"/b?id={{{{id}}}}\"\n"
        ),
    );
    let mut slot = Slot::new(&plan);
    match slot.exchange_step(&plan, 1, true).await {
        Exchange::NotSent(ErrorKind::Extract(_)) => {}
        other => panic!("expected a rendering failure, got {other:?}"),
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection opened");
    match slot.exchange_step(&plan, 0, true).await {
        Exchange::Done { request, .. } => assert_eq!(request, "GET /a", "described as sent"),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Runs `iterations` iterations of `scenario` on one test worker (one slot),
/// and returns it with what it recorded and the events it sent.
async fn iterate(
    scenario: Arc<Scenario>,
    iterations: u64,
) -> (IntervalSnapshot, Option<String>, Vec<EngineEvent>) {
    let mut tw = fixtures::worker(scenario, Segment::WHOLE);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (mut conn, mut ctx, mut scratch) =
                (None, IterationContext::new(0, 1), Scratch::default());
            for iteration in 0..iterations {
                let run = run_iteration(&tw.w, &mut conn, &mut ctx, &mut scratch, iteration, None);
                tokio::time::timeout(TIMEOUT, run)
                    .await
                    .expect("the iteration ends");
            }
        })
        .await;
    let mut events = Vec::new();
    while let Ok(event) = tw.events.try_recv() {
        events.push(event);
    }
    let mut recorder = tw.w.recorder.borrow_mut();
    let exhausted = recorder.exhausted.clone();
    (recorder.take(0, 0), exhausted, events)
}

#[tokio::test]
async fn an_iteration_stops_at_a_failed_extraction_but_not_at_a_failed_check() {
    let target = fixtures::target().await;
    let scenario = fixtures::scenario(
        target.local_addr(),
        &format!(
            "{LOAD}[[journey]]\nname = \"j\"\n\
             [[journey.step]]\nname = \"down\"\npath = \"/status/503\"\ncheck = {{ status = 200 }}\n\
             [[journey.step]]\nname = \"json\"\npath = \"/json\"\nextract = {{ x = {{ json = \"/nope\" }} }}\n\
             [[journey.step]]\nname = \"never\"\npath = \"/\"\n"
        ),
    );
    let (recorded, exhausted, events) = iterate(scenario, 2).await;
    assert_eq!(recorded.by_name["down"].requests, 2);
    assert_eq!(recorded.by_name["json"].requests, 2);
    assert!(
        !recorded.by_name.contains_key("never"),
        "{:?}",
        recorded.by_name.keys()
    );
    assert_eq!(
        recorded.by_name["json"].errors[&ErrorKind::Extract("x from json /nope".into())],
        2
    );
    assert_eq!(target.stats().total, 4);
    assert_eq!(exhausted, None);
    assert!(events.is_empty(), "no message per request: {events:?}");
}

#[tokio::test]
async fn a_pool_that_stops_the_run_is_reported_once() {
    let target = fixtures::target().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("codes.csv"), "code\nA\n").expect("write the pool");
    let scenario = fixtures::scenario_in(
        target.local_addr(),
        &format!(
            "{LOAD}[data.codes]\nfile = \"codes.csv\"\nstrategy = \"unique\"\non_exhausted = \"stop\"\n\
             [[request]]\nname = \"redeem\"\npath = \"/status/200?code={{{{codes.code}}}}\"\n"
        ),
        dir.path(),
    );
    let (recorded, exhausted, events) = iterate(scenario, 3).await;
    assert_eq!(recorded.by_name["redeem"].requests, 1, "the one row, once");
    assert_eq!(exhausted.as_deref(), Some("codes"));
    match &events[..] {
        [EngineEvent::Exhausted { pool }] => assert_eq!(pool, "codes"),
        other => panic!("expected one Exhausted event, got {other:?}"),
    }
}
