#!/usr/bin/env python3
"""Level detection's cost: usher's JSON log throughput against a baseline usher built from
another revision (by default `main`), in the same run, interleaved, with two generators: the
`flood` example (numbered 100-byte lines naming no level) and `level_corpus --bench` (the level
corpus's lines over and over: JSON, logfmt, timestamps, brackets). `cat` is the ceiling.
Prints a Markdown report on stdout.

    python3 bench/levels.py [--baseline-rev c7758ab] [--lines 2000000] [--rounds 7]

The baseline is built from `git archive REV` in target/bench-baseline/ (its own target dir); by
default REV is c7758ab, the last commit before level detection, multi-line records and log
schemas, the "before" of BENCHMARKS.md's figure.
Every case runs once per round, in a shuffled order; figures are medians over the rounds.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USHER = os.path.join(ROOT, "target/release/usher")
FLOOD = os.path.join(ROOT, "target/release/examples/flood")
CORPUS = os.path.join(ROOT, "target/release/examples/level_corpus")
BASELINE_DIR = os.path.join(ROOT, "target/bench-baseline")


def log(message):
    print(f"[levels-bench] {message}", file=sys.stderr, flush=True)


# The last commit before level detection, multi-line records and log schemas.
BEFORE_LEVELS = "c7758ab"


def build_baseline(rev):
    """Builds usher at `rev` from a clean export of it; returns the binary's path."""
    source = os.path.join(BASELINE_DIR, "src-tree")
    subprocess.run(["rm", "-rf", source], check=True)
    os.makedirs(source)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BASELINE_DIR, "target"))
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "usher"], cwd=source,
                   env=env, check=True)
    return os.path.join(BASELINE_DIR, "target/release/usher")


def run(pipeline):
    start = time.perf_counter()
    code = subprocess.run(["sh", "-c", pipeline], stdin=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"pipeline failed ({code}): {pipeline}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--baseline-rev", default=BEFORE_LEVELS)
    parser.add_argument("--baseline", help="a baseline usher binary (no build)")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    baseline = args.baseline or build_baseline(args.baseline_rev)
    n = args.lines
    generators = {
        "flood": f"{FLOOD} {n} 100",
        "corpus": f"{CORPUS} --bench {n}",
    }
    events = os.path.join(tempfile.gettempdir(), "levels-bench-events.log")
    cases = {}
    for name, generator in generators.items():
        cases[(name, "cat (ceiling)")] = f"{generator} | cat > /dev/null"
        for who, binary in [("usher baseline", baseline), ("usher this", USHER)]:
            # The health server off, as it is beside the point; usher's own events to a file.
            cases[(name, who)] = (
                f"USHER_HEALTH_ADDR=off {binary} --log-format json -- {generator} "
                f"> /dev/null 2>> {events}")
    times = {name: [] for name in cases}
    for round_number in range(args.rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            times[name].append(run(cases[name]))
        log(f"round {round_number + 1}/{args.rounds}")

    print(f"### Level detection's cost ({n:,} lines, median of {args.rounds} rounds)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; baseline: "
          f"{'`' + args.baseline + '`' if args.baseline else 'usher at `' + args.baseline_rev + '`'}")
    print("- `flood`: examples/flood, 100-byte lines naming no level; `corpus`: "
          "examples/level_corpus --bench, tests/data/log_levels.txt's lines over and over\n")
    print("| generator | case | median s | lines/s | vs cat | this vs baseline |")
    print("|---|---|---:|---:|---:|---:|")
    for name in generators:
        ceiling = statistics.median(times[(name, "cat (ceiling)")])
        base = statistics.median(times[(name, "usher baseline")])
        for who in ["cat (ceiling)", "usher baseline", "usher this"]:
            median = statistics.median(times[(name, who)])
            ratio = f"{base / median:.2f}" if who == "usher this" else "-"
            print(f"| {name} | {who} | {median:.3f} | {n / median:,.0f} | "
                  f"{ceiling / median:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
