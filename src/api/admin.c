/*
 * admin — server-side commands that work without the API, for bootstrap and
 * recovery (run by `make run` and by operators):
 *   berth-api --create-user NAME --role ROLE   password from stdin; creates or resets
 *   berth-api --bootstrap-admin FILE           first admin with a generated password
 *   berth-api --seed-templates FILE            add templates from a JSON array if absent
 *   berth-api --sync-routes                    every node's worker rewrites its nginx
 *                                              routes from the database, and says so
 *   berth-api --image-build STATE IMAGE [MSG]  record the stack's build of an image
 *                                              (scripts/image-builds.sh)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/protocol.h"
#include "berth/template.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"
#include "password.h"

static PGconn *connect_or_say(void)
{
    PGconn *pg = PQconnectdb(api_cfg.pg_dsn);
    if (PQstatus(pg) != CONNECTION_OK) {
        log_error("cannot connect to PostgreSQL (pg_dsn): %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Insert or reset user `name`. Returns 0 / -1 (logged). */
static int upsert_user(PGconn *pg, const char *name, const char *role, const char *pw,
                       const char *actor)
{
    char hash[PASSWORD_HASH_MAX], id[37];
    const char *p[4];
    PGresult *res;
    int rc = -1;

    if (password_hash(pw, hash, sizeof(hash)) < 0 || util_uuid(id) < 0) {
        log_error("cannot hash the password");
        return -1;
    }
    p[0] = id;
    p[1] = name;
    p[2] = hash;
    p[3] = role;
    res = PQexecParams(pg,
                       "INSERT INTO users (id, username, password_hash, role) VALUES ($1,$2,$3,$4) "
                       "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash,"
                       " role = EXCLUDED.role, disabled = false, updated_at = now() RETURNING id",
                       4, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        const char *a[3] = {PQgetvalue(res, 0, 0), actor, role};
        PGresult *ar =
            PQexecParams(pg,
                         "INSERT INTO audit_log (actor, action, target_type, target_id, outcome, "
                         "details) VALUES ($2, 'user.create_or_reset', 'user', $1, 'ok', "
                         "jsonb_build_object('role', $3::text, 'via', 'command line'))",
                         3, NULL, a, NULL, NULL, 0);
        PQclear(ar);
        rc = 0;
    } else {
        log_error("cannot create user %s: %s", name, PQresultErrorMessage(res));
    }
    PQclear(res);
    explicit_bzero(hash, sizeof(hash));
    return rc;
}

int admin_create_user(const char *name, const char *role)
{
    char pw[PASSWORD_MAX + 2];
    size_t len;
    PGconn *pg;
    int rc;

    if (!valid_name(name)) {
        log_error("user name '%s' is not valid: 2-32 of a-z, 0-9, '-', starting with a letter",
                  name);
        return 2;
    }
    if (strcmp(role, "admin") && strcmp(role, "developer") && strcmp(role, "viewer")) {
        log_error("role '%s' is not valid: expected admin, developer or viewer", role);
        return 2;
    }
    if (!fgets(pw, sizeof(pw), stdin)) {
        log_error("expected the password on standard input");
        return 2;
    }
    len = strcspn(pw, "\r\n");
    pw[len] = '\0';
    if (len < PASSWORD_MIN || len > PASSWORD_MAX || !valid_utf8(pw, len)) {
        log_error("the password must be %d to %d characters of UTF-8", PASSWORD_MIN, PASSWORD_MAX);
        return 2;
    }
    pg = connect_or_say();
    if (!pg)
        return 1;
    rc = upsert_user(pg, name, role, pw, "berth-api --create-user") == 0 ? 0 : 1;
    if (rc == 0)
        printf("user %s (%s) is ready\n", name, role);
    explicit_bzero(pw, sizeof(pw));
    PQfinish(pg);
    return rc;
}

int admin_bootstrap(const char *password_file)
{
    char pw[25];
    PGconn *pg = connect_or_say();
    PGresult *res;
    int fd, rc = 1;
    bool exists;

    if (!pg)
        return 1;
    res = PQexec(pg, "SELECT 1 FROM users WHERE role = 'admin' AND NOT disabled LIMIT 1");
    exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    if (exists) {
        rc = 0;
        goto out;
    }
    if (password_generate(pw) < 0)
        goto out;
    /* The file first: a password nobody can read again must not be set. */
    fd = open(password_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || dprintf(fd, "%s\n", pw) < 0 || fsync(fd) < 0) {
        log_error("cannot write %s: %s", password_file, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    if (upsert_user(pg, "admin", "admin", pw, "bootstrap") < 0) {
        unlink(password_file);
        goto out;
    }
    printf("%s\n", pw);
    rc = 0;
out:
    explicit_bzero(pw, sizeof(pw));
    PQfinish(pg);
    return rc;
}

/* Each entry is checked by the API's own rules (tmpl_validate: defaults,
 * capabilities from the allow-list, every field) and written as POST
 * /api/v1/templates writes it; a name already present is left as it is. */
int admin_seed_templates(const char *file)
{
    json_error_t jerr;
    json_t *arr = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr), *t;
    PGconn *pg;
    size_t i;
    int rc = 0, added = 0;

    if (!json_is_array(arr)) {
        log_error("%s: expected a JSON array of templates (%s)", file, arr ? "" : jerr.text);
        json_decref(arr);
        return 2;
    }
    pg = connect_or_say();
    if (!pg) {
        json_decref(arr);
        return 1;
    }
    json_array_foreach(arr, i, t)
    {
        char id[37], msg[300];
        const char *field = NULL;
        json_t *c = json_deep_copy(t);
        PGresult *res;

        if (c)
            tmpl_strip_readonly(c);
        if (!c || tmpl_validate(c, &field, msg, sizeof(msg)) < 0) {
            log_error("%s: template %zu (%s): %s: %s", file, i,
                      json_string_value(json_object_get(t, "name")) ?: "no name",
                      field ? field : "template", c ? msg : "out of memory");
            json_decref(c);
            rc = 2;
            continue;
        }
        if (util_uuid(id) < 0 || !(res = lc_template_write(pg, c, id, LC_TEMPLATE_SEED))) {
            log_error("%s: template %zu: out of memory", file, i);
            json_decref(c);
            rc = 1;
            continue;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            log_error("template %s: %s", json_string_value(json_object_get(c, "name")),
                      PQresultErrorMessage(res));
            rc = 1;
        } else if (strcmp(PQcmdTuples(res), "0") != 0) {
            added++;
        }
        PQclear(res);
        json_decref(c);
    }
    if (rc == 0)
        log_info("templates seeded: %d added", added);
    json_decref(arr);
    PQfinish(pg);
    return rc;
}

/* ---- --sync-routes ---- */

#define SYNC_WAIT_MS 60000

/* Queue one routes_sync job per node whose worker runs (its heartbeat is in
 * Redis) -- row, audit, push -- then wait for each and print what its worker
 * did. A node without a heartbeat is named and skipped (a worker that is not
 * running cannot answer; it syncs by itself when it starts). Without Redis
 * the jobs are queued anyway: the worker's reconcile finds open rows. */
/* Running instances from before workspaces left the host's ports (an 'http'
 * host port row, no address on their user network) are restarted, which
 * moves them (issue 10): their worker makes the container again without the
 * published HTTP port. Stopped ones move at their next start by themselves.
 * One statement: job rows, status, events and an audit row per instance. */
static void move_published(PGconn *pg, struct api_thread *th)
{
    char guard[STATUS_SET_MAX];
    const char *p[3] = {status_guard(ST_RESTARTING, BY_API, guard), status_name(ST_RESTARTING),
                        job_kind_name(JOB_RESTART)};
    PGresult *res = db_run(
        pg, "instances with a published HTTP port not moved",
        "WITH old AS (SELECT i.id, i.node, i.user_id FROM instances i WHERE i.status ="
        " 'running' AND i.desired = 'running' AND i.upstream_host IS NULL AND EXISTS (SELECT 1"
        " FROM instance_ports p WHERE p.instance_id = i.id AND p.name = 'http') AND NOT EXISTS"
        " (SELECT 1 FROM jobs j WHERE j.instance_id = i.id AND j.status IN ('queued',"
        " 'running')) FOR UPDATE OF i SKIP LOCKED),"
        " upd AS (UPDATE instances x SET status = $2 FROM old WHERE x.id = old.id AND"
        " x.status = ANY($1::text[])),"
        " ev AS (INSERT INTO instance_events (instance_id, kind, message) SELECT id, 'moving',"
        " 'restarting to leave its published HTTP port (berth-api --sync-routes)' FROM old),"
        " au AS (INSERT INTO audit_log (actor, action, target_type, target_id, outcome)"
        " SELECT 'berth-api --sync-routes', 'instance.restart', 'instance', id::text, 'ok' FROM"
        " old)"
        " INSERT INTO jobs (id, kind, node, instance_id, user_id) SELECT gen_random_uuid(),"
        " $3, node, id, user_id FROM old RETURNING id, node, instance_id",
        3, p);
    if (!res)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        printf("instance %s: restarted to leave its published HTTP port\n", PQgetvalue(res, i, 2));
        enqueue_push_on(th, PQgetvalue(res, i, 1), PQgetvalue(res, i, 0));
    }
    PQclear(res);
}

int admin_sync_routes(void)
{
    struct api_thread th = {0};
    PGconn *pg = connect_or_say();
    PGresult *res;
    char (*ids)[37] = NULL;
    int n, rc = 0, live = 0;
    bool *over = NULL;
    int64_t until;

    if (!pg)
        return 1;
    if (!(res = db_run(pg, "cannot read the nodes", "SELECT name FROM nodes ORDER BY name", 0,
                       NULL))) {
        PQfinish(pg);
        return 1;
    }
    n = PQntuples(res);
    if (n == 0) {
        printf("no node is registered: no berth-worker has started yet\n");
        PQclear(res);
        PQfinish(pg);
        return 0;
    }
    ids = calloc((size_t)n, sizeof(*ids));
    over = calloc((size_t)n, sizeof(*over));
    if (!ids || !over) {
        log_error("out of memory");
        rc = 1;
        goto out;
    }
    move_published(pg, &th);
    for (int i = 0; i < n; i++) {
        const char *node = PQgetvalue(res, i, 0);
        const char *p[3] = {ids[i], node, job_kind_name(JOB_ROUTES_SYNC)};
        PGresult *ins;
        redisContext *rq = rq_conn(&th);
        if (rq) {
            redisReply *hb = redisCommand(rq, "EXISTS " KEY_HEARTBEAT_FMT, node);
            bool down = hb && hb->type == REDIS_REPLY_INTEGER && hb->integer == 0;
            if (hb)
                freeReplyObject(hb);
            if (down) {
                printf("node %s: skipped: no berth-worker is running there (no heartbeat)\n",
                       node);
                over[i] = true;
                continue;
            }
        }
        live++;
        if (util_uuid(ids[i]) < 0) {
            log_error("no randomness for a job id");
            rc = 1;
            goto out;
        }
        ins = db_run(pg, "cannot queue a routes_sync job",
                           "WITH j AS (INSERT INTO jobs (id, kind, node) VALUES ($1, $3, $2))"
                           " INSERT INTO audit_log (actor, action, target_type, target_id,"
                           " outcome, details) VALUES ('berth-api --sync-routes', 'routes.sync',"
                           " 'node', $2, 'ok', jsonb_build_object('job', $1::text))",
                           3, p);
        if (!ins) {
            rc = 1;
            goto out;
        }
        PQclear(ins);
        enqueue_push_on(&th, node, ids[i]); /* lost: the worker's reconcile finds the row */
    }
    if (live == 0) {
        printf("no node has a running berth-worker: nothing was synced\n");
        rc = 1;
        goto out;
    }
    until = util_now_ms() + SYNC_WAIT_MS;
    for (int left = live; left > 0 && util_now_ms() < until;) {
        for (int i = 0; i < n; i++) {
            const char *p[1] = {ids[i]};
            PGresult *j;
            if (over[i])
                continue;
            j = PQexecParams(pg,
                             "SELECT status, coalesce(error, ''), coalesce(args->'result'->>"
                             "'routes', '?'), coalesce(args->'result'->>'written', '?'),"
                             " coalesce(args->'result'->>'removed', '?') FROM jobs WHERE id = $1",
                             1, NULL, p, NULL, NULL, 0);
            if (PQresultStatus(j) == PGRES_TUPLES_OK && PQntuples(j) == 1) {
                const char *st = PQgetvalue(j, 0, 0);
                if (strcmp(st, "done") == 0) {
                    printf("node %s: %s routes, %s written, %s removed\n", PQgetvalue(res, i, 0),
                           PQgetvalue(j, 0, 2), PQgetvalue(j, 0, 3), PQgetvalue(j, 0, 4));
                    over[i] = true;
                } else if (strcmp(st, "failed") == 0) {
                    printf("node %s: failed: %s\n", PQgetvalue(res, i, 0), PQgetvalue(j, 0, 1));
                    over[i] = true;
                    rc = 1;
                }
                left -= over[i];
            }
            PQclear(j);
        }
        if (left > 0)
            usleep(100 * 1000);
    }
    for (int i = 0; i < n; i++) {
        if (!over[i]) {
            printf("node %s: no answer within %d s (is its berth-worker running?); the job stays"
                   " queued\n",
                   PQgetvalue(res, i, 0), SYNC_WAIT_MS / 1000);
            rc = 1;
        }
    }
out:
    free(ids);
    free(over);
    rq_close(&th);
    PQclear(res);
    PQfinish(pg);
    return rc;
}

int admin_image_build(const char *state, const char *image, const char *message)
{
    static const char *const states[] = {"queued", "building", "ready", "failed", NULL};
    char msg[501];
    PGconn *pg;
    PGresult *res;
    bool known = false;
    size_t n;
    int rc = 0;

    for (size_t i = 0; states[i]; i++)
        known = known || strcmp(state, states[i]) == 0;
    if (!known) {
        log_error("--image-build: state '%s' is not queued, building, ready or failed", state);
        return 2;
    }
    if (!tmpl_image_ok(image)) {
        log_error("--image-build: '%s' is not a Docker image reference", image);
        return 2;
    }
    /* A build's output line: cut to the column's 500 bytes on a character
     * boundary, control characters (a progress bar's \r) as spaces. */
    n = util_strlcpy(msg, message ? message : "", sizeof(msg));
    if (n >= sizeof(msg))
        n = sizeof(msg) - 1;
    while (n > 0 && !valid_utf8(msg, n))
        n--;
    msg[n] = '\0';
    for (char *c = msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    if (!(pg = connect_or_say()))
        return 1;
    /* started_at is the start of this build: set when it goes building from
     * any other state, kept while it stays building. */
    res = db_run(pg, "the image build",
                 "INSERT INTO image_builds AS b (image, state, message, started_at,"
                 " finished_at) VALUES ($1, $2, $3, CASE WHEN $2 = 'building' THEN now() END,"
                 " CASE WHEN $2 IN ('ready', 'failed') THEN now() END)"
                 " ON CONFLICT (image) DO UPDATE SET state = $2, message = $3,"
                 " started_at = CASE WHEN $2 = 'queued' THEN NULL WHEN $2 = 'building' AND"
                 " b.state <> 'building' THEN now() ELSE b.started_at END,"
                 " finished_at = CASE WHEN $2 IN ('ready', 'failed') THEN now() END,"
                 " updated_at = now()",
                 3, (const char *const[]){image, state, msg});
    rc = res ? 0 : 1;
    PQclear(res);
    PQfinish(pg);
    return rc;
}
