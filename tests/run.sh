#!/usr/bin/env bash
# tests/run.sh — `make test`: build, unit tests, fuzz smoke runs, then a fresh
# local stack (scripts/stack.sh, other ports, a temp BERTH_VAR, daemons built
# with AddressSanitizer + UBSan) and every integration test against it. Cleans
# up every process and container it started, even on failure. Last line:
# `N passed, M failed`. ONLY="40- 45-proxy" runs just the integration tests
# whose names start so (and no fuzz smoke): for working on one part.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ROOT

PASS=0
FAIL=0
FAILED=()
# Scratch files of this run (fuzz logs and corpora, the stack's start log):
# two runs at once must not share them. Kept when something failed.
RUNTMP=$(mktemp -d /tmp/berth-run.XXXXXX)

# Run a test program; count its `ok -` / `not ok -` lines. A program that
# exits non-zero without reporting a failure counts as one failure.
run_test() {
    local name=$1; shift
    local out rc
    out=$(mktemp)
    timeout "${TEST_TIMEOUT:-900}" "$@" > "$out" 2> >(sed "s|^|  [$name] |" >&2)
    rc=$?
    local p f
    p=$(grep -c '^ok - ' "$out")
    f=$(grep -c '^not ok - ' "$out")
    sed "s|^|[$name] |" "$out"
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        echo "not ok - [$name] exited with status $rc"
        f=$((f + 1))
    fi
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
    [[ $f -gt 0 ]] && FAILED+=("$name")
    rm -f "$out"
}

summary() {
    echo
    [[ ${#FAILED[@]} -gt 0 ]] && echo "failures in: ${FAILED[*]}"
    echo "$PASS passed, $FAIL failed"
}

echo "== build"
scripts/deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }
if ! make -s -j2 all unit; then
    echo "not ok - build (warnings are errors)"; echo "0 passed, 1 failed"; exit 1
fi
echo "ok - build with -Werror"; PASS=$((PASS + 1))
# Browser tests: playwright-core from npm (it drives Debian's chromium; no browser download).
if [[ ! -d tests/node_modules/playwright-core || ! -d tests/node_modules/axe-core ]]; then
    (cd tests && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci failed; browser tests will fail" >&2
fi
ASAN_BUILD=build/asan
if ! make -s -j2 BUILD=$ASAN_BUILD SANITIZE=address,undefined all unit; then
    echo "not ok - sanitizer build"; echo "$PASS passed, 1 failed"; exit 1
fi
echo "ok - sanitizer build (address,undefined)"; PASS=$((PASS + 1))

echo "== unit tests (sanitizer build)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in $ASAN_BUILD/tests/test_*; do
    [[ -x $t ]] && run_test "unit/$(basename "$t")" "$t"
done

echo "== fuzz smoke (${FUZZ_SECONDS:-10}s per target)"
if [[ -n ${ONLY:-} ]]; then
    echo "# ONLY=$ONLY: fuzz smoke skipped"
elif command -v clang >/dev/null && make -s -j2 fuzz >/dev/null 2>&1; then
    for f in build/fuzz/fuzz_*; do
        [[ -x $f ]] || continue
        name=$(basename "$f")
        corpus=tests/fuzz/corpus/${name#fuzz_}
        work=$RUNTMP/corpus-${name#fuzz_}
        mkdir -p "$work"
        [[ -d $corpus ]] && cp -r "$corpus/." "$work/" 2>/dev/null
        if (cd "$RUNTMP" && "$ROOT/$f" -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 \
                -print_final_stats=1 "$work") > "$RUNTMP/$name.log" 2>&1; then
            echo "ok - [fuzz] $name: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$RUNTMP/$name.log" | awk '{print $2}' || true) runs, no crash"
            PASS=$((PASS + 1))
        else
            echo "not ok - [fuzz] $name crashed: see $RUNTMP/$name.log"; tail -30 "$RUNTMP/$name.log" >&2
            FAIL=$((FAIL + 1)); FAILED+=("fuzz/$name")
        fi
        rm -rf "$work"
    done
else
    echo "not ok - fuzz targets build (clang + libFuzzer)"; FAIL=$((FAIL + 1))
fi

echo "== integration (real PostgreSQL, Redis, nginx, dockerd)"
free_port() { # first free loopback port from $1
    local p=$1
    while (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
    echo $p
}
export BERTH_VAR=$(mktemp -d /tmp/berth-test.XXXXXX)
export BERTH_HTTP_PORT=$(free_port ${BERTH_TEST_HTTP_PORT:-18080})
export BERTH_PG_PORT=$(free_port $((BERTH_HTTP_PORT + 1)))
export BERTH_CLUSTER=test$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export BERTH_BUILD=$ROOT/$ASAN_BUILD
export BERTH_URL=http://127.0.0.1:$BERTH_HTTP_PORT
export BERTH_CONFIG=$BERTH_VAR/berth.conf
export DOCKER_HOST=unix:///var/run/docker.sock
# The heavy workspace images are built by the tests that use them, not behind
# every test's back (62-image-builds runs the background builder itself).
export BERTH_BACKGROUND_IMAGES=
# Daemons: report memory errors; leak checking at exit is left to the unit tests
# (daemons exit with live thread-local connections by design).
# The reports' directory is everyone's: the stack's log directory is root's,
# and berth-api and nginx's neighbours run as the service user.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=$BERTH_VAR/log/asan/report
chmod 0755 "$BERTH_VAR"
mkdir -p "$BERTH_VAR/log/asan" && chmod 1777 "$BERTH_VAR/log/asan"

cleanup() {
    echo "== cleanup"
    # The worker first (it would make missing containers again), then
    # everything this run made on Docker, then the stack itself -- dockerd
    # too when the stack started it, or the containers would stay on its disk.
    local wpid dpid=""
    if [[ -f $BERTH_VAR/run/worker.pid ]]; then
        wpid=$(cut -d' ' -f1 "$BERTH_VAR/run/worker.pid")
        kill "$wpid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.2; done
    fi
    if command -v docker >/dev/null && curl -sf --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; then
        ids=$(docker ps -aq --filter "label=berth.cluster=$BERTH_CLUSTER")
        [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1
        vols=$(docker volume ls -q --filter "label=berth.cluster=$BERTH_CLUSTER")
        [[ -n "$vols" ]] && docker volume rm -f $vols >/dev/null 2>&1
        nets=$(docker network ls -q --filter "label=berth.cluster=$BERTH_CLUSTER")
        [[ -n "$nets" ]] && docker network rm $nets >/dev/null 2>&1
    fi
    # `make stop` must end what the stack started and exit 0 (it once aborted
    # on a grep that counted nothing, leaving dockerd running)
    [[ -f $BERTH_VAR/run/dockerd.pid ]] && dpid=$(cut -d' ' -f1 "$BERTH_VAR/run/dockerd.pid")
    if scripts/stack.sh stop > "$RUNTMP/stop.log" 2>&1; then
        echo "ok - the stack stops (scripts/stack.sh stop exits 0)"; PASS=$((PASS + 1))
    else
        echo "not ok - the stack stops (scripts/stack.sh stop exits 0)"; FAIL=$((FAIL + 1))
        cat "$RUNTMP/stop.log" >&2
    fi
    if [[ -n $dpid ]]; then
        # gone, or an exited process no init has reaped yet (state Z)
        local st; st=$(cat "/proc/$dpid/stat" 2>/dev/null); st=${st##*) }
        if [[ -n $st && ${st:0:1} != Z ]]; then
            echo "not ok - the dockerd the stack started is stopped with it"; FAIL=$((FAIL + 1))
        else
            echo "ok - the dockerd the stack started is stopped with it"; PASS=$((PASS + 1))
        fi
    fi
    if [[ -z "${KEEP_VAR:-}" ]]; then rm -rf "$BERTH_VAR"; else echo "kept $BERTH_VAR"; fi
    if [[ $FAIL -eq 0 ]]; then rm -rf "$RUNTMP"; else echo "scratch files kept in $RUNTMP"; fi
}
trap 'cleanup; summary' EXIT
trap 'exit 130' INT TERM

if scripts/stack.sh start > "$RUNTMP/stack.log" 2>&1; then
    echo "ok - the stack starts (scripts/stack.sh start)"; PASS=$((PASS + 1))
    export BERTH_ADMIN_PASSWORD=$(cat "$BERTH_VAR/initial-admin-password")
    for t in tests/integration/*; do
        [[ -x $t || $t == *.mjs ]] || continue
        if [[ -n ${ONLY:-} ]]; then # ONLY="40-* 45-proxy": just these integration tests
            keep=0
            for pat in $ONLY; do [[ $(basename "$t") == $pat* ]] && keep=1; done
            [[ $keep -eq 1 ]] || continue
        fi
        case $t in
            *.mjs) run_test "$(basename "$t")" node "$t" ;;
            *) run_test "$(basename "$t")" "$t" ;;
        esac
    done
    # Sanitizer reports from the daemons (written by ASan/UBSan to log_path).
    if ls "$BERTH_VAR"/log/asan/report* >/dev/null 2>&1; then
        echo "not ok - daemons ran without sanitizer reports"; FAIL=$((FAIL + 1))
        cat "$BERTH_VAR"/log/asan/report* | head -60 >&2
    else
        echo "ok - daemons ran without sanitizer reports"; PASS=$((PASS + 1))
    fi
else
    echo "not ok - the stack starts (scripts/stack.sh start)"; FAIL=$((FAIL + 1))
    cat "$RUNTMP/stack.log" >&2
    tail -20 "$BERTH_VAR"/log/*.log >&2
fi
[[ $FAIL -eq 0 ]]
