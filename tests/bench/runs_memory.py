#!/usr/bin/env python3
"""Memory of a long-lived node across many runs: one `bfgg node` on 127.0.0.1
(with --nodes 2 a second node joins it and both are agents) serves --runs
short cluster runs in a row, each a 1 s open-model run at a low rate against
`bfgg target`, submitted one after another by `bfgg run --cluster --json`
joined to the first node (which therefore coordinates every run, and with
--nodes 1 is also the only agent).

Measured: the coordinating node's RSS (VmRSS from /proc/PID/status) before
the first run, after run 10, every --every runs and after the last one, with
its threads, open file descriptors and data directory size (what a node
keeps per run); with --nodes 2 the other node's RSS too. Each run's summary
is checked against its schedule (total.requests == rate x seconds, no lost
agent, no missed arrival). A run refused because the node still reports
itself busy (its own health is refreshed once a second) is resubmitted and
counted as a retry.

    python3 tests/bench/runs_memory.py [--runs 500] [--nodes 1] [--rate 20]
    python3 tests/bench/runs_memory.py --runs 12 --bin /tmp/bfgg-bench   # smoke

Ends with `rss after 10 runs: X MiB, after N: Y MiB, growth Z %`; exits 1 if
the growth exceeds --max-growth-pct or a run's totals are off its schedule.
About 3 s per run (the client joins the mesh afresh each time). Also
`just bench-runs-memory`.
"""

import argparse
import shutil
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in tests/bench for the helper
import meshbench as mb  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--every", type=int, default=10, help="sample RSS every N runs")
    ap.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                    help="1: the coordinator is the only agent; 2: a second node joins (both agents)")
    ap.add_argument("--rate", type=int, default=20, help="arrivals per second (whole run)")
    ap.add_argument("--seconds", type=int, default=1, help="load duration of each run")
    ap.add_argument("--max-growth-pct", type=float, default=10.0)
    ap.add_argument("--bin", help="bfgg binary (default: target/release, then target/debug)")
    ap.add_argument("--keep", action="store_true", help="keep the temp workspace")
    args = ap.parse_args()
    exe = mb.bfgg_bin(args.bin)
    expected = args.rate * args.seconds
    base_at = min(10, args.runs)

    with mb.Bench(exe, "runs-memory", keep=args.keep) as b:
        url = b.start_target("1ms")
        coord = b.start_node("n0")
        other = b.start_node("n1", join=coord.addr) if args.nodes == 2 else None
        b.wait_alive(coord.addr, args.nodes)
        scen = b.scenario("runs-memory", url, args.rate, args.seconds)
        print(f"bfgg {exe}; {args.nodes} node(s), {args.runs} runs of {args.seconds} s at "
              f"{args.rate}/s (schedule {expected} requests each); coordinator pid {coord.pid}",
              flush=True)

        cols = f"{'run':>5} {'elapsed s':>9} {'coord RSS MiB':>13}"
        if other:
            cols += f" {'n1 RSS MiB':>10}"
        cols += f" {'threads':>7} {'fds':>5} {'data dir KiB':>12} {'files':>6} {'retries':>7} {'bad':>4}"
        print(cols, flush=True)

        t0 = time.time()
        rss: dict[int, int] = {}
        bad: list[tuple[int, list[str]]] = []
        retries = 0
        run_secs: list[float] = []

        def sample(run: int) -> None:
            k = mb.rss_kib(coord.pid)
            rss[run] = k
            st = mb.proc_status(coord.pid)
            size, files = mb.dir_size(coord.data_dir)
            row = f"{run:>5} {time.time() - t0:>9.0f} {mb.mib(k):>13.1f}"
            if other:
                row += f" {mb.mib(mb.rss_kib(other.pid)):>10.1f}"
            row += (f" {st.get('Threads', '?'):>7} {mb.fd_count(coord.pid):>5}"
                    f" {size / 1024:>12.0f} {files:>6} {retries:>7} {len(bad):>4}")
            print(row, flush=True)

        sample(0)
        for run in range(1, args.runs + 1):
            out = b.ws / "out"
            for attempt in range(40):
                r = b.run_client(scen, coord.addr, out, timeout=120 + 3 * args.seconds)
                if r["rc"] == 2 and ("idle" in r["stderr"] or "busy" in r["stderr"]):
                    retries += 1
                    time.sleep(0.5)
                    continue
                break
            run_secs.append(r["t_done"] - r["t_submit"])
            problems = mb.check_summary(r["summary"], expected)
            if r["rc"] != 0:
                problems.insert(0, f"exit {r['rc']}: {r['stderr'].strip()[-300:]}")
            if problems:
                bad.append((run, problems))
                print(f"  run {run}: {'; '.join(problems)}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            if coord.proc.poll() is not None:
                print(f"coordinator exited ({coord.proc.returncode}) after run {run}")
                return 1
            if run == base_at or run == args.runs or run % args.every == 0:
                sample(run)

        warnings = mb.log_problems([n.log for n in b.nodes])

    first, last = rss[base_at], rss[args.runs]
    growth = 100.0 * (last - first) / first
    print(f"client wall time per run: median {mb.median(run_secs):.2f} s, "
          f"max {max(run_secs):.2f} s; resubmitted (node still busy): {retries}")
    if warnings:
        print("node log warnings/errors:")
        for p in warnings:
            print("  " + p)
    if bad:
        print(f"{len(bad)} of {args.runs} runs off their schedule or incomplete:")
        for run, why in bad[:20]:
            print(f"  run {run}: {'; '.join(why)}")
    print(f"rss after {base_at} runs: {mb.mib(first):.1f} MiB, after {args.runs}: "
          f"{mb.mib(last):.1f} MiB, growth {growth:.1f} %")
    fail = growth > args.max_growth_pct or bool(bad)
    if growth > args.max_growth_pct:
        print(f"FAIL: RSS grew more than {args.max_growth_pct} %")
    return 1 if fail else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
