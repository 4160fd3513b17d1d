/*
 * routesync — the worker's side of the nginx routes that involves the
 * database (issue 5 "Ops"): one instance's snippet from its row values, and
 * the pass that makes box-available/ and box-enabled/ agree with the
 * database.
 *
 * The pass reads every live instance of this node (a `deleting` one has lost
 * its route already); each with an HTTP port and an address
 * (instances.upstream_host: its address on its user network, nginx proxies
 * to that and the template's http_port; an instance from before issue 10,
 * not yet moved by its next start, keeps its published host port on
 * host_address) gets its snippet written (when missing or different) and linked, and the
 * snippets of instances the node does not have are removed (those naming
 * another node are left to that node's worker). routes_put and routes_prune
 * only touch what differs, so a pass over an agreeing directory reads files
 * and changes nothing: no reload. Reconcile runs a pass at start-up and on
 * every round; the `routes_sync` job (queued by `berth-api --sync-routes`,
 * after restoring a backup, say) runs one that also retries snippets nginx
 * refused before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/snippet.h"
#include "pg.h"
#include "routes.h"
#include "worker.h"

struct sync {
    struct worker *w;
    routesync_cb cb;
    void *arg;
};

static void on_event_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("route event not recorded: %s", err);
}

int routesync_put(struct worker *w, const char *instance_id, const char *user, const char *name,
                  const char *template_name, const char *upstream_host, long upstream_port,
                  bool keep)
{
    struct snippet_in in = {
        .instance_id = instance_id,
        .user = user,
        .instance = name,
        .template_name = template_name,
        .upstream_host = upstream_host,
        .upstream_port = (int)upstream_port,
        .keep_prefix = keep,
        .node = w->cfg->node,
    };
    char err[256];
    int rc;
    if (!w->routes)
        return 0;
    rc = routes_put(w->routes, &in, err, sizeof(err));
    if (rc < 0) {
        const char *p[2] = {instance_id, err};
        log_warn("instance %s: route not written: %s", instance_id, err);
        if (pg_query(w->pg,
                     "INSERT INTO instance_events (instance_id, kind, message) SELECT $1,"
                     " 'route', $2 WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)",
                     2, p, on_event_logged, NULL) < 0)
            log_warn("instance %s: route error not recorded", instance_id);
    }
    return rc;
}

static void on_rows(PGresult *res, const char *err, void *arg)
{
    struct sync *s = arg;
    struct worker *w = s->w;
    struct routesync_result r = {0};
    const char **keep = NULL;
    size_t nkeep = 0;

    if (err || !w->routes) {
        if (err)
            log_warn("routes: cannot read the instances: %s", err);
        if (s->cb)
            s->cb(&r, err ? "the instances could not be read" : NULL, s->arg);
        free(s);
        return;
    }
    keep = calloc((size_t)PQntuples(res) + 1, sizeof(*keep));
    if (!keep) {
        if (s->cb)
            s->cb(&r, "out of memory", s->arg);
        free(s);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        keep[nkeep++] = id;
        if (PQgetisnull(res, i, 4) || PQgetisnull(res, i, 5))
            continue; /* no HTTP port, or its address not assigned yet: no route */
        r.routes++;
        if (routesync_put(w, id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                          PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                          strtol(PQgetvalue(res, i, 5), NULL, 10),
                          strcmp(PQgetvalue(res, i, 6), "t") == 0) > 0)
            r.written++;
    }
    r.removed = routes_prune(w->routes, keep, nkeep);
    free(keep);
    if (r.written || r.removed)
        log_info("routes: %zu written, %zu removed, %zu in agreement with the database", r.written,
                 r.removed, r.routes - r.written);
    if (s->cb)
        s->cb(&r, NULL, s->arg);
    free(s);
}

int routesync_run(struct worker *w, bool retry_refused, routesync_cb cb, void *arg)
{
    const char *p[2] = {w->cfg->node, w->cfg->host_address};
    struct sync *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->w = w;
    s->cb = cb;
    s->arg = arg;
    if (retry_refused && w->routes)
        routes_retry(w->routes);
    if (pg_query(w->pg,
                 "SELECT i.id, u.username, i.name, coalesce(i.spec->>'template_name', ''),"
                 " CASE WHEN i.upstream_host IS NOT NULL THEN host(i.upstream_host) WHEN p.port"
                 " IS NOT NULL THEN $2 END, CASE WHEN i.upstream_host IS NOT NULL AND"
                 " jsonb_typeof(i.spec->'http_port') = 'number' THEN (i.spec->>'http_port')::int"
                 " WHEN i.upstream_host IS NULL THEN p.port END,"
                 " coalesce(i.spec->>'proxy_mode', '') = 'keep' FROM instances i JOIN users u ON"
                 " u.id = i.user_id LEFT JOIN instance_ports p ON p.instance_id = i.id AND p.name"
                 " = 'http' WHERE i.node = $1 AND i.status NOT IN ('deleted', 'deleting')",
                 2, p, on_rows, s) < 0) {
        free(s);
        return -1;
    }
    return 0;
}
