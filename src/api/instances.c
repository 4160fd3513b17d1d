/*
 * instances — users' workspaces (API.md "Instances"). berth-api only writes
 * the desired state and queues a job; berth-worker makes Docker agree.
 *
 *   GET    /api/v1/instances                 own (admin: ?all=true, ?user=, ?status=)
 *   POST   /api/v1/instances                 {template, name?, volumes?} -> 202 {instance, job}
 *   GET    /api/v1/instances/{id}            owner, admin
 *   POST   /api/v1/instances/{id}/start|stop|restart  -> 202 {instance, job}
 *   DELETE /api/v1/instances/{id}            ?delete_volumes=true -> 202 {instance, job}
 *   GET    /api/v1/instances/{id}/events     lifecycle history
 *
 * Create is one transaction: quota (quota_reserve() locks the user row, so a
 * user's concurrent creates serialise: the quota edge and the default name
 * -2/-3 are decided one at a time), instance row with the template frozen
 * into `spec` (placeholders expanded), host ports drawn at random and
 * reserved by the (node, port) primary key (a collision just draws again),
 * volume rows, job row, event and audit rows. The job id is pushed to Redis
 * after COMMIT; if that push is lost the worker's reconcile finds the queued
 * row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"
#include "longcall.h"
#include "workspace.h"

#define INSTANCE_JSON                                                                              \
    "json_build_object('id', i.id, 'name', i.name, 'user', u.username, 'template',"               \
    " json_build_object('id', i.template_id, 'name', coalesce(t.name, i.spec->>'template_name')),"\
    " 'status', i.status, 'desired', i.desired, 'node', i.node, 'ports', CASE WHEN"                \
    " jsonb_typeof(i.spec->'http_port') = 'number' THEN '{\"http\": null}'::jsonb ELSE"            \
    " '{}'::jsonb END || coalesce((SELECT jsonb_object_agg(p.name, p.port) FROM instance_ports p" \
    " WHERE p.instance_id = i.id AND p.name <> 'http'), '{}'::jsonb), 'volumes', coalesce((SELECT"\
    " json_agg("                                                                                   \
    "json_build_object('id', v.id, 'name', v.name, 'mount_path', v.mount_path, 'docker_name',"    \
    " 'berth-' || v.id) ORDER BY v.name) FROM volumes v WHERE v.instance_id = i.id AND"           \
    " v.deleted_at IS NULL), '[]'::json), 'error', i.error, 'cpus', i.cpus, 'memory_mb',"         \
    " i.memory_mb, 'http_port', i.spec->'http_port', 'ssh_port', i.spec->'ssh_port',"             \
    " 'open_path', i.spec->'open_path', 'capabilities', coalesce(i.spec->'capabilities',"         \
    " '[]'::jsonb), 'disk_mb', coalesce(i.spec->'disk_mb', '0'::jsonb),"                           \
    " 'created_at', " SQL_TS("i.created_at") ", 'started_at', " SQL_TS("i.started_at")            \
    ", 'stopped_at', " SQL_TS("i.stopped_at") ", 'last_active_at', " SQL_TS("i.last_active_at")   \
    ")::text"
#define INSTANCE_FROM                                                                              \
    " FROM instances i JOIN users u ON u.id = i.user_id LEFT JOIN templates t ON t.id = i.template_id"

#define PORT_RANDOM_TRIES 8

void lc_instance_finish(json_t *inst)
{
    json_t *ports = json_object_get(inst, "ports");
    const char *user = json_string_value(json_object_get(inst, "user"));
    const char *name = json_string_value(json_object_get(inst, "name"));
    char buf[512];

    if (!user || !name)
        return;
    if (json_is_integer(json_object_get(inst, "http_port"))) {
        const char *op = json_string_value(json_object_get(inst, "open_path"));
        char origin[400], open[sizeof(origin) + sizeof(buf) + TMPL_MAX_OPEN_PATH * 4 + 256];
        snprintf(buf, sizeof(buf), "/container/%s/%s/", user, name);
        /* where a browser opens it: the workspace origin (issue 10) + path +
         * the template's open_path, expanded at create */
        if (wsp_origin(user, name, origin, sizeof(origin)) < 0)
            origin[0] = '\0';
        snprintf(open, sizeof(open), "%s%s%s", origin, buf, op && tmpl_open_path_ok(op) ? op : "");
        json_object_set_new(inst, "urls", json_pack("{s:s, s:s}", "http", buf, "open", open));
    } else {
        json_object_set_new(inst, "urls", json_object());
    }
    if (json_is_integer(json_object_get(inst, "ssh_port")) &&
        json_is_integer(json_object_get(ports, "ssh"))) {
        long port = (long)json_integer_value(json_object_get(ports, "ssh"));
        snprintf(buf, sizeof(buf), "ssh -p %ld root@%s", port, api_cfg.public_host);
        json_object_set_new(inst, "ssh",
                            json_pack("{s:s, s:i, s:s, s:s}", "host", api_cfg.public_host, "port",
                                      (int)port, "user", "root", "command", buf));
    } else {
        json_object_set_new(inst, "ssh", json_null());
    }
    json_object_del(inst, "http_port");
    json_object_del(inst, "ssh_port");
    json_object_del(inst, "open_path");
}

json_t *lc_instance_get(PGconn *pg, const char *id)
{
    const char *p[1] = {id};
    PGresult *res = PQexecParams(pg, "SELECT " INSTANCE_JSON INSTANCE_FROM " WHERE i.id = $1", 1,
                                 NULL, p, NULL, NULL, 0);
    json_t *inst = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        (inst = lc_json_col(res, 0, 0)))
        lc_instance_finish(inst);
    PQclear(res);
    return inst;
}

json_t *lc_job_get(PGconn *pg, const char *id)
{
    const char *p[1] = {id};
    PGresult *res = PQexecParams(pg, "SELECT " JOB_JSON "::text FROM jobs j WHERE j.id = $1", 1,
                                 NULL, p, NULL, NULL, 0);
    json_t *job = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        job = lc_json_col(res, 0, 0);
    PQclear(res);
    return job;
}

int lc_job_insert(PGconn *pg, const char *id, const char *kind, const char *node,
                  const char *instance_id, const char *volume_id, const char *user_id,
                  const char *args_json)
{
    const char *p[7] = {id, kind, node, instance_id, volume_id, user_id,
                        args_json ? args_json : "{}"};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO jobs (id, kind, node, instance_id, volume_id, user_id,"
                                 " args) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                                 7, NULL, p, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        log_warn("job insert failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

int lc_event(PGconn *pg, const char *instance_id, const char *kind, const char *message)
{
    const char *p[3] = {instance_id, kind, message ? message : ""};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO instance_events (instance_id, kind, message)"
                                 " VALUES ($1, $2, $3)",
                                 3, NULL, p, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    PQclear(res);
    return rc;
}

static void unavailable(struct req *r, PGconn *pg, const char *what)
{
    acct_exec(pg, "ROLLBACK");
    http_send_error(r, 503, "unavailable", NULL, "%s", what);
}

/* ---- list / get ---- */

void instances_list(struct req *r)
{
    char all[8] = "", user[40] = "", status[16] = "", cursor[40] = "", lim[24];
    const char *p[5];
    long limit;
    PGconn *pg;
    PGresult *res;
    json_t *items;
    int n;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!acct_limit(r, 50, 500, &limit))
        return;
    req_query(r, "all", all, sizeof(all));
    req_query(r, "user", user, sizeof(user));
    req_query(r, "status", status, sizeof(status));
    req_query(r, "cursor", cursor, sizeof(cursor));
    if (cursor[0] && !valid_uuid(cursor)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not one this API gave out");
        return;
    }
    if (user[0] && !valid_name(user)) {
        http_send_error(r, 400, "invalid_field", "user", "user must be a user name");
        return;
    }
    if (status[0] && strcmp(status, "pending") && strcmp(status, "creating") &&
        strcmp(status, "running") && strcmp(status, "stopping") && strcmp(status, "stopped") &&
        strcmp(status, "restarting") && strcmp(status, "deleting") && strcmp(status, "deleted") &&
        strcmp(status, "error")) {
        http_send_error(r, 400, "invalid_field", "status", "status must be an instance status");
        return;
    }
    /* Non-admins always see their own only; ?all/?user widen it for admins. */
    if (!authz_admin(&r->actor) || (strcmp(all, "true") != 0 && !user[0]))
        p[0] = r->actor.user_id;
    else
        p[0] = NULL;
    p[1] = user[0] && authz_admin(&r->actor) ? user : NULL;
    p[2] = status[0] ? status : NULL;
    p[3] = cursor[0] ? cursor : NULL;
    snprintf(lim, sizeof(lim), "%ld", limit + 1);
    p[4] = lim;
    res = PQexecParams(pg,
                       "SELECT " INSTANCE_JSON ", i.id, i.user_id" INSTANCE_FROM
                       " WHERE ($1::uuid IS NULL OR i.user_id = $1)"
                       " AND ($2::text IS NULL OR u.username = $2)"
                       " AND (CASE WHEN $3::text IS NULL THEN i.status <> 'deleted'"
                       " ELSE i.status = $3 END)"
                       " AND ($4::uuid IS NULL OR (i.created_at, i.id) > (SELECT created_at, id"
                       " FROM instances WHERE id = $4))"
                       " ORDER BY i.created_at, i.id LIMIT $5::int",
                       5, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("instance list failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    items = json_array();
    n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++) {
        json_t *inst;
        if (!authz_instance(&r->actor, ACT_READ, PQgetvalue(res, i, 2)))
            continue;
        if ((inst = lc_json_col(res, i, 0))) {
            lc_instance_finish(inst);
            json_array_append_new(items, inst);
        }
    }
    http_send_json(r, 200,
                   json_pack("{s:o, s:o}", "items", items, "next_cursor",
                             n > limit ? json_string(PQgetvalue(res, limit - 1, 1)) : json_null()));
    PQclear(res);
}

/* Owner, status and node of instance id (live or deleted); false when none. */
static bool owner_node_of(PGconn *pg, const char *id, char owner[37], char status[16],
                          char node[64], bool lock)
{
    const char *p[1] = {id};
    PGresult *res;
    bool found;

    if (!valid_uuid(id))
        return false;
    res = PQexecParams(pg,
                       lock ? "SELECT user_id, status, node FROM instances WHERE id = $1 FOR UPDATE"
                            : "SELECT user_id, status, node FROM instances WHERE id = $1",
                       1, NULL, p, NULL, NULL, 0);
    found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (found) {
        util_strlcpy(owner, PQgetvalue(res, 0, 0), 37);
        util_strlcpy(status, PQgetvalue(res, 0, 1), 16);
        if (node)
            util_strlcpy(node, PQgetvalue(res, 0, 2), 64);
    }
    PQclear(res);
    return found;
}

static bool owner_of(PGconn *pg, const char *id, char owner[37], char status[16], bool lock)
{
    return owner_node_of(pg, id, owner, status, NULL, lock);
}

void instances_get(struct req *r)
{
    char owner[37], status[16];
    PGconn *pg;
    json_t *inst;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!owner_of(pg, r->params[0], owner, status, false) ||
        !authz_instance(&r->actor, ACT_READ, owner)) {
        http_send_error(r, 404, "not_found", NULL, "no such instance");
        return;
    }
    if (!(inst = lc_instance_get(pg, r->params[0]))) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    http_send_json(r, 200, inst);
}

void instances_events(struct req *r)
{
    char owner[37], status[16];
    const char *p[1] = {r->params[0]};
    PGconn *pg;
    PGresult *res;
    json_t *items;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!owner_of(pg, r->params[0], owner, status, false) ||
        !authz_instance(&r->actor, ACT_READ, owner)) {
        http_send_error(r, 404, "not_found", NULL, "no such instance");
        return;
    }
    res = PQexecParams(pg,
                       "SELECT json_build_object('at', " SQL_TS("at") ", 'kind', kind, 'message',"
                       " message)::text FROM (SELECT * FROM instance_events WHERE instance_id = $1"
                       " ORDER BY id DESC LIMIT 500) e ORDER BY id",
                       1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, lc_json_col(res, i, 0));
    PQclear(res);
    http_send_json(r, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

/* ---- create ---- */

/* Reserve one host port for (instance, name). 0 with *out, 1 when the range is
 * exhausted, -1 on a database error. */
static int reserve_port(PGconn *pg, const char *iid, const char *name, long cport, long *out)
{
    char port[16], cp[16], lo[16], hi[16];
    const char *p[6];
    long span = api_cfg.port_max - api_cfg.port_min + 1;
    PGresult *res;

    snprintf(cp, sizeof(cp), "%ld", cport);
    p[0] = api_cfg.node;
    p[2] = iid;
    p[3] = name;
    p[4] = cp;
    for (int i = 0; i < PORT_RANDOM_TRIES + 3; i++) {
        if (i < PORT_RANDOM_TRIES) {
            uint32_t rnd;
            if (util_random(&rnd, sizeof(rnd)) < 0)
                return -1;
            snprintf(port, sizeof(port), "%ld", api_cfg.port_min + (long)(rnd % (uint32_t)span));
            p[1] = port;
            res = PQexecParams(pg,
                               "INSERT INTO instance_ports (node, port, instance_id, name,"
                               " container_port) VALUES ($1, $2, $3, $4, $5)"
                               " ON CONFLICT (node, port) DO NOTHING RETURNING port",
                               5, NULL, p, NULL, NULL, 0);
        } else {
            /* Random draws keep colliding: the range is nearly full. Pick among the free. */
            snprintf(lo, sizeof(lo), "%ld", api_cfg.port_min);
            snprintf(hi, sizeof(hi), "%ld", api_cfg.port_max);
            p[1] = lo;
            p[5] = hi;
            res = PQexecParams(pg,
                               "INSERT INTO instance_ports (node, port, instance_id, name,"
                               " container_port) SELECT $1, g, $3::uuid, $4, $5::int FROM"
                               " generate_series($2::int, $6::int) g WHERE NOT EXISTS (SELECT 1"
                               " FROM instance_ports x WHERE x.node = $1 AND x.port = g)"
                               " ORDER BY random() LIMIT 1"
                               " ON CONFLICT (node, port) DO NOTHING RETURNING port",
                               6, NULL, p, NULL, NULL, 0);
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_warn("port reservation failed: %s", PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        if (PQntuples(res) == 1) {
            *out = strtol(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
            return 0;
        }
        PQclear(res);
    }
    return 1;
}

/* The first free name among base, base-2, base-3... for user_id. */
static int pick_name(PGconn *pg, const char *user_id, const char *base, char out[33])
{
    const char *p[2] = {user_id, base};
    PGresult *res = PQexecParams(pg,
                                 "SELECT name FROM instances WHERE user_id = $1 AND status <>"
                                 " 'deleted' AND (name = $2 OR name LIKE $2 || '-%')",
                                 2, NULL, p, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    for (int k = 1; k < 10000 && rc < 0; k++) {
        char cand[48];
        bool taken = false;
        if (k == 1) {
            snprintf(cand, sizeof(cand), "%s", base);
        } else {
            char suffix[8];
            int sl = snprintf(suffix, sizeof(suffix), "-%d", k);
            size_t bl = strlen(base);
            if (bl + (size_t)sl > 32)
                bl = 32 - (size_t)sl;
            while (bl > 0 && base[bl - 1] == '-')
                bl--;
            snprintf(cand, sizeof(cand), "%.*s%s", (int)bl, base, suffix);
        }
        if (!valid_name(cand))
            continue;
        for (int i = 0; i < PQntuples(res) && !taken; i++)
            taken = strcmp(PQgetvalue(res, i, 0), cand) == 0;
        if (!taken) {
            util_strlcpy(out, cand, 33);
            rc = 0;
        }
    }
    PQclear(res);
    return rc;
}

void instances_create(struct req *r)
{
    static const char *const allowed[] = {"template", "name", "volumes", NULL};
    char iid[37], jid[37], tid[37], name[33], why[256], mem[24], cpus[32];
    const char *bad, *tkey, *p[8], *key;
    json_t *body = NULL, *tmpl = NULL, *spec = NULL, *env = NULL, *cmd = NULL, *v, *vols, *resp;
    PGconn *pg;
    PGresult *res = NULL;
    char *spec_text = NULL;
    long port;
    int prc;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!authz_instance(&r->actor, ACT_CREATE, r->actor.user_id)) {
        audit_refuse(r, pg, "instance.create", "instance", NULL, "denied", 403, "forbidden", NULL,
                     "your role may not create instances");
        return;
    }
    if (!(body = req_json(r)))
        return;
    if ((bad = acct_unknown_field(body, allowed))) {
        audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400, "invalid_field",
                     bad, "unknown field '%s'", bad);
        goto out;
    }
    v = json_object_get(body, "template");
    tkey = json_string_value(v);
    if (!tkey || (!valid_uuid(tkey) && !valid_name(tkey))) {
        audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400, "invalid_field",
                     "template", "template must be a template id or name");
        goto out;
    }
    v = json_object_get(body, "name");
    if (v && !json_is_null(v) && (!json_is_string(v) || !valid_name(json_string_value(v)))) {
        audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400, "invalid_field",
                     "name",
                     "name must be 2-32 characters: lowercase letters, digits and '-', starting "
                     "with a letter and not ending with '-'");
        goto out;
    }
    vols = json_object_get(body, "volumes");
    if (vols && !json_is_null(vols)) {
        if (!json_is_object(vols)) {
            audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400,
                         "invalid_field", "volumes", "volumes must be an object name: volume id");
            goto out;
        }
        json_object_foreach(vols, key, v)
        {
            if (!json_is_string(v) || !valid_uuid(json_string_value(v))) {
                audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400,
                             "invalid_field", "volumes", "volumes must map names to volume ids");
                goto out;
            }
        }
    }
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    p[0] = tkey;
    res = PQexecParams(pg,
                       valid_uuid(tkey)
                           ? "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.id = $1"
                           : "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.name = $1",
                       1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        unavailable(r, pg, "the database is unavailable");
        goto out;
    }
    if (PQntuples(res) != 1 || !(tmpl = lc_json_col(res, 0, 0))) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 404, "not_found",
                     "template", "no such template");
        goto out;
    }
    util_strlcpy(tid, PQgetvalue(res, 0, 1), sizeof(tid));
    PQclear(res);
    res = NULL;
    snprintf(cpus, sizeof(cpus), "%.2f", json_number_value(json_object_get(tmpl, "cpus")));
    snprintf(mem, sizeof(mem), "%lld",
             (long long)json_integer_value(json_object_get(tmpl, "memory_mb")));
    if (quota_reserve(pg, &r->actor, r->actor.user_id, json_number_value(json_object_get(tmpl, "cpus")),
                      (long)json_integer_value(json_object_get(tmpl, "memory_mb")), why,
                      sizeof(why)) < 0) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, "instance.create", "instance", NULL, "quota_exceeded", 403,
                     "quota_exceeded", NULL, "%s", why);
        goto out;
    }
    v = json_object_get(body, "name");
    if (json_is_string(v)) {
        util_strlcpy(name, json_string_value(v), sizeof(name));
    } else if (pick_name(pg, r->actor.user_id, json_string_value(json_object_get(tmpl, "name")),
                         name) < 0) {
        unavailable(r, pg, "the database is unavailable");
        goto out;
    }
    if (util_uuid(iid) < 0 || util_uuid(jid) < 0 ||
        tmpl_expand_all(tmpl, r->actor.username, name, &env, &cmd) < 0) {
        unavailable(r, pg, "the instance could not be prepared");
        goto out;
    }
    spec = json_deep_copy(tmpl);
    json_object_set_new(spec, "template_id", json_string(tid));
    json_object_set_new(spec, "template_name", json_copy(json_object_get(tmpl, "name")));
    json_object_set(spec, "env", env);
    json_object_set(spec, "command", cmd);
    if (json_is_string(json_object_get(tmpl, "open_path"))) {
        char base[80], op[TMPL_MAX_OPEN_PATH * 4 + 256];
        snprintf(base, sizeof(base), "/container/%s/%s/", r->actor.username, name);
        if (tmpl_expand(json_string_value(json_object_get(tmpl, "open_path")), r->actor.username,
                        name, base, op, sizeof(op)) == 0)
            json_object_set_new(spec, "open_path", json_string(op));
        else
            json_object_set_new(spec, "open_path", json_null());
    }
    json_object_set_new(spec, "user", json_string(r->actor.username));
    json_object_set_new(spec, "instance", json_string(name));
    json_object_del(spec, "id");
    json_object_del(spec, "name");
    json_object_del(spec, "created_at");
    json_object_del(spec, "updated_at");
    spec_text = json_dumps(spec, JSON_COMPACT);
    p[0] = iid;
    p[1] = r->actor.user_id;
    p[2] = tid;
    p[3] = name;
    p[4] = api_cfg.node;
    p[5] = spec_text;
    p[6] = cpus;
    p[7] = mem;
    res = PQexecParams(pg,
                       "INSERT INTO instances (id, user_id, template_id, name, node, spec, cpus,"
                       " memory_mb) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
                       8, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        bool dup = strcmp(acct_sqlstate(res), "23505") == 0;
        if (!dup)
            log_warn("instance insert failed: %s", PQresultErrorMessage(res));
        acct_exec(pg, "ROLLBACK");
        if (dup)
            audit_refuse(r, pg, "instance.create", "instance", NULL, "conflict", 409, "conflict",
                         "name", "you already have an instance named '%s'", name);
        else
            http_send_error(r, 503, "unavailable", NULL, "the instance could not be stored");
        goto out;
    }
    PQclear(res);
    res = NULL;
    /* host ports: ssh, then the template's named ports. The HTTP port is not
     * published: nginx reaches the container at the address the worker
     * assigns on the user network (instances.upstream_host). */
    {
        struct {
            const char *name;
            json_t *port;
        } want[TMPL_MAX_PORTS + 1];
        size_t nw = 0;
        if (json_is_integer(json_object_get(tmpl, "ssh_port")))
            want[nw].name = "ssh", want[nw++].port = json_object_get(tmpl, "ssh_port");
        json_object_foreach(json_object_get(tmpl, "ports"), key, v)
        {
            if (nw < ARRAY_LEN(want) && json_is_integer(v))
                want[nw].name = key, want[nw++].port = v;
        }
        for (size_t k = 0; k < nw; k++) {
            prc = reserve_port(pg, iid, want[k].name, (long)json_integer_value(want[k].port), &port);
            if (prc != 0) {
                acct_exec(pg, "ROLLBACK");
                if (prc > 0)
                    audit_refuse(r, pg, "instance.create", "instance", NULL, "error", 503,
                                 "unavailable", NULL,
                                 "no free host port left in %ld-%ld on node %s: delete unused "
                                 "instances or widen port_range",
                                 api_cfg.port_min, api_cfg.port_max, api_cfg.node);
                else
                    http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
                goto out;
            }
        }
    }
    /* volumes: re-attach the caller's kept ones by name, create the rest */
    if (vols && json_is_object(vols)) {
        json_object_foreach(vols, key, v)
        {
            if (!json_object_get(json_object_get(tmpl, "volumes"), key)) {
                acct_exec(pg, "ROLLBACK");
                audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 400,
                             "invalid_field", "volumes",
                             "template '%s' has no volume named '%s'",
                             json_string_value(json_object_get(tmpl, "name")), key);
                goto out;
            }
        }
    }
    json_object_foreach(json_object_get(tmpl, "volumes"), key, v)
    {
        const json_t *want = vols ? json_object_get(vols, key) : NULL;
        const char *q[7];
        char vid[37];
        if (want) {
            q[0] = json_string_value(want);
            q[1] = iid;
            q[2] = json_string_value(v);
            q[3] = tid;
            q[4] = r->actor.user_id;
            q[5] = api_cfg.node;
            q[6] = key;
            res = PQexecParams(pg,
                               "UPDATE volumes SET instance_id = $2, mount_path = $3,"
                               " template_id = $4, name = $7 WHERE id = $1 AND user_id = $5"
                               " AND node = $6 AND instance_id IS NULL AND deleted_at IS NULL"
                               " RETURNING id",
                               7, NULL, q, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                unavailable(r, pg, "the database is unavailable");
                goto out;
            }
            if (PQntuples(res) != 1) {
                acct_exec(pg, "ROLLBACK");
                audit_refuse(r, pg, "instance.create", "instance", NULL, "invalid", 409,
                             "conflict", "volumes",
                             "volume %s is not a kept, unattached volume of yours",
                             json_string_value(want));
                goto out;
            }
        } else {
            if (util_uuid(vid) < 0) {
                unavailable(r, pg, "out of randomness");
                goto out;
            }
            q[0] = vid;
            q[1] = r->actor.user_id;
            q[2] = tid;
            q[3] = json_string_value(json_object_get(tmpl, "name"));
            q[4] = key;
            q[5] = json_string_value(v);
            q[6] = api_cfg.node;
            {
                const char *q2[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], iid};
                res = PQexecParams(pg,
                                   "INSERT INTO volumes (id, user_id, template_id, template_name,"
                                   " name, mount_path, node, instance_id) VALUES ($1, $2, $3, $4,"
                                   " $5, $6, $7, $8)",
                                   8, NULL, q2, NULL, NULL, 0);
            }
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                log_warn("volume insert failed: %s", PQresultErrorMessage(res));
                unavailable(r, pg, "the database is unavailable");
                goto out;
            }
        }
        PQclear(res);
        res = NULL;
    }
    {
        json_t *d = json_pack("{s:s, s:s, s:s}", "name", name, "template",
                              json_string_value(json_object_get(tmpl, "name")), "job", jid);
        int a = audit_write(pg, r, "instance.create", "instance", iid, "ok", d);
        json_decref(d);
        if (lc_job_insert(pg, jid, "create", api_cfg.node, iid, NULL, r->actor.user_id, NULL) < 0 ||
            lc_event(pg, iid, "queued", "create queued") < 0 || a < 0 ||
            !acct_exec(pg, "COMMIT")) {
            unavailable(r, pg, "the instance could not be stored");
            goto out;
        }
    }
    enqueue_push(r, api_cfg.node, jid);
    resp = json_pack("{s:o, s:o}", "instance", lc_instance_get(pg, iid), "job",
                     lc_job_get(pg, jid));
    if (!resp) {
        http_send_error(r, 503, "unavailable", NULL, "the instance was queued but cannot be read");
        goto out;
    }
    http_send_json(r, 202, resp);
out:
    PQclear(res);
    free(spec_text);
    json_decref(spec);
    json_decref(env);
    json_decref(cmd);
    json_decref(tmpl);
    json_decref(body);
}

/* ---- start / stop / restart / delete ---- */

static void action(struct req *r, const char *kind)
{
    char owner[37], status[16], jid[37], dv[8] = "", node[64];
    const char *id = r->params[0], *p[3], *audit_action;
    bool del = strcmp(kind, "delete") == 0, delete_volumes = false;
    PGconn *pg;
    PGresult *res;
    json_t *d, *resp;
    char action_name[32];

    snprintf(action_name, sizeof(action_name), "instance.%s", kind);
    audit_action = action_name;
    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (del && req_query(r, "delete_volumes", dv, sizeof(dv))) {
        if (strcmp(dv, "true") == 0 || strcmp(dv, "1") == 0)
            delete_volumes = true;
        else if (strcmp(dv, "false") != 0 && strcmp(dv, "0") != 0) {
            http_send_error(r, 400, "invalid_field", "delete_volumes",
                            "delete_volumes must be true or false");
            return;
        }
    }
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    if (!owner_node_of(pg, id, owner, status, node, true) || strcmp(status, "deleted") == 0 ||
        !authz_instance(&r->actor, ACT_READ, owner)) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, audit_action, "instance", valid_uuid(id) ? id : NULL, "not_found",
                     404, "not_found", NULL, "no such instance");
        return;
    }
    if (!authz_instance(&r->actor, del ? ACT_DELETE : ACT_OPERATE, owner)) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, audit_action, "instance", id, "denied", 403, "forbidden", NULL,
                     "your role may not %s this instance", kind);
        return;
    }
    if (strcmp(status, "deleting") == 0) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, audit_action, "instance", id, "conflict", 409, "conflict", NULL,
                     "the instance is being deleted");
        return;
    }
    p[0] = id;
    p[1] = kind;
    res = PQexecParams(
        pg,
        "UPDATE instances SET error = NULL, desired = CASE $2 WHEN 'stop' THEN 'stopped'"
        " WHEN 'delete' THEN 'deleted' ELSE 'running' END, status = CASE $2"
        " WHEN 'start' THEN CASE WHEN status IN ('stopped', 'error') THEN 'pending' ELSE status END"
        " WHEN 'stop' THEN CASE WHEN status = 'stopped' THEN status ELSE 'stopping' END"
        " WHEN 'restart' THEN 'restarting' ELSE 'deleting' END WHERE id = $1",
        2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_warn("instance %s: %s", kind, PQresultErrorMessage(res));
        PQclear(res);
        unavailable(r, pg, "the database is unavailable");
        return;
    }
    PQclear(res);
    d = json_pack("{s:s, s:b}", "job", "", "delete_volumes", delete_volumes);
    if (util_uuid(jid) < 0) {
        json_decref(d);
        unavailable(r, pg, "out of randomness");
        return;
    }
    json_object_set_new(d, "job", json_string(jid));
    {
        char evmsg[64];
        int a = audit_write(pg, r, audit_action, "instance", id, "ok", d);
        snprintf(evmsg, sizeof(evmsg), "%s queued", kind);
        json_decref(d);
        if (a < 0 ||
            lc_job_insert(pg, jid, kind, node, id, NULL, owner,
                          del ? (delete_volumes ? "{\"delete_volumes\":true}"
                                                : "{\"delete_volumes\":false}")
                              : NULL) < 0 ||
            lc_event(pg, id, "queued", evmsg) < 0 || !acct_exec(pg, "COMMIT")) {
            unavailable(r, pg, "the job could not be queued");
            return;
        }
    }
    enqueue_push(r, node, jid); /* the node that runs the instance */
    resp = json_pack("{s:o, s:o}", "instance", lc_instance_get(pg, id), "job", lc_job_get(pg, jid));
    if (!resp) {
        http_send_error(r, 503, "unavailable", NULL, "the job was queued but cannot be read");
        return;
    }
    http_send_json(r, 202, resp);
}

void instances_start(struct req *r)
{
    action(r, "start");
}

void instances_stop(struct req *r)
{
    action(r, "stop");
}

void instances_restart(struct req *r)
{
    action(r, "restart");
}

void instances_delete(struct req *r)
{
    action(r, "delete");
}

/* ---- logs, stats, exec: answered by the node's worker (rpc.c) ---- */

/*
 * Ask the worker of `node` and wait up to wait_s for its answer. req is
 * stolen. Returns the answer object ({"ok": ...} or {"error": ...}), or NULL
 * after sending 503 itself.
 */
static json_t *rpc_call(struct req *r, const char *node, json_t *req, int wait_s)
{
    unsigned char rnd[16];
    char id[33], key[96], *text = NULL;
    redisContext *rc;
    redisReply *rep = NULL;
    json_t *ans = NULL;
    struct timeval tv = {.tv_sec = 4, .tv_usec = 0}, tv2 = {.tv_sec = 2, .tv_usec = 0};

    if (util_random(rnd, sizeof(rnd)) < 0 || !req)
        goto unavailable;
    util_hex(rnd, sizeof(rnd), id);
    json_object_set_new(req, "id", json_string(id));
    json_object_set_new(req, "deadline_ms", json_integer((json_int_t)time(NULL) * 1000 + wait_s * 1000L));
    text = json_dumps(req, JSON_COMPACT);
    if (!text || !(rc = rq_conn(r->th)))
        goto unavailable;
    rep = redisCommand(rc, "LPUSH " KEY_RPC_FMT " %s", node, text);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        if (!rep)
            rq_close(r->th);
        goto unavailable;
    }
    freeReplyObject(rep);
    snprintf(key, sizeof(key), KEY_RPC_REPLY_FMT, id);
    redisSetTimeout(rc, tv);
    /* in 1 s slices, so that a stopping berth-api ends the wait (longcall.h) */
    for (int64_t until = util_now_ms() + wait_s * 1000LL; !ans;) {
        if (longcall_stopping()) {
            redisSetTimeout(rc, tv2);
            json_decref(req);
            free(text);
            http_send_error(r, 503, "unavailable", NULL, "berth-api is stopping");
            return NULL;
        }
        if (util_now_ms() >= until)
            break;
        rep = redisCommand(rc, "BLPOP %s 1", key);
        if (!rep) {
            rq_close(r->th);
            goto unavailable;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
            ans = json_loadb(rep->element[1]->str, rep->element[1]->len, 0, NULL);
            freeReplyObject(rep);
            break;
        }
        freeReplyObject(rep);
    }
    redisSetTimeout(rc, tv2);
    if (!json_is_object(ans)) {
        json_decref(ans);
        json_decref(req);
        free(text);
        http_send_error(r, 503, "unavailable", NULL,
                        "the worker of node %s did not answer within %d s", node, wait_s);
        return NULL;
    }
    json_decref(req);
    free(text);
    return ans;
unavailable:
    json_decref(req);
    free(text);
    http_send_error(r, 503, "unavailable", NULL, "the job queue (Redis) is unavailable");
    return NULL;
}

/* Send an rpc error answer in the API's shape. */
static void rpc_error(struct req *r, json_t *err)
{
    int status = (int)json_integer_value(json_object_get(err, "status"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (status == 409)
        http_send_error(r, 409, "conflict", NULL, "%s", msg ? msg : "conflict");
    else if (status == 400)
        http_send_error(r, 400, "bad_request", NULL, "%s", msg ? msg : "bad request");
    else
        http_send_error(r, 503, "unavailable", NULL, "%s", msg ? msg : "Docker is unavailable");
}

/* Authorise act on instance id; fills node. false after answering. */
static bool rpc_target(struct req *r, PGconn *pg, enum authz_action act, char node[64])
{
    const char *p[1] = {r->params[0]};
    PGresult *res;
    bool ok;
    if (!valid_uuid(r->params[0])) {
        http_send_error(r, 404, "not_found", NULL, "no such instance");
        return false;
    }
    res = PQexecParams(pg, "SELECT user_id, node, status FROM instances WHERE id = $1", 1, NULL,
                       p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return false;
    }
    ok = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 2), "deleted") != 0 &&
         authz_instance(&r->actor, ACT_READ, PQgetvalue(res, 0, 0));
    if (!ok) {
        PQclear(res);
        http_send_error(r, 404, "not_found", NULL, "no such instance");
        return false;
    }
    if (!authz_instance(&r->actor, act, PQgetvalue(res, 0, 0))) {
        PQclear(res);
        http_send_error(r, 403, "forbidden", NULL, "your role may not do this to the instance");
        return false;
    }
    util_strlcpy(node, PQgetvalue(res, 0, 1), 64);
    PQclear(res);
    return true;
}

/* Write text and flush; false when the client has gone. */
static bool sse_write(struct req *r, const char *text, size_t len)
{
    if (FCGX_PutStr(text, (int)len, r->fcgi->out) != (int)len)
        return false;
    return FCGX_FFlush(r->fcgi->out) == 0 && FCGX_GetError(r->fcgi->out) == 0;
}

static bool sse_text(struct req *r, const char *text)
{
    return sse_write(r, text, strlen(text));
}

/* One `data:` event per line (a CR or NUL cannot end up inside one). */
static bool sse_lines(struct req *r, json_t *lines)
{
    size_t i;
    json_t *v;
    json_array_foreach(lines, i, v)
    {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), o = 0;
        char *buf = malloc(n + 8);
        bool ok;
        if (!buf)
            return false;
        memcpy(buf, "data: ", 6);
        o = 6;
        for (size_t k = 0; k < n; k++)
            if (s[k] != '\r' && s[k] != '\n' && s[k] != '\0')
                buf[o++] = s[k];
        buf[o++] = '\n';
        buf[o++] = '\n';
        ok = sse_write(r, buf, o);
        free(buf);
        if (!ok)
            return false;
    }
    return true;
}

#define FOLLOW_MAX_S 1800 /* an EventSource reconnects by itself after this */

struct follow_arg {
    char node[64];
    long tail;
};

/*
 * GET /logs?follow=true: text/event-stream, the last `tail` lines and then new
 * ones as they come, polled from the worker every second (Docker's logs since
 * the last timestamp seen), until the client leaves, the container goes,
 * FOLLOW_MAX_S passes or berth-api stops. Runs on the follow pool
 * (longcall.h: api_threads / 2 streams at once, 429 beyond), not on a
 * request thread.
 */
static void logs_follow(struct req *r, void *arg)
{
    const struct follow_arg *fa = arg;
    const char *node = fa->node;
    long tail = fa->tail;
    char last[48] = "";
    int64_t until = util_now_ms() + FOLLOW_MAX_S * 1000LL, quiet_since = util_now_ms();
    bool first = true;

    while (util_now_ms() < until) {
        json_t *req = json_pack("{s:s, s:s, s:I}", "kind", "logs", "instance_id", r->params[0],
                                "tail", (json_int_t)tail);
        json_t *ans, *ok;
        if (last[0])
            json_object_set_new(req, "since", json_string(last));
        if (first) {
            ans = rpc_call(r, node, req, 15); /* answers 503 itself on failure */
            if (!ans)
                break;
            if (!json_object_get(ans, "ok")) {
                rpc_error(r, json_object_get(ans, "error"));
                json_decref(ans);
                break;
            }
            http_send_raw(r, 200, "text/event-stream", "X-Accel-Buffering: no\r\n", NULL, 0);
            first = false;
        } else {
            /* after the headers went out errors end the stream quietly */
            struct req quiet = *r;
            quiet.sent = true;
            ans = rpc_call(&quiet, node, req, 15);
            if (!ans || !json_object_get(ans, "ok")) {
                json_decref(ans);
                sse_text(r, "event: end\ndata: the log stream ended\n\n");
                break;
            }
        }
        ok = json_object_get(ans, "ok");
        if (json_string_length(json_object_get(ok, "last")) > 0)
            util_strlcpy(last, json_string_value(json_object_get(ok, "last")), sizeof(last));
        if (json_array_size(json_object_get(ok, "lines")) > 0) {
            quiet_since = util_now_ms();
            if (!sse_lines(r, json_object_get(ok, "lines"))) {
                json_decref(ans);
                break;
            }
        } else if (util_now_ms() - quiet_since > 15000) {
            quiet_since = util_now_ms();
            if (!sse_text(r, ": keep-alive\n\n")) { /* also finds a client that left */
                json_decref(ans);
                break;
            }
        }
        json_decref(ans);
        if (!last[0]) { /* no line yet: from now on, only newer ones */
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            snprintf(last, sizeof(last), "%lld.%09ld", (long long)now.tv_sec, now.tv_nsec);
        }
        {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
        if (longcall_stopping()) {
            sse_text(r, "event: end\ndata: the server is restarting\n\n");
            break;
        }
    }
}

void instances_logs(struct req *r)
{
    char node[64], tail[16] = "", follow[8] = "";
    long n = 200;
    PGconn *pg;
    json_t *ans;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (req_query(r, "tail", tail, sizeof(tail)) && !util_parse_long(tail, 0, 5000, &n)) {
        http_send_error(r, 400, "invalid_field", "tail", "tail must be a number from 0 to 5000");
        return;
    }
    if (req_query(r, "follow", follow, sizeof(follow)) && strcmp(follow, "true") == 0) {
        struct follow_arg *fa;
        struct longcall *lc;
        if (!rpc_target(r, pg, ACT_OPERATE, node)) /* auth.h: logs follow is operate */
            return;
        if (!(fa = malloc(sizeof(*fa)))) {
            http_send_error(r, 500, "internal", NULL, "out of memory");
            return;
        }
        util_strlcpy(fa->node, node, sizeof(fa->node));
        fa->tail = n;
        if (!(lc = longcall_admit(r, LONGCALL_FOLLOW))) { /* answered 429/503 */
            free(fa);
            return;
        }
        longcall_run(lc, r, logs_follow, fa, free); /* r is the pool's now */
        return;
    }
    if (!rpc_target(r, pg, ACT_READ, node))
        return;
    if (!(ans = rpc_call(r, node,
                         json_pack("{s:s, s:s, s:I}", "kind", "logs", "instance_id", r->params[0],
                                   "tail", (json_int_t)n),
                         15)))
        return;
    if (json_object_get(ans, "ok"))
        http_send_json(r, 200, json_incref(json_object_get(ans, "ok")));
    else
        rpc_error(r, json_object_get(ans, "error"));
    json_decref(ans);
}

void instances_stats(struct req *r)
{
    char node[64];
    PGconn *pg;
    json_t *ans;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!rpc_target(r, pg, ACT_READ, node))
        return;
    if (!(ans = rpc_call(r, node,
                         json_pack("{s:s, s:s}", "kind", "stats", "instance_id", r->params[0]), 15)))
        return;
    if (json_object_get(ans, "ok"))
        http_send_json(r, 200, json_incref(json_object_get(ans, "ok")));
    else
        rpc_error(r, json_object_get(ans, "error"));
    json_decref(ans);
}

struct exec_arg {
    char node[64];
    json_t *rpc; /* the exec rpc request */
    int wait_s;
};

static void exec_arg_free(void *p)
{
    struct exec_arg *ea = p;
    json_decref(ea->rpc);
    free(ea);
}

/* On the exec pool (longcall.h): ask the worker and answer as before. */
static void exec_run(struct req *r, void *arg)
{
    struct exec_arg *ea = arg;
    json_t *ans = rpc_call(r, ea->node, ea->rpc, ea->wait_s); /* steals rpc */

    ea->rpc = NULL;
    if (!ans)
        return;
    if (json_object_get(ans, "ok")) {
        http_send_json(r, 200, json_incref(json_object_get(ans, "ok")));
    } else {
        json_t *err = json_object_get(ans, "error");
        if (json_integer_value(json_object_get(err, "status")) == 504)
            http_send_json(r, 200,
                           json_pack("{s:n, s:o, s:b, s:O}", "exit_code", "output",
                                     json_object_get(err, "output")
                                         ? json_incref(json_object_get(err, "output"))
                                         : json_string(""),
                                     "timed_out", 1, "error", json_object_get(err, "message")));
        else
            rpc_error(r, err);
    }
    json_decref(ans);
}

/*
 * POST /exec: validated, authorised and audited here on the request thread;
 * the wait for the worker (up to timeout_s + 10 s) runs on the exec pool, so
 * it never holds a request thread. Beyond exec_per_user calls of one user in
 * flight, or the pool's bound, 429 rate_limited with Retry-After.
 */
void instances_exec(struct req *r)
{
    static const char *const allowed[] = {"command", "timeout_s", NULL};
    char node[64];
    const char *bad;
    PGconn *pg;
    json_t *body, *cmd, *v, *d;
    long timeout = 30;
    size_t i;
    struct exec_arg *ea;
    struct longcall *lc;
    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!rpc_target(r, pg, ACT_OPERATE, node))
        return;
    if (!(body = req_json(r)))
        return;
    if ((bad = acct_unknown_field(body, allowed))) {
        http_send_error(r, 400, "invalid_field", bad, "unknown field '%s'", bad);
        json_decref(body);
        return;
    }
    cmd = json_object_get(body, "command");
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > TMPL_MAX_ARGS) {
        http_send_error(r, 400, "invalid_field", "command",
                        "command must be an array of 1-%d strings", TMPL_MAX_ARGS);
        json_decref(body);
        return;
    }
    json_array_foreach(cmd, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > TMPL_MAX_TEXT ||
            memchr(json_string_value(v), '\0', json_string_length(v))) {
            http_send_error(r, 400, "invalid_field", "command",
                            "command items must be strings of at most %d bytes", TMPL_MAX_TEXT);
            json_decref(body);
            return;
        }
    }
    v = json_object_get(body, "timeout_s");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 300) {
            http_send_error(r, 400, "invalid_field", "timeout_s",
                            "timeout_s must be an integer from 1 to 300");
            json_decref(body);
            return;
        }
        timeout = (long)json_integer_value(v);
    }
    if (!(ea = calloc(1, sizeof(*ea)))) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        json_decref(body);
        return;
    }
    if (!(lc = longcall_admit(r, LONGCALL_EXEC))) { /* answered 429/503: nothing started */
        free(ea);
        json_decref(body);
        return;
    }
    d = json_pack("{s:O}", "command", cmd);
    if (audit_write(pg, r, "instance.exec", "instance", r->params[0], "ok", d) < 0)
        log_warn("audit row for exec not written");
    json_decref(d);
    util_strlcpy(ea->node, node, sizeof(ea->node));
    ea->rpc = json_pack("{s:s, s:s, s:O, s:I}", "kind", "exec", "instance_id", r->params[0],
                        "command", cmd, "timeout_s", (json_int_t)timeout);
    ea->wait_s = (int)timeout + 10;
    json_decref(body);
    longcall_run(lc, r, exec_run, ea, exec_arg_free); /* r is the pool's now */
}
