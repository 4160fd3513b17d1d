#!/usr/bin/env bash
# Refusals a browser meets on its way to a workspace (issue 14, "Also"): sent
# to another user's workspace, or to an address no instance holds, a browser
# gets berth's page saying so -- with the HTTP status kept (403, 404) and a
# way back to the UI -- on the workspace origin and on the UI origin's
# sign-in step; every other client keeps the API's JSON error. The page is
# berth's own: strict CSP, no script, nothing of the other user's instance in
# it, and no container can fake it.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch rp 2
admin_login "$TMP/admin.jar"
two_sites "the refusal pages" || exit 0
ATOK=$(new_token rp -b "$AJAR" -H "X-CSRF-Token: $DCSRF")
HTML=(-H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8')

# page WHAT STATUS REASON HEADING [curl args...] URL: berth's page, kept status.
page() {
    local what=$1 want=$2 reason=$3 heading=$4; shift 4
    get "$@"
    if [[ $STATUS == "$want" ]] && grep -q '^content-type: text/html' <<<"$HDRS" &&
        grep -q '^x-berth-page: refused' <<<"$HDRS" &&
        grep -qF "data-reason=\"$reason\"" <<<"$BODY" && grep -qF "<h2>$heading</h2>" <<<"$BODY" &&
        grep -qF "href=\"$BERTH_URL/\"" <<<"$BODY"; then
        ok "$what: $want, berth's page ($heading), a link to the UI"
    else
        fail "$what: $want, berth's page" "status $STATUS" "headers: ${HDRS:0:400}" "body: ${BODY:0:400}"
    fi
}
# json WHAT STATUS CODE [curl args...] URL: the API's error shape.
json() {
    local what=$1 want=$2 code=$3; shift 3
    get "$@"
    expect_eq "$what: $want and the API's error ($code)" "$want $code" \
        "$STATUS $(jq -r '.error.code // empty' <<<"$BODY" 2>/dev/null)"
}

# ---- another user's workspace
page "A's browser with A's API token on B's workspace" 403 forbidden "This workspace is not yours" \
    "${HTML[@]}" -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"
check "... under a strict CSP, with no script and no form" \
    bash -c 'grep -q "^content-security-policy: default-src .none.;" <<<"$1" && ! grep -qi "<script\|<form" <<<"$2"' _ "$HDRS" "$BODY"
check "... naming nothing of B's instance (no id, no owner)" \
    bash -c '! grep -qF "$1" <<<"$3" && ! grep -qF "$2" <<<"$3"' _ "$BID" "$B" "$BODY"
check "... and not cached" grep -q '^cache-control: no-store' <<<"$HDRS"
json "the same with Accept: application/json" 403 forbidden \
    -H 'Accept: application/json' -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"
json "the same with no Accept (a script)" 403 forbidden -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"
json "curl's */* is not a browser" 403 forbidden -H 'Accept: */*' -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"
page "A's workspace cookie sent to B's path on B's host" 403 forbidden "This workspace is not yours" \
    "${HTML[@]}" -H "Cookie: $ACOOK" -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/deeper?x=1"
page "a deeper path and a query of B's workspace" 403 forbidden "This workspace is not yours" \
    "${HTML[@]}" -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/cgi-bin/env?q=%3Cscript%3E"
check "... the query is nowhere on the page" bash -c '! grep -qi "cgi-bin\|%3Cscript\|<script" <<<"$1"' _ "$BODY"
get -I "${HTML[@]}" -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"
expect_eq "HEAD of it: 403 too" 403 "$STATUS"
get -X POST "${HTML[@]}" -H "Authorization: Bearer $ATOK" --data 'x=1' "$BO/container/$B/site/cgi-bin/echo"
expect_eq "a POST from A's browser to B's workspace: 403, nothing reaches B's container" 403 "$STATUS"

# ---- the UI origin's sign-in step, as a browser meets it
page "the UI's workspace sign-in for B's instance with A's session" 403 forbidden \
    "This workspace is not yours" "${HTML[@]}" -b "$AJAR" "$BERTH_URL/api/v1/auth/workspace?instance=$BID"
check "... its stylesheet is the UI origin's" grep -qF 'href="/style.css"' <<<"$BODY"
json "... JSON for a script" 403 forbidden -b "$AJAR" "$BERTH_URL/api/v1/auth/workspace?instance=$BID"
page "... an instance id that is nobody's" 404 not_found "No workspace here" "${HTML[@]}" -b "$AJAR" \
    "$BERTH_URL/api/v1/auth/workspace?instance=00000000-0000-4000-8000-000000000000"
json "... JSON for a script" 404 not_found -b "$AJAR" \
    "$BERTH_URL/api/v1/auth/workspace?instance=00000000-0000-4000-8000-000000000000"
json "a malformed instance id stays the API's 400 for anyone" 400 invalid_field "${HTML[@]}" -b "$AJAR" \
    "$BERTH_URL/api/v1/auth/workspace?instance=nope"
# a browser following the whole way from B's address: sign in, refused, the page
get -L --max-redirs 6 "${HTML[@]}" -b "$AJAR" -c "$TMP/a2.jar" "$BO/container/$B/site/"
check "A's browser following B's workspace address ends on the 403 page" \
    bash -c '[[ $1 == 403 ]] && grep -qF "data-reason=\"forbidden\"" <<<"$2"' _ "$STATUS" "$BODY"

# ---- an address no instance holds
page "a browser on an address no instance holds" 404 not_found "No workspace here" \
    "${HTML[@]}" -H "Cookie: $ACOOK" "$AO/container/$A/nosuch/"
json "... JSON for a script" 404 not_found -H "Cookie: $ACOOK" "$AO/container/$A/nosuch/"
page "... another user's name in it" 404 not_found "No workspace here" "${HTML[@]}" "$BO/container/$B/nosuch/x"
B_DELETE_JOB=$(curl -s -b "$BJAR" -H "X-CSRF-Token: $BCSRF" -X DELETE "$BERTH_URL/api/v1/instances/$BID?delete_volumes=true" | jq -r '.job.id // empty')
reach "B's instance is deleted" "$BID" "gone|deleted" 120 -b "$BJAR"
wait_for 20 bash -c '[[ $(curl -s -o /dev/null -w "%{http_code}" -H "Accept: application/json" "$1") == 404 ]]' _ "$BO/container/$B/site/"
page "a browser on a deleted instance's address" 404 not_found "No workspace here" \
    "${HTML[@]}" -H "Authorization: Bearer $ATOK" "$BO/container/$B/site/"

# ---- nobody else can make or reach that page
get "${HTML[@]}" "$AO/_berth/refused"
check "the page's internal address is not a way in on the workspace origin (404)" \
    bash -c '[[ $1 == 404 ]] && ! grep -q "data-reason=\"forbidden\"" <<<"$2"' _ "$STATUS" "$BODY"
get "${HTML[@]}" "$BERTH_URL/_berth/refused"
expect_eq "... nor on the UI origin" 404 "$STATUS"
get "${HTML[@]}" -H 'X-Berth-Refusal: forbidden' -H "Cookie: $ACOOK" "$AO/container/$A/nosuch/"
check "a client's X-Berth-Refusal header does not choose the page" \
    bash -c '[[ $1 == 404 ]] && grep -qF "data-reason=\"not_found\"" <<<"$2"' _ "$STATUS" "$BODY"
get "${HTML[@]}" -H "Cookie: $ACOOK" "$AO/container/$A/site/cgi-bin/env"
check "A's own workspace still answers A's browser (the container, not a berth page)" \
    bash -c '[[ $1 == 200 ]] && grep -q "berth demo workspace" <<<"$2" && ! grep -q "^x-berth-page" <<<"$3"' _ "$STATUS" "$BODY" "$HDRS"
delete_instances_of "$DEV_ID" 60 -b "$AJAR" -H "X-CSRF-Token: $DCSRF"
