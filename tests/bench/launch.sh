#!/usr/bin/env bash
# bench/launch — how long from POST /api/v1/instances to `running`, against raw
# Docker Engine API create+start of the same container measured in the same run
# (issue 4). Prints p50/p99 of both, berth's overhead, port collisions and the
# wall time of N concurrent launches. Goal: overhead p50 <= 50 ms, p99 <= 200 ms;
# 100 concurrent with 0 collisions and wall time <= 1.2x raw Docker.
#
#   tests/bench/launch.sh [N_SEQUENTIAL [N_CONCURRENT]]   (defaults 10 and 100)
#
# Uses the stack at $BERTH_URL (with BERTH_VAR, BERTH_PG_PORT, BERTH_CLUSTER and
# BERTH_ADMIN_PASSWORD) or, when BERTH_URL is unset, starts a private one on free
# ports and removes it afterwards. berth's latency is measured by PostgreSQL
# (instances.started_at - created_at: the API transaction to the job writing
# `running`); raw Docker's by the client around create+start, over the same
# socket, with a per-run bridge network, a named volume, the same limits and a
# port binding like berth's.
#
# Then (issue 15) the client's view: POST -> the first 200 through the
# workspace URL (/container/<user>/<instance>/ on the workspace origin, the
# owner's bearer token, polled every 10 ms), against `docker run` -> the first
# 200 at the container's own address, quiet and with churn (another instance
# created and deleted all the while, so routes change and nginx reloads);
# p50/p90 of LAUNCH_ROUNDS (NSEQ) rounds each. Goal: berth <= raw + 100 ms.
# LAUNCH_FIRST200_ONLY=1 runs only that part.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NSEQ=${1:-10}
NCONC=${2:-100}
OWN=""
if [[ -z "${BERTH_URL:-}" ]]; then
    free_port() { local p=$1; while (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done; echo $p; }
    export BERTH_VAR=$(mktemp -d /tmp/berth-bench.XXXXXX)
    export BERTH_HTTP_PORT=$(free_port 18600)
    export BERTH_PG_PORT=$(free_port $((BERTH_HTTP_PORT + 1)))

    export BERTH_CLUSTER=bench$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    export BERTH_URL=http://127.0.0.1:$BERTH_HTTP_PORT
    chmod 0755 "$BERTH_VAR"
    OWN=1
    "$ROOT/scripts/stack.sh" start > "$BERTH_VAR/stack.out" 2>&1 || { cat "$BERTH_VAR/stack.out"; exit 1; }
    export BERTH_ADMIN_PASSWORD=$(cat "$BERTH_VAR/initial-admin-password")
fi
. "$ROOT/tests/bench/lib.sh"
cleanup() {
    remove_labelled "berth.bench=$BERTH_CLUSTER"
    if [[ -n $OWN ]]; then
        "$ROOT/scripts/stack.sh" stop >/dev/null 2>&1
        remove_labelled "berth.cluster=$BERTH_CLUSTER"
        rm -rf "$BERTH_VAR"
    fi
}
trap cleanup EXIT
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export PSQL="$PG_BIN/psql" NSEQ NCONC
export LAUNCH_FIRST200_ONLY=${LAUNCH_FIRST200_ONLY:-} WS_PORT=${BERTH_URL##*:}

python3 - <<'EOF'
import http.client, json, os, socket, statistics, subprocess, threading, time, urllib.parse, uuid

URL = urllib.parse.urlparse(os.environ["BERTH_URL"])
CLUSTER = os.environ["BERTH_CLUSTER"]
NSEQ, NCONC = int(os.environ["NSEQ"]), int(os.environ["NCONC"])
SOCK = (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock").replace("unix://", "")

# One psql session for every query: a psql process and a PostgreSQL backend
# forked per poll cost Docker enough CPU on a small machine to slow the
# containers being measured (a raw start went from 865 to 986 ms with a psql
# every 250 ms beside it).
_pg = subprocess.Popen([os.environ["PSQL"], "-h", os.environ["BERTH_VAR"] + "/run", "-p",
                        os.environ["BERTH_PG_PORT"], "-U", "berth", "-d", "berth", "-tAqX"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
_pg_lock = threading.Lock() # the churn thread (first_200) queries too
def psql(q):
    with _pg_lock:
        _pg.stdin.write(q.rstrip(";") + ";\n\\echo __end__\n"); _pg.stdin.flush()
        out = []
        while True:
            line = _pg.stdout.readline()
            if not line: raise SystemExit("psql ended")
            if line.rstrip("\n") == "__end__": return "\n".join(out).strip()
            out.append(line.rstrip("\n"))

def api(method, path, body=None, token=None, cookie=None):
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=60)
    h = {"Content-Type": "application/json"}
    if token: h["Authorization"] = "Bearer " + token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, (json.loads(data) if data else None), r.getheader("Set-Cookie")

class UnixConn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(SOCK)

def docker(method, path, body=None):
    c = UnixConn("docker", timeout=120)
    c.request(method, "/v1.41" + path, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

# --- a developer with room for everything ---
st, me, cookie = api("POST", "/api/v1/auth/login", {"username": "admin", "password": os.environ["BERTH_ADMIN_PASSWORD"]})
sess = cookie.split(";")[0]
c = http.client.HTTPConnection(URL.hostname, URL.port)
c.request("POST", "/api/v1/tokens", json.dumps({"name": "bench"}), {"Content-Type": "application/json", "Cookie": sess, "X-CSRF-Token": me["csrf_token"]})
admin = json.loads(c.getresponse().read())["token"]
uname = "bench-" + uuid.uuid4().hex[:8]
st, user, _ = api("POST", "/api/v1/users", {"username": uname, "password": "bench-password", "role": "developer",
                  "quota": {"instances": 1000, "cpus": 1000, "memory_mb": 1000000}}, admin)
st, me, cookie = api("POST", "/api/v1/auth/login", {"username": uname, "password": "bench-password"})
c = http.client.HTTPConnection(URL.hostname, URL.port)
c.request("POST", "/api/v1/tokens", json.dumps({"name": "b"}), {"Content-Type": "application/json", "Cookie": cookie.split(";")[0], "X-CSRF-Token": me["csrf_token"]})
tok = json.loads(c.getresponse().read())["token"]
tmpl = [t for t in api("GET", "/api/v1/templates", token=tok)[1]["items"] if t["name"] == "web"][0]

def berth_launch(name):
    st, b, _ = api("POST", "/api/v1/instances", {"template": "web", "name": name}, tok)
    if st != 202: raise SystemExit("create failed: %s %s" % (st, b))
    return b["instance"]["id"]

def wait_running(ids, limit=300):
    t_end = time.time() + limit
    while time.time() < t_end:
        n = int(psql("SELECT count(*) FROM instances WHERE id IN (%s) AND status = 'running'" % ",".join("'%s'" % i for i in ids)))
        bad = psql("SELECT count(*) FROM instances WHERE id IN (%s) AND status = 'error'" % ",".join("'%s'" % i for i in ids))
        if n == len(ids): return True
        if bad != "0": raise SystemExit("an instance ended in error")
        # latencies come from PostgreSQL's timestamps, so polling slowly costs no
        # precision, and a tight psql loop would steal CPU from Docker
        time.sleep(0.25)
    return False

def latencies(ids):
    rows = psql("SELECT extract(epoch FROM started_at - created_at) * 1000 FROM instances WHERE id IN (%s)" % ",".join("'%s'" % i for i in ids))
    return [float(x) for x in rows.split()]

def delete_all(ids):
    for i in ids: api("DELETE", "/api/v1/instances/%s?delete_volumes=true" % i, token=tok)
    t_end = time.time() + 120
    while time.time() < t_end:
        if psql("SELECT count(*) FROM instances WHERE id IN (%s) AND status <> 'deleted'" % ",".join("'%s'" % i for i in ids)) == "0": return
        time.sleep(0.1)

# --- raw Docker: the same container by hand ---
net = "berthbench-" + CLUSTER
docker("POST", "/networks/create", {"Name": net, "Labels": {"berth.bench": CLUSTER}})
def raw_launch(k):
    body = {"Image": tmpl["image"], "Labels": {"berth.bench": CLUSTER}, "ExposedPorts": {"8080/tcp": {}},
            "Env": ["BERTH_USER=%s" % uname],
            "HostConfig": {"Memory": tmpl["memory_mb"] << 20, "NanoCpus": int(tmpl["cpus"] * 1e9), "PidsLimit": tmpl["pids_limit"],
                           "SecurityOpt": ["no-new-privileges"], "RestartPolicy": {"Name": "unless-stopped"},
                           "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                           "Mounts": [{"Type": "volume", "Source": "berthbench-%s-%s" % (CLUSTER, k), "Target": "/data",
                                       "VolumeOptions": {"Labels": {"berth.bench": CLUSTER}}}],
                           "NetworkMode": net}}
    t0 = time.time()
    st, data = docker("POST", "/containers/create?name=berthbench-%s-%s" % (CLUSTER, k), body)
    if st != 201: raise SystemExit("raw create: %s %s" % (st, data[:200]))
    cid = json.loads(data)["Id"]
    st, data = docker("POST", "/containers/%s/start" % cid)
    if st not in (204, 304): raise SystemExit("raw start: %s %s" % (st, data[:200]))
    return (time.time() - t0) * 1000, cid

def raw_cleanup(cids):
    for cid in cids: docker("DELETE", "/containers/%s?force=1&v=1" % cid)
    for k in range(0, 10000):
        st, _ = docker("DELETE", "/volumes/berthbench-%s-%s" % (CLUSTER, k))
        if st == 404 and k > max(NSEQ, NCONC) + 2: break

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]

def run_concurrent(fn, n):
    out = [None] * n
    def w(k): out[k] = fn(k)
    ts = [threading.Thread(target=w, args=(k,)) for k in range(n)]
    t0 = time.time()
    for t in ts: t.start()
    for t in ts: t.join()
    return out, t0

# warm-up: one of each (network and image caches)
i = berth_launch("warm"); wait_running([i]); delete_all([i])
_, cid = raw_launch("w"); raw_cleanup([cid])

def http_200(host, port, path, headers):
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", path, headers=headers)
        r = c.getresponse(); r.read(); c.close()
        return r.status == 200
    except OSError:
        return False

def until_200(host, port, path, headers, limit=60):
    t_end = time.time() + limit
    while time.time() < t_end:
        if http_200(host, port, path, headers): return True
        time.sleep(0.01)
    return False

def raw_addr(cid):
    st, data = docker("GET", "/containers/%s/json" % cid)
    nets = json.loads(data)["NetworkSettings"]["Networks"]
    return [n["IPAddress"] for n in nets.values() if n.get("IPAddress")][0]

def first_200(rounds, churn):
    """POST -> first 200 through /container/, docker run -> first 200; ms lists."""
    stop = threading.Event()
    def churner():
        k = 0
        while not stop.is_set():
            i = berth_launch("ch%d" % k); k += 1
            wait_running([i], 120); delete_all([i])
    th = threading.Thread(target=churner)
    if churn: th.start(); time.sleep(1)
    ws = {"Host": "%s.localhost:%s" % (uname, os.environ["WS_PORT"]), "Authorization": "Bearer " + tok}
    raw, brt = [], []
    try:
        for k in range(rounds):
            t0 = time.time()
            _, cid = raw_launch("f%s%d" % ("c" if churn else "q", k))
            if not until_200(raw_addr(cid), 8080, "/", {}): raise SystemExit("raw: no 200")
            raw.append((time.time() - t0) * 1000); raw_cleanup([cid])
            name = "f%s%d" % ("c" if churn else "q", k)
            t0 = time.time()
            i = berth_launch(name)
            if not until_200(URL.hostname, URL.port, "/container/%s/%s/" % (uname, name), ws):
                raise SystemExit("berth: no 200 through /container/")
            brt.append((time.time() - t0) * 1000); delete_all([i])
    finally:
        stop.set()
        if churn: th.join()
    return raw, brt

if os.environ.get("LAUNCH_FIRST200_ONLY"):
    i = berth_launch("warm"); wait_running([i]); delete_all([i])
    NSEQ = 0
    NCONC = 0

if NSEQ == 0:
    pass
else:
    print("sequential, N=%d (raw and berth alternate, so both see the same Docker)" % NSEQ)
    raw, ids = [], []
    for k in range(NSEQ):
        raw.append(raw_launch(k))
        i = berth_launch("s%d" % k); ids.append(i)
        if not wait_running([i]): raise SystemExit("timeout")
    raw_ms = [r[0] for r in raw]; raw_cleanup([r[1] for r in raw])
    b_ms = latencies(ids); delete_all(ids)
    print("  raw docker create+start  p50 %7.1f ms  p99 %7.1f ms" % (pct(raw_ms, 50), pct(raw_ms, 99)))
    print("  berth POST -> running    p50 %7.1f ms  p99 %7.1f ms" % (pct(b_ms, 50), pct(b_ms, 99)))
    print("  berth overhead           p50 %7.1f ms  p99 %7.1f ms  (goal <= 50 / 200)" % (pct(b_ms, 50) - pct(raw_ms, 50), pct(b_ms, 99) - pct(raw_ms, 99)))

    print("concurrent, N=%d" % NCONC)
    res, t0 = run_concurrent(raw_launch, NCONC)
    raw_wall = time.time() - t0
    raw_ms = [r[0] for r in res]; raw_cleanup([r[1] for r in res])
    ids, t0 = run_concurrent(lambda k: berth_launch("c%d" % k), NCONC)
    ok = wait_running(ids, 600)
    b_wall = time.time() - t0
    b_ms = latencies(ids)
    coll = psql("SELECT count(*) FROM (SELECT port FROM instance_ports GROUP BY node, port HAVING count(*) > 1) d")
    delete_all(ids)
    print("  raw docker create+start  p50 %7.1f ms  p99 %7.1f ms  wall %6.2f s" % (pct(raw_ms, 50), pct(raw_ms, 99), raw_wall))
    print("  berth POST -> running    p50 %7.1f ms  p99 %7.1f ms  wall %6.2f s  (%s)" % (pct(b_ms, 50), pct(b_ms, 99), b_wall, "all running" if ok else "NOT all running"))
    print("  wall time ratio berth/raw %.2f (goal <= 1.2); host port collisions: %s" % (b_wall / raw_wall, coll))
ROUNDS = int(os.environ.get("LAUNCH_ROUNDS") or NSEQ or 10)
print("POST -> first 200 through /container/ vs docker run -> first 200, %d rounds" % ROUNDS)
for churn in (False, True):
    raw, brt = first_200(ROUNDS, churn)
    label = "with churn" if churn else "quiet     "
    print("  %s raw p50 %7.1f p90 %7.1f ms | berth p50 %7.1f p90 %7.1f ms | +%.0f ms p50 (goal <= +100)" %
          (label, pct(raw, 50), pct(raw, 90), pct(brt, 50), pct(brt, 90), pct(brt, 50) - pct(raw, 50)))
api("DELETE", "/api/v1/users/%s" % user["id"], token=admin)
EOF
