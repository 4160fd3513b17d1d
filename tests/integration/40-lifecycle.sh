#!/usr/bin/env bash
# Instance lifecycle end to end (issue 4): templates, create -> running with the
# container's HTTP answering at its address on the user network (not on a host
# port; a named port is published), data on a volume surviving
# stop/start/restart and delete + re-attach, hardening of every container,
# Docker events (kill, rm -f) reaching the API, clear errors (missing image,
# a process that exits at once), concurrent creates with distinct ports, and
# kill -9 of the worker with creates in flight.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker

scratch l
CONCURRENT=${LIFECYCLE_CONCURRENT:-50}
INFLIGHT=${LIFECYCLE_INFLIGHT:-20}

admin_login "$TMP/admin.jar"
admin POST /api/v1/tokens '{"name":"lifecycle"}'
ATOK=$(jq -r .token <<<"$BODY")
A=(-H "Authorization: Bearer $ATOK")

user_token "$P-dev" developer '{"instances":100,"cpus":100,"memory_mb":100000}'
DEV_ID=$USER_ID
D=(-H "Authorization: Bearer $TOKEN")

RANGE_CHANGED=""
cleanup() {
    # a berth-api left with the test's tiny port range gets its own back
    if [[ -n $RANGE_CHANGED ]]; then
        kill "$(svc_pid api)" 2>/dev/null
        sleep 0.5
        "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
    fi
    # every instance of the test user, with volumes; then templates
    delete_instances_of "$DEV_ID" 30 "${D[@]}"
    for v in $(psql_q "SELECT id FROM volumes WHERE user_id = '$DEV_ID' AND deleted_at IS NULL"); do
        curl -s -o /dev/null -X DELETE "${D[@]}" "$BERTH_URL/api/v1/volumes/$v"
    done
    for t in "$P-t" "$P-bad" "$P-exit"; do
        curl -s -o /dev/null -X DELETE "${A[@]}" "$BERTH_URL/api/v1/templates/$t"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT


# ---- templates ----
bad() { # bad "behaviour" FIELD BODY
    http POST /api/v1/templates "$3" "${A[@]}"
    expect_eq "template refused: $1" "400 $2" "$STATUS $(jq -r .error.field <<<"$BODY")"
}
bad "image with uppercase repository" image "{\"name\":\"$P-x\",\"image\":\"Berth/Web:1\"}"
bad "image with a space" image "{\"name\":\"$P-x\",\"image\":\"berth web\"}"
bad "http_port 0" http_port "{\"name\":\"$P-x\",\"image\":\"busybox\",\"http_port\":0}"
bad "port above 65535" ports "{\"name\":\"$P-x\",\"image\":\"busybox\",\"ports\":{\"api\":70000}}"
bad "relative mount path" volumes "{\"name\":\"$P-x\",\"image\":\"busybox\",\"volumes\":{\"data\":\"data\"}}"
bad "mount path with .." volumes "{\"name\":\"$P-x\",\"image\":\"busybox\",\"volumes\":{\"data\":\"/a/../etc\"}}"
bad "cpus 0" cpus "{\"name\":\"$P-x\",\"image\":\"busybox\",\"cpus\":0}"
bad "memory_mb negative" memory_mb "{\"name\":\"$P-x\",\"image\":\"busybox\",\"memory_mb\":-1}"
bad "name with uppercase" name "{\"name\":\"Bad\",\"image\":\"busybox\"}"
bad "env name with '='" env "{\"name\":\"$P-x\",\"image\":\"busybox\",\"env\":{\"A=B\":\"x\"}}"
bad "command not an array" command "{\"name\":\"$P-x\",\"image\":\"busybox\",\"command\":\"sh\"}"
bad "unknown restart policy" restart_policy "{\"name\":\"$P-x\",\"image\":\"busybox\",\"restart_policy\":\"always-ish\"}"
http POST /api/v1/templates "{\"name\":\"$P-x\",\"image\":\"busybox\"}" "${D[@]}"
expect_eq "a developer may not create templates" 403 "$STATUS"

TPL="{\"name\":\"$P-t\",\"image\":\"berth-demo/web:1\",\"http_port\":8080,\"ports\":{\"extra\":9000},\"volumes\":{\"data\":\"/data\"},\"env\":{\"WHO\":\"{user}/{instance}\",\"BASE\":\"{base_path}\"},\"cpus\":0.25,\"memory_mb\":32,\"pids_limit\":40,\"restart_policy\":\"unless-stopped\"}"
http POST /api/v1/templates "$TPL" "${A[@]}"
expect_eq "admin creates a template: 201" 201 "$STATUS"
TID=$(jq -r .id <<<"$BODY")
http POST /api/v1/templates "$TPL" "${A[@]}"
expect_eq "a second template of the same name: 409" 409 "$STATUS"
http PATCH "/api/v1/templates/$TID" '{"description":"lifecycle test"}' "${A[@]}"
expect_eq "PATCH keeps the other fields" "200 lifecycle test 32" "$STATUS $(jq -r '.description + " " + (.memory_mb|tostring)' <<<"$BODY")"
http PATCH "/api/v1/templates/$TID" '{"http_port":"80"}' "${A[@]}"
expect_eq "PATCH with a wrongly typed field: 400" 400 "$STATUS"

# ---- create -> running ----
create "{\"template\":\"$P-t\"}" "${D[@]}"
expect_eq "create answers 202 with a queued job" "202 queued pending" "$STATUS $(jq -r '.job.status + " " + .instance.status' <<<"$BODY")"
expect_eq "the instance name defaults to the template's" "$P-t" "$(jq -r .instance.name <<<"$BODY")"
I1=$IID
reach "the instance runs within 30 s" "$I1" running 30 "${D[@]}"
PORT=$(jq -r .ports.extra <<<"$INST")
ADDR=$(psql_q "SELECT host(upstream_host) FROM instances WHERE id = '$I1'")
expect_eq "ports.http is null (the HTTP port is not published); the named port has a host port" "true true" \
    "$(jq -r '[(.ports | has("http") and .http == null), (.ports.extra | type == "number")] | map(tostring) | join(" ")' <<<"$INST")"
check "the container's HTTP answers at its address on the user network ($ADDR)" bash -c "curl -sf --max-time 5 http://$ADDR:8080/ | grep -q 'berth demo workspace'"
ENVTXT=$(curl -s --max-time 5 "http://$ADDR:8080/cgi-bin/env")
check "placeholders are expanded in env" grep -q "^WHO=$P-dev/$P-t$" <<<"$ENVTXT"
check "{base_path} is the instance's path" grep -q "^BASE=/container/$P-dev/$P-t/$" <<<"$ENVTXT"
http GET "/api/v1/jobs/$JID" "" "${D[@]}"
expect_eq "the create job is done" "done 1" "$(jq -r '.status + " " + (.attempts|tostring)' <<<"$BODY")"
expect_eq "urls.http is the container path" "/container/$P-dev/$P-t/" "$(jq -r .urls.http <<<"$INST")"

# ---- hardening ----
C=$(docker inspect "berth-$I1")
expect_eq "labels name instance, user, template, cluster" "$I1 $P-dev $P-t $BERTH_CLUSTER" \
    "$(jq -r '.[0].Config.Labels | [."berth.instance", ."berth.user", ."berth.template", ."berth.cluster"] | join(" ")' <<<"$C")"
expect_eq "memory, CPU and pids limits from the template" "33554432 250000000 40" \
    "$(jq -r '.[0].HostConfig | [.Memory, .NanoCpus, .PidsLimit] | map(tostring) | join(" ")' <<<"$C")"
check "no-new-privileges is set" grep -q no-new-privileges <<<"$(jq -r '.[0].HostConfig.SecurityOpt[]' <<<"$C")"
expect_eq "the named port is bound to the configured host address only" "127.0.0.1:$PORT" \
    "$(jq -r '.[0].HostConfig.PortBindings["9000/tcp"] | map(.HostIp + ":" + .HostPort) | join(",")' <<<"$C")"
expect_eq "the HTTP port is bound to no host address" null "$(jq -c '.[0].HostConfig.PortBindings["8080/tcp"]' <<<"$C")"
expect_eq "restart policy from the template" unless-stopped "$(jq -r '.[0].HostConfig.RestartPolicy.Name' <<<"$C")"
check "no Docker socket is mounted" bash -c "! grep -q docker.sock <<<'$(jq -c '.[0].Mounts' <<<"$C")'"
expect_eq "the container is on the user's own network" "berth-$BERTH_CLUSTER-$P-dev" \
    "$(jq -r '.[0].NetworkSettings.Networks | keys | join(",")' <<<"$C")"
VOL=$(jq -r '.volumes[0].id' <<<"$INST")
expect_eq "the volume is berth-<volume id> at /data" "berth-$VOL /data" \
    "$(jq -r '.[0].Mounts[] | select(.Type == "volume") | .Name + " " + .Destination' <<<"$C")"

# ---- data survives stop/start/restart ----
docker exec "berth-$I1" sh -c 'echo persisted > /data/f'
http POST "/api/v1/instances/$I1/stop" "" "${D[@]}"
expect_eq "stop answers 202" 202 "$STATUS"
reach "the instance stops" "$I1" stopped 30 "${D[@]}"
http POST "/api/v1/instances/$I1/start" "" "${D[@]}"
reach "the instance starts again" "$I1" running 30 "${D[@]}"
expect_eq "volume data survives stop/start" persisted "$(docker exec "berth-$I1" cat /data/f 2>&1)"
http POST "/api/v1/instances/$I1/restart" "" "${D[@]}"
expect_eq "restart answers 202 restarting" "202 restarting" "$STATUS $(jq -r .instance.status <<<"$BODY")"
reach "the instance runs after restart" "$I1" running 30 "${D[@]}"
expect_eq "volume data survives restart" persisted "$(docker exec "berth-$I1" cat /data/f 2>&1)"

# ---- exec, logs, stats, events ----
http POST "/api/v1/instances/$I1/exec" '{"command":["sh","-c","echo out; echo err >&2; cat /data/f; exit 7"]}' "${D[@]}"
expect_eq "exec answers exit code and output" "200 7" "$STATUS $(jq -r .exit_code <<<"$BODY")"
expect_eq "exec output has stdout, stderr and the volume's data" "err out persisted" "$(jq -r .output <<<"$BODY" | grep -v '^$' | sort | tr '\n' ' ' | sed 's/ $//')"
http POST "/api/v1/instances/$I1/exec" '{"command":["sleep","10"],"timeout_s":1}' "${D[@]}"
expect_eq "exec past its timeout says so" "200 true" "$STATUS $(jq -r .timed_out <<<"$BODY")"
http POST "/api/v1/instances/$I1/exec" '{"command":"ls"}' "${D[@]}"
expect_eq "exec with a command that is not an array: 400" 400 "$STATUS"
curl -s -o /dev/null "http://$ADDR:8080/logline-$P"
http GET "/api/v1/instances/$I1/logs?tail=5" "" "${D[@]}"
check "logs?tail shows the container's request log" grep -q "logline-$P" <<<"$(jq -r '.lines[]' <<<"$BODY")"
http GET "/api/v1/instances/$I1/logs?tail=2" "" "${D[@]}"
expect_eq "logs?tail=2 gives 2 lines" 2 "$(jq '.lines | length' <<<"$BODY")"
http GET "/api/v1/instances/$I1/logs?tail=x" "" "${D[@]}"
expect_eq "logs with a bad tail: 400" 400 "$STATUS"
(curl -sN --max-time 4 "${D[@]}" "$BERTH_URL/api/v1/instances/$I1/logs?follow=true&tail=1" > "$TMP/sse") &
sleep 1.5
curl -s -o /dev/null "http://$ADDR:8080/followed-$P"
wait
check "logs?follow=true streams new lines as server-sent events through nginx" grep -q "^data: .*followed-$P" "$TMP/sse"
http GET "/api/v1/instances/$I1/stats" "" "${D[@]}"
expect_eq "stats: memory limit is the template's, pids counted" "200 33554432 true" \
    "$STATUS $(jq -r '(.memory_limit_bytes|tostring) + " " + ((.pids >= 1 and .memory_bytes > 0 and (.cpu_percent|type) == "number")|tostring)' <<<"$BODY")"

# ---- default names ----
create "{\"template\":\"$P-t\"}" "${D[@]}"
expect_eq "a second instance of the template is named -2" "$P-t-2" "$(jq -r .instance.name <<<"$BODY")"
I2=$IID
create "{\"template\":\"$P-t\",\"name\":\"$P-t-2\"}" "${D[@]}"
expect_eq "an explicit name that is taken: 409" 409 "$STATUS"
create "{\"template\":\"$P-t\",\"name\":\"Bad_Name\"}" "${D[@]}"
expect_eq "an invalid name: 400 invalid_field name" "400 name" "$STATUS $(jq -r .error.field <<<"$BODY")"
http DELETE "/api/v1/templates/$TID" "" "${A[@]}"
expect_eq "a template in use cannot be deleted: 409" 409 "$STATUS"

# ---- events: docker kill, docker rm -f ----
reach "the second instance runs" "$I2" running 30 "${D[@]}"
docker kill "berth-$I2" >/dev/null
reach "docker kill shows as stopped within 2 s" "$I2" stopped 2 "${D[@]}"
docker rm -f "berth-$I2" >/dev/null
reach "docker rm -f shows as error within 2 s" "$I2" error 2 "${D[@]}"
check "the error says it was removed" grep -q "removed outside berth" <<<"$(jq -r .error <<<"$INST")"
http POST "/api/v1/instances/$I2/start" "" "${D[@]}"
reach "start makes the removed container again" "$I2" running 30 "${D[@]}"

# ---- delete keeps the volume; re-attach ----
http DELETE "/api/v1/instances/$I1" "" "${D[@]}"
expect_eq "delete answers 202 deleting" "202 deleting" "$STATUS $(jq -r .instance.status <<<"$BODY")"
reach "the instance is deleted" "$I1" deleted 30 "${D[@]}"
check "its container is gone" container_gone "$I1"
check "its volume is kept" docker volume inspect "berth-$VOL"
http GET /api/v1/volumes "" "${D[@]}"
expect_eq "the kept volume is listed, unattached" "null" "$(jq -r ".items[] | select(.id == \"$VOL\") | .instance_id" <<<"$BODY")"
expect_eq "its host port is released" 0 "$(psql_q "SELECT count(*) FROM instance_ports WHERE instance_id = '$I1'")"
create "{\"template\":\"$P-t\",\"name\":\"$P-again\",\"volumes\":{\"data\":\"$VOL\"}}" "${D[@]}"
expect_eq "create re-attaching the kept volume: 202" 202 "$STATUS"
I3=$IID
reach "the new instance runs" "$I3" running 30 "${D[@]}"
expect_eq "the re-attached volume has the data" persisted "$(docker exec "berth-$I3" cat /data/f 2>&1)"
create "{\"template\":\"$P-t\",\"name\":\"$P-steal\",\"volumes\":{\"data\":\"$VOL\"}}" "${D[@]}"
expect_eq "an attached volume cannot be attached twice: 409" 409 "$STATUS"
http DELETE "/api/v1/volumes/$VOL" "" "${D[@]}"
expect_eq "an attached volume cannot be deleted: 409" 409 "$STATUS"
http DELETE "/api/v1/instances/$I3?delete_volumes=true" "" "${D[@]}"
reach "delete with delete_volumes finishes" "$I3" deleted 30 "${D[@]}"
for _ in $(seq 20); do docker volume inspect "berth-$VOL" >/dev/null 2>&1 || break; sleep 0.2; done
check "delete_volumes=true removes the volume" bash -c "! docker volume inspect berth-$VOL >/dev/null 2>&1"

# ---- clear errors ----
http POST /api/v1/templates "{\"name\":\"$P-bad\",\"image\":\"berth-test-missing/nothing:404\",\"memory_mb\":16}" "${A[@]}"
create "{\"template\":\"$P-bad\"}" "${D[@]}"
IB=$IID
JB=$JID
reach "a missing image ends in error" "$IB" error 60 "${D[@]}"
check "the instance says the image could not be pulled" grep -q "could not be pulled" <<<"$(jq -r .error <<<"$INST")"
http GET "/api/v1/jobs/$JB" "" "${D[@]}"
expect_eq "the job is failed with the same sentence" "failed $(jq -r .error <<<"$INST")" "$(jq -r '.status + " " + .error' <<<"$BODY")"
check "no container is left for it" container_gone "$IB"
http POST /api/v1/templates "{\"name\":\"$P-exit\",\"image\":\"berth-demo/web:1\",\"command\":[\"sh\",\"-c\",\"exit 3\"],\"restart_policy\":\"no\",\"memory_mb\":16}" "${A[@]}"
create "{\"template\":\"$P-exit\"}" "${D[@]}"
IE=$IID
reach "a process that exits at once ends in error" "$IE" error 10 "${D[@]}"
check "the error gives its exit code" grep -q "code 3" <<<"$(jq -r .error <<<"$INST")"
http GET "/api/v1/instances/$IE/events" "" "${D[@]}"
check "the events tell the story (queued, created, died)" grep -q 'queued.*created.*died' <<<"$(jq -r '.items[].kind' <<<"$BODY" | tr '\n' ' ')"
# A process that dies at once is 'error'; when its restart policy brings it
# back, the instance is 'running' again and an event says it recovered.
http POST /api/v1/templates "{\"name\":\"$P-flap\",\"image\":\"berth-demo/web:1\",\"command\":[\"sh\",\"-c\",\"sleep 1; exit 1\"],\"restart_policy\":\"on-failure\",\"memory_mb\":16}" "${A[@]}"
create "{\"template\":\"$P-flap\"}" "${D[@]}"
IF=$IID
rec=""
for _ in $(seq 120); do
    http GET "/api/v1/instances/$IF/events" "" "${D[@]}"
    rec=$(jq -r '[.items[] | select(.kind == "recovered")][0].message // empty' <<<"$BODY")
    [[ -n $rec ]] && break
    sleep 0.25
done
check "an instance in error whose container its restart policy brought back is running again, and an event says so" \
    grep -q "^the container runs again (its restart policy brought it back); it had failed: the container's main process exited with code 1" <<<"$rec"
http DELETE "/api/v1/instances/$IF" "" "${D[@]}"
for _ in $(seq 120); do # gone before the quota count below
    [[ $(psql_q "SELECT status FROM instances WHERE id = '$IF'") == deleted ]] && break
    sleep 0.25
done

# ---- concurrent creates at the quota edge ----
live=$(psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID' AND status <> 'deleted'")
http PATCH "/api/v1/users/$DEV_ID" "{\"quota\":{\"instances\":$((live + CONCURRENT)),\"cpus\":1000,\"memory_mb\":1000000}}" "${A[@]}"
t0=$(date +%s.%N)
for i in $(seq 1 $((CONCURRENT + 2))); do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "${D[@]}" -H 'Content-Type: application/json' \
        --data-binary "{\"template\":\"$P-t\",\"name\":\"$P-c$i\"}" "$BERTH_URL/api/v1/instances" &
done > "$TMP/codes"
wait
expect_eq "$((CONCURRENT + 2)) concurrent creates with room for $CONCURRENT: $CONCURRENT accepted, 2 over quota" \
    "$CONCURRENT 2" "$(grep -c 202 "$TMP/codes") $(grep -c 403 "$TMP/codes")"
# running_like LIKE: how many of the test user's instances named LIKE run
running_like() { psql_q "SELECT count(*) FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$1' AND status = 'running'"; }
all_run() { [[ $(running_like "$1") == "$2" ]]; } # all_run LIKE N
wait_for 90 all_run "$P-c%" "$CONCURRENT"
n=$(running_like "$P-c%")
expect_eq "all $CONCURRENT run" "$CONCURRENT" "$n"
echo "  [lifecycle] $CONCURRENT concurrent creates running after $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
expect_eq "their host ports are distinct" 0 \
    "$(psql_q "SELECT count(*) FROM (SELECT port FROM instance_ports p JOIN instances i ON i.id = p.instance_id WHERE i.user_id = '$DEV_ID' GROUP BY port HAVING count(*) > 1) d")"
expect_eq "and distinct as Docker bound them" "$CONCURRENT" \
    "$(docker ps --filter "label=berth.cluster=$BERTH_CLUSTER" --filter "label=berth.user=$P-dev" --format '{{.Names}} {{.Ports}}' | grep -F "$(psql_q "SELECT 'berth-' || id FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$P-c%'")" | grep -o '127.0.0.1:[0-9]*' | sort -u | wc -l)"
expect_eq "their network addresses are assigned and distinct" "$CONCURRENT $CONCURRENT" \
    "$(psql_q "SELECT count(upstream_host), count(DISTINCT upstream_host) FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$P-c%'")"
expect_eq "and each is the container's address as Docker assigned it" "$CONCURRENT" \
    "$(for id in $(psql_q "SELECT id FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$P-c%'"); do
           docker inspect -f "{{(index .NetworkSettings.Networks \"berth-$BERTH_CLUSTER-$P-dev\").IPAddress}}" "berth-$id"
       done | sort -u | grep -cxF -f <(psql_q "SELECT host(upstream_host) FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$P-c%'"))"
http PATCH "/api/v1/users/$DEV_ID" '{"quota":{"instances":1000,"cpus":1000,"memory_mb":1000000}}' "${A[@]}"
one_each() { # one_each LIKE -> number of instances without exactly one container
    local id c bad=0
    for id in $(psql_q "SELECT id FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$1'"); do
        c=$(docker ps -aq --filter "name=^berth-$id\$" | wc -l)
        [[ $c == 1 ]] || bad=$((bad + 1))
    done
    echo $bad
}
expect_eq "one container each" 0 "$(one_each "$P-c%")"

# ---- kill -9 of the worker with creates in flight ----
for i in $(seq 1 "$INFLIGHT"); do
    curl -s -o /dev/null -X POST "${D[@]}" -H 'Content-Type: application/json' \
        --data-binary "{\"template\":\"$P-t\",\"name\":\"$P-k$i\"}" "$BERTH_URL/api/v1/instances" &
done
wait
sleep 0.3
kill -9 "$(svc_pid worker)"
sleep 0.3
"$ROOT/scripts/stack.sh" start >/dev/null 2>&1
wait_for 180 all_run "$P-k%" "$INFLIGHT"
n=$(running_like "$P-k%")
expect_eq "after kill -9 and a restart of the worker all $INFLIGHT in-flight creates run" "$INFLIGHT" "$n"
expect_eq "exactly one container per instance (no duplicate, none missing)" 0 "$(one_each "$P-k%")"
expect_eq "no orphan container (every labelled container has a live row)" "" \
    "$(comm -23 <(docker ps -a --filter "label=berth.cluster=$BERTH_CLUSTER" --format '{{.Label "berth.instance"}}' | sort) \
               <(psql_q "SELECT id FROM instances WHERE status <> 'deleted'" | sort))"
expect_eq "no job is left open" 0 "$(psql_q "SELECT count(*) FROM jobs WHERE user_id = '$DEV_ID' AND status IN ('queued', 'running')")"
expect_eq "no leaked port: one reservation per port of each of them, each bound by Docker" \
    "$INFLIGHT $INFLIGHT" \
    "$(psql_q "SELECT count(*) FROM instance_ports p JOIN instances i ON i.id = p.instance_id WHERE i.user_id = '$DEV_ID' AND i.name LIKE '$P-k%'") $(docker ps --filter "label=berth.cluster=$BERTH_CLUSTER" --filter "label=berth.user=$P-dev" --format '{{.Names}} {{.Ports}}' | grep -F "$(psql_q "SELECT 'berth-' || id FROM instances WHERE user_id = '$DEV_ID' AND name LIKE '$P-k%'")" | grep -o '127.0.0.1:[0-9]*' | sort -u | wc -l)"
expect_eq "no port row of a deleted instance anywhere" 0 \
    "$(psql_q "SELECT count(*) FROM instance_ports p JOIN instances i ON i.id = p.instance_id WHERE i.status = 'deleted'")"

# ---- a queue entry lost in Redis: the job row brings it back ----
kill "$(svc_pid worker)"
for _ in $(seq 50); do kill -0 "$(svc_pid worker)" 2>/dev/null || break; sleep 0.1; done
create "{\"template\":\"$P-t\",\"name\":\"$P-lost\"}" "${D[@]}"
IL=$IID
redis_q DEL "berth:jobs:local" >/dev/null
"$ROOT/scripts/stack.sh" start >/dev/null 2>&1
reach "a create whose queue entry was lost runs once the worker starts" "$IL" running 30 "${D[@]}"

# ---- port range exhausted: 503 and nothing created ----
restart_api() { # restart_api [ENV=...]: berth-api with that environment
    kill "$(svc_pid api)"
    for _ in $(seq 50); do kill -0 "$(svc_pid api)" 2>/dev/null || break; sleep 0.1; done
    env "$@" "$ROOT/scripts/stack.sh" start >/dev/null 2>&1
    for _ in $(seq 50); do curl -sf -o /dev/null "$BERTH_URL/api/v1/health" && break; sleep 0.1; done
}
RANGE_LO=$((61000 + RANDOM % 3000))
RANGE_CHANGED=1
restart_api BERTH_PORT_RANGE=$RANGE_LO-$((RANGE_LO + 1))
create "{\"template\":\"$P-t\",\"name\":\"$P-r1\"}" "${D[@]}"; R1=$IID
create "{\"template\":\"$P-t\",\"name\":\"$P-r2\"}" "${D[@]}"; R2=$IID
n0=$(psql_q "SELECT count(*) FROM instances")
create "{\"template\":\"$P-t\",\"name\":\"$P-r3\"}" "${D[@]}"
expect_eq "with the port range used up, create answers 503 unavailable" "503 unavailable" "$STATUS $(jq -r .error.code <<<"$BODY")"
check "the answer says the port range is used up" grep -q "no free host port" <<<"$(jq -r .error.message <<<"$BODY")"
expect_eq "and nothing was created" "$n0" "$(psql_q "SELECT count(*) FROM instances")"
restart_api
RANGE_CHANGED=""
for id in $R1 $R2; do curl -s -o /dev/null -X DELETE "${D[@]}" "$BERTH_URL/api/v1/instances/$id?delete_volumes=true"; done

# ---- viewer and other users ----
http GET "/api/v1/instances/$I2" "" "${A[@]}"
expect_eq "an admin reads any instance" 200 "$STATUS"
user_login "$P-oth" developer "$TMP/oth.jar"
OTH_ID=$USER_ID OCSRF=$CSRF
http GET "/api/v1/instances/$I2" "" -b "$TMP/oth.jar"
expect_eq "another developer gets 404 for someone else's instance" 404 "$STATUS"
http POST "/api/v1/instances/$I2/stop" "" -b "$TMP/oth.jar" -H "X-CSRF-Token: $OCSRF"
expect_eq "and cannot stop it" 404 "$STATUS"
curl -s -o /dev/null -X DELETE "${A[@]}" "$BERTH_URL/api/v1/users/$OTH_ID"
