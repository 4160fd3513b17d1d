/*
 * rpc — answers berth-api's synchronous questions that need Docker (logs,
 * stats, exec; keys.h KEY_RPC_FMT). berth-api never talks to Docker, so it
 * LPUSHes a request and blocks on its reply key; this module pops requests
 * with BLPOP on a Redis connection of its own (with the same watchdog as the
 * job pop), asks Docker on the loop and RPUSHes one JSON answer:
 *   {"ok": {...}} or {"error": {"status": 404|409|503, "message": "..."}}
 * A request past its deadline is dropped: nobody waits for it any more.
 * Requests only carry ids; instance ids are checked before they make a path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/protocol.h"
#include "berth/log.h"
#include "berth/util.h"
#include "docker.h"
#include "redisq.h"
#include "worker.h"

#define RPC_BLOCK_S 5
#define RPC_MAX_INFLIGHT 32
#define RPC_OUTPUT_MAX (1u << 20) /* exec output and log text kept, bytes */

struct rpc {
    struct worker *w;
    struct redisq *q;
    bool popping;
    int inflight;
    ev_timer watchdog, retry;
    char key[128];
};

struct call {
    struct rpc *rpc;
    char id[40], iid[37], kind[16];
    char reply_key[96];
    long timeout_s;
    json_t *req;
};

static struct rpc R;

static void pop_next(void);

static void call_free(struct call *c)
{
    c->rpc->inflight--;
    json_decref(c->req);
    free(c);
    pop_next();
}

static void answer(struct call *c, json_t *ans) /* steals ans */
{
    char *text = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
    json_decref(ans);
    if (!text ||
        !redisq_command(R.w->rq, NULL, NULL, "RPUSH %s %s", c->reply_key, text) ||
        !redisq_command(R.w->rq, NULL, NULL, "EXPIRE %s 30", c->reply_key))
        log_warn("rpc %s: answer not sent", c->id);
    free(text);
    call_free(c);
}

static void fail(struct call *c, int status, const char *msg)
{
    answer(c, rpc_answer_error(status, msg, NULL));
}

static void docker_error(struct call *c, int status, const char *body, size_t len, const char *err)
{
    char msg[512];
    if (status == 0) {
        fail(c, 503, err ? err : "Docker did not answer");
        return;
    }
    if (status == 404) {
        fail(c, 409, "the instance has no container (is it created?)");
        return;
    }
    worker_docker_message(body, len, msg, sizeof(msg));
    if (strstr(msg, "is not running") || strstr(msg, "is paused") || strstr(msg, "is restarting"))
        fail(c, 409, "the instance is not running");
    else
        fail(c, status == 409 ? 409 : 503, msg);
}

/* A JSON string of text that may not be UTF-8: invalid bytes become '?'. */
static json_t *text_json(char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
            s[i] = '?';
    return json_stringn(s, n);
}

/* ---- logs ---- */

/* "2026-11-23T10:34:58.521234567Z" -> seconds and nanoseconds; false if not that. */
static bool parse_ts(const char *s, size_t n, long long *sec, long *nsec)
{
    struct tm tm;
    const char *end;
    char buf[40];
    if (n < 20 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(&tm, 0, sizeof(tm));
    end = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return false;
    *sec = (long long)timegm(&tm);
    *nsec = 0;
    if (*end == '.') {
        long scale = 100000000;
        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            *nsec += (*end - '0') * scale;
    }
    return *end == 'Z';
}

static void on_logs(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct call *c = arg;
    size_t n, start = 0;
    char *text, last[48] = "";
    json_t *lines;
    long long since_s = -1, sec;
    long since_ns = 0, nsec;
    const char *since = json_string_value(json_object_get(c->req, "since"));

    if (status != 200) {
        docker_error(c, status, body, len, err);
        return;
    }
    if (since && sscanf(since, "%lld.%ld", &since_s, &since_ns) < 1)
        since_s = -1;
    text = dexec_demux(body, len, RPC_OUTPUT_MAX, &n);
    if (!text) {
        fail(c, 503, "out of memory");
        return;
    }
    lines = json_array();
    for (size_t i = 0; i <= n; i++) {
        if (i == n || text[i] == '\n') {
            char *line = text + start;
            size_t ll = i - start;
            const char *sp = memchr(line, ' ', ll);
            start = i + 1;
            if (ll == 0 && i == n)
                break;
            /* timestamps=1: "<RFC 3339 nano> <text>" */
            if (sp && parse_ts(line, (size_t)(sp - line), &sec, &nsec)) {
                if (sec < since_s || (sec == since_s && nsec <= since_ns))
                    continue; /* seen by the previous poll */
                snprintf(last, sizeof(last), "%lld.%09ld", sec, nsec);
                ll -= (size_t)(sp + 1 - line);
                line = (char *)sp + 1;
            }
            json_array_append_new(lines, text_json(line, ll));
        }
    }
    free(text);
    answer(c, json_pack("{s:{s:o, s:s}}", "ok", "lines", lines, "last", last[0] ? last : (since ? since : "")));
}

/* ---- stats ---- */

static json_int_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void on_stats(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct call *c = arg;
    json_t *s, *cpu, *pre, *mem, *nets, *v;
    const char *key;
    double cpu_pct = 0;
    json_int_t rx = 0, tx = 0, usage, cache;
    if (status != 200) {
        docker_error(c, status, body, len, err);
        return;
    }
    s = json_loadb(body, len, 0, NULL);
    cpu = json_object_get(s, "cpu_stats");
    pre = json_object_get(s, "precpu_stats");
    {
        double d_total = (double)(num(json_object_get(cpu, "cpu_usage"), "total_usage") -
                                  num(json_object_get(pre, "cpu_usage"), "total_usage"));
        double d_sys = (double)(num(cpu, "system_cpu_usage") - num(pre, "system_cpu_usage"));
        json_int_t ncpu = num(cpu, "online_cpus");
        if (ncpu <= 0)
            ncpu = 1;
        if (d_total > 0 && d_sys > 0)
            cpu_pct = d_total / d_sys * (double)ncpu * 100.0;
    }
    mem = json_object_get(s, "memory_stats");
    usage = num(mem, "usage");
    cache = num(json_object_get(mem, "stats"), "inactive_file");
    if (!cache)
        cache = num(json_object_get(mem, "stats"), "total_inactive_file");
    nets = json_object_get(s, "networks");
    json_object_foreach(nets, key, v)
    {
        rx += num(v, "rx_bytes");
        tx += num(v, "tx_bytes");
    }
    answer(c, json_pack("{s:{s:f, s:I, s:I, s:I, s:I, s:I}}", "ok", "cpu_percent", cpu_pct,
                        "memory_bytes", usage > cache ? usage - cache : usage, "memory_limit_bytes",
                        num(mem, "limit"), "pids", num(json_object_get(s, "pids_stats"), "current"),
                        "net_rx_bytes", rx, "net_tx_bytes", tx));
    json_decref(s);
}

/* ---- exec ---- */

static void on_exec(const struct dexec_result *r, void *arg)
{
    struct call *c = arg;
    json_t *text, *ans;
    if (r->failed) {
        docker_error(c, r->status, r->body, r->len, r->err);
        return;
    }
    text = text_json(r->output, r->output_len);
    if (r->timed_out) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the command did not finish within %ld s", c->timeout_s);
        ans = json_pack("{s:{s:i, s:s, s:o}}", "error", "status", 504, "message", msg, "output",
                        text);
    } else {
        ans = json_pack("{s:{s:o, s:o}}", "ok", "exit_code",
                        r->has_exit_code ? json_integer(r->exit_code) : json_null(), "output",
                        text);
    }
    answer(c, ans);
}

/* ---- dispatch ---- */

static void handle(json_t *req)
{
    struct call *c;
    struct rpc_request rq;
    char path[256], why[128];
    int rc = -1, parsed = rpc_request_parse(req, &rq, why, sizeof(why));

    if (!rq.id[0]) { /* nobody to answer */
        log_warn("rpc: malformed request dropped (%s)", why);
        json_decref(req);
        return;
    }
    if (rq.deadline_ms && rq.deadline_ms < (int64_t)time(NULL) * 1000) {
        log_info("rpc %s: past its deadline, dropped", rq.id);
        json_decref(req);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        json_decref(req);
        return;
    }
    c->rpc = &R;
    R.inflight++;
    c->req = req;
    util_strlcpy(c->id, rq.id, sizeof(c->id));
    util_strlcpy(c->kind, parsed == 0 ? rpc_kind_name(rq.kind) : "?", sizeof(c->kind));
    snprintf(c->reply_key, sizeof(c->reply_key), KEY_RPC_REPLY_FMT, rq.id);
    if (parsed < 0) {
        fail(c, 400, why);
        return;
    }
    util_strlcpy(c->iid, rq.instance_id, sizeof(c->iid));
    switch (rq.kind) {
    case RPC_LOGS:
        if (rq.since[0]) {
            long long ss = 0;
            long sn = 0;
            if (sscanf(rq.since, "%lld.%ld", &ss, &sn) < 1 || ss <= 0)
                rq.since[0] = '\0';
            else
                snprintf(path, sizeof(path),
                         "/containers/berth-%s/logs?stdout=1&stderr=1&timestamps=1&since=%lld.%09ld",
                         c->iid, ss, sn);
        }
        if (!rq.since[0])
            snprintf(path, sizeof(path),
                     "/containers/berth-%s/logs?stdout=1&stderr=1&timestamps=1&tail=%ld", c->iid,
                     rq.tail);
        rc = docker_request(R.w->docker, "GET", path, NULL, 15000, on_logs, c);
        break;
    case RPC_STATS:
        snprintf(path, sizeof(path), "/containers/berth-%s/stats?stream=false", c->iid);
        rc = docker_request(R.w->docker, "GET", path, NULL, 15000, on_stats, c);
        break;
    case RPC_EXEC:
        c->timeout_s = rq.timeout_s;
        snprintf(path, sizeof(path), "berth-%s", c->iid);
        rc = dexec_run(R.w, path, NULL, json_object_get(c->req, "command") /* rq.command, checked */, NULL, c->timeout_s, on_exec, c);
        break;
    case RPC_KINDS:
        break;
    }
    if (rc < 0)
        fail(c, 503, "the worker could not ask Docker");
}

static void on_pop(redisReply *reply, void *arg)
{
    ev_timer_stop(R.w->loop, &R.watchdog);
    R.popping = false;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        json_t *req = json_loadb(reply->element[1]->str, reply->element[1]->len, 0, NULL);
        if (json_is_object(req))
            handle(req);
        else
            json_decref(req);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        log_warn("rpc pop: %s", reply->str);
        ev_timer_set(&R.retry, 2.0, 0.);
        ev_timer_start(R.w->loop, &R.retry);
        return;
    }
    pop_next();
}

static void pop_next(void)
{
    if (R.popping || !R.q || R.inflight >= RPC_MAX_INFLIGHT || ev_is_active(&R.retry))
        return;
    if (!redisq_command(R.q, on_pop, NULL, "BLPOP %s %d", R.key, RPC_BLOCK_S))
        return;
    R.popping = true;
    ev_timer_set(&R.watchdog, RPC_BLOCK_S + 5.0, 0.);
    ev_timer_start(R.w->loop, &R.watchdog);
}

static void on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
    redisq_reset(R.q);
    R.popping = false;
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    pop_next();
}

static void on_up(void *arg)
{
    R.popping = false;
    pop_next();
}

int rpc_start(struct worker *w)
{
    R.w = w;
    snprintf(R.key, sizeof(R.key), KEY_RPC_FMT, w->cfg->node);
    ev_timer_init(&R.watchdog, on_watchdog, 0., 0.);
    ev_timer_init(&R.retry, on_retry, 0., 0.);
    R.q = redisq_new(w->loop, w->cfg->redis_url);
    if (!R.q)
        return -1;
    redisq_on_connect(R.q, on_up, NULL);
    return redisq_start(R.q);
}

void rpc_stop(void)
{
    if (!R.w)
        return;
    ev_timer_stop(R.w->loop, &R.watchdog);
    ev_timer_stop(R.w->loop, &R.retry);
    redisq_free(R.q);
    R.q = NULL;
}
