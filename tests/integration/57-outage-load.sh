#!/usr/bin/env bash
# Outages under load (issue 12 item 8), with the real services killed and
# started again by the test:
#   - Redis, then PostgreSQL, restarted while 10 creates and 10 deletes of one
#     user are in flight: every request answers 2xx or 503 (never 500, never
#     no answer); nothing is lost (every accepted create runs, every accepted
#     delete ends its instance; a refused create leaves nothing, a refused
#     delete leaves its instance as it was) and nothing is doubled (one
#     instance per accepted create, one container per instance, each job
#     finished once); all of it converged within 10 s of the service's return.
#   - dockerd restarted 3 times with 20 instances (15 running, 5 stopped):
#     after each, every instance is back in its desired state, in the
#     database and in Docker. Only where this stack started dockerd itself (it
#     will not restart an engine that other things on the machine use).
# Figures: how long after each return the user's instances converged.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch ol 3

admin_login "$TMP/admin"
admin POST /api/v1/templates "{\"name\":\"$P-w\",\"image\":\"berth-demo/web:1\",\"command\":[\"/usr/local/bin/berth-echo\"],\"http_port\":8080,\"proxy_mode\":\"keep\",\"cpus\":0.05,\"memory_mb\":16,\"pids_limit\":16}"
expect_eq "the test's template is made" 201 "$STATUS"
dev_login "$P-u" "$TMP/u" '{"instances":100,"cpus":10,"memory_mb":4096}'
[[ -n $DCSRF ]] || { fail "the test's developer logs in" "$BODY"; exit 0; }
B=$TMP/burst
mkdir -p "$B"

# ---- the user's instances as the database and Docker see them ----

# converged: no open job of the user, every instance in its desired state
# (deleted ones deleted), and Docker agrees (a container per live instance,
# running exactly when it should; none for a deleted one).
converged() {
    local open bad want have
    open=$(psql_q "SELECT count(*) FROM jobs WHERE user_id = '$DEV_ID' AND status IN ('queued', 'running')")
    bad=$(psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID' AND status <> desired")
    [[ $open == 0 && $bad == 0 ]] || return 1
    want=$(psql_q "SELECT id || ':' || CASE WHEN desired = 'running' THEN 't' ELSE 'f' END FROM instances WHERE user_id = '$DEV_ID' AND status <> 'deleted'" | sort)
    have=$(docker ps -a --filter "label=berth.user=$P-u" --format '{{.Label "berth.instance"}}:{{.State}}' |
        awk -F: '{ print $1 ":" ($2 == "running" ? "t" : "f") }' | sort)
    [[ $want == "$have" ]]
}
# seconds_to_converge LIMIT: prints the seconds (tenths) it took; 1 when not
# converged within LIMIT.
seconds_to_converge() {
    local t0 d; t0=$(date +%s%N)
    wait_for "$1" converged || return 1
    d=$((($(date +%s%N) - t0) / 100000000))
    echo "$((d / 10)).$((d % 10))"
}
state() {
    local want have
    want=$(psql_q "SELECT id || ':' || CASE WHEN desired = 'running' THEN 't' ELSE 'f' END FROM instances WHERE user_id = '$DEV_ID' AND status <> 'deleted'" | sort)
    have=$(docker ps -a --filter "label=berth.user=$P-u" --format '{{.Label "berth.instance"}}:{{.State}}' |
        awk -F: '{ print $1 ":" ($2 == "running" ? "t" : "f") }' | sort)
    echo "database (<) against Docker (>): $(diff <(echo "$want") <(echo "$have") | grep '^[<>]' | tr '\n' ' ')"
    echo "jobs open: $(psql_q "SELECT string_agg(kind || ' ' || status || ' #' || attempts, ', ') FROM jobs WHERE user_id = '$DEV_ID' AND status IN ('queued', 'running')")"
    echo "instances off desired: $(psql_q "SELECT string_agg(name || ' ' || status || '/' || desired, ', ') FROM instances WHERE user_id = '$DEV_ID' AND status <> desired")"
    echo "docker: $(docker ps -a --filter "label=berth.user=$P-u" --format '{{.Names}} {{.State}}' | tr '\n' ',')"
}

# make_instances PREFIX N: N instances PREFIX-1 ... PREFIX-N; their ids in IDS.
make_instances() {
    local i
    IDS=()
    for i in $(seq 1 "$2"); do
        create "{\"template\":\"$P-w\",\"name\":\"$1-$i\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
        [[ $STATUS == 202 ]] && IDS+=("$IID")
    done
}

# ---- requests in flight ----

# fire_create NAME / fire_delete ID: one request in the background; its
# status into $B/NAME.code (000: no answer), its body into $B/NAME.body.
fire_create() {
    curl -s --max-time 60 -o "$B/$1.body" -w '%{http_code}' -X POST -b "$DEV_JAR" \
        -H "X-CSRF-Token: $DCSRF" -H 'Content-Type: application/json' \
        --data-binary "{\"template\":\"$P-w\",\"name\":\"$1\"}" "$BERTH_URL/api/v1/instances" \
        > "$B/$1.code" 2>/dev/null || true
}
fire_delete() {
    curl -s --max-time 60 -o "$B/del-$1.body" -w '%{http_code}' -X DELETE -b "$DEV_JAR" \
        -H "X-CSRF-Token: $DCSRF" "$BERTH_URL/api/v1/instances/$1" > "$B/del-$1.code" 2>/dev/null || true
}
code_of() { local c; c=$(cat "$B/$1.code" 2>/dev/null); echo "${c:-000}"; }

# ---- the services ----

redis_down() {
    local pid; pid=$(svc_pid redis)
    kill -TERM "$pid" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
}
redis_up() {
    "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
    wait_for 10 bash -c '[[ $(redis-cli -s "$0/redis.sock" PING 2>/dev/null) == PONG ]]' "$RUN"
}
postgres_down() {
    local pid; pid=$(head -1 "$BERTH_VAR/pg/data/postmaster.pid" 2>/dev/null)
    kill -INT "$pid" 2>/dev/null # fast shutdown: sessions are cut, as in a crash of the server
    wait_for 20 bash -c "! kill -0 $pid 2>/dev/null"
}
postgres_up() {
    "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
    wait_for 20 pg_answers
}
pg_answers() { psql_q 'SELECT 1' >/dev/null 2>&1; }

# ---- one round: 10 creates and 10 deletes in flight around an outage ----

round() {
    local svc=$1 n=0 i id name codes bad500 noans c accepted refused kept s
    local -a ids=() names=() pids=()
    rm -f "$B"/*
    # ten running instances to delete during the outage
    make_instances "$svc-old" 10
    ids=("${IDS[@]}")
    expect_eq "$svc: ten instances to delete are accepted" 10 "${#ids[@]}"
    check "$svc: ... and run" seconds_to_converge 60
    # the outage, and the burst around it: a create and a delete every 0.15 s
    # for 1.5 s; the service goes 0.3 s in, for a second
    (
        sleep 0.3
        "${svc}_down"
        sleep 1
        "${svc}_up" || fail "$svc: comes back" "$("$ROOT/scripts/stack.sh" status 2>&1)"
    ) &
    local outage=$!
    for i in $(seq 1 10); do
        names+=("$svc-new-$i")
        fire_create "$svc-new-$i" & pids+=($!)
        fire_delete "${ids[$((i - 1))]}" & pids+=($!)
        sleep 0.15
    done
    wait "$outage"
    local t_back; t_back=$(date +%s%N)
    wait "${pids[@]}"
    codes=$(for c in "$B"/*.code; do cat "$c"; echo; done | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    bad500=0 noans=0
    for c in "$B"/*.code; do
        c=$(cat "$c"); c=${c:-000}
        [[ $c == 5* && $c != 503 ]] && bad500=$((bad500 + 1))
        [[ $c == 000 ]] && noans=$((noans + 1))
    done
    expect_eq "$svc: every one of the 20 requests answers 2xx or 503, never 500 (${codes%,})" 0 "$bad500"
    expect_eq "$svc: ... and none goes unanswered" 0 "$noans"
    # what each answer promised, and the row behind it
    accepted=0 refused=0 kept=0
    local lost=() ghosts=()
    for name in "${names[@]}"; do
        c=$(code_of "$name")
        n=$(psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID' AND name = '$name'")
        if [[ $c == 202 ]]; then
            accepted=$((accepted + 1))
            [[ $n == 1 ]] || lost+=("$name: 202 but $n rows")
        elif [[ $n != 0 ]]; then
            # a 503 after COMMIT ("queued but cannot be read") keeps its instance
            if grep -q "queued" "$B/$name.body"; then kept=$((kept + 1)); else ghosts+=("$name: $c ($(cat "$B/$name.body")) but $n rows"); fi
        else
            refused=$((refused + 1))
        fi
    done
    expect_eq "$svc: each accepted create has its one instance ($accepted accepted, $refused refused, $kept queued but unread)" "" "${lost[*]}"
    expect_eq "$svc: a refused create leaves nothing" "" "${ghosts[*]}"
    s=$(seconds_to_converge 10)
    if [[ -n $s ]]; then
        ok "$svc: everything converged ${s} s after the wait for the 20 answers ended"
    else
        fail "$svc: everything converged within 10 s" "$(state)"
        check "$svc: ... and within 60 s at least" seconds_to_converge 50
    fi
    local dt; dt=$((($(date +%s%N) - t_back) / 100000000))
    echo "  [$svc] converged $((dt / 10)).$((dt % 10)) s after $svc was back" >&2
    # deletes: accepted ones ended their instance, refused ones left it running
    local wrong=()
    for id in "${ids[@]}"; do
        c=$(code_of "del-$id")
        s=$(psql_q "SELECT status FROM instances WHERE id = '$id'")
        if [[ $c == 202 && $s != deleted ]] || [[ $c != 202 && $s != deleted && $s != running ]]; then
            wrong+=("$id: $c, now $s")
        fi
    done
    expect_eq "$svc: each accepted delete ended its instance; a refused one left it running" "" "${wrong[*]}"
    expect_eq "$svc: every job of the round is done (those that met the outage were retried)" "" \
        "$(psql_q "SELECT string_agg(kind || ' ' || status || ': ' || coalesce(error, ''), '; ') FROM jobs WHERE user_id = '$DEV_ID' AND status <> 'done'")"
    expect_eq "$svc: no instance got a second create job" 0 \
        "$(psql_q "SELECT count(*) FROM (SELECT instance_id FROM jobs WHERE user_id = '$DEV_ID' AND kind = 'create' GROUP BY instance_id HAVING count(*) > 1) d")"
    expect_eq "$svc: one container per live instance" "" \
        "$(docker ps -a --filter "label=berth.user=$P-u" --format '{{.Label "berth.instance"}}' | sort | uniq -d)"
    check "$svc: health is 200 again" wait_health 200 30
    check "$svc: the round's instances are deleted" delete_instances_of "$DEV_ID" 60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
}

round redis
round postgres

# ---- dockerd restarted three times with 20 instances ----

others=$(docker ps -a --format '{{.Label "berth.cluster"}}' | grep -v '^$' | grep -vcxF "$BERTH_CLUSTER")
if [[ ! -f $RUN/dockerd.pid || ${others:-0} -ne 0 ]]; then
    skip "dockerd restarted 3 times: every instance back in its desired state" \
        "this stack did not start dockerd, or other stacks' containers use it (it is not restarted under them)"
else
    make_instances d 20
    ids=("${IDS[@]}")
    expect_eq "dockerd: twenty instances are accepted" 20 "${#ids[@]}"
    check "dockerd: ... and run" seconds_to_converge 90
    for id in "${ids[@]:15:5}"; do
        dev POST "/api/v1/instances/$id/stop"
    done
    check "dockerd: five of them are stopped" seconds_to_converge 60
    for k in 1 2 3; do
        pid=$(svc_pid dockerd)
        t_stop=$(date +%s%N)
        kill -TERM "$pid" 2>/dev/null
        if ! wait_for 60 bash -c "! kill -0 $pid 2>/dev/null"; then
            fail "dockerd restart $k: dockerd stops" "pid $pid still there"
            break
        fi
        "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
        check "dockerd restart $k: Docker answers again" wait_for 60 docker info
        t0=$(date +%s%N)
        if wait_for 60 converged; then
            d=$((($(date +%s%N) - t0) / 100000000))
            ok "dockerd restart $k: all 20 back in their desired state (15 running, 5 stopped) $((d / 10)).$((d % 10)) s after Docker answered"
        else
            fail "dockerd restart $k: all 20 back in their desired state" "$(state)"
        fi
        # the running ones really went down and came back (Docker's restart
        # policy), and what the worker makes of the events meanwhile -- the
        # deaths, the starts, a reconcile pass -- leaves them so
        expect_eq "dockerd restart $k: the 15 were started again after the restart" 15 \
            "$(docker inspect -f '{{.State.StartedAt}}' $(docker ps -q --filter "label=berth.user=$P-u") 2>/dev/null |
                while read -r at; do [[ $(date -d "$at" +%s%N) -gt $t_stop ]] && echo; done | wc -l)"
        sleep 3
        check "dockerd restart $k: ... and 3 s later still agree" converged
    done
    expect_eq "dockerd: the 15 run and the 5 stay stopped" "15 5" \
        "$(psql_q "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'stopped') FROM instances WHERE user_id = '$DEV_ID' AND status <> 'deleted'")"
    check "dockerd: health is 200 again" wait_health 200 60
    check "dockerd: the instances are deleted" delete_instances_of "$DEV_ID" 90 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
fi
