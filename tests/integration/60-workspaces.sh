#!/usr/bin/env bash
# Real workspaces from the seeded templates (issue 13): each image is built
# here with scripts/images.sh (cached: a rebuild costs a second; the first
# build on a machine debootstraps, minutes), launched through the REST API as
# a developer with an API token, and used the way its user would, through
# berth's own /container/<user>/<instance>/ path on the workspace origin:
#  - jupyter: Jupyter's XSRF check is on (a kernel POST without the token is
#    refused, with the _xsrf cookie's value it is made), 1+1 run over the
#    kernel's WebSocket answers 2, a file saved in the notebook directory
#    outlives a stop and a start (the home volume), a WebSocket from another
#    origin is refused by Jupyter itself;
#  - desktop: the noVNC page loads, its websockify WebSocket answers the VNC
#    greeting "RFB 003.008", the instance opens noVNC connected and resized;
#  - ssh: the owner's key logs in as the template's ssh_user (berth), whose
#    sudo needs no password (the template turns no-new-privileges off; the
#    web workspaces keep it); passwords and root are refused; the host key is
#    the same after a stop and start and after a delete that kept the volumes
#    and a launch that re-attached them (with the user's files);
#  - another user's API token gets 403 on each web workspace (pages and
#    WebSocket upgrades), and their key does not open the SSH box.
# An image that cannot be built here (no root, no debootstrap and no cached
# tarball) skips its part, saying why.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
need node
command -v ssh-keygen >/dev/null || { ok "ssh-keygen not installed # SKIP"; exit 0; }

scratch ws 2
WSC=(node "$ROOT/tests/lib/ws-client.mjs")
PORT=${BERTH_URL##*:}
WSURL=ws://127.0.0.1:$PORT

admin_login "$TMP/admin.jar"
ADM=(-b "$ADMIN_JAR" -H "X-CSRF-Token: $ACSRF")
user_token "$P-x" developer
OTOK=$TOKEN OTHER_ID=$USER_ID
# room for the three workspaces at once (each part deletes its own anyway)
dev_login "$P" "$TMP/dev.jar" '{"instances":5,"cpus":4,"memory_mb":4096}'
U=$P
DTOK=$(new_token t60 -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF")
[[ -n $DTOK ]] || fail "the developer gets an API token"
WO=$(ws_origin "$U")
AUTH=(-H "Authorization: Bearer $DTOK")
OAUTH=(-H "Authorization: Bearer $OTOK")
WSH=(-H "Host: ${WO#http://}" -H "Origin: $WO")

cleanup() {
    delete_instances_of "$DEV_ID $OTHER_ID" 120 "${ADM[@]}" >/dev/null 2>&1
    admin DELETE "/api/v1/users/$DEV_ID"
    admin DELETE "/api/v1/users/$OTHER_ID"
    rm -rf "$TMP"
}
trap cleanup EXIT

# image NAME: builds berth-demo/NAME:1 (or finds it up to date); says how long
# it took as a TAP comment; 1, with the reason in WHY, when it cannot.
image() {
    local started=$SECONDS
    if ! "$ROOT/scripts/images.sh" "$1" > "$TMP/images-$1.log" 2>&1; then
        WHY=$(tail -1 "$TMP/images-$1.log"); return 1
    fi
    echo "# images: $(tail -1 "$TMP/images-$1.log") -- $((SECONDS - started)) s in this test"
}

# stop_quickly "what" ID: stops the instance and checks it was stopped within
# 8 s -- the app ends on SIGTERM (docker-init forwards it), no wait for the
# kill after Docker's 10 s stop timeout.
stop_quickly() {
    local t=$SECONDS
    dev POST "/api/v1/instances/$2/stop"
    reach "$1" "$2" stopped 60 "${AUTH[@]}"
    expect_eq "... within 8 s: it ends on SIGTERM" yes "$( (( SECONDS - t <= 8 )) && echo yes || echo "no, $((SECONDS - t)) s")"
}

# launch WHAT TEMPLATE NAME SECONDS [VOLUMES-JSON]: creates it with the
# developer's token, checks the 202 (as WHAT) and that it runs within
# SECONDS; sets IID, INST, T0 (when it was asked for) and TRUN (seconds
# until it ran).
launch() {
    T0=$SECONDS
    create "{\"template\":\"$2\",\"name\":\"$3\"${5:+,\"volumes\":$5}}" "${AUTH[@]}"
    expect_eq "$1" 202 "$STATUS"
    reach "... and runs" "$IID" running "$4" "${AUTH[@]}"
    TRUN=$((SECONDS - T0))
}

# ---------------------------------------------------------------- jupyter ----
if image jupyter; then
    launch "a Jupyter workspace is launched from the seeded template with an API token" jupyter nb 180
    NB=$IID
    B="$WO/container/$U/nb/"
    expect_eq "its open URL is the notebook list on the workspace origin" "${B}tree" \
        "$(jq -r .urls.open <<<"$INST")"
    expect_eq "its container keeps no-new-privileges and drops every capability" '["no-new-privileges"] ["ALL"] null' \
        "$(docker inspect --format '{{json .HostConfig.SecurityOpt}} {{json .HostConfig.CapDrop}} {{json .HostConfig.CapAdd}}' "berth-$NB" 2>&1 | sed 's/\[\]/null/g')"
    jup_up() { [[ $(http_code "${AUTH[@]}" "${B}api/status") == 200 ]]; }
    check "Jupyter answers at its /container/ path (API token, no Jupyter token)" wait_for 120 jup_up
    echo "# jupyter: running $TRUN s after the launch, first answer after $((SECONDS - T0)) s"

    code=$(curl -s --max-time 30 -o "$TMP/tree.html" -w '%{http_code}' -c "$TMP/nb.jar" "${AUTH[@]}" "${B}tree")
    XSRF=$(awk -F'\t' '$6 == "_xsrf" {print $7}' "$TMP/nb.jar")
    XPATH=$(awk -F'\t' '$6 == "_xsrf" {print $3}' "$TMP/nb.jar")
    expect_eq "the notebook list loads" 200 "$code"
    check "... and sets Jupyter's _xsrf cookie" test -n "$XSRF"
    expect_eq "... for the workspace's own path" "/container/$U/nb/" "$XPATH"
    KBODY='{"name":"python3"}'
    code=$(http_code -X POST "${AUTH[@]}" -H 'Content-Type: application/json' --data "$KBODY" "${B}api/kernels")
    expect_eq "a kernel POST without the XSRF token is refused by Jupyter (its XSRF check is on)" 403 "$code"
    code=$(curl -s --max-time 60 -o "$TMP/kernel.json" -w '%{http_code}' -X POST "${AUTH[@]}" \
        -b "$TMP/nb.jar" -H "X-XSRFToken: $XSRF" -H "Origin: $WO" -H 'Content-Type: application/json' \
        --data "$KBODY" "${B}api/kernels")
    KID=$(jq -r '.id // empty' "$TMP/kernel.json" 2>/dev/null)
    expect_eq "with the _xsrf cookie's value in X-XSRFToken, from the workspace origin, a kernel is made" \
        "201 yes" "$code $([[ -n $KID ]] && echo yes)"
    MSG=$(jq -nc --arg s "$P" '{header: {msg_id: "m60", username: "berth", session: $s,
        msg_type: "execute_request", version: "5.3", date: ""}, parent_header: {}, metadata: {},
        content: {code: "1+1", silent: false, store_history: false, user_expressions: {},
        allow_stdin: false, stop_on_error: true}, channel: "shell", buffers: []}')
    KWS="$WSURL/container/$U/nb/api/kernels/$KID/channels?session_id=$P"
    out=$("${WSC[@]}" "$KWS" "${WSH[@]}" "${AUTH[@]}" -H "Cookie: _xsrf=$XSRF" --timeout 60000 \
        send "$MSG" until '"execute_result"' close 2>&1)
    expect_eq "1+1 run over the kernel's WebSocket through berth answers 2" 2 \
        "$(sed -n 's/^until //p' <<<"$out" | jq -r 'fromjson | .content.data["text/plain"]' 2>/dev/null)"
    [[ $out == *until* ]] || echo "  kernel WebSocket: $out" >&2
    expect_eq "a kernel WebSocket from another origin is refused by Jupyter" 403 \
        "$("${WSC[@]}" "$KWS" -H "Host: ${WO#http://}" -H "Origin: http://evil.example" "${AUTH[@]}" status 2>&1)"

    SAVED="saved by test 60 $P"
    code=$(http_code -X PUT "${AUTH[@]}" -b "$TMP/nb.jar" -H "X-XSRFToken: $XSRF" \
        -H 'Content-Type: application/json' \
        --data "$(jq -nc --arg c "$SAVED" '{type: "file", format: "text", content: $c}')" \
        "${B}api/contents/notes-60.txt")
    expect_eq "a file is saved in the notebook directory" 201 "$code"
    stop_quickly "the Jupyter workspace stops" "$NB"
    dev POST "/api/v1/instances/$NB/start"
    reach "... and starts again" "$NB" running 120 "${AUTH[@]}"
    check "... and answers again" wait_for 120 jup_up
    got=$(curl -s --max-time 30 "${AUTH[@]}" "${B}api/contents/notes-60.txt" | jq -r '.content // empty')
    expect_eq "the file is still there after the stop and start (the home volume)" "$SAVED" "$got"

    expect_eq "another user's token gets 403 on the notebook" 403 "$(http_code "${OAUTH[@]}" "${B}tree")"
    expect_eq "... and on its kernel WebSocket" 403 "$("${WSC[@]}" "$KWS" "${WSH[@]}" "${OAUTH[@]}" status 2>&1)"
    dev DELETE "/api/v1/instances/$NB?delete_volumes=true"
    reach "the Jupyter workspace is deleted" "$NB" 'deleted|gone' 90 "${AUTH[@]}"
else
    skip "a Jupyter workspace" "berth-demo/jupyter:1 could not be built here: $WHY"
fi

# ---------------------------------------------------------------- desktop ----
if image desktop; then
    launch "a desktop workspace is launched from the seeded template" desktop desk 180
    DESK=$IID
    B="$WO/container/$U/desk/"
    expect_eq "it opens noVNC connecting to its own websockify, resized to the browser" \
        "${B}vnc.html?path=container/$U/desk/websockify&autoconnect=1&resize=remote&reconnect=1" \
        "$(jq -r .urls.open <<<"$INST")"
    vnc_up() { [[ $(http_code "${AUTH[@]}" "${B}vnc.html") == 200 ]]; }
    check "the noVNC page loads through berth" wait_for 120 vnc_up
    echo "# desktop: running $TRUN s after the launch, first answer after $((SECONDS - T0)) s"
    check "... and is noVNC" grep -q 'noVNC' <<<"$(curl -s --max-time 30 "${AUTH[@]}" "${B}vnc.html")"
    check "... with its scripts" test "$(http_code "${AUTH[@]}" "${B}app/ui.js")" = 200
    rfb() { "${WSC[@]}" "$WSURL/container/$U/desk/websockify" "${WSH[@]}" "${AUTH[@]}" \
        -H 'Sec-WebSocket-Protocol: binary' --timeout 15000 until 'RFB 003.008' close 2>&1; }
    rfb_ok() { [[ $(rfb) == *'until "RFB 003.008\n"'* ]]; }
    check "its websockify WebSocket answers the VNC greeting RFB 003.008" wait_for 60 rfb_ok
    expect_eq "another user's token gets 403 on the desktop" 403 "$(http_code "${OAUTH[@]}" "${B}vnc.html")"
    expect_eq "... and on its VNC WebSocket" 403 \
        "$("${WSC[@]}" "$WSURL/container/$U/desk/websockify" "${WSH[@]}" "${OAUTH[@]}" status 2>&1)"
    stop_quickly "the desktop workspace stops" "$DESK"
    dev POST "/api/v1/instances/$DESK/start"
    reach "... and starts again" "$DESK" running 120 "${AUTH[@]}"
    check "... and its VNC server answers again" wait_for 60 rfb_ok
    dev DELETE "/api/v1/instances/$DESK?delete_volumes=true"
    reach "the desktop workspace is deleted" "$DESK" 'deleted|gone' 90 "${AUTH[@]}"
else
    skip "a desktop workspace" "berth-demo/desktop:1 could not be built here: $WHY"
fi

# -------------------------------------------------------------------- ssh ----
if image ssh; then
    ssh-keygen -q -t ed25519 -N '' -C "$P-own" -f "$TMP/own"
    ssh-keygen -q -t ed25519 -N '' -C "$P-theirs" -f "$TMP/theirs"
    dev POST /api/v1/ssh-keys "$(jq -nc --arg k "$(cat "$TMP/own.pub")" '{name: "own", public_key: $k}')"
    expect_eq "the developer registers a key" 201 "$STATUS"
    http POST /api/v1/ssh-keys "$(jq -nc --arg k "$(cat "$TMP/theirs.pub")" '{name: "theirs", public_key: $k}')" "${OAUTH[@]}"
    launch "an SSH workspace is launched from the seeded template" ssh box 120
    BOX=$IID
    SP=$(jq -r .ssh.port <<<"$INST") SH=$(jq -r .ssh.host <<<"$INST")
    expect_eq "it shows the ssh command naming the login user" "ssh -p $SP berth@$SH" \
        "$(jq -r .ssh.command <<<"$INST")"
    VOLS=$(jq -c '[.volumes[] | {key: .name, value: .id}] | from_entries' <<<"$INST")
    expect_eq "the template lets sudo work: its container runs without no-new-privileges" \
        "false null" "$(jq -r .no_new_privileges <<<"$INST") $(docker inspect --format '{{json .HostConfig.SecurityOpt}}' "berth-$BOX" 2>&1)"
    SSHO=(-p "$SP" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o ConnectTimeout=5 -o LogLevel=ERROR)
    as() { # KEY USER COMMAND
        ssh -i "$TMP/$1" "${SSHO[@]}" "$2@$SH" "$3" 2>&1
    }
    logs_in() { [[ $(as own berth 'id -un') == berth ]]; }
    check "the owner's key logs in as berth" wait_for 60 logs_in
    echo "# ssh: running $TRUN s after the launch, first login after $((SECONDS - T0)) s"
    expect_eq "berth's sudo needs no password" "sudo-ok 0" "$(as own berth 'sudo -n true && printf "sudo-ok "; sudo -n id -u')"
    out=$(ssh "${SSHO[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
        "berth@$SH" true 2>&1)
    check "a password login is refused: the server offers public keys only" \
        grep -q 'Permission denied (publickey)' <<<"$out"
    check "root may not log in, even with the owner's key" \
        grep -q 'Permission denied' <<<"$(as own root true)"
    check "another user's key does not log in" grep -q 'Permission denied' <<<"$(as theirs berth true)"
    hostkey() { ssh-keyscan -T 5 -t ed25519 -p "$SP" "$SH" 2>/dev/null | ssh-keygen -lf - 2>/dev/null | awk '{print $2}'; }
    FP=$(hostkey)
    check "the host key is read" test -n "$FP"
    as own berth 'echo kept > ~/kept-60' >/dev/null

    stop_quickly "the SSH workspace stops" "$BOX"
    dev POST "/api/v1/instances/$BOX/start"
    reach "... and starts again" "$BOX" running 60 "${AUTH[@]}"
    SP=$(jq -r .ssh.port <<<"$INST"); SSHO[1]=$SP
    check "... and logs in again" wait_for 60 logs_in
    expect_eq "the host key is the same after the stop and start" "$FP" "$(hostkey)"

    dev DELETE "/api/v1/instances/$BOX"
    reach "the SSH workspace is deleted, keeping its volumes" "$BOX" 'deleted|gone' 60 "${AUTH[@]}"
    launch "a new SSH workspace re-attaches the kept volumes" ssh box 120 "$VOLS"
    BOX=$IID
    SP=$(jq -r .ssh.port <<<"$INST"); SSHO[1]=$SP
    check "... and the owner's key logs in" wait_for 60 logs_in
    expect_eq "the host key is the same in the new container (the hostkeys volume)" "$FP" "$(hostkey)"
    expect_eq "... and so are the user's files (the home volume)" kept "$(as own berth 'cat ~/kept-60')"
    dev DELETE "/api/v1/instances/$BOX?delete_volumes=true"
    reach "the SSH workspace is deleted with its volumes" "$BOX" 'deleted|gone' 60 "${AUTH[@]}"
else
    skip "an SSH workspace" "berth-demo/ssh:1 could not be built here: $WHY"
fi
exit 0
