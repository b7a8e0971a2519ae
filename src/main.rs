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

/// mimalloc's option: how long freed pages wait before they go back to the
/// kernel, ms (default 10, counted in further allocator activity on the
/// thread that freed them).
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Makes freed pages go back to the kernel at once, by running this binary
/// again with `MIMALLOC_PURGE_DELAY=0` unless the variable is set (mimalloc
/// reads its options when the process starts; setting one later takes
/// unsafe code, which this workspace forbids). With the default, a thread
/// that goes quiet (the blocking threads that finalize a run and serve its
/// log pages) keeps what it freed until it exits: a coordinator's RSS rose
/// 24 % at the end of a 4-minute soak with the default, 6 % with this, and
/// the closed-model CPU per request was the same (docs/MESH.md). If the
/// exec fails, the process goes on with the default.
fn purge_at_once() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // Returns only if the exec failed.
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(PURGE_DELAY_VAR, "0")
        .exec();
}

fn main() -> ExitCode {
    purge_at_once();
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
