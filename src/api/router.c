/*
 * router — the table of every API endpoint. A route is a method, a path
 * pattern whose `{x}` segments capture one path segment each, and a handler.
 * The table is the single list of endpoints: `berth-api --routes` prints it so
 * tests can check that every endpoint is covered.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "workspace.h"
#include "berth/util.h"

struct route {
    const char *method;
    const char *pattern;
    void (*handler)(struct req *r);
};

static const struct route routes[] = {
    {"GET", "/api/v1/health", health_get},
    /* internal: only nginx's auth_request subrequest reaches this path */
    {"GET", "/_berth/auth/{id}", proxy_auth},
    /* the workspace origin's sign-in (workspace.c) */
    {"GET", "/_berth/session", workspace_session},
    {"GET", "/_berth/to-workspace", workspace_redirect},
    /* internal: only nginx's error_page of an instance location reaches this */
    {"GET", "/_berth/unavailable", workspace_unavailable},
    /* internal: nginx's page for a browser refused on a workspace origin */
    {"GET", "/_berth/refused", workspace_refused},
    {"GET", "/api/v1/auth/workspace", workspace_login},
    {"GET", "/metrics", metrics_get},
    /* accounts (session.c, users.c, tokens.c, ssh_keys.c, auditlog.c, stats.c) */
    {"POST", "/api/v1/auth/login", accounts_login},
    {"POST", "/api/v1/auth/logout", accounts_logout},
    {"GET", "/api/v1/auth/me", accounts_me},
    {"POST", "/api/v1/auth/password", accounts_password},
    {"GET", "/api/v1/users", users_list},
    {"POST", "/api/v1/users", users_create},
    {"GET", "/api/v1/users/{id}", users_get},
    {"PATCH", "/api/v1/users/{id}", users_patch},
    {"DELETE", "/api/v1/users/{id}", users_delete},
    {"GET", "/api/v1/tokens", tokens_list},
    {"POST", "/api/v1/tokens", tokens_create},
    {"DELETE", "/api/v1/tokens/{id}", tokens_delete},
    {"GET", "/api/v1/audit", audit_list},
    {"GET", "/api/v1/admin/stats", stats_admin},
    {"GET", "/api/v1/nodes", stats_nodes},
    {"GET", "/api/v1/ssh-keys", ssh_keys_list},
    {"POST", "/api/v1/ssh-keys", ssh_keys_create},
    {"DELETE", "/api/v1/ssh-keys/{id}", ssh_keys_delete},
    /* lifecycle (templates.c, instances.c, instance_create.c, instance_rpc.c, volumes.c,
     * jobs.c) */
    {"GET", "/api/v1/templates", templates_list},
    {"POST", "/api/v1/templates", templates_create},
    {"GET", "/api/v1/templates/{id}", templates_get},
    {"PATCH", "/api/v1/templates/{id}", templates_patch},
    {"DELETE", "/api/v1/templates/{id}", templates_delete},
    {"GET", "/api/v1/instances", instances_list},
    {"POST", "/api/v1/instances", instances_create},
    {"GET", "/api/v1/instances/{id}", instances_get},
    {"DELETE", "/api/v1/instances/{id}", instances_delete},
    {"POST", "/api/v1/instances/{id}/start", instances_start},
    {"POST", "/api/v1/instances/{id}/stop", instances_stop},
    {"POST", "/api/v1/instances/{id}/restart", instances_restart},
    {"POST", "/api/v1/instances/{id}/snooze", instances_snooze},
    {"GET", "/api/v1/instances/{id}/events", instances_events},
    {"GET", "/api/v1/instances/{id}/logs", instances_logs},
    {"GET", "/api/v1/instances/{id}/stats", instances_stats},
    {"POST", "/api/v1/instances/{id}/exec", instances_exec},
    {"GET", "/api/v1/jobs/{id}", jobs_get},
    {"GET", "/api/v1/volumes", volumes_list},
    {"DELETE", "/api/v1/volumes/{id}", volumes_delete},
};

/* Match path against pattern, capturing {x} segments into r->params. */
static bool match(struct req *r, const char *pattern, const char *path)
{
    size_t used = 0;
    r->nparams = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (len == 0 || r->nparams == REQ_MAX_PARAMS || used + len + 1 > sizeof(r->param_buf))
                return false;
            memcpy(r->param_buf + used, path, len);
            r->param_buf[used + len] = '\0';
            r->params[r->nparams++] = r->param_buf + used;
            used += len + 1;
            path += len;
            pattern = strchr(pattern, '}');
            if (!pattern)
                return false;
            pattern++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

void router_dispatch(struct req *r)
{
    bool path_known = false;
    r->route = -1;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (!match(r, routes[i].pattern, r->path))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, r->method) == 0) {
            r->route = (int)i;
            /* A change may take access away (logout, revoked token or key,
             * disabled user, deleted instance): the proxy's cached decisions
             * are dropped before it, and again after it committed, so none
             * read meanwhile outlives it. */
            bool unsafe = auth_method_unsafe(r->method);
            if (unsafe)
                proxy_auth_forget();
            routes[i].handler(r);
            if (unsafe)
                proxy_auth_forget();
            return;
        }
    }
    if (path_known)
        http_send_error(r, 405, "bad_request", NULL, "method %s is not allowed here", r->method);
    else
        http_send_error(r, 404, "not_found", NULL, "no such endpoint");
}

int router_count(void)
{
    return (int)ARRAY_LEN(routes);
}

bool router_route(int i, const char **method, const char **pattern)
{
    if (i < 0 || i >= (int)ARRAY_LEN(routes))
        return false;
    *method = routes[i].method;
    *pattern = routes[i].pattern;
    return true;
}

void router_dispatch_auth(struct req *r)
{
    /* read-only checks: nothing here changes what the cache holds */
    r->route = -1;
    if (strcmp(r->method, "GET") == 0 && match(r, "/_berth/auth/{id}", r->path)) {
        for (size_t i = 0; i < ARRAY_LEN(routes); i++)
            if (routes[i].handler == proxy_auth)
                r->route = (int)i; /* its histogram is the proxy check's */
        proxy_auth(r);
        return;
    }
    /* bodiless, as every answer on this socket (proxy.c says why) */
    http_send_empty(r, 404, NULL); /* this socket answers proxy checks only */
}

void router_print(void)
{
    for (size_t i = 0; i < ARRAY_LEN(routes); i++)
        printf("%s %s\n", routes[i].method, routes[i].pattern);
}
