/*
 * metrics — GET /metrics in Prometheus' text format, for a scraper on the
 * same host (nginx allows 127.0.0.1 only). Request counters are kept in
 * process memory with atomics (no lock on the request path); the state of
 * instances and jobs is read from PostgreSQL at scrape time.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/util.h"

/* Responses by status class (1xx..5xx) and their summed duration. */
static atomic_ulong responses[6];
static atomic_ulong duration_ms_total;

void metrics_observe(int status, long duration_ms)
{
    int cls = status / 100;
    if (cls < 1 || cls > 5)
        cls = 0;
    atomic_fetch_add_explicit(&responses[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&duration_ms_total, (unsigned long)(duration_ms > 0 ? duration_ms : 0),
                              memory_order_relaxed);
}

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!o->buf)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        if (o->cap > (1u << 20)) /* a scrape is never this large: stop growing */
            return;
        char *nb = realloc(o->buf, o->cap * 2);
        if (!nb)
            return;
        o->buf = nb;
        o->cap *= 2;
    }
}

static void put_grouped(struct out *o, PGconn *pg, const char *name, const char *help,
                        const char *label, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    put(o, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(res); i++)
            put(o, "%s{%s=\"%s\"} %s\n", name, label, PQgetvalue(res, i, 0),
                PQgetvalue(res, i, 1));
    PQclear(res);
}

void metrics_get(struct req *r)
{
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    struct out o = {malloc(8192), 0, 8192};
    PGconn *pg = db_conn(r->th);

    put(&o, "# HELP berth_api_responses_total Responses sent by berth-api, by status class.\n"
            "# TYPE berth_api_responses_total counter\n");
    for (int i = 1; i < 6; i++)
        put(&o, "berth_api_responses_total{class=\"%s\"} %lu\n", cls[i],
            atomic_load_explicit(&responses[i], memory_order_relaxed));
    put(&o, "# HELP berth_api_response_milliseconds_total Time spent answering, summed.\n"
            "# TYPE berth_api_response_milliseconds_total counter\n"
            "berth_api_response_milliseconds_total %lu\n",
        atomic_load_explicit(&duration_ms_total, memory_order_relaxed));
    put(&o, "# HELP berth_up Whether berth-api reaches PostgreSQL.\n# TYPE berth_up gauge\n"
            "berth_up %d\n",
        pg ? 1 : 0);
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
    }
    if (!o.buf) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    http_send_raw(r, 200, "text/plain; version=0.0.4", NULL, o.buf, o.len);
    free(o.buf);
}
