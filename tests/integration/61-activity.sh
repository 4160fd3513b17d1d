#!/usr/bin/env bash
# Activity that counts (issue 13): with idle_timeout_s 20 and a pass every
# 2 s (idle_check_s),
#  (a) a WebSocket through the proxy exchanging a message every 3 s keeps its
#      instance running well past the timeout, its last_active_kind websocket;
#  (b) an open but silent WebSocket does not: the instance is stopped after the
#      timeout, with an idle_warning event before the idle stop;
#  (c) an SSH session printing a line a second keeps an sshd instance running
#      (kind ssh), when the sshd image is on this Docker;
#  (d) a snooze resets the clock (kind snooze, an instance that would have been
#      stopped is not), audited; refused for another user's instance, a viewer,
#      a bad or unknown id, a stopped instance; berthctl snooze does the same;
#  (e) proxied HTTP requests still count (kind http).
# Figures (time from the last traffic to the stop, the sampling pass's cost)
# are printed as # comments.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need node

scratch ac 2
WS=(node "$ROOT/tests/lib/ws-client.mjs")
PORT=${BERTH_URL##*:}
CONF_BAK=$TMP/berth.conf.bak
cp "$BERTH_CONFIG" "$CONF_BAK"
PIDS=()
cleanup() {
    touch "$TMP/stop-a" "$TMP/stop-b"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    cp "$CONF_BAK" "$BERTH_CONFIG"
    reload worker
    rm -rf "$TMP"
}
trap cleanup EXIT

printf 'idle_check_s = 2\nidle_warning_s = 300\nlog_level = debug\n' >> "$BERTH_CONFIG"
check "the worker takes idle_check_s and idle_warning_s on SIGHUP" reload worker

admin_login "$TMP/admin.jar"
dev_login "$P" "$TMP/dev.jar" '{"instances":6,"cpus":4,"memory_mb":2048}'
DTOK=$(new_token ws -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF")
user_token "$P-o" developer; OTOK=$TOKEN OID=$USER_ID
user_token "$P-v" viewer; VTOK=$TOKEN VID=$USER_ID
admin POST /api/v1/templates "{\"name\":\"$P-echo\",\"image\":\"berth-demo/web:1\",\"command\":[\"/usr/local/bin/berth-echo\"],\"http_port\":8080,\"idle_timeout_s\":20,\"cpus\":0.25,\"memory_mb\":32,\"pids_limit\":64}"
expect_eq "a template of berth-echo with idle_timeout_s 20" 201 "$STATUS"
if [[ -z $DTOK || -z $OTOK || -z $VTOK ]]; then
    fail "tokens for the owner, another developer and a viewer" "$DTOK / $OTOK / $VTOK"
    exit 0
fi
AUTH=(-H "Authorization: Bearer $DTOK")

for n in live quiet snooze; do
    create "{\"template\":\"$P-echo\",\"name\":\"$n\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
    eval "ID_$n=\$IID"
done
for n in live quiet snooze; do
    eval "id=\$ID_$n"
    reach "instance $n runs" "$id" running 90 "${AUTH[@]}"
done
check "the instance shows its idle_timeout_s" jq -e '.idle_timeout_s == 20' <<<"$INST"

WSO=$(ws_origin "$P")
WSH=(-H "Host: ${WSO#http://}" -H "Origin: $WSO" -H "Authorization: Bearer $DTOK")
wsurl() { echo "ws://127.0.0.1:$PORT/container/$P/$1/ws"; }
route_up() { [[ $(http_code -H "Authorization: Bearer $DTOK" "$WSO/container/$P/$1/") == 200 ]]; }
for n in live quiet; do wait_for 20 route_up "$n"; done

# (a) and (b) at once: one WebSocket talking, one silent.
"${WS[@]}" "$(wsurl live)" "${WSH[@]}" --timeout 600000 every 3000 "$TMP/stop-a" > "$TMP/a.out" 2>&1 &
PIDS+=($!); PID_A=$!
"${WS[@]}" "$(wsurl quiet)" "${WSH[@]}" --timeout 600000 quiet "$TMP/stop-b" > "$TMP/b.out" 2>&1 &
PIDS+=($!); PID_B=$!
T_OPEN=$(date +%s)

# (d) the third instance, idle from its start: snoozed at 12 s (before it
# would be warned at 15 s and stopped at 20 s).
started_at() { psql_q "SELECT extract(epoch FROM started_at)::bigint FROM instances WHERE id = '$1'"; }
S_START=$(started_at "$ID_snooze")
sleep $((S_START + 12 - $(date +%s) > 0 ? S_START + 12 - $(date +%s) : 0))
http POST "/api/v1/instances/$ID_snooze/snooze" "" "${AUTH[@]}"
expect_eq "the owner snoozes a running instance: 200 with the instance" "200 snooze" \
    "$STATUS $(jq -r .last_active_kind <<<"$BODY")"
T_SNOOZE=$(date +%s)
check "... its last_active_at is now" jq -e --argjson t "$T_SNOOZE" \
    '(.last_active_at | fromdateiso8601) >= $t - 2' <<<"$BODY"
N=$(psql_q "SELECT count(*) FROM audit_log WHERE action = 'instance.snooze' AND target_id = '$ID_snooze' AND outcome = 'ok'")
expect_eq "... audited as instance.snooze" 1 "$N"
http POST "/api/v1/instances/$ID_snooze/snooze" "" -H "Authorization: Bearer $OTOK"
expect_eq "another developer's snooze of it is a 404 (ids are never confirmed)" "404 not_found" "$STATUS $(err_code)"
# a viewer owning an instance (viewers cannot launch one: it is lent for one request)
psql_q "UPDATE instances SET user_id = '$VID' WHERE id = '$ID_snooze'" >/dev/null
http POST "/api/v1/instances/$ID_snooze/snooze" "" -H "Authorization: Bearer $VTOK"
psql_q "UPDATE instances SET user_id = '$DEV_ID' WHERE id = '$ID_snooze'" >/dev/null
expect_eq "a viewer may not snooze even their own instance (403)" "403 forbidden" "$STATUS $(err_code)"
http POST "/api/v1/instances/not-a-uuid/snooze" "" "${AUTH[@]}"
expect_eq "a bad id is a 404" "404 not_found" "$STATUS $(err_code)"
http POST "/api/v1/instances/00000000-0000-4000-8000-000000000000/snooze" "" "${AUTH[@]}"
expect_eq "an unknown id is a 404" "404 not_found" "$STATUS $(err_code)"
http POST "/api/v1/instances/$ID_snooze/snooze" "" -b "$DEV_JAR"
expect_eq "a cookie request without its CSRF token is refused (403)" 403 "$STATUS"

# past 20 s of the snoozed one's start: still running (it was snoozed)
sleep $((S_START + 26 - $(date +%s) > 0 ? S_START + 26 - $(date +%s) : 0))
http GET "/api/v1/instances/$ID_snooze" "" "${AUTH[@]}"
expect_eq "26 s after its start, the snoozed instance still runs (kind snooze)" "running snooze" \
    "$(jq -r '"\(.status) \(.last_active_kind)"' <<<"$BODY")"

# (b) the silent WebSocket's instance is stopped after the timeout
reach "an instance with an open but silent WebSocket is stopped for idleness" "$ID_quiet" \
    'stopping|stopped' 60 "${AUTH[@]}"
http GET "/api/v1/instances/$ID_quiet/events" "" "${AUTH[@]}"
EV=$BODY
at_of() { jq -r --arg k "$1" '[.items[] | select(.kind == $k)][0].at | fromdateiso8601' <<<"$2"; }
T_STOP=$(at_of idle "$EV") T_WARN=$(at_of idle_warning "$EV")
echo "# silent WebSocket: opened at +0 s, warned at +$((T_WARN - T_OPEN)) s, stop queued at +$((T_STOP - T_OPEN)) s (idle_timeout_s 20, idle_check_s 2)"
if ((T_STOP - T_OPEN >= 20)); then ok "... not before its timeout ($((T_STOP - T_OPEN)) s)"; else fail "... not before its timeout" "stopped after $((T_STOP - T_OPEN)) s"; fi
check "... with an idle_warning event before the idle stop" jq -e '
    [.items[].kind] as $k | ($k | index("idle_warning")) as $w | ($k | index("idle")) as $i
    | $w != null and $i != null and $w < $i' <<<"$EV"
check "... saying how long it was idle and when it stops" jq -e \
    '[.items[] | select(.kind == "idle_warning")][0].message | test("^no activity for [0-9]+ s; stops in [0-9]+ s unless used or snoozed$")' <<<"$EV"
check "... one warning for the idle period" jq -e '[.items[] | select(.kind == "idle_warning")] | length == 1' <<<"$EV"
check "the silent WebSocket ends with its instance" wait_for 30 grep -q "closed by the server" "$TMP/b.out"

# (a) the talking one is still running, past twice the timeout
sleep $((T_OPEN + 40 - $(date +%s) > 0 ? T_OPEN + 40 - $(date +%s) : 0))
http GET "/api/v1/instances/$ID_live" "" "${AUTH[@]}"
expect_eq "40 s on, the instance whose WebSocket talks every 3 s still runs, kind websocket" \
    "running websocket" "$(jq -r '"\(.status) \(.last_active_kind)"' <<<"$BODY")"
check "... its last activity is recent" jq -e '(.last_active_at | fromdateiso8601) >= now - 6' <<<"$BODY"
http GET "/api/v1/instances/$ID_live/events" "" "${AUTH[@]}"
check "... and it was never warned" jq -e '[.items[] | select(.kind == "idle_warning" or .kind == "idle")] | length == 0' <<<"$BODY"
touch "$TMP/stop-a"
check "... the WebSocket exchanged its messages all along" wait_for 10 grep -q "^every [0-9]* s, [0-9]* messages" "$TMP/a.out"

# (e) proxied HTTP requests count, as they did
hits() { for _ in 1 2 3; do http_code -H "Authorization: Bearer $DTOK" "$WSO/container/$P/live/" >/dev/null; sleep 1; done; }
hits
kind_is() { [[ $(psql_q "SELECT last_active_kind FROM instances WHERE id = '$1'") == "$2" ]]; }
check "HTTP requests through the proxy count: kind http" wait_for 10 kind_is "$ID_live" http

# (d) continued: the snoozed instance, left alone, is warned and stopped
reach "the snoozed instance, left alone, is stopped in the end" "$ID_snooze" 'stopping|stopped' 60 "${AUTH[@]}"
http GET "/api/v1/instances/$ID_snooze/events" "" "${AUTH[@]}"
T_S2=$(at_of idle "$BODY")
echo "# snoozed at +0 s (12 s after its start), stop queued at +$((T_S2 - T_SNOOZE)) s"
if ((T_S2 - T_SNOOZE >= 20)); then ok "... a full timeout after the snooze"; else fail "... a full timeout after the snooze" "$((T_S2 - T_SNOOZE)) s"; fi
http POST "/api/v1/instances/$ID_snooze/snooze" "" "${AUTH[@]}"
expect_eq "a stopped instance cannot be snoozed (409)" "409 conflict" "$STATUS $(err_code)"
# berthctl snooze, on the one still running
out=$(BERTH_TOKEN=$DTOK "$BUILD/berthctl" snooze live 2>&1)
check "berthctl snooze NAME snoozes it" grep -q "idle clock reset" <<<"$out"
check "... kind snooze" kind_is "$ID_live" snooze

# (c) an SSH session with traffic, on the sshd image when this Docker has it
if command -v ssh-keygen >/dev/null && docker image inspect berth-demo/ssh:1 >/dev/null 2>&1; then
    ssh-keygen -q -t ed25519 -N '' -C "$P" -f "$TMP/key"
    dev POST /api/v1/ssh-keys "$(jq -nc --arg k "$(cat "$TMP/key.pub")" '{name:"key1", public_key:$k}')"
    expect_eq "the owner's SSH key is added" 201 "$STATUS"
    # The image's login user differs between its versions (root, or `berth`):
    # its entrypoint writes the key for whichever it has from BERTH_SSH_KEYS
    # (DAC_OVERRIDE, FOWNER: into that user's home), beside the worker's push.
    admin POST /api/v1/templates "$(jq -nc --arg n "$P-ssh" --arg k "$(cat "$TMP/key.pub")" '{name:$n,
        image:"berth-demo/ssh:1", ssh_port:22, idle_timeout_s:20, cpus:0.5, memory_mb:128, pids_limit:128,
        env:{BERTH_SSH_KEYS:$k},
        capabilities:["CHOWN","DAC_OVERRIDE","FOWNER","SETUID","SETGID","SYS_CHROOT","KILL","AUDIT_WRITE"]}')"
    expect_eq "an sshd template with idle_timeout_s 20" 201 "$STATUS"
    create "{\"template\":\"$P-ssh\"}" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF"
    SSHI=$IID
    reach "an sshd instance with idle_timeout_s 20 runs" "$SSHI" running 120 "${AUTH[@]}"
    SPORT=$(jq -r .ssh.port <<<"$INST") SHOST=$(jq -r .ssh.host <<<"$INST")
    SUSER=root
    sshc() {
        ssh -i "$TMP/key" -p "$SPORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR "$SUSER@$SHOST" "$@"
    }
    logs_in() {
        for SUSER in root berth; do [[ $(sshc echo in 2>/dev/null) == in ]] && return 0; done
        return 1
    }
    if wait_for 30 logs_in; then
        T_SSH=$(date +%s)
        sshc 'for i in $(seq 40); do echo line $i; sleep 1; done' > "$TMP/ssh.out" 2>&1
        http GET "/api/v1/instances/$SSHI" "" "${AUTH[@]}"
        expect_eq "an SSH session printing a line a second for 40 s keeps it running, kind ssh" \
            "running ssh" "$(jq -r '"\(.status) \(.last_active_kind)"' <<<"$BODY")"
        expect_eq "... the session printed all its lines" 40 "$(grep -c '^line ' "$TMP/ssh.out")"
        echo "# ssh session: $(($(date +%s) - T_SSH)) s with idle_timeout_s 20"
    else
        fail "ssh logs in to the sshd instance" "$(sshc echo in 2>&1)"
    fi
    dev DELETE "/api/v1/instances/$SSHI?delete_volumes=true"
else
    skip "an SSH session with traffic keeps its instance running" "berth-demo/ssh:1 is not on this Docker (BERTH_IMAGES=ssh)"
fi

# the sampling pass's cost, from the worker's debug lines of this test
grep -o 'activity pass: .*' "$WORKER_LOG" | awk '
    { for (i = 1; i <= NF; i++) { if ($(i+1) == "sampled,") s = $i; if ($(i+1) == "tables,") t = $i; if ($(i+1) == "ms") m = $i }
      if (s == 0) next
      if (t == 0) { n0++; ms0 += m; in0 += s } else { n1++; ms1 += m; tb += t } }
    END { if (n0) printf "# activity passes without table reads: %d, %.1f us per sampled instance\n", n0, 1000 * ms0 / in0
          if (n1) printf "# activity passes reading net/tcp(6): %d, %.2f ms each, %d tables read\n", n1, ms1 / n1, tb }'

delete_instances_of "$DEV_ID" 90 "${AUTH[@]}"
admin DELETE "/api/v1/users/$DEV_ID"
admin DELETE "/api/v1/users/$OID"
admin DELETE "/api/v1/users/$VID"
delete_templates "$P-echo" "$P-ssh"
exit 0
