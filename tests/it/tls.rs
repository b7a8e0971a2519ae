//! HTTPS end to end: `bfgg target --tls` (a fresh self-signed certificate)
//! and `--tls-cert`/`--tls-key`, driven by `bfgg run` through the native
//! engine's rustls client: `insecure_tls = true` reaches a self-signed
//! target over HTTP/1.1 and HTTP/2 (ALPN `h2`), and without it every request
//! is a `tls` error. The target's `/stats` is read over HTTPS with `curl -k`;
//! certificate files are made with the `openssl` CLI (both skip when absent).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Target, Workspace, bfgg, bfgg_bin, run_with_timeout, skip};

fn u(v: &serde_json::Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("missing integer at {path} in {v:#}"))
}

/// `https://127.0.0.1:PORT` of a target started with TLS.
fn https_url(target: &Target) -> String {
    target.url.replacen("http://", "https://", 1)
}

/// `curl --silent --show-error --max-time 10 ARGS URL`: the body, or `None`
/// (skipped) when curl is not installed.
fn curl(args: &[&str], url: &str) -> Option<Result<String, String>> {
    let out = match Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
    {
        Ok(out) => out,
        Err(e) => return skip(&format!("cannot run curl: {e}")),
    };
    Some(if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    })
}

/// `GET /stats` of a TLS target (certificate not verified), or `None` when
/// curl is unavailable.
fn tls_stats(target: &Target) -> Option<serde_json::Value> {
    let body = curl(&["--insecure"], &format!("{}/stats", https_url(target)))?
        .unwrap_or_else(|e| panic!("curl /stats over TLS failed: {e}"));
    Some(serde_json::from_str(&body).expect("stats JSON"))
}

/// A closed-model scenario: 2 users for 2 s on `path`, with extra `[target]`
/// lines.
fn scenario(ws: &Workspace, base_url: &str, target_lines: &str, path: &str) -> std::path::PathBuf {
    ws.write(
        "tls.toml",
        &format!(
            r#"
[scenario]
name = "tls"
[target]
base_url = "{base_url}"
{target_lines}
[load]
model = "closed"
users = 2
duration = "2s"
[[request]]
name = "get"
path = "{path}"
check = {{ status = 200 }}
"#
        ),
    )
}

#[test]
fn insecure_tls_reaches_a_self_signed_target() {
    let target = Target::start(&["--tls"]);
    let ws = Workspace::new();
    let file = scenario(&ws, &https_url(&target), "insecure_tls = true", "/");
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    let n = u(&s, "/total/requests");
    assert!(n > 10, "{s:#}");
    assert_eq!(u(&s, "/total/errors"), 0, "{s:#}");
    // Everything counted was served (closed model: nothing left in flight).
    if let Some(stats) = tls_stats(&target) {
        assert_eq!(stats["total"].as_u64(), Some(n), "{stats}");
    }
}

#[test]
fn a_self_signed_target_is_refused_without_insecure_tls() {
    let target = Target::start(&["--tls"]);
    let ws = Workspace::new();
    let file = scenario(&ws, &https_url(&target), "", "/");
    let (code, summary, stderr) = ws.run(&file, &[]);
    // No thresholds: failed requests are data, not a failed run.
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    let n = u(&s, "/total/requests");
    assert!(n > 0, "{s:#}");
    assert_eq!(u(&s, "/total/errors"), n, "every request failed: {s:#}");
    let groups = s
        .pointer("/total/error_groups")
        .and_then(serde_json::Value::as_array)
        .expect("error groups");
    assert!(!groups.is_empty(), "{s:#}");
    for group in groups {
        assert_eq!(group["class"], "tls", "{s:#}");
    }
    assert_eq!(
        s.pointer("/total/error_groups/0/class")
            .and_then(serde_json::Value::as_str),
        Some("tls")
    );
    if let Some(stats) = tls_stats(&target) {
        assert_eq!(stats["total"].as_u64(), Some(0), "{stats}");
    }
}

#[test]
fn http2_over_tls_negotiates_h2_with_alpn() {
    let target = Target::start(&["--tls"]);
    let ws = Workspace::new();
    // With `http2 = true` the engine speaks HTTP/2 on the TLS connection
    // whatever ALPN said, so a target that had picked http/1.1 would fail
    // every request.
    let file = scenario(
        &ws,
        &https_url(&target),
        "insecure_tls = true\nhttp2 = true",
        "/json",
    );
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    let n = u(&s, "/total/requests");
    assert!(n > 10, "{s:#}");
    assert_eq!(u(&s, "/total/errors"), 0, "{s:#}");
    if let Some(stats) = tls_stats(&target) {
        assert_eq!(stats["total"].as_u64(), Some(n), "{stats}");
    }
    // And an independent client agrees that ALPN picks h2.
    let Some(version) = curl(
        &[
            "--insecure",
            "--http2",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_version}",
        ],
        &format!("{}/", https_url(&target)),
    ) else {
        return;
    };
    assert_eq!(version.expect("curl over h2"), "2");
}

/// `bfgg target --listen 127.0.0.1:0 ARGS`, killed on drop.
struct TargetChild(Child);

impl Drop for TargetChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bfgg target --listen 127.0.0.1:0 ARGS` and returns it with its
/// first stdout line parsed as JSON.
fn start_target(args: &[&str]) -> (TargetChild, serde_json::Value) {
    let mut child = TargetChild(
        Command::new(bfgg_bin())
            .args(["target", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bfgg target"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("bfgg target did not report its address within 20 s");
    let v = serde_json::from_str(line.trim()).expect("listening line is JSON");
    (child, v)
}

#[test]
fn the_listening_line_says_tls_only_when_it_is_on() {
    let (_tls, v) = start_target(&["--tls"]);
    assert_eq!(v["tls"], true, "{v}");
    assert!(
        v["listening"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    let (_plain, v) = start_target(&[]);
    assert!(v.get("tls").is_none(), "{v}");
}

#[test]
fn tls_flags_are_checked() {
    let ws = Workspace::new();
    let run = |args: &[&str]| {
        let mut cmd = bfgg(ws.path());
        cmd.args(["target", "--listen", "127.0.0.1:0"]).args(args);
        let out = run_with_timeout(cmd, Duration::from_secs(20));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = run(&["--tls", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (code, stderr) = run(&["--tls-cert", "c.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
    let (code, stderr) = run(&["--tls-key", "k.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    // Files are read at start; the error names the file.
    let missing = ws.path().join("missing-cert.pem");
    let missing = missing.to_str().expect("utf-8 path");
    let (code, stderr) = run(&["--tls-cert", missing, "--tls-key", missing]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(missing), "{stderr}");
    let garbage = ws.write("garbage.pem", "not pem\n");
    let key = ws.write("key.pem", "not pem either\n");
    let garbage = garbage.to_str().expect("utf-8 path");
    let (code, stderr) = run(&[
        "--tls-cert",
        garbage,
        "--tls-key",
        key.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(garbage), "{stderr}");
    assert!(stderr.contains("no PEM CERTIFICATE"), "{stderr}");
}

/// A self-signed EC certificate for 127.0.0.1 in `dir` via the `openssl` CLI:
/// (cert.pem, key.pem), or `None` (skipped) without openssl.
fn openssl_cert(dir: &Path) -> Option<(String, String)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match out {
        Ok(o) if o.status.success() => Some((
            cert.to_str().expect("utf-8 path").to_string(),
            key.to_str().expect("utf-8 path").to_string(),
        )),
        Ok(o) => skip(&format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => skip(&format!("cannot run openssl: {e}")),
    }
}

#[test]
fn certificate_files_are_served_and_verify_against_themselves() {
    let ws = Workspace::new();
    let Some((cert, key)) = openssl_cert(ws.path()) else {
        return;
    };
    let target = Target::start(&["--tls-cert", &cert, "--tls-key", &key]);
    // A verifying client that trusts exactly this certificate gets through.
    let Some(body) = curl(
        &["--cacert", &cert],
        &format!("{}/status/201", https_url(&target)),
    ) else {
        return;
    };
    assert_eq!(body.expect("verified request"), "status 201");
    // So does bfgg with `insecure_tls`.
    let file = scenario(&ws, &https_url(&target), "insecure_tls = true", "/");
    let (code, summary, stderr) = ws.run(&file, &[]);
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary json");
    assert!(u(&s, "/total/requests") > 10, "{s:#}");
    assert_eq!(u(&s, "/total/errors"), 0, "{s:#}");
}
