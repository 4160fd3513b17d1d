#!/usr/bin/env bash
# HTTP exposure (issue 5) end to end, through nginx and a real container
# running berth-echo (tests/images/README.md): the owner reaches
# /container/<user>/<instance>/ on its workspace origin (issue 10: ws_origin;
# the UI's with workspace_host = same) under proxy_mode strip and keep, with
# the workspace cookie its browser signs in for (ws_login) or its API token;
# other users, viewers, admins (their API tokens), anonymous clients, revoked
# tokens and logged-out sessions do not (401/403, on plain requests and on
# WebSocket upgrades); the container never sees berth's cookies (berth_session,
# berth_ws) or Authorization, on requests or upgrades; X-Forwarded-*
# arrive; 1 MiB chunked and 10 MiB bodies pass intact; server-sent events
# arrive as they are sent; a WebSocket echo stays open while 10 other
# instances are created and deleted (nginx reloads under it); a stopped
# instance answers berth's page without a reload; a deleted one's route is gone.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need node

scratch px 2
WS=(node "$ROOT/tests/lib/ws-client.mjs")
# Workspaces are served on their owner's workspace origin. node does not
# resolve *.localhost: it connects to nginx and names the host.
DO=$(ws_origin "$P-dev") CO=$(ws_origin "$P-churn")
WSURL=ws://127.0.0.1:${BERTH_URL##*:}
WSH=(-H "Host: ${DO#http://}")
HOLD_PID=""
cleanup() {
    [[ -n $HOLD_PID ]] && kill "$HOLD_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

login() { # login USER PASSWORD [JAR] -> "cookie csrf" (the session also in cookie jar JAR)
    local h; h=$(mktemp)
    curl -s -D "$h" -o "$h.body" -H 'Content-Type: application/json' ${3:+-c "$3"} \
        -d "{\"username\":\"$1\",\"password\":\"$2\"}" "$BERTH_URL/api/v1/auth/login"
    echo "$(grep -i '^set-cookie: berth_session=' "$h" | sed 's/^[^=]*=\([^;]*\).*/\1/') $(jq -r .csrf_token "$h.body")"
    rm -f "$h" "$h.body"
}
read -r ACOOK ACSRF <<<"$(login admin "$BERTH_ADMIN_PASSWORD")"
admin_post() { curl -s -b "berth_session=$ACOOK" -H "X-CSRF-Token: $ACSRF" -H 'Content-Type: application/json' -d "$2" "$BERTH_URL$1"; }
for u in dev other; do admin_post /api/v1/users "{\"username\":\"$P-$u\",\"password\":\"pw-$P-$u\",\"role\":\"developer\"}" >/dev/null; done
admin_post /api/v1/users "{\"username\":\"$P-view\",\"password\":\"pw-$P-view\",\"role\":\"viewer\"}" >/dev/null
# The user whose instances come and go under an open WebSocket.
admin_post /api/v1/users "{\"username\":\"$P-churn\",\"password\":\"pw-$P-churn\",\"role\":\"developer\",\"quota\":{\"instances\":12,\"cpus\":12,\"memory_mb\":4096}}" >/dev/null
DJAR=$TMP/dev.jar
read -r DCOOK DCSRF <<<"$(login "$P-dev" "pw-$P-dev" "$DJAR")"
read -r OCOOK OCSRF <<<"$(login "$P-other" "pw-$P-other")"
read -r VCOOK VCSRF <<<"$(login "$P-view" "pw-$P-view")"
read -r CCOOK CCSRF <<<"$(login "$P-churn" "pw-$P-churn")"
# API tokens: what reaches a workspace origin without signing in there (the
# UI session does not: it is a cookie of the UI's host).
token() { new_token proxy -b "berth_session=$1" -H "X-CSRF-Token: $2"; } # cookie csrf -> a new API token
tok=$(curl -s -b "berth_session=$DCOOK" -H "X-CSRF-Token: $DCSRF" -H 'Content-Type: application/json' \
    -d '{"name":"proxy"}' "$BERTH_URL/api/v1/tokens")
TOKEN=$(jq -r .token <<<"$tok"); TOKID=$(jq -r .id <<<"$tok")
OTOK=$(token "$OCOOK" "$OCSRF") VTOK=$(token "$VCOOK" "$VCSRF") ATOK=$(token "$ACOOK" "$ACSRF") CTOK=$(token "$CCOOK" "$CCSRF")
if [[ -z $TOKEN || -z $OTOK || -z $VTOK || -z $ATOK || -z $CTOK ]]; then
    fail "API tokens for the owner, another developer, a viewer, an admin and the churn user" \
        "owner '$TOKEN' other '$OTOK' viewer '$VTOK' admin '$ATOK' churn '$CTOK'"
    exit 0
fi

# berth-echo (the demo image's HTTP/1.1 test upstream) with 2 CPUs, so a loaded
# test machine does not make the upstream the slow part; the same in keep mode;
# a small one for the instances that come and go.
echo_tpl() { # name proxy_mode cpus memory_mb
    admin_post /api/v1/templates "{\"name\":\"$1\",\"image\":\"berth-demo/web:1\",\"command\":[\"/usr/local/bin/berth-echo\"],\"http_port\":8080,\"proxy_mode\":\"$2\",\"cpus\":$3,\"memory_mb\":$4,\"pids_limit\":256}" >/dev/null
}
echo_tpl "$P-echo" strip 2 128
echo_tpl "$P-keep" keep 0.5 64
echo_tpl "$P-tiny" strip 0.25 32

launch() { # cookie csrf template name -> IID (empty on failure)
    create "{\"template\":\"$3\",\"name\":\"$4\"}" -b "berth_session=$1" -H "X-CSRF-Token: $2"
}
wait_route() { # URL TOKEN -> waits until the route answers 200 (20 s at most)
    for _ in $(seq 1 80); do
        [[ $(http_code -H "Authorization: Bearer $2" "$1") == 200 ]] && return 0
        sleep 0.25
    done
    return 1
}
open_url() { # cookie id -> the instance's urls.open
    curl -s --max-time 30 -b "berth_session=$1" "$BERTH_URL/api/v1/instances/$2" | jq -r '.urls.open // empty'
}

# The developer launches one of each.
launch "$DCOOK" "$DCSRF" "$P-echo" site; id=$IID
launch "$DCOOK" "$DCSRF" "$P-keep" kept; kid=$IID
if [[ -z $id || -z $kid ]]; then
    fail "the developer launches instances" "strip: '$id' keep: '$kid'"
    exit 0
fi
ok "the developer launches instances"
reach "the instance runs" "$id" running 120 -b "berth_session=$DCOOK"
reach "the keep-mode instance runs" "$kid" running 120 -b "berth_session=$DCOOK"
BASE=/container/$P-dev/site/
KBASE=/container/$P-dev/kept/
wait_route "$DO$BASE" "$TOKEN"
wait_route "$DO$KBASE" "$TOKEN"
# The owner's browser signs in to each workspace through its urls.open: a
# berth_ws cookie of the workspace host and that instance's path.
ws_login "$DJAR" "$(open_url "$DCOOK" "$id")"; st1=$STATUS
ws_login "$DJAR" "$(open_url "$DCOOK" "$kid")"; st2=$STATUS
expect_eq "the owner's browser signs in to both workspaces on their origin (urls.open)" "200 200" "$st1 $st2"
body=$(curl -s --max-time 30 -b "$DJAR" "$DO$BASE")
check "the owner reaches the container at /container/<user>/<instance>/ on its workspace origin" grep -q "berth demo workspace" <<<"$body"

# What the container sees.
body=$(curl -s --max-time 30 -b "$DJAR" "$DO${BASE}a/b?c=d")
check "strip mode: the container gets the path without the prefix" grep -qx 'request: GET /a/b?c=d HTTP/1.1' <<<"$body"
body=$(curl -s --max-time 30 -b "$DJAR" "$DO${KBASE}a/b?c=d")
check "keep mode: the container gets the whole path" grep -qx "request: GET ${KBASE}a/b?c=d HTTP/1.1" <<<"$body"
# nginx keeps its connections to the instance (the route's upstream group):
# of separate client connections in a row, later ones arrive on an upstream
# connection that carried requests before (each nginx worker keeps its own).
reused=0
for _ in 1 2 3 4 5 6; do
    n=$(curl -s --max-time 30 -b "$DJAR" "$DO$BASE" | sed -n 's/^connection: request //p')
    [[ ${n:-0} -gt 1 ]] && reused=$((reused + 1))
done
check "upstream connections are kept and reused across client connections ($reused of 6 reused)" test "$reused" -ge 3
check "... and a non-upgrade request reaches the container without 'Connection: close'" \
    bash -c "! curl -s --max-time 30 -b '$DJAR' '$DO${BASE}headers' | grep -qix 'connection: close'"
# Every credential of berth's at once -- the workspace cookie, the UI session
# (a browser would not send it here; planted), a token -- and the app's own.
WSC=$(ws_cookie "$DJAR" "$BASE")
[[ $WSC == berth_ws=* ]] && ALLB="$WSC; berth_session=$DCOOK" || ALLB="$WSC; berth_ws=$(printf '0%.0s' {1..64})"
hdrs=$(curl -s --max-time 30 -H "Cookie: $ALLB; theirs=kept" -H "Authorization: Bearer $TOKEN" -H 'X-Test: 1' "$DO${BASE}headers")
if grep -qi 'berth_session\|berth_ws\|^authorization:' <<<"$hdrs" || ! grep -qi '^host:' <<<"$hdrs"; then
    fail "the container never sees berth_session, berth_ws or Authorization" "$(grep -i '^cookie:\|^authorization:' <<<"$hdrs")"
else ok "the container never sees berth_session, berth_ws or Authorization"; fi
check "... while the app's own cookies pass" grep -qix 'cookie: theirs=kept' <<<"$hdrs"
check "... and other request headers too" grep -qix 'x-test: 1' <<<"$hdrs"
check "X-Forwarded-Prefix names the instance's path" grep -qix "x-forwarded-prefix: /container/$P-dev/site" <<<"$hdrs"
check "X-Forwarded-For and -Proto arrive" bash -c "grep -qix 'x-forwarded-for: 127.0.0.1' <<<'$hdrs' && grep -qix 'x-forwarded-proto: http' <<<'$hdrs'"
khdrs=$(curl -s --max-time 30 -b "$DJAR" "$DO${KBASE}headers")
check "keep mode: X-Forwarded-Prefix names the instance's path" grep -qix "x-forwarded-prefix: /container/$P-dev/kept" <<<"$khdrs"
hdrs=$(curl -s --max-time 30 -H "Authorization: Bearer $TOKEN" "$DO${BASE}headers")
check "a bearer token of the owner gets through" grep -qi '^host:' <<<"$hdrs"
if grep -qi '^authorization:' <<<"$hdrs"; then fail "the Authorization header is not forwarded" "$(grep -i '^authorization:' <<<"$hdrs")"
else ok "the Authorization header is not forwarded"; fi

# Bodies: berth-echo reads them whole and answers their length and SHA-256.
upload() { # file [curl args...] -> "length=N sha256=HEX" and curl's status line
    local f=$1; shift
    curl -s --max-time 120 -w '\nHTTP %{http_code} in %{time_total}s' -b "$DJAR" \
        -H 'Content-Type: application/octet-stream' "$@" --data-binary @"$f" "$DO${BASE}upload"
}
for size in 1 10; do
    head -c $((size * 1048576)) /dev/urandom > "$TMP/$size.bin"
done
want="length=1048576 sha256=$(sha256sum < "$TMP/1.bin" | cut -d' ' -f1)"
out=$(upload "$TMP/1.bin" -H 'Transfer-Encoding: chunked')
if grep -qx "$want" <<<"$out"; then ok "a 1 MiB chunked POST body passes through the proxy intact"
else fail "a 1 MiB chunked POST body passes through the proxy intact" "want: $want" "got: $out" "$(tail -5 "$BERTH_VAR/log/nginx-error.log")"; fi
want="length=10485760 sha256=$(sha256sum < "$TMP/10.bin" | cut -d' ' -f1)"
out=$(upload "$TMP/10.bin")
if grep -qx "$want" <<<"$out"; then ok "a 10 MiB POST body passes through the proxy intact (sha256)"
else fail "a 10 MiB POST body passes through the proxy intact (sha256)" "want: $want" "got: $out" "$(tail -5 "$BERTH_VAR/log/nginx-error.log")"; fi
rm -f "$TMP"/*.bin

# Server-sent events: 5 events 300 ms apart arrive one by one, not all at the
# end of the stream (nothing on the way may hold the response back). Asked
# for with Accept-Encoding like a browser (--compressed), so compression on the
# way would have to stream too.
sse=$(start=${EPOCHREALTIME/./}
    curl -sN --compressed --max-time 30 -b "$DJAR" "$DO${BASE}sse?n=5&interval_ms=300" |
        while IFS= read -r line; do
            [[ $line == data:* ]] && echo "$(( (${EPOCHREALTIME/./} - start) / 1000 ))"
        done)
read -r -d '' -a at <<<"$sse"
n=${#at[@]} first=0 last=0
[[ $n -gt 0 ]] && first=${at[0]} last=${at[n - 1]}
if [[ $n == 5 && $last -ge 1100 && $((first * 2)) -lt $last ]]; then
    ok "server-sent events arrive unbuffered (ms after the request: ${at[*]})"
else
    fail "server-sent events arrive unbuffered" "5 events expected, the first before half the stream's 1200+ ms" "arrivals (ms): ${at[*]:-none}"
fi

# WebSockets. Who may upgrade: the same rules as plain requests.
wsc() { "${WS[@]}" "$WSURL${BASE}ws" "${WSH[@]}" --timeout 20000 "$@" 2>&1; }
expect_eq "the owner's WebSocket upgrade (its workspace cookie) gets 101" 101 "$(wsc -H "Cookie: $WSC" status)"
expect_eq "another user's WebSocket upgrade (their API token) gets 403" 403 "$(wsc -H "Authorization: Bearer $OTOK" status)"
expect_eq "a viewer's WebSocket upgrade (their API token) gets 403" 403 "$(wsc -H "Authorization: Bearer $VTOK" status)"
expect_eq "an admin's WebSocket upgrade (their API token) gets 403 (no implicit access)" 403 "$(wsc -H "Authorization: Bearer $ATOK" status)"
expect_eq "an anonymous WebSocket upgrade gets 401" 401 "$(wsc status)"
out=$("${WS[@]}" "$WSURL${BASE}ws?headers=1" "${WSH[@]}" -H "Authorization: Bearer $TOKEN" recv echo via-token close 2>&1)
check "a WebSocket with the owner's bearer token echoes" grep -qx 'echo via-token' <<<"$out"
if grep -qi 'authorization' <<<"$out" || ! grep -q '^recv .*Host' <<<"$out"; then
    fail "the WebSocket upgrade reaches the container without Authorization" "$out"
else ok "the WebSocket upgrade reaches the container without Authorization"; fi
out=$("${WS[@]}" "$WSURL${KBASE}ws" "${WSH[@]}" -H "Cookie: $(ws_cookie "$DJAR" "$KBASE")" echo kept fragments 'in three parts' binary 70000 close 2>&1)
expect_eq "keep mode: a WebSocket echoes text, fragments and binary and closes cleanly" \
    "echo kept|fragments in three parts|binary 70000|closed 1000" "$(paste -sd'|' <<<"$out")"
curl -s -o /dev/null -b "berth_session=$DCOOK" -H "X-CSRF-Token: $DCSRF" -X DELETE "$BERTH_URL/api/v1/instances/$kid"

# A WebSocket held open while 10 instances of another user are created and
# deleted: each comes with a route and goes with it, so nginx reloads under
# the connection (old workers keep it: worker_shutdown_timeout).
"${WS[@]}" "$WSURL${BASE}ws?headers=1" "${WSH[@]}" -H "Cookie: $ALLB; theirs=kept" --timeout 20000 \
    recv echo before hold "$TMP/release" echo after close > "$TMP/ws.out" 2>&1 &
HOLD_PID=$!
for _ in $(seq 1 80); do grep -q '^echo before' "$TMP/ws.out" && break; sleep 0.25; done
check "a WebSocket through /container/... echoes" grep -qx 'echo before' "$TMP/ws.out"
if grep -q 'berth_session\|berth_ws' "$TMP/ws.out" || ! grep -qi '^recv .*cookie: theirs=kept' "$TMP/ws.out"; then
    fail "the WebSocket upgrade reaches the container without berth_session or berth_ws (its own cookies pass)" "$(cat "$TMP/ws.out")"
else ok "the WebSocket upgrade reaches the container without berth_session or berth_ws (its own cookies pass)"; fi
before=$(reloads)
churn=()
for i in $(seq 1 10); do
    launch "$CCOOK" "$CCSRF" "$P-tiny" "c$i"
    [[ -n $IID ]] && churn+=("$IID")
done
expect_eq "10 more instances are created" 10 "${#churn[@]}"
up=0
for cid in "${churn[@]}"; do # (an instance in error is not waited for longer)
    wait_status "$cid" 'running|error' 120 -b "berth_session=$CCOOK" 2>/dev/null &&
        [[ $(jq -r .status <<<"$INST") == running ]] && up=$((up + 1))
done
live=0
for i in $(seq 1 10); do wait_route "$CO/container/$P-churn/c$i/" "$CTOK" && live=$((live + 1)); done
expect_eq "... they run and their routes go live" "10 10" "$up $live"
for cid in "${churn[@]}"; do
    curl -s -o /dev/null -b "berth_session=$CCOOK" -H "X-CSRF-Token: $CCSRF" -X DELETE "$BERTH_URL/api/v1/instances/$cid"
done
gone=0
for cid in "${churn[@]}"; do
    wait_status "$cid" 'deleted|gone|error' 120 -b "berth_session=$CCOOK" 2>/dev/null &&
        [[ $(jq -r '.status // empty' <<<"$INST") != error ]] && gone=$((gone + 1))
done
routes_gone=0
for i in $(seq 1 10); do
    for _ in $(seq 1 80); do
        [[ $(http_code -H "Authorization: Bearer $CTOK" "$CO/container/$P-churn/c$i/") == 404 ]] && { routes_gone=$((routes_gone + 1)); break; }
        sleep 0.25
    done
done
expect_eq "... and are deleted, their routes gone" "10 10" "$gone $routes_gone"
after=$(reloads)
check "nginx reloaded meanwhile ($before -> $after reloads)" test "$after" -ge $((before + 2))
touch "$TMP/release"
for _ in $(seq 1 120); do kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.25; done
wait "$HOLD_PID" 2>/dev/null; HOLD_PID=""
expect_eq "the WebSocket stayed open through the reloads: it still echoes, then closes cleanly" \
    "echo after|closed 1000" "$(grep -E '^(echo after|closed|error)' "$TMP/ws.out" | paste -sd'|')"
check "... and answered pings all the while" grep -q '^held' "$TMP/ws.out"

# Who else may not (plain requests).
expect_eq "another developer (their API token) gets 403" 403 "$(http_code -H "Authorization: Bearer $OTOK" "$DO$BASE")"
expect_eq "a viewer (their API token) gets 403" 403 "$(http_code -H "Authorization: Bearer $VTOK" "$DO$BASE")"
expect_eq "an admin (their API token) gets 403 (no implicit access)" 403 "$(http_code -H "Authorization: Bearer $ATOK" "$DO$BASE")"
expect_eq "an anonymous API client gets 401" 401 "$(http_code "$DO$BASE")"
# A browser without a credential is sent to sign in on the UI origin for this
# instance and address, which (no UI session) sends it on to the login page
# with that sign-in address to come back to.
loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Accept: text/html' "$DO${BASE}x?y=1")
signin="$BERTH_URL/api/v1/auth/workspace?instance=$id&path=$(jq -rn --arg p "${BASE}x?y=1" '$p|@uri')"
expect_eq "an anonymous browser is sent to sign in on the UI origin with a return address" "302 $signin" "$loc"
loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Accept: text/html' "${loc#302 }")
expect_eq "... which sends it to the login page with that return address" \
    "302 $BERTH_URL/?next=$(jq -rn --arg p "${signin#"$BERTH_URL"}" '$p|@uri')" "$loc"
# berth-api caches its decisions for a moment: taking access away must not wait for that.
expect_eq "the owner's token reaches the instance (the decision is now cached)" 200 \
    "$(http_code -H "Authorization: Bearer $TOKEN" "$DO$BASE")"
curl -s -o /dev/null -b "berth_session=$DCOOK" -H "X-CSRF-Token: $DCSRF" -X DELETE "$BERTH_URL/api/v1/tokens/$TOKID"
expect_eq "a revoked token gets 401 at once" 401 "$(http_code -H "Authorization: Bearer $TOKEN" "$DO$BASE")"
S2JAR=$TMP/dev2.jar
read -r S2COOK S2CSRF <<<"$(login "$P-dev" "pw-$P-dev" "$S2JAR")"
ws_login "$S2JAR" "$DO$BASE"
expect_eq "a second session of the owner, signed in to the workspace, reaches the instance" 200 "$(http_code -b "$S2JAR" "$DO$BASE")"
curl -s -o /dev/null -b "berth_session=$S2COOK" -H "X-CSRF-Token: $S2CSRF" -X POST "$BERTH_URL/api/v1/auth/logout"
expect_eq "once it logs out, its workspace cookie gets 401 at once" 401 "$(http_code -b "$S2JAR" "$DO$BASE")"
expect_eq "a revoked token's WebSocket upgrade gets 401" 401 "$(wsc -H "Authorization: Bearer $TOKEN" status)"
expect_eq "an address no instance holds is 404" 404 "$(http_code -b "$DJAR" "$DO/container/$P-dev/nothing/")"

# Stop: berth's page, no reload. (First the reloads of the changes above are
# let settle: no new one for 2 s.)
settled=$(reloads)
for _ in $(seq 1 20); do
    sleep 2
    [[ $(reloads) == "$settled" ]] && break
    settled=$(reloads)
done
before=$(reloads)
curl -s -o /dev/null -b "berth_session=$DCOOK" -H "X-CSRF-Token: $DCSRF" -X POST "$BERTH_URL/api/v1/instances/$id/stop"
reach "the instance stops" "$id" stopped 120 -b "berth_session=$DCOOK"
page=$(curl -s --max-time 30 -H "Accept: text/html" -w '\n%{http_code}' -b "$DJAR" "$DO$BASE")
expect_eq "a stopped instance answers 503 with berth's page" "503 yes" \
    "$(tail -1 <<<"$page") $(grep -q 'This workspace is not running' <<<"$page" && echo yes || echo no)"
sleep 1
expect_eq "stopping needed no nginx reload" "$before" "$(reloads)"

# Delete: the route goes.
curl -s -o /dev/null -b "berth_session=$DCOOK" -H "X-CSRF-Token: $DCSRF" -X DELETE "$BERTH_URL/api/v1/instances/$id"
gone=no
for _ in $(seq 1 80); do
    [[ $(http_code -b "$DJAR" "$DO$BASE") == 404 ]] && { gone=yes; break; }
    sleep 0.25
done
expect_eq "a deleted instance's route is removed" yes "$gone"
check "its snippet files are gone" bash -c "! ls '$BERTH_VAR/nginx/box-available/$id'.* '$BERTH_VAR/nginx/box-enabled/$id'.* 2>/dev/null"
