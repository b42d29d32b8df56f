#!/usr/bin/env python3
"""Benchmark usher against tini-static, dumb-init and catatonit, side by side, in one run.

Run as root (or with sudo) from anywhere (paths are taken from this file's location):

    python3 bench/run.py [--runs 300] [--term-runs 100] ...

It installs tini, dumb-init and catatonit with apt-get if they are missing, builds usher
(release, static) and its test fixtures, then measures:

  a. start+exit of /bin/true: the tool as PID 1 of a new PID namespace
     (`unshare --pid --fork --mount-proc --kill-child TOOL -- /bin/true`), and the tool as a
     plain process (`TOOL -- /bin/true`; tini as `tini-static -s`; catatonit, when not PID 1,
     makes itself a child subreaper on its own and needs no flag);
  b. SIGTERM-to-exit latency of the tool as PID 1 with a child that exits on SIGTERM;
  c. the tool's idle VmRSS as PID 1 while its child idles;
  d. binary size and whether each binary is static (no PT_INTERP program header);
  e. usher's --grace accuracy with a child that ignores SIGTERM (and whether the peers exit
     at all within a cap in the same scenario);
  f. usher's release profile at its current opt-level against opt-level=3 (size, start+exit);

and checks the current issue's limits (LIMIT_* below), each on a line ending "met"/"not met".

Each measurement runs in rounds: every round runs every tool once, in a freshly shuffled order,
so machine noise falls on all tools alike. Every wait has a deadline; nothing sleeps. The
Markdown report goes to stdout, progress to stderr. Standard library only.
"""

import argparse
import datetime
import gc
import json
import math
import os
import pwd
import random
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USHER = os.path.join(REPO, "target/release/usher")
USHER_OPT3_DIR = os.path.join(REPO, "target/bench-opt3")
USHER_OPT3 = os.path.join(USHER_OPT3_DIR, "release/usher")
PRINT_SIGNALS = os.path.join(REPO, "target/release/examples/print_signals")
TINI = "/usr/bin/tini-static"
DUMB_INIT = "/usr/bin/dumb-init"
CATATONIT = "/usr/bin/catatonit"
PEER_PACKAGES = {TINI: "tini", DUMB_INIT: "dumb-init", CATATONIT: "catatonit"}
TRUE = "/bin/true"

# The current issue's limits (issue 9). MB is 10**6 bytes; /proc's VmRSS "kB" is 1024 bytes.
LIMIT_SIZE_BYTES = 1_850_000  # release binary, "at most 1.85 MB"
LIMIT_RSS_BYTES = 2_000_000  # idle VmRSS as PID 1, "at most 2 MB"
LIMIT_START_EXIT_RATIO = 1.25  # start+exit as PID 1, median / tini-static's median
LIMIT_TERM_RATIO = 1.3  # SIGTERM-to-exit, median / tini-static's median

# Deadlines (seconds).
SETUP_TIMEOUT = 1800  # apt-get, cargo builds
RUN_TIMEOUT = 10  # one start+exit run
READY_TIMEOUT = 10  # the fixture's `ready` line
EXIT_TIMEOUT = 10  # exit after SIGTERM when the child exits on TERM
REAP_TIMEOUT = 10  # exit after SIGKILL

# Python ignores these; a spawned tool must not inherit that.
DEFAULT_SIGNALS = [signal.SIGPIPE, signal.SIGXFSZ]


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Setup


def run_setup(argv, timeout=SETUP_TIMEOUT, env=None, check=True):
    log("$ " + " ".join(argv))
    result = subprocess.run(
        argv, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise BenchError(f"command failed with status {result.returncode}: {' '.join(argv)}")
    return result


def ensure_peers():
    missing = [package for path, package in PEER_PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if run_setup(install, env=env, check=False).returncode != 0:
        run_setup(["apt-get", "update"], env=env)
        run_setup(install, env=env)
    for path in PEER_PACKAGES:
        if not os.path.exists(path):
            raise BenchError(f"{path} is still missing after apt-get install")


def repo_owner():
    """The repository's owner when it is not root: cargo then runs as that user (with their
    toolchain), so `sudo python3 bench/run.py` does not leave root-owned files in target/."""
    uid = os.stat(REPO).st_uid
    if os.geteuid() != 0 or uid == 0 or not shutil.which("sudo"):
        return None
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def find_cargo(owner):
    homes = [owner.pw_dir] if owner else []
    candidates = [os.path.join(h, ".cargo/bin/cargo") for h in homes]
    candidates += [shutil.which("cargo"), os.path.expanduser("~/.cargo/bin/cargo")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError("cargo not found (the repository owner's ~/.cargo/bin, PATH, ~/.cargo/bin)")


def cargo_command(owner, cargo, args):
    if owner:
        return ["sudo", "-u", owner.pw_name, "-H",
                "--preserve-env=CARGO_PROFILE_RELEASE_OPT_LEVEL", cargo] + args
    return [cargo] + args


def build(skip):
    if skip:
        log("--no-build: using the binaries already in target/")
    else:
        owner = repo_owner()
        cargo = find_cargo(owner)
        env = dict(os.environ)
        env.pop("CARGO_PROFILE_RELEASE_OPT_LEVEL", None)
        run_setup(cargo_command(owner, cargo, ["build", "--release", "--locked", "--examples", "--bins"]),
                  env=env)
        env["CARGO_PROFILE_RELEASE_OPT_LEVEL"] = "3"
        run_setup(cargo_command(owner, cargo, ["build", "--release", "--locked", "--bin", "usher",
                                        "--target-dir", USHER_OPT3_DIR]), env=env)
    for path in (USHER, USHER_OPT3, PRINT_SIGNALS):
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} missing: build first (or drop --no-build)")


def release_opt_level():
    with open(os.path.join(REPO, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    level = manifest.get("profile", {}).get("release", {}).get("opt-level", 3)
    return f'"{level}"' if isinstance(level, str) else str(level)


# ---------------------------------------------------------------------------------------------
# Processes: posix_spawn + pidfd, so every wait can have a deadline without polling loops.

DEVNULL = os.open(os.devnull, os.O_RDWR)  # O_CLOEXEC by default: not leaked to children
LIVE = {}  # pid -> pidfd of every process spawned and not yet reaped


def spawn(argv, stdout=None):
    actions = [
        (os.POSIX_SPAWN_DUP2, DEVNULL, 0),
        (os.POSIX_SPAWN_DUP2, DEVNULL if stdout is None else stdout, 1),
        (os.POSIX_SPAWN_DUP2, DEVNULL, 2),
    ]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                         setsigdef=DEFAULT_SIGNALS, setsigmask=[])
    pidfd = os.pidfd_open(pid)
    LIVE[pid] = pidfd
    return pid, pidfd


def remaining_ms(deadline_ns):
    return max(0, math.ceil((deadline_ns - time.perf_counter_ns()) / 1e6))


def wait_exited(pidfd, deadline_ns):
    """True once the process has exited (not yet reaped); False if the deadline passed."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while True:
        if poller.poll(remaining_ms(deadline_ns)):
            return True
        if time.perf_counter_ns() >= deadline_ns:
            return False


def reap(pid):
    """Reaps an exited process and returns its exit code (negative: killed by that signal)."""
    _, status = os.waitpid(pid, 0)
    os.close(LIVE.pop(pid))
    return os.waitstatus_to_exitcode(status)


def kill_and_reap(pid, also=()):
    for target in (*also, pid):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.perf_counter_ns() + REAP_TIMEOUT * 10**9
    if not wait_exited(LIVE[pid], deadline):
        raise BenchError(f"pid {pid} did not exit within {REAP_TIMEOUT}s of SIGKILL")
    return reap(pid)


def kill_everything_left():
    for pid in list(LIVE):
        try:
            kill_and_reap(pid)
        except (BenchError, OSError):
            pass


def read_line(fd, buffer, deadline_ns):
    """Reads from `fd` until a full line is in `buffer` (a bytearray); returns that line."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while b"\n" not in buffer:
        if not poller.poll(remaining_ms(deadline_ns)):
            if time.perf_counter_ns() >= deadline_ns:
                raise BenchError("timed out waiting for a line from the fixture")
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise BenchError(f"fixture output ended before a full line: {bytes(buffer)!r}")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def read_rest(fd, buffer, deadline_ns):
    """Reads until EOF (every writer gone) or the deadline; returns everything read."""
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while time.perf_counter_ns() < deadline_ns:
        if not poller.poll(remaining_ms(deadline_ns)):
            continue
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer).decode(errors="replace")


def proc_children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def proc_comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS in /proc/{pid}/status")


# ---------------------------------------------------------------------------------------------
# Tools


class Tool:
    def __init__(self, name, path, pid1_args, plain_args):
        self.name = name
        self.path = path
        self.pid1_args = pid1_args  # as PID 1, before the command
        self.plain_args = plain_args  # as a plain process, before the command
        self.comm = os.path.basename(path)[:15]

    def pid1(self, command, extra=()):
        return UNSHARE + [self.path, *extra, *self.pid1_args, *command]

    def plain(self, command):
        return [self.path, *self.plain_args, *command]


UNSHARE = [shutil.which("unshare") or "/usr/bin/unshare",
           "--pid", "--fork", "--mount-proc", "--kill-child"]


def make_tools(opt_level):
    # Raw logs: the child keeps usher's stdio, the job the peers do. (JSON logs, the default
    # when stdout is not a terminal, are measured by bench/logs.py.)
    # The health server runs as by default, on a port of its own: two runs at once (or another
    # usher on the machine) must not collide on :8558, whose bind error is exit 2.
    raw = ["--log-format", "raw", "--health-addr", "127.0.0.1:0", "--"]
    usher = Tool("usher", USHER, raw, raw)
    tini = Tool("tini-static", TINI, ["--"], ["-s", "--"])
    dumb = Tool("dumb-init", DUMB_INIT, ["--"], ["--"])
    # Not PID 1, catatonit sets PR_SET_CHILD_SUBREAPER by itself (catatonit.c, main), so it needs
    # no flag where tini needs -s. (Its -P is a pause mode that runs no program.)
    cata = Tool("catatonit", CATATONIT, ["--"], ["--"])
    opt3 = Tool("usher opt-level=3", USHER_OPT3, raw, raw)
    # Idle RSS only: with JSON logs (the default when stdout is not a terminal) usher also runs
    # its two log relays and the events writer, so this is the larger figure.
    json_logs = ["--log-format", "json", "--health-addr", "127.0.0.1:0", "--"]
    usher_json = Tool("usher", USHER, json_logs, json_logs)
    usher_json.json_logs = True
    usher.label = f"usher (opt-level={opt_level})"
    usher_json.label = "usher, JSON logs"
    opt3.label = "usher (opt-level=3)"
    tini.label, dumb.label, cata.label = tini.name, dumb.name, cata.name
    return usher, tini, dumb, cata, opt3, usher_json


class Started:
    """A tool running as PID 1 in a new PID namespace with print_signals as its child."""

    def __init__(self, tool, fixture_args, tool_extra=()):
        read_fd, write_fd = os.pipe()
        try:
            argv = tool.pid1([PRINT_SIGNALS, *fixture_args], tool_extra)
            self.pid, self.pidfd = spawn(argv, stdout=write_fd)
        finally:
            os.close(write_fd)
        self.out = read_fd
        self.buffer = bytearray()
        try:
            deadline = time.perf_counter_ns() + READY_TIMEOUT * 10**9
            line = read_line(self.out, self.buffer, deadline)
            while getattr(tool, "json_logs", False) and not line.startswith("ready "):
                # usher's own event records come first; the child's line is a record's message.
                message = json.loads(line).get("msg", "")
                line = message if message.startswith("ready ") else read_line(
                    self.out, self.buffer, deadline)
            if not line.startswith("ready "):
                raise BenchError(f"{tool.name}: unexpected first line {line!r}")
            children = proc_children(self.pid)
            if len(children) != 1 or proc_comm(children[0]) != tool.comm:
                raise BenchError(f"{tool.name}: unshare's children {children} are not one "
                                 f"{tool.comm!r}")
            self.tool_pid = children[0]
        except BaseException:
            self.close(kill=True)
            raise

    def close(self, kill=False):
        if kill and self.pid in LIVE:
            kill_and_reap(self.pid, also=[getattr(self, "tool_pid", self.pid)])
        if self.out is not None:
            os.close(self.out)
            self.out = None


# ---------------------------------------------------------------------------------------------
# Measurements


def rounds(rng, items, count):
    """`count` rounds, each with every item once in a shuffled order."""
    for index in range(count):
        order = list(items)
        rng.shuffle(order)
        yield index, order


def time_start_exit(argv):
    t0 = time.perf_counter_ns()
    pid, pidfd = spawn(argv)
    exited = wait_exited(pidfd, t0 + RUN_TIMEOUT * 10**9)
    t1 = time.perf_counter_ns()
    if not exited:
        kill_and_reap(pid)
        raise BenchError(f"{argv} did not exit within {RUN_TIMEOUT}s")
    code = reap(pid)
    if code != 0:
        raise BenchError(f"{argv} exited with {code}")
    return (t1 - t0) / 1e6


def sanity_check(argv):
    """One run with stderr captured: exit code and anything the tool printed."""
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, text=True)
    return result.returncode, result.stderr.strip()


def measure_start_exit(rng, tools, runs, warmup, optional):
    """Samples per (tool, mode). A case of a tool in `optional` whose sanity run fails is not
    timed: the report shows n/a and the sanity run's status and stderr. Other failures stop."""
    cases = [(tool, mode) for tool in tools for mode in ("pid1", "plain")]
    argv = {(t, m): (t.pid1([TRUE]) if m == "pid1" else t.plain([TRUE])) for t, m in cases}
    sanity = {case: sanity_check(argv[case]) for case in cases}
    for case in list(cases):
        if sanity[case][0] != 0 and case[0] in optional:
            log(f"start+exit: {case[0].name} ({case[1]}) exited {sanity[case][0]}: n/a")
            cases.remove(case)
    for _, order in rounds(rng, cases, warmup):
        for case in order:
            time_start_exit(argv[case])
    samples = {case: [] for case in cases}
    for index, order in rounds(rng, cases, runs):
        for case in order:
            samples[case].append(time_start_exit(argv[case]))
        if (index + 1) % 50 == 0:
            log(f"start+exit: {index + 1}/{runs} rounds")
    return samples, sanity, argv


def measure_term(rng, tools, runs):
    samples = {tool: [] for tool in tools}
    forwarded = {tool: 0 for tool in tools}
    for index, order in rounds(rng, tools, runs):
        for tool in order:
            started = Started(tool, ["--exit-on", "TERM"])
            try:
                t0 = time.perf_counter_ns()
                os.kill(started.tool_pid, signal.SIGTERM)
                exited = wait_exited(started.pidfd, t0 + EXIT_TIMEOUT * 10**9)
                t1 = time.perf_counter_ns()
                if not exited:
                    raise BenchError(f"{tool.name} did not exit within {EXIT_TIMEOUT}s of TERM")
                code = reap(started.pid)
                if code != 0:
                    raise BenchError(f"{tool.name}: exit code {code} after TERM (expected 0)")
                rest = read_rest(started.out, started.buffer, t1 + READY_TIMEOUT * 10**9)
                forwarded[tool] += f"signal {signal.SIGTERM.value}" in rest
                samples[tool].append((t1 - t0) / 1e6)
            finally:
                started.close(kill=True)
        if (index + 1) % 25 == 0:
            log(f"SIGTERM-to-exit: {index + 1}/{runs} rounds")
    return samples, forwarded


def measure_rss(rng, tools, runs):
    samples = {tool: [] for tool in tools}
    for _, order in rounds(rng, tools, runs):
        for tool in order:
            started = Started(tool, ["--exit-on", "TERM"])
            try:
                samples[tool].append(vm_rss_kb(started.tool_pid))
                os.kill(started.tool_pid, signal.SIGTERM)
                if not wait_exited(started.pidfd,
                                   time.perf_counter_ns() + EXIT_TIMEOUT * 10**9):
                    raise BenchError(f"{tool.name} did not exit after TERM")
                reap(started.pid)
            finally:
                started.close(kill=True)
    return samples


def measure_grace(rng, usher, peers, grace_s, usher_runs, peer_runs, peer_cap_s):
    """usher --grace with a TERM-ignoring child; the peers in the same scenario, capped."""
    results = {tool: [] for tool in (usher, *peers)}  # (exited, seconds, code, forwarded)
    for index, order in rounds(rng, [usher, *peers], max(usher_runs, peer_runs)):
        for tool in order:
            if tool is usher and index >= usher_runs or tool is not usher and index >= peer_runs:
                continue
            extra = ["--grace", f"{grace_s}s"] if tool is usher else []
            cap_s = grace_s + 5 if tool is usher else peer_cap_s
            started = Started(tool, [], tool_extra=extra)
            try:
                t0 = time.perf_counter_ns()
                os.kill(started.tool_pid, signal.SIGTERM)
                exited = wait_exited(started.pidfd, t0 + int(cap_s * 10**9))
                t1 = time.perf_counter_ns()
                if exited:
                    code = reap(started.pid)
                else:
                    kill_and_reap(started.pid, also=[started.tool_pid])
                    code = None
                rest = read_rest(started.out, started.buffer, time.perf_counter_ns() + 10**9)
                got_term = f"signal {signal.SIGTERM.value}" in rest
                results[tool].append((exited, (t1 - t0) / 1e9, code, got_term))
            finally:
                started.close(kill=True)
        log(f"grace: round {index + 1}/{max(usher_runs, peer_runs)}")
    return results


# ---------------------------------------------------------------------------------------------
# Binaries


def elf_interpreter(path):
    """The PT_INTERP path of an ELF file, or None when it has none (a static binary)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise BenchError(f"{path} is not ELF")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        base = phoff + i * phentsize
        p_type, = struct.unpack_from(endian + "I", data, base)
        if p_type == 3:  # PT_INTERP
            if is64:
                offset, = struct.unpack_from(endian + "Q", data, base + 8)
                size, = struct.unpack_from(endian + "Q", data, base + 32)
            else:
                offset, size = struct.unpack_from(endian + "I", data, base + 4)[0], \
                    struct.unpack_from(endian + "I", data, base + 16)[0]
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def file_linkage(path):
    if not shutil.which("file"):
        return "?"
    out = run_setup(["file", "-b", path], timeout=30, check=False).stdout
    match = re.search(r"(static-pie linked|statically linked|dynamically linked)", out)
    return match.group(1) if match else out.strip()[:60]


# ---------------------------------------------------------------------------------------------
# Report


def median(values):
    return statistics.median(values)


def p90(values):
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": os.uname().release,
        "cpu": cpu,
        "load": load,
    }


def first_line(argv):
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=30, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (result.stdout.strip() or result.stderr.strip()).splitlines()
    return lines[0] if lines else "?"


def git_state():
    commit = first_line(["git", "-c", "safe.directory=*", "rev-parse", "--short", "HEAD"])
    try:
        dirty = subprocess.run(["git", "-c", "safe.directory=*", "status", "--porcelain",
                                "--", "src", "Cargo.toml", "Cargo.lock", ".cargo"],
                               capture_output=True, text=True, timeout=30, cwd=REPO).stdout
    except (OSError, subprocess.TimeoutExpired):
        dirty = ""
    return commit + (" + uncommitted changes in src/ or Cargo files" if dirty.strip() else "")


def ratio(value, reference):
    return f"{value / reference:.2f}x"


BOOTSTRAP = random.Random(12345)


def ratio_ci(samples, reference, resamples=1000):
    """95 % bootstrap interval of median(samples) / median(reference)."""
    ratios = sorted(
        median(BOOTSTRAP.choices(samples, k=len(samples)))
        / median(BOOTSTRAP.choices(reference, k=len(reference)))
        for _ in range(resamples)
    )
    return f"{ratios[int(0.025 * resamples)]:.2f}-{ratios[int(0.975 * resamples) - 1]:.2f}"


def report(args, info_start, info_end, tools, sizes, start_exit, term, rss, grace, started_at,
           elapsed_s):
    usher, tini, dumb, cata, opt3 = tools
    main_tools = [usher, tini, dumb, cata]
    peers = [tini, dumb, cata]
    usher_json = next(tool for tool in rss if getattr(tool, "json_logs", False))
    se_samples, se_sanity, se_argv = start_exit
    term_samples, term_forwarded = term
    out = []
    w = out.append

    w("## Environment\n")
    w(f"- Date: {started_at} (run took {elapsed_s:.0f} s)")
    w(f"- Machine: {info_start['nproc']} CPUs, {info_start['cpu']}, kernel {info_start['kernel']}")
    w(f"- Load average (1/5/15 min): {info_start['load']} at start, {info_end['load']} at end")
    w(f"- usher: {first_line([USHER, '--version'])}, commit {git_state()}; "
      f"{first_line(['rustc', '--version']) if shutil.which('rustc') else 'rustc ?'}")
    w(f"- tini-static: {first_line([TINI, '--version'])}; dumb-init: "
      f"{first_line([DUMB_INIT, '--version'])}; catatonit: "
      f"{first_line([CATATONIT, '--version'])} (catatonit calls itself tini there, for "
      f"`docker info`)")
    w(f"- Rounds: every round runs each tool once in a shuffled order (seed {args.seed}); "
      f"all figures come from this one run.")
    w("")

    w("## a. Start + exit of /bin/true\n")
    w(f"{args.runs} runs per tool after {args.warmup} warm-up rounds; wall time from "
      "posix_spawn to the exit of the spawned command, in ms. "
      "Ratio: median / tini-static's median, with a 95 % bootstrap interval.\n")
    for mode, title in (("pid1", "As PID 1: `unshare --pid --fork --mount-proc --kill-child "
                                 "TOOL -- /bin/true`"),
                        ("plain", "Plain process: `TOOL -- /bin/true` (tini-static with `-s`; "
                                  "catatonit makes itself a subreaper unasked)")):
        w(f"{title}\n")
        w("| tool | command | median ms | p90 ms | min ms | ratio vs tini-static | 95 % CI |")
        w("|---|---|---:|---:|---:|---:|---:|")
        ref_samples = se_samples[(tini, mode)]
        ref = median(ref_samples)
        for tool in main_tools + [opt3]:
            shown = " ".join(se_argv[(tool, mode)][len(UNSHARE) if mode == "pid1" else 0:])
            shown = shown.replace(REPO + "/", "")
            s = se_samples.get((tool, mode))
            if s is None:  # its sanity run failed: listed below with status and stderr
                w(f"| {tool.label} | `{shown}` | n/a | n/a | n/a | n/a | n/a |")
                continue
            ci = "-" if tool is tini else ratio_ci(s, ref_samples)
            w(f"| {tool.label} | `{shown}` | {median(s):.3f} | {p90(s):.3f} | {min(s):.3f} | "
              f"{ratio(median(s), ref)} | {ci} |")
        w("")
    noisy = [(t.label, m, c, e) for (t, m), (c, e) in se_sanity.items() if c != 0 or e]
    if noisy:
        w("Sanity runs with output on stderr or a non-zero status (a non-zero status makes the "
          "row n/a: that command was not timed):\n")
        for label, mode, code, err in noisy:
            w(f"- {label} ({mode}): status {code}, stderr `{err[:200]}`")
    else:
        w("A sanity run of each command with stderr captured: all exited 0, nothing on stderr.")
    w("")

    w("## b. SIGTERM-to-exit latency (as PID 1)\n")
    w(f"`unshare ... TOOL -- print_signals --exit-on TERM`; after the child's `ready` line, time "
      f"from kill(TOOL, SIGTERM) to the exit of unshare, in ms; {args.term_runs} runs per tool.\n")
    w("| tool | median ms | p90 ms | min ms | ratio vs tini-static | 95 % CI | child got TERM |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    ref = median(term_samples[tini])
    for tool in main_tools:
        s = term_samples[tool]
        ci = "-" if tool is tini else ratio_ci(s, term_samples[tini])
        w(f"| {tool.label} | {median(s):.3f} | {p90(s):.3f} | {min(s):.3f} | "
          f"{ratio(median(s), ref)} | {ci} | {term_forwarded[tool]}/{len(s)} |")
    w("")

    w("## c. Idle RSS (as PID 1)\n")
    w(f"VmRSS of the tool from /proc/PID/status while print_signals idles; median of "
      f"{args.rss_runs}.\n")
    w("| tool | median VmRSS kB | min | max | ratio vs tini-static |")
    w("|---|---:|---:|---:|---:|")
    ref = median(rss[tini])
    for tool in [usher, usher_json, tini, dumb, cata]:
        s = rss[tool]
        w(f"| {tool.label} | {median(s):.0f} | {min(s)} | {max(s)} | {ratio(median(s), ref)} |")
    w("")

    w("## d. Binaries\n")
    w("Static: no PT_INTERP program header (read from the ELF file); `file` says the rest.\n")
    w("| binary | bytes | static | `file` |")
    w("|---|---:|---|---|")
    for tool in main_tools + [opt3]:
        size, interp, linkage = sizes[tool]
        path = tool.path.replace(REPO + "/", "")
        w(f"| {path} | {size} | {'yes' if interp is None else 'no (' + interp + ')'} | "
          f"{linkage} |")
    w("")

    w("## e. Grace with a child that ignores SIGTERM (as PID 1)\n")
    w(f"`print_signals` without `--exit-on` (it blocks TERM and only prints it). Time from "
      f"kill(TOOL, SIGTERM) to the exit of unshare. usher runs with `--grace {args.grace}s`; "
      f"tini-static, dumb-init and catatonit have no such deadline and are killed after a "
      f"{args.peer_cap:g} s cap.\n")
    w("| tool | runs | exited by itself | median s | min s | max s | exit status | "
      "child got TERM |")
    w("|---|---:|---:|---:|---:|---:|---|---:|")
    for tool in (usher, *peers):
        rows = grace[tool]
        done = [r for r in rows if r[0]]
        secs = [r[1] for r in done]
        codes = sorted({str(r[2]) for r in done}) or ["-"]
        stats = (f"{median(secs):.3f} | {min(secs):.3f} | {max(secs):.3f}" if secs
                 else "- | - | -")
        w(f"| {tool.label} | {len(rows)} | {len(done)}/{len(rows)} | {stats} | "
          f"{', '.join(codes)} | {sum(r[3] for r in rows)}/{len(rows)} |")
    usher_secs = [r[1] for r in grace[usher] if r[0]]
    deviation = None
    if usher_secs and len(usher_secs) == len(grace[usher]):
        deviation = (median(usher_secs) - args.grace) / args.grace * 100
        w(f"\nusher: median {median(usher_secs):.3f} s against --grace {args.grace}s: "
          f"deviation {deviation:+.1f} % (worst run "
          f"{max(abs(s - args.grace) for s in usher_secs) / args.grace * 100:.1f} %).")
    w("")

    w("## f. usher's release opt-level\n")
    w(f"The same source built twice: Cargo.toml's profile (opt-level={args.opt_level}) and "
      f"`CARGO_PROFILE_RELEASE_OPT_LEVEL=3 ... --target-dir target/bench-opt3`. Start+exit "
      f"figures are the rows of section a (same interleaved rounds).\n")
    w("| build | bytes | start+exit as PID 1, median ms | p90 ms | plain, median ms | p90 ms |")
    w("|---|---:|---:|---:|---:|---:|")
    for tool in (usher, opt3):
        a, b = se_samples[(tool, "pid1")], se_samples[(tool, "plain")]
        w(f"| {tool.label} | {sizes[tool][0]} | {median(a):.3f} | {p90(a):.3f} | "
          f"{median(b):.3f} | {p90(b):.3f} |")
    w("")

    w("## Figures to reach\n")
    w("MB is 10^6 bytes; /proc's VmRSS is in kB of 1024 bytes. Ratios are medians over "
      "tini-static's median in this run, with the 95 % bootstrap interval.\n")
    se_ratio = median(se_samples[(usher, "pid1")]) / median(se_samples[(tini, "pid1")])
    se_plain = median(se_samples[(usher, "plain")]) / median(se_samples[(tini, "plain")])
    term_ratio = median(term_samples[usher]) / median(term_samples[tini])
    pid1_usher, pid1_tini = se_samples[(usher, "pid1")], se_samples[(tini, "pid1")]
    size = sizes[usher][0]
    # The figure is the larger of the two modes: JSON logs, the default in a container.
    rss_tool = max((usher, usher_json), key=lambda tool: median(rss[tool]))
    rss_bytes = median(rss[rss_tool]) * 1024
    met = {True: "met", False: "not met"}
    w("| figure | limit | measured | |")
    w("|---|---|---|---|")
    w(f"| release binary | <= {LIMIT_SIZE_BYTES / 1e6:.2f} MB | {size:,} bytes "
      f"({size / 1e6:.3f} MB) | {met[size <= LIMIT_SIZE_BYTES]} |")
    w(f"| idle VmRSS as PID 1 (median, {rss_tool.label}) | <= {LIMIT_RSS_BYTES / 1e6:.0f} MB | "
      f"{median(rss[rss_tool]):.0f} kB ({rss_bytes / 1e6:.3f} MB) | "
      f"{met[rss_bytes <= LIMIT_RSS_BYTES]} |")
    w(f"| start+exit as PID 1 vs tini-static | <= {LIMIT_START_EXIT_RATIO:.2f}x | {se_ratio:.2f}x "
      f"(95 % CI {ratio_ci(pid1_usher, pid1_tini)}; plain process {se_plain:.2f}x) | "
      f"{met[se_ratio <= LIMIT_START_EXIT_RATIO]} |")
    w(f"| SIGTERM-to-exit vs tini-static | <= {LIMIT_TERM_RATIO:.2f}x | {term_ratio:.2f}x "
      f"(95 % CI {ratio_ci(term_samples[usher], term_samples[tini])}) | "
      f"{met[term_ratio <= LIMIT_TERM_RATIO]} |")
    if deviation is None:
        w("| TERM-ignoring child killed at --grace | ±10% | usher did not always exit | not met |")
    else:
        w(f"| TERM-ignoring child killed at --grace {args.grace}s | ±10% | {deviation:+.1f}% | "
          f"{met[abs(deviation) <= 10]} |")
    w("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=300, help="start+exit runs per tool and mode")
    parser.add_argument("--warmup", type=int, default=10, help="unrecorded start+exit rounds")
    parser.add_argument("--term-runs", type=int, default=100, help="SIGTERM-to-exit runs per tool")
    parser.add_argument("--rss-runs", type=int, default=10, help="idle RSS samples per tool")
    parser.add_argument("--grace-runs", type=int, default=10, help="usher --grace runs")
    parser.add_argument("--grace-peer-runs", type=int, default=3,
                        help="capped grace-scenario runs for each peer (tini-static, dumb-init, "
                             "catatonit)")
    parser.add_argument("--grace", type=int, default=2, help="usher --grace, seconds")
    parser.add_argument("--peer-cap", type=float, default=5.0,
                        help="seconds before a peer that has not exited is killed")
    parser.add_argument("--seed", type=int, default=1, help="seed of the round shuffles")
    parser.add_argument("--no-build", action="store_true", help="use the binaries in target/")
    args = parser.parse_args()
    if min(args.runs, args.term_runs, args.rss_runs, args.grace_runs) < 2:
        parser.error("every run count must be at least 2")
    if os.geteuid() != 0:
        parser.error("run as root (unshare --pid needs it)")

    started_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    wall0 = time.perf_counter_ns()
    info_start = machine_info()
    ensure_peers()
    build(args.no_build)
    args.opt_level = release_opt_level()
    tools = make_tools(args.opt_level)
    usher, tini, dumb, cata, opt3, usher_json = tools
    tools = tools[:5]
    main_tools, peers = [usher, tini, dumb, cata], [tini, dumb, cata]
    rng = random.Random(args.seed)

    sizes = {t: (os.stat(t.path).st_size, elf_interpreter(t.path), file_linkage(t.path))
             for t in tools}
    gc.disable()
    try:
        log(f"start+exit: {args.runs} rounds of {len(tools) * 2}")
        # Only dumb-init and catatonit may come out n/a: usher and the baseline must run.
        start_exit = measure_start_exit(rng, tools, args.runs, args.warmup, [dumb, cata])
        log(f"SIGTERM-to-exit: {args.term_runs} rounds of {len(main_tools)}")
        term = measure_term(rng, main_tools, args.term_runs)
        log(f"idle RSS: {args.rss_runs} rounds of {len(main_tools)}")
        rss = measure_rss(rng, main_tools + [usher_json], args.rss_runs)
        log("grace scenario")
        grace = measure_grace(rng, usher, peers, args.grace, args.grace_runs,
                              args.grace_peer_runs, args.peer_cap)
    finally:
        gc.enable()
        kill_everything_left()
    elapsed = (time.perf_counter_ns() - wall0) / 1e9
    print(report(args, info_start, machine_info(), tools, sizes, start_exit, term, rss, grace,
                 started_at, elapsed))


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        kill_everything_left()
        sys.exit(f"bench: {e}")
    except KeyboardInterrupt:
        kill_everything_left()
        sys.exit("bench: interrupted")
