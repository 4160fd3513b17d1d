/*
 * reconcile — repairs drift, at start-up and every reconcile_s (DESIGN.md
 * "Jobs"; issue 4 "State from events", "Reliability"). One pass is a chain of
 * callbacks; a pass that is still running when the timer fires is skipped.
 *
 * 1. Jobs: ids in berth:jobs:<node>:active that this worker does not hold are
 *    put back on the queue (at start-up at once: a new worker holds nothing;
 *    later only when seen unheld by two passes in a row, so a pop whose reply
 *    is still on its way is not mistaken for a stuck one). Job rows queued or
 *    running for this node that are in neither list nor held are pushed.
 * 2. Containers: Docker's containers labelled berth.cluster=<cluster> against
 *    the live instance rows of this node. Rows whose container is gone or in
 *    another state are corrected (unless a job for them is in flight);
 *    labelled containers with no live row, older than a grace period, are
 *    removed; so is a never-started container of an instance in `error` (a
 *    create that failed while Docker was away could not remove it then).
 * 3. Routes: routesync's pass (box-available/ and box-enabled/ against the
 *    rows), so a directory restored, edited or wiped by hand heals.
 * 4. Networks: a user's network normally goes with their last instance on
 *    this node, but Docker can refuse that removal while it still releases
 *    an endpoint (a burst of deletes): any labelled network of this node
 *    whose user has no live instance here is removed again on every pass.
 *    The runner lists every network of the dockerd again too (the subnets
 *    in use, for new user networks' first choice).
 *
 * reconcile_now during a pass asks for another one right after it: the
 * caller (the event stream coming back, say) knows of drift the running pass
 * may have looked past.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "docker.h"
#include "pg.h"
#include "redisq.h"
#include "wmetrics.h"
#include "worker.h"

#define MAX_IDS 4096

struct rec {
    struct worker *w;
    ev_timer timer;
    bool running;
    ev_tstamp began; /* the pass under way began (wmetrics) */
    bool first;  /* no :active pass done yet */
    bool jobs_seen; /* open job rows compared once (the first time without an age limit) */
    bool again;     /* reconcile_now during a pass: another pass when it ends */
    ev_timer soon;  /* that pass */
    char active_key[160], jobs_key[128];
    /* ids seen in :active unheld by the previous pass */
    char (*suspects)[37];
    size_t nsuspects;
    /* this pass */
    json_t *listed;     /* ids in either list: object id -> true */
    json_t *containers; /* instance id -> {state, created, id} */
    char listed_at[32]; /* UNIX time the container list was asked for */
};

static struct rec rec;

static void pass_end(void)
{
    json_decref(rec.listed);
    json_decref(rec.containers);
    rec.listed = rec.containers = NULL;
    rec.running = false;
    wmetrics_reconcile(ev_now(rec.w->loop) - rec.began);
    if (rec.again) {
        rec.again = false;
        ev_timer_stop(rec.w->loop, &rec.soon);
        ev_timer_set(&rec.soon, 0.05, 0.);
        ev_timer_start(rec.w->loop, &rec.soon);
    }
}

static bool was_suspect(const char *id)
{
    for (size_t i = 0; i < rec.nsuspects; i++)
        if (strcmp(rec.suspects[i], id) == 0)
            return true;
    return false;
}

static void on_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("reconcile statement failed: %s", err);
}

/* ---- step 4: networks of users with no live instance here ----
 * Runs beside the rest of the pass (it shares nothing with it). */

static void on_net_swept(int status, const char *body, size_t len, const char *err, void *arg)
{
    char *name = arg;
    if (status == 204 || status == 404)
        runner_net_forget(rec.w->runner, name); /* its subnet is no longer known */
    if (status == 204)
        log_info("reconcile: removed network %s (its user has no instance here)", name);
    else if (status != 404)
        log_debug("reconcile: network %s not removed yet (HTTP %d)", name, status);
    free(name);
}

/* rows: the users (of those with a network here) who still have instances */
static void on_net_users(PGresult *res, const char *err, void *arg)
{
    json_t *nets = arg; /* user name -> network name */
    const char *user;
    json_t *net;
    if (err) {
        log_warn("reconcile: cannot read the users of networks: %s", err);
        json_decref(nets);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        json_object_del(nets, PQgetvalue(res, i, 0));
    json_object_foreach(nets, user, net)
    {
        char path[200], *name = strdup(json_string_value(net));
        if (!name)
            break;
        snprintf(path, sizeof(path), "/networks/%s", name);
        if (docker_request(rec.w->docker, "DELETE", path, NULL, 30000, on_net_swept, name) < 0)
            free(name);
    }
    json_decref(nets);
}

static void on_networks(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct worker *w = rec.w;
    json_t *arr, *c, *nets, *names;
    size_t i;
    char *list;
    if (status != 200) {
        log_debug("reconcile: cannot list networks: HTTP %d %s", status, err ? err : "");
        return;
    }
    arr = json_loadb(body, len, 0, NULL);
    nets = json_object();
    names = json_array();
    json_array_foreach(arr, i, c)
    {
        json_t *labels = json_object_get(c, "Labels");
        const char *name = json_string_value(json_object_get(c, "Name"));
        const char *cl = json_string_value(json_object_get(labels, "berth.cluster"));
        const char *node = json_string_value(json_object_get(labels, "berth.node"));
        const char *user = json_string_value(json_object_get(labels, "berth.user"));
        if (!name || !cl || strcmp(cl, w->cfg->cluster) != 0 || !node ||
            strcmp(node, w->cfg->node) != 0 || !valid_name(user) || json_object_get(nets, user))
            continue;
        json_object_set_new(nets, user, json_string(name));
        json_array_append_new(names, json_string(user));
    }
    json_decref(arr);
    list = json_object_size(nets) ? json_dumps(names, JSON_COMPACT) : NULL;
    json_decref(names);
    if (list) {
        const char *p[2] = {list, w->cfg->node};
        if (pg_query(w->pg,
                     "SELECT u.username FROM users u WHERE u.username IN (SELECT"
                     " jsonb_array_elements_text($1::jsonb)) AND EXISTS (SELECT 1 FROM instances i"
                     " WHERE i.user_id = u.id AND i.node = $2 AND i.status <> 'deleted')",
                     2, p, on_net_users, nets) < 0) {
            json_decref(nets);
        }
        free(list);
        return;
    }
    json_decref(nets);
}

static void networks_step(void)
{
    char path[512];
    /* the subnets in use on this dockerd: other stacks' networks come and go */
    runner_subnets_refresh(rec.w->runner);
    if (docker_cluster_filter(path, sizeof(path), "/networks?", NULL, rec.w->cfg->cluster) < 0) {
        log_warn("reconcile: cannot build the networks filter");
        return;
    }
    if (docker_request(rec.w->docker, "GET", path, NULL, 30000, on_networks, NULL) < 0)
        log_debug("reconcile: cannot list networks now");
}

/* ---- step 3: containers vs rows ---- */

static void on_orphan_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status != 204 && status != 404)
        log_warn("reconcile: orphan not removed: HTTP %d %s", status, err ? err : "");
}

static void on_leftover_removed(int status, const char *body, size_t len, const char *err,
                                void *arg)
{
    if (status != 204 && status != 404)
        log_warn("reconcile: never-started container not removed: HTTP %d %s", status,
                 err ? err : "");
}

/* A correction holds only if no job of the instance is open or ended since
 * the containers were listed ($3): a job that finished in between (a create
 * started the container just after the list was taken) made the list stale
 * for that instance, and the next pass looks again. */
#define JOB_QUIET(at)                                                                              \
    " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.instance_id = $1 AND (j.status IN ('queued',"  \
    " 'running') OR j.finished_at > to_timestamp(" at "::bigint - 1)))"

static void on_rows(PGresult *res, const char *err, void *arg)
{
    struct worker *w = rec.w;
    json_t *live = json_object();
    const char *key;
    json_t *c;
    time_t now = time(NULL);

    if (err) {
        log_warn("reconcile: cannot read instances: %s", err);
        json_decref(live);
        pass_end();
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *iid = PQgetvalue(res, i, 0), *status = PQgetvalue(res, i, 1),
                   *desired = PQgetvalue(res, i, 2);
        json_t *ct = json_object_get(rec.containers, iid);
        const char *state = json_string_value(json_object_get(ct, "state"));
        char set[STATUS_SET_MAX];
        const char *p[4] = {iid, "", rec.listed_at, set}, *q[3] = {iid, rec.listed_at, set};
        json_object_set_new(live, iid, json_true());
        if (runner_instance_busy(w->runner, iid))
            continue;
        if (!ct && (strcmp(status, "running") == 0 || strcmp(status, "stopped") == 0 ||
                    strcmp(status, "stopping") == 0)) {
            p[1] = "the container is missing (removed outside berth?); start the instance to "
                   "make it again";
            status_guard(ST_ERROR, BY_RECONCILE, set);
            if (pg_query(w->pg,
                         "WITH u AS (UPDATE instances SET status = 'error', error = $2,"
                         " container_id = NULL WHERE id = $1 AND status = ANY($4::text[])"
                         JOB_QUIET("$3") " RETURNING id) INSERT INTO instance_events"
                         " (instance_id, kind, message) SELECT id, 'reconciled', $2 FROM u",
                         4, p, on_logged, NULL) < 0)
                log_warn("reconcile: queue full");
        } else if (ct && strcmp(state, "running") == 0 &&
                   (strcmp(status, "stopped") == 0 || strcmp(status, "error") == 0) &&
                   strcmp(desired, "running") == 0) {
            /* a restart policy (or dockerd starting again) brought it back
             * while its start event was missed */
            status_guard(ST_RUNNING, BY_RECONCILE, set);
            if (pg_query(w->pg,
                         "WITH u AS (UPDATE instances SET status = 'running', error = NULL WHERE"
                         " id = $1 AND status = ANY($3::text[])" JOB_QUIET("$2") " RETURNING id)"
                         " INSERT INTO instance_events (instance_id, kind, message) SELECT id,"
                         " 'reconciled', 'the container runs' FROM u",
                         3, q, on_logged, NULL) < 0)
                log_warn("reconcile: queue full");
        } else if (ct && strcmp(state, "running") != 0 && strcmp(state, "restarting") != 0 &&
                   strcmp(status, "running") == 0) {
            p[1] = "the container is not running";
            status_guard(ST_STOPPED, BY_RECONCILE, set);
            if (pg_query(w->pg,
                         "WITH u AS (UPDATE instances SET status = 'stopped', stopped_at = now(),"
                         " error = CASE WHEN desired = 'running' THEN $2 ELSE error END WHERE"
                         " id = $1 AND status = ANY($4::text[])" JOB_QUIET("$3") " RETURNING id)"
                         " INSERT INTO instance_events (instance_id, kind, message) SELECT id,"
                         " 'reconciled', $2 FROM u",
                         4, p, on_logged, NULL) < 0)
                log_warn("reconcile: queue full");
        } else if (ct && strcmp(state, "created") == 0 && strcmp(status, "error") == 0) {
            /* never started, and no job holds the instance: a create that
             * failed while Docker was away (its own clean-up could not run).
             * A start makes the container again. */
            char path[128];
            log_info("reconcile: removing the never-started container of instance %s (in error)",
                     iid);
            snprintf(path, sizeof(path), "/containers/berth-%s?force=1", iid);
            if (docker_request(w->docker, "DELETE", path, NULL, 30000, on_leftover_removed,
                               NULL) < 0)
                log_warn("reconcile: cannot remove the container of %s", iid);
            else if (pg_query(w->pg,
                              "INSERT INTO instance_events (instance_id, kind, message) VALUES"
                              " ($1, 'reconciled', 'the container a failed create left behind"
                              " was removed')",
                              1, p, on_logged, NULL) < 0)
                log_warn("reconcile: queue full");
        }
    }
    /* labelled containers with no live row: remove after the grace period */
    json_object_foreach(rec.containers, key, c)
    {
        long long created = json_integer_value(json_object_get(c, "created"));
        char path[128];
        if (json_object_get(live, key) || runner_instance_busy(w->runner, key) ||
            now - created < w->cfg->orphan_grace_s)
            continue;
        log_info("reconcile: removing orphan container berth-%s (no live instance)", key);
        snprintf(path, sizeof(path), "/containers/berth-%s?force=1", key);
        if (docker_request(w->docker, "DELETE", path, NULL, 30000, on_orphan_removed, NULL) < 0)
            log_warn("reconcile: cannot remove orphan %s", key);
    }
    json_decref(live);
    pass_end();
}

static void on_containers(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct worker *w = rec.w;
    json_t *arr;
    size_t i;
    json_t *c;
    const char *p[1] = {w->cfg->node};

    if (status != 200) {
        log_warn("reconcile: cannot list containers: %s (HTTP %d)", err ? err : "", status);
        pass_end();
        return;
    }
    arr = json_loadb(body, len, 0, NULL);
    rec.containers = json_object();
    json_array_foreach(arr, i, c)
    {
        const char *iid = json_string_value(
            json_object_get(json_object_get(c, "Labels"), "berth.instance"));
        const char *cl = json_string_value(
            json_object_get(json_object_get(c, "Labels"), "berth.cluster"));
        const char *node = json_string_value(
            json_object_get(json_object_get(c, "Labels"), "berth.node"));
        if (!valid_uuid(iid) || !cl || strcmp(cl, w->cfg->cluster) != 0 ||
            (node && strcmp(node, w->cfg->node) != 0))
            continue;
        json_object_set_new(rec.containers, iid,
                            json_pack("{s:s, s:I}", "state",
                                      json_string_value(json_object_get(c, "State")) ?: "",
                                      "created",
                                      (json_int_t)json_integer_value(json_object_get(c, "Created"))));
    }
    json_decref(arr);
    if (pg_query(w->pg,
                 "SELECT id, status, desired FROM instances WHERE node = $1 AND status <> 'deleted'",
                 1, p, on_rows, NULL) < 0)
        pass_end();
}

static void containers_step(void)
{
    snprintf(rec.listed_at, sizeof(rec.listed_at), "%lld", (long long)time(NULL));
    char path[512];
    if (docker_cluster_filter(path, sizeof(path), "/containers/json?all=1&", NULL,
                              rec.w->cfg->cluster) < 0 ||
        docker_request(rec.w->docker, "GET", path, NULL, 30000, on_containers, NULL) < 0)
        pass_end();
}

/* ---- step 2: queued rows missing from Redis ---- */

static void on_open_jobs(PGresult *res, const char *err, void *arg)
{
    struct worker *w = rec.w;
    if (err) {
        log_warn("reconcile: cannot read open jobs: %s", err);
        pass_end();
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        if (json_object_get(rec.listed, id) || runner_owns(w->runner, id))
            continue;
        log_info("reconcile: job %s is open but in no queue; queueing it again", id);
        redisq_command(w->rq, NULL, NULL, "LPUSH %s %s", rec.jobs_key, id);
    }
    networks_step();
    containers_step();
}

static void on_jobs_list(redisReply *reply, void *arg)
{
    const char *p[2];
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        pass_end();
        return;
    }
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            json_object_set_new(rec.listed, reply->element[i]->str, json_true());
    p[0] = rec.w->cfg->node;
    /* At start-up every open row counts (a push that may still be on its way
     * costs at most a duplicate, which the runner drops); later only rows old
     * enough that their push must have happened. */
    p[1] = rec.jobs_seen ? "5 seconds" : "0 seconds";
    rec.jobs_seen = true;
    if (pg_query(rec.w->pg,
                 "SELECT id FROM jobs WHERE node = $1 AND status IN ('queued', 'running') AND"
                 " created_at < now() - $2::interval LIMIT 4096",
                 2, p, on_open_jobs, NULL) < 0)
        pass_end();
}

/* ---- step 1: :active ---- */

static void on_active(redisReply *reply, void *arg)
{
    struct worker *w = rec.w;
    char (*next)[37] = NULL;
    size_t nnext = 0;

    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        pass_end();
        return;
    }
    next = calloc(reply->elements + 1, sizeof(*next));
    for (size_t i = 0; i < reply->elements; i++) {
        const char *id = reply->element[i]->str;
        if (reply->element[i]->type != REDIS_REPLY_STRING)
            continue;
        json_object_set_new(rec.listed, id, json_true());
        if (runner_owns(w->runner, id))
            continue;
        if (rec.first || was_suspect(id)) {
            log_info("reconcile: job %s was left in %s; queueing it again", id, rec.active_key);
            /* RPUSH: the pop takes from the right, so it runs next */
            redisq_command(w->rq, NULL, NULL, "LREM %s 1 %s", rec.active_key, id);
            redisq_command(w->rq, NULL, NULL, "RPUSH %s %s", rec.jobs_key, id);
        } else if (next && strlen(id) < 37) {
            util_strlcpy(next[nnext++], id, 37);
        }
    }
    rec.first = false;
    free(rec.suspects);
    rec.suspects = next;
    rec.nsuspects = nnext;
    if (!redisq_command(w->rq, on_jobs_list, NULL, "LRANGE %s 0 %d", rec.jobs_key, MAX_IDS - 1))
        pass_end();
}

void reconcile_now(struct worker *w)
{
    if (rec.running) {
        rec.again = true;
        return;
    }
    if (!redisq_connected(w->rq) || !pg_connected(w->pg)) {
        log_debug("reconcile postponed: Redis or PostgreSQL not connected");
        return;
    }
    rec.running = true;
    rec.began = ev_now(w->loop);
    rec.listed = json_object();
    if (routesync_run(w, false, NULL, NULL) < 0)
        log_warn("reconcile: the routes pass could not start (PostgreSQL queue full)");
    if (!redisq_command(w->rq, on_active, NULL, "LRANGE %s 0 %d", rec.active_key, MAX_IDS - 1))
        pass_end();
}

static void on_soon(struct ev_loop *loop, ev_timer *t, int revents)
{
    reconcile_now(rec.w);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    /* start-up pass as soon as the connections are up, then every reconcile_s */
    reconcile_now(rec.w);
    t->repeat = rec.first ? 0.5 : (double)rec.w->cfg->reconcile_s;
    ev_timer_again(loop, t);
}

/* Redis (re)connected: jobs accepted while it was away may have lost their
 * push (berth/protocol.h, the enqueue contract), so compare every open row
 * at once, without the 5 s age limit, instead of at the next periodic pass. */
static void on_rq_up(void *arg)
{
    rec.jobs_seen = false;
    ev_timer_stop(rec.w->loop, &rec.soon);
    ev_timer_set(&rec.soon, 0.05, 0.);
    ev_timer_start(rec.w->loop, &rec.soon);
}

void reconcile_start(struct worker *w)
{
    rec.w = w;
    rec.first = true;
    snprintf(rec.active_key, sizeof(rec.active_key), KEY_ACTIVE_FMT, w->cfg->node);
    job_queue_key(w->cfg->node, rec.jobs_key, sizeof(rec.jobs_key)); /* node names fit */
    ev_init(&rec.timer, on_timer);
    rec.timer.repeat = 0.2;
    ev_timer_again(w->loop, &rec.timer);
    ev_init(&rec.soon, on_soon);
    redisq_on_connect(w->rq, on_rq_up, NULL);
}

void reconcile_stop(void)
{
    if (rec.w) {
        ev_timer_stop(rec.w->loop, &rec.timer);
        ev_timer_stop(rec.w->loop, &rec.soon);
    }
    free(rec.suspects);
    rec.suspects = NULL;
    json_decref(rec.listed);
    json_decref(rec.containers);
    rec.listed = rec.containers = NULL;
}
