#!/usr/bin/env bash
# The not-running page (issue 13, item 5), through nginx, berth-api and a
# real container: a stopped instance's workspace answers its owner 503 with
# Retry-After -- never a bare 502 -- a page naming the real status and a
# Start link to the UI origin for a browser, the API's error shape for other
# clients. The status probe (X-Berth-Probe: status on the workspace address)
# answers the owner {status, error?} of that instance only, and refuses
# another user, an anonymous client, another instance's cookie or path, dot
# segments and planted cookie copies. Nothing on the workspace origin can
# start the instance: the API refuses a POST from it, the internal page
# address is not reachable, the Start link alone starts nothing. The browser
# half is 58-not-running-browser.mjs.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch nr 2
admin_login "$TMP/admin.jar"
two_sites "the not-running tests" || exit 0
PROBE=(-H 'X-Berth-Probe: status')

# refused WHAT [curl args...] URL: the probe is refused and names no status.
refused() {
    local what=$1; shift
    get "${PROBE[@]}" "$@"
    if [[ $STATUS =~ ^(302|400|401|403|404)$ ]] && ! grep -q '"status"' <<<"$BODY"; then
        ok "$what ($STATUS)"
    else
        fail "$what" "status $STATUS" "body: ${BODY:0:300}"
    fi
}

get "${PROBE[@]}" -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "the probe answers the owner of a running instance: {status: running}" '200 {"status":"running"}' \
    "$STATUS $(jq -c . <<<"$BODY" 2>/dev/null)"

curl -s -o /dev/null -b "$AJAR" -H "X-CSRF-Token: $DCSRF" -X POST "$BERTH_URL/api/v1/instances/$AID/stop"
reach "A's instance stops" "$AID" stopped 120 -b "$AJAR"

# ---- the owner's browser: 503, Retry-After, the page naming the status
get -H 'Accept: text/html,application/xhtml+xml' -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "a stopped workspace answers its owner's browser 503, not 502" 503 "$STATUS"
check "... with Retry-After" grep -q '^retry-after: [0-9]' <<<"$HDRS"
check "... an HTML page" grep -q '^content-type: text/html' <<<"$HDRS"
check "... saying the workspace is not running and naming its real status, stopped" \
    bash -c 'grep -q "This workspace is not running" <<<"$1" && grep -q "id=\"berth-status\">stopped<" <<<"$1"' _ "$BODY"
check "... with a Start link to the UI origin, naming this instance" \
    grep -qF "href=\"$BERTH_URL/?start=$AID&amp;path=%2Fcontainer%2F$A%2Fsite%2F\"" <<<"$BODY"
check "... and no form, and no script but berth's own file (a strict CSP)" \
    bash -c 'grep -q "^content-security-policy: default-src .none.; script-src .self." <<<"$1" && ! grep -qi "<form" <<<"$2" && [[ $(grep -o "<script[^>]*>" <<<"$2") == "<script src=\"/_berth/unavailable.js\">" ]]' _ "$HDRS" "$BODY"
check "... and nothing of another instance (B's id is not in it)" bash -c '! grep -qF "$1" <<<"$2"' _ "$BID" "$BODY"
get "$AO/_berth/unavailable.js"
expect_eq "the page's script is served on the workspace origin" "200 yes" \
    "$STATUS $(grep -q 'X-Berth-Probe' <<<"$BODY" && echo yes || echo no)"

# ---- a deeper path, HEAD, a POST: the same page, never the bare 502
get -H 'Accept: text/html' -H "Cookie: $ACOOK" "$AO${APATH}cgi-bin/env?x=1"
expect_eq "a deeper path of the stopped workspace: 503 too" 503 "$STATUS"
check "... its Start link brings the owner back to that very address" \
    grep -qF "?start=$AID&amp;path=%2Fcontainer%2F$A%2Fsite%2Fcgi-bin%2Fenv%3Fx%3D1\"" <<<"$BODY"
get -H 'Accept: text/html' -H "Cookie: $ACOOK" --path-as-is "$AO${APATH}a/../b"
check "... but not to an address with dot segments (the link has no path then)" \
    bash -c '[[ $1 == 503 ]] && grep -qF "?start=$2\"" <<<"$3"' _ "$STATUS" "$AID" "$BODY"
get -I -H 'Accept: text/html' -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "HEAD: 503 with Retry-After" "503 yes" "$STATUS $(grep -q '^retry-after:' <<<"$HDRS" && echo yes || echo no)"

# ---- other clients: the API's error shape
get -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "a client without Accept: text/html gets 503 and the API's error shape" "503 unavailable" \
    "$STATUS $(jq -r .error.code <<<"$BODY" 2>/dev/null)"
check "... with Retry-After, as JSON" bash -c 'grep -q "^retry-after: [0-9]" <<<"$1" && grep -q "^content-type: application/json" <<<"$1"' _ "$HDRS"

# ---- an error text is data, never markup: what the worker writes there may
# quote Docker or the container; planted here in the forms an attacker tries
for evil in '<script>alert(1)</script>' '"><img src=x onerror=alert(1)>' "'><svg onload=alert(1)>" '</p><a href="javascript:alert(1)">x</a>'; do
    psql_q "UPDATE instances SET error = \$\$$evil\$\$ WHERE id = '$AID'" >/dev/null
    get -H 'Accept: text/html' -H "Cookie: $ACOOK" "$AO$APATH"
    check "an error text ($evil) is shown escaped on the page, not as markup" \
        bash -c '[[ $1 == 503 ]] && grep -q "id=\"berth-error\">[^<]*&lt;" <<<"$2" && ! grep -qF "$3" <<<"$2"' _ "$STATUS" "$BODY" "$evil"
    get -H "Cookie: $ACOOK" "$AO$APATH"
    check "... and carried intact inside the JSON message" \
        bash -c '[[ $(jq -r .error.message <<<"$1") == *"$2" ]]' _ "$BODY" "$evil"
done
psql_q "UPDATE instances SET error = NULL WHERE id = '$AID'" >/dev/null
check "... its message naming the status" jq -e '.error.message | test("stopped")' <<<"$BODY"
get -H 'Accept: application/json' -H "Authorization: Bearer $(new_token nr -b "$AJAR" -H "X-CSRF-Token: $DCSRF")" "$AO$APATH"
expect_eq "... the same for a script with the owner's API token" "503 unavailable" \
    "$STATUS $(jq -r .error.code <<<"$BODY" 2>/dev/null)"

# ---- the status probe: the owner only, that instance only
get "${PROBE[@]}" -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "the probe answers the owner {status: stopped}" '200 {"status":"stopped"}' \
    "$STATUS $(jq -c . <<<"$BODY" 2>/dev/null)"
check "... as JSON, not to be cached" bash -c 'grep -q "^content-type: application/json" <<<"$1" && grep -q "^cache-control: no-store" <<<"$1"' _ "$HDRS"
check "... with nothing but status and error (no ids, no names)" \
    jq -e 'keys - ["status", "error"] == [] and (tostring | test("[0-9a-f]{8}-") | not)' <<<"$BODY"
get "${PROBE[@]}" -H "Cookie: $ACOOK" "$AO${APATH}some/deeper/path?q=1"
expect_eq "... on any path of the workspace" '200 stopped' "$STATUS $(jq -r .status <<<"$BODY" 2>/dev/null)"
OTHER=$(new_token nr -b "$BJAR" -H "X-CSRF-Token: $BCSRF")
ADMTOK=$(new_token nr -b "$ADMIN_JAR" -H "X-CSRF-Token: $ACSRF")
refused "the probe refuses an anonymous client" "$AO$APATH"
refused "... an anonymous browser (sent to sign in)" -H 'Accept: text/html' "$AO$APATH"
refused "... another user's workspace cookie" -H "Cookie: $BCOOK" "$AO$APATH"
refused "... another user's cookie on that user's own host" -H "Host: ${BO#http://}" -H "Cookie: $BCOOK" "$BERTH_URL$APATH"
refused "... another user's API token" -H "Authorization: Bearer $OTHER" "$AO$APATH"
refused "... an admin's API token (no implicit access)" -H "Authorization: Bearer $ADMTOK" "$AO$APATH"
refused "... the owner's cookie asking another instance's path" -H "Cookie: $ACOOK" "$BO$BPATH"
refused "... the owner's cookie on another user's host" -H "Host: ${BO#http://}" -H "Cookie: $ACOOK" "$BERTH_URL$BPATH"
refused "... a dot-segment path into this instance (%2e%2e)" --path-as-is -H "Cookie: $ACOOK" "$AO/container/$B/site/%2e%2e/%2e%2e/$A/site/"
refused "... a dot-segment path into another (../)" --path-as-is -H "Cookie: $ACOOK" "$BO/container/$A/site/../../$B/site/"
refused "... an encoded slash in the prefix" --path-as-is -H "Cookie: $ACOOK" "$AO/container/$A%2fsite/"
refused "... another user's cookie twice" -H "Cookie: $BCOOK; $BCOOK" "$AO$APATH"
refused "... two berth_session cookies" -H "Cookie: berth_session=x; berth_session=y; $ACOOK" "$AO$APATH"
refused "... a made-up cookie" -H "Cookie: berth_ws=$(printf '%064d' 0)" "$AO$APATH"
refused "... on the UI origin (sent to the workspace host)" -H "Cookie: $ACOOK" "$BERTH_URL$APATH"
refused "... another instance's id in berth's internal paths" -H "Cookie: $ACOOK" "$AO/_berth/auth/$BID"
refused "... the page's internal address asked directly" -H "Cookie: $ACOOK" "$AO/_berth/unavailable"
get "${PROBE[@]}" -H "Cookie: berth_ws=$(printf '%064d' 0); $ACOOK" "$AO$APATH"
expect_eq "a planted copy beside the owner's cookie does not lock the owner out" '200 stopped' \
    "$STATUS $(jq -r .status <<<"$BODY" 2>/dev/null)"
get "${PROBE[@]}" -H "Cookie: $BCOOK" "$BO$BPATH"
expect_eq "B's probe of B's own instance says running (each sees only their own)" '200 running' \
    "$STATUS $(jq -r .status <<<"$BODY" 2>/dev/null)"

# ---- nothing on the workspace origin starts anything
read -r ASESS < <(awk -F'\t' '$6 == "berth_session" {print $7}' "$AJAR")
get -X POST -H "Origin: $AO" -H "Cookie: berth_session=$ASESS" -H "X-CSRF-Token: $DCSRF" \
    "$BERTH_URL/api/v1/instances/$AID/start"
expect_eq "a POST from the workspace origin to the API is refused, even with the session and CSRF token" \
    403 "$STATUS"
get -X POST -H "Origin: $AO" -H "Cookie: $ACOOK" "$BERTH_URL/api/v1/instances/$AID/start"
check "... and with the workspace cookie ($STATUS)" grep -Eq '^(401|403)$' <<<"$STATUS"
get -X POST "${PROBE[@]}" -H "Origin: $AO" -H "Cookie: $ACOOK" "$AO$APATH"
expect_eq "a POST to the stopped workspace is answered by the page, and changes nothing" 503 "$STATUS"
get -X POST -H "Cookie: $ACOOK" "$AO/_berth/unavailable"
expect_eq "... the page's internal address takes no POST from outside" 404 "$STATUS"
get "$BERTH_URL/?start=$AID"
expect_eq "the Start link is the UI's page (it asks for a click)" 200 "$STATUS"
sleep 2
expect_eq "... and none of that started the instance" stopped \
    "$(psql_q "SELECT status FROM instances WHERE id = '$AID'")"
expect_eq "... nor queued a job for it" 0 \
    "$(psql_q "SELECT count(*) FROM jobs WHERE instance_id = '$AID' AND kind = 'start'")"

# ---- the status follows the instance: starting, then running again
curl -s -o /dev/null -b "$AJAR" -H "X-CSRF-Token: $DCSRF" -X POST "$BERTH_URL/api/v1/instances/$AID/start"
seen=""
for _ in $(seq 1 200); do
    get "${PROBE[@]}" -H "Cookie: $ACOOK" "$AO$APATH"
    s=$(jq -r .status <<<"$BODY" 2>/dev/null)
    [[ $seen == *"$s"* ]] || seen="$seen $s"
    [[ $s == running ]] && break
    sleep 0.1
done
expect_eq "after a start the probe comes to running" running "$s"
ok "statuses the probe showed on the way:$seen"
get -H 'Accept: text/html' -H "Cookie: $ACOOK" "$AO${APATH}cgi-bin/env"
for _ in $(seq 1 80); do
    [[ $STATUS == 200 ]] && break
    sleep 0.25
    get -H 'Accept: text/html' -H "Cookie: $ACOOK" "$AO${APATH}cgi-bin/env"
done
expect_eq "... and the workspace answers again, with the same cookie" "200 yes" \
    "$STATUS $(grep -q "BERTH_USER=$A" <<<"$BODY" && echo yes || echo no)"

# ---- an instance in error: its page and probe say why
admin POST /api/v1/templates "{\"name\":\"$P-disk\",\"image\":\"berth-demo/web:1\",\"http_port\":8080,\"disk_mb\":64,\"memory_mb\":32,\"pids_limit\":64}"
create "{\"template\":\"$P-disk\",\"name\":\"disk\"}" -b "$AJAR" -H "X-CSRF-Token: $DCSRF"
EID=$IID
wait_status "$EID" 'running|error' 90 -b "$AJAR" 2>/dev/null
if [[ $(jq -r .status <<<"$INST") != error ]]; then
    skip "an instance in error names its error" "this machine's storage bounds disk_mb: the instance runs"
else
    EPATH=/container/$A/disk/
    ws_login "$AJAR" "$AO$EPATH"
    ECOOK=$(ws_cookie "$AJAR" "$EPATH")
    get "${PROBE[@]}" -H "Cookie: $ECOOK" "$AO$EPATH"
    if [[ $STATUS == 404 ]]; then
        skip "an instance in error names its error" "an instance that never ran has no route here"
    else
        expect_eq "the probe of an instance in error: {status: error, error: its sentence}" "200 error true" \
            "$STATUS $(jq -r '.status, (.error | test("disk_mb"))' <<<"$BODY" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
        get -H 'Accept: text/html' -H "Cookie: $ECOOK" "$AO$EPATH"
        check "... its page names the status and the error, and offers Start" \
            bash -c '[[ $1 == 503 ]] && grep -q "id=\"berth-status\">error<" <<<"$2" && grep -q "id=\"berth-error\">[^<]*disk_mb" <<<"$2" && grep -q "?start=" <<<"$2"' _ "$STATUS" "$BODY"
    fi
fi
delete_instances_of "$DEV_ID $BUID" 60 -b "$ADMIN_JAR" -H "X-CSRF-Token: $ACSRF" >/dev/null 2>&1 || true
