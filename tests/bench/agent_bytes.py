#!/usr/bin/env python3
"""Mesh cost of one agent: runs real `bfgg node` processes on 127.0.0.1
(joined with --join), a distributed run against `bfgg target` with N request
names at a given rate per agent, and prints the bytes each agent sent on the
mesh per second as the coordinator's summary reports it
(`agents[].mesh_bytes_per_s`: health and run events on gossip, live
intervals to the coordinator as requests; payload bytes as handed to
libp2p, which adds its own framing on top).

    python3 tests/bench/agent_bytes.py [--names 1,5] [--rate 1000] [--agents 3]

Used by `just bench`; figures are written up in docs/MESH.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY = "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 32 + "\n"


def bfgg_bin() -> Path:
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "bfgg"
        if p.exists():
            return p
    sys.exit("build bfgg first (cargo build)")


def read_json_line(proc: subprocess.Popen, what: str, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line:
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
        if proc.poll() is not None:
            break
    sys.exit(f"{what} did not report its address")


def scenario(path: Path, url: str, names: int, rate: int, seconds: int) -> None:
    reqs = "".join(
        f'\n[[request]]\nname = "r{i}"\npath = "/r{i}"\n' for i in range(names)
    )
    path.write_text(
        f"""[scenario]
name = "agent-bytes-{names}"
[target]
base_url = "{url}"
[load]
model = "open"
rate = {rate}
duration = "{seconds}s"
graceful_stop = "1s"
{reqs}"""
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", default="1,5", help="request names per run, comma-separated")
    ap.add_argument("--rate", type=int, default=1000, help="arrivals per second per agent")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    exe = bfgg_bin()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bfgg-agent-bytes-") as ws:
        ws = Path(ws)
        key = ws / "cluster.key"
        key.write_text(KEY)
        env = dict(os.environ, HOME=str(ws), XDG_DATA_HOME=str(ws / "data"),
                   XDG_CONFIG_HOME=str(ws / "config"))
        try:
            target = subprocess.Popen(
                [exe, "target", "--listen", "127.0.0.1:0", "--latency", "1ms..5ms"],
                stdout=subprocess.PIPE, text=True, env=env)
            procs.append(target)
            url = "http://" + json.loads(target.stdout.readline())["listening"]
            first = None
            for i in range(args.agents):
                cmd = [exe, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns",
                       "--name", f"n{i}", "--data-dir", str(ws / f"n{i}"),
                       "--cluster-key-file", str(key), "--workers", "1"]
                if first:
                    cmd += ["--join", first]
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
                procs.append(p)
                v = read_json_line(p, f"node n{i}")
                addr = v["listening"]
                if "/p2p/" not in addr:
                    addr += "/p2p/" + v["node"]
                first = first or addr
            time.sleep(3)
            print(f"{'names':>5} {'rate/agent':>10} {'agent':>6} {'mesh B/s':>11}")
            for names in [int(n) for n in args.names.split(",")]:
                f = ws / f"s{names}.toml"
                scenario(f, url, names, args.rate * args.agents, args.seconds)
                out = subprocess.run(
                    [exe, "run", str(f), "--cluster", "--join", first, "--json",
                     "--cluster-key-file", str(key),
                     "--out", str(ws / f"out{names}")],
                    capture_output=True, text=True, env=env, timeout=120)
                if out.returncode not in (0, 1):
                    sys.exit(f"run failed ({out.returncode}): {out.stderr[-2000:]}")
                s = json.loads(out.stdout)
                for a in s["agents"]:
                    print(f"{names:>5} {args.rate:>10} {a['name']:>6} {a['mesh_bytes_per_s']:>11.0f}")
        finally:
            for p in procs:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
