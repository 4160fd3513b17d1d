/*
 * lifecycle — create, start, stop and restart of an instance's container
 * (the jobs of those kinds; job.h has the map).
 *
 * Create: container (network, image on a miss), start.
 * The common case costs Docker two calls, as by hand: create, then start.
 * Named volumes are made by create itself (with berth's labels, from the
 * mount's VolumeOptions). The image is looked after only when create answers
 * 404, the user's network only when start does (Docker resolves it there);
 * each is made sure of once per attempt, then create runs again (an existing
 * container answers 409: it is inspected and started).
 *
 * An instance with an HTTP port (issue 10) is created with its address on the
 * user network (lifecycle_prepare): stored, or drawn (c_alloc) in the network's
 * subnet, which the worker keeps per network (rn->subnets) from inspect and
 * its own creates, so the common case costs no Docker call more; unknown, the
 * address is drawn in the network's first-choice subnet and checked once the
 * network has been looked up. An existing container that publishes the HTTP
 * port or has another address is removed and made again (container_stale);
 * that is how instances from before the change move over on their next start
 * or restart (needs_move). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/template.h"
#include "berth/util.h"
#include "job.h"

static void c_create(struct job *j);
static void c_begin(struct job *j);
static void c_alloc(struct job *j);
static void on_inspected(int status, const char *body, size_t len, const char *err, void *arg);
static bool disk_refused(struct job *j, int status, const char *body, size_t len);

/* The instance's HTTP route, when it has an HTTP port and its address is
 * known: nginx proxies to <address on the user network>:<http_port>. Put when
 * a create begins (or right after the address is assigned, before Docker
 * makes the container), so that the reload it costs runs while Docker works
 * and the route is live when the instance is; put again when it runs
 * (unchanged: no reload). */
static void job_route_put(struct job *j)
{
    if (j->http_port > 0 && j->addr[0])
        (void)routesync_put(j->rn->w, j->instance_id, j->user, j->name,
                            json_string_value(json_object_get(j->spec, "template_name")), j->addr,
                            j->http_port,
                            strcmp(json_string_value(json_object_get(j->spec, "proxy_mode")) ?: "",
                                   "keep") == 0);
}

static void finish_running(struct job *j)
{
    job_route_put(j);
    {
        const char *p[2] = {j->instance_id, j->cid[0] ? j->cid : NULL};
        q_detached(j->rn->w,
                   "UPDATE instances SET container_id = coalesce($2, container_id) WHERE id = $1",
                   2, p);
    }
    job_done(j, "running", "started", "the container is running");
    /* after the status write (one connection, in order): the push looks for
     * running instances; the container's copy of the keys may be stale */
    if (json_is_integer(json_object_get(j->spec, "ssh_port")) &&
        sshkeys_push(j->rn->w, NULL, j->instance_id, NULL, NULL) < 0)
        log_warn("instance %s: SSH keys not pushed (PostgreSQL queue full)", j->instance_id);
    events_verify_soon(j->rn->w, j->instance_id);
}

static bool port_taken(const char *body, size_t len)
{
    char msg[600];
    worker_docker_message(body, len, msg, sizeof(msg));
    return strstr(msg, "port is already allocated") || strstr(msg, "address already in use");
}

static void on_ports_redrawn(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!job_pg_ok(j, err, "new host ports could not be reserved"))
        return;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        job_fail(j, "no free host port is left in the port range", false);
        return;
    }
    json_decref(j->ports);
    j->ports = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!json_is_array(j->ports)) {
        job_fail(j, "the new host ports could not be read", true);
        return;
    }
    c_create(j);
}

static void on_conflict_removed(int status, const char *body, size_t len, const char *err,
                                void *arg)
{
    struct job *j = arg;
    char lo[16], hi[16];
    const char *p[4];
    if (status != 204 && status != 404) {
        docker_failed(j, "removing the container to re-draw its ports failed", status, body, len,
                      err);
        return;
    }
    snprintf(lo, sizeof(lo), "%ld", j->rn->w->cfg->port_min);
    snprintf(hi, sizeof(hi), "%ld", j->rn->w->cfg->port_max);
    p[0] = j->instance_id;
    p[1] = j->rn->w->cfg->node;
    p[2] = lo;
    p[3] = hi;
    /* every port of the instance moves to a free one: which one was taken is
     * Docker's message to parse, and moving all is as cheap */
    q(j,
      "WITH old AS (DELETE FROM instance_ports WHERE instance_id = $1 RETURNING name,"
      " container_port), ins AS (INSERT INTO instance_ports (node, port, instance_id, name,"
      " container_port) SELECT $2, (SELECT g FROM generate_series($3::int, $4::int) g WHERE NOT"
      " EXISTS (SELECT 1 FROM instance_ports x WHERE x.node = $2 AND x.port = g) ORDER BY"
      " random() + 0 * length(old.name) LIMIT 1), $1, old.name, old.container_port FROM old"
      " WHERE old.name <> 'http' RETURNING name, port, container_port)"
      " SELECT coalesce(json_agg(json_build_object('name', name, 'port', port,"
      " 'container_port', container_port) ORDER BY name), '[]')::text FROM ins",
      4, p, on_ports_redrawn);
}

/* Docker's answer when a container's configured IPv4Address is held by
 * another endpoint of the network (not a host port: that is "address
 * already in use", lower case, from the port binding). */
static bool addr_taken(const char *body, size_t len)
{
    char msg[600];
    worker_docker_message(body, len, msg, sizeof(msg));
    return strstr(msg, "Address already in use") != NULL;
}

/* A container removed to be made again (from before issue 10, or with an
 * address that is no longer the instance's): create it anew. */
static void on_stale_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status != 204 && status != 404) {
        docker_failed(j, "removing the container to make it again failed", status, body, len, err);
        return;
    }
    lifecycle_prepare(j);
}

static void on_started(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 304) {
        finish_running(j);
        return;
    }
    if (status == 404) {
        /* Docker checks the network at start, not at create: the first
         * instance of a user (or one whose network was removed) gets here */
        char msg[600];
        worker_docker_message(body, len, msg, sizeof(msg));
        if (strstr(msg, "network") && !j->net_ready) {
            runner_net_forget(j->rn, j->net);
            usernet_ensure(j); /* then create again: 409, inspect, start */
            return;
        }
        if (strcmp(j->kind, "create") != 0) {
            /* start/restart of a container removed meanwhile: make it again */
            c_begin(j);
            return;
        }
    }
    if (status >= 400 && port_taken(body, len) && j->redraws < 3) {
        /* a process outside berth (another stack on this Docker, say) holds
         * one of our reserved host ports: draw new ones, make the container
         * again with them */
        char path[128];
        j->redraws++;
        event(j, "ports", "a host port is taken outside berth; drawing new ports");
        snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
        dcall(j, "DELETE", path, NULL, 30000, on_conflict_removed);
        return;
    }
    if (status >= 400 && addr_taken(body, len) && j->http_port > 0 && j->redraws < 3) {
        /* something outside berth's rows (a container attached by hand, one
         * from before issue 10 with an address Docker chose) holds the
         * instance's address on the network: assign another, make the
         * container again with it */
        char path[128];
        j->redraws++;
        event(j, "address", "the instance's network address is taken; assigning another");
        j->addr[0] = '\0';
        j->recreated = true;
        snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
        dcall(j, "DELETE", path, NULL, 30000, on_stale_removed);
        return;
    }
    docker_failed(j, "starting the container failed", status, body, len, err);
}

static void c_start(struct job *j)
{
    char path[128];
    snprintf(path, sizeof(path), "/containers/%s/start", j->cname);
    dcall(j, "POST", path, NULL, 60000, on_started);
}

static void on_created(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 201) {
        json_t *v = json_loadb(body, len, 0, NULL);
        util_strlcpy(j->cid, json_string_value(json_object_get(v, "Id")) ?: "", sizeof(j->cid));
        json_decref(v);
        event(j, "created", "container created");
        c_start(j);
        return;
    }
    if (status == 409) { /* made meanwhile by an earlier run of this job */
        char path[128];
        snprintf(path, sizeof(path), "/containers/%s/json", j->cname);
        dcall(j, "GET", path, NULL, 30000, on_inspected);
        return;
    }
    if ((status == 404 || status == 400) && !j->net_ready) {
        /* the user's network is missing, or does not hold the address (it
         * was made again with another subnet): look it up, then go on */
        char msg[600];
        worker_docker_message(body, len, msg, sizeof(msg));
        if (strstr(msg, "network")) {
            runner_net_forget(j->rn, j->net);
            usernet_ensure(j);
            return;
        }
    }
    if (status == 404) {
        /* the fast path tries create first; only a miss costs the lookup */
        if (!j->image_ready) {
            image_ensure(j);
            return;
        }
    }
    if (disk_refused(j, status, body, len))
        return;
    docker_failed(j, "creating the container failed", status, body, len, err);
}

int lifecycle_harden(json_t *hc, const json_t *spec, const struct berth_config *cfg)
{
    json_t *add = json_array(), *v;
    size_t i;
    long long disk = json_integer_value(json_object_get(spec, "disk_mb"));
    int rc = 0;

    if (!add)
        return -1;
    /* the frozen spec is checked again: only the allow-list reaches Docker
     * (a spec from before capabilities existed has none: it gets none) */
    json_array_foreach(json_object_get(spec, "capabilities"), i, v)
    {
        if (!tmpl_capability_ok(json_string_value(v))) {
            json_decref(add);
            return -1;
        }
        json_array_append(add, v);
    }
    rc |= json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
    rc |= json_object_set_new(hc, "CapAdd", add);
    /* setuid binaries gain nothing unless the template said false (sudo);
     * a spec from before no_new_privileges existed keeps it on */
    if (!json_is_false(json_object_get(spec, "no_new_privileges")))
        rc |= json_object_set_new(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges"));
    /* docker-init as PID 1: it forwards signals and reaps, so a command
     * that never set a SIGTERM handler (a shell, sleep) still stops at
     * once instead of after the stop timeout */
    rc |= json_object_set_new(hc, "Init", json_true());
    /* the container sees its own cgroup as the root, not the host's tree */
    rc |= json_object_set_new(hc, "CgroupnsMode", json_string("private"));
    {
        char files[16];
        snprintf(files, sizeof(files), "%ld", cfg->container_log_max_files);
        rc |= json_object_set_new(hc, "LogConfig",
                                  json_pack("{s:s, s:{s:s, s:s}}", "Type", "json-file", "Config",
                                            "max-size", cfg->container_log_max_size, "max-file",
                                            files));
    }
    if (disk > 0) {
        char size[32];
        snprintf(size, sizeof(size), "%lldM", disk);
        rc |= json_object_set_new(hc, "StorageOpt", json_pack("{s:s}", "size", size));
    }
    return rc ? -1 : 0;
}

static json_t *container_body(struct job *j)
{
    struct berth_config *cfg = j->rn->w->cfg;
    json_t *spec = j->spec, *env = json_array(), *labels, *exposed = json_object(),
           *bindings = json_object(), *mounts = json_array(), *hc, *body, *v;
    const char *key;
    size_t i;
    char buf[TMPL_MAX_TEXT + 200];
    const char *policy = json_string_value(json_object_get(spec, "restart_policy")) ?: "no";

    json_object_foreach(json_object_get(spec, "env"), key, v)
    {
        if (!tmpl_env_name_ok(key) || !json_is_string(v))
            continue;
        snprintf(buf, sizeof(buf), "%s=%s", key, json_string_value(v));
        json_array_append_new(env, json_string(buf));
    }
    labels = json_pack("{s:s, s:s, s:s, s:s, s:s}", "berth.instance", j->instance_id, "berth.user",
                       j->user, "berth.template",
                       json_string_value(json_object_get(spec, "template_name")) ?: "",
                       "berth.node", cfg->node, "berth.cluster", cfg->cluster);
    json_array_foreach(j->ports, i, v)
    {
        char cport[32], hport[16];
        /* an instance from before issue 10 has an 'http' row until its
         * address is assigned: the HTTP port is never published */
        if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", "http") == 0)
            continue;
        snprintf(cport, sizeof(cport), "%lld/tcp",
                 (long long)json_integer_value(json_object_get(v, "container_port")));
        snprintf(hport, sizeof(hport), "%lld", (long long)json_integer_value(json_object_get(v, "port")));
        json_object_set_new(exposed, cport, json_object());
        json_object_set_new(bindings, cport,
                            json_pack("[{s:s, s:s}]", "HostIp", cfg->host_address, "HostPort", hport));
    }
    /* Docker makes a missing named volume at create, with these labels; a kept
     * one being re-attached is used as it is */
    json_array_foreach(j->vols, i, v)
    {
        const char *vid = json_string_value(json_object_get(v, "id")); /* checked at load */
        char src[64];
        snprintf(src, sizeof(src), "berth-%s", vid);
        json_array_append_new(
            mounts, json_pack("{s:s, s:s, s:s, s:{s:{s:s, s:s, s:s, s:s}}}", "Type", "volume",
                              "Source", src, "Target",
                              json_string_value(json_object_get(v, "mount_path")) ?: "/nonexistent",
                              "VolumeOptions", "Labels", "berth.volume", vid, "berth.user", j->user,
                              "berth.node", cfg->node, "berth.cluster", cfg->cluster));
    }
    hc = json_pack("{s:I, s:I, s:I, s:{s:s, s:i}, s:o, s:o, s:s}", "Memory",
                   (json_int_t)json_integer_value(json_object_get(spec, "memory_mb")) * 1048576,
                   "NanoCpus",
                   (json_int_t)(json_number_value(json_object_get(spec, "cpus")) * 1e9 + 0.5),
                   "PidsLimit", (json_int_t)json_integer_value(json_object_get(spec, "pids_limit")),
                   "RestartPolicy", "Name", policy, "MaximumRetryCount",
                   strcmp(policy, "on-failure") == 0 ? 5 : 0, "PortBindings", bindings, "Mounts",
                   mounts, "NetworkMode", j->net);
    if (hc && lifecycle_harden(hc, spec, cfg) < 0) {
        json_decref(hc);
        hc = NULL; /* json_pack below fails on it: no body */
    }
    body = json_pack("{s:s, s:o, s:o, s:o, s:o, s:s}", "Image",
                     json_string_value(json_object_get(spec, "image")) ?: "", "Env", env, "Labels",
                     labels, "ExposedPorts", exposed, "HostConfig", hc, "Hostname", j->name);
    if (body && json_is_array(json_object_get(spec, "command")))
        json_object_set(body, "Cmd", json_object_get(spec, "command"));
    /* the address nginx reaches it at: kept by Docker across restarts (the
     * user network has a configured subnet, so Docker honours it) */
    if (body && j->addr[0])
        json_object_set_new(body, "NetworkingConfig",
                            json_pack("{s:{s:{s:{s:s}}}}", "EndpointsConfig", j->net, "IPAMConfig",
                                      "IPv4Address", j->addr));
    return body;
}

/* disk_mb on a node whose storage cannot bound it: said at once, for good
 * (no retry helps), instead of a container without the limit. */
static bool disk_unsupported(struct job *j)
{
    long long disk = json_integer_value(json_object_get(j->spec, "disk_mb"));
    char why[700];
    if (disk <= 0 || j->rn->w->disk_limits != DOCKER_DISK_NO)
        return false;
    snprintf(why, sizeof(why),
             "the template's disk_mb (%lld) cannot be enforced on node %s: Docker's storage is %s,"
             " which has no per-container size limit (it needs overlay2 on xfs mounted with"
             " pquota, btrfs, zfs or devicemapper); set disk_mb to 0 or move Docker's data",
             disk, j->rn->w->cfg->node, j->rn->w->storage[0] ? j->rn->w->storage : "unknown");
    job_fail(j, why, false);
    return true;
}

/* Docker refusing StorageOpt (overlay2 on xfs without pquota, or a driver
 * the worker had not learned yet). */
static bool disk_refused(struct job *j, int status, const char *body, size_t len)
{
    char msg[600], why[900];
    if (json_integer_value(json_object_get(j->spec, "disk_mb")) <= 0 ||
        !docker_storage_opt_refused(status, body, len))
        return false;
    worker_docker_message(body, len, msg, sizeof(msg));
    snprintf(why, sizeof(why),
             "the template's disk_mb (%lld) cannot be enforced on node %s: Docker refused the size"
             " limit: %s",
             (long long)json_integer_value(json_object_get(j->spec, "disk_mb")),
             j->rn->w->cfg->node, msg);
    job_fail(j, why, false);
    return true;
}

void lifecycle_image_ready(struct job *j)
{
    j->image_ready = true;
    c_create(j);
}

static void c_create(struct job *j)
{
    char path[160];
    json_t *body;
    if (disk_unsupported(j))
        return;
    body = container_body(j);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        job_fail(j, "the container definition could not be built", false);
        return;
    }
    snprintf(path, sizeof(path), "/containers/create?name=%s", j->cname);
    dcall(j, "POST", path, text, 60000, on_created);
    free(text);
}

/* True when an existing container does not expose the instance the way it
 * should now: its HTTP port published on the host (made before issue 10), or
 * its address on the user network not the instance's. */
static bool container_stale(const struct job *j, const json_t *c)
{
    char cport[32];
    const json_t *b, *ep;
    const char *ip;
    if (j->http_port <= 0)
        return false;
    snprintf(cport, sizeof(cport), "%ld/tcp", j->http_port);
    b = json_object_get(json_object_get(json_object_get(c, "HostConfig"), "PortBindings"), cport);
    if (json_array_size(b) > 0)
        return true;
    ep = json_object_get(json_object_get(json_object_get(c, "NetworkSettings"), "Networks"), j->net);
    ip = json_string_value(json_object_get(json_object_get(ep, "IPAMConfig"), "IPv4Address"));
    return !ip || strcmp(ip, j->addr) != 0;
}

static void on_inspected(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 200) {
        json_t *v = json_loadb(body, len, 0, NULL);
        bool stale = !j->recreated && container_stale(j, v);
        util_strlcpy(j->cid, json_string_value(json_object_get(v, "Id")) ?: "", sizeof(j->cid));
        json_decref(v);
        if (stale) {
            /* idempotent: a crash from here on finds the same state, or no
             * container, on the next attempt */
            char path[128];
            j->recreated = true;
            event(j, "recreating",
                  "making the container again with its address on the user network (its HTTP"
                  " port is no longer published on the host)");
            snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
            dcall(j, "DELETE", path, NULL, 60000, on_stale_removed);
            return;
        }
        c_start(j);
        return;
    }
    if (status == 404) {
        c_create(j);
        return;
    }
    docker_failed(j, "inspecting the container failed", status, body, len, err);
}

static void on_creating_marked(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!job_pg_ok(j, err, "the instance status could not be written"))
        return;
    lifecycle_prepare(j);
}

static void on_addr(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && strcmp(state, "23505") == 0 && ++j->addr_tries < 16) {
            c_alloc(j); /* a concurrent create took the same one: draw again */
            return;
        }
        job_fail(j, "the instance's network address could not be assigned", true);
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        job_fail(j, "no free address is left on the user's network", false);
        return;
    }
    util_strlcpy(j->addr, PQgetvalue(res, 0, 0), sizeof(j->addr));
    {
        char msg[96];
        snprintf(msg, sizeof(msg), "address %s on the user network", j->addr);
        event(j, "address", msg);
    }
    job_route_put(j); /* before Docker's create: the reload runs while Docker works */
    lifecycle_prepare(j);     /* the network, when the subnet was a guess; then create */
}

/* Assign the instance a free address of the subnet (unique among the live
 * instances of the node by index; a clash with a concurrent create draws
 * again). An instance from before issue 10 gives up its 'http' host port row
 * in the same statement: its container is made again without it. */
static void c_alloc(struct job *j)
{
    struct upstream_range r;
    char first[24], last[24], skip[24];
    const char *p[6];
    if (upstream_range(j->alloc_cidr, j->alloc_gw, &r) < 0) {
        job_fail(j, "the user's network has no IPv4 subnet berth can assign addresses in", false);
        return;
    }
    snprintf(first, sizeof(first), "%ld", r.first);
    snprintf(last, sizeof(last), "%ld", r.last);
    snprintf(skip, sizeof(skip), "%ld", r.skip);
    p[0] = j->instance_id;
    p[1] = r.base;
    p[2] = first;
    p[3] = last;
    p[4] = skip;
    p[5] = j->rn->w->cfg->node;
    q(j,
      "WITH pd AS (DELETE FROM instance_ports WHERE instance_id = $1 AND name = 'http')"
      " UPDATE instances i SET upstream_host = c.a FROM (SELECT $2::inet + g AS a FROM"
      " generate_series($3::int, $4::int) g WHERE g <> $5::int AND NOT EXISTS (SELECT 1 FROM"
      " instances x WHERE x.node = $6 AND x.status <> 'deleted' AND x.upstream_host ="
      " $2::inet + g) ORDER BY random() LIMIT 1) c WHERE i.id = $1 RETURNING host(i.upstream_host)",
      6, p, on_addr);
}

/* Before Docker's create: an instance with an HTTP port needs its address on
 * the user network, which needs the network's subnet. Known subnet and an
 * address inside it (the common case): no round trip. */
void lifecycle_prepare(struct job *j)
{
    const char *cidr, *gw;
    if (j->http_port <= 0) {
        c_create(j);
        return;
    }
    if (!usernet_subnet(j->rn, j->net, &cidr, &gw)) {
        if (j->net_ready) {
            job_fail(j, "the user's network has no IPv4 subnet berth can assign addresses in",
                     false);
            return;
        }
        /* A new instance of a user whose network the worker has not seen
         * (the first one, or the first since the worker started): draw its
         * address in the subnet the network gets on its first choice, so
         * that its route is put now, as a burst's routes fall together;
         * checked once the network is known (drawn again on a miss). */
        if (!j->addr[0] && !j->guessed &&
            usernet_guess(j->rn, j->net, j->alloc_cidr, sizeof(j->alloc_cidr)) == 0) {
            j->guessed = true;
            j->alloc_gw[0] = '\0';
            c_alloc(j);
            return;
        }
        usernet_ensure(j); /* looked up or made, then here again */
        return;
    }
    if (j->addr[0] && upstream_usable(j->addr, cidr, gw)) {
        c_create(j);
        return;
    }
    if (j->addr[0])
        event(j, "address", "the stored address is not on the user network's subnet; assigning another");
    j->addr[0] = '\0';
    util_strlcpy(j->alloc_cidr, cidr, sizeof(j->alloc_cidr));
    util_strlcpy(j->alloc_gw, gw, sizeof(j->alloc_gw));
    c_alloc(j);
}

/* Full create path (also start/restart of a missing container). */
static void c_begin(struct job *j)
{
    char from[STATUS_SET_MAX];
    const char *p[2] = {j->instance_id, status_guard(ST_CREATING, BY_JOB, from)};
    j->net_ready = j->image_ready = false;
    job_route_put(j); /* now, not after a round trip: a burst's routes fall together */
    event(j, "creating", "creating the container");
    q(j, "UPDATE instances SET status = 'creating' WHERE id = $1 AND status = ANY($2::text[])", 2,
      p, on_creating_marked);
}

/* ---- start, stop, restart ---- */

/* An instance made before issue 10 (an HTTP port, no address yet): its
 * container publishes the HTTP port on the host. Its start or restart goes
 * the create way: address, route, the container made again without it. */
static bool needs_move(const struct job *j)
{
    return j->http_port > 0 && !j->addr[0];
}

static void s_start(struct job *j)
{
    char path[128];
    if (needs_move(j)) {
        c_begin(j);
        return;
    }
    snprintf(path, sizeof(path), "/containers/%s/start", j->cname);
    dcall(j, "POST", path, NULL, 60000, on_started);
}

static void on_stopped(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 304 || status == 404) {
        job_done(j, "stopped", "stopped",
                 status == 404 ? "no container: nothing to stop" : "the container stopped");
        return;
    }
    docker_failed(j, "stopping the container failed", status, body, len, err);
}

static void s_stop(struct job *j)
{
    char path[128];
    snprintf(path, sizeof(path), "/containers/%s/stop?t=%d", j->cname, STOP_TIMEOUT_S);
    dcall(j, "POST", path, NULL, (STOP_TIMEOUT_S + 30) * 1000L, on_stopped);
}

static void on_restarted(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204) {
        finish_running(j);
        return;
    }
    if (status == 404) {
        c_begin(j);
        return;
    }
    docker_failed(j, "restarting the container failed", status, body, len, err);
}

static void s_restart(struct job *j)
{
    char path[128];
    if (needs_move(j)) {
        c_begin(j);
        return;
    }
    snprintf(path, sizeof(path), "/containers/%s/restart?t=%d", j->cname, STOP_TIMEOUT_S);
    dcall(j, "POST", path, NULL, (STOP_TIMEOUT_S + 60) * 1000L, on_restarted);
}

void lifecycle_run(struct job *j)
{
    if (strcmp(j->kind, "create") == 0)
        c_begin(j);
    else if (strcmp(j->kind, "start") == 0)
        s_start(j);
    else if (strcmp(j->kind, "stop") == 0)
        s_stop(j);
    else if (strcmp(j->kind, "restart") == 0)
        s_restart(j);
    else
        job_fail(j, "unknown job kind", false);
}
