/*
 * proxy — the authorisation check behind every request to
 * /container/<user>/<instance>/ (nginx auth_request to the internal location
 * /_berth/auth/<instance id>, which each instance's snippet names). The
 * instance decided on is the one whose location nginx matched -- the id comes
 * from the snippet, never from parsing the request's URL again -- and the
 * same authorisation function as the API decides: the owner gets through
 * (204); anyone else 403; no usable credential 401 (nginx sends a browser to
 * sign in: X-Berth-Location). WebSocket upgrades are ordinary GETs here.
 *
 * Besides the status, the answer tells nginx (auth_request_set):
 *   X-Berth-Cookie    the request's Cookie header with every copy of berth's
 *                     cookies removed: what the container receives
 *   X-Berth-Verdict   why a 403 is one: "bad_request" (the raw URI's prefix is
 *                     not literally the location's, or two session cookies:
 *                     nginx answers 400), "origin" (an upgrade or unsafe
 *                     method from a foreign Origin), "elsewhere" (the right
 *                     instance on the wrong host: a redirect to its own),
 *                     "unavailable" (the database is down: nginx answers 503)
 *                     "status" (a probe, below: nginx answers 200 with
 *                     X-Berth-Status), "not_found" (the fallback: 404)
 *   X-Berth-Location  where "elsewhere" and a browser's 401 are sent
 *   X-Berth-Instance  on 204: the instance allowed, which berth's "not
 *                     running" page (workspace.c) names when the container
 *                     does not answer -- the location's own, from the snippet
 *   X-Berth-Status    a probe's answer: {"status": S, "error"?: E}
 *   X-Berth-Upstream, X-Berth-Proxy-Mode   the fallback's target (below)
 *
 * A status probe is a GET or HEAD of the workspace with X-Berth-Probe:
 * status (what berth's "not running" page polls): the same checks as any
 * request decide it, then, instead of going upstream, the owner is told the
 * status of this location's instance and its error sentence -- nothing of
 * any other instance, and it changes nothing. The workspace origin has no
 * way to act on the API; starting is a navigation to the UI origin.
 *
 * The fallback (issue 15): /_berth/auth/by-path is what nginx's location for
 * /container/ asks when no instance location matched -- the instance's route
 * is not loaded yet (reloads are coalesced, off the user's path), or there
 * is no such instance. The instance is the one the raw path's
 * /container/<user>/<instance>/ names (taken literally by the name rule;
 * nginx has refused any other spelling already), read afresh from the
 * database, and the same checks decide. The owner's 204 also names where
 * nginx sends the request: X-Berth-Upstream, the instance's address
 * (instances.upstream_host and the template's http_port, this node's only)
 * while it runs, else berth-none (no live server: the "not running" page),
 * and X-Berth-Proxy-Mode (strip or keep). The address comes from the
 * database alone, never from the request. Anyone else gets 403, as from
 * the instance's own location once it is loaded (the answer must not change
 * with a reload); a name no instance has gets the verdict "not_found"
 * (nginx answers 404).
 *
 * Credentials: Authorization: Bearer on any origin; on a workspace origin the
 * berth_ws cookies (workspace.c; every copy is tried, so a cookie planted by
 * another page cannot lock the owner out); in `same` mode the UI session.
 *
 * Activity (for idle stop) is recorded in Redis, at most once per instance
 * and minute per thread's view -- never a database write per request; the
 * worker folds it into instances.last_active_at.
 *
 * Decisions are cached for CACHE_TTL_MS, keyed by the credential's hash and
 * the instance id: a page with fifty assets costs one database lookup per
 * second or two, not one per request. Any change through the API (every
 * POST, PATCH, DELETE: logout, a revoked token, a disabled user, a deleted
 * instance...) drops the whole cache before and after it runs (router.c), so
 * within this process access taken away is gone at once; with several
 * berth-api processes, another process's change takes effect within
 * CACHE_TTL_MS. Only decisions from the database are cached; 401 and 503 are
 * not. One request asks again for a decision past its TTL while the others
 * go on with it for at most STALE_MS (cache_get), and the checks share
 * DB_SLOTS database connections, however many threads answer them. The path, host and Origin checks run on every request, cached or not.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/snippet.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "berth/workspace.h"
#include "workspace.h"

#define BY_PATH "by-path" /* /_berth/auth/by-path: nginx's fallback for /container/ */
#define CACHE_SLOTS 4096 /* direct-mapped: a collision replaces the older entry */
#define CACHE_TTL_MS 2000
#define STALE_MS 500     /* a decision past its TTL, while one request asks again */
#define DB_SLOTS 4       /* PostgreSQL connections the proxy checks share */
#define MAX_WS_COOKIES 4 /* berth_ws copies tried per request */
#define COOKIE_MAX 8192   /* the Cookie header passed on; a longer one goes as none */
#define LOCATION_MAX 4600 /* a sign-in or redirect address */
#define STATUS_ERROR_MAX 600 /* of an instance's error sentence, in a probe's answer */
#define STATUS_JSON_MAX 4000 /* a probe's answer (the sentence escaped: 6 bytes a byte at most) */

struct decision {
    uint64_t gen;
    int64_t expires_ms;
    int64_t refresh_until_ms; /* one request asks the database again until then */
    char cred[65], instance_id[37];
    bool allowed;
    char user[33], inst[33]; /* the instance's names (allowed only) */
};

static struct decision cache[CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t cache_gen = 1;

void proxy_auth_forget(void)
{
    atomic_fetch_add(&cache_gen, 1);
}

static uint32_t fnv1a(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static size_t slot_of(const char *cred, const char *iid)
{
    return fnv1a(fnv1a(2166136261u, cred), iid) % CACHE_SLOTS;
}

/* 1 allowed (names filled), 0 refused, -1 not cached. A decision past its
 * CACHE_TTL_MS of this generation is asked again by the first request that
 * finds it so, while the others go on with it for at most STALE_MS: at
 * thousands of requests a second, every thread missing at once at each
 * expiry made a queue at the database (and a spike in p99). A change through
 * the API still ends it at once: a new generation is never served stale. */
static int cache_get(const char *cred, const char *iid, char user[33], char inst[33])
{
    struct decision *d = &cache[slot_of(cred, iid)];
    int64_t now = util_now_ms();
    int rc = -1;
    pthread_mutex_lock(&cache_mu);
    if (d->gen == atomic_load(&cache_gen) && strcmp(d->cred, cred) == 0 &&
        strcmp(d->instance_id, iid) == 0) {
        bool fresh = d->expires_ms > now;
        if (!fresh && d->expires_ms + STALE_MS > now && d->refresh_until_ms <= now)
            d->refresh_until_ms = now + STALE_MS; /* this request asks again */
        else if (fresh || d->expires_ms + STALE_MS > now)
            rc = d->allowed ? 1 : 0; /* fresh, or another request is asking */
        if (rc >= 0) {
            memcpy(user, d->user, 33);
            memcpy(inst, d->inst, 33);
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

/* gen: the generation read before the database was asked, so a change that
 * ran meanwhile leaves this decision stale at once. */
static void cache_put(uint64_t gen, const char *cred, const char *iid, bool allowed,
                      const char *user, const char *inst)
{
    struct decision *d = &cache[slot_of(cred, iid)];
    pthread_mutex_lock(&cache_mu);
    d->gen = gen;
    d->expires_ms = util_now_ms() + CACHE_TTL_MS;
    d->refresh_until_ms = 0;
    util_strlcpy(d->cred, cred, sizeof(d->cred));
    util_strlcpy(d->instance_id, iid, sizeof(d->instance_id));
    d->allowed = allowed;
    util_strlcpy(d->user, allowed ? user : "", sizeof(d->user));
    util_strlcpy(d->inst, allowed ? inst : "", sizeof(d->inst));
    pthread_mutex_unlock(&cache_mu);
}

/* The proxy checks' PostgreSQL connections: DB_SLOTS, shared by however
 * many threads answer them (auth_threads, sized for nginx's kept
 * connections, not for the database: one connection a thread made a few
 * hundred and ran PostgreSQL out of connections). Cache hits need none; a
 * request takes a slot when it first needs the database and gives it back
 * when it is answered (proxy_auth). */
static struct api_thread db_slots[DB_SLOTS];
static bool db_slot_busy[DB_SLOTS];
static pthread_mutex_t db_slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t db_slots_cv = PTHREAD_COND_INITIALIZER;
static __thread struct api_thread *db_held;

static PGconn *check_db(void)
{
    if (!db_held) {
        pthread_mutex_lock(&db_slots_mu);
        for (;;) {
            for (int i = 0; i < DB_SLOTS && !db_held; i++)
                if (!db_slot_busy[i]) {
                    db_slot_busy[i] = true;
                    db_held = &db_slots[i];
                }
            if (db_held)
                break;
            pthread_cond_wait(&db_slots_cv, &db_slots_mu);
        }
        pthread_mutex_unlock(&db_slots_mu);
    }
    return db_conn(db_held);
}

static void check_db_release(void)
{
    if (!db_held)
        return;
    pthread_mutex_lock(&db_slots_mu);
    db_slot_busy[db_held - db_slots] = false;
    pthread_cond_signal(&db_slots_cv);
    pthread_mutex_unlock(&db_slots_mu);
    db_held = NULL;
}

static void record_activity(struct req *r, const char *instance_id)
{
    /* One slot per thread: a burst of requests to one instance (a page with
     * fifty assets) costs one Redis write, not fifty. Short enough that the
     * time recorded is never much older than the last request: the worker
     * tells a WebSocket's traffic from a page's by it. */
    static __thread char last_id[37];
    static __thread time_t last_at;
    time_t now = time(NULL);
    redisContext *c;
    redisReply *rep;

    if (strcmp(last_id, instance_id) == 0 && now - last_at < 5)
        return;
    c = rq_conn(r->th);
    if (!c)
        return; /* activity is best effort; access is not */
    rep = redisCommand(c, "HSET " KEY_ACTIVITY " %s %lld", instance_id, (long long)now);
    if (!rep) {
        rq_close(r->th);
        return;
    }
    freeReplyObject(rep);
    util_strlcpy(last_id, instance_id, sizeof(last_id));
    last_at = now;
}

enum cred_kind { CRED_BEARER, CRED_WS, CRED_SESSION };

struct cred {
    enum cred_kind kind;
    char value[257];
    char hash[65]; /* of kind and value: the cache key */
};

/* The credentials this request offers, in the order they are tried. */
static int gather_creds(const struct req *r, struct cred *out, int max)
{
    const char *authz = req_param(r, "HTTP_AUTHORIZATION");
    const char *cookies = req_param(r, "HTTP_COOKIE");
    char vals[MAX_WS_COOKIES][129], buf[300];
    int n = 0;

    if (authz && *authz) {
        /* a Bearer header decides alone, as in the API */
        if (strncasecmp(authz, "Bearer ", 7) != 0)
            return 0;
        authz += 7;
        while (*authz == ' ')
            authz++;
        if (!*authz || strlen(authz) > 256)
            return 0;
        out[n].kind = CRED_BEARER;
        util_strlcpy(out[n++].value, authz, sizeof(out[0].value));
    } else if (cookies && !ws_same_origin(api_cfg.workspace_host)) {
        int k = ws_cookie_values(cookies, WS_COOKIE, vals, max < MAX_WS_COOKIES ? max : MAX_WS_COOKIES);
        for (int i = 0; i < k; i++) {
            out[n].kind = CRED_WS;
            util_strlcpy(out[n++].value, vals[i], sizeof(out[0].value));
        }
    } else if (cookies && ws_cookie_values(cookies, SESSION_COOKIE, vals, 1) == 1) {
        out[n].kind = CRED_SESSION;
        util_strlcpy(out[n++].value, vals[0], sizeof(out[0].value));
    }
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "%d %s", (int)out[i].kind, out[i].value);
        util_sha256_hex(buf, strlen(buf), out[i].hash);
    }
    explicit_bzero(vals, sizeof(vals));
    explicit_bzero(buf, sizeof(buf));
    return n;
}

/* 1 authenticated (a filled), 0 not, -1 database down. */
static int authenticate(PGconn *pg, const struct cred *c, const char *iid, struct actor *a)
{
    char hash[65];
    switch (c->kind) {
    case CRED_BEARER:
        return auth_bearer_lookup(pg, c->value, a);
    case CRED_WS:
        return wsp_auth_token(pg, c->value, iid, a);
    case CRED_SESSION:
        return auth_session_lookup(pg, c->value, a, hash);
    }
    return 0;
}

/* The answer to nginx: status, the Cookie header for the container, and
 * the verdict and address nginx acts on; extra: more header lines. */
static void answer_with(struct req *r, int status, const char *cookie, const char *verdict,
                        const char *location, const char *extra)
{
    char hdr[COOKIE_MAX + LOCATION_MAX + STATUS_JSON_MAX + 300];
    snprintf(hdr, sizeof(hdr), "X-Berth-Cookie: %s\r\n%s%s%s%s%s%s%s", cookie,
             verdict ? "X-Berth-Verdict: " : "", verdict ? verdict : "", verdict ? "\r\n" : "",
             location ? "X-Berth-Location: " : "", location ? location : "",
             location ? "\r\n" : "", extra ? extra : "");
    /* No body, whatever the status: nginx reads none of it (auth_request),
     * and with fastcgi_store (berth.conf.in) a body would go to a temp file */
    http_send_empty(r, status, hdr);
}

static void answer(struct req *r, int status, const char *cookie, const char *verdict,
                   const char *location)
{
    answer_with(r, status, cookie, verdict, location, NULL);
}

/* A status probe (X-Berth-Probe: status on a GET or HEAD): the owner asks
 * how this location's instance is doing, and nothing goes upstream. */
static bool is_probe(const struct req *r)
{
    const char *probe = req_param(r, "HTTP_X_BERTH_PROBE");
    const char *method = req_param(r, "BERTH_ORIGINAL_METHOD");
    return probe && strcasecmp(probe, "status") == 0 && method &&
           (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
}

/* The probe's answer: {status, error?} of this instance and nothing else, in
 * X-Berth-Status, under the verdict "status" (nginx answers 200 with it). */
static void answer_probe(struct req *r, const char *iid, const char *cookie)
{
    char status[24], err[STATUS_ERROR_MAX + 1], hdr[STATUS_JSON_MAX + 40];
    PGconn *pg = check_db();
    int found = pg ? wsp_instance_status(pg, iid, status, err, sizeof(err)) : -1;
    json_t *o;
    char *text;

    if (found < 0) {
        answer(r, 403, cookie, "unavailable", NULL);
        return;
    }
    if (found == 0) { /* deleted meanwhile */
        answer(r, 403, cookie, NULL, NULL);
        return;
    }
    o = json_pack("{ss}", "status", status);
    if (o && err[0])
        json_object_set_new(o, "error", json_string(err));
    /* ASCII only, no control characters: the JSON is a header's value */
    text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!text || strlen(text) > STATUS_JSON_MAX) {
        free(text);
        answer(r, 403, cookie, "unavailable", NULL);
        return;
    }
    snprintf(hdr, sizeof(hdr), "X-Berth-Status: %s\r\n", text);
    free(text);
    answer_with(r, 403, cookie, "status", NULL, hdr);
}

/* The checks of every allowed request: the raw prefix is the location's,
 * the host is the instance's own workspace host, and an upgrade or unsafe
 * method comes from that origin. */
static void allow(struct req *r, const char *iid, const char *user, const char *inst,
                  const char *cookie, const char *extra)
{
    const char *raw = req_param(r, "BERTH_ORIGINAL_URI");
    const char *method = req_param(r, "BERTH_ORIGINAL_METHOD");
    const char *upgrade = req_param(r, "HTTP_UPGRADE");
    const char *hdr_origin = req_param(r, "HTTP_ORIGIN");
    char origin[400], url[LOCATION_MAX];

    if (!ws_raw_prefix_ok(raw, user, inst)) {
        answer(r, 403, cookie, "bad_request", NULL);
        return;
    }
    if (wsp_origin(user, inst, origin, sizeof(origin)) < 0) {
        answer(r, 403, cookie, NULL, NULL);
        return;
    }
    if (!ws_same_origin(api_cfg.workspace_host) &&
        !ws_host_matches(origin, req_param(r, "HTTP_HOST"))) {
        /* the right instance asked of another user's (or the UI's) host */
        bool nav = method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
        if (nav && ws_path_canonical(raw, user, inst) &&
            (size_t)snprintf(url, sizeof(url), "%s%s", origin, raw) < sizeof(url))
            answer(r, 403, cookie, "elsewhere", url);
        else
            answer(r, 403, cookie, NULL, NULL);
        return;
    }
    if (((method && auth_method_unsafe(method)) || (upgrade && *upgrade)) && hdr_origin &&
        *hdr_origin && !ws_origin_matches(origin, hdr_origin)) {
        answer(r, 403, cookie, "origin", NULL);
        return;
    }
    if (is_probe(r)) {
        answer_probe(r, iid, cookie); /* not activity: the page polling is no user */
        return;
    }
    record_activity(r, iid);
    /* the instance allowed, for berth's "not running" page (error_page) */
    snprintf(url, sizeof(url), "X-Berth-Instance: %s\r\n%s", iid, extra ? extra : "");
    answer_with(r, 204, cookie, NULL, NULL, url);
}

/* An instance found by the names of a /container/<user>/<instance>/ path
 * that no instance location matched (its route not loaded yet). */
struct by_path {
    char id[37];
    char status[24];
    char upstream[80]; /* host:port to proxy to, "" when it has none */
    bool keep;         /* proxy_mode keep: the request URI goes up unchanged */
};

/* The name (by the name rule) that s starts with, ended by '/', into out;
 * what follows the '/', or NULL. */
static const char *name_segment(const char *s, char out[33])
{
    const char *end = strchr(s, '/');
    if (!end || end - s < 1 || end - s > 32)
        return NULL;
    memcpy(out, s, (size_t)(end - s));
    out[end - s] = '\0';
    return valid_name(out) ? end + 1 : NULL;
}

/* The instance of raw's /container/<user>/<instance>/ prefix (the names
 * taken literally, by the name rule): 1 found, 0 none, -1 database down.
 * Its address only when it has one on this node: nginx here reaches this
 * node's user networks only. */
static int find_by_path(PGconn *pg, const char *raw, struct by_path *out)
{
    char user[33], inst[33];
    const char *p[3] = {user, inst, api_cfg.node}, *a;
    PGresult *res;
    int found = 0;

    memset(out, 0, sizeof(*out));
    if (!raw || strncmp(raw, "/container/", 11) != 0 || !(a = name_segment(raw + 11, user)) ||
        !name_segment(a, inst))
        return 0;
    if (!(res = db_run(pg, "instance lookup by path",
                       "SELECT i.id, i.status, CASE WHEN i.node = $3 AND i.upstream_host IS NOT"
                       " NULL AND jsonb_typeof(i.spec->'http_port') = 'number' THEN"
                       " host(i.upstream_host) END, CASE WHEN jsonb_typeof(i.spec->'http_port') ="
                       " 'number' THEN (i.spec->>'http_port')::int END,"
                       " coalesce(i.spec->>'proxy_mode', '') = 'keep' FROM instances i JOIN users u"
                       " ON u.id = i.user_id WHERE u.username = $1 AND i.name = $2 AND i.status NOT"
                       " IN ('deleted', 'deleting')",
                       3, p)))
        return -1;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 3)) { /* no HTTP port: no route */
        const char *host = PQgetvalue(res, 0, 2);
        long port = strtol(PQgetvalue(res, 0, 3), NULL, 10);
        util_strlcpy(out->id, PQgetvalue(res, 0, 0), sizeof(out->id));
        util_strlcpy(out->status, PQgetvalue(res, 0, 1), sizeof(out->status));
        out->keep = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
        /* an address literal from the database, checked again before it
         * becomes a header nginx proxies to */
        if (!PQgetisnull(res, 0, 2) && snippet_valid_host(host) && port >= 1 && port <= 65535)
            snprintf(out->upstream, sizeof(out->upstream), strchr(host, ':') ? "[%s]:%ld" : "%s:%ld",
                     host, port);
        found = valid_uuid(out->id);
    }
    PQclear(res);
    return found;
}

/* What nginx's fallback location proxies to (X-Berth-Upstream): the
 * instance's address while it runs; otherwise berth-none, an upstream with
 * no live server, whose 502 shows the owner berth's "not running" page. */
static void by_path_headers(const struct by_path *t, char *out, size_t size)
{
    bool live = strcmp(t->status, "running") == 0 && t->upstream[0];
    snprintf(out, size, "X-Berth-Upstream: %s\r\nX-Berth-Proxy-Mode: %s\r\n",
             live ? t->upstream : "berth-none", t->keep ? "keep" : "strip");
}

static void decide(struct req *r);

void proxy_auth(struct req *r)
{
    decide(r);
    check_db_release();
}

static void decide(struct req *r)
{
    const char *iid = r->nparams == 1 ? r->params[0] : NULL;
    const char *cookies = req_param(r, "HTTP_COOKIE");
    const char *raw = req_param(r, "BERTH_ORIGINAL_URI");
    char clean[COOKIE_MAX], user[33], inst[33], owner[37], login[LOCATION_MAX], up[200];
    struct cred creds[MAX_WS_COOKIES];
    struct by_path target;
    const char *extra = NULL;
    int ns = 0, n, known = -1;
    bool any_auth = false, retried = false, by_path = iid && strcmp(iid, BY_PATH) == 0;
    PGconn *pg = NULL;
    uint64_t gen = atomic_load(&cache_gen);

    if (by_path) {
        /* nginx's fallback for /container/: the instance is the one the
         * path names, read afresh (never cached: its status and address
         * decide where the request goes) */
        int found;
        if (!(pg = check_db()) || (found = find_by_path(pg, raw, &target)) < 0) {
            answer(r, 403, "", "unavailable", NULL);
            return;
        }
        if (found == 0) {
            answer(r, 403, "", "not_found", NULL);
            return;
        }
        iid = target.id;
        by_path_headers(&target, up, sizeof(up));
        extra = up;
    }
    if (!iid || !valid_uuid(iid)) {
        http_send_empty(r, 403, NULL); /* not an instance address */
        return;
    }
    clean[0] = '\0';
    /* a header too large to pass on goes as no cookies at all */
    if (cookies && ws_cookie_strip(cookies, clean, COOKIE_MAX, &ns, NULL) < 0)
        clean[0] = '\0';
    for (char *p = clean; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            clean[0] = '\0';
            break;
        }
    if (ns > 1) {
        answer(r, 403, clean, "bad_request", NULL);
        goto out;
    }
    n = gather_creds(r, creds, MAX_WS_COOKIES);
    for (int i = 0; i < n; i++) {
        int hit = cache_get(creds[i].hash, iid, user, inst);
        if (hit == 1) {
            allow(r, iid, user, inst, clean, extra);
            goto out;
        }
        if (hit == 0)
            any_auth = true; /* refused for this instance; another copy may do */
    }
again:
    for (int i = 0; i < n; i++) {
        struct actor a;
        int rc;
        if (!pg && !(pg = check_db()))
            goto unavailable;
        if (known < 0 && (known = wsp_instance_names(pg, iid, user, inst, owner)) < 0)
            goto unavailable;
        rc = authenticate(pg, &creds[i], iid, &a);
        if (rc < 0)
            goto unavailable;
        if (rc == 0)
            continue;
        any_auth = true;
        if (known == 1 && authz_instance(&a, ACT_PROXY, owner)) {
            cache_put(gen, creds[i].hash, iid, true, user, inst);
            allow(r, iid, user, inst, clean, extra);
            goto out;
        }
        /* nginx's auth_request understands 2xx, 401 and 403 only. A missing
         * instance is 403 like another user's: the check never tells who has
         * which instance. */
        cache_put(gen, creds[i].hash, iid, false, NULL, NULL);
    }
    if (any_auth) {
        /* not the caller's: 403, by path too, so the answer is the same
         * before and after the instance's own location is loaded (a name
         * no instance has is the 404 above) */
        answer(r, 403, clean, NULL, NULL);
        goto out;
    }
    /* no credential that is still good: sign in (on the UI origin) */
    if (wsp_login_url(iid, raw ? raw : "", login, sizeof(login)) < 0)
        login[0] = '\0';
    answer(r, 401, clean, NULL, login[0] ? login : NULL);
    goto out;
unavailable:
    /* A connection the server dropped (PostgreSQL restarted) reads as good
     * until a statement fails on it: once more, on a fresh one. */
    if (!retried && pg && PQstatus(pg) == CONNECTION_BAD) {
        retried = true;
        pg = NULL;
        known = -1;
        goto again; /* by path: the instance was read; the credential is what failed */
    }
    /* auth_request turns any status but 2xx, 401 and 403 into a 500: say
     * "unavailable" in a 403 and nginx answers 503 */
    answer(r, 403, clean, "unavailable", NULL);
out:
    explicit_bzero(creds, sizeof(creds));
}
