/*
 * workspace — signing a browser in on a workspace origin (issue 10).
 *
 * Workspaces are served from an origin that is not the UI's (workspace_host,
 * include/berth/workspace.h): berth's session cookie, host-only on the UI
 * origin, never reaches them, and nothing they run can read or set it. A
 * browser arriving there without a credential is sent through the UI origin:
 *
 *   1. https://alice.ws/container/alice/nb/x  -- no berth_ws --> 302 (proxy.c)
 *   2. https://ui/api/v1/auth/workspace?instance=ID&path=/container/alice/nb/x
 *      with the UI session: a one-time code (single use, CODE_TTL_S seconds,
 *      bound to that session, user, instance and path) --> 302 to
 *      https://alice.ws/_berth/session?code=C          (no session: the login
 *      page first, which comes back here)
 *   3. the code exchanged for berth_ws, an HttpOnly cookie of that host and
 *      the instance's path only, bound to the instance and to the UI session
 *      (logout, expiry or a password change end it) --> 302 to the path.
 *
 * Scripts use Authorization: Bearer on either origin. In `same` mode the UI
 * session itself reaches the workspaces and none of this is used.
 *
 * Also here: berth's "not running" page (workspace_unavailable), what an
 * instance's location answers its owner when the container does not: it
 * reads the instance's status and sends the owner to the UI origin to start
 * it -- the workspace origin acts on nothing.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "berth/workspace.h"
#include "workspace.h"

#define CODE_TTL_S "30"
#define PATH_MAX_LEN 2048

int wsp_origin(const char *user, const char *instance, char *out, size_t size)
{
    return ws_origin(api_cfg.public_url, api_cfg.workspace_host, user, instance, out, size);
}

int wsp_login_url(const char *instance_id, const char *path, char *out, size_t size)
{
    char enc[3 * PATH_MAX_LEN + 1];
    int n;
    if (strlen(path) > PATH_MAX_LEN || util_url_encode(path, enc, sizeof(enc)) < 0)
        enc[0] = '\0';
    n = snprintf(out, size, "%s/api/v1/auth/workspace?instance=%s%s%s", api_cfg.public_url,
                 instance_id, enc[0] ? "&path=" : "", enc);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int wsp_auth_token(PGconn *pg, const char *token, const char *instance_id, struct actor *a)
{
    char hash[65], idle[32];
    const char *p[3] = {hash, instance_id, idle};
    PGresult *res;
    int found = 0;

    memset(a, 0, sizeof(*a));
    if (strlen(token) != 64 || !valid_uuid(instance_id))
        return 0;
    util_sha256_hex(token, strlen(token), hash);
    snprintf(idle, sizeof(idle), "%ld", api_cfg.session_idle_s);
    /* The UI session it came from must still be live; using the workspace
     * keeps that session from going idle (at most one write a minute). */
    res = db_run(pg, "workspace session lookup",
                       "WITH w AS (SELECT w.session_hash, u.id, u.username, u.role"
                       " FROM workspace_sessions w JOIN sessions s ON s.token_hash = w.session_hash"
                       " JOIN users u ON u.id = w.user_id"
                       " WHERE w.token_hash = $1 AND w.instance_id = $2 AND s.expires_at > now()"
                       " AND s.last_seen_at > now() - make_interval(secs => $3::int)"
                       " AND NOT u.disabled), t AS (UPDATE sessions SET last_seen_at = now()"
                       " WHERE token_hash = (SELECT session_hash FROM w) AND last_seen_at <"
                       " now() - interval '60 seconds')"
                       " SELECT id, username, role FROM w",
                       3, p);
    if (!res)
        return -1;
    if (PQntuples(res) == 1) {
        a->authenticated = true;
        util_strlcpy(a->user_id, PQgetvalue(res, 0, 0), sizeof(a->user_id));
        util_strlcpy(a->username, PQgetvalue(res, 0, 1), sizeof(a->username));
        if (!auth_role_parse(PQgetvalue(res, 0, 2), &a->role))
            a->role = ROLE_VIEWER;
        found = 1;
    }
    PQclear(res);
    return found;
}

/* The one row sql ($1: the instance id; what names it in a log line) finds
 * for a live instance: 1 with it in *res for the caller to read and clear, 0
 * when there is none (or id is no UUID), -1 when the query failed. */
static int instance_row(PGconn *pg, const char *what, const char *sql, const char *id,
                        PGresult **res)
{
    const char *p[1] = {id};

    if (!valid_uuid(id))
        return 0;
    if (!(*res = db_run(pg, what, sql, 1, p)))
        return -1;
    if (PQntuples(*res) != 1) {
        PQclear(*res);
        return 0;
    }
    return 1;
}

/* The (user name, instance name, owner id) of a live instance; 1 / 0 / -1. */
int wsp_instance_names(PGconn *pg, const char *id, char user[33], char inst[33], char owner[37])
{
    PGresult *res;
    int found = instance_row(pg, "instance lookup",
                             "SELECT u.username, i.name, i.user_id FROM instances i JOIN users u"
                             " ON u.id = i.user_id WHERE i.id = $1 AND i.status <> 'deleted'",
                             id, &res);
    if (found <= 0)
        return found;
    util_strlcpy(user, PQgetvalue(res, 0, 0), 33);
    util_strlcpy(inst, PQgetvalue(res, 0, 1), 33);
    util_strlcpy(owner, PQgetvalue(res, 0, 2), 37);
    PQclear(res);
    return 1;
}

static void send_refusal(struct req *r, int status, const char *css);

static void send_redirect(struct req *r, const char *location, const char *extra)
{
    size_t n = strlen(location) + (extra ? strlen(extra) : 0) + 128;
    char *hdr = malloc(n);
    if (!hdr) {
        http_send_error(r, 503, "unavailable", NULL, "out of memory");
        return;
    }
    snprintf(hdr, n, "Location: %s\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n%s",
             location, extra ? extra : "");
    http_send_empty(r, 302, hdr);
    explicit_bzero(hdr, n);
    free(hdr);
}

/* GET /api/v1/auth/workspace?instance=ID&path=P on the UI origin. */
void workspace_login(struct req *r)
{
    char id[40], path[PATH_MAX_LEN + 1], user[33], inst[33], owner[37], hash[65], cookie[129];
    char code[65], code_hash[65], origin[400], url[PATH_MAX_LEN * 3 + 600], base[80];
    struct actor a;
    PGconn *pg = req_db(r);
    int found;

    if (!pg)
        return;
    if (!req_query(r, "instance", id, sizeof(id)) || !valid_uuid(id)) {
        http_send_error(r, 400, "invalid_field", "instance", "instance must be an instance id");
        return;
    }
    found = wsp_instance_names(pg, id, user, inst, owner);
    if (found < 0) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    if (found == 0) {
        send_refusal(r, 404, "/style.css");
        return;
    }
    /* where to go: the path asked for when it is a canonical address of this
     * instance's workspace, else the workspace's start */
    snprintf(base, sizeof(base), "/container/%s/%s/", user, inst);
    if (!req_query(r, "path", path, sizeof(path)) || !ws_path_canonical(path, user, inst))
        util_strlcpy(path, base, sizeof(path));
    if (auth_cookie_count(r, SESSION_COOKIE) > 1) {
        http_send_error(r, 400, "bad_request", NULL,
                        "more than one berth_session cookie: clear this site's cookies and log "
                        "in again");
        return;
    }
    found = auth_cookie_value(r, SESSION_COOKIE, cookie, sizeof(cookie))
                ? auth_session_lookup(pg, cookie, &a, hash)
                : 0;
    if (found < 0) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    if (found == 0) {
        /* sign in first; the login page follows only this endpoint back */
        char self[PATH_MAX_LEN * 3 + 700], enc[sizeof(self) * 3], next[sizeof(enc) + 16];
        if (wsp_login_url(id, path, self, sizeof(self)) < 0 ||
            util_url_encode(self + strlen(api_cfg.public_url), enc, sizeof(enc)) < 0) {
            http_send_error(r, 400, "bad_request", NULL, "the workspace address is too long");
            return;
        }
        snprintf(next, sizeof(next), "/?next=%s", enc);
        send_redirect(r, next, NULL);
        return;
    }
    r->actor = a;
    if (!authz_instance(&r->actor, ACT_PROXY, owner)) {
        send_refusal(r, 403, "/style.css");
        return;
    }
    if (ws_same_origin(api_cfg.workspace_host)) {
        send_redirect(r, path, NULL); /* the session cookie reaches it as it is */
        return;
    }
    if (wsp_origin(user, inst, origin, sizeof(origin)) < 0 || util_token(code) < 0) {
        http_send_error(r, 500, "internal", NULL, "the workspace address could not be made");
        return;
    }
    util_sha256_hex(code, strlen(code), code_hash);
    {
        const char *p[5] = {code_hash, hash, r->actor.user_id, id, path};
        PGresult *res = req_q(
            r,
            "WITH gc AS (DELETE FROM workspace_codes WHERE expires_at < now() - interval '1 hour')"
            " INSERT INTO workspace_codes (code_hash, session_hash, user_id, instance_id, path,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, now() + interval '" CODE_TTL_S " seconds')",
            5, p);
        if (!res)
            return;
        PQclear(res);
    }
    explicit_bzero(cookie, sizeof(cookie));
    snprintf(url, sizeof(url), "%s/_berth/session?code=%s", origin, code);
    explicit_bzero(code, sizeof(code));
    send_redirect(r, url, NULL);
}

/* GET /_berth/session?code=C on a workspace host. */
void workspace_session(struct req *r)
{
    char code[80], code_hash[65], token[65], thash[65], origin[400];
    char path[PATH_MAX_LEN + 1], user[33], inst[33], iid[37], uid[37], shash[65];
    char hdr[PATH_MAX_LEN + 600];
    PGresult *res;
    bool fresh;

    if (!req_db(r))
        return;
    if (!req_query(r, "code", code, sizeof(code)) || strlen(code) != 64) {
        http_send_error(r, 400, "bad_request", NULL, "this sign-in link is not valid");
        return;
    }
    util_sha256_hex(code, strlen(code), code_hash);
    explicit_bzero(code, sizeof(code));
    {
        const char *p[1] = {code_hash};
        /* single use: the row goes whether or not it is still fresh */
        if (!(res = req_q(r,
                          "WITH c AS (DELETE FROM workspace_codes WHERE code_hash = $1 RETURNING"
                          " session_hash, user_id, instance_id, path, expires_at > now() AS"
                          " fresh) SELECT c.session_hash, c.user_id, c.instance_id, c.path,"
                          " c.fresh, u.username, i.name FROM c JOIN instances i ON i.id ="
                          " c.instance_id JOIN users u ON u.id = i.user_id WHERE i.status <>"
                          " 'deleted'",
                          1, p)))
            return;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        http_send_error(r, 400, "bad_request", NULL,
                        "this sign-in link was used already or is unknown: open the workspace "
                        "again");
        return;
    }
    util_strlcpy(shash, PQgetvalue(res, 0, 0), sizeof(shash));
    util_strlcpy(uid, PQgetvalue(res, 0, 1), sizeof(uid));
    util_strlcpy(iid, PQgetvalue(res, 0, 2), sizeof(iid));
    util_strlcpy(path, PQgetvalue(res, 0, 3), sizeof(path));
    fresh = PQgetvalue(res, 0, 4)[0] == 't';
    util_strlcpy(user, PQgetvalue(res, 0, 5), sizeof(user));
    util_strlcpy(inst, PQgetvalue(res, 0, 6), sizeof(inst));
    PQclear(res);
    if (!fresh) {
        http_send_error(r, 400, "bad_request", NULL,
                        "this sign-in link has expired: open the workspace again");
        return;
    }
    /* the code was minted for this instance's workspace host only */
    if (wsp_origin(user, inst, origin, sizeof(origin)) < 0 ||
        !ws_host_matches(origin, req_param(r, "HTTP_HOST")) ||
        !ws_path_canonical(path, user, inst)) {
        http_send_error(r, 400, "bad_request", NULL,
                        "this sign-in link belongs to another workspace host");
        return;
    }
    if (util_token(token) < 0) {
        http_send_error(r, 500, "internal", NULL, "no randomness available");
        return;
    }
    util_sha256_hex(token, strlen(token), thash);
    {
        const char *p[4] = {thash, shash, uid, iid};
        if (!(res = req_q(r,
                          "INSERT INTO workspace_sessions (token_hash, session_hash, user_id,"
                          " instance_id) SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM"
                          " sessions WHERE token_hash = $2 AND expires_at > now())",
                          4, p)))
            return;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        PQclear(res);
        http_send_error(r, 401, "unauthenticated", NULL,
                        "your berth session ended meanwhile: log in again");
        return;
    }
    PQclear(res);
    {
        bool secure = api_cfg.cookie_secure == 1 ||
                      (api_cfg.cookie_secure == 0 && strncmp(origin, "https://", 8) == 0);
        snprintf(hdr, sizeof(hdr),
                 "Set-Cookie: " WS_COOKIE "=%s; Path=/container/%s/%s/; HttpOnly; SameSite=Lax%s\r\n",
                 token, user, inst, secure ? "; Secure" : "");
    }
    explicit_bzero(token, sizeof(token));
    send_redirect(r, path, hdr);
    explicit_bzero(hdr, sizeof(hdr));
}

/* GET /_berth/to-workspace: a /container/ address asked of the UI origin. */
void workspace_redirect(struct req *r)
{
    const char *raw = req_param(r, "BERTH_ORIGINAL_URI");
    char user[33], inst[33], origin[400], url[PATH_MAX_LEN + 500];
    const char *p, *slash;
    size_t n;

    if (!raw || strncmp(raw, "/container/", 11) != 0 || strlen(raw) > PATH_MAX_LEN)
        goto bad;
    p = raw + 11;
    slash = strchr(p, '/');
    if (!slash || (n = (size_t)(slash - p)) == 0 || n > 32)
        goto bad;
    memcpy(user, p, n);
    user[n] = '\0';
    p = slash + 1;
    n = strcspn(p, "/?");
    if (n == 0 || n > 32)
        goto bad;
    memcpy(inst, p, n);
    inst[n] = '\0';
    if (!valid_name(user) || !valid_name(inst) || !ws_path_canonical(raw, user, inst) ||
        wsp_origin(user, inst, origin, sizeof(origin)) < 0)
        goto bad;
    snprintf(url, sizeof(url), "%s%s", origin, raw);
    send_redirect(r, url, NULL);
    return;
bad:
    http_send_error(r, 404, "not_found", NULL, "not a workspace address");
}

int wsp_instance_status(PGconn *pg, const char *id, char status[24], char *err, size_t errsize)
{
    PGresult *res;
    const char *e;
    size_t n;
    int found;

    status[0] = '\0';
    if (errsize)
        err[0] = '\0';
    found = instance_row(pg, "instance status lookup",
                         "SELECT status, coalesce(error, '') FROM instances WHERE id = $1 AND"
                         " status <> 'deleted'",
                         id, &res);
    if (found <= 0)
        return found;
    e = PQgetvalue(res, 0, 1);
    n = strlen(e);
    util_strlcpy(status, PQgetvalue(res, 0, 0), 24);
    if (errsize) {
        if (n >= errsize) { /* cut, but never inside a UTF-8 sequence */
            n = errsize - 1;
            while (n > 0 && ((unsigned char)e[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(err, e, n);
        err[n] = '\0';
    }
    PQclear(res);
    return 1;
}

/* s with &, <, >, " and ' as HTML entities into out (cut to fit). */
static void html_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s; s++) {
        const char *rep = NULL;
        char one[2] = {*s, '\0'};
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: rep = one;
        }
        size_t n = strlen(rep);
        if (o + n >= size)
            break;
        memcpy(out + o, rep, n);
        o += n;
    }
    out[o] = '\0';
}

/* What a status means to the owner waiting for the workspace. */
static const char *status_sentence(const char *status)
{
    static const struct {
        const char *status, *sentence;
    } table[] = {
        {"stopped", "it is stopped: start it, and this page goes on to it by itself"},
        {"pending", "it is being created: this page goes on to it once it answers"},
        {"creating", "it is being created: this page goes on to it once it answers"},
        {"restarting", "it is restarting: this page goes on to it once it answers"},
        {"running", "it is starting up: its application does not answer yet"},
        {"stopping", "it is stopping"},
        {"deleting", "it is being deleted"},
        {"error", "it failed: start it again once the cause is fixed"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++)
        if (strcmp(table[i].status, status) == 0)
            return table[i].sentence;
    return "it does not answer";
}

/* A browser's request (a navigation asks for text/html): it gets berth's
 * page, other clients the API's error shape. */
static bool wants_html(struct req *r)
{
    const char *accept = req_param(r, "HTTP_ACCEPT");
    return accept && strcasestr(accept, "text/html");
}

#define PAGE_HEADERS                                                                               \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cache-Control: no-store\r\n"

/* Send one of berth's own pages: the shell (head, berth's header, the
 * stylesheet at css) around main, which is markup whose every value is
 * validated or escaped; with script, /_berth/unavailable.js runs in it (the
 * CSP lets it reach this origin only). kind names the page in X-Berth-Page,
 * which nginx hides from containers' answers. extra: more header lines. */
static void send_page(struct req *r, int status, const char *kind, const char *extra,
                      const char *title, const char *css, const char *main_html, bool script)
{
    char page[40000], headers[512];
    int n = snprintf(page, sizeof(page),
                     "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     "<title>%s — berth</title>\n"
                     "<link rel=\"stylesheet\" href=\"%s\">\n</head>\n<body>\n"
                     "<header><h1>berth</h1></header>\n%s%s</body>\n</html>\n",
                     title, css, main_html,
                     script ? "<script src=\"/_berth/unavailable.js\"></script>\n" : "");
    if (n < 0 || (size_t)n >= sizeof(page)) {
        http_send_error(r, status, "internal", NULL, "%s", title);
        return;
    }
    snprintf(headers, sizeof(headers),
             "%sX-Berth-Page: %s\r\n" PAGE_HEADERS
             "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';"
             " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'\r\n",
             extra ? extra : "", kind);
    http_send_raw(r, status, "text/html; charset=utf-8", headers, page, (size_t)n);
}

/* A refusal a browser may meet on its way to a workspace: no such instance
 * (404) or not the caller's (403). A browser gets berth's page saying so,
 * with the way back to the UI; other clients the API's error. css: the
 * stylesheet's address on the origin answering. */
static void send_refusal(struct req *r, int status, const char *css)
{
    bool forbidden = status == 403;
    const char *what = forbidden ? "this instance is not yours" : "no such instance";
    char main_html[2048];

    if (!wants_html(r)) {
        http_send_error(r, status, forbidden ? "forbidden" : "not_found", NULL, "%s", what);
        return;
    }
    snprintf(main_html, sizeof(main_html),
             "<main id=\"berth-refused\" data-reason=\"%s\">\n"
             "  <h2>%s</h2>\n  <p>%s</p>\n"
             "  <p><a href=\"%s/\">Go to your instances</a></p>\n</main>\n",
             forbidden ? "forbidden" : "not_found",
             forbidden ? "This workspace is not yours" : "No workspace here",
             forbidden ? "It belongs to another berth user: only a workspace's owner gets in "
                         "(admins too are kept out). If it is yours, sign in to berth as its "
                         "owner and open it from your instances."
                       : "No instance has this address: it may have been deleted or renamed, "
                         "or the address is mistyped.",
             api_cfg.public_url);
    send_page(r, status, "refused", NULL, forbidden ? "Not your workspace" : "No such workspace",
              css, main_html, false);
}

/* GET /_berth/refused: nginx's answer to a browser on a workspace origin
 * whose request the proxy check refused (BERTH_REFUSAL "forbidden": another
 * user's workspace) or whose address no instance holds (anything else), in
 * place of the JSON other clients get. BERTH_REFUSAL is a FastCGI parameter
 * of nginx's, which no client can set; reached directly, it is the 404. */
void workspace_refused(struct req *r)
{
    const char *why = req_param(r, "BERTH_REFUSAL");
    send_refusal(r, why && strcmp(why, "forbidden") == 0 ? 403 : 404, "/_berth/style.css");
}

/* GET /_berth/unavailable: nginx's error_page when an instance's container
 * does not answer (502, 504), reached only from the instance's location
 * after the proxy check allowed the request -- so only for the owner -- with
 * the allowed instance in BERTH_INSTANCE (a FastCGI parameter of nginx's,
 * which no client can set). 503 with Retry-After, never a bare 502: an HTML
 * page naming the instance's real status for a browser, the API's error
 * shape for anything else. The page polls the workspace with a status probe
 * (proxy.c) and reloads when the status changes or the workspace answers;
 * its Start link goes to the UI origin, where the owner confirms (nothing
 * on this origin can start anything). */
void workspace_unavailable(struct req *r)
{
    const char *iid = req_param(r, "BERTH_INSTANCE");
    char status[24] = "", err[1024], user[33] = "", inst[33] = "", owner[37];
    char esc_err[sizeof(err) * 6], sentence[256], title[128], main_html[16384];
    PGconn *pg = iid && valid_uuid(iid) ? db_conn(r->th) : NULL;
    int found = -1, n;

    if (pg && (found = wsp_instance_names(pg, iid, user, inst, owner)) == 1)
        found = wsp_instance_status(pg, iid, status, err, sizeof(err));
    if (found == 1) {
        snprintf(sentence, sizeof(sentence), "this instance is %s: %s", status,
                 status_sentence(status));
    } else {
        err[0] = '\0';
        util_strlcpy(status, "unknown", sizeof(status));
        util_strlcpy(sentence,
                     found == 0 ? "this instance does not answer"
                                : "this instance does not answer, and berth cannot tell its "
                                  "status right now: try again in a moment",
                     sizeof(sentence));
    }
    if (!wants_html(r)) {
        char msg[512]; /* cut where http_send_error cuts every message */
        if (snprintf(msg, sizeof(msg), "%s%s%s", sentence, err[0] ? ": " : "", err) < 0)
            msg[0] = '\0';
        http_send_error_with(r, 503, "Retry-After: 5\r\nX-Berth-Page: unavailable\r\n" PAGE_HEADERS,
                             "unavailable", msg);
        return;
    }
    html_escape(err, esc_err, sizeof(esc_err));
    {
        bool can_start = found == 1 && (strcmp(status, "stopped") == 0 || strcmp(status, "error") == 0);
        const char *raw = req_param(r, "BERTH_ORIGINAL_URI");
        char start[PATH_MAX_LEN * 3 + 700] = "", back[PATH_MAX_LEN * 3 + 16] = "";
        /* where the UI sends the owner back: this address when it is a
         * canonical one of this instance (the UI checks it again) */
        if (raw && strlen(raw) <= PATH_MAX_LEN && ws_path_canonical(raw, user, inst) &&
            util_url_encode(raw, back + 10, sizeof(back) - 10) == 0)
            memcpy(back, "&amp;path=", 10);
        else
            back[0] = '\0';
        if (can_start)
            snprintf(start, sizeof(start),
                     "  <p id=\"berth-start\"><a class=\"button\" href=\"%s/?start=%s%s\">Start "
                     "it</a></p>\n",
                     api_cfg.public_url, iid, back);
        /* every value below is validated (names, status, the configured
         * URL) or escaped (the error sentence) */
        snprintf(title, sizeof(title), "%s is %s", found == 1 ? inst : "This workspace", status);
        n = snprintf(main_html, sizeof(main_html),
                     "<main id=\"berth-unavailable\" data-status=\"%s\">\n"
                     "  <h2>This workspace is not running</h2>\n"
                     "  <p><code>%s/%s</code> is <strong id=\"berth-status\">%s</strong>: %s.</p>\n"
                     "%s%s%s%s"
                     "  <p class=\"muted\">This page reloads by itself when the status changes "
                     "and once the workspace answers.</p>\n"
                     "  <p><a href=\"%s/\">Go to your instances</a></p>\n"
                     "</main>\n",
                     status, user, inst, status, status_sentence(status),
                     esc_err[0] ? "  <p id=\"berth-error\">" : "", esc_err,
                     esc_err[0] ? "</p>\n" : "", start, api_cfg.public_url);
    }
    if (n < 0 || (size_t)n >= sizeof(main_html)) {
        http_send_error(r, 503, "unavailable", NULL, "%s", sentence);
        return;
    }
    send_page(r, 503, "unavailable", "Retry-After: 5\r\n", title, "/_berth/style.css", main_html,
              true);
}
