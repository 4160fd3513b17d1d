/*
 * rq — the Redis connection of one request thread (synchronous hiredis with
 * timeouts: a request thread may block, the worker's loop may not). Dropped on
 * any error and re-made on the next use.
 */
#include <string.h>
#include <sys/time.h>

#include "api.h"
#include "berth/log.h"
#include "berth/redis_url.h"

redisContext *rq_conn(struct api_thread *th)
{
    struct redis_addr a;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};

    if (th->redis && !th->redis->err)
        return th->redis;
    rq_close(th);
    if (!redis_url_parse(api_cfg.redis_url, &a))
        return NULL; /* validated at start-up */
    th->redis = a.path[0] ? redisConnectUnixWithTimeout(a.path, tv)
                          : redisConnectWithTimeout(a.host, a.port, tv);
    if (!th->redis || th->redis->err) {
        log_warn("cannot connect to Redis at %s: %s", api_cfg.redis_url,
                 th->redis ? th->redis->errstr : "out of memory");
        rq_close(th);
        return NULL;
    }
    redisSetTimeout(th->redis, tv);
    return th->redis;
}

void rq_close(struct api_thread *th)
{
    if (th->redis)
        redisFree(th->redis);
    th->redis = NULL;
}
