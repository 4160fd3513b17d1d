/*
 * pg — berth-worker's PostgreSQL connection, driven by the libev loop through
 * libpq's asynchronous API (PQconnectStart/PQconnectPoll, PQsendQueryParams,
 * PQconsumeInput/PQisBusy/PQgetResult, PQflush), with an ev_io on PQsocket.
 * Queries queue up and run one at a time in order; each gets its callback
 * exactly once. The connection re-makes itself after a failure (backoff).
 */
#ifndef BERTH_WORKER_PG_H
#define BERTH_WORKER_PG_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* Longest queue; pg_query() refuses beyond it (the caller retries later). */
#define PG_QUEUE_MAX 10000

struct pg;

/*
 * Called once per query on the loop. On success err is NULL and res is the
 * (last) result, borrowed for the call. On failure err says why (res may be
 * NULL, or the failed result). Never called from inside pg_query().
 */
typedef void (*pg_cb)(PGresult *res, const char *err, void *arg);

struct pg *pg_new(struct ev_loop *loop, const char *dsn);
/* Fails queued queries ("shutting down") and closes the connection. */
void pg_free(struct pg *p);

/* Begin connecting (asynchronously). 0 / -1. */
int pg_start(struct pg *p) __attribute__((warn_unused_result));

bool pg_connected(const struct pg *p);

/*
 * Queue one statement; sql and params[0..n) are copied (NULL params are SQL
 * NULL). 0 when queued (cb will be called), -1 when refused (cb will not).
 */
int pg_query(struct pg *p, const char *sql, int n, const char *const *params, pg_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Queries waiting or running. */
unsigned pg_pending(const struct pg *p);

#endif
