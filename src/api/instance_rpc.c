/*
 * instance_rpc — what only the instance's node can answer, asked of its
 * worker over Redis (the RPC shapes are berth/protocol.h's, the worker's
 * side rpc.c) (API.md "Instances"):
 *   GET  /api/v1/instances/{id}/logs    ?tail=, ?follow=true (server-sent events)
 *   GET  /api/v1/instances/{id}/stats   one sample
 *   POST /api/v1/instances/{id}/exec    {command, timeout_s?} (audited)
 * A follow and an exec wait on the long-call pools (longcall.h), never on a
 * request thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"
#include "longcall.h"


/*
 * Ask the worker of `node` and wait up to wait_s for its answer. req is
 * stolen. Returns the answer object ({"ok": ...} or {"error": ...}), or NULL
 * after sending 503 itself.
 */
static json_t *rpc_call(struct req *r, const char *node, json_t *req, int wait_s)
{
    unsigned char rnd[16];
    char id[33], key[96], *text = NULL;
    const char *why = "";
    redisContext *rc;
    redisReply *rep = NULL;
    json_t *ans = NULL;
    struct timeval tv = {.tv_sec = 4, .tv_usec = 0}, tv2 = {.tv_sec = 2, .tv_usec = 0};

    if (util_random(rnd, sizeof(rnd)) < 0 || !req)
        goto unavailable;
    util_hex(rnd, sizeof(rnd), id);
    json_object_set_new(req, "id", json_string(id));
    json_object_set_new(req, "deadline_ms", json_integer((json_int_t)time(NULL) * 1000 + wait_s * 1000L));
    text = json_dumps(req, JSON_COMPACT);
    snprintf(key, sizeof(key), KEY_RPC_FMT, node);
    if (!text || !enqueue_lpush(r->th, key, text, &why) || !(rc = r->th->redis))
        goto unavailable;
    snprintf(key, sizeof(key), KEY_RPC_REPLY_FMT, id);
    redisSetTimeout(rc, tv);
    /* in 1 s slices, so that a stopping berth-api ends the wait (longcall.h) */
    for (int64_t until = util_now_ms() + wait_s * 1000LL; !ans;) {
        if (longcall_stopping()) {
            redisSetTimeout(rc, tv2);
            json_decref(req);
            free(text);
            http_send_error(r, 503, "unavailable", NULL, "berth-api is stopping");
            return NULL;
        }
        if (util_now_ms() >= until)
            break;
        rep = redisCommand(rc, "BLPOP %s 1", key);
        if (!rep) {
            rq_close(r->th);
            goto unavailable;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
            ans = json_loadb(rep->element[1]->str, rep->element[1]->len, 0, NULL);
            freeReplyObject(rep);
            break;
        }
        freeReplyObject(rep);
    }
    redisSetTimeout(rc, tv2);
    if (!json_is_object(ans)) {
        json_decref(ans);
        json_decref(req);
        free(text);
        http_send_error(r, 503, "unavailable", NULL,
                        "the worker of node %s did not answer within %d s", node, wait_s);
        return NULL;
    }
    json_decref(req);
    free(text);
    return ans;
unavailable:
    json_decref(req);
    free(text);
    http_send_error(r, 503, "unavailable", NULL, "the job queue (Redis) is unavailable");
    return NULL;
}

/* Send an rpc error answer in the API's shape. */
static void rpc_error(struct req *r, json_t *err)
{
    int status = (int)json_integer_value(json_object_get(err, "status"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (status == 409)
        http_send_error(r, 409, "conflict", NULL, "%s", msg ? msg : "conflict");
    else if (status == 400)
        http_send_error(r, 400, "bad_request", NULL, "%s", msg ? msg : "bad request");
    else
        http_send_error(r, 503, "unavailable", NULL, "%s", msg ? msg : "Docker is unavailable");
}

/* Answer r with the worker's answer ans (consumed): its value, or its error. */
static void rpc_answer(struct req *r, json_t *ans)
{
    if (json_object_get(ans, "ok"))
        http_send_json(r, 200, json_incref(json_object_get(ans, "ok")));
    else
        rpc_error(r, json_object_get(ans, "error"));
    json_decref(ans);
}

/* Authorise act on instance id; fills node. false after answering (a
 * refusal audited when r has an audit context). */
static bool rpc_target(struct req *r, enum authz_action act, char node[64])
{
    char owner[37], status[16];
    int found = lc_instance_owner(r, r->params[0], false, owner, status, node);

    if (found < 0)
        return false;
    if (!found || strcmp(status, "deleted") == 0 || !authz_instance(&r->actor, ACT_READ, owner)) {
        refuse(r, 404, "not_found", NULL, "no such instance");
        return false;
    }
    if (!authz_instance(&r->actor, act, owner)) {
        refuse(r, 403, "forbidden", NULL, "your role may not do this to the instance");
        return false;
    }
    return true;
}

/* Write text and flush; false when the client has gone. */
static bool sse_write(struct req *r, const char *text, size_t len)
{
    if (FCGX_PutStr(text, (int)len, r->fcgi->out) != (int)len)
        return false;
    return FCGX_FFlush(r->fcgi->out) == 0 && FCGX_GetError(r->fcgi->out) == 0;
}

static bool sse_text(struct req *r, const char *text)
{
    return sse_write(r, text, strlen(text));
}

/* One `data:` event per line (a CR or NUL cannot end up inside one). */
static bool sse_lines(struct req *r, json_t *lines)
{
    size_t i;
    json_t *v;
    json_array_foreach(lines, i, v)
    {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), o = 0;
        char *buf = malloc(n + 8);
        bool ok;
        if (!buf)
            return false;
        memcpy(buf, "data: ", 6);
        o = 6;
        for (size_t k = 0; k < n; k++)
            if (s[k] != '\r' && s[k] != '\n' && s[k] != '\0')
                buf[o++] = s[k];
        buf[o++] = '\n';
        buf[o++] = '\n';
        ok = sse_write(r, buf, o);
        free(buf);
        if (!ok)
            return false;
    }
    return true;
}

#define FOLLOW_MAX_S 1800 /* an EventSource reconnects by itself after this */

struct follow_arg {
    char node[64];
    long tail;
};

/*
 * GET /logs?follow=true: text/event-stream, the last `tail` lines and then new
 * ones as they come, polled from the worker every second (Docker's logs since
 * the last timestamp seen), until the client leaves, the container goes,
 * FOLLOW_MAX_S passes or berth-api stops. Runs on the follow pool
 * (longcall.h: api_threads / 2 streams at once, 429 beyond), not on a
 * request thread.
 */
static void logs_follow(struct req *r, void *arg)
{
    const struct follow_arg *fa = arg;
    const char *node = fa->node;
    long tail = fa->tail;
    char last[48] = "";
    int64_t until = util_now_ms() + FOLLOW_MAX_S * 1000LL, quiet_since = util_now_ms();
    bool first = true;

    while (util_now_ms() < until) {
        json_t *req = json_pack("{s:s, s:s, s:I}", "kind", "logs", "instance_id", r->params[0],
                                "tail", (json_int_t)tail);
        json_t *ans, *ok;
        if (last[0])
            json_object_set_new(req, "since", json_string(last));
        if (first) {
            ans = rpc_call(r, node, req, 15); /* answers 503 itself on failure */
            if (!ans)
                break;
            if (!json_object_get(ans, "ok")) {
                rpc_error(r, json_object_get(ans, "error"));
                json_decref(ans);
                break;
            }
            http_send_raw(r, 200, "text/event-stream", "X-Accel-Buffering: no\r\n", NULL, 0);
            first = false;
        } else {
            /* after the headers went out errors end the stream quietly */
            struct req quiet = *r;
            quiet.sent = true;
            ans = rpc_call(&quiet, node, req, 15);
            if (!ans || !json_object_get(ans, "ok")) {
                json_decref(ans);
                sse_text(r, "event: end\ndata: the log stream ended\n\n");
                break;
            }
        }
        ok = json_object_get(ans, "ok");
        if (json_string_length(json_object_get(ok, "last")) > 0)
            util_strlcpy(last, json_string_value(json_object_get(ok, "last")), sizeof(last));
        if (json_array_size(json_object_get(ok, "lines")) > 0) {
            quiet_since = util_now_ms();
            if (!sse_lines(r, json_object_get(ok, "lines"))) {
                json_decref(ans);
                break;
            }
        } else if (util_now_ms() - quiet_since > 15000) {
            quiet_since = util_now_ms();
            if (!sse_text(r, ": keep-alive\n\n")) { /* also finds a client that left */
                json_decref(ans);
                break;
            }
        }
        json_decref(ans);
        if (!last[0]) { /* no line yet: from now on, only newer ones */
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            snprintf(last, sizeof(last), "%lld.%09ld", (long long)now.tv_sec, now.tv_nsec);
        }
        {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
        if (longcall_stopping()) {
            sse_text(r, "event: end\ndata: the server is restarting\n\n");
            break;
        }
    }
}

void instances_logs(struct req *r)
{
    char node[64], tail[16] = "", follow[8] = "";
    long n = 200;
    json_t *ans;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    if (req_query(r, "tail", tail, sizeof(tail)) && !util_parse_long(tail, 0, 5000, &n)) {
        http_send_error(r, 400, "invalid_field", "tail", "tail must be a number from 0 to 5000");
        return;
    }
    if (req_query(r, "follow", follow, sizeof(follow)) && strcmp(follow, "true") == 0) {
        struct follow_arg *fa;
        struct longcall *lc;
        if (!rpc_target(r, ACT_OPERATE, node)) /* auth.h: logs follow is operate */
            return;
        if (!(fa = malloc(sizeof(*fa)))) {
            http_send_error(r, 500, "internal", NULL, "out of memory");
            return;
        }
        util_strlcpy(fa->node, node, sizeof(fa->node));
        fa->tail = n;
        if (!(lc = longcall_admit(r, LONGCALL_FOLLOW))) { /* answered 429/503 */
            free(fa);
            return;
        }
        longcall_run(lc, r, logs_follow, fa, free); /* r is the pool's now */
        return;
    }
    if (!rpc_target(r, ACT_READ, node))
        return;
    if (!(ans = rpc_call(r, node,
                         json_pack("{s:s, s:s, s:I}", "kind", "logs", "instance_id", r->params[0],
                                   "tail", (json_int_t)n),
                         15)))
        return;
    rpc_answer(r, ans);
}

void instances_stats(struct req *r)
{
    char node[64];
    json_t *ans;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    if (!rpc_target(r, ACT_READ, node))
        return;
    if (!(ans = rpc_call(r, node,
                         json_pack("{s:s, s:s}", "kind", "stats", "instance_id", r->params[0]), 15)))
        return;
    rpc_answer(r, ans);
}

struct exec_arg {
    char node[64];
    json_t *rpc; /* the exec rpc request */
    int wait_s;
};

static void exec_arg_free(void *p)
{
    struct exec_arg *ea = p;
    json_decref(ea->rpc);
    free(ea);
}

/* On the exec pool (longcall.h): ask the worker and answer as before. */
static void exec_run(struct req *r, void *arg)
{
    struct exec_arg *ea = arg;
    json_t *ans = rpc_call(r, ea->node, ea->rpc, ea->wait_s); /* steals rpc */

    ea->rpc = NULL;
    if (!ans)
        return;
    if (json_object_get(ans, "ok")) {
        http_send_json(r, 200, json_incref(json_object_get(ans, "ok")));
    } else {
        json_t *err = json_object_get(ans, "error");
        if (json_integer_value(json_object_get(err, "status")) == 504)
            http_send_json(r, 200,
                           json_pack("{s:n, s:o, s:b, s:O}", "exit_code", "output",
                                     json_object_get(err, "output")
                                         ? json_incref(json_object_get(err, "output"))
                                         : json_string(""),
                                     "timed_out", 1, "error", json_object_get(err, "message")));
        else
            rpc_error(r, err);
    }
    json_decref(ans);
}

/*
 * POST /exec: validated, authorised and audited here on the request thread;
 * the wait for the worker (up to timeout_s + 10 s) runs on the exec pool, so
 * it never holds a request thread. Beyond exec_per_user calls of one user in
 * flight, or the pool's bound, 429 rate_limited with Retry-After.
 */
void instances_exec(struct req *r)
{
    static const char *const allowed[] = {"command", "timeout_s", NULL};
    char node[64];
    json_t *body, *cmd, *v;
    long timeout = 30;
    size_t i;
    struct exec_arg *ea;
    struct longcall *lc;
    if (!req_change(r, "instance.exec", "instance", valid_uuid(r->params[0]) ? r->params[0] : NULL))
        return;
    if (!rpc_target(r, ACT_OPERATE, node) || !(body = req_body(r, allowed)))
        return;
    cmd = json_object_get(body, "command");
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > TMPL_MAX_ARGS) {
        refuse(r, 400, "invalid_field", "command", "command must be an array of 1-%d strings",
               TMPL_MAX_ARGS);
        json_decref(body);
        return;
    }
    json_array_foreach(cmd, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > TMPL_MAX_TEXT ||
            memchr(json_string_value(v), '\0', json_string_length(v))) {
            refuse(r, 400, "invalid_field", "command",
                   "command items must be strings of at most %d bytes", TMPL_MAX_TEXT);
            json_decref(body);
            return;
        }
    }
    v = json_object_get(body, "timeout_s");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 300) {
            refuse(r, 400, "invalid_field", "timeout_s",
                   "timeout_s must be an integer from 1 to 300");
            json_decref(body);
            return;
        }
        timeout = (long)json_integer_value(v);
    }
    if (!(ea = calloc(1, sizeof(*ea)))) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        json_decref(body);
        return;
    }
    if (!(lc = longcall_admit(r, LONGCALL_EXEC))) { /* answered 429/503: nothing started */
        free(ea);
        json_decref(body);
        return;
    }
    if (audit_ok(r, json_pack("{s:O}", "command", cmd)) < 0)
        log_warn("audit row for exec not written");
    util_strlcpy(ea->node, node, sizeof(ea->node));
    ea->rpc = json_pack("{s:s, s:s, s:O, s:I}", "kind", "exec", "instance_id", r->params[0],
                        "command", cmd, "timeout_s", (json_int_t)timeout);
    ea->wait_s = (int)timeout + 10;
    json_decref(body);
    longcall_run(lc, r, exec_run, ea, exec_arg_free); /* r is the pool's now */
}
