/*
 * health — GET /api/v1/health. Real checks, cheap enough for a load balancer:
 *  postgres  SELECT 1 on this thread's connection
 *  redis     PING on this thread's connection
 *  docker    the worker's heartbeat in Redis (berth-api never talks to Docker);
 *            the heartbeat carries the worker's last Docker /_ping outcome
 *  nginx     "ok" by construction: this answer came through nginx
 * Any check down: 503 with the error shape naming the first failing check.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "berth/keys.h"

static const char *check_postgres(struct api_thread *th, char *why, size_t n)
{
    PGconn *pg;
    PGresult *res = NULL;

    /* A connection that predates a PostgreSQL restart gets one fresh try. */
    for (int tries = 0; tries < 2; tries++) {
        PQclear(res);
        if (!(pg = db_conn(th))) {
            snprintf(why, n, "PostgreSQL is unreachable");
            return why;
        }
        res = PQexec(pg, "SELECT 1");
        if (PQresultStatus(res) == PGRES_TUPLES_OK || PQstatus(pg) != CONNECTION_BAD)
            break;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, n, "PostgreSQL query failed: %s", PQerrorMessage(pg));
        PQclear(res);
        return why;
    }
    PQclear(res);
    return NULL;
}

static const char *check_redis(struct api_thread *th, char *why, size_t n)
{
    redisContext *c;
    redisReply *rep = NULL;

    /* This thread's connection may predate a Redis restart: one fresh try. */
    for (int tries = 0; tries < 2 && !rep; tries++) {
        if (tries)
            rq_close(th);
        if (!(c = rq_conn(th))) {
            snprintf(why, n, "Redis is unreachable");
            return why;
        }
        rep = redisCommand(c, "PING");
    }
    if (!rep || rep->type != REDIS_REPLY_STATUS) {
        snprintf(why, n, "Redis PING failed: %s", rep ? "unexpected reply" : c->errstr);
        if (rep)
            freeReplyObject(rep);
        else
            rq_close(th);
        return why;
    }
    freeReplyObject(rep);
    return NULL;
}

static const char *check_docker(struct api_thread *th, char *why, size_t n)
{
    redisContext *c = rq_conn(th);
    redisReply *rep;
    json_t *hb;
    const char *docker;

    if (!c) {
        snprintf(why, n, "unknown: Redis, which carries the worker heartbeat, is unreachable");
        return why;
    }
    rep = redisCommand(c, "GET " KEY_HEARTBEAT_FMT, api_cfg.node);
    if (!rep) {
        rq_close(th);
        snprintf(why, n, "unknown: Redis failed while reading the worker heartbeat");
        return why;
    }
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        snprintf(why, n, "no heartbeat from berth-worker for node %s: is berth-worker running?",
                 api_cfg.node);
        return why;
    }
    hb = json_loadb(rep->str, rep->len, 0, NULL);
    freeReplyObject(rep);
    docker = json_string_value(json_object_get(hb, "docker"));
    if (!docker || strcmp(docker, "ok") != 0) {
        snprintf(why, n, "node %s: %s", api_cfg.node, docker ? docker : "malformed heartbeat");
        json_decref(hb);
        return why;
    }
    json_decref(hb);
    return NULL;
}

void health_get(struct req *r)
{
    char w_pg[512], w_redis[512], w_docker[512];
    const char *pg = check_postgres(r->th, w_pg, sizeof(w_pg));
    const char *redis = check_redis(r->th, w_redis, sizeof(w_redis));
    const char *docker = check_docker(r->th, w_docker, sizeof(w_docker));
    json_t *checks = json_pack("{s:s, s:s, s:s, s:s}", "postgres", pg ? pg : "ok", "redis",
                               redis ? redis : "ok", "docker", docker ? docker : "ok", "nginx",
                               "ok");
    const char *failing = pg ? "postgres" : redis ? "redis" : docker ? "docker" : NULL;
    const char *why = pg ? pg : redis ? redis : docker;

    if (!failing) {
        http_send_json(r, 200, json_pack("{s:s, s:o}", "status", "ok", "checks", checks));
        return;
    }
    char msg[600];
    snprintf(msg, sizeof(msg), "%s check failed: %s", failing, why);
    http_send_json(r, 503,
                   json_pack("{s:s, s:o, s:{s:s, s:s, s:s}}", "status", "unavailable", "checks",
                             checks, "error", "code", "unavailable", "message", msg, "check",
                             failing));
}
