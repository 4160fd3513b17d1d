#!/usr/bin/env bash
# Quotas (issue 3, item 7): checked and reserved in the transaction that
# creates an instance. Two creates racing at the quota edge: exactly one wins,
# the other is 403 quota_exceeded and leaves no row. Needs POST /api/v1/instances
# (skipped until that route exists).
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

if ! "$BUILD/berth-api" --routes | grep -qx 'POST /api/v1/instances'; then
    ok "quota race: POST /api/v1/instances not implemented yet # SKIP"
    exit 0
fi
scratch q

admin_login "$TMP/admin.jar"
admin POST /api/v1/tokens '{"name":"quota-test"}'
ATOK=$(jq -r .token <<<"$BODY")
TEMPLATE=$(curl -s -H "Authorization: Bearer $ATOK" "$BERTH_URL/api/v1/templates" | jq -r '[.items[] | select(.name == "web")][0].name // .items[0].name')

mkdev() { user_token "$1" developer "$2"; DEV_TOKEN=$TOKEN DEV_ID=$USER_ID; } # mkdev NAME QUOTA_JSON
race() { # race TOKEN N: N parallel creates; prints the statuses sorted
    local i
    for i in $(seq 1 "$2"); do
        curl -s -o "$TMP/race.$i" -w '%{http_code}\n' -X POST -H "Authorization: Bearer $1" \
            -H 'Content-Type: application/json' \
            --data-binary "{\"template\":\"$TEMPLATE\",\"name\":\"r$i-x\"}" "$BERTH_URL/api/v1/instances" &
    done | sort | tr '\n' ' '
    wait
}

for round in 1 2 3; do
    mkdev "$P-n$round" '{"instances":1}'
    got=$(race "$DEV_TOKEN" 2)
    expect_eq "round $round: two creates at an instance quota of 1: one 202, one 403" "202 403 " "$got"
    expect_eq "round $round: exactly one live instance row" 1 \
        "$(psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID' AND status <> 'deleted'")"
done
check "the loser is told quota_exceeded" bash -c "cat $TMP/race.* | grep -q '\"quota_exceeded\"'"

cpus=$(curl -s -H "Authorization: Bearer $ATOK" "$BERTH_URL/api/v1/templates" | jq -r "[.items[] | select(.name == \"$TEMPLATE\")][0].cpus")
mkdev "$P-cpu" "{\"instances\":10,\"cpus\":$cpus,\"memory_mb\":65536}"
got=$(race "$DEV_TOKEN" 4)
expect_eq "four creates racing for a CPU quota of one instance: exactly one wins" "202 403 403 403 " "$got"
mkdev "$P-mem" '{"instances":10,"cpus":64,"memory_mb":1}'
http POST /api/v1/instances "{\"template\":\"$TEMPLATE\"}" -H "Authorization: Bearer $DEV_TOKEN"
expect_eq "a memory quota below the template's memory refuses the create" "403 quota_exceeded" \
    "$STATUS $(jq -r .error.code <<<"$BODY")"
expect_eq "a refused create leaves no instance row" 0 \
    "$(psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID'")"
expect_eq "a refused create is audited" 1 \
    "$(psql_q "SELECT (count(*) > 0)::int FROM audit_log WHERE actor = '$P-mem' AND outcome <> 'ok'")"
# Quotas and CPUs are numeric(8,2): they go out as written, not as the
# nearest binary double (0.59999999999999998).
http POST /api/v1/users "{\"username\":\"$P-dec\",\"password\":\"pw-$P-dec-1\",\"role\":\"developer\",\"quota\":{\"instances\":1,\"cpus\":0.6,\"memory_mb\":64}}" \
    -H "Authorization: Bearer $ATOK"
check "a CPU quota of 0.6 comes back as 0.6" grep -q '"cpus":0.6[,}]' <<<"$BODY"
exit 0
