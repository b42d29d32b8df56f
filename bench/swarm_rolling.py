#!/usr/bin/env python3
"""A rolling update on Docker Swarm under continuous load, with usher and with tini-static as
the image's entrypoint. Prints a Markdown report on stdout, progress on stderr.

    python3 bench/swarm_rolling.py [--rounds 3] [--dns-cache 0,3]

Both services are deployed from examples/swarm/stack.yaml (3 replicas, start-first, one task
at a time, health-gated): the usher image is examples/docker/Dockerfile.scratch (usher as PID 1,
`USHER_DRAIN=2s`); the tini image has `/tini` (Debian's tini-static) as its entrypoint and the
same demo app, and usher only as the health-check client, asking the app's /healthz directly
(the stack file's health-check target replaced). Everything else is the same stack file.

Each update rolls one service between v1 and v2 while a load client (examples/load_client.rs)
in a container on the stack's network sends requests without pause, each on a new connection,
and counts failures. Then, from the old tasks' `docker logs --timestamps`, it takes when each
got SIGTERM (usher's `stop_requested` event; the app's own `received SIGTERM` under tini) and
the last request each served: the difference says how long before (negative) or after its
SIGTERM requests stopped reaching it. Updates interleave the two tools in a shuffled order.

The client reaches the service through its virtual IP when the kernel has IPVS, or (here: a
kernel without IPVS) through `endpoint_mode: dnsrr`, looking the name up in Docker's DNS before
every request (`--dns-cache 0`) or keeping each answer for a few seconds as clients with a DNS
cache do (`--dns-cache 3`). The swarm is made on loopback if none is active and left at the
end; every service, network, secret, container and image made is removed.
"""

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target/release")
STACK_FILE = os.path.join(ROOT, "examples/swarm/stack.yaml")
TINI = "/usr/bin/tini-static"
DEADLINE = 180


def log(message):
    print(f"[swarm-bench] {message}", file=sys.stderr, flush=True)


def docker(*args, check=True, **kwargs):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, **kwargs)
    if check and out.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)}: {out.stderr.strip()}")
    return out


def poll(what, probe, deadline=DEADLINE):
    started = time.monotonic()
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() - started > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def kernel_has_ipvs():
    if os.path.exists("/proc/net/ip_vs") or os.path.exists("/sys/module/ip_vs"):
        return True
    try:
        return subprocess.run(["modprobe", "-n", "-q", "ip_vs"]).returncode == 0
    except FileNotFoundError:
        return False


def epoch(stamp):
    """Seconds since the epoch of an RFC 3339 UTC time with up to nanoseconds."""
    day, _, rest = stamp.rstrip("Z").partition("T")
    clock, _, fraction = rest.partition(".")
    whole = datetime.datetime.fromisoformat(f"{day}T{clock}+00:00").timestamp()
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


class Bench:
    def __init__(self, args):
        self.args = args
        self.run = f"{os.getpid()}x{random.randrange(1 << 16):x}"
        self.label = f"usher-swarm={self.run}"
        self.prefix = f"usher-swarm-bench-{self.run}"
        self.images, self.containers, self.stacks = [], [], []
        self.secret = f"{self.prefix}-demo-token"
        self.swarm_created = self.gwbridge_created = self.secret_created = False
        self.context = tempfile.mkdtemp(prefix="usher-swarm-bench-")

    # Set-up

    def build(self, name, body):
        path = os.path.join(self.context, f"Dockerfile.{name}")
        with open(path, "w") as dockerfile:
            # The run's label first: these layers are this run's own, so removing them never
            # prunes a parent another build is using.
            dockerfile.write(f"FROM scratch\nLABEL {self.label}\n{body}")
        tag = f"{self.prefix}:{name}"
        self.images.append(tag)
        docker("build", "-q", "-t", tag, "-f", path, self.context)
        return tag

    def build_images(self):
        for name, source in [("usher", os.path.join(RELEASE, "usher")),
                             ("demo_app", os.path.join(RELEASE, "examples/demo_app")),
                             ("load_client", os.path.join(RELEASE, "examples/load_client")),
                             ("tini", TINI)]:
            shutil.copy(source, os.path.join(self.context, name))
        with open(os.path.join(ROOT, "examples/docker/Dockerfile.scratch")) as scratch:
            usher_body = "".join(line for line in scratch if not line.startswith("FROM "))
        tini_body = ("COPY tini /tini\nCOPY demo_app /app\nCOPY usher /usher\n"
                     "USER 10001:10001\nEXPOSE 8080\nSTOPSIGNAL SIGTERM\n"
                     'ENTRYPOINT ["/tini", "--"]\nCMD ["/app"]\n')
        self.tags = {}
        for tool, body in [("usher", usher_body), ("tini", tini_body)]:
            for version in ["v1", "v2"]:
                self.tags[tool, version] = self.build(
                    f"{tool}-{version}", f"{body}\nENV DEMO_VERSION={version}\n")
        self.load_image = self.build(
            "load", 'COPY load_client /load_client\nUSER 10001:10001\n'
                    'ENTRYPOINT ["/load_client"]\n')

    def join_swarm(self):
        state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
        if state == "inactive":
            self.gwbridge_created = docker("network", "inspect", "docker_gwbridge",
                                           check=False).returncode != 0
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            self.swarm_created = True
        elif state != "active":
            raise SystemExit(f"the engine's swarm is {state!r}")

    def deploy(self, tool, endpoint_mode):
        stack = f"{self.prefix}-{tool}"
        self.stacks.append(stack)
        stack_file = STACK_FILE
        if tool == "tini":
            # No usher in the entrypoint: the health check asks the app itself. (A second
            # compose file cannot replace the test: `docker stack deploy` appends the lists.)
            with open(STACK_FILE) as f:
                text = f.read()
            ready = '"http://127.0.0.1:8558/ready"]'
            if text.count(ready) != 1:
                raise SystemExit(f"{STACK_FILE}: the health check's target {ready} not found")
            stack_file = os.path.join(self.context, "stack-tini.yaml")
            with open(stack_file, "w") as f:
                f.write(text.replace(ready, '"http://127.0.0.1:8080/healthz"]'))
        env = dict(os.environ, DEMO_IMAGE=self.tags[tool, "v1"], DEMO_TOKEN_SECRET=self.secret,
                   USHER_SWARM_RUN=self.run, ENDPOINT_MODE=endpoint_mode)
        docker("stack", "deploy", "--resolve-image", "never", "-c", stack_file, stack, env=env)
        return stack

    # Measuring

    def healthy(self, service):
        out = docker("ps", "--filter", f"label=com.docker.swarm.service.name={service}",
                     "--filter", "health=healthy", "--format", "{{.ID}} {{.Image}}").stdout
        return [line.split(" ", 1) for line in out.splitlines()]

    def wait_healthy(self, service, image):
        def probe():
            tasks = self.healthy(service)
            ok = len(tasks) == 3 and all(i == image for _, i in tasks)
            return [c for c, _ in tasks] if ok else None
        return poll(f"3 healthy tasks of {image}", probe)

    def target(self, stack, endpoint_mode):
        service = f"{stack}_app"
        if endpoint_mode == "dnsrr":
            return f"{service}:8080"
        network = docker("network", "inspect", "--format", "{{.Id}}", f"{stack}_net").stdout.strip()
        for vip in json.loads(docker("service", "inspect", "--format",
                                     "{{json .Endpoint.VirtualIPs}}", service).stdout):
            if vip["NetworkID"] == network:
                return vip["Addr"].split("/")[0] + ":8080"
        raise SystemExit(f"no virtual IP for {service} on {stack}_net")

    def start_load(self, stack, target, dns_cache):
        name = f"{stack}-load-{len(self.containers)}"
        self.containers.append(name)
        docker("run", "-d", "--name", name, "--label", self.label, "--network", f"{stack}_net",
               "--read-only", "--cap-drop", "ALL", self.load_image, target,
               "--dns-cache", str(dns_cache))
        poll("the load client's first answer",
             lambda: True if "first_answer" in docker("logs", name).stdout else None, 30)
        return name

    def finish_load(self, name):
        docker("stop", name)
        for line in docker("logs", name).stdout.splitlines():
            record = json.loads(line)
            if record.get("event") == "summary":
                return record
        raise SystemExit(f"no summary from {name}")

    def stopped_task(self, container, tool):
        """(exit code, last request served minus SIGTERM, in seconds) of an old task."""
        def exited():
            state = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}",
                           container).stdout.split()
            return int(state[1]) if state[0] == "false" else None
        code = poll(f"{container} to exit", exited)
        logs = docker("logs", "--timestamps", container)
        last_request = sigterm = None
        for line in (logs.stdout + logs.stderr).splitlines():
            stamp, _, text = line.partition(" ")
            if '"msg":"request"' in text:
                last_request = max(last_request or 0.0, epoch(stamp))
            marker = '"event":"stop_requested"' if tool == "usher" else "received SIGTERM"
            if marker in text and sigterm is None:
                sigterm = epoch(stamp)
        if last_request is None or sigterm is None:
            return code, None
        return code, last_request - sigterm

    def update(self, tool, stack, version, target, dns_cache):
        service = f"{stack}_app"
        old = self.wait_healthy(service, self.tags[tool, "v2" if version == "v1" else "v1"])
        load = self.start_load(stack, target, dns_cache)
        started = time.monotonic()
        docker("service", "update", "--detach", "--no-resolve-image", "--image",
               self.tags[tool, version], service)

        def done():
            state = docker("service", "inspect", "--format",
                           "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                           service).stdout.strip()
            if state in ("paused", "rollback_started", "rollback_completed", "rollback_paused"):
                raise SystemExit(f"{service}: update {state}")
            return True if state == "completed" else None
        poll(f"{service}'s update", done)
        took = time.monotonic() - started
        self.wait_healthy(service, self.tags[tool, version])
        tasks = [self.stopped_task(c, tool) for c in old]
        summary = self.finish_load(load)
        return {"tool": tool, "dns_cache": dns_cache, "took": took, "summary": summary,
                "exit_codes": [code for code, _ in tasks],
                "last_request": [last for _, last in tasks if last is not None]}

    # Clean-up

    def clean(self):
        for name in self.containers:
            docker("rm", "-f", name, check=False)
        for stack in self.stacks:
            docker("stack", "rm", stack, check=False)
        for stack in self.stacks:
            poll(f"{stack}'s containers to go", lambda: True if not docker(
                "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}",
                check=False).stdout.strip() else None, 60)
            network = f"{stack}_net"
            for _ in range(80):
                if docker("network", "inspect", network, check=False).returncode != 0:
                    break
                docker("network", "rm", network, check=False)
                time.sleep(0.25)
        if self.secret_created:
            docker("secret", "rm", self.secret, check=False)
        for image in self.images:
            docker("rmi", image, check=False)
        if self.swarm_created:
            docker("swarm", "leave", "--force", check=False)
        if self.gwbridge_created:
            docker("network", "rm", "docker_gwbridge", check=False)
        shutil.rmtree(self.context, ignore_errors=True)


def report(bench, results, endpoint_mode, caches, took):
    uname = os.uname()
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    tini = subprocess.run([TINI, "--version"], capture_output=True, text=True).stdout.strip()
    usher = subprocess.run([os.path.join(RELEASE, "usher"), "--version"], capture_output=True,
                           text=True).stdout.strip().splitlines()[0]
    print("### Rolling update on Docker Swarm (3 replicas, start-first, under continuous load)\n")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
          f"(run took {took:.0f} s); {os.cpu_count()} CPUs, kernel {uname.release}; "
          f"Docker {engine}, single-node swarm on loopback")
    print(f"- {usher}; {tini}")
    command = " ".join(["python3 bench/swarm_rolling.py", *sys.argv[1:]])
    print(f"- `{command}`")
    mode = ("virtual IP (IPVS)" if endpoint_mode == "vip" else
            "`endpoint_mode: dnsrr` (this kernel has no IPVS): the client looks the name up "
            "in Docker's DNS")
    print(f"- Balancing: {mode}\n")
    print("| entrypoint | client's DNS cache | updates | requests | failed | failure kinds "
          "| last request to an old task, from its SIGTERM (median, latest) "
          "| update took (median) | old tasks exit 0 |")
    print("|---|---|---:|---:|---:|---|---|---:|---:|")
    for cache in caches:
        for tool in ["usher", "tini"]:
            rows = [r for r in results if r["tool"] == tool and r["dns_cache"] == cache]
            if not rows:
                continue
            requests = sum(r["summary"]["requests"] for r in rows)
            failed = [r["summary"]["failed"] for r in rows]
            kinds = {}
            for r in rows:
                for kind, n in r["summary"]["failures"].items():
                    kinds[kind] = kinds.get(kind, 0) + n
            lasts = [x for r in rows for x in r["last_request"]]
            codes = [c for r in rows for c in r["exit_codes"]]
            last = (f"{statistics.median(lasts):+.2f} s, {max(lasts):+.2f} s"
                    if lasts else "n/a")
            name = ("usher (`--drain 2s`)" if tool == "usher" else "tini-static")
            cache_text = "none (a lookup per request)" if cache == 0 else f"{cache} s"
            kinds_text = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"
            print(f"| {name} | {cache_text} | {len(rows)} | {requests} | "
                  f"{sum(failed)} ({' + '.join(map(str, failed))}) | {kinds_text} | {last} | "
                  f"{statistics.median(r['took'] for r in rows):.1f} s | "
                  f"{sum(c == 0 for c in codes)}/{len(codes)} |")


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--rounds", type=int, default=3,
                        help="updates per tool and DNS cache setting (default 3)")
    parser.add_argument("--dns-cache", default="0,3",
                        help="comma list of the client's DNS cache in seconds, dnsrr only "
                             "(default 0,3)")
    parser.add_argument("--endpoint-mode", choices=["vip", "dnsrr"],
                        help="default: vip when the kernel has IPVS, else dnsrr")
    parser.add_argument("--no-build", action="store_true", help="use target/release as is")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not os.path.exists(TINI):
        log("installing tini (for tini-static)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "tini"], check=True)
    if not args.no_build:
        log("building usher and the examples (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--bins", "--examples"],
                       cwd=ROOT, check=True)
    endpoint_mode = args.endpoint_mode or ("vip" if kernel_has_ipvs() else "dnsrr")
    caches = [float(c) if "." in c else int(c) for c in args.dns_cache.split(",")]
    if endpoint_mode == "vip":
        caches = [0]  # a virtual IP is looked up once: there is no DNS answer to keep
    random.seed(args.seed)
    bench = Bench(args)
    started = time.monotonic()
    results = []
    try:
        bench.build_images()
        bench.join_swarm()
        p = subprocess.run(["docker", "secret", "create", "--label", bench.label, bench.secret, "-"],
                           input="bench-token", capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"docker secret create: {p.stderr.strip()}")
        bench.secret_created = True
        stacks = {tool: bench.deploy(tool, endpoint_mode) for tool in ["usher", "tini"]}
        targets = {}
        for tool, stack in stacks.items():
            bench.wait_healthy(f"{stack}_app", bench.tags[tool, "v1"])
            targets[tool] = bench.target(stack, endpoint_mode)
        version = {tool: "v1" for tool in stacks}
        for n in range(args.rounds):
            for cache in caches:
                order = ["usher", "tini"]
                random.shuffle(order)
                for tool in order:
                    version[tool] = "v2" if version[tool] == "v1" else "v1"
                    log(f"round {n + 1}/{args.rounds}: {tool}, DNS cache {cache} s, "
                        f"update to {version[tool]}")
                    result = bench.update(tool, stacks[tool], version[tool], targets[tool], cache)
                    s = result["summary"]
                    log(f"  {s['requests']} requests, {s['failed']} failed {s['failures']}, "
                        f"last request from SIGTERM {result['last_request']}")
                    results.append(result)
    finally:
        log("cleaning up")
        bench.clean()
    report(bench, results, endpoint_mode, caches, time.monotonic() - started)


if __name__ == "__main__":
    main()
