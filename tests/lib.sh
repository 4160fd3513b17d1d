# tests/lib.sh — helpers for bash integration tests (sourced).
# Each check prints `ok - <behaviour>` or `not ok - <behaviour>`; tests/run.sh
# counts those lines. Failure details go to stderr.

: "${BERTH_URL:?run through tests/run.sh (BERTH_URL unset)}"

ok()   { printf 'ok - %s\n' "$1"; }
fail() { printf 'not ok - %s\n' "$1"; shift; [[ $# -gt 0 ]] && printf '  %s\n' "$@" >&2; return 0; }

# check "behaviour" cmd... : ok when cmd succeeds.
check() {
    local what=$1; shift
    local out
    if out=$("$@" 2>&1); then ok "$what"; else fail "$what" "command: $*" "output: ${out:0:2000}"; fi
}

# expect_eq "behaviour" expected actual
expect_eq() {
    if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1" "expected: $2" "actual:   ${3:0:2000}"; fi
}

# http METHOD PATH [BODY] [curl args...] — sets STATUS and BODY.
http() {
    local method=$1 path=$2 data=${3-}; shift 3 2>/dev/null || shift $#
    local tmp; tmp=$(mktemp)
    local args=(-s -o "$tmp" -w '%{http_code}' -X "$method" --max-time 30)
    [[ -n "$data" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    STATUS=$(curl "${args[@]}" "$@" "$BERTH_URL$path") || STATUS=000
    BODY=$(cat "$tmp"); rm -f "$tmp"
}

# Run the rest of the test only when jq exists.
need() { command -v "$1" >/dev/null 2>&1 || { ok "SKIP: $1 not installed # SKIP"; exit 0; }; }

# admin_login JAR: log in as the stack's first admin into cookie jar JAR;
# sets ACSRF (the session's CSRF token). Then admin METHOD PATH [BODY]
# [curl args...] sends a request with that session.
admin_login() {
    ADMIN_JAR=$1
    http POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$BERTH_ADMIN_PASSWORD\"}" -c "$ADMIN_JAR"
    ACSRF=$(jq -r .csrf_token <<<"$BODY")
}
admin() {
    local m=$1 p=$2 b=${3-}; shift 3 2>/dev/null || shift $#
    http "$m" "$p" "$b" -b "$ADMIN_JAR" -H "X-CSRF-Token: $ACSRF" "$@"
}

# dev_login NAME JAR: the admin (admin_login first) makes developer NAME with
# password pw-NAME, who logs in into cookie jar JAR; sets DEV_ID and DCSRF.
# Then dev METHOD PATH [BODY] [curl args...] sends with that session.
dev_login() {
    DEV_JAR=$2
    admin POST /api/v1/users "{\"username\":\"$1\",\"password\":\"pw-$1\",\"role\":\"developer\"}"
    DEV_ID=$(jq -r .id <<<"$BODY")
    http POST /api/v1/auth/login "{\"username\":\"$1\",\"password\":\"pw-$1\"}" -c "$DEV_JAR"
    DCSRF=$(jq -r .csrf_token <<<"$BODY")
}
dev() {
    local m=$1 p=$2 b=${3-}; shift 3 2>/dev/null || shift $#
    http "$m" "$p" "$b" -b "$DEV_JAR" -H "X-CSRF-Token: $DCSRF" "$@"
}

# Workspaces live on an origin of their own (workspace_host, {user}.localhost
# in the test stack): ws_origin USER [INSTANCE] prints it. curl resolves
# *.localhost to loopback by itself.
ws_origin() {
    local port=${BERTH_URL##*:}
    case ${BERTH_WORKSPACE_HOST:-{user\}.localhost} in
        same) echo "$BERTH_URL" ;;
        *) local h=${BERTH_WORKSPACE_HOST:-{user\}.localhost}; h=${h//\{user\}/$1}; h=${h//\{instance\}/${2:-}}
           [[ $h == *:* ]] && echo "http://$h" || echo "http://$h:$port" ;;
    esac
}

# ws_login JAR URL: sign the session in cookie jar JAR in to the workspace at
# URL (a urls.open) the way a browser does -- the workspace sends it to the
# UI origin, which hands back a one-time code for berth_ws -- and leave the
# workspace cookie in JAR. Sets STATUS (the final answer's).
# A route goes live a moment after its instance runs (the reload), and the
# app may still be starting: a 404, 502 or 503 is tried again for up to
# WS_LOGIN_WAIT (20) seconds.
ws_login() {
    local end=$((SECONDS + ${WS_LOGIN_WAIT:-20}))
    while :; do
        STATUS=$(curl -s -o /dev/null -w '%{http_code}' -L --max-redirs 6 --max-time 30 \
            -b "$1" -c "$1" -H 'Accept: text/html' "$2") || STATUS=000
        [[ $STATUS =~ ^(404|502|503|000)$ ]] && ((SECONDS < end)) || return 0
        sleep 0.25
    done
}

# ws_cookie JAR PATH: the Cookie header value a browser holding JAR (signed
# in with ws_login) sends to the workspace at PATH (/container/<u>/<i>/) on
# its workspace origin -- that path's berth_ws; with workspace_host = same,
# the UI session (berth_session). For clients without a cookie engine (node).
ws_cookie() {
    if [[ ${BERTH_WORKSPACE_HOST:-} == same ]]; then
        echo "berth_session=$(awk -F'\t' '$6 == "berth_session" {v = $7} END {print v}' "$1")"
    else
        echo "berth_ws=$(awk -F'\t' -v p="$2" '$6 == "berth_ws" && $3 == p {v = $7} END {print v}' "$1")"
    fi
}
