//! One iteration, the hot path: a weighted journey step by step, each request
//! rendered, sent and read ([`exchange`], shared with the dry run), then
//! checked and extracted ([`judge`]) and recorded into the worker's own
//! recorder. No channel message per request; the only event sent from here
//! is the one-off notice that a data pool set to stop the run ran out.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bfgg_protocol::ErrorKind;
use rand::Rng;

use super::{RANK_DRAINING, Worker, phase_reaches};
use crate::engine::EngineEvent;
use crate::engine::native::client::{Conn, Connector, Response};
use crate::engine::native::h1::{H1Error, Want};
use crate::engine::native::plan::{Plan, PlannedStep, Scratch};
use crate::engine::native::recorder::Sample;
use crate::scenario::Step;
use crate::scenario::check::{ResponseView, run_checks};
use crate::scenario::context::{IterationContext, Pools};

/// Runs one iteration: a weighted journey, step by step. Requests are recorded
/// as they complete; a transport failure or a failed extraction ends the
/// iteration early, a failed check does not.
pub(super) async fn run_iteration(
    w: &Rc<Worker>,
    conn: &mut Option<Conn>,
    ctx: &mut IterationContext,
    scratch: &mut Scratch,
    iteration: u64,
    lag: Option<Duration>,
) {
    ctx.begin(iteration);
    let unit: f64 = ctx.rng().random();
    let j = w.plan.pick_journey(unit);
    let journey = w.plan.journey(j);
    for (si, step) in journey.steps.iter().enumerate() {
        let outcome = execute_step(w, conn, ctx, scratch, j, si, lag).await;
        let keep_going = match outcome {
            StepOutcome::Done { sample, keep_going } => {
                w.recorder.borrow_mut().record(sample);
                keep_going
            }
            StepOutcome::Exhausted(pool) => {
                if let Some(pool) = pool {
                    let first = w
                        .recorder
                        .borrow_mut()
                        .exhausted
                        .replace(pool.clone())
                        .is_none();
                    if first {
                        crate::engine::native::emit(&w.events, EngineEvent::Exhausted { pool })
                            .await;
                    }
                }
                false
            }
        };
        if !keep_going {
            return;
        }
        if let Some(think) = step.think_time {
            let unit: f64 = ctx.rng().random();
            let pause = think.sample(unit);
            // A stop interrupts think time and ends the iteration; at the
            // end of the schedule the iteration finishes (until the graceful
            // stop runs out and the worker aborts).
            let until = tokio::time::Instant::now() + pause;
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = phase_reaches(w.phase.clone(), RANK_DRAINING) => {
                    if !w.phase().iterations_finish() {
                        return;
                    }
                    tokio::time::sleep_until(until).await;
                }
            }
        }
    }
}

/// What one step came to.
#[derive(Debug)]
enum StepOutcome {
    Done {
        sample: Sample,
        keep_going: bool,
    },
    /// A unique pool ran out: `Some(pool)` when it is set to stop the run.
    Exhausted(Option<String>),
}

/// What one request came to, before checks.
#[derive(Debug)]
pub(super) enum Exchange {
    /// Nothing was sent: rendering or connecting failed.
    NotSent(ErrorKind),
    /// Sent, but no complete response.
    Failed { error: ErrorKind, bytes_out: u64 },
    /// A complete response.
    Done {
        resp: Response,
        bytes_out: u64,
        service: Duration,
        request: String,
    },
}

/// Renders the request, connects if needed, sends it and reads the response
/// within the request timeout. A reused HTTP/1.1 connection that the server
/// closed before answering is retried once on a fresh connection (the
/// service time then includes the reconnect). `describe` fills
/// `Exchange::Done::request` with the method and target as sent (the dry run
/// prints it; a run passes `false` and allocates nothing for it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange(
    plan: &Plan,
    connector: &Connector,
    conn: &mut Option<Conn>,
    planned: &PlannedStep,
    ctx: &mut IterationContext,
    pools: &RefCell<Pools>,
    scratch: &mut Scratch,
    want: Want,
    describe: bool,
) -> Exchange {
    let timeout = plan.scenario.target.request_timeout;
    let mut hyper_request = if plan.serialized {
        if let Err(e) = plan.serialize(planned, ctx, &mut pools.borrow_mut(), scratch) {
            return Exchange::NotSent(e);
        }
        None
    } else {
        match plan.build_request(planned, ctx, &mut pools.borrow_mut(), scratch) {
            Ok(r) => Some(r),
            Err(e) => return Exchange::NotSent(e),
        }
    };
    let request = if describe {
        match &hyper_request {
            Some((req, _)) => format!("{} {}", req.method(), req.uri()),
            None => String::from_utf8_lossy(
                scratch
                    .wire
                    .split(|b| *b == b'\r')
                    .next()
                    .unwrap_or_default(),
            )
            .trim_end_matches(" HTTP/1.1")
            .to_string(),
        }
    } else {
        String::new()
    };
    let mut retried = false;
    let sent = Instant::now();
    loop {
        if !conn.as_ref().is_some_and(Conn::is_usable) {
            *conn = None;
            match connector.connect().await {
                Ok(c) => *conn = Some(c),
                Err(e) => return Exchange::NotSent(e),
            }
        }
        let Some(c) = conn.as_mut() else {
            return Exchange::NotSent(ErrorKind::Io("no connection".into()));
        };
        let (result, bytes_out) = match hyper_request.take() {
            None => {
                let bytes_out = scratch.wire.len() as u64;
                let r = tokio::time::timeout(timeout, c.send_bytes(&scratch.wire, want)).await;
                let r = match r {
                    Err(_) => Err(ErrorKind::RequestTimeout),
                    Ok(Ok(resp)) => Ok(resp),
                    Ok(Err(H1Error::ClosedBeforeResponse)) if !retried => {
                        retried = true;
                        *conn = None;
                        continue;
                    }
                    Ok(Err(H1Error::ClosedBeforeResponse)) => Err(ErrorKind::Io(
                        "connection closed before the response".into(),
                    )),
                    Ok(Err(H1Error::Failed(e))) => Err(e),
                };
                (r, bytes_out)
            }
            Some((req, bytes_out)) => {
                let r = tokio::time::timeout(timeout, c.send(req, want.body)).await;
                (r.unwrap_or(Err(ErrorKind::RequestTimeout)), bytes_out)
            }
        };
        return match result {
            Ok(resp) => Exchange::Done {
                resp,
                bytes_out,
                service: sent.elapsed(),
                request,
            },
            Err(error) => {
                *conn = None;
                Exchange::Failed { error, bytes_out }
            }
        };
    }
}

/// One request, from rendering to checks and extraction.
async fn execute_step(
    w: &Rc<Worker>,
    conn: &mut Option<Conn>,
    ctx: &mut IterationContext,
    scratch: &mut Scratch,
    j: usize,
    si: usize,
    lag: Option<Duration>,
) -> StepOutcome {
    let planned = &w.plan.steps[j][si];
    let step = &w.plan.journey(j).steps[si];
    let done = exchange(
        &w.plan,
        &w.connector,
        conn,
        planned,
        ctx,
        &w.pools,
        scratch,
        planned.want,
        false,
    )
    .await;
    // A busy worker starts the arrivals due meanwhile now, not when its
    // timer's wake-up gets through.
    w.timer.wake_due();
    match done {
        Exchange::NotSent(ErrorKind::DataExhausted(pool)) => match w.pools.borrow().exhausted() {
            Some(stop) => StepOutcome::Exhausted(Some(stop.to_string())),
            None => failed(planned, ErrorKind::DataExhausted(pool), 0),
        },
        Exchange::NotSent(e) => failed(planned, e, 0),
        Exchange::Failed { error, bytes_out } => failed(planned, error, bytes_out),
        Exchange::Done {
            resp,
            bytes_out,
            service,
            ..
        } => judge(planned, step, &resp, bytes_out, service, lag, ctx),
    }
}

/// A request without a complete response: counted with its error, no times,
/// and the iteration ends.
fn failed(planned: &PlannedStep, error: ErrorKind, bytes_out: u64) -> StepOutcome {
    StepOutcome::Done {
        sample: Sample {
            name: planned.name_id,
            response_time: None,
            service_time: None,
            bytes_in: 0,
            bytes_out,
            error: Some(error),
        },
        keep_going: false,
    }
}

/// Checks and extraction on a complete response. The response time is the
/// service time plus the start's lag (measured from the intended start). A
/// failed check is the request's error and the iteration goes on; a failed
/// extraction is its error (unless a check failed first) and ends the
/// iteration. Extracted values are set in `ctx` for the next steps.
fn judge(
    planned: &PlannedStep,
    step: &Step,
    resp: &Response,
    bytes_out: u64,
    service: Duration,
    lag: Option<Duration>,
    ctx: &mut IterationContext,
) -> StepOutcome {
    let view = ResponseView::new(resp.status, &resp.headers, &resp.body);
    let mut error = run_checks(&step.checks, &view).err();
    let mut keep_going = true;
    for (var, extractor) in &step.extract {
        match extractor.extract(&view) {
            Some(value) => ctx.set_var(var, value),
            None => {
                keep_going = false;
                if error.is_none() {
                    error = Some(ErrorKind::Extract(format!(
                        "{var} from {}",
                        extractor.describe()
                    )));
                }
            }
        }
    }
    StepOutcome::Done {
        sample: Sample {
            name: planned.name_id,
            response_time: Some(service + lag.unwrap_or_default()),
            service_time: Some(service),
            bytes_in: resp.bytes_in,
            bytes_out,
            error,
        },
        keep_going,
    }
}

#[cfg(test)]
mod tests;
