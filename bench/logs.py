#!/usr/bin/env python3
"""Log throughput of usher's JSON relay beside `cat` (the ceiling) and `jq -R -c '{msg:.}'`,
with the same generator in the same run, plus usher's peak memory under a flood and under
back-pressure. Prints a Markdown report on stdout.

    python3 bench/logs.py [--lines 2000000] [--rounds 5]
    python3 bench/logs.py --schemas usher,gcp,ecs,otel   # --log-schema side by side

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
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--schemas",
                        help="comma list of --log-schema values: compare them in one run "
                             "(text and JSON lines) instead of the cases above")
    parser.add_argument("--baseline",
                        help="with --schemas: an older usher binary run beside them (no "
                             "--log-schema), e.g. one built before the schemas")
    parser.add_argument("--instructions", action="store_true",
                        help="with --schemas: also count usher's instructions per line under "
                             "valgrind (callgrind): a figure a busy machine does not move")
    args = parser.parse_args()
    if shutil.which("jq") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "jq"], check=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    n = args.lines
    if args.schemas:
        return compare_schemas(args.schemas.split(","), n, args.rounds, args.baseline,
                               args.instructions)
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


def instructions_per_line(command, child, empty_child, lines):
    """usher's instructions (callgrind's Ir, every thread) per line of `child`: the run with
    `empty_child` (no lines) is taken off, which leaves start-up and exit out."""
    def collected(argv):
        result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
                                + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=dict(os.environ, USHER_HEALTH_ADDR="off"))
        for line in result.stderr.splitlines():
            if "Collected :" in line:
                return int(line.split(":")[-1])
        raise SystemExit(f"no callgrind total for {argv}: {result.stderr[-500:]}")
    return (collected(command + child) - collected(command + empty_child)) / lines


def compare_schemas(schemas, n, rounds, baseline=None, instructions=False):
    """usher's line rate with each --log-schema, text lines (the flood generator) and JSON lines
    (a file of pino-like objects, `level` and `msg` but no time or stream, through `cat`: each
    schema adds the keys it lacks), beside `cat`, and
    beside a `baseline` binary if given. usher's own events go to /dev/null."""
    flood = f"{FLOOD} {n} {WIDTH}"
    json_path = f"/tmp/usher-bench-json-{os.getpid()}.ndjson"
    json_lines = n // 4
    with open(json_path, "w") as out:
        pad = "x" * (WIDTH - 60)
        for i in range(json_lines):
            out.write(f'{{"level":"info","pid":7,"msg":"request {i:07} {pad}"}}\n')
    cases = {
        "text: cat > /dev/null (ceiling)": f"{flood} | cat > /dev/null",
        "json: cat | cat > /dev/null (ceiling)": f"cat {json_path} | cat > /dev/null",
    }
    runs = [(f"usher --log-schema {s}", f"{USHER} --log-format json --log-schema {s} --")
            for s in schemas]
    if baseline:
        runs.insert(0, ("baseline", f"{baseline} --log-format json --"))
    for label, usher in runs:
        cases[f"text: {label}"] = f"{usher} {flood} > /dev/null 2>/dev/null"
        cases[f"json: {label}"] = f"{usher} cat {json_path} > /dev/null 2>/dev/null"
    # Bytes per record, once each: what the schema's longer keys add to the output.
    sizes = {}
    for schema in schemas:
        usher = f"{USHER} --log-format json --log-schema {schema} --"
        for kind, child, lines in [("text", f"{FLOOD} 10000 {WIDTH}", 10000),
                                   ("json", f"head -n 10000 {json_path}", 10000)]:
            out = subprocess.run(["sh", "-c", f"{usher} {child} 2>/dev/null | wc -c"],
                                 capture_output=True,
                                 text=True, check=True).stdout
            sizes[f"{kind}: usher --log-schema {schema}"] = int(out) / lines
    counted = {}
    if instructions:
        counted_lines = 100_000
        with open(json_path + ".empty", "w"):
            pass
        for label, usher in runs:
            command = usher.split()
            counted[f"text: {label}"] = instructions_per_line(
                command, [FLOOD, str(counted_lines), str(WIDTH)], [FLOOD, "0", str(WIDTH)],
                counted_lines)
            with open(json_path) as source, open(json_path + ".some", "w") as some:
                for _, line in zip(range(counted_lines), source):
                    some.write(line)
            counted[f"json: {label}"] = instructions_per_line(
                command, ["cat", json_path + ".some"], ["cat", json_path + ".empty"],
                counted_lines)
            log(f"instructions counted: {label}")
        os.unlink(json_path + ".empty")
        os.unlink(json_path + ".some")
    times = {name: [] for name in cases}
    try:
        for round_number in range(rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                elapsed, _ = run_shell(cases[name])
                times[name].append(elapsed)
            log(f"round {round_number + 1}/{rounds}")
    finally:
        os.unlink(json_path)
    print(f"## Log throughput by --log-schema ({n:,} text lines and {json_lines:,} JSON lines of "
          f"{WIDTH} bytes, median of {rounds} rounds)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; text from `examples/flood`, JSON lines (`level`, `pid`, "
          "`msg`) from a file through `cat`; usher's own events to /dev/null\n")
    print("| case | median s | lines/s | vs cat | vs usher schema | bytes/record | "
          "instructions/line |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in cases:
        kind = name.split(":")[0]
        lines = n if kind == "text" else json_lines
        median = statistics.median(times[name])
        ceiling = statistics.median(times[next(c for c in cases if c.startswith(kind)
                                               and "ceiling" in c)])
        base = times.get(f"{kind}: usher --log-schema usher")
        vs_usher = f"{statistics.median(base) / median:.2f}" if base and "ceiling" not in name else "-"
        size = f"{sizes[name]:.0f}" if name in sizes else "-"
        count = f"{counted[name]:,.0f}" if name in counted else "-"
        print(f"| {name} | {median:.3f} | {lines / median:,.0f} | {ceiling / median:.2f} | "
              f"{vs_usher} | {size} | {count} |")


if __name__ == "__main__":
    main()
