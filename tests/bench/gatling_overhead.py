#!/usr/bin/env python3
"""What bfgg costs Gatling (`just bench-gatling`): the same simulation on the
same class path against the same nginx, Gatling launched directly on the JVM
(A) against Gatling under `bfgg run` (B), interleaved A B A B ...

Set-up (shared with tests/bench/compare.py and locust_overhead.py, whose
helpers this imports): nginx with 1 worker pinned to core 0
(`tests/bench/nginx.conf.template`, `return 200 "ok"`); the generator pinned
to core 1 with `taskset -c 1`: in A the JVM, in B bfgg and, inherited, its
JVM. One Maven project, written into a temp dir: scenarios/gatling's pom.xml
(Gatling 3.15.1, Java DSL) and its src/test/resources (no analytics, no
warm-up request to gatling.io, console logging at WARN), plus one class,
`bench.ThroughputSimulation`: `--users` users (default 50) in a closed model
(`constantConcurrentUsers(U).during(T)`), each doing `GET /` as "home" in a
`during(T)` loop with no pause, `--duration` T seconds (default 20); users,
duration and baseUrl come from system properties.

    B: bfgg run scenario.toml --json --out DIR      (JAVA_HOME = a wrapper, below)
           engine = "gatling", properties = { users = U, duration = T },
           [load] duration = T + 30 s (a bound: the simulation ends by itself at T)
    A: java <bfgg's JVM options and -D properties> -cp <bfgg's class path>
           io.gatling.app.Gatling -s bench.ThroughputSimulation -rf DIR -nr -rd bfgg

A is B's JVM command line, taken from a warm-up run under bfgg (which also
builds the project into bfgg's cache, ~/.cache/bfgg/gatling/<hash>/, so no
measured run compiles anything): the same java, working directory (bfgg's
build directory), JVM options (node/src/engine/gatling/mod.rs JVM_OPTS,
LAUNCHER_OPTS), system properties (bfgg's own too) and class path, with
Gatling's own main class instead of bfgg's launcher (`bfgg.GatlingLauncher`,
which runs Gatling's main unchanged and only adds a log flush on SIGTERM) and
the launcher's directory left off the class path. So the difference between
A and B is bfgg: its process beside the JVM, tailing simulation.log every
100 ms, and the launcher. Each B run's command line is checked against A's
(a difference is logged).

How CPU time is measured (exactly, like compare.py: `os.wait4`'s rusage of a
reaped child, user + system, including the children it reaped):
- A: the rusage of the JVM (compare.run_measured).
- B, total: the rusage of bfgg, which includes every process it started and
  reaped (the JVM, `java -version` and `mvn -v`, its Java and Maven probes).
- B, the JVM alone: bfgg runs `$JAVA_HOME/bin/java` when that exists, so it
  gets JAVA_HOME = a directory whose bin/java is a small wrapper script (and
  bin/javac a link to the real javac, for bfgg's launcher). The wrapper
  starts the real java with the same arguments (`os.posix_spawn`), forwards
  signals, reaps it with `os.wait4`, appends that rusage, its own and its
  children's to a log, and exits with the child's status. So the JVM's CPU in
  B is measured the way it is in A. Maven's script runs `$JAVA_HOME/bin/java`
  too, with exec: its JVM goes through the wrapper as the process bfgg
  started, so every process bfgg reaps is one wrapper record and
  bfgg's own CPU = total - sum over records of (wrapper's own + its
  children's). *Prepare* = the records that are not the Gatling JVM
  (`java -version`, `mvn -B -v` with Maven's shell script). A /proc/PID/stat
  sample of the JVM every 0.2 s cross-checks it (and is the fallback if the
  wrapper is killed before it can log).
Requests: Gatling's own count of "home" from its final console table
(`> home | total | OK | KO`; in B from `<out>/gatling/stdout.log`), checked
against simulation.log (decoded here: binary format of Gatling 3.13+) and, in
B, against bfgg's summary.json. req/s = OK count over the span from the
first request's start to the last request's end in simulation.log (ms;
Gatling's console "Ns elapsed" if the log cannot be read). JVM start to
first request: from just before the JVM is spawned (A: by the harness, B:
by the wrapper) to the first request's start in simulation.log. The JVM's
start-up (class loading, JIT: seconds of CPU on one core) is a large part of
a short run's CPU, the same in A and B; so the JVM's CPU from its first
request on is reported too: the wait4 total less its CPU when the first
request started, interpolated from a /proc/PID/stat sample every 0.2 s (A:
the process whose command line names the run's results directory).

Reported: per variant the medians over rounds of req/s, JVM CPU µs/request
(user + sys; whole life, and from the first request on), JVM + bfgg's own
process µs/request and total CPU µs/request (B: + the probes); the paired ratios B/A per round and their median (the
issue's target: tailing simulation.log costs at most 5 %, i.e. JVM
CPU/request ratio <= 1.05 and req/s ratio >= 0.95); nginx µs/request and
foreign CPU (busy CPU of the machine that was neither the generator tree nor
the nginx worker, % of one core; a run is quiet under 10 %) as noise checks.
`--retry-noisy N` runs a round again (both variants) up to N times when
either run was not quiet; the report uses each round's quietest attempt.

Standard library only. Network: 127.0.0.1 only (Maven runs offline first and
online only if ~/.m2 lacks Gatling 3.15.1, as bfgg does).

    python3 tests/bench/gatling_overhead.py [--rounds 3] [--duration 20]
        [--users 50] [--quiet-wait S] [--retry-noisy N] [--write]

Exit codes: 0 done, 1 a variant never produced a result, 2 missing
prerequisites (nginx, bfgg, Java, Maven) or the warm-up run failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as C  # noqa: E402  (nginx, pinning, run_measured, noise checks, write_doc)
import locust_overhead as L  # noqa: E402  (noise accounting, attempt choice, ratio formatting)

GATLING_BEGIN = "<!-- gatling:begin (generated by tests/bench/gatling_overhead.py --write) -->"
GATLING_END = "<!-- gatling:end -->"
DEMO = C.ROOT / "scenarios" / "gatling"
SIMULATION = "bench.ThroughputSimulation"
LAUNCHER_CLASS = "bfgg.GatlingLauncher"
GATLING_MAIN = "io.gatling.app.Gatling"
STARTUP_S = 90  # extra allowance over duration + GRACE_S (JVM start, bfgg's probes)
LOAD_SLACK_S = 30  # B's [load] duration over the simulation's; also its maxDuration
WARMUP_S = 2
SAMPLE_S = 0.2
_jvm_groups: set[int] = set()  # process groups of Gatling JVMs started under bfgg (wrapper pids)

SIMULATION_JAVA = '''package bench;

// Written by tests/bench/gatling_overhead.py: as many GET / as one JVM can make.

import static io.gatling.javaapi.core.CoreDsl.*;
import static io.gatling.javaapi.http.HttpDsl.*;

import io.gatling.javaapi.core.*;
import io.gatling.javaapi.http.*;
import java.time.Duration;

public class ThroughputSimulation extends Simulation {
  static final int USERS = Integer.getInteger("users", 50);
  static final int DURATION = Integer.getInteger("duration", 20);
  static final String BASE_URL = System.getProperty("baseUrl", "http://127.0.0.1:8080");

  HttpProtocolBuilder httpProtocol = http.baseUrl(BASE_URL);

  // Each user loops for DURATION seconds with no pause; all start at once.
  ScenarioBuilder throughput =
      scenario("throughput").during(Duration.ofSeconds(DURATION)).on(exec(http("home").get("/")));

  {
    setUp(throughput.injectClosed(constantConcurrentUsers(USERS).during(Duration.ofSeconds(DURATION))))
        .protocols(httpProtocol)
        .maxDuration(Duration.ofSeconds(DURATION + %(slack)d));
  }
}
''' % {"slack": LOAD_SLACK_S}

SCENARIO = '''# Written by tests/bench/gatling_overhead.py (variant B).
[scenario]
name = "gatling-overhead"
engine = "gatling"

[target]
base_url = "{base}"

[gatling]
project = "{project}"
simulation = "{simulation}"
properties = {{ users = {users}, duration = {secs} }}

[load]
duration = "{load_secs}s"
graceful_stop = "5s"
'''

# Stands in for $JAVA_HOME/bin/java under bfgg: runs the real java and
# records its rusage exactly (and the wrapper's own and all its children's,
# which for Maven's exec'd script includes the script's helpers).
WRAPPER = '''#!{python} -SE
import json, os, resource, signal, sys, time
REAL = {real!r}
LOG = os.environ.get("BENCH_RUSAGE_LOG")
args = sys.argv[1:]
kind = ("gatling" if "{launcher}" in args or "{main}" in args
        else "version" if "-version" in args
        else "maven" if any("classworlds" in a for a in args) else "other")
pid = None
def forward(sig, _frame):
    if pid is not None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, forward)
def note(rec):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\\n")
at = time.time()
pid = os.posix_spawn(REAL, [REAL] + args, os.environ)
note({{"started": pid, "wrapper": os.getpid(), "kind": kind, "at": at}})
_, status, ru = os.wait4(pid, 0)
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
rec = {{"pid": pid, "wrapper": os.getpid(), "kind": kind, "at": at, "ended": time.time(), "status": status,
       "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "self_s": me.ru_utime + me.ru_stime,
       "children_s": kids.ru_utime + kids.ru_stime}}
if kind == "gatling":
    rec["argv"] = args
    rec["cwd"] = os.getcwd()
note(rec)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
'''


# --------------------------------------------------------------------------
# Prerequisites
# --------------------------------------------------------------------------


def real_tool(name: str) -> Path | None:
    """The JDK tool bfgg would run without the wrapper: `$JAVA_HOME/bin/NAME`
    when that exists, else NAME on PATH; symbolic links resolved."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).is_file():
        return (Path(home) / "bin" / name).resolve()
    found = shutil.which(name)
    return Path(found).resolve() if found else None


def tool_line(cmd: list[str]) -> str:
    try:
        r = C.sh(cmd, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    lines = (r.stdout + r.stderr).strip().splitlines()
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[0]).strip() if lines else "?"


def write_project(d: Path) -> Path:
    """The benchmark's Maven project: the demo's pom.xml and resources, one
    simulation. Its content (hence bfgg's build cache key) is the same every
    time."""
    d.mkdir(parents=True)
    shutil.copy(DEMO / "pom.xml", d / "pom.xml")
    shutil.copytree(DEMO / "src" / "test" / "resources", d / "src" / "test" / "resources")
    java = d / "src" / "test" / "java" / "bench" / "ThroughputSimulation.java"
    java.parent.mkdir(parents=True)
    java.write_text(SIMULATION_JAVA)
    return d


# --------------------------------------------------------------------------
# Gatling's output
# --------------------------------------------------------------------------


def console_counts(text: str, name: str = "home") -> dict:
    """Gatling's last console table row for `name`: `> home | total | OK | KO`
    (3.13 on), or `> home (OK=n KO=n)` before; and the last `Ns elapsed`."""
    num = lambda s: 0 if s.strip() in ("-", "") else int(s.replace(",", ""))  # noqa: E731
    rows = re.findall(rf"(?m)^> {re.escape(name)}\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|\s*([\d,-]+)", text)
    if rows:
        total, ok, ko = (num(x) for x in rows[-1])
    else:
        old = re.findall(rf"(?m)^> {re.escape(name)}\s+\(OK=([\d,]+)\s+KO=([\d,-]+)\s*\)", text)
        if not old:
            raise C.ParseError(f"no '> {name}' row in Gatling's console output")
        ok, ko = (num(x) for x in old[-1])
        total = ok + ko
    el = re.findall(r"(\d+)s elapsed", text)
    return {"total": total, "ok": ok, "ko": ko, "elapsed_s": int(el[-1]) if el else None}


class _Bytes:
    """A cursor over a binary simulation.log (big-endian Java DataOutput)."""

    _i32 = struct.Struct(">i").unpack_from
    _i64 = struct.Struct(">q").unpack_from

    def __init__(self, b: bytes):
        self.b, self.p = b, 0
        self.cache: list[str] = []

    def u8(self) -> int:
        v = self.b[self.p]
        self.p += 1
        return v

    def i32(self) -> int:
        v = self._i32(self.b, self.p)[0]
        self.p += 4
        return v

    def i64(self) -> int:
        v = self._i64(self.b, self.p)[0]
        self.p += 8
        return v

    def string(self) -> str:
        n = self.i32()
        if n == 0:
            return ""  # no coder byte after an empty string
        raw = self.b[self.p:self.p + n]
        coder = self.b[self.p + n]
        self.p += n + 1
        return raw.decode("latin-1" if coder == 0 else "utf-16-le", errors="replace")

    def cached(self) -> str:
        k = self.i32()
        if k > 0:
            self.cache.append(self.string())
            return self.cache[-1]
        return self.cache[-k - 1]


def read_log(path: Path, name: str = "home") -> dict:
    """Requests of `name` in a binary simulation.log (Gatling 3.13 on; the
    layout is node/src/engine/gatling/log/binary.rs's): OK and KO counts, the
    run start, the first request's start and the last one's end (Unix ms)."""
    b = path.read_bytes()
    r = _Bytes(b)
    if not b or b[0] != 0:
        raise C.ParseError(f"{path.name} is not a binary simulation.log (Gatling before 3.13?)")
    r.u8()
    r.string(), r.string()  # Gatling version, simulation class
    t0 = r.i64()
    r.string()  # description
    for _ in range(r.i32()):
        r.string()  # scenario names
    for _ in range(r.i32()):
        n = r.i32()  # an assertion's length, then its bytes
        r.p += n
    ok = ko = 0
    first = last = None
    truncated = False
    while r.p < len(b):
        mark = r.p
        try:
            h = r.u8()
            if h == 1:  # request: groups, name, start, end, OK, message
                for _ in range(r.i32()):
                    r.cached()
                n = r.cached()
                s, e = r.i32(), r.i32()
                good = r.u8() == 1
                r.cached()
                if n == name:
                    ok += good
                    ko += not good
                    first = s if first is None else min(first, s)
                    last = e if last is None else max(last, e)
            elif h == 2:  # user: scenario, start, time
                r.p += 9
            elif h == 3:  # group: groups, start, end, cumulated, OK
                for _ in range(r.i32()):
                    r.cached()
                r.p += 13
            elif h == 4:  # error: message, time
                r.cached()
                r.p += 4
            else:
                raise C.ParseError(f"unknown record header {h} at byte {mark}")
        except (IndexError, struct.error):
            truncated = True
            break
        if r.p > len(b):
            truncated = True
            break
    return {"ok": ok, "ko": ko, "run_start_ms": t0,
            "first_ms": None if first is None else t0 + first,
            "last_ms": None if last is None else t0 + last, "truncated": truncated}


def find_log(results: Path) -> Path | None:
    logs = sorted(results.glob("*/simulation.log"))
    return logs[-1] if logs else None


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------


@dataclass
class Run:
    variant: str  # "A" plain Gatling, "B" Gatling under bfgg
    round: int
    attempt: int = 1
    requests: int = 0  # Gatling's OK "home" requests (console)
    failures: int = 0  # its KO
    log_requests: int | None = None  # OK "home" in simulation.log
    rps: float | None = None
    span_s: float | None = None
    span_how: str = "log"
    jvm_user_s: float = float("nan")
    jvm_sys_s: float = float("nan")
    jvm_cpu_how: str = "wait4"
    total_cpu_s: float = float("nan")  # A: = the JVM; B: bfgg's rusage incl. its children
    prepare_cpu_s: float = 0.0  # B: java -version, mvn -v (all but the Gatling JVM)
    wrapper_cpu_s: float = 0.0  # B: the Gatling JVM's wrapper itself
    sampled_jvm_cpu_s: float = float("nan")  # last /proc sample, cross-check
    startup_cpu_s: float | None = None  # the JVM's CPU when its first request started (/proc trace)
    wall_s: float = 0.0
    nginx_cpu_s: float = float("nan")
    foreign_cpu_s: float = float("nan")
    first_request_s: float | None = None  # JVM spawned -> first request started
    cmd_first_request_s: float | None = None  # command started (B: bfgg) -> first request
    bfgg_requests: int | None = None  # B: summary.json total
    bfgg_home: int | None = None  # B: summary.json by_name.home
    argv: list[str] = field(default_factory=list)  # B: the JVM's arguments
    cwd: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.requests > 0

    @property
    def jvm_cpu_s(self) -> float:
        return self.jvm_user_s + self.jvm_sys_s

    @property
    def load_cpu_s(self) -> float:
        """The JVM's CPU from its first request on (the load and the shutdown)."""
        return self.jvm_cpu_s - self.startup_cpu_s if self.startup_cpu_s is not None else float("nan")

    @property
    def bfgg_cpu_s(self) -> float:
        """B: bfgg's own process (total minus every wrapped process)."""
        return self.total_cpu_s - self.jvm_cpu_s - self.prepare_cpu_s - self.wrapper_cpu_s

    @property
    def run_cpu_s(self) -> float:
        """The JVM and bfgg's process, without the probes before the start."""
        return self.total_cpu_s - self.prepare_cpu_s

    def us(self, cpu_s: float) -> float:
        return cpu_s * 1e6 / self.requests if self.requests else float("nan")

    @property
    def foreign_pct(self) -> float:
        return 100 * self.foreign_cpu_s / self.wall_s if self.wall_s else float("nan")

    @property
    def quiet(self) -> bool:
        return self.wall_s > 0 and self.foreign_cpu_s / self.wall_s < C.QUIET_FOREIGN


def gatling_results(run: Run, console: str, results: Path, spawned_at: float, cmd_at: float,
                    sampler: JvmSampler, pid: int | None) -> None:
    """Counts, span and first request of a finished run (sets run.error)."""
    try:
        cc = console_counts(console)
    except C.ParseError as e:
        run.error = str(e) + ": " + console.strip()[-300:]
        return
    run.requests, run.failures = cc["ok"], cc["ko"]
    log = find_log(results)
    try:
        if log is None:
            raise C.ParseError(f"no simulation.log under {results}")
        lg = read_log(log)
    except (OSError, C.ParseError) as e:
        C.log(f"  note: {e}; req/s over Gatling's console 'elapsed' instead")
        lg = None
    if lg and lg["first_ms"] is not None and lg["last_ms"] > lg["first_ms"]:
        run.log_requests = lg["ok"]
        run.span_s = (lg["last_ms"] - lg["first_ms"]) / 1000
        run.first_request_s = lg["first_ms"] / 1000 - spawned_at
        run.cmd_first_request_s = lg["first_ms"] / 1000 - cmd_at
        if pid is not None:
            run.startup_cpu_s = sampler.cpu_at(pid, lg["first_ms"] / 1000)
        if lg["truncated"]:
            C.log(f"  note: {log} ends in the middle of a record")
    elif cc["elapsed_s"]:
        run.span_s, run.span_how = float(cc["elapsed_s"]), "console elapsed"
    run.rps = run.requests / run.span_s if run.span_s else None
    if run.log_requests is not None and run.log_requests != run.requests:
        C.log(f"  note: Gatling's console counts {run.requests} OK 'home', its simulation.log {run.log_requests}")


def plain_argv(bfgg_argv: list[str], results: Path, secs: int) -> list[str]:
    """A's JVM arguments from B's: Gatling's main instead of bfgg's launcher,
    the launcher's directory off the class path, the results directory A's,
    the duration properties of the measured runs (the warm-up is shorter)."""
    out: list[str] = []
    it = iter(bfgg_argv)
    for a in it:
        if a in ("-cp", "-classpath", "--class-path"):
            cp = next(it, "")
            out += [a, ":".join(p for p in cp.split(":") if not (Path(p) / "bfgg" / "GatlingLauncher.class").is_file())]
        elif a == "-rf":
            next(it, None)
            out += [a, str(results)]
        elif a == LAUNCHER_CLASS:
            out.append(GATLING_MAIN)
        elif a.startswith("-Dduration="):
            out.append(f"-Dduration={secs}")
        elif a.startswith("-Dbfgg.duration="):
            out.append(f"-Dbfgg.duration={secs + LOAD_SLACK_S}")
        else:
            out.append(a)
    return out


def comparable(argv: list[str]) -> list[str]:
    """Arguments with what differs from run to run (paths of its own) blanked."""
    out, skip = [], False
    for a in argv:
        if skip:
            out.append("<dir>")
            skip = False
            continue
        skip = a == "-rf"
        out.append("-Djava.util.prefs.userRoot=<dir>" if a.startswith("-Djava.util.prefs.userRoot=") else a)
    return out


def run_plain(java: Path, jvm: dict, nginx: C.Nginx, args, rnd: int, attempt: int, workdir: Path) -> Run:
    run = Run("A", rnd, attempt)
    d = workdir / f"A-{rnd}-{attempt}"
    d.mkdir()
    results = d / "results"
    argv = plain_argv(jvm["argv"], results, args.duration)
    cmd = ["taskset", "-c", C.GEN_CORE, str(java), *argv]
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_RUSAGE_LOG",)}
    sampler = JvmSampler(cmdline_pids(str(results)))
    ng0, sys0 = nginx.worker_cpu_s(), C.system_busy_s()
    sampler.start()
    at = time.time()
    try:
        r = C.run_measured(cmd, timeout=args.duration + C.GRACE_S + STARTUP_S, env=env, cwd=Path(jvm["cwd"]))
    finally:
        sampler.stop()
    (d / "stdout.log").write_text(r.stdout)
    (d / "stderr.log").write_text(r.stderr)
    run.jvm_user_s, run.jvm_sys_s, run.wall_s = r.user_s, r.sys_s, r.wall_s
    run.total_cpu_s = r.cpu_s
    L._noise(run, nginx, ng0, sys0)
    if r.timed_out:
        run.error = f"killed after {args.duration + C.GRACE_S + STARTUP_S} s"
        return run
    pid = next(iter(sampler.trace), None)
    run.sampled_jvm_cpu_s = sampler.last(pid) if pid is not None else float("nan")
    gatling_results(run, r.stdout, results, at, at, sampler, pid)
    if r.rc != 0 and not run.error:
        run.error = f"exit {r.rc}: {(r.stderr.strip() or r.stdout.strip())[-300:]}"
    return run


class JvmSampler(threading.Thread):
    """Reads utime + stime of the Gatling JVM every SAMPLE_S s and keeps
    (time, CPU s) per pid: the JVM's CPU when its first request started is
    interpolated from it. The JVM is found by `find()` (B: the pids the
    wrapper logged; A: the process whose command line names the run's own
    results directory)."""

    def __init__(self, find):
        super().__init__(daemon=True)
        self.find = find
        self.stop_ev = threading.Event()
        self.trace: dict[int, list[tuple[float, float]]] = {}

    def run(self) -> None:
        while not self.stop_ev.wait(SAMPLE_S):
            self.poll()

    def poll(self) -> None:
        for pid in self.find():
            t, v = time.time(), C.proc_cpu_s(pid)
            if v == v:
                self.trace.setdefault(pid, []).append((t, v))

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(timeout=5)
        self.find()  # B: the groups of JVMs too short-lived to be seen yet

    def last(self, pid: int) -> float:
        tr = self.trace.get(pid)
        return tr[-1][1] if tr else float("nan")

    def cpu_at(self, pid: int, t: float) -> float | None:
        """The JVM's CPU s at time t, linear between the samples around it."""
        tr = self.trace.get(pid) or []
        for (t0, c0), (t1, c1) in zip(tr, tr[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
        return None


def wrapper_pids(log_path: Path):
    """For JvmSampler in B: the Gatling JVMs the wrapper started (and their
    process groups noted for kill_leftover_jvms)."""
    def find() -> list[int]:
        pids = []
        for rec in wrapper_log(log_path):
            if rec.get("kind") == "gatling" and "started" in rec:
                _jvm_groups.add(rec["wrapper"])
                pids.append(rec["started"])
        return pids
    return find


def cmdline_pids(marker: str):
    """For JvmSampler in A: the process whose command line holds `marker`
    (found once; taskset execs java, so it keeps its pid)."""
    found: list[int] = []
    needle = marker.encode()

    def find() -> list[int]:
        if not found:
            for d in Path("/proc").iterdir():
                if d.name.isdigit():
                    try:
                        if needle in (d / "cmdline").read_bytes():
                            found.append(int(d.name))
                            break
                    except OSError:
                        pass
        return found
    return find


def wrapper_log(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def kill_leftover_jvms() -> list[int]:
    """SIGKILLs the process groups of Gatling JVMs (their wrapper leads each)
    that outlived bfgg; returns the groups that were still there."""
    left = []
    for pg in list(_jvm_groups):
        try:
            os.killpg(pg, 0)
            left.append(pg)
            os.killpg(pg, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _jvm_groups.discard(pg)
    return left


def run_bfgg(bfgg: str, java_home: Path, scen: Path, nginx: C.Nginx | None, args, rnd: int, attempt: int,
             workdir: Path, secs: int, tag: str = "B") -> Run:
    run = Run("B", rnd, attempt)
    d = workdir / f"{tag}-{rnd}-{attempt}"
    d.mkdir()
    out = d / "results"
    rlog = d / "rusage.jsonl"
    cmd = ["taskset", "-c", C.GEN_CORE, bfgg, "run", str(scen), "--json", "--out", str(out)]
    env = dict(os.environ, JAVA_HOME=str(java_home), BENCH_RUSAGE_LOG=str(rlog))
    sampler = JvmSampler(wrapper_pids(rlog))
    ng0, sys0 = (nginx.worker_cpu_s(), C.system_busy_s()) if nginx else (0.0, C.system_busy_s())
    limit = secs + LOAD_SLACK_S + C.GRACE_S + STARTUP_S
    sampler.start()
    at = time.time()
    try:
        r = C.run_measured(cmd, timeout=limit, env=env, cwd=d)
    finally:
        sampler.stop()
    run.wall_s, run.total_cpu_s = r.wall_s, r.cpu_s
    left = kill_leftover_jvms()
    recs = wrapper_log(rlog)
    done = [x for x in recs if "pid" in x]
    jvm = [x for x in done if x["kind"] == "gatling"]
    started = [x for x in recs if "started" in x and x["kind"] == "gatling"]
    # Every wrapper is a child bfgg reaped (Maven's script execs it): its own
    # CPU and all its children's are in bfgg's rusage.
    run.prepare_cpu_s = sum(x["self_s"] + x["children_s"] for x in done if x["kind"] != "gatling")
    run.sampled_jvm_cpu_s = (sum(sampler.last(x["started"]) for x in started if x["started"] in sampler.trace)
                             if started else float("nan"))
    if jvm:
        run.jvm_user_s = sum(x["user_s"] for x in jvm)
        run.jvm_sys_s = sum(x["sys_s"] for x in jvm)
        run.wrapper_cpu_s = sum(x["self_s"] + x["children_s"] - x["user_s"] - x["sys_s"] for x in jvm)
        run.argv, run.cwd = jvm[-1].get("argv") or [], jvm[-1].get("cwd") or ""
    elif started:  # the wrapper was killed before it could log: the last /proc sample
        run.jvm_user_s, run.jvm_sys_s, run.jvm_cpu_how = run.sampled_jvm_cpu_s, 0.0, "/proc sample"
    if nginx:
        L._noise(run, nginx, ng0, sys0)
    if left:
        run.error = f"Gatling's JVM still running after bfgg exited (groups {left}, killed)"
    if r.timed_out:
        run.error = f"killed after {limit} s"
        return run
    if not started:
        run.error = f"exit {r.rc}; bfgg started no Gatling JVM through the wrapper: {r.stderr.strip()[-300:]}"
        return run
    if run.total_cpu_s + 0.02 < run.jvm_cpu_s + run.prepare_cpu_s:
        C.log(f"  note: bfgg's rusage ({run.total_cpu_s:.2f} s) is below its wrapped children's "
              f"({run.jvm_cpu_s + run.prepare_cpu_s:.2f} s): did bfgg not reap them?")
    try:
        console = (out / "gatling" / "stdout.log").read_text()
    except OSError as e:
        run.error = f"exit {r.rc}; no Gatling output ({e}): {r.stderr.strip()[-300:]}"
        return run
    spawned = started[-1]["at"]
    gatling_results(run, console, out / "gatling" / "results", spawned, at, sampler, started[-1]["started"])
    try:
        summ = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        try:
            summ = C.last_json(r.stdout)
        except C.ParseError:
            summ = {}
    run.bfgg_requests = (summ.get("total") or {}).get("requests")
    run.bfgg_home = ((summ.get("by_name") or {}).get("home") or {}).get("requests")
    if r.rc not in (0, 1) and not run.error:  # 1 = a threshold failed (there are none here)
        run.error = f"exit {r.rc}: {r.stderr.strip()[-300:]}"
    return run


def describe(run: Run) -> str:
    if not run.ok:
        return f"failed: {run.error}"
    s = (f"{run.requests} requests ({run.failures} KO), {fmt(run.rps)} req/s over {fmt(run.span_s, 3)} s "
         f"({run.span_how}), JVM {run.us(run.jvm_cpu_s):.1f} µs/request "
         f"({run.us(run.jvm_user_s):.1f} user + {run.us(run.jvm_sys_s):.1f} sys), "
         f"first request {fmt(run.first_request_s, 2)} s after the JVM's start "
         f"(JVM CPU then {fmt(run.startup_cpu_s, 2)} s; from then on {run.us(run.load_cpu_s):.1f} µs/request; "
         f"by /proc sample {run.sampled_jvm_cpu_s:.2f} s in all vs wait4 {run.jvm_cpu_s:.2f} s)")
    if run.variant == "B":
        s += (f", total {run.us(run.total_cpu_s):.1f} µs/request (bfgg {run.bfgg_cpu_s:.3f} s, "
              f"probes {run.prepare_cpu_s:.2f} s, wrapper {run.wrapper_cpu_s:.3f} s; "
              f"first request {fmt(run.cmd_first_request_s, 2)} s after `bfgg run`)")
        total = run.requests + run.failures
        if run.bfgg_requests is not None and run.bfgg_requests != total:
            s += f"; COUNT MISMATCH bfgg {run.bfgg_requests} vs Gatling {total}"
    return s + f", foreign CPU {run.foreign_pct:.0f} % of a core"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

fmt, median = C.fmt, C.median


def report(args, runs: list[Run], started: dt.datetime, cmdline: str, versions: dict[str, str]) -> str:
    kept = [r for r in runs if r.ok and r.attempt == L.chosen_attempt(runs, r.round)]
    A = {r.round: r for r in kept if r.variant == "A"}
    B = {r.round: r for r in kept if r.variant == "B"}
    pairs = [(A[k], B[k]) for k in sorted(A) if k in B]
    out: list[str] = []
    out.append(f"Run on {started.strftime('%Y-%m-%d %H:%M')} UTC by `{cmdline}`; {args.rounds} round(s) × "
               f"{args.duration} s per variant, {args.users} users (closed model, `constantConcurrentUsers`, "
               f"`GET /` in a loop with no pause), one JVM; generator on core {C.GEN_CORE}, nginx (1 worker) "
               f"on core {C.SERVER_CORE}.")
    out.append("")
    out.append("Machine: " + "; ".join(C.machine_info()) + f". Repository at {C.git_describe()}.")
    out.append("")
    out.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()) + ".")
    out.append("")
    out.append("| variant | req/s | JVM CPU µs/request (user + sys) | JVM from the first request on "
               "| JVM + bfgg µs/request | total CPU µs/request | of which bfgg | JVM start → first request "
               "(JVM CPU by then) | nginx µs/request | foreign CPU |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for v, label, rs in (("A", "A: plain Gatling", list(A.values())),
                         ("B", "B: Gatling under bfgg", list(B.values()))):
        if not rs:
            errs = [r.error for r in runs if r.variant == v and r.error]
            out.append(f"| {label} | failed: {errs[0][:150] if errs else '?'} | | | | | | | | |")
            continue
        side = (f"{fmt(median([r.us(r.bfgg_cpu_s) for r in rs]), 2)} bfgg + "
                f"{fmt(median([r.us(r.prepare_cpu_s) for r in rs]))} probes") if v == "B" else "–"
        first = median([r.first_request_s for r in rs])
        cmd_first = median([r.cmd_first_request_s for r in rs]) if v == "B" else None
        out.append(f"| {label} | {fmt(median([r.rps for r in rs]))} "
                   f"| {fmt(median([r.us(r.jvm_cpu_s) for r in rs]))} "
                   f"({fmt(median([r.us(r.jvm_user_s) for r in rs]))} + "
                   f"{fmt(median([r.us(r.jvm_sys_s) for r in rs]))}) "
                   f"| {fmt(median([r.us(r.load_cpu_s) for r in rs]))} "
                   f"| {fmt(median([r.us(r.run_cpu_s) for r in rs]))} "
                   f"| {fmt(median([r.us(r.total_cpu_s) for r in rs]))} | {side} "
                   f"| {fmt(first, 2) + ' s' if first is not None else '–'}"
                   f"{f' (from `bfgg run`: {fmt(cmd_first, 2)} s)' if cmd_first is not None else ''} "
                   f"({fmt(median([r.startup_cpu_s for r in rs]), 2)} CPU-s) "
                   f"| {fmt(median([r.us(r.nginx_cpu_s) for r in rs]))} "
                   f"| {fmt(median([r.foreign_pct for r in rs]), 0)} % |")
    out.append("")
    if pairs:
        out.append("| paired ratio B/A | median | per round | quiet rounds | loss (target ≤ 5 %) |")
        out.append("|---|---|---|---|---|")
        quiet = [(a, b) for a, b in pairs if a.quiet and b.quiet]

        def row(label: str, f, higher_is_loss: bool) -> None:
            xs = [f(a, b) for a, b in pairs]
            qs = [f(a, b) for a, b in quiet]
            m = median(qs) if qs else median(xs)
            loss = (m - 1) if higher_is_loss else (1 - m)
            out.append(f"| {label} | {fmt(median(xs), 3)} | {L.spread(xs)} "
                       f"| {fmt(median(qs), 3) + f' ({len(qs)})' if qs else '– (0)'} "
                       f"| {100 * loss:+.1f} % {'✓' if loss <= 0.05 else '✗'} |")

        row("JVM CPU per request", lambda a, b: b.us(b.jvm_cpu_s) / a.us(a.jvm_cpu_s), True)
        row("JVM CPU per request from the first request on", lambda a, b: b.us(b.load_cpu_s) / a.us(a.load_cpu_s),
            True)
        row("req/s", lambda a, b: b.rps / a.rps, False)
        row("JVM + bfgg's process CPU per request", lambda a, b: b.us(b.run_cpu_s) / a.us(a.run_cpu_s), True)
        row("total CPU per request (B incl. probes)", lambda a, b: b.us(b.total_cpu_s) / a.us(a.total_cpu_s),
            True)
        out.append("")
    out.append("*JVM CPU*: user + system time of Gatling's JVM, from `os.wait4` (in B through a wrapper bfgg "
               "runs as `$JAVA_HOME/bin/java`), over its whole life (start-up, the run, shutdown) per OK "
               "\"home\" request Gatling counted (its final console table); *from the first request on*: the same "
               "less the JVM's CPU when its first request started (start-up: class loading, JIT), interpolated "
               "from a /proc/PID/stat sample every 0.2 s. *JVM + bfgg*: in B also bfgg's own "
               "process (tailing simulation.log every 100 ms, recording, results), what the tailing costs in "
               "all. *Total*: in B bfgg's rusage, which also includes its probes before the start "
               "(`java -version`, `mvn -B -v`: *probes*, a fixed cost per run). *req/s*: OK requests over the "
               "span from the first request's start to the last one's end in simulation.log. *JVM start → "
               "first request*: from spawning the JVM to the first request's start (in B also from starting `bfgg run`: "
               "its probes, the project's cache check and its 100 ms start lead come first). *Loss* is taken from the "
               "quiet-rounds median when there is one: CPU ratio − 1, or 1 − req/s ratio. Both variants run "
               "on core 1, so in B bfgg's own CPU is taken from the JVM's core: the req/s ratio includes it, "
               "the JVM-CPU ratio does not. *Foreign CPU*: busy CPU of the machine that was neither the "
               "generator (tree) nor the nginx worker, % of one core; *quiet* = under 10 % in both runs of "
               "the round.")
    out.append("")
    out.append("Per round (the runs used; ✗ = not quiet):")
    out.append("")
    out.append("| round | variant | requests (Gatling / bfgg) | req/s | span s | JVM CPU s (to first request) "
               "| bfgg CPU s | probes CPU s | JVM µs/request (from first request) | total µs/request "
               "| first request s | foreign CPU |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(kept, key=lambda r: (r.round, r.variant)):
        b = r.variant == "B"
        counts = f"{r.requests:,}" + (f" / {r.bfgg_requests:,}" if b and r.bfgg_requests is not None else "")
        out.append(f"| {r.round} | {r.variant} | {counts} | {fmt(r.rps)} | {fmt(r.span_s, 3)}"
                   f"{'' if r.span_how == 'log' else ' (' + r.span_how + ')'} | {r.jvm_cpu_s:.2f}"
                   f"{' [' + r.jvm_cpu_how + ']' if r.jvm_cpu_how != 'wait4' else ''} ({fmt(r.startup_cpu_s, 2)}) "
                   f"| {f'{r.bfgg_cpu_s:.3f}' if b else '–'} | {f'{r.prepare_cpu_s:.2f}' if b else '–'} "
                   f"| {fmt(r.us(r.jvm_cpu_s))} ({fmt(r.us(r.load_cpu_s))}) | {fmt(r.us(r.total_cpu_s))} "
                   f"| {fmt(r.first_request_s, 2)} "
                   f"| {fmt(r.foreign_pct, 0)} %{'' if r.quiet else ' ✗'} |")
    dropped = [r for r in runs if r not in kept]
    if dropped:
        out.append("")
        out.append("Runs not used (their round was run again because a run in it was not quiet and "
                   "another attempt was quieter, or they failed): " + "; ".join(
                       f"round {r.round} {r.variant} attempt {r.attempt}: "
                       + (f"failed ({r.error[:120]})" if r.error else f"foreign CPU {r.foreign_pct:.0f} %")
                       for r in dropped) + ".")
    bad = [r for r in kept if r.variant == "B" and r.bfgg_requests is not None
           and r.bfgg_requests != r.requests + r.failures]
    out.append("")
    out.append("Counts: " + ("bfgg's summary.json total equals Gatling's count of \"home\" in every B run."
                             if not bad else "MISMATCH between bfgg's summary.json and Gatling's count: " + "; ".join(
                                 f"round {r.round}: bfgg {r.bfgg_requests} vs Gatling {r.requests + r.failures}"
                                 for r in bad) + "."))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=20, help="seconds per run (the simulation's)")
    ap.add_argument("--users", type=int, default=C.CONNECTIONS, help="concurrent Gatling users")
    ap.add_argument("--bin", type=Path, default=C.bfgg_bin(), help="bfgg binary (default target/release/bfgg)")
    ap.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                    help="before each run, wait up to S s for the machine to be idle")
    ap.add_argument("--retry-noisy", type=int, default=0, metavar="N",
                    help="run a round again (both variants), up to N times, if either run was not quiet")
    ap.add_argument("--write", action="store_true", help="replace the Gatling section of docs/BENCHMARKS.md")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs at least 2 cores (server on core 0, generator on core 1)", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.timezone.utc)
    cmdline = "python3 tests/bench/gatling_overhead.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")

    C.ensure_apt([], want_strace=False)  # nginx
    bt = C.Tool("bfgg", path=str(args.bin.resolve()) if args.bin.exists() else None)
    if not bt.path:
        print(f"{args.bin} not found: build it with `cargo build --release --bin bfgg`", file=sys.stderr)
        return 2
    java, javac = real_tool("java"), real_tool("javac")
    if not java or not javac or not shutil.which("mvn"):
        print("needs a JDK (java and javac; JAVA_HOME or PATH) and Maven (mvn on PATH)", file=sys.stderr)
        return 2
    versions = {"nginx": C.tool_version(C.Tool("nginx")).replace("nginx version: ", ""),
                "java": tool_line([str(java), "-version"]), "maven": tool_line(["mvn", "-B", "-v"]),
                "gatling": "?", "bfgg": C.tool_version(bt)}

    workdir = Path(tempfile.mkdtemp(prefix="bfgg-bench-gatling-"))
    os.chmod(workdir, 0o755)
    nginx = C.Nginx(workdir)
    project = write_project(workdir / "project")
    java_home = workdir / "jdk"
    (java_home / "bin").mkdir(parents=True)
    wrapper = java_home / "bin" / "java"
    wrapper.write_text(WRAPPER.format(python=sys.executable, real=str(java), launcher=LAUNCHER_CLASS,
                                      main=GATLING_MAIN))
    wrapper.chmod(0o755)
    (java_home / "bin" / "javac").symlink_to(javac)
    runs: list[Run] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        nginx.start()
        C.log(f"nginx on {nginx.url} (worker pid {nginx.worker}, core {C.SERVER_CORE}); workdir {workdir}")
        scen = workdir / "scenario.toml"
        scen.write_text(SCENARIO.format(base=nginx.base, project=project, simulation=SIMULATION,
                                        users=args.users, secs=args.duration,
                                        load_secs=args.duration + LOAD_SLACK_S))
        C.log("bfgg check (builds the project into bfgg's cache with Maven, once per content)")
        r = C.sh([bt.path, "check", str(scen)], timeout=900)
        if r.returncode != 0:
            print(f"bfgg check: exit {r.returncode}:\n{(r.stderr + r.stdout).strip()[-2000:]}", file=sys.stderr)
            return 2
        warm = workdir / "warmup.toml"
        warm.write_text(SCENARIO.format(base=nginx.base, project=project, simulation=SIMULATION,
                                        users=args.users, secs=WARMUP_S, load_secs=WARMUP_S + LOAD_SLACK_S))
        C.log(f"warm-up under bfgg ({WARMUP_S} s): takes the JVM's command line for A")
        w = run_bfgg(bt.path, java_home, warm, None, args, 0, 1, workdir, WARMUP_S, tag="warmup")
        if not w.argv or not w.cwd:
            print(f"the warm-up run under bfgg gave no JVM command line: {w.error or '?'}", file=sys.stderr)
            return 2
        if w.error:
            C.log(f"  warm-up: {w.error}")
        jvm = {"argv": w.argv, "cwd": w.cwd}
        cp = next((w.argv[i + 1] for i, a in enumerate(w.argv[:-1]) if a in ("-cp", "-classpath")), "")
        gv = re.search(r"gatling-core-([\d.]+(?:-[A-Za-z0-9.]+)?)\.jar", cp)
        versions["gatling"] = gv.group(1) if gv else "?"
        C.log(f"  A will run: java {' '.join(a if len(a) < 120 else a[:60] + '…' for a in plain_argv(w.argv, Path('DIR'), args.duration))}"
              f" (in {w.cwd})")
        def check_argv(run):
            if run.variant == "B" and run.argv:
                want = comparable(plain_argv(jvm["argv"], Path("x"), args.duration))
                got = comparable(plain_argv(run.argv, Path("x"), args.duration))
                if want != got or run.cwd != jvm["cwd"]:
                    C.log("  note: bfgg's JVM command line differs from A's: "
                          + "; ".join(f"{x!r} vs {y!r}" for x, y in zip(want, got) if x != y)[:500])

        L.paired_rounds(
            args,
            {"A": "plain Gatling", "B": "Gatling under bfgg"},
            lambda v, rnd, attempt: (run_plain(java, jvm, nginx, args, rnd, attempt, workdir) if v == "A"
                                     else run_bfgg(bt.path, java_home, scen, nginx, args, rnd, attempt, workdir,
                                                   args.duration)),
            runs,
            describe,
            after=check_argv,
        )
    except KeyboardInterrupt:
        return L.stop_everything(kill_leftover_jvms)
    finally:
        L.cleanup(nginx, workdir)

    return L.finish(args, runs, report(args, runs, started, cmdline, versions), GATLING_BEGIN, GATLING_END)

if __name__ == "__main__":
    sys.exit(main())
