/*
 * longcall — calls that wait long for a worker (exec, logs follow) run on
 * small pools of their own, so they never pin a request thread (longcall.c).
 */
#ifndef BERTH_API_LONGCALL_H
#define BERTH_API_LONGCALL_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"

enum longcall_pool {
    LONGCALL_EXEC,   /* exec_threads threads, 4 x exec_threads in flight, exec_per_user */
    LONGCALL_FOLLOW, /* logs?follow=true: api_threads / 2 streams at once, no queue */
};

typedef void (*longcall_fn)(struct req *r, void *arg);

/* Start the pools (server_start). 0 / -1 (logged). */
int longcall_start(void) __attribute__((warn_unused_result));

/* From now on nothing new is admitted; queued calls are answered 503 and
 * running ones end within about a second (rpc waits and follows look at
 * longcall_stopping()). */
void longcall_begin_stop(void);

/* Wait until deadline_ms (util_now_ms) for the pool threads; join and free
 * them when all have left. */
void longcall_finish_stop(int64_t deadline_ms);

bool longcall_stopping(void);

struct longcall;

/*
 * Admit one call of `pool` for r's user: NULL after answering 429
 * rate_limited with Retry-After (per-user cap exec_per_user, or the pool's
 * bound) or 503 (stopping) itself -- nothing started. Once admitted, the
 * caller must longcall_run() it (audit rows and the like go in between).
 */
struct longcall *longcall_admit(struct req *r, enum longcall_pool pool)
    __attribute__((warn_unused_result));

/*
 * Hand r -- its FastCGI request included -- to the pool: a pool thread runs
 * fn(r', arg) on a copy r' of r with a thread context of its own (its own
 * Redis connection, no PostgreSQL one), sends 500 if fn sent nothing, then
 * FCGX_Finish_r's and frees the FastCGI request, and frees arg with free_arg
 * (may be NULL). Sets r->handed_off: the caller must return without
 * touching r again (its fcgi, method, path and query are the pool's now).
 * During shutdown the call is answered 503 instead of run.
 */
void longcall_run(struct longcall *lc, struct req *r, longcall_fn fn, void *arg,
                  void (*free_arg)(void *));

#endif
