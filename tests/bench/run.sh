#!/usr/bin/env bash
# tests/bench/run.sh — `make bench`: run every benchmark and print its figures.
# Benchmarks print ratios against a baseline measured in the same run; they
# never fail on a slow machine.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
for b in "$BUILD"/bench/*; do
    [[ -x $b ]] || continue
    echo "== $(basename "$b")"
    "$b" || echo "($(basename "$b") exited with status $?)"
    if [[ $(basename "$b") == reload ]]; then
        echo "== reload, route_keepalive 0"
        ROUTE_KEEPALIVE=0 "$b" || echo "(reload exited with status $?)"
    fi
done
for s in "$ROOT"/tests/bench/*.sh; do
    [[ $s == */run.sh || ! -x $s ]] && continue
    echo "== $(basename "$s" .sh)"
    "$s" || echo "($(basename "$s") exited with status $?)"
done
