#!/usr/bin/env bash
# Workspace isolation (issue 10), tried as an attacker would, against real
# nginx, berth-api and containers, in both origin modes: the test stack's
# workspace origin ({user}.localhost) and, beside it, a second nginx and
# berth-api on the same database with workspace_host = same.
#
# The owner of one instance aims at another user's instance with every path
# trick we know (dot segments plain, encoded, double-encoded, with
# backslashes, semicolons, doubled slashes; encoded names; absolute-form
# request targets; duplicated Host headers), as GET, POST and WebSocket
# upgrade, with a workspace cookie, an API token, and a viewer's: each is
# refused and none shows the other instance's content. Then: the sign-in
# code's rules, berth's cookies and Authorization never reaching a container
# (all copies), two session cookies refused, foreign Origins refused on
# upgrades and unsafe methods, a container's Set-Cookie confined to its path
# and Service-Worker-Allowed dropped, the UI's strict headers, and logout
# ending the workspace cookie.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch is 2
A=$P-a B=$P-b V=$P-v
SAME_PIDS=()
cleanup() {
    for p in "${SAME_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

admin_login "$TMP/admin"
dev_login "$B" "$TMP/b"; BJAR=$DEV_JAR BCSRF=$DCSRF
dev_login "$A" "$TMP/a"; AJAR=$DEV_JAR ACSRF_A=$DCSRF
user_login "$V" viewer "$TMP/v"; VCSRF=$CSRF

as() { # as JAR CSRF METHOD PATH [BODY]
    http "$3" "$4" "${5-}" -b "$1" -H "X-CSRF-Token: $2"
}
launch() { # JAR CSRF NAME -> IID
    create "{\"template\":\"web\",\"name\":\"$3\"}" -b "$1" -H "X-CSRF-Token: $2"
}
launch "$AJAR" "$ACSRF_A" site; AID=$IID
launch "$BJAR" "$BCSRF" site; BID=$IID
launch "$BJAR" "$BCSRF" two
TA=$(new_token iso -b "$AJAR" -H "X-CSRF-Token: $ACSRF_A")
TB=$(new_token iso -b "$BJAR" -H "X-CSRF-Token: $BCSRF")
TV=$(new_token iso -b "$TMP/v" -H "X-CSRF-Token: $VCSRF")
if [[ -z $AID || -z $BID || -z $TA || -z $TB || -z $TV ]]; then
    fail "users, tokens and instances for the attack" "a=$AID b=$BID"; exit 0
fi
wait_status "$AID" running 60 -H "Authorization: Bearer $TA" 2>/dev/null
wait_status "$BID" running 60 -H "Authorization: Bearer $TB" 2>/dev/null
AO=$(ws_origin "$A") BO=$(ws_origin "$B")
http GET "/api/v1/instances/$AID" "" -H "Authorization: Bearer $TA"
expect_eq "urls.open is the instance's address on its workspace origin" \
    "$AO/container/$A/site/" "$(jq -r .urls.open <<<"$BODY")"
# A template's open_path is appended, placeholders expanded (noVNC's path=).
admin POST /api/v1/templates "{\"name\":\"$P-vnc\",\"image\":\"berth-demo/web:1\",\"http_port\":8080,\"open_path\":\"vnc.html?path={base_path_rel}websockify\"}"
expect_eq "a template keeps its open_path" "vnc.html?path={base_path_rel}websockify" "$(jq -r .open_path <<<"$BODY")"
as "$AJAR" "$ACSRF_A" POST /api/v1/instances "{\"template\":\"$P-vnc\",\"name\":\"vnc\"}"
expect_eq "urls.open ends in the expanded open_path" \
    "$AO/container/$A/vnc/vnc.html?path=container/$A/vnc/websockify" "$(jq -r .instance.urls.open <<<"$BODY")"
for op in '/etc/x' '../../x' 'a//b' 'a%2e%2e/b' 'x\"y' '{base_path}x'; do
    admin POST /api/v1/templates "$(jq -nc --arg n "$P-bad" --arg o "$op" '{name:$n, image:"berth-demo/web:1", http_port:8080, open_path:$o}')"
    expect_eq "an open_path that could leave the workspace ('$op') is refused, naming the field" \
        "400 open_path" "$STATUS $(jq -r .error.field <<<"$BODY")"
done
# The owners' content, through their own credentials (and the route is live).
seen() { # URL TOKEN -> body
    curl -s --max-time 20 --path-as-is -H "Authorization: Bearer $2" "$1"
}
for _ in $(seq 1 80); do
    seen "$BO/container/$B/site/cgi-bin/env" "$TB" | grep -q "BERTH_USER=$B" &&
        seen "$AO/container/$A/site/cgi-bin/env" "$TA" | grep -q "BERTH_USER=$A" && break
    sleep 0.25
done
check "the owner reaches their workspace on its origin" \
    bash -c "curl -s -H 'Authorization: Bearer $TB' '$BO/container/$B/site/cgi-bin/env' | grep -q 'BERTH_USER=$B'"
ws_login "$AJAR" "$AO/container/$A/site/"
expect_eq "a browser signs in on the workspace origin through the UI origin and lands on it" 200 "$STATUS"
check "... and holds a workspace cookie of that host only" grep -q "^#HttpOnly_$A.localhost.*berth_ws" "$AJAR"

# ---- the attack table ----
# Targets: B's instance, from A's prefix and others. $T: what follows the names.
T=cgi-bin/env
tricks_from() { # tricks_from X: the tricks aimed at B from X's own instance prefix
    local X=$1
    TRICKS=(
        "/container/$X/site/../../$B/site/$T"
        "/container/$X/site/..%2f..%2f$B/site/$T"
        "/container/$X/site/..%2F..%2F$B/site/$T"
        "/container/$X/site/%2e%2e/%2e%2e/$B/site/$T"
        "/container/$X/site/%2E%2E%2F%2E%2E%2F$B/site/$T"
        "/container/$X/site/.%2e/.%2e/$B/site/$T"
        "/container/$X/site/%2e./%2e./$B/site/$T"
        "/container/$X/site//../../$B/site/$T"
        "/container/$X/site/./../../$B/site/$T"
        "/container/$X/../$B/site/$T"
        "/container/$X%2f..%2f$B/site/$T"
        "/container/$X/site%2f..%2f..%2f$B/site/$T"
        "/container//$B/site/$T"
        "/container/$B//site/$T"
        "/container/$B/./site/$T"
        "/container/%${B:0:1}/site/$T"
        "/container/$(printf '%%%02x' "'${B:0:1}")${B:1}/site/$T"
        "/%63ontainer/$B/site/$T"
        "//container/$B/site/$T"
        "/container/$B/site%2f$T"
        "/container/$B/site/$T"
        "/container/$B/site/$T?x=/container/$X/site/"
        "/container/$B/two/$T"
    )
    # These stay inside A's own prefix once nginx has normalised them: they reach
    # A's own container (what follows the prefix is the app's business), never B's.
    OWN=(
        "/container/$X/site/..;/..;/$B/site/$T"
        "/container/$X/site/..%252f..%252f$B/site/$T"
        "/container/$X/site/..%5c..%5c$B/site/$T"
        "/container/$X/site/..\\..\\$B/site/$T"
        "/container/$X/site/?/../../$B/site/$T"
        "/container/$X/site/%3f/../../$B/site/$T"
    )
}
tricks_from "$A"
UPG=(-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13'
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
try() { # try METHOD URL curl-args... -> sets st; the body in $TMP/body
    local m=$1 url=$2; shift 2
    local args=(-s --max-time 20 --path-as-is -o "$TMP/body" -w '%{http_code}' "$@")
    case $m in
        POST) args+=(-X POST -H 'Content-Type: text/plain' --data-binary x) ;;
        UPGRADE) args+=("${UPG[@]}") ;;
    esac
    st=$(curl "${args[@]}" "$url") || st=000
}
attack() { # label origin credential-args... ; runs every trick x method, one check
    local label=$1 origin=$2; shift 2
    local bad=() t m
    for t in "${TRICKS[@]}"; do
        for m in GET POST UPGRADE; do
            try "$m" "$origin$t" "$@"
            if grep -q "BERTH_USER=$B" "$TMP/body" 2>/dev/null || [[ ! $st =~ ^(301|302|400|401|403|404)$ ]]; then
                bad+=("$m $t -> $st")
            fi
        done
    done
    for t in "${OWN[@]}"; do
        for m in GET POST UPGRADE; do
            try "$m" "$origin$t" "$@"
            grep -q "BERTH_USER=$B" "$TMP/body" 2>/dev/null && bad+=("$m $t -> $st (B's content)")
        done
    done
    if [[ ${#bad[@]} -eq 0 ]]; then ok "$label: ${#TRICKS[@]} path tricks x GET/POST/upgrade refused, ${#OWN[@]} more stay in the attacker's own workspace; none shows B's"
    else fail "$label: path tricks refused" "${bad[@]}"; fi
}
attack "A's workspace cookie on A's origin" "$AO" -b "$AJAR"
attack "A's workspace cookie on B's origin" "$BO" -b "$AJAR"
attack "A's API token on A's origin" "$AO" -H "Authorization: Bearer $TA"
attack "A's API token on B's origin" "$BO" -H "Authorization: Bearer $TA"
attack "a viewer's API token on B's origin" "$BO" -H "Authorization: Bearer $TV"
attack "no credential on B's origin" "$BO"
# A viewer who owns an instance (a developer demoted, say) from their own prefix.
dev_login "$P-c" "$TMP/c"; CJAR=$DEV_JAR CCSRF=$DCSRF
launch "$CJAR" "$CCSRF" site; CID=$IID
TC=$(new_token iso-c -b "$CJAR" -H "X-CSRF-Token: $CCSRF")
[[ -n $CID && $TC == berth_* ]] || fail "the demoted owner has an instance and a token" "instance: '$CID' token: '${TC:0:6}'"
admin PATCH "/api/v1/users/$DEV_ID" '{"role":"viewer"}'
tricks_from "$P-c"
attack "a viewer who owns an instance, on B's origin" "$BO" -H "Authorization: Bearer $TC"
attack "a viewer who owns an instance, on their own origin" "$(ws_origin "$P-c")" -H "Authorization: Bearer $TC"
tricks_from "$A"

# The request line's absolute form names another host than Host: nginx and
# berth go by the request line, so A's cookie still meets B's instance.
st=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 20 -b "$AJAR" -H "Host: $A.localhost:${BERTH_URL##*:}" \
    --request-target "$BO/container/$B/site/$T" "$AO/")
check "an absolute-form request target with A's cookie is refused ($st)" \
    bash -c "[[ '$st' =~ ^(400|401|403)$ ]] && ! grep -q 'BERTH_USER=$B' '$TMP/body'"
raw_get() { # raw_get REQUEST-HEAD: sent as it is to nginx; prints the status line
    exec 3<>"/dev/tcp/127.0.0.1/${BERTH_URL##*:}" || return
    printf '%s\r\n' "$1" >&3
    head -1 <&3 | tr -d '\r'
    exec 3>&-
}
out=$(raw_get "GET /container/$B/site/$T HTTP/1.1"$'\r\n'"Host: $A.localhost"$'\r\n'"Host: $B.localhost"$'\r\n'"Authorization: Bearer $TA"$'\r\n'"Connection: close"$'\r\n')
check "two Host headers are refused ($out)" grep -q "^HTTP/1.1 400" <<<"$out"

# A's own instance asked of B's host with A's token: sent to A's host.
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Authorization: Bearer $TA" "$BO/container/$A/site/x?y=1")
expect_eq "A's instance on B's host is sent to A's own host" "302 $AO/container/$A/site/x?y=1" "$out"
# On the UI origin, /container/ is sent on to the workspace origin, canonical only.
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$BERTH_URL/container/$A/site/a/b?c=d")
expect_eq "the UI origin sends a workspace address on to the workspace origin" "302 $AO/container/$A/site/a/b?c=d" "$out"
st=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$BERTH_URL/container/$A/site/x/../../../$B/site/")
check "... but not a path trick ($st)" bash -c "[[ '$st' =~ ^(400|404)$ ]]"

# ---- the sign-in code ----
h=$(curl -s -D - -o /dev/null -H 'Accept: text/html' "$AO/container/$A/site/deep/page?q=1")
loc=$(sed -n 's/^[Ll]ocation: \(.*\)\r$/\1/p' <<<"$h")
check "a browser without a workspace cookie is sent to sign in on the UI origin" \
    grep -q "^$BERTH_URL/api/v1/auth/workspace?instance=$AID&path=%2Fcontainer%2F$A%2Fsite%2Fdeep%2Fpage%3Fq%3D1$" <<<"$loc"
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$loc")
check "... which, without a UI session, sends it to the login page with that return address" \
    grep -q "^302 $BERTH_URL/?next=%2Fapi%2Fv1%2Fauth%2Fworkspace%3Finstance%3D$AID" <<<"$out"
code_url=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$AJAR" "$loc")
check "... and, with A's session, hands out a one-time code for A's workspace host" \
    grep -q "^$AO/_berth/session?code=[0-9a-f]\{64\}$" <<<"$code_url"
code=${code_url##*=}
st=$(curl -s -o /dev/null -w '%{http_code}' "$BO/_berth/session?code=$code")
check "the code is refused on another user's workspace host ($st)" test "$st" = 400
st=$(curl -s -o /dev/null -w '%{http_code}' "$AO/_berth/session?code=$code")
check "... and used up by that attempt: single use ($st)" test "$st" = 400
code_url=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$AJAR" "$loc")
code=${code_url##*=}
psql_q "UPDATE workspace_codes SET expires_at = now() - interval '1 second'" >/dev/null
st=$(curl -s -o /dev/null -w '%{http_code}' "$AO/_berth/session?code=$code")
check "an expired code is refused ($st)" test "$st" = 400
code_url=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$AJAR" "$loc")
out=$(curl -s -D - -o /dev/null "$code_url")
check "a fresh code becomes an HttpOnly cookie of the instance's path, and the browser goes where it was going" \
    bash -c "grep -qi '^set-cookie: berth_ws=[0-9a-f]\{64\}; Path=/container/$A/site/; HttpOnly; SameSite=Lax' <<<\"\$1\" &&
             grep -qi '^location: /container/$A/site/deep/page?q=1' <<<\"\$1\"" _ "$out"
bad=()
for c in "" "../../etc/passwd" "$(printf 'f%.0s' $(seq 64))" "$(printf 'g%.0s' $(seq 64))" \
         "${code}0" "${code:0:63}" "%00$code" "$code%0d%0aSet-Cookie:%20berth_ws=x"; do
    out=$(curl -s -D - -o /dev/null "$AO/_berth/session?code=$c")
    grep -q '^HTTP/1.1 400' <<<"$out" && ! grep -qi '^set-cookie' <<<"$out" || bad+=("'$c': $(head -1 <<<"$out")")
done
check "8 forged, cut, padded or injected codes are refused (400) and set no cookie" test ${#bad[@]} -eq 0
[[ ${#bad[@]} -gt 0 ]] && printf '  %s\n' "${bad[@]}" >&2
bad=()
for t in "/container/$A%2fsite/x" "/container/$A/site%2f..%2f..%2f$B/site/" "/container/$A/site//x" \
         "/container/$A/site/%2e%2e/%2e%2e/$B/site/" "/container/$A/site/x%0d%0aLocation:%20http://evil/" \
         "/container/$A/site/..%252f..%252f$B/site/" "/container/A/site/" "/container/$A/site/\\evil"; do
    out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --path-as-is "$BERTH_URL$t")
    case $out in
        "302 $AO/container/$A/site/"*) [[ $t == *%0d* || $t == *%2f* || $t == *%252f* || $t == *//x ]] && bad+=("$t -> $out") ;;
        400\ *|404\ *) ;;
        *) bad+=("$t -> $out") ;;
    esac
done
check "the UI origin's redirect to workspaces follows none of 8 non-canonical or injected addresses" test ${#bad[@]} -eq 0
[[ ${#bad[@]} -gt 0 ]] && printf '  %s\n' "${bad[@]}" >&2
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -b "$BJAR" "$loc")
check "B's session gets no code for A's instance ($out)" grep -q '^403' <<<"$out"
for t in "/container/$A/site/../../$B/site/" "/container/$B/site/" "http://evil.example/" "//evil.example/" \
         "/container/$A/site/..%2f..%2f$B/site/"; do
    enc=$(jq -rn --arg s "$t" '$s|@uri')
    out=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$AJAR" "$BERTH_URL/api/v1/auth/workspace?instance=$AID&path=$enc")
    c=${out##*=}
    dest=$(curl -s -o /dev/null -w '%{redirect_url}' "$AO/_berth/session?code=$c")
    expect_eq "a sign-in asked to return to '$t' lands on the workspace's start instead" "$AO/container/$A/site/" "$dest"
done

# ---- nothing of berth's reaches a container ----
env_of() { curl -s --max-time 20 "$@" "$AO/container/$A/site/cgi-bin/env"; }
WSV=$(awk '$6 == "berth_ws" {print $7}' "$AJAR" | tail -1)
body=$(env_of -H "Cookie: app=1; berth_ws=$WSV; berth_ws=0000000000000000000000000000000000000000000000000000000000000000; berth_session=$(awk '$6 == "berth_session" {print $7}' "$AJAR"); other=2" -H "Authorization: Bearer $TA")
check "with berth_ws, a planted second berth_ws and berth_session in one header the owner still gets in" grep -q "BERTH_USER=$A" <<<"$body"
expect_eq "... and the container gets the app's cookies only, in order" "HTTP_COOKIE=app=1; other=2" "$(grep '^HTTP_COOKIE=' <<<"$body")"
check "... and no Authorization" bash -c "! grep -q '^HTTP_AUTHORIZATION' <<<\"\$1\"" _ "$body"
body=$(env_of -H "Authorization: Bearer $TA" -H "Cookie: berth_ws=x" -H "Cookie: theirs=1; berth_session=y")
check "berth's cookies in separate Cookie headers are removed too" \
    bash -c "grep -q '^HTTP_COOKIE=theirs=1$' <<<\"\$1\"" _ "$body"
st=$(curl -s -o /dev/null -w '%{http_code}' -b "$AJAR" -H "Cookie: berth_session=aa; berth_session=bb" "$BERTH_URL/api/v1/auth/me")
check "two berth_session cookies are refused by the API ($st)" test "$st" = 400

# ---- Origin ----
orig() { curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H "Authorization: Bearer $TA" -H "Origin: $1" "${@:2}" "$AO/container/$A/site/cgi-bin/env"; }
for o in http://evil.example "$BO" "$BERTH_URL" null "${AO/http:/https:}"; do
    expect_eq "an upgrade from Origin $o is refused" 403 "$(orig "$o" "${UPG[@]}")"
    expect_eq "a POST from Origin $o is refused" 403 "$(orig "$o" -X POST -d x)"
done
st1=$(orig "$AO" "${UPG[@]}") st2=$(orig "$AO" -X POST -d x)
check "an upgrade and a POST from the workspace's own origin pass the check ($st1, $st2)" \
    bash -c "[[ $st1 != 403 && $st2 != 403 ]]"
expect_eq "a GET with a foreign Origin (a navigation or an image) is not refused" 200 "$(orig http://evil.example)"

# ---- nothing of a workspace reaches berth ----
as "$AJAR" "$ACSRF_A" POST "/api/v1/instances/$AID/exec" \
    '{"command":["sh","-c","printf '"'"'#!/bin/sh\\nprintf \"Set-Cookie: berth_session=evil; Path=/\\\\r\\\\nSet-Cookie: app=1; Path=/api\\\\r\\\\nSet-Cookie: own=1; Path=/container/'"$A"'/site/x\\\\r\\\\nService-Worker-Allowed: /\\\\r\\\\nContent-Type: text/plain\\\\r\\\\n\\\\r\\\\nevil\\\\n\"\\n'"'"' > /www/cgi-bin/evil && chmod 755 /www/cgi-bin/evil"]}'
hdr=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $TA" "$AO/container/$A/site/cgi-bin/evil")
check "a container's Set-Cookie for '/' is confined to the instance's path" \
    grep -qi "^set-cookie: berth_session=evil; Path=/container/$A/site/" <<<"$hdr"
check "... so is one for another berth path" grep -qi "^set-cookie: app=1; Path=/container/$A/site/api" <<<"$hdr"
check "... and one inside its path is kept" grep -qi "^set-cookie: own=1; Path=/container/$A/site/x" <<<"$hdr"
check "Service-Worker-Allowed never leaves the proxy" bash -c "! grep -qi '^service-worker-allowed' <<<\"\$1\"" _ "$hdr"

# ---- the UI's and API's headers ----
for p in / /index.html /app.js /api/v1/health /api/v1/openapi.json "/?next=/x"; do
    h=$(curl -s -D - -o /dev/null "$BERTH_URL$p")
    check "$p: strict Content-Security-Policy, nosniff, Referrer-Policy, frame-ancestors none" \
        bash -c "grep -qi \"^content-security-policy: default-src 'self'; script-src 'self'; style-src 'self'.*frame-ancestors 'none'\" <<<\"\$1\" &&
                 grep -qi '^x-content-type-options: nosniff' <<<\"\$1\" && grep -qi '^referrer-policy: same-origin' <<<\"\$1\"" _ "$h"
done
check "the workspace origin serves no UI and no API" \
    bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' '$AO/') == 404 && \$(curl -s -o /dev/null -w '%{http_code}' '$AO/api/v1/health') == 404 ]]"

# ---- same mode: one origin, the UI session reaches the workspaces ----
same_start() {
    S=$BERTH_VAR/same; SP=$(( ${BERTH_URL##*:} + 200 ))
    while (echo > /dev/tcp/127.0.0.1/$SP) 2>/dev/null; do SP=$((SP + 1)); done
    mkdir -p "$S/run" "$S/log" "$S/nginx/tmp"
    local svc=() u; u=$(stat -c %U "$BERTH_VAR/run")
    [[ $(id -u) -eq 0 && $u != root ]] && svc=(setpriv --reuid="$u" --regid="$u" --init-groups --)
    chown -R "$u" "$S" 2>/dev/null
    sed -e "/#@split@/d" -e "s|#@same@ ||" -e "s|@VAR@|$S|g" -e "s|@HTTP_PORT@|$SP|g" \
        -e "s|@STATIC@|$ROOT/static|g" -e "s|@API_SOCKET@|$S/run/api.sock|g" \
        -e "s|@BOX_ENABLED@|$BERTH_VAR/nginx/box-enabled|g" -e "s|@UI_HOSTS@|127.0.0.1|g" \
        -e "s|@NGINX_DIR@|$ROOT/nginx|g" "$ROOT/nginx/berth.conf.in" > "$S/nginx.conf"
    BERTH_API_SOCKET=$S/run/api.sock BERTH_WORKSPACE_HOST=same BERTH_PUBLIC_URL=http://127.0.0.1:$SP \
        "${svc[@]}" "$BERTH_BUILD/berth-api" >>"$S/log/api.log" 2>&1 &
    SAME_PIDS+=($!)
    for _ in $(seq 1 40); do [[ -S $S/run/api.sock ]] && break; sleep 0.25; done
    "${svc[@]}" "$(command -v nginx)" -e "$S/log/err.log" -p "$S/nginx" -c "$S/nginx.conf" -g 'daemon off;' 2>>"$S/log/err.log" &
    SAME_PIDS+=($!)
    for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$SP/" && return 0; sleep 0.25; done
    return 1
}
if ! same_start; then
    fail "a same-mode nginx and berth-api start beside the stack" "$(tail -n 5 "$S/log/"*)"; exit 0
fi
ok "a same-mode nginx and berth-api start beside the stack"
SU=http://127.0.0.1:$SP
http GET "/api/v1/instances/$AID" "" -H "Authorization: Bearer $TA"
st=$(curl -s -o "$TMP/body" -w '%{http_code}' -b "$AJAR" "$SU/container/$A/site/cgi-bin/env")
check "same mode: the owner's UI session reaches the workspace at the UI origin ($st)" grep -q "BERTH_USER=$A" "$TMP/body"
check "same mode: ... and the container does not get berth_session" bash -c "! grep -q berth_session '$TMP/body'"
attack "same mode: A's session cookie" "$SU" -b "$AJAR"
attack "same mode: A's API token" "$SU" -H "Authorization: Bearer $TA"
attack "same mode: no credential" "$SU"
SC=$(awk '$6 == "berth_session" {print $7}' "$AJAR" | tail -1)
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: berth_session=$SC; berth_session=$SC" "$SU/container/$A/site/cgi-bin/env")
check "same mode: two berth_session cookies at a workspace are refused ($st)" test "$st" = 400
st=$(curl -s -o /dev/null -w '%{http_code}' -b "$AJAR" -H "Origin: http://evil.example" "${UPG[@]}" "$SU/container/$A/site/cgi-bin/env")
check "same mode: an upgrade from a foreign Origin is refused ($st)" test "$st" = 403
hdr=$(curl -s -D - -o /dev/null -b "$AJAR" "$SU/container/$A/site/cgi-bin/evil")
check "same mode: a container's berth_session for '/' cannot land on the UI's path" \
    grep -qi "^set-cookie: berth_session=evil; Path=/container/$A/site/" <<<"$hdr"
check "same mode: the workspace's responses do not carry the UI's CSP (apps keep their own)" \
    bash -c "! grep -qi '^content-security-policy' <<<\"\$1\"" _ "$hdr"
out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -b "$AJAR" "$SU/api/v1/auth/workspace?instance=$AID&path=%2Fcontainer%2F$A%2Fsite%2Fx")
expect_eq "same mode: the sign-in address goes straight to the path" "302 $SU/container/$A/site/x" "$out"

# ---- the database away: the proxy answers 503, not nginx's 500 ----
PGB=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgu=$(stat -c %U "$BERTH_VAR/pg/data") pgsvc=()
[[ $(id -u) -eq 0 && $pgu != root ]] && pgsvc=(setpriv --reuid="$pgu" --regid="$pgu" --init-groups --)
"${pgsvc[@]}" "$PGB/pg_ctl" -D "$BERTH_VAR/pg/data" -m fast -w stop >/dev/null 2>&1
sleep 2.2 # past the cached decisions
h=$(curl -s -D - -o "$TMP/body" -H "Authorization: Bearer $TA" "$AO/container/$A/site/")
check "PostgreSQL down: a proxied request is answered 503 with Retry-After, never 500" \
    bash -c "grep -q '^HTTP/1.1 503' <<<\"\$1\" && grep -qi '^retry-after: ' <<<\"\$1\" && grep -q '\"unavailable\"' '$TMP/body'" _ "$h"
"$ROOT/scripts/stack.sh" start >/dev/null 2>&1
for _ in $(seq 1 100); do http GET /api/v1/health; [[ $STATUS == 200 ]] && break; sleep 0.1; done
expect_eq "... and once it is back the workspace answers again" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TA" "$AO/container/$A/site/")"

# ---- logout ends the workspace cookie ----
st=$(curl -s -o /dev/null -w '%{http_code}' -b "$AJAR" "$AO/container/$A/site/")
expect_eq "the workspace cookie works before logout" 200 "$st"
as "$AJAR" "$ACSRF_A" POST /api/v1/auth/logout
st=$(curl -s -o /dev/null -w '%{http_code}' -b "$AJAR" "$AO/container/$A/site/")
expect_eq "after logout the workspace cookie is refused at once" 401 "$st"
