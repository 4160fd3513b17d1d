#!/usr/bin/env bash
# Access taken away ends the WebSockets it had opened (issue 10 item 8): a
# WebSocket held open through the proxy to a real berth-echo container ends
# within 60 s of the token that opened it being revoked, the session being
# logged out, the account being disabled, and the instance being deleted;
# one whose access stays keeps going. The worker cuts them (src/worker/revoke.c).
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need node

scratch rv 2
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [[ -n ${KEEP_TMP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT
PORT=${BERTH_URL##*:}

admin_login "$TMP/admin"
admin POST /api/v1/templates "{\"name\":\"$P-echo\",\"image\":\"berth-demo/web:1\",\"command\":[\"/usr/local/bin/berth-echo\"],\"http_port\":8080,\"proxy_mode\":\"keep\",\"cpus\":0.5,\"memory_mb\":64,\"pids_limit\":64}"
U=$P-u
dev_login "$U" "$TMP/u"
create "{\"template\":\"$P-echo\",\"name\":\"echo\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"; ID=$IID
create "{\"template\":\"$P-echo\",\"name\":\"gone\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"; GID=$IID
T1=$(new_token keep -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF") T2=$(new_token revoke -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF")
T2ID=$(dev GET /api/v1/tokens && jq -r '(.items // .)[] | select(.name == "revoke") | .id' <<<"$BODY")
for id in "$ID" "$GID"; do wait_status "$id" running 60 -H "Authorization: Bearer $T1" 2>/dev/null; done
if [[ -z $ID || -z $GID || -z $T1 || -z $T2 || -z $T2ID ]]; then
    fail "an instance and tokens to hold WebSockets with" "$BODY"; exit 0
fi
ok "an instance and tokens to hold WebSockets with"

# hold NAME INSTANCE CREDENTIAL-HEADER: a WebSocket through the proxy, held
# open (a ping a second) in the background; its output in $TMP/NAME.out.
hold() {
    node "$ROOT/tests/lib/ws-client.mjs" "ws://127.0.0.1:$PORT/container/$U/$2/ws" \
        -H "Host: $U.localhost:$PORT" -H "Origin: http://$U.localhost:$PORT" -H "$3" \
        --timeout 600000 echo hello hold "$TMP/never" > "$TMP/$1.out" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
}
# ended NAME: seconds until the held WebSocket ended (61: not within 60 s)
ended() {
    local pid; eval "pid=\$PID_$1"
    for i in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || { echo $(( (i + 1) / 2 )); return; }
        sleep 0.5
    done
    echo 61
}
opened() { # opened NAME: the WebSocket is up (its echo came back)
    for _ in $(seq 1 40); do grep -q '^echo hello' "$TMP/$1.out" && return 0; sleep 0.25; done
    cat "$TMP/$1.out" >&2; return 1
}

# A workspace cookie for the session-bound cases.
ws_login "$DEV_JAR" "$(ws_origin "$U")/container/$U/echo/"
WSC=$(awk '$6 == "berth_ws" {print $7}' "$DEV_JAR" | tail -1)

hold keep echo "Authorization: Bearer $T1"
hold tok echo "Authorization: Bearer $T2"
hold sess echo "Cookie: berth_ws=$WSC"
check "WebSockets open through the proxy with a token and with the workspace cookie" \
    bash -c "$(declare -f opened); TMP=$TMP; opened keep && opened tok && opened sess"

dev DELETE "/api/v1/tokens/$T2ID"
s=$(ended tok)
check "revoking the token that opened a WebSocket ends it within 60 s (${s} s)" test "$s" -le 60
# That cut every connection to the instance (they cannot be told apart):
# the unrevoked one reconnects as a browser would.
hold keep2 echo "Authorization: Bearer $T1"
check "... and a connection whose access stays opens again at once" opened keep2
sleep 7 # longer than a pass of the worker
check "... and stays open when nothing is revoked" kill -0 "$PID_keep2"

dev POST /api/v1/auth/logout
s=$(ended sess)
check "logging out ends the session's WebSocket within 60 s (${s} s)" test "$s" -le 60
# Each revocation below on its own pass of the worker, so the log names it.
logged() { wait_for 20 grep -q "$1" "$WORKER_LOG"; }
check "the worker says what it cut and why (session ended)" logged "instance $ID: [0-9]* proxied connection(s) cut (session ended)"

hold del gone "Authorization: Bearer $T1"
opened del
http DELETE "/api/v1/instances/$GID" "" -H "Authorization: Bearer $T1"
s=$(ended del)
check "deleting the instance ends its WebSocket within 60 s (${s} s)" test "$s" -le 60

hold dis echo "Authorization: Bearer $T1"
opened dis
admin PATCH "/api/v1/users/$DEV_ID" '{"disabled":true}'
s=$(ended dis)
check "disabling the account ends its WebSocket within 60 s (${s} s)" test "$s" -le 60
check "the worker says what it cut and why (account disabled)" logged "instance $ID: [0-9]* proxied connection(s) cut (account disabled)"
