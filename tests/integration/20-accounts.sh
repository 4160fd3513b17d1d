#!/usr/bin/env bash
# Accounts (issue 3) through nginx against the real PostgreSQL: login and the
# session cookie, fixation, logout, idle/absolute expiry, CSRF and Origin,
# API tokens (shown once, hashed, revoked, expired, last_used_at), login
# throttling without a user-existence leak, password edge cases, bad input
# that changes no row, users CRUD, the audit log and its exports, admin stats,
# nodes and `berth-api --create-user`.
# Every user this test makes has a unique name (prefix a<RANDOM>-), so it
# depends on no other test; failed logins use throwaway names, never `admin`.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

scratch a
ORIGIN=${BERTH_URL%/}

# login USER PASSWORD JAR -> STATUS, BODY, CSRF; the cookie lands in JAR
login() {
    http POST /api/v1/auth/login "$(jq -nc --arg u "$1" --arg p "$2" '{username:$u, password:$p}')" \
        -c "$3" -b "$3" -D "$TMP/headers"
    CSRF=$(jq -r '.csrf_token // empty' <<<"$BODY" 2>/dev/null)
}

# --- the admin's session
ADMIN_JAR=$TMP/admin.jar
login admin "$BERTH_ADMIN_PASSWORD" "$ADMIN_JAR"
expect_eq "admin logs in with the bootstrap password" 200 "$STATUS"
ADMIN_CSRF=$CSRF ACSRF=$CSRF # (lib.sh's admin sends ACSRF)
cookie_line=$(grep -i '^Set-Cookie: berth_session=' "$TMP/headers" | tr -d '\r')
check "session cookie is HttpOnly" grep -q 'HttpOnly' <<<"$cookie_line"
check "session cookie is SameSite=Lax" grep -q 'SameSite=Lax' <<<"$cookie_line"
check "session cookie has Path=/" grep -q 'Path=/' <<<"$cookie_line"
check "session cookie is not Secure over plain http" bash -c "! grep -q Secure <<<'$cookie_line'"
check "session cookie value is 256 bits of hex" grep -Eq 'berth_session=[0-9a-f]{64};' <<<"$cookie_line"
expect_eq "login answers the user and a csrf token" "admin admin 64" \
    "$(jq -r '"\(.user.username) \(.user.role) \(.csrf_token | length)"' <<<"$BODY")"
cookie_val=$(sed -E 's/.*berth_session=([0-9a-f]+);.*/\1/' <<<"$cookie_line")
expect_eq "only the hash of the session id is stored" "0 1" \
    "$(psql_q "SELECT count(*) FILTER (WHERE token_hash = '$cookie_val'), count(*) FILTER (WHERE token_hash = encode(sha256('$cookie_val'::bytea), 'hex')) FROM sessions")" 
http POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" \
    -H 'X-Forwarded-Proto: https' -c "$TMP/https.jar" -D "$TMP/headers"
check "a client's own X-Forwarded-Proto is not believed (no trusted proxy): no Secure" \
    bash -c "grep -i '^Set-Cookie: berth_session=' '$TMP/headers' | grep -vqi Secure"

mkuser() { # mkuser NAME ROLE [PASSWORD] -> USER_ID
    admin POST /api/v1/users "$(jq -nc --arg u "$1" --arg r "$2" --arg p "${3:-pass-$1-x}" \
        '{username:$u, password:$p, role:$r}')"
    USER_ID=$(jq -r '.id // empty' <<<"$BODY")
    [[ $STATUS == 201 && -n $USER_ID ]] || printf 'mkuser %s: %s %s\n' "$1" "$STATUS" "$BODY" >&2
}
users_count() { psql_q "SELECT count(*) FROM users"; }

# --- users CRUD
mkuser "$P-dev" developer
expect_eq "admin creates a developer (201)" 201 "$STATUS"
DEV_ID=$USER_ID
expect_eq "a new user gets the default quota" '5 4 8192' \
    "$(jq -r '"\(.quota.instances) \(.quota.cpus) \(.quota.memory_mb)"' <<<"$BODY")"
check "the password is stored as a yescrypt hash" \
    test "$(psql_q "SELECT password_hash LIKE '\$y\$%' FROM users WHERE id = '$DEV_ID'")" = t
admin POST /api/v1/users "{\"username\":\"$P-dev\",\"password\":\"another-pass\",\"role\":\"viewer\"}"
expect_eq "a second user with the same name is 409 conflict" "409 conflict" "$STATUS $(err_code)"
admin GET "/api/v1/users?q=$P-dev"
expect_eq "?q= filters the user list by name" "$P-dev" "$(jq -r '[.items[].username] | join(",")' <<<"$BODY")"
admin GET "/api/v1/users?limit=1"
c1=$(jq -r '.items[0].username' <<<"$BODY"); next=$(jq -r .next_cursor <<<"$BODY")
admin GET "/api/v1/users?limit=1&cursor=$next"
check "the user list pages with limit and cursor" test "$next" != null -a "$(jq -r '.items[0].username' <<<"$BODY")" \> "$c1"
admin GET "/api/v1/users?cursor=Bad%20Cursor"
expect_eq "a malformed cursor is 400" 400 "$STATUS"
admin GET "/api/v1/users/$DEV_ID"
expect_eq "GET a user answers usage" '0 0 0' \
    "$(jq -r '"\(.usage.instances) \(.usage.cpus) \(.usage.memory_mb)"' <<<"$BODY")"
admin PATCH "/api/v1/users/$DEV_ID" '{"quota":{"instances":3,"cpus":2.5,"memory_mb":2048}}'
expect_eq "PATCH changes the quota" '200 {"instances":3,"cpus":2.5,"memory_mb":2048}' \
    "$STATUS $(jq -c .quota <<<"$BODY")"
admin PATCH "/api/v1/users/$DEV_ID" '{"quota":{"gpus":1}}'
expect_eq "an unknown quota field is 400 invalid_field" "400 invalid_field" "$STATUS $(err_code)"
admin GET "/api/v1/users/00000000-0000-4000-8000-000000000000"
expect_eq "an unknown user id is 404" 404 "$STATUS"
admin GET "/api/v1/users/not-a-uuid"
expect_eq "a malformed user id is 404" 404 "$STATUS"

# --- sessions: fixation, logout, expiry
DEV_JAR=$TMP/dev.jar
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
expect_eq "a developer logs in" 200 "$STATUS"
first=$(awk '$6 == "berth_session" {print $7}' "$DEV_JAR")
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
second=$(awk '$6 == "berth_session" {print $7}' "$DEV_JAR")
check "a new session id on every login" test -n "$first" -a "$first" != "$second"
http GET /api/v1/auth/me "" -H "Cookie: berth_session=$first"
expect_eq "the session a client brought to login ends (no fixation)" 401 "$STATUS"
planted=$(openssl rand -hex 32)
printf '127.0.0.1\tFALSE\t/\tFALSE\t0\tberth_session\t%s\n' "$planted" > "$TMP/planted.jar"
login "$P-dev" "pass-$P-dev-x" "$TMP/planted.jar"
got=$(awk '$6 == "berth_session" {print $7}' "$TMP/planted.jar")
check "a planted session id is replaced at login" test "$got" != "$planted"
http GET /api/v1/auth/me "" -b "$DEV_JAR"
expect_eq "me answers the user and the csrf token of a cookie session" "$P-dev developer 64" \
    "$(jq -r '"\(.user.username) \(.user.role) \(.csrf_token | length)"' <<<"$BODY")"
DEV_CSRF=$(jq -r .csrf_token <<<"$BODY")
dev_hash=$(psql_q "SELECT encode(sha256('$second'::bytea), 'hex')")
psql_q "UPDATE sessions SET last_seen_at = now() - interval '1 day' - interval '1 second' * $(awk -F' *= *' '$1 == "session_idle_s" {print $2}' "$BERTH_CONFIG" | grep . || echo 28800) WHERE token_hash = '$dev_hash'" >/dev/null
http GET /api/v1/auth/me "" -b "$DEV_JAR"
expect_eq "an idle session has expired (401 unauthenticated)" "401 unauthenticated" "$STATUS $(err_code)"
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
DEV_CSRF=$CSRF
cur=$(awk '$6 == "berth_session" {print $7}' "$DEV_JAR")
psql_q "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = encode(sha256('$cur'::bytea), 'hex')" >/dev/null
http GET /api/v1/auth/me "" -b "$DEV_JAR"
expect_eq "a session past its absolute lifetime has expired" 401 "$STATUS"
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
DEV_CSRF=$CSRF
http POST /api/v1/auth/logout "" -b "$DEV_JAR" -D "$TMP/headers"
expect_eq "logout without the csrf token is refused" 403 "$STATUS"
http POST /api/v1/auth/logout "" -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF" -D "$TMP/headers"
expect_eq "logout answers 204" 204 "$STATUS"
check "logout clears the cookie" grep -qi '^Set-Cookie: berth_session=;.*Max-Age=0' "$TMP/headers"
http GET /api/v1/auth/me "" -b "$DEV_JAR"
expect_eq "after logout the old cookie no longer works (destroyed server-side)" 401 "$STATUS"
http GET /api/v1/auth/me
expect_eq "no credentials: 401 unauthenticated" "401 unauthenticated" "$STATUS $(err_code)"

# --- CSRF and Origin
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
DEV_CSRF=$CSRF
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR"
expect_eq "cookie POST without X-CSRF-Token: 403 forbidden" "403 forbidden" "$STATUS $(err_code)"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $(openssl rand -hex 32)"
expect_eq "cookie POST with a wrong X-CSRF-Token: 403" 403 "$STATUS"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: x"
expect_eq "cookie POST with a short X-CSRF-Token: 403" 403 "$STATUS"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $ADMIN_CSRF"
expect_eq "another session's csrf token does not fit" 403 "$STATUS"
expect_eq "a refused request leaves an audit row" 1 \
    "$(psql_q "SELECT count(*) > 0 FROM audit_log WHERE action = 'request.refused' AND actor = '$P-dev' AND details->>'reason' = 'csrf token wrong'" | sed 's/t/1/;s/f/0/')"
expect_eq "no token was created by the refused requests" 0 \
    "$(psql_q "SELECT count(*) FROM api_tokens WHERE user_id = '$DEV_ID'")"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF" \
    -H "Origin: https://evil.example"
expect_eq "a foreign Origin is refused even with the right csrf token" 403 "$STATUS"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF" -H "Origin: null"
expect_eq "Origin: null is refused" 403 "$STATUS"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF" \
    -H "Origin: $ORIGIN.evil.example"
expect_eq "an Origin that only starts with ours is refused" 403 "$STATUS"
http POST /api/v1/auth/login "{\"username\":\"$P-dev\",\"password\":\"pass-$P-dev-x\"}" \
    -H "Origin: https://evil.example"
expect_eq "login from a foreign Origin is refused (login CSRF)" 403 "$STATUS"
http POST /api/v1/tokens '{"name":"t1"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF" -H "Origin: $ORIGIN"
expect_eq "same-origin cookie POST with the csrf token creates (201)" 201 "$STATUS"
http GET /api/v1/auth/me "" -b "$DEV_JAR" -H "Origin: https://evil.example"
expect_eq "safe methods need no csrf token" 200 "$STATUS"

# --- API tokens
http POST /api/v1/tokens '{"name":"laptop","expires_in_days":30}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF"
expect_eq "POST /tokens answers 201 with the token" 201 "$STATUS"
TOK=$(jq -r .token <<<"$BODY"); TOK_ID=$(jq -r .id <<<"$BODY")
check "a token carries 256 random bits" grep -Eq '^berth_[0-9a-f]{64}$' <<<"$TOK"
check "expires_at is set from expires_in_days" test "$(jq -r .expires_at <<<"$BODY")" != null
http GET /api/v1/tokens "" -H "Authorization: Bearer $TOK"
expect_eq "bearer authentication works (no csrf needed)" 200 "$STATUS"
check "the token list never shows the secret" bash -c "! grep -q '${TOK#berth_}' <<<'$BODY'"
expect_eq "the token list has id, name, created_at, last_used_at, expires_at" \
    "created_at,expires_at,id,last_used_at,name" \
    "$(jq -r '.items[0] | keys | join(",")' <<<"$BODY")"
expect_eq "only the token's SHA-256 is stored" "1 0" \
    "$(psql_q "SELECT count(*) FILTER (WHERE token_hash = encode(sha256('$TOK'::bytea), 'hex')), count(*) FILTER (WHERE token_hash = '$TOK') FROM api_tokens")"
used1=$(psql_q "SELECT last_used_at FROM api_tokens WHERE id = '$TOK_ID'")
check "last_used_at is recorded" test -n "$used1"
http GET /api/v1/auth/me "" -H "Authorization: Bearer $TOK"
expect_eq "last_used_at is not rewritten on every request" "$used1" \
    "$(psql_q "SELECT last_used_at FROM api_tokens WHERE id = '$TOK_ID'")"
expect_eq "me over a bearer token has no csrf_token" "null" "$(jq -r .csrf_token <<<"$BODY")"
http POST /api/v1/tokens '{"name":"x"}' -H "Authorization: Bearer $TOK" -H "Origin: https://evil.example"
expect_eq "a foreign Origin is refused for bearer requests too" 403 "$STATUS"
http POST /api/v1/auth/logout "" -H "Authorization: Bearer $TOK"
expect_eq "logout with a bearer token is 400 (it ends cookie sessions)" 400 "$STATUS"
for bad in '{"name":""}' '{"name":5}' '{"name":"a","expires_in_days":0}' \
           '{"name":"a","expires_in_days":"7"}' '{"name":"a","scope":"all"}' \
           "{\"name\":\"$(printf 'n%.0s' {1..65})\"}" '{"name":"tab\there"}'; do
    http POST /api/v1/tokens "$bad" -H "Authorization: Bearer $TOK"
    expect_eq "token create refuses $bad with 400 invalid_field" "400 invalid_field" "$STATUS $(err_code)"
done
mkuser "$P-other" developer
OTHER_ID=$USER_ID
login "$P-other" "pass-$P-other-x" "$TMP/other.jar"
OTHER_CSRF=$CSRF
http DELETE "/api/v1/tokens/$TOK_ID" "" -b "$TMP/other.jar" -H "X-CSRF-Token: $OTHER_CSRF"
expect_eq "another user's token cannot be revoked (404, not confirmed)" 404 "$STATUS"
admin DELETE "/api/v1/tokens/$TOK_ID"
expect_eq "tokens are personal: an admin cannot revoke someone's token either (404)" 404 "$STATUS"
http DELETE "/api/v1/tokens/$TOK_ID" "" -H "Authorization: Bearer $TOK"
expect_eq "the owner revokes the token (204)" 204 "$STATUS"
http GET /api/v1/auth/me "" -H "Authorization: Bearer $TOK"
expect_eq "a revoked token is 401" "401 unauthenticated" "$STATUS $(err_code)"
http POST /api/v1/tokens '{"name":"short"}' -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF"
TOK2=$(jq -r .token <<<"$BODY"); TOK2_ID=$(jq -r .id <<<"$BODY")
psql_q "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = '$TOK2_ID'" >/dev/null
http GET /api/v1/auth/me "" -H "Authorization: Bearer $TOK2"
expect_eq "an expired token is 401" 401 "$STATUS"
http GET /api/v1/auth/me "" -H "Authorization: Bearer berth_$(openssl rand -hex 32)"
expect_eq "an unknown token is 401" 401 "$STATUS"
http GET /api/v1/auth/me "" -H "Authorization: Basic YWRtaW46eA=="
expect_eq "another Authorization scheme is 401" 401 "$STATUS"

# --- login throttling by (address, name) (throwaway names; the per-address
# limit is 20x the per-pair one). Other addresses: 24-hardening.sh.
MAXF=$(awk -F' *= *' '$1 == "login_max_failures" {print $2}' "$BERTH_CONFIG" | grep . || echo 5)
mkuser "$P-thr" viewer "right-password-1"
t_wrong=0; t_unknown=0
for i in $(seq 1 "$MAXF"); do
    s=$(date +%s%N)
    http POST /api/v1/auth/login "{\"username\":\"$P-nobody\",\"password\":\"wrong-password\"}"
    t_unknown=$((t_unknown + $(date +%s%N) - s)); st_unknown=$STATUS; msg_unknown=$(jq -r .error.message <<<"$BODY")
    s=$(date +%s%N)
    http POST /api/v1/auth/login "{\"username\":\"$P-thr\",\"password\":\"wrong-password\"}"
    t_wrong=$((t_wrong + $(date +%s%N) - s)); st_wrong=$STATUS; msg_wrong=$(jq -r .error.message <<<"$BODY")
done
http POST /api/v1/auth/login "{\"username\":\"$P-thr\",\"password\":\"right-password-1\"}" -D "$TMP/headers"
expect_eq "after $MAXF failures of a pair even the right password is 429 rate_limited while its delay runs" "429 rate_limited" "$STATUS $(err_code)"
check "a throttled login says when to retry (Retry-After)" grep -Eqi '^Retry-After: [1-9][0-9]*' "$TMP/headers"
expect_eq "wrong password and unknown user get the same answer" "401 $msg_wrong" "$st_unknown $msg_unknown"
check "an unknown user name costs as much time as a wrong password (dummy hash)" \
    test $((t_unknown * 2)) -ge "$t_wrong"
psql_q "UPDATE login_failures SET locked_until = now() + interval '30 seconds' WHERE key = 'pair:127.0.0.1|$P-nobody'" >/dev/null
http POST /api/v1/auth/login "{\"username\":\"$P-nobody\",\"password\":\"x\"}"
expect_eq "an unknown name is throttled the same way (no existence leak)" "429 rate_limited" "$STATUS $(err_code)"
login "$P-dev" "pass-$P-dev-x" "$DEV_JAR"
expect_eq "other users of the same address can still log in" 200 "$STATUS"
DEV_CSRF=$CSRF
expect_eq "failed and throttled logins are audited" "1 1" \
    "$(psql_q "SELECT (count(*) FILTER (WHERE outcome = 'denied') > 0)::int, (count(*) FILTER (WHERE outcome = 'throttled') > 0)::int FROM audit_log WHERE action = 'auth.login' AND details->>'username' = '$P-thr'")"
expect_eq "no audit row holds a password" 0 \
    "$(psql_q "SELECT count(*) FROM audit_log WHERE details::text LIKE '%wrong-password%' OR details::text LIKE '%pass-$P%'")"
expect_eq "failures are counted per (address, name) pair, not per name" "$MAXF 0" \
    "$(psql_q "SELECT coalesce(max(failures) FILTER (WHERE key = 'pair:127.0.0.1|$P-thr'), 0), count(*) FILTER (WHERE key = 'user:$P-thr') FROM login_failures")"
psql_q "UPDATE login_failures SET locked_until = now() - interval '1 second' WHERE key = 'pair:127.0.0.1|$P-thr'" >/dev/null
http POST /api/v1/auth/login "{\"username\":\"$P-thr\",\"password\":\"right-password-1\"}"
expect_eq "when the pair's delay has passed the right password works again" 200 "$STATUS"
expect_eq "a successful login clears its pair's count" 0 \
    "$(psql_q "SELECT count(*) FROM login_failures WHERE key = 'pair:127.0.0.1|$P-thr'")"

expect_eq "failures are also counted per client address" 1 \
    "$(psql_q "SELECT (failures > 0)::int FROM login_failures WHERE key = 'ip:127.0.0.1'")"
# The per-address delay, briefly (tests run one after another; removed at once).
psql_q "INSERT INTO login_failures (key, failures, locked_until) VALUES ('ip:127.0.0.1', 1000, now() + interval '1 minute') ON CONFLICT (key) DO UPDATE SET locked_until = now() + interval '1 minute'" >/dev/null
http POST /api/v1/auth/login "{\"username\":\"$P-dev\",\"password\":\"pass-$P-dev-x\"}"
st=$STATUS
psql_q "UPDATE login_failures SET failures = 0, locked_until = NULL WHERE key = 'ip:127.0.0.1'" >/dev/null
expect_eq "a waiting address is refused with 429 even for a right password" 429 "$st"
http POST /api/v1/auth/login "{\"username\":\"$P-dev\",\"password\":\"pass-$P-dev-x\"}" -c "$DEV_JAR"
expect_eq "when the address delay is over the login works" 200 "$STATUS"
DEV_CSRF=$(jq -r .csrf_token <<<"$BODY")

# --- session activity is recorded cheaply
cur=$(awk '$6 == "berth_session" {print $7}' "$DEV_JAR")
psql_q "UPDATE sessions SET last_seen_at = now() - interval '2 minutes' WHERE token_hash = encode(sha256('$cur'::bytea), 'hex')" >/dev/null
http GET /api/v1/auth/me "" -b "$DEV_JAR"
expect_eq "a session used after a minute has its last_seen_at moved on" 1 \
    "$(psql_q "SELECT (last_seen_at > now() - interval '30 seconds')::int FROM sessions WHERE token_hash = encode(sha256('$cur'::bytea), 'hex')")"

# --- password edge cases (POST /users): each 400 invalid_field password, no row
before=$(users_count)
for case in 'empty:""' 'seven characters:"1234567"' "4 KiB:\"$(head -c 4096 /dev/zero | tr '\0' a)\"" \
            'a NUL byte:"abcd\u0000efgh"' 'a number:12345678' 'null:null'; do
    name=${case%%:*}; pw=${case#*:}
    admin POST /api/v1/users "{\"username\":\"$P-pw\",\"password\":$pw,\"role\":\"viewer\"}"
    if [[ $name == "a NUL byte" ]]; then
        expect_eq "password with $name is refused (400)" 400 "$STATUS"
    else
        expect_eq "password $name is refused (400 invalid_field password)" "400 invalid_field password" \
            "$STATUS $(err_code) $(err_field)"
    fi
done
printf '{"username":"%s-pw","password":"abc\xff\xfedefgh","role":"viewer"}' "$P" > "$TMP/badutf8"
http POST /api/v1/users "@$TMP/badutf8" -b "$ADMIN_JAR" -H "X-CSRF-Token: $ADMIN_CSRF"
expect_eq "password with invalid UTF-8 is refused (400)" 400 "$STATUS"
expect_eq "no user row was made by refused passwords" "$before" "$(users_count)"
admin POST /api/v1/users "{\"username\":\"$P-pw8\",\"password\":\"12345678\",\"role\":\"viewer\"}"
expect_eq "a password of exactly 8 characters is accepted" 201 "$STATUS"
admin POST /api/v1/users "{\"username\":\"$P-pwu\",\"password\":\"日本語のパスワ\",\"role\":\"viewer\"}"
expect_eq "7 multi-byte characters are still 7 characters (400)" 400 "$STATUS"
http POST /api/v1/auth/login "{\"username\":\"$P-pw8\",\"password\":\"$(head -c 4096 /dev/zero | tr '\0' a)\"}"
expect_eq "login with a 4 KiB password is refused without a crash" 401 "$STATUS"

# --- bad input changes no row
before=$(users_count)
for case in 'malformed JSON:{"username":' 'a JSON array:[1,2]' 'an empty body:' \
            "role of the wrong type:{\"username\":\"$P-bad\",\"password\":\"password-1\",\"role\":5}" \
            "an unknown field:{\"username\":\"$P-bad\",\"password\":\"password-1\",\"role\":\"viewer\",\"admin\":true}" \
            "a bad name:{\"username\":\"Bad_Name\",\"password\":\"password-1\",\"role\":\"viewer\"}" \
            "an over-long name:{\"username\":\"a$(printf 'b%.0s' {1..40})\",\"password\":\"password-1\",\"role\":\"viewer\"}" \
            "an unknown role:{\"username\":\"$P-bad\",\"password\":\"password-1\",\"role\":\"root\"}" \
            "a negative quota:{\"username\":\"$P-bad\",\"password\":\"password-1\",\"role\":\"viewer\",\"quota\":{\"instances\":-1}}" \
            "duplicate keys:{\"username\":\"$P-bad\",\"username\":\"$P-bad2\",\"password\":\"password-1\",\"role\":\"viewer\"}"; do
    name=${case%%:*}; body=${case#*:}
    if [[ -z $body ]]; then
        http POST /api/v1/users "" -b "$ADMIN_JAR" -H "X-CSRF-Token: $ADMIN_CSRF" -H 'Content-Type: application/json'
    else
        admin POST /api/v1/users "$body"
    fi
    check "user create with $name: 400 in the error shape" \
        jq -e '.error.code == "bad_request" or .error.code == "invalid_field"' <<<"$BODY"
done
admin POST /api/v1/users "{\"username\":\"$P-bad\",\"password\":\"password-1\",\"role\":\"viewer\",\"admin\":true}"
expect_eq "the unknown field is named" "invalid_field admin" "$(err_code) $(err_field)"
head -c 2000000 /dev/zero | tr '\0' a > "$TMP/big"
http POST /api/v1/users "@$TMP/big" -b "$ADMIN_JAR" -H "X-CSRF-Token: $ADMIN_CSRF"
expect_eq "a body over body_limit is 413 in the error shape" "413 bad_request" "$STATUS $(err_code)"
admin PATCH "/api/v1/users/$DEV_ID" '{"disabled":"yes"}'
expect_eq "PATCH with a wrong type is 400 invalid_field disabled" "400 invalid_field disabled" \
    "$STATUS $(err_code) $(err_field)"
admin PATCH "/api/v1/users/$DEV_ID" '{"username":"renamed"}'
expect_eq "PATCH of a field that cannot change is 400 invalid_field username" "invalid_field username" \
    "$(err_code) $(err_field)"
expect_eq "no user row was made or changed by bad input" "$before 3" \
    "$(users_count) $(psql_q "SELECT quota_instances FROM users WHERE id = '$DEV_ID'")"

# --- role changes, disabling, deletion
http GET /api/v1/users "" -b "$DEV_JAR"
expect_eq "a developer cannot list users (403)" 403 "$STATUS"
http GET "/api/v1/users/$DEV_ID" "" -b "$DEV_JAR"
expect_eq "a user may read their own user object" 200 "$STATUS"
admin PATCH "/api/v1/users/$OTHER_ID" '{"password":"new-password-9"}'
expect_eq "admin resets a password (200)" 200 "$STATUS"
http GET /api/v1/auth/me "" -b "$TMP/other.jar"
expect_eq "a password change ends that user's sessions" 401 "$STATUS"
login "$P-other" "new-password-9" "$TMP/other.jar"
expect_eq "the new password works" 200 "$STATUS"
http POST /api/v1/tokens '{"name":"before-disable"}' -b "$TMP/other.jar" -H "X-CSRF-Token: $CSRF"
OTHER_TOK=$(jq -r .token <<<"$BODY")
admin PATCH "/api/v1/users/$OTHER_ID" '{"disabled":true}'
expect_eq "admin disables a user" "200 true" "$STATUS $(jq -r .disabled <<<"$BODY")"
http GET /api/v1/auth/me "" -H "Authorization: Bearer $OTHER_TOK"
expect_eq "a disabled user's API token stops working" 401 "$STATUS"
login "$P-other" "new-password-9" "$TMP/other.jar"
expect_eq "a disabled user cannot log in (same 401)" "401 wrong user name or password" \
    "$STATUS $(jq -r .error.message <<<"$BODY")"
admin PATCH "/api/v1/users/$OTHER_ID" '{"disabled":false,"role":"viewer"}'
expect_eq "admin re-enables and demotes a user" "200 viewer" "$STATUS $(jq -r .role <<<"$BODY")"
admin DELETE "/api/v1/users/$OTHER_ID?delete_volumes=maybe"
expect_eq "delete_volumes must be true or false" 400 "$STATUS"
http DELETE "/api/v1/users/$OTHER_ID" "" -b "$DEV_JAR" -H "X-CSRF-Token: $DEV_CSRF"
expect_eq "a developer cannot delete users (403)" 403 "$STATUS"
admin DELETE "/api/v1/users/$OTHER_ID"
expect_eq "DELETE user answers 202 with a user_delete job" "202 user_delete queued" \
    "$STATUS $(jq -r '"\(.kind) \(.status)"' <<<"$BODY")"
JOB_ID=$(jq -r .id <<<"$BODY")
login "$P-other" "new-password-9" "$TMP/other.jar"
expect_eq "a user being deleted cannot log in any more" 401 "$STATUS"
expect_eq "the user_delete job row exists" "user_delete" "$(psql_q "SELECT kind FROM jobs WHERE id = '$JOB_ID'")"
expect_eq "the user is disabled at once (or already gone)" "t" \
    "$(psql_q "SELECT coalesce((SELECT disabled FROM users WHERE id = '$OTHER_ID'), true)")"
ADMIN_ID=$(psql_q "SELECT id FROM users WHERE username = 'admin'")
admin DELETE "/api/v1/users/$ADMIN_ID"
expect_eq "an admin cannot delete themselves (409)" 409 "$STATUS"

# --- audit log
admin GET "/api/v1/audit?user=admin&action=user.create&limit=2"
expect_eq "audit filters by user and action, paginated" "2 user.create admin true" \
    "$(jq -r '"\(.items | length) \(.items[0].action) \(.items[0].actor) \(.next_cursor != null)"' <<<"$BODY")"
expect_eq "audit rows have the fields of API.md" "action,actor,at,details,id,ip,outcome,target_id,target_type" \
    "$(jq -r '.items[0] | keys | join(",")' <<<"$BODY")"
first_ids=$(jq -r '[.items[].id] | join(",")' <<<"$BODY")
cursor=$(jq -r .next_cursor <<<"$BODY")
admin GET "/api/v1/audit?user=admin&action=user.create&limit=2&cursor=$cursor"
check "the next page continues with older rows" jq -e --argjson c "$cursor" \
    '(.items | length) > 0 and all(.items[]; .id < $c)' <<<"$BODY"
admin GET "/api/v1/audit?target=user:$DEV_ID"
check "audit filters by target" jq -e --arg id "$DEV_ID" \
    '(.items | length) > 0 and all(.items[]; .target_id == $id)' <<<"$BODY"
admin GET "/api/v1/audit?action=user.*&outcome=invalid"
check "action prefix and outcome filters" jq -e \
    '(.items | length) > 0 and all(.items[]; (.action | startswith("user.")) and .outcome == "invalid")' <<<"$BODY"
admin GET "/api/v1/audit?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"
expect_eq "since/until bound the time" "200 0" "$STATUS $(jq '.items | length' <<<"$BODY")"
admin GET "/api/v1/audit?since=yesterday"
expect_eq "a bad since is 400 invalid_field since" "400 invalid_field since" "$STATUS $(err_code) $(err_field)"
admin GET "/api/v1/audit?limit=501"
expect_eq "limit over 500 is 400" 400 "$STATUS"
admin GET "/api/v1/audit?action=token.delete&user=$P-dev"
expect_eq "a token revocation is audited" "ok" "$(jq -r '.items[0].outcome' <<<"$BODY")"
http GET "/api/v1/audit?action=user.create&limit=5&format=csv" "" -b "$ADMIN_JAR" -D "$TMP/headers"
expect_eq "CSV export starts with the header row" "id,at,actor,action,target_type,target_id,outcome,ip,details" \
    "$(head -1 <<<"$BODY" | tr -d '\r')"
check "CSV export is served as text/csv" grep -qi '^Content-Type: text/csv' "$TMP/headers"
expect_eq "CSV export has one line per row" 6 "$(grep -c . <<<"$BODY")"
http GET "/api/v1/audit?action=user.create&limit=5&format=jsonl" "" -b "$ADMIN_JAR"
check "JSON-lines export: every line is one audit object" bash -c \
    "[[ \$(jq -c 'select(.action == \"user.create\")' <<<'$BODY' | wc -l) == 5 ]]"
http GET "/api/v1/audit?format=xml" "" -b "$ADMIN_JAR"
expect_eq "an unknown export format is 400" 400 "$STATUS"
http GET /api/v1/audit "" -b "$DEV_JAR"
expect_eq "a developer cannot read the audit log" 403 "$STATUS"
expect_eq "every write of this test left audit rows with the client address" "0" \
    "$(psql_q "SELECT count(*) FROM audit_log WHERE actor LIKE '$P-%' AND (ip IS NULL OR ip = '')")"

# --- admin stats and nodes
admin GET /api/v1/admin/stats
check "admin stats has users, instances by status, templates, nodes, jobs" jq -e \
    '(.users | type) == "number" and (.instances | type) == "object" and (.templates | type) == "number"
     and (.nodes | type) == "number" and (.jobs | has("queued") and has("running") and has("failed"))' <<<"$BODY"
expect_eq "stats count the users" "$(users_count)" "$(jq .users <<<"$BODY")"
http GET /api/v1/admin/stats "" -b "$DEV_JAR"
expect_eq "a developer cannot read stats" 403 "$STATUS"
admin GET /api/v1/nodes
check "nodes lists name, docker_endpoint, status, instances, last_seen_at" jq -e \
    '(.items | length) >= 1 and (.items[0] | has("name") and has("docker_endpoint") and has("status")
     and has("instances") and has("last_seen_at"))' <<<"$BODY"

# --- berth-api --create-user (server side, no API)
SVC=()
[[ $(id -u) -eq 0 ]] && id berth >/dev/null 2>&1 && SVC=(setpriv --reuid=berth --regid=berth --init-groups --)
out=$(echo "cli-password-1" | "${SVC[@]}" "$BUILD/berth-api" --create-user "$P-cli" --role admin 2>&1)
expect_eq "--create-user creates an admin from a password on stdin" 0 "$?"
login "$P-cli" "cli-password-1" "$TMP/cli.jar"
expect_eq "the command-line admin can log in" "200 admin" "$STATUS $(jq -r .user.role <<<"$BODY")"
echo "cli-password-2" | "${SVC[@]}" "$BUILD/berth-api" --create-user "$P-cli" --role admin >/dev/null 2>&1
login "$P-cli" "cli-password-2" "$TMP/cli.jar"
expect_eq "--create-user resets an existing user's password" 200 "$STATUS"
echo "short" | "${SVC[@]}" "$BUILD/berth-api" --create-user "$P-cli2" --role admin >/dev/null 2>&1
expect_eq "--create-user refuses a short password (exit 2)" 2 "$?"
exit 0
