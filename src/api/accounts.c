/*
 * accounts — the helpers the account handlers share (accounts.h): the user
 * object, the checks of account fields (quotas, passwords, token and key
 * names), and the start of deleting a row someone owns. The /api/v1/auth/...
 * endpoints are session.c's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "password.h"


json_t *acct_user_json(PGresult *res, int row, int c)
{
    return json_pack(
        "{s:s, s:s, s:s, s:{s:I, s:f, s:I}, s:o, s:b}", "id", PQgetvalue(res, row, c), "username",
        PQgetvalue(res, row, c + 1), "role", PQgetvalue(res, row, c + 2), "quota", "instances",
        (json_int_t)strtoll(PQgetvalue(res, row, c + 3), NULL, 10), "cpus",
        strtod(PQgetvalue(res, row, c + 4), NULL), "memory_mb",
        (json_int_t)strtoll(PQgetvalue(res, row, c + 5), NULL, 10), "created_at",
        db_str_or_null(res, row, c + 6), "disabled", PQgetvalue(res, row, c + 7)[0] == 't');
}

int acct_delete_owned(struct req *r, const char *lock_sql, const char *delete_sql, const char *id,
                      bool (*allowed)(const struct actor *, enum authz_action, const char *),
                      const char *what, char owner[37])
{
    const char *p[1] = {id};
    PGresult *res;

    owner[0] = '\0';
    if (!valid_uuid(id)) {
        refuse(r, 404, "not_found", NULL, "no such %s", what);
        return -1;
    }
    audit_target(r, id);
    if (!req_begin(r) || !(res = req_q(r, lock_sql, 1, p)))
        return -1;
    if (PQntuples(res) == 1)
        util_strlcpy(owner, PQgetvalue(res, 0, 0), 37);
    PQclear(res);
    if (!owner[0]) {
        refuse(r, 404, "not_found", NULL, "no such %s", what);
        return -1;
    }
    if (!allowed(&r->actor, ACT_DELETE, owner)) {
        refuse_hidden(r, what);
        return -1;
    }
    if (!(res = req_q(r, delete_sql, 1, p)))
        return -1;
    PQclear(res);
    return 0;
}

size_t acct_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* A whole-number quota field (path: "quota.<key>") of 0 to max: absent, or
 * set (*has, its text in out); -1 naming it in *field and msg when it is not
 * one. */
static int quota_whole(json_t *q, const char *path, long max, bool *has, char *out, size_t outlen,
                       const char **field, char *msg, size_t msglen)
{
    json_t *v = json_object_get(q, path + strlen("quota."));

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        *field = path;
        snprintf(msg, msglen, "%s must be a whole number from 0 to %ld", path, max);
        return -1;
    }
    *has = true;
    snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
    return 0;
}

int acct_parse_quota(json_t *q, struct quota_in *out, const char **field, char *msg, size_t msglen)
{
    static const char *const allowed[] = {"instances", "cpus", "memory_mb", NULL};
    const char *bad;
    json_t *v;

    memset(out, 0, sizeof(*out));
    *field = "quota";
    if (!json_is_object(q)) {
        snprintf(msg, msglen, "quota must be an object {instances, cpus, memory_mb}");
        return -1;
    }
    if ((bad = req_unknown_field(q, allowed))) {
        snprintf(msg, msglen, "unknown quota field '%.60s'", bad);
        return -1;
    }
    if (quota_whole(q, "quota.instances", QUOTA_MAX_INSTANCES, &out->has_instances, out->instances,
                    sizeof(out->instances), field, msg, msglen) < 0)
        return -1;
    if ((v = json_object_get(q, "cpus"))) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
            json_number_value(v) > QUOTA_MAX_CPUS) {
            *field = "quota.cpus";
            snprintf(msg, msglen, "quota.cpus must be a number from 0 to %g", QUOTA_MAX_CPUS);
            return -1;
        }
        out->has_cpus = true;
        snprintf(out->cpus, sizeof(out->cpus), "%.2f", json_number_value(v));
    }
    if (quota_whole(q, "quota.memory_mb", QUOTA_MAX_MEMORY_MB, &out->has_memory, out->memory_mb,
                    sizeof(out->memory_mb), field, msg, msglen) < 0)
        return -1;
    return 0;
}

const char *acct_check_password(json_t *v)
{
    size_t chars;
    if (!json_is_string(v))
        return "password must be a string";
    /* jansson has already refused invalid UTF-8 and \u0000 in a body; check again
     * for values that did not come from one */
    if (!valid_utf8(json_string_value(v), json_string_length(v)))
        return "password must be UTF-8 text without NUL bytes";
    chars = acct_utf8_chars(json_string_value(v), json_string_length(v));
    if (chars < PASSWORD_MIN || chars > PASSWORD_MAX)
        return "password must be " STR(PASSWORD_MIN) " to " STR(PASSWORD_MAX) " characters";
    return NULL;
}

bool acct_token_name_ok(const char *s, size_t n)
{
    size_t chars = acct_utf8_chars(s, n);
    if (chars < 1 || chars > 64 || !valid_utf8(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

const char *acct_name(struct req *r, json_t *body)
{
    json_t *v = json_object_get(body, "name");
    if (json_is_string(v) && acct_token_name_ok(json_string_value(v), json_string_length(v)))
        return json_string_value(v);
    refuse(r, 400, "invalid_field", "name", "name must be 1 to 64 characters of text");
    return NULL;
}

json_t *acct_create_named(struct req *r, const char *action, const char *target_type,
                          bool (*allowed)(const struct actor *, enum authz_action, const char *),
                          const char *denied, const char *const fields[], const char **name)
{
    json_t *body;

    if (!req_change(r, action, target_type, NULL))
        return NULL;
    if (!allowed(&r->actor, ACT_CREATE, r->actor.user_id)) {
        refuse(r, 403, "forbidden", NULL, "%s", denied);
        return NULL;
    }
    if (!(body = req_body(r, fields)))
        return NULL;
    if (!(*name = acct_name(r, body))) {
        json_decref(body);
        return NULL;
    }
    return body;
}
