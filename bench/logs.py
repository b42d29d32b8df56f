#!/usr/bin/env python3
"""Log throughput of usher's JSON relay beside `cat` (the ceiling) and `jq -R -c '{msg:.}'`,
with the same generator in the same run, plus usher's peak memory under a flood and under
back-pressure. Prints a Markdown report on stdout.

    sudo python3 bench/logs.py [--lines 2000000] [--rounds 5]

Every case runs once per round, in a shuffled order; figures are medians over the rounds.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USHER = os.path.join(ROOT, "target/release/usher")
FLOOD = os.path.join(ROOT, "target/release/examples/flood")
WIDTH = 100  # bytes per generated line, newline included


def log(message):
    print(f"[logs-bench] {message}", file=sys.stderr, flush=True)


def peak_rss_kb(pid, stop):
    """Polls VmHWM (the kernel's high-water mark) of pid until stop is set; returns the last."""
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        stop.wait(0.005)
    return peak


def run_shell(pipeline, watch_usher=False, timeout=300):
    """Runs a shell pipeline; returns (seconds, usher's peak RSS in kB or None)."""
    start = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", pipeline], stdin=subprocess.DEVNULL)
    peak = None
    if watch_usher:
        # usher is the shell's child: find it, then watch its memory until it exits.
        deadline = time.monotonic() + 10
        usher_pid = None
        while usher_pid is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as children:
                    for pid in children.read().split():
                        with open(f"/proc/{pid}/comm") as comm:
                            if comm.read().strip() == "usher":
                                usher_pid = int(pid)
            except OSError:
                pass
        if usher_pid is not None:
            stop = threading.Event()
            result = {}
            watcher = threading.Thread(
                target=lambda: result.update(peak=peak_rss_kb(usher_pid, stop)))
            watcher.start()
    code = proc.wait(timeout=timeout)
    elapsed = time.perf_counter() - start
    if watch_usher and usher_pid is not None:
        stop.set()
        watcher.join()
        peak = result.get("peak")
    if code != 0:
        raise SystemExit(f"pipeline failed ({code}): {pipeline}")
    return elapsed, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if shutil.which("jq") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "jq"], check=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    n = args.lines
    flood = f"{FLOOD} {n} {WIDTH}"
    usher = f"{USHER} --log-format json --"
    # A reader that takes 64 KiB, then pauses: usher's stdout fills and it must hold back.
    slow_reader = ("python3 -c 'import sys,time\n"
                   "r=sys.stdin.buffer\n"
                   "while r.read(65536): time.sleep(0.002)'")
    cases = {
        "cat > /dev/null (ceiling)": (f"{flood} | cat > /dev/null", False),
        "usher json > /dev/null": (f"{usher} {flood} > /dev/null", True),
        "jq -R -c '{msg:.}' > /dev/null": (f"{flood} | jq -R -c '{{msg:.}}' > /dev/null", False),
        "cat | cat > /dev/null (pipe ceiling)": (f"{flood} | cat | cat > /dev/null", False),
        "usher json | cat > /dev/null": (f"{usher} {flood} | cat > /dev/null", True),
    }
    times = {name: [] for name in cases}
    peaks = {name: [] for name in cases}
    for round_number in range(args.rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            pipeline, watch = cases[name]
            # jq is ~100x slower: one run of it per round on a tenth of the lines, scaled.
            if name.startswith("jq"):
                pipeline = pipeline.replace(f"{FLOOD} {n} ", f"{FLOOD} {n // 10} ")
                elapsed, peak = run_shell(pipeline, watch)
                elapsed *= 10
            else:
                elapsed, peak = run_shell(pipeline, watch)
            times[name].append(elapsed)
            if peak:
                peaks[name].append(peak)
        log(f"round {round_number + 1}/{args.rounds}")
    # Back-pressure: usher's memory while its reader is slow (fewer lines: it takes a while).
    bp_lines = n // 4
    _, bp_peak = run_shell(f"{USHER} --log-format json -- {FLOOD} {bp_lines} {WIDTH} | {slow_reader}",
                           True, timeout=600)
    _, small_peak = run_shell(f"{USHER} --log-format json -- {FLOOD} {n // 100} {WIDTH} > /dev/null",
                              True)

    ceiling = statistics.median(times["cat > /dev/null (ceiling)"])
    jq = statistics.median(times["jq -R -c '{msg:.}' > /dev/null"])
    print(f"## Log throughput ({n:,} lines of {WIDTH} bytes, median of {args.rounds} rounds)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; generator `examples/flood` (Rust, 64 KiB writes)")
    print("- jq runs on a tenth of the lines per round, its time scaled by 10.\n")
    print("| case | median s | lines/s | MB/s | vs cat | usher vs jq | usher peak RSS kB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        median = statistics.median(times[name])
        rate = n / median
        mbps = n * WIDTH / median / 1e6
        vs_cat = ceiling / median
        vs_jq = f"{jq / median:.1f}x" if name.startswith("usher") else "-"
        peak = f"{max(peaks[name])}" if peaks[name] else "-"
        print(f"| {name} | {median:.3f} | {rate:,.0f} | {mbps:.1f} | {vs_cat:.2f} | {vs_jq} | {peak} |")
    print()
    print(f"usher's peak RSS (VmHWM): {small_peak} kB for {n // 100:,} lines, "
          f"{max(peaks['usher json > /dev/null'])} kB for {n:,} lines into /dev/null, "
          f"{bp_peak} kB for {bp_lines:,} lines into a reader that pauses after every 64 KiB "
          f"(back-pressure).")


if __name__ == "__main__":
    main()
