//! The command line: clap types only. `main.rs` turns them into calls of the
//! library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// bfgg, the Big Friendly Gatling Gun: a load generator driven from a terminal.
#[derive(Debug, Parser)]
#[command(name = "bfgg", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a scenario on this machine and write its results.
    ///
    /// Exit code: 0 when every threshold passed, 1 when a threshold failed,
    /// 2 when the run could not be made (bad scenario, unreachable results
    /// directory).
    Run(RunArgs),
    /// Validate a scenario file; with --dry-run, send each journey once.
    Check(CheckArgs),
    /// Serve the built-in HTTP test target (for demos, tests and benchmarks).
    Target(TargetArgs),
    /// Start the built-in target and run the demo scenario against it.
    Demo(DemoArgs),
    /// Run a node of the mesh: discover peers, take shares of runs, coordinate runs.
    Node(NodeArgs),
    /// Join the mesh as a light peer and list the nodes it sees.
    Status(StatusArgs),
    /// Print your operator id (its key is created on first use): nodes with
    /// an operators list let only the ids on it start and stop runs.
    Id,
    /// Stop a cluster run (any node forwards to its coordinator).
    Stop(StopArgs),
    /// The cockpit: watch the mesh live, start and stop runs from the keyboard.
    ///
    /// Joins the mesh as a light peer (no load of its own); quitting never
    /// stops a run. Logs go to <data dir>/tui.log.
    Tui(TuiArgs),
    /// Runs kept on this machine: upload one to S3.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The configuration: the file, `BFGG_*` variables and defaults.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script for bfgg.
    ///
    /// e.g. `bfgg completions bash > ~/.local/share/bash-completion/completions/bfgg`,
    /// `bfgg completions zsh > ~/.zfunc/_bfgg`,
    /// `bfgg completions fish > ~/.config/fish/completions/bfgg.fish`.
    Completions(CompletionsArgs),
    /// Print bfgg's man page (roff), or write one page per command to a directory.
    ///
    /// e.g. `bfgg man | man -l -`, or `bfgg man --dir /usr/local/share/man/man1`.
    Man(ManArgs),
}

/// `bfgg config ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Every option of run, node and tui, its value and where it comes from
    /// (a `BFGG_*` variable, <config dir>/config.toml with its line, or the
    /// default). Flags, given on a command, win over all three.
    Show,
}

/// `bfgg completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `bfgg man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write bfgg.1 and one bfgg-COMMAND.1 per command (and sub-command)
    /// here instead of printing bfgg.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// `bfgg runs ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// The runs kept on this machine, newest first.
    List(RunsListArgs),
    /// One run's summary (the table printed at the end of the run).
    Show(RunsShowArgs),
    /// Two runs side by side: throughput, error rate and latency, the change
    /// from A to B, regressions marked. Exit code 1 when a --fail-if rule
    /// fails.
    Compare(RunsCompareArgs),
    /// Delete runs from the results store.
    Rm(RunsRmArgs),
    /// Write a run's report.html and junit.xml again (e.g. after an upgrade).
    Report(RunsShowArgs),
    /// Upload a results directory to S3 (again): after a failed upload, or a
    /// run made without --s3. Exit code 0 when every file is in the store.
    Upload(UploadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunsListArgs {
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunsShowArgs {
    /// A results directory, or a run's name in the results store.
    pub(crate) run: String,
    /// Print summary.json instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunsCompareArgs {
    /// The baseline run (directory or name).
    pub(crate) a: String,
    /// The run compared with it.
    pub(crate) b: String,
    /// Fail (exit 1) when B's change from A breaks this rule, e.g.
    /// 'p99 > +10%', 'p95[login] > +20%', 'rps < -5%', 'error_rate > +0.01'
    /// (repeatable).
    #[arg(long = "fail-if", value_name = "RULE")]
    pub(crate) fail_if: Vec<bfgg_node::results::compare::Rule>,
    /// JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunsRmArgs {
    /// Runs to delete (directories in the results store, or their names).
    #[arg(required = true)]
    pub(crate) runs: Vec<String>,
    /// Delete even a run whose upload to S3 failed (its only copy).
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The results directory, or its name in the results store (as printed
    /// after `results:`).
    pub(crate) run: String,
    #[command(flatten)]
    pub(crate) s3: S3Args,
}

/// Where results go in S3.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct S3Args {
    /// Upload the results to s3://bucket/prefix/<run>/ when the run ends
    /// (credentials and region from the standard AWS chain). A failed upload
    /// keeps the results on disk and says so; the exit code stays the run's.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub(crate) s3: Option<bfgg_node::results::upload::S3Url>,
    /// An S3-compatible store's endpoint (default: AWS, or AWS_ENDPOINT_URL);
    /// addressed path-style.
    #[arg(long, value_name = "URL", requires = "s3")]
    pub(crate) s3_endpoint: Option<String>,
    /// The region (default: the AWS chain's, else us-east-1).
    #[arg(long, value_name = "REGION", requires = "s3")]
    pub(crate) s3_region: Option<String>,
}

/// How a light peer or node finds and joins the mesh.
#[derive(Debug, Args, Clone)]
pub(crate) struct MeshArgs {
    /// A node to dial (multiaddr, repeatable), e.g. /ip4/10.0.0.5/tcp/7700 or
    /// /dns4/bfgg-0.bfgg/tcp/7700.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) join: Vec<String>,
    /// The cluster key file (go-ipfs swarm.key format). Default: the
    /// BFGG_CLUSTER_KEY variable, else <config dir>/cluster.key (created on
    /// first use).
    #[arg(long, value_name = "FILE")]
    pub(crate) cluster_key_file: Option<PathBuf>,
    /// Don't use mDNS discovery (it does not cross loopback anyway).
    #[arg(long)]
    pub(crate) no_mdns: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    pub(crate) mesh: MeshArgs,
    /// Address to listen on (multiaddr, repeatable).
    #[arg(
        long,
        value_name = "MULTIADDR",
        default_value = "/ip4/0.0.0.0/tcp/7700"
    )]
    pub(crate) listen: Vec<String>,
    /// This node's name in tables and reports (default: the host name).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Labels for agent selection: key=value,key=value.
    #[arg(long, value_name = "K=V,...")]
    pub(crate) labels: Option<String>,
    /// Data directory (identity, bundles, results). Several nodes on one
    /// host each need their own.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A node unheard this long is shown as unresponsive.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub(crate) unresponsive_after: String,
    /// A node unheard this long is dead: its share of a run is lost.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub(crate) dead_after: String,
    /// Worker threads for load (default: one per core).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// The Python that runs Locust (engine = "locust"), e.g. a venv's
    /// `bin/python`.
    #[arg(long, value_name = "PATH", default_value = bfgg_node::run::DEFAULT_PYTHON)]
    pub(crate) python: String,
    /// With --s3: the results of every run this node coordinates go to
    /// s3://bucket/prefix/<run>/, and its own interval log of every run it
    /// takes part in to .../<run>/agents/<name>/ (kept here until uploaded).
    #[command(flatten)]
    pub(crate) s3: S3Args,
    /// Most intervals in one page of an interval log this node serves to a
    /// coordinator or a client (they page through to the end whatever it
    /// is; tests lower it to cross page boundaries in short runs).
    #[arg(long, value_name = "N", default_value_t = bfgg_node::cluster::DEFAULT_PAGE_INTERVALS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page_intervals: u32,
    /// Who may start and stop runs here: operator ids (`bfgg id`),
    /// comma-separated. Default: the file `<config dir>/operators` (one id
    /// per line) if it exists; without either, any peer holding the cluster
    /// key may.
    #[arg(long, value_name = "ID,...")]
    pub(crate) operators: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics (e.g.
    /// 127.0.0.1:9464): node health and, per run, requests, errors and a
    /// response-time histogram. Off unless set.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) mesh: MeshArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// How long to listen for nodes.
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub(crate) wait: String,
}

#[derive(Debug, Args)]
pub(crate) struct TuiArgs {
    #[command(flatten)]
    pub(crate) mesh: MeshArgs,
    /// Directories whose scenario files (*.toml) the start dialog offers
    /// (repeatable).
    #[arg(long = "scenarios", value_name = "DIR", default_value = "scenarios")]
    pub(crate) scenario_dirs: Vec<PathBuf>,
    /// A node unheard this long is shown as unresponsive.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub(crate) unresponsive_after: String,
    /// A node unheard this long is shown as dead.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub(crate) dead_after: String,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The run id (printed when the run started).
    pub(crate) run: String,
    #[command(flatten)]
    pub(crate) mesh: MeshArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The scenario file (TOML).
    pub(crate) file: PathBuf,
    /// Override the scenario's target base URL.
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// Override the scenario's total duration (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Results directory (default: under the user data directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Seed for journey choice, think times and random data.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// The Python that runs Locust (engine = "locust"), e.g. a venv's
    /// `bin/python`.
    #[arg(long, value_name = "PATH", default_value = bfgg_node::run::DEFAULT_PYTHON)]
    pub(crate) python: String,
    /// Run across the mesh: hand the run to a node, which coordinates it.
    #[arg(long)]
    pub(crate) cluster: bool,
    #[command(flatten)]
    pub(crate) mesh: MeshArgs,
    /// Cluster: use this many idle agents (default: all).
    #[arg(long, value_name = "N", requires = "cluster")]
    pub(crate) agents: Option<u32>,
    /// Cluster: use idle agents with these labels (key=value,...).
    #[arg(
        long,
        value_name = "K=V,...",
        requires = "cluster",
        conflicts_with = "agents"
    )]
    pub(crate) labels: Option<String>,
    /// Cluster: when an agent is lost, move its share to the live agents
    /// (default: the run goes on with less load and is reported partial).
    #[arg(long, requires = "cluster")]
    pub(crate) rebalance: bool,
    #[command(flatten)]
    pub(crate) s3: S3Args,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The scenario file (TOML).
    pub(crate) file: PathBuf,
    /// Send each journey once with one user and print every request.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Override the scenario's target base URL (for --dry-run).
    #[arg(long, value_name = "URL")]
    pub(crate) target: Option<String>,
    /// The Python that runs Locust (engine = "locust"): the locustfile is
    /// imported with it, and --dry-run runs it.
    #[arg(long, value_name = "PATH", default_value = bfgg_node::run::DEFAULT_PYTHON)]
    pub(crate) python: String,
}

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Response latency: "0", "5ms", "1ms..20ms" (uniform), "5ms|100ms@10%" (bimodal: 10% slow).
    #[arg(long, default_value = "0")]
    pub(crate) latency: String,
    /// Fraction of requests answered with --error-status (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) error_rate: f64,
    /// Status of injected errors.
    #[arg(long, default_value_t = 503)]
    pub(crate) error_status: u16,
    /// Body size of normal responses, bytes.
    #[arg(long, default_value_t = 2)]
    pub(crate) response_size: usize,
    /// Hold every response for a while: "500ms@10s" stalls 500 ms, 10 s after start.
    #[arg(long)]
    pub(crate) stall: Option<String>,
    /// Server threads.
    #[arg(long, default_value_t = 1)]
    pub(crate) workers: usize,
    /// Serve HTTPS with a fresh self-signed certificate for localhost, 127.0.0.1 and ::1.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub(crate) tls: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Override the demo's duration (e.g. 5s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Results directory (default: under the user data directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}
