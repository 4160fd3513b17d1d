/*
 * auth — authentication of every API request (auth.h); the authorisation
 * rules are authz.c's.
 *
 * Authentication: `Authorization: Bearer <api token>` or the `berth_session`
 * cookie. Only SHA-256 hashes of either are stored. A session ends after
 * session_idle_s without use or session_max_s after login, whichever comes
 * first. last_seen_at / last_used_at are written at most once a minute per
 * session or token, so a busy client costs one read per request, not a write.
 *
 * Unsafe methods (POST, PUT, PATCH, DELETE): a present Origin that is not this
 * server's own is refused for every kind of credential; cookie sessions must
 * also carry X-CSRF-Token equal to the session's token. Refusals of unsafe
 * requests leave an audit row.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "berth/workspace.h"

#define TOUCH_INTERVAL_S "60"

bool auth_method_unsafe(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

/* ---- who is the client, over which scheme (trusted_proxies) ---- */

bool auth_addr_normalize(const char *s, size_t n, char *out, size_t size)
{
    char buf[INET6_ADDRSTRLEN + 1], txt[INET6_ADDRSTRLEN];
    unsigned char a[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, a) == 1) {
        if (!inet_ntop(AF_INET, a, txt, sizeof(txt)))
            return false;
    } else if (!strchr(buf, '%') && inet_pton(AF_INET6, buf, a) == 1) {
        /* an IPv4 peer on a dual-stack socket is that IPv4 address */
        if (memcmp(a, mapped, 12) == 0 ? !inet_ntop(AF_INET, a + 12, txt, sizeof(txt))
                                       : !inet_ntop(AF_INET6, a, txt, sizeof(txt)))
            return false;
    } else {
        return false;
    }
    if (strlen(txt) >= size)
        return false;
    memcpy(out, txt, strlen(txt) + 1);
    return true;
}

bool auth_client_addr_of(const char *remote, const char *xff, const char *trusted, char *out,
                         size_t size)
{
    const char *end;
    bool from_header = false;

    if (!remote || !auth_addr_normalize(remote, strlen(remote), out, size))
        util_strlcpy(out, remote ? remote : "", size);
    if (!remote || !xff || !*xff || !trusted || !*trusted ||
        !config_addr_list_match(trusted, remote, strlen(remote)))
        return false;
    /* Right to left: each hop was appended by the one after it; the first
     * address that is not a trusted proxy is the client. Anything that does
     * not parse ends the walk at the last hop we could believe. */
    end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end, *a, *b;
        while (start > xff && start[-1] != ',')
            start--;
        a = start;
        b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (!auth_addr_normalize(a, (size_t)(b - a), out, size))
            break;
        from_header = true;
        if (!config_addr_list_match(trusted, a, (size_t)(b - a)))
            break;
        end = start > xff ? start - 1 : xff;
    }
    return from_header;
}

const char *auth_client_addr(const struct req *r, char *out, size_t size)
{
    const char *remote = req_param(r, "REMOTE_ADDR");
    (void)auth_client_addr_of(remote ? remote : "", req_param(r, "HTTP_X_FORWARDED_FOR"),
                              api_cfg.trusted_proxies, out, size);
    return out;
}

bool auth_https_of(const char *remote, const char *xfp, const char *https, const char *scheme,
                   const char *trusted)
{
    if (remote && xfp && *xfp && trusted && *trusted &&
        config_addr_list_match(trusted, remote, strlen(remote))) {
        /* the last value: the one the nearest (trusted) proxy wrote */
        const char *v = strrchr(xfp, ',');
        size_t n;
        v = v ? v + 1 : xfp;
        while (*v == ' ' || *v == '\t')
            v++;
        n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        return n == 5 && strncasecmp(v, "https", 5) == 0;
    }
    if (https && *https && strcasecmp(https, "off") != 0)
        return true;
    return scheme && strcasecmp(scheme, "https") == 0;
}

bool auth_request_https(const struct req *r)
{
    return auth_https_of(req_param(r, "REMOTE_ADDR"), req_param(r, "HTTP_X_FORWARDED_PROTO"),
                         req_param(r, "HTTPS"), req_param(r, "REQUEST_SCHEME"),
                         api_cfg.trusted_proxies);
}

/* "scheme://host[:port]" of n bytes without a default port (80 for http, 443
 * for https): the length a comparison uses. */
static size_t origin_len(const char *s, size_t n)
{
    if (n > 3 && strncasecmp(s, "http://", 7) == 0 && strncmp(s + n - 3, ":80", 3) == 0)
        return n - 3;
    if (n > 4 && strncasecmp(s, "https://", 8) == 0 && strncmp(s + n - 4, ":443", 4) == 0)
        return n - 4;
    return n;
}

bool auth_origin_matches(const char *origin, const char *public_url)
{
    size_t on, pn;

    if (!origin || !public_url)
        return false;
    if (strncasecmp(origin, "https://", 8) != 0 && strncasecmp(origin, "http://", 7) != 0)
        return false; /* "null", file:, other schemes */
    pn = strlen(public_url);
    while (pn > 0 && public_url[pn - 1] == '/')
        pn--;
    if (pn == 0)
        return false;
    on = origin_len(origin, strlen(origin));
    pn = origin_len(public_url, pn);
    /* scheme://host[:port] exactly: no path, no trailing characters */
    return on == pn && strncasecmp(origin, public_url, on) == 0;
}

bool auth_origin_ok(const struct req *r)
{
    const char *origin = req_param(r, "HTTP_ORIGIN");

    if (!origin || !*origin)
        return true; /* not a browser cross-site request; CSRF token still applies */
    return auth_origin_matches(origin, api_cfg.public_url);
}

bool auth_cookie_value(const struct req *r, const char *name, char *out, size_t size)
{
    const char *c = req_param(r, "HTTP_COOKIE");
    size_t nl = strlen(name);

    while (c && *c) {
        while (*c == ' ' || *c == ';')
            c++;
        const char *end = strchr(c, ';');
        size_t seg = end ? (size_t)(end - c) : strlen(c);
        if (seg > nl && strncmp(c, name, nl) == 0 && c[nl] == '=') {
            size_t vl = seg - nl - 1;
            while (vl > 0 && c[nl + 1 + vl - 1] == ' ')
                vl--;
            if (vl + 1 > size)
                return false;
            memcpy(out, c + nl + 1, vl);
            out[vl] = '\0';
            return true;
        }
        c = end;
    }
    return false;
}

int auth_cookie_count(const struct req *r, const char *name)
{
    int ns = 0, nw = 0;
    const char *c = req_param(r, "HTTP_COOKIE");
    if (!c || ws_cookie_strip(c, NULL, 0, &ns, &nw) < 0)
        return 0;
    return strcmp(name, WS_COOKIE) == 0 ? nw : ns;
}

const char *auth_role_name(enum role role)
{
    switch (role) {
    case ROLE_ADMIN:
        return "admin";
    case ROLE_DEVELOPER:
        return "developer";
    default:
        return "viewer";
    }
}

bool auth_role_parse(const char *s, enum role *out)
{
    if (!s)
        return false;
    if (strcmp(s, "admin") == 0)
        *out = ROLE_ADMIN;
    else if (strcmp(s, "developer") == 0)
        *out = ROLE_DEVELOPER;
    else if (strcmp(s, "viewer") == 0)
        *out = ROLE_VIEWER;
    else
        return false;
    return true;
}

static bool is_hex64(const char *s)
{
    size_t n = strlen(s);
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Refuse an authentication problem; unsafe requests leave an audit row. */
static int auth_refuse(struct req *r, PGconn *pg, int status, const char *reason, const char *msg)
{
    if (pg && auth_method_unsafe(r->method)) {
        json_t *d =
            json_pack("{s:s, s:s, s:s}", "method", r->method, "path", r->path, "reason", reason);
        if (audit_write(pg, r, "request.refused", NULL, NULL,
                        status == 401 ? "unauthenticated" : "denied", d) < 0)
            log_warn("audit row for a refused request not written");
        json_decref(d);
    }
    http_send_error(r, status, status == 401 ? "unauthenticated" : "forbidden", NULL, "%s", msg);
    return -1;
}

static void fill_actor(struct actor *a, PGresult *res, int col_id)
{
    a->authenticated = true;
    util_strlcpy(a->user_id, PQgetvalue(res, 0, col_id), sizeof(a->user_id));
    util_strlcpy(a->username, PQgetvalue(res, 0, col_id + 1), sizeof(a->username));
    if (!auth_role_parse(PQgetvalue(res, 0, col_id + 2), &a->role))
        a->role = ROLE_VIEWER;
}

/* A credential lookup: sql's one row is the credential's own column, the
 * user's id, name and role, and whether its last use is stale; $1 is the
 * credential's hash. -1 the query failed, 0 no such live credential, or 1
 * with a filled, column 0 copied into col0 (when not NULL) and, when stale,
 * touch run with that $1. */
static int credential_row(PGconn *pg, const char *sql, int n, const char *const *p, struct actor *a,
                          char *col0, size_t col0size, const char *touch)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    bool stale;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    fill_actor(a, res, 1);
    if (col0)
        util_strlcpy(col0, PQgetvalue(res, 0, 0), col0size);
    stale = PQgetvalue(res, 0, 4)[0] == 't';
    PQclear(res);
    if (stale)
        PQclear(PQexecParams(pg, touch, 1, NULL, p, NULL, NULL, 0));
    return 1;
}

int auth_bearer_lookup(PGconn *pg, const char *token, struct actor *a)
{
    char hash[65];
    const char *p[1] = {hash};

    memset(a, 0, sizeof(*a));
    if (!*token || strlen(token) > 256)
        return 0;
    util_sha256_hex(token, strlen(token), hash);
    return credential_row(
        pg,
        "SELECT t.id, u.id, u.username, u.role,"
        " (t.last_used_at IS NULL OR t.last_used_at < now() - interval '" TOUCH_INTERVAL_S
        " seconds')"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > now())"
        " AND NOT u.disabled",
        1, p, a, NULL, 0, "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1");
}

/* A credential lookup's outcome (found: 1, 0 or -1) for auth_require: 0 when
 * found, else -1 after answering -- 401 (why for the audit row, msg for the
 * client) when there is no such live credential, 503 when the database
 * failed. */
static int lookup_outcome(struct req *r, PGconn *pg, int found, const char *why, const char *msg)
{
    if (found < 0) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return -1;
    }
    if (found == 0)
        return auth_refuse(r, pg, 401, why, msg);
    return 0;
}

static int auth_bearer(struct req *r, PGconn *pg, const char *token)
{
    if (!*token || strlen(token) > 256)
        return auth_refuse(r, pg, 401, "bad token", "the API token is not valid");
    return lookup_outcome(r, pg, auth_bearer_lookup(pg, token, &r->actor),
                          "unknown, expired or revoked token",
                          "the API token is not valid (unknown, expired or revoked)");
}

int auth_session_lookup(PGconn *pg, const char *cookie, struct actor *a, char hash[65])
{
    char idle[32];
    const char *p[2] = {hash, idle};
    int found;

    memset(a, 0, sizeof(*a));
    if (!is_hex64(cookie))
        return 0;
    util_sha256_hex(cookie, strlen(cookie), hash);
    snprintf(idle, sizeof(idle), "%ld", api_cfg.session_idle_s);
    found = credential_row(pg,
                           "SELECT s.csrf_token, u.id, u.username, u.role,"
                           " s.last_seen_at < now() - interval '" TOUCH_INTERVAL_S " seconds'"
                           " FROM sessions s JOIN users u ON u.id = s.user_id"
                           " WHERE s.token_hash = $1 AND s.expires_at > now()"
                           " AND s.last_seen_at > now() - make_interval(secs => $2::int)"
                           " AND NOT u.disabled",
                           2, p, a, a->csrf, sizeof(a->csrf),
                           "UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1");
    if (found > 0)
        a->via_cookie = true;
    return found;
}

static int auth_cookie(struct req *r, PGconn *pg, const char *cookie)
{
    char hash[65];

    if (!is_hex64(cookie))
        return auth_refuse(r, pg, 401, "bad session cookie", "the session is not valid: log in again");
    if (lookup_outcome(r, pg, auth_session_lookup(pg, cookie, &r->actor, hash),
                       "unknown or expired session",
                       "the session has expired or ended: log in again") < 0)
        return -1;
    if (auth_method_unsafe(r->method)) {
        const char *h = req_param(r, "HTTP_X_CSRF_TOKEN");
        if (!h || !*h)
            return auth_refuse(r, pg, 403, "csrf token missing",
                          "this request needs the X-CSRF-Token header of your session");
        if (strlen(h) != strlen(r->actor.csrf) ||
            !util_ct_equal(h, r->actor.csrf, strlen(r->actor.csrf)))
            return auth_refuse(r, pg, 403, "csrf token wrong",
                          "the X-CSRF-Token header does not match your session");
    }
    return 0;
}

int auth_require(struct req *r)
{
    PGconn *pg = db_conn(r->th);
    const char *authz;
    char cookie[129];

    memset(&r->actor, 0, sizeof(r->actor));
    if (!pg) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return -1;
    }
    /* A handler that left a transaction open must not leak it into this request. */
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
        log_error("a transaction was left open on this connection; rolling it back");
        PQclear(PQexec(pg, "ROLLBACK"));
    }
    if (auth_method_unsafe(r->method) && !auth_origin_ok(r))
        return auth_refuse(r, pg, 403, "foreign origin",
                      "cross-origin request refused: the Origin is not this server");
    authz = req_param(r, "HTTP_AUTHORIZATION");
    if (authz && *authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0)
            return auth_refuse(r, pg, 401, "bad authorization scheme",
                          "the Authorization header must be 'Bearer <api token>'");
        authz += 7;
        while (*authz == ' ')
            authz++;
        return auth_bearer(r, pg, authz);
    }
    if (auth_cookie_count(r, SESSION_COOKIE) > 1) {
        /* a second copy can only be planted (a page on a shared origin, a
         * path-scoped cookie): refuse rather than guess which one is ours */
        http_send_error(r, 400, "bad_request", NULL,
                        "more than one berth_session cookie: clear this site's cookies and log "
                        "in again");
        return -1;
    }
    if (auth_cookie_value(r, SESSION_COOKIE, cookie, sizeof(cookie)))
        return auth_cookie(r, pg, cookie);
    return auth_refuse(r, pg, 401, "no credentials",
                  "authentication required: log in, or send Authorization: Bearer <api token>");
}
