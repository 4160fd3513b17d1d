/*
 * audit.h — the audit log's writers (audit.c): every state-changing request
 * leaves one row, "ok" with what it changed or the outcome of its refusal.
 *
 * A handler names what it does once (audit_begin: action, target type, the
 * target's id once known); then an accepted change is audit_ok() inside its
 * transaction and a refusal is one refuse() call, whose audit outcome follows
 * from the status and code (audit_outcome). Rows are written on the request's
 * own connection, on its thread. Details never hold secrets.
 */
#ifndef BERTH_API_AUDIT_H
#define BERTH_API_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct req;

/* What a request is audited as (struct req's audit; audit_begin fills it). */
struct req_audit {
    const char *action;      /* "instance.create"; NULL: its refusals leave no row */
    const char *target_type; /* "instance", or NULL */
    char target_id[64];      /* "" until known */
};

/* The request r is `action` on target_type/target_id (NULL: not known yet).
 * Static strings for action and target_type; target_id is copied. */
void audit_begin(struct req *r, const char *action, const char *target_type,
                 const char *target_id);
/* Its target's id, once known (a created row's new id). */
void audit_target(struct req *r, const char *target_id);

/* A row for r's audit context with outcome on r's connection (inside its
 * transaction when one is open: the row commits or rolls back with the
 * change). details is stolen (NULL: none). 0, or -1 (logged). */
int audit_row(struct req *r, const char *outcome, json_t *details)
    __attribute__((warn_unused_result));
/* audit_row(r, "ok", details). */
int audit_ok(struct req *r, json_t *details) __attribute__((warn_unused_result));
/* The end of an accepted change: its "ok" row (details stolen), then COMMIT.
 * false after rolling back and answering 503. */
bool audit_commit(struct req *r, json_t *details) __attribute__((warn_unused_result));

/*
 * Refuse r: roll back its open transaction, write the audit row of the
 * refusal (its own statement; when r has an audit context) with outcome
 * audit_outcome(status, code, field) and details {code, message, field},
 * and answer the error. The one way a handler turns a request down.
 */
void refuse(struct req *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Refuse a request for someone else's row as if it did not exist (404 "no
 * such <what>"; ids are never confirmed), audited as "denied". */
void refuse_hidden(struct req *r, const char *what);

/* The audit outcome of a refusal: "error" (5xx), "throttled" (429),
 * "quota_exceeded", "unauthenticated" (401), "denied" (403), "not_found"
 * (404 of the target) or "invalid" (404 of something the body names, any
 * other 4xx), "conflict" (409). Pure. */
const char *audit_outcome(int status, const char *code, const char *field);

/*
 * One audit row on pg with everything given (actor and address from r when
 * r is not NULL): for the rows that are not a handler's own change or
 * refusal (login attempts, refused credentials). details borrowed. 0 / -1.
 */
int audit_write(PGconn *pg, const struct req *r, const char *action, const char *target_type,
                const char *target_id, const char *outcome, json_t *details)
    __attribute__((warn_unused_result));

/* One CSV field of the audit export (quoted as needed, spreadsheet formulas
 * defused, followed by CRLF) into out. false when it does not fit. For tests
 * (auditlog.c). */
bool audit_csv_field(char *out, size_t size, const char *s);

#endif
