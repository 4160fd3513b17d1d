#!/usr/bin/env bash
# stack.sh — berth's local stack: PostgreSQL, Redis, dockerd (when none
# answers), nginx, berth-api and berth-worker, all on loopback, all state under
# $BERTH_VAR (default ./var).
#
#   scripts/stack.sh run      start everything, stay in the foreground; Ctrl-C stops it
#   scripts/stack.sh start    start what is not running, in the background
#   scripts/stack.sh stop     stop everything this stack started
#   scripts/stack.sh status   one line per service
#
# Settings (environment): BERTH_VAR, BERTH_HTTP_PORT (8080), BERTH_PG_PORT
# (55432: names PostgreSQL's socket; nothing listens on TCP but nginx on
# BERTH_HTTP_PORT), BERTH_CLUSTER (berth: label value on Docker
# objects; give a second stack on the same Docker its own), BERTH_IMAGES (web:
# built before berth starts), BERTH_BACKGROUND_IMAGES (jupyter desktop ssh:
# built after it is up, by scripts/image-builds.sh, progress on the
# templates; "" for none), BERTH_LOG_LEVEL (info), BERTH_API_THREADS (8).
# Two stacks with different BERTH_VAR and HTTP ports run side by side.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR=${BERTH_VAR:-$ROOT/var}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
HTTP_PORT=${BERTH_HTTP_PORT:-8080}
# Workspaces: names under localhost need no DNS (browsers and curl resolve
# *.localhost to loopback); "same" serves them on the UI origin (README, Security).
WORKSPACE_HOST=${BERTH_WORKSPACE_HOST:-{user\}.localhost}
PG_PORT=${BERTH_PG_PORT:-55432}
CLUSTER=${BERTH_CLUSTER:-berth}
BUILD=${BERTH_BUILD:-$ROOT/build}
RUN=$VAR/run
LOG=$VAR/log
DOCKER_SOCK=${BERTH_DOCKER_SOCKET:-/var/run/docker.sock}

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n "$PG_BIN" ]] || PG_BIN=$(dirname "$(command -v initdb || echo /usr/bin/initdb)")

say() { printf 'berth: %s\n' "$*"; }
die() { printf 'berth: %s\n' "$*" >&2; exit 1; }

# Services run as an unprivileged user. As root that is the system user
# `berth` (created here); otherwise the caller. Only berth-worker and dockerd
# keep root: the worker is the one process that holds the Docker socket.
if [[ $(id -u) -eq 0 ]]; then
    SVC_USER=berth
    if ! id "$SVC_USER" >/dev/null 2>&1; then
        useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
    fi
    # setpriv execs in place (no helper process in between), so pidfiles name the daemon.
    SVC=(setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups --)
else
    SVC_USER=$(id -un)
    SVC=()
fi
as_svc() { "${SVC[@]}" "$@"; }

pidfile() { echo "$RUN/$1.pid"; }
# A pidfile holds "PID COMM"; the process must still be that program (PIDs
# wrap around quickly on a busy machine, and a reused PID is not our daemon).
alive() {
    local f pid comm
    f=$(pidfile "$1")
    [[ -f "$f" ]] || return 1
    read -r pid comm < "$f" || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # an exited daemon waiting to be reaped by init is not running
    local stat; stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }; [[ ${stat:0:1} != Z ]] || return 1
    [[ -z "$comm" || "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]]
}
pid_of() { local pid; read -r pid _ < "$(pidfile "$1")"; echo "$pid"; }

# Launch a daemon in its own session (Ctrl-C reaches only this script, which
# then stops things in order) with its log under var/log/.
launch() {
    local name=$1; shift
    local prog a
    # the program is the first word that is not setpriv or one of its options
    prog=""
    for a in "$@"; do
        case "$a" in setpriv|--*|-*) ;; *) prog=$(basename "$a"); break ;; esac
    done
    setsid "$@" >>"$LOG/$name.log" 2>&1 < /dev/null &
    echo "$! ${prog:0:15}" > "$(pidfile "$name")"
}

wait_for() { # wait_for SECONDS WHAT CMD...
    local t=$1 what=$2; shift 2
    local end=$((SECONDS + t))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}

# Who may touch what (README, Security: the local stack):
#  - $RUN (sockets of PostgreSQL, Redis and berth-api; pidfiles) is the
#    service user's, mode 0700: no other local user reaches a socket in it.
#  - $VAR, $VAR/nginx and box-*/ are root's and 0755: the worker (root)
#    writes nginx configuration there, and the service user cannot rename a
#    directory away or plant a link (berth-worker refuses to start otherwise).
#  - $LOG is root's: root opens the daemons' logs (following links), so the
#    service user gets only the files it writes itself, made here.
layout() {
    mkdir -p "$RUN" "$LOG" "$VAR/pg" "$VAR/redis" "$VAR/nginx/tmp" \
             "$VAR/nginx/box-available" "$VAR/nginx/box-enabled"
    chown "$SVC_USER" "$RUN" "$VAR/pg" "$VAR/redis" "$VAR/nginx/tmp" 2>/dev/null || true
    chown "$(id -u)" "$VAR" "$VAR/nginx" "$VAR/nginx/box-available" "$VAR/nginx/box-enabled" "$LOG"
    chmod 0700 "$RUN"
    chmod 0755 "$VAR" "$VAR/nginx" "$VAR/nginx/box-available" "$VAR/nginx/box-enabled" "$LOG"
    local f
    for f in nginx-error.log nginx-access.log postgres.log; do
        [[ -L $LOG/$f ]] && rm -f "$LOG/$f"
        touch "$LOG/$f"
        chown "$SVC_USER" "$LOG/$f" 2>/dev/null || true
    done
}

# nginx_test runs as nginx's own user: `nginx -t` as root would create the
# temp directories for user nobody, and nginx (as the service user) could no
# longer buffer request bodies.
write_config() {
    cat > "$VAR/berth.conf.tmp" <<EOF
# Generated by scripts/stack.sh for the stack in $VAR. Keys: README.md.
log_level = ${BERTH_LOG_LEVEL:-info}
node = local
cluster = $CLUSTER
pg_dsn = host=$RUN port=$PG_PORT dbname=berth user=berth
redis_url = unix:$RUN/redis.sock
api_socket = $RUN/api.sock
api_threads = ${BERTH_API_THREADS:-8}
docker_socket = $DOCKER_SOCK
box_dir = $VAR/nginx
nginx_reload = signal:$RUN/nginx-master.pid
nginx_test = ${SVC[*]} $(command -v nginx) -e $LOG/nginx-error.log -p $VAR/nginx -c $VAR/nginx/nginx.conf -t -q
host_address = 127.0.0.1
public_host = 127.0.0.1
public_url = http://127.0.0.1:$HTTP_PORT
workspace_host = $WORKSPACE_HOST
url = http://127.0.0.1:$HTTP_PORT
EOF
    mv "$VAR/berth.conf.tmp" "$VAR/berth.conf"
    chmod 0644 "$VAR/berth.conf"
}
export BERTH_CONFIG="$VAR/berth.conf"

# Who may log in, and as whom: the role berth, over the socket, for the
# service user (berth-api, nginx's neighbours) and for root (berth-worker and
# this script). Written at every start, so a cluster made before (with trust)
# is tightened too.
pg_auth() {
    local d=$VAR/pg/data
    printf '%s\n' "# written by scripts/stack.sh at each start" \
        "local all berth peer map=berth" > "$d/pg_hba.conf.new"
    printf '%s\n' "# written by scripts/stack.sh at each start: OS user -> role" \
        "berth $SVC_USER berth" "berth $(id -un) berth" > "$d/pg_ident.conf.new"
    chown "$SVC_USER" "$d/pg_hba.conf.new" "$d/pg_ident.conf.new" 2>/dev/null || true
    chmod 0600 "$d/pg_hba.conf.new" "$d/pg_ident.conf.new"
    mv -f "$d/pg_hba.conf.new" "$d/pg_hba.conf"
    mv -f "$d/pg_ident.conf.new" "$d/pg_ident.conf"
}

start_postgres() {
    if as_svc "$PG_BIN/pg_ctl" -D "$VAR/pg/data" status >/dev/null 2>&1; then
        pg_auth
        as_svc "$PG_BIN/pg_ctl" -D "$VAR/pg/data" reload >/dev/null
        return
    fi
    if [[ ! -f "$VAR/pg/data/PG_VERSION" ]]; then
        say "initialising PostgreSQL cluster in $VAR/pg/data"
        as_svc "$PG_BIN/initdb" -D "$VAR/pg/data" -U berth --auth-local=peer --auth-host=reject \
            -E UTF8 --locale=C.UTF-8 >"$LOG/initdb.log" 2>&1 || die "initdb failed: see $LOG/initdb.log"
    fi
    pg_auth
    # The unix socket in $RUN only (no TCP), and peer authentication: the
    # database role berth is for the OS users of the stack, no one else.
    as_svc "$PG_BIN/pg_ctl" -D "$VAR/pg/data" -l "$LOG/postgres.log" -w -t 30 \
        -o "-c listen_addresses='' -p $PG_PORT -k $RUN -c unix_socket_permissions=0700 -c fsync=on" \
        start >/dev/null || die "PostgreSQL did not start: see $LOG/postgres.log"
    if ! "$PG_BIN/psql" -h "$RUN" -p "$PG_PORT" -U berth -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname='berth'" | grep -q 1; then
        "$PG_BIN/createdb" -h "$RUN" -p "$PG_PORT" -U berth berth
    fi
}

start_redis() {
    alive redis && return
    # The unix socket only (port 0: no TCP), inside the 0700 $RUN.
    launch redis "${SVC[@]}" redis-server --port 0 \
        --unixsocket "$RUN/redis.sock" --unixsocketperm 700 --dir "$VAR/redis" \
        --appendonly yes --save "" --daemonize no --protected-mode yes
    wait_for 10 redis redis-cli -s "$RUN/redis.sock" ping || die "Redis did not start: see $LOG/redis.log"
}

docker_answers() { curl -sf --max-time 3 --unix-socket "$DOCKER_SOCK" http://docker/_ping >/dev/null 2>&1; }

start_docker() {
    docker_answers && return
    alive dockerd && { wait_for 30 docker docker_answers && return; }
    # Two stacks starting at once (make run beside make test) must not both
    # start a dockerd on the same socket: the second waits for the first.
    exec 8>>"${TMPDIR:-/tmp}/berth-dockerd.$(printf '%s' "$DOCKER_SOCK" | sha256sum | cut -c1-12).lock"
    flock 8
    if docker_answers || wait_for 3 docker docker_answers; then
        exec 8>&-
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "no Docker engine answers at $DOCKER_SOCK and starting dockerd needs root"
    command -v dockerd >/dev/null || die "no Docker engine answers at $DOCKER_SOCK and dockerd is not installed (apt-get install docker.io)"
    say "starting dockerd (no Docker engine answered at $DOCKER_SOCK)"
    # Every user gets a bridge network of their own; Docker's default pools hold
    # about 30 networks, so the stack's dockerd carves /24s out of one /16
    # (256 networks) instead.
    launch dockerd dockerd --host "unix://$DOCKER_SOCK" --pidfile "$RUN/dockerd.docker.pid" \
        --data-root "${BERTH_DOCKER_ROOT:-/var/lib/docker}" \
        --default-address-pool "base=${BERTH_DOCKER_POOL:-10.213.0.0/16},size=24"
    wait_for 60 docker docker_answers || die "dockerd did not start: see $LOG/dockerd.log"
    exec 8>&-
}

# dockerd started by this stack is stopped with it, unless containers of
# other stacks run on it: then it is left running (and no longer ours).
stop_docker() {
    local others
    [[ -f $(pidfile dockerd) ]] || return 0
    if alive dockerd && docker_answers; then
        # grep exits 1 when it finds (or counts) nothing: under pipefail and
        # set -e that would abort the stop with dockerd still running
        # curl failing (timeout) would abort the same way; then we cannot tell
        # whether other stacks use dockerd, so leave it running
        if ! others=$(curl -sf --max-time 5 --unix-socket "$DOCKER_SOCK" \
            'http://docker/containers/json?filters=%7B%22label%22%3A%5B%22berth.cluster%22%5D%7D' |
            { grep -o '"berth.cluster":"[^"]*"' || true; } |
            { grep -vcF "\"berth.cluster\":\"$CLUSTER\"" || true; }); then
            say "leaving dockerd running: could not list its containers"
            rm -f "$(pidfile dockerd)"
            return 0
        fi
        if [[ ${others:-0} -gt 0 ]]; then
            say "leaving dockerd running: $others container(s) of other berth stacks use it"
            rm -f "$(pidfile dockerd)"
            return 0
        fi
    fi
    stop_pid dockerd 30
}

start_nginx() {
    local nginx; nginx=$(command -v nginx || echo /usr/sbin/nginx)
    # workspaces on an origin of their own (#@split@ lines), or on the UI's (#@same@)
    local mode=split drop=same
    [[ $WORKSPACE_HOST == same ]] && { mode=same; drop=split; }
    sed -e "/#@$drop@/d" -e "s|#@$mode@ ||" \
        -e "s|@VAR@|$VAR|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@STATIC@|$ROOT/static|g" \
        -e "s|@API_SOCKET@|$RUN/api.sock|g" -e "s|@BOX_ENABLED@|$VAR/nginx/box-enabled|g" \
        -e "s|@UI_HOSTS@|127.0.0.1 localhost|g" \
        -e "s|@NGINX_DIR@|$ROOT/nginx|g" "$ROOT/nginx/berth.conf.in" > "$VAR/nginx/nginx.conf"
    if alive nginx; then return; fi
    as_svc "$nginx" -e "$LOG/nginx-error.log" -p "$VAR/nginx" -c "$VAR/nginx/nginx.conf" -t -q 2>>"$LOG/nginx-error.log" \
        || die "the generated nginx config does not load: see $LOG/nginx-error.log"
    launch nginx "${SVC[@]}" "$nginx" -e "$LOG/nginx-error.log" -p "$VAR/nginx" -c "$VAR/nginx/nginx.conf" -g "daemon off;"
    wait_for 10 nginx curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/" \
        || die "nginx did not start on 127.0.0.1:$HTTP_PORT: see $LOG/nginx-error.log"
}

migrate() {
    as_svc "$BUILD/berth-api" --migrate "$ROOT/sql" >>"$LOG/api.log" 2>&1 \
        || { tail -3 "$LOG/api.log" >&2; die "migrations failed: see $LOG/api.log"; }
}

build_images() {
    DOCKER_HOST="unix://$DOCKER_SOCK" "$ROOT/scripts/images.sh" ${BERTH_IMAGES:-web} \
        >>"$LOG/images.log" 2>&1 || die "building the demo images failed: see $LOG/images.log"
    as_svc "$BUILD/berth-api" --seed-templates "$ROOT/sql/seed-templates.json" >>"$LOG/api.log" 2>&1 \
        || die "seeding templates failed: see $LOG/api.log"
}

# The seeded workspaces' images (minutes on a first run, cached after) are
# built after the stack is up: berth serves at once, the templates show each
# build's progress, and a launch waits for its image.
start_image_builds() {
    local names=${BERTH_BACKGROUND_IMAGES-jupyter desktop ssh}
    [[ -n $names ]] || return 0
    alive images && return
    # shellcheck disable=SC2086 # a list of names
    DOCKER_HOST="unix://$DOCKER_SOCK" BERTH_BUILD=$BUILD BERTH_IMAGE_LOGS=$LOG/images \
        launch images "$ROOT/scripts/image-builds.sh" $names
    say "building workspace images in the background ($names): progress on the templates,"
    say "  and in $LOG/images.log"
}

start_api() {
    alive api && return
    launch api "${SVC[@]}" "$BUILD/berth-api"
    wait_for 10 api test -S "$RUN/api.sock" || die "berth-api did not start: see $LOG/api.log"
}

start_worker() {
    alive worker && return
    launch worker "$BUILD/berth-worker"
    sleep 0.3
    alive worker || die "berth-worker did not start: see $LOG/worker.log"
}

bootstrap_admin() {
    local pw
    pw=$(as_svc "$BUILD/berth-api" --bootstrap-admin "$RUN/initial-admin-password.tmp" 2>>"$LOG/api.log") \
        || die "creating the first admin failed: see $LOG/api.log"
    if [[ -n "$pw" ]]; then
        install -m 0600 "$RUN/initial-admin-password.tmp" "$VAR/initial-admin-password"
        rm -f "$RUN/initial-admin-password.tmp"
        say "first admin created: user 'admin', password: $pw"
        say "(shown once; also saved in $VAR/initial-admin-password, mode 0600)"
    fi
}

health_ok() { curl -sf --max-time 3 "http://127.0.0.1:$HTTP_PORT/api/v1/health" >/dev/null; }

do_start() {
    [[ -x "$BUILD/berth-api" && -x "$BUILD/berth-worker" ]] || die "build first: make"
    layout
    write_config
    start_postgres
    start_redis
    start_docker
    migrate
    start_nginx
    build_images
    start_api
    start_worker
    bootstrap_admin
    start_image_builds
    if ! wait_for 20 health health_ok; then
        curl -s "http://127.0.0.1:$HTTP_PORT/api/v1/health" >&2 || true; echo >&2
        die "berth did not become healthy: see $LOG/"
    fi
    say "berth is up at http://127.0.0.1:$HTTP_PORT (logs and data in $VAR)"
}

stop_pid() { # stop_pid NAME SECONDS
    local name=$1 t=${2:-10} f pid
    f=$(pidfile "$name")
    [[ -f "$f" ]] || return 0
    pid=$(pid_of "$name")
    if alive "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        local end=$((SECONDS + t))
        while alive "$name" && ((SECONDS < end)); do sleep 0.05; done
        if alive "$name"; then
            say "$name did not stop in ${t}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$f"
}

do_stop() {
    stop_pid images 15
    stop_pid worker 5
    stop_pid api 5
    stop_pid nginx 10
    stop_pid redis 10
    if [[ -f "$VAR/pg/data/postmaster.pid" ]]; then
        as_svc "$PG_BIN/pg_ctl" -D "$VAR/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    stop_docker
    rm -f "$RUN/api.sock"
}

do_status() {
    local rc=0 s
    for s in postgres redis dockerd nginx api worker images; do
        if [[ $s == images ]]; then
            if alive images; then printf '%-9s building (pid %s; %s)\n' "$s" "$(pid_of images)" "$LOG/images.log"
            else printf '%-9s not building\n' "$s"; fi
        elif [[ $s == postgres ]]; then
            if as_svc "$PG_BIN/pg_ctl" -D "$VAR/pg/data" status >/dev/null 2>&1; then
                printf '%-9s running\n' "$s"; else printf '%-9s stopped\n' "$s"; rc=3; fi
        elif [[ $s == dockerd ]] && ! [[ -f $(pidfile dockerd) ]]; then
            if docker_answers; then printf '%-9s external engine at %s\n' docker "$DOCKER_SOCK";
            else printf '%-9s not answering at %s\n' docker "$DOCKER_SOCK"; rc=3; fi
        elif alive "$s"; then printf '%-9s running (pid %s)\n' "$s" "$(pid_of "$s")"
        else printf '%-9s stopped\n' "$s"; rc=3; fi
    done
    if health_ok; then echo "health    ok (http://127.0.0.1:$HTTP_PORT/api/v1/health)"
    else echo "health    not ok"; rc=3; fi
    return $rc
}

do_run() {
    trap 'echo; say "stopping"; do_stop; say "stopped"; exit 0' INT TERM
    do_start
    say "press Ctrl-C to stop"
    local warned=""
    while sleep 1; do
        for s in api worker nginx redis; do
            if ! alive "$s" && [[ $warned != *" $s "* ]]; then
                say "$s exited; see $LOG/$s.log ('make start' in another terminal starts it again)"
                warned="$warned $s "
            fi
        done
    done
}

case "${1:-}" in
    run) do_run ;;
    start) do_start ;;
    stop) do_stop; say "stopped" ;;
    status) do_status ;;
    sync-routes) exec "$BUILD/berth-api" --sync-routes ;;
    *) echo "usage: $0 run|start|stop|status|sync-routes" >&2; exit 2 ;;
esac
