/*
 * instances — users' workspaces (API.md "Instances"). berth-api only writes
 * the desired state and queues a job; berth-worker makes Docker agree.
 *
 *   GET    /api/v1/instances                 own (admin: ?all=true, ?user=, ?status=)
 *   POST   /api/v1/instances                 {template, name?, volumes?} -> 202 {instance, job}
 *   GET    /api/v1/instances/{id}            owner, admin
 *   POST   /api/v1/instances/{id}/start|stop|restart  -> 202 {instance, job}
 *   POST   /api/v1/instances/{id}/snooze     counts as activity -> 200 instance
 *   DELETE /api/v1/instances/{id}            ?delete_volumes=true -> 202 {instance, job}
 *   GET    /api/v1/instances/{id}/events     lifecycle history
 *
 * Create is instance_create.c's; logs, stats and exec are instance_rpc.c's.
 * Here: the instance object (INSTANCE_JSON, built by PostgreSQL), list, get,
 * events, and start/stop/restart/delete -- each one transaction on the
 * locked row (desired state, status by the transition table, job, event,
 * audit), the job pushed to the instance's node after COMMIT; if that push
 * is lost the worker's reconcile finds the queued row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/protocol.h"
#include "berth/log.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"
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
    " '[]'::jsonb), 'disk_mb', coalesce(i.spec->'disk_mb', '0'::jsonb), 'ssh_user',"                \
    " coalesce(i.spec->>'ssh_user', 'root'), 'no_new_privileges',"                                \
    " coalesce(i.spec->'no_new_privileges', 'true'::jsonb),"                                       \
    " 'created_at', " SQL_TS("i.created_at") ", 'started_at', " SQL_TS("i.started_at")            \
    ", 'stopped_at', " SQL_TS("i.stopped_at") ", 'last_active_at', " SQL_TS("i.last_active_at")   \
    ", 'last_active_kind', i.last_active_kind, 'idle_timeout_s',"                                  \
    " coalesce(i.spec->'idle_timeout_s', '0'::jsonb))::text"
#define INSTANCE_FROM                                                                              \
    " FROM instances i JOIN users u ON u.id = i.user_id LEFT JOIN templates t ON t.id = i.template_id"

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
        /* the spec's ssh_user (checked again: the command is shown to a user
         * to paste into a shell); a spec from before it existed logs in as root */
        const char *su = json_string_value(json_object_get(inst, "ssh_user"));
        if (!tmpl_ssh_user_ok(su))
            su = "root";
        snprintf(buf, sizeof(buf), "ssh -p %ld %s@%s", port, su, api_cfg.public_host);
        json_object_set_new(inst, "ssh",
                            json_pack("{s:s, s:i, s:s, s:s}", "host", api_cfg.public_host, "port",
                                      (int)port, "user", su, "command", buf));
    } else {
        json_object_set_new(inst, "ssh", json_null());
    }
    json_object_del(inst, "http_port");
    json_object_del(inst, "ssh_port");
    json_object_del(inst, "ssh_user");
    json_object_del(inst, "open_path");
}

json_t *lc_instance_get(PGconn *pg, const char *id)
{
    const char *p[1] = {id};
    PGresult *res = PQexecParams(pg, "SELECT " INSTANCE_JSON INSTANCE_FROM " WHERE i.id = $1", 1,
                                 NULL, p, NULL, NULL, 0);
    json_t *inst = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        (inst = db_json_col(res, 0, 0)))
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
        job = db_json_col(res, 0, 0);
    PQclear(res);
    return job;
}

bool lc_event(struct req *r, const char *instance_id, const char *kind, const char *message)
{
    const char *p[3] = {instance_id, kind, message ? message : ""};
    PGresult *res = req_q(r,
                          "INSERT INTO instance_events (instance_id, kind, message)"
                          " VALUES ($1, $2, $3)",
                          3, p);
    PQclear(res);
    return res != NULL;
}

int lc_instance_owner(struct req *r, const char *id, bool lock, char owner[37],
                      char status[16], char node[64])
{
    const char *p[1] = {id};
    PGresult *res;
    int found;

    if (!valid_uuid(id))
        return 0;
    if (!(res = req_q(r,
                      lock ? "SELECT user_id, status, node FROM instances WHERE id = $1 FOR UPDATE"
                           : "SELECT user_id, status, node FROM instances WHERE id = $1",
                      1, p)))
        return -1;
    found = PQntuples(res) == 1;
    if (found) {
        util_strlcpy(owner, PQgetvalue(res, 0, 0), 37);
        util_strlcpy(status, PQgetvalue(res, 0, 1), 16);
        if (node)
            util_strlcpy(node, PQgetvalue(res, 0, 2), 64);
    }
    PQclear(res);
    return found;
}

/* ---- list / get ---- */

void instances_list(struct req *r)
{
    char all[8] = "", user[40] = "", status[16] = "", cursor[40] = "", lim[24];
    const char *p[5];
    enum inst_status st;
    long limit;
    PGresult *res;
    json_t *items;
    int n;

    if (auth_require(r) < 0 || !req_db(r) || !req_limit(r, 50, 500, &limit))
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
    if (status[0] && !status_parse(status, &st)) {
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
    if (!(res = req_q(r,
                      "SELECT " INSTANCE_JSON ", i.id, i.user_id" INSTANCE_FROM
                      " WHERE ($1::uuid IS NULL OR i.user_id = $1)"
                      " AND ($2::text IS NULL OR u.username = $2)"
                      " AND (CASE WHEN $3::text IS NULL THEN i.status <> 'deleted'"
                      " ELSE i.status = $3 END)"
                      " AND ($4::uuid IS NULL OR (i.created_at, i.id) > (SELECT created_at, id"
                      " FROM instances WHERE id = $4))"
                      " ORDER BY i.created_at, i.id LIMIT $5::int",
                      5, p)))
        return;
    items = json_array();
    n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++) {
        json_t *inst;
        if (!authz_instance(&r->actor, ACT_READ, PQgetvalue(res, i, 2)))
            continue;
        if ((inst = db_json_col(res, i, 0))) {
            lc_instance_finish(inst);
            json_array_append_new(items, inst);
        }
    }
    http_send_json(r, 200,
                   json_pack("{s:o, s:o}", "items", items, "next_cursor",
                             n > limit ? json_string(PQgetvalue(res, limit - 1, 1)) : json_null()));
    PQclear(res);
}

/* The actor of r may read instance id (another user's answers as missing):
 * r's connection, or NULL after answering. */
static PGconn *readable(struct req *r, const char *id)
{
    char owner[37], status[16];
    PGconn *pg;
    int found;

    if (auth_require(r) < 0 || !(pg = req_db(r)) ||
        (found = lc_instance_owner(r, id, false, owner, status, NULL)) < 0)
        return NULL;
    if (!found || !authz_instance(&r->actor, ACT_READ, owner)) {
        http_send_error(r, 404, "not_found", NULL, "no such instance");
        return NULL;
    }
    return pg;
}

void instances_get(struct req *r)
{
    PGconn *pg;
    json_t *inst;

    if (!(pg = readable(r, r->params[0])))
        return;
    if (!(inst = lc_instance_get(pg, r->params[0]))) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    http_send_json(r, 200, inst);
}

void instances_events(struct req *r)
{
    const char *p[1] = {r->params[0]};
    PGresult *res;

    if (!readable(r, r->params[0]))
        return;
    if (!(res = req_q(r,
                      "SELECT json_build_object('at', " SQL_TS("at") ", 'kind', kind, 'message',"
                      " message)::text FROM (SELECT * FROM instance_events WHERE instance_id = $1"
                      " ORDER BY id DESC LIMIT 500) e ORDER BY id",
                      1, p)))
        return;
    http_send_items(r, res);
}

/* ---- start / stop / restart / delete ---- */

/* The desired state a user's request of kind records. */
static const char *desired_of(enum job_kind kind)
{
    switch (kind) {
    case JOB_STOP:
        return "stopped";
    case JOB_DELETE:
        return "deleted";
    default:
        return "running";
    }
}

/*
 * Begin r's transaction and lock instance id for an action `act` named verb:
 * false after refusing (404 when it is deleted, not there or not the actor's
 * to see; 403 when the actor's role may not) or after a database error was
 * answered. owner and status (and node, when not NULL) of the row otherwise.
 */
static bool lock_for(struct req *r, const char *id, enum authz_action act, const char *verb,
                     char owner[37], char status[16], char node[64])
{
    int found;
    if (!req_begin(r) || (found = lc_instance_owner(r, id, true, owner, status, node)) < 0)
        return false;
    if (!found || strcmp(status, "deleted") == 0 || !authz_instance(&r->actor, ACT_READ, owner)) {
        refuse(r, 404, "not_found", NULL, "no such instance");
        return false;
    }
    if (!authz_instance(&r->actor, act, owner)) {
        refuse(r, 403, "forbidden", NULL, "your role may not %s this instance", verb);
        return false;
    }
    return true;
}

/*
 * start, stop, restart, delete: the desired state, the status the request
 * moves the instance to (status_on_request, checked against the transition
 * table with status_guard), the job, its event and the audit row, in one
 * transaction on the locked row; the push to the instance's node after COMMIT.
 */
static void action(struct req *r, enum job_kind kind)
{
    char owner[37], status[16], dv[8] = "", node[64], guard[STATUS_SET_MAX], action_name[32];
    char evmsg[64];
    const char *id = r->params[0], *p[4];
    const char *verb = job_kind_name(kind);
    bool del = kind == JOB_DELETE, delete_volumes = false;
    enum inst_status from, to;
    struct job_spec job;
    PGconn *pg;
    PGresult *res;
    json_t *resp;
    int found;

    snprintf(action_name, sizeof(action_name), "instance.%s", verb);
    if (!(pg = req_change(r, action_name, "instance", valid_uuid(id) ? id : NULL)))
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
    if (!lock_for(r, id, del ? ACT_DELETE : ACT_OPERATE, verb, owner, status, node))
        return;
    if (strcmp(status, "deleting") == 0) {
        refuse(r, 409, "conflict", NULL, "the instance is being deleted");
        return;
    }
    if (!status_parse(status, &from)) {
        refuse(r, 409, "conflict", NULL, "the instance's status '%s' is not one berth knows",
               status);
        return;
    }
    to = status_on_request(kind, from);
    p[0] = id;
    p[1] = desired_of(kind);
    p[2] = status_name(to);
    p[3] = status_guard(to, BY_API, guard);
    res = to == from ? req_q(r, "UPDATE instances SET error = NULL, desired = $2 WHERE id = $1"
                                " RETURNING id", 2, p)
                     : req_q(r,
                             "UPDATE instances SET error = NULL, desired = $2, status = $3"
                             " WHERE id = $1 AND status = ANY($4::text[]) RETURNING id",
                             4, p);
    if (!res)
        return;
    found = PQntuples(res);
    PQclear(res);
    if (!found) { /* the row is locked: only the table can say no */
        refuse(r, 409, "conflict", NULL, "an instance that is %s cannot be asked to %s", status,
               verb);
        return;
    }
    if (!enqueue_init(r, &job, kind, node))
        return;
    job.instance_id = id;
    job.user_id = owner;
    job.args.delete_volumes = delete_volumes;
    snprintf(evmsg, sizeof(evmsg), "%s queued", verb);
    if (!enqueue_job(r, &job) || !lc_event(r, id, "queued", evmsg))
        return;
    if (!audit_commit(r, json_pack("{s:s, s:b}", "job", job.id, "delete_volumes", delete_volumes)))
        return;
    enqueue_push(r, node, job.id); /* the node that runs the instance */
    resp = json_pack("{s:o, s:o}", "instance", lc_instance_get(pg, id), "job",
                     lc_job_get(pg, job.id));
    if (!resp) {
        http_send_error(r, 503, "unavailable", NULL, "the job was queued but cannot be read");
        return;
    }
    http_send_json(r, 202, resp);
}

void instances_start(struct req *r)
{
    action(r, JOB_START);
}

void instances_stop(struct req *r)
{
    action(r, JOB_STOP);
}

void instances_restart(struct req *r)
{
    action(r, JOB_RESTART);
}

void instances_delete(struct req *r)
{
    action(r, JOB_DELETE);
}

/*
 * snooze: the owner (or an admin) says "still using it": the idle clock
 * starts again, as any activity would start it (last_active_kind 'snooze';
 * the worker's next pass sees a new idle period, so a warning already given
 * is given again before a stop). Only a running instance has a clock to
 * reset. One transaction on the locked row: activity, event, audit.
 */
void instances_snooze(struct req *r)
{
    char owner[37], status[16];
    const char *id = r->params[0], *p[1] = {id};
    PGconn *pg;
    PGresult *res;
    json_t *inst;

    if (!(pg = req_change(r, "instance.snooze", "instance", valid_uuid(id) ? id : NULL)))
        return;
    if (!lock_for(r, id, ACT_OPERATE, "snooze", owner, status, NULL))
        return;
    if (strcmp(status, "running") != 0) {
        refuse(r, 409, "conflict", NULL, "only a running instance can be snoozed; this one is %s",
               status);
        return;
    }
    if (!(res = req_q(r,
                      "UPDATE instances SET last_active_at = now(), last_active_kind = 'snooze'"
                      " WHERE id = $1",
                      1, p)))
        return;
    PQclear(res);
    if (!lc_event(r, id, "snoozed", "the idle clock starts again") || !audit_commit(r, NULL))
        return;
    if (!(inst = lc_instance_get(pg, id))) {
        http_send_error(r, 503, "unavailable", NULL, "the instance was snoozed but cannot be read");
        return;
    }
    http_send_json(r, 200, inst);
}
