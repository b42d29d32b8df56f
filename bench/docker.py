#!/usr/bin/env python3
"""`docker stop` of the demo app under usher, tini-static, dumb-init and catatonit, in FROM scratch
images built in the same run. Prints a Markdown report on stdout.

    python3 bench/docker.py [--runs 10] [--requests 20]

Each run starts a container (read-only, no capabilities, non-root), sends the app
--requests HTTP requests, then times `docker stop` until it returns, and checks the exit status
and that no log line was lost: every request's record and the app's goodbye are in
`docker logs`. Runs interleave the four images in a shuffled order; figures are medians.
A dynamically linked init (dumb-init; catatonit too if a build of it is) gets the libraries
`ldd` names, loader included, copied into its image; the report says what each image holds.
"""

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target/release")
USER = "10001:10001"
PEER_PACKAGES = {"/usr/bin/tini-static": "tini", "/usr/bin/dumb-init": "dumb-init",
                 "/usr/bin/catatonit": "catatonit"}


def log(message):
    print(f"[docker-bench] {message}", file=sys.stderr, flush=True)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


# On this run's images, intermediate ones included (a label right after FROM is inherited by
# every step's image): what a failed build left is found by it.
LABEL = f"usher-bench={os.getpid()}"


def build(tag, files, entrypoint):
    """A FROM scratch image holding files ({path in image: path on host}). --no-cache: with the
    legacy builder (no BuildKit) each step's image is the next one's parent and the cache shares
    them between builds, so removing one run's image (which prunes its untagged parents) could
    pull a parent from under another run's build; a chain of its own cannot."""
    with tempfile.TemporaryDirectory() as context:
        lines = ["FROM scratch", f"LABEL {LABEL}"]
        for n, (inside, outside) in enumerate(files.items()):
            shutil.copy(outside, os.path.join(context, f"f{n}"))
            lines.append(f"COPY f{n} {inside}")
        lines += [f"USER {USER}", f"ENTRYPOINT {entrypoint}", 'CMD ["/app"]']
        with open(os.path.join(context, "Dockerfile"), "w") as dockerfile:
            dockerfile.write("\n".join(lines) + "\n")
        docker("build", "-q", "--no-cache", "--force-rm", "-t", tag, context)


def libraries(binary):
    """{path: path} of the shared libraries and loader `ldd` lists for `binary`; {} when it is
    static (ldd then says "not a dynamic executable" and exits 1)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if "not a dynamic executable" in out.stdout + out.stderr:
        return {}
    if out.returncode != 0:
        raise SystemExit(f"ldd {binary} failed: {out.stderr.strip()}")
    # "libc.so.6 => /lib/.../libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
    # linux-vdso has no file.
    paths = re.findall(r"(?:=>\s*|^\s*)(/\S+)\s+\(0x", out.stdout, re.MULTILINE)
    return {path: path for path in paths}


def request(ip, path="/"):
    with socket.create_connection((ip, 8080), timeout=2) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b" ", 2)[1].decode()


def one_run(tag, requests):
    name = f"{tag}-{random.randrange(1 << 30)}"
    docker("run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges", tag)
    try:
        ip = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
        deadline = time.monotonic() + 10
        while True:  # the app listens shortly after start; a bench may poll
            try:
                request(ip, "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{tag}: the app never answered")
                time.sleep(0.01)
        for _ in range(requests):
            assert request(ip) == "200"
        start = time.perf_counter()
        docker("stop", name)
        took = time.perf_counter() - start
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip())
        logs = docker("logs", name)
        text = logs.stdout + logs.stderr
        served = text.count('"path":"/"')
        complete = served == requests and "bye" in text
        return took, code, complete
    finally:
        docker("rm", "-f", name, check=False)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    missing = [pkg for path, pkg in PEER_PACKAGES.items() if not os.path.exists(path)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "usher",
                        "--example", "demo_app"], cwd=ROOT, check=True)
    app = os.path.join(RELEASE, "examples/demo_app")
    pid = os.getpid()
    images = {
        "usher": (f"usher-bench-usher-{pid}",
                  {"/usher": os.path.join(RELEASE, "usher"), "/app": app},
                  '["/usher", "--log-format", "json", "--"]'),
        "tini-static": (f"usher-bench-tini-{pid}",
                        {"/tini": "/usr/bin/tini-static", "/app": app}, '["/tini", "--"]'),
        "dumb-init": (f"usher-bench-dumb-init-{pid}",
                      {"/dumb-init": "/usr/bin/dumb-init", "/app": app,
                       **libraries("/usr/bin/dumb-init")},
                      '["/dumb-init", "--"]'),
        "catatonit": (f"usher-bench-catatonit-{pid}",
                      {"/catatonit": "/usr/bin/catatonit", "/app": app,
                       **libraries("/usr/bin/catatonit")},
                      '["/catatonit", "--"]'),
    }
    try:
        for tag, files, entrypoint in images.values():
            build(tag, files, entrypoint)
        results = {tool: [] for tool in images}
        for run in range(args.runs):
            order = list(images)
            random.shuffle(order)
            for tool in order:
                results[tool].append(one_run(images[tool][0], args.requests))
            log(f"run {run + 1}/{args.runs}")
    finally:
        for tag, _, _ in images.values():
            docker("rmi", "-f", tag, check=False)
        # Leaves first, each taking its untagged parents along: a few passes clear a chain.
        for _ in range(5):
            left = docker("images", "-aq", "--no-trunc", "--filter", f"label={LABEL}").stdout.split()
            if not left:
                break
            docker("rmi", "-f", *left, check=False)

    base = statistics.median(r[0] for r in results["tini-static"])
    print(f"## docker stop ({args.runs} runs per tool, {args.requests} requests before each "
          f"stop, medians)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs; Docker {docker('version', '-f', '{{.Server.Version}}').stdout.strip()}; "
          f"`python3 bench/docker.py --runs {args.runs}`\n")
    for tool, (_, files, entrypoint) in images.items():
        print(f"- {tool} image: {', '.join(files)}; entrypoint `{entrypoint}`")
    print()
    print("| tool | median s | max s | vs tini-static | exit 0 | no line lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool, runs in results.items():
        times = [r[0] for r in runs]
        median = statistics.median(times)
        print(f"| {tool} | {median:.3f} | {max(times):.3f} | {median / base:.2f}x | "
              f"{sum(r[1] == 0 for r in runs)}/{len(runs)} | "
              f"{sum(r[2] for r in runs)}/{len(runs)} |")


if __name__ == "__main__":
    main()
