//! The `bfgg` binary: parse the command line, dispatch to the library crates,
//! map the outcome to an exit code (0 ok, 1 a threshold failed, 2 an error).
//! Human-facing errors are anyhow chains printed with `{:#}`.

mod cli;
mod commands;
mod config;
mod docs;
mod runs;
mod upload;

use std::process::ExitCode;

/// mimalloc keeps freed pages for reuse: decoding a snapshot allocates a
/// 196 KiB histogram per request name, which glibc's allocator hands back to
/// the kernel and faults in again every time (6-10x slower decodes on the
/// coordinator; see docs/MESH.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The command line over <config dir>/config.toml and BFGG_* variables.
    let cli = match config::parse_cli() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BFGG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The cockpit owns the screen: its logs go to a file, never to it.
    match screen_log(&cli.command) {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The log file of commands that draw on the terminal (`<data dir>/tui.log`):
/// `bfgg tui`, and `bfgg demo` when it opens the cockpit.
fn screen_log(command: &cli::Command) -> Option<std::fs::File> {
    use std::io::IsTerminal as _;
    let draws = match command {
        cli::Command::Tui(_) => true,
        cli::Command::Demo(a) => std::io::stdout().is_terminal() && !a.json && a.out.is_none(),
        _ => false,
    };
    if !draws {
        return None;
    }
    let dir = directories::ProjectDirs::from("", "", "bfgg")?
        .data_dir()
        .to_path_buf();
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tui.log"))
        .ok()
}
