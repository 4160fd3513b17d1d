#!/usr/bin/env bash
# bench/scale — berth on one node as instances pile up (issue 15, item 3):
# at each step (default 100, 250 and 500 running instances of a busybox-size
# web template, spread over five developers) it prints
#   - the RSS of berth-api, berth-worker and nginx (all its processes);
#   - GET /api/v1/instances?all=true at c=50 (wrk, 5 s): req/s, p50, p99;
#   - a reconcile pass (the worker's own histogram: the mean of the passes
#     since the step was reached; one is asked for);
#   - Docker event -> status: `docker kill` of one instance to the worker's
#     `died` event row (kill's own time included), and the event-stream lag
#     (Docker's timestamp to the worker reading it) from the worker's histogram;
#   - nginx: `nginx -t` of the stack's configuration with every route, and
#     the worker's test-and-reload cycle (mean of the cycles of the step).
# Goals (issue 15): at 500, API + worker RSS <= 30 MB, list p99 <= 20 ms,
# reconcile <= 1 s, event -> status <= 1 s. Baseline in the same run: the
# raw Docker Engine API's GET /containers/json?all=1 at the same c=50, which
# lists the same containers.
#
#   tests/bench/scale.sh [N...]        (default: 100 250 500)
#
# Starts its own stack (scripts/stack.sh, free ports, a temp BERTH_VAR, the
# plain build) and removes everything it made, containers included. Needs wrk,
# jq, a Docker engine, and berth-demo/web:1 (scripts/images.sh web).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STEPS=(${*:-100 250 500})
USERS=5
free_port() { local p=$1; while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done; echo $p; }
export BERTH_VAR=$(mktemp -d /tmp/berth-bench-scale.XXXXXX)
export BERTH_HTTP_PORT=$(free_port 18700)
export BERTH_PG_PORT=$(free_port $((BERTH_HTTP_PORT + 1)))
export BERTH_CLUSTER=scale$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export BERTH_BACKGROUND_IMAGES=
URL=http://127.0.0.1:$BERTH_HTTP_PORT
SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
SOCK=${SOCK#unix://}
chmod 0755 "$BERTH_VAR"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
psql_q() { "$PG_BIN/psql" -h "$BERTH_VAR/run" -p "$BERTH_PG_PORT" -U berth -d berth -tAq -c "$1"; }

. "$ROOT/tests/bench/lib.sh"
cleanup() {
    "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1
    remove_labelled "berth.cluster=$BERTH_CLUSTER"
    rm -rf "$BERTH_VAR"
}
trap cleanup EXIT
for c in wrk jq docker; do command -v $c >/dev/null || { echo "scale: needs $c"; exit 1; }; done
docker image inspect berth-demo/web:1 >/dev/null 2>&1 || "$ROOT/scripts/images.sh" web >/dev/null ||
    { echo "scale: no berth-demo/web:1"; exit 1; }
"$ROOT/scripts/stack.sh" start >"$BERTH_VAR/stack.out" 2>&1 || { cat "$BERTH_VAR/stack.out"; exit 1; }
PW=$(cat "$BERTH_VAR/initial-admin-password")
# a reconcile pass every 10 s (60 by default), so each step sees one soon
echo "reconcile_s = 10" >>"$BERTH_VAR/berth.conf"
kill -HUP "$(cut -d' ' -f1 "$BERTH_VAR/run/worker.pid")"

# api METHOD PATH [BODY] [curl args...]: the answer's body
api() {
    local m=$1 p=$2 b=${3-}; shift 3 2>/dev/null || shift $#
    curl -s --max-time 30 -X "$m" ${b:+-H 'Content-Type: application/json' --data-binary "$b"} "$@" "$URL$p"
}
token_of() { # user password -> a fresh API token
    local jar; jar=$(mktemp)
    local csrf; csrf=$(api POST /api/v1/auth/login "{\"username\":\"$1\",\"password\":\"$2\"}" -c "$jar" | jq -r .csrf_token)
    api POST /api/v1/tokens '{"name":"scale"}' -b "$jar" -H "X-CSRF-Token: $csrf" | jq -r .token
    rm -f "$jar"
}
ADMIN=$(token_of admin "$PW")
AH=(-H "Authorization: Bearer $ADMIN")
max=${STEPS[-1]}
per=$(((max + USERS - 1) / USERS))
api POST /api/v1/templates '{"name":"scale-tiny","image":"berth-demo/web:1","http_port":8080,"cpus":0.01,"memory_mb":16,"pids_limit":16,"restart_policy":"no"}' "${AH[@]}" >/dev/null
TOKS=()
for u in $(seq 1 $USERS); do
    api POST /api/v1/users "{\"username\":\"scale-u$u\",\"password\":\"pw-scale-u$u-x\",\"role\":\"developer\",\"quota\":{\"instances\":$per,\"cpus\":100,\"memory_mb\":1000000}}" "${AH[@]}" >/dev/null
    TOKS+=("$(token_of "scale-u$u" "pw-scale-u$u-x")")
done

rss_mb() { # pid... -> summed VmRSS in MB
    local kb=0 p v
    for p in "$@"; do v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null); kb=$((kb + ${v:-0})); done
    awk -v k=$kb 'BEGIN { printf "%.1f", k / 1024 }'
}
pid_of() { cut -d' ' -f1 "$BERTH_VAR/run/$1.pid"; }
nginx_pids() { local m; m=$(pid_of nginx); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
# metric NAME LABELS -> "sum count" of a histogram in /metrics
metric() {
    curl -s "$URL/metrics" | awk -v s="$1_sum$2" -v c="$1_count$2" '$1 == s { sum = $2 } $1 == c { cnt = $2 } END { print sum + 0, cnt + 0 }'
}
mean_ms() { # "sum0 count0" "sum1 count1" -> mean of the new observations in ms, or "-"
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        if (y[2] > x[2]) printf "%.0f", (y[1] - x[1]) / (y[2] - x[2]) * 1000; else printf "-" }'
}
wrk_fig() { # URL [header] -> "rps p50 p99" (ms)
    local out
    out=$(wrk -t2 -c50 -d5s --latency ${2:+-H "$2"} "$1" 2>&1)
    awk '/Requests\/sec/ { rps = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
         function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
         END { printf "%.0f %.1f %.1f", rps, ms(p50), ms(p99) }' <<<"$out"
}

printf '%-5s %8s %7s %8s %8s | %-20s | %-20s | %9s %9s %9s | %7s %9s\n' N "ready s" "api MB" "worker" "nginx" \
    "berth list rps/p50/p99" "docker list rps/p50/p99" "reconcile" "kill->st" "ev lag" "nginx-t" "reload"
made=0
for n in "${STEPS[@]}"; do
    t0=$SECONDS
    rc0=$(metric berth_worker_reconcile_duration_seconds '{node="local"}')
    cy0=$(metric berth_worker_nginx_duration_seconds '{node="local",step="cycle"}')
    lag0=$(metric berth_worker_event_lag_seconds '{node="local"}')
    # creates, ten at a time, round-robin over the users
    seq $((made + 1)) "$n" | TOKS_LIST="${TOKS[*]}" URL=$URL xargs -P 10 -I{} bash -c '
        toks=($TOKS_LIST); i={}; t=${toks[$((i % ${#toks[@]}))]}
        curl -s -o /dev/null --max-time 60 -H "Authorization: Bearer $t" -H "Content-Type: application/json" \
            --data "{\"template\":\"scale-tiny\",\"name\":\"s$i\"}" "$URL/api/v1/instances"' 
    made=$n
    end=$((SECONDS + 900))
    while [[ $(psql_q "SELECT count(*) FROM instances WHERE status = 'running'") -lt $n ]] && ((SECONDS < end)); do sleep 1; done
    ready=$((SECONDS - t0))
    running=$(psql_q "SELECT count(*) FROM instances WHERE status = 'running'")
    [[ $running -ge $n ]] || echo "# step $n: only $running running after $ready s"
    # a reconcile pass at this size (every reconcile_s, 10 s here)
    wend=$((SECONDS + 60))
    while [[ $(mean_ms "$rc0" "$(metric berth_worker_reconcile_duration_seconds '{node="local"}')") == - ]] && ((SECONDS < wend)); do sleep 1; done
    rec=$(mean_ms "$rc0" "$(metric berth_worker_reconcile_duration_seconds '{node="local"}')")
    # Docker event -> status: kill one, wait for the worker's row
    victim=$(psql_q "SELECT id FROM instances WHERE status = 'running' ORDER BY created_at LIMIT 1")
    before=$(psql_q "SELECT coalesce(max(id), 0) FROM instance_events WHERE instance_id = '$victim'")
    k0=$(date +%s%N)
    docker kill "berth-$victim" >/dev/null 2>&1
    kend=$((SECONDS + 30))
    until [[ -n $(psql_q "SELECT 1 FROM instance_events WHERE instance_id = '$victim' AND id > $before AND kind IN ('died', 'stopped', 'oom') LIMIT 1") ]] || ((SECONDS >= kend)); do sleep 0.02; done
    kill_ms=$((($(date +%s%N) - k0) / 1000000))
    # started again, so the next step counts it among the running
    api POST "/api/v1/instances/$victim/start" "" "${AH[@]}" >/dev/null
    lag=$(mean_ms "$lag0" "$(metric berth_worker_event_lag_seconds '{node="local"}')")
    # nginx
    t1=$(date +%s%N)
    nginx -e "$BERTH_VAR/log/nginx-error.log" -p "$BERTH_VAR/nginx" -c "$BERTH_VAR/nginx/nginx.conf" -t -q 2>/dev/null
    ntest=$((($(date +%s%N) - t1) / 1000000))
    cyc=$(mean_ms "$cy0" "$(metric berth_worker_nginx_duration_seconds '{node="local",step="cycle"}')")
    read -r b_rps b_p50 b_p99 < <(wrk_fig "$URL/api/v1/instances?all=true" "Authorization: Bearer $ADMIN")
    # the raw Docker API over its socket, through a loopback TCP relay wrk can reach
    relay_port=$(free_port $((BERTH_HTTP_PORT + 10)))
    python3 -c '
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(128)
def pipe(a, b):
    try:
        while (d := a.recv(65536)): b.sendall(d)
    except OSError: pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
while True:
    c, _ = ls.accept(); u = socket.socket(socket.AF_UNIX); u.connect(sys.argv[2])
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
' "$relay_port" "$SOCK" &
    relay=$!
    sleep 0.5
    read -r d_rps d_p50 d_p99 < <(wrk_fig "http://127.0.0.1:$relay_port/containers/json?all=1&filters=%7B%22label%22%3A%5B%22berth.cluster%3D$BERTH_CLUSTER%22%5D%7D")
    kill "$relay" 2>/dev/null; wait "$relay" 2>/dev/null
    printf '%-5s %8s %7s %8s %8s | %-20s | %-20s | %7s ms %6s ms %6s ms | %4s ms %6s ms\n' "$n" "$ready" \
        "$(rss_mb "$(pid_of api)")" "$(rss_mb "$(pid_of worker)")" "$(rss_mb $(nginx_pids))" \
        "$b_rps/$b_p50/$b_p99" "$d_rps/$d_p50/$d_p99" "$rec" "$kill_ms" "$lag" "$ntest" "$cyc"
done
echo "# RSS in MB; list figures: requests/s, p50 ms, p99 ms at c=50 for 5 s (the docker list goes through a"
echo "# python loopback relay, which caps it: read it as a lower bound); reconcile, ev lag and reload: the"
echo "# worker's histograms, mean over the step; kill->st: docker kill to the worker's died event row"
