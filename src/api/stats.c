/*
 * stats — admin overviews (API.md "Operations"):
 *   GET /api/v1/admin/stats  {users, instances: {by status}, templates, nodes,
 *                             jobs: {queued, running, failed}}
 *   GET /api/v1/nodes        {items: [{name, docker_endpoint, status, instances,
 *                             last_seen_at}], next_cursor: null}
 * A node's status is "up" while its worker's heartbeat is in Redis, "down"
 * when the heartbeat is gone, and the stored status when Redis cannot be asked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "berth/keys.h"
#include "berth/log.h"

static long long col_ll(PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

void stats_admin(struct req *r)
{
    PGresult *res;
    json_t *by_status, *ans;
    static const char *const statuses[] = {"pending",  "creating", "running",
                                           "stopping", "stopped",  "restarting",
                                           "deleting", "error",    NULL};

    if (!req_admin(r, "read the statistics"))
        return;
    if (!(res = req_q(r,
                      "SELECT (SELECT count(*) FROM users),"
                      " (SELECT count(*) FROM templates), (SELECT count(*) FROM nodes),"
                      " (SELECT count(*) FROM jobs WHERE status = 'queued'),"
                      " (SELECT count(*) FROM jobs WHERE status = 'running'),"
                      " (SELECT count(*) FROM jobs WHERE status = 'failed'),"
                      " (SELECT count(*) FROM users WHERE disabled)",
                      0, NULL)))
        return;
    ans = json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:I}", "users", col_ll(res, 0, 0),
                    "templates", col_ll(res, 0, 1), "nodes", col_ll(res, 0, 2), "jobs", "queued",
                    col_ll(res, 0, 3), "running", col_ll(res, 0, 4), "failed", col_ll(res, 0, 5),
                    "users_disabled", col_ll(res, 0, 6));
    PQclear(res);
    if (!(res = req_q(r,
                      "SELECT status, count(*) FROM instances WHERE status <> 'deleted'"
                      " GROUP BY status",
                      0, NULL))) {
        json_decref(ans);
        return;
    }
    by_status = json_object();
    for (size_t i = 0; statuses[i]; i++) /* every status present, zero or not */
        json_object_set_new(by_status, statuses[i], json_integer(0));
    for (int i = 0; i < PQntuples(res); i++)
        json_object_set_new(by_status, PQgetvalue(res, i, 0), json_integer(col_ll(res, i, 1)));
    PQclear(res);
    json_object_set_new(ans, "instances", by_status);
    http_send_json(r, 200, ans);
}

/* "up" / "down" from the heartbeat, or NULL when Redis cannot tell. */
static const char *heartbeat_status(struct req *r, const char *node)
{
    redisContext *c = rq_conn(r->th);
    redisReply *rep;
    const char *s;

    if (!c)
        return NULL;
    rep = redisCommand(c, "EXISTS " KEY_HEARTBEAT_FMT, node);
    if (!rep) {
        rq_close(r->th);
        return NULL;
    }
    s = rep->type == REDIS_REPLY_INTEGER ? (rep->integer > 0 ? "up" : "down") : NULL;
    freeReplyObject(rep);
    return s;
}

void stats_nodes(struct req *r)
{
    PGresult *res;
    json_t *items;

    if (!req_admin(r, "list nodes"))
        return;
    if (!(res = req_q(r,
                      "SELECT n.name, n.docker_endpoint, n.status, (SELECT count(*) FROM"
                      " instances i WHERE i.node = n.name AND i.status <> 'deleted'), " SQL_TS(
                          "n.last_seen_at") " FROM nodes n ORDER BY n.name LIMIT 500",
                      0, NULL)))
        return;
    items = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *hb = heartbeat_status(r, PQgetvalue(res, i, 0));
        json_array_append_new(
            items,
            json_pack("{s:s, s:s, s:s, s:I, s:o}", "name", PQgetvalue(res, i, 0), "docker_endpoint",
                      PQgetvalue(res, i, 1), "status", hb ? hb : PQgetvalue(res, i, 2), "instances",
                      col_ll(res, i, 3), "last_seen_at", db_str_or_null(res, i, 4)));
    }
    PQclear(res);
    http_send_json(r, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}
