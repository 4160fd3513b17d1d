#!/usr/bin/env bash
# berthctl, the CLI client, through nginx: login trades a session for an API
# token stored 0600, commands print tables or --json, errors print the API's
# sentence and exit 1, usage errors exit 2.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

CTL=$BUILD/berthctl
export HOME=$(mktemp -d) XDG_CONFIG_HOME=
unset BERTH_TOKEN

out=$("$CTL" health 2>&1); rc=$?
expect_eq "berthctl health works without credentials" 0 "$rc"
check "... and prints every check" grep -q "postgres  ok" <<<"$out"

out=$("$CTL" whoami 2>&1); rc=$?
expect_eq "without a token, whoami exits 1" 1 "$rc"
check "... telling how to log in" grep -q "berthctl login" <<<"$out"

out=$(printf 'wrong-password\n' | "$CTL" login admin 2>&1); rc=$?
expect_eq "a wrong password is refused (exit 1)" 1 "$rc"
check "... with the API's sentence and code" grep -q "unauthenticated" <<<"$out"

out=$(printf '%s\n' "$BERTH_ADMIN_PASSWORD" | "$CTL" login admin 2>&1); rc=$?
expect_eq "login with the right password succeeds" 0 "$rc"
tokfile=$HOME/.config/berth/token
check "the token is saved with mode 0600" test "$(stat -c %a "$tokfile" 2>/dev/null)" = 600
expect_eq "whoami names the user and role" "admin (admin)" "$("$CTL" whoami 2>&1)"
expect_eq "--json prints the API's JSON" admin "$("$CTL" --json whoami | jq -r .user.username)"
check "tokens lists the token made by login" bash -c "'$CTL' tokens | grep -q berthctl@"
check "users lists the admin" bash -c "'$CTL' users | grep -q ' admin '"
expect_eq "api METHOD PATH makes any call" ok "$("$CTL" api GET /api/v1/health | jq -r .status)"

out=$("$CTL" frobnicate 2>&1); rc=$?
expect_eq "an unknown command exits 2" 2 "$rc"
check "... naming it" grep -q "unknown command 'frobnicate'" <<<"$out"
out=$("$CTL" start 'Bad Name!' 2>&1); rc=$?
expect_eq "a malformed instance argument is a usage error (exit 2), refused before any call" 2 "$rc"
check "... saying what is wrong" grep -q "neither an instance id nor an instance name" <<<"$out"
out=$("$CTL" api POST /api/v1/users '{not json' 2>&1); rc=$?
expect_eq "a malformed JSON body is refused locally (exit 2)" 2 "$rc"
out=$(BERTH_URL=http://127.0.0.1:1 "$CTL" health 2>&1); rc=$?
expect_eq "an unreachable berth is exit 1" 1 "$rc"
check "... with a sentence naming the URL" grep -q "cannot reach berth at http://127.0.0.1:1" <<<"$out"

# revoke the token: the next call is refused
id=$("$CTL" --json tokens | jq -r '.items[] | select(.name | startswith("berthctl@")) | .id' | head -1)
"$CTL" tokens revoke "$id" >/dev/null 2>&1
out=$("$CTL" whoami 2>&1); rc=$?
expect_eq "after tokens revoke of its own token, berthctl is refused" 1 "$rc"
rm -rf "$HOME"
