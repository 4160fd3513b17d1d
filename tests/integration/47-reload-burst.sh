#!/usr/bin/env bash
# Reloads are coalesced (issue 5): 100 instances created within a second cost
# at most 3 nginx reloads until all 100 routes are in place, and deleting all
# 100 at once costs at most 3 more -- none of them after the last route is
# unlinked but the one in flight, however long Docker takes to remove the
# containers. Counted from the worker's log ("nginx reloaded"), with real
# containers behind the routes.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

N=${BURST_N:-100}
P=rb$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
LOG=$BERTH_VAR/log/worker.log
BOX=$BERTH_VAR/nginx/box-enabled
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

admin_login "$TMP/admin.jar"
admin POST /api/v1/tokens '{"name":"burst"}'
ADMIN=$(jq -r .token <<<"$BODY")
# A class starting at once: USERS users, N/USERS instances each (one user's
# creates queue behind each other on their quota; several users' do not).
USERS=${BURST_USERS:-10}
admin POST /api/v1/templates "{\"name\":\"$P\",\"image\":\"berth-demo/web:1\",\"http_port\":8080,\"cpus\":0.1,\"memory_mb\":16,\"pids_limit\":16}"
TPL_ID=$(jq -r .id <<<"$BODY")
: > "$TMP/users"
: > "$TMP/tokens"
for u in $(seq 1 "$USERS"); do
    admin POST /api/v1/users "{\"username\":\"$P-$u\",\"password\":\"pw-$P\",\"role\":\"developer\",\"quota\":{\"instances\":$N,\"cpus\":$N,\"memory_mb\":$((N * 64))}}"
    jq -r .id <<<"$BODY" >> "$TMP/users"
    http POST /api/v1/auth/login "{\"username\":\"$P-$u\",\"password\":\"pw-$P\"}" -c "$TMP/u.jar"
    csrf=$(jq -r .csrf_token <<<"$BODY")
    http POST /api/v1/tokens '{"name":"burst"}' -b "$TMP/u.jar" -H "X-CSRF-Token: $csrf"
    echo "$P-$u $(jq -r .token <<<"$BODY")" >> "$TMP/tokens"
done
# One curl, many transfers (a process per request would make the client the
# slow part): each create as a block of curl's config.
for k in $(seq 1 "$N"); do
    u=$(( (k - 1) % USERS + 1 ))
    [[ $k -gt 1 ]] && echo next
    printf 'url = "%s/api/v1/instances"\nheader = "Authorization: Bearer %s"\n' \
        "$BERTH_URL" "$(sed -n "${u}p" "$TMP/tokens" | cut -d' ' -f2)"
    printf 'header = "Content-Type: application/json"\ndata = "{\\"template\\":\\"%s\\",\\"name\\":\\"b%s\\"}"\nwrite-out = "\\n"\n' "$P" "$k"
done > "$TMP/plan"
TOKEN=$(head -1 "$TMP/tokens" | cut -d' ' -f2)
OWNER=$(head -1 "$TMP/tokens" | cut -d' ' -f1)

reloads() { local n; n=$(grep -c 'nginx reloaded' "$LOG" 2>/dev/null); echo "${n:-0}"; }
linked() { # how many of the burst's instances have their route linked
    local n=0 id
    for id in $(cat "$TMP/ids" 2>/dev/null); do [[ -L $BOX/$id.conf ]] && n=$((n + 1)); done
    echo $n
}
# Settled: no reload for 2 s (the worker reloads at most every half second).
settle() {
    local last; last=$(reloads)
    for _ in $(seq 1 60); do
        sleep 2
        [[ $(reloads) == "$last" ]] && return
        last=$(reloads)
    done
}
settle
before=$(reloads)
t0=$(date +%s.%N)
curl -s --parallel --parallel-max 25 -K "$TMP/plan" > "$TMP/creates" 2>/dev/null
t1=$(date +%s.%N)
jq -r '.instance.id // empty' "$TMP/creates" > "$TMP/ids"
jq -r 'select(.instance.id) | "\(.instance.id) \(.instance.user)"' "$TMP/creates" > "$TMP/owners"
expect_eq "$N creates are accepted" "$N" "$(wc -l < "$TMP/ids")"
echo "  [reload-burst] $N creates sent in $(echo "$t1 - $t0" | bc) s" >&2
for _ in $(seq 1 600); do [[ $(linked) == "$N" ]] && break; sleep 0.2; done
expect_eq "all $N routes are linked" "$N" "$(linked)"
settle
n=$(( $(reloads) - before ))
check "creating $N instances within about a second cost at most 3 nginx reloads ($n)" test "$n" -le 3 -a "$n" -ge 1
running() { # how many of the burst run
    http GET "/api/v1/instances?all=true&status=running&limit=500" "" -H "Authorization: Bearer $ADMIN"
    jq --rawfile ids "$TMP/ids" '[.items[] | select(.id as $i | $ids | contains($i))] | length' <<<"$BODY"
}
for _ in $(seq 1 600); do [[ $(running) == "$N" ]] && break; sleep 1; done
expect_eq "all $N run" "$N" "$(running)"
expect_eq "a route of the burst serves its container (on its workspace origin, with the owner's token)" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$(ws_origin "$OWNER")/container/$OWNER/b1/")"

settle
before=$(reloads)
sed "s|.*|url = \"$BERTH_URL/api/v1/instances/&?delete_volumes=true\"\nrequest = DELETE\nheader = \"Authorization: Bearer $ADMIN\"\noutput = /dev/null\nnext|" "$TMP/ids" |
    sed '$d' > "$TMP/deletes"
t0=$(date +%s.%N)
curl -s --parallel --parallel-max 25 -K "$TMP/deletes" 2>/dev/null
echo "  [reload-burst] $N deletes sent in $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
for _ in $(seq 1 300); do [[ $(linked) == 0 ]] && break; sleep 0.2; done
expect_eq "deleting them all unlinks every route" 0 "$(linked)"
unlinked=$(reloads)
settle
n=$(( $(reloads) - before )) m=$(( $(reloads) - unlinked ))
check "deleting $N instances at once cost at most 3 nginx reloads ($n)" test "$n" -le 3 -a "$n" -ge 1
# A delete takes its route away when it begins; Docker removing the
# containers afterwards (seconds, more on a slow machine) is no route change.
check "once every route is unlinked, the deletes Docker is still finishing cost no reload but the one in flight ($m)" \
    test "$m" -le 1
deleting() {
    http GET "/api/v1/instances?all=true&status=deleting&limit=500" "" -H "Authorization: Bearer $ADMIN"
    jq '.items | length' <<<"$BODY"
}
for _ in $(seq 1 600); do [[ $(deleting) == 0 ]] && break; sleep 1; done
while read -r uid; do http DELETE "/api/v1/users/$uid" "" -H "Authorization: Bearer $ADMIN"; done < "$TMP/users"
for _ in $(seq 1 120); do
    http DELETE "/api/v1/templates/$TPL_ID" "" -H "Authorization: Bearer $ADMIN"
    [[ $STATUS == 204 || $STATUS == 404 ]] && break
    sleep 1
done
exit 0
