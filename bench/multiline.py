#!/usr/bin/env python3
"""Multi-line records: usher's log throughput with `--log-multiline auto` beside
`off` (and beside a baseline usher, if given), with two generators beside `cat`, and the
latency from a line's write to its record for lines that cannot start a trace and for lines
that can (held). Prints a Markdown report on stdout.

    python3 bench/multiline.py [--lines 2000000] [--rounds 5] [--baseline PATH]

Throughput: every case once per round in a shuffled order, medians over the rounds; usher
writes to /dev/null. Generators: `flood` (formats every line) and
`line_flood` (a prebuilt buffer in 1 MiB writes: not the bottleneck). Latency: `stamped_lines`
writes a line stamped with its wall-clock time every PERIOD ms; this script reads usher's
records as they come and takes arrival - stamp.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USHER = os.path.join(ROOT, "target/release/usher")
EXAMPLES = os.path.join(ROOT, "target/release/examples")
WIDTH = 100  # bytes per generated line, newline included
ENV = dict(os.environ, USHER_HEALTH_ADDR="off")


def log(message):
    print(f"[multiline-bench] {message}", file=sys.stderr, flush=True)


def run_shell(pipeline, timeout=600):
    start = time.perf_counter()
    code = subprocess.run(["sh", "-c", pipeline], stdin=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=ENV,
                          timeout=timeout).returncode
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"pipeline failed ({code}): {pipeline}")
    return elapsed


def latencies(usher, multiline, kind, count, period_ms):
    """Write-to-record latency in ms of each of `count` stamped lines."""
    command = [usher, "--log-format", "json"]
    if multiline is not None:
        command += ["--log-multiline", multiline]
    command += ["--", f"{EXAMPLES}/stamped_lines", kind, str(count), str(period_ms)]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=ENV)
    found = []
    for line in proc.stdout:
        arrived = time.time_ns() // 1000
        text = line.decode()
        if '"msg":"' not in text or "written at" not in text:
            continue
        written = int(text.rsplit("written at ", 1)[1].split('"', 1)[0])
        found.append((arrived - written) / 1000)
    proc.wait()
    if len(found) != count:
        raise SystemExit(f"{len(found)} of {count} stamped lines came back")
    return found


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="a baseline usher binary to compare with (e.g. one "
                        "built from the commit before multi-line records)")
    parser.add_argument("--latency-lines", type=int, default=40)
    parser.add_argument("--period-ms", type=int, default=100)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    n = args.lines
    generators = {
        "flood": f"{EXAMPLES}/flood {n} {WIDTH}",
        "line_flood": f"{EXAMPLES}/line_flood {n} {WIDTH}",
    }
    ushers = {
        "off": f"{USHER} --log-format json --log-multiline off --",
        "auto": f"{USHER} --log-format json --log-multiline auto --",
    }
    if args.baseline:
        ushers["baseline"] = f"{args.baseline} --log-format json --"
    cases = {}
    for gen, command in generators.items():
        cases[(gen, "cat")] = f"{command} | cat > /dev/null"
        for mode, usher in ushers.items():
            cases[(gen, mode)] = f"{usher} {command} > /dev/null"
    # Traces among the lines: every 1000th line of each stream followed by a trace's block.
    trace_lines = n // 4
    for mode in ("off", "auto"):
        cases[("traces", mode)] = (f"{ushers[mode]} {EXAMPLES}/traces flood {trace_lines} "
                                   f"> /dev/null 2>&1")
    times = {case: [] for case in cases}
    for round_number in range(args.rounds):
        order = list(cases)
        random.shuffle(order)
        for case in order:
            times[case].append(run_shell(cases[case]))
        log(f"round {round_number + 1}/{args.rounds}")
    latency = {}
    for kind in ("plain", "held"):
        for mode in ("off", "auto"):
            latency[(kind, mode)] = latencies(USHER, mode, kind, args.latency_lines,
                                              args.period_ms)
        log(f"latency {kind} done")

    median = {case: statistics.median(values) for case, values in times.items()}
    best = {case: min(values) for case, values in times.items()}
    print(f"### Throughput ({n:,} lines of {WIDTH} bytes, {args.rounds} rounds)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; usher writes to /dev/null")
    if args.baseline:
        print(f"- `baseline`: `{args.baseline}`")
    print("- Ratios as median / best: on a shared machine the best of the rounds is the steadier "
          "figure\n")
    print("| generator | sink | median s | best s | lines/s (median) | vs cat | auto vs off "
          "| auto vs baseline |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for gen in generators:
        cat = median[(gen, "cat")]
        for sink in ["cat"] + list(ushers):
            seconds = median[(gen, sink)]
            name = "`cat`" if sink == "cat" else f"usher `{sink}`"

            def ratio(other):
                if sink != "auto" or (gen, other) not in median:
                    return "-"
                return (f"{median[(gen, other)] / seconds:.2f} / "
                        f"{best[(gen, other)] / best[(gen, sink)]:.2f}")

            print(f"| `{gen}` | {name} | {seconds:.3f} | {best[(gen, sink)]:.3f} | "
                  f"{n / seconds:,.0f} | {cat / seconds:.2f} | {ratio('off')} | {ratio('baseline')} |")
    off, auto = median[("traces", "off")], median[("traces", "auto")]
    print(f"\nWith traces (`traces flood {trace_lines}`: {trace_lines:,} plain lines on each "
          f"stream, a trace's block after every 1000th): median `off` {off:.3f} s, `auto` "
          f"{auto:.3f} s, auto vs off {off / auto:.2f} (best: "
          f"{best[('traces', 'off')] / best[('traces', 'auto')]:.2f}).\n")
    print(f"### Latency from write to record ({args.latency_lines} lines, one every "
          f"{args.period_ms} ms)\n")
    print("| line | `--log-multiline` | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    for (kind, mode), values in latency.items():
        name = "plain (cannot start a trace)" if kind == "plain" else "`Error: ...` (may start one)"
        print(f"| {name} | `{mode}` | {statistics.median(values):.3f} | "
              f"{percentile(values, 90):.3f} | {percentile(values, 99):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
