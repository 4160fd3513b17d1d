/*
 * audit — writing the audit log (audit.h): the audit context of a request,
 * its ok row, and refuse(), the one way a handler turns a request down. The
 * log is read by GET /api/v1/audit (auditlog.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/log.h"
#include "berth/util.h"

int audit_write(PGconn *pg, const struct req *r, const char *action, const char *target_type,
                const char *target_id, const char *outcome, json_t *details)
{
    char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
    const char *p[8];
    PGresult *res;
    int rc;

    p[0] = r && r->actor.authenticated ? r->actor.user_id : NULL;
    p[1] = r && r->actor.authenticated ? r->actor.username : NULL;
    p[2] = action;
    p[3] = target_type;
    p[4] = target_id && *target_id ? target_id : NULL;
    p[5] = outcome;
    p[6] = r && r->ip && *r->ip ? r->ip : NULL;
    p[7] = d ? d : "{}";
    res = PQexecParams(pg,
                       "INSERT INTO audit_log (actor_id, actor, action, target_type, target_id,"
                       " outcome, ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
                       8, NULL, p, NULL, NULL, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        log_warn("audit row (%s) not written: %s", action, PQresultErrorMessage(res));
    PQclear(res);
    free(d);
    return rc;
}

void audit_begin(struct req *r, const char *action, const char *target_type,
                 const char *target_id)
{
    r->audit.action = action;
    r->audit.target_type = target_type;
    audit_target(r, target_id);
}

void audit_target(struct req *r, const char *target_id)
{
    util_strlcpy(r->audit.target_id, target_id ? target_id : "", sizeof(r->audit.target_id));
}

PGconn *req_change(struct req *r, const char *action, const char *target_type,
                   const char *target_id)
{
    PGconn *pg;

    if (auth_require(r) < 0 || !(pg = req_db(r)))
        return NULL;
    audit_begin(r, action, target_type, target_id);
    return pg;
}

PGconn *req_admin(struct req *r, const char *what)
{
    PGconn *pg;

    if (auth_require(r) < 0 || !(pg = req_db(r)))
        return NULL;
    if (!authz_admin(&r->actor)) {
        http_send_error(r, 403, "forbidden", NULL, "only an admin may %s", what);
        return NULL;
    }
    return pg;
}

int audit_row(struct req *r, const char *outcome, json_t *details)
{
    PGconn *pg = r->th->pg;
    int rc = -1;

    if (!r->audit.action)
        log_error("%s %s: an audit row without an audit context", r->method, r->path);
    else if (pg)
        rc = audit_write(pg, r, r->audit.action, r->audit.target_type, r->audit.target_id,
                         outcome, details);
    json_decref(details);
    return rc;
}

int audit_ok(struct req *r, json_t *details)
{
    return audit_row(r, "ok", details);
}

bool audit_commit(struct req *r, json_t *details)
{
    if (audit_ok(r, details) < 0) {
        req_unavailable(r, "the change could not be stored");
        return false;
    }
    return req_commit(r);
}

const char *audit_outcome(int status, const char *code, const char *field)
{
    if (status >= 500)
        return "error";
    if (status == 429)
        return "throttled";
    if (code && strcmp(code, "quota_exceeded") == 0)
        return "quota_exceeded";
    switch (status) {
    case 401:
        return "unauthenticated";
    case 403:
        return "denied";
    case 404:
        return field ? "invalid" : "not_found";
    case 409:
        return "conflict";
    default:
        return "invalid";
    }
}

/* The one refusal: roll back, audit with outcome (when r has a context),
 * answer the error with msg. */
static void refuse_as(struct req *r, const char *outcome, int status, const char *code,
                      const char *field, const char *msg)
{
    json_t *d;

    req_rollback(r); /* the refused change goes; its refusal is a row of its own */
    if (r->audit.action && r->th->pg && PQstatus(r->th->pg) == CONNECTION_OK) {
        d = json_pack("{s:s, s:s}", "code", code, "message", msg);
        if (!d) /* the message quoted input that is not UTF-8 */
            d = json_pack("{s:s}", "code", code);
        if (field)
            json_object_set_new(d, "field", json_string(field));
        if (audit_row(r, outcome, d) < 0)
            log_warn("audit row for a refused %s not written", r->audit.action);
    }
    http_send_error(r, status, code, field, "%s", msg);
}

void refuse(struct req *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    refuse_as(r, audit_outcome(status, code, field), status, code, field, msg);
}

void refuse_hidden(struct req *r, const char *what)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "no such %s", what);
    refuse_as(r, "denied", 404, "not_found", NULL, msg);
}
