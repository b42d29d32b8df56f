#!/usr/bin/env python3
"""Where usher's bytes go, and what the alternatives to the release profile would save.
Prints a Markdown report on stdout.

    python3 bench/size.py

Builds the release binary unstripped (in target/bench-size) and sums `nm --size-sort` symbol
sizes by crate (demangled paths; C symbols, which are glibc's, as "glibc (static)"). Then builds
the variants the profile could take (opt-level "z", non-PIE static) and gives their stripped
sizes beside the shipped binary and tini-static.
"""

import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(message):
    print(f"[size-bench] {message}", file=sys.stderr, flush=True)


def build(target_dir, env=None, triple=None):
    """Builds the release binary; with `triple`, as a cross build for that target, so that
    target-only RUSTFLAGS (CARGO_TARGET_<TRIPLE>_RUSTFLAGS) stay off the proc-macro crates."""
    log(f"building in {target_dir}")
    cross = ["--target", triple] if triple else []
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "usher",
                    "--target-dir", target_dir, *cross], cwd=ROOT, check=True,
                   env={**os.environ, **(env or {})}, capture_output=True)
    return os.path.join(target_dir, triple or "", "release/usher")


def host_triple():
    info = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    return next(line.split(": ", 1)[1] for line in info.splitlines() if line.startswith("host: "))


def by_crate(binary):
    nm = subprocess.run(["nm", "-S", "--size-sort", "-C", binary], check=True,
                        capture_output=True, text=True).stdout
    sizes = collections.Counter()
    for line in nm.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        size, name = int(parts[1], 16), parts[3]
        found = re.search(r"([a-z_][a-z0-9_]*)::", name)
        crate = found.group(1) if found else ("glibc (static)" if "::" not in name else "other")
        if crate in ("backtrace_rs", "gimli", "addr2line", "rustc_demangle", "miniz_oxide"):
            crate = "std's backtrace printer (gimli, addr2line, demangle, inflate)"
        sizes[crate] += size
    return sizes


def main():
    target = os.path.join(ROOT, "target")
    shipped = build(target)
    unstripped = build(os.path.join(target, "bench-size"),
                       {"CARGO_PROFILE_RELEASE_STRIP": "false"})
    sizes = by_crate(unstripped)
    total = sum(sizes.values())
    print("## Where the bytes go\n")
    print(f"Symbol sizes of the unstripped release build, by crate ({total:,} bytes of symbols; "
          f"the rest of the file is headers, relocations, unwind tables and read-only data).\n")
    print("| crate | bytes | share |")
    print("|---|---:|---:|")
    # Every crate, so that each dependency's cost is on the page (those under 100 bytes are
    # inlined away and summed in the last row).
    small = 0
    for crate, size in sizes.most_common():
        if size < 100:
            small += size
            continue
        print(f"| {crate} | {size:,} | {100 * size / total:.1f} % |")
    print(f"| crates under 100 bytes each | {small:,} | {100 * small / total:.1f} % |")
    triple = host_triple()
    variants = {
        "shipped (opt-level \"s\", static-pie)": shipped,
        "opt-level \"z\"": build(os.path.join(target, "bench-size-z"),
                                 {"CARGO_PROFILE_RELEASE_OPT_LEVEL": "z"}),
        "non-PIE static (-C relocation-model=static)": build(
            os.path.join(target, "bench-size-nopie"),
            {f"CARGO_TARGET_{triple.upper().replace('-', '_')}_RUSTFLAGS":
             "-C relocation-model=static"}, triple),
    }
    print("\n## Variants of the release profile\n")
    print("| build | bytes | vs shipped |")
    print("|---|---:|---:|")
    base = os.path.getsize(shipped)
    for name, path in variants.items():
        size = os.path.getsize(path)
        print(f"| {name} | {size:,} | {size - base:+,} |")
    tini = "/usr/bin/tini-static"
    if os.path.exists(tini):
        print(f"| tini-static (for scale) | {os.path.getsize(tini):,} | - |")


if __name__ == "__main__":
    main()
