#!/usr/bin/env bash
# Hardening of accounts (issue 12 items 4-6) through nginx against the real
# login endpoint: throttling by (address, name) with doubling delays and no
# lock the owner cannot get past from a clean address; X-Forwarded-For/-Proto
# believed only from trusted_proxies; Origin compared with public_url; JSON-only
# login; API tokens that die with a disabled user and on a password change
# (PATCH /users/{id} and POST /auth/password with revoke_tokens).
# A second client address: curl --interface 127.0.0.2 (all of 127/8 is local);
# 127.0.0.3 is made a trusted proxy for the duration (trusted_proxies, SIGHUP).
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch h
CONF_BAK=$TMP/berth.conf.orig
cp "$BERTH_CONFIG" "$CONF_BAK"
cleanup() { cp "$CONF_BAK" "$BERTH_CONFIG"; reload api; rm -rf "$TMP"; }
trap cleanup EXIT
MAXF=$(awk -F' *= *' '$1 == "login_max_failures" {print $2}' "$BERTH_CONFIG" | grep . || echo 5)
LOCK=$(awk -F' *= *' '$1 == "login_lockout_s" {print $2}' "$BERTH_CONFIG" | grep . || echo 300)

# login USER PASSWORD [curl args] -> STATUS, BODY; headers in $TMP/h
login() {
    local u=$1 p=$2; shift 2
    http POST /api/v1/auth/login "$(jq -nc --arg u "$u" --arg p "$p" '{username:$u, password:$p}')" \
        -D "$TMP/h" "$@"
}
retry_after() { tr -d '\r' < "$TMP/h" | awk -F': *' 'tolower($1) == "retry-after" {print $2}'; }

admin_login "$TMP/admin.jar"
expect_eq "admin logs in" 200 "$STATUS"
mkuser() {
    admin POST /api/v1/users "$(jq -nc --arg u "$1" --arg p "$2" '{username:$u, password:$p, role:"developer"}')"
    USER_ID=$(jq -r .id <<<"$BODY")
}

# --- throttling by (address, name)
mkuser "$P-own" "right-pass-own-1"
for i in $(seq 1 "$MAXF"); do login "$P-own" "wrong-password"; done
expect_eq "failures below and at the threshold are 401" 401 "$STATUS"
login "$P-own" "right-pass-own-1"
expect_eq "the right password from the throttled pair is 429 rate_limited while its delay runs" \
    "429 rate_limited" "$STATUS $(err_code)"
expect_eq "the first delay is 1 s (Retry-After)" 1 "$(retry_after)"
login "$P-own" "right-pass-own-1" --interface 127.0.0.2
expect_eq "the owner's right password from another address gets in at once" 200 "$STATUS"
login "$P-own" "wrong-password" --interface 127.0.0.2
expect_eq "a wrong password from the other address is a plain 401 (its own count)" 401 "$STATUS"
sleep 1.2
login "$P-own" "wrong-password"
expect_eq "after the delay the pair may try again (wrong: 401)" 401 "$STATUS"
login "$P-own" "right-pass-own-1"
expect_eq "the next failure doubles the delay (Retry-After 2)" "429 2" "$STATUS $(retry_after)"
sleep 2.2
login "$P-own" "right-pass-own-1"
expect_eq "when the doubled delay has run the right password works from the throttled pair" 200 "$STATUS"
expect_eq "a successful login clears the pair" 0 \
    "$(psql_q "SELECT count(*) FROM login_failures WHERE key = 'pair:127.0.0.1|$P-own'")"
psql_q "INSERT INTO login_failures (key, failures, last_failure_at) VALUES ('pair:127.0.0.1|$P-own', 100, now())" >/dev/null
login "$P-own" "wrong-password"
login "$P-own" "right-pass-own-1"
expect_eq "the delay is capped at login_lockout_s however many failures" "429 $LOCK" "$STATUS $(retry_after)"
psql_q "UPDATE login_failures SET last_failure_at = now() - interval '1 day', locked_until = NULL WHERE key = 'pair:127.0.0.1|$P-own'" >/dev/null
login "$P-own" "wrong-password"
expect_eq "a count is forgotten long after its last failure (back to 1)" 1 \
    "$(psql_q "SELECT failures FROM login_failures WHERE key = 'pair:127.0.0.1|$P-own'")"
login admin "$BERTH_ADMIN_PASSWORD" --interface 127.0.0.2
expect_eq "admin can always log in from a clean address" 200 "$STATUS"
for i in $(seq 1 "$MAXF"); do login "$P-ghost" "wrong-password"; done
login "$P-ghost" "x"
expect_eq "an unknown name is throttled like a known one" "429 rate_limited" "$STATUS $(err_code)"

# --- trusted proxies
login "$P-own" "wrong-password" -H 'X-Forwarded-For: 198.51.100.9'
expect_eq "X-Forwarded-For from an untrusted client is ignored (counted for its own address)" "0 2" \
    "$(psql_q "SELECT count(*) FILTER (WHERE key LIKE 'pair:198.51.100.9|%'), max(failures) FILTER (WHERE key = 'pair:127.0.0.1|$P-own') FROM login_failures")"
login admin "$BERTH_ADMIN_PASSWORD" -H 'X-Forwarded-Proto: https'
check "X-Forwarded-Proto from an untrusted client does not make the cookie Secure" \
    bash -c "grep -i '^Set-Cookie: berth_session=' '$TMP/h' | grep -vqi Secure"
printf 'trusted_proxies = 127.0.0.3, ::1/128\n' >> "$BERTH_CONFIG"
check "berth-api reloads trusted_proxies on SIGHUP" reload api
login admin "$BERTH_ADMIN_PASSWORD" --interface 127.0.0.3 -H 'X-Forwarded-Proto: https'
check "X-Forwarded-Proto from a trusted proxy makes the cookie Secure" \
    grep -qi '^Set-Cookie: berth_session=.*; Secure' "$TMP/h"
for i in $(seq 1 "$MAXF"); do
    login "$P-own" "wrong-password" --interface 127.0.0.3 -H 'X-Forwarded-For: 6.6.6.6, 203.0.113.7'
done
expect_eq "behind a trusted proxy the client is the rightmost X-Forwarded-For hop" "$MAXF 0" \
    "$(psql_q "SELECT coalesce(max(failures) FILTER (WHERE key = 'pair:203.0.113.7|$P-own'), 0), count(*) FILTER (WHERE key LIKE 'pair:6.6.6.6|%' OR key = 'pair:127.0.0.3|$P-own') FROM login_failures")"
login "$P-own" "right-pass-own-1" --interface 127.0.0.3 -H 'X-Forwarded-For: 203.0.113.7'
expect_eq "that client is throttled" 429 "$STATUS"
login "$P-own" "right-pass-own-1" --interface 127.0.0.3 -H 'X-Forwarded-For: 203.0.113.8'
expect_eq "another client behind the same proxy is not" 200 "$STATUS"
expect_eq "its session records the forwarded client address" 1 \
    "$(psql_q "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = '$P-own' AND s.ip = '203.0.113.8'")"
printf 'trusted_proxies = 10.0.0.0/33\n' >> "$BERTH_CONFIG"
kill -HUP "$(svc_pid api)"; sleep 0.5
check "a bad trusted_proxies is refused on reload, naming the key" \
    bash -c "tail -5 '$BERTH_VAR/log/api.log' | grep -q 'trusted_proxies'"
cp "$CONF_BAK" "$BERTH_CONFIG"; reload api

# --- Origin and JSON-only login
http POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" \
    -H 'Host: 127.0.0.1:9999' -H 'Origin: http://127.0.0.1:9999'
expect_eq "an Origin that matches a forged Host but not public_url is refused" 403 "$STATUS"
http POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" -H "Origin: ${BERTH_URL%/}"
expect_eq "the public_url Origin is accepted" 200 "$STATUS"
http POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" -H 'Origin: null'
expect_eq "Origin: null is refused" 403 "$STATUS"
STATUS=$(curl -s -o "$TMP/b" -w '%{http_code}' -X POST -H 'Content-Type: text/plain' \
    --data-binary "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" "$BERTH_URL/api/v1/auth/login")
expect_eq "a text/plain login body is 415 in the error shape" "415 bad_request" "$STATUS $(jq -r .error.code "$TMP/b")"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    --data "username=admin&password=$BERTH_ADMIN_PASSWORD" "$BERTH_URL/api/v1/auth/login")
expect_eq "a form-encoded login is 415" 415 "$STATUS"

# --- tokens: disabling kills them for good; revoke_tokens on password changes
mkuser "$P-tok" "tok-pass-0001"; TOK_ID=$USER_ID
tok() { # tok USER PASSWORD -> TOKEN (a fresh API token of USER)
    local jar=$TMP/$1.jar
    login "$1" "$2" -c "$jar"
    local c; c=$(jq -r .csrf_token <<<"$BODY")
    http POST /api/v1/tokens '{"name":"h"}' -b "$jar" -H "X-CSRF-Token: $c"
    TOKEN=$(jq -r .token <<<"$BODY")
}
tok "$P-tok" "tok-pass-0001"; T1=$TOKEN
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T1"
expect_eq "a fresh token works" 200 "$STATUS"
admin PATCH "/api/v1/users/$TOK_ID" '{"disabled":true}'
expect_eq "admin disables the user" 200 "$STATUS"
admin PATCH "/api/v1/users/$TOK_ID" '{"disabled":false}'
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T1"
expect_eq "re-enabling a disabled user does not revive their old token" 401 "$STATUS"
tok "$P-tok" "tok-pass-0001"; T2=$TOKEN
admin PATCH "/api/v1/users/$TOK_ID" '{"password":"tok-pass-0002"}'
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T2"
expect_eq "an admin password change without revoke_tokens keeps tokens" 200 "$STATUS"
admin PATCH "/api/v1/users/$TOK_ID" '{"password":"tok-pass-0003","revoke_tokens":true}'
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T2"
expect_eq "PATCH {password, revoke_tokens: true} revokes the user's tokens" "200 401" "$(jq -r 'if .id then "200" else "x" end' <<<"$(admin GET "/api/v1/users/$TOK_ID"; echo "$BODY")") $STATUS"
admin PATCH "/api/v1/users/$TOK_ID" '{"revoke_tokens":"yes"}'
expect_eq "revoke_tokens must be a boolean" "400 revoke_tokens" "$STATUS $(jq -r .error.field <<<"$BODY")"

# own password change
tok "$P-tok" "tok-pass-0003"; T3=$TOKEN
JAR=$TMP/self.jar
login "$P-tok" "tok-pass-0003" -c "$JAR"; SC=$(jq -r .csrf_token <<<"$BODY")
self() { http POST /api/v1/auth/password "$1" -b "$JAR" -H "X-CSRF-Token: $SC"; }
self '{"current_password":"not-it","new_password":"tok-pass-0004"}'
expect_eq "a wrong current password is 403 on field current_password" "403 current_password" "$STATUS $(jq -r .error.field <<<"$BODY")"
self '{"current_password":"tok-pass-0003","new_password":"short"}'
expect_eq "a short new password is 400 on field new_password" "400 new_password" "$STATUS $(jq -r .error.field <<<"$BODY")"
self '{"current_password":"tok-pass-0003","new_password":"tok-pass-0004"}'
expect_eq "a user changes their own password" "200 0" "$STATUS $(jq -r .tokens_revoked <<<"$BODY")"
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T3"
expect_eq "without revoke_tokens the token survives" 200 "$STATUS"
http GET /api/v1/auth/me "" -b "$JAR"
expect_eq "the session that changed the password stays signed in" 200 "$STATUS"
self '{"current_password":"tok-pass-0004","new_password":"tok-pass-0005","revoke_tokens":true}'
expect_eq "revoke_tokens: true says how many tokens went" "200 1" "$STATUS $(jq -r .tokens_revoked <<<"$BODY")"
http GET /api/v1/auth/me "" -H "Authorization: Bearer $T3"
expect_eq "and the token no longer works" 401 "$STATUS"
login "$P-tok" "tok-pass-0004"
expect_eq "the old password no longer logs in" 401 "$STATUS"
login "$P-tok" "tok-pass-0005" --interface 127.0.0.2
expect_eq "the new one does" 200 "$STATUS"
http POST /api/v1/auth/password '{"current_password":"x","new_password":"tok-pass-0006"}'
expect_eq "the password change needs a signed-in user" 401 "$STATUS"
expect_eq "own password changes are audited without the passwords" "1 0" \
    "$(psql_q "SELECT (count(*) FILTER (WHERE outcome = 'ok') >= 2)::int, count(*) FILTER (WHERE details::text LIKE '%tok-pass%') FROM audit_log WHERE action = 'auth.password' AND target_id = '$TOK_ID'")"
exit 0
