/*
 * protocol — the contract between berth-api and berth-worker, in one place.
 *
 * The two programs share PostgreSQL (the truth) and Redis (work and live
 * signals, berth/keys.h). What one writes the other reads, so the names and
 * shapes live here, not as strings in each program:
 *
 *   jobs       the kinds, their arguments (jobs.args, built and parsed with
 *              jansson) and the enqueue contract below;
 *   statuses   an instance's status as an enum, with the one table of legal
 *              transitions that every status write uses;
 *   RPCs       the request/answer shapes of logs, stats and exec (KEY_RPC_FMT).
 *
 * The enqueue contract (both programs):
 *   1. the jobs row is written in the caller's transaction, together with the
 *      change it serves (JOB_INSERT_SQL, or an INSERT ... SELECT naming the
 *      kind with job_kind_name() and the arguments with job_args_text());
 *   2. the job id is pushed onto KEY_JOBS_FMT of the job's node only after
 *      COMMIT (a push before it could be popped before the row is visible);
 *   3. a push that fails is retried once on a fresh connection, then left:
 *      the worker's reconcile pass (and its look at open jobs whenever it
 *      connects to Redis again) finds every queued row without its push.
 *   The worker holds a job by its row (jobs.status 'running'), so a duplicate
 *   push is harmless.
 *
 * Everything here is pure: no I/O, no globals, safe from any thread.
 */
#ifndef BERTH_PROTOCOL_H
#define BERTH_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/keys.h"

/* ---- jobs ---- */

enum job_kind {
    JOB_CREATE,        /* make the instance's container (network, image, volumes) and start it */
    JOB_START,         /* start it (make it again when it is missing or must move) */
    JOB_STOP,          /* stop it */
    JOB_RESTART,       /* restart it */
    JOB_DELETE,        /* remove the container, and the volumes when asked */
    JOB_VOLUME_DELETE, /* remove one detached volume */
    JOB_USER_DELETE,   /* delete every instance of a user, then the user */
    JOB_SSH_KEYS,      /* a user's keys into their running containers */
    JOB_ROUTES_SYNC,   /* the routes directory against the database */
    JOB_KINDS
};

/* The name in jobs.kind ("create", ...); NULL for a value out of range. */
const char *job_kind_name(enum job_kind kind);
/* The kind of a jobs.kind name; false (and *out untouched) for any other text. */
bool job_kind_parse(const char *name, enum job_kind *out);

/* jobs.args: what a job needs beyond its row's ids. */
struct job_args {
    bool delete_volumes; /* delete, user_delete: remove the volumes too */
};

/* jobs.args as compact JSON into out (a kind without arguments gives "{}");
 * -1 when out is too small. */
int job_args_text(enum job_kind kind, const struct job_args *args, char *out, size_t outlen);
/* Parse jobs.args text of a job of kind. Unknown members are ignored (a
 * newer API may add some; the worker's own result members live there too);
 * a member of the wrong type is an error. 0, or -1 with err set. */
int job_args_parse(enum job_kind kind, const char *text, struct job_args *out, char *err,
                   size_t errlen);

/* One job to queue: JOB_INSERT_SQL's parameters. ids NULL when the job
 * serves none (a routes_sync serves no instance). */
struct job_spec {
    char id[37];
    enum job_kind kind;
    const char *node;
    const char *instance_id, *volume_id, *user_id;
    struct job_args args;
};

#define JOB_INSERT_SQL                                                                             \
    "INSERT INTO jobs (id, kind, node, instance_id, volume_id, user_id, args)"                    \
    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
#define JOB_INSERT_NPARAMS 7
#define JOB_ARGS_MAX 256

/* Give spec a fresh id (a random UUID) and the kind and node; ids and args
 * cleared. 0, or -1 when the system has no randomness to give. */
int job_spec_init(struct job_spec *spec, enum job_kind kind, const char *node);
/* JOB_INSERT_SQL's parameters for spec, the args text written to argbuf
 * (JOB_ARGS_MAX bytes). The pointers borrow spec and argbuf. */
void job_insert_params(const struct job_spec *spec, const char *p[JOB_INSERT_NPARAMS],
                       char argbuf[JOB_ARGS_MAX]);
/* The Redis list a node's jobs are pushed onto; -1 when out is too small. */
int job_queue_key(const char *node, char *out, size_t outlen);

/* The delay before the next attempt of a job whose attempt number
 * `attempts` (1, 2, ...) failed retryably: 1 s, 2 s, 4 s ... at most 30 s.
 * The one backoff formula of berth: the worker holds the job this long and
 * writes not_before = now() + this (how many attempts a job gets is the
 * config key job_max_attempts). */
double job_backoff_s(int attempts);

/* ---- instance statuses ---- */

enum inst_status {
    ST_PENDING,
    ST_CREATING,
    ST_RUNNING,
    ST_STOPPING,
    ST_STOPPED,
    ST_RESTARTING,
    ST_DELETING,
    ST_DELETED,
    ST_ERROR,
    ST_COUNT
};

/* Who writes a status: each has its own legal transitions. */
enum status_actor {
    BY_API,       /* a user's request (start, stop, restart, delete) */
    BY_JOB,       /* the worker's job runner, on the job's own progress */
    BY_EVENT,     /* the worker following Docker's event stream */
    BY_RECONCILE, /* the worker comparing the database with Docker */
    BY_IDLE,      /* the worker's idle stop */
    BY_COUNT
};

/* instances.status text; NULL out of range. */
const char *status_name(enum inst_status st);
bool status_parse(const char *name, enum inst_status *out);
const char *status_actor_name(enum status_actor who);

/* May `who` move an instance from `from` to `to`? (Staying is not a
 * transition: from == to is legal exactly when the table says so.) */
bool status_may(enum inst_status from, enum inst_status to, enum status_actor who);

/* The status a user's request of kind (JOB_START, JOB_STOP, JOB_RESTART,
 * JOB_DELETE) moves an instance in status `from` to: `from` itself when it
 * stays (a start of a running one), else a status that status_may(from, it,
 * BY_API) allows -- or `from` when the request has no move from there. */
enum inst_status status_on_request(enum job_kind kind, enum inst_status from);

/*
 * The statuses `who` may move an instance from, to `to`, as a PostgreSQL
 * text[] literal ("{pending,error}") into out: the parameter of every status
 * write's guard, `... WHERE id = $1 AND status = ANY($n::text[])`, so that the
 * table, not the SQL, says what is legal. "{}" (no row matches) when there is
 * none. -1 when out is too small (STATUS_SET_MAX always suffices).
 */
#define STATUS_SET_MAX 128
int status_from_set(enum inst_status to, enum status_actor who, char *out, size_t outlen);
/* status_from_set into buf, and buf returned, to stand in a statement's
 * parameter list ("{}", which no row's status matches, for arguments out of
 * range). */
const char *status_guard(enum inst_status to, enum status_actor who, char buf[STATUS_SET_MAX]);

/* ---- RPCs: berth-api asks, the node's worker answers at once ---- */

enum rpc_kind { RPC_LOGS, RPC_STATS, RPC_EXEC, RPC_KINDS };

#define RPC_TAIL_DEFAULT 200
#define RPC_TAIL_MAX 5000
#define RPC_EXEC_TIMEOUT_DEFAULT 30
#define RPC_EXEC_TIMEOUT_MAX 300

/*
 * A request on KEY_RPC_FMT: {"id", "kind", "instance_id", "deadline_ms",
 * logs: "tail", "since"; exec: "command", "timeout_s"}. The answer, RPUSHed
 * to KEY_RPC_REPLY_FMT of id: {"ok": value} or {"error": {"status": n,
 * "message": text, ...}}.
 */
struct rpc_request {
    char id[33];                 /* 32 lowercase hex digits */
    enum rpc_kind kind;
    char instance_id[37];
    int64_t deadline_ms;         /* UNIX ms after which nobody waits; 0 none */
    long tail;                   /* logs: lines from the end */
    char since[48];              /* logs: "<s>.<ns>" of the last line seen, or "" */
    const json_t *command;       /* exec: array of strings (borrowed) */
    long timeout_s;              /* exec */
};

const char *rpc_kind_name(enum rpc_kind kind);
/* The request as JSON (new reference; command is copied); NULL on out of memory. */
json_t *rpc_request_json(const struct rpc_request *rq);
/* Parse a request; out-of-range tail/timeout take their defaults. command is
 * borrowed from obj. 0, or -1 with err set (no id, unknown kind, bad ids,
 * a command that is not a non-empty array of strings); out->id is set
 * whenever the id was valid, so that a refusal can still be answered. */
int rpc_request_parse(const json_t *obj, struct rpc_request *out, char *err, size_t errlen);

/* {"ok": value} (value stolen); NULL on out of memory. */
json_t *rpc_answer_ok(json_t *value);
/* {"error": {"status", "message", extra's members}} (extra stolen, may be NULL). */
json_t *rpc_answer_error(int status, const char *message, json_t *extra);
/* Read an answer: 0 with *value borrowed from ans for "ok"; 1 with *status,
 * *message (borrowed) and *error (the error object, borrowed) for "error";
 * -1 for anything else. */
int rpc_answer_parse(const json_t *ans, const json_t **value, int *status, const char **message,
                     const json_t **error);

#endif
