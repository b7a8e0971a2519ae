#!/usr/bin/env python3
"""Soak: does a node's memory stay flat through a long run? Three `bfgg node`
processes on 127.0.0.1 (n1 and n2 join n0), one `bfgg target`, one `bfgg run
--cluster --json` joined to n0 (which coordinates; all three are agents) at
--rate arrivals/s in total (open model) for --minutes.

Measured: every node's RSS (VmRSS from /proc/PID/status) every --every s from
submit until the client has the results, once more then, and for --tail s of
idle mesh after; written to --out as CSV (seconds since submit, one column
per node in MiB, the client's RSS for reference, and the phase: run,
results, idle). At the end, per node: RSS after warm-up (the first sample at
least --warmup s into the load; for runs shorter than two warm-ups, the
first sample after the load started) against the max after it up to the
results sample (the coordinator's finalize included; the max while the load
runs, the results sample and the last idle sample are shown apart, idle not
judged), CPU seconds used, and the run's summary totals against the schedule
(rate x seconds). The summary is saved next to the CSV (<out>.summary.json).

    python3 tests/bench/soak.py [--minutes 30] [--rate 1000] [--out soak.csv]
    python3 tests/bench/soak.py --minutes 1 --bin /tmp/bfgg-bench   # smoke

Exits 1 if any node's RSS grows more than --max-growth-pct after warm-up, or
the totals are off the schedule. Also `just soak`.
"""

import argparse
import csv
import json
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in tests/bench for the helper
import meshbench as mb  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=1000, help="arrivals per second, whole run")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--every", type=float, default=10, help="RSS sample period, seconds")
    ap.add_argument("--warmup", type=float, default=60, help="seconds of load before the baseline")
    ap.add_argument("--max-growth-pct", type=float, default=10.0)
    ap.add_argument("--out", default="soak.csv", help="CSV of the RSS curve")
    ap.add_argument("--tail", type=float, default=20,
                    help="seconds to keep sampling once the results are in (idle mesh)")
    ap.add_argument("--latency", default="1ms..5ms", help="`bfgg target --latency`")
    ap.add_argument("--bin", help="bfgg binary (default: target/release, then target/debug)")
    ap.add_argument("--keep", action="store_true", help="keep the temp workspace")
    args = ap.parse_args()
    exe = mb.bfgg_bin(args.bin)
    seconds = int(round(args.minutes * 60))
    expected = args.rate * seconds

    with mb.Bench(exe, "soak", keep=args.keep) as b:
        url = b.start_target(args.latency)
        first = b.start_node("n0")
        for i in range(1, args.nodes):
            b.start_node(f"n{i}", join=first.addr)
        b.wait_alive(first.addr, args.nodes)
        nodes = list(b.nodes)
        scen = b.scenario("soak", url, args.rate, seconds)
        print(f"bfgg {exe}; {args.nodes} nodes, {args.rate}/s for {seconds} s "
              f"(schedule {expected:,} requests); RSS every {args.every:.0f} s to {args.out}",
              flush=True)
        cpu0 = {n.pid: mb.cpu_seconds(n.pid) for n in nodes}
        t_submit = time.time()
        client = b.popen(b.client_cmd(scen, first.addr, b.ws / "out"),
                         stdout=mb.subprocess.PIPE, stderr=mb.subprocess.PIPE)
        # Drain the client's pipes on a thread so sampling never blocks.
        box: dict = {}

        def wait_client() -> None:
            box["out"] = client.communicate()
            box["t_done"] = time.time()

        waiter = threading.Thread(target=wait_client, daemon=True)
        waiter.start()
        rows: list[list] = []
        limit = t_submit + seconds + 600
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seconds"] + [f"{n.name}_rss_mib" for n in nodes]
                       + ["client_rss_mib", "phase"])

            def sample(phase: str) -> list:
                row = [round(time.time() - t_submit, 1)]
                row += [round(mb.mib(mb.rss_kib(n.pid)), 2) for n in nodes]
                row.append(round(mb.mib(mb.rss_kib(client.pid)), 2) if phase == "run" else None)
                row.append(phase)
                rows.append(row)
                w.writerow(row)
                f.flush()
                return row

            next_at = t_submit
            while waiter.is_alive():
                if time.time() >= next_at:
                    row = sample("run")
                    if len(rows) % max(1, int(60 / args.every)) == 1:
                        print("  " + ", ".join(
                            [f"{row[0]:.0f} s"] + [f"{n.name} {v:.1f}" for n, v in
                                                  zip(nodes, row[1:])]) + " MiB", flush=True)
                    next_at += args.every
                if time.time() > limit:
                    client.kill()
                    waiter.join()
                    break
                waiter.join(timeout=max(0.0, min(next_at - time.time(), 1.0)))
            # With the results in hand (the coordinator's finalize included) ...
            sample("results")
            cpu = {n.pid: mb.cpu_seconds(n.pid) - cpu0[n.pid] for n in nodes}
            # ... and once the mesh has been idle for --tail s (what stays held).
            t_end = time.time()
            while time.time() < t_end + args.tail:
                time.sleep(min(args.every, t_end + args.tail - time.time()))
                sample("idle")
        stdout, stderr = box.get("out", ("", ""))
        r = mb.finish_client(client.returncode, stdout, stderr, t_submit,
                             box.get("t_done", time.time()))
        warnings = mb.log_problems([n.log for n in nodes])
        for n in nodes:
            if n.proc.poll() is not None:
                print(f"{n.name} exited ({n.proc.returncode}) during the soak")

    s = r["summary"]
    if s is not None:
        with open(Path(args.out).with_suffix(".summary.json"), "w") as f:
            json.dump(s, f, indent=1)
    if s is None:
        print(f"run failed (exit {r['rc']}): {r['stderr'].strip()[-2000:]}")
        return 1
    load_start = s["started_at_ms"] / 1000.0 - t_submit
    base_t = load_start + (args.warmup if seconds >= 2 * args.warmup else 0)
    base_i = next((i for i, row in enumerate(rows) if row[0] >= base_t), None)
    fail = False
    print(f"load from {load_start:.1f} s to {load_start + seconds:.1f} s after submit; "
          f"results {r['t_done'] - t_submit - load_start - seconds:.1f} s after the end of load")
    judged = [row for row in rows if row[-1] != "idle"]
    idle = [row for row in rows if row[-1] == "idle"]
    if base_i is None or base_i >= len(judged) - 1:
        print("not enough samples after warm-up to judge growth")
        fail = True
    else:
        base = rows[base_i]
        load_end = load_start + seconds
        after = judged[base_i + 1:]
        print(f"{'node':>6} {'warm-up at s':>12} {'RSS MiB':>8} {'max after MiB':>13} "
              f"{'at s':>6} {'growth %':>8} {'max in load':>11} {'results':>8} "
              f"{'idle ' + str(int(args.tail)) + ' s':>8} {'CPU s':>7}")
        for j, n in enumerate(nodes, start=1):
            peak = max(after, key=lambda row: row[j])
            in_load = max((row[j] for row in after if row[0] <= load_end), default=float("nan"))
            growth = 100.0 * (peak[j] - base[j]) / base[j] if base[j] else float("nan")
            flag = ""
            if growth > args.max_growth_pct:
                fail = True
                flag = "  FAIL"
            print(f"{n.name:>6} {base[0]:>12.0f} {base[j]:>8.1f} {peak[j]:>13.1f} "
                  f"{peak[0]:>6.0f} {growth:>8.1f} {in_load:>11.1f} {judged[-1][j]:>8.1f} "
                  f"{idle[-1][j] if idle else float('nan'):>8.1f} {cpu[n.pid]:>7.1f}{flag}")
        cj = len(nodes) + 1
        print(f"client RSS (not judged): {base[cj] or 0:.1f} MiB at {base[0]:.0f} s, "
              f"max {max(row[cj] or 0 for row in rows):.1f} MiB")
    problems = mb.check_summary(s, expected)
    g = s.get("generator", {})
    print(f"requests {s['total']['requests']:,} / schedule {expected:,}; rc {r['rc']}; "
          f"late starts {g.get('late_starts')}, missed {g.get('missed')}, "
          f"max generator CPU {g.get('max_cpu_busy_pct', 0):.0f} %; "
          + ", ".join(f"{a['name']} {a['requests']:,} ({a['status']})" for a in s["agents"]))
    for p in problems:
        print(f"summary: {p}")
    for p in warnings:
        print(f"node log: {p}")
    if problems:
        fail = True
    print(f"RSS curve: {args.out}")
    return 1 if fail else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
