#!/usr/bin/env python3
"""Signals right after exec: how often each init loses a SIGTERM sent to it as PID 1 at a set
delay after its exec, usher beside tini-static, dumb-init and catatonit in one run, above the
floor of a minimal C init.

Run as root from anywhere (paths are taken from this file's location):

    python3 bench/early_signals.py [--tries 10] [--delays 0,100,200,...] [--also NAME=PATH]

It installs the peers with apt-get if they are missing (as bench/run.py does), builds usher
(`cargo build --release --locked --bin usher`) and compiles the C harness bench/early_signals.c
with `cc -O2 -static` into target/bench/. The harness runs each try: clone(2) into new PID and
mount namespaces, exec the tool as PID 1 with `early_signals --sleeper` as its child, see the
exec happen through a close-on-exec pipe, spin until the delay has passed, send SIGTERM, and
wait up to --deadline-ms for the tool to exit. A try is *lost* when the tool is still running
then (the kernel dropped the TERM: as PID 1, a signal at its default disposition that is not
blocked is discarded when sent), *forwarded* when the tool exits 143 (its child died of the
TERM). The row "floor" is the harness's own minimal init, which blocks every signal in a C
constructor: what is lost there is lost to the exec and the C library's start-up, before any
init can act.

Tries run in rounds: each round runs every tool once, in a freshly shuffled order, over every
delay, in a freshly shuffled order, so machine noise falls on all tools alike. `--also
NAME=PATH` adds another binary that takes `-- COMMAND` (e.g. an older usher build). The
Markdown report goes to stdout, progress to stderr. Standard library only.
"""

import argparse
import datetime
import os
import random
import subprocess
import sys
import time

import run  # bench/run.py: peers, cargo, machine description

HARNESS_SOURCE = os.path.join(run.REPO, "bench/early_signals.c")
HARNESS = os.path.join(run.REPO, "target/bench/early_signals")
DEFAULT_DELAYS = "0,100,200,250,300,350,400,450,500,600,800,1000"
# The figure (issue 10): signals lost in the first 200 us after exec, no more than
# tini-static in the same run.
FIGURE_WINDOW_US = 200
# The harness as the least an init can do (see early_signals.c): the floor under every tool.
FLOOR = "floor (C, static)"


def build(skip):
    if skip:
        run.log("--no-build: using the usher already in target/release")
    else:
        owner = run.repo_owner()
        cargo = run.find_cargo(owner)
        run.run_setup(run.cargo_command(owner, cargo, ["build", "--release", "--locked", "--bin",
                                                       "usher"]))
    if not os.access(run.USHER, os.X_OK):
        raise run.BenchError(f"{run.USHER} missing: build first (or drop --no-build)")
    os.makedirs(os.path.dirname(HARNESS), exist_ok=True)
    # Static, as tini-static: the floor init (the harness itself) starts as fast as it can.
    run.run_setup(["cc", "-O2", "-static", "-Wall", "-Wextra", "-o", HARNESS, HARNESS_SOURCE])


def one_round(tool, delays, deadline_ms):
    """One try per delay, in the given order: [(delay_us, outcome, sent_us, exit_us, status)]."""
    argv = [HARNESS, "--deadline-ms", str(deadline_ms), "--delays", ",".join(map(str, delays)),
            "--", *tool, HARNESS, "--sleeper"]
    # usher's health server off (its default port may be taken on a shared machine), raw logs;
    # the peers ignore both variables.
    env = dict(os.environ, USHER_HEALTH_ADDR="off", USHER_LOG_FORMAT="raw")
    timeout = len(delays) * (deadline_ms / 1000 + run.REAP_TIMEOUT) + run.RUN_TIMEOUT
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise run.BenchError(f"harness failed ({result.returncode}): {result.stderr.strip()}")
    tries = []
    for line in result.stdout.splitlines():
        delay, outcome, sent, exit_us, status = line.split()
        tries.append((int(delay), outcome, float(sent), float(exit_us), int(status)))
    if len(tries) != len(delays):
        raise run.BenchError(f"harness gave {len(tries)} results for {len(delays)} delays")
    return tries


def report(args, tools, delays, results, info_start, info_end, started_at, elapsed_s):
    out = []
    w = out.append
    w("## Signals right after exec (as PID 1)\n")
    w(f"- Date: {started_at} (run took {elapsed_s:.0f} s)")
    w(f"- Kernel {info_start['kernel']}, {info_start['nproc']} CPUs ({info_start['cpu']}); "
      f"load average at start {info_start['load']}, at end {info_end['load']}")
    w(f"- usher: {run.git_state()}, {run.first_line([run.USHER, '--version'])}")
    w(f"- {args.tries} tries per tool and delay, in rounds; a try is lost when the tool has not "
      f"exited {args.deadline_ms} ms after the SIGTERM\n")
    w("SIGTERMs lost, of " + str(args.tries) + ", by delay after the exec (us):\n")
    w("| tool | " + " | ".join(str(d) for d in delays) + f" | lost in 0-{FIGURE_WINDOW_US} us "
      "| lost, all delays |")
    w("|---|" + "---:|" * len(delays) + "---:|---:|")
    for name, _ in tools:
        lost = {d: sum(1 for t in results[name][d] if t[1] == "lost") for d in delays}
        window = [d for d in delays if d <= FIGURE_WINDOW_US]
        in_window = sum(lost[d] for d in window)
        w(f"| {name} | " + " | ".join(str(lost[d]) for d in delays)
          + f" | {in_window} of {len(window) * args.tries}"
          + f" | {sum(lost.values())} of {len(delays) * args.tries} |")
    others = [(name, t) for name, _ in tools for d in delays for t in results[name][d]
              if t[1] == "other"]
    if others:
        w("\nTries that ended neither forwarded nor lost (tool, delay, exit status):")
        for name, t in others:
            w(f"- {name}, {t[0]} us: {t[4]}")
    overshoot = max(t[2] - t[0] for name, _ in tools for d in delays for t in results[name][d])
    exits = sorted(t[3] for name, _ in tools for d in delays for t in results[name][d]
                   if t[1] == "forwarded")
    w(f"\nThe TERM left at most {overshoot:.0f} us later than its delay; a forwarded TERM ended "
      f"its tool within {exits[-1] / 1000:.1f} ms (median {run.median(exits) / 1000:.2f} ms)"
      if exits else "")
    usher_lost = sum(1 for d in delays if d <= FIGURE_WINDOW_US
                     for t in results["usher"][d] if t[1] == "lost")
    tini_lost = sum(1 for d in delays if d <= FIGURE_WINDOW_US
                    for t in results["tini-static"][d] if t[1] == "lost")
    verdict = "met" if usher_lost <= tini_lost else "not met"
    w(f"\nFigure: signals lost in the first {FIGURE_WINDOW_US} us after exec, no more than "
      f"tini-static: usher {usher_lost}, tini-static {tini_lost}: {verdict}")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--tries", type=int, default=10, help="tries per tool and delay")
    parser.add_argument("--delays", default=DEFAULT_DELAYS,
                        help="comma-separated delays after the exec, in microseconds")
    parser.add_argument("--deadline-ms", type=int, default=500,
                        help="a TERM is lost if the tool has not exited this long after it")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another init to measure, run as `PATH -- COMMAND`")
    parser.add_argument("--seed", type=int, default=1, help="seed of the round shuffles")
    parser.add_argument("--no-build", action="store_true", help="use the usher in target/release")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (clone with CLONE_NEWPID needs it)")
    if args.tries < 1 or args.deadline_ms < 1:
        parser.error("--tries and --deadline-ms must be positive")
    try:
        delays = sorted({int(d) for d in args.delays.split(",")})
    except ValueError:
        parser.error(f"--delays: not a list of whole microseconds: {args.delays}")
    if not delays or delays[0] < 0:
        parser.error("--delays: at least one delay, none negative")
    tools = [("usher", [run.USHER, "--"]), ("tini-static", [run.TINI, "--"]),
             ("dumb-init", [run.DUMB_INIT, "--"]), ("catatonit", [run.CATATONIT, "--"]),
             (FLOOR, [HARNESS, "--floor-init"])]
    for extra in args.also:
        name, _, path = extra.partition("=")
        if not name or not os.access(path, os.X_OK):
            parser.error(f"--also {extra}: expected NAME=PATH of an executable")
        tools.append((name, [path, "--"]))

    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    wall0 = time.perf_counter_ns()
    info_start = run.machine_info()
    run.ensure_peers()
    build(args.no_build)
    rng = random.Random(args.seed)
    results = {name: {d: [] for d in delays} for name, _ in tools}
    for round_number in range(args.tries):
        run.log(f"round {round_number + 1} of {args.tries}")
        for name, tool in rng.sample(tools, len(tools)):
            for t in one_round(tool, rng.sample(delays, len(delays)), args.deadline_ms):
                results[name][t[0]].append(t)
    elapsed = (time.perf_counter_ns() - wall0) / 1e9
    print(report(args, tools, delays, results, info_start, run.machine_info(), started_at,
                 elapsed))


if __name__ == "__main__":
    try:
        main()
    except run.BenchError as e:
        sys.exit(f"bench: {e}")
