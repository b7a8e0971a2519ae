//! The `bfgg` binary: parse the command line, dispatch to the library crates,
//! map the outcome to an exit code (0 ok, 1 a threshold failed, 2 an error).
//! Human-facing errors are anyhow chains printed with `{:#}`.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc keeps freed pages for reuse: decoding a snapshot allocates a
/// 196 KiB histogram per request name, which glibc's allocator hands back to
/// the kernel and faults in again every time (6-10x slower decodes on the
/// coordinator; see docs/MESH.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BFGG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
