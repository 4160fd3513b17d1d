/*
 * accounts — POST /api/v1/auth/login, POST /api/v1/auth/logout,
 * GET /api/v1/auth/me, and the helpers the other account modules share.
 *
 * Login throttling (table login_failures): failures are counted per user name
 * ("user:<name>", also for names that do not exist, so the answer never tells
 * which exist) and per client address ("ip:<addr>"). A key that reaches its
 * limit within login_lockout_s is refused with 429 for login_lockout_s, even
 * with the right password. The per-user limit is login_max_failures; the
 * per-address limit is 20 times that, so one address (a NAT, a test suite,
 * a classroom behind one proxy) can still log in many people while a single
 * name cannot be guessed at. Each failure also waits 100 ms per recent failure
 * of that name (at most 500 ms), slowing a guesser down before the lockout.
 *
 * Constant work: an unknown or disabled user name is verified against a dummy
 * yescrypt hash, so the answer takes as long as a wrong password does.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accounts.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "password.h"

#define IP_FAILURE_FACTOR 20
#define STR_(x)           #x
#define STR(x)            STR_(x)

/* ---- shared helpers ---- */

json_t *acct_str_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

json_t *acct_user_json(PGresult *res, int row, int c)
{
    return json_pack(
        "{s:s, s:s, s:s, s:{s:I, s:f, s:I}, s:o, s:b}", "id", PQgetvalue(res, row, c), "username",
        PQgetvalue(res, row, c + 1), "role", PQgetvalue(res, row, c + 2), "quota", "instances",
        (json_int_t)strtoll(PQgetvalue(res, row, c + 3), NULL, 10), "cpus",
        strtod(PQgetvalue(res, row, c + 4), NULL), "memory_mb",
        (json_int_t)strtoll(PQgetvalue(res, row, c + 5), NULL, 10), "created_at",
        acct_str_or_null(res, row, c + 6), "disabled", PQgetvalue(res, row, c + 7)[0] == 't');
}

const char *acct_unknown_field(json_t *obj, const char *const allowed[])
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok)
            return key;
    }
    return NULL;
}

json_t *acct_body(struct req *r, PGconn *pg, const char *action, const char *target_type,
                  const char *target_id, const char *const allowed[])
{
    json_t *body = req_json(r);
    const char *bad;
    if (!body) {
        if (audit_write(pg, r, action, target_type, target_id, "invalid", NULL) < 0)
            log_warn("audit row not written");
        return NULL;
    }
    if ((bad = acct_unknown_field(body, allowed))) {
        audit_refuse(r, pg, action, target_type, target_id, "invalid", 400, "invalid_field", bad,
                     "unknown field '%s'", bad);
        json_decref(body);
        return NULL;
    }
    return body;
}

int acct_lock_owned(struct req *r, PGconn *pg, const char *table_sql, const char *id,
                    bool (*allowed)(const struct actor *, enum authz_action, const char *),
                    const char *action, const char *target_type, const char *what,
                    char owner[37])
{
    const char *p[1] = {id};
    PGresult *res;

    owner[0] = '\0';
    if (!valid_uuid(id)) {
        audit_refuse(r, pg, action, target_type, NULL, "not_found", 404, "not_found", NULL,
                     "no such %s", what);
        return -1;
    }
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return -1;
    }
    res = PQexecParams(pg, table_sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return -1;
    }
    if (PQntuples(res) == 1)
        util_strlcpy(owner, PQgetvalue(res, 0, 0), 37);
    PQclear(res);
    /* someone else's row answers like a missing one */
    if (!owner[0] || !allowed(&r->actor, ACT_DELETE, owner)) {
        acct_exec(pg, "ROLLBACK");
        audit_refuse(r, pg, action, target_type, id, owner[0] ? "denied" : "not_found", 404,
                     "not_found", NULL, "no such %s", what);
        return -1;
    }
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

bool acct_limit(struct req *r, long def, long max, long *limit)
{
    char buf[32];

    *limit = def;
    if (!req_query(r, "limit", buf, sizeof(buf)))
        return true;
    if (!util_parse_long(buf, 1, max, limit)) {
        http_send_error(r, 400, "invalid_field", "limit",
                        "limit must be a whole number from 1 to %ld", max);
        return false;
    }
    return true;
}

bool acct_exec(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("%s failed: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

PGconn *acct_db(struct req *r)
{
    PGconn *pg = db_conn(r->th);
    if (!pg)
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
    return pg;
}

const char *acct_sqlstate(const PGresult *res)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s ? s : "";
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
    if ((bad = acct_unknown_field(q, allowed))) {
        snprintf(msg, msglen, "unknown quota field '%.60s'", bad);
        return -1;
    }
    if ((v = json_object_get(q, "instances"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > QUOTA_MAX_INSTANCES) {
            *field = "quota.instances";
            snprintf(msg, msglen, "quota.instances must be a whole number from 0 to %d",
                     QUOTA_MAX_INSTANCES);
            return -1;
        }
        out->has_instances = true;
        snprintf(out->instances, sizeof(out->instances), "%lld", (long long)json_integer_value(v));
    }
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
    if ((v = json_object_get(q, "memory_mb"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > QUOTA_MAX_MEMORY_MB) {
            *field = "quota.memory_mb";
            snprintf(msg, msglen, "quota.memory_mb must be a whole number from 0 to %ld",
                     QUOTA_MAX_MEMORY_MB);
            return -1;
        }
        out->has_memory = true;
        snprintf(out->memory_mb, sizeof(out->memory_mb), "%lld", (long long)json_integer_value(v));
    }
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

/* ---- login ---- */

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[PASSWORD_HASH_MAX];

static void dummy_init(void)
{
    char pw[25];
    if (password_generate(pw) < 0 || password_hash(pw, dummy_hash, sizeof(dummy_hash)) < 0)
        util_strlcpy(dummy_hash,
                     "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
                     sizeof(dummy_hash));
    explicit_bzero(pw, sizeof(pw));
}

static void session_cookie(char *out, size_t size, const struct req *r, const char *value,
                           long max_age)
{
    bool secure =
        api_cfg.cookie_secure == 1 || (api_cfg.cookie_secure == 0 && auth_request_https(r));
    snprintf(out, size,
             "Set-Cookie: berth_session=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%ld%s\r\n",
             value, max_age, secure ? "; Secure" : "");
}

/* Count one failure for key; returns the failures in the current window, or -1. */
static long count_failure(PGconn *pg, const char *key, long max)
{
    char smax[32], slock[32];
    const char *p[3] = {key, smax, slock};
    PGresult *res;
    long n = -1;

    snprintf(smax, sizeof(smax), "%ld", max);
    snprintf(slock, sizeof(slock), "%ld", api_cfg.login_lockout_s);
    res = PQexecParams(
        pg,
        "INSERT INTO login_failures AS f (key, failures, window_start, locked_until)"
        " VALUES ($1, 1, now(), CASE WHEN 1 >= $2::int THEN now() + make_interval(secs => $3::int) "
        "END)"
        " ON CONFLICT (key) DO UPDATE SET"
        "  failures = CASE WHEN f.window_start < now() - make_interval(secs => $3::int)"
        "             THEN 1 ELSE f.failures + 1 END,"
        "  window_start = CASE WHEN f.window_start < now() - make_interval(secs => $3::int)"
        "             THEN now() ELSE f.window_start END,"
        "  locked_until = CASE WHEN (CASE WHEN f.window_start < now() - make_interval(secs => "
        "$3::int)"
        "             THEN 1 ELSE f.failures + 1 END) >= $2::int"
        "             THEN now() + make_interval(secs => $3::int) ELSE f.locked_until END"
        " RETURNING failures",
        3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    else
        log_warn("login failure not counted: %s", PQresultErrorMessage(res));
    PQclear(res);
    return n;
}

static json_t *login_details(const char *username, const char *why)
{
    json_t *d = json_pack("{s:s}", "reason", why);
    if (username && valid_name(username))
        json_object_set_new(d, "username", json_string(username));
    return d;
}

static void login_audit(PGconn *pg, struct req *r, const char *target_id, const char *outcome,
                        json_t *details)
{
    if (audit_write(pg, r, "auth.login", "user", target_id, outcome, details) < 0)
        log_warn("login audit row not written");
    json_decref(details);
}

void accounts_login(struct req *r)
{
    static const char *const allowed[] = {"username", "password", NULL};
    PGconn *pg = acct_db(r);
    json_t *body, *ju, *jp;
    const char *username, *password, *bad;
    char ukey[64], ikey[128], *hash_copy = NULL;
    const char *p[6];
    PGresult *res = NULL;
    bool found = false, disabled = false, ok;
    char uid[37] = "", token[65], thash[65], csrf[65], cookie[129], oldhash[65], hdr[256];
    char smax[32], sidle[32], slock[32];

    if (!pg)
        return;
    if (!auth_origin_ok(r)) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "denied", 403, "forbidden", NULL,
                     "cross-origin request refused: the Origin is not this server");
        return;
    }
    body = req_json(r);
    if (!body) {
        login_audit(pg, r, NULL, "invalid",
                    json_pack("{s:s}", "reason", "body is not a JSON object"));
        return;
    }
    if ((bad = acct_unknown_field(body, allowed))) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 400, "invalid_field", bad,
                     "unknown field '%s'", bad);
        goto out;
    }
    ju = json_object_get(body, "username");
    jp = json_object_get(body, "password");
    if (!json_is_string(ju)) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 400, "invalid_field", "username",
                     "username must be a string");
        goto out;
    }
    if (!json_is_string(jp)) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 400, "invalid_field", "password",
                     "password must be a string");
        goto out;
    }
    username = json_string_value(ju);
    password = json_string_value(jp);
    if (json_string_length(ju) > 64) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 400, "invalid_field", "username",
                     "username is too long");
        goto out;
    }
    if (json_string_length(jp) > PASSWORD_MAX * 4) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 400, "invalid_field", "password",
                     "password is too long");
        goto out;
    }
    /* Names that break the name rule cannot exist; they still cost a verify and
     * count against the address, so they look like any wrong name. */
    snprintf(ukey, sizeof(ukey), "user:%s", valid_name(username) ? username : "-invalid-");
    snprintf(ikey, sizeof(ikey), "ip:%s", r->ip);

    /* Throttled? The same answer for existing and unknown names. */
    p[0] = ukey;
    p[1] = ikey;
    res = PQexecParams(
        pg,
        "SELECT ceil(extract(epoch FROM max(locked_until) - now()))::bigint FROM login_failures"
        " WHERE key IN ($1, $2) AND locked_until > now() HAVING count(*) > 0",
        2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    if (PQntuples(res) > 0) {
        /* The error shape plus Retry-After, so clients know when to come back. */
        long wait = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        char retry[64];
        static const char msg[] = "{\"error\":{\"code\":\"rate_limited\",\"message\":"
                                  "\"too many failed logins: try again in a few minutes\"}}";
        PQclear(res);
        res = NULL;
        login_audit(pg, r, NULL, "throttled", login_details(username, "too many failed logins"));
        snprintf(retry, sizeof(retry), "Retry-After: %ld\r\n", wait > 0 ? wait : 1);
        http_send_raw(r, 429, "application/json", retry, msg, sizeof(msg) - 1);
        goto out;
    }
    PQclear(res);

    p[0] = username;
    res = PQexecParams(pg, "SELECT id, password_hash, disabled FROM users WHERE username = $1", 1,
                       NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    if (PQntuples(res) == 1) {
        found = true;
        util_strlcpy(uid, PQgetvalue(res, 0, 0), sizeof(uid));
        hash_copy = strdup(PQgetvalue(res, 0, 1));
        disabled = PQgetvalue(res, 0, 2)[0] == 't';
    }
    PQclear(res);
    res = NULL;
    pthread_once(&dummy_once, dummy_init);
    ok = password_verify(password, hash_copy ? hash_copy : dummy_hash) && found && !disabled &&
         json_string_length(jp) <= PASSWORD_MAX;

    if (!ok) {
        long n = 0;
        if (acct_exec(pg, "BEGIN")) {
            n = valid_name(username) ? count_failure(pg, ukey, api_cfg.login_max_failures) : 0;
            (void)count_failure(pg, ikey, api_cfg.login_max_failures * IP_FAILURE_FACTOR);
            login_audit(pg, r, found ? uid : NULL, "denied",
                        login_details(username, "wrong user name or password"));
            if (!acct_exec(pg, "COMMIT"))
                acct_exec(pg, "ROLLBACK");
        }
        if (n > 0) {
            struct timespec ts = {0, (n < 5 ? n : 5) * 100L * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        http_send_error(r, 401, "unauthenticated", NULL, "wrong user name or password");
        goto out;
    }

    /* A fresh session id on every login; a session the client already had ends. */
    if (util_token(token) < 0 || util_token(csrf) < 0) {
        http_send_error(r, 500, "internal", NULL, "no random bytes for a session");
        goto out;
    }
    util_sha256_hex(token, strlen(token), thash);
    oldhash[0] = '\0';
    if (auth_cookie_value(r, "berth_session", cookie, sizeof(cookie)))
        util_sha256_hex(cookie, strlen(cookie), oldhash);
    snprintf(smax, sizeof(smax), "%ld", api_cfg.session_max_s);
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    p[0] = ukey;
    PQclear(
        PQexecParams(pg, "DELETE FROM login_failures WHERE key = $1", 1, NULL, p, NULL, NULL, 0));
    /* Housekeeping, a bounded bite per login: sessions past their absolute end
     * and failure counters whose window and lock are both over. */
    snprintf(slock, sizeof(slock), "%ld", api_cfg.login_lockout_s);
    p[0] = slock;
    PQclear(PQexec(pg, "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions"
                       " WHERE expires_at < now() LIMIT 100)"));
    PQclear(PQexecParams(pg,
                         "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures"
                         " WHERE window_start < now() - make_interval(secs => $1::int)"
                         " AND (locked_until IS NULL OR locked_until < now()) LIMIT 100)",
                         1, NULL, p, NULL, NULL, 0));
    snprintf(sidle, sizeof(sidle), "%ld", api_cfg.session_idle_s);
    p[0] = uid;
    p[1] = oldhash;
    p[2] = sidle;
    PQclear(PQexecParams(pg,
                         "DELETE FROM sessions WHERE token_hash = $2 OR (user_id = $1 AND"
                         " (expires_at < now() OR"
                         "  last_seen_at < now() - make_interval(secs => $3::int)))",
                         3, NULL, p, NULL, NULL, 0));
    p[0] = thash;
    p[1] = uid;
    p[2] = csrf;
    p[3] = smax;
    p[4] = r->ip;
    res = PQexecParams(pg,
                       "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, ip)"
                       " VALUES ($1, $2, $3, now() + make_interval(secs => $4::int), $5)",
                       5, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_warn("session not stored: %s", PQresultErrorMessage(res));
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the session could not be stored");
        goto out;
    }
    PQclear(res);
    p[0] = uid;
    res = PQexecParams(pg, "SELECT " USER_COLS " FROM users u WHERE u.id = $1", 1, NULL, p, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    r->actor.authenticated = true;
    util_strlcpy(r->actor.user_id, uid, sizeof(r->actor.user_id));
    util_strlcpy(r->actor.username, username, sizeof(r->actor.username));
    if (!auth_role_parse(PQgetvalue(res, 0, 2), &r->actor.role))
        r->actor.role = ROLE_VIEWER;
    login_audit(pg, r, uid, "ok", json_pack("{s:s}", "via", "password"));
    if (!acct_exec(pg, "COMMIT")) {
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the session could not be stored");
        goto out;
    }
    {
        json_t *ans =
            json_pack("{s:o, s:s}", "user", acct_user_json(res, 0, 0), "csrf_token", csrf);
        char *text = json_dumps(ans, JSON_COMPACT);
        json_decref(ans);
        session_cookie(hdr, sizeof(hdr), r, token, api_cfg.session_max_s);
        if (text)
            http_send_raw(r, 200, "application/json", hdr, text, strlen(text));
        else
            http_send_error(r, 500, "internal", NULL, "out of memory");
        free(text);
    }
out:
    PQclear(res);
    if (hash_copy) {
        explicit_bzero(hash_copy, strlen(hash_copy));
        free(hash_copy);
    }
    explicit_bzero(token, sizeof(token));
    json_decref(body);
}

void accounts_logout(struct req *r)
{
    char cookie[129], hash[65], hdr[256];
    const char *p[1] = {hash};
    PGconn *pg;

    if (auth_require(r) < 0)
        return;
    pg = acct_db(r);
    if (!pg)
        return;
    if (!r->actor.via_cookie || !auth_cookie_value(r, "berth_session", cookie, sizeof(cookie))) {
        audit_refuse(r, pg, "auth.logout", "user", r->actor.user_id, "invalid", 400, "bad_request",
                     NULL,
                     "logout ends a cookie session; revoke an API token with DELETE "
                     "/api/v1/tokens/{id}");
        return;
    }
    util_sha256_hex(cookie, strlen(cookie), hash);
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    PQclear(
        PQexecParams(pg, "DELETE FROM sessions WHERE token_hash = $1", 1, NULL, p, NULL, NULL, 0));
    if (audit_write(pg, r, "auth.logout", "user", r->actor.user_id, "ok", NULL) < 0 ||
        !acct_exec(pg, "COMMIT")) {
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the session could not be ended");
        return;
    }
    session_cookie(hdr, sizeof(hdr), r, "", 0);
    http_send_empty(r, 204, hdr);
}

void accounts_me(struct req *r)
{
    const char *p[1];
    PGconn *pg;
    PGresult *res;
    json_t *ans;

    if (auth_require(r) < 0)
        return;
    pg = acct_db(r);
    if (!pg)
        return;
    p[0] = r->actor.user_id;
    res = PQexecParams(pg, "SELECT " USER_COLS " FROM users u WHERE u.id = $1", 1, NULL, p, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        PQclear(res);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    ans = json_pack("{s:o}", "user", acct_user_json(res, 0, 0));
    PQclear(res);
    if (r->actor.via_cookie)
        json_object_set_new(ans, "csrf_token", json_string(r->actor.csrf));
    http_send_json(r, 200, ans);
}
