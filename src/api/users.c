/*
 * users — the admin's user management (API.md "Users"):
 *   GET    /api/v1/users           list, ?q= substring of the name, paged by name
 *   POST   /api/v1/users           create {username, password, role, quota?}
 *   GET    /api/v1/users/{id}      one user plus usage (admins; a user may read themselves)
 *   PATCH  /api/v1/users/{id}      any of {password, role, quota, disabled, revoke_tokens}
 *   DELETE /api/v1/users/{id}      disable now, queue a user_delete job (202)
 *
 * Every write runs in one transaction with its audit row. Changing a password
 * or disabling a user ends their sessions; disabling also deletes their API
 * tokens (re-enabling brings none back), and revoke_tokens: true deletes them
 * on request. The last enabled admin can be
 * neither demoted, disabled nor deleted: someone must be able to log in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "password.h"

/* Parse a quota object; on error answer 400 (audited) and return false. */
static bool parse_quota(struct req *r, json_t *q, struct quota_in *out)
{
    const char *field = "quota";
    char msg[200];
    if (acct_parse_quota(q, out, &field, msg, sizeof(msg)) == 0)
        return true;
    refuse(r, 400, "invalid_field", field, "%s", msg);
    return false;
}

/* Check a new password; on error answer 400 (audited) and return false. */
static bool check_password(struct req *r, json_t *v)
{
    const char *why = acct_check_password(v);
    if (!why)
        return true;
    refuse(r, 400, "invalid_field", "password", "%s", why);
    return false;
}

/* Admins only; a refused change is audited, a refused read is not. */
static bool require_admin(struct req *r)
{
    if (authz_admin(&r->actor))
        return true;
    if (auth_method_unsafe(r->method))
        refuse(r, 403, "forbidden", NULL, "only an admin may manage users");
    else
        http_send_error(r, 403, "forbidden", NULL, "only an admin may manage users");
    return false;
}

/* The start of an admin's change of user id: authenticated, audited as
 * action on the user, by an admin, of a well-formed id. false after
 * answering. */
static bool user_change(struct req *r, const char *action, const char *id)
{
    if (!req_change(r, action, "user", NULL))
        return false;
    if (!require_admin(r))
        return false;
    if (!valid_uuid(id)) {
        refuse(r, 404, "not_found", NULL, "no such user");
        return false;
    }
    audit_target(r, id);
    return true;
}

/* Run a statement of r's transaction whose result is not needed; false after
 * answering 503. */
static bool exec_p(struct req *r, const char *sql, const char *id)
{
    const char *p[1] = {id};
    PGresult *res = req_q(r, sql, 1, p);
    PQclear(res);
    return res != NULL;
}

static json_t *user_item(PGresult *res, int row, void *arg)
{
    return acct_user_json(res, row, 0);
}

void users_list(struct req *r)
{
    char q[64] = "", cursor[64] = "", slimit[24];
    const char *p[3];
    PGresult *res;
    long limit;

    if (auth_require(r) < 0 || !req_db(r) || !require_admin(r) || !req_limit(r, 50, 500, &limit))
        return;
    if (req_query(r, "q", q, sizeof(q)) && (*q == REQ_QUERY_BAD || !valid_utf8(q, strlen(q)))) {
        http_send_error(r, 400, "invalid_field", "q", "q must be UTF-8 text of at most %zu bytes",
                        sizeof(q) - 1);
        return;
    }
    if (req_query(r, "cursor", cursor, sizeof(cursor)) && !valid_name(cursor)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not valid");
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit + 1);
    p[0] = q;
    p[1] = cursor;
    p[2] = slimit;
    if (!(res = req_q(r,
                      "SELECT " USER_COLS " FROM users u WHERE strpos(u.username, $1) > 0"
                      " AND ($2 = '' OR u.username > $2) ORDER BY u.username LIMIT $3::int",
                      3, p)))
        return;
    http_send_page_of(r, res, limit, 1, user_item, NULL);
}

void users_create(struct req *r)
{
    static const char *const allowed[] = {"username", "password", "role", "quota", NULL};
    char hash[PASSWORD_HASH_MAX] = "", id[37];
    struct quota_in qi;
    const char *p[7], *username;
    json_t *body = NULL, *v;
    PGresult *res = NULL;
    enum role role;

    if (!req_change(r, "user.create", "user", NULL))
        return;
    if (!require_admin(r) || !(body = req_body(r, allowed)))
        return;
    v = json_object_get(body, "username");
    username = json_string_value(v);
    if (!valid_name(username)) {
        refuse(r, 400, "invalid_field", "username",
               "username must be 2-32 characters of a-z, 0-9 and '-', starting with a letter"
               " and not ending with '-'");
        goto out;
    }
    if (!check_password(r, json_object_get(body, "password")))
        goto out;
    if (!auth_role_parse(json_string_value(json_object_get(body, "role")), &role)) {
        refuse(r, 400, "invalid_field", "role", "role must be admin, developer or viewer");
        goto out;
    }
    memset(&qi, 0, sizeof(qi));
    if ((v = json_object_get(body, "quota")) && !parse_quota(r, v, &qi))
        goto out;
    if (util_uuid(id) < 0 || password_hash(json_string_value(json_object_get(body, "password")),
                                           hash, sizeof(hash)) < 0) {
        http_send_error(r, 500, "internal", NULL, "the password could not be hashed");
        goto out;
    }
    audit_target(r, id);
    p[0] = id;
    p[1] = username;
    p[2] = hash;
    p[3] = auth_role_name(role);
    p[4] = qi.has_instances ? qi.instances : NULL;
    p[5] = qi.has_cpus ? qi.cpus : NULL;
    p[6] = qi.has_memory ? qi.memory_mb : NULL;
    if (!req_begin(r) ||
        !(res = req_q(r,
                      "INSERT INTO users AS u (id, username, password_hash, role, quota_instances,"
                      " quota_cpus, quota_memory_mb) VALUES ($1, $2, $3, $4,"
                      " coalesce($5::int, 5), coalesce($6::numeric, 4), coalesce($7::int, 8192))"
                      " ON CONFLICT (username) DO NOTHING RETURNING " USER_COLS,
                      7, p)))
        goto out;
    if (PQntuples(res) != 1) {
        refuse(r, 409, "conflict", "username", "a user named '%s' already exists", username);
        goto out;
    }
    if (audit_commit(r, json_pack("{s:s, s:s}", "username", username, "role", auth_role_name(role))))
        http_send_json(r, 201, acct_user_json(res, 0, 0));
out:
    explicit_bzero(hash, sizeof(hash));
    PQclear(res);
    json_decref(body);
}

void users_get(struct req *r)
{
    const char *id = r->params[0], *p[1] = {id};
    PGresult *res;
    json_t *u;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    /* Decided before the lookup, so a non-admin learns nothing about other ids. */
    if (!authz_user(&r->actor, ACT_READ, id)) {
        http_send_error(r, 403, "forbidden", NULL, "only an admin may read other users");
        return;
    }
    if (!valid_uuid(id)) {
        http_send_error(r, 404, "not_found", NULL, "no such user");
        return;
    }
    if (!(res = req_q(r,
                      "SELECT " USER_COLS ", (SELECT count(*) FROM instances i WHERE i.user_id ="
                      " u.id AND i.status <> 'deleted'), (SELECT coalesce(sum(cpus), 0) FROM"
                      " instances i WHERE i.user_id = u.id AND i.status <> 'deleted'), (SELECT"
                      " coalesce(sum(memory_mb), 0) FROM instances i WHERE i.user_id = u.id AND"
                      " i.status <> 'deleted') FROM users u WHERE u.id = $1",
                      1, p)))
        return;
    if (PQntuples(res) != 1) {
        PQclear(res);
        http_send_error(r, 404, "not_found", NULL, "no such user");
        return;
    }
    u = acct_user_json(res, 0, 0);
    json_object_set_new(
        u, "usage",
        json_pack("{s:I, s:f, s:I}", "instances",
                  (json_int_t)strtoll(PQgetvalue(res, 0, USER_NCOLS), NULL, 10), "cpus",
                  strtod(PQgetvalue(res, 0, USER_NCOLS + 1), NULL), "memory_mb",
                  (json_int_t)strtoll(PQgetvalue(res, 0, USER_NCOLS + 2), NULL, 10)));
    PQclear(res);
    http_send_json(r, 200, u);
}

/*
 * The start of a change that may demote, disable or delete user id: BEGIN,
 * then lock that row and every enabled admin's, in id order, so two admins
 * changing each other at once queue up instead of deadlocking. 1 when the
 * target is an enabled admin, 0 when another user, -1 after answering (404
 * for a missing user, 503).
 */
static int lock_target_and_admins(struct req *r, const char *id)
{
    const char *p[1] = {id};
    PGresult *res;
    int rc;

    if (!req_begin(r) || !(res = req_q(r,
                                       "SELECT id = $1 AND role = 'admin' AND NOT disabled,"
                                       " id = $1 FROM users WHERE id = $1 OR (role = 'admin' AND"
                                       " NOT disabled) ORDER BY id FOR UPDATE",
                                       1, p)))
        return -1;
    rc = -1;
    for (int i = 0; i < PQntuples(res); i++)
        if (PQgetvalue(res, i, 1)[0] == 't')
            rc = PQgetvalue(res, i, 0)[0] == 't';
    PQclear(res);
    if (rc < 0)
        refuse(r, 404, "not_found", NULL, "no such user");
    return rc;
}

/*
 * Inside the transaction: would the change leave no enabled admin? The admin
 * rows are locked, so two concurrent demotions cannot both pass. -1 after
 * answering 503.
 */
static int leaves_no_admin(struct req *r, const char *id)
{
    const char *p[1] = {id};
    PGresult *res = req_q(r,
                          "SELECT id FROM users WHERE role = 'admin' AND NOT disabled"
                          " AND id <> $1 FOR UPDATE",
                          1, p);
    int none = res ? PQntuples(res) == 0 : -1;
    PQclear(res);
    return none;
}

void users_patch(struct req *r)
{
    static const char *const allowed[] = {"password", "role",          "quota",
                                          "disabled", "revoke_tokens", NULL};
    const char *id = r->params[0], *key, *p[7];
    char hash[PASSWORD_HASH_MAX] = "";
    struct quota_in qi;
    json_t *body = NULL, *v, *d;
    PGresult *res = NULL;
    enum role role;
    bool has_role = false, has_disabled = false, disabled = false, revoke = false;
    int was_admin, none;

    if (!user_change(r, "user.update", id))
        return;
    if (!(body = req_body(r, allowed)))
        return;
    if ((v = json_object_get(body, "password")) && !check_password(r, v))
        goto out;
    if ((v = json_object_get(body, "role"))) {
        if (!auth_role_parse(json_string_value(v), &role)) {
            refuse(r, 400, "invalid_field", "role", "role must be admin, developer or viewer");
            goto out;
        }
        has_role = true;
    }
    memset(&qi, 0, sizeof(qi));
    if ((v = json_object_get(body, "quota")) && !parse_quota(r, v, &qi))
        goto out;
    if ((v = json_object_get(body, "disabled"))) {
        if (!json_is_boolean(v)) {
            refuse(r, 400, "invalid_field", "disabled", "disabled must be true or false");
            goto out;
        }
        has_disabled = true;
        disabled = json_is_true(v);
    }
    if ((v = json_object_get(body, "revoke_tokens"))) {
        if (!json_is_boolean(v)) {
            refuse(r, 400, "invalid_field", "revoke_tokens",
                   "revoke_tokens must be true or false");
            goto out;
        }
        revoke = json_is_true(v);
    }
    if ((v = json_object_get(body, "password")) &&
        password_hash(json_string_value(v), hash, sizeof(hash)) < 0) {
        http_send_error(r, 500, "internal", NULL, "the password could not be hashed");
        goto out;
    }
    if ((was_admin = lock_target_and_admins(r, id)) < 0)
        goto out;
    if (was_admin && ((has_role && role != ROLE_ADMIN) || (has_disabled && disabled))) {
        if ((none = leaves_no_admin(r, id)) < 0)
            goto out;
        if (none) {
            refuse(r, 409, "conflict", has_role ? "role" : "disabled",
                   "this is the last enabled admin: make another admin first");
            goto out;
        }
    }
    p[0] = id;
    p[1] = hash[0] ? hash : NULL;
    p[2] = has_role ? auth_role_name(role) : NULL;
    p[3] = qi.has_instances ? qi.instances : NULL;
    p[4] = qi.has_cpus ? qi.cpus : NULL;
    p[5] = qi.has_memory ? qi.memory_mb : NULL;
    p[6] = has_disabled ? (disabled ? "true" : "false") : NULL;
    if (!(res = req_q(r,
                      "UPDATE users u SET password_hash = coalesce($2, password_hash),"
                      " role = coalesce($3, role),"
                      " quota_instances = coalesce($4::int, quota_instances),"
                      " quota_cpus = coalesce($5::numeric, quota_cpus),"
                      " quota_memory_mb = coalesce($6::int, quota_memory_mb),"
                      " disabled = coalesce($7::boolean, disabled), updated_at = now()"
                      " WHERE id = $1 RETURNING " USER_COLS,
                      7, p)))
        goto out;
    /* A new password or a disabled account ends every session of that user. */
    if ((hash[0] || (has_disabled && disabled)) &&
        !exec_p(r, "DELETE FROM sessions WHERE user_id = $1", id))
        goto out;
    /* A disabled account's API tokens die with it: enabling it again later
     * must not bring them back. revoke_tokens deletes them on request. */
    if ((revoke || (has_disabled && disabled)) &&
        !exec_p(r, "DELETE FROM api_tokens WHERE user_id = $1", id))
        goto out;
    d = json_object();
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "password") == 0)
            json_object_set_new(d, "password", json_string("changed"));
        else
            json_object_set(d, key, v);
    }
    if (audit_commit(r, d))
        http_send_json(r, 200, acct_user_json(res, 0, 0));
out:
    explicit_bzero(hash, sizeof(hash));
    PQclear(res);
    json_decref(body);
}

void users_delete(struct req *r)
{
    const char *id = r->params[0];
    char buf[16];
    bool delete_volumes = false;
    struct job_spec job;
    PGresult *res = NULL;
    int is_admin, none;

    if (!user_change(r, "user.delete", id))
        return;
    if (req_query(r, "delete_volumes", buf, sizeof(buf))) {
        if (strcmp(buf, "true") != 0 && strcmp(buf, "false") != 0) {
            refuse(r, 400, "invalid_field", "delete_volumes",
                   "delete_volumes must be true or false");
            return;
        }
        delete_volumes = strcmp(buf, "true") == 0;
    }
    if (strcmp(id, r->actor.user_id) == 0) {
        refuse(r, 409, "conflict", NULL, "you cannot delete yourself");
        return;
    }
    if (!enqueue_init(r, &job, JOB_USER_DELETE, api_cfg.node))
        return;
    job.user_id = id;
    job.args.delete_volumes = delete_volumes;
    if ((is_admin = lock_target_and_admins(r, id)) < 0)
        return;
    if (is_admin) {
        if ((none = leaves_no_admin(r, id)) < 0)
            return;
        if (none) {
            refuse(r, 409, "conflict", NULL, "this is the last enabled admin");
            return;
        }
    }
    /* The account stops working now; the worker removes containers, then the row. */
    if (!exec_p(r, "UPDATE users SET disabled = true, updated_at = now() WHERE id = $1", id) ||
        !exec_p(r, "DELETE FROM sessions WHERE user_id = $1", id) ||
        !exec_p(r, "DELETE FROM api_tokens WHERE user_id = $1", id) || !enqueue_job(r, &job))
        return;
    {
        const char *p[1] = {job.id};
        if (!(res = req_q(r,
                          "SELECT status, attempts, error, " SQL_TS("created_at") ", " SQL_TS(
                              "finished_at") " FROM jobs WHERE id = $1",
                          1, p)))
            return;
    }
    if (!audit_commit(r, json_pack("{s:s, s:b}", "job", job.id, "delete_volumes",
                                   delete_volumes))) {
        PQclear(res);
        return;
    }
    enqueue_push(r, api_cfg.node, job.id); /* after COMMIT (enqueue.h) */
    http_send_json(r, 202,
                   json_pack("{s:s, s:s, s:n, s:s, s:s, s:I, s:o, s:o, s:o}", "id", job.id,
                             "kind", "user_delete", "instance_id", "user_id", id, "status",
                             PQgetvalue(res, 0, 0), "attempts",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10), "error",
                             db_str_or_null(res, 0, 2), "created_at", db_str_or_null(res, 0, 3),
                             "finished_at", db_str_or_null(res, 0, 4)));
    PQclear(res);
}
