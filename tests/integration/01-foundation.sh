#!/usr/bin/env bash
# Foundation (issue 2): the stack answers through nginx, health checks are
# real, start-up refuses bad settings and missing services with a sentence,
# migrations are safe to re-run and roll back on failure, daemons stop on
# SIGTERM within 2 s, and `stack.sh start` restarts only what is down.
set -uo pipefail
. "$ROOT/tests/lib.sh"
need jq

SVC=()
[[ $(id -u) -eq 0 ]] && SVC=(setpriv --reuid=berth --regid=berth --init-groups --)

# --- health and the UI through nginx
http GET /api/v1/health
expect_eq "health answers 200 when all services are up" 200 "$STATUS"
expect_eq "health reports all four checks ok" "ok ok ok ok" \
    "$(jq -r '[.checks.postgres, .checks.redis, .checks.docker, .checks.nginx] | join(" ")' <<<"$BODY")"
http GET /
expect_eq "nginx serves the UI at /" 200 "$STATUS"
check "the UI page is berth's" grep -q '<title>berth</title>' <<<"$BODY"
http GET /api/v1/openapi.json
expect_eq "the OpenAPI document is served at /api/v1/openapi.json" "3" \
    "$(jq -r '.openapi[0:1]' <<<"$BODY" 2>/dev/null)"
missing=""
while read -r method path; do
    [[ $path == /_berth/* ]] && continue   # internal: nginx's auth_request target
    m=$(tr 'A-Z' 'a-z' <<<"$method")
    jq -e --arg p "$path" --arg m "$m" '.paths[$p][$m]' <<<"$BODY" >/dev/null || missing="$missing $method $path;"
done < <("$BUILD/berth-api" --routes)
expect_eq "the OpenAPI document covers every route of berth-api --routes" "" "$missing"
# generated clients name their calls by operationId: every operation has one, none twice
ops=$(jq -r '[.paths[] | to_entries[] | select(.key | test("^(get|post|put|patch|delete|head)$")) | .value.operationId // "MISSING"]' <<<"$BODY")
expect_eq "every operation of the OpenAPI document has an operationId, each its own" "0 0" \
    "$(jq '[.[] | select(. == "MISSING")] | length' <<<"$ops") $(jq 'length - (unique | length)' <<<"$ops")"
http GET /api/v1/no-such-thing
expect_eq "an unknown endpoint is 404 not_found in the error shape" "404 not_found" \
    "$STATUS $(jq -r .error.code <<<"$BODY")"
check "responses carry a request id" bash -c \
    "curl -sI '$BERTH_URL/api/v1/health' | grep -qi '^X-Request-Id: [0-9a-f]\{16\}'"

# --- metrics for a scraper on this host
http GET /metrics
expect_eq "GET /metrics answers in the Prometheus text format" 200 "$STATUS"
check "... counting responses" grep -q '^berth_api_responses_total{class="2xx"} [0-9]' <<<"$BODY"
check "... with every instance state present, zeros included" grep -q '^berth_instances{status="running"} [0-9]' <<<"$BODY"

# --- log lines: time, level, component, message
check "log lines carry time, level and component" \
    grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info  api ' "$BERTH_VAR/log/api.log"

# refused EXIT WHAT SAYS PATTERN VAR=VALUE... COMMAND...: COMMAND, with those
# settings in its environment, exits EXIT (WHAT), its output matching PATTERN
# (SAYS; not checked when PATTERN is empty).
refused() {
    local code=$1 what=$2 says=$3 pattern=$4 out rc
    shift 4
    out=$(env "$@" 2>&1); rc=$?
    expect_eq "$what" "$code" "$rc"
    [[ -z $pattern ]] || check "$says" grep -q "$pattern" <<<"$out"
}

# --- settings
refused 2 "a bad setting stops start-up (exit 2)" \
    "the refusal names the key and the accepted values" \
    "api_threads = '0' is not valid: expected an integer from 1 to 256" \
    BERTH_API_THREADS=0 "$BUILD/berth-api" --check
refused 2 "a workspace_host two users could render alike stops start-up (exit 2)" \
    "... with a sentence naming the key and the rule" \
    "workspace_host: each dot-separated label must be {user}, {instance} or" \
    BERTH_WORKSPACE_HOST='{instance}-{user}.localhost' "$BUILD/berth-api" --check
refused 2 "a public_url with a path stops start-up (exit 2)" "" "" \
    BERTH_PUBLIC_URL='http://x.org/ui' "$BUILD/berth-api" --check
refused 2 "the worker refuses a bad log_level (exit 2)" \
    "the worker's refusal lists the levels" "expected one of debug, info, warn, error" \
    BERTH_LOG_LEVEL=loud "$BUILD/berth-worker"

# --- missing services at start-up
refused 1 "berth-api without PostgreSQL exits 1" \
    "... saying PostgreSQL is unreachable and what to check" \
    "cannot connect to PostgreSQL.*is PostgreSQL running" \
    BERTH_PG_DSN="host=/nonexistent dbname=berth" "$BUILD/berth-api" --check
refused 1 "berth-api without Redis exits 1" \
    "... saying Redis is unreachable" "cannot connect to Redis.*is Redis running" \
    BERTH_REDIS_URL="unix:/nonexistent/redis.sock" "$BUILD/berth-api" --check
tmpbox=$(mktemp -d)
refused 1 "berth-worker without Docker exits 1" \
    "... saying Docker is unreachable and what to check" \
    "cannot reach Docker at docker_socket = '/nonexistent/docker.sock'.*is dockerd running" \
    BERTH_BOX_DIR="$tmpbox" BERTH_NODE=nodocker BERTH_DOCKER_SOCKET=/nonexistent/docker.sock \
    timeout 20 "$BUILD/berth-worker"
refused 1 "berth-worker without PostgreSQL exits 1" "" "" \
    BERTH_BOX_DIR="$tmpbox" BERTH_PG_DSN="host=/nonexistent dbname=berth" timeout 20 "$BUILD/berth-worker"
rm -rf "$tmpbox"

# --- migrations
out=$("${SVC[@]}" "$BUILD/berth-api" --migrate "$ROOT/sql" 2>&1); rc=$?
expect_eq "migrations run again harmlessly" "0" "$rc"
check "... applying nothing the second time" grep -q "(0 applied now)" <<<"$out"
tmp=$(mktemp -d); cp "$ROOT"/sql/*.sql "$tmp/"
cat > "$tmp/999_broken.sql" <<'SQL'
CREATE TABLE berth_test_half_done (x int);
SELECT no_such_function();
SQL
chmod -R a+rX "$tmp"
out=$("${SVC[@]}" "$BUILD/berth-api" --migrate "$tmp" 2>&1); rc=$?
expect_eq "a failing migration stops start-up" 1 "$rc"
check "... naming the file and saying it was rolled back" grep -q "migration 999_broken.sql was rolled back" <<<"$out"
expect_eq "... and nothing of it stays applied" "0 0" \
    "$(psql_q "SELECT count(*) FROM pg_tables WHERE tablename = 'berth_test_half_done'") $(psql_q "SELECT count(*) FROM schema_migrations WHERE version = '999_broken.sql'")"
rm -rf "$tmp"

# --- admin bootstrap
check "the initial admin password file is mode 0600" \
    test "$(stat -c %a "$BERTH_VAR/initial-admin-password")" = 600
out=$("${SVC[@]}" "$BUILD/berth-api" --bootstrap-admin "$RUN/again.pw" 2>&1)
expect_eq "bootstrap does nothing once an admin exists" "" "$out"
check "the stored admin password is a yescrypt hash, not the password" \
    test "$(psql_q "SELECT password_hash LIKE '\$y\$%' FROM users WHERE username = 'admin'")" = t

# --- SIGTERM within 2 s
term_time_ms() { # term_time_ms PID -> ms until gone
    local pid=$1 t0; t0=$(date +%s%N)
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; echo 99999; return; }
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
rm -f "$RUN/sigtest.sock"
"${SVC[@]}" env BERTH_API_SOCKET="$RUN/sigtest.sock" "$BUILD/berth-api" 2>>"$BERTH_VAR/log/sigtest.log" &
api_pid=$!
for _ in $(seq 1 100); do [[ -S $RUN/sigtest.sock ]] && break; sleep 0.05; done
# a request in flight on one thread while the others sit in accept()
ms=$(term_time_ms $api_pid)
wait $api_pid 2>/dev/null; rc=$?
if (( ms < 2000 )) && [[ $rc -eq 0 ]]; then ok "berth-api exits cleanly on SIGTERM within 2 s (${ms} ms)"
else fail "berth-api exits cleanly on SIGTERM within 2 s" "took ${ms} ms, status $rc"; fi
# its own node and box dir: a worker prunes the routes its node does not know
sigbox=$(mktemp -d)
BERTH_NODE=sigtest BERTH_BOX_DIR="$sigbox" "$BUILD/berth-worker" 2>>"$BERTH_VAR/log/sigtest.log" &
w_pid=$!
sleep 1
ms=$(term_time_ms $w_pid)
wait $w_pid 2>/dev/null; rc=$?
if (( ms < 2000 )) && [[ $rc -eq 0 ]]; then ok "berth-worker exits cleanly on SIGTERM within 2 s (${ms} ms)"
else fail "berth-worker exits cleanly on SIGTERM within 2 s" "took ${ms} ms, status $rc" "$(tail -5 "$BERTH_VAR/log/sigtest.log")"; fi
expect_eq "... taking its heartbeat with it (health and --sync-routes see the node has no worker)" 0 \
    "$(redis_q EXISTS berth:heartbeat:sigtest)"
rm -rf "$sigbox"

# --- SIGHUP reloads
kill -HUP "$(svc_pid api)" "$(svc_pid worker)"
sleep 0.5
check "SIGHUP makes berth-api reload its settings" grep -q "settings reloaded" "$BERTH_VAR/log/api.log"
check "SIGHUP makes berth-worker reload its settings" grep -q "settings reloaded" "$BERTH_VAR/log/worker.log"

# --- dependencies going away: 503 naming the check, never a crash; start brings them back
kill -TERM "$(svc_pid redis)"; sleep 0.5
http GET /api/v1/health
expect_eq "Redis down: health is 503 naming redis" "503 unavailable redis" \
    "$STATUS $(jq -r '.error.code + " " + .error.check' <<<"$BODY")"
"${SVC[@]}" "$PG_BIN/pg_ctl" -D "$BERTH_VAR/pg/data" -m fast -w stop >/dev/null 2>&1
http GET /api/v1/health
expect_eq "PostgreSQL down too: health is 503 naming postgres" "503 postgres" \
    "$STATUS $(jq -r .error.check <<<"$BODY")"
check "berth-api survived its dependencies going away" kill -0 "$(svc_pid api)"
"$ROOT/scripts/stack.sh" start >/dev/null 2>&1
check "stack.sh start restarts only what is down, and health recovers" wait_health 200 100
kill -TERM "$(svc_pid worker)"; sleep 0.3
redis_q DEL "berth:heartbeat:local" >/dev/null
http GET /api/v1/health
expect_eq "worker down: health is 503 naming docker (no heartbeat)" "503 docker" \
    "$STATUS $(jq -r .error.check <<<"$BODY")"
[[ $STATUS == 503 ]] || echo "  health said: $BODY" >&2
check "... with a sentence saying the worker is not running" grep -q "is berth-worker running" <<<"$BODY"
"$ROOT/scripts/stack.sh" start >/dev/null 2>&1
check "the worker restarted by stack.sh start brings health back" wait_health 200 100

# --- a second stack beside this one (as `make test` beside `make run`)
second=$(mktemp -d /tmp/berth-second.XXXXXX); chmod 0755 "$second"
port=$((BERTH_HTTP_PORT + 50))
env2=(BERTH_VAR="$second" BERTH_HTTP_PORT=$port BERTH_PG_PORT=$((port + 1))
      BERTH_CLUSTER="${BERTH_CLUSTER}b")
if env "${env2[@]}" "$ROOT/scripts/stack.sh" start > "$second.log" 2>&1; then
    ok "a second stack with its own BERTH_VAR and ports starts beside the first"
else
    fail "a second stack with its own BERTH_VAR and ports starts beside the first" "$(tail -5 "$second.log")"
fi
s2=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/health")
http GET /api/v1/health
expect_eq "both stacks are healthy at once" "200 200" "$s2 $STATUS"
env "${env2[@]}" "$ROOT/scripts/stack.sh" stop > /dev/null 2>&1
http GET /api/v1/health
expect_eq "stopping the second stack leaves the first serving" 200 "$STATUS"
rm -rf "$second" "$second.log"
