//! What each subcommand does, in terms of the library crates. This is the
//! only place that writes to stdout/stderr for people (progress line, report).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use bfgg_node::run::{Progress, RunOptions, run_local};
use bfgg_node::scenario::{self, Scenario};
use bfgg_node::target::{TargetConfig, TargetServer};

use crate::cli::{CheckArgs, Command, DemoArgs, RunArgs, TargetArgs};

/// The demo scenario and its data, embedded so `bfgg demo` needs no checkout.
const DEMO_SCENARIO: &str = include_str!("../scenarios/demo.toml");
const DEMO_USERS: &str = include_str!("../scenarios/data/users.csv");

pub(crate) fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args),
        Command::Check(args) => check(args),
        Command::Target(args) => target(args),
        Command::Demo(args) => demo(args),
    }
}

/// Exit code for a scenario that could not be loaded: 2, after printing the
/// diagnostics (which carry file:line:column).
fn load(path: &Path, target: Option<&str>, duration: Option<&str>) -> Result<Scenario, ExitCode> {
    let mut scenario = match scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    if let Some(url) = target {
        scenario = match scenario.with_target(url) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: --target {url}: {e}");
                return Err(ExitCode::from(2));
            }
        };
    }
    if let Some(d) = duration {
        match scenario::duration::parse_duration(d) {
            Ok(d) if !d.is_zero() => scenario.load.duration = d,
            Ok(_) => {
                eprintln!("error: --duration {d}: must be more than zero");
                return Err(ExitCode::from(2));
            }
            Err(e) => {
                eprintln!("error: --duration {d}: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(scenario)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn progress_line(p: &Progress<'_>) -> String {
    let total = p.interval.total();
    let err_pct = if p.total_requests == 0 {
        0.0
    } else {
        p.total_errors as f64 * 100.0 / p.total_requests as f64
    };
    let mut line = format!(
        "{:>4}s/{}s  {:>8} req/s  p99 {:>8.2} ms  errors {:>5.2}%  total {}",
        p.elapsed.as_secs(),
        p.duration.as_secs(),
        total.requests,
        total.response_time.quantile_us(0.99) as f64 / 1000.0,
        err_pct,
        p.total_requests,
    );
    if p.interval.generator.cpu_busy_permille > bfgg_node::results::BUSY_PERMILLE {
        line.push_str("  [generator busy]");
    }
    if p.interval.generator.late_starts > 0 {
        line.push_str(&format!("  [{} late]", p.interval.generator.late_starts));
    }
    line
}

fn execute(
    scenario: Scenario,
    out: Option<std::path::PathBuf>,
    json: bool,
    options: RunOptions,
) -> anyhow::Result<ExitCode> {
    let live = std::io::stderr().is_terminal();
    let rt = runtime()?;
    let options = RunOptions {
        out_dir: out,
        ..options
    };
    let outcome = rt.block_on(run_local(scenario, options, stop_signal(), |p| {
        if live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", progress_line(p));
            let _ = err.flush();
        }
    }))?;
    if live {
        eprint!("\r\x1b[2K");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", bfgg_node::results::render_summary(&outcome.summary));
        println!("\nresults: {}", outcome.dir.display());
    }
    if json {
        eprintln!("results: {}", outcome.dir.display());
    }
    Ok(if outcome.summary.thresholds_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = match load(&args.file, args.target.as_deref(), args.duration.as_deref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    execute(
        scenario,
        args.out,
        args.json,
        RunOptions {
            workers: args.workers,
            seed: args.seed,
            ..RunOptions::default()
        },
    )
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let scenario = match load(&args.file, args.target.as_deref(), None) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let steps: usize = scenario.journeys.iter().map(|j| j.steps.len()).sum();
    println!(
        "ok: {}: scenario {:?}, {} journeys, {} requests, {} model, {} s, target {}{}",
        args.file.display(),
        scenario.name,
        scenario.journeys.len(),
        steps,
        match scenario.load.model {
            scenario::LoadModel::Open { .. } => "open",
            scenario::LoadModel::Closed { .. } => "closed",
        },
        scenario.load.duration.as_secs_f64(),
        scenario.target.origin,
        scenario.target.base_path,
    );
    if !args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = runtime()?;
    let lines = rt.block_on(bfgg_node::engine::native::dry_run(std::sync::Arc::new(
        scenario,
    )))?;
    let mut failed = false;
    for l in &lines {
        let status = l.status.map_or("---".to_string(), |s| s.to_string());
        println!(
            "{:<20} {:<16} {} {:>8.2} ms  {}",
            l.journey,
            l.name,
            status,
            l.elapsed.as_secs_f64() * 1000.0,
            l.request
        );
        for (k, v) in &l.extracted {
            println!("{:>40} {k} = {v}", "");
        }
        if let Some(e) = &l.error {
            failed = true;
            println!("{:>40} error: {e}", "");
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn target_config(args: &TargetArgs) -> anyhow::Result<TargetConfig> {
    let config = TargetConfig {
        listen: args.listen,
        latency: args
            .latency
            .parse()
            .map_err(|e| anyhow::anyhow!("--latency: {e}"))?,
        error_rate: args.error_rate,
        error_status: args.error_status,
        response_size: args.response_size,
        stall: match &args.stall {
            Some(s) => Some(s.parse().map_err(|e| anyhow::anyhow!("--stall: {e}"))?),
            None => None,
        },
        workers: args.workers,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(bfgg_node::target::TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("--tls-cert and --tls-key go together")
            }
            (None, None) => args.tls.then_some(bfgg_node::target::TlsSource::SelfSigned),
        },
    };
    config.validate()?;
    Ok(config)
}

fn target(args: TargetArgs) -> anyhow::Result<ExitCode> {
    let config = target_config(&args)?;
    let tls = if config.tls.is_some() {
        ",\"tls\":true"
    } else {
        ""
    };
    bfgg_node::target::run_blocking(config, |addr| {
        println!("{{\"listening\":\"{addr}\"{tls}}}");
        let _ = std::io::stdout().flush();
    })?;
    Ok(ExitCode::SUCCESS)
}

fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Unpack the embedded scenario next to its data, as a checkout would have it.
    let dir = std::env::temp_dir().join(format!("bfgg-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("demo.toml");
    std::fs::write(&file, DEMO_SCENARIO).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(dir.join("data/users.csv"), DEMO_USERS)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the demo target's runtime")?;
    let server = rt.block_on(TargetServer::start(TargetConfig {
        listen: "127.0.0.1:0".parse()?,
        latency: "2ms|40ms@5%".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        ..TargetConfig::default()
    }))?;
    let url = format!("http://{}", server.local_addr());
    eprintln!(
        "demo: built-in target on {url}, scenario {}",
        file.display()
    );
    let scenario = match load(&file, Some(&url), args.duration.as_deref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let result = execute(scenario, args.out, args.json, RunOptions::default());
    rt.block_on(server.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    result
}
