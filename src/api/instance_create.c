/*
 * instance_create — POST /api/v1/instances {template, name?, volumes?}
 * -> 202 {instance, job} (API.md "Instances").
 *
 * One transaction, step by step:
 *   check_body       the body's fields (refused before anything is read)
 *   load_template    the template by id or name
 *   quota_reserve    locks the user row (quota.c): a user's concurrent creates
 *                    serialise, so the quota edge and the default name -2/-3
 *                    are decided one at a time
 *   pick_name        the name asked for, or the template's, -2, -3 ...
 *   freeze_spec      the template frozen into the instance's spec,
 *                    placeholders expanded
 *   insert_instance  the row (a taken name is 409)
 *   reserve_ports    host ports drawn at random and reserved by the (node,
 *                    port) primary key (a collision just draws again)
 *   attach_volumes   the caller's kept volumes re-attached by name, the rest new
 *   queue_create     the create job, its event, the audit row; COMMIT
 * then the push (enqueue.h) and the answer. A refusal at any step rolls the
 * whole transaction back (refuse()): nothing of a refused create is left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"
#include "quota.h"

#define PORT_RANDOM_TRIES 8

/* One create request's state across its steps. */
struct create {
    struct req *r;
    json_t *body;  /* the request */
    json_t *vols;  /* body's volumes (borrowed; NULL: none) */
    json_t *tmpl;  /* the template as the API shows it */
    char *spec;    /* the frozen spec, JSON text */
    char tid[37], name[33];
    struct job_spec job; /* job.instance_id: the new instance's id */
    char iid[37];
};

static bool check_body(struct create *c)
{
    static const char *const allowed[] = {"template", "name", "volumes", NULL};
    const char *tkey, *key;
    json_t *v;

    if (!(c->body = req_body(c->r, allowed)))
        return false;
    tkey = json_string_value(json_object_get(c->body, "template"));
    if (!tkey || (!valid_uuid(tkey) && !valid_name(tkey))) {
        refuse(c->r, 400, "invalid_field", "template", "template must be a template id or name");
        return false;
    }
    v = json_object_get(c->body, "name");
    if (v && !json_is_null(v) && (!json_is_string(v) || !valid_name(json_string_value(v)))) {
        refuse(c->r, 400, "invalid_field", "name",
               "name must be 2-32 characters: lowercase letters, digits and '-', starting "
               "with a letter and not ending with '-'");
        return false;
    }
    c->vols = json_object_get(c->body, "volumes");
    if (json_is_null(c->vols))
        c->vols = NULL;
    if (c->vols && !json_is_object(c->vols)) {
        refuse(c->r, 400, "invalid_field", "volumes", "volumes must be an object name: volume id");
        return false;
    }
    json_object_foreach(c->vols, key, v)
    {
        if (!json_is_string(v) || !valid_uuid(json_string_value(v))) {
            refuse(c->r, 400, "invalid_field", "volumes", "volumes must map names to volume ids");
            return false;
        }
    }
    return true;
}

static bool load_template(struct create *c)
{
    const char *key = json_string_value(json_object_get(c->body, "template"));
    const char *p[1] = {key};
    PGresult *res;

    if (!(res = req_q(c->r,
                      valid_uuid(key)
                          ? "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.id = $1"
                          : "SELECT " TEMPLATE_JSON "::text, t.id FROM templates t WHERE t.name = $1",
                      1, p)))
        return false;
    if (PQntuples(res) != 1 || !(c->tmpl = db_json_col(res, 0, 0))) {
        PQclear(res);
        refuse(c->r, 404, "not_found", "template", "no such template");
        return false;
    }
    util_strlcpy(c->tid, PQgetvalue(res, 0, 1), sizeof(c->tid));
    PQclear(res);
    return true;
}

static bool check_quota(struct create *c)
{
    char why[256];
    int rc = quota_reserve(c->r, c->r->actor.user_id,
                           json_number_value(json_object_get(c->tmpl, "cpus")),
                           (long)json_integer_value(json_object_get(c->tmpl, "memory_mb")), why,
                           sizeof(why));
    if (rc > 0)
        refuse(c->r, 403, "quota_exceeded", NULL, "%s", why);
    return rc == 0;
}

/* The first free name among base, base-2, base-3... of the caller. */
static bool pick_name(struct create *c)
{
    const char *base = json_string_value(json_object_get(c->tmpl, "name"));
    const char *p[2] = {c->r->actor.user_id, base};
    json_t *v = json_object_get(c->body, "name");
    PGresult *res;
    bool found = false;

    if (json_is_string(v)) {
        util_strlcpy(c->name, json_string_value(v), sizeof(c->name));
        return true;
    }
    if (!(res = req_q(c->r,
                      "SELECT name FROM instances WHERE user_id = $1 AND status <>"
                      " 'deleted' AND (name = $2 OR name LIKE $2 || '-%')",
                      2, p)))
        return false;
    for (int k = 1; k < 10000 && !found; k++) {
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
            util_strlcpy(c->name, cand, sizeof(c->name));
            found = true;
        }
    }
    PQclear(res);
    if (!found)
        refuse(c->r, 409, "conflict", "name", "every name after '%s' is taken: name it yourself",
               base);
    return found;
}

/* The template frozen into the instance's spec, placeholders expanded for
 * this user and name: what the worker makes, whatever the template becomes. */
static bool freeze_spec(struct create *c)
{
    const char *user = c->r->actor.username;
    json_t *spec, *env = NULL, *cmd = NULL;

    if (tmpl_expand_all(c->tmpl, user, c->name, &env, &cmd) < 0) {
        req_unavailable(c->r, "the instance could not be prepared");
        return false;
    }
    spec = json_deep_copy(c->tmpl);
    json_object_set_new(spec, "template_id", json_string(c->tid));
    json_object_set_new(spec, "template_name", json_copy(json_object_get(c->tmpl, "name")));
    json_object_set_new(spec, "env", env);
    json_object_set_new(spec, "command", cmd);
    if (json_is_string(json_object_get(c->tmpl, "open_path"))) {
        char base[80], op[TMPL_MAX_OPEN_PATH * 4 + 256];
        snprintf(base, sizeof(base), "/container/%s/%s/", user, c->name);
        if (tmpl_expand(json_string_value(json_object_get(c->tmpl, "open_path")), user, c->name,
                        base, op, sizeof(op)) == 0)
            json_object_set_new(spec, "open_path", json_string(op));
        else
            json_object_set_new(spec, "open_path", json_null());
    }
    json_object_set_new(spec, "user", json_string(user));
    json_object_set_new(spec, "instance", json_string(c->name));
    tmpl_strip_readonly(spec);
    json_object_del(spec, "name");
    c->spec = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!c->spec)
        req_unavailable(c->r, "the instance could not be prepared");
    return c->spec != NULL;
}

static bool insert_instance(struct create *c)
{
    char mem[24], cpus[32];
    const char *p[8] = {c->iid, c->r->actor.user_id, c->tid, c->name, api_cfg.node, c->spec,
                        cpus, mem};
    PGresult *res;
    bool dup;

    snprintf(cpus, sizeof(cpus), "%.2f", json_number_value(json_object_get(c->tmpl, "cpus")));
    snprintf(mem, sizeof(mem), "%lld",
             (long long)json_integer_value(json_object_get(c->tmpl, "memory_mb")));
    res = req_q_unique(c->r, &dup,
                       "INSERT INTO instances (id, user_id, template_id, name, node, spec, cpus,"
                       " memory_mb) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
                       8, p);
    if (!res && dup)
        refuse(c->r, 409, "conflict", "name", "you already have an instance named '%s'", c->name);
    PQclear(res);
    return res != NULL;
}

/* Reserve one host port for (instance, name): 0, 1 when the range is
 * exhausted (nothing answered), -1 after answering 503. */
static int reserve_port(struct create *c, const char *name, long cport)
{
    char port[16], cp[16], lo[16], hi[16];
    const char *p[6] = {api_cfg.node, NULL, c->iid, name, cp, NULL};
    long span = api_cfg.port_max - api_cfg.port_min + 1;
    PGresult *res;
    bool got;

    snprintf(cp, sizeof(cp), "%ld", cport);
    for (int i = 0; i < PORT_RANDOM_TRIES + 3; i++) {
        if (i < PORT_RANDOM_TRIES) {
            uint32_t rnd;
            if (util_random(&rnd, sizeof(rnd)) < 0) {
                req_unavailable(c->r, "out of randomness");
                return -1;
            }
            snprintf(port, sizeof(port), "%ld", api_cfg.port_min + (long)(rnd % (uint32_t)span));
            p[1] = port;
            res = req_q(c->r,
                        "INSERT INTO instance_ports (node, port, instance_id, name,"
                        " container_port) VALUES ($1, $2, $3, $4, $5)"
                        " ON CONFLICT (node, port) DO NOTHING RETURNING port",
                        5, p);
        } else {
            /* Random draws keep colliding: the range is nearly full. Pick among the free. */
            snprintf(lo, sizeof(lo), "%ld", api_cfg.port_min);
            snprintf(hi, sizeof(hi), "%ld", api_cfg.port_max);
            p[1] = lo;
            p[5] = hi;
            res = req_q(c->r,
                        "INSERT INTO instance_ports (node, port, instance_id, name,"
                        " container_port) SELECT $1, g, $3::uuid, $4, $5::int FROM"
                        " generate_series($2::int, $6::int) g WHERE NOT EXISTS (SELECT 1"
                        " FROM instance_ports x WHERE x.node = $1 AND x.port = g)"
                        " ORDER BY random() LIMIT 1"
                        " ON CONFLICT (node, port) DO NOTHING RETURNING port",
                        6, p);
        }
        if (!res)
            return -1;
        got = PQntuples(res) == 1;
        PQclear(res);
        if (got)
            return 0;
    }
    return 1;
}

/* Host ports: ssh, then the template's named ports. The HTTP port is not
 * published: nginx reaches the container at the address the worker assigns
 * on the user network (instances.upstream_host). */
static bool reserve_ports(struct create *c)
{
    const char *key;
    json_t *v;
    int rc = 0;

    if (json_is_integer(v = json_object_get(c->tmpl, "ssh_port")))
        rc = reserve_port(c, "ssh", (long)json_integer_value(v));
    json_object_foreach(json_object_get(c->tmpl, "ports"), key, v)
    {
        if (rc == 0 && json_is_integer(v))
            rc = reserve_port(c, key, (long)json_integer_value(v));
    }
    if (rc > 0)
        refuse(c->r, 503, "unavailable", NULL,
               "no free host port left in %ld-%ld on node %s: delete unused instances or widen "
               "port_range",
               api_cfg.port_min, api_cfg.port_max, api_cfg.node);
    return rc == 0;
}

/* Re-attach one of the caller's kept volumes (id) as `key`. */
static bool attach_kept(struct create *c, const char *key, const char *mount, const char *id)
{
    const char *p[7] = {id, c->iid, mount, c->tid, c->r->actor.user_id, api_cfg.node, key};
    PGresult *res;
    bool ok;

    if (!(res = req_q(c->r,
                      "UPDATE volumes SET instance_id = $2, mount_path = $3,"
                      " template_id = $4, name = $7 WHERE id = $1 AND user_id = $5"
                      " AND node = $6 AND instance_id IS NULL AND deleted_at IS NULL"
                      " RETURNING id",
                      7, p)))
        return false;
    ok = PQntuples(res) == 1;
    PQclear(res);
    if (!ok)
        refuse(c->r, 409, "conflict", "volumes",
               "volume %s is not a kept, unattached volume of yours", id);
    return ok;
}

static bool attach_new(struct create *c, const char *key, const char *mount)
{
    char vid[37];
    const char *p[8] = {vid, c->r->actor.user_id, c->tid,
                        json_string_value(json_object_get(c->tmpl, "name")), key, mount,
                        api_cfg.node, c->iid};
    PGresult *res;

    if (util_uuid(vid) < 0) {
        req_unavailable(c->r, "out of randomness");
        return false;
    }
    res = req_q(c->r,
                "INSERT INTO volumes (id, user_id, template_id, template_name, name, mount_path,"
                " node, instance_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                8, p);
    PQclear(res);
    return res != NULL;
}

/* The template's volumes: the caller's kept ones by name, the rest new. */
static bool attach_volumes(struct create *c)
{
    json_t *tvols = json_object_get(c->tmpl, "volumes"), *v;
    const char *key;

    json_object_foreach(c->vols, key, v)
    {
        if (!json_object_get(tvols, key)) {
            refuse(c->r, 400, "invalid_field", "volumes", "template '%s' has no volume named '%s'",
                   json_string_value(json_object_get(c->tmpl, "name")), key);
            return false;
        }
    }
    json_object_foreach(tvols, key, v)
    {
        const json_t *want = c->vols ? json_object_get(c->vols, key) : NULL;
        if (!(want ? attach_kept(c, key, json_string_value(v), json_string_value(want))
                   : attach_new(c, key, json_string_value(v))))
            return false;
    }
    return true;
}

/* The create job, its event and the audit row; COMMIT. (A refusal before
 * this names no target: its instance never existed.) */
static bool queue_create(struct create *c)
{
    if (!enqueue_job(c->r, &c->job) || !lc_event(c->r, c->iid, "queued", "create queued"))
        return false;
    audit_target(c->r, c->iid);
    return audit_commit(c->r, json_pack("{s:s, s:s, s:s}", "name", c->name, "template",
                                 json_string_value(json_object_get(c->tmpl, "name")), "job",
                                 c->job.id));
}

void instances_create(struct req *r)
{
    struct create c = {.r = r};
    PGconn *pg;
    json_t *resp;

    if (!(pg = req_change(r, "instance.create", "instance", NULL)))
        return;
    if (!authz_instance(&r->actor, ACT_CREATE, r->actor.user_id)) {
        refuse(r, 403, "forbidden", NULL, "your role may not create instances");
        return;
    }
    if (util_uuid(c.iid) < 0) {
        http_send_error(r, 500, "internal", NULL, "no random bytes for an id");
        return;
    }
    if (!enqueue_init(r, &c.job, JOB_CREATE, api_cfg.node))
        return;
    c.job.instance_id = c.iid;
    c.job.user_id = r->actor.user_id;
    if (check_body(&c) && req_begin(r) && load_template(&c) && check_quota(&c) &&
        pick_name(&c) && freeze_spec(&c) && insert_instance(&c) && reserve_ports(&c) &&
        attach_volumes(&c) && queue_create(&c)) {
        enqueue_push(r, api_cfg.node, c.job.id);
        resp = json_pack("{s:o, s:o}", "instance", lc_instance_get(pg, c.iid), "job",
                         lc_job_get(pg, c.job.id));
        if (resp)
            http_send_json(r, 202, resp);
        else
            http_send_error(r, 503, "unavailable", NULL,
                            "the instance was queued but cannot be read");
    }
    free(c.spec);
    json_decref(c.tmpl);
    json_decref(c.body);
}
