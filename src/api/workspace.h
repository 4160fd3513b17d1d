/*
 * workspace (api) — the workspace origin's sign-in, its "not running" page,
 * and the lookups the proxy check shares with them (src/api/workspace.c). Request threads only; every
 * function uses the calling thread's connection and allocates nothing it
 * returns.
 */
#ifndef BERTH_API_WORKSPACE_H
#define BERTH_API_WORKSPACE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "auth.h"

struct req;

/* The workspace origin of (user, instance) under api_cfg; 0 / -1. */
int wsp_origin(const char *user, const char *instance, char *out, size_t size);

/* The UI-origin address that signs a browser in to instance_id's workspace
 * and comes back to path; 0 / -1 (too long). */
int wsp_login_url(const char *instance_id, const char *path, char *out, size_t size);

/* A berth_ws cookie value: 1 with *a filled when it is a live workspace
 * session for instance_id (its UI session live, its user enabled), 0 when
 * not, -1 when the database failed. */
int wsp_auth_token(PGconn *pg, const char *token, const char *instance_id, struct actor *a)
    __attribute__((warn_unused_result));

/* User name, instance name and owner id of a live instance; 1 / 0 / -1. */
int wsp_instance_names(PGconn *pg, const char *id, char user[33], char inst[33], char owner[37])
    __attribute__((warn_unused_result));

/* The status of a live instance and its error sentence (empty when none;
 * cut to errsize - 1 bytes on a UTF-8 boundary); 1 / 0 (no such instance,
 * or deleted) / -1 (database). status has room for 24 bytes. */
int wsp_instance_status(PGconn *pg, const char *id, char status[24], char *err, size_t errsize)
    __attribute__((warn_unused_result));

/* Handlers (router.c). */
void workspace_login(struct req *r);    /* GET /api/v1/auth/workspace */
void workspace_session(struct req *r);  /* GET /_berth/session (workspace host) */
void workspace_redirect(struct req *r); /* GET /_berth/to-workspace (UI origin) */
void workspace_unavailable(struct req *r); /* GET /_berth/unavailable (nginx's error_page) */
void workspace_refused(struct req *r);     /* GET /_berth/refused (nginx, for a browser) */

#endif
