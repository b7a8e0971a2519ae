//! `bfgg completions` and `bfgg man`: the shell completion scripts and the
//! man pages, generated from the clap definitions in `cli.rs` (so they never
//! drift from the flags).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Prints the completion script for `args.shell` to stdout.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "bfgg", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints bfgg.1 to stdout, or with `--dir` writes it and one page per
/// command there.
pub(crate) fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
            out.flush().context("writing the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let written = write_pages(&dir, cmd, "bfgg")?;
            println!("{written} man pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `<name>.1` for `cmd` and, recursively, `<name>-<sub>.1` for each
/// of its sub-commands (but `help`); returns how many pages it wrote.
fn write_pages(dir: &Path, cmd: clap::Command, name: &str) -> anyhow::Result<usize> {
    let cmd = cmd.name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        written += write_pages(dir, sub.clone(), &sub_name)?;
    }
    Ok(written)
}
