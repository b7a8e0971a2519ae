//! Architecture invariants the compiler cannot see (ARCHITECTURE.md): every
//! source file opens with a `//!` doc comment, `bfgg-protocol` stays free
//! of I/O crates, only `net` names libp2p, every channel is bounded, the
//! node's state has one owner, the cockpit renders from state.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "snapshots")
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["src", "protocol/src", "node/src", "tui/src", "tests/it"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("read");
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:?}"
    );
}

#[test]
fn the_protocol_crate_does_no_io() {
    let manifest = std::fs::read_to_string(root().join("protocol/Cargo.toml")).expect("manifest");
    for banned in ["tokio", "libp2p", "hyper", "ratatui", "crossterm", "aws-"] {
        assert!(
            !manifest.contains(banned),
            "bfgg-protocol depends on {banned}"
        );
    }
    let mut files = Vec::new();
    rust_files(&root().join("protocol/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for banned in ["std::fs", "std::net", "std::io::stdin", "std::process"] {
            assert!(!text.contains(banned), "{} uses {banned}", f.display());
        }
    }
}

#[test]
fn no_channel_message_per_request_in_the_engine() {
    // Workers record into their own Recorder; only interval snapshots and
    // control events cross a channel (ARCHITECTURE.md, invariant 4).
    let mut files = Vec::new();
    rust_files(&root().join("node/src/engine/native"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for (i, line) in text.lines().enumerate() {
            if line.contains(".send(") && !line.contains("c.send(") && !line.contains("phase.send(")
            {
                let allowed = line.contains("emit(") || line.contains("tx.send(event)");
                assert!(
                    allowed,
                    "{}:{}: unexpected channel send: {line}",
                    f.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn only_the_network_module_imports_libp2p() {
    let mut files = Vec::new();
    for dir in ["src", "node/src", "tui/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    for f in files {
        let rel = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        if rel.starts_with("node/src/net/") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(
            !text.contains("libp2p::"),
            "{rel} uses libp2p outside node::net"
        );
    }
}

#[test]
fn every_channel_is_bounded_and_the_node_state_has_one_owner() {
    let mut files = Vec::new();
    for dir in ["src", "node/src", "tui/src", "protocol/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        let text = std::fs::read_to_string(f).expect("read");
        for banned in ["unbounded_channel", "mpsc::unbounded", "UnboundedSender"] {
            assert!(!text.contains(banned), "{rel} uses {banned}");
        }
        // The node's state is owned by its task (cluster::node), not shared
        // behind locks.
        if rel.starts_with("node/src/cluster/") {
            assert!(
                !text.contains("Mutex<") && !text.contains("RwLock<"),
                "{rel} shares state behind a lock"
            );
        }
    }
}

#[test]
fn the_cockpit_renders_from_state_alone_and_only_its_runtime_touches_the_terminal() {
    let mut files = Vec::new();
    rust_files(&root().join("tui/src"), &mut files);
    for f in files {
        let rel = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        let text = std::fs::read_to_string(&f).expect("read");
        if rel != "tui/src/runtime.rs" {
            for banned in [
                "crossterm::terminal",
                "ratatui::init",
                "ratatui::restore",
                "EventStream",
            ] {
                assert!(
                    !text.contains(banned),
                    "{rel} touches the terminal ({banned})"
                );
            }
        }
        if rel.starts_with("tui/src/ui/") || rel == "tui/src/app.rs" {
            for banned in [
                "Instant::now",
                "SystemTime",
                "std::fs",
                "std::env",
                "tokio::",
            ] {
                assert!(!text.contains(banned), "{rel} is not pure ({banned})");
            }
        }
    }
}
