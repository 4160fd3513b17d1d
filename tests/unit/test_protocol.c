/* Unit tests of the API-worker protocol (berth/protocol.h): job kinds and
 * arguments, the status transition table, RPC shapes. */
#include <stdlib.h>
#include <string.h>

#include "berth/protocol.h"
#include "berth/util.h"
#include "check.h"

static void test_job_kinds(void)
{
    enum job_kind k;
    bool all = true;
    for (int i = 0; i < JOB_KINDS; i++)
        all &= job_kind_parse(job_kind_name((enum job_kind)i), &k) && k == (enum job_kind)i;
    CHECK(all, "job kinds: every kind's name parses back to it");
    CHECK(!job_kind_parse("CREATE", &k) && !job_kind_parse("create ", &k) &&
              !job_kind_parse("", &k) && !job_kind_parse(NULL, &k),
          "job kinds: other spellings, empty and NULL are no kind");
    CHECK(job_kind_name(JOB_KINDS) == NULL && job_kind_name((enum job_kind)-1) == NULL,
          "job kinds: a value out of range has no name");
}

static void test_job_args(void)
{
    char buf[JOB_ARGS_MAX], err[128];
    struct job_args a = {.delete_volumes = true}, b;
    CHECK(job_args_text(JOB_DELETE, &a, buf, sizeof(buf)) == 0 &&
              strcmp(buf, "{\"delete_volumes\":true}") == 0,
          "job args: a delete keeping no volumes is {\"delete_volumes\":true}");
    CHECK(job_args_text(JOB_START, &a, buf, sizeof(buf)) == 0 && strcmp(buf, "{}") == 0,
          "job args: a kind without arguments is {}");
    CHECK(job_args_text(JOB_DELETE, &a, buf, 5) == -1, "job args: a short buffer is an error");
    CHECK(job_args_parse(JOB_USER_DELETE, "{\"delete_volumes\":true,\"result\":{}}", &b, err,
                         sizeof(err)) == 0 &&
              b.delete_volumes,
          "job args: parsed back, unknown members ignored");
    CHECK(job_args_parse(JOB_DELETE, "{\"delete_volumes\":\"yes\"}", &b, err, sizeof(err)) < 0,
          "job args: a string where a boolean belongs is refused (%s)", err);
    CHECK(job_args_parse(JOB_DELETE, "[true]", &b, err, sizeof(err)) < 0 &&
              job_args_parse(JOB_DELETE, "{\"delete_volumes\":true", &b, err, sizeof(err)) < 0 &&
              job_args_parse(JOB_DELETE,
                             "{\"delete_volumes\":false,\"delete_volumes\":true}", &b, err,
                             sizeof(err)) < 0,
          "job args: an array, cut JSON and a duplicated member are refused");
    CHECK(job_args_parse(JOB_START, "{\"delete_volumes\":true}", &b, err, sizeof(err)) == 0 &&
              !b.delete_volumes,
          "job args: delete_volumes means nothing to a start");
}

static void test_job_spec(void)
{
    struct job_spec s;
    const char *p[JOB_INSERT_NPARAMS];
    char args[JOB_ARGS_MAX], key[64];
    CHECK(job_spec_init(&s, JOB_DELETE, "node-a") == 0 && strlen(s.id) == 36,
          "job spec: gets a fresh UUID");
    s.instance_id = "11111111-2222-3333-4444-555555555555";
    s.args.delete_volumes = false;
    job_insert_params(&s, p, args);
    CHECK(strcmp(p[1], "delete") == 0 && strcmp(p[2], "node-a") == 0 && p[3] == s.instance_id &&
              p[4] == NULL && p[5] == NULL && strcmp(p[6], "{\"delete_volumes\":false}") == 0,
          "job spec: the INSERT's parameters are kind, node, ids (NULL for none) and args");
    CHECK(job_queue_key("node-a", key, sizeof(key)) == 0 && strcmp(key, "berth:jobs:node-a") == 0,
          "job spec: pushed onto berth:jobs:<node>");
    CHECK(job_queue_key("node-a", key, 8) == -1, "job spec: a short key buffer is an error");
}

static void test_backoff(void)
{
    CHECK(job_backoff_s(1) == 1.0 && job_backoff_s(2) == 2.0 && job_backoff_s(3) == 4.0 &&
              job_backoff_s(5) == 16.0,
          "backoff: 1 s, 2 s, 4 s ... doubling per attempt");
    CHECK(job_backoff_s(6) == 30.0 && job_backoff_s(1000) == 30.0,
          "backoff: at most 30 s, at any attempt count");
    CHECK(job_backoff_s(0) == 1.0 && job_backoff_s(-5) == 1.0,
          "backoff: a nonsense attempt count waits the shortest time");
}

/* status_may: from to to by who is ok -- the rows that matter to a user. */
static const struct {
    enum inst_status from, to;
    enum status_actor who;
    bool ok;
} moves[] = {
    /* a start of a stopped or failed instance; not of a running one */
    {ST_STOPPED, ST_PENDING, BY_API, true},
    {ST_ERROR, ST_PENDING, BY_API, true},
    {ST_RUNNING, ST_PENDING, BY_API, false},
    /* nobody brings a deleted instance back */
    {ST_DELETED, ST_PENDING, BY_API, false},
    {ST_DELETED, ST_RUNNING, BY_JOB, false},
    {ST_DELETED, ST_RUNNING, BY_EVENT, false},
    {ST_DELETED, ST_ERROR, BY_JOB, false},
    {ST_DELETED, ST_DELETING, BY_API, false},
    /* a deleting instance is not stopped, restarted, or revived by an event or
     * by a start job that finishes after the delete was asked for */
    {ST_DELETING, ST_STOPPING, BY_API, false},
    {ST_DELETING, ST_RESTARTING, BY_API, false},
    {ST_DELETING, ST_RUNNING, BY_EVENT, false},
    {ST_DELETING, ST_RUNNING, BY_JOB, false},
    {ST_DELETING, ST_STOPPED, BY_JOB, false},
    /* the idle stop takes only running instances */
    {ST_RUNNING, ST_STOPPING, BY_IDLE, true},
    {ST_STOPPED, ST_STOPPING, BY_IDLE, false},
    {ST_CREATING, ST_STOPPING, BY_IDLE, false},
    /* a failed instance running again is running; a creating one waits for its job */
    {ST_ERROR, ST_RUNNING, BY_EVENT, true},
    {ST_ERROR, ST_RUNNING, BY_RECONCILE, true},
    {ST_CREATING, ST_RUNNING, BY_EVENT, false},
    /* only the delete job ends an instance */
    {ST_RUNNING, ST_DELETED, BY_API, false},
    {ST_RUNNING, ST_DELETED, BY_EVENT, false},
    {ST_DELETING, ST_DELETED, BY_JOB, true},
};

/* status_on_request: kind asked of an instance in from leaves it in to. */
static const struct {
    enum job_kind kind;
    enum inst_status from, to;
} requests[] = {
    /* a start moves a stopped or failed instance to pending and leaves the rest */
    {JOB_START, ST_STOPPED, ST_PENDING},
    {JOB_START, ST_ERROR, ST_PENDING},
    {JOB_START, ST_RUNNING, ST_RUNNING},
    {JOB_START, ST_STOPPING, ST_STOPPING},
    /* a stop of anything not stopped is stopping; a stopped one stays */
    {JOB_STOP, ST_RUNNING, ST_STOPPING},
    {JOB_STOP, ST_CREATING, ST_STOPPING},
    {JOB_STOP, ST_STOPPED, ST_STOPPED},
    /* restart, delete; nothing brings back a deleted one; other kinds move nothing */
    {JOB_RESTART, ST_STOPPED, ST_RESTARTING},
    {JOB_DELETE, ST_ERROR, ST_DELETING},
    {JOB_DELETE, ST_DELETED, ST_DELETED},
    {JOB_SSH_KEYS, ST_RUNNING, ST_RUNNING},
};

static void test_statuses(void)
{
    enum inst_status st;
    char set[STATUS_SET_MAX];
    bool all = true;
    for (int i = 0; i < ST_COUNT; i++)
        all &= status_parse(status_name((enum inst_status)i), &st) && st == (enum inst_status)i;
    CHECK(all, "statuses: every status's name parses back to it");
    CHECK(!status_parse("Running", &st) && !status_parse("", &st),
          "statuses: other spellings are no status");

    /* who may do what: the rows that matter to a user */
    for (size_t i = 0; i < ARRAY_LEN(moves); i++)
        CHECK(status_may(moves[i].from, moves[i].to, moves[i].who) == moves[i].ok,
              "transitions: %s to %s by %s is %s", status_name(moves[i].from),
              status_name(moves[i].to), status_actor_name(moves[i].who),
              moves[i].ok ? "legal" : "not");

    /* what a user's request does to the status (the API's one writer of it) */
    for (size_t i = 0; i < ARRAY_LEN(requests); i++)
        CHECK(status_on_request(requests[i].kind, requests[i].from) == requests[i].to,
              "requests: %s asked of %s gives %s", job_kind_name(requests[i].kind),
              status_name(requests[i].from), status_name(requests[i].to));
    {
        bool legal = true;
        const enum job_kind kinds[] = {JOB_START, JOB_STOP, JOB_RESTART, JOB_DELETE};
        for (size_t k = 0; k < 4; k++)
            for (int f = 0; f < ST_COUNT; f++) {
                enum inst_status to = status_on_request(kinds[k], (enum inst_status)f);
                legal &= to == (enum inst_status)f ||
                         status_may((enum inst_status)f, to, BY_API);
            }
        CHECK(legal, "requests: every move a request makes is one the table allows the API");
    }
    CHECK(!status_may(ST_COUNT, ST_RUNNING, BY_JOB) && !status_may(ST_RUNNING, ST_COUNT, BY_JOB) &&
              !status_may(ST_RUNNING, ST_STOPPED, BY_COUNT),
          "transitions: values out of range are never legal");

    CHECK(status_from_set(ST_PENDING, BY_API, set, sizeof(set)) == 0 &&
              strcmp(set, "{stopped,error}") == 0,
          "status guard: the text[] a start's UPDATE is guarded with (%s)", set);
    CHECK(status_from_set(ST_DELETED, BY_EVENT, set, sizeof(set)) == 0 && strcmp(set, "{}") == 0,
          "status guard: no legal source is {} (the UPDATE matches nothing)");
    CHECK(status_from_set(ST_RUNNING, BY_JOB, set, sizeof(set)) == 0 && !strstr(set, "delet") &&
              strstr(set, "pending"),
          "status guard: a job may start anything not deleted or being deleted (%s)", set);
    CHECK(status_from_set(ST_RUNNING, BY_JOB, set, 12) == -1,
          "status guard: a short buffer is an error, never a cut list");
    {
        bool fits = true;
        for (int t = 0; t < ST_COUNT; t++)
            for (int w = 0; w < BY_COUNT; w++)
                fits &= status_from_set((enum inst_status)t, (enum status_actor)w, set,
                                        sizeof(set)) == 0;
        CHECK(fits, "status guard: STATUS_SET_MAX holds every set");
    }
    CHECK(strcmp(status_guard(ST_STOPPING, BY_IDLE, set), "{running}") == 0 &&
              strcmp(status_guard(ST_ERROR, BY_RECONCILE, set), "{running,stopping,stopped}") == 0,
          "status guard: the parameter itself, for idle (%s) and reconcile",
          status_guard(ST_STOPPING, BY_IDLE, set));
    CHECK(strcmp(status_guard(ST_COUNT, BY_API, set), "{}") == 0 &&
              strcmp(status_guard(ST_RUNNING, BY_COUNT, set), "{}") == 0,
          "status guard: out-of-range arguments guard with {} (no row matches)");
}

static void test_rpc(void)
{
    struct rpc_request rq = {.kind = RPC_EXEC, .deadline_ms = 1234, .timeout_s = 20}, back;
    json_t *cmd = json_pack("[s, s]", "echo", "hi"), *o;
    char err[128];
    memcpy(rq.id, "0123456789abcdef0123456789abcdef", 33);
    memcpy(rq.instance_id, "11111111-2222-3333-4444-555555555555", 37);
    rq.command = cmd;
    o = rpc_request_json(&rq);
    CHECK(o && rpc_request_parse(o, &back, err, sizeof(err)) == 0 && back.kind == RPC_EXEC &&
              back.timeout_s == 20 && back.deadline_ms == 1234 &&
              json_equal(back.command, cmd) && strcmp(back.id, rq.id) == 0,
          "rpc: an exec request reads back as it was built");
    json_object_set_new(o, "timeout_s", json_integer(100000));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) == 0 &&
              back.timeout_s == RPC_EXEC_TIMEOUT_DEFAULT,
          "rpc: an out-of-range exec timeout takes the default");
    json_object_set_new(o, "command", json_pack("[s, i]", "echo", 1));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) < 0,
          "rpc: a command with a non-string is refused (%s)", err);
    json_object_set_new(o, "command", json_array());
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) < 0, "rpc: an empty command is refused");
    json_object_set_new(o, "kind", json_string("shell"));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) < 0, "rpc: an unknown kind is refused");
    json_object_set_new(o, "kind", json_string("logs"));
    json_object_set_new(o, "instance_id", json_string("../../containers/x"));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) < 0,
          "rpc: an instance id that is not a UUID is refused");
    json_object_set_new(o, "instance_id", json_string(rq.instance_id));
    json_object_set_new(o, "id", json_string("0123456789ABCDEF0123456789abcdef"));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) < 0,
          "rpc: a request id that is not 32 lowercase hex digits is refused");
    json_object_set_new(o, "id", json_string(rq.id));
    json_object_set_new(o, "since", json_string("1700000000.5&follow=1"));
    json_object_set_new(o, "tail", json_integer(-1));
    CHECK(rpc_request_parse(o, &back, err, sizeof(err)) == 0 && back.since[0] == '\0' &&
              back.tail == RPC_TAIL_DEFAULT,
          "rpc: a since that is not a timestamp and a negative tail are dropped");
    json_decref(o);
    json_decref(cmd);

    {
        const json_t *v, *e;
        int st = 0;
        const char *msg;
        json_t *ok = rpc_answer_ok(json_integer(7));
        json_t *bad = rpc_answer_error(504, "too slow", json_pack("{s:s}", "output", "x"));
        json_t *odd = json_pack("{s:{s:s}}", "error", "status", "504");
        CHECK(rpc_answer_parse(ok, &v, &st, &msg, &e) == 0 && json_integer_value(v) == 7,
              "rpc: an ok answer gives its value");
        CHECK(rpc_answer_parse(bad, &v, &st, &msg, &e) == 1 && st == 504 &&
                  strcmp(msg, "too slow") == 0 &&
                  strcmp(json_string_value(json_object_get(e, "output")), "x") == 0,
              "rpc: an error answer gives status, message and its extra members");
        CHECK(rpc_answer_parse(odd, &v, &st, &msg, &e) == -1,
              "rpc: an error without a numeric status is no answer");
        json_decref(ok);
        json_decref(bad);
        json_decref(odd);
    }
}

int main(void)
{
    test_job_kinds();
    test_job_args();
    test_job_spec();
    test_backoff();
    test_statuses();
    test_rpc();
    return CHECK_DONE();
}
