#!/usr/bin/env bash
# Faults (issue 4), what 40-lifecycle.sh does not already do:
#  - Docker unreachable: the stack's worker is restarted behind a socket proxy
#    (tests/lib/dockerproxy.py) in front of the real engine, which is shared by
#    every stack on the machine; killing the proxy takes Docker away from this
#    worker only. A create retries with backoff and ends failed with a sentence
#    naming Docker, on the job and the instance; health says docker is down;
#    nothing is made in Docker; the instance can still be deleted and its ports
#    are released; once Docker is back, instances converge again, and a
#    container killed during the outage shows as stopped (the event stream's
#    `since` replay, or the reconcile pass that follows a gap in it: Docker
#    keeps only 256 events, fewer than a busy shared engine makes meanwhile).
#  - Docker failing in the middle of a create (between create and start): the
#    half-created container is removed when the job gives up; Docker going
#    away there: the container it could not remove then goes once Docker is
#    back.
#  - Reconcile: a labelled container with no row is removed after the grace
#    period; containers without our cluster label, or of another node, are
#    never touched; rows whose container went away (or stopped) while the
#    worker was down are corrected by the start-up pass.
#  - Every container of this cluster inspected (hardening, all labels), and no
#    host port row held by a deleted instance anywhere in the database.
# At the end the stack's own worker (as scripts/stack.sh starts it) runs again.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3) || { ok "SKIP: no python3 for the Docker proxy # SKIP"; exit 0; }

LOG=$WORKER_LOG
scratch f
PSOCK=$TMP/docker.sock
DENY=$TMP/deny
# the engine the stack's worker talks to
UPSTREAM=$(sed -n 's/^docker_socket = //p' "$BERTH_CONFIG")
UPSTREAM=${UPSTREAM:-/var/run/docker.sock}
HOST_ADDRESS=$(sed -n 's/^host_address = //p' "$BERTH_CONFIG")
HOST_ADDRESS=${HOST_ADDRESS:-127.0.0.1}
export DOCKER_HOST=unix://$UPSTREAM

# ---- processes ----
PROXY_PID=""
PROXY_PIDS=()
MY_WORKER=""
running() { # running PID: alive and not a zombie
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}
proxy_start() {
    rm -f "$PSOCK"
    "$PY" "$ROOT/tests/lib/dockerproxy.py" "$PSOCK" "$UPSTREAM" "$DENY" 2>>"$TMP/proxy.err" &
    PROXY_PID=$!
    PROXY_PIDS+=("$PROXY_PID")
    for _ in $(seq 100); do
        curl -sf --max-time 2 --unix-socket "$PSOCK" http://docker/_ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
proxy_kill() { # abrupt: the socket file stays, connections are refused
    [[ -n $PROXY_PID ]] || return 0
    kill -KILL "$PROXY_PID" 2>/dev/null
    wait "$PROXY_PID" 2>/dev/null
    PROXY_PID=""
}
worker_stop() {
    local pid; pid=$(svc_pid worker)
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do running "$pid" || break; sleep 0.05; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    [[ $pid == "$MY_WORKER" ]] && wait "$pid" 2>/dev/null
    MY_WORKER=""
    rm -f "$RUN/worker.pid"
}
# worker_start SETTING=VALUE...: this stack's berth-worker with extra settings
# (environment overrides), launched as scripts/stack.sh launches it, pidfile
# included, so `stack.sh stop` stops it if this test dies.
worker_start() {
    setsid env "$@" "$BUILD/berth-worker" >>"$LOG" 2>&1 </dev/null &
    MY_WORKER=$!
    echo "$MY_WORKER berth-worker" > "$RUN/worker.pid"
}
heartbeat_pid() { redis_q GET berth:heartbeat:local | jq -r '.pid // empty' 2>/dev/null; }
# my worker is up: its own heartbeat is published and health is 200
my_worker_ready() {
    for _ in $(seq 200); do
        [[ $(heartbeat_pid) == "$MY_WORKER" ]] && wait_health 200 1 2>/dev/null && return 0
        running "$MY_WORKER" || break
        sleep 0.1
    done
    echo "worker $MY_WORKER: heartbeat pid $(heartbeat_pid); last log: $(tail -3 "$LOG")" >&2
    return 1
}
restore_worker() { # the stack's own worker, as stack.sh starts it
    worker_stop
    "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
}

# ---- accounts ----
admin_login "$TMP/admin.jar"
admin POST /api/v1/tokens '{"name":"faults"}'
A=(-H "Authorization: Bearer $(jq -r .token <<<"$BODY")")
QUOTA='{"instances":20,"cpus":20,"memory_mb":20000}'
user_token "$P-up" developer "$QUOTA"; UP_ID=$USER_ID; U=(-H "Authorization: Bearer $TOKEN")
user_token "$P-dn" developer "$QUOTA"; DN_ID=$USER_ID; N=(-H "Authorization: Bearer $TOKEN")
http POST /api/v1/templates "{\"name\":\"$P-t\",\"image\":\"berth-demo/web:1\",\"http_port\":8080,\"ports\":{\"extra\":9000},\"volumes\":{\"data\":\"/data\"},\"cpus\":0.25,\"memory_mb\":32,\"pids_limit\":40,\"restart_policy\":\"no\"}" "${A[@]}"
expect_eq "a template for the fault tests" 201 "$STATUS"

ORPHANS=()
# everything of the test users: instances with their volumes, then the users
teardown() {
    delete_instances_of "$UP_ID $DN_ID" 30 "${A[@]}"
    for uid in "$UP_ID" "$DN_ID"; do
        curl -s -o /dev/null -X DELETE "${A[@]}" "$BERTH_URL/api/v1/users/$uid"
    done
    for _ in $(seq 100); do
        [[ $(psql_q "SELECT count(*) FROM users WHERE id IN ('$UP_ID', '$DN_ID')") == 0 ]] && break
        sleep 0.2
    done
    curl -s -o /dev/null -X DELETE "${A[@]}" "$BERTH_URL/api/v1/templates/$P-t"
}
NETS=()
cleanup() {
    proxy_kill
    # the stack's own worker back (also needed for the deletes)
    if [[ -n $MY_WORKER ]] || ! running "$(svc_pid worker)"; then restore_worker; fi
    for c in "${ORPHANS[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
    for n in "${NETS[@]}"; do docker network rm "$n" >/dev/null 2>&1; done
    [[ -n ${TORN_DOWN:-} ]] || teardown
    rm -rf "$TMP"
}
trap cleanup EXIT

# tpl NAME: the body creating an instance NAME of the test's template
tpl() { echo "{\"template\":\"$P-t\",\"name\":\"$1\"}"; }
has() { grep -q -- "$1" <<<"$2" || { echo "$2"; return 1; }; } # has PATTERN TEXT (TEXT shown on failure)
job() { curl -s --max-time 10 "${A[@]}" "$BERTH_URL/api/v1/jobs/$1"; }
kinds() { curl -s --max-time 10 "${A[@]}" "$BERTH_URL/api/v1/instances/$1/events" | jq -r '.items[].kind' | tr '\n' ' '; }
# docker objects of a test user in this cluster: "containers volumes networks"
objects_of() {
    local f=(--filter "label=berth.cluster=$BERTH_CLUSTER" --filter "label=berth.user=$1")
    echo "$(docker ps -aq "${f[@]}" | wc -l) $(docker volume ls -q "${f[@]}" | wc -l) $(docker network ls -q "${f[@]}" | wc -l)"
}
gap_s() { # gap_s ID KIND1 KIND2: seconds from the first KIND1 event to the last KIND2 event
    psql_q "SELECT round(extract(epoch FROM (SELECT max(at) FROM instance_events WHERE instance_id = '$1' AND kind = '$3') - (SELECT min(at) FROM instance_events WHERE instance_id = '$1' AND kind = '$2'))::numeric, 1)"
}

# ======== a worker behind the proxy ========
if proxy_start; then ok "the Docker proxy answers /_ping for the real engine"
else fail "the Docker proxy answers /_ping for the real engine" "$(cat "$TMP/proxy.err")"; exit 0; fi
worker_stop
worker_start BERTH_DOCKER_SOCKET="$PSOCK" BERTH_JOB_MAX_ATTEMPTS=2 BERTH_HEARTBEAT_TTL_S=3
check "a worker talking to Docker through the proxy is up and healthy" my_worker_ready
expect_eq "it registered the proxy as its node's Docker endpoint" "unix://$PSOCK" \
    "$(psql_q "SELECT docker_endpoint FROM nodes WHERE name = 'local'")"
create "$(tpl "$P-a")" "${U[@]}"; UA=$IID
reach "through the proxy a create reaches running" "$UA" running 30 "${A[@]}"
check "its container exists" docker inspect "berth-$UA"

# ======== Docker failing between container create and start ========
echo '^POST /v[0-9.]+/containers/berth-[0-9a-f-]+/start$' > "$DENY"
create "$(tpl "$P-half")" "${U[@]}"; UH=$IID; JH=$JID
reach "Docker dropping every container start: the create ends in error" "$UH" error 30 "${A[@]}"
JOB=$(job "$JH")
expect_eq "the job is failed after job_max_attempts (2) attempts" "failed 2" "$(jq -r '.status + " " + (.attempts|tostring)' <<<"$JOB")"
expect_eq "instance and job carry the same sentence" "$(jq -r .error <<<"$JOB")" "$(jq -r .error <<<"$INST")"
check "the sentence says starting failed and names Docker" has "starting the container failed: Docker unreachable" "$(jq -r .error <<<"$INST")"
check "the events show a retry before the failure" has 'retry.*failed' "$(kinds "$UH")"
wait_for 6 container_gone "$UH"
check "the half-created container is removed when the job gives up" container_gone "$UH"
rm -f "$DENY"
http POST "/api/v1/instances/$UH/start" "" "${U[@]}"
reach "with Docker whole again, start makes the container and runs it" "$UH" running 30 "${A[@]}"

# ======== Docker going away between container create and start ========
echo 'die ^POST /v[0-9.]+/containers/berth-[0-9a-f-]+/start$' > "$DENY"
create "$(tpl "$P-mid")" "${U[@]}"; UM=$IID; JM=$JID
reach "Docker gone at the container's start: the create ends in error" "$UM" error 30 "${A[@]}"
JOB=$(job "$JM")
expect_eq "its job is failed after 2 attempts, naming Docker as unreachable" "failed 2 true" \
    "$(jq -r '.status + " " + (.attempts|tostring) + " " + (.error | test("Docker unreachable") | tostring)' <<<"$JOB")"
expect_eq "the container had been made before Docker went away (it cannot be removed now)" created \
    "$(docker inspect -f '{{.State.Status}}' "berth-$UM" 2>&1)"
rm -f "$DENY"
proxy_kill
if proxy_start && wait_health 200 100; then ok "Docker is back"; else fail "Docker is back" "$(cat "$TMP/proxy.err")"; fi
wait_for 15 container_gone "$UM"
check "once Docker is back, the half-created container is removed (within 15 s)" container_gone "$UM"
http GET "/api/v1/instances/$UM" "" "${A[@]}"
expect_eq "the instance stays in error with its sentence" "error true" \
    "$(jq -r '.status + " " + (.error | test("Docker unreachable") | tostring)' <<<"$BODY")"

# ======== Docker unreachable ========
proxy_kill
wait_health 503 100 2>/dev/null
expect_eq "Docker unreachable: health is 503 naming docker" "503 unavailable docker" \
    "$STATUS $(jq -r '.error.code + " " + .error.check' <<<"$BODY")"
check "... with a sentence saying Docker is unreachable" has "Docker unreachable" "$(jq -r .error.message <<<"$BODY")"
# behind berth's back while the worker cannot see it
docker kill "berth-$UA" >/dev/null
t0=$(date +%s.%N)
create "$(tpl "$P-d1")" "${N[@]}"; D1=$IID; J1=$JID
expect_eq "create is still accepted (202): the job waits for Docker" 202 "$STATUS"
create "$(tpl "$P-d2")" "${N[@]}"; D2=$IID
reach "the create ends in error" "$D1" error 30 "${A[@]}"
echo "  [faults] create with Docker unreachable failed after $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
JOB=$(job "$J1")
expect_eq "its job is failed after 2 attempts" "failed 2" "$(jq -r '.status + " " + (.attempts|tostring)' <<<"$JOB")"
echo "  [faults] the job's error: $(jq -r .error <<<"$JOB")" >&2
check "the job's error names Docker as unreachable" has "Docker unreachable" "$(jq -r .error <<<"$JOB")"
expect_eq "the instance has the same sentence" "$(jq -r .error <<<"$JOB")" "$(jq -r .error <<<"$INST")"
check "the events show queued, a retry, then the failure" has 'queued.*retry.*failed' "$(kinds "$D1")"
g=$(gap_s "$D1" retry failed)
check "the retry waited for its backoff (1 s; took ${g} s)" bash -c "(( \$(echo '$g >= 0.9' | bc) ))"
reach "the second create ends in error too" "$D2" error 30 "${A[@]}"
expect_eq "nothing of theirs was made in Docker (containers, volumes, networks)" "0 0 0" "$(objects_of "$P-dn")"
expect_eq "their host ports stay reserved while the instances exist" 2 \
    "$(psql_q "SELECT count(DISTINCT instance_id) FROM instance_ports WHERE instance_id IN ('$D1', '$D2')")"
http DELETE "/api/v1/instances/$D1?delete_volumes=true" "" "${N[@]}"
expect_eq "delete of the errored instance is accepted while Docker is away" "202 deleting" "$STATUS $(jq -r .instance.status <<<"$BODY")"
JD=$(jq -r .job.id <<<"$BODY")
reach "the delete cannot confirm the container is gone: back in error, not lost" "$D1" error 30 "${A[@]}"
JOB=$(job "$JD")
expect_eq "the delete job is failed, naming Docker" "failed true" \
    "$(jq -r '.status + " " + (.error | test("Docker unreachable") | tostring)' <<<"$JOB")"
expect_eq "the instance's ports are still its own" 1 "$(psql_q "SELECT count(*) FROM instance_ports WHERE instance_id = '$D1'")"
http GET "/api/v1/instances/$UH" "" "${A[@]}"
expect_eq "an instance whose container is fine is not marked otherwise while Docker cannot be asked" running "$(jq -r .status <<<"$BODY")"

# ======== Docker back ========
if proxy_start; then ok "the proxy is back"; else fail "the proxy is back" "$(cat "$TMP/proxy.err")"; fi
check "health is 200 again once Docker answers" wait_health 200 100
reach "a container killed during the outage shows as stopped within 5 s of Docker's return" "$UA" stopped 5 "${A[@]}"
http DELETE "/api/v1/instances/$D1?delete_volumes=true" "" "${N[@]}"
reach "deleting the errored instance again works" "$D1" deleted 30 "${A[@]}"
expect_eq "its host ports are released" 0 "$(psql_q "SELECT count(*) FROM instance_ports WHERE instance_id = '$D1'")"
http POST "/api/v1/instances/$D2/start" "" "${N[@]}"
reach "the other instance created during the outage starts and runs" "$D2" running 30 "${A[@]}"
check "its container exists with its labels" bash -c "docker inspect berth-$D2 | jq -e '.[0].Config.Labels[\"berth.instance\"] == \"$D2\"'"
http POST "/api/v1/instances/$UA/start" "" "${U[@]}"
reach "the instance killed during the outage starts again" "$UA" running 30 "${A[@]}"

# ======== drift while no worker runs: the start-up reconcile ========
worker_stop
proxy_kill
docker rm -f "berth-$D2" >/dev/null
docker stop -t 1 "berth-$UH" >/dev/null
sleep 1.5 # past the second the new worker's event stream starts from: only reconcile can see these
worker_start BERTH_RECONCILE_S=5 BERTH_ORPHAN_GRACE_S=2
check "a worker with reconcile_s=5 and orphan_grace_s=2 is up" my_worker_ready
reach "a container removed while no worker ran: the start-up pass puts its row in error" "$D2" error 5 "${A[@]}"
check "... saying the container is missing" has "container is missing" "$(jq -r .error <<<"$INST")"
check "... as the reconcile pass" has reconciled "$(kinds "$D2")"
reach "a container stopped while no worker ran: the row says stopped" "$UH" stopped 5 "${A[@]}"

# ======== orphans ========
uuid() { cat /proc/sys/kernel/random/uuid; }
O1=$(uuid); O2=$(uuid); O3=$(uuid); O4=$(uuid)
ORPHANS=("berth-$O1" "berth-$O2" "berth-$O3" "berth-$O4")
run_c() { # run_c ID LABEL...: a container of the demo image named berth-ID
    local id=$1 args=(); shift
    for l in "$@"; do args+=(--label "$l"); done
    docker run -d --name "berth-$id" "${args[@]}" berth-demo/web:1 >/dev/null
}
run_c "$O1" "berth.cluster=$BERTH_CLUSTER" berth.node=local "berth.instance=$O1" "berth.user=$P-up"
run_c "$O2" "berth.cluster=${BERTH_CLUSTER}x" berth.node=local "berth.instance=$O2"
run_c "$O3" "berth.instance=$O3"
run_c "$O4" "berth.cluster=$BERTH_CLUSTER" berth.node=elsewhere "berth.instance=$O4"
t0=$(date +%s)
wait_for 21 container_gone "$O1"
check "a labelled container with no instance row is removed after the grace period ($(( $(date +%s) - t0 )) s)" \
    container_gone "$O1"
check "the worker logs the removal" grep -q "removing orphan container berth-$O1" "$LOG"
sleep 6 # one more pass
check "a container of another cluster is never touched" docker inspect "berth-$O2"
check "a container without berth's cluster label is never touched" docker inspect "berth-$O3"
check "a container of our cluster but another node is left to that node's worker" docker inspect "berth-$O4"
for c in "${ORPHANS[@]}"; do docker rm -f "$c" >/dev/null 2>&1; done
ORPHANS=()

# ======== networks left behind ========
# A user's network normally goes with their last instance; one Docker would
# not remove then (an endpoint still being released) goes on a later pass.
# Subnets outside berth's pool and Docker's default one.
NETS=("berth-$BERTH_CLUSTER-$P-gone" "berth-$BERTH_CLUSTER-$P-far")
docker network create --subnet 10.254.250.0/24 --label "berth.cluster=$BERTH_CLUSTER" \
    --label berth.node=local --label "berth.user=$P-gone" "${NETS[0]}" >/dev/null
docker network create --subnet 10.254.251.0/24 --label "berth.cluster=$BERTH_CLUSTER" \
    --label berth.node=elsewhere --label "berth.user=$P-far" "${NETS[1]}" >/dev/null
t0=$(date +%s)
for _ in $(seq 100); do docker network inspect "${NETS[0]}" >/dev/null 2>&1 || break; sleep 0.2; done
check "a labelled network of this node whose user has no instance is removed by a pass ($(( $(date +%s) - t0 )) s)" \
    bash -c "! docker network inspect ${NETS[0]} >/dev/null 2>&1"
# the log line follows Docker's answer, which can come after the network is gone from lists
logged_net() { grep -q "removed network ${NETS[0]}" "$LOG"; }
for _ in $(seq 50); do logged_net && break; sleep 0.1; done
check "the worker logs the removal" logged_net
check "a network of another node is left to that node's worker" docker network inspect "${NETS[1]}"
check "the network of a user with a running instance stays" docker network inspect "berth-$BERTH_CLUSTER-$P-up"
http GET "/api/v1/instances/$UA" "" "${A[@]}"
expect_eq "live instances' containers are not taken for orphans" "running true" \
    "$(jq -r .status <<<"$BODY") $(docker inspect "berth-$UA" >/dev/null 2>&1 && echo true || echo false)"

# ======== every container of this cluster ========
http POST "/api/v1/instances/$D2/start" "" "${N[@]}"
reach "the instance whose container was removed starts again" "$D2" running 30 "${A[@]}"
bad=""
n=0
for id in $(docker ps -aq --filter "label=berth.cluster=$BERTH_CLUSTER"); do
    n=$((n + 1))
    why=$(docker inspect "$id" | jq -r --arg addr "$HOST_ADDRESS" --arg cl "$BERTH_CLUSTER" '.[0] as $c | $c.Config.Labels as $l | [
        (if ($c.HostConfig.SecurityOpt // []) | index("no-new-privileges") then empty else "no no-new-privileges" end),
        (if ($c.HostConfig.Memory > 0 and $c.HostConfig.NanoCpus > 0 and ($c.HostConfig.PidsLimit // 0) > 0) then empty else "missing limits" end),
        (if $c.HostConfig.Privileged then "privileged" else empty end),
        (if ([$l["berth.instance"], $l["berth.user"], $l["berth.template"], $l["berth.node"]] | all(. != null and . != "")) and $l["berth.cluster"] == $cl then empty else "labels incomplete" end),
        (if $c.Name == "/berth-" + $l["berth.instance"] then empty else "name is not berth-<instance id>" end),
        (if [($c.HostConfig.PortBindings // {})[][] | .HostIp] | all(. == $addr) then empty else "a port bound beyond " + $addr end),
        (if [$c.Mounts[] | .Source // "", .Destination // ""] | any(test("docker\\.sock")) then "Docker socket mounted" else empty end)
    ] | join(", ")')
    [[ -n $why ]] && bad="$bad $id: $why;"
done
expect_eq "every container of this cluster ($n) is hardened, labelled and named by its instance" "" "$bad"
expect_eq "no host port row is held by a deleted instance (whole database)" 0 \
    "$(psql_q "SELECT count(*) FROM instance_ports p JOIN instances i ON i.id = p.instance_id WHERE i.status = 'deleted'")"

# ======== the stack's own worker back ========
restore_worker
check "the stack's own worker runs again and health is 200" wait_health 200 200
expect_eq "it talks to the stack's Docker socket again" "unix://$UPSTREAM" \
    "$(psql_q "SELECT docker_endpoint FROM nodes WHERE name = 'local'")"

# ======== leave nothing behind ========
teardown
TORN_DOWN=1
for _ in $(seq 50); do [[ "$(objects_of "$P-up") $(objects_of "$P-dn")" == "0 0 0 0 0 0" ]] && break; sleep 0.2; done
expect_eq "nothing of the test users is left in Docker (containers, volumes, networks)" "0 0 0 0 0 0" \
    "$(objects_of "$P-up") $(objects_of "$P-dn")"
expect_eq "nor in the database (users, instances, host ports)" "0 0 0" \
    "$(psql_q "SELECT (SELECT count(*) FROM users WHERE id IN ('$UP_ID', '$DN_ID')), (SELECT count(*) FROM instances WHERE user_id IN ('$UP_ID', '$DN_ID')), (SELECT count(*) FROM instance_ports p JOIN instances i ON i.id = p.instance_id WHERE i.user_id IN ('$UP_ID', '$DN_ID'))")"
left=""
for pid in "${PROXY_PIDS[@]}"; do running "$pid" && left="$left $pid"; done
expect_eq "no proxy process is left" "" "$left"
