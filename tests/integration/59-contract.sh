#!/usr/bin/env bash
# Contract details the clients trip on (issue 14, "Also"):
#   - GET /api/v1/templates and GET /api/v1/volumes page as API.md says
#     (?limit=, ?cursor=, next_cursor until the last page; a cursor this API
#     did not give out is a 400);
#   - numbers of numeric(8,2) columns go out as written (0.6, not
#     0.59999999999999998), in every answer -- the login's too;
#   - a node's last_seen_at moves with its worker's heartbeat.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch ct 2

admin_login "$TMP/admin"

# ---- templates, paged by name ----
for t in a b c; do
    admin POST /api/v1/templates "{\"name\":\"$P-$t\",\"image\":\"berth-demo/web:1\",\"cpus\":0.3,\"memory_mb\":16,\"pids_limit\":16}"
done
expect_eq "three templates are made" 201 "$STATUS"
pages=0 names=() cursor=""
while :; do
    admin GET "/api/v1/templates?limit=2${cursor:+&cursor=$cursor}"
    [[ $STATUS == 200 ]] || { fail "a page of templates answers" "$STATUS $BODY"; break; }
    n=$(jq '.items | length' <<<"$BODY")
    ((n <= 2)) || fail "a page holds at most ?limit= templates" "$n"
    mapfile -t -O "${#names[@]}" names < <(jq -r '.items[].name' <<<"$BODY")
    cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
    pages=$((pages + 1))
    [[ -n $cursor && $pages -lt 500 ]] || break
done
all=$(psql_q "SELECT count(*) FROM templates")
expect_eq "paging with limit=2 walks every template once ($pages pages)" "$all $all" \
    "$(printf '%s\n' "${names[@]}" | sort -u | wc -l) ${#names[@]}"
expect_eq "... in name order" "$(printf '%s\n' "${names[@]}" | LC_ALL=C sort)" "$(printf '%s\n' "${names[@]}")"
expect_eq "... and the test's three are among them" 3 "$(printf '%s\n' "${names[@]}" | grep -c "^$P-[abc]\$")"
admin GET "/api/v1/templates?limit=1"
check "limit=1 gives one template and a cursor" jq -e '(.items | length) == 1 and (.next_cursor | type) == "string"' <<<"$BODY"
for bad in '../x' '%27%20OR%201=1' "$(printf 'a%.0s' {1..40})" 'A-B'; do
    admin GET "/api/v1/templates?cursor=$bad"
    expect_eq "a cursor this API did not give out ($bad) is a 400 naming cursor" "400 cursor" "$STATUS $(err_field)"
done
admin GET "/api/v1/templates/$P-a"
check "a template's CPUs go out as written (0.3)" grep -q '"cpus":0.3[,}]' <<<"$BODY"

# ---- volumes, paged by creation ----
admin POST /api/v1/templates "{\"name\":\"$P-vols\",\"image\":\"berth-demo/web:1\",\"volumes\":{\"va\":\"/va\",\"vb\":\"/vb\",\"vc\":\"/vc\"},\"cpus\":0.1,\"memory_mb\":16,\"pids_limit\":16}"
expect_eq "a template with three volumes is made" 201 "$STATUS"
dev_login "$P-u" "$TMP/u" '{"instances":3,"cpus":0.6,"memory_mb":512}'
create "{\"template\":\"$P-vols\",\"name\":\"box\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
expect_eq "an instance with three volumes is accepted" 202 "$STATUS"
dev GET "/api/v1/volumes?limit=2"
check "the first page holds 2 volumes and a cursor" jq -e '(.items | length) == 2 and (.next_cursor | type) == "string"' <<<"$BODY"
first=$(jq -r '[.items[].id] | join(" ")' <<<"$BODY")
dev GET "/api/v1/volumes?limit=2&cursor=$(jq -r .next_cursor <<<"$BODY")"
check "the second holds the third and no cursor" jq -e '(.items | length) == 1 and .next_cursor == null' <<<"$BODY"
third=$(jq -r '.items[0].id' <<<"$BODY")
expect_eq "... a volume not on the first page" 0 "$(grep -c -- "$third" <<<"$first")"
for bad in not-a-uuid "%27%20OR%201=1--" "00000000-0000-0000-0000-00000000000%00" "$(printf 'f%.0s' {1..80})"; do
    dev GET "/api/v1/volumes?cursor=$bad"
    expect_eq "a volume cursor that is no id ($bad) is a 400 naming cursor" "400 cursor" "$STATUS $(err_field)"
done
dev GET "/api/v1/volumes?all=true&limit=500"
expect_eq "a developer's ?all=true still lists their own only" 3 "$(jq '.items | length' <<<"$BODY")"

# ---- numbers as written, in every answer ----
admin GET "/api/v1/users/$DEV_ID"
check "a quota of 0.6 CPUs goes out as 0.6" grep -q '"cpus":0.6[,}]' <<<"$BODY"
http POST /api/v1/auth/login "{\"username\":\"$P-u\",\"password\":\"pw-$P-u\"}"
expect_eq "the user logs in again" 200 "$STATUS"
check "... and the login's answer says 0.6 too" grep -q '"cpus":0.6[,}]' <<<"$BODY"
expect_eq "no answer here carried a binary float's tail" 0 "$(grep -c '9999999\|0000001' <<<"$BODY")"

# ---- a query value too long for its field, or holding a NUL, is refused,
# never read as absent (which would widen a filter to everything) ----
long=$(printf 'x%.0s' {1..200})
admin GET "/api/v1/users?q=$long"
expect_eq "a user search longer than its field is a 400 naming q" "400 q" "$STATUS $(err_field)"
admin GET "/api/v1/users?q=ab%00cd"
expect_eq "a user search holding a NUL is a 400 naming q" "400 q" "$STATUS $(err_field)"
admin GET "/api/v1/audit?target=$long"
expect_eq "an audit target longer than its field is a 400 naming target" "400 target" "$STATUS $(err_field)"
admin GET "/api/v1/audit?user=%00admin"
expect_eq "an audit user holding a NUL is a 400 naming user" "400 user" "$STATUS $(err_field)"
admin GET "/api/v1/instances?all=true&status=$long"
expect_eq "an instance status filter longer than its field is a 400 naming status" "400 status" "$STATUS $(err_field)"
admin GET "/api/v1/instances?limit=$long"
expect_eq "a limit longer than its field is a 400 naming limit" "400 limit" "$STATUS $(err_field)"

# ---- a node's last_seen_at follows the heartbeat ----
NODE=$(sed -n 's/^node *= *//p' "$BERTH_CONFIG" | tail -1)
NODE=${NODE:-local}
last_seen() {
    admin GET /api/v1/nodes
    jq -r --arg n "$NODE" '.items[] | select(.name == $n) | .last_seen_at' <<<"$BODY"
}
seen1=$(last_seen)
seen_later() { [[ $(last_seen) > $seen1 ]]; }
check "a node's last_seen_at moves with its worker's heartbeat (was $seen1)" wait_for 15 seen_later

check "the test's instance is deleted" delete_instances_of "$DEV_ID" 60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
