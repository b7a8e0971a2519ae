"""Shared helpers for the mesh benchmarks (runs_memory.py, scale.py, soak.py):
real `bfgg node` processes on 127.0.0.1 joined with --join (no mDNS), a
`bfgg target`, `bfgg run --cluster --json` clients, and readings from /proc
and `ss`. Stdlib only; not a benchmark itself.

Every process started through `Bench` is killed when the `with` block ends,
on Ctrl-C, on SIGTERM/SIGHUP, and (PR_SET_PDEATHSIG) if this Python process
dies without cleaning up. Each bench gets its own temp workspace (data dirs,
HOME, XDG_*, TMPDIR, the cluster key, logs), removed at the end unless
--keep is given.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "/key/swarm/psk/1.0.0/\n/base16/\n" + "cd" * 32 + "\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def bfgg_bin(given: str | None) -> Path:
    """--bin, else target/release/bfgg, else target/debug/bfgg (like agent_bytes.py)."""
    if given:
        p = Path(given).resolve()
        if not p.is_file():
            sys.exit(f"--bin {given}: no such file")
        return p
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "bfgg"
        if p.exists():
            return p
    sys.exit("build bfgg first (cargo build --release), or pass --bin PATH")


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it if we die.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


class Node:
    def __init__(self, name: str, proc: subprocess.Popen, node_id: str, addr: str,
                 data_dir: Path, log: Path):
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.id = node_id
        self.addr = addr  # full multiaddr with /p2p/<id>
        self.data_dir = data_dir
        self.log = log


class Bench:
    """A workspace and the processes started in it."""

    def __init__(self, exe: Path, prefix: str, keep: bool = False):
        self.exe = exe
        self.prefix = prefix
        self.keep = keep
        self.procs: list[subprocess.Popen] = []
        self.nodes: list[Node] = []

    def __enter__(self) -> "Bench":
        self.ws = Path(tempfile.mkdtemp(prefix=f"bfgg-{self.prefix}-"))
        self.key = self.ws / "cluster.key"
        self.key.write_text(KEY)
        (self.ws / "tmp").mkdir()
        (self.ws / "logs").mkdir()
        # TMPDIR too: every light peer (`bfgg run --cluster`, `bfgg status`)
        # creates $TMPDIR/bfgg-light-<pid>/ and never removes it.
        self.env = dict(os.environ, HOME=str(self.ws), XDG_DATA_HOME=str(self.ws / "data"),
                        XDG_CONFIG_HOME=str(self.ws / "config"),
                        XDG_CACHE_HOME=str(self.ws / "cache"),
                        XDG_STATE_HOME=str(self.ws / "state"),
                        TMPDIR=str(self.ws / "tmp"), BFGG_LOG="warn")
        self.env.pop("BFGG_CLUSTER_KEY", None)
        self._old = {s: signal.signal(s, _raise_exit) for s in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc) -> None:
        self.kill_all()
        for s, h in self._old.items():
            signal.signal(s, h)
        if self.keep:
            print(f"workspace kept: {self.ws}", file=sys.stderr)
        else:
            shutil.rmtree(self.ws, ignore_errors=True)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"pid {p.pid} did not exit after SIGKILL", file=sys.stderr)
        self.procs.clear()

    def popen(self, cmd: list, log: Path | None = None, **kw) -> subprocess.Popen:
        """Starts a process that ends with the bench; stderr to `log` if given."""
        f = open(log, "w") if log else None
        try:
            p = subprocess.Popen([str(c) for c in cmd], env=self.env, text=True,
                                 preexec_fn=_die_with_parent, stderr=f or kw.pop("stderr", None),
                                 **kw)
        finally:
            if f:
                f.close()
        self.procs.append(p)
        return p

    def _json_line(self, proc: subprocess.Popen, what: str, timeout: float) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.5)
            if r:
                line = proc.stdout.readline()
                if line:
                    try:
                        return json.loads(line)
                    except json.JSONDecodeError:
                        continue
            if proc.poll() is not None:
                break
        raise RuntimeError(f"{what} did not report its address within {timeout:.0f} s")

    def start_target(self, latency: str = "1ms..5ms", workers: int = 1) -> str:
        p = self.popen([self.exe, "target", "--listen", "127.0.0.1:0", "--latency", latency,
                        "--workers", workers], stdout=subprocess.PIPE,
                       log=self.ws / "logs" / "target.log")
        self.target_pid = p.pid
        return "http://" + self._json_line(p, "bfgg target", 30)["listening"]

    def start_node(self, name: str, join: str | None = None, workers: int = 1,
                   extra: list | None = None, timeout: float = 60) -> Node:
        data_dir = self.ws / "nodes" / name
        log = self.ws / "logs" / f"{name}.log"
        cmd = [self.exe, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
               "--name", name, "--data-dir", data_dir, "--cluster-key-file", self.key,
               "--workers", workers]
        if join:
            cmd += ["--join", join]
        cmd += extra or []
        p = self.popen(cmd, stdout=subprocess.PIPE, log=log)
        v = self._json_line(p, f"node {name}", timeout)
        addr = v["listening"]
        if "/p2p/" not in addr:
            addr += "/p2p/" + v["node"]
        n = Node(name, p, v["node"], addr, data_dir, log)
        self.nodes.append(n)
        return n

    def status(self, join: str, wait: str = "3s") -> list[dict]:
        out = subprocess.run([str(self.exe), "status", "--json", "--join", join, "--no-mdns",
                              "--cluster-key-file", str(self.key), "--wait", wait],
                             capture_output=True, text=True, env=self.env, timeout=120,
                             preexec_fn=_die_with_parent)
        if out.returncode != 0:
            return []
        try:
            return json.loads(out.stdout)
        except json.JSONDecodeError:
            return []

    def wait_alive(self, join: str, n: int, timeout: float = 60, wait: str = "3s") -> float:
        """Waits until `bfgg status` sees `n` alive nodes; returns the seconds it took."""
        t0 = time.time()
        alive = 0
        while time.time() - t0 < timeout:
            rows = self.status(join, wait)
            alive = sum(1 for r in rows if r.get("liveness") == "alive")
            if alive >= n:
                return time.time() - t0
            time.sleep(0.5)
        raise RuntimeError(f"only {alive} of {n} nodes alive after {timeout:.0f} s")

    def scenario(self, name: str, url: str, rate: float, seconds: int,
                 graceful_stop: str = "1s") -> Path:
        path = self.ws / f"{name}.toml"
        path.write_text(f"""[scenario]
name = "{name}"
[target]
base_url = "{url}"
[load]
model = "open"
rate = {rate}
duration = "{seconds}s"
graceful_stop = "{graceful_stop}"

[[request]]
name = "home"
path = "/"
""")
        return path

    def client_cmd(self, scenario: Path, join: str, out: Path, extra: list | None = None) -> list:
        return [self.exe, "run", scenario, "--cluster", "--json", "--no-mdns", "--join", join,
                "--cluster-key-file", self.key, "--out", out] + (extra or [])

    def run_client(self, scenario: Path, join: str, out: Path, timeout: float,
                   extra: list | None = None) -> dict:
        """One `bfgg run --cluster --json`, waited for. Returns rc, summary (or None),
        stderr, and the wall times of submit (spawn) and done (exit)."""
        t_submit = time.time()
        p = self.popen(self.client_cmd(scenario, join, out, extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
            stderr += f"\n(bench: killed after {timeout:.0f} s)"
        t_done = time.time()
        self.procs.remove(p)
        return finish_client(p.returncode, stdout, stderr, t_submit, t_done)


def finish_client(rc: int, stdout: str, stderr: str, t_submit: float, t_done: float) -> dict:
    try:
        summary = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        summary = None
    return {"rc": rc, "summary": summary, "stderr": stderr, "t_submit": t_submit,
            "t_done": t_done}


def check_summary(s: dict | None, expected: int) -> list[str]:
    """What is wrong with a cluster run's summary, against its schedule."""
    if s is None:
        return ["no summary"]
    bad = []
    total = s["total"]["requests"]
    if total != expected:
        bad.append(f"total.requests {total} != schedule {expected}")
    agents_sum = sum(a["requests"] for a in s.get("agents", []))
    if agents_sum != total:
        bad.append(f"agents' requests sum {agents_sum} != total {total}")
    if s.get("partial"):
        bad.append("partial")
    if s.get("stopped_early"):
        bad.append(f"stopped early: {s.get('stop_reason')}")
    for a in s.get("agents", []):
        if a.get("status") != "complete":
            bad.append(f"agent {a['name']} {a['status']}")
        if a.get("missing_intervals"):
            m = a["missing_intervals"]
            bad.append(f"agent {a['name']} missing {len(m)} intervals ({m[:5]}...)")
    g = s.get("generator", {})
    if g.get("missed"):
        bad.append(f"generator.missed {g['missed']}")
    if total and s["total"].get("errors"):
        bad.append(f"{s['total']['errors']} errors")
    return bad


def log_problems(paths: list[Path], limit: int = 5) -> list[str]:
    """WARN/ERROR lines of the nodes' stderr logs (BFGG_LOG=warn), a few of them."""
    out, count = [], 0
    for p in paths:
        try:
            text = p.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "WARN" in line or "ERROR" in line or "panicked" in line:
                count += 1
                if len(out) < limit:
                    out.append(f"{p.stem}: {line.strip()[:300]}")
    if count > limit:
        out.append(f"... {count - limit} more")
    return out


# --- /proc ----------------------------------------------------------------

def proc_status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def rss_kib(pid: int) -> int:
    """VmRSS in KiB, 0 if the process is gone."""
    v = proc_status(pid).get("VmRSS", "0 kB")
    return int(v.split()[0])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds (NaN if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime is field 14, stime field 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def box_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat's cpu line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice;
    # guest time is already in user/nice.
    total = sum(v[:8])
    idle = v[3] + v[4]
    return total - idle, total


def box_busy_pct(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Share of the whole machine busy between two box_cpu() readings, % (100 = all cores)."""
    dt = b[1] - a[1]
    return 100.0 * (b[0] - a[0]) / dt if dt > 0 else float("nan")


def dir_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under path."""
    size = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                size += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                pass
    return size, files


def ss_bytes(pids: set[int], skip_peer: str = "") -> dict[tuple, tuple[int, int]]:
    """Per TCP socket of `pids`: (pid, local, peer) -> (bytes_acked, bytes_received),
    from `ss -tinpHO` (one line per socket). bytes_acked is what the peer
    acknowledged (sent, no retransmits); bytes_received what arrived.
    Sockets whose peer is `skip_peer` (host:port, e.g. the target) are left out."""
    out = subprocess.run(["ss", "-tinpHO"], capture_output=True, text=True).stdout
    socks = {}
    for line in out.splitlines():
        if "users:((" not in line:
            continue
        parts = line.split()
        if len(parts) < 5:
            continue
        local, peer = parts[3], parts[4]
        if skip_peer and skip_peer in (local, peer):
            continue
        users = line[line.index("users:((") :]
        acked = received = 0
        for tok in parts:
            if tok.startswith("bytes_acked:"):
                acked = int(tok.split(":")[1])
            elif tok.startswith("bytes_received:"):
                received = int(tok.split(":")[1])
        for chunk in users.split("pid=")[1:]:
            pid = int(chunk.split(",")[0])
            if pid in pids:
                socks[(pid, local, peer)] = (acked, received)
    return socks


def ss_delta(a: dict, b: dict) -> dict[int, list[int]]:
    """Per pid: [bytes out, bytes in, sockets seen, sockets closed] between two
    ss_bytes() readings. A socket opened in between counts from zero; a socket
    closed in between is lost (counted in 'closed')."""
    per: dict[int, list[int]] = {}
    for k, (acked, rcvd) in b.items():
        a0, r0 = a.get(k, (0, 0))
        if acked < a0 or rcvd < r0:  # a reused address: a new socket
            a0 = r0 = 0
        d = per.setdefault(k[0], [0, 0, 0, 0])
        d[0] += acked - a0
        d[1] += rcvd - r0
        d[2] += 1
    for k in a:
        if k not in b:
            per.setdefault(k[0], [0, 0, 0, 0])[3] += 1
    return per


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def mib(kib: float) -> float:
    return kib / 1024.0
