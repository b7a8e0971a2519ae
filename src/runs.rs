//! `bfgg runs`: the local results store from a terminal or a CI job (list,
//! show, compare with `--fail-if`, rm); uploads are in `upload.rs`. The
//! listing and the comparison live in `bfgg_node::results` (`store`,
//! `compare`), shared with the cockpit.

use std::process::ExitCode;

use bfgg_node::results::{compare, store};

use crate::cli::{RunsCompareArgs, RunsListArgs, RunsRmArgs, RunsShowArgs};

/// `bfgg runs list`.
pub(crate) fn list(args: RunsListArgs) -> anyhow::Result<ExitCode> {
    let dir = store::default_store()?;
    let runs = store::list(&dir, args.limit);
    if args.json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "dir": r.dir,
                    "scenario": r.summary.as_ref().map(|s| s.scenario.clone()),
                    "engine": r.summary.as_ref().map(|s| s.engine.clone()),
                    "started_at_ms": r.summary.as_ref().map(|s| s.started_at_ms),
                    "duration_s": r.summary.as_ref().map(|s| s.duration_s),
                    "requests": r.summary.as_ref().map(|s| s.total.requests),
                    "rps": r.summary.as_ref().map(|s| s.total.rps),
                    "error_rate": r.summary.as_ref().map(|s| s.total.error_rate),
                    "p99_ms": r.summary.as_ref().map(|s| s.total.latency_ms.p99),
                    "thresholds_passed": r.summary.as_ref().map(|s| s.thresholds_passed()),
                    "agents": r.summary.as_ref().map(|s| s.agents.len()),
                    "upload": r.upload,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$} {:>7} {:>7} {:>10} {:>9} {:>7} {:>10} {:>10}  uploaded",
        "run", "engine", "secs", "requests", "req/s", "errors", "p99", "thresholds"
    );
    for r in &runs {
        match &r.summary {
            Some(s) => println!(
                "{:<width$} {:>7} {:>7.0} {:>10} {:>9.1} {:>6.2}% {:>7.1} ms {:>10}  {}",
                r.name,
                s.engine,
                s.duration_s,
                s.total.requests,
                s.total.rps,
                s.total.error_rate * 100.0,
                s.total.latency_ms.p99,
                if s.thresholds.is_empty() {
                    "-"
                } else if s.thresholds_passed() {
                    "passed"
                } else {
                    "FAILED"
                },
                r.upload.as_ref().map_or("-", |u| u.state.as_str()),
            ),
            None => println!("{:<width$} (no summary: the run did not finish)", r.name),
        }
    }
    println!("\n{} runs in {}", runs.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `bfgg runs show`.
pub(crate) fn show(args: RunsShowArgs) -> anyhow::Result<ExitCode> {
    let run = store::resolve(&store::default_store()?, &args.run)?;
    if args.json {
        print!("{}", std::fs::read_to_string(run.dir.join("summary.json"))?);
        return Ok(ExitCode::SUCCESS);
    }
    let summary = store::read_summary(&run.dir)?;
    print!("{}", bfgg_node::results::render_summary(&summary));
    if let Some(u) = &run.upload {
        println!(
            "\nupload: {} {}{}",
            u.state,
            u.url,
            u.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    println!("\nresults: {}", run.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `bfgg runs compare A B [--fail-if RULE]...`: exit 1 when a rule fails.
pub(crate) fn compare(args: RunsCompareArgs) -> anyhow::Result<ExitCode> {
    let dir = store::default_store()?;
    let a = store::resolve(&dir, &args.a)?;
    let b = store::resolve(&dir, &args.b)?;
    let (sa, sb) = (store::read_summary(&a.dir)?, store::read_summary(&b.dir)?);
    let rows = compare::compare(&sa, &sb);
    let verdicts: Vec<compare::Verdict> = args.fail_if.iter().map(|r| r.judge(&sa, &sb)).collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "a": a.dir, "b": b.dir, "rows": rows, "rules": verdicts,
            }))?
        );
    } else {
        print!("{}", compare::render(&a.name, &b.name, &rows, &verdicts));
    }
    Ok(if verdicts.iter().any(|v| v.failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `bfgg runs report RUN`: report.html and junit.xml written again from the
/// run's summary and interval log.
pub(crate) fn report(args: RunsShowArgs) -> anyhow::Result<ExitCode> {
    let run = store::resolve(&store::default_store()?, &args.run)?;
    let summary = store::read_summary(&run.dir)?;
    let failures = bfgg_node::results::report::write_derived(&run.dir, &summary);
    for f in &failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() {
        println!("{}", run.dir.join("report.html").display());
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(2))
    }
}

/// `bfgg runs rm RUN...`: refuses (without --force) a run whose upload
/// failed, since the store then holds its only copy.
pub(crate) fn rm(args: RunsRmArgs) -> anyhow::Result<ExitCode> {
    let dir = store::default_store()?;
    let mut code = ExitCode::SUCCESS;
    for name in &args.runs {
        let run = match store::resolve(&dir, name) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(2);
                continue;
            }
        };
        if !args.force && run.upload.as_ref().is_some_and(|u| u.state == "failed") {
            eprintln!(
                "error: {} was not uploaded (its upload failed): this is its only copy; \
                 `bfgg runs upload` it first, or pass --force",
                run.name
            );
            code = ExitCode::from(2);
            continue;
        }
        match store::delete(&dir, &run.dir) {
            Ok(()) => println!("deleted {}", run.dir.display()),
            Err(e) => {
                eprintln!("error: {e:#}");
                code = ExitCode::from(2);
            }
        }
    }
    Ok(code)
}
