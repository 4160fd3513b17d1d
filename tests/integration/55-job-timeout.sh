#!/usr/bin/env bash
# job_timeout_s (README, Configuration): an attempt that gets no answer from
# Docker or PostgreSQL for that long is lost -- the worker gives it up, drops
# the answers still to come, and tries the job again; never recorded twice,
# never stuck. Made real here with job_timeout_s = 5 (reloaded by SIGHUP) and
# a container whose PID 1 ignores SIGTERM: Docker's stop says nothing for its
# 10 s before it kills it.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker
scratch jt 2
LOCK_PID=""
CONF_BAK=$TMP/berth.conf.orig
cp "$BERTH_CONFIG" "$CONF_BAK"
cleanup() {
    [[ -n $LOCK_PID ]] && kill "$LOCK_PID" 2>/dev/null
    cp "$CONF_BAK" "$BERTH_CONFIG"; reload worker
    [[ -n ${DEV_ID:-} ]] && delete_instances_of "$DEV_ID" 30 -b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF"
    admin DELETE "/api/v1/templates/$P-t" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

admin_login "$TMP/admin.jar"
dev_login "$P" "$TMP/dev.jar"
D=(-b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF")
# PID 1 ignores SIGTERM: Docker's stop waits its 10 s before SIGKILL, the
# window in which the row is locked under the job
admin POST /api/v1/templates "{\"name\":\"$P-t\",\"image\":\"berth-demo/web:1\",\"command\":[\"sh\",\"-c\",\"trap '' TERM; while :; do sleep 1; done\"],\"memory_mb\":16}"
expect_eq "a template whose process ignores SIGTERM" 201 "$STATUS"
create "{\"template\":\"$P-t\"}" "${D[@]}"
expect_eq "an instance is created" 202 "$STATUS"
reach "it runs" "$IID" running 60 "${D[@]}"

printf 'job_timeout_s = 5\n' >> "$BERTH_CONFIG"
check "the worker reloads job_timeout_s = 5 on SIGHUP" reload worker

lost=$(grep -c 'job_timeout_s' "$WORKER_LOG")
t0=$(date +%s%N)
http POST "/api/v1/instances/$IID/stop" "" "${D[@]}"
expect_eq "a stop is accepted" 202 "$STATUS"
JOB=$(jq -r '.job.id // empty' <<<"$BODY")
given_up() { [[ $(grep -c 'job_timeout_s' "$WORKER_LOG") -gt $lost ]]; }
if wait_for 20 given_up; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    ok "Docker's stop, silent for its 10 s, is given up after job_timeout_s (${ms} ms): $(grep -o 'attempt [0-9]*: no answer.*' "$WORKER_LOG" | tail -1 | head -c 100)"
    if (( ms >= 4500 && ms < 9500 )); then ok "... at 5 s, not at Docker's own answer"; else fail "... at 5 s, not at Docker's own answer" "$ms ms"; fi
else
    fail "Docker's stop, silent for its 10 s, is given up after job_timeout_s" "$(tail -5 "$WORKER_LOG")"
fi
reach "the job is tried again and the instance ends stopped" "$IID" stopped 60 "${D[@]}"
done_job() { [[ $(psql_q "SELECT status FROM jobs WHERE id = '$JOB'") == done ]]; }
check "its job is done" wait_for 20 done_job
expect_eq "after more than one attempt" t "$(psql_q "SELECT attempts > 1 FROM jobs WHERE id = '$JOB'")"
expect_eq "the stop was recorded once: one 'stopped' event (the late answer of the given-up attempt is dropped)" 1 \
    "$(psql_q "SELECT count(*) FROM instance_events WHERE instance_id = '$IID' AND kind = 'stopped'")"
finished() { [[ $(grep -c "job $JOB .*finished" "$WORKER_LOG") -ge 1 ]]; }
check "the worker let go of the job" wait_for 10 finished
sleep 6 # the given-up attempt's answer (Docker's 10 s) is in by now
expect_eq "... once" 1 "$(grep -c "job $JOB .*finished" "$WORKER_LOG")"
cp "$CONF_BAK" "$BERTH_CONFIG"
check "job_timeout_s back to its default" reload worker
http POST "/api/v1/instances/$IID/start" "" "${D[@]}"
expect_eq "the next job of the instance is accepted" 202 "$STATUS"
reach "and runs as usual" "$IID" running 60 "${D[@]}"
