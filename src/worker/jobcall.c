/*
 * jobcall — the calls a job makes (job.h). Each PostgreSQL and Docker call
 * of a job carries the job's epoch; its answer reaches the job's callback
 * only when the attempt that made it still runs (job_timeout_s may have
 * given it up meanwhile), restarts the job's deadline, and lets the job be
 * freed once the last answer is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "job.h"

/* ---- the calls of a job: answers of a given-up attempt are dropped ---- */

struct call *call_new(struct job *j)
{
    struct call *c = calloc(1, sizeof(*c));
    if (c) {
        c->j = j;
        c->epoch = j->epoch;
        j->inflight++;
    }
    return c;
}

bool call_end(struct call *c, struct job **out)
{
    struct job *j = c->j;
    bool live = c->epoch == j->epoch && !j->dead;
    j->inflight--;
    free(c);
    if (live && ev_is_active(&j->deadline))
        ev_timer_again(j->rn->w->loop, &j->deadline);
    if (!live && j->dead && j->inflight == 0)
        ev_check_start(j->rn->w->loop, &j->rn->reaper);
    *out = j;
    return live;
}

static void on_q(PGresult *res, const char *err, void *arg)
{
    struct call *c = arg;
    pg_cb cb = c->pg;
    struct job *j;
    if (call_end(c, &j))
        cb(res, err, j);
}

void q(struct job *j, const char *sql, int n, const char *const *p, pg_cb cb)
{
    struct call *c = call_new(j);
    if (c)
        c->pg = cb;
    if (!c || pg_query(j->rn->w->pg, sql, n, p, on_q, c) < 0) {
        if (c) {
            j->inflight--;
            free(c);
        }
        /* queue full: hold the job and start it over from its row later --
         * or, when only its outcome is left to write, write that again */
        log_warn("job %s: PostgreSQL queue full; trying again in 2 s", j->id);
        job_hold(j, 2.0, j->outcome.set ? STEP_OUTCOME : STEP_LOAD);
    }
}

/* A query whose outcome only matters for the log. */
static void on_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("statement failed: %s", err);
}

void q_detached(struct worker *w, const char *sql, int n, const char *const *p)
{
    if (pg_query(w->pg, sql, n, p, on_logged, NULL) < 0)
        log_warn("PostgreSQL queue full: a statement was dropped");
}

void event(struct job *j, const char *kind, const char *msg)
{
    const char *p[3] = {j->instance_id, kind, msg};
    if (!j->instance_id[0])
        return;
    q_detached(j->rn->w,
               "INSERT INTO instance_events (instance_id, kind, message) SELECT $1, $2, $3"
               " WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1)",
               3, p);
}

static void on_dcall(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct call *c = arg;
    docker_cb cb = c->done;
    struct job *j;
    if (call_end(c, &j))
        cb(status, body, len, err, j);
}

static void on_dline(const char *line, size_t len, void *arg)
{
    struct call *c = arg;
    if (c->epoch != c->j->epoch || c->j->dead)
        return;
    if (ev_is_active(&c->j->deadline)) /* a line of progress is an answer */
        ev_timer_again(c->j->rn->w->loop, &c->j->deadline);
    c->line(line, len, c->j);
}

static void docker_start(struct job *j, const char *method, const char *path, const char *body,
                         long timeout_ms, docker_line_cb line, docker_cb done)
{
    struct call *c = call_new(j);
    int rc = -1;
    if (c) {
        c->done = done;
        c->line = line;
        rc = line ? docker_stream(j->rn->w->docker, method, path, body, timeout_ms, on_dline,
                                  on_dcall, c)
                  : docker_request(j->rn->w->docker, method, path, body, timeout_ms, on_dcall, c);
    }
    if (rc < 0) {
        if (c) {
            j->inflight--;
            free(c);
        }
        job_fail(j, "the worker could not start a Docker request", true);
    }
}

void dcall(struct job *j, const char *method, const char *path, const char *body,
           long timeout_ms, docker_cb cb)
{
    docker_start(j, method, path, body, timeout_ms, NULL, cb);
}

void dstream(struct job *j, const char *method, const char *path, long timeout_ms,
             docker_line_cb line, docker_cb done)
{
    docker_start(j, method, path, NULL, timeout_ms, line, done);
}

void docker_failed(struct job *j, const char *what, int status, const char *body, size_t len,
                   const char *err)
{
    char msg[600], why[900];
    if (status == 0) {
        snprintf(why, sizeof(why), "%s: %s", what, err ? err : "Docker did not answer");
        job_fail(j, why, true);
        return;
    }
    worker_docker_message(body, len, msg, sizeof(msg));
    snprintf(why, sizeof(why), "%s: Docker said %s (HTTP %d)", what, msg, status);
    job_fail(j, why, status >= 500);
}

