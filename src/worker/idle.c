/*
 * idle — activity and idle stop (API.md template `idle_timeout_s`).
 *
 * berth-api's proxy check records the time of each proxied request in the
 * Redis hash KEY_ACTIVITY (instance id -> UNIX time). Every IDLE_EVERY_S this
 * module folds the hash into instances.last_active_at, then queues a `stop`
 * job for every running instance of this node whose template asks for an idle
 * timeout and that has seen no request for that long (counting from its start
 * when it never had one) and has no job open. Job rows and events are written
 * in one statement; the ids are pushed after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "pg.h"
#include "redisq.h"
#include "worker.h"

#define IDLE_EVERY_S 30.0

static struct {
    struct worker *w;
    ev_timer timer;
    bool running;
    bool stopped; /* teardown: late callbacks do nothing */
} idle;

static void on_queued(PGresult *res, const char *err, void *arg)
{
    idle.running = false;
    if (err) {
        log_warn("idle stop: %s", err);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        log_info("instance %s idle: stop queued (job %s)", PQgetvalue(res, i, 1),
                 PQgetvalue(res, i, 0));
        char key[256];
        if (job_queue_key(PQgetvalue(res, i, 2), key, sizeof(key)) < 0 ||
            !redisq_command(idle.w->rq, NULL, NULL, "LPUSH %s %s", key, PQgetvalue(res, i, 0)))
            log_warn("job %s not pushed (Redis down): reconcile will", PQgetvalue(res, i, 0));
    }
}

static void queue_stops(void)
{
    char from[STATUS_SET_MAX], args[JOB_ARGS_MAX];
    const char *p[4] = {idle.w->cfg->node, status_guard(ST_STOPPING, BY_IDLE, from),
                        job_kind_name(JOB_STOP), args};
    if (job_args_text(JOB_STOP, &(struct job_args){0}, args, sizeof(args)) < 0)
        util_strlcpy(args, "{}", sizeof(args));
    if (idle.stopped) {
        idle.running = false;
        return;
    }
    if (pg_query(idle.w->pg,
                 "WITH idle AS (SELECT i.id, i.node, i.user_id, (i.spec->>'idle_timeout_s')::int AS t"
                 " FROM instances i WHERE i.node = $1 AND i.status = ANY($2::text[]) AND"
                 " i.desired = 'running' AND coalesce((i.spec->>'idle_timeout_s')::int, 0) > 0 AND"
                 " coalesce(i.last_active_at, i.started_at, i.created_at) < now() -"
                 " (i.spec->>'idle_timeout_s')::int * interval '1 second' AND NOT EXISTS (SELECT 1"
                 " FROM jobs j WHERE j.instance_id = i.id AND j.status IN ('queued', 'running'))"
                 " FOR UPDATE OF i SKIP LOCKED),"
                 " upd AS (UPDATE instances x SET desired = 'stopped', status = 'stopping' FROM idle"
                 " WHERE x.id = idle.id),"
                 " ev AS (INSERT INTO instance_events (instance_id, kind, message) SELECT id, 'idle',"
                 " 'no request for ' || t || ' s: stopping' FROM idle)"
                 " INSERT INTO jobs (id, kind, node, instance_id, user_id, args) SELECT"
                 " gen_random_uuid(), $3, node, id, user_id, $4::jsonb FROM idle"
                 " RETURNING id, instance_id, node",
                 4, p, on_queued, NULL) < 0)
        idle.running = false;
}

static void on_folded(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("activity not recorded: %s", err);
    queue_stops();
}

static void on_activity(redisReply *reply, void *arg)
{
    json_t *acts = json_object();
    char *text;
    const char *p[1];

    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        json_decref(acts);
        queue_stops(); /* without Redis, time since the last known activity still counts */
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
    }
    if (json_object_size(acts) == 0) {
        json_decref(acts);
        queue_stops();
        return;
    }
    text = json_dumps(acts, JSON_COMPACT);
    json_decref(acts);
    p[0] = text;
    if (!text || pg_query(idle.w->pg,
                          "UPDATE instances i SET last_active_at = to_timestamp(v.value::float8)"
                          " FROM json_each_text($1::json) v WHERE i.id = v.key::uuid AND"
                          " (i.last_active_at IS NULL OR i.last_active_at <"
                          " to_timestamp(v.value::float8))",
                          1, p, on_folded, NULL) < 0)
        queue_stops();
    free(text);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    if (idle.running || !pg_connected(idle.w->pg))
        return;
    idle.running = true;
    if (!redisq_command(idle.w->rq, on_activity, NULL, "HGETALL %s", KEY_ACTIVITY))
        queue_stops();
}

void idle_start(struct worker *w)
{
    idle.w = w;
    ev_timer_init(&idle.timer, on_timer, IDLE_EVERY_S, IDLE_EVERY_S);
    ev_timer_start(w->loop, &idle.timer);
}

void idle_stop(void)
{
    idle.stopped = true;
    if (idle.w)
        ev_timer_stop(idle.w->loop, &idle.timer);
}
