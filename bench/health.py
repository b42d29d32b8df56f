#!/usr/bin/env python3
"""Latency and throughput of usher's /health under wrk: idle, while the child floods logs into
/dev/null (the relay busy), and while it floods a stdout nobody reads (the relay stalled).
Latency is taken with one connection asking back to back (a prober's view, no queueing behind
other clients); requests/s with --connections at once (saturation). Prints a Markdown report.

    python3 bench/health.py [--rounds 5] [--seconds 5] [--connections 10]

Every case runs once per round, in a shuffled order; figures are medians over the rounds.
tini and dumb-init have no health server: the comparison is usher with itself, idle vs busy.
"""

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USHER = os.path.join(ROOT, "target/release/usher")
DEMO = os.path.join(ROOT, "target/release/examples/demo_app")
FLOOD = os.path.join(ROOT, "target/release/examples/flood")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def log(message):
    print(f"[health-bench] {message}", file=sys.stderr, flush=True)


def start_usher(command, stdout, usher_args=()):
    """usher serving on a free loopback port; returns (process, port) once it listens."""
    proc = subprocess.Popen(
        [USHER, "--log-format", "json", "--health-addr", "127.0.0.1:0", *usher_args, "--",
         *command],
        stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        found = re.search(r"health server listening on [0-9.]+:(\d+)", line)
        if found:
            # Keep reading usher's events so that its stderr never fills.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(found.group(1))
    raise SystemExit("usher did not announce its health address")


def wrk(port, seconds, connections):
    """(p50 s, p99 s, requests/s) of GET /health."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/health"],
        check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failures:\n{out}")

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * UNITS[unit]

    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    return latency(50), latency(99), rps


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    endless = [FLOOD, str(10**12)]
    # Liveness checks running (issue 11): an HTTP check of the demo app's /healthz every 2 s
    # (usher's pace once it passes); with the flood, the demo app runs beside the flooder.
    live = ["--live-when", "http://127.0.0.1:8080/healthz"]
    demo_and_flood = ["sh", "-c", f'"{DEMO}" & exec "{FLOOD}" {10**12}']
    cases = {
        "idle (demo_app, no requests)": ([DEMO], subprocess.DEVNULL, ()),
        "idle, liveness checks running": ([DEMO], subprocess.DEVNULL, live),
        "child floods logs into /dev/null": (endless, subprocess.DEVNULL, ()),
        "child floods logs into /dev/null, liveness checks running":
            (demo_and_flood, subprocess.DEVNULL, live),
        "child floods a stdout nobody reads": (endless, subprocess.PIPE, ()),
    }
    # Each case with liveness checks is compared with the same case without them.
    baseline = {
        "idle, liveness checks running": "idle (demo_app, no requests)",
        "child floods logs into /dev/null, liveness checks running":
            "child floods logs into /dev/null",
    }
    results = {name: [] for name in cases}
    for round_number in range(args.rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            command, stdout, usher_args = cases[name]
            proc, port = start_usher(command, stdout, usher_args)
            try:
                p50, p99, _ = wrk(port, args.seconds, 1)
                _, _, rps = wrk(port, args.seconds, args.connections)
                results[name].append((p50, p99, rps))
            finally:
                if proc.stdout:
                    proc.stdout.close()  # the unread stdout: usher discards the rest
                proc.terminate()
                proc.wait(timeout=30)
        log(f"round {round_number + 1}/{args.rounds}")

    def medians(name):
        runs = results[name]
        return tuple(statistics.median(run[i] for run in runs) for i in range(3))

    idle = medians(next(iter(cases)))
    print(f"## /health under load (wrk, 1 thread, {args.seconds} s per figure, "
          f"median of {args.rounds} rounds)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; `python3 bench/health.py --rounds {args.rounds}`\n")
    print(f"| case | p50 µs (1 conn) | p99 µs (1 conn) | requests/s ({args.connections} conns) "
          "| p99 vs idle | req/s vs idle | p99 vs without liveness checks |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        p50, p99, rps = medians(name)
        versus = f"{p99 / medians(baseline[name])[1]:.2f}x" if name in baseline else "-"
        print(f"| {name} | {p50 * 1e6:.0f} | {p99 * 1e6:.0f} | {rps:,.0f} | "
              f"{p99 / idle[1]:.2f}x | {rps / idle[2]:.2f}x | {versus} |")


if __name__ == "__main__":
    main()
