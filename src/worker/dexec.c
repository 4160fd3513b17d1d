/*
 * dexec — run a command in a container through the Engine API, on the loop:
 * POST /containers/{name}/exec, POST /exec/{id}/start (attached, no TTY: the
 * output comes back multiplexed), GET /exec/{id}/json for the exit code. Used
 * by the API's exec (rpc.c) and to put users' SSH keys into their containers
 * (sshkeys.c).
 */
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "docker.h"
#include "worker.h"

struct dexec {
    struct worker *w;
    dexec_cb cb;
    void *arg;
    char exec_id[80];
    long timeout_ms; /* of the start call, which runs the command */
    char *output;
    size_t output_len;
    bool timed_out;
};

char *dexec_demux(const char *b, size_t n, size_t keep, size_t *outlen)
{
    char *out = malloc(n + 1);
    size_t o = 0, i = 0;
    bool framed = n >= 8 && (b[0] == 0 || b[0] == 1 || b[0] == 2) && b[1] == 0 && b[2] == 0 &&
                  b[3] == 0;
    if (!out)
        return NULL;
    if (!framed) {
        memcpy(out, b, n);
        o = n;
    } else {
        while (i + 8 <= n) {
            size_t len = (size_t)(unsigned char)b[i + 4] << 24 |
                         (size_t)(unsigned char)b[i + 5] << 16 |
                         (size_t)(unsigned char)b[i + 6] << 8 | (size_t)(unsigned char)b[i + 7];
            i += 8;
            if (len > n - i)
                len = n - i;
            memcpy(out + o, b + i, len);
            o += len;
            i += len;
        }
    }
    if (o > keep) { /* keep the end: the latest output matters */
        memmove(out, out + o - keep, keep);
        o = keep;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static void finish(struct dexec *x, struct dexec_result *r)
{
    static char empty[1];
    r->output = x->output ? x->output : empty;
    r->output_len = x->output_len;
    r->timed_out = x->timed_out;
    x->cb(r, x->arg);
    free(x->output);
    free(x);
}

static void fail_call(struct dexec *x, int status, const char *body, size_t len, const char *err)
{
    struct dexec_result r = {.failed = true, .status = status, .body = body, .len = len, .err = err};
    finish(x, &r);
}

static void on_inspect(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct dexec *x = arg;
    struct dexec_result r = {0};
    json_t *v = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *code = json_object_get(v, "ExitCode");
    if (json_is_integer(code)) {
        r.has_exit_code = true;
        r.exit_code = (long)json_integer_value(code);
    }
    json_decref(v);
    finish(x, &r);
}

static void on_done(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct dexec *x = arg;
    char path[160];
    bool timed_out = status == 0 && docker_failure(x->w->docker) == DOCKER_TIMED_OUT;
    if (status != 200 && status != 101 && !timed_out) {
        fail_call(x, status, body, len, err);
        return;
    }
    x->timed_out = timed_out;
    x->output = dexec_demux(body, len, DEXEC_OUTPUT_MAX, &x->output_len);
    snprintf(path, sizeof(path), "/exec/%s/json", x->exec_id);
    if (docker_request(x->w->docker, "GET", path, NULL, 10000, on_inspect, x) < 0)
        fail_call(x, 0, "", 0, "the worker could not ask Docker");
}

static void on_created(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct dexec *x = arg;
    json_t *v;
    const char *id;
    char path[160];
    if (status != 201) {
        fail_call(x, status, body, len, err);
        return;
    }
    v = json_loadb(body, len, 0, NULL);
    id = json_string_value(json_object_get(v, "Id"));
    if (!id || strlen(id) >= sizeof(x->exec_id) || strspn(id, "0123456789abcdef") != strlen(id)) {
        json_decref(v);
        fail_call(x, 0, "", 0, "Docker gave no exec id");
        return;
    }
    util_strlcpy(x->exec_id, id, sizeof(x->exec_id));
    json_decref(v);
    snprintf(path, sizeof(path), "/exec/%s/start", x->exec_id);
    if (docker_request(x->w->docker, "POST", path, "{\"Detach\":false,\"Tty\":false}", x->timeout_ms,
                       on_done, x) < 0)
        fail_call(x, 0, "", 0, "the worker could not ask Docker");
}

int dexec_run(struct worker *w, const char *container, const char *user, json_t *cmd, json_t *env,
              long timeout_s, dexec_cb cb, void *arg)
{
    struct dexec *x;
    json_t *body;
    char *text;
    char path[256];
    int rc;

    if (!json_is_array(cmd) || strlen(container) > 128)
        return -1;
    body = json_pack("{s:b, s:b, s:O}", "AttachStdout", 1, "AttachStderr", 1, "Cmd", cmd);
    if (body && json_is_array(env))
        json_object_set(body, "Env", env);
    if (body && user)
        json_object_set_new(body, "User", json_string(user));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    x = text ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        free(text);
        return -1;
    }
    x->w = w;
    x->cb = cb;
    x->arg = arg;
    x->timeout_ms = (timeout_s > 0 ? timeout_s : 30) * 1000;
    snprintf(path, sizeof(path), "/containers/%s/exec", container);
    rc = docker_request(w->docker, "POST", path, text, 15000, on_created, x);
    free(text);
    if (rc < 0)
        free(x);
    return rc;
}
