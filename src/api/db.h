/*
 * db.h — berth-api's PostgreSQL: the connection of a request thread, and the
 * statements a handler runs on it.
 *
 * A handler takes its request's connection once (req_db) and then runs its
 * statements through req_q: a statement that fails is logged, the request's
 * open transaction (if any) rolled back and the request answered 503, so a
 * handler's only duty on NULL is to return. Refusals that must be audited go
 * through refuse() (audit.h), which also rolls back. All of it runs on the
 * request's thread; the connection belongs to that thread (struct api_thread)
 * and is never shared.
 */
#ifndef BERTH_API_DB_H
#define BERTH_API_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

struct api_thread;
struct req;

/* A timestamptz column as an RFC 3339 UTC string (NULL stays NULL). */
#define SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The thread's connection, (re)connected on demand: NULL (logged) when
 * PostgreSQL cannot be reached. A connection whose server went away is
 * noticed here, before a statement is lost on it. */
PGconn *db_conn(struct api_thread *th);
void db_close(struct api_thread *th);

/* Run a statement without parameters (BEGIN, COMMIT, ROLLBACK): true when it
 * succeeded, else logged. */
bool db_exec(PGconn *pg, const char *sql);
/* Run sql with n text parameters on pg, outside any request (the
 * administrative commands, lookups that answer for themselves): the result
 * when it succeeded, else NULL after logging `what` and the error. */
PGresult *db_run(PGconn *pg, const char *what, const char *sql, int n, const char *const *p);
/* The SQLSTATE of a failed result ("" when none). */
const char *db_sqlstate(const PGresult *res);
/* A json column as a new jansson value (NULL on SQL NULL or bad JSON). */
json_t *db_json_col(PGresult *res, int row, int col);
/* A text column as a JSON string, or null for SQL NULL. New reference. */
json_t *db_str_or_null(PGresult *res, int row, int col);

/* Answer r 200 with a one-page list: {"items": [the json column 0 of every
 * row of res], "next_cursor": null}. res is consumed. */
void http_send_items(struct req *r, PGresult *res);

/* Answer r 200 with a page of a list whose query asked for limit + 1 rows:
 * the json column 0 of the first limit rows, and next_cursor the column
 * cursor_col of the last of them when there were more (else null). res is
 * consumed. */
void http_send_page(struct req *r, PGresult *res, long limit, int cursor_col);
/* The same with each item made by item(res, row, arg) instead of column 0; an
 * item NULL leaves its row out (the cursor still follows the rows). */
typedef json_t *(*page_item_fn)(PGresult *res, int row, void *arg);
void http_send_page_of(struct req *r, PGresult *res, long limit, int cursor_col, page_item_fn item,
                       void *arg);

/* The connection of r's thread, or NULL after answering 503 itself. */
PGconn *req_db(struct req *r);
/*
 * Run sql with n text parameters on r's connection (req_db first). The
 * result (the caller's, PQclear) when the statement succeeded; otherwise
 * NULL after logging it, rolling back r's open transaction and answering 503.
 */
PGresult *req_q(struct req *r, const char *sql, int n, const char *const *p);
/* req_q for an INSERT or UPDATE that may hit a unique constraint: a unique
 * violation gives NULL with *dup true and nothing answered (the transaction
 * is aborted: refuse() or req_rollback next); any other failure is req_q's. */
PGresult *req_q_unique(struct req *r, bool *dup, const char *sql, int n, const char *const *p);
/* BEGIN / COMMIT on r's connection; false after answering 503 (a failed
 * COMMIT rolls back). */
bool req_begin(struct req *r);
bool req_commit(struct req *r);
/* Roll back r's transaction when one is open (nothing answered). */
void req_rollback(struct req *r);
/* Roll back, and answer 503 with what (a sentence: "the database is
 * unavailable", "the instance could not be stored"). */
void req_unavailable(struct req *r, const char *what);

#endif
