/*
 * accounts — private helpers shared by the account handlers (accounts.c,
 * users.c, tokens.c, audit.c, stats.c): the user object, field checks, list
 * paging, transactions.
 */
#ifndef BERTH_API_ACCOUNTS_H
#define BERTH_API_ACCOUNTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "api.h"

/* A timestamptz column as an RFC 3339 UTC string (NULL stays NULL). */
#define SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Columns of the user object, in the order acct_user_json() reads them. */
#define USER_COLS                                                                                  \
    "u.id, u.username, u.role, u.quota_instances, u.quota_cpus, u.quota_memory_mb, "              \
    SQL_TS("u.created_at") ", u.disabled"
#define USER_NCOLS 8

/* The API's user object from row `row`, columns USER_COLS starting at `col`. New reference. */
json_t *acct_user_json(PGresult *res, int row, int col);

/* A JSON string or null from a column. New reference. */
json_t *acct_str_or_null(PGresult *res, int row, int col);

/* The first key of obj not in allowed (NULL-terminated list), or NULL. */
const char *acct_unknown_field(json_t *obj, const char *const allowed[]);

/* Number of UTF-8 characters in s (which jansson has already checked is UTF-8). */
size_t acct_utf8_chars(const char *s, size_t n);

/* ?limit= (default def, 1..max) into *limit. false after sending 400 itself. */
bool acct_limit(struct req *r, long def, long max, long *limit);

/* Run a statement without parameters (BEGIN, COMMIT, ROLLBACK). true when it succeeded. */
bool acct_exec(PGconn *pg, const char *sql);

/* The PostgreSQL connection of r, or NULL after answering 503 itself. */
PGconn *acct_db(struct req *r);

/* The SQLSTATE of a failed result ("" when none). */
const char *acct_sqlstate(const PGresult *res);

/* One CSV field of the audit export (quoted as needed, spreadsheet formulas defused,
 * followed by CRLF) into out. false when it does not fit. For tests. */
bool audit_csv_field(char *out, size_t size, const char *s);

#endif
