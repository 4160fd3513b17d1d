/*
 * enqueue — berth-api's producer of jobs (enqueue.h): the row in the
 * caller's transaction, the push after COMMIT. One place for the key, the
 * retry on a fresh connection and the log line, so that every producer of
 * berth-api (instances, volumes, users, SSH keys) behaves the same when
 * Redis has gone away and come back.
 */
#include <hiredis/hiredis.h>

#include "berth/log.h"
#include "berth/protocol.h"
#include "enqueue.h"

bool enqueue_init(struct req *r, struct job_spec *spec, enum job_kind kind, const char *node)
{
    if (job_spec_init(spec, kind, node) == 0)
        return true;
    req_unavailable(r, "no random bytes for a job id");
    return false;
}

bool enqueue_job(struct req *r, const struct job_spec *spec)
{
    const char *p[JOB_INSERT_NPARAMS];
    char args[JOB_ARGS_MAX];
    PGresult *res;

    job_insert_params(spec, p, args);
    res = req_q(r, JOB_INSERT_SQL, JOB_INSERT_NPARAMS, p);
    PQclear(res);
    return res != NULL;
}

/* One LPUSH on this thread's connection; a broken connection is closed so
 * that the next rq_conn() makes a fresh one. */
static bool push_once(struct api_thread *th, const char *key, const char *job_id,
                      const char **why)
{
    redisContext *rc = rq_conn(th);
    redisReply *rep;
    bool ok;

    if (!rc) {
        *why = "Redis unavailable";
        return false;
    }
    rep = redisCommand(rc, "LPUSH %s %s", key, job_id);
    ok = rep && rep->type == REDIS_REPLY_INTEGER;
    if (!ok)
        *why = rep && rep->type == REDIS_REPLY_ERROR ? "Redis refused the push" : "connection lost";
    if (!rep || rc->err)
        rq_close(th);
    if (rep)
        freeReplyObject(rep);
    return ok;
}

bool enqueue_lpush(struct api_thread *th, const char *key, const char *value, const char **why)
{
    /* Retry only a connection that predates this push: it may have gone
     * stale across a Redis restart. A fresh connection that failed would
     * only fail again, and each try can cost the request its timeouts. */
    bool had = th->redis && !th->redis->err;
    return push_once(th, key, value, why) || (had && push_once(th, key, value, why));
}

bool enqueue_push_on(struct api_thread *th, const char *node, const char *job_id)
{
    char key[128];
    const char *why = "";

    if (!job_id[0])
        return true;
    if (job_queue_key(node, key, sizeof(key)) < 0) {
        log_warn("job %s not pushed: node name too long", job_id);
        return false;
    }
    if (enqueue_lpush(th, key, job_id, &why))
        return true;
    log_warn("job %s not pushed to %s: %s (the worker's reconcile will find it)", job_id, key,
             why);
    return false;
}

bool enqueue_push(struct req *r, const char *node, const char *job_id)
{
    return enqueue_push_on(r->th, node, job_id);
}
