/*
 * redisq — see redisq.h. hiredis owns the async context and frees it after a
 * disconnect; we only drop our pointer in the disconnect callback (never free
 * inside hiredis' own callbacks) and schedule a reconnect.
 */
#include "redisq.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/redis_url.h"

struct redisq {
    struct ev_loop *loop;
    struct redis_addr addr;
    redisAsyncContext *ac;
    bool connected;
    ev_timer retry;
    double backoff;
    void (*on_up)(void *arg);
    void *on_up_arg;
};

static void schedule_retry(struct redisq *q)
{
    ev_timer_stop(q->loop, &q->retry);
    ev_timer_set(&q->retry, q->backoff, 0.);
    ev_timer_start(q->loop, &q->retry);
    q->backoff = q->backoff < 5.0 ? q->backoff * 2 : 5.0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redisq *q = ac->data;
    if (status != REDIS_OK) {
        log_warn("cannot connect to Redis: %s; retrying in %.1fs", ac->errstr, q->backoff);
        q->ac = NULL; /* hiredis frees it */
        schedule_retry(q);
        return;
    }
    q->connected = true;
    q->backoff = 0.25;
    log_info("connected to Redis");
    if (q->on_up)
        q->on_up(q->on_up_arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redisq *q = ac->data;
    q->ac = NULL;
    q->connected = false;
    if (status != REDIS_OK) {
        log_warn("lost Redis: %s; reconnecting", ac->errstr);
        schedule_retry(q);
    }
}

static void do_connect(struct redisq *q)
{
    q->ac = q->addr.path[0] ? redisAsyncConnectUnix(q->addr.path)
                            : redisAsyncConnect(q->addr.host, q->addr.port);
    if (!q->ac || q->ac->err) {
        log_warn("cannot connect to Redis: %s", q->ac ? q->ac->errstr : "out of memory");
        if (q->ac)
            redisAsyncFree(q->ac);
        q->ac = NULL;
        schedule_retry(q);
        return;
    }
    q->ac->data = q;
    redisLibevAttach(q->loop, q->ac);
    redisAsyncSetConnectCallback(q->ac, on_connect);
    redisAsyncSetDisconnectCallback(q->ac, on_disconnect);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    do_connect(w->data);
}

struct redisq *redisq_new(struct ev_loop *loop, const char *url)
{
    struct redisq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    if (!redis_url_parse(url, &q->addr)) {
        free(q);
        return NULL;
    }
    q->loop = loop;
    q->backoff = 0.25;
    ev_timer_init(&q->retry, on_retry, 0., 0.);
    q->retry.data = q;
    return q;
}

int redisq_start(struct redisq *q)
{
    do_connect(q);
    return 0;
}

void redisq_free(struct redisq *q)
{
    if (!q)
        return;
    ev_timer_stop(q->loop, &q->retry);
    if (q->ac) /* runs on_disconnect synchronously with REDIS_OK: no retry */
        redisAsyncFree(q->ac);
    free(q);
}

bool redisq_connected(const struct redisq *q)
{
    return q->connected;
}

bool redisq_set_ex(struct redisq *q, const char *key, const char *value, long ttl_s)
{
    if (!q->connected || !q->ac)
        return false;
    return redisAsyncCommand(q->ac, NULL, NULL, "SET %s %s EX %ld", key, value, ttl_s) == REDIS_OK;
}

struct cmd {
    redisq_cb cb;
    void *arg;
};

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cmd *c = privdata;
    redisq_cb cb = c->cb;
    void *arg = c->arg;
    free(c);
    cb(reply, arg);
}

bool redisq_command(struct redisq *q, redisq_cb cb, void *arg, const char *fmt, ...)
{
    va_list ap;
    int rc;
    struct cmd *c = NULL;

    if (!q->connected || !q->ac)
        return false;
    if (cb) {
        c = malloc(sizeof(*c));
        if (!c)
            return false;
        c->cb = cb;
        c->arg = arg;
    }
    va_start(ap, fmt);
    rc = redisvAsyncCommand(q->ac, cb ? on_reply : NULL, c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(c);
        return false;
    }
    return true;
}

void redisq_on_connect(struct redisq *q, void (*cb)(void *arg), void *arg)
{
    q->on_up = cb;
    q->on_up_arg = arg;
}

void redisq_reset(struct redisq *q)
{
    redisAsyncContext *ac = q->ac;
    if (ac) {
        log_warn("Redis did not answer in time; reconnecting");
        redisAsyncFree(ac); /* pending callbacks get NULL; on_disconnect clears q->ac */
    }
    q->ac = NULL;
    q->connected = false;
    schedule_retry(q);
}
