#!/usr/bin/env bash
# GET /metrics (issue 15, item 4): berth-api's request durations by route
# (the proxy check included) and the worker's own figures -- job duration by
# kind, Docker call duration by method, nginx's test and reload cycle,
# event-stream lag -- published through Redis, plus queue depth and instances
# by node and status; every line of it well-formed Prometheus text, and the
# histograms consistent (cumulative buckets, +Inf = count).
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch mx
admin_login "$TMP/admin.jar"
dev_login "$P" "$TMP/dev.jar"
create '{"template":"web","name":"mx"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
MID=$IID
reach "an instance runs (so a create job, Docker calls, a reload and events happened)" "$MID" running 120 -b "$DEV_JAR"
ws_login "$DEV_JAR" "$(jq -r .urls.open <<<"$INST")"
http GET /api/v1/health
# the worker publishes with its heartbeat: wait for a scrape that has the create
scrape() { curl -s --max-time 10 "$BERTH_URL/metrics" >"$TMP/m"; }
has_create() { scrape && grep -qE '^berth_worker_job_duration_seconds_count\{node="local",kind="create"\} [1-9]' "$TMP/m"; }
if wait_for 30 has_create; then ok "the worker's job durations reach /metrics (a create counted)"; else fail "the worker's job durations reach /metrics" "$(grep -c . "$TMP/m") lines"; fi

bad=$(grep -vE '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{([a-z_]+="[^"\\]*",?)*\})? -?[0-9.e+]+|[a-z_]+_bucket\{([a-z_]+="[^"\\]*",)*le="(\+Inf|[0-9.e+-]+)"\} [0-9]+)$' "$TMP/m" | head -3)
expect_eq "every line is a HELP, a TYPE or a sample" "" "$bad"
check "the API's durations by route: GET /api/v1/health counted" \
    grep -qE '^berth_api_request_duration_seconds_count\{method="GET",route="/api/v1/health"\} [1-9]' "$TMP/m"
check "... and the proxy check of workspace requests" \
    grep -qE '^berth_api_request_duration_seconds_count\{method="GET",route="/_berth/auth/\{id\}"\} [1-9]' "$TMP/m"
check "Docker's answers by method (GET counted)" \
    grep -qE '^berth_worker_docker_call_duration_seconds_count\{node="local",method="GET"\} [1-9]' "$TMP/m"
check "nginx's test of the routes and the whole reload cycle" \
    bash -c 'grep -qE "^berth_worker_nginx_duration_seconds_count\{node=\"local\",step=\"test\"\} [1-9]" "$1" && grep -qE "^berth_worker_nginx_duration_seconds_count\{node=\"local\",step=\"cycle\"\} [1-9]" "$1"' _ "$TMP/m"
check "the event stream's lag" grep -qE '^berth_worker_event_lag_seconds_count\{node="local"\} [1-9]' "$TMP/m"
check "reconcile passes" grep -qE '^berth_worker_reconcile_duration_seconds_count\{node="local"\} [1-9]' "$TMP/m"
check "queue depth per node (queued and active)" \
    bash -c 'grep -qE "^berth_queue_jobs\{node=\"local\",list=\"queued\"\} [0-9]+$" "$1" && grep -qE "^berth_queue_jobs\{node=\"local\",list=\"active\"\} [0-9]+$" "$1"' _ "$TMP/m"
check "instances by node and status (this one running)" \
    grep -qE '^berth_node_instances\{node="local",status="running"\} [1-9]' "$TMP/m"
# a histogram's buckets never decrease and its +Inf is its count
incons=$(awk '
    /_bucket\{/ { key = $1; sub(/,?le="[^"]*"\}/, "}", key); sub(/_bucket/, "", key)
                  if (key in last && $2 + 0 < last[key]) print "decreasing: " $1
                  last[key] = $2 + 0; if ($1 ~ /le="\+Inf"/) inf[key] = $2 + 0 }
    /_count[{ ]/ { key = $1; sub(/_count/, "", key); if (key !~ /\}$/) key = key "{}"; cnt[key] = $NF + 0 }
    END { for (k in inf) { c = k; if (!(c in cnt)) { sub(/\{\}$/, "", c) } if ((k in cnt) && cnt[k] != inf[k]) print "count != +Inf: " k } }' "$TMP/m")
expect_eq "histograms are cumulative and +Inf equals the count" "" "$incons"
http GET /metrics "" -H 'X-Forwarded-For: 127.0.0.1' -H 'Host: evil.example'
expect_eq "/metrics is not served on a workspace origin (another Host)" 404 "$STATUS"
delete_instances_of "$DEV_ID" 60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
