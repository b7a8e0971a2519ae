//! The dry run (`bfgg check --dry-run`): every journey once, in order, with
//! one user and one connection, through the same [`exchange`] as a run, each
//! request reported as a [`DryRunStep`] (what was sent, status, time, error,
//! extractions) instead of recorded. No schedule, no recorder, no worker.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use bfgg_protocol::ErrorKind;

use super::iteration::{Exchange, exchange};
use crate::engine::native::client::{Conn, Connector};
use crate::engine::native::h1::Want;
use crate::engine::native::plan::{Plan, Scratch};
use crate::scenario::Scenario;
use crate::scenario::check::{ResponseView, run_checks};
use crate::scenario::context::{IterationContext, Pools};

/// One request of a dry run, as `bfgg check --dry-run` prints it.
#[derive(Debug, Clone)]
pub struct DryRunStep {
    /// Journey name.
    pub journey: String,
    /// Request name.
    pub name: String,
    /// Method and request target as sent (or as written, if never sent).
    pub request: String,
    /// Response status, if a response arrived.
    pub status: Option<u16>,
    /// Time from send to the last byte.
    pub elapsed: Duration,
    /// The error this request counted as, if any.
    pub error: Option<String>,
    /// Variables extracted by this step.
    pub extracted: Vec<(String, String)>,
}

/// Runs every journey once, in order, with one user, and reports each request
/// through the same code path as a run. A journey stops at its first transport
/// or extraction failure, as in a run.
pub async fn dry_run(scenario: Arc<Scenario>) -> anyhow::Result<Vec<DryRunStep>> {
    let plan = Plan::new(scenario)?;
    let connector = Connector::new(&plan.scenario.target)?;
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let pools = RefCell::new(Pools::new(&plan.scenario.pools, 0, 1));
            let mut out = Vec::new();
            let mut conn: Option<Conn> = None;
            let mut ctx = IterationContext::new(0, 1);
            let mut scratch = Scratch::default();
            for (j, journey) in plan.scenario.journeys.iter().enumerate() {
                ctx.begin(j as u64);
                for (si, step) in journey.steps.iter().enumerate() {
                    let planned = &plan.steps[j][si];
                    let mut line = DryRunStep {
                        journey: journey.name.clone(),
                        name: step.name.clone(),
                        request: format!("{} {}", step.method, step.path.source()),
                        status: None,
                        elapsed: Duration::ZERO,
                        error: None,
                        extracted: Vec::new(),
                    };
                    let want = Want {
                        body: true,
                        headers: true,
                        ..planned.want
                    };
                    match exchange(
                        &plan,
                        &connector,
                        &mut conn,
                        planned,
                        &mut ctx,
                        &pools,
                        &mut scratch,
                        want,
                        true,
                    )
                    .await
                    {
                        Exchange::NotSent(e) | Exchange::Failed { error: e, .. } => {
                            line.error = Some(e.to_string());
                            out.push(line);
                            break;
                        }
                        Exchange::Done {
                            resp,
                            service,
                            request,
                            ..
                        } => {
                            line.request = request;
                            line.elapsed = service;
                            line.status = Some(resp.status);
                            let view = ResponseView::new(resp.status, &resp.headers, &resp.body);
                            line.error =
                                run_checks(&step.checks, &view).err().map(|e| e.to_string());
                            let mut stop = false;
                            for (var, extractor) in &step.extract {
                                match extractor.extract(&view) {
                                    Some(v) => {
                                        line.extracted.push((var.clone(), v.clone()));
                                        ctx.set_var(var, v);
                                    }
                                    None => {
                                        stop = true;
                                        line.error.get_or_insert_with(|| {
                                            ErrorKind::Extract(format!(
                                                "{var} from {}",
                                                extractor.describe()
                                            ))
                                            .to_string()
                                        });
                                    }
                                }
                            }
                            out.push(line);
                            if stop {
                                break;
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
}

#[cfg(test)]
mod tests;
