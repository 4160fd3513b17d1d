#!/usr/bin/env bash
# A job accepted around a Redis restart runs within 5 s of Redis being back
# (issue 12 item 7, the Redis part; berth/protocol.h's enqueue contract):
#   - after a restart, every API thread's connection is stale: the push is
#     retried once on a fresh one (src/api/enqueue.c) instead of being dropped;
#   - while Redis is away the request still answers 202 (the row is the
#     truth), and when Redis returns the worker compares every open job row
#     with its queues at once (src/worker/reconcile.c, on connect) instead of
#     at the next periodic pass (60 s).
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch rr 2

admin_login "$TMP/admin"
admin POST /api/v1/templates "{\"name\":\"$P-echo\",\"image\":\"berth-demo/web:1\",\"command\":[\"/usr/local/bin/berth-echo\"],\"http_port\":8080,\"proxy_mode\":\"keep\",\"cpus\":0.25,\"memory_mb\":64,\"pids_limit\":64}"
dev_login "$P-u" "$TMP/u"
create "{\"template\":\"$P-echo\",\"name\":\"box\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"; ID=$IID
check "the instance runs" wait_status "$ID" running 60 -b "$DEV_JAR"

redis_down() {
    local pid; pid=$(svc_pid redis)
    kill -TERM "$pid"
    wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
}
redis_up() {
    "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
    wait_for 10 bash -c '[[ $(redis-cli -s "$0/redis.sock" PING 2>/dev/null) == PONG ]]' "$RUN"
}
# job_left_queue JID: the worker has taken the job (its row left `queued`).
job_left_queue() { [[ $(psql_q "SELECT status FROM jobs WHERE id = '$1'") != queued ]]; }
# seconds_until_taken JID LIMIT: prints the seconds (0.1 s steps) until the
# worker took the job; 1 when it did not within LIMIT seconds.
seconds_until_taken() {
    local t0 d; t0=$(date +%s%N)
    wait_for "$2" job_left_queue "$1" || return 1
    d=$((($(date +%s%N) - t0) / 100000000)) # tenths of a second
    echo "$((d / 10)).$((d % 10))"
}

# --- 1: Redis restarted before the request: the API's connections are stale
redis_down && redis_up
check "Redis is back after a restart" redis_q PING
dev POST "/api/v1/instances/$ID/stop"
expect_eq "a stop right after Redis restarted is accepted" 202 "$STATUS"
JID=$(jq -r '.job.id // empty' <<<"$BODY")
if s=$(seconds_until_taken "$JID" 5); then
    ok "... and the worker takes its job within 5 s (${s} s): the push was retried on a fresh connection"
else
    fail "... and the worker takes its job within 5 s" "job $JID: $(psql_q "SELECT status FROM jobs WHERE id = '$JID'")" "$(grep -i "not pushed" "$BERTH_VAR/log/api.log" | tail -3)"
fi
check "the instance stops" wait_status "$ID" stopped 30 -b "$DEV_JAR"
check "the API did not give up on that push" bash -c "! grep -q 'job $JID not pushed' '$BERTH_VAR/log/api.log'"

# --- 1b: the calls the worker answers over Redis (exec, logs, stats) after a
# restart: every thread's connection is stale, each call's push is retried on
# a fresh one. Ten execs and ten stats: more than the exec pool's and the
# request threads' connections, so every one of them is met stale once.
dev POST "/api/v1/instances/$ID/start"
check "the instance runs again for the calls" wait_status "$ID" running 30 -b "$DEV_JAR"
# drive every connection once, so that each holds one when Redis goes
for _ in $(seq 10); do dev GET "/api/v1/instances/$ID/stats"; dev POST "/api/v1/instances/$ID/exec" '{"command":["true"]}'; done
redis_down && redis_up
bad=()
for i in $(seq 10); do
    dev POST "/api/v1/instances/$ID/exec" "{\"command\":[\"echo\",\"call-$i\"]}"
    [[ $STATUS == 200 && $(jq -r .output <<<"$BODY") == "call-$i"* ]] || bad+=("exec $i: $STATUS $(jq -c . <<<"$BODY" 2>/dev/null | head -c 160)")
    dev GET "/api/v1/instances/$ID/stats"
    [[ $STATUS == 200 ]] || bad+=("stats $i: $STATUS $(jq -c . <<<"$BODY" 2>/dev/null | head -c 160)")
done
expect_eq "after a Redis restart, 10 execs and 10 stats in a row all answer, none 503 (the stale connection's push is retried)" "" "${bad[*]}"
dev POST "/api/v1/instances/$ID/stop"
check "the instance stops for the next part" wait_status "$ID" stopped 30 -b "$DEV_JAR"

# --- 2: Redis away while the request is made: 202, run when Redis returns
redis_down
dev POST "/api/v1/instances/$ID/start"
expect_eq "a start while Redis is away is accepted (the row is the truth)" 202 "$STATUS"
JID=$(jq -r '.job.id // empty' <<<"$BODY")
expect_eq "... its job row is queued" queued "$(psql_q "SELECT status FROM jobs WHERE id = '$JID'")"
sleep 1
redis_up
if s=$(seconds_until_taken "$JID" 5); then
    ok "... and the worker takes it within 5 s of Redis being back (${s} s), not at the next reconcile pass"
else
    fail "... and the worker takes it within 5 s of Redis being back" "job $JID: $(psql_q "SELECT status FROM jobs WHERE id = '$JID'")" "$(tail -5 "$WORKER_LOG")"
fi
check "the instance runs again" wait_status "$ID" running 30 -b "$DEV_JAR"
n=$(psql_q "SELECT count(*) FROM jobs WHERE instance_id = '$ID' AND kind = 'start' AND created_at >= (SELECT created_at FROM jobs WHERE id = '$JID')")
expect_eq "one start job, run once (a duplicate push is dropped)" 1 "$n"
check "health is back" wait_health 200 50

check "the instance is deleted" delete_instances_of "$DEV_ID" 60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
