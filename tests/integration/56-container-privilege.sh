#!/usr/bin/env bash
# Least privilege for containers (issue 12 item 2; README "Security"):
#  - a template adds back only capabilities of the allow-list; SYS_ADMIN,
#    NET_ADMIN, NET_RAW, MKNOD, SYS_PTRACE are refused (400 invalid_field,
#    field capabilities, nothing stored), on create and on PATCH;
#  - every container drops all capabilities and gets the template's: seen
#    by docker inspect and from inside (CapEff, CapBnd), NET_RAW gone (ping),
#    mknod refused, chown allowed only where the template adds CHOWN;
#  - docker-init is PID 1, so a shell that never set a SIGTERM handler stops
#    at once (the same command without init waits the whole stop timeout);
#  - the cgroup namespace is private (the container sees itself as the root);
#  - json-file logs rotate at container_log_max_size, container_log_max_files
#    kept (reloaded by SIGHUP), proven by a container that writes more;
#  - disk_mb as this machine's storage driver allows: a size limit where
#    Docker can enforce one, else a permanent error naming disk_mb.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need docker
scratch cp 2
CONF_BAK=$TMP/berth.conf.orig
cp "$BERTH_CONFIG" "$CONF_BAK"
BYHAND=berth-test-$P-noinit
cleanup() {
    docker rm -f "$BYHAND" >/dev/null 2>&1
    if ! cmp -s "$CONF_BAK" "$BERTH_CONFIG"; then cp "$CONF_BAK" "$BERTH_CONFIG"; reload worker; fi
    [[ -n ${DEV_ID:-} ]] && delete_instances_of "$DEV_ID" 60 -b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF"
    psql_q "DELETE FROM templates WHERE name = '$P-sql'" >/dev/null 2>&1
    for t in caps none disk; do admin DELETE "/api/v1/templates/$P-$t" >/dev/null 2>&1; done
    rm -rf "$TMP"
}
trap cleanup EXIT

admin_login "$TMP/admin.jar"
dev_login "$P" "$TMP/dev.jar"
D=(-b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF")
# dexec ID CMD...: exec in the instance as its owner; OUT and CODE
dexec() {
    local id=$1; shift
    local a=() x
    for x in "$@"; do a+=("$(jq -nc --arg v "$x" '$v')"); done # (jq would take "-c" as its own)
    http POST "/api/v1/instances/$id/exec" "{\"command\":[$(IFS=,; echo "${a[*]}")]}" "${D[@]}"
    OUT=$(jq -r '.output // empty' <<<"$BODY"); CODE=$(jq -r '.exit_code // empty' <<<"$BODY")
}
# capmask NAME...: the CapEff hex of exactly those capabilities
capmask() {
    local m=0 c
    declare -A bit=([CHOWN]=0 [DAC_OVERRIDE]=1 [FOWNER]=3 [FSETID]=4 [KILL]=5 [SETGID]=6
        [SETUID]=7 [SETPCAP]=8 [NET_BIND_SERVICE]=10 [SYS_CHROOT]=18 [AUDIT_WRITE]=29)
    for c in "$@"; do m=$((m | (1 << ${bit[$c]}))); done
    printf '%016x' "$m"
}

# ---- capabilities off the allow-list are refused, nothing stored
T0=$(psql_q "SELECT now()")
for cap in SYS_ADMIN NET_ADMIN NET_RAW MKNOD SYS_PTRACE; do
    admin POST /api/v1/templates "{\"name\":\"$P-bad\",\"image\":\"berth-demo/web:1\",\"capabilities\":[\"CHOWN\",\"$cap\"]}"
    expect_eq "a template adding $cap is refused: 400 invalid_field, field capabilities" \
        "400 invalid_field capabilities" "$STATUS $(err_code) $(err_field)"
done
check "... the sentence names the capability and the allowed ones" \
    jq -e '.error.message | test("SYS_PTRACE") and test("NET_BIND_SERVICE")' <<<"$BODY"
expect_eq "... and nothing was stored" 0 "$(psql_q "SELECT count(*) FROM templates WHERE name = '$P-bad'")"
expect_eq "... each refusal is audited" 5 \
    "$(psql_q "SELECT count(*) FROM audit_log WHERE action = 'template.create' AND outcome = 'invalid' AND details->>'field' = 'capabilities' AND at >= '$T0'")"
expect_eq "SYS_ADMIN is refused by the database too (a row written around the API)" 1 \
    "$(psql_q "INSERT INTO templates (id, name, image, capabilities) VALUES (gen_random_uuid(), '$P-sql', 'x', '{SYS_ADMIN}')" 2>&1 | grep -c 'check constraint')"

# ---- a template with three capabilities; its process ignores SIGTERM as PID 1 would
CAPS='["CHOWN","KILL","NET_BIND_SERVICE"]'
admin POST /api/v1/templates "{\"name\":\"$P-caps\",\"image\":\"berth-demo/web:1\",\"capabilities\":$CAPS,\"command\":[\"sh\",\"-c\",\"while :; do sleep 1; done\"],\"memory_mb\":32,\"pids_limit\":64}"
expect_eq "a template with allowed capabilities is created" 201 "$STATUS"
expect_eq "... and answers them, with disk_mb 0" "$CAPS 0" "$(jq -c .capabilities <<<"$BODY") $(jq -r .disk_mb <<<"$BODY")"
admin PATCH "/api/v1/templates/$P-caps" '{"capabilities":["CHOWN","SYS_ADMIN"]}'
expect_eq "a PATCH adding SYS_ADMIN is refused" "400 capabilities" "$STATUS $(err_field)"
admin GET "/api/v1/templates/$P-caps"
expect_eq "... and the template keeps its capabilities" "$CAPS" "$(jq -c .capabilities <<<"$BODY")"
admin GET /api/v1/templates/web
expect_eq "the seeded web template declares it needs none" '[]' "$(jq -c '.capabilities' <<<"$BODY")"

create "{\"template\":\"$P-caps\"}" "${D[@]}"
expect_eq "an instance is created" 202 "$STATUS"
CI=$IID
reach "it runs" "$CI" running 60 "${D[@]}"
expect_eq "the instance shows the capabilities it runs with" "$CAPS" "$(jq -c .capabilities <<<"$INST")"
C=berth-$CI
docker inspect "$C" > "$TMP/inspect.json"
expect_eq "docker inspect: CapDrop is ALL" '["ALL"]' "$(jq -c '.[0].HostConfig.CapDrop' "$TMP/inspect.json")"
expect_eq "docker inspect: CapAdd is the template's, nothing else" '["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE"]' \
    "$(jq -c '.[0].HostConfig.CapAdd | map(if startswith("CAP_") then . else "CAP_" + . end) | sort' "$TMP/inspect.json")"
expect_eq "docker inspect: Init, a private cgroup namespace, no-new-privileges" 'true private true' \
    "$(jq -r '.[0].HostConfig | "\(.Init) \(.CgroupnsMode) \(.SecurityOpt | index("no-new-privileges") != null)"' "$TMP/inspect.json")"
expect_eq "docker inspect: json-file logs, max-size 10m, max-file 3 (the defaults)" 'json-file 10m 3' \
    "$(jq -r '.[0].HostConfig.LogConfig | "\(.Type) \(.Config["max-size"]) \(.Config["max-file"])"' "$TMP/inspect.json")"

dexec "$CI" sh -c 'grep -E "^Cap(Eff|Prm|Bnd):" /proc/self/status'
want=$(capmask CHOWN KILL NET_BIND_SERVICE)
expect_eq "inside: CapEff, CapPrm and CapBnd hold exactly CHOWN, KILL, NET_BIND_SERVICE ($want)" \
    "$want $want $want" "$(awk '{print $2}' <<<"$OUT" | xargs)"
dexec "$CI" cat /proc/1/comm
expect_eq "inside: PID 1 is docker-init" docker-init "$OUT"
dexec "$CI" ping -c 1 -W 1 127.0.0.1
if [[ $CODE != 0 && $OUT == *ermission* ]]; then ok "inside: ping cannot open a raw socket (NET_RAW gone)"
else fail "inside: ping cannot open a raw socket (NET_RAW gone)" "exit $CODE: $OUT"; fi
dexec "$CI" mknod /tmp/null2 c 1 3
if [[ $CODE != 0 && $OUT == *"not permitted"* ]]; then ok "inside: mknod is refused (MKNOD gone)"
else fail "inside: mknod is refused (MKNOD gone)" "exit $CODE: $OUT"; fi
dexec "$CI" sh -c 'touch /tmp/f && chown 1234:1234 /tmp/f && stat -c %u /tmp/f'
expect_eq "inside: chown works where the template adds CHOWN" "0 1234" "$CODE $OUT"
dexec "$CI" sh -c 'cat /proc/self/cgroup; readlink /proc/self/ns/cgroup'
cg=$OUT
expect_eq "inside: every cgroup path is the namespace's root (/), none names the container" 0 \
    "$(grep -v '^cgroup:' <<<"$cg" | grep -vc ':/$')"
host_ns=$(readlink /proc/self/ns/cgroup)
pid=$(jq -r '.[0].State.Pid' "$TMP/inspect.json")
if [[ $(tail -1 <<<"$cg") == cgroup:* && $(tail -1 <<<"$cg") != "$host_ns" ]] && grep -q "${CI:0:8}\|docker" "/proc/$pid/cgroup"; then
    ok "the container's cgroup namespace is its own ($(tail -1 <<<"$cg"), the host's $host_ns); the host sees it under $(head -1 "/proc/$pid/cgroup" | cut -d: -f3 | cut -c1-30)..."
else
    fail "the container's cgroup namespace is its own" "inside: $cg" "host: $host_ns, /proc/$pid/cgroup: $(head -2 "/proc/$pid/cgroup")"
fi

# ---- docker-init: a shell that never set a SIGTERM handler stops at once
t0=$(date +%s%N)
http POST "/api/v1/instances/$CI/stop" "" "${D[@]}"
wait_status "$CI" stopped 30 "${D[@]}"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if (( ms < 5000 )); then ok "a stop of the SIGTERM-ignoring shell takes ${ms} ms (Docker's stop timeout is 10 s)"
else fail "a stop of the SIGTERM-ignoring shell takes well under 10 s" "$ms ms"; fi
docker run -d --name "$BYHAND" --cap-drop ALL berth-demo/web:1 sh -c 'while :; do sleep 1; done' >/dev/null
t0=$(date +%s%N); docker stop -t 3 "$BYHAND" >/dev/null; ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if (( ms >= 2900 )); then ok "... the same command without init, by hand, waits its whole stop timeout (${ms} ms of 3 s)"
else fail "... the same command without init waits its stop timeout" "$ms ms"; fi
docker rm -f "$BYHAND" >/dev/null 2>&1

# ---- no capabilities at all; log rotation from the reloaded settings
printf 'container_log_max_size = 100k\ncontainer_log_max_files = 2\n' >> "$BERTH_CONFIG"
check "the worker reloads container_log_max_size = 100k, container_log_max_files = 2 on SIGHUP" reload worker
LINE=$(printf 'x%.0s' $(seq 200))
admin POST /api/v1/templates "{\"name\":\"$P-none\",\"image\":\"berth-demo/web:1\",\"command\":[\"sh\",\"-c\",\"i=0; while [ \$i -lt 4000 ]; do echo \$i $LINE; i=\$((i+1)); done; echo logged-all; while :; do sleep 1; done\"],\"memory_mb\":32,\"pids_limit\":64}"
expect_eq "a template without capabilities is created" "201 []" "$STATUS $(jq -c .capabilities <<<"$BODY")"
create "{\"template\":\"$P-none\"}" "${D[@]}"
NI=$IID
reach "its instance runs" "$NI" running 60 "${D[@]}"
dexec "$NI" sh -c 'grep ^CapEff: /proc/self/status'
expect_eq "inside: CapEff is empty" "$(capmask)" "$(awk '{print $2}' <<<"$OUT")"
dexec "$NI" sh -c 'touch /tmp/f && chown 1234 /tmp/f'
if [[ $CODE != 0 && $OUT == *"not permitted"* ]]; then ok "inside: chown is refused without CHOWN"
else fail "inside: chown is refused without CHOWN" "exit $CODE: $OUT"; fi
expect_eq "docker inspect: max-size 100k, max-file 2 (the reloaded settings)" '100k 2' \
    "$(docker inspect -f '{{index .HostConfig.LogConfig.Config "max-size"}} {{index .HostConfig.LogConfig.Config "max-file"}}' "berth-$NI")"
logged() { docker logs --tail 5 "berth-$NI" 2>&1 | grep -q logged-all; }
check "the container has written its ~800 KB of log" wait_for 30 logged
LOGPATH=$(docker inspect -f '{{.LogPath}}' "berth-$NI")
files=$(ls "$LOGPATH"* 2>/dev/null | wc -l)
big=$(stat -c %s "$LOGPATH"* 2>/dev/null | sort -n | tail -1)
if [[ $files == 2 ]] && (( big <= 110000 )); then
    ok "the log was rotated: 2 files kept, the largest $big bytes (max-size 100k)"
else
    fail "the log was rotated: 2 files kept of at most ~100k" "$(ls -l "$LOGPATH"* 2>&1)"
fi
cp "$CONF_BAK" "$BERTH_CONFIG"
check "the log settings back to their defaults" reload worker
dev DELETE "/api/v1/instances/$NI?delete_volumes=true"

# ---- disk_mb: what this machine's storage allows
driver=$(docker info -f '{{.Driver}}')
backing=$(docker info -f '{{range .DriverStatus}}{{if eq (index . 0) "Backing Filesystem"}}{{index . 1}}{{end}}{{end}}')
check "the worker learned Docker's storage at start (its log names it)" grep -q "Docker's storage: $driver" "$WORKER_LOG"
admin POST /api/v1/templates "{\"name\":\"$P-disk\",\"image\":\"berth-demo/web:1\",\"disk_mb\":64,\"memory_mb\":32,\"pids_limit\":64}"
expect_eq "a template with disk_mb 64 is stored" "201 64" "$STATUS $(jq -r .disk_mb <<<"$BODY")"
create "{\"template\":\"$P-disk\"}" "${D[@]}"
DI=$IID DJ=$JID
wait_status "$DI" 'running|error' 90 "${D[@]}" 2>/dev/null
case $driver/$backing in
    btrfs/*|zfs/*|devicemapper/*) supported=yes ;;
    overlay2/xfs) supported=maybe ;;
    *) supported=no ;;
esac
st=$(jq -r .status <<<"$INST")
if [[ $supported == yes || ($supported == maybe && $st == running) ]]; then
    expect_eq "storage $driver on ${backing:-?} bounds the writable layer: the instance runs" running "$st"
    expect_eq "docker inspect: StorageOpt size 64M" 64M "$(docker inspect -f '{{.HostConfig.StorageOpt.size}}' "berth-$DI")"
    dexec "$DI" sh -c 'dd if=/dev/zero of=/big bs=1M count=100 2>&1; echo rc=$?'
    check "inside: writing 100 MB to the root file system fails" grep -q 'rc=[1-9]' <<<"$OUT"
else
    expect_eq "storage $driver on ${backing:-?} cannot bound a container's disk: the create fails" error "$st"
    check "... with an error naming disk_mb and the storage" \
        jq -e --arg d "$driver" '.error | test("disk_mb") and test($d)' <<<"$INST"
    expect_eq "... for good, on its first attempt (no retry can help)" "failed 1" \
        "$(psql_q "SELECT status, attempts FROM jobs WHERE id = '$DJ'")"
    check "... and no container was made without the limit" container_gone "$DI"
    ok "disk_mb on $driver/${backing:-?}: $(jq -r .error <<<"$INST" | head -c 160)"
fi
