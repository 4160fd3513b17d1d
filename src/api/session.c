/*
 * session — the signed-in user's own endpoints (API.md "Accounts"):
 *   POST /api/v1/auth/login      {username, password} -> 200 {user, csrf_token} + cookie
 *   POST /api/v1/auth/logout     ends the cookie session
 *   GET  /api/v1/auth/me         who am I (and the session's CSRF token)
 *   POST /api/v1/auth/password   {current_password, new_password, revoke_tokens?}
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
    snprintf(retry, sizeof(retry), "Retry-After: %ld\r\n", wait > 0 ? wait : 1);
    http_send_error_with(r, 429, retry, "rate_limited",
                         "too many failed logins: try again later (see Retry-After)");
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
    PGconn *pg = req_db(r);
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
    audit_begin(r, "auth.login", NULL, NULL);
    /* r->ip is the client as trusted_proxies lets us believe it (server.c):
     * the throttle's key, this request's audit rows and the session's ip */
    if (!auth_origin_ok(r)) {
        refuse(r, 403, "forbidden", NULL, "cross-origin request refused: the Origin is not this server");
        goto out;
    }
    if (!acct_json_content_type(req_param(r, "CONTENT_TYPE"))) {
        refuse(r, 415, "bad_request", NULL, "login takes a JSON body: send Content-Type: application/json");
        goto out;
    }
    body = req_json(r);
    if (!body) {
        login_audit(pg, r, NULL, "invalid",
                    json_pack("{s:s}", "reason", "body is not a JSON object"));
        goto out;
    }
    if ((bad = req_unknown_field(body, allowed))) {
        refuse(r, 400, "invalid_field", bad, "unknown field '%s'", bad);
        goto out;
    }
    ju = json_object_get(body, "username");
    jp = json_object_get(body, "password");
    if (!json_is_string(ju)) {
        refuse(r, 400, "invalid_field", "username", "username must be a string");
        goto out;
    }
    if (!json_is_string(jp)) {
        refuse(r, 400, "invalid_field", "password", "password must be a string");
        goto out;
    }
    username = json_string_value(ju);
    password = json_string_value(jp);
    if (json_string_length(ju) > 64) {
        refuse(r, 400, "invalid_field", "username", "username is too long");
        goto out;
    }
    if (json_string_length(jp) > PASSWORD_MAX * 4) {
        refuse(r, 400, "invalid_field", "password", "password is too long");
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
    if (!(res = req_q(r, "SELECT id, password_hash, disabled FROM users WHERE username = $1", 1,
                      p)))
        goto out;
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
        if (db_exec(pg, "BEGIN")) {
            n = count_failures(pg, username, pkey, ikey);
            login_audit(pg, r, found ? uid : NULL, "denied",
                        login_details(username, "wrong user name or password"));
            if (!db_exec(pg, "COMMIT"))
                db_exec(pg, "ROLLBACK");
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
    if (!req_begin(r))
        goto out;
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
    if (!(res = req_q(r,
                      "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, ip)"
                      " VALUES ($1, $2, $3, now() + make_interval(secs => $4::int), $5)",
                      5, p)))
        goto out;
    PQclear(res);
    p[0] = uid;
    if (!(res = req_q(r, "SELECT " USER_COLS " FROM users u WHERE u.id = $1", 1, p)))
        goto out;
    if (PQntuples(res) != 1) { /* deleted meanwhile */
        req_unavailable(r, "the session could not be stored");
        goto out;
    }
    r->actor.authenticated = true;
    util_strlcpy(r->actor.user_id, uid, sizeof(r->actor.user_id));
    util_strlcpy(r->actor.username, username, sizeof(r->actor.username));
    if (!auth_role_parse(PQgetvalue(res, 0, 2), &r->actor.role))
        r->actor.role = ROLE_VIEWER;
    login_audit(pg, r, uid, "ok", json_pack("{s:s}", "via", "password"));
    if (!req_commit(r))
        goto out;
    {
        json_t *ans =
            json_pack("{s:o, s:s}", "user", acct_user_json(res, 0, 0), "csrf_token", csrf);
        session_cookie(hdr, sizeof(hdr), r, token, api_cfg.session_max_s);
        http_send_json_with(r, 200, hdr, ans);
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

    if (!(pg = req_change(r, "auth.password", "user", r->actor.user_id)))
        return;
    if (!(body = req_body(r, allowed)))
        goto out;
    cur = json_object_get(body, "current_password");
    nw = json_object_get(body, "new_password");
    rv = json_object_get(body, "revoke_tokens");
    if (!json_is_string(cur)) {
        refuse(r, 400, "invalid_field", "current_password", "current_password must be a string");
        goto out;
    }
    if ((why = acct_check_password(nw))) {
        refuse(r, 400, "invalid_field", "new_password", "new_%s", why);
        goto out;
    }
    if (rv && !json_is_boolean(rv)) {
        refuse(r, 400, "invalid_field", "revoke_tokens", "revoke_tokens must be true or false");
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
        if (audit_row(r, "throttled", NULL) < 0)
            log_warn("audit row not written");
        send_throttled(r, wait);
        goto out;
    }
    p[0] = r->actor.user_id;
    if (!(res = req_q(r, "SELECT password_hash FROM users WHERE id = $1", 1, p)))
        goto out;
    if (PQntuples(res) != 1) { /* deleted meanwhile: auth_require saw it a moment ago */
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        goto out;
    }
    okpw = json_string_length(cur) <= PASSWORD_MAX * 4 &&
           password_verify(json_string_value(cur), PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (!okpw) {
        long n = 0;
        if (db_exec(pg, "BEGIN")) {
            n = count_failures(pg, r->actor.username, pkey, ikey);
            if (!db_exec(pg, "COMMIT"))
                db_exec(pg, "ROLLBACK");
        }
        failure_pause(n);
        refuse(r, 403, "forbidden", "current_password", "the current password is wrong");
        goto out;
    }
    if (password_hash(json_string_value(nw), hash, sizeof(hash)) < 0) {
        http_send_error(r, 500, "internal", NULL, "the password could not be hashed");
        goto out;
    }
    if (r->actor.via_cookie && auth_cookie_value(r, "berth_session", cookie, sizeof(cookie)))
        util_sha256_hex(cookie, strlen(cookie), chash);
    p[1] = hash;
    if (!req_begin(r) ||
        !(res = req_q(r,
                      "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"
                      " AND NOT disabled",
                      2, p)))
        goto out;
    if (strcmp(PQcmdTuples(res), "1") != 0) { /* disabled meanwhile */
        req_unavailable(r, "the password could not be stored");
        goto out;
    }
    PQclear(res);
    /* every other session ends: whoever else knew the old password is out */
    p[1] = chash;
    if (!(res = req_q(r, "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2", 2, p)))
        goto out;
    nses = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    res = NULL;
    if (revoke) {
        if (!(res = req_q(r, "DELETE FROM api_tokens WHERE user_id = $1", 1, p)))
            goto out;
        ntok = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        res = NULL;
    }
    if (!(res = req_q(r, "DELETE FROM login_failures WHERE key = $1", 1,
                      (const char *const[]){pkey})))
        goto out;
    PQclear(res);
    res = NULL;
    d = json_pack("{s:s, s:b, s:I, s:I}", "password", "changed", "revoke_tokens", revoke,
                  "tokens_revoked", (json_int_t)ntok, "sessions_ended", (json_int_t)nses);
    if (!audit_commit(r, d))
        goto out;
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
    PGresult *res;

    if (!req_change(r, "auth.logout", "user", r->actor.user_id))
        return;
    if (!r->actor.via_cookie || !auth_cookie_value(r, "berth_session", cookie, sizeof(cookie))) {
        refuse(r, 400, "bad_request", NULL,
               "logout ends a cookie session; revoke an API token with DELETE "
               "/api/v1/tokens/{id}");
        return;
    }
    util_sha256_hex(cookie, strlen(cookie), hash);
    if (!req_begin(r) || !(res = req_q(r, "DELETE FROM sessions WHERE token_hash = $1", 1, p)))
        return;
    PQclear(res);
    if (!audit_commit(r, NULL))
        return;
    session_cookie(hdr, sizeof(hdr), r, "", 0);
    http_send_empty(r, 204, hdr);
}

void accounts_me(struct req *r)
{
    const char *p[1];
    PGresult *res;
    json_t *ans;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    p[0] = r->actor.user_id;
    if (!(res = req_q(r, "SELECT " USER_COLS " FROM users u WHERE u.id = $1", 1, p)))
        return;
    if (PQntuples(res) != 1) { /* deleted since auth_require */
        PQclear(res);
        http_send_error(r, 401, "unauthenticated", NULL, "the account no longer exists");
        return;
    }
    ans = json_pack("{s:o}", "user", acct_user_json(res, 0, 0));
    PQclear(res);
    if (r->actor.via_cookie)
        json_object_set_new(ans, "csrf_token", json_string(r->actor.csrf));
    http_send_json(r, 200, ans);
}
