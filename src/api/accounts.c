/*
 * accounts — POST /api/v1/auth/login, POST /api/v1/auth/logout,
 * GET /api/v1/auth/me, and the helpers the other account modules share.
 *
 * Login throttling (table login_failures, sql/008): failures are counted per
 * (client address, user name) pair -- "pair:<addr>|<name>", also for names
 * that do not exist, so the answer never tells which exist -- and per client
 * address ("ip:<addr>", 20 times looser, against spraying many names from one
 * address). From login_max_failures failures on, a key waits a delay after
 * each further failure: 1 s, 2 s, 4 s ... at most login_lockout_s
 * (acct_throttle_delay). While it runs, logins of that pair (or address) are
 * 429 rate_limited with Retry-After, right password or not; afterwards one
 * more try is allowed. A name is never locked from everywhere: a right
 * password from another address always gets in. A key's count is forgotten
 * THROTTLE_FORGET_FACTOR * login_lockout_s after its last failure; a
 * successful login clears its pair. The client address is the one
 * auth_client_addr() believes (X-Forwarded-For only from trusted_proxies).
 * Each failure also waits 100 ms per recent failure of the pair (at most
 * 500 ms), slowing a guesser down before the delays start.
 *
 * Login takes only JSON bodies (Content-Type: application/json, else 415):
 * a cross-site form cannot post one without a CORS preflight.
 *
 * Constant work: an unknown or disabled user name is verified against a dummy
 * yescrypt hash, so the answer takes as long as a wrong password does.
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

#define IP_FAILURE_FACTOR      20
#define THROTTLE_FORGET_FACTOR 4
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

long acct_throttle_delay(long failures, long threshold, long cap)
{
    long d;
    if (failures < threshold || threshold < 1 || cap < 1)
        return 0;
    if (failures - threshold >= 30)
        return cap;
    d = 1L << (failures - threshold);
    return d < cap ? d : cap;
}

bool acct_json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
        return false;
    ct += sizeof(want) - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Count one failure for key and start its delay; the failures counted, or -1. */
static long count_failure(PGconn *pg, const char *key, long threshold)
{
    char sforget[32], sdelay[32];
    const char *p[2] = {key, sforget};
    PGresult *res;
    long n = -1, delay;

    snprintf(sforget, sizeof(sforget), "%ld", api_cfg.login_lockout_s * THROTTLE_FORGET_FACTOR);
    res = PQexecParams(
        pg,
        "INSERT INTO login_failures AS f (key, failures, window_start, last_failure_at)"
        " VALUES ($1, 1, now(), now())"
        " ON CONFLICT (key) DO UPDATE SET"
        "  failures = CASE WHEN f.last_failure_at < now() - make_interval(secs => $2::int)"
        "             THEN 1 ELSE f.failures + 1 END,"
        "  window_start = CASE WHEN f.last_failure_at < now() - make_interval(secs => $2::int)"
        "             THEN now() ELSE f.window_start END,"
        "  last_failure_at = now()"
        " RETURNING failures",
        2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    else
        log_warn("login failure not counted: %s", PQresultErrorMessage(res));
    PQclear(res);
    delay = acct_throttle_delay(n, threshold, api_cfg.login_lockout_s);
    if (delay > 0) {
        snprintf(sdelay, sizeof(sdelay), "%ld", delay);
        p[1] = sdelay;
        PQclear(PQexecParams(pg,
                             "UPDATE login_failures SET locked_until = now() +"
                             " make_interval(secs => $2::int) WHERE key = $1",
                             2, NULL, p, NULL, NULL, 0));
    }
    return n;
}

/* The throttle keys of (addr, username). */
static void throttle_keys(const char *addr, const char *username, char *pkey, size_t psize,
                          char *ikey, size_t isize)
{
    snprintf(pkey, psize, "pair:%s|%s", addr, valid_name(username) ? username : "-invalid-");
    snprintf(ikey, isize, "ip:%s", addr);
}

/* 1 and *wait (seconds) when the pair or the address is waiting, 0 when not, -1 db error. */
static int throttled(PGconn *pg, const char *pkey, const char *ikey, long *wait)
{
    const char *p[2] = {pkey, ikey};
    PGresult *res = PQexecParams(
        pg,
        "SELECT ceil(extract(epoch FROM max(locked_until) - now()))::bigint FROM login_failures"
        " WHERE key IN ($1, $2) AND locked_until > now() HAVING count(*) > 0",
        2, NULL, p, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    rc = PQntuples(res) > 0;
    if (rc)
        *wait = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

/* 429 rate_limited in the error shape plus Retry-After. */
static void send_throttled(struct req *r, long wait)
{
    char retry[64];
    static const char msg[] = "{\"error\":{\"code\":\"rate_limited\",\"message\":"
                              "\"too many failed logins: try again later (see Retry-After)\"}}";
    snprintf(retry, sizeof(retry), "Retry-After: %ld\r\n", wait > 0 ? wait : 1);
    http_send_raw(r, 429, "application/json", retry, msg, sizeof(msg) - 1);
}

/* Count a failed password of (addr, username) on both keys, inside the caller's
 * transaction; the pair's count. */
static long count_failures(PGconn *pg, const char *username, const char *pkey, const char *ikey)
{
    long n = count_failure(pg, pkey, api_cfg.login_max_failures);
    (void)count_failure(pg, ikey, api_cfg.login_max_failures * IP_FAILURE_FACTOR);
    (void)username;
    return n;
}

static void failure_pause(long n)
{
    if (n > 0) {
        struct timespec ts = {0, (n < 5 ? n : 5) * 100L * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
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
    json_t *body = NULL, *ju, *jp;
    const char *username, *password, *bad, *remote_ip = r->ip;
    char pkey[160], ikey[96], *hash_copy = NULL;
    const char *p[6];
    PGresult *res = NULL;
    bool found = false, disabled = false, ok;
    char uid[37] = "", token[65], thash[65], csrf[65], cookie[129], oldhash[65], hdr[256];
    char smax[32], sidle[32], sforget[32];
    long wait = 0;
    int thr;

    if (!pg)
        return;
    /* r->ip is the client as trusted_proxies lets us believe it (server.c):
     * the throttle's key, this request's audit rows and the session's ip */
    if (!auth_origin_ok(r)) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "denied", 403, "forbidden", NULL,
                     "cross-origin request refused: the Origin is not this server");
        goto out;
    }
    if (!acct_json_content_type(req_param(r, "CONTENT_TYPE"))) {
        audit_refuse(r, pg, "auth.login", NULL, NULL, "invalid", 415, "bad_request", NULL,
                     "login takes a JSON body: send Content-Type: application/json");
        goto out;
    }
    body = req_json(r);
    if (!body) {
        login_audit(pg, r, NULL, "invalid",
                    json_pack("{s:s}", "reason", "body is not a JSON object"));
        goto out;
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
    throttle_keys(r->ip, username, pkey, sizeof(pkey), ikey, sizeof(ikey));

    /* Throttled? The same answer for existing and unknown names. */
    thr = throttled(pg, pkey, ikey, &wait);
    if (thr < 0) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    if (thr > 0) {
        login_audit(pg, r, NULL, "throttled", login_details(username, "too many failed logins"));
        send_throttled(r, wait);
        goto out;
    }

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
            n = count_failures(pg, username, pkey, ikey);
            login_audit(pg, r, found ? uid : NULL, "denied",
                        login_details(username, "wrong user name or password"));
            if (!acct_exec(pg, "COMMIT"))
                acct_exec(pg, "ROLLBACK");
        }
        failure_pause(n);
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
    p[0] = pkey;
    PQclear(
        PQexecParams(pg, "DELETE FROM login_failures WHERE key = $1", 1, NULL, p, NULL, NULL, 0));
    /* Housekeeping, a bounded bite per login: sessions past their absolute end
     * and failure counters that are forgotten and no longer waiting. */
    snprintf(sforget, sizeof(sforget), "%ld", api_cfg.login_lockout_s * THROTTLE_FORGET_FACTOR);
    p[0] = sforget;
    PQclear(PQexec(pg, "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions"
                       " WHERE expires_at < now() LIMIT 100)"));
    PQclear(PQexecParams(pg,
                         "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures"
                         " WHERE last_failure_at < now() - make_interval(secs => $1::int)"
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
    r->ip = remote_ip;
    PQclear(res);
    if (hash_copy) {
        explicit_bzero(hash_copy, strlen(hash_copy));
        free(hash_copy);
    }
    explicit_bzero(token, sizeof(token));
    json_decref(body);
}

/*
 * POST /api/v1/auth/password {current_password, new_password, revoke_tokens?}:
 * any signed-in user changes their own password. The current password is
 * required and its failures count like failed logins of this (address, name)
 * pair, so a borrowed session is no password oracle. Every other session of
 * the user ends; revoke_tokens: true also deletes all of their API tokens.
 */
void accounts_password(struct req *r)
{
    static const char *const allowed[] = {"current_password", "new_password", "revoke_tokens",
                                          NULL};
    const char *why, *p[3], *remote_ip = r->ip;
    char hash[PASSWORD_HASH_MAX] = "", pkey[160], ikey[96], chash[65] = "";
    char cookie[129];
    json_t *body = NULL, *cur, *nw, *rv, *d;
    bool revoke = false, okpw;
    PGconn *pg;
    PGresult *res = NULL;
    long wait = 0, ntok = 0, nses = 0;
    int thr;

    if (auth_require(r) < 0 || !(pg = acct_db(r)))
        return;
    if (!(body = acct_body(r, pg, "auth.password", "user", r->actor.user_id, allowed)))
        goto out;
    cur = json_object_get(body, "current_password");
    nw = json_object_get(body, "new_password");
    rv = json_object_get(body, "revoke_tokens");
    if (!json_is_string(cur)) {
        audit_refuse(r, pg, "auth.password", "user", r->actor.user_id, "invalid", 400,
                     "invalid_field", "current_password", "current_password must be a string");
        goto out;
    }
    if ((why = acct_check_password(nw))) {
        audit_refuse(r, pg, "auth.password", "user", r->actor.user_id, "invalid", 400,
                     "invalid_field", "new_password", "new_%s", why);
        goto out;
    }
    if (rv && !json_is_boolean(rv)) {
        audit_refuse(r, pg, "auth.password", "user", r->actor.user_id, "invalid", 400,
                     "invalid_field", "revoke_tokens", "revoke_tokens must be true or false");
        goto out;
    }
    revoke = json_is_true(rv);
    throttle_keys(r->ip, r->actor.username, pkey, sizeof(pkey), ikey, sizeof(ikey));
    thr = throttled(pg, pkey, ikey, &wait);
    if (thr < 0) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    if (thr > 0) {
        if (audit_write(pg, r, "auth.password", "user", r->actor.user_id, "throttled", NULL) < 0)
            log_warn("audit row not written");
        send_throttled(r, wait);
        goto out;
    }
    p[0] = r->actor.user_id;
    res = PQexecParams(pg, "SELECT password_hash FROM users WHERE id = $1", 1, NULL, p, NULL,
                       NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    okpw = json_string_length(cur) <= PASSWORD_MAX * 4 &&
           password_verify(json_string_value(cur), PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (!okpw) {
        long n = 0;
        if (acct_exec(pg, "BEGIN")) {
            n = count_failures(pg, r->actor.username, pkey, ikey);
            if (!acct_exec(pg, "COMMIT"))
                acct_exec(pg, "ROLLBACK");
        }
        failure_pause(n);
        audit_refuse(r, pg, "auth.password", "user", r->actor.user_id, "denied", 403, "forbidden",
                     "current_password", "the current password is wrong");
        goto out;
    }
    if (password_hash(json_string_value(nw), hash, sizeof(hash)) < 0) {
        http_send_error(r, 500, "internal", NULL, "the password could not be hashed");
        goto out;
    }
    if (r->actor.via_cookie && auth_cookie_value(r, "berth_session", cookie, sizeof(cookie)))
        util_sha256_hex(cookie, strlen(cookie), chash);
    if (!acct_exec(pg, "BEGIN")) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    p[1] = hash;
    res = PQexecParams(pg,
                       "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"
                       " AND NOT disabled",
                       2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0) {
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the password could not be stored");
        goto out;
    }
    PQclear(res);
    /* every other session ends: whoever else knew the old password is out */
    p[1] = chash;
    res = PQexecParams(pg, "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2", 2,
                       NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        nses = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    res = NULL;
    if (revoke) {
        res = PQexecParams(pg, "DELETE FROM api_tokens WHERE user_id = $1", 1, NULL, p, NULL,
                           NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            acct_exec(pg, "ROLLBACK");
            http_send_error(r, 503, "unavailable", NULL, "the tokens could not be revoked");
            goto out;
        }
        ntok = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        res = NULL;
    }
    PQclear(PQexecParams(pg, "DELETE FROM login_failures WHERE key = $1", 1, NULL,
                         (const char *const[]){pkey}, NULL, NULL, 0));
    d = json_pack("{s:s, s:b, s:I, s:I}", "password", "changed", "revoke_tokens", revoke,
                  "tokens_revoked", (json_int_t)ntok, "sessions_ended", (json_int_t)nses);
    if (audit_write(pg, r, "auth.password", "user", r->actor.user_id, "ok", d) < 0 ||
        !acct_exec(pg, "COMMIT")) {
        json_decref(d);
        acct_exec(pg, "ROLLBACK");
        http_send_error(r, 503, "unavailable", NULL, "the change could not be stored");
        goto out;
    }
    json_decref(d);
    http_send_json(r, 200,
                   json_pack("{s:I, s:I}", "tokens_revoked", (json_int_t)ntok, "sessions_ended",
                             (json_int_t)nses));
out:
    r->ip = remote_ip;
    explicit_bzero(hash, sizeof(hash));
    PQclear(res);
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
