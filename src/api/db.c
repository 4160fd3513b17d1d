/*
 * db — the PostgreSQL connection of one request thread and the statements a
 * handler runs on it (db.h). Connections are made lazily and re-made after a
 * failure, so a PostgreSQL restart costs the requests in flight a 503, never
 * a crash or a stuck thread.
 */
#include <poll.h>
#include <string.h>

#include "api.h"
#include "berth/log.h"
#include "db.h"

/* A connection whose server went away still reads CONNECTION_OK until it is
 * used. What the server left on the socket -- its "terminating connection"
 * message, then EOF -- is read here without blocking, one read each, so the
 * status turns bad before a request's statement is lost on a dead socket. */
static bool still_good(PGconn *pg)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN | POLLRDHUP};
    for (int i = 0; i < 3; i++) {
        if (PQstatus(pg) != CONNECTION_OK || p.fd < 0)
            return false;
        if (poll(&p, 1, 0) <= 0)
            return true; /* nothing pending: an idle, live connection */
        if (!PQconsumeInput(pg))
            return false;
    }
    return PQstatus(pg) == CONNECTION_OK;
}

PGconn *db_conn(struct api_thread *th)
{
    if (th->pg && still_good(th->pg))
        return th->pg;
    if (th->pg) {
        PQreset(th->pg);
        if (PQstatus(th->pg) == CONNECTION_OK) {
            log_info("reconnected to PostgreSQL");
            return th->pg;
        }
        log_warn("PostgreSQL reconnect failed: %s", PQerrorMessage(th->pg));
        return NULL;
    }
    th->pg = PQconnectdb(api_cfg.pg_dsn);
    if (PQstatus(th->pg) != CONNECTION_OK) {
        log_warn("cannot connect to PostgreSQL: %s", PQerrorMessage(th->pg));
        return NULL;
    }
    return th->pg;
}

void db_close(struct api_thread *th)
{
    if (th->pg)
        PQfinish(th->pg);
    th->pg = NULL;
}

bool db_exec(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("%s failed: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

PGresult *db_run(PGconn *pg, const char *what, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    log_warn("%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

const char *db_sqlstate(const PGresult *res)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s ? s : "";
}

json_t *db_json_col(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    return json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, NULL);
}

json_t *db_str_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

PGconn *req_db(struct req *r)
{
    PGconn *pg = db_conn(r->th);
    if (!pg)
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
    return pg;
}

void req_rollback(struct req *r)
{
    PGconn *pg = r->th->pg;
    PGTransactionStatusType ts = pg ? PQtransactionStatus(pg) : PQTRANS_UNKNOWN;
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        db_exec(pg, "ROLLBACK");
}

void req_unavailable(struct req *r, const char *what)
{
    req_rollback(r);
    http_send_error(r, 503, "unavailable", NULL, "%s", what);
}

/* The one runner of req_q and req_q_unique: NULL with *dup when the failure
 * is a unique violation and dup was given. */
static PGresult *run(struct req *r, bool *dup, const char *sql, int n, const char *const *p)
{
    PGconn *pg = r->th->pg;
    PGresult *res;
    ExecStatusType st;

    if (dup)
        *dup = false;
    if (!pg) { /* req_db was not called or failed: a bug, but never a crash */
        log_error("%s %s: a statement without a connection", r->method, r->path);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return NULL;
    }
    res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    if (dup && strcmp(db_sqlstate(res), "23505") == 0) {
        *dup = true;
        PQclear(res);
        return NULL;
    }
    log_warn("%s %s: statement failed: %s", r->method, r->path, PQresultErrorMessage(res));
    PQclear(res);
    req_unavailable(r, "the database is unavailable");
    return NULL;
}

PGresult *req_q(struct req *r, const char *sql, int n, const char *const *p)
{
    return run(r, NULL, sql, n, p);
}

PGresult *req_q_unique(struct req *r, bool *dup, const char *sql, int n, const char *const *p)
{
    return run(r, dup, sql, n, p);
}

bool req_begin(struct req *r)
{
    PGresult *res = req_q(r, "BEGIN", 0, NULL);
    PQclear(res);
    return res != NULL;
}

/* COMMIT of a transaction that a failed statement aborted "succeeds" with the
 * tag ROLLBACK: only the tag COMMIT means the work is stored. */
bool req_commit(struct req *r)
{
    PGresult *res = req_q(r, "COMMIT", 0, NULL);
    bool ok = res && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    if (res && !ok) {
        log_warn("%s %s: COMMIT answered %s", r->method, r->path, PQcmdStatus(res));
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
    }
    PQclear(res);
    return ok;
}

void http_send_items(struct req *r, PGresult *res)
{
    json_t *items = json_array();

    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, db_json_col(res, i, 0));
    PQclear(res);
    http_send_json(r, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

void http_send_page_of(struct req *r, PGresult *res, long limit, int cursor_col, page_item_fn item,
                       void *arg)
{
    json_t *items = json_array(), *next = json_null(), *it;
    int n = PQntuples(res);

    for (int i = 0; i < n && i < limit; i++)
        if ((it = item(res, i, arg)))
            json_array_append_new(items, it);
    if (n > limit && limit > 0)
        next = json_string(PQgetvalue(res, (int)limit - 1, cursor_col));
    PQclear(res);
    http_send_json(r, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

static json_t *json_col0(PGresult *res, int row, void *arg)
{
    return db_json_col(res, row, 0);
}

void http_send_page(struct req *r, PGresult *res, long limit, int cursor_col)
{
    http_send_page_of(r, res, limit, cursor_col, json_col0, NULL);
}
