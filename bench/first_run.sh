#!/bin/bash
# The first `make serve` of a fresh clone, from empty package caches, until /readyz
# answers 200; prints the total and each step's time (docs/benchmarks.md).
#
#   bench/first_run.sh [CLONE_DIR]     (default: a new temporary folder)
#
# The clone is of this checkout's HEAD (commit first). Port 8000 must be free; the
# server is stopped at the end and the clone and caches are removed.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d -t quantserve-first-run-XXXX)
clone=${1:-$work/clone}
log=$work/make-serve.log
export UV_CACHE_DIR=$work/uv-cache PIP_CACHE_DIR=$work/pip-cache
git clone -q "$repo" "$clone"
cd "$clone"
echo "commit $(git rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
# Each output line of `make serve` with the seconds since the start.
make serve 2>&1 | while IFS= read -r line; do
    printf '%7.1f %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$line"
done >"$log" &
until curl -sf -o /dev/null localhost:8000/readyz; do sleep 0.5; done
ready=$(echo "$(date +%s.%N) - $start" | bc)
grep -E '^ *[0-9.]+ (\S+/)?(python3?[.0-9]* -m venv|\.venv/bin/(python -m pip|uv) |\.venv/bin/quantserve )|quantserve serve$|done in' "$log" \
    | cut -c1-110
printf 'ready after %.1f s\n' "$ready"
pkill -f "gunicorn -c $clone/deploy/gunicorn.conf.py" || true
sleep 2
rm -rf "$work"
