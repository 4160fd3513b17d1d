#!/usr/bin/env bash
# Deployment files: the systemd units and docker-compose.yml.
#
# Run from the repository root.  Prints one line per check, "ok - what" or
# "not ok - what" (details on stderr), "ok - what # SKIP why" when a tool is
# missing.  Exits 0 whatever the checks say; non-zero only if the script breaks.
set -u

UNITS_DIR=systemd
COMPOSE=docker-compose.yml
SERVICES="berth-api.service berth-worker.service"

. "$ROOT/tests/lib.sh" # ok, fail, skip

# check_why WHAT DETAIL-ON-FAILURE... -- COMMAND...: ok when COMMAND succeeds,
# else not ok with the details (lib.sh's check shows the command's output).
check_why() {
	local what=$1
	shift
	local details=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		details+=("$1")
		shift
	done
	shift
	if "$@"; then ok "$what"; else fail "$what" "${details[@]}"; fi
}

if [ ! -f "$COMPOSE" ] || [ ! -d "$UNITS_DIR" ]; then
	echo "10-deploy-files.sh: run me from the repository root" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-deploy.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# Directive values of a unit file, comments stripped: unit_get FILE KEY
# prints every value assigned to KEY, one per line.
unit_get() {
	sed -n -e 's/[[:space:]]*$//' -e "s/^$2=//p" "$1"
}
unit_has() { # unit_has FILE KEY VALUE: KEY=VALUE is set (last assignment wins)
	[ "$(unit_get "$1" "$2" | tail -n 1)" = "$3" ]
}

# --- systemd units: files present ------------------------------------------
for u in $SERVICES berth.target; do
	check_why "$UNITS_DIR/$u exists" "missing file" -- test -f "$UNITS_DIR/$u"
done

# --- systemd-analyze verify ----------------------------------------------------
# The units name /usr/local/bin/berth-*, which need not exist here.  Copy them
# into a temporary directory and point ExecStart*/ExecStartPre at the repo's
# built binaries, or at stub executables when build/ is not there yet: verify
# then checks the units themselves (syntax, directives, executable paths).
if ! command -v systemd-analyze >/dev/null 2>&1; then
	for u in $SERVICES berth.target; do
		skip "systemd-analyze verify $u" "systemd-analyze not installed"
	done
else
	mkdir -p "$tmp/units" "$tmp/bin"
	for b in berth-api berth-worker; do
		if [ -x "build/$b" ]; then
			ln -s "$PWD/build/$b" "$tmp/bin/$b"
		else
			printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$b"
			chmod +x "$tmp/bin/$b"
		fi
	done
	for u in $SERVICES berth.target; do
		[ -f "$UNITS_DIR/$u" ] || continue
		sed "s|/usr/local/bin/|$tmp/bin/|g" "$UNITS_DIR/$u" >"$tmp/units/$u"
	done
	for u in $SERVICES berth.target; do
		if [ ! -f "$tmp/units/$u" ]; then
			fail "systemd-analyze verify $u" "unit file missing"
			continue
		fi
		out=$(cd "$tmp/units" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$tmp/units/$u" 2>&1)
		rc=$?
		# Only complaints about this unit count (verify also loads the
		# units it refers to and reports on those under their own names;
		# each of ours gets its own line).  Units that are not installed
		# here (redis-server.service, docker.service) are fine: Wants= and
		# After= on them are ignored by systemd too.
		ours=$(printf '%s\n' "$out" | grep -E "(^|/)${u//./\\.}:" || true)
		if [ $rc -eq 0 ] && [ -z "$ours" ]; then
			ok "systemd-analyze verify $u"
		else
			mapfile -t lines <<<"$out"
			fail "systemd-analyze verify $u" "exit status $rc" "${lines[@]}"
		fi
	done
fi

# --- sandboxing directives -------------------------------------------------
for u in $SERVICES; do
	f=$UNITS_DIR/$u
	[ -f "$f" ] || continue
	check_why "$u: NoNewPrivileges=yes" "not set" -- unit_has "$f" NoNewPrivileges yes
	check_why "$u: ProtectSystem=strict" "not set" -- unit_has "$f" ProtectSystem strict
	check_why "$u: ReadWritePaths= lists what it writes" "no ReadWritePaths= line" -- \
		test -n "$(unit_get "$f" ReadWritePaths)"
	missing=()
	for kv in PrivateTmp=yes ProtectHome=yes ProtectKernelTunables=yes \
		ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes \
		PrivateDevices=yes RestrictNamespaces=yes LockPersonality=yes \
		RestrictSUIDSGID=yes SystemCallArchitectures=native \
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
		Restart=on-failure RuntimeDirectory=berth; do
		# RuntimeDirectory=berth belongs to the api only (it owns the socket).
		[ "$kv" = RuntimeDirectory=berth ] && [ "$u" != berth-api.service ] && continue
		unit_has "$f" "${kv%%=*}" "${kv#*=}" || missing+=("$kv")
	done
	unit_get "$f" SystemCallFilter | grep -qx '@system-service' || missing+=("SystemCallFilter=@system-service")
	unit_has "$f" ExecReload '/bin/kill -HUP $MAINPID' || missing+=('ExecReload=/bin/kill -HUP $MAINPID')
	test -n "$(unit_get "$f" TimeoutStopSec)" || missing+=("TimeoutStopSec=")
	check_why "$u: the other hardening and lifecycle directives" "missing: ${missing[*]-}" -- \
		test ${#missing[@]} -eq 0
done

# --- the api has no way to the Docker socket --------------------------------
f=$UNITS_DIR/berth-api.service
if [ -f "$f" ]; then
	user=$(unit_get "$f" User | tail -n 1)
	group=$(unit_get "$f" Group | tail -n 1)
	check_why "berth-api.service runs as an unprivileged User=/Group=" \
		"User='$user' Group='$group'" -- \
		bash -c '[ -n "$1" ] && [ "$1" != root ] && [ "$1" != 0 ] &&
		         [ -n "$2" ] && [ "$2" != root ] && [ "$2" != 0 ] && [ "$2" != docker ]' _ "$user" "$group"
	check_why "berth-api.service is not in group docker and has no capabilities" \
		"SupplementaryGroups=$(unit_get "$f" SupplementaryGroups | tr '\n' ' ')" \
		"CapabilityBoundingSet=$(unit_get "$f" CapabilityBoundingSet | tail -n 1)" -- \
		bash -c '! grep -Eq "^(SupplementaryGroups|Group)=.*\bdocker\b" "$1" &&
		         [ -z "$(sed -n "s/^CapabilityBoundingSet=//p" "$1" | tail -n 1)" ]' _ "$f"
	check_why "berth-api.service: docker.sock is inaccessible, never writable" \
		"InaccessiblePaths=$(unit_get "$f" InaccessiblePaths | tr '\n' ' ')" \
		"ReadWritePaths=$(unit_get "$f" ReadWritePaths | tr '\n' ' ')" -- \
		bash -c 'unit=$1
		         sed -n "s/^InaccessiblePaths=//p" "$unit" | tr " " "\n" | grep -Eqx -- "-?/(var/)?run/docker\.sock" &&
		         ! sed -n -e "s/^ReadWritePaths=//p" -e "s/^BindPaths=//p" -e "s/^BindReadOnlyPaths=//p" "$unit" | grep -q docker' _ "$f"
	check_why "berth-api.service applies migrations before it starts" "no ExecStartPre= with --migrate" -- \
		bash -c 'sed -n "s/^ExecStartPre=//p" "$1" | grep -q -- "berth-api --migrate "' _ "$f"
fi

# A sandbox score from systemd itself (offline mode: systemd >= 250).
if command -v systemd-analyze >/dev/null 2>&1 && [ -f "$tmp/units/berth-api.service" ] &&
	systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
	for u in $SERVICES; do
		out=$(cd "$tmp/units" && systemd-analyze security --offline=true --no-pager "$tmp/units/$u" 2>&1)
		score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -n 1)
		# 0 is a perfect sandbox, 10 none; below 3 is what systemd calls OK.
		# The worker gets a little more room (root, for nginx -t).
		limit=2.0
		[ "$u" = berth-worker.service ] && limit=3.0
		check_why "$u: systemd-analyze security exposure ${score:-?} <= $limit" \
			"${out:-no output}" -- \
			awk -v s="${score:-99}" -v l="$limit" 'BEGIN { exit !(s + 0 <= l + 0) }'
	done
else
	skip "systemd-analyze security exposure" "systemd-analyze without --offline"
fi

# --- docker-compose.yml -----------------------------------------------------
compose_cmd=
if command -v docker-compose >/dev/null 2>&1; then
	compose_cmd=docker-compose
elif docker compose version >/dev/null 2>&1; then
	compose_cmd="docker compose"
fi
if [ -z "$compose_cmd" ]; then
	skip "docker-compose config -q" "docker-compose not installed"
	skip "docker-compose.yml structure" "docker-compose not installed"
	exit 0
fi

if err=$($compose_cmd -f "$COMPOSE" config -q 2>&1); then
	ok "$compose_cmd -f $COMPOSE config -q"
else
	mapfile -t lines <<<"$err"
	fail "$compose_cmd -f $COMPOSE config -q" "${lines[@]}"
	exit 0
fi
$compose_cmd -f "$COMPOSE" config >"$tmp/compose.yml" 2>"$tmp/compose.err"

# Structure checks need a YAML parser: Debian's python3-yaml (docker-compose
# itself depends on it, so it is there whenever docker-compose is).
py=
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -z "$py" ]; then
	skip "docker-compose.yml structure" "no python3 with yaml"
	exit 0
fi

# The python part prints the same "ok"/"not ok" lines.
"$py" - "$tmp/compose.yml" <<'PY' || fail "compose structure checks ran" "python exited with $?"
import sys, yaml

with open(sys.argv[1]) as fh:
    cfg = yaml.safe_load(fh)
services = cfg.get("services", {})

def report(ok, what, *details):
    print(("ok - " if ok else "not ok - ") + what, flush=True)
    if not ok:
        for d in details:
            print("  " + str(d), file=sys.stderr, flush=True)

def mounts(svc):
    """(source, target, type) of every mount, short or long syntax."""
    out = []
    for v in svc.get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:
                out.append(("", parts[0], "volume"))
            else:
                src = parts[0]
                kind = "bind" if src.startswith(("/", ".", "~")) else "volume"
                out.append((src, parts[1], kind))
        else:
            out.append((v.get("source", ""), v.get("target", ""), v.get("type", "volume")))
    return out

want = ["postgres", "redis", "nginx", "api", "worker"]
missing = [s for s in want if s not in services]
report(not missing, "compose has services " + " ".join(want), "missing: %s" % missing)

# The Docker socket: mounted into the worker, mentioned nowhere else.
worker_sock = [m for m in mounts(services.get("worker", {})) if "docker.sock" in m[0]]
report(bool(worker_sock), "compose: worker mounts the Docker socket",
       "worker volumes: %s" % services.get("worker", {}).get("volumes"))
leaks = []
for name, svc in services.items():
    if name == "worker":
        continue
    if "docker.sock" in yaml.safe_dump(svc):
        leaks.append("%s mentions docker.sock" % name)
    for src, dst, kind in mounts(svc):
        if kind == "bind" and src.rstrip("/") in ("/", "/run", "/var/run", "/var/lib/docker"):
            leaks.append("%s binds %s (would expose the Docker socket)" % (name, src))
    if svc.get("privileged"):
        leaks.append("%s is privileged" % name)
    if str(svc.get("pid", "")).endswith("worker") or str(svc.get("network_mode", "")).endswith("worker"):
        leaks.append("%s shares the worker's namespaces" % name)
report(not leaks, "compose: the Docker socket reaches the worker only", *leaks)

def volume_names(name):
    return {src for src, dst, kind in mounts(services.get(name, {})) if kind == "volume" and src}

shared = volume_names("api") & volume_names("nginx")
report(bool(shared), "compose: api and nginx share a volume (FastCGI socket)",
       "api: %s nginx: %s" % (volume_names("api"), volume_names("nginx")))
shared = volume_names("worker") & volume_names("nginx")
report(bool(shared), "compose: worker and nginx share a volume (box dir)",
       "worker: %s nginx: %s" % (volume_names("worker"), volume_names("nginx")))

nohc = [n for n in want if n in services and not services[n].get("healthcheck")]
report(not nohc, "compose: every service has a healthcheck", "without: %s" % nohc)

cmd = services.get("redis", {}).get("command", "")
cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
report("--appendonly yes" in cmd, "compose: redis runs with AOF on", "command: %s" % cmd)

bad = []
for n in ("api", "worker"):
    env = services.get(n, {}).get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env if "=" in e)
    for k in ("BERTH_PG_DSN", "BERTH_REDIS_URL"):
        if k not in env:
            bad.append("%s lacks %s" % (n, k))
report(not bad, "compose: api and worker are configured through BERTH_* variables", *bad)

def build_mount_ro(name):
    for v in services.get(name, {}).get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 3 and parts[0].rstrip("/").endswith("/build") and "ro" in parts[2].split(","):
                return True
        elif str(v.get("source", "")).rstrip("/").endswith("/build") and v.get("read_only"):
            return True
    return False

bad = [n for n in ("api", "worker") if not build_mount_ro(n)]
report(not bad, "compose: api and worker run the binaries from ./build, read-only",
       "no read-only ./build mount in: %s" % bad)
PY

# The nginx config compose renders (its RENDER_NGINX_CONF script, as resolved
# by compose) loads in nginx, in both workspace origin modes.
if command -v nginx >/dev/null 2>&1; then
	for mode in '{user}.ws.example.org' same; do
		r=$tmp/render-${mode//[^a-z]/}
		mkdir -p "$r/box-enabled"
		script=$(BERTH_WORKSPACE_HOST=$mode BERTH_PUBLIC_URL=https://berth.example.org $compose_cmd -f "$COMPOSE" config 2>/dev/null |
			"$py" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["services"]["nginx"]["environment"]["RENDER_NGINX_CONF"])')
		env_line=$(BERTH_WORKSPACE_HOST=$mode BERTH_PUBLIC_URL=https://berth.example.org $compose_cmd -f "$COMPOSE" config 2>/dev/null |
			"$py" -c 'import sys, yaml; e = yaml.safe_load(sys.stdin)["services"]["nginx"]["environment"]; print(e["PUBLIC_URL"], e["WORKSPACE_HOST"])')
		script=${script//\$\$/\$} # compose config prints $$ as written
		script=${script//\/usr\/share\/berth\/nginx/$ROOT/nginx}
		script=${script//\/usr\/share\/berth\/static/$ROOT/static}
		script=${script//\/var\/lib\/berth-nginx/$r/state}
		script=${script//\/var\/lib\/berth\/nginx\/box-enabled/$r/box-enabled}
		script=${script//\/etc\/berth/$r}
		read -r pu wh <<<"$env_line"
		if (HTTP_PORT=8080 PUBLIC_URL=$pu WORKSPACE_HOST=$wh sh -ec "$script") 2>"$tmp/render.err" &&
			sed -i "s|^user .*||" "$r/nginx.conf" &&
			err=$(nginx -e "$r/err.log" -p "$r/state" -c "$r/nginx.conf" -t 2>&1); then
			ok "compose: the nginx config it renders loads (workspace_host $mode)"
		else
			fail "compose: the nginx config it renders loads (workspace_host $mode)" "$(cat "$tmp/render.err")" "${err:-}"
		fi
	done
fi

exit 0
