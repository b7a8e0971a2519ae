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
