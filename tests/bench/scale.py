#!/usr/bin/env python3
"""What one run costs a mesh of many nodes on one box: starts --nodes `bfgg
node` processes on 127.0.0.1 (every one joins the first, starts staggered),
waits until `bfgg status` sees them all alive, then one `bfgg run --cluster
--json` (joined to the first node, which coordinates) at --rate-per-agent
arrivals/s per agent for --seconds against one `bfgg target`.

Measured, over the live run (the first sample after the load starts to the
last one before it ends; samples every --sample-every s, the run's start
from the summary's started_at_ms):

- CPU % of one core per node: utime+stime from /proc/PID/stat; the
  coordinator separately, the others as median and max.
- Network bytes in/out per node per second: per-process TCP socket counters
  from `ss -tinpHO` (bytes_received in, bytes_acked out, summed over the
  sockets a pid owns; the load's sockets to the target left out, so mesh
  traffic only: libp2p payload after noise encryption and yamux framing). Loopback: every connection is counted at both ends,
  so the sum of all nodes' out is the sum of their in (printed as a check).
  A socket closed inside the window loses its bytes (the count is printed).
- The whole box's CPU (/proc/stat, 100 % = every core busy) while idle
  before the run and while it is live, so it shows when the box saturates.
- Submit to every agent started: agents[].started_at_ms (coordinator's clock,
  same host) minus the wall time the client was spawned (includes the
  client joining the mesh).
- Finalize: end of load (started_at_ms + --seconds) to the client exiting
  with the results.
- total.requests vs the schedule (rate per agent x agents x seconds).

    python3 tests/bench/scale.py --nodes 50,100 [--rate-per-agent 10] [--seconds 30]
    python3 tests/bench/scale.py --nodes 5 --seconds 10 --bin /tmp/bfgg-bench   # smoke

Prints a markdown table (one row per --nodes value, each a fresh mesh) for
docs/MESH.md. Also `just bench-scale`. Exits 1 if a run failed or missed
its schedule.
"""

import argparse
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in tests/bench for the helper
import meshbench as mb  # noqa: E402


class Sampler(threading.Thread):
    """Samples CPU of each pid, the box, and ss socket bytes every `every` s."""

    def __init__(self, pids: set[int], every: float, skip_peer: str):
        super().__init__(daemon=True)
        self.pids = pids
        self.skip_peer = skip_peer
        self.every = every
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.ss_secs: list[float] = []

    def take(self) -> dict:
        t0 = time.time()
        ss = mb.ss_bytes(self.pids, self.skip_peer)
        t1 = time.time()
        self.ss_secs.append(t1 - t0)
        cpu = {p: mb.cpu_seconds(p) for p in self.pids}
        box = mb.box_cpu()
        return {"t": time.time(), "cpu": cpu, "box": box, "ss": ss}

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(self.take())
            self.stop.wait(self.every)


def window(samples: list[dict], start: float, end: float) -> tuple[dict, dict] | None:
    """The first sample at or after `start` and the last at or before `end`."""
    inside = [s for s in samples if start <= s["t"] <= end]
    if len(inside) < 2:
        return None
    return inside[0], inside[-1]


def usage(a: dict, b: dict, pids: list[int]) -> dict:
    dt = b["t"] - a["t"]
    cpu = {p: 100.0 * (b["cpu"][p] - a["cpu"][p]) / dt for p in pids}
    net = mb.ss_delta(a["ss"], b["ss"])
    io = {p: (net.get(p, [0, 0, 0, 0])[0] / dt, net.get(p, [0, 0, 0, 0])[1] / dt) for p in pids}
    ours = sum(v for v in cpu.values() if v == v) / (os.cpu_count() or 1)
    return {"dt": dt, "cpu": cpu, "net": io, "box": mb.box_busy_pct(a["box"], b["box"]),
            "ours": ours,
            "closed": sum(v[3] for p, v in net.items() if p in pids),
            "sockets": sum(v[2] for p, v in net.items() if p in pids)}


def kib(x: float) -> str:
    return f"{x / 1024:.1f}"


def one(exe, n: int, args) -> dict:
    res: dict = {"nodes": n}
    with mb.Bench(exe, f"scale{n}", keep=args.keep) as b:
        url = b.start_target("1ms..5ms")
        t0 = time.time()
        first = b.start_node("n0", workers=args.workers)
        for i in range(1, n):
            b.start_node(f"n{i}", join=first.addr, workers=args.workers)
            time.sleep(args.stagger)
        res["start_s"] = time.time() - t0
        res["alive_s"] = b.wait_alive(first.addr, n, timeout=args.alive_timeout,
                                      wait=args.status_wait)
        print(f"{n} nodes started in {res['start_s']:.1f} s, all alive "
              f"{res['alive_s']:.1f} s later", file=sys.stderr, flush=True)
        others = [x for x in b.nodes if x is not first]
        pids = {x.pid for x in b.nodes} | {b.target_pid}

        # Idle baseline: the mesh with nothing but health gossip.
        # Mesh traffic only: the nodes' HTTP sockets to the target are left out.
        s = Sampler(pids, args.sample_every, skip_peer=url.removeprefix("http://"))
        a = s.take()
        time.sleep(args.idle_seconds)
        z = s.take()
        idle = usage(a, z, sorted(pids))
        res["idle_box"] = idle["box"]
        res["idle_ours"] = idle["ours"]
        res["idle_coord_cpu"] = idle["cpu"][first.pid]
        res["idle_other_cpu"] = mb.median([idle["cpu"][x.pid] for x in others])
        res["idle_coord_net"] = idle["net"][first.pid]
        res["idle_other_in"] = mb.median([idle["net"][x.pid][1] for x in others])
        res["idle_other_out"] = mb.median([idle["net"][x.pid][0] for x in others])

        rate = args.rate_per_agent * n
        scen = b.scenario(f"scale-{n}", url, rate, args.seconds)
        t_submit = time.time()
        client = b.popen(b.client_cmd(scen, first.addr, b.ws / "out"),
                         stdout=mb.subprocess.PIPE, stderr=mb.subprocess.PIPE)
        s.pids = pids | {client.pid}
        s.start()
        try:
            stdout, stderr = client.communicate(timeout=args.seconds + 300)
        except mb.subprocess.TimeoutExpired:
            client.kill()
            stdout, stderr = client.communicate()
        t_done = time.time()
        s.stop.set()
        s.join()
        r = mb.finish_client(client.returncode, stdout, stderr, t_submit, t_done)
        summary = r["summary"]
        rss = {x.pid: mb.rss_kib(x.pid) for x in b.nodes}
        warnings = mb.log_problems([x.log for x in b.nodes])

    res["rc"] = r["rc"]
    if summary is None:
        res["error"] = r["stderr"].strip()[-1500:]
        return res
    agents = summary["agents"]
    res["agents"] = len(agents)
    res["requests"] = summary["total"]["requests"]
    res["schedule"] = args.rate_per_agent * len(agents) * args.seconds
    res["problems"] = mb.check_summary(summary, res["schedule"])
    if len(agents) != n:
        res["problems"].append(f"{len(agents)} agents of {n} nodes")
    starts = [a["started_at_ms"] / 1000.0 - t_submit for a in agents]
    res["start_min"], res["start_max"] = min(starts), max(starts)
    load_start = summary["started_at_ms"] / 1000.0
    load_end = load_start + args.seconds
    res["finalize_s"] = t_done - load_end
    res["warnings"] = warnings
    res["ss_ms"] = 1000 * mb.median(s.ss_secs)
    w = window(s.samples, load_start, load_end)
    if w is None:
        res["problems"].append("fewer than 2 samples inside the live run")
        return res
    u = usage(w[0], w[1], sorted(pids | {client.pid}))
    res["window_s"] = u["dt"]
    res["box"] = u["box"]
    res["ours"] = u["ours"]
    res["target_cpu"] = u["cpu"][b.target_pid]
    res["coord_cpu"] = u["cpu"][first.pid]
    oc = [u["cpu"][x.pid] for x in others]
    res["other_cpu_med"], res["other_cpu_max"] = mb.median(oc), max(oc) if oc else float("nan")
    res["coord_out"], res["coord_in"] = u["net"][first.pid]
    outs = [u["net"][x.pid][0] for x in others]
    ins = [u["net"][x.pid][1] for x in others]
    res["other_out_med"], res["other_out_max"] = mb.median(outs), max(outs) if outs else 0
    res["other_in_med"], res["other_in_max"] = mb.median(ins), max(ins) if ins else 0
    res["client_cpu"] = u["cpu"][client.pid]
    res["client_in"] = u["net"][client.pid][1]
    res["sum_out"] = sum(u["net"][x.pid][0] for x in b.nodes) + u["net"][client.pid][0]
    res["sum_in"] = sum(u["net"][x.pid][1] for x in b.nodes) + u["net"][client.pid][1]
    res["closed"] = u["closed"]
    res["sockets"] = u["sockets"]
    res["coord_rss"] = rss[first.pid]
    res["other_rss_max"] = max((rss[x.pid] for x in others), default=0)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", default="50", help="node counts, comma-separated (e.g. 50,100)")
    ap.add_argument("--rate-per-agent", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=1, help="--workers of each node")
    ap.add_argument("--stagger", type=float, default=0.2,
                    help="seconds between node starts (after each reports its address)")
    ap.add_argument("--alive-timeout", type=float, default=300)
    ap.add_argument("--status-wait", default="3s", help="`bfgg status --wait`")
    ap.add_argument("--idle-seconds", type=float, default=30,
                    help="idle baseline window (health periods are up to 20 s at 100 nodes)")
    ap.add_argument("--sample-every", type=float, default=1.0)
    ap.add_argument("--bin", help="bfgg binary (default: target/release, then target/debug)")
    ap.add_argument("--keep", action="store_true", help="keep the temp workspaces")
    args = ap.parse_args()
    exe = mb.bfgg_bin(args.bin)
    results = []
    for n in [int(x) for x in args.nodes.split(",")]:
        res = one(exe, n, args)
        results.append(res)
        if "error" in res:
            print(f"{n} nodes: run failed (exit {res['rc']}):\n{res['error']}", file=sys.stderr)
            continue
        for p in res.get("warnings", []):
            print(f"  {n} nodes, log: {p}", file=sys.stderr)
        print(f"{n} nodes: live window {res.get('window_s', 0):.1f} s; idle mesh: box "
              f"{res['idle_box']:.0f} %, coordinator {res['idle_coord_cpu']:.1f} % CPU "
              f"{kib(res['idle_coord_net'][1])}/{kib(res['idle_coord_net'][0])} KiB/s in/out, "
              f"others median {res['idle_other_cpu']:.1f} % CPU "
              f"{kib(res['idle_other_in'])}/{kib(res['idle_other_out'])} KiB/s in/out; ss check: "
              f"sum out {kib(res.get('sum_out', 0))} vs in {kib(res.get('sum_in', 0))} KiB/s, "
              f"{res.get('sockets', 0)} sockets, {res.get('closed', 0)} closed in the window; "
              f"ss takes {res['ss_ms']:.0f} ms; client {res.get('client_cpu', 0):.1f} % CPU, "
              f"{kib(res.get('client_in', 0))} KiB/s in; target {res.get('target_cpu', 0):.1f} % CPU; RSS coordinator "
              f"{mb.mib(res.get('coord_rss', 0)):.1f} MiB, others max "
              f"{mb.mib(res.get('other_rss_max', 0)):.1f} MiB", file=sys.stderr)

    print()
    print(f"{args.rate_per_agent} req/s per agent, {args.seconds} s, workers {args.workers}; "
          "CPU in % of one core; net = mesh TCP bytes per node (ss, load to the target "
          "excluded), KiB/s in / out; "
          "box = whole machine busy (100 % = all cores), bfgg's share = CPU of the nodes, "
          "target and client over all cores (the rest is other load on the box)")
    print()
    print("| nodes | box CPU idle / live (bfgg's share) | coordinator CPU | others CPU median / max "
          "| coordinator net in / out | others net in / out (median, max) "
          "| submit → agents started | end of load → results | requests / schedule |")
    print("|---|---|---|---|---|---|---|---|---|")
    fail = False
    for r in results:
        if "error" in r or "box" not in r:
            print(f"| {r['nodes']} | run failed: {r.get('error', r.get('problems'))!r:.80} "
                  "| | | | | | | |")
            fail = True
            continue
        print(f"| {r['nodes']} | {r['idle_box']:.0f} % / {r['box']:.0f} % "
              f"({r['idle_ours']:.0f} % / {r['ours']:.0f} %) "
              f"| {r['coord_cpu']:.1f} % | {r['other_cpu_med']:.1f} / {r['other_cpu_max']:.1f} % "
              f"| {kib(r['coord_in'])} / {kib(r['coord_out'])} "
              f"| {kib(r['other_in_med'])} / {kib(r['other_out_med'])} "
              f"({kib(r['other_in_max'])} / {kib(r['other_out_max'])}) "
              f"| {r['start_min']:.1f}-{r['start_max']:.1f} s | {r['finalize_s']:.1f} s "
              f"| {r['requests']:,} / {r['schedule']:,} |")
        if r["problems"]:
            fail = True
    for r in results:
        for p in r.get("problems", []):
            print(f"{r['nodes']} nodes: {p}")
    return 1 if fail else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
