/*
 * api.h — private interfaces of berth-api: the per-thread context, the request
 * object handlers receive, the response helpers, and the request layer every
 * handler uses (db.h: statements that answer 503 themselves; audit.h: the
 * audit context and refuse(); auth.h, authz.h: who asks and may they). Only
 * src/api includes it.
 */
#ifndef BERTH_API_H
#define BERTH_API_H

#include <fcgiapp.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "audit.h"
#include "auth.h"
#include "authz.h"
#include "berth/config.h"
#include "db.h"
#include "settings.h"

/* The settings this request reads: its thread's pinned snapshot
 * (settings.h). Read-only; SIGHUP publishes a new snapshot, never writes this. */
#define api_cfg (*settings_get())

/* One per request thread: its own PostgreSQL and Redis connections. */
struct api_thread {
    int index;
    PGconn *pg;
    redisContext *redis;
};

#define REQ_MAX_PARAMS 4

struct req {
    FCGX_Request *fcgi;
    struct api_thread *th;
    char id[17];        /* request id, also in log lines */
    const char *method; /* REQUEST_METHOD */
    const char *path;   /* DOCUMENT_URI: decoded path without query */
    const char *query;  /* QUERY_STRING, may be "" */
    const char *ip;     /* the client's address (auth_client_addr: REMOTE_ADDR, or
                         * X-Forwarded-For from a trusted proxy) */
    const char *params[REQ_MAX_PARAMS]; /* {id}-style path parameters, borrowed */
    char param_buf[256];
    int nparams;
    char *body; /* NUL-terminated, NULL when none */
    size_t body_len;
    struct actor actor; /* filled by auth_require() */
    struct req_audit audit; /* audit_begin(): what the request is audited as */
    int status; /* status sent, for the access log */
    bool sent;
    bool handed_off; /* given to a long-call pool (longcall.h): the request
                      * thread no longer owns fcgi and must not finish it */
    int route;       /* index of the route it was dispatched to (router_route), -1: none */
};

/* Request header or FastCGI param by CGI name ("HTTP_COOKIE"), or NULL. */
const char *req_param(const struct req *r, const char *name);

/* Query parameter `name`, URL-decoded into buf; false if absent. A value that
 * does not fit buf or holds a NUL reads as the one character REQ_QUERY_BAD,
 * which no field's check accepts: it is refused, never taken for absent. */
#define REQ_QUERY_BAD '\x01'
bool req_query(const struct req *r, const char *name, char *buf, size_t size);

/* Reads the body (up to body_limit). 0 ok; -1 after sending 413/400 itself. */
int req_read_body(struct req *r) __attribute__((warn_unused_result));

/* Parses the body as a JSON object. NULL after sending 400 itself. New reference. */
json_t *req_json(struct req *r);
/* The first key of obj not in allowed (NULL-terminated list), or NULL. */
const char *req_unknown_field(json_t *obj, const char *const allowed[]);
/* The request's JSON object body, with no key outside allowed. NULL after
 * answering 400 (or 413), the refusal audited in r's audit context (when it
 * has one). New reference. */
json_t *req_body(struct req *r, const char *const allowed[]);
/* ?limit= (default def, 1..max) into *limit. false after sending 400 itself. */
bool req_limit(struct req *r, long def, long max, long *limit);

/* Responses. Each sends exactly once; later calls are ignored (and logged). */
void http_send_json(struct req *r, int status, json_t *body); /* steals body */
/* The same with extra header lines ("Name: value\r\n"...; NULL: none). Every
 * JSON answer goes out through these two (numbers with 15 digits). */
void http_send_json_with(struct req *r, int status, const char *extra_headers, json_t *body);
void http_send_error(struct req *r, int status, const char *code, const char *field,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* http_send_error (no field) of a message already written, with extra header
 * lines ("Retry-After: 5\r\n"); msg is sent as it is (the caller cuts it). */
void http_send_error_with(struct req *r, int status, const char *extra_headers, const char *code,
                          const char *msg);
void http_send_empty(struct req *r, int status, const char *extra_headers);
void http_send_raw(struct req *r, int status, const char *content_type, const char *extra_headers,
                   const char *body, size_t len);

/* The thread's Redis connection, (re)connected on demand; NULL when Redis is
 * down. PostgreSQL's is db.h's. */
redisContext *rq_conn(struct api_thread *th);
void rq_close(struct api_thread *th);

/* The start of a state-changing request: its actor authenticated
 * (auth_require), its connection (req_db), and the request audited as action
 * on target_type/target_id (audit_begin). The connection, or NULL after
 * answering. */
PGconn *req_change(struct req *r, const char *action, const char *target_type,
                   const char *target_id);
/* The start of an admin-only read: its actor authenticated, its connection,
 * and anyone but an admin refused with 403 "only an admin may <what>". The
 * connection, or NULL after answering. */
PGconn *req_admin(struct req *r, const char *what);

/* Router: dispatch r to its handler (r->route its index), or answer
 * 404/405 (r->route -1). */
void router_dispatch(struct req *r);
/* The same for the proxy-check socket: its two internal routes only. */
void router_dispatch_auth(struct req *r);
/* Print "METHOD PATTERN" per route (berth-api --routes). */
void router_print(void);
/* How many routes there are; route i's method and pattern (static), false
 * past the end. */
int router_count(void);
bool router_route(int i, const char **method, const char **pattern);

/* Handlers. */
void health_get(struct req *r);
void proxy_auth(struct req *r); /* internal: nginx auth_request for /container/ */
void proxy_auth_forget(void);    /* drop the cached proxy decisions (any change) */
void metrics_get(struct req *r); /* GET /metrics, loopback scrapers (nginx allows 127.0.0.1) */
/* Count one response for /metrics (server.c and longcall.c, after every
 * request): its status class, and its duration by route (r->route). Any thread. */
void metrics_observe(const struct req *r, long duration_ms);
/* Accounts (session.c, users.c, tokens.c, ssh_keys.c, auditlog.c, stats.c). */
void accounts_login(struct req *r);
void accounts_password(struct req *r); /* a user changes their own password */
void accounts_logout(struct req *r);
void accounts_me(struct req *r);
void users_list(struct req *r);
void users_create(struct req *r);
void users_get(struct req *r);
void users_patch(struct req *r);
void users_delete(struct req *r);
void tokens_list(struct req *r);
void tokens_create(struct req *r);
void tokens_delete(struct req *r);
void audit_list(struct req *r);
void stats_admin(struct req *r);
void stats_nodes(struct req *r);
void ssh_keys_list(struct req *r);
void ssh_keys_create(struct req *r);
void ssh_keys_delete(struct req *r);
/* Lifecycle (templates.c, instances.c, instance_create.c, instance_rpc.c, volumes.c,
 * jobs.c). */
void templates_list(struct req *r);
void templates_get(struct req *r);
void templates_create(struct req *r);
void templates_patch(struct req *r);
void templates_delete(struct req *r);
void instances_list(struct req *r);
void instances_create(struct req *r);
void instances_get(struct req *r);
void instances_start(struct req *r);
void instances_stop(struct req *r);
void instances_restart(struct req *r);
/* Counts as activity of a running instance (its idle clock starts again). */
void instances_snooze(struct req *r);
void instances_delete(struct req *r);
void instances_events(struct req *r);
void instances_logs(struct req *r);
void instances_stats(struct req *r);
void instances_exec(struct req *r);
void jobs_get(struct req *r);
void volumes_list(struct req *r);
void volumes_delete(struct req *r);

/* Administrative commands run instead of the server (main.c); exit codes. */
int migrate_run(const char *dir);
int admin_create_user(const char *name, const char *role);
int admin_bootstrap(const char *password_file);
int admin_seed_templates(const char *file);
int admin_sync_routes(void);
/* Record the stack's build of image: state queued|building|ready|failed and
 * its latest output line (message, may be NULL). 0; 1 when PostgreSQL
 * refused; 2 for a bad state or image reference. */
int admin_image_build(const char *state, const char *image, const char *message);

#endif
