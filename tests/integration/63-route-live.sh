#!/usr/bin/env bash
# A route is live when the instance is (issue 15 item 2): the first request
# after `running` reaches the container although nginx has not loaded the
# instance's own location yet. Reloads are held back here -- the worker's
# nginx_test waits on a file this test removes at the end (the worker sees a
# slow test, src/worker/routes.c: nothing is reloaded meanwhile) -- so every
# answer below comes from the fallback location for /container/, which proxies
# to the address berth-api's decision names: the instance's, from the
# database, for its owner, while it runs. Hostile cases on that fallback:
# another user's bearer token and workspace cookie, a path naming another
# user's instance, encoded slashes and dot segments, a stopped instance, a
# deleted one, names no instance has -- none reaches a container.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch rl 2
HOLD=$TMP/hold
CONF_BAK=$TMP/berth.conf.bak
cp "$BERTH_CONFIG" "$CONF_BAK"
ORIG_TEST=$(sed -n 's/^nginx_test *= *//p' "$BERTH_CONFIG" | tail -1)
ORIG_TEST=${ORIG_TEST:-nginx -t -q}
cleanup() {
    local n; n=$(reloads)
    rm -f "$HOLD"
    # the held test goes on to the real one and its reload: wait for it before
    # the script it runs is removed
    wait_for 30 bash -c "[[ \$(grep -c 'nginx reloaded' '$WORKER_LOG') -gt $n ]]" >/dev/null 2>&1
    cp "$CONF_BAK" "$BERTH_CONFIG"
    reload worker
    rm -rf "$TMP"
}
trap cleanup EXIT

admin_login "$TMP/admin.jar"
dev_login "$P-a" "$TMP/a.jar"
A_JAR=$DEV_JAR A_CSRF=$DCSRF
TOKEN_A=$(new_token live -b "$A_JAR" -H "X-CSRF-Token: $A_CSRF")
dev_login "$P-b" "$TMP/b.jar"
B_JAR=$DEV_JAR B_CSRF=$DCSRF
TOKEN_B=$(new_token live -b "$B_JAR" -H "X-CSRF-Token: $B_CSRF")
WSA=$(ws_origin "$P-a")
WSB=$(ws_origin "$P-b")
PA=/container/$P-a/web/
PB=/container/$P-b/web/

# Hold reloads: the worker's nginx test waits for $HOLD to go.
touch "$HOLD"
printf '#!/bin/sh\nwhile [ -e %s ]; do sleep 0.1; done\nexec %s\n' "$HOLD" "$ORIG_TEST" > "$TMP/hold.sh"
chmod 0755 "$TMP/hold.sh"
sed -i "s|^nginx_test *=.*|nginx_test = $TMP/hold.sh|" "$BERTH_CONFIG"
grep -q '^nginx_test' "$BERTH_CONFIG" || echo "nginx_test = $TMP/hold.sh" >> "$BERTH_CONFIG"
check "the worker takes the held nginx test" reload worker
R0=$(reloads)

create '{"template":"web","name":"web"}' -b "$A_JAR" -H "X-CSRF-Token: $A_CSRF"
A_ID=$IID
expect_eq "the owner's instance is accepted" 202 "$STATUS"
create '{"template":"web","name":"web"}' -b "$B_JAR" -H "X-CSRF-Token: $B_CSRF"
B_ID=$IID
expect_eq "another user's instance of the same name is accepted" 202 "$STATUS"
reach "the owner's instance runs" "$A_ID" running 120 -b "$A_JAR"
reach "the other's runs" "$B_ID" running 120 -b "$B_JAR"
ADDR_A=$(psql_q "SELECT host(upstream_host) FROM instances WHERE id = '$A_ID'")
ADDR_B=$(psql_q "SELECT host(upstream_host) FROM instances WHERE id = '$B_ID'")

# What only each container sends: its environment names its user.
MA="BERTH_USER=$P-a" MB="BERTH_USER=$P-b"
check "the owner's container answers at its address" \
    bash -c "curl -s --max-time 10 'http://$ADDR_A:8080/cgi-bin/env' | grep -qx '$MA'"

get() { # get URL [curl args...]: sets CODE and OUT (the body)
    local url=$1; shift
    OUT=$(curl -s --max-time 20 -w '\n%{http_code}' "$@" "$url")
    CODE=${OUT##*$'\n'}
    OUT=${OUT%$'\n'*}
}
has() { grep -qx "$1" <<<"$OUT"; }   # has LINE: the last body holds that line
lacks() { ! grep -q "$1" <<<"$OUT"; } # lacks REGEX: no line of it matches
is_json_error() { jq -e '.error.code' >/dev/null 2>&1 <<<"$OUT"; }

# The first request after running, with reloads held: 200 from the container.
get "$WSA${PA}cgi-bin/env" -H "Authorization: Bearer $TOKEN_A"
expect_eq "the first request after running gets 200 (bearer)" 200 "$CODE"
check "... from the owner's container" has "$MA"
check "... with the prefix stripped, as the instance location does" has "REQUEST_URI=/cgi-bin/env"
check "... and no credential of berth's passed on" lacks '^HTTP_AUTHORIZATION='

expect_eq "... while no nginx reload has run since the instances were created" "$R0" "$(reloads)"
check "... and the worker's nginx test is still held" test -e "$HOLD"
get "$WSA$PA?x=1" -H "Authorization: Bearer $TOKEN_A"
expect_eq "the instance's page, query and all" "200 berth demo workspace" "$CODE $(grep -o 'berth demo workspace' <<<"$OUT" | head -1)"

# A browser: sent to sign in, back with the workspace cookie, then in.
ws_login "$A_JAR" "$WSA$PA"
expect_eq "the owner's browser signs in to the workspace through the fallback" 200 "$STATUS"
A_COOKIE=$(ws_cookie "$A_JAR" "$PA")
get "$WSA${PA}cgi-bin/env" -H "Cookie: $A_COOKIE; other=1"
check "... and its workspace cookie reaches the container" has "$MA"
check "... which gets the request's other cookies, not berth's" has "HTTP_COOKIE=other=1"
ws_login "$B_JAR" "$WSB$PB"
B_COOKIE=$(ws_cookie "$B_JAR" "$PB")
check "the other user has a workspace cookie for their own instance" test -n "${B_COOKIE#*=}"
get "$WSB${PB}cgi-bin/env" -H "Authorization: Bearer $TOKEN_B"
check "the other user reaches their own instance through the fallback" has "$MB"

# ---- hostile: nothing of a container for anyone but its owner ----
refused() { # refused WHAT CODE-REGEX MARKER URL [curl args...]
    local what=$1 want=$2 marker=$3 url=$4; shift 4
    get "$url" "$@"
    if [[ $CODE =~ ^($want)$ ]] && ! grep -q "^BERTH_USER=" <<<"$OUT" && ! has "$marker"; then
        ok "$what ($CODE)"
    else
        fail "$what" "got $CODE: ${OUT:0:200}"
    fi
}
E=cgi-bin/env
refused "another user's bearer token on the owner's path is 403, as its own location says" 403 "$MA" "$WSA$PA$E" -H "Authorization: Bearer $TOKEN_B"
refused "... on the other user's workspace host too" 403 "$MA" "$WSB$PA$E" -H "Authorization: Bearer $TOKEN_B"
refused "another user's workspace cookie on the owner's path" '302|401|403' "$MA" "$WSA$PA$E" -H "Cookie: $B_COOKIE"
refused "another user's UI session on the owner's path" '302|401|403' "$MA" "$WSA$PA$E" -b "$B_JAR"
refused "no credential: sent to sign in, nothing proxied" 401 "$MA" "$WSA$PA$E"
refused "... a browser is redirected to sign in" 302 "$MA" "$WSA$PA$E" -H 'Accept: text/html'
refused "the owner's bearer on a path naming another user's instance is 403" 403 "$MB" "$WSB$PB$E" -H "Authorization: Bearer $TOKEN_A"
refused "... and the owner's workspace cookie there" '302|401|403' "$MB" "$WSB$PB$E" -H "Cookie: $A_COOKIE"
# path tricks naming the owner's instance, with the other's credential
for p in "/container/$P-b/../$P-a/web/" "/container/$P-b/web/../../$P-a/web/" \
         "/container/$P-a%2Fweb/" "/container/$P-a/web%2F" "/container/$P-a/./web/" \
         "/container/$P-a//web/" "/container/%72${P:1}-a/web/" "/container/$P-a/web%2e/" \
         "/container/$P-a/%2e%2e/$P-a/web/" "/container/$P-b%2F..%2F$P-a/web/"; do
    refused "B's token, path $p$E" '400|403|404' "$MA" "$WSA$p$E" --path-as-is -H "Authorization: Bearer $TOKEN_B"
done
# ... and the other's instance with the owner's
for p in "/container/$P-a/../$P-b/web/" "/container/$P-b%2Fweb/" "/container/$P-a/web/..%2F..%2F$P-b/web/" \
         "/container/$P-a/web/%2e%2e/%2e%2e/$P-b/web/"; do
    refused "A's token, path $p$E: never B's container" '200|400|403|404' "$MB" "$WSA$p$E" --path-as-is -H "Authorization: Bearer $TOKEN_A"
done
# an address in a request header is the client's, not berth's: ignored
get "$WSA$PA$E" -H "Authorization: Bearer $TOKEN_A" -H "X-Berth-Upstream: $ADDR_B:8080" -H "X-Berth-Proxy-Mode: keep"
check "a client's X-Berth-Upstream header chooses nothing" has "$MA"
check "... nor its X-Berth-Proxy-Mode" has "REQUEST_URI=/$E"
refused "names no instance has are 404 (with a credential)" 404 "$MA" "$WSA/container/$P-a/nothing/" -H "Authorization: Bearer $TOKEN_A"
refused "... and without one" 404 "$MA" "$WSA/container/$P-nobody/web/"

# ---- a stopped instance, then a deleted one ----
http POST "/api/v1/instances/$A_ID/stop" "" -b "$A_JAR" -H "X-CSRF-Token: $A_CSRF"
reach "the owner's instance stops" "$A_ID" stopped 60 -b "$A_JAR"
refused "a stopped instance's owner gets berth's 503, nothing proxied" 503 "$MA" "$WSA$PA$E" -H "Authorization: Bearer $TOKEN_A"
check "... in the API's error shape" is_json_error
refused "... and another user gets 403 there" 403 "$MA" "$WSA$PA$E" -H "Authorization: Bearer $TOKEN_B"
http DELETE "/api/v1/instances/$A_ID?delete_volumes=true" "" -b "$A_JAR" -H "X-CSRF-Token: $A_CSRF"
refused "a deleted instance is 404 on the next request" 404 "$MA" "$WSA$PA$E" -H "Authorization: Bearer $TOKEN_A"
expect_eq "all of it while no nginx reload ran" "$R0" "$(reloads)"

# ---- reloads let go: the instance locations take over ----
rm -f "$HOLD"
check "the held reload runs once let go" wait_for 30 bash -c "[[ \$(grep -c 'nginx reloaded' '$WORKER_LOG') -gt $R0 ]]"
check "the other's instance answers through its own location after the reload" \
    wait_for 20 bash -c "curl -s -H 'Authorization: Bearer $TOKEN_B' '$WSB$PB$E' | grep -qx '$MB'"
refused "the owner's token still gets nothing of the other's (its location now)" 403 "$MB" "$WSB$PB$E" -H "Authorization: Bearer $TOKEN_A"
http DELETE "/api/v1/instances/$B_ID?delete_volumes=true" "" -b "$B_JAR" -H "X-CSRF-Token: $B_CSRF"
