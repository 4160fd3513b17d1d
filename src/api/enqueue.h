/*
 * enqueue.h — berth-api's half of the enqueue contract (berth/protocol.h):
 * the jobs row goes into the caller's transaction, and after COMMIT the job
 * id is pushed onto its node's list here. Only src/api includes it.
 */
#ifndef BERTH_API_ENQUEUE_H
#define BERTH_API_ENQUEUE_H

#include <stdbool.h>

#include "api.h"
#include "berth/protocol.h"

/* A fresh job of kind for node into spec (job_spec_init: a new id, ids and
 * arguments cleared). false after answering 503 (no randomness; r's
 * transaction rolled back). */
bool enqueue_init(struct req *r, struct job_spec *spec, enum job_kind kind, const char *node)
    __attribute__((warn_unused_result));
/* The jobs row of spec (status queued) in r's open transaction
 * (JOB_INSERT_SQL). false after answering 503 (req_q). */
bool enqueue_job(struct req *r, const struct job_spec *spec) __attribute__((warn_unused_result));

/*
 * LPUSH job_id onto KEY_JOBS_FMT of node, after COMMIT. A push that fails
 * on this thread's existing connection (gone stale across a Redis restart)
 * is retried once on a fresh one; a push that still fails is only
 * logged, and the worker's reconcile (and its scan of open jobs when it
 * reconnects) finds the queued row. Request thread; true when pushed.
 * An empty job_id pushes nothing (true).
 */
bool enqueue_push(struct req *r, const char *node, const char *job_id);
/* LPUSH value onto key on th's connection, retried once on a fresh one when
 * that connection predates the call (it may have gone stale across a Redis
 * restart). false with a few words in *why. For every push of berth-api:
 * jobs (above) and RPC requests (instance_rpc.c). */
bool enqueue_lpush(struct api_thread *th, const char *key, const char *value, const char **why);
/* The same on a thread's connection, for the administrative commands that
 * run outside a request (admin.c). */
bool enqueue_push_on(struct api_thread *th, const char *node, const char *job_id);

#endif
