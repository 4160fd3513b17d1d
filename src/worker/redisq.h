/*
 * redisq — the worker's Redis connection: hiredis async on the libev loop,
 * reconnecting by itself (backoff timer) when Redis goes away. Carries the
 * heartbeat now; the job pop (BLMOVE on a second connection) lives here too.
 */
#ifndef BERTH_WORKER_REDISQ_H
#define BERTH_WORKER_REDISQ_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

struct redisq;

struct redisq *redisq_new(struct ev_loop *loop, const char *url);
void redisq_free(struct redisq *q);

/* Begin connecting; reconnects on its own afterwards. 0 / -1 (bad url). */
int redisq_start(struct redisq *q) __attribute__((warn_unused_result));

bool redisq_connected(const struct redisq *q);

/* SET key value EX ttl, fire and forget. false when not connected. */
bool redisq_set_ex(struct redisq *q, const char *key, const char *value, long ttl_s);

/* Reply callback: reply is borrowed (hiredis frees it), NULL when the
 * connection went away before the answer. */
typedef void (*redisq_cb)(redisReply *reply, void *arg);

/* Send one command (hiredis format, arguments as %s/%d). cb may be NULL.
 * false when not connected (cb will not be called). */
bool redisq_command(struct redisq *q, redisq_cb cb, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Called on the loop after every (re)connect. */
void redisq_on_connect(struct redisq *q, void (*cb)(void *arg), void *arg);

/* Drop the connection now (pending callbacks get NULL) and reconnect after
 * the backoff: the watchdog's answer to a command that never returns. Not
 * from inside a reply callback. */
void redisq_reset(struct redisq *q);

#endif
