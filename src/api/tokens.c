/*
 * tokens — personal API tokens (API.md "Accounts"):
 *   GET    /api/v1/tokens        the caller's tokens (never the secret)
 *   POST   /api/v1/tokens        {name, expires_in_days?} -> 201 {id, name, token}
 *   DELETE /api/v1/tokens/{id}   revoke (owner only; anything else is 404)
 *
 * A token is "berth_" + 256 random bits in hex, shown once; only its SHA-256
 * is stored (auth.c looks tokens up by that hash). A user holds at most
 * TOKENS_MAX tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"

#define TOKEN_PREFIX   "berth_"
#define TOKEN_DAYS_MAX 3650
#define TOKENS_MAX     100

#define TOKEN_COLS                                                                                 \
    "id, name, " SQL_TS("created_at") ", " SQL_TS("last_used_at") ", " SQL_TS("expires_at")

static json_t *token_json(PGresult *res, int i)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", PQgetvalue(res, i, 0), "name",
                     PQgetvalue(res, i, 1), "created_at", db_str_or_null(res, i, 2),
                     "last_used_at", db_str_or_null(res, i, 3), "expires_at",
                     db_str_or_null(res, i, 4));
}

/* A page item of tokens_list: the token, when the actor (arg's) may read it. */
static json_t *readable_token(PGresult *res, int row, void *arg)
{
    struct req *r = arg;
    return authz_token(&r->actor, ACT_READ, r->actor.user_id) ? token_json(res, row) : NULL;
}

void tokens_list(struct req *r)
{
    char cursor[64] = "", slimit[24];
    const char *p[3];
    PGresult *res;
    long limit;

    if (auth_require(r) < 0 || !req_db(r) || !req_limit(r, 50, 500, &limit))
        return;
    if (req_query(r, "cursor", cursor, sizeof(cursor)) && !valid_uuid(cursor)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not valid");
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit + 1);
    p[0] = r->actor.user_id;
    p[1] = cursor[0] ? cursor : NULL;
    p[2] = slimit;
    if (!(res = req_q(r,
                      "SELECT " TOKEN_COLS " FROM api_tokens t WHERE user_id = $1 AND ($2::uuid IS"
                      " NULL OR (t.created_at, t.id) > (SELECT created_at, id FROM api_tokens"
                      " WHERE id = $2::uuid)) ORDER BY created_at, id LIMIT $3::int",
                      3, p)))
        return;
    http_send_page_of(r, res, limit, 0, readable_token, r);
}

void tokens_create(struct req *r)
{
    static const char *const allowed[] = {"name", "expires_in_days", NULL};
    char id[37], secret[65], token[80], hash[65], days[24] = "";
    const char *p[5], *name;
    json_t *body = NULL, *v, *t;
    PGresult *res = NULL;

    if (!(body = acct_create_named(r, "token.create", "token", authz_token,
                                   "you may not create API tokens", allowed, &name)))
        return;
    if ((v = json_object_get(body, "expires_in_days")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > TOKEN_DAYS_MAX) {
            refuse(r, 400, "invalid_field", "expires_in_days",
                   "expires_in_days must be a whole number from 1 to %d", TOKEN_DAYS_MAX);
            goto out;
        }
        snprintf(days, sizeof(days), "%lld", (long long)json_integer_value(v));
    }
    if (util_uuid(id) < 0 || util_token(secret) < 0) {
        http_send_error(r, 500, "internal", NULL, "no random bytes for a token");
        goto out;
    }
    audit_target(r, id);
    snprintf(token, sizeof(token), TOKEN_PREFIX "%s", secret);
    util_sha256_hex(token, strlen(token), hash);
    p[0] = r->actor.user_id;
    /* The user row lock makes the count and insert atomic against a parallel create. */
    if (!req_begin(r) ||
        !(res = req_q(r,
                      "SELECT (SELECT count(*) FROM api_tokens WHERE user_id = $1) FROM users"
                      " WHERE id = $1 FOR UPDATE",
                      1, p)))
        goto out;
    if (PQntuples(res) != 1) { /* the user was deleted meanwhile */
        refuse(r, 404, "not_found", NULL, "no such user");
        goto out;
    }
    if (strtol(PQgetvalue(res, 0, 0), NULL, 10) >= TOKENS_MAX) {
        refuse(r, 409, "conflict", NULL, "you already have %d API tokens: revoke one first",
               TOKENS_MAX);
        goto out;
    }
    PQclear(res);
    p[0] = id;
    p[1] = r->actor.user_id;
    p[2] = name;
    p[3] = hash;
    p[4] = days[0] ? days : NULL;
    if (!(res = req_q(r,
                      "INSERT INTO api_tokens (id, user_id, name, token_hash, expires_at) VALUES"
                      " ($1, $2, $3, $4, now() + make_interval(days => $5::int)) RETURNING "
                      TOKEN_COLS,
                      5, p)))
        goto out;
    if (!audit_commit(r, json_pack("{s:s, s:s?}", "name", name, "expires_in_days",
                              days[0] ? days : NULL)))
        goto out;
    t = token_json(res, 0);
    json_object_set_new(t, "token", json_string(token));
    http_send_json(r, 201, t);
out:
    explicit_bzero(secret, sizeof(secret));
    explicit_bzero(token, sizeof(token));
    PQclear(res);
    json_decref(body);
}

void tokens_delete(struct req *r)
{
    const char *id = r->params[0];
    char owner[37] = "";

    if (!req_change(r, "token.delete", "token", NULL))
        return;
    if (acct_delete_owned(r, "SELECT user_id FROM api_tokens WHERE id = $1 FOR UPDATE",
                          "DELETE FROM api_tokens WHERE id = $1", id, authz_token, "token",
                          owner) < 0)
        return;
    if (audit_commit(r, NULL))
        http_send_empty(r, 204, NULL);
}
