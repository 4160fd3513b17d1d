/*
 * jobq — berth-worker's job queue (DESIGN.md "Jobs: reliable and
 * idempotent"); the map of the runner's modules is job.h.
 *
 * Pop: `BLMOVE berth:jobs:<node> berth:jobs:<node>:active RIGHT LEFT 5` on a
 * connection of its own, one at a time, while fewer than RUNNER_MAX_INFLIGHT
 * jobs are held. hiredis 0.14's libev adapter has no timeouts, so a watchdog
 * timer drops and re-makes that connection when a pop outlives its block
 * time; the job it may have moved stays in :active and reconcile re-queues it.
 *
 * A job: load its row (done/failed: drop; not_before in the future: hold),
 * wait behind another job of the same instance, claim it (status running,
 * attempts + 1), load the instance, run the handler of its kind as a chain
 * of Docker and PostgreSQL calls, then write the outcome (job row, instance
 * status, instance_events) in one statement and LREM it from :active.
 *
 * Every handler is idempotent: names derive from ids (container
 * berth-<instance id>, volume berth-<volume id>, network
 * berth-<cluster>-<user>), "exists already" and "missing" answers count as
 * success where they mean the desired end state.
 *
 * Failures: a retryable one sets the row back to queued with not_before =
 * now + job_backoff_s and holds the job for that long; after
 * job_max_attempts, or at once for a permanent one (image not found, bad
 * spec), the job is failed and the instance in `error`, both with one human
 * sentence. An attempt that gets no answer to any of its calls for
 * job_timeout_s is lost: it fails (retryable), and the answers of its calls
 * still in flight are dropped when they come.
 *
 * One timer per job holds it, with the step it takes when it fires (enum
 * job_step). Job objects are freed from an ev_check watcher once released
 * and no call of theirs is in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "job.h"
#include "wmetrics.h"
#include "redisq.h"
#include "routes.h"

#define POP_BLOCK_S 5

static void pop_next(struct runner *rn);
static void job_step_load(struct job *j);
static void write_outcome(struct job *j);

/* ---- holding, releasing and freeing a job ---- */

static struct job *find_instance_job(const struct runner *rn, const char *iid,
                                     const struct job *except)
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

void job_hold(struct job *j, double seconds, enum job_step next)
{
    ev_timer_stop(j->rn->w->loop, &j->timer);
    j->step = next;
    ev_timer_set(&j->timer, seconds, 0.);
    ev_timer_start(j->rn->w->loop, &j->timer);
}

void job_wake_net_waiters(struct runner *rn, const char *net)
{
    for (struct job *j = rn->jobs; j; j = j->next)
        if (!j->dead && ev_is_active(&j->timer) && j->step == STEP_NET_WAIT &&
            strcmp(j->net, net) == 0)
            job_hold(j, 0., STEP_NET_WAIT);
}

static void on_routes_settled(struct job *j);

static void on_job_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct job *j = w->data;
    switch (j->step) {
    case STEP_NET_WAIT:
        j->step = STEP_LOAD;
        usernet_wait_over(j);
        return;
    case STEP_IMAGE_WAIT:
        j->step = STEP_LOAD;
        image_ensure(j);
        return;
    case STEP_ROUTES_SETTLED:
        on_routes_settled(j);
        return;
    case STEP_OUTCOME:
        write_outcome(j);
        return;
    case STEP_LOAD:
        break;
    }
    /* drop what the previous attempt loaded */
    json_decref(j->spec);
    json_decref(j->ports);
    json_decref(j->vols);
    j->spec = j->ports = j->vols = NULL;
    j->vol_i = 0;
    job_step_load(j);
}

static void job_release(struct job *j)
{
    struct runner *rn = j->rn;
    if (j->dead)
        return;
    j->dead = true;
    ev_timer_stop(rn->w->loop, &j->timer);
    ev_timer_stop(rn->w->loop, &j->deadline);
    usernet_release(rn, j);
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

static void job_free(struct runner *rn, struct job *j)
{
    ev_timer_stop(rn->w->loop, &j->timer);
    ev_timer_stop(rn->w->loop, &j->deadline);
    free(j->outcome.ev_kind);
    free(j->outcome.ev_msg);
    free(j->outcome.why);
    json_decref(j->spec);
    json_decref(j->ports);
    json_decref(j->vols);
    free(j);
}

void job_finish(struct job *j)
{
    struct runner *rn = j->rn;
    if (!redisq_command(rn->w->rq, NULL, NULL, "LREM %s 1 %s", rn->active_key, j->id))
        log_warn("job %s: not removed from %s (Redis down); reconcile will see it done",
                 j->id, rn->active_key);
    enum job_kind kind;
    log_info("job %s (%s %s) finished in %lld ms", j->id, j->kind, j->instance_id,
             (long long)(util_now_ms() - j->t0));
    if (job_kind_parse(j->kind, &kind))
        wmetrics_job(kind, (double)(util_now_ms() - j->t0) / 1000.0);
    job_release(j);
}

static void on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
    struct runner *rn = w->data;
    struct job **pp = &rn->jobs;
    ev_check_stop(loop, w);
    while (*pp) {
        struct job *j = *pp;
        if (j->dead && j->inflight == 0) {
            *pp = j->next;
            rn->njobs--;
            job_free(rn, j);
        } else {
            pp = &j->next;
        }
    }
}

/* ---- outcomes ---- */

/* The outcome was not written (PostgreSQL away, its queue full): the job is
 * held and writes it again -- 1 s, 2 s ... at most 30 s apart -- until
 * PostgreSQL takes it. Its instance stays claimed meanwhile, so no other job
 * of it runs on a row that does not say what happened. */
static void on_outcome_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!err) {
        job_finish(j);
        return;
    }
    j->outcome.writes++;
    if (j->outcome.writes == 1 || j->outcome.writes % 10 == 0)
        log_warn("job %s: outcome not written (try %d): %s -- writing it again", j->id,
                 j->outcome.writes, err);
    job_hold(j, job_backoff_s(j->outcome.writes), STEP_OUTCOME);
}

static void write_outcome(struct job *j)
{
    struct job_outcome *o = &j->outcome;
    const char *iid = j->instance_id[0] ? j->instance_id : NULL;
    char guard[STATUS_SET_MAX];

    if (o->failed) {
        const char *p[4] = {j->id, o->why, iid, status_guard(ST_ERROR, BY_JOB, guard)};
        q(j,
          "WITH jf AS (UPDATE jobs SET status = 'failed', error = $2, finished_at = now()"
          " WHERE id = $1), ie AS (INSERT INTO instance_events (instance_id, kind, message)"
          " SELECT $3, 'failed', $2 WHERE $3::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM"
          " instances WHERE id = $3))"
          " UPDATE instances SET status = 'error', error = $2 WHERE id = $3 AND"
          " status = ANY($4::text[])",
          4, p, on_outcome_written);
    } else {
        enum inst_status to = ST_COUNT;
        const char *st = o->status[0] ? o->status : NULL;
        const char *p[6] = {j->id, iid, st, o->ev_kind, o->ev_msg, NULL};
        if (st && !status_parse(st, &to))
            log_error("job %s: '%s' is no instance status; the instance keeps its own", j->id,
                      st);
        p[5] = status_guard(to, BY_JOB, guard);
        q(j,
          "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now()"
          " WHERE id = $1), ie AS (INSERT INTO instance_events (instance_id, kind, message)"
          " SELECT $2, $4, $5 WHERE $2::uuid IS NOT NULL AND $4::text IS NOT NULL AND EXISTS"
          " (SELECT 1 FROM instances WHERE id = $2))"
          " UPDATE instances SET status = $3, error = NULL,"
          " started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,"
          " stopped_at = CASE WHEN $3 = 'stopped' THEN now() ELSE stopped_at END"
          " WHERE id = $2 AND $3::text IS NOT NULL AND status = ANY($6::text[])",
          6, p, on_outcome_written);
    }
}

/* Keep a copy of s in *dst (NULL stays NULL). */
static void keep(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

void job_done(struct job *j, const char *status, const char *ev_kind, const char *ev_msg)
{
    ev_timer_stop(j->rn->w->loop, &j->deadline);
    j->outcome.set = true;
    j->outcome.failed = false;
    util_strlcpy(j->outcome.status, status ? status : "", sizeof(j->outcome.status));
    keep(&j->outcome.ev_kind, ev_kind);
    keep(&j->outcome.ev_msg, ev_msg);
    write_outcome(j);
}

bool job_pg_ok(struct job *j, const char *err, const char *what)
{
    if (!err)
        return true;
    job_fail(j, what, true);
    return false;
}

bool job_retry_after(int attempts, int max_attempts, bool retryable, double *delay)
{
    if (!retryable || attempts >= max_attempts)
        return false;
    *delay = job_backoff_s(attempts);
    return true;
}

static void on_retry_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    /* PostgreSQL down: the job is held all the same and tried again */
    if (err)
        log_warn("job %s: retry not written: %s", j->id, err);
    job_hold(j, job_backoff_s(j->attempts), STEP_LOAD);
}

static void on_cleanup_done(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status != 204 && status != 404)
        log_warn("removing a half-created container: HTTP %d %s", status, err ? err : "");
}

void job_fail(struct job *j, const char *why, bool retryable)
{
    struct worker *w = j->rn->w;
    double delay;
    bool again = job_retry_after(j->attempts, (int)w->cfg->job_max_attempts, retryable, &delay);
    char attempts[16];

    if (j->dead)
        return;
    ev_timer_stop(w->loop, &j->deadline);
    snprintf(attempts, sizeof(attempts), "%d", j->attempts);
    log_warn("job %s (%s %s) attempt %d: %s%s", j->id, j->kind, j->instance_id, j->attempts, why,
             again ? " -- will retry" : " -- giving up");
    if (again) {
        char backoff[32];
        snprintf(backoff, sizeof(backoff), "%.3f", delay);
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
    j->outcome.set = true;
    j->outcome.failed = true;
    keep(&j->outcome.why, why);
    write_outcome(j);
}

/* job_timeout_s without an answer to any call of the attempt: it is lost
 * (a hung dockerd, a statement waiting on a lock). Its answers still to
 * come are dropped; the attempt fails, retryable. */
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct job *j = w->data;
    char why[160];
    ev_timer_stop(loop, w);
    j->epoch++;
    usernet_release(j->rn, j);
    snprintf(why, sizeof(why),
             "no answer from Docker or PostgreSQL for %ld s (job_timeout_s): the attempt is "
             "given up",
             j->rn->w->cfg->job_timeout_s);
    job_fail(j, why, true);
}

/* ---- the small kinds ---- */

/* ssh_keys: a container that could not take them has an event saying why;
 * the next start pushes again. */
static void on_keys_pushed(int failed, void *arg)
{
    struct call *c = arg;
    struct job *j;
    if (call_end(c, &j))
        job_done(j, NULL, NULL, NULL);
    (void)failed;
}

/* routes_sync: done once nginx has been reloaded with the result (or 30 s
 * went by), so that whoever waits on the job finds the routes live. */
static void on_routes_settled(struct job *j)
{
    struct routes *r = j->rn->w->routes;
    if (r && routes_busy(r) && util_now_ms() - j->t0 < 30000) {
        job_hold(j, 0.1, STEP_ROUTES_SETTLED);
        return;
    }
    j->step = STEP_LOAD;
    job_done(j, NULL, NULL, NULL);
}

static void on_result_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (err)
        log_warn("job %s: result not written: %s", j->id, err);
    job_hold(j, 0., STEP_ROUTES_SETTLED);
}

static void on_routes_synced(const struct routesync_result *r, const char *err, void *arg)
{
    struct call *c = arg;
    struct job *j;
    char routes[24], written[24], removed[24];
    const char *p[4] = {NULL, routes, written, removed};
    if (!call_end(c, &j))
        return;
    p[0] = j->id;
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
    if (!job_pg_ok(j, err, "the instance could not be read"))
        return;
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
    usernet_name(j->rn->w, j->user, j->net, sizeof(j->net));
    if (strcmp(j->status, "deleted") == 0)
        job_done(j, NULL, NULL, NULL);
    else if (strcmp(j->kind, "delete") == 0)
        deletes_instance(j);
    else if (strcmp(j->status, "deleting") == 0)
        job_done(j, NULL, "skipped", "the instance is being deleted");
    else
        lifecycle_run(j);
}

static void on_claimed(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    struct call *c;
    if (!job_pg_ok(j, err, "the job could not be claimed"))
        return;
    if (PQntuples(res) != 1) {
        job_finish(j); /* finished by someone else meanwhile */
        return;
    }
    j->attempts = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    ev_timer_set(&j->deadline, 0., (double)j->rn->w->cfg->job_timeout_s);
    ev_timer_again(j->rn->w->loop, &j->deadline);
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
    } else if (strcmp(j->kind, "volume_delete") == 0 && valid_uuid(j->volume_id)) {
        deletes_volume(j);
    } else if (strcmp(j->kind, "user_delete") == 0 && valid_uuid(j->user_id)) {
        deletes_user(j);
    } else if (strcmp(j->kind, "routes_sync") == 0) {
        if (!(c = call_new(j)))
            job_fail(j, "out of memory", true);
        else if (routesync_run(j->rn->w, true, on_routes_synced, c) < 0 && call_end(c, &j))
            job_fail(j, "the routes could not be read (PostgreSQL queue full)", true);
    } else if (strcmp(j->kind, "ssh_keys") == 0 && valid_uuid(j->user_id)) {
        if (!(c = call_new(j)))
            job_fail(j, "out of memory", true);
        else if (sshkeys_push(j->rn->w, j->user_id, NULL, on_keys_pushed, c) < 0 &&
                 call_end(c, &j))
            job_fail(j, "the user's instances could not be read (PostgreSQL queue full)", true);
    } else {
        job_fail(j, "the job has nothing to act on", false);
    }
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
        job_hold(j, 2.0, STEP_LOAD);
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
        job_hold(j, delay > 60 ? 60 : delay, STEP_LOAD);
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
    ev_timer_init(&j->timer, on_job_timer, 0., 0.);
    j->timer.data = j;
    ev_init(&j->deadline, on_deadline);
    j->deadline.data = j;
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
    if (job_queue_key(w->cfg->node, rn->jobs_key, sizeof(rn->jobs_key)) < 0) {
        free(rn);
        return NULL;
    }
    snprintf(rn->active_key, sizeof(rn->active_key), KEY_ACTIVE_FMT, w->cfg->node);
    ev_timer_init(&rn->pop_watchdog, on_pop_watchdog, 0., 0.);
    rn->pop_watchdog.data = rn;
    ev_timer_init(&rn->pop_retry, on_pop_retry, 0., 0.);
    rn->pop_retry.data = rn;
    ev_check_init(&rn->reaper, on_reap);
    rn->reaper.data = rn;
    return rn;
}

void runner_begin(struct runner *rn)
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
        job_free(rn, j);
    }
    usernet_free(rn);
    free(rn);
}
