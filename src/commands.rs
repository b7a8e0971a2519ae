//! What each subcommand does, in terms of the library crates: turn the
//! arguments clap leaves as text into library values, call the library, print.
//! This is the only place that writes to stdout/stderr for people (progress
//! line, report, the demo's banner); what the commands do lives in the
//! library (`run_local`, `run_node`, `Client`, `RunSpec`, `Demo`, the cockpit).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bfgg_node::cluster::NodeConfig;
use bfgg_node::cluster::client::{Client, Follow};
use bfgg_node::cluster::demo::{Demo, DemoFiles};
use bfgg_node::cluster::operators::{OperatorKey, Operators};
use bfgg_node::cluster::request::RunSpec;
use bfgg_node::cluster::view::Timeouts;
use bfgg_node::net::{ClusterKey, KeySource, NetConfig};
use bfgg_node::run::{Progress, RunOptions, StopRequest, run_local};
use bfgg_node::scenario::{self, Scenario};
use bfgg_node::target::TargetConfig;
use bfgg_protocol::mesh::{AgentSelection, RunEvent};

use crate::cli::{
    CheckArgs, Command, DemoArgs, MeshArgs, NodeArgs, RunArgs, StatusArgs, StopArgs, TargetArgs,
    TuiArgs,
};

/// The demo scenario and its data, embedded so `bfgg demo` needs no checkout.
const DEMO_FILES: DemoFiles<'static> = DemoFiles {
    scenario: include_str!("../scenarios/demo.toml"),
    users: include_str!("../scenarios/data/users.csv"),
};

pub(crate) fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(args),
        Command::Check(args) => check(args),
        Command::Target(args) => target(args),
        Command::Demo(args) => demo(args),
        Command::Node(args) => node(args),
        Command::Status(args) => status(args),
        Command::Id => {
            let key = operator_key()?;
            println!("{}", key.id());
            eprintln!(
                "bfgg: your operator id (key {}); an operator list takes it with `bfgg node --operators` or a line in <config dir>/operators",
                key.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop(args) => stop(args),
        Command::Tui(args) => tui(args),
        Command::Runs(runs) => match runs {
            crate::cli::RunsCommand::List(args) => crate::runs::list(args),
            crate::cli::RunsCommand::Show(args) => crate::runs::show(args),
            crate::cli::RunsCommand::Compare(args) => crate::runs::compare(args),
            crate::cli::RunsCommand::Rm(args) => crate::runs::rm(args),
            crate::cli::RunsCommand::Report(args) => crate::runs::report(args),
            crate::cli::RunsCommand::Upload(args) => crate::upload::runs_upload(args),
        },
        Command::Config(crate::cli::ConfigCommand::Show) => crate::config::show(),
        Command::Completions(args) => crate::docs::completions(args),
        Command::Man(args) => crate::docs::man(args),
    }
}

/// A multi-thread tokio runtime with `threads` workers, for the mesh
/// commands (the swarm and the node's tasks; load itself runs on the
/// engine's own threads). Local runs use [`runtime`].
fn multi_thread_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `bfgg tui`: the cockpit on a light peer.
fn tui(args: TuiArgs) -> anyhow::Result<ExitCode> {
    let identity = LightIdentity::new()?;
    let net = net_config(
        &args.mesh,
        identity.file(),
        vec!["/ip4/0.0.0.0/tcp/0".into()],
    )?;
    let timeouts = Timeouts {
        unresponsive: duration_arg("--unresponsive-after", &args.unresponsive_after)?,
        dead: duration_arg("--dead-after", &args.dead_after)?,
    };
    let rt = multi_thread_runtime(2)?;
    cockpit(&rt, net, args.scenario_dirs, timeouts)
}

/// The cockpit on `net` until the user quits; runs it started keep their
/// results in the user's results store.
fn cockpit(
    rt: &tokio::runtime::Runtime,
    net: NetConfig,
    scenario_dirs: Vec<PathBuf>,
    timeouts: Timeouts,
) -> anyhow::Result<ExitCode> {
    let config = bfgg_tui::runtime::TuiConfig {
        net,
        scenario_dirs,
        results_dir: project_dirs()?.data_dir().join("runs"),
        timeouts,
        operator: operator_key()?,
    };
    rt.block_on(bfgg_tui::runtime::run(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Exit code for a scenario that could not be loaded: 2, after printing the
/// diagnostics (which carry file:line:column). A scenario with a `[source]`
/// is checked out here (its revision resolved now, cached by commit) when
/// `checkout` is set: runs on this machine and `bfgg check`; a cluster run
/// leaves that to the coordinator and the agents.
fn load(
    path: &Path,
    target: Option<&str>,
    duration: Option<&str>,
    checkout: bool,
) -> Result<Scenario, ExitCode> {
    let mut scenario = match scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    if let (Some(source), true) = (scenario.git.clone(), checkout) {
        let cache = bfgg_node::engine::default_cache_dir();
        let checked_out = runtime().map_err(|_| ExitCode::from(1)).and_then(|rt| {
            rt.block_on(async {
                let commit = bfgg_node::source::resolve(&source, &cache).await?;
                let dir = bfgg_node::source::checkout(&source, &commit, &cache).await?;
                Ok::<_, bfgg_node::source::SourceError>((commit, dir))
            })
            .map_err(|e| {
                eprintln!("error: {}: [source]: {e}", path.display());
                ExitCode::from(1)
            })
        })?;
        let (commit, dir) = checked_out;
        eprintln!("source: {} {} at {commit}", source.url, source.rev);
        scenario = match scenario::load_in(path, &dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return Err(ExitCode::from(2));
            }
        };
    }
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
async fn stop_signal() -> StopRequest {
    wait_for_signal().await;
    StopRequest::by_user()
}

async fn wait_for_signal() {
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

fn progress_line(p: &Progress) -> String {
    let pulse = &p.pulse;
    let err_pct = if p.total_requests == 0 {
        0.0
    } else {
        p.total_errors as f64 * 100.0 / p.total_requests as f64
    };
    let mut line = format!(
        "{:>4}s/{}s  {:>8} req/s  p99 {:>8.2} ms  errors {:>5.2}%  total {}",
        p.elapsed.as_secs(),
        p.duration.as_secs(),
        pulse.requests,
        pulse.p99_us as f64 / 1000.0,
        err_pct,
        p.total_requests,
    );
    if pulse.cpu_busy_permille > bfgg_node::results::BUSY_PERMILLE {
        line.push_str("  [generator busy]");
    }
    if pulse.late_starts > 0 {
        line.push_str(&format!("  [{} late]", pulse.late_starts));
    }
    line
}

fn execute(
    scenario: Scenario,
    out: Option<PathBuf>,
    json: bool,
    options: RunOptions,
    s3: &crate::cli::S3Args,
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
    report(&outcome.summary, &outcome.dir, json, s3)?;
    Ok(if outcome.summary.thresholds_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The end of a run for people: the upload if asked for (its outcome on
/// stderr), then the summary (the table, or with --json the stored
/// summary.json, which says how the upload went) and where the results are.
fn report(
    summary: &bfgg_protocol::summary::RunSummary,
    dir: &Path,
    json: bool,
    s3: &crate::cli::S3Args,
) -> anyhow::Result<()> {
    let run = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uploaded = crate::upload::after_run(s3, dir, &run);
    if json {
        match (uploaded, std::fs::read_to_string(dir.join("summary.json"))) {
            (Some(_), Ok(text)) => print!("{text}"),
            _ => println!("{}", serde_json::to_string_pretty(summary)?),
        }
        eprintln!("results: {}", dir.display());
    } else {
        print!("{}", bfgg_node::results::render_summary(summary));
        println!("\nresults: {}", dir.display());
    }
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = match load(
        &args.file,
        args.target.as_deref(),
        args.duration.as_deref(),
        !args.cluster,
    ) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if args.cluster {
        let spec = RunSpec {
            selection: selection(args.agents, args.labels.as_deref())?,
            target: args.target.clone(),
            duration: duration_override(args.duration.as_deref())?,
            rebalance: args.rebalance,
        };
        return run_cluster(&args.mesh, scenario, &spec, args.out, args.json, &args.s3);
    }
    anyhow::ensure!(args.mesh.join.is_empty(), "--join needs --cluster");
    execute(
        scenario,
        args.out,
        args.json,
        RunOptions {
            workers: args.workers,
            seed: args.seed,
            python: Some(args.python),
            ..RunOptions::default()
        },
        &args.s3,
    )
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let scenario = match load(&args.file, args.target.as_deref(), None, true) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let steps: usize = scenario.journeys.iter().map(|j| j.steps.len()).sum();
    let what = match (&scenario.locust, &scenario.gatling, &scenario.jmeter) {
        (Some(l), _, _) => format!("locustfile {}", l.file.display()),
        (_, Some(g), _) => format!("simulation {} of {}", g.simulation, g.project.display()),
        (_, _, Some(j)) => format!("plan {}", j.plan.display()),
        _ => format!("{} journeys, {} requests", scenario.journeys.len(), steps),
    };
    println!(
        "ok: {}: scenario {:?}, engine {}, {what}, {} model, {} s, target {}{}",
        args.file.display(),
        scenario.name,
        scenario.engine.as_str(),
        scenario.load.model.as_str(),
        scenario.load.duration.as_secs_f64(),
        scenario.target.origin,
        scenario.target.base_path,
    );
    let rt = runtime()?;
    if let Some(spec) = &scenario.locust {
        // The locustfile imported here as agents will before a run.
        use bfgg_node::engine::locust::{LocustError, inspect};
        match rt.block_on(inspect(spec, &scenario.base_dir, &args.python)) {
            Ok(found) => {
                println!(
                    "locust {} (python {}): User classes {}",
                    found.locust,
                    found.python,
                    found.users.join(", ")
                );
                match found.shapes.first() {
                    Some(shape) => println!(
                        "load: the locustfile's own LoadTestShape {shape} runs on every agent as written \
                         (each agent runs the whole shape; [load]'s users and stages are not used, its \
                         duration and graceful stop are)"
                    ),
                    None => println!(
                        "load: bfgg's shape gives each agent its share of [load] (Locust takes a new user \
                         count at its 1 s shape tick)"
                    ),
                }
            }
            Err(LocustError::NoPython { python, .. } | LocustError::NoLocust { python, .. })
                if !args.dry_run =>
            {
                println!(
                    "note: no Locust for {python} here, so the locustfile was not imported \
                     (agents import it before a run; --python names a Python that has Locust)"
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    if let Some(spec) = &scenario.gatling
        && let Some(code) = check_gatling(&rt, &scenario, spec, args.dry_run)?
    {
        return Ok(code);
    }
    if let Some(spec) = &scenario.jmeter
        && let Some(code) = check_jmeter(&rt, &scenario, spec, args.dry_run)?
    {
        return Ok(code);
    }
    if !args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let lines = rt.block_on(bfgg_node::engine::dry_run(
        std::sync::Arc::new(scenario),
        &args.python,
    ))?;
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

/// `bfgg check` of a Gatling scenario: how the split divides over two
/// agents, then the project built and the simulation found as agents will
/// before a run (cached per content), when Java and Maven are here. `Some`
/// exit code when the check ends here.
fn check_gatling(
    rt: &tokio::runtime::Runtime,
    scenario: &Scenario,
    spec: &bfgg_node::scenario::GatlingSpec,
    dry_run: bool,
) -> anyhow::Result<Option<ExitCode>> {
    use bfgg_node::engine::gatling::{GatlingError, prepare, split_plan};
    if dry_run {
        eprintln!(
            "error: --dry-run sends requests with the native engine; a Gatling simulation's requests \
             are its own code (run it briefly with [load] duration instead)"
        );
        return Ok(Some(ExitCode::from(2)));
    }
    println!("over two agents:");
    for line in split_plan(spec, &["agent 1", "agent 2"]) {
        println!("  {line}");
    }
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let env = bfgg_node::engine::EngineEnv {
        python: String::new(),
        work_dir: work.path().to_path_buf(),
        workers: 1,
        cache_dir: bfgg_node::engine::default_cache_dir(),
    };
    eprintln!(
        "building {} with Maven (cached per content)...",
        spec.project.display()
    );
    match rt.block_on(prepare(std::sync::Arc::new(scenario.clone()), &env)) {
        Ok(prepared) => {
            println!(
                "gatling {}: {} compiles and has {}",
                prepared.versions(),
                spec.project.display(),
                spec.simulation
            );
        }
        Err(e @ (GatlingError::NoJava { .. } | GatlingError::NoMaven { .. })) => {
            println!("note: the project was not built here ({e}); agents build it before a run");
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Some(ExitCode::from(1)));
        }
    }
    Ok(None)
}

/// `bfgg check` of a JMeter scenario: how the split divides over two
/// agents (and which split names the plan never reads), the files shipped
/// with the plan, then JMeter installed and the plan loaded by it as
/// agents will before a run, when Java and Maven are here. `Some` exit
/// code when the check ends here.
fn check_jmeter(
    rt: &tokio::runtime::Runtime,
    scenario: &Scenario,
    spec: &bfgg_node::scenario::JmeterSpec,
    dry_run: bool,
) -> anyhow::Result<Option<ExitCode>> {
    use bfgg_node::engine::jmeter::{JmeterError, prepare, split_plan};
    if dry_run {
        eprintln!(
            "error: --dry-run sends requests with the native engine; a JMeter plan's requests are its \
             own samplers (run it briefly with [load] duration instead)"
        );
        return Ok(Some(ExitCode::from(2)));
    }
    println!("over two agents:");
    for line in split_plan(spec, &["agent 1", "agent 2"]) {
        println!("  {line}");
    }
    for f in &spec.files {
        println!("  ships {}", f.display());
    }
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let env = bfgg_node::engine::EngineEnv {
        python: String::new(),
        work_dir: work.path().to_path_buf(),
        workers: 1,
        cache_dir: bfgg_node::engine::default_cache_dir(),
    };
    eprintln!("loading {} with JMeter...", spec.plan.display());
    match rt.block_on(prepare(std::sync::Arc::new(scenario.clone()), &env)) {
        Ok(prepared) => {
            println!("{}: {} loads", prepared.versions(), spec.plan.display());
        }
        Err(e @ (JmeterError::NoJava { .. } | JmeterError::NoMaven { .. })) => {
            println!("note: the plan was not loaded here ({e}); agents load it before a run");
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Some(ExitCode::from(1)));
        }
    }
    Ok(None)
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

/// `bfgg demo`: the demo cluster (target, scenario, three nodes), then the
/// cockpit on a terminal, else a headless cluster run of the demo scenario.
fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let rt = multi_thread_runtime(2).context("starting the demo's runtime")?;
    let dir = std::env::temp_dir().join(format!("bfgg-demo-{}", std::process::id()));
    let demo = rt.block_on(Demo::start(dir, DEMO_FILES))?;
    let (url, nodes) = (&demo.target_url, Demo::NODES);
    let mesh = MeshArgs {
        join: vec![demo.join.clone()],
        cluster_key_file: Some(demo.key_file.clone()),
        no_mdns: true,
    };
    let result = if std::io::stdout().is_terminal() && !args.json && args.out.is_none() {
        eprintln!(
            "demo: target {url}, {nodes} nodes; press s to start the demo scenario, ? for help"
        );
        net_config(
            &mesh,
            demo.dir.join("cockpit.key"),
            vec!["/ip4/127.0.0.1/tcp/0".into()],
        )
        .and_then(|net| {
            // The demo scenario first, then the checkout's, if any.
            let dirs = vec![demo.scenarios_dir.clone(), PathBuf::from("scenarios")];
            cockpit(&rt, net, dirs, Timeouts::default())
        })
    } else {
        eprintln!(
            "demo: target {url}, {nodes} local nodes, scenario demo (headless: stdout is not a terminal)"
        );
        std::thread::sleep(Demo::SETTLE);
        demo_headless(&demo, &mesh, &args)
    };
    rt.block_on(demo.shutdown());
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The demo scenario across the demo's nodes, as `bfgg run --cluster` would
/// run it.
fn demo_headless(demo: &Demo, mesh: &MeshArgs, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let scenario = match load(&demo.scenario, None, args.duration.as_deref(), false) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let spec = RunSpec {
        duration: duration_override(args.duration.as_deref())?,
        ..RunSpec::default()
    };
    run_cluster(
        mesh,
        scenario,
        &spec,
        args.out.clone(),
        args.json,
        &crate::cli::S3Args::default(),
    )
}

/// Default directories from the `directories` crate.
fn project_dirs() -> anyhow::Result<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "bfgg")
        .context("cannot find a home directory; pass --data-dir and --cluster-key-file")
}

/// `--agents N` or `--labels k=v,...` (clap keeps them apart), else every
/// idle agent.
fn selection(agents: Option<u32>, labels: Option<&str>) -> anyhow::Result<AgentSelection> {
    Ok(match (agents, labels) {
        (Some(n), _) => AgentSelection::Count(n),
        (None, Some(l)) => AgentSelection::Labels(parse_labels(Some(l))?),
        (None, None) => AgentSelection::All,
    })
}

/// `--labels k=v,...`: keys and values trimmed, empty pairs skipped.
fn parse_labels(text: Option<&str>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("label {pair:?} is not key=value"))?;
        anyhow::ensure!(!k.trim().is_empty(), "label {pair:?} has an empty key");
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn duration_arg(flag: &str, text: &str) -> anyhow::Result<Duration> {
    scenario::duration::parse_duration(text).map_err(|e| anyhow::anyhow!("{flag} {text}: {e}"))
}

/// `--duration`, when given.
fn duration_override(text: Option<&str>) -> anyhow::Result<Option<Duration>> {
    text.map(|d| duration_arg("--duration", d)).transpose()
}

/// The network config shared by nodes and light peers.
fn net_config(
    mesh: &MeshArgs,
    identity_file: PathBuf,
    listen: Vec<String>,
) -> anyhow::Result<NetConfig> {
    let config_dir = project_dirs()?.config_dir().to_path_buf();
    let env = std::env::var("BFGG_CLUSTER_KEY").ok();
    let (key, source) = ClusterKey::resolve(
        mesh.cluster_key_file.as_deref(),
        env.as_deref(),
        &config_dir,
    )?;
    match &source {
        KeySource::Created(path) => eprintln!(
            "bfgg: created a new cluster key {} (fingerprint {}); give it to other hosts with --cluster-key-file or BFGG_CLUSTER_KEY",
            path.display(),
            key.fingerprint()
        ),
        other => tracing::info!("cluster key {} from {other:?}", key.fingerprint()),
    }
    let mut config = NetConfig::new(identity_file, key);
    config.listen = listen;
    config.join = mesh.join.clone();
    config.mdns = !mesh.no_mdns;
    config.mdns_query_interval = Duration::from_secs(2);
    config.idle_connection_timeout = Duration::from_secs(120);
    config.request_timeout = Duration::from_secs(30);
    Ok(config)
}

fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    // Options are checked before anything is created (a data dir, a key).
    let name = args.name.clone().unwrap_or_else(host_name);
    let operators = Operators::load(
        &name,
        args.operators.as_deref(),
        &project_dirs()?.config_dir().join("operators"),
    )?;
    let labels = parse_labels(args.labels.as_deref())?;
    let timeouts = Timeouts {
        unresponsive: duration_arg("--unresponsive-after", &args.unresponsive_after)?,
        dead: duration_arg("--dead-after", &args.dead_after)?,
    };
    let s3 = crate::upload::config_of(&args.s3)?;
    eprintln!("bfgg: {}", operators.describe());
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => project_dirs()?.data_dir().join("node"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let net = net_config(
        &args.mesh,
        data_dir.join("identity.key"),
        args.listen.clone(),
    )?;
    let config = NodeConfig {
        name,
        labels,
        data_dir,
        net,
        timeouts,
        workers: args.workers,
        python: args.python.clone(),
        s3,
        page_intervals: args.page_intervals,
        operators,
        metrics_addr: args.metrics_addr,
    };
    let rt = multi_thread_runtime(2).context("starting the node's runtime")?;
    let fingerprint = config.net.cluster_key.fingerprint();
    rt.block_on(bfgg_node::cluster::run_node(
        config,
        wait_for_signal(),
        |id, addr| {
            println!(
                "{{\"node\":\"{id}\",\"listening\":\"{addr}\",\"cluster_key\":\"{fingerprint}\"}}"
            );
            let _ = std::io::stdout().flush();
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// A light peer's identity: fresh per process (it is never addressed), in a
/// directory of its own that goes when this guard does (the key is read
/// when the network starts).
struct LightIdentity(PathBuf);

impl LightIdentity {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("bfgg-light-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn file(&self) -> PathBuf {
        self.0.join("identity.key")
    }
}

impl Drop for LightIdentity {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The user's operator key, `<data dir>/operator.key` (created on first
/// use): what the runs and stops this user orders are signed with.
fn operator_key() -> anyhow::Result<OperatorKey> {
    let path = project_dirs()?.data_dir().join("operator.key");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    OperatorKey::load_or_create(&path)
}

/// A light peer that signs what it orders with the user's operator key.
fn light_client(rt: &tokio::runtime::Runtime, mesh: &MeshArgs) -> anyhow::Result<Client> {
    let identity = LightIdentity::new()?;
    let net = net_config(mesh, identity.file(), vec!["/ip4/0.0.0.0/tcp/0".into()])?;
    let key = operator_key()?;
    Ok(rt
        .block_on(Client::connect(net, Duration::from_secs(10)))?
        .with_operator(key))
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let wait = duration_arg("--wait", &args.wait)?;
    let rt = multi_thread_runtime(1)?;
    let mut client = light_client(&rt, &args.mesh)?;
    let nodes = rt.block_on(client.nodes(wait));
    // Nodes of another protocol version: shown, never given work.
    let incompatible = client.incompatible();
    if args.json {
        let mut rows: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(p, l)| {
                let h = &p.health;
                serde_json::json!({
                    "node": h.node.0, "name": h.name, "labels": h.labels, "liveness": l.as_str(),
                    "state": format!("{:?}", h.state), "engines": h.engines.iter().map(|e| format!("{} {}", e.name, e.version)).collect::<Vec<_>>(),
                    "cpu_pct": h.cpu_pct, "mem_bytes": h.mem_bytes, "keeping_schedule": h.keeping_schedule,
                    "clock_offset_ms": p.clock_offset_ms, "bfgg_version": h.bfgg_version,
                    "protocol_version": h.protocol_version, "dropped_messages": h.dropped_messages,
                    "listen_addrs": h.listen_addrs,
                })
            })
            .collect();
        rows.extend(incompatible.iter().map(|p| {
            serde_json::json!({
                "node": p.node.0, "liveness": "incompatible",
                "protocol": p.protocol, "agent": p.agent,
            })
        }));
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<16} {:<10} {:<13} {:<24} {:>6} {:>9} {:>9}  labels",
            "name", "id", "liveness", "state", "cpu", "mem", "offset"
        );
        for (p, l) in &nodes {
            let h = &p.health;
            let state = match &h.state {
                bfgg_protocol::mesh::NodeState::Idle => "idle".to_string(),
                bfgg_protocol::mesh::NodeState::Preparing(r) => format!("preparing {}", r.0),
                bfgg_protocol::mesh::NodeState::Running(r) => format!("running {}", r.0),
                bfgg_protocol::mesh::NodeState::Finishing(r) => format!("finishing {}", r.0),
            };
            println!(
                "{:<16} {:<10} {:<13} {:<24} {:>5.1}% {:>7.1}MB {:>7}ms  {}",
                h.name,
                h.node.short(),
                l.as_str(),
                state.chars().take(24).collect::<String>(),
                h.cpu_pct,
                h.mem_bytes as f64 / 1e6,
                p.clock_offset_ms,
                h.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        for p in &incompatible {
            println!(
                "{:<16} {:<10} {:<13} {:<24} {:>6} {:>9} {:>9}",
                "-",
                p.node.short(),
                "incompatible",
                format!("protocol {} ({})", p.protocol, p.agent),
                "-",
                "-",
                "-",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let rt = multi_thread_runtime(1)?;
    let mut client = light_client(&rt, &args.mesh)?;
    rt.block_on(client.stop(&bfgg_protocol::RunId(args.run.clone())))?;
    println!("stopped {}", args.run);
    Ok(ExitCode::SUCCESS)
}

/// `bfgg run --cluster`: hand the run of `scenario` (loaded with the
/// overrides of `spec`) to a node, follow it, write the results to `out` or
/// where a local run would.
fn run_cluster(
    mesh: &MeshArgs,
    scenario: Scenario,
    spec: &RunSpec,
    out: Option<PathBuf>,
    json: bool,
    s3: &crate::cli::S3Args,
) -> anyhow::Result<ExitCode> {
    let request = spec.request(&scenario)?;
    let rt = multi_thread_runtime(2)?;
    let mut client = light_client(&rt, mesh)?;
    let plan = rt.block_on(client.submit(request))?;
    eprintln!(
        "run {} on {} agents ({}), coordinated by {}",
        plan.run,
        plan.participants.len(),
        plan.participants
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        plan.coordinator.short()
    );
    if let (Some(source), Some(commit)) = (&scenario.git, &plan.source_commit) {
        eprintln!("source: {} {} at {commit}", source.url, source.rev);
    }
    if let Some(gatling) = &scenario.gatling {
        let names: Vec<&str> = plan.participants.iter().map(|p| p.name.as_str()).collect();
        for line in bfgg_node::engine::gatling::split_plan(gatling, &names) {
            eprintln!("{line}");
        }
    }
    if let Some(jmeter) = &scenario.jmeter {
        let names: Vec<&str> = plan.participants.iter().map(|p| p.name.as_str()).collect();
        for line in bfgg_node::engine::jmeter::split_plan(jmeter, &names) {
            eprintln!("{line}");
        }
    }
    let live = std::io::stderr().is_terminal();
    let duration = scenario.load.duration;
    let mut total_requests = 0u64;
    let mut total_errors = 0u64;
    let finished = rt.block_on(client.follow(&plan, wait_for_signal(), |f| match f {
        Follow::Interval(pulse) => {
            total_requests += pulse.requests;
            total_errors += pulse.errors;
            if live {
                let p = Progress {
                    pulse: pulse.clone(),
                    elapsed: Duration::from_secs(u64::from(pulse.index) + 1),
                    duration,
                    total_requests,
                    total_errors,
                };
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{}", progress_line(&p));
                let _ = err.flush();
            }
        }
        Follow::Event(e) => {
            if live {
                eprint!("\r\x1b[2K");
            }
            match e {
                RunEvent::AgentLost { node, .. } => {
                    eprintln!("agent {} lost: the run goes on without it", node.short())
                }
                RunEvent::CoordinatorChanged { node } => {
                    eprintln!("coordinator is now {}", node.short())
                }
                RunEvent::Stopping { reason } => eprintln!("stopping: {reason}"),
                _ => {}
            }
        }
    }))?;
    if live {
        eprint!("\r\x1b[2K");
    }
    // The same results directory a local run writes.
    let started_at = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(plan.start_at_ms);
    let dir = match out {
        Some(d) => d,
        None => bfgg_node::results::default_dir(&scenario.name, started_at)?,
    };
    rt.block_on(client.save_results(&finished, &scenario, &dir))?;
    report(&finished.summary, &dir, json, s3)?;
    Ok(if finished.summary.thresholds_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
