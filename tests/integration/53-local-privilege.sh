#!/usr/bin/env bash
# The local stack trusts no other local user (README, Security; #12 item 1):
#  - nothing of it but nginx listens on TCP; PostgreSQL, Redis and berth-api's
#    FastCGI socket are unix sockets in a 0700 directory of the service user,
#    so `nobody` reaches none of them, over the socket or over loopback TCP;
#  - PostgreSQL admits its role by peer authentication: the service user (and
#    root) get in, and nothing else is in pg_hba.conf;
#  - the service user cannot change what the root worker writes or opens:
#    box_dir and box-*/ and var/log/ are root's; a worker given a box_dir the
#    service user owns, or a link, or a group-writable one, refuses to start;
#  - the worker signals only an nginx master: a pidfile naming another
#    process (root's `sleep`) gets no signal, and reloads work again once the
#    pidfile is nginx's.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq
[[ $(id -u) -eq 0 ]] || { skip "local privilege checks" "need root (the stack's service user is then berth)"; exit 0; }
id berth >/dev/null 2>&1 || { skip "local privilege checks" "no service user berth"; exit 0; }
scratch lp 2
SLEEP_PID=""
PIDFILE=$RUN/nginx-master.pid
cleanup() {
    [[ -f $TMP/nginx-master.pid ]] && cp "$TMP/nginx-master.pid" "$PIDFILE"
    [[ -n $SLEEP_PID ]] && kill "$SLEEP_PID" 2>/dev/null
    [[ -n ${DEV_ID:-} ]] && delete_instances_of "$DEV_ID" 30 -b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF"
    rm -rf "$TMP"
}
trap cleanup EXIT
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups -- "$@"; }
PY=/usr/bin/python3

# ---- nothing but nginx on TCP ----
PG_PID=$(head -1 "$BERTH_VAR/pg/data/postmaster.pid")
tcp_of() { # tcp_of PID -> the TCP ports PID listens on
    ss -Hltnp 2>/dev/null | grep -F "pid=$1," | awk '{print $4}'
}
for s in "postgres:$PG_PID" "redis:$(svc_pid redis)" "api:$(svc_pid api)" "worker:$(svc_pid worker)"; do
    name=${s%%:*} pid=${s#*:}
    listens=$(tcp_of "$pid" | tr '\n' ' ')
    if [[ -n $pid && -z $listens ]]; then ok "$name listens on no TCP port"
    else fail "$name listens on no TCP port" "pid '$pid': $listens"; fi
done
nginx_ports=$(tcp_of "$(svc_pid nginx)" | sed 's/.*://' | sort -u | tr '\n' ' ')
expect_eq "nginx listens on the HTTP port only" "${BERTH_URL##*:} " "$nginx_ports"

# ---- the sockets' directory ----
mode=$(stat -c '%a %U' "$RUN")
expect_eq "var/run is the service user's, mode 0700" "700 berth" "$mode"
if as nobody ls "$RUN" >/dev/null 2>&1; then fail "nobody cannot list var/run"; else ok "nobody cannot list var/run"; fi

# ---- PostgreSQL ----
sql_as() { # sql_as USER HOST -> psql's output and exit status
    as "$1" "$PG_BIN/psql" -h "$2" -p "$BERTH_PG_PORT" -U berth -d berth -tAqc 'SELECT 42' 2>&1
}
out=$(sql_as nobody "$RUN"); rc=$?
if [[ $rc -ne 0 && $out != *42* ]]; then ok "nobody cannot reach PostgreSQL's socket ($(head -c 90 <<<"$out"))"
else fail "nobody cannot reach PostgreSQL's socket" "$out"; fi
out=$(sql_as nobody 127.0.0.1); rc=$?
if [[ $rc -ne 0 && $out != *42* ]]; then ok "nobody cannot reach PostgreSQL on loopback TCP ($(head -c 90 <<<"$out"))"
else fail "nobody cannot reach PostgreSQL on loopback TCP" "$out"; fi
out=$("$PG_BIN/psql" -h 127.0.0.1 -p "$BERTH_PG_PORT" -U berth -d berth -tAqc 'SELECT 42' 2>&1)
if [[ $out != *42* ]]; then ok "not even root reaches it on TCP: nothing listens"
else fail "not even root reaches it on TCP: nothing listens" "$out"; fi
expect_eq "the service user gets in by peer authentication" "42" "$(sql_as berth "$RUN")"
expect_eq "root gets in as the role berth (the worker's way)" "42" \
    "$("$PG_BIN/psql" -h "$RUN" -p "$BERTH_PG_PORT" -U berth -d berth -tAqc 'SELECT 42' 2>&1)"
out=$(as berth "$PG_BIN/psql" -h "$RUN" -p "$BERTH_PG_PORT" -U postgres -d berth -tAqc 'SELECT 42' 2>&1)
if [[ $out != *42* ]]; then ok "the service user cannot log in as another role"
else fail "the service user cannot log in as another role" "$out"; fi
hba=$(grep -Ev '^\s*(#|$)' "$BERTH_VAR/pg/data/pg_hba.conf" | tr -s ' ')
expect_eq "pg_hba.conf admits one role, over the socket, by peer" "local all berth peer map=berth" "$hba"
if grep -q trust "$BERTH_VAR/pg/data/pg_hba.conf"; then fail "no trust line"; else ok "no trust line"; fi

# ---- Redis and berth-api's socket ----
out=$(as nobody redis-cli -s "$RUN/redis.sock" LPUSH "berth:jobs:local" x 2>&1)
if [[ $out != "(integer)"* && $out != [0-9]* ]]; then ok "nobody cannot push a job into Redis ($(head -c 80 <<<"$out"))"
else fail "nobody cannot push a job into Redis" "$out"; fi
out=$(as nobody redis-cli -h 127.0.0.1 -p 6379 PING 2>&1; as nobody redis-cli -h 127.0.0.1 -p "$((BERTH_PG_PORT + 1))" PING 2>&1)
if [[ $out != *PONG* ]]; then ok "and Redis is on no loopback port of the stack"
else fail "and Redis is on no loopback port of the stack" "$out"; fi
expect_eq "the service user's own Redis works" "PONG" "$(as berth redis-cli -s "$RUN/redis.sock" PING 2>&1)"
conn() { # conn USER SOCKET -> "connected" or the error
    as "$1" "$PY" -c 'import socket,sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("connected")
except OSError as e:
    print(type(e).__name__, e.strerror)' "$2" 2>&1
}
out=$(conn nobody "$RUN/api.sock")
if [[ $out != connected ]]; then ok "nobody cannot speak FastCGI to berth-api ($out)"
else fail "nobody cannot speak FastCGI to berth-api" "$out"; fi
expect_eq "nginx's user (berth) can" "connected" "$(conn berth "$RUN/api.sock")"

# ---- what the root worker writes and opens ----
for d in "$BERTH_VAR" "$BERTH_VAR/nginx" "$BERTH_VAR/nginx/box-available" "$BERTH_VAR/nginx/box-enabled" "$BERTH_VAR/log"; do
    expect_eq "${d#$BERTH_VAR}/ is root's and 0755" "755 root" "$(stat -c '%a %U' "$d")"
done
if as berth mv "$BERTH_VAR/nginx/box-available" "$BERTH_VAR/nginx/moved" 2>/dev/null; then
    mv "$BERTH_VAR/nginx/moved" "$BERTH_VAR/nginx/box-available"
    fail "the service user cannot move box-available/ away"
else ok "the service user cannot move box-available/ away"; fi
if as berth ln -s /etc "$BERTH_VAR/nginx/box-enabled/x.conf" 2>/dev/null; then
    rm -f "$BERTH_VAR/nginx/box-enabled/x.conf"; fail "the service user cannot plant a link in box-enabled/"
else ok "the service user cannot plant a link in box-enabled/"; fi
if as berth ln -sf /etc/shadow "$BERTH_VAR/log/worker.log" 2>/dev/null; then
    fail "the service user cannot replace the worker's log with a link"
else ok "the service user cannot replace the worker's log with a link"; fi
expect_eq "the logs it writes itself are its own" "berth berth berth" \
    "$(stat -c '%U' "$BERTH_VAR/log/nginx-error.log" "$BERTH_VAR/log/nginx-access.log" "$BERTH_VAR/log/postgres.log" | tr '\n' ' ' | sed 's/ $//')"

worker_with_box() { # worker_with_box DIR -> the worker's exit status and last line (it must not start)
    sed "s|^box_dir = .*|box_dir = $1|" "$BERTH_CONFIG" > "$TMP/w.conf"
    timeout 10 env BERTH_CONFIG="$TMP/w.conf" "$BUILD/berth-worker" > "$TMP/w.log" 2>&1
    echo "$? $(grep -o 'box_dir = .*' "$TMP/w.log" | tail -1)"
}
mkdir -p "$TMP/box-berth" && chown berth "$TMP/box-berth"
out=$(worker_with_box "$TMP/box-berth")
if [[ $out == "1 "*"belongs to uid"* ]]; then ok "a worker refuses a box_dir the service user owns ($out)"
else fail "a worker refuses a box_dir the service user owns" "$out"; fi
mkdir -p "$TMP/real" && ln -s "$TMP/real" "$TMP/box-link"
out=$(worker_with_box "$TMP/box-link")
if [[ $out == "1 "*"symbolic link"* ]]; then ok "a worker refuses a box_dir that is a link ($out)"
else fail "a worker refuses a box_dir that is a link" "$out"; fi
mkdir -p "$TMP/box-g" && chmod 0775 "$TMP/box-g"
out=$(worker_with_box "$TMP/box-g")
if [[ $out == "1 "*"writable by its group"* ]]; then ok "a worker refuses a group-writable box_dir ($out)"
else fail "a worker refuses a group-writable box_dir" "$out"; fi
mkdir -p "$TMP/box-sub/box-enabled" && chmod 0700 "$TMP/box-sub" && chown berth "$TMP/box-sub/box-enabled"
out=$(worker_with_box "$TMP/box-sub")
if [[ $out == "1 "*"box-enabled belongs to uid"* ]]; then ok "a worker refuses a box-enabled/ the service user owns ($out)"
else fail "a worker refuses a box-enabled/ the service user owns" "$out"; fi
mkdir -p "$TMP/loose" && chmod 0777 "$TMP/loose" && mkdir -p "$TMP/loose/box" && chmod 0755 "$TMP/loose/box"
out=$(worker_with_box "$TMP/loose/box")
if [[ $out == "1 "*"loose is writable"* ]]; then ok "a worker refuses a box_dir in a directory everyone can write ($out)"
else fail "a worker refuses a box_dir in a directory everyone can write" "$out"; fi

# ---- the pid the worker signals ----
admin_login "$TMP/admin.jar"
dev_login "$P" "$TMP/dev.jar"
cp "$PIDFILE" "$TMP/nginx-master.pid"
sleep 300 & SLEEP_PID=$!
echo "$SLEEP_PID" > "$PIDFILE"
before=$(grep -c 'refusing to signal' "$WORKER_LOG")
r0=$(reloads)
create '{"template":"web"}' -b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF"
expect_eq "an instance is created while the pidfile names root's sleep" 202 "$STATUS"
refused_more() { [[ $(grep -c 'refusing to signal' "$WORKER_LOG") -gt $before ]]; }
reloaded_more() { [[ $(reloads) -gt $r0 ]]; }
if wait_for 30 refused_more; then
    ok "the worker refuses to signal it: $(grep -o 'refusing to signal.*' "$WORKER_LOG" | tail -1 | head -c 140)"
else fail "the worker refuses to signal it" "$(tail -5 "$WORKER_LOG")"; fi
if kill -0 "$SLEEP_PID" 2>/dev/null; then ok "the sleep got no SIGHUP (it runs)"; else fail "the sleep got no SIGHUP (it runs)"; fi
expect_eq "and no reload was counted" "$r0" "$(reloads)"
cp "$TMP/nginx-master.pid" "$PIDFILE"
http DELETE "/api/v1/instances/$IID" "" -b "$TMP/dev.jar" -H "X-CSRF-Token: $DCSRF"
expect_eq "the instance is deleted" 202 "$STATUS"
if wait_for 30 reloaded_more; then ok "with nginx's pid back, the next change reloads nginx"
else fail "with nginx's pid back, the next change reloads nginx" "$(tail -5 "$WORKER_LOG")"; fi
