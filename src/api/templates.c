/*
 * templates — the template catalogue (API.md "Templates"):
 *   GET    /api/v1/templates        any auth
 *   GET    /api/v1/templates/{id}   any auth (id or name)
 *   POST   /api/v1/templates        admin -> 201
 *   PATCH  /api/v1/templates/{id}   admin -> 200 (running instances keep their frozen spec)
 *   DELETE /api/v1/templates/{id}   admin -> 204; 409 while live instances use it
 *
 * Every field is checked by tmpl_validate() (common/template.c); a PATCH is
 * merged into the stored object and the whole result validated again, so a
 * template can never be stored half-valid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "instances.h"

/* Load one template by id or name; FOR UPDATE when lock. NULL after
 * answering 503 (req_q); no row when there is none. */
static PGresult *load(struct req *r, const char *key, bool lock)
{
    const char *p[1] = {key};
    if (valid_uuid(key))
        return req_q(r,
                     lock ? "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.id = $1 FOR UPDATE"
                          : "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.id = $1",
                     1, p);
    return req_q(r,
                 lock ? "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.name = $1 FOR UPDATE"
                      : "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.name = $1",
                 1, p);
}

/* SQL parameter texts of a validated template. */
struct tparams {
    char *ports, *vols, *env, *cmd, *caps;
    char http[16], ssh[16], cpus[32], mem[24], pids[24], idle[24], disk[24];
    const char *p[21];
};

static int tparams_fill(struct tparams *tp, const json_t *t, const char *id)
{
    json_t *v;
    memset(tp, 0, sizeof(*tp));
    tp->ports = json_dumps(json_object_get(t, "ports"), JSON_COMPACT);
    tp->vols = json_dumps(json_object_get(t, "volumes"), JSON_COMPACT);
    tp->env = json_dumps(json_object_get(t, "env"), JSON_COMPACT);
    tp->caps = json_dumps(json_object_get(t, "capabilities"), JSON_COMPACT);
    v = json_object_get(t, "command");
    tp->cmd = json_is_array(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!tp->ports || !tp->vols || !tp->env || !tp->caps || (json_is_array(v) && !tp->cmd))
        return -1;
    if (json_is_integer(json_object_get(t, "http_port")))
        snprintf(tp->http, sizeof(tp->http), "%lld",
                 (long long)json_integer_value(json_object_get(t, "http_port")));
    if (json_is_integer(json_object_get(t, "ssh_port")))
        snprintf(tp->ssh, sizeof(tp->ssh), "%lld",
                 (long long)json_integer_value(json_object_get(t, "ssh_port")));
    snprintf(tp->cpus, sizeof(tp->cpus), "%.2f", json_number_value(json_object_get(t, "cpus")));
    snprintf(tp->mem, sizeof(tp->mem), "%lld",
             (long long)json_integer_value(json_object_get(t, "memory_mb")));
    snprintf(tp->pids, sizeof(tp->pids), "%lld",
             (long long)json_integer_value(json_object_get(t, "pids_limit")));
    snprintf(tp->idle, sizeof(tp->idle), "%lld",
             (long long)json_integer_value(json_object_get(t, "idle_timeout_s")));
    snprintf(tp->disk, sizeof(tp->disk), "%lld",
             (long long)json_integer_value(json_object_get(t, "disk_mb")));
    tp->p[0] = id;
    tp->p[1] = json_string_value(json_object_get(t, "name"));
    tp->p[2] = json_string_value(json_object_get(t, "description"));
    tp->p[3] = json_string_value(json_object_get(t, "image"));
    tp->p[4] = tp->http[0] ? tp->http : NULL;
    tp->p[5] = json_string_value(json_object_get(t, "proxy_mode"));
    tp->p[6] = tp->ports;
    tp->p[7] = tp->ssh[0] ? tp->ssh : NULL;
    tp->p[8] = tp->vols;
    tp->p[9] = tp->env;
    tp->p[10] = tp->cmd;
    tp->p[11] = tp->cpus;
    tp->p[12] = tp->mem;
    tp->p[13] = tp->pids;
    tp->p[14] = json_string_value(json_object_get(t, "restart_policy"));
    tp->p[15] = tp->idle;
    tp->p[16] = json_string_value(json_object_get(t, "open_path")); /* NULL: none */
    tp->p[17] = tp->caps;
    tp->p[18] = tp->disk;
    tp->p[19] = json_string_value(json_object_get(t, "ssh_user"));
    tp->p[20] = json_is_false(json_object_get(t, "no_new_privileges")) ? "false" : "true";
    return 0;
}

static void tparams_free(struct tparams *tp)
{
    free(tp->ports);
    free(tp->vols);
    free(tp->env);
    free(tp->cmd);
    free(tp->caps);
}

/* capabilities arrive as a JSON array: a text[] in their order */
#define CAPS_PARAM                                                                                 \
    "ARRAY(SELECT c FROM jsonb_array_elements_text($18::jsonb) WITH ORDINALITY AS x(c, n)"        \
    " ORDER BY n)"
#define INSERT_SQL                                                                                 \
    "INSERT INTO templates (id, name, description, image, http_port, proxy_mode, ports,"          \
    " ssh_port, volumes, env, command, cpus, memory_mb, pids_limit, restart_policy,"               \
    " idle_timeout_s, open_path, capabilities, disk_mb, ssh_user, no_new_privileges) VALUES ($1,"  \
    " $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, $10::jsonb, $11::jsonb, $12, $13, $14, $15,"  \
    " $16, $17, " CAPS_PARAM ", $19, $20, $21)"

PGresult *lc_template_write(PGconn *pg, const json_t *t, const char *id,
                            enum lc_template_write how)
{
    struct tparams tp;
    PGresult *res;
    const char *sql =
        how == LC_TEMPLATE_CREATE ? INSERT_SQL
        : how == LC_TEMPLATE_SEED ? INSERT_SQL " ON CONFLICT (name) DO NOTHING"
                                  : "UPDATE templates SET name = $2, description = $3, image = $4,"
                                    " http_port = $5, proxy_mode = $6, ports = $7::jsonb,"
                                    " ssh_port = $8, volumes = $9::jsonb, env = $10::jsonb,"
                                    " command = $11::jsonb, cpus = $12, memory_mb = $13,"
                                    " pids_limit = $14, restart_policy = $15,"
                                    " idle_timeout_s = $16, open_path = $17,"
                                    " capabilities = " CAPS_PARAM ", disk_mb = $19,"
                                    " ssh_user = $20, no_new_privileges = $21,"
                                    " updated_at = now() WHERE id = $1";

    if (tparams_fill(&tp, t, id) < 0) {
        tparams_free(&tp);
        return NULL;
    }
    res = PQexecParams(pg, sql, 21, NULL, tp.p, NULL, NULL, 0);
    tparams_free(&tp);
    return res;
}

/* Paged by name: ?limit= (default 50, at most 500), ?cursor= the last name of
 * the page before. */
void templates_list(struct req *r)
{
    char cursor[40] = "", lim[24];
    const char *p[2];
    PGresult *res;
    long limit;

    if (auth_require(r) < 0 || !req_db(r) || !req_limit(r, 50, 500, &limit))
        return;
    if (!authz_template(&r->actor, ACT_READ)) {
        http_send_error(r, 403, "forbidden", NULL, "you may not list templates");
        return;
    }
    if (req_query(r, "cursor", cursor, sizeof(cursor)) && !valid_name(cursor)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not one this API gave out");
        return;
    }
    snprintf(lim, sizeof(lim), "%ld", limit + 1);
    p[0] = cursor[0] ? cursor : NULL;
    p[1] = lim;
    if (!(res = req_q(r,
                      "SELECT " TEMPLATE_JSON "::text, t.name FROM templates t WHERE $1::text IS"
                      " NULL OR t.name > $1 ORDER BY t.name LIMIT $2::int",
                      2, p)))
        return;
    http_send_page(r, res, limit, 1);
}

void templates_get(struct req *r)
{
    PGresult *res;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    if (!authz_template(&r->actor, ACT_READ)) {
        http_send_error(r, 403, "forbidden", NULL, "you may not read templates");
        return;
    }
    if (!(res = load(r, r->params[0], false)))
        return;
    if (PQntuples(res) != 1)
        http_send_error(r, 404, "not_found", NULL, "no such template");
    else
        http_send_json(r, 200, db_json_col(res, 0, 0));
    PQclear(res);
}

/* Insert or update from a validated object, audit, commit, answer. The caller
 * has opened the transaction. */
static void store(struct req *r, json_t *t, const char *id, bool create)
{
    PGresult *res;
    bool dup;

    res = lc_template_write(r->th->pg, t, id, create ? LC_TEMPLATE_CREATE : LC_TEMPLATE_UPDATE);
    if (!res) {
        req_rollback(r);
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        dup = strcmp(db_sqlstate(res), "23505") == 0;
        if (!dup)
            log_warn("template store failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        if (dup)
            refuse(r, 409, "conflict", "name", "a template named '%s' exists already",
                   json_string_value(json_object_get(t, "name")));
        else
            req_unavailable(r, "the template could not be stored");
        return;
    }
    PQclear(res);
    if (!(res = load(r, id, false)))
        return;
    if (PQntuples(res) != 1)
        req_unavailable(r, "the template could not be stored");
    else if (audit_commit(r, json_pack("{s:s, s:s}", "name",
                                       json_string_value(json_object_get(t, "name")), "image",
                                       json_string_value(json_object_get(t, "image")))))
        http_send_json(r, create ? 201 : 200, db_json_col(res, 0, 0));
    PQclear(res);
}

/* The start of a change of templates: authenticated and audited as action
 * (req_change), by an actor authz_template lets act; false after refusing
 * anyone else 403 "only admins may <verb> templates". */
static bool template_change(struct req *r, const char *action, enum authz_action act,
                            const char *verb)
{
    if (!req_change(r, action, "template", NULL))
        return false;
    if (!authz_template(&r->actor, act)) {
        refuse(r, 403, "forbidden", NULL, "only admins may %s templates", verb);
        return false;
    }
    return true;
}

void templates_create(struct req *r)
{
    char id[37], msg[300];
    const char *field = NULL;
    json_t *body;

    if (!template_change(r, "template.create", ACT_CREATE, "create"))
        return;
    if (!(body = req_json(r)))
        return;
    tmpl_strip_readonly(body);
    if (tmpl_validate(body, &field, msg, sizeof(msg)) < 0) {
        refuse(r, 400, "invalid_field", field, "%s", msg);
    } else if (util_uuid(id) < 0) {
        http_send_error(r, 500, "internal", NULL, "no random bytes for an id");
    } else {
        audit_target(r, id);
        if (req_begin(r))
            store(r, body, id, true);
    }
    json_decref(body);
}

void templates_patch(struct req *r)
{
    char id[37], msg[300];
    const char *field = NULL, *key;
    PGresult *res;
    json_t *body, *cur = NULL, *v;

    if (!template_change(r, "template.update", ACT_UPDATE, "change"))
        return;
    if (!(body = req_json(r)))
        return;
    json_object_foreach(body, key, v)
    {
        if (tmpl_readonly_field(key)) {
            refuse(r, 400, "invalid_field", key, "%s cannot be changed", key);
            json_decref(body);
            return;
        }
    }
    if (!req_begin(r) || !(res = load(r, r->params[0], true))) {
        json_decref(body);
        return;
    }
    if (PQntuples(res) != 1 || !(cur = db_json_col(res, 0, 0))) {
        PQclear(res);
        req_rollback(r);
        http_send_error(r, 404, "not_found", NULL, "no such template");
        json_decref(body);
        return;
    }
    util_strlcpy(id, PQgetvalue(res, 0, 1), sizeof(id));
    PQclear(res);
    audit_target(r, id);
    tmpl_strip_readonly(cur);
    json_object_update(cur, body);
    json_decref(body);
    if (tmpl_validate(cur, &field, msg, sizeof(msg)) < 0)
        refuse(r, 400, "invalid_field", field, "%s", msg);
    else
        store(r, cur, id, false);
    json_decref(cur);
}

void templates_delete(struct req *r)
{
    char id[37];
    const char *p[1];
    PGresult *res;
    long live;

    if (!template_change(r, "template.delete", ACT_DELETE, "delete"))
        return;
    if (!req_begin(r) || !(res = load(r, r->params[0], true)))
        return;
    if (PQntuples(res) != 1) {
        PQclear(res);
        req_rollback(r);
        http_send_error(r, 404, "not_found", NULL, "no such template");
        return;
    }
    util_strlcpy(id, PQgetvalue(res, 0, 1), sizeof(id));
    PQclear(res);
    audit_target(r, id);
    p[0] = id;
    if (!(res = req_q(r,
                      "SELECT count(*) FROM instances WHERE template_id = $1 AND status <> 'deleted'",
                      1, p)))
        return;
    live = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (live != 0) {
        refuse(r, 409, "conflict", NULL,
               "%ld instance%s still use%s this template: delete them first", live,
               live == 1 ? "" : "s", live == 1 ? "s" : "");
        return;
    }
    if (!(res = req_q(r, "DELETE FROM templates WHERE id = $1", 1, p)))
        return;
    PQclear(res);
    if (audit_commit(r, NULL))
        http_send_empty(r, 204, NULL);
}
