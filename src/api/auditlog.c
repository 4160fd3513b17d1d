/*
 * audit — GET /api/v1/audit (admins): the audit log, newest first.
 *
 * Filters (all optional, combined with AND):
 *   user=NAME      rows whose actor is NAME
 *   action=A       exact action ("user.create"); "user.*" matches a prefix
 *   target=T       target id T, or "TYPE:ID", or a bare type ("user")
 *   outcome=O      "ok", "denied", "invalid", ...
 *   since=, until= RFC 3339 times (since inclusive, until exclusive)
 * Paging: ?limit= (default 50, max 500) and ?cursor= (an id: rows older than it).
 * Export: ?format=csv or ?format=jsonl (or Accept: text/csv /
 * application/x-ndjson) streams the same rows as a file, up to 10000 per
 * request (?limit= up to 10000), with the next cursor in X-Next-Cursor.
 * The rows are written by audit.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"

#define EXPORT_MAX 10000

enum fmt { FMT_JSON, FMT_CSV, FMT_JSONL };

/* A growing output buffer with a hard cap (export rows are bounded, so is this). */
struct obuf {
    char *data;
    size_t len, cap;
    bool failed;
};

static void ob_put(struct obuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 65536;
        while (nc < b->len + n + 1)
            nc *= 2;
        if (nc > (size_t)256 << 20) {
            b->failed = true;
            return;
        }
        char *nd = realloc(b->data, nc);
        if (!nd) {
            b->failed = true;
            return;
        }
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* One CSV field: quoted when needed; a leading = + - @ is defused for spreadsheets. */
static void csv_field(struct obuf *b, const char *s, bool last)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    bool formula =
        s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    if (quote || formula)
        ob_put(b, "\"", 1);
    if (formula)
        ob_put(b, "'", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            ob_put(b, "\"\"", 2);
        else
            ob_put(b, p, 1);
    }
    if (quote || formula)
        ob_put(b, "\"", 1);
    ob_put(b, last ? "\r\n" : ",", last ? 2 : 1);
}

bool audit_csv_field(char *out, size_t size, const char *s)
{
    struct obuf b = {0};
    bool ok;
    csv_field(&b, s, true);
    ok = !b.failed && b.len < size;
    if (ok)
        memcpy(out, b.data, b.len + 1);
    free(b.data);
    return ok;
}

static json_t *row_json(PGresult *res, int i, void *arg)
{
    json_t *details = json_loads(PQgetvalue(res, i, 8), 0, NULL);
    return json_pack("{s:I, s:o, s:o, s:s, s:o, s:o, s:s, s:o, s:o}", "id",
                     (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "at",
                     db_str_or_null(res, i, 1), "actor", db_str_or_null(res, i, 2), "action",
                     PQgetvalue(res, i, 3), "target_type", db_str_or_null(res, i, 4), "target_id",
                     db_str_or_null(res, i, 5), "outcome", PQgetvalue(res, i, 6), "ip",
                     db_str_or_null(res, i, 7), "details", details ? details : json_object());
}

/* Validate a time filter with PostgreSQL's own parser; false after answering 400. */
static bool check_time(struct req *r, PGconn *pg, const char *field, const char *v)
{
    const char *p[1] = {v};
    PGresult *res;
    bool ok;

    if (strlen(v) < 10 || strlen(v) > 40 || strspn(v, "0123456789-:TZtz.+ ") != strlen(v)) {
        http_send_error(r, 400, "invalid_field", field,
                        "%s must be an RFC 3339 time such as 2026-11-23T09:40:00Z", field);
        return false;
    }
    res = PQexecParams(pg, "SELECT $1::timestamptz", 1, NULL, p, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok)
        http_send_error(r, 400, "invalid_field", field,
                        "%s must be an RFC 3339 time such as 2026-11-23T09:40:00Z", field);
    return ok;
}

void audit_list(struct req *r)
{
    char user[64] = "", action[80] = "", target[160] = "", outcome[32] = "", since[48] = "",
         until[48] = "", cursor[24] = "", format[16] = "", slimit[24], ttype[64] = "",
         tid[100] = "";
    const char *p[10], *accept;
    enum fmt fmt = FMT_JSON;
    PGconn *pg;
    PGresult *res;
    long limit, cur = 0;
    bool prefix = false;
    int n;

    if (!(pg = req_admin(r, "read the audit log")))
        return;
    accept = req_param(r, "HTTP_ACCEPT");
    if (req_query(r, "format", format, sizeof(format))) {
        if (strcmp(format, "csv") == 0)
            fmt = FMT_CSV;
        else if (strcmp(format, "jsonl") == 0 || strcmp(format, "ndjson") == 0)
            fmt = FMT_JSONL;
        else if (strcmp(format, "json") != 0) {
            http_send_error(r, 400, "invalid_field", "format", "format must be json, csv or jsonl");
            return;
        }
    } else if (accept && strstr(accept, "text/csv")) {
        fmt = FMT_CSV;
    } else if (accept && strstr(accept, "application/x-ndjson")) {
        fmt = FMT_JSONL;
    }
    if (!req_limit(r, fmt == FMT_JSON ? 50 : EXPORT_MAX, fmt == FMT_JSON ? 500 : EXPORT_MAX,
                    &limit))
        return;
    if (req_query(r, "cursor", cursor, sizeof(cursor)) &&
        !util_parse_long(cursor, 1, 1L << 62, &cur)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not valid");
        return;
    }
    if (req_query(r, "user", user, sizeof(user)) && !valid_name(user)) {
        http_send_error(r, 400, "invalid_field", "user", "user must be a user name");
        return;
    }
    if (req_query(r, "action", action, sizeof(action)) &&
        (!*action ||
         strspn(action, "abcdefghijklmnopqrstuvwxyz0123456789._-*") != strlen(action))) {
        http_send_error(r, 400, "invalid_field", "action", "action is not valid");
        return;
    }
    if (req_query(r, "outcome", outcome, sizeof(outcome)) &&
        (!*outcome || strspn(outcome, "abcdefghijklmnopqrstuvwxyz_") != strlen(outcome))) {
        http_send_error(r, 400, "invalid_field", "outcome", "outcome is not valid");
        return;
    }
    if (req_query(r, "target", target, sizeof(target))) {
        const char *colon = strchr(target, ':');
        if (!*target || *target == REQ_QUERY_BAD || !valid_utf8(target, strlen(target))) {
            http_send_error(r, 400, "invalid_field", "target", "target is not valid");
            return;
        }
        if (colon && (size_t)(colon - target) < sizeof(ttype)) {
            memcpy(ttype, target, (size_t)(colon - target));
            ttype[colon - target] = '\0';
            util_strlcpy(tid, colon + 1, sizeof(tid));
        } else {
            util_strlcpy(tid, target, sizeof(tid)); /* an id, or a bare type */
        }
    } else {
        target[0] = '\0';
    }
    if (req_query(r, "since", since, sizeof(since)) && !check_time(r, pg, "since", since))
        return;
    if (req_query(r, "until", until, sizeof(until)) && !check_time(r, pg, "until", until))
        return;
    /* "user.*" is a prefix; anything else is exact. */
    {
        size_t al = strlen(action);
        if (al > 0 && action[al - 1] == '*') {
            action[al - 1] = '\0';
            prefix = true;
            if (strchr(action, '*')) {
                http_send_error(r, 400, "invalid_field", "action", "only a trailing * is allowed");
                return;
            }
        } else if (strchr(action, '*')) {
            http_send_error(r, 400, "invalid_field", "action", "only a trailing * is allowed");
            return;
        }
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit + 1);
    p[0] = user[0] ? user : NULL;
    p[1] = action[0] ? action : NULL;
    p[2] = prefix ? "prefix" : "exact";
    p[3] = ttype[0] ? ttype : NULL;
    p[4] = tid[0] ? tid : NULL;
    p[5] = outcome[0] ? outcome : NULL;
    p[6] = since[0] ? since : NULL;
    p[7] = until[0] ? until : NULL;
    p[8] = cur ? cursor : NULL;
    p[9] = slimit;
    if (!(res = req_q(r,
                       "SELECT id, " SQL_TS(
                           "at") ", actor, action, target_type, target_id, outcome, ip,"
                                 " details::text FROM audit_log WHERE"
                                 " ($1::text IS NULL OR actor = $1)"
                                 " AND ($2::text IS NULL OR (CASE WHEN $3 = 'prefix' THEN "
                                 "left(action, length($2)) = $2"
                                 "      ELSE action = $2 END))"
                                 " AND ($4::text IS NULL OR (target_type = $4 AND target_id = $5))"
                                 " AND ($4::text IS NOT NULL OR $5::text IS NULL OR target_id = $5 "
                                 "OR target_type = $5)"
                                 " AND ($6::text IS NULL OR outcome = $6)"
                                 " AND ($7::timestamptz IS NULL OR at >= $7::timestamptz)"
                                 " AND ($8::timestamptz IS NULL OR at < $8::timestamptz)"
                                 " AND ($9::bigint IS NULL OR id < $9::bigint)"
                                 " ORDER BY id DESC LIMIT $10::int",
                      10, p)))
        return;
    if (fmt == FMT_JSON) {
        http_send_page_of(r, res, limit, 0, row_json, NULL);
        return;
    }
    n = PQntuples(res);
    struct obuf b = {0};
    char hdr[256];
    if (fmt == FMT_CSV) {
        static const char head[] =
            "id,at,actor,action,target_type,target_id,outcome,ip,details\r\n";
        ob_put(&b, head, sizeof(head) - 1);
    }
    for (int i = 0; i < n && i < limit; i++) {
        if (fmt == FMT_CSV) {
            for (int c = 0; c < 9; c++)
                csv_field(&b, PQgetvalue(res, i, c), c == 8);
        } else {
            json_t *row = row_json(res, i, NULL);
            char *line = json_dumps(row, JSON_COMPACT);
            json_decref(row);
            if (line) {
                ob_put(&b, line, strlen(line));
                ob_put(&b, "\n", 1);
                free(line);
            }
        }
    }
    snprintf(hdr, sizeof(hdr),
             "Content-Disposition: attachment; filename=\"berth-audit.%s\"\r\n"
             "X-Next-Cursor: %s\r\n",
             fmt == FMT_CSV ? "csv" : "jsonl", n > limit ? PQgetvalue(res, (int)limit - 1, 0) : "");
    if (b.failed)
        http_send_error(r, 500, "internal", NULL, "the export is too large: use a smaller limit");
    else
        http_send_raw(r, 200, fmt == FMT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson",
                      hdr, b.data ? b.data : "", b.len);
    free(b.data);
    PQclear(res);
}
