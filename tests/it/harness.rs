//! Test support: the built binary, `bfgg target` children killed on drop,
//! scenario files in temp dirs, and a cached Python venv for tools from PyPI.
//!
//! Skips: a test that needs an external tool prints why and returns, unless
//! `BFGG_REQUIRE_EXTERNAL=1` (set by `.ci/run`), where a skip is a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Path of the `bfgg` binary under test.
pub(crate) fn bfgg_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bfgg")
}

/// A `bfgg` command with logging quiet and a private data dir.
pub(crate) fn bfgg(home: &Path) -> Command {
    let mut cmd = Command::new(bfgg_bin());
    cmd.env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    // Every option reads a BFGG_* variable: none of the developer's leak in
    // (a test sets what it needs after this).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BFGG_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs a command with a hard time limit, returning its output.
pub(crate) fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bfgg");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "command timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `bfgg target` child process on 127.0.0.1, killed on drop.
pub(crate) struct Target {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
}

impl Target {
    /// Starts `bfgg target --listen 127.0.0.1:0 <args>` and waits for its
    /// machine-readable `{"listening":"..."}` line.
    pub(crate) fn start(args: &[&str]) -> Target {
        let mut child = Command::new(bfgg_bin())
            .args(["target", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bfgg target");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("bfgg target did not report its address within 20 s");
        let v: serde_json::Value =
            serde_json::from_str(line.trim()).expect("listening line is JSON");
        let addr = v["listening"]
            .as_str()
            .expect("listening address")
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "target must be on loopback: {addr}"
        );
        Target {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// The target's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the target has served `n` requests; fails after `limit`.
    pub(crate) fn wait_for_requests(&self, n: u64, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.stats()["total"].as_u64().unwrap_or(0) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} requests served within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET /stats of the target: what it actually served.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let addr = self.url.trim_start_matches("http://");
        let body = http_get(addr, "/stats");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a raw HTTP/1.1 response, chunked framing removed.
pub(crate) fn http_body(text: &str) -> String {
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// A minimal blocking HTTP/1.1 GET (Connection: close) returning the body.
pub(crate) fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to target");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    http_body(&text)
}

/// A temp dir holding a scenario file (and any extra files).
pub(crate) struct Workspace {
    pub(crate) dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` with `text`, returning its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// `bfgg run FILE --out <ws>/out --json`, bounded, returning (exit code,
    /// summary JSON if any, stderr).
    pub(crate) fn run(
        &self,
        scenario: &Path,
        extra: &[&str],
    ) -> (i32, Option<serde_json::Value>, String) {
        let mut cmd = bfgg(self.path());
        cmd.arg("run")
            .arg(scenario)
            .arg("--out")
            .arg(self.out_dir())
            .arg("--json")
            .args(extra);
        let out = run_with_timeout(cmd, Duration::from_secs(120));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let json = serde_json::from_str(&stdout).ok();
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    pub(crate) fn out_dir(&self) -> PathBuf {
        self.path().join("out")
    }
}

/// Whether skips must fail (CI).
pub(crate) fn external_required() -> bool {
    std::env::var("BFGG_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) with a printed reason, or fails in CI.
pub(crate) fn skip<T>(reason: &str) -> Option<T> {
    assert!(
        !external_required(),
        "required external tool unavailable: {reason}"
    );
    eprintln!("SKIPPED: {reason}");
    None
}

static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The Python venv under `target/py-venv` with `packages` installed (created and
/// cached on first use). `None` (with a printed reason) when Python or PyPI is
/// unavailable outside CI.
pub(crate) fn python_venv(packages: &[&str]) -> Option<PathBuf> {
    let mut guard = VENV.lock().unwrap_or_else(|p| p.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-venv");
    let python = root.join("bin/python");
    if guard.is_none() {
        if !python.exists() {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&root)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return skip("python3 -m venv failed (is python3-venv installed?)");
            }
        }
        *guard = Some(python.clone());
    }
    for pkg in packages {
        let marker = root.join(format!(
            ".installed-{}",
            pkg.replace(['=', '<', '>', '/'], "_")
        ));
        if marker.exists() {
            continue;
        }
        let out = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", pkg])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                std::fs::write(&marker, b"").expect("marker");
            }
            Ok(o) => {
                return skip(&format!(
                    "pip install {pkg} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Err(e) => return skip(&format!("cannot run pip: {e}")),
        }
    }
    Some(python)
}

/// Processes whose command line mentions `needle`.
pub(crate) fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            found.push(pid);
        }
    }
    found
}
