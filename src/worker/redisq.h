/*
 * redisq — the worker's Redis connection: hiredis async on the libev loop,
 * reconnecting by itself (backoff timer) when Redis goes away. Carries the
 * heartbeat now; the job pop (BLMOVE on a second connection) lives here too.
 */
#ifndef BERTH_WORKER_REDISQ_H
#define BERTH_WORKER_REDISQ_H

#include <ev.h>
#include <stdbool.h>

struct redisq;

struct redisq *redisq_new(struct ev_loop *loop, const char *url);
void redisq_free(struct redisq *q);

/* Begin connecting; reconnects on its own afterwards. 0 / -1 (bad url). */
int redisq_start(struct redisq *q) __attribute__((warn_unused_result));

bool redisq_connected(const struct redisq *q);

/* SET key value EX ttl, fire and forget. false when not connected. */
bool redisq_set_ex(struct redisq *q, const char *key, const char *value, long ttl_s);

#endif
