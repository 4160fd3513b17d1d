# tests/lib.sh — helpers for bash integration tests (sourced).
# Each check prints `ok - <behaviour>` or `not ok - <behaviour>`; tests/run.sh
# counts those lines. Failure details go to stderr.

: "${BERTH_URL:?run through tests/run.sh (BERTH_URL unset)}"

# The stack under test (tests/run.sh exports ROOT, BERTH_VAR, BERTH_BUILD).
BUILD=${BERTH_BUILD:-$ROOT/build}   # berth-api, berth-worker, berthctl as built for the test
RUN=$BERTH_VAR/run                  # pid files and sockets (PostgreSQL, Redis)
WORKER_LOG=$BERTH_VAR/log/worker.log
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1) # psql, pg_ctl

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

# skip "behaviour" why: a check that could not be made here, counted as passed.
skip() { printf 'ok - %s # SKIP %s\n' "$1" "$2"; }

# need CMD: run the rest of the test only when CMD (jq, node, docker ...) exists.
need() { command -v "$1" >/dev/null 2>&1 || { ok "SKIP: $1 not installed # SKIP"; exit 0; }; }

# scratch PREFIX [BYTES]: P = PREFIX and BYTES (3) random bytes in hex, the
# stem of this run's user, template and instance names; TMP a fresh directory,
# removed at exit (a test that sets its own EXIT trap removes it there).
scratch() {
    P=$1$(od -An -N"${2:-3}" -tx1 /dev/urandom | tr -d ' \n')
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
}

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

# user_login NAME ROLE JAR [QUOTA-JSON]: the admin (admin_login first) makes
# user NAME with password pw-NAME (and that quota), who logs in into cookie
# jar JAR; sets USER_ID and CSRF (empty when refused).
user_login() {
    admin POST /api/v1/users "{\"username\":\"$1\",\"password\":\"pw-$1\",\"role\":\"$2\"${4:+,\"quota\":$4}}"
    USER_ID=$(jq -r '.id // empty' <<<"$BODY" 2>/dev/null)
    http POST /api/v1/auth/login "{\"username\":\"$1\",\"password\":\"pw-$1\"}" -c "$3"
    CSRF=$(jq -r '.csrf_token // empty' <<<"$BODY" 2>/dev/null)
}
# user_token NAME ROLE [QUOTA-JSON]: user_login, then an API token of the
# new user: sets USER_ID and TOKEN (empty when refused).
user_token() {
    local jar; jar=$(mktemp)
    user_login "$1" "$2" "$jar" "${3-}"
    TOKEN=$(new_token test -b "$jar" -H "X-CSRF-Token: $CSRF")
    rm -f "$jar"
}
# new_token NAME [curl args...]: prints a new API token named NAME of the
# session the curl args send (cookie and X-CSRF-Token); nothing when refused.
new_token() {
    local n=$1; shift
    http POST /api/v1/tokens "{\"name\":\"$n\"}" "$@"
    jq -r '.token // empty' <<<"$BODY" 2>/dev/null
}

# dev_login NAME JAR [QUOTA-JSON]: user_login of developer NAME; sets DEV_ID,
# DEV_JAR and DCSRF. Then dev METHOD PATH [BODY] [curl args...] sends with
# that session.
dev_login() {
    DEV_JAR=$2
    user_login "$1" developer "$2" "${3-}"
    DEV_ID=$USER_ID DCSRF=$CSRF
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

# psql_q SQL: SQL on the stack's database as berth; rows one a line, columns
# separated by one space, no header.
psql_q() { "$PG_BIN/psql" -h "$RUN" -p "$BERTH_PG_PORT" -U berth -d berth -tAq -F ' ' -c "$1"; }

# redis_q ARGS...: redis-cli on the stack's Redis.
redis_q() { redis-cli -s "$RUN/redis.sock" "$@"; }

# svc_pid NAME: the pid in the stack's NAME.pid (api, worker, redis...), or
# nothing when there is none.
svc_pid() { local p=; { read -r p _ < "$RUN/$1.pid"; } 2>/dev/null; echo "$p"; }

# wait_for SECONDS CMD...: CMD every 0.2 s until it succeeds; 1 when SECONDS
# (whole seconds of the shell's clock) passed first.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < end)) || return 1; sleep 0.2; done
}

# create JSON [curl args...]: POST /api/v1/instances with JSON, authenticated
# by the curl args; sets STATUS, BODY, IID and JID (empty when refused).
# reload api|worker: SIGHUP the daemon and wait (10 s) until its log says it
# read its settings again; 1 when it did not.
reload() {
    local log=$BERTH_VAR/log/$1.log n
    n=$(grep -c 'settings reloaded' "$log")
    kill -HUP "$(svc_pid "$1")"
    wait_for 10 more_reloads "$log" "$n"
}
more_reloads() { [[ $(grep -c 'settings reloaded' "$1") -gt $2 ]]; }
create() {
    local j=$1; shift
    http POST /api/v1/instances "$j" "$@"
    IID=$(jq -r '.instance.id // empty' <<<"$BODY" 2>/dev/null)
    JID=$(jq -r '.job.id // empty' <<<"$BODY" 2>/dev/null)
}

# wait_status ID STATUS SECONDS [curl args...]: reads the instance as the curl
# args authenticate every 0.2 s, SECONDS x 5 times at most, until its status
# matches STATUS (an extended regex, whole; "gone" is a 404); INST is its last
# answer. 1, saying what it had on stderr, when it never did.
wait_status() {
    local id=$1 want=$2 tries=$(($3 * 5)) out s; shift 3
    while :; do
        out=$(curl -s --max-time 10 -w '\n%{http_code}' "$@" "$BERTH_URL/api/v1/instances/$id")
        INST=${out%$'\n'*}
        if [[ ${out##*$'\n'} == 404 ]]; then s=gone; else s=$(jq -r .status <<<"$INST" 2>/dev/null); fi
        [[ $s =~ ^($want)$ ]] && return 0
        ((--tries > 0)) || break
        sleep 0.2
    done
    echo "instance $id: wanted $want, have $s $(jq -c '{error}' <<<"$INST" 2>/dev/null)" >&2
    return 1
}

# reach "behaviour" ID STATUS SECONDS [curl args...]: wait_status as a check;
# INST stays set in this shell.
reach() {
    local what=$1 err; shift
    err=$(mktemp)
    if wait_status "$@" 2>"$err"; then ok "$what"; else fail "$what" "$(cat "$err")"; fi
    rm -f "$err"
}

# container_gone ID: Docker has no container berth-ID.
container_gone() { ! docker inspect "berth-$1" >/dev/null 2>&1; }

# reloads: how many nginx reloads the worker has logged so far.
reloads() { local n; n=$(grep -c 'nginx reloaded' "$WORKER_LOG" 2>/dev/null); echo "${n:-0}"; }

# wait_health CODE [TRIES]: GET /api/v1/health every 0.1 s, TRIES (200) times
# at most, until it answers CODE (STATUS and BODY are its last answer); 1,
# with that answer on stderr, when it never did.
wait_health() {
    for _ in $(seq "${2:-200}"); do
        http GET /api/v1/health
        [[ $STATUS == "$1" ]] && return 0
        sleep 0.1
    done
    echo "health: $STATUS $BODY" >&2
    return 1
}

# err_code, err_field: the error code and field of the last answer (BODY).
err_code() { jq -r '.error.code // empty' <<<"$BODY" 2>/dev/null; }
err_field() { jq -r '.error.field // empty' <<<"$BODY" 2>/dev/null; }

# http_code [curl args...] URL: the HTTP status curl gets (000: no answer).
http_code() { curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$@"; }

# delete_instances_of "USER-ID..." SECONDS [curl args...]: deletes every live
# instance of those users with its volumes (as the curl args authenticate),
# then waits, SECONDS at most, until none of theirs is left undeleted.
delete_instances_of() {
    local ids id secs=$2
    ids=$(printf "'%s'," $1); ids=${ids%,}
    shift 2
    for id in $(psql_q "SELECT id FROM instances WHERE user_id IN ($ids) AND status NOT IN ('deleted', 'deleting')"); do
        curl -s -o /dev/null --max-time 30 -X DELETE "$@" "$BERTH_URL/api/v1/instances/$id?delete_volumes=true"
    done
    wait_for "$secs" none_live_of "$ids"
}
none_live_of() { [[ $(psql_q "SELECT count(*) FROM instances WHERE user_id IN ($1) AND status <> 'deleted'") == 0 ]]; }

# get [curl args...] URL: sets STATUS, HDRS (the headers, lower-cased) and BODY.
get() {
    local h; h=$(mktemp)
    STATUS=$(curl -s --max-time 30 -D "$h" -o "$h.body" -w '%{http_code}' "$@") || STATUS=000
    HDRS=$(tr 'A-Z' 'a-z' <"$h") BODY=$(cat "$h.body")
    rm -f "$h" "$h.body"
}

# two_sites WHAT: developers A=$P-a and B=$P-b (admin_login and scratch
# first), each with a running instance "site" of the web template, each
# signed in to it in the browser's way. Sets AJAR, BJAR (cookie jars), BCSRF,
# BUID (A's are DCSRF and DEV_ID: A logs in last), AID, BID, AO, BO (the
# workspace origins), APATH, BPATH and ACOOK, BCOOK (each workspace's Cookie
# header). 1, after a failed check naming WHAT, when the instances could
# not be made.
two_sites() {
    A=$P-a B=$P-b
    dev_login "$B" "$TMP/b.jar"
    BJAR=$DEV_JAR BCSRF=$DCSRF BUID=$DEV_ID
    dev_login "$A" "$TMP/a.jar"
    AJAR=$DEV_JAR
    AO=$(ws_origin "$A") BO=$(ws_origin "$B")
    APATH=/container/$A/site/ BPATH=/container/$B/site/
    create '{"template":"web","name":"site"}' -b "$AJAR" -H "X-CSRF-Token: $DCSRF"
    AID=$IID
    create '{"template":"web","name":"site"}' -b "$BJAR" -H "X-CSRF-Token: $BCSRF"
    BID=$IID
    if [[ -z $AID || -z $BID ]]; then
        fail "instances of two users for $1" "$BODY"
        return 1
    fi
    reach "A's instance runs" "$AID" running 120 -b "$AJAR"
    reach "B's instance runs" "$BID" running 120 -b "$BJAR"
    ws_login "$AJAR" "$AO$APATH"
    expect_eq "A signs in to A's workspace" 200 "$STATUS"
    ws_login "$BJAR" "$BO$BPATH"
    expect_eq "B signs in to B's workspace" 200 "$STATUS"
    ACOOK=$(ws_cookie "$AJAR" "$APATH") BCOOK=$(ws_cookie "$BJAR" "$BPATH")
}

# delete_templates NAME...: the admin (admin_login first) deletes the
# templates of those names that exist.
delete_templates() {
    local n tid list
    admin GET '/api/v1/templates?limit=500'
    list=$BODY
    for n in "$@"; do
        tid=$(jq -r --arg n "$n" '.items[] | select(.name == $n) | .id' <<<"$list")
        [[ -n $tid ]] && admin DELETE "/api/v1/templates/$tid"
    done
    return 0
}
