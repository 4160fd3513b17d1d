/*
 * protocol — job kinds and arguments, the instance status transition table
 * and the RPC shapes shared by berth-api and berth-worker (berth/protocol.h).
 */
#include "berth/protocol.h"

#include <stdio.h>
#include <string.h>

#include "berth/util.h"
#include "berth/validate.h"

/* The index of name in names[n], or -1: the one lookup of every enum here. */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* ---- jobs ---- */

static const char *const job_names[JOB_KINDS] = {
    [JOB_CREATE] = "create",
    [JOB_START] = "start",
    [JOB_STOP] = "stop",
    [JOB_RESTART] = "restart",
    [JOB_DELETE] = "delete",
    [JOB_VOLUME_DELETE] = "volume_delete",
    [JOB_USER_DELETE] = "user_delete",
    [JOB_SSH_KEYS] = "ssh_keys",
    [JOB_ROUTES_SYNC] = "routes_sync",
};

const char *job_kind_name(enum job_kind kind)
{
    return (unsigned)kind < JOB_KINDS ? job_names[kind] : NULL;
}

bool job_kind_parse(const char *name, enum job_kind *out)
{
    int k = name_index(job_names, JOB_KINDS, name);
    if (k < 0)
        return false;
    *out = (enum job_kind)k;
    return true;
}

static bool takes_delete_volumes(enum job_kind kind)
{
    return kind == JOB_DELETE || kind == JOB_USER_DELETE;
}

int job_args_text(enum job_kind kind, const struct job_args *args, char *out, size_t outlen)
{
    int n;
    if (takes_delete_volumes(kind))
        n = snprintf(out, outlen, "{\"delete_volumes\":%s}",
                     args && args->delete_volumes ? "true" : "false");
    else
        n = snprintf(out, outlen, "{}");
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int job_args_parse(enum job_kind kind, const char *text, struct job_args *out, char *err,
                   size_t errlen)
{
    json_error_t je;
    json_t *o, *v;
    memset(out, 0, sizeof(*out));
    if (!text || !*text)
        return 0; /* a row from before jobs.args had a default */
    o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "job arguments are not a JSON object");
        json_decref(o);
        return -1;
    }
    if (takes_delete_volumes(kind) && (v = json_object_get(o, "delete_volumes"))) {
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "delete_volumes must be true or false");
            json_decref(o);
            return -1;
        }
        out->delete_volumes = json_is_true(v);
    }
    json_decref(o);
    return 0;
}

int job_spec_init(struct job_spec *spec, enum job_kind kind, const char *node)
{
    memset(spec, 0, sizeof(*spec));
    spec->kind = kind;
    spec->node = node;
    return util_uuid(spec->id);
}

void job_insert_params(const struct job_spec *spec, const char *p[JOB_INSERT_NPARAMS],
                       char argbuf[JOB_ARGS_MAX])
{
    if (job_args_text(spec->kind, &spec->args, argbuf, JOB_ARGS_MAX) < 0)
        util_strlcpy(argbuf, "{}", JOB_ARGS_MAX); /* cannot happen: the texts are short */
    p[0] = spec->id;
    p[1] = job_kind_name(spec->kind);
    p[2] = spec->node;
    p[3] = spec->instance_id;
    p[4] = spec->volume_id;
    p[5] = spec->user_id;
    p[6] = argbuf;
}

int job_queue_key(const char *node, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, KEY_JOBS_FMT, node);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

double job_backoff_s(int attempts)
{
    double d = 1.0;
    for (int i = 1; i < attempts && d < 30.0; i++)
        d *= 2.0;
    return d > 30.0 ? 30.0 : d;
}

/* ---- instance statuses ---- */

static const char *const status_names[ST_COUNT] = {
    [ST_PENDING] = "pending",   [ST_CREATING] = "creating",     [ST_RUNNING] = "running",
    [ST_STOPPING] = "stopping", [ST_STOPPED] = "stopped",       [ST_RESTARTING] = "restarting",
    [ST_DELETING] = "deleting", [ST_DELETED] = "deleted",       [ST_ERROR] = "error",
};

static const char *const actor_names[BY_COUNT] = {
    [BY_API] = "api", [BY_JOB] = "job", [BY_EVENT] = "docker event",
    [BY_RECONCILE] = "reconcile", [BY_IDLE] = "idle stop",
};

#define S(x) (1u << (x))
#define ANY_BUT_DELETED (S(ST_COUNT) - 1u - S(ST_DELETED))

/*
 * The transition table: may[to][who] is the set of statuses `who` may move
 * an instance from, to `to`. Read it by row:
 *  pending     a start (API) of a stopped or failed instance, before its job.
 *  creating    the create/start job making the container.
 *  running     the job that started it (not once a delete is asked for); Docker's start event or reconcile
 *              finding a stopped/failed one running again (restart policy).
 *  stopping    a stop (API) of anything not stopped, or the idle stop.
 *  stopped     the job that stopped it; Docker's die event or reconcile
 *              finding a running one's container exited.
 *  restarting  a restart (API), or berth-api --sync-routes moving one.
 *  deleting    a delete (API), or a user_delete job for each of the user's.
 *  deleted     the delete job.
 *  error       a job failing for good; Docker saying the container died
 *              right after start or was removed; reconcile finding it gone.
 */
static const unsigned may[ST_COUNT][BY_COUNT] = {
    [ST_PENDING] = {[BY_API] = S(ST_STOPPED) | S(ST_ERROR)},
    [ST_CREATING] = {[BY_JOB] = S(ST_PENDING) | S(ST_CREATING) | S(ST_ERROR) | S(ST_STOPPED)},
    [ST_RUNNING] = {[BY_JOB] = ANY_BUT_DELETED & ~S(ST_DELETING),
                    [BY_EVENT] = S(ST_STOPPED) | S(ST_ERROR),
                    [BY_RECONCILE] = S(ST_STOPPED) | S(ST_ERROR)},
    [ST_STOPPING] = {[BY_API] = ANY_BUT_DELETED & ~(S(ST_STOPPED) | S(ST_DELETING)),
                     [BY_IDLE] = S(ST_RUNNING)},
    [ST_STOPPED] = {[BY_JOB] = ANY_BUT_DELETED & ~S(ST_DELETING),
                    [BY_EVENT] = S(ST_RUNNING) | S(ST_STOPPING),
                    [BY_RECONCILE] = S(ST_RUNNING)},
    [ST_RESTARTING] = {[BY_API] = ANY_BUT_DELETED & ~S(ST_DELETING)},
    [ST_DELETING] = {[BY_API] = ANY_BUT_DELETED,
                     [BY_JOB] = ANY_BUT_DELETED & ~S(ST_DELETING)},
    [ST_DELETED] = {[BY_JOB] = ANY_BUT_DELETED},
    [ST_ERROR] = {[BY_JOB] = ANY_BUT_DELETED,
                  [BY_EVENT] = S(ST_RUNNING) | S(ST_STOPPED) | S(ST_STOPPING) | S(ST_ERROR),
                  [BY_RECONCILE] = S(ST_RUNNING) | S(ST_STOPPED) | S(ST_STOPPING)},
};

const char *status_name(enum inst_status st)
{
    return (unsigned)st < ST_COUNT ? status_names[st] : NULL;
}

bool status_parse(const char *name, enum inst_status *out)
{
    int s = name_index(status_names, ST_COUNT, name);
    if (s < 0)
        return false;
    *out = (enum inst_status)s;
    return true;
}

const char *status_actor_name(enum status_actor who)
{
    return (unsigned)who < BY_COUNT ? actor_names[who] : NULL;
}

enum inst_status status_on_request(enum job_kind kind, enum inst_status from)
{
    enum inst_status to;

    switch (kind) {
    case JOB_START:
        to = ST_PENDING; /* only from stopped or failed; otherwise it runs or is on its way */
        break;
    case JOB_STOP:
        to = ST_STOPPING;
        break;
    case JOB_RESTART:
        to = ST_RESTARTING;
        break;
    case JOB_DELETE:
        to = ST_DELETING;
        break;
    default:
        return from;
    }
    return status_may(from, to, BY_API) ? to : from;
}

bool status_may(enum inst_status from, enum inst_status to, enum status_actor who)
{
    if ((unsigned)from >= ST_COUNT || (unsigned)to >= ST_COUNT || (unsigned)who >= BY_COUNT)
        return false;
    return (may[to][who] & S(from)) != 0;
}

int status_from_set(enum inst_status to, enum status_actor who, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen < 3 || (unsigned)to >= ST_COUNT || (unsigned)who >= BY_COUNT)
        return -1;
    out[n++] = '{';
    for (int s = 0; s < ST_COUNT; s++) {
        size_t l;
        if (!(may[to][who] & S(s)))
            continue;
        l = strlen(status_names[s]);
        if (n + l + 3 > outlen)
            return -1;
        if (n > 1)
            out[n++] = ',';
        memcpy(out + n, status_names[s], l);
        n += l;
    }
    out[n++] = '}';
    out[n] = '\0';
    return 0;
}

const char *status_guard(enum inst_status to, enum status_actor who, char buf[STATUS_SET_MAX])
{
    if (status_from_set(to, who, buf, STATUS_SET_MAX) < 0)
        memcpy(buf, "{}", 3);
    return buf;
}

/* ---- RPCs ---- */

static const char *const rpc_names[RPC_KINDS] = {
    [RPC_LOGS] = "logs", [RPC_STATS] = "stats", [RPC_EXEC] = "exec",
};

const char *rpc_kind_name(enum rpc_kind kind)
{
    return (unsigned)kind < RPC_KINDS ? rpc_names[kind] : NULL;
}

json_t *rpc_request_json(const struct rpc_request *rq)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "id", rq->id, "kind", rpc_kind_name(rq->kind),
                          "instance_id", rq->instance_id, "deadline_ms",
                          (json_int_t)rq->deadline_ms);
    if (!o)
        return NULL;
    if (rq->kind == RPC_LOGS) {
        json_object_set_new(o, "tail", json_integer(rq->tail));
        if (rq->since[0])
            json_object_set_new(o, "since", json_string(rq->since));
    } else if (rq->kind == RPC_EXEC) {
        json_object_set_new(o, "command", json_deep_copy(rq->command));
        json_object_set_new(o, "timeout_s", json_integer(rq->timeout_s));
    }
    return o;
}

static bool command_valid(const json_t *cmd)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(cmd) || json_array_size(cmd) == 0)
        return false;
    json_array_foreach(cmd, i, v) if (!json_is_string(v)) return false;
    return true;
}

int rpc_request_parse(const json_t *obj, struct rpc_request *out, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(obj, "id"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *iid = json_string_value(json_object_get(obj, "instance_id"));
    const char *since = json_string_value(json_object_get(obj, "since"));
    const json_t *tail = json_object_get(obj, "tail"), *to = json_object_get(obj, "timeout_s");
    int k;

    memset(out, 0, sizeof(*out));
    if (!id || strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        snprintf(err, errlen, "no valid request id");
        return -1;
    }
    util_strlcpy(out->id, id, sizeof(out->id));
    k = name_index(rpc_names, RPC_KINDS, kind);
    if (k < 0) {
        snprintf(err, errlen, "unknown request kind");
        return -1;
    }
    out->kind = (enum rpc_kind)k;
    if (!valid_uuid(iid)) {
        snprintf(err, errlen, "no valid instance id");
        return -1;
    }
    util_strlcpy(out->instance_id, iid, sizeof(out->instance_id));
    out->deadline_ms = (int64_t)json_integer_value(json_object_get(obj, "deadline_ms"));
    out->tail = json_is_integer(tail) ? (long)json_integer_value(tail) : RPC_TAIL_DEFAULT;
    if (out->tail < 0 || out->tail > RPC_TAIL_MAX)
        out->tail = RPC_TAIL_DEFAULT;
    /* "<seconds>.<nanoseconds>" as Docker's log timestamps give it */
    if (since && strlen(since) < sizeof(out->since) && strspn(since, "0123456789.") == strlen(since))
        util_strlcpy(out->since, since, sizeof(out->since));
    out->timeout_s = json_is_integer(to) ? (long)json_integer_value(to) : RPC_EXEC_TIMEOUT_DEFAULT;
    if (out->timeout_s < 1 || out->timeout_s > RPC_EXEC_TIMEOUT_MAX)
        out->timeout_s = RPC_EXEC_TIMEOUT_DEFAULT;
    if (out->kind == RPC_EXEC) {
        out->command = json_object_get(obj, "command");
        if (!command_valid(out->command)) {
            snprintf(err, errlen, "command must be a non-empty array of strings");
            return -1;
        }
    }
    return 0;
}

json_t *rpc_answer_ok(json_t *value)
{
    return json_pack("{s:o}", "ok", value ? value : json_null());
}

json_t *rpc_answer_error(int status, const char *message, json_t *extra)
{
    json_t *e = json_pack("{s:i, s:s}", "status", status, "message", message ? message : "");
    if (e && extra)
        json_object_update(e, extra);
    json_decref(extra);
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

int rpc_answer_parse(const json_t *ans, const json_t **value, int *status, const char **message,
                     const json_t **error)
{
    const json_t *ok = json_object_get(ans, "ok"), *e = json_object_get(ans, "error");
    if (ok) {
        *value = ok;
        return 0;
    }
    if (json_is_object(e) && json_is_integer(json_object_get(e, "status"))) {
        *status = (int)json_integer_value(json_object_get(e, "status"));
        *message = json_string_value(json_object_get(e, "message"));
        if (!*message)
            *message = "";
        *error = e;
        return 1;
    }
    return -1;
}
