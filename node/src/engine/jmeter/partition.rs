//! `[jmeter] partition`: a CSV file's data rows divided across agents, so
//! each row is used by one agent only. The rule is the native engine's
//! (`scenario::data::PoolSpec::partition`): agent `index` of `count` gets
//! data rows `index`, `index + count`, ... (a header line stays in every
//! slice). The agent runs a copy of the plan, in its work directory, whose
//! CSV Data Set Configs name absolute paths: its slices for partitioned
//! files, the originals for the rest. Rows are lines: a quoted field that
//! spans lines is not supported in a partitioned file.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::plan;
use crate::engine::schedule::Segment;
use crate::scenario::JmeterSpec;

/// The plan this agent runs: the scenario's when nothing is partitioned,
/// else a copy in `work_dir` naming this agent's slices.
pub(crate) fn apply(
    spec: &JmeterSpec,
    segment: Segment,
    work_dir: &Path,
) -> anyhow::Result<PathBuf> {
    if spec.partition.is_empty() {
        return Ok(spec.plan.clone());
    }
    let (index, count) = (segment.offset, segment.stride.max(1));
    let text = std::fs::read_to_string(&spec.plan)
        .with_context(|| format!("reading {}", spec.plan.display()))?;
    let dir = spec.plan.parent().unwrap_or(Path::new("."));
    let slices = work_dir.join("partition");
    std::fs::create_dir_all(&slices).with_context(|| format!("creating {}", slices.display()))?;
    let mut error = None;
    let mut n = 0;
    let rewritten = plan::rewrite_csv_files(&text, |set| {
        if set.filename.contains("${") {
            return None;
        }
        let path = dir.join(&set.filename);
        if !spec.partition.contains(&path) {
            return Some(path.display().to_string());
        }
        n += 1;
        let name = path
            .file_name()
            .map_or_else(|| "data.csv".into(), |f| f.to_string_lossy().into_owned());
        let slice = slices.join(format!("{n}-{name}"));
        match write_slice(&path, &slice, set.header, index, count) {
            Ok(()) => Some(slice.display().to_string()),
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let name = spec
        .plan
        .file_name()
        .map_or_else(|| "plan.jmx".into(), |f| f.to_string_lossy().into_owned());
    let copy = work_dir.join(format!("partitioned-{name}"));
    std::fs::write(&copy, rewritten).with_context(|| format!("writing {}", copy.display()))?;
    Ok(copy)
}

/// Writes agent `index` of `count`'s rows of the CSV at `from` to `to`.
fn write_slice(from: &Path, to: &Path, header: bool, index: u64, count: u64) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    let out = slice(&text, header, index, count);
    std::fs::write(to, out).with_context(|| format!("writing {}", to.display()))
}

/// Agent `index` of `count`'s lines of `text`: the header (if any), then
/// data lines `index`, `index + count`, ... (empty lines are not data).
pub(crate) fn slice(text: &str, header: bool, index: u64, count: u64) -> String {
    let mut lines = text.lines();
    let mut out = String::new();
    if header && let Some(h) = lines.next() {
        out.push_str(h);
        out.push('\n');
    }
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        if i as u64 % count == index {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slice;

    #[test]
    fn every_row_goes_to_one_agent_and_the_header_to_all() {
        let text = "user,pass\na,1\nb,2\nc,3\n\nd,4\ne,5\n";
        let parts: Vec<String> = (0..2).map(|i| slice(text, true, i, 2)).collect();
        assert_eq!(parts[0], "user,pass\na,1\nc,3\ne,5\n");
        assert_eq!(parts[1], "user,pass\nb,2\nd,4\n");
        assert_eq!(slice("a\nb\nc\n", false, 2, 3), "c\n");
    }
}
