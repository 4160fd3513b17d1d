/*
 * proxy — the authorisation check behind every request to
 * /container/<user>/<instance>/ (nginx auth_request to the internal location
 * /_berth/auth, which nginx.conf maps to the route below). The same
 * authentication and the same authz_instance(ACT_PROXY) as the API decide:
 * the owner gets through (204); anyone else 403; no credentials 401 (nginx
 * turns that into a redirect to the login page for browser navigations).
 * WebSocket upgrades are ordinary GETs here, so they are checked the same way.
 *
 * Activity (for idle stop) is recorded in Redis, at most once per instance
 * and minute per thread's view — never a database write per request; the
 * worker folds it into instances.last_active_at.
 *
 * Decisions are cached for CACHE_TTL_MS, keyed by the credential's hash and
 * the address's two names: a page with fifty assets, or a busy JupyterLab,
 * costs one database lookup per second or two, not one per request. Any
 * change through the API (every POST, PATCH, DELETE: logout, a revoked token,
 * a disabled user, a deleted instance...) drops the whole cache before and
 * after it runs (router.c), so within this process access taken away is gone
 * at once; with several berth-api processes, another process's change takes
 * effect within CACHE_TTL_MS. Only decisions from the database are cached
 * (204 and 403); 401 and 503 are not.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"

#define CACHE_SLOTS 4096 /* direct-mapped: a collision replaces the older entry */
#define CACHE_TTL_MS 2000

struct decision {
    uint64_t gen;
    int64_t expires_ms;
    char cred[65], user[33], inst[33];
    char instance_id[37]; /* empty: refused */
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

static size_t slot_of(const char *cred, const char *user, const char *inst)
{
    return fnv1a(fnv1a(fnv1a(2166136261u, cred), user), inst) % CACHE_SLOTS;
}

/* 1 allowed (instance_id filled), 0 refused, -1 not cached. */
static int cache_get(const char *cred, const char *user, const char *inst, char instance_id[37])
{
    struct decision *d = &cache[slot_of(cred, user, inst)];
    int rc = -1;
    pthread_mutex_lock(&cache_mu);
    if (d->gen == atomic_load(&cache_gen) && d->expires_ms > util_now_ms() &&
        strcmp(d->cred, cred) == 0 && strcmp(d->user, user) == 0 && strcmp(d->inst, inst) == 0) {
        rc = d->instance_id[0] ? 1 : 0;
        memcpy(instance_id, d->instance_id, 37);
    }
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

/* gen: the generation read before the database was asked, so a change that
 * ran meanwhile leaves this decision stale at once. */
static void cache_put(uint64_t gen, const char *cred, const char *user, const char *inst,
                      const char *instance_id)
{
    struct decision *d = &cache[slot_of(cred, user, inst)];
    pthread_mutex_lock(&cache_mu);
    d->gen = gen;
    d->expires_ms = util_now_ms() + CACHE_TTL_MS;
    util_strlcpy(d->cred, cred, sizeof(d->cred));
    util_strlcpy(d->user, user, sizeof(d->user));
    util_strlcpy(d->inst, inst, sizeof(d->inst));
    util_strlcpy(d->instance_id, instance_id ? instance_id : "", sizeof(d->instance_id));
    pthread_mutex_unlock(&cache_mu);
}

/* Split "/container/<user>/<instance>[/...]" into its two names. */
static bool parse_uri(const char *uri, char user[33], char inst[33])
{
    const char *p, *slash;
    size_t n;

    if (!uri || strncmp(uri, "/container/", 11) != 0)
        return false;
    p = uri + 11;
    slash = strchr(p, '/');
    if (!slash || (n = (size_t)(slash - p)) == 0 || n > 32)
        return false;
    memcpy(user, p, n);
    user[n] = '\0';
    p = slash + 1;
    n = strcspn(p, "/?");
    if (n == 0 || n > 32)
        return false;
    memcpy(inst, p, n);
    inst[n] = '\0';
    return valid_name(user) && valid_name(inst);
}

static void record_activity(struct req *r, const char *instance_id)
{
    /* One slot per thread: a burst of requests to one instance (a page with
     * fifty assets) costs one Redis write a minute, not fifty. */
    static __thread char last_id[37];
    static __thread time_t last_at;
    time_t now = time(NULL);
    redisContext *c;
    redisReply *rep;

    if (strcmp(last_id, instance_id) == 0 && now - last_at < 60)
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

void proxy_auth(struct req *r)
{
    char user[33], inst[33], cred[65], iid[37];
    const char *uri = req_param(r, "BERTH_ORIGINAL_URI");
    const char *p[2] = {user, inst};
    PGconn *pg;
    PGresult *res;
    bool cacheable;
    uint64_t gen = atomic_load(&cache_gen);

    if (!parse_uri(uri, user, inst)) {
        http_send_error(r, 403, "forbidden", NULL, "not an instance address");
        return;
    }
    cacheable = auth_credential_hash(r, cred);
    if (cacheable) {
        int hit = cache_get(cred, user, inst, iid);
        if (hit == 1) {
            record_activity(r, iid);
            http_send_empty(r, 204, NULL);
            return;
        }
        if (hit == 0) {
            http_send_error(r, 403, "forbidden", NULL, "this instance is not yours");
            return;
        }
    }
    if (auth_require(r) < 0)
        return; /* 401 (or 503) sent */
    pg = db_conn(r->th);
    if (!pg) {
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    res = PQexecParams(pg,
                       "SELECT i.id, i.user_id FROM instances i JOIN users u ON u.id = i.user_id"
                       " WHERE u.username = $1 AND i.name = $2 AND i.status <> 'deleted'",
                       2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        http_send_error(r, 503, "unavailable", NULL, "the database is unavailable");
        return;
    }
    /* nginx's auth_request understands 2xx, 401 and 403 only. A missing
     * instance is 403 like another user's, so the check never tells who has
     * which instance. */
    if (PQntuples(res) != 1 || !authz_instance(&r->actor, ACT_PROXY, PQgetvalue(res, 0, 1))) {
        PQclear(res);
        if (cacheable)
            cache_put(gen, cred, user, inst, NULL);
        http_send_error(r, 403, "forbidden", NULL, "this instance is not yours");
        return;
    }
    if (cacheable)
        cache_put(gen, cred, user, inst, PQgetvalue(res, 0, 0));
    record_activity(r, PQgetvalue(res, 0, 0));
    PQclear(res);
    http_send_empty(r, 204, NULL);
}
