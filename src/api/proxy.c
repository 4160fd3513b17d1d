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
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"

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
    char user[33], inst[33];
    const char *uri = req_param(r, "BERTH_ORIGINAL_URI");
    const char *p[2] = {user, inst};
    PGconn *pg;
    PGresult *res;

    if (!parse_uri(uri, user, inst)) {
        http_send_error(r, 403, "forbidden", NULL, "not an instance address");
        return;
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
        http_send_error(r, 403, "forbidden", NULL, "this instance is not yours");
        return;
    }
    record_activity(r, PQgetvalue(res, 0, 0));
    PQclear(res);
    http_send_empty(r, 204, NULL);
}
