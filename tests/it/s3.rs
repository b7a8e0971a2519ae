//! Results to S3, against two real S3-compatible servers started here on
//! 127.0.0.1: `s3s-fs` (crates.io, built into `target/tools` on first use)
//! and moto's server (PyPI, in the cached venv). Uploads read back byte for
//! byte (boto3, from moto's dependencies), a multipart upload, a store down
//! at the end of the run and up for `bfgg runs upload`, wrong credentials
//! and a missing bucket (clear errors, results kept, exit code the run's),
//! and a three-node run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, wait_output};
use crate::harness::{Target, Workspace, bfgg, python_venv, run_with_timeout, skip};

const MOTO: &str = "moto[server]==5.2.5";
const S3S_FS: &str = "0.14.1";
const KEY: &str = "bfggtestkey";
const SECRET: &str = "bfggtestsecret";
const BUCKET: &str = "bfgg-results";

/// An S3-compatible server child, killed on drop.
struct Store {
    child: Child,
    endpoint: String,
    kind: &'static str,
    _root: Option<tempfile::TempDir>,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} not listening within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

static S3S_BUILD: Mutex<()> = Mutex::new(());

/// `target/tools/bin/s3s-fs`, built on first use.
fn s3s_fs_bin() -> Option<PathBuf> {
    let _guard = S3S_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools");
    let bin = root.join("bin/s3s-fs");
    if bin.exists() {
        return Some(bin);
    }
    let out = Command::new("cargo")
        .args([
            "install",
            "s3s-fs",
            "--version",
            S3S_FS,
            "--locked",
            "--features",
            "binary",
            "--root",
        ])
        .arg(&root)
        .output();
    match out {
        Ok(o) if o.status.success() && bin.exists() => Some(bin),
        Ok(o) => skip(&format!(
            "cargo install s3s-fs failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => skip(&format!("cannot run cargo install: {e}")),
    }
}

/// s3s-fs on `port` (a free one if `None`) with the bucket made.
fn s3s_fs(port: Option<u16>, root: Option<tempfile::TempDir>) -> Option<Store> {
    let bin = s3s_fs_bin()?;
    let root = root.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
    std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket dir");
    let port = port.unwrap_or_else(free_port);
    let mut child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", KEY, "--secret-key", SECRET])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    wait_listening(port, &mut child, "s3s-fs");
    Some(Store {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        kind: "s3s-fs",
        _root: Some(root),
    })
}

/// moto's server with the bucket made.
fn moto() -> Option<Store> {
    let python = python_venv(&[MOTO])?;
    let port = free_port();
    let mut child = Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto");
    wait_listening(port, &mut child, "moto");
    let store = Store {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        kind: "moto",
        _root: None,
    };
    boto(&store, &format!("s3.create_bucket(Bucket={BUCKET:?})"));
    Some(store)
}

/// Runs a boto3 snippet against `store` (`s3` is the client); its stdout.
fn boto(store: &Store, code: &str) -> String {
    let python = python_venv(&[MOTO]).expect("venv");
    let script = format!(
        "import boto3, hashlib, json\n\
         s3 = boto3.client('s3', endpoint_url={:?}, aws_access_key_id={KEY:?}, \
         aws_secret_access_key={SECRET:?}, region_name='us-east-1')\n{code}\n",
        store.endpoint
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "boto3 against {}: {}",
        store.kind,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every object under `prefix` with the SHA-256 of its bytes, read back.
fn objects(store: &Store, prefix: &str) -> BTreeMap<String, String> {
    let out = boto(
        store,
        &format!(
            "out = {{}}\n\
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket={BUCKET:?}, Prefix={prefix:?}):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       body = s3.get_object(Bucket={BUCKET:?}, Key=o['Key'])['Body'].read()\n\
             \x20       out[o['Key']] = hashlib.sha256(body).hexdigest()\n\
             print(json.dumps(out))"
        ),
    );
    serde_json::from_str(&out).expect("json")
}

/// Every file under `dir` with its SHA-256, keyed `prefix/<relative path>`.
fn local_files(dir: &Path, prefix: &str) -> BTreeMap<String, String> {
    use sha2::Digest;
    fn walk(base: &Path, dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, prefix, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .to_string();
                let bytes = std::fs::read(&p).expect("read");
                out.insert(format!("{prefix}{rel}"), hex(&sha2::Sha256::digest(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, prefix, &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `bfgg` command with the test store's credentials (and no instance
/// metadata probing).
fn bfgg_s3(ws: &Workspace) -> Command {
    let mut cmd = bfgg(ws.path());
    creds(&mut cmd);
    cmd
}

fn creds(cmd: &mut Command) {
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
}

fn short_run(ws: &Workspace, target: &Target) -> PathBuf {
    ws.write(
        "s3.toml",
        &format!(
            r#"
[scenario]
name = "s3"
thresholds = ["error_rate < 1%"]
[target]
base_url = "{}"
[load]
model = "open"
rate = 50
duration = "2s"
[[request]]
name = "home"
path = "/"
"#,
            target.url
        ),
    )
}

/// `bfgg run` with `--s3`: (exit code, stderr, results dir).
fn run_with_s3(ws: &Workspace, file: &Path, url: &str, endpoint: &str) -> (i32, String, PathBuf) {
    let out_dir = ws.out_dir();
    let mut cmd = bfgg_s3(ws);
    cmd.arg("run").arg(file).arg("--out").arg(&out_dir).args([
        "--s3",
        url,
        "--s3-endpoint",
        endpoint,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out_dir,
    )
}

fn summary_upload(dir: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    v["upload"].clone()
}

fn uploads_read_back_byte_for_byte(store: Store) {
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    let (code, stderr, dir) = run_with_s3(
        &ws,
        &file,
        &format!("s3://{BUCKET}/team/perf"),
        &store.endpoint,
    );
    assert_eq!(code, 0, "{stderr}");
    let url = format!("s3://{BUCKET}/team/perf/out/");
    assert!(
        stderr.contains(&format!("uploaded: {url}")),
        "{}: {stderr}",
        store.kind
    );
    let upload = summary_upload(&dir);
    assert_eq!(upload["state"], "uploaded", "{upload}");
    assert_eq!(upload["url"], url.as_str());
    let stored = objects(&store, "team/perf/out/");
    let local = local_files(&dir, "team/perf/out/");
    assert_eq!(stored, local, "{}: every file, byte for byte", store.kind);
    assert!(stored.contains_key("team/perf/out/summary.json"));
    assert!(stored.len() >= 5, "{stored:?}");
}

#[test]
fn a_local_run_uploads_its_results_to_s3s_fs() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    uploads_read_back_byte_for_byte(store);
}

#[test]
fn a_local_run_uploads_its_results_to_moto() {
    let Some(store) = moto() else { return };
    uploads_read_back_byte_for_byte(store);
}

#[test]
fn large_files_go_up_in_parts_to_both_stores() {
    let stores: Vec<Store> = [s3s_fs(None, None), moto()].into_iter().flatten().collect();
    if stores.len() < 2 {
        return;
    }
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    let (code, stderr, dir) = run_with_s3(
        &ws,
        &file,
        &format!("s3://{BUCKET}/first"),
        &stores[0].endpoint,
    );
    assert_eq!(code, 0, "{stderr}");
    // 12 MiB (+ a tail) of varied bytes: three 5 MiB parts, the last short.
    let big: Vec<u8> = (0..(12 << 20) + 12_345)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::create_dir_all(dir.join("extra")).expect("mkdir");
    std::fs::write(dir.join("extra/big.bin"), &big).expect("write");
    for store in &stores {
        let mut cmd = bfgg_s3(&ws);
        cmd.args(["runs", "upload"])
            .arg(&dir)
            .args([
                "--s3",
                &format!("s3://{BUCKET}/again"),
                "--s3-endpoint",
                &store.endpoint,
            ])
            .env("BFGG_S3_PART_SIZE", (5 << 20).to_string());
        let out = run_with_timeout(cmd, Duration::from_secs(180));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", store.kind);
        let stored = objects(store, "again/out/");
        assert_eq!(stored, local_files(&dir, "again/out/"), "{}", store.kind);
        assert_eq!(
            stored["again/out/extra/big.bin"],
            hex(&<sha2::Sha256 as sha2::Digest>::digest(&big))
        );
    }
}

#[test]
fn a_store_down_at_the_end_keeps_the_results_and_runs_upload_sends_them_later() {
    let Some(bin_ok) = s3s_fs_bin() else { return };
    drop(bin_ok);
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let (code, stderr, dir) = run_with_s3(&ws, &file, &format!("s3://{BUCKET}/later"), &endpoint);
    assert_eq!(code, 0, "the exit code is the run's: {stderr}");
    assert!(
        stderr.contains(&format!(
            "upload failed: cannot reach the S3 store at {endpoint}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("bfgg runs upload"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "retries are bounded"
    );
    let upload = summary_upload(&dir);
    assert_eq!(upload["state"], "failed", "{upload}");
    assert!(
        upload["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach")
    );
    for f in [
        "summary.json",
        "intervals.log",
        "latency.hlog",
        "timeseries.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} kept");
    }
    // The store comes up: `bfgg runs upload` sends everything.
    let store = s3s_fs(Some(port), None).expect("s3s-fs");
    let mut cmd = bfgg_s3(&ws);
    cmd.args(["runs", "upload"]).arg(&dir).args([
        "--s3",
        &format!("s3://{BUCKET}/later"),
        "--s3-endpoint",
        &store.endpoint,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary_upload(&dir)["state"], "uploaded");
    assert_eq!(
        objects(&store, "later/out/"),
        local_files(&dir, "later/out/")
    );
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_named_and_nothing_is_lost() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    // Wrong secret: s3s-fs checks signatures.
    let mut cmd = bfgg_s3(&ws);
    cmd.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(ws.out_dir())
        .args([
            "--s3",
            &format!("s3://{BUCKET}/x"),
            "--s3-endpoint",
            &store.endpoint,
        ])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("upload failed: the S3 store refused the credentials"),
        "{stderr}"
    );
    assert_eq!(summary_upload(&ws.out_dir())["state"], "failed");
    // A bucket that is not there.
    let (code, stderr, dir) = run_with_s3(&ws, &file, "s3://no-such-bucket/x", &store.endpoint);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("upload failed: bucket `no-such-bucket` does not exist"),
        "{stderr}"
    );
    assert!(dir.join("intervals.log").is_file());
    assert!(objects(&store, "").is_empty(), "nothing half-uploaded");
    // A malformed URL is a usage error before anything runs.
    let mut cmd = bfgg_s3(&ws);
    cmd.arg("run").arg(&file).args(["--s3", "bucket/prefix"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an S3 URL"));
}

#[test]
fn a_three_node_run_ends_with_its_merged_results_in_s3s_fs() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    three_node_run_to(store);
}

#[test]
fn a_three_node_run_ends_with_its_merged_results_in_moto() {
    let Some(store) = moto() else {
        return;
    };
    three_node_run_to(store);
}

fn three_node_run_to(store: Store) {
    let target = Target::start(&[]);
    let cluster = Cluster::start(3, &[]);
    let file = short_run(&cluster.ws, &target);
    let mut cmd = cluster.bfgg();
    creds(&mut cmd);
    cmd.arg("run")
        .arg(&file)
        .args([
            "--cluster",
            "--no-mdns",
            "--json",
            "--join",
            &cluster.nodes[0].addr,
        ])
        .arg("--cluster-key-file")
        .arg(&cluster.key)
        .arg("--out")
        .arg(cluster.ws.out_dir())
        .args([
            "--s3",
            &format!("s3://{BUCKET}/cluster"),
            "--s3-endpoint",
            &store.endpoint,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, summary, stderr) =
        wait_output(cmd.spawn().expect("spawn"), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    assert_eq!(s["agents"].as_array().map(Vec::len), Some(3), "{s:#}");
    assert_eq!(
        s["upload"]["state"], "uploaded",
        "--json prints the stored summary: {s:#}"
    );
    let dir = cluster.ws.out_dir();
    assert_eq!(
        objects(&store, "cluster/out/"),
        local_files(&dir, "cluster/out/")
    );
}

#[test]
fn nodes_with_s3_upload_the_merged_results_and_each_agents_own_log() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    let target = Target::start(&[]);
    let cluster = Cluster::start_with(
        3,
        &[],
        &[
            "--s3",
            &format!("s3://{BUCKET}/nodes"),
            "--s3-endpoint",
            &store.endpoint,
            "--s3-region",
            "us-east-1",
        ],
    );
    // The nodes' HOME is the workspace: credentials from the profile file,
    // as on a machine configured with `aws configure`.
    cluster.ws.write(
        ".aws/credentials",
        &format!("[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
    );
    let file = short_run(&cluster.ws, &target);
    let mut cmd = cluster.bfgg();
    cmd.arg("run")
        .arg(&file)
        .args([
            "--cluster",
            "--no-mdns",
            "--json",
            "--join",
            &cluster.nodes[0].addr,
        ])
        .arg("--cluster-key-file")
        .arg(&cluster.key)
        .arg("--out")
        .arg(cluster.ws.out_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (code, summary, stderr) =
        wait_output(cmd.spawn().expect("spawn"), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let s = summary.expect("summary");
    let run = crate::cluster::wait_for_run_id(&cluster, Duration::from_secs(5));
    // The coordinator's merged results and each agent's log arrive shortly
    // after the run (uploads run after the results are written).
    let want: Vec<String> = [
        "summary.json",
        "intervals.log",
        "agents/n0/intervals.log",
        "agents/n1/intervals.log",
        "agents/n2/intervals.log",
    ]
    .iter()
    .map(|f| format!("nodes/{run}/{f}"))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = objects(&store, &format!("nodes/{run}/"));
        if want.iter().all(|k| stored.contains_key(k)) {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "missing from the store: {want:?} vs {stored:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The stored results are the coordinator's, byte for byte.
    let coordinator_results = cluster
        .ws
        .path()
        .join(format!("node-n0/runs/{run}/results"));
    let local = local_files(&coordinator_results, &format!("nodes/{run}/"));
    for (key, sha) in &local {
        assert_eq!(stored.get(key), Some(sha), "{key}");
    }
    let uploaded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(coordinator_results.join("summary.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(uploaded["upload"]["state"], "uploaded");
    assert_eq!(uploaded["total"]["requests"], s["total"]["requests"]);
    // Agents delete their logs only once uploaded and confirmed.
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in ["n0", "n1", "n2"] {
        let log = cluster.ws.path().join(format!("node-{n}/agent/{run}"));
        while log.exists() {
            assert!(Instant::now() < deadline, "{} still there", log.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_node_that_cannot_upload_keeps_its_log_and_says_so_in_the_results() {
    let target = Target::start(&[]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cluster = Cluster::start_with(
        2,
        &[],
        &[
            "--s3",
            &format!("s3://{BUCKET}/nodes"),
            "--s3-endpoint",
            &dead,
            "--s3-region",
            "us-east-1",
        ],
    );
    cluster.ws.write(
        ".aws/credentials",
        &format!("[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
    );
    let file = short_run(&cluster.ws, &target);
    let s = cluster.finished_run(&file, &[], Duration::from_secs(120));
    let run = crate::cluster::wait_for_run_id(&cluster, Duration::from_secs(5));
    // The coordinator's results say the upload failed, and why.
    let summary = cluster
        .ws
        .path()
        .join(format!("node-n0/runs/{run}/results/summary.json"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let upload = loop {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap_or_default())
                .unwrap_or_default();
        if !v["upload"].is_null() {
            break v["upload"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no upload state in {}",
            summary.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(upload["state"], "failed", "{upload}");
    assert!(
        upload["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach"),
        "{upload}"
    );
    // Confirmed by the coordinator, but not in S3: each agent keeps its log.
    for n in ["n0", "n1"] {
        let log = cluster
            .ws
            .path()
            .join(format!("node-{n}/agent/{run}/intervals.log"));
        assert!(log.is_file(), "{} deleted before S3 had it", log.display());
    }
    assert!(s["total"]["requests"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn the_config_file_sets_s3_and_names_a_mistake() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    // XDG_CONFIG_HOME is <ws>/config for bfgg (harness).
    let config = ws.write(
        "config/bfgg/config.toml",
        &format!(
            "[s3]\nurl = \"s3://{BUCKET}/from-config\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
            store.endpoint
        ),
    );
    let mut cmd = bfgg_s3(&ws);
    cmd.arg("run").arg(&file).arg("--out").arg(ws.out_dir());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("uploaded: s3://{BUCKET}/from-config/out/")),
        "{stderr}"
    );
    assert_eq!(
        objects(&store, "from-config/out/"),
        local_files(&ws.out_dir(), "from-config/out/")
    );
    // A key that does not exist: refused before anything runs (the file
    // sets options of every command), naming the file, line and key.
    std::fs::write(
        &config,
        "[s3]\nurl = \"s3://x-bucket/p\"\nbucket = \"oops\"\n",
    )
    .expect("write");
    let out2 = ws.path().join("out2");
    let mut cmd = bfgg_s3(&ws);
    cmd.arg("run").arg(&file).arg("--out").arg(&out2);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config.toml:3: unknown field `bucket`"),
        "{stderr}"
    );
    assert!(!out2.exists(), "nothing ran");
    // A node refuses to start with it.
    let mut cmd = bfgg_s3(&ws);
    cmd.args(["node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `bucket`"));
}

#[test]
fn an_upload_on_a_terminal_shows_its_progress() {
    let Some(store) = s3s_fs(None, None) else {
        return;
    };
    let target = Target::start(&[]);
    let ws = Workspace::new();
    let file = short_run(&ws, &target);
    let (code, stderr, dir) = run_with_s3(&ws, &file, "s3://no-such-bucket/x", &store.endpoint);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(dir.join("big.bin"), vec![7u8; 24 << 20]).expect("write");
    let Some(tmux) = crate::tui::Tmux::start(ws.path(), "upload", 120, 20) else {
        return;
    };
    tmux.line(&format!(
        "AWS_ACCESS_KEY_ID={KEY} AWS_SECRET_ACCESS_KEY={SECRET} AWS_REGION=us-east-1 \
         AWS_EC2_METADATA_DISABLED=true BFGG_PROGRESS_AFTER_MS=0 BFGG_S3_PART_SIZE={} \
         {} runs upload {} --s3 s3://{BUCKET}/tty --s3-endpoint {}; echo EXIT=$?",
        5 << 20,
        crate::harness::bfgg_bin(),
        dir.display(),
        store.endpoint
    ));
    let screen = tmux.wait_for("the upload to end", Duration::from_secs(120), |s| {
        s.lines().any(|l| l.starts_with("EXIT="))
    });
    assert!(screen.contains("EXIT=0"), "{screen}");
    // The bar stays, complete: "uploading  24.02 MiB/24.02 MiB ████ 0s".
    let bar = screen
        .lines()
        .find(|l| l.trim_start().starts_with("uploading"))
        .unwrap_or_else(|| panic!("a progress bar: {screen}"));
    let after = bar.trim_start().trim_start_matches("uploading").trim();
    let (done, rest) = after.split_once('/').unwrap_or_default();
    let total: Vec<&str> = rest.split_whitespace().take(2).collect();
    assert!(
        !done.is_empty() && done == total.join(" "),
        "complete: {bar}"
    );
    assert!(bar.contains("MiB"), "{bar}");
    assert!(
        screen.contains(&format!("uploaded: s3://{BUCKET}/tty/out/")),
        "{screen}"
    );
}
