//! `[source]`: the git repository a scenario's files are read from, checked
//! into a [`GitSource`]. Nothing is fetched here: resolving `rev` and
//! checking the commit out is `crate::source`'s, on the coordinator and the
//! agents.

use std::path::{Component, Path};

use toml::Spanned;

use crate::scenario::diagnostic::Sink;
use crate::scenario::model::GitSource;
use crate::scenario::raw::RawSource;

/// `[source]` checked; `None` when absent or wrong (reported).
pub(super) fn source(table: Option<&Spanned<RawSource>>, sink: &mut Sink<'_>) -> Option<GitSource> {
    let table = table?;
    let raw = table.get_ref();
    let Some(git) = &raw.git else {
        sink.error(
            Some(table.span()),
            "source.git",
            "missing `git`: the repository to read the scenario's files from",
        )
        .help("write git = \"https://github.com/team/perf-tests.git\" (any URL git clones; file:// for a local repository)");
        return None;
    };
    let mut ok = true;
    let url = git.get_ref().trim();
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_whitespace) {
        sink.error(
            Some(git.span()),
            "source.git",
            format!("`{}` is not a repository URL", git.get_ref()),
        )
        .help("write a URL git clones: https://..., ssh://..., git@host:path or file:///path");
        ok = false;
    }
    let rev = match &raw.rev {
        None => "HEAD".to_owned(),
        Some(rev) => {
            let text = rev.get_ref().trim();
            if text.is_empty()
                || text.starts_with('-')
                || text.contains("..")
                || text.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                sink.error(
                    Some(rev.span()),
                    "source.rev",
                    format!("`{}` is not a branch, tag or commit", rev.get_ref()),
                )
                .help("write rev = \"main\", a tag such as \"v1.2\", or a commit id");
                ok = false;
            }
            text.to_owned()
        }
    };
    let path = match &raw.path {
        None => String::new(),
        Some(path) => {
            let text = path.get_ref().trim().trim_end_matches('/');
            let inside = Path::new(text)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                sink.error(
                    Some(path.span()),
                    "source.path",
                    format!("`{}` is not a directory inside the repository", path.get_ref()),
                )
                .help("write the directory relative to the repository's root, e.g. path = \"load-tests\"");
                ok = false;
            }
            text.to_owned()
        }
    };
    ok.then(|| GitSource {
        url: url.to_owned(),
        rev,
        path,
    })
}
