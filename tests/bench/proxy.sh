#!/usr/bin/env bash
# bench/proxy — requests per second and p99 latency through berth's
# /container/<user>/<instance>/ path, against baselines measured in the same
# run on the same container, which runs berth-echo (berth-demo/web:1's
# HTTP/1.1 test upstream, tests/images/README.md: ~40k requests/s on 2 cores,
# so the proxies are what is measured). Every target reaches it at its
# address on its user network, like berth's routes (no published HTTP port,
# no docker-proxy since issue 10):
#   (a) direct     the container's address, no proxy
#   (b) nginx      plain nginx proxy_pass, no authorisation
#   (b') nginx-ka  the same with an upstream block and keepalive, as berth's
#                  routes have: the fair baseline for berth's own overhead
#   (c) berth      berth's route on the workspace origin (Host
#                  bench.localhost), with the workspace cookie a browser gets:
#                  auth_request to berth-api on every request
#   (d) chp        configurable-http-proxy (npm), the JupyterHub proxy
# wrk at c=10 and c=50, 2 threads, ${BENCH_SECONDS:-5}s each. Goals (issue 5):
# (c) >= 50% of (b), (c) >= 4x (d), p99 of (c) <= 20 ms at c=50; issue 15:
# (c) >= 0.8x (b') at c=10 and c=50, and p99 of (c) <= 2x p99 of (b').
# Other load on the machine moves every figure: read the ratios, measured
# side by side in one run.
#
# Starts its own stack (scripts/stack.sh in a temp dir, other ports) and
# removes everything it made. Needs wrk, node/npm (for chp), a Docker engine.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECS=${BENCH_SECONDS:-5}
export BERTH_VAR=$(mktemp -d /tmp/berth-bench-proxy.XXXXXX)
chmod 0755 "$BERTH_VAR"
export BERTH_HTTP_PORT=${BENCH_PORT:-28080} BERTH_PG_PORT=$((${BENCH_PORT:-28080} + 1))
export BERTH_CLUSTER=benchproxy
URL=http://127.0.0.1:$BERTH_HTTP_PORT
PLAIN_PORT=$((BERTH_HTTP_PORT + 3)) CHP_PORT=$((BERTH_HTTP_PORT + 4))
pids=()

. "$ROOT/tests/bench/lib.sh"
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [[ -f $BERTH_VAR/plain/nginx.pid ]] && kill "$(cat "$BERTH_VAR/plain/nginx.pid")" 2>/dev/null
    "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1
    remove_labelled "berth.cluster=$BERTH_CLUSTER"
    rm -rf "$BERTH_VAR"
}
trap cleanup EXIT

"$ROOT/scripts/stack.sh" start > /dev/null || { echo "proxy: the stack did not start"; exit 1; }
ADMIN_PW=$(cat "$BERTH_VAR/initial-admin-password")
jar=$BERTH_VAR/cookies
curl -sf -c "$jar" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PW\"}" "$URL/api/v1/auth/login" > "$BERTH_VAR/me.json" \
    || { echo "proxy: login failed"; exit 1; }
csrf=$(jq -r .csrf_token "$BERTH_VAR/me.json")
# The upstream must not be the bottleneck: berth-echo (not the demo's busybox
# httpd, ~200 requests/s) without the demo template's 0.5 CPU limit.
curl -sf -b "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"name":"bench","image":"berth-demo/web:1","command":["/usr/local/bin/berth-echo"],"http_port":8080,"cpus":2,"memory_mb":256,"pids_limit":1024}' \
    "$URL/api/v1/templates" >/dev/null || { echo "proxy: cannot create the bench template"; exit 1; }
# A developer owns the instance (admins get no implicit proxy access).
curl -sf -b "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password","role":"developer"}' "$URL/api/v1/users" >/dev/null
curl -sf -c "$jar" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password"}' "$URL/api/v1/auth/login" > "$BERTH_VAR/me.json"
csrf=$(jq -r .csrf_token "$BERTH_VAR/me.json")
inst=$(curl -sf -b "$jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"template":"bench","name":"bench"}' "$URL/api/v1/instances") || { echo "proxy: launch failed"; exit 1; }
id=$(jq -r .instance.id <<<"$inst")
for _ in $(seq 1 120); do
    st=$(curl -sf -b "$jar" "$URL/api/v1/instances/$id" | jq -r .status)
    [[ $st == running ]] && break
    sleep 0.5
done
[[ $st == running ]] || { echo "proxy: the instance did not start ($st)"; exit 1; }
addr=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "berth-$id")
port=8080
upstream=$addr:$port
berth_path=/container/bench/bench/
ws_host=bench.localhost:$BERTH_HTTP_PORT
for _ in $(seq 1 100); do
    # the browser's way in: the workspace sends it to sign in, the UI origin
    # hands back a one-time code for the workspace cookie
    [[ $(curl -s -o /dev/null -w '%{http_code}' -L -b "$jar" -c "$jar" -H 'Accept: text/html' \
        "http://$ws_host$berth_path") == 200 ]] && break
    sleep 0.1
done
ws_cookie=$(awk '$6 == "berth_ws" {print $7}' "$jar" | tail -1)
[[ -n $ws_cookie ]] || { echo "proxy: no workspace cookie"; exit 1; }

# (b) plain nginx, same worker count as berth's
mkdir -p "$BERTH_VAR/plain"
cat > "$BERTH_VAR/plain/nginx.conf" <<EOF
worker_processes 2;
pid $BERTH_VAR/plain/nginx.pid;
error_log $BERTH_VAR/plain/error.log;
events { worker_connections 4096; }
http {
    access_log $BERTH_VAR/plain/access.log;
    client_body_temp_path $BERTH_VAR/plain; proxy_temp_path $BERTH_VAR/plain;
    fastcgi_temp_path $BERTH_VAR/plain; uwsgi_temp_path $BERTH_VAR/plain; scgi_temp_path $BERTH_VAR/plain;
    server {
        listen 127.0.0.1:$PLAIN_PORT;
        location $berth_path { proxy_pass http://$upstream/; proxy_http_version 1.1; }
    }
    upstream echo { server $upstream; keepalive 8; }
    server {
        listen 127.0.0.1:$((PLAIN_PORT + 10));
        location $berth_path { proxy_pass http://echo/; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
nginx -e "$BERTH_VAR/plain/error.log" -p "$BERTH_VAR/plain" -c "$BERTH_VAR/plain/nginx.conf"

# (d) configurable-http-proxy
chp=""
if command -v npm >/dev/null; then
    (cd "$BERTH_VAR" && npm install --no-audit --no-fund --silent configurable-http-proxy >/dev/null 2>&1)
    chp=$BERTH_VAR/node_modules/.bin/configurable-http-proxy
    if [[ -x $chp ]]; then
        "$chp" --ip 127.0.0.1 --port "$CHP_PORT" --api-port $((CHP_PORT + 1)) --log-level error \
            --default-target "http://$upstream" >/dev/null 2>&1 &
        pids+=($!)
        for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$CHP_PORT/" && break; sleep 0.1; done
    else
        chp=""
    fi
fi

# wrk: prints "rps p99_ms non-2xx socket-errors"
run_wrk() { # URL CONNECTIONS [header...]
    local out url=$1 c=$2 h=()
    shift 2
    for x in "$@"; do h+=(-H "$x"); done
    out=$(wrk -t2 -c"$c" -d"${SECS}s" --latency "${h[@]}" "$url" 2>&1)
    local rps p99
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    local errs; errs=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    # "Socket errors: connect 0, read 0, write 0, timeout 0": their sum
    local sock; sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' <<<"$out")
    echo "${rps:-0} ${p99:-0} ${errs:-0} ${sock:-0}"
}

printf 'proxy: wrk -t2 -d%ss against one berth-echo instance, 2 CPUs (requests/s, p99 ms, non-2xx responses, socket errors)\n' "$SECS"
printf '%4s %-8s %10s %8s %8s %8s\n' c target rps p99_ms non2xx sockerr
for c in 10 50; do
    declare -A R
    read -r R[a] R[ap] R[ae] R[as] <<<"$(run_wrk "http://$upstream/" $c)"
    read -r R[b] R[bp] R[be] R[bs] <<<"$(run_wrk "http://127.0.0.1:$PLAIN_PORT$berth_path" $c)"
    read -r R[k] R[kp] R[ke] R[ks] <<<"$(run_wrk "http://127.0.0.1:$((PLAIN_PORT + 10))$berth_path" $c)"
    read -r R[c] R[cp] R[ce] R[cs] <<<"$(run_wrk "$URL$berth_path" $c "Host: $ws_host" "Cookie: berth_ws=$ws_cookie")"
    if [[ -n $chp ]]; then
        read -r R[d] R[dp] R[de] R[ds] <<<"$(run_wrk "http://127.0.0.1:$CHP_PORT/" $c)"
    else
        R[d]=0 R[dp]=0 R[de]=n/a R[ds]=n/a
    fi
    for t in a:direct b:nginx k:nginx-ka c:berth d:chp; do
        k=${t%%:*}
        printf '%4s %-8s %10s %8s %8s %8s\n' $c "${t#*:}" "${R[$k]}" "${R[${k}p]}" "${R[${k}e]}" "${R[${k}s]}"
    done
    awk -v b="${R[b]}" -v k="${R[k]}" -v c="${R[c]}" -v d="${R[d]}" -v conn=$c \
        -v cp="${R[cp]}" -v kp="${R[kp]}" \
        'function ratio(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "n/a" }
         BEGIN {
           printf "     c=%d: berth/nginx-ka = %s (goal >= 0.80), p99 berth/nginx-ka = %s (goal <= 2.00)\n", conn, ratio(c, k), ratio(cp, kp)
           printf "     c=%d: berth/nginx = %s (goal >= 0.50), berth/chp = %s (goal >= 4)\n", conn, ratio(c, b), (d > 0 ? sprintf("%.1f", c/d) : "n/a") }'
done
