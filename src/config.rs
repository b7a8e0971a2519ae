//! Configuration in layers: `<config dir>/config.toml` (e.g.
//! `~/.config/bfgg/config.toml`), then `BFGG_*` environment variables, then
//! flags, each winning over the one before.
//!
//! The file's `[run]`, `[node]` and `[tui]` sections hold any long option of
//! that command under its flag's name (`workers = 4`, `join = ["/ip4/..."]`,
//! `no-mdns = true`); every such option also reads `BFGG_<NAME>`
//! (`BFGG_WORKERS`, `BFGG_CLUSTER_KEY_FILE`). Both are layered onto the clap
//! definitions (the file's values become the defaults, the variables clap's
//! `env`), so clap's own precedence does the rest and `--help` shows them.
//! `[s3]` (`url`, `endpoint`, `region`) is the fallback for `--s3` of `bfgg
//! run`, `bfgg node` and `bfgg runs upload`. An unknown section or key, or a
//! value its flag would refuse, is an error naming the file, line and key.
//! `bfgg config show` prints every option and where its value comes from.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bfgg_node::results::upload::{S3Config, S3Url};
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory as _, FromArgMatches as _};
use serde::Deserialize;

use crate::cli::Cli;

/// The commands whose options the file and the environment can set.
pub(crate) const LAYERED: [&str; 3] = ["run", "node", "tui"];

/// One section of options: flag name to value, with its place in the file.
type Section = BTreeMap<String, toml::Spanned<toml::Value>>;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Where results go in S3.
    pub(crate) s3: Option<S3Section>,
    /// Options of `bfgg run`.
    #[serde(default)]
    run: Section,
    /// Options of `bfgg node`.
    #[serde(default)]
    node: Section,
    /// Options of `bfgg tui`.
    #[serde(default)]
    tui: Section,
}

impl ConfigFile {
    fn section(&self, command: &str) -> &Section {
        match command {
            "run" => &self.run,
            "node" => &self.node,
            _ => &self.tui,
        }
    }
}

/// The file as read: its contents, path and text (for line numbers).
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) file: ConfigFile,
    path: Option<PathBuf>,
    text: String,
}

impl Loaded {
    /// `path:line` of a byte offset into the file.
    fn place(&self, offset: usize) -> String {
        let line = self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        format!("{}:{line}", self.shown_path())
    }

    fn shown_path(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config.toml".into())
    }
}

/// `[s3]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Section {
    /// `s3://bucket/prefix`.
    pub(crate) url: String,
    /// An S3-compatible endpoint.
    pub(crate) endpoint: Option<String>,
    /// The region.
    pub(crate) region: Option<String>,
}

/// Where the file is.
pub(crate) fn path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "bfgg").map(|d| d.config_dir().join("config.toml"))
}

/// The file, or the defaults when there is none.
pub(crate) fn load() -> anyhow::Result<ConfigFile> {
    Ok(read()?.file)
}

/// The file with its text, or the defaults when there is none.
pub(crate) fn read() -> anyhow::Result<Loaded> {
    let Some(path) = path() else {
        return Ok(Loaded::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(text, Some(path))
}

/// Parses the file's text (`path` for messages).
fn parse(text: String, path: Option<PathBuf>) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded {
        file: ConfigFile::default(),
        path,
        text,
    };
    loaded.file = match toml::from_str(&loaded.text) {
        Ok(f) => f,
        Err(e) => {
            let at = e
                .span()
                .map(|s| loaded.place(s.start))
                .unwrap_or_else(|| loaded.shown_path());
            anyhow::bail!("{at}: {}", e.message());
        }
    };
    Ok(loaded)
}

/// Parses the command line over the file and the environment (see the
/// module docs); clap's usage errors exit with code 2 as usual.
pub(crate) fn parse_cli() -> anyhow::Result<Cli> {
    let loaded = read()?;
    let matches = layered(&loaded)?.get_matches();
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// The environment variable of option `long`: `BFGG_` and its name in upper
/// case, `-` as `_`.
pub(crate) fn env_name(long: &str) -> String {
    format!("BFGG_{}", long.to_uppercase().replace('-', "_"))
}

/// Whether the file and the environment can set `arg`: a long option, but
/// not help or version.
fn is_option(arg: &clap::Arg) -> bool {
    !arg.is_positional()
        && arg.get_long().is_some()
        && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
}

/// The options of a command the file and the environment can set.
fn options(sub: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    sub.get_arguments().filter(|a| is_option(a))
}

/// The command line's definition with the file's values as defaults and a
/// `BFGG_*` variable on every option of the [`LAYERED`] commands; checks the
/// file's keys and values first.
pub(crate) fn layered(loaded: &Loaded) -> anyhow::Result<clap::Command> {
    let mut cmd = Cli::command();
    for name in LAYERED {
        let sub = cmd
            .find_subcommand(name)
            .with_context(|| format!("no `{name}` command"))?
            .clone();
        let mut defaults: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in loaded.file.section(name) {
            let at = loaded.place(value.span().start);
            let Some(arg) = options(&sub).find(|a| a.get_long() == Some(key.as_str())) else {
                let known: Vec<&str> = options(&sub).filter_map(|a| a.get_long()).collect();
                anyhow::bail!(
                    "{at}: [{name}] unknown key `{key}`; `bfgg {name}` has: {}",
                    known.join(", ")
                );
            };
            let multi = matches!(arg.get_action(), ArgAction::Append);
            let values = as_strings(value.get_ref(), multi)
                .with_context(|| format!("{at}: [{name}] {key}"))?;
            for v in &values {
                check_value(&sub, arg, key, v)
                    .map_err(|e| anyhow::anyhow!("{at}: [{name}] {key}: {e}"))?;
            }
            defaults.insert(key.clone(), values);
        }
        cmd = cmd.mut_subcommand(name, |sub| {
            sub.mut_args(|arg| {
                let Some(long) = arg
                    .get_long()
                    .filter(|_| is_option(&arg))
                    .map(str::to_owned)
                else {
                    return arg;
                };
                let arg = arg.env(env_name(&long));
                match defaults.get(&long) {
                    Some(values) => arg.default_values(values.clone()),
                    None => arg,
                }
            })
        });
    }
    Ok(cmd)
}

/// Whether flag `--long` of `sub` takes `value`: its own value parser
/// judges (through a parse of that flag alone); a switch takes a boolean.
fn check_value(
    sub: &clap::Command,
    arg: &clap::Arg,
    long: &str,
    value: &str,
) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return match value {
            "true" | "false" => Ok(()),
            v => Err(format!("expected true or false, found `{v}`")),
        };
    }
    let line = [sub.get_name().to_string(), format!("--{long}={value}")];
    match sub.clone().try_get_matches_from(line) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) =>
        {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Err(first.trim_start_matches("error: ").to_string())
        }
        // Anything else (a missing scenario file, say) is not this value's.
        _ => Ok(()),
    }
}

/// A TOML value as the text(s) its flag would take: strings, numbers and
/// booleans as written; arrays only for a repeatable flag.
fn as_strings(value: &toml::Value, multi: bool) -> anyhow::Result<Vec<String>> {
    let one = |v: &toml::Value| -> anyhow::Result<String> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "expected a string, number or boolean, found {}",
                other.type_str()
            ),
        })
    };
    match value {
        toml::Value::Array(items) if multi => items.iter().map(one).collect(),
        toml::Value::Array(_) => anyhow::bail!("takes one value, not a list"),
        v => Ok(vec![one(v)?]),
    }
}

/// `bfgg config show`: every option of the layered commands, its value and
/// where it comes from (environment, file, built-in default).
pub(crate) fn show() -> anyhow::Result<ExitCode> {
    let loaded = read()?;
    layered(&loaded)?; // the same checks as every command
    let cmd = Cli::command();
    let mut text = String::new();
    text += &format!(
        "configuration file: {}{}\n",
        path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no config directory)".into()),
        if loaded.path.is_some() {
            ""
        } else {
            " (absent)"
        }
    );
    for name in LAYERED {
        let sub = cmd
            .find_subcommand(name)
            .with_context(|| format!("no `{name}` command"))?;
        text += &format!("\n[{name}]\n");
        let rows: Vec<(String, String, String)> = options(sub)
            .filter_map(|arg| {
                let long = arg.get_long()?;
                let env = env_name(long);
                let (value, from) = if let Ok(v) = std::env::var(&env) {
                    (v, format!("env {env}"))
                } else if let Some(v) = loaded.file.section(name).get(long) {
                    let multi = matches!(arg.get_action(), ArgAction::Append);
                    let shown = as_strings(v.get_ref(), multi).ok()?.join(", ");
                    (shown, loaded.place(v.span().start))
                } else if matches!(arg.get_action(), ArgAction::SetTrue) {
                    ("false".into(), "default".into())
                } else if !arg.get_default_values().is_empty() {
                    let d: Vec<String> = arg
                        .get_default_values()
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect();
                    (d.join(", "), "default".into())
                } else {
                    ("-".into(), "unset".into())
                };
                Some((long.to_owned(), value, from))
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).min(60);
        for (k, v, from) in rows {
            text += &format!("  {k:w0$}  {v:w1$}  {from}\n");
        }
    }
    // `bfgg config show | head` is not an error.
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the configuration");
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

impl S3Section {
    /// As an upload configuration.
    pub(crate) fn to_config(&self) -> anyhow::Result<S3Config> {
        let url: S3Url = self.url.parse().map_err(|e| {
            anyhow::anyhow!(
                "{}: [s3] url: {e}",
                path().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })?;
        let mut config = S3Config::new(url);
        config.endpoint = self.endpoint.clone();
        config.region = self.region.clone();
        Ok(config)
    }
}
