/*
 * idle — activity and idle stop (API.md template `idle_timeout_s`).
 *
 * Every idle_check_s (reloadable: a timer ticks every second and starts a
 * pass when that long has gone by), one pass, each step started by the last
 * one's answer:
 *   1. fold: berth-api's proxy check records the time of proxied requests in
 *      the Redis hash KEY_ACTIVITY (instance id -> UNIX time); those become
 *      instances.last_active_at with last_active_kind 'http';
 *   2. sample: the running instances of this node go through activity.c,
 *      which says which of them had traffic on an open WebSocket or SSH
 *      session since the last pass; those get last_active_at = now() and
 *      their kind;
 *   3. stop: a `stop` job for every running instance whose template asks for
 *      an idle timeout, idle that long since its last activity or its start
 *      (a snooze counts: berth-api writes it), warned in this idle period
 *      (below), and with no job open. Job rows and events are written in one
 *      statement; the ids are pushed after it;
 *   4. warn: an `idle_warning` event, once per idle period, for every
 *      instance within its lead of the timeout -- min(idle_warning_s,
 *      timeout / 4); a lead of 0 means no warning, and then none is awaited.
 *      Stops come before warnings in a pass, so a warning always precedes
 *      its stop by a pass at least.
 * A step that cannot run (Redis or PostgreSQL away) goes on to the next: the
 * time since the last known activity still counts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "activity.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "pg.h"
#include "redisq.h"
#include "worker.h"

/* The instance's idle clock: its last activity, or its start when it had
 * none since (a start after an idle stop begins a new period). */
#define IDLE_BASE "greatest(i.last_active_at, i.started_at, i.created_at)"
#define IDLE_T    "(i.spec->>'idle_timeout_s')::int"
/* A duration of seconds x in words: "45 s", "55 min". */
#define SQL_DURATION(x)                                                                            \
    "CASE WHEN (" x ") < 120 THEN (" x ")::text || ' s' ELSE round((" x ") / 60.0)::text ||"      \
    " ' min' END"

static struct {
    struct worker *w;
    ev_timer timer;
    bool running;
    bool stopped; /* teardown: late callbacks do nothing */
    char lead[24], every[24];
    ev_tstamp last_pass; /* when the last pass began */
    json_t *recent; /* ids whose proxied request the proxy recorded within the last pass */
} idle;

static void pass_end(void)
{
    idle.running = false;
}

static void on_warned(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("idle warning: %s", err);
    for (int i = 0; !err && i < PQntuples(res); i++)
        log_info("instance %s idle: %s", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    pass_end();
}

static void queue_warnings(void)
{
    const char *p[3] = {idle.w->cfg->node, idle.lead, idle.every};
    if (idle.stopped) {
        pass_end();
        return;
    }
    if (pg_query(idle.w->pg,
                 "WITH c AS (SELECT i.id, " IDLE_T " AS t, least($2::int, " IDLE_T " / 4) AS lead, "
                 IDLE_BASE " AS base, i.idle_warned_at FROM instances i WHERE i.node = $1 AND"
                 " i.status = 'running' AND i.desired = 'running' AND coalesce(" IDLE_T ", 0) > 0),"
                 " w AS (SELECT id, t, base, extract(epoch FROM now() - base)::int AS idle FROM c"
                 " WHERE lead > 0 AND base < now() - (t - lead) * interval '1 second' AND"
                 " (idle_warned_at IS NULL OR idle_warned_at < base)),"
                 " upd AS (UPDATE instances i SET idle_warned_at = now() FROM w WHERE i.id = w.id"
                 " AND i.status = 'running' AND " IDLE_BASE " = w.base RETURNING i.id),"
                 " m AS (SELECT w.id, 'no activity for ' || " SQL_DURATION("w.idle") " || '; stops"
                 " in ' || " SQL_DURATION("greatest(w.t - w.idle, $3::int)") " || ' unless used or"
                 " snoozed' AS message FROM w JOIN upd USING (id))"
                 " INSERT INTO instance_events (instance_id, kind, message) SELECT id,"
                 " 'idle_warning', message FROM m RETURNING instance_id, message",
                 3, p, on_warned, NULL) < 0)
        pass_end();
}

static void on_queued(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("idle stop: %s", err);
    for (int i = 0; !err && i < PQntuples(res); i++) {
        log_info("instance %s idle: stop queued (job %s)", PQgetvalue(res, i, 1),
                 PQgetvalue(res, i, 0));
        char key[256];
        if (job_queue_key(PQgetvalue(res, i, 2), key, sizeof(key)) < 0 ||
            !redisq_command(idle.w->rq, NULL, NULL, "LPUSH %s %s", key, PQgetvalue(res, i, 0)))
            log_warn("job %s not pushed (Redis down): reconcile will", PQgetvalue(res, i, 0));
    }
    queue_warnings();
}

static void queue_stops(void)
{
    char from[STATUS_SET_MAX], args[JOB_ARGS_MAX];
    const char *p[5] = {idle.w->cfg->node, status_guard(ST_STOPPING, BY_IDLE, from),
                        job_kind_name(JOB_STOP), args, idle.lead};
    if (job_args_text(JOB_STOP, &(struct job_args){0}, args, sizeof(args)) < 0)
        util_strlcpy(args, "{}", sizeof(args));
    if (idle.stopped) {
        pass_end();
        return;
    }
    if (pg_query(idle.w->pg,
                 "WITH idle AS (SELECT i.id, i.node, i.user_id, " IDLE_T " AS t"
                 " FROM instances i WHERE i.node = $1 AND i.status = ANY($2::text[]) AND"
                 " i.desired = 'running' AND coalesce(" IDLE_T ", 0) > 0 AND " IDLE_BASE " < now() -"
                 " " IDLE_T " * interval '1 second' AND (least($5::int, " IDLE_T " / 4) = 0 OR"
                 " i.idle_warned_at >= " IDLE_BASE ") AND NOT EXISTS (SELECT 1"
                 " FROM jobs j WHERE j.instance_id = i.id AND j.status IN ('queued', 'running'))"
                 " FOR UPDATE OF i SKIP LOCKED),"
                 " upd AS (UPDATE instances x SET desired = 'stopped', status = 'stopping' FROM idle"
                 " WHERE x.id = idle.id),"
                 " ev AS (INSERT INTO instance_events (instance_id, kind, message) SELECT id, 'idle',"
                 " 'no activity for ' || t || ' s: stopping' FROM idle)"
                 " INSERT INTO jobs (id, kind, node, instance_id, user_id, args) SELECT"
                 " gen_random_uuid(), $3, node, id, user_id, $4::jsonb FROM idle"
                 " RETURNING id, instance_id, node",
                 5, p, on_queued, NULL) < 0)
        queue_warnings();
}

static void list_running(void);

/* What comes after a statement recording activity (its callback's arg). */
enum idle_next { NEXT_LIST, NEXT_STOPS };
static enum idle_next next_list = NEXT_LIST, next_stops = NEXT_STOPS;

static void on_recorded(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("activity not recorded: %s", err);
    if (*(const enum idle_next *)arg == NEXT_LIST)
        list_running();
    else
        queue_stops();
}

/* Step 2 with the running instances (id, container, started, http_port,
 * ssh_port). */
static void on_running(PGresult *res, const char *err, void *arg)
{
    int n = err ? 0 : PQntuples(res);
    struct activity_row *rows = n ? calloc((size_t)n, sizeof(*rows)) : NULL;
    enum activity_kind *kinds = n ? calloc((size_t)n, sizeof(*kinds)) : NULL;
    struct activity_stats st;
    json_t *acts = NULL;
    char *text = NULL;
    const char *p[1];

    if (err)
        log_warn("activity: running instances not read: %s", err);
    else if (!n && activity_pass(NULL, 0, NULL, NULL) < 0) /* none running: forget them all */
        log_warn("activity: out of memory");
    if (idle.stopped || !n || !rows || !kinds) {
        free(rows);
        free(kinds);
        queue_stops();
        return;
    }
    for (int i = 0; i < n; i++) {
        struct activity_row *r = &rows[i];
        r->id = PQgetvalue(res, i, 0);
        r->container = PQgetvalue(res, i, 1);
        r->started = PQgetvalue(res, i, 2);
        if (!util_parse_long(PQgetvalue(res, i, 3), 1, 65535, &r->http_port))
            r->http_port = 0;
        if (!util_parse_long(PQgetvalue(res, i, 4), 1, 65535, &r->ssh_port))
            r->ssh_port = 0;
        r->http_recent = json_object_get(idle.recent, r->id) != NULL;
    }
    if (activity_pass(rows, (size_t)n, kinds, &st) == 0) {
        log_debug("activity pass: %zu running, %zu sampled, %zu with traffic, %zu tables, "
                  "%zu inspects, %.3f ms",
                  st.rows, st.sampled, st.traffic, st.tables, st.inspects, st.ms);
        for (int i = 0; i < n; i++) {
            const char *kind = activity_kind_name(kinds[i]);
            if (!kind)
                continue;
            if (!acts)
                acts = json_object();
            if (acts)
                json_object_set_new(acts, rows[i].id, json_string(kind));
        }
    }
    free(rows);
    free(kinds);
    if (acts) {
        text = json_dumps(acts, JSON_COMPACT);
        json_decref(acts);
    }
    p[0] = text;
    if (!text || pg_query(idle.w->pg,
                          "UPDATE instances i SET last_active_at = now(), last_active_kind ="
                          " v.value FROM json_each_text($1::json) v WHERE i.id = v.key::uuid AND"
                          " i.status = 'running' AND (i.last_active_at IS NULL OR"
                          " i.last_active_at < now())",
                          1, p, on_recorded, &next_stops) < 0)
        queue_stops();
    free(text);
}

static void list_running(void)
{
    const char *p[1] = {idle.w->cfg->node};
    if (idle.stopped || pg_query(idle.w->pg,
                                 "SELECT i.id, coalesce(i.container_id, ''),"
                                 " coalesce(i.started_at::text, ''),"
                                 " coalesce(i.spec->>'http_port', ''),"
                                 " coalesce(i.spec->>'ssh_port', '')"
                                 " FROM instances i WHERE i.node = $1 AND i.status = 'running'"
                                 " ORDER BY i.id::text COLLATE \"C\"",
                                 1, p, on_running, NULL) < 0)
        queue_stops();
}

static void on_activity(redisReply *reply, void *arg)
{
    json_t *acts = json_object();
    char *text;
    const char *p[1];
    /* "the proxy saw a request since the last pass", with a pass of slack
     * (the proxy writes a request's time up to 5 s late) */
    long since = (long)time(NULL) - 2 * idle.w->cfg->idle_check_s - 5;

    json_object_clear(idle.recent);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        json_decref(acts);
        list_running(); /* without Redis, the containers' traffic still counts */
        return;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const char *id = reply->element[i]->str;
        long t;
        if (reply->element[i]->type != REDIS_REPLY_STRING ||
            reply->element[i + 1]->type != REDIS_REPLY_STRING || !valid_uuid(id) ||
            !util_parse_long(reply->element[i + 1]->str, 0, 1L << 40, &t))
            continue;
        json_object_set_new(acts, id, json_integer(t));
        if (t >= since)
            json_object_set_new(idle.recent, id, json_true());
    }
    if (json_object_size(acts) == 0) {
        json_decref(acts);
        list_running();
        return;
    }
    text = json_dumps(acts, JSON_COMPACT);
    json_decref(acts);
    p[0] = text;
    if (!text ||
        pg_query(idle.w->pg,
                 "UPDATE instances i SET last_active_at = to_timestamp(v.value::float8),"
                 " last_active_kind = 'http' FROM json_each_text($1::json) v WHERE i.id ="
                 " v.key::uuid AND (i.last_active_at IS NULL OR i.last_active_at <"
                 " to_timestamp(v.value::float8))",
                 1, p, on_recorded, &next_list) < 0)
        list_running();
    free(text);
}

/* A tick a second; a pass when idle_check_s has gone by since the last one
 * began, so a reload that shortens it takes effect at once. */
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    ev_tstamp now = ev_now(loop);
    if (idle.running || !pg_connected(idle.w->pg) ||
        now - idle.last_pass < (double)idle.w->cfg->idle_check_s - 0.5)
        return;
    idle.last_pass = now;
    idle.running = true;
    snprintf(idle.lead, sizeof(idle.lead), "%ld", idle.w->cfg->idle_warning_s);
    snprintf(idle.every, sizeof(idle.every), "%ld", idle.w->cfg->idle_check_s);
    if (!redisq_command(idle.w->rq, on_activity, NULL, "HGETALL %s", KEY_ACTIVITY))
        list_running();
}

void idle_start(struct worker *w)
{
    idle.w = w;
    idle.recent = json_object();
    activity_start(w);
    idle.last_pass = ev_now(w->loop);
    ev_timer_init(&idle.timer, on_timer, 1., 1.);
    ev_timer_start(w->loop, &idle.timer);
}

void idle_stop(void)
{
    idle.stopped = true;
    if (idle.w)
        ev_timer_stop(idle.w->loop, &idle.timer);
    activity_stop();
    json_decref(idle.recent);
    idle.recent = NULL;
}
