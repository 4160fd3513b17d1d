/*
 * metrics — GET /metrics in Prometheus' text format, for a scraper on the
 * same host (nginx allows 127.0.0.1 only). Request counters are kept in
 * process memory with atomics (no lock on the request path), durations as
 * histograms by route; the state of instances and jobs is read from
 * PostgreSQL at scrape time, the queues' depth from Redis, and each node's
 * worker publishes its own figures there (KEY_METRICS_FMT), served here.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/keys.h"
#include "berth/metrics.h"
#include "berth/util.h"

/* Responses by status class (1xx..5xx) and their summed duration. */
static atomic_ulong responses[6];
static atomic_ulong duration_ms_total;
/* Request duration by route (router.c's index); the last: no route (404, 405). */
#define MAX_ROUTES 128
static struct hist by_route[MAX_ROUTES + 1];

void metrics_observe(const struct req *r, long duration_ms)
{
    int cls = r->status / 100;
    if (cls < 1 || cls > 5)
        cls = 0;
    if (duration_ms < 0)
        duration_ms = 0;
    atomic_fetch_add_explicit(&responses[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&duration_ms_total, (unsigned long)duration_ms, memory_order_relaxed);
    hist_observe(&by_route[r->route >= 0 && r->route < MAX_ROUTES ? r->route : MAX_ROUTES],
                 (double)duration_ms / 1000.0);
}

static void put_grouped(struct mbuf *o, PGconn *pg, const char *name, const char *help,
                        const char *label, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    metrics_header(o, name, "gauge", help);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(res); i++)
            mbuf_printf(o, "%s{%s=\"%s\"} %s\n", name, label, PQgetvalue(res, i, 0),
                        PQgetvalue(res, i, 1));
    PQclear(res);
}

static void put_routes(struct mbuf *o)
{
    const char *method, *pattern;
    char labels[256];
    metrics_header(o, "berth_api_request_duration_seconds", "histogram",
                   "Time berth-api took to answer, by route (the proxy check of every "
                   "workspace request is GET /_berth/auth/{id}); route \"none\": 404 and 405.");
    for (int i = 0; i <= MAX_ROUTES; i++) {
        if (i < MAX_ROUTES && !router_route(i, &method, &pattern))
            continue;
        if (i == MAX_ROUTES)
            snprintf(labels, sizeof(labels), "method=\"\",route=\"none\"");
        else
            snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"", method, pattern);
        hist_write(o, "berth_api_request_duration_seconds", labels, &by_route[i]);
    }
}

/* Per node: the instances by status, the jobs waiting in its queue and
 * being run, and its worker's own figures (KEY_METRICS_FMT; absent when the
 * worker has not published for a minute). Only node names that need no
 * escaping in a label are listed (the config's names all are). */
#define NODE_RE "^[A-Za-z0-9._-]{1,64}$"
static void put_nodes(struct mbuf *o, PGconn *pg, redisContext *rc)
{
    PGresult *res;
    put_grouped(o, pg, "berth_node_instances", "Live instances by node and status.", "node",
                "SELECT n.name || '\",status=\"' || s, count(i.id) FROM nodes n CROSS JOIN"
                " unnest(ARRAY['pending','creating','running','stopping','stopped','restarting',"
                "'deleting','error']) s LEFT JOIN instances i ON i.node = n.name AND i.status = s"
                " WHERE n.name ~ '" NODE_RE "' GROUP BY n.name, s ORDER BY n.name, s");
    res = PQexec(pg, "SELECT name FROM nodes WHERE name ~ '" NODE_RE "' ORDER BY name");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || !rc) {
        PQclear(res);
        return;
    }
    metrics_header(o, "berth_queue_jobs", "gauge",
                   "Job ids in a node's Redis queue: waiting (queued) and taken by its worker (active).");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *node = PQgetvalue(res, i, 0);
        redisReply *q = redisCommand(rc, "LLEN " KEY_JOBS_FMT, node);
        redisReply *a = redisCommand(rc, "LLEN " KEY_ACTIVE_FMT, node);
        if (q && q->type == REDIS_REPLY_INTEGER)
            mbuf_printf(o, "berth_queue_jobs{node=\"%s\",list=\"queued\"} %lld\n", node, q->integer);
        if (a && a->type == REDIS_REPLY_INTEGER)
            mbuf_printf(o, "berth_queue_jobs{node=\"%s\",list=\"active\"} %lld\n", node, a->integer);
        freeReplyObject(q);
        freeReplyObject(a);
    }
    for (int i = 0; i < PQntuples(res); i++) {
        redisReply *m = redisCommand(rc, "GET " KEY_METRICS_FMT, PQgetvalue(res, i, 0));
        if (m && m->type == REDIS_REPLY_STRING)
            mbuf_printf(o, "%.*s", (int)m->len, m->str);
        freeReplyObject(m);
    }
    PQclear(res);
}

void metrics_get(struct req *r)
{
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    struct mbuf o = {0};
    PGconn *pg = db_conn(r->th);

    metrics_header(&o, "berth_api_responses_total", "counter",
                   "Responses sent by berth-api, by status class.");
    for (int i = 1; i < 6; i++)
        mbuf_printf(&o, "berth_api_responses_total{class=\"%s\"} %lu\n", cls[i],
                    atomic_load_explicit(&responses[i], memory_order_relaxed));
    metrics_header(&o, "berth_api_response_milliseconds_total", "counter",
                   "Time spent answering, summed.");
    mbuf_printf(&o, "berth_api_response_milliseconds_total %lu\n",
                atomic_load_explicit(&duration_ms_total, memory_order_relaxed));
    put_routes(&o);
    metrics_header(&o, "berth_up", "gauge", "Whether berth-api reaches PostgreSQL.");
    mbuf_printf(&o, "berth_up %d\n", pg ? 1 : 0);
    if (pg) {
        /* The states are listed so that a zero is a zero, not a missing series. */
        put_grouped(&o, pg, "berth_instances", "Instances by status.", "status",
                    "SELECT s, count(i.id) FROM unnest(ARRAY['pending','creating','running',"
                    "'stopping','stopped','restarting','deleting','error']) s"
                    " LEFT JOIN instances i ON i.status = s GROUP BY s ORDER BY s");
        put_grouped(&o, pg, "berth_jobs", "Jobs by status.", "status",
                    "SELECT s, count(j.id) FROM unnest(ARRAY['queued','running','failed']) s"
                    " LEFT JOIN jobs j ON j.status = s GROUP BY s ORDER BY s");
        put_grouped(&o, pg, "berth_users", "Users by role.", "role",
                    "SELECT s, count(u.id) FROM unnest(ARRAY['admin','developer','viewer']) s"
                    " LEFT JOIN users u ON u.role = s AND NOT u.disabled GROUP BY s ORDER BY s");
        put_nodes(&o, pg, rq_conn(r->th));
    }
    if (!o.buf) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_send_raw(r, 200, "text/plain; version=0.0.4", NULL, o.buf, o.len);
    mbuf_free(&o);
}
