/*
 * runner — berth-worker's job consumer (DESIGN.md "Jobs: reliable and
 * idempotent").
 *
 * Pop: `BLMOVE berth:jobs:<node> berth:jobs:<node>:active RIGHT LEFT 5` on a
 * connection of its own, one at a time, while fewer than RUNNER_MAX_INFLIGHT
 * jobs are held. hiredis 0.14's libev adapter has no timeouts, so a watchdog
 * timer drops and re-makes that connection when a pop outlives its block
 * time; the job it may have moved stays in :active and reconcile re-queues it.
 *
 * A job: load its row (done/failed: drop; not_before in the future: hold a
 * timer), wait behind another job of the same instance, claim it (status
 * running, attempts + 1), load the instance, run the handler as a chain of
 * Docker and PostgreSQL callbacks, then write the outcome (job row, instance
 * status, instance_events) in one statement and LREM it from :active.
 *
 * Every handler is idempotent: names derive from ids (container
 * berth-<instance id>, volume berth-<volume id>, network
 * berth-<cluster>-<user>), "exists already" and "missing" answers count as
 * success where they mean the desired end state.
 *
 * Failures: a retryable one sets the row back to queued with not_before =
 * now + backoff (1 s, 2 s, 4 s ... 30 s) and holds the job for that long; after
 * job_max_attempts, or at once for a permanent one (image not found, bad
 * spec), the job is failed and the instance in `error`, both with one human
 * sentence. Job objects are freed from an ev_check watcher, after every
 * callback that could touch them has returned.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/snippet.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "docker.h"
#include "pg.h"
#include "redisq.h"
#include "routes.h"
#include "worker.h"

#define POP_BLOCK_S 5
#define STOP_TIMEOUT_S 10

struct job {
    struct runner *rn;
    struct job *next;
    char id[37];
    char kind[16];
    char instance_id[37], volume_id[37], user_id[37];
    bool delete_volumes;
    int attempts;
    bool waiting; /* parked behind another job of the same instance */
    bool dead;    /* finished: freed by the check watcher */
    ev_timer timer;
    /* instance */
    json_t *spec, *ports, *vols;
    char user[64], name[64], status[16], desired[16];
    char cname[64], net[160], cid[80];
    size_t vol_i;
    char pull_error[512];
    int redraws; /* host ports drawn again this attempt (taken outside berth) */
    int net_try;  /* subnets of network_pool tried for the user's network */
    int net_looks; /* lookups of the user's network this attempt */
    bool net_ready, image_ready; /* made sure of this attempt, after a 404 from create */
    /* HTTP exposure (issue 10): the template's container port, and the
     * instance's address on its user network (instances.upstream_host, ""
     * until assigned) that nginx proxies to */
    long http_port;
    char addr[48];
    int addr_tries; /* allocations that met a concurrent one's address */
    bool guessed;   /* an address drawn before the network's subnet was known */
    char alloc_cidr[48], alloc_gw[48]; /* the subnet being drawn from */
    bool recreated; /* the container was removed this attempt to be made again */
    int64_t t0;
};

struct net_pending {
    struct net_pending *next;
    char name[160];
    const struct job *owner; /* the job looking it up or making it */
    char cidr[48];           /* the subnet being asked for ("" while looking) */
};

/* A subnet in use on this dockerd (from GET /networks: every network's IPv4
 * IPAM subnets, other stacks' too), so that a new user network's first
 * choice is one Docker will take. name: the network holding it; "" with
 * until set for a subnet Docker called overlapping that the listing did not
 * show (a route of the host, say), kept until then. */
struct used_subnet {
    char name[160];
    char cidr[48];
    ev_tstamp until;
};
#define OVERLAP_KEEP_S 600.

/* What the worker knows of a user network's subnet (from inspect or its own
 * create), so that a create can name the container's address without asking
 * Docker first. Dropped when the network is removed or Docker says it is
 * missing or does not hold the address. */
struct net_subnet {
    struct net_subnet *next;
    char name[160];
    char cidr[48], gw[48];
};

struct runner {
    struct worker *w;
    struct net_subnet *subnets;
    struct used_subnet *used; /* the last listing of Docker's networks, and overlaps */
    size_t nused;
    bool listing, list_again; /* a GET /networks in flight; another asked for */
    bool started;             /* popping jobs (after the first listing) */
    struct job *jobs; /* held: running, delayed or waiting */
    int njobs;
    bool popping;
    ev_timer pop_watchdog, pop_retry;
    ev_check reaper;
    struct net_pending *nets; /* networks being created (per-user, shared) */
    char jobs_key[128], active_key[160];
};

static void pop_next(struct runner *rn);
static void job_step_load(struct job *j);
static void job_fail(struct job *j, const char *why, bool retryable);
static void c_network(struct job *j);
static void c_create(struct job *j);
static void c_begin(struct job *j);
static void c_prepare(struct job *j);

/* ---- small helpers ---- */

void worker_docker_message(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *v = len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(v, "message"));
    if (m)
        snprintf(out, outlen, "%s", m);
    else
        snprintf(out, outlen, "%.*s", (int)(len > 200 ? 200 : len), body);
    json_decref(v);
    /* one line */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static struct job *find_instance_job(const struct runner *rn, const char *iid, const struct job *except)
{
    for (struct job *j = rn->jobs; j; j = j->next)
        if (j != except && !j->dead && !j->waiting && iid[0] && strcmp(j->instance_id, iid) == 0)
            return j;
    return NULL;
}

bool runner_owns(const struct runner *rn, const char *job_id)
{
    for (struct job *j = rn->jobs; j; j = j->next)
        if (!j->dead && strcmp(j->id, job_id) == 0)
            return true;
    return false;
}

bool runner_instance_busy(const struct runner *rn, const char *instance_id)
{
    for (struct job *j = rn->jobs; j; j = j->next)
        if (!j->dead && strcmp(j->instance_id, instance_id) == 0)
            return true;
    return false;
}

int runner_inflight(const struct runner *rn)
{
    return rn->njobs;
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents);

static void q(struct job *j, const char *sql, int n, const char *const *p, pg_cb cb)
{
    if (pg_query(j->rn->w->pg, sql, n, p, cb, j) < 0) {
        /* queue full: hold the job and start it over from its row later */
        log_warn("job %s: PostgreSQL queue full; trying again in 2 s", j->id);
        ev_timer_stop(j->rn->w->loop, &j->timer);
        ev_set_cb(&j->timer, on_retry_timer);
        ev_timer_set(&j->timer, 2.0, 0.);
        ev_timer_start(j->rn->w->loop, &j->timer);
    }
}

/* A query whose outcome only matters for the log. */
static void on_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("statement failed: %s", err);
}

static void q_detached(struct worker *w, const char *sql, int n, const char *const *p)
{
    if (pg_query(w->pg, sql, n, p, on_logged, NULL) < 0)
        log_warn("PostgreSQL queue full: a statement was dropped");
}

static void event(struct job *j, const char *kind, const char *msg)
{
    const char *p[3] = {j->instance_id, kind, msg};
    if (!j->instance_id[0])
        return;
    q_detached(j->rn->w,
               "INSERT INTO instance_events (instance_id, kind, message) SELECT $1, $2, $3"
               " WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)",
               3, p);
}

static void dcall(struct job *j, const char *method, const char *path, const char *body,
                  long timeout_ms, docker_cb cb)
{
    if (docker_request(j->rn->w->docker, method, path, body, timeout_ms, cb, j) < 0)
        job_fail(j, "the worker could not start a Docker request", true);
}

/* Docker failed before an answer (status 0) or answered 5xx: worth a retry. */
static void docker_failed(struct job *j, const char *what, int status, const char *body,
                          size_t len, const char *err)
{
    char msg[600], why[900];
    if (status == 0) {
        snprintf(why, sizeof(why), "%s: %s", what, err ? err : "Docker did not answer");
        job_fail(j, why, true);
        return;
    }
    worker_docker_message(body, len, msg, sizeof(msg));
    snprintf(why, sizeof(why), "%s: Docker said %s (HTTP %d)", what, msg, status);
    job_fail(j, why, status >= 500);
}

/* ---- lifecycle of a job object ---- */

static void job_release(struct job *j)
{
    struct runner *rn = j->rn;
    if (j->dead)
        return;
    j->dead = true;
    ev_timer_stop(rn->w->loop, &j->timer);
    /* a job that ends (failed, say) while it held a network's pending mark
     * lets the next job of that user at it */
    for (struct net_pending **pp = &rn->nets; *pp;) {
        struct net_pending *n = *pp;
        if (n->owner == j) {
            *pp = n->next;
            free(n);
        } else {
            pp = &n->next;
        }
    }
    /* the next job of the same instance may go */
    for (struct job *o = rn->jobs; o; o = o->next) {
        if (o->waiting && !o->dead && strcmp(o->instance_id, j->instance_id) == 0) {
            o->waiting = false;
            job_step_load(o);
            break;
        }
    }
    ev_check_start(rn->w->loop, &rn->reaper);
    pop_next(rn);
}

/* Done with the job here: take it off :active and release it. */
static void job_finish(struct job *j)
{
    struct runner *rn = j->rn;
    if (!redisq_command(rn->w->rq, NULL, NULL, "LREM %s 1 %s", rn->active_key, j->id))
        log_warn("job %s: not removed from %s (Redis down); reconcile will see it done",
                 j->id, rn->active_key);
    log_info("job %s (%s %s) finished in %lld ms", j->id, j->kind, j->instance_id,
             (long long)(util_now_ms() - j->t0));
    job_release(j);
}

static void on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
    struct runner *rn = w->data;
    struct job **pp = &rn->jobs;
    ev_check_stop(loop, w);
    while (*pp) {
        struct job *j = *pp;
        if (j->dead) {
            *pp = j->next;
            rn->njobs--;
            json_decref(j->spec);
            json_decref(j->ports);
            json_decref(j->vols);
            free(j);
        } else {
            pp = &j->next;
        }
    }
}

static void on_done_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err)
        log_warn("job %s: outcome not written: %s", j->id, err);
    job_finish(j);
}

/* The success statement: job done, instance status/event as given. */
static void job_done(struct job *j, const char *status, const char *ev_kind, const char *ev_msg)
{
    const char *p[5] = {j->id, j->instance_id[0] ? j->instance_id : NULL, status, ev_kind, ev_msg};
    q(j,
      "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now()"
      " WHERE id = $1), ie AS (INSERT INTO instance_events (instance_id, kind, message)"
      " SELECT $2, $4, $5 WHERE $2::uuid IS NOT NULL AND $4::text IS NOT NULL AND EXISTS"
      " (SELECT 1 FROM instances WHERE id = $2))"
      " UPDATE instances SET status = $3, error = NULL,"
      " started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,"
      " stopped_at = CASE WHEN $3 = 'stopped' THEN now() ELSE stopped_at END"
      " WHERE id = $2 AND $3::text IS NOT NULL AND status <> 'deleted'",
      5, p, on_done_written);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct job *j = w->data;
    /* drop what the previous attempt loaded */
    json_decref(j->spec);
    json_decref(j->ports);
    json_decref(j->vols);
    j->spec = j->ports = j->vols = NULL;
    j->vol_i = 0;
    job_step_load(j);
}

static void on_fail_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err)
        log_warn("job %s: failure not written: %s", j->id, err);
    job_finish(j);
}

static void on_retry_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    double delay;
    if (err) {
        /* PostgreSQL is down: keep the job and try it again later */
        log_warn("job %s: retry not written: %s", j->id, err);
    }
    delay = 1.0;
    for (int i = 1; i < j->attempts && delay < 30.0; i++)
        delay *= 2;
    if (delay > 30.0)
        delay = 30.0;
    ev_timer_stop(j->rn->w->loop, &j->timer);
    ev_timer_set(&j->timer, delay, 0.);
    ev_timer_start(j->rn->w->loop, &j->timer);
}

static void on_cleanup_done(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status != 204 && status != 404)
        log_warn("removing a half-created container: HTTP %d %s", status, err ? err : "");
}

static void job_fail(struct job *j, const char *why, bool retryable)
{
    struct worker *w = j->rn->w;
    bool final = !retryable || j->attempts >= w->cfg->job_max_attempts;
    char attempts[16];

    if (j->dead)
        return;
    snprintf(attempts, sizeof(attempts), "%d", j->attempts);
    log_warn("job %s (%s %s) attempt %d: %s%s", j->id, j->kind, j->instance_id, j->attempts, why,
             final ? " -- giving up" : " -- will retry");
    if (!final) {
        char backoff[32];
        snprintf(backoff, sizeof(backoff), "%.3f", job_backoff_s(j->attempts));
        const char *p[5] = {j->id, why, attempts, j->instance_id[0] ? j->instance_id : NULL,
                            backoff};
        q(j,
          "WITH ie AS (INSERT INTO instance_events (instance_id, kind, message) SELECT $4,"
          " 'retry', 'attempt ' || $3 || ' failed: ' || $2 WHERE $4::uuid IS NOT NULL AND"
          " EXISTS (SELECT 1 FROM instances WHERE id = $4))"
          " UPDATE jobs SET status = 'queued', error = $2,"
          " not_before = now() + $5::double precision * interval '1 second'"
          " WHERE id = $1 AND status = 'running'",
          5, p, on_retry_written);
        return;
    }
    /* Half-created containers go; the instance stays in `error` with its ports
     * and volumes, for the owner to start again or delete. */
    if (strcmp(j->kind, "create") == 0 && j->cname[0]) {
        char path[128];
        snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
        if (docker_request(w->docker, "DELETE", path, NULL, 30000, on_cleanup_done, NULL) < 0)
            log_warn("cannot remove half-created container %s", j->cname);
    }
    {
        const char *p[3] = {j->id, why, j->instance_id[0] ? j->instance_id : NULL};
        q(j,
          "WITH jf AS (UPDATE jobs SET status = 'failed', error = $2, finished_at = now()"
          " WHERE id = $1), ie AS (INSERT INTO instance_events (instance_id, kind, message)"
          " SELECT $3, 'failed', $2 WHERE $3::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM"
          " instances WHERE id = $3))"
          " UPDATE instances SET status = 'error', error = $2 WHERE id = $3 AND"
          " status <> 'deleted'",
          3, p, on_fail_written);
    }
}

/* ---- create: container (network, image on a miss), start ----
 *
 * The common case costs Docker two calls, as by hand: create, then start.
 * Named volumes are made by create itself (with berth's labels, from the
 * mount's VolumeOptions). The image is looked after only when create answers
 * 404, the user's network only when start does (Docker resolves it there);
 * each is made sure of once per attempt, then create runs again (an existing
 * container answers 409: it is inspected and started).
 *
 * An instance with an HTTP port (issue 10) is created with its address on the
 * user network (c_prepare): stored, or drawn (c_alloc) in the network's
 * subnet, which the worker keeps per network (rn->subnets) from inspect and
 * its own creates, so the common case costs no Docker call more; unknown, the
 * address is drawn in the network's first-choice subnet and checked once the
 * network has been looked up. An existing container that publishes the HTTP
 * port or has another address is removed and made again (container_stale);
 * that is how instances from before the change move over on their next start
 * or restart (needs_move). */

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
    if (err) {
        job_fail(j, "new host ports could not be reserved", true);
        return;
    }
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
    c_prepare(j);
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
            c_network(j); /* then create again: 409, inspect, start */
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

static void on_inspected(int status, const char *body, size_t len, const char *err, void *arg);

static void c_image(struct job *j);

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
            c_network(j);
            return;
        }
    }
    if (status == 404) {
        /* the fast path tries create first; only a miss costs the lookup */
        if (!j->image_ready) {
            c_image(j);
            return;
        }
    }
    docker_failed(j, "creating the container failed", status, body, len, err);
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
    hc = json_pack("{s:I, s:I, s:I, s:{s:s, s:i}, s:[s], s:o, s:o, s:s}", "Memory",
                   (json_int_t)json_integer_value(json_object_get(spec, "memory_mb")) * 1048576,
                   "NanoCpus",
                   (json_int_t)(json_number_value(json_object_get(spec, "cpus")) * 1e9 + 0.5),
                   "PidsLimit", (json_int_t)json_integer_value(json_object_get(spec, "pids_limit")),
                   "RestartPolicy", "Name", policy, "MaximumRetryCount",
                   strcmp(policy, "on-failure") == 0 ? 5 : 0, "SecurityOpt", "no-new-privileges",
                   "PortBindings", bindings, "Mounts", mounts, "NetworkMode", j->net);
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

static void c_create(struct job *j)
{
    char path[160];
    json_t *body = container_body(j);
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

static void on_pull_line(const char *line, size_t len, void *arg)
{
    struct job *j = arg;
    json_t *v = json_loadb(line, len, 0, NULL);
    const char *e = json_string_value(json_object_get(v, "error"));
    if (!e) /* an error answer (404 and the like) is {"message": ...} */
        e = json_string_value(json_object_get(v, "message"));
    const char *st = json_string_value(json_object_get(v, "status"));
    if (e)
        snprintf(j->pull_error, sizeof(j->pull_error), "%s", e);
    else if (st && !json_object_get(v, "id")) /* overall lines, not per-layer progress */
        event(j, "pulling", st);
    json_decref(v);
}

static void on_pulled(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    char why[900];
    if (status == 200 && !j->pull_error[0]) {
        event(j, "pulled", json_string_value(json_object_get(j->spec, "image")));
        j->image_ready = true;
        c_create(j);
        return;
    }
    if (status == 0) {
        docker_failed(j, "pulling the image failed", status, body, len, err);
        return;
    }
    if (!j->pull_error[0])
        worker_docker_message(body, len, j->pull_error, sizeof(j->pull_error));
    snprintf(why, sizeof(why), "image %s could not be pulled: %s",
             json_string_value(json_object_get(j->spec, "image")), j->pull_error);
    job_fail(j, why, false);
}

static void on_image(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    const char *image = json_string_value(json_object_get(j->spec, "image"));
    if (status == 200) {
        /* present after all: create's 404 was about something else */
        j->image_ready = true;
        c_create(j);
        return;
    }
    if (status == 404) {
        char path[400];
        event(j, "pulling", image);
        j->pull_error[0] = '\0';
        snprintf(path, sizeof(path), "/images/create?fromImage=%s", image);
        if (docker_stream(j->rn->w->docker, "POST", path, NULL, 600000, on_pull_line, on_pulled,
                          j) < 0)
            job_fail(j, "the worker could not start the image pull", true);
        return;
    }
    docker_failed(j, "looking up the image failed", status, body, len, err);
}

static void c_image(struct job *j)
{
    char path[400];
    const char *image = json_string_value(json_object_get(j->spec, "image"));
    if (!tmpl_image_ok(image)) {
        job_fail(j, "the instance's image reference is not valid", false);
        return;
    }
    snprintf(path, sizeof(path), "/images/%s/json", image);
    dcall(j, "GET", path, NULL, 30000, on_image);
}

static struct net_pending *net_find(struct runner *rn, const char *name)
{
    for (struct net_pending *n = rn->nets; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void on_net_wait(struct ev_loop *loop, ev_timer *w, int revents);

/* The network's lookup or creation is over (made, found or failed): the jobs
 * of that user waiting on it go on at once, not at their next look, so that
 * the addresses they draw again on a miss fall into one debounce window. */
static void net_done(struct runner *rn, const char *name)
{
    for (struct net_pending **pp = &rn->nets; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct net_pending *n = *pp;
            *pp = n->next;
            free(n);
            break;
        }
    }
    for (struct job *j = rn->jobs; j; j = j->next) {
        if (!j->dead && ev_is_active(&j->timer) && j->timer.cb == on_net_wait &&
            strcmp(j->net, name) == 0) {
            ev_timer_stop(rn->w->loop, &j->timer);
            ev_timer_set(&j->timer, 0., 0.);
            ev_timer_start(rn->w->loop, &j->timer);
        }
    }
}

/* network_pool: its network address (host order) and how many /24s it has. */
static int pool_parse(const char *pool, uint32_t *ip, uint32_t *count)
{
    char base[32];
    const char *slash = pool ? strchr(pool, '/') : NULL;
    struct in_addr a;
    long prefix;

    if (!slash || (size_t)(slash - pool) >= sizeof(base) ||
        !util_parse_long(slash + 1, 8, 24, &prefix))
        return -1;
    memcpy(base, pool, (size_t)(slash - pool));
    base[slash - pool] = '\0';
    if (inet_pton(AF_INET, base, &a) != 1)
        return -1;
    *count = 1u << (24 - prefix);
    *ip = ntohl(a.s_addr) & ~((1u << (32 - prefix)) - 1);
    return 0;
}

int worker_subnet(const char *pool, const char *name, int attempt, char *out, size_t outlen)
{
    uint32_t ip, count, h = 2166136261u;

    if (pool_parse(pool, &ip, &count) < 0)
        return -1;
    for (const char *p = name; *p; p++) /* FNV-1a: a user keeps the same first choice */
        h = (h ^ (unsigned char)*p) * 16777619u;
    ip += ((h + (uint32_t)attempt) % count) << 8;
    snprintf(out, outlen, "%u.%u.%u.0/24", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255);
    return 0;
}

int worker_subnet_pick(const char *pool, const char *name, int from, worker_subnet_taken taken,
                       void *arg, int *attempt, char *out, size_t outlen)
{
    uint32_t ip, count;
    if (pool_parse(pool, &ip, &count) < 0)
        return -1;
    for (uint32_t a = from < 0 ? 0 : (uint32_t)from; a < count; a++) {
        if (worker_subnet(pool, name, (int)a, out, outlen) < 0)
            return -1;
        if (!taken || !taken(out, arg)) {
            *attempt = (int)a;
            return 0;
        }
    }
    return -2;
}

/* ---- what the worker knows of user networks' subnets ---- */

static struct net_subnet *subnet_find(struct runner *rn, const char *name)
{
    for (struct net_subnet *n = rn->subnets; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void subnet_set(struct runner *rn, const char *name, const char *cidr, const char *gw)
{
    struct net_subnet *n = subnet_find(rn, name);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n)
            return; /* the next create looks the network up again */
        util_strlcpy(n->name, name, sizeof(n->name));
        n->next = rn->subnets;
        rn->subnets = n;
    }
    util_strlcpy(n->cidr, cidr, sizeof(n->cidr));
    util_strlcpy(n->gw, gw ? gw : "", sizeof(n->gw));
}

void runner_net_forget(struct runner *rn, const char *name)
{
    if (!rn)
        return;
    /* its subnet is free for others again (until a listing says otherwise) */
    for (size_t i = 0; i < rn->nused;) {
        if (strcmp(rn->used[i].name, name) == 0)
            rn->used[i] = rn->used[--rn->nused];
        else
            i++;
    }
    for (struct net_subnet **pp = &rn->subnets; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct net_subnet *n = *pp;
            *pp = n->next;
            free(n);
            return;
        }
    }
}

/* ---- which subnets are in use on this dockerd ---- */

struct taken_ctx {
    struct runner *rn;
    const char *name; /* the network a subnet is being chosen for */
};

/* Taken for that network: a subnet in use by another network (listed, known
 * to the worker, or being made by berth now), or one Docker called
 * overlapping lately. The network's own subnet is not taken for it: a user
 * keeps theirs. */
static bool subnet_taken(const char *cidr, void *arg)
{
    const struct taken_ctx *c = arg;
    const struct runner *rn = c->rn;
    ev_tstamp now = ev_now(rn->w->loop);
    for (size_t i = 0; i < rn->nused; i++) {
        const struct used_subnet *u = &rn->used[i];
        if ((u->until == 0. || u->until > now) && strcmp(u->name, c->name) != 0 &&
            upstream_overlaps(cidr, u->cidr))
            return true;
    }
    for (const struct net_subnet *n = rn->subnets; n; n = n->next)
        if (strcmp(n->name, c->name) != 0 && upstream_overlaps(cidr, n->cidr))
            return true;
    for (const struct net_pending *n = rn->nets; n; n = n->next)
        if (n->cidr[0] && strcmp(n->name, c->name) != 0 && upstream_overlaps(cidr, n->cidr))
            return true;
    return false;
}

/* The subnet for network name: the first of its attempts from `from` on
 * that is free on this dockerd. 0 / -1 (bad pool) / -2 (pool full). */
static int net_pick(struct runner *rn, const char *name, int from, int *attempt, char *out,
                    size_t outlen)
{
    struct taken_ctx c = {rn, name};
    return worker_subnet_pick(rn->w->cfg->network_pool, name, from, subnet_taken, &c, attempt, out,
                              outlen);
}

static int used_add(struct used_subnet **arr, size_t *n, size_t *cap, const char *name,
                    const char *cidr, ev_tstamp until)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct used_subnet *a = realloc(*arr, nc * sizeof(*a));
        if (!a)
            return -1;
        *arr = a;
        *cap = nc;
    }
    util_strlcpy((*arr)[*n].name, name, sizeof((*arr)[*n].name));
    util_strlcpy((*arr)[*n].cidr, cidr, sizeof((*arr)[*n].cidr));
    (*arr)[*n].until = until;
    (*n)++;
    return 0;
}

static void runner_begin(struct runner *rn);

static void on_networks_listed(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct runner *rn = arg;
    struct worker *w = rn->w;
    json_t *arr = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    rn->listing = false;
    if (json_is_array(arr)) {
        struct used_subnet *nu = NULL;
        size_t n = 0, cap = 0, i, k;
        bool oom = false;
        json_t *net, *c;
        ev_tstamp now = ev_now(w->loop);
        for (i = 0; i < rn->nused && !oom; i++) /* overlaps Docker told of lately stay */
            if (rn->used[i].until > now)
                oom = used_add(&nu, &n, &cap, rn->used[i].name, rn->used[i].cidr,
                               rn->used[i].until) < 0;
        json_array_foreach(arr, i, net)
        {
            const char *name = json_string_value(json_object_get(net, "Name"));
            json_t *labels = json_object_get(net, "Labels");
            const char *cl = json_string_value(json_object_get(labels, "berth.cluster"));
            const char *node = json_string_value(json_object_get(labels, "berth.node"));
            char cidr[48], gw[48];
            if (!name || oom)
                continue;
            json_array_foreach(json_object_get(json_object_get(net, "IPAM"), "Config"), k, c)
            {
                const char *sub = json_string_value(json_object_get(c, "Subnet"));
                if (sub && !strchr(sub, ':') && strlen(sub) < sizeof(cidr) &&
                    used_add(&nu, &n, &cap, name, sub, 0.) < 0)
                    oom = true;
            }
            /* a network of this worker's it has not looked at yet (it was
             * restarted): its subnet is known now, no guess needed */
            if (cl && node && strcmp(cl, w->cfg->cluster) == 0 && strcmp(node, w->cfg->node) == 0 &&
                !subnet_find(rn, name) && !net_find(rn, name) &&
                upstream_ipam_subnet(net, cidr, sizeof(cidr), gw, sizeof(gw)) == 0)
                subnet_set(rn, name, cidr, gw);
        }
        if (oom) {
            free(nu);
            log_warn("out of memory reading Docker's networks; the subnets in use stay as they were");
        } else {
            free(rn->used);
            rn->used = nu;
            rn->nused = n;
            if (!rn->started)
                log_info("Docker's networks listed: %zu IPv4 subnets in use", n);
            else
                log_debug("Docker's networks listed: %zu IPv4 subnets in use", n);
        }
    } else {
        log_warn("cannot list Docker's networks (HTTP %d %s): a new user network's subnet is "
                 "chosen from what the worker knew before",
                 status, err ? err : "");
    }
    json_decref(arr);
    if (!rn->started)
        runner_begin(rn);
    if (rn->list_again) {
        rn->list_again = false;
        runner_subnets_refresh(rn);
    }
}

void runner_subnets_refresh(struct runner *rn)
{
    if (!rn)
        return;
    if (rn->listing) {
        rn->list_again = true; /* a listing that started before the change */
        return;
    }
    rn->listing = true;
    if (docker_request(rn->w->docker, "GET", "/networks", NULL, 10000, on_networks_listed, rn) < 0) {
        rn->listing = false;
        log_warn("cannot start listing Docker's networks");
        if (!rn->started)
            runner_begin(rn);
    }
}

static void net_create(struct job *j);

static void on_net_created(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    char msg[600];
    if (status == 201) {
        char subnet[32];
        net_done(j->rn, j->net);
        j->net_ready = true;
        /* Docker's gateway is the subnet's first host, as nothing else is asked */
        if (worker_subnet(j->rn->w->cfg->network_pool, j->net, j->net_try, subnet,
                          sizeof(subnet)) == 0)
            subnet_set(j->rn, j->net, subnet, "");
        c_prepare(j);
        return;
    }
    worker_docker_message(body, len, msg, sizeof(msg));
    if (status >= 400 && strstr(msg, "overlap")) {
        /* that /24 is in use (another stack's network made since the last
         * listing, say): kept as taken, the list read again, the next one */
        char subnet[32];
        struct net_pending *n = net_find(j->rn, j->net);
        if (n)
            n->cidr[0] = '\0';
        if (worker_subnet(j->rn->w->cfg->network_pool, j->net, j->net_try, subnet,
                          sizeof(subnet)) == 0) {
            size_t cap = j->rn->nused; /* grows it only when full */
            log_info("network %s: subnet %s is in use on this Docker host (not in the last "
                     "listing); trying the next",
                     j->net, subnet);
            (void)used_add(&j->rn->used, &j->rn->nused, &cap, "", subnet,
                           ev_now(j->rn->w->loop) + OVERLAP_KEEP_S);
        }
        runner_subnets_refresh(j->rn);
        j->net_try++;
        net_create(j);
        return;
    }
    net_done(j->rn, j->net);
    if (status == 409 && ++j->net_looks < 3) { /* made meanwhile: look at it */
        c_network(j);
        return;
    }
    docker_failed(j, "creating the user's network failed", status, body, len, err);
}

static void net_create(struct job *j)
{
    struct runner *rn = j->rn;
    char subnet[32];
    json_t *b;
    char *text;
    struct net_pending *n;
    int rc = net_pick(rn, j->net, j->net_try, &j->net_try, subnet, sizeof(subnet));
    if (rc == -2) {
        net_done(rn, j->net);
        job_fail(j, "every subnet of network_pool is in use on this Docker host", true);
        return;
    }
    if (rc < 0) {
        net_done(rn, j->net);
        job_fail(j, "network_pool is not an IPv4 CIDR with a prefix of 8 to 24", false);
        return;
    }
    if ((n = net_find(rn, j->net)) != NULL) /* taken for others while it is made */
        util_strlcpy(n->cidr, subnet, sizeof(n->cidr));
    b = json_pack("{s:s, s:b, s:s, s:{s:[{s:s}]}, s:{s:s, s:s, s:s}}", "Name", j->net,
                  "CheckDuplicate", 1, "Driver", "bridge", "IPAM", "Config", "Subnet", subnet,
                  "Labels", "berth.user", j->user, "berth.node", rn->w->cfg->node,
                  "berth.cluster", rn->w->cfg->cluster);
    text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    /* A busy Docker (a hundred creates at once) can take more than 30 s to
     * make a network; a create given up on early may still happen, and the
     * retry would make a second network of the same name. */
    if (!text || docker_request(rn->w->docker, "POST", "/networks/create", text, 180000,
                                on_net_created, j) < 0) {
        net_done(rn, j->net);
        job_fail(j, "the worker could not start creating the network", true);
    }
    free(text);
}

/* Another job of the user had the network in hand. Its subnet known now
 * (that job made or looked at it): on the way every job goes, which checks
 * the address drawn on a guess and draws it again on a miss; else look. */
static void on_net_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct job *j = w->data;
    w->cb = on_retry_timer; /* back to the normal use of this timer */
    if (!net_find(j->rn, j->net) && subnet_find(j->rn, j->net)) {
        c_prepare(j);
        return;
    }
    c_network(j);
}

static void on_net(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 200) {
        json_t *v = json_loadb(body, len, 0, NULL);
        char cidr[48], gw[48];
        net_done(j->rn, j->net);
        j->net_ready = true;
        if (upstream_ipam_subnet(v, cidr, sizeof(cidr), gw, sizeof(gw)) == 0)
            subnet_set(j->rn, j->net, cidr, gw);
        json_decref(v);
        c_prepare(j);
        return;
    }
    if (status != 404) {
        net_done(j->rn, j->net);
        docker_failed(j, "looking up the user's network failed", status, body, len, err);
        return;
    }
    j->net_try = 0;
    net_create(j); /* net_done when it is made */
}

/* The user's network: looked up, made when missing. One job of a user at a
 * time does it (the pending mark covers lookup and creation both): Docker's
 * duplicate check is not atomic, and two creates of one name make two
 * networks that no container can then be started on ("ambiguous"). */
static void c_network(struct job *j)
{
    struct runner *rn = j->rn;
    char path[200];
    struct net_pending *n;
    if (net_find(rn, j->net)) {
        /* another job of this user is at it: look again shortly */
        ev_timer_stop(rn->w->loop, &j->timer);
        ev_set_cb(&j->timer, on_net_wait);
        ev_timer_set(&j->timer, 0.05, 0.);
        ev_timer_start(rn->w->loop, &j->timer);
        return;
    }
    n = calloc(1, sizeof(*n));
    if (!n) {
        job_fail(j, "out of memory", true);
        return;
    }
    util_strlcpy(n->name, j->net, sizeof(n->name));
    n->owner = j;
    n->next = rn->nets;
    rn->nets = n;
    snprintf(path, sizeof(path), "/networks/%s", j->net);
    dcall(j, "GET", path, NULL, 120000, on_net);
}

static void on_creating_marked(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        job_fail(j, "the instance status could not be written", true);
        return;
    }
    c_prepare(j);
}

static void c_alloc(struct job *j);

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
    c_prepare(j);     /* the network, when the subnet was a guess; then create */
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
static void c_prepare(struct job *j)
{
    const struct net_subnet *sn;
    if (j->http_port <= 0) {
        c_create(j);
        return;
    }
    sn = subnet_find(j->rn, j->net);
    if (!sn) {
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
        int attempt;
        if (!j->addr[0] && !j->guessed &&
            net_pick(j->rn, j->net, 0, &attempt, j->alloc_cidr, sizeof(j->alloc_cidr)) == 0) {
            j->guessed = true;
            j->alloc_gw[0] = '\0';
            c_alloc(j);
            return;
        }
        c_network(j); /* looked up or made, then here again */
        return;
    }
    if (j->addr[0] && upstream_usable(j->addr, sn->cidr, sn->gw)) {
        c_create(j);
        return;
    }
    if (j->addr[0])
        event(j, "address", "the stored address is not on the user network's subnet; assigning another");
    j->addr[0] = '\0';
    util_strlcpy(j->alloc_cidr, sn->cidr, sizeof(j->alloc_cidr));
    util_strlcpy(j->alloc_gw, sn->gw, sizeof(j->alloc_gw));
    c_alloc(j);
}

/* Full create path (also start/restart of a missing container). */
static void c_begin(struct job *j)
{
    const char *p[1] = {j->instance_id};
    j->net_ready = j->image_ready = false;
    job_route_put(j); /* now, not after a round trip: a burst's routes fall together */
    event(j, "creating", "creating the container");
    q(j,
      "UPDATE instances SET status = 'creating' WHERE id = $1 AND status IN ('pending',"
      " 'creating', 'error', 'stopped')",
      1, p, on_creating_marked);
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

/* ---- delete ---- */

static void d_volume_next(struct job *j);

struct net_release {
    struct worker *w;
    char net[160];
};

static struct net_release *net_release_new(struct job *j)
{
    struct net_release *n = calloc(1, sizeof(*n));
    if (n) {
        n->w = j->rn->w;
        util_strlcpy(n->net, j->net, sizeof(n->net));
    }
    return n;
}

static void on_net_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status != 204 && status != 404)
        log_debug("network not removed (HTTP %d): still in use", status);
}

/* The network of a user: berth-<cluster>-<user>. */
static void net_name(const struct worker *w, const char *user, char *out, size_t size)
{
    snprintf(out, size, "berth-%s-%s", w->cfg->cluster, user);
}

/* Ask Docker to remove a network; one still in use stays (reconcile tries
 * again on its next pass). */
static void net_remove(struct worker *w, const char *name)
{
    char path[200];
    runner_net_forget(w->runner, name);
    snprintf(path, sizeof(path), "/networks/%s", name);
    if (docker_request(w->docker, "DELETE", path, NULL, 30000, on_net_removed, NULL) < 0)
        log_warn("cannot remove network %s", name);
}

static void on_user_left(PGresult *res, const char *err, void *arg)
{
    struct net_release *n = arg;
    if (n && !err && strcmp(PQgetvalue(res, 0, 0), "0") == 0)
        net_remove(n->w, n->net);
    free(n);
}

static void on_deleted_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        job_fail(j, "the deletion could not be recorded", true);
        return;
    }
    if (j->rn->w->routes)
        routes_remove(j->rn->w->routes, j->instance_id);
    /* the user's network goes with their last instance on this node */
    {
        const char *p[2] = {j->instance_id, j->rn->w->cfg->node};
        if (pg_query(j->rn->w->pg,
                     "SELECT count(*) FROM instances WHERE user_id = (SELECT user_id FROM"
                     " instances WHERE id = $1) AND node = $2 AND status <> 'deleted'",
                     2, p, on_user_left, net_release_new(j)) < 0)
            log_warn("cannot check the user's remaining instances");
    }
    job_finish(j);
}

static void d_finish(struct job *j)
{
    const char *p[3] = {j->id, j->instance_id, j->delete_volumes ? "t" : "f"};
    q(j,
      "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now() WHERE"
      " id = $1), pd AS (DELETE FROM instance_ports WHERE instance_id = $2),"
      " vd AS (UPDATE volumes SET instance_id = NULL, deleted_at = CASE WHEN $3::bool THEN now()"
      " ELSE deleted_at END WHERE instance_id = $2),"
      " ie AS (INSERT INTO instance_events (instance_id, kind, message) VALUES ($2, 'deleted',"
      " CASE WHEN $3::bool THEN 'container and volumes removed' ELSE 'container removed;"
      " volumes kept' END))"
      " UPDATE instances SET status = 'deleted', desired = 'deleted', deleted_at = now(),"
      " container_id = NULL, error = NULL WHERE id = $2",
      3, p, on_deleted_written);
}

static void on_volume_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        j->vol_i++;
        d_volume_next(j);
        return;
    }
    docker_failed(j, "removing a volume failed", status, body, len, err);
    /* 409 (in use) is worth a retry: the container may still be going */
}

static void d_volume_next(struct job *j)
{
    json_t *v = j->delete_volumes ? json_array_get(j->vols, j->vol_i) : NULL;
    char path[128];
    const char *vid;
    if (!v) {
        d_finish(j);
        return;
    }
    vid = json_string_value(json_object_get(v, "id"));
    if (!valid_uuid(vid)) {
        j->vol_i++;
        d_volume_next(j);
        return;
    }
    snprintf(path, sizeof(path), "/volumes/berth-%s", vid);
    dcall(j, "DELETE", path, NULL, 60000, on_volume_removed);
}

static void on_container_removed(int status, const char *body, size_t len, const char *err,
                                 void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        j->vol_i = 0;
        d_volume_next(j);
        return;
    }
    docker_failed(j, "removing the container failed", status, body, len, err);
}

static void d_begin(struct job *j)
{
    char path[128];
    /* The route goes first: the instance is going away, and a burst of
     * deletes then falls into one or two reloads, not one per container
     * as Docker removes them. */
    if (j->rn->w->routes)
        routes_remove(j->rn->w->routes, j->instance_id);
    snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
    dcall(j, "DELETE", path, NULL, 60000, on_container_removed);
}

/* ---- volume_delete ---- */

static void on_vol_row(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        job_fail(j, "the volume deletion could not be recorded", true);
        return;
    }
    job_finish(j);
}

static void on_vol_deleted(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        const char *p[2] = {j->id, j->volume_id};
        q(j,
          "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now() WHERE"
          " id = $1) UPDATE volumes SET deleted_at = coalesce(deleted_at, now()) WHERE id = $2",
          2, p, on_vol_row);
        return;
    }
    if (status == 409) {
        job_fail(j, "the volume is still in use by a container", true);
        return;
    }
    docker_failed(j, "removing the volume failed", status, body, len, err);
}

/* ---- user_delete: delete every instance of the user, then the user ---- */

static void on_user_gone(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        job_fail(j, "the user could not be removed", true);
        return;
    }
    /* The user's network normally goes with their last instance; a burst of
     * deletes can leave it (Docker still releasing an endpoint when the last
     * delete asked). The user is gone now: so is it. */
    if (PQntuples(res) == 1 && valid_name(PQgetvalue(res, 0, 0))) {
        char name[160];
        net_name(j->rn->w, PQgetvalue(res, 0, 0), name, sizeof(name));
        net_remove(j->rn->w, name);
    }
    job_finish(j);
}

static void on_user_pending(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *p[2] = {j->user_id, j->id};
    if (err) {
        job_fail(j, "the user's instances could not be listed", true);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (!redisq_command(j->rn->w->rq, NULL, NULL, "LPUSH " KEY_JOBS_FMT " %s",
                            PQgetvalue(res, i, 1), PQgetvalue(res, i, 0)))
            log_warn("job %s not pushed (Redis down): reconcile will", PQgetvalue(res, i, 0));
    }
    (void)p;
    /* wait for the deletes: not a failure, so the attempt does not count */
    q_detached(j->rn->w, "UPDATE jobs SET attempts = greatest(attempts - 1, 0) WHERE id = $1", 1,
               &p[1]);
    job_fail(j, "waiting for the user's instances to be deleted", true);
}

static void u_check(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *p[2] = {j->user_id, j->id};
    if (err) {
        job_fail(j, "the user's instances could not be listed", true);
        return;
    }
    if (strtol(PQgetvalue(res, 0, 0), NULL, 10) > 0) {
        /* queue deletes for live instances without one */
        const char *p2[2] = {j->user_id, j->delete_volumes ? "{\"delete_volumes\":true}"
                                                           : "{\"delete_volumes\":false}"};
        q(j,
          "WITH todo AS (UPDATE instances SET status = 'deleting', desired = 'deleted' WHERE"
          " user_id = $1 AND status NOT IN ('deleted', 'deleting') RETURNING id, node)"
          " INSERT INTO jobs (id, kind, node, instance_id, user_id, args) SELECT"
          " gen_random_uuid(), 'delete', node, id, $1, $2::jsonb FROM todo RETURNING id, node",
          2, p2, on_user_pending);
        return;
    }
    q(j,
      "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now(), user_id ="
      " NULL WHERE id = $2), jn AS (UPDATE jobs SET user_id = NULL WHERE user_id = $1 AND id <>"
      " $2), vd AS (DELETE FROM volumes WHERE user_id = $1), idel AS (DELETE FROM instances WHERE"
      " user_id = $1) DELETE FROM users WHERE id = $1 AND disabled RETURNING username",
      2, p, on_user_gone);
}

/* ---- dispatch ---- */

static bool vols_valid(const json_t *vols)
{
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v)
    {
        if (!valid_uuid(json_string_value(json_object_get(v, "id"))))
            return false;
    }
    return true;
}

static void on_instance_loaded(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *k = j->kind;
    if (err) {
        job_fail(j, "the instance could not be read", true);
        return;
    }
    if (PQntuples(res) != 1) {
        job_done(j, NULL, NULL, NULL); /* the instance row is gone: nothing to do */
        return;
    }
    j->spec = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    util_strlcpy(j->user, PQgetvalue(res, 0, 1), sizeof(j->user));
    util_strlcpy(j->name, PQgetvalue(res, 0, 2), sizeof(j->name));
    util_strlcpy(j->status, PQgetvalue(res, 0, 3), sizeof(j->status));
    util_strlcpy(j->desired, PQgetvalue(res, 0, 4), sizeof(j->desired));
    j->ports = json_loads(PQgetvalue(res, 0, 5), 0, NULL);
    j->vols = json_loads(PQgetvalue(res, 0, 6), 0, NULL);
    util_strlcpy(j->addr, PQgetvalue(res, 0, 7), sizeof(j->addr));
    j->http_port = json_is_integer(json_object_get(j->spec, "http_port"))
                       ? (long)json_integer_value(json_object_get(j->spec, "http_port"))
                       : 0;
    j->addr_tries = j->net_looks = 0;
    j->recreated = j->guessed = false;
    if (!json_is_object(j->spec) || !json_is_array(j->ports) || !json_is_array(j->vols) ||
        !valid_name(j->user) || !valid_name(j->name) || !vols_valid(j->vols)) {
        job_fail(j, "the instance's stored definition is not valid", false);
        return;
    }
    snprintf(j->cname, sizeof(j->cname), "berth-%s", j->instance_id);
    net_name(j->rn->w, j->user, j->net, sizeof(j->net));
    if (strcmp(j->status, "deleted") == 0) {
        job_done(j, NULL, NULL, NULL);
        return;
    }
    if (strcmp(k, "delete") == 0) {
        d_begin(j);
    } else if (strcmp(j->status, "deleting") == 0) {
        job_done(j, NULL, "skipped", "the instance is being deleted");
    } else if (strcmp(k, "create") == 0) {
        c_begin(j);
    } else if (strcmp(k, "start") == 0) {
        s_start(j);
    } else if (strcmp(k, "stop") == 0) {
        s_stop(j);
    } else if (strcmp(k, "restart") == 0) {
        s_restart(j);
    } else {
        job_fail(j, "unknown job kind", false);
    }
}

/* ---- ssh_keys: a user's keys into their running containers ---- */

static void on_keys_pushed(int failed, void *arg)
{
    /* a container that could not take them has an event saying why; the
     * next start pushes again */
    job_done(arg, NULL, NULL, NULL);
    (void)failed;
}

/* ---- routes_sync: the routes directory against the database ---- */

/* Done once nginx has been reloaded with the result (or 30 s went by), so
 * that whoever waits on the job finds the routes live. */
static void on_routes_settled(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct job *j = w->data;
    struct routes *r = j->rn->w->routes;
    if (r && routes_busy(r) && util_now_ms() - j->t0 < 30000) {
        ev_timer_set(w, 0.1, 0.);
        ev_timer_start(loop, w);
        return;
    }
    ev_set_cb(w, on_retry_timer);
    job_done(j, NULL, NULL, NULL);
}

static void on_result_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err)
        log_warn("job %s: result not written: %s", j->id, err);
    ev_timer_stop(j->rn->w->loop, &j->timer);
    ev_set_cb(&j->timer, on_routes_settled);
    ev_timer_set(&j->timer, 0., 0.);
    ev_timer_start(j->rn->w->loop, &j->timer);
}

static void on_routes_synced(const struct routesync_result *r, const char *err, void *arg)
{
    struct job *j = arg;
    char routes[24], written[24], removed[24];
    const char *p[4] = {j->id, routes, written, removed};
    if (err) {
        job_fail(j, err, true);
        return;
    }
    if (!j->rn->w->routes) {
        job_fail(j, "this worker has no routes directory (box_dir)", false);
        return;
    }
    snprintf(routes, sizeof(routes), "%zu", r->routes);
    snprintf(written, sizeof(written), "%zu", r->written);
    snprintf(removed, sizeof(removed), "%zu", r->removed);
    q(j,
      "UPDATE jobs SET args = args || jsonb_build_object('result', jsonb_build_object('routes',"
      " $2::int, 'written', $3::int, 'removed', $4::int)) WHERE id = $1",
      4, p, on_result_written);
}

static void on_claimed(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err) {
        job_fail(j, "the job could not be claimed", true);
        return;
    }
    if (PQntuples(res) != 1) {
        job_finish(j); /* finished by someone else meanwhile */
        return;
    }
    j->attempts = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (j->instance_id[0]) {
        const char *p[1] = {j->instance_id};
        q(j,
          "SELECT i.spec::text, u.username, i.name, i.status, i.desired, coalesce((SELECT"
          " json_agg(json_build_object('name', p.name, 'port', p.port, 'container_port',"
          " p.container_port) ORDER BY p.name) FROM instance_ports p WHERE p.instance_id ="
          " i.id), '[]')::text, coalesce((SELECT json_agg(json_build_object('id', v.id, 'name',"
          " v.name, 'mount_path', v.mount_path) ORDER BY v.name) FROM volumes v WHERE"
          " v.instance_id = i.id AND v.deleted_at IS NULL), '[]')::text,"
          " coalesce(host(i.upstream_host), '') FROM instances i JOIN users u ON u.id ="
          " i.user_id WHERE i.id = $1",
          1, p, on_instance_loaded);
        return;
    }
    if (strcmp(j->kind, "volume_delete") == 0 && valid_uuid(j->volume_id)) {
        char path[128];
        snprintf(path, sizeof(path), "/volumes/berth-%s", j->volume_id);
        dcall(j, "DELETE", path, NULL, 60000, on_vol_deleted);
        return;
    }
    if (strcmp(j->kind, "user_delete") == 0 && valid_uuid(j->user_id)) {
        const char *p[1] = {j->user_id};
        q(j, "SELECT count(*) FROM instances WHERE user_id = $1 AND status <> 'deleted'", 1, p,
          u_check);
        return;
    }
    if (strcmp(j->kind, "routes_sync") == 0) {
        if (routesync_run(j->rn->w, true, on_routes_synced, j) < 0)
            job_fail(j, "the routes could not be read (PostgreSQL queue full)", true);
        return;
    }
    if (strcmp(j->kind, "ssh_keys") == 0 && valid_uuid(j->user_id)) {
        if (sshkeys_push(j->rn->w, j->user_id, NULL, on_keys_pushed, j) < 0)
            job_fail(j, "the user's instances could not be read (PostgreSQL queue full)", true);
        return;
    }
    job_fail(j, "the job has nothing to act on", false);
}

static void job_claim(struct job *j)
{
    const char *p[1] = {j->id};
    j->t0 = util_now_ms();
    q(j,
      "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at ="
      " coalesce(started_at, now()) WHERE id = $1 AND status IN ('queued', 'running')"
      " RETURNING attempts",
      1, p, on_claimed);
}

static void on_job_loaded(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    double delay;
    const char *status;

    if (err) {
        /* PostgreSQL away: hold the job and look again */
        log_warn("job %s: cannot read its row: %s", j->id, err);
        ev_timer_stop(j->rn->w->loop, &j->timer);
        ev_timer_set(&j->timer, 2.0, 0.);
        ev_timer_start(j->rn->w->loop, &j->timer);
        return;
    }
    if (PQntuples(res) != 1) {
        log_warn("job %s: no such job row; dropped", j->id);
        job_finish(j);
        return;
    }
    status = PQgetvalue(res, 0, 6);
    if (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0) {
        job_finish(j); /* a duplicate of a finished job */
        return;
    }
    util_strlcpy(j->kind, PQgetvalue(res, 0, 0), sizeof(j->kind));
    util_strlcpy(j->instance_id, PQgetvalue(res, 0, 1), sizeof(j->instance_id));
    util_strlcpy(j->volume_id, PQgetvalue(res, 0, 2), sizeof(j->volume_id));
    util_strlcpy(j->user_id, PQgetvalue(res, 0, 3), sizeof(j->user_id));
    j->delete_volumes = strcmp(PQgetvalue(res, 0, 4), "true") == 0;
    j->attempts = (int)strtol(PQgetvalue(res, 0, 5), NULL, 10);
    delay = strtod(PQgetvalue(res, 0, 7), NULL);
    if (j->instance_id[0] && !valid_uuid(j->instance_id)) {
        job_fail(j, "the job names an invalid instance", false);
        return;
    }
    if (delay > 0.01) {
        ev_timer_stop(j->rn->w->loop, &j->timer);
        ev_timer_set(&j->timer, delay > 60 ? 60 : delay, 0.);
        ev_timer_start(j->rn->w->loop, &j->timer);
        return;
    }
    if (find_instance_job(j->rn, j->instance_id, j)) {
        j->waiting = true; /* job_release of the running one wakes us */
        return;
    }
    job_claim(j);
}

static void job_step_load(struct job *j)
{
    const char *p[1] = {j->id};
    q(j,
      "SELECT kind, coalesce(instance_id::text, ''), coalesce(volume_id::text, ''),"
      " coalesce(user_id::text, ''), coalesce(args->>'delete_volumes', 'false'), attempts,"
      " status, greatest(0, extract(epoch FROM not_before - now()))::float8 FROM jobs WHERE"
      " id = $1",
      1, p, on_job_loaded);
}

static void job_start(struct runner *rn, const char *id)
{
    struct job *j;
    if (!valid_uuid(id)) {
        log_warn("dropping a malformed job id from %s", rn->active_key);
        redisq_command(rn->w->rq, NULL, NULL, "LREM %s 1 %s", rn->active_key, id);
        return;
    }
    if (runner_owns(rn, id)) {
        /* a duplicate entry: the copy we hold finishes the job */
        redisq_command(rn->w->rq, NULL, NULL, "LREM %s 1 %s", rn->active_key, id);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        log_error("out of memory for job %s; reconcile will re-queue it", id);
        return;
    }
    j->rn = rn;
    util_strlcpy(j->id, id, sizeof(j->id));
    ev_timer_init(&j->timer, on_retry_timer, 0., 0.);
    j->timer.data = j;
    j->next = rn->jobs;
    rn->jobs = j;
    rn->njobs++;
    job_step_load(j);
}

/* ---- the pop ---- */

static void on_pop(redisReply *reply, void *arg)
{
    struct runner *rn = arg;
    ev_timer_stop(rn->w->loop, &rn->pop_watchdog);
    rn->popping = false;
    if (!reply)
        return; /* disconnected: on_popq_up pops again */
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("BLMOVE failed: %s (Redis >= 6.2 is needed)", reply->str);
        ev_timer_stop(rn->w->loop, &rn->pop_retry);
        ev_timer_set(&rn->pop_retry, 2.0, 0.);
        ev_timer_start(rn->w->loop, &rn->pop_retry);
        return;
    }
    if (reply->type == REDIS_REPLY_STRING)
        job_start(rn, reply->str);
    pop_next(rn);
}

static void pop_next(struct runner *rn)
{
    if (rn->popping || rn->njobs >= RUNNER_MAX_INFLIGHT || ev_is_active(&rn->pop_retry))
        return;
    if (!redisq_command(rn->w->popq, on_pop, rn, "BLMOVE %s %s RIGHT LEFT %d", rn->jobs_key,
                        rn->active_key, POP_BLOCK_S))
        return; /* not connected: on_popq_up calls us */
    rn->popping = true;
    ev_timer_set(&rn->pop_watchdog, POP_BLOCK_S + 5.0, 0.);
    ev_timer_start(rn->w->loop, &rn->pop_watchdog);
}

static void on_pop_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct runner *rn = w->data;
    log_warn("the job pop did not return within %d s; reconnecting its Redis connection",
             POP_BLOCK_S + 5);
    redisq_reset(rn->w->popq); /* on_pop gets NULL */
    rn->popping = false;
}

static void on_pop_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    pop_next(w->data);
}

static void on_popq_up(void *arg)
{
    struct runner *rn = arg;
    rn->popping = false;
    pop_next(rn);
}

struct runner *runner_new(struct worker *w)
{
    struct runner *rn = calloc(1, sizeof(*rn));
    if (!rn)
        return NULL;
    rn->w = w;
    snprintf(rn->jobs_key, sizeof(rn->jobs_key), KEY_JOBS_FMT, w->cfg->node);
    snprintf(rn->active_key, sizeof(rn->active_key), KEY_ACTIVE_FMT, w->cfg->node);
    ev_timer_init(&rn->pop_watchdog, on_pop_watchdog, 0., 0.);
    rn->pop_watchdog.data = rn;
    ev_timer_init(&rn->pop_retry, on_pop_retry, 0., 0.);
    rn->pop_retry.data = rn;
    ev_check_init(&rn->reaper, on_reap);
    rn->reaper.data = rn;
    return rn;
}

static void runner_begin(struct runner *rn)
{
    rn->started = true;
    redisq_on_connect(rn->w->popq, on_popq_up, rn);
    pop_next(rn);
}

/* Jobs are taken once Docker's networks have been listed (or could not be):
 * a burst waiting in the queue then draws its first guesses knowing which
 * subnets are in use. The listing does not block the loop. */
void runner_start(struct runner *rn)
{
    runner_subnets_refresh(rn);
}

void runner_free(struct runner *rn)
{
    if (!rn)
        return;
    ev_timer_stop(rn->w->loop, &rn->pop_watchdog);
    ev_timer_stop(rn->w->loop, &rn->pop_retry);
    ev_check_stop(rn->w->loop, &rn->reaper);
    while (rn->jobs) {
        struct job *j = rn->jobs;
        rn->jobs = j->next;
        ev_timer_stop(rn->w->loop, &j->timer);
        json_decref(j->spec);
        json_decref(j->ports);
        json_decref(j->vols);
        free(j);
    }
    while (rn->nets) {
        struct net_pending *n = rn->nets;
        rn->nets = n->next;
        free(n);
    }
    free(rn->used);
    while (rn->subnets) {
        struct net_subnet *n = rn->subnets;
        rn->subnets = n->next;
        free(n);
    }
    free(rn);
}
