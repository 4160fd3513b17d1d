/*
 * pg — see pg.h. One query is on the wire at a time (libpq's rule for one
 * connection without pipelining); the queue keeps the others. When the
 * connection breaks, the query on the wire and every queued one fail with a
 * sentence (the job runner retries jobs), and a timer reconnects.
 */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"

struct pgq {
    struct pgq *next;
    char *sql;
    int n;
    char **params;
    pg_cb cb;
    void *arg;
};

enum pg_state { PG_DOWN, PG_CONNECTING, PG_UP };

struct pg {
    struct ev_loop *loop;
    char *dsn;
    PGconn *conn;
    enum pg_state state;
    ev_io io;
    bool io_on;
    ev_timer retry;
    double backoff;
    struct pgq *head, *tail;
    unsigned qlen;
    bool sent;        /* head is on the wire */
    PGresult *last;   /* last result of the query on the wire */
    bool freeing;
};

static void on_io(struct ev_loop *loop, ev_io *w, int revents);

static void q_free(struct pgq *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q);
}

static void watch(struct pg *p, int events)
{
    int fd = p->conn ? PQsocket(p->conn) : -1;
    if (p->io_on) {
        ev_io_stop(p->loop, &p->io);
        p->io_on = false;
    }
    if (fd < 0 || !events)
        return;
    ev_io_set(&p->io, fd, events);
    ev_io_start(p->loop, &p->io);
    p->io_on = true;
}

/* Fail every queued query with err. */
static void fail_all(struct pg *p, const char *err)
{
    struct pgq *q;
    while ((q = p->head)) {
        p->head = q->next;
        if (!p->head)
            p->tail = NULL;
        p->qlen--;
        q->cb(NULL, err, q->arg);
        q_free(q);
    }
    p->sent = false;
}

static void schedule_retry(struct pg *p)
{
    ev_timer_stop(p->loop, &p->retry);
    ev_timer_set(&p->retry, p->backoff, 0.);
    ev_timer_start(p->loop, &p->retry);
    p->backoff = p->backoff < 4.0 ? p->backoff * 2 : 5.0;
}

static void broken(struct pg *p, const char *what)
{
    char err[512];
    snprintf(err, sizeof(err), "PostgreSQL connection lost (%s): %s", what,
             p->conn ? PQerrorMessage(p->conn) : "no connection");
    log_warn("%s", err);
    watch(p, 0);
    if (p->last) {
        PQclear(p->last);
        p->last = NULL;
    }
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    p->state = PG_DOWN;
    fail_all(p, err);
    if (!p->freeing)
        schedule_retry(p);
}

static void send_next(struct pg *p)
{
    struct pgq *q = p->head;
    int f;
    if (p->state != PG_UP || p->sent || !q)
        return;
    if (!PQsendQueryParams(p->conn, q->sql, q->n, NULL, (const char *const *)q->params, NULL, NULL,
                           0)) {
        broken(p, "send");
        return;
    }
    p->sent = true;
    f = PQflush(p->conn);
    if (f < 0) {
        broken(p, "flush");
        return;
    }
    watch(p, f == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void connect_step(struct pg *p)
{
    switch (PQconnectPoll(p->conn)) {
    case PGRES_POLLING_READING: watch(p, EV_READ); break;
    case PGRES_POLLING_WRITING: watch(p, EV_WRITE); break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(p->conn, 1) != 0) {
            broken(p, "non-blocking mode");
            return;
        }
        p->state = PG_UP;
        p->backoff = 0.25;
        log_info("connected to PostgreSQL");
        watch(p, EV_READ);
        send_next(p);
        break;
    default: broken(p, "connect"); break;
    }
}

static void do_connect(struct pg *p)
{
    p->conn = PQconnectStart(p->dsn);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
        broken(p, "connect start");
        return;
    }
    p->state = PG_CONNECTING;
    connect_step(p);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pg *p = w->data;
    if (p->state == PG_DOWN)
        do_connect(p);
}

static void finish_query(struct pg *p)
{
    struct pgq *q = p->head;
    PGresult *res = p->last;
    const char *err = NULL;
    ExecStatusType st;

    p->head = q->next;
    if (!p->head)
        p->tail = NULL;
    p->qlen--;
    p->sent = false;
    p->last = NULL;
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = res ? PQresultErrorMessage(res) : "no result";
    q->cb(res, err, q->arg);
    PQclear(res);
    q_free(q);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pg *p = w->data;

    if (p->state == PG_CONNECTING) {
        connect_step(p);
        return;
    }
    if (p->state != PG_UP)
        return;
    if (revents & EV_WRITE) {
        int f = PQflush(p->conn);
        if (f < 0) {
            broken(p, "flush");
            return;
        }
        watch(p, f == 1 ? EV_READ | EV_WRITE : EV_READ);
    }
    if (!(revents & EV_READ))
        return;
    if (!PQconsumeInput(p->conn)) {
        broken(p, "read");
        return;
    }
    while (p->sent && !PQisBusy(p->conn)) {
        PGresult *r = PQgetResult(p->conn);
        if (!r) {
            finish_query(p);
            if (p->state != PG_UP)
                return;
            send_next(p);
            break;
        }
        if (p->last)
            PQclear(p->last);
        p->last = r;
    }
    /* Notices or a server goodbye with nothing on the wire. */
    if (!p->sent && PQstatus(p->conn) == CONNECTION_BAD)
        broken(p, "server closed the connection");
}

struct pg *pg_new(struct ev_loop *loop, const char *dsn)
{
    struct pg *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->dsn = strdup(dsn);
    if (!p->dsn) {
        free(p);
        return NULL;
    }
    p->loop = loop;
    p->backoff = 0.25;
    ev_init(&p->io, on_io);
    p->io.data = p;
    ev_timer_init(&p->retry, on_retry, 0., 0.);
    p->retry.data = p;
    return p;
}

int pg_start(struct pg *p)
{
    do_connect(p);
    return 0;
}

void pg_free(struct pg *p)
{
    if (!p)
        return;
    p->freeing = true;
    ev_timer_stop(p->loop, &p->retry);
    watch(p, 0);
    if (p->last)
        PQclear(p->last);
    p->last = NULL;
    fail_all(p, "shutting down");
    if (p->conn)
        PQfinish(p->conn);
    free(p->dsn);
    free(p);
}

bool pg_connected(const struct pg *p)
{
    return p->state == PG_UP;
}

unsigned pg_pending(const struct pg *p)
{
    return p->qlen;
}

int pg_query(struct pg *p, const char *sql, int n, const char *const *params, pg_cb cb, void *arg)
{
    struct pgq *q;

    if (p->qlen >= PG_QUEUE_MAX || p->freeing)
        return -1;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -1;
    q->sql = strdup(sql);
    q->params = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
    if (!q->sql || (n > 0 && !q->params)) {
        q_free(q);
        return -1;
    }
    q->n = n;
    for (int i = 0; i < n; i++) {
        if (params[i] && !(q->params[i] = strdup(params[i]))) {
            q_free(q);
            return -1;
        }
    }
    q->cb = cb;
    q->arg = arg;
    if (p->tail)
        p->tail->next = q;
    else
        p->head = q;
    p->tail = q;
    p->qlen++;
    if (p->state == PG_DOWN && !ev_is_active(&p->retry))
        schedule_retry(p);
    /* Sent from the loop, never from inside the caller: a callback that
     * queries again must not recurse. send_next only writes; results come
     * through on_io. */
    send_next(p);
    return 0;
}
