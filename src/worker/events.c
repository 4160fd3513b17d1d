/*
 * events — instance status from Docker's /events stream (DESIGN.md: status
 * changes arrive as events, not by polling). One streaming GET, filtered to
 * containers labelled berth.cluster=<cluster>; each line is one event. When
 * the stream ends it is opened again after a second with `since` = the time
 * of the last event seen, so nothing is missed (Docker replays from its
 * buffer; the handlers are idempotent, a replayed event changes nothing).
 *
 *   start    stopped or error -> running (a restart policy, or dockerd
 *            starting again, brought it back; from error with a 'recovered'
 *            event naming what had failed)
 *   die      running/stopping -> stopped, with the exit code; `error` when the
 *            process died within seconds of starting (it will not come up)
 *   oom      the error sentence says the memory limit was hit
 *   destroy  a container removed behind berth's back -> error, with a sentence
 *
 * Docker keeps only its last 256 events (none across its own restart), so a
 * gap in the stream -- Docker away, restarted, or merely busy with other
 * stacks -- can lose what `since` should replay: once the stream has been
 * back for a second after a gap, a reconcile pass compares every container
 * with its row.
 *
 * Statuses a job is changing (pending, creating, restarting, deleting) are
 * left to the job. A short verify after every start catches a process that
 * exits at once before its die event could be told apart from a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "docker.h"
#include "pg.h"
#include "worker.h"
#include "wmetrics.h"

struct events {
    struct worker *w;
    bool streaming;
    bool connected;
    bool gap; /* the stream ended: events may be lost until a reconcile pass */
    long long since;
    ev_timer retry;
    ev_timer settle; /* the stream back for a moment after a gap */
    char path[512];
};

static void on_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("event statement failed: %s", err);
}

static void sql(struct worker *w, const char *text, int n, const char *const *p)
{
    if (pg_query(w->pg, text, n, p, on_logged, NULL) < 0)
        log_warn("PostgreSQL queue full: an event update was dropped");
}

static void handle(struct events *ev, json_t *e)
{
    struct worker *w = ev->w;
    const char *action = json_string_value(json_object_get(e, "Action"));
    json_t *attrs = json_object_get(json_object_get(e, "Actor"), "Attributes");
    const char *iid = json_string_value(json_object_get(attrs, "berth.instance"));
    const char *cluster = json_string_value(json_object_get(attrs, "berth.cluster"));
    json_t *t = json_object_get(e, "time");
    char msg[256], to_a[STATUS_SET_MAX], to_b[STATUS_SET_MAX];

    json_t *tn = json_object_get(e, "timeNano");
    if (json_is_integer(t) && json_integer_value(t) > ev->since)
        ev->since = json_integer_value(t);
    if (json_is_integer(tn)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        wmetrics_event_lag((double)now.tv_sec + now.tv_nsec / 1e9 -
                           (double)json_integer_value(tn) / 1e9);
    }
    if (!action || !valid_uuid(iid) || !cluster || strcmp(cluster, w->cfg->cluster) != 0)
        return;
    if (strcmp(action, "start") == 0) {
        const char *p[2] = {iid, status_guard(ST_RUNNING, BY_EVENT, to_a)};
        /* both read the row as it was before the update (one snapshot) */
        sql(w,
            "WITH o AS (SELECT status AS was, error AS why FROM instances WHERE id = $1),"
            " u AS (UPDATE instances SET status = 'running', error = NULL, started_at = now()"
            " WHERE id = $1 AND desired = 'running' AND status = ANY($2::text[])"
            " RETURNING id)"
            " INSERT INTO instance_events (instance_id, kind, message) SELECT id, CASE"
            " (SELECT was FROM o) WHEN 'error' THEN 'recovered' ELSE 'started' END, CASE"
            " (SELECT was FROM o) WHEN 'error' THEN 'the container runs again (its restart"
            " policy brought it back); it had failed: ' || coalesce((SELECT why FROM o), '?')"
            " ELSE 'the container started again' END FROM u",
            2, p);
    } else if (strcmp(action, "die") == 0) {
        const char *code = json_string_value(json_object_get(attrs, "exitCode"));
        /* killed by a signal from outside (137 SIGKILL, 143 SIGTERM) is a stop, not a crash */
        bool signalled = code && (strcmp(code, "137") == 0 || strcmp(code, "143") == 0);
        const char *p[5] = {iid, msg, signalled ? "f" : "t",
                            status_guard(ST_STOPPED, BY_EVENT, to_a),
                            status_guard(ST_ERROR, BY_EVENT, to_b)};
        snprintf(msg, sizeof(msg), "the container's main process exited with code %s",
                 code ? code : "?");
        sql(w,
            "WITH u AS (UPDATE instances SET status = CASE WHEN $3::bool AND desired = 'running'"
            " AND status = 'running' AND status = ANY($5::text[]) AND started_at > now() -"
            " interval '3 seconds' THEN 'error' ELSE 'stopped' END, stopped_at = now(), error ="
            " CASE WHEN $3::bool AND desired = 'running' AND status = 'running' AND status ="
            " ANY($5::text[]) AND started_at > now() - interval '3 seconds' THEN $2 || ' right"
            " after starting: see its logs' WHEN desired = 'running' THEN $2 ELSE error END"
            " WHERE id = $1 AND status = ANY($4::text[]) RETURNING id)"
            " INSERT INTO instance_events (instance_id, kind, message) SELECT $1, 'died', $2"
            " WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)",
            5, p);
    } else if (strcmp(action, "oom") == 0) {
        const char *p[1] = {iid};
        sql(w,
            "WITH u AS (UPDATE instances SET error = 'the container ran out of memory (limit ' ||"
            " memory_mb || ' MB)' WHERE id = $1 AND status <> 'deleted' RETURNING id, error)"
            " INSERT INTO instance_events (instance_id, kind, message) SELECT id, 'oom', error"
            " FROM u",
            1, p);
    } else if (strcmp(action, "destroy") == 0) {
        /* only the removal of the container the row names: a stream replayed
         * after a gap brings the destroy of a failed create's container (or
         * one made again) after its successor is running */
        const char *cid = json_string_value(json_object_get(json_object_get(e, "Actor"), "ID"));
        const char *p[3] = {iid, cid ? cid : "", status_guard(ST_ERROR, BY_EVENT, to_a)};
        sql(w,
            "WITH u AS (UPDATE instances SET status = 'error', container_id = NULL, error ="
            " 'the container was removed outside berth; start the instance to make it again'"
            " WHERE id = $1 AND status = ANY($3::text[])"
            " AND container_id IS NOT NULL" /* not the removal of a failed create's container */
            " AND ($2 = '' OR container_id = $2)"
            " RETURNING id, error) INSERT INTO instance_events (instance_id, kind, message)"
            " SELECT id, 'removed', error FROM u",
            3, p);
    }
}

static void on_line(const char *line, size_t len, void *arg)
{
    struct events *ev = arg;
    json_t *e = json_loadb(line, len, 0, NULL);
    if (!ev->connected) {
        ev->connected = true;
        log_info("following Docker events");
    }
    if (e)
        handle(ev, e);
    json_decref(e);
}

static void schedule(struct events *ev, double after)
{
    ev_timer_stop(ev->w->loop, &ev->retry);
    ev_timer_set(&ev->retry, after, 0.);
    ev_timer_start(ev->w->loop, &ev->retry);
}

static void on_end(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct events *ev = arg;
    ev->streaming = false;
    ev->connected = false;
    ev->gap = true;
    ev_timer_stop(ev->w->loop, &ev->settle);
    log_warn("Docker event stream ended (%s, HTTP %d); reopening", err ? err : "closed", status);
    schedule(ev, 1.0);
}

static void open_stream(struct events *ev)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/events?since=%lld&", ev->since);
    if (docker_cluster_filter(ev->path, sizeof(ev->path), prefix, "container",
                              ev->w->cfg->cluster) < 0) {
        log_warn("Docker event stream: cannot build the request path");
        schedule(ev, 1.0);
        return;
    }
    if (docker_stream(ev->w->docker, "GET", ev->path, NULL, 0, on_line, on_end, ev) < 0) {
        schedule(ev, 1.0);
        return;
    }
    ev->streaming = true;
    if (ev->gap) {
        ev_timer_stop(ev->w->loop, &ev->settle);
        ev_timer_set(&ev->settle, 1.0, 0.);
        ev_timer_start(ev->w->loop, &ev->settle);
    }
}

static void on_settle(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct events *ev = w->data;
    if (!ev->streaming || !ev->gap)
        return;
    ev->gap = false;
    log_info("Docker event stream is back after a gap; a reconcile pass catches what it missed");
    reconcile_now(ev->w);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct events *ev = w->data;
    if (!ev->streaming)
        open_stream(ev);
}

/* ---- verify: a process that exited at once ---- */

struct verify {
    struct worker *w;
    ev_timer t;
    char iid[37];
};

static void on_verified(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct verify *v = arg;
    json_t *c = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *st = json_object_get(c, "State");
    if (st && !json_is_true(json_object_get(st, "Running")) &&
        !json_is_true(json_object_get(st, "Restarting"))) {
        char msg[256], to[STATUS_SET_MAX];
        const char *p[3] = {v->iid, msg, status_guard(ST_ERROR, BY_EVENT, to)};
        snprintf(msg, sizeof(msg),
                 "the container's main process exited with code %lld right after starting: see "
                 "its logs",
                 (long long)json_integer_value(json_object_get(st, "ExitCode")));
        sql(v->w,
            "WITH u AS (UPDATE instances SET status = 'error', error = $2, stopped_at = now()"
            " WHERE id = $1 AND status = 'running' AND status = ANY($3::text[]) AND desired ="
            " 'running' RETURNING id) INSERT INTO instance_events (instance_id, kind, message)"
            " SELECT id, 'died', $2 FROM u",
            3, p);
    }
    json_decref(c);
    free(v);
}

static void on_verify_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct verify *v = t->data;
    char path[128];
    snprintf(path, sizeof(path), "/containers/berth-%s/json", v->iid);
    if (docker_request(v->w->docker, "GET", path, NULL, 10000, on_verified, v) < 0)
        free(v);
}

void events_verify_soon(struct worker *w, const char *instance_id)
{
    struct verify *v = calloc(1, sizeof(*v));
    if (!v || !valid_uuid(instance_id)) {
        free(v);
        return;
    }
    v->w = w;
    util_strlcpy(v->iid, instance_id, sizeof(v->iid));
    ev_timer_init(&v->t, on_verify_timer, 1.5, 0.);
    v->t.data = v;
    ev_timer_start(w->loop, &v->t);
}

struct events *events_new(struct worker *w)
{
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->w = w;
    ev->since = (long long)time(NULL);
    ev_timer_init(&ev->retry, on_retry, 0., 0.);
    ev->retry.data = ev;
    ev_timer_init(&ev->settle, on_settle, 0., 0.);
    ev->settle.data = ev;
    return ev;
}

void events_start(struct events *ev)
{
    open_stream(ev);
}

bool events_connected(const struct events *ev)
{
    return ev && ev->connected;
}

void events_free(struct events *ev)
{
    if (!ev)
        return;
    ev_timer_stop(ev->w->loop, &ev->retry);
    ev_timer_stop(ev->w->loop, &ev->settle);
    free(ev);
}
