#!/usr/bin/env bash
# exec never starves the API (issue 12 item 3): execs wait for the worker on
# a pool of their own (exec_threads), not on request threads. A developer
# starts a dozen `sleep 8` execs at once: those beyond exec_per_user (4 in
# the test stack's defaults) get 429 rate_limited with Retry-After and never
# start in the container; the admitted ones all end with exit code 0; while
# they sleep, /api/v1/health and a proxied request to the developer's
# workspace answer within 300 ms, 10 times each; a second developer's exec
# runs meanwhile. And an exec's answer is what it always was.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch xc 2
PER_USER=4 # exec_per_user's default
LIMIT_S=0.300

cleanup() {
    local f id
    for f in "$TMP"/ids.*; do
        [[ -f $f ]] || continue
        for id in $(cat "$f"); do
            curl -s -o /dev/null --max-time 30 -X DELETE -H "Authorization: Bearer ${f##*/ids.}" \
                "$BERTH_URL/api/v1/instances/$id?delete_volumes=true"
        done
    done
    wait 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

admin_login "$TMP/admin.jar"
# launch TOKEN: prints the id of a new `web` instance named ws once it runs
# (the id also in $TMP/ids.TOKEN, for the cleanup)
launch() {
    create '{"template":"web","name":"ws"}' -H "Authorization: Bearer $1"
    [[ -n $IID ]] || return 1
    echo "$IID" >>"$TMP/ids.$1"
    wait_status "$IID" running 60 -H "Authorization: Bearer $1" && echo "$IID"
}

user_token "$P-a" developer; TA=$TOKEN
user_token "$P-b" developer; TB=$TOKEN
IA=$(launch "$TA") IB=$(launch "$TB")
if [[ -z $TA || -z $TB || -z $IA || -z $IB ]]; then
    fail "two developers launch a web instance each" "tokens: '$TA' '$TB' ids: '$IA' '$IB'"
    exit 0
fi
ok "two developers launch a web instance each"
URL_A="$(ws_origin "$P-a")/container/$P-a/ws/"
for _ in $(seq 1 80); do [[ $(http_code -H "Authorization: Bearer $TA" "$URL_A") == 200 ]] && break; sleep 0.25; done
expect_eq "the workspace answers through the proxy" 200 "$(http_code -H "Authorization: Bearer $TA" "$URL_A")"

# ---- the answer is the same as before ----
http POST "/api/v1/instances/$IA/exec" '{"command":["sh","-c","echo hi; exit 3"]}' -H "Authorization: Bearer $TA"
expect_eq "exec answers 200 with the exit code" "200 3" "$STATUS $(jq -r .exit_code <<<"$BODY")"
expect_eq "exec answers the output" "hi" "$(jq -r .output <<<"$BODY" | sed '/^$/d')"
expect_eq "exec answers no timed_out for a command that ended" "null" "$(jq -r .timed_out <<<"$BODY")"

# ---- a dozen sleeping execs at once ----
for i in $(seq 1 12); do
    curl -s --max-time 60 -o "$TMP/e$i.body" -D "$TMP/e$i.hdr" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $TA" -H 'Content-Type: application/json' \
        --data-binary '{"command":["sleep","8"]}' "$BERTH_URL/api/v1/instances/$IA/exec" \
        >"$TMP/e$i.code" 2>/dev/null &
done
sleep 1

# while they sleep: health and the proxy answer quickly, 10 times each
slow_h="" slow_p="" max_h=0 max_p=0
for i in $(seq 1 10); do
    out=$(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{time_total}' "$BERTH_URL/api/v1/health")
    [[ ${out%% *} == 200 ]] && awk -v t="${out#* }" -v l=$LIMIT_S 'BEGIN {exit !(t < l)}' || slow_h+=" [$out]"
    max_h=$(awk -v a="$max_h" -v b="${out#* }" 'BEGIN {print (b > a ? b : a)}')
    out=$(curl -s --max-time 10 -o /dev/null -w '%{http_code} %{time_total}' -H "Authorization: Bearer $TA" "$URL_A")
    [[ ${out%% *} == 200 ]] && awk -v t="${out#* }" -v l=$LIMIT_S 'BEGIN {exit !(t < l)}' || slow_p+=" [$out]"
    max_p=$(awk -v a="$max_p" -v b="${out#* }" 'BEGIN {print (b > a ? b : a)}')
    sleep 0.2
done
expect_eq "while 12 execs sleep, /api/v1/health answers 200 within 300 ms, 10 times (slowest ${max_h}s)" "" "$slow_h"
expect_eq "while 12 execs sleep, a proxied request answers 200 within 300 ms, 10 times (slowest ${max_p}s)" "" "$slow_p"

# no more of them started in the container than were admitted
top=$(docker top "berth-$IA" 2>&1)
n=$(grep -c 'sleep 8$' <<<"$top")
if [[ $n -ge 1 && $n -le $PER_USER ]]; then ok "at most $PER_USER of the execs run in the container ($n)"
else fail "at most $PER_USER of the execs run in the container" "sleep 8 processes: $n" "$top"; fi

# a second developer's exec runs while the first is at their cap
t0=$(date +%s%N)
http POST "/api/v1/instances/$IB/exec" '{"command":["sh","-c","echo b"]}' -H "Authorization: Bearer $TB"
ms=$((($(date +%s%N) - t0) / 1000000))
expect_eq "a second developer's exec runs while the first is capped" "200 0 b" \
    "$STATUS $(jq -r .exit_code <<<"$BODY") $(jq -r .output <<<"$BODY" | sed '/^$/d')"
if [[ $ms -lt 5000 ]]; then ok "it does not wait for the first developer's execs (${ms} ms)"
else fail "it does not wait for the first developer's execs" "took ${ms} ms"; fi
# the first developer, at the cap, is refused at once
http POST "/api/v1/instances/$IA/exec" '{"command":["true"]}' -H "Authorization: Bearer $TA"
expect_eq "the capped developer's next exec: 429 rate_limited" "429 rate_limited" "$STATUS $(jq -r .error.code <<<"$BODY")"

wait
admitted=0 limited=0 other=""
for i in $(seq 1 12); do
    c=$(cat "$TMP/e$i.code")
    if [[ $c == 200 ]]; then
        admitted=$((admitted + 1))
        [[ $(jq -r .exit_code "$TMP/e$i.body") == 0 ]] || other+=" [200 $(cat "$TMP/e$i.body")]"
    elif [[ $c == 429 ]]; then
        limited=$((limited + 1))
        grep -qi '^retry-after: [0-9]' "$TMP/e$i.hdr" || other+=" [429 without Retry-After]"
        [[ $(jq -r .error.code "$TMP/e$i.body") == rate_limited ]] || other+=" [429 $(cat "$TMP/e$i.body")]"
    else
        other+=" [$c $(cat "$TMP/e$i.body" 2>/dev/null)]"
    fi
done
expect_eq "of 12 execs, exec_per_user ($PER_USER) ran and the rest got 429" "$PER_USER $((12 - PER_USER))" "$admitted $limited"
expect_eq "the admitted execs all ended with exit code 0; every 429 is rate_limited with Retry-After" "" "$other"

# capacity comes back when the execs end
http POST "/api/v1/instances/$IA/exec" '{"command":["true"]}' -H "Authorization: Bearer $TA"
expect_eq "after they end, the developer can exec again" "200 0" "$STATUS $(jq -r .exit_code <<<"$BODY")"
