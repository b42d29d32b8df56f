#!/usr/bin/env bash
# Runs the Docker suite (tests/docker.rs) N times in a row (default 20) and prints a summary:
# clean runs, failed runs with the tests that failed, what any run left on the engine, times.
#
#   bench/repeat_docker.sh [N]
#   SUITE=swarm bench/repeat_docker.sh [N]    the Swarm suite (tests/swarm.rs) instead
#
# Each run is its own test run (E2E_RUN_ID=<this script's id>-rK): after it, nothing labelled
# with its id may remain (containers, images, build contexts in the temporary directory), or the
# run counts as failed (and is swept). CI is set, so a test that
# would skip (no engine, no busybox) fails. The log of a failed run stays in
# target/repeat_docker/. Exits 1 unless every run was clean.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
suite="${SUITE:-docker}"
export CI="${CI:-true}"

logs=target/repeat_docker
rm -rf "$logs"
mkdir -p "$logs"
base="$(.ci/docker_sweep --id $$)"
current=""
trap '[ -z "$current" ] || .ci/docker_sweep "$current" || true' EXIT

echo "== building (cargo build --examples, cargo test --test $suite --no-run)" >&2
cargo build --examples -q
cargo test --test "$suite" --no-run -q 2>/dev/null

clean=0
failed=()
times=()
started=$SECONDS
for k in $(seq 1 "$runs"); do
    current="$base-r$k"
    log="$logs/run-$k.log"
    t0=$(date +%s.%N)
    status=0
    E2E_RUN_ID="$current" cargo test -q --test "$suite" >"$log" 2>&1 || status=$?
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
    times+=("$took")
    left="$(
        docker ps -aq --filter "label=usher-e2e=$current"
        docker images -aq --filter "label=usher-e2e=$current"
        grep -ls "^LABEL usher-e2e=$current " "${TMPDIR:-/tmp}"/usher-docker-*/Dockerfile || true
        # The Swarm suite's label values are the run id and a suffix per stack.
        {
            docker ps -a --filter label=usher-swarm --format '{{.Label "usher-swarm"}}'
            docker network ls --filter label=usher-swarm --format '{{.Label "usher-swarm"}}'
            docker images -q --filter label=usher-swarm |
                xargs -r docker image inspect -f '{{index .Config.Labels "usher-swarm"}}'
            docker service ls -q 2>/dev/null | xargs -r docker service inspect \
                -f '{{index .Spec.Labels "usher-swarm"}}' 2>/dev/null || true
            docker secret ls -q 2>/dev/null | xargs -r docker secret inspect \
                -f '{{index .Spec.Labels "usher-swarm"}}' 2>/dev/null || true
        } | grep -E "^$current(-|$)" || true
    )"
    why=""
    if [ "$status" != 0 ]; then
        # libtest's list of failures: "    name" lines after "failures:".
        why="failed: $(sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [a-z_0-9]+$' |
            sort -u | tr -d ' ' | paste -sd, -)"
    fi
    if [ -n "$left" ]; then
        why="${why:+$why; }left $(echo "$left" | wc -l) containers, images or build contexts"
        .ci/docker_sweep "$current" || true
    fi
    if [ -z "$why" ]; then
        clean=$((clean + 1))
        rm -f "$log"
        printf 'run %2d/%d: clean (%.1f s)\n' "$k" "$runs" "$took"
    else
        failed+=("run $k: $why (log: $log)")
        printf 'run %2d/%d: %s (%.1f s)\n' "$k" "$runs" "$why" "$took"
    fi
    current=""
done

sorted="$(printf '%s\n' "${times[@]}" | sort -g)"
median="$(echo "$sorted" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
echo
echo "$suite suite, $runs runs in a row: $clean clean, ${#failed[@]} failed; total $((SECONDS - started)) s;" \
    "per run median $(printf '%.1f' "$median") s, min $(printf '%.1f' "$(echo "$sorted" | head -1)") s," \
    "max $(printf '%.1f' "$(echo "$sorted" | tail -1)") s"
echo "($(nproc) CPUs, Docker $(docker version -f '{{.Server.Version}}'), $(date -u '+%Y-%m-%d %H:%M UTC'))"
for line in "${failed[@]}"; do
    echo "  $line"
done
[ ${#failed[@]} = 0 ]
