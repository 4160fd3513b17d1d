/*
 * deletes — the jobs that remove: delete (an instance's route, container
 * and, when asked, volumes; its user's network with the user's last instance
 * on this node), volume_delete (a detached volume), user_delete (every
 * instance of the user, then the user). job.h has the map.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "job.h"
#include "redisq.h"
#include "routes.h"

static void d_volume_next(struct job *j);

struct net_release {
    struct worker *w;
    char net[160];
};

static struct net_release *net_release_new(struct job *j)
{
    struct net_release *n = calloc(1, sizeof(*n));
    if (n) {
        n->w = j->rn->w;
        util_strlcpy(n->net, j->net, sizeof(n->net));
    }
    return n;
}

static void on_user_left(PGresult *res, const char *err, void *arg)
{
    struct net_release *n = arg;
    if (n && !err && strcmp(PQgetvalue(res, 0, 0), "0") == 0)
        usernet_remove(n->w, n->net);
    free(n);
}

static void on_deleted_written(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!job_pg_ok(j, err, "the deletion could not be recorded"))
        return;
    if (j->rn->w->routes)
        routes_remove(j->rn->w->routes, j->instance_id);
    /* the user's network goes with their last instance on this node */
    {
        const char *p[2] = {j->instance_id, j->rn->w->cfg->node};
        if (pg_query(j->rn->w->pg,
                     "SELECT count(*) FROM instances WHERE user_id = (SELECT user_id FROM"
                     " instances WHERE id = $1) AND node = $2 AND status <> 'deleted'",
                     2, p, on_user_left, net_release_new(j)) < 0)
            log_warn("cannot check the user's remaining instances");
    }
    job_finish(j);
}

static void d_finish(struct job *j)
{
    char from[STATUS_SET_MAX];
    const char *p[4] = {j->id, j->instance_id, j->delete_volumes ? "t" : "f",
                        status_guard(ST_DELETED, BY_JOB, from)};
    q(j,
      "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now() WHERE"
      " id = $1), pd AS (DELETE FROM instance_ports WHERE instance_id = $2),"
      " vd AS (UPDATE volumes SET instance_id = NULL, deleted_at = CASE WHEN $3::bool THEN now()"
      " ELSE deleted_at END WHERE instance_id = $2),"
      " ie AS (INSERT INTO instance_events (instance_id, kind, message) VALUES ($2, 'deleted',"
      " CASE WHEN $3::bool THEN 'container and volumes removed' ELSE 'container removed;"
      " volumes kept' END))"
      " UPDATE instances SET status = 'deleted', desired = 'deleted', deleted_at = now(),"
      " container_id = NULL, error = NULL WHERE id = $2 AND status = ANY($4::text[])",
      4, p, on_deleted_written);
}

static void on_volume_removed(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        j->vol_i++;
        d_volume_next(j);
        return;
    }
    docker_failed(j, "removing a volume failed", status, body, len, err);
    /* 409 (in use) is worth a retry: the container may still be going */
}

static void d_volume_next(struct job *j)
{
    json_t *v = j->delete_volumes ? json_array_get(j->vols, j->vol_i) : NULL;
    char path[128];
    const char *vid;
    if (!v) {
        d_finish(j);
        return;
    }
    vid = json_string_value(json_object_get(v, "id"));
    if (!valid_uuid(vid)) {
        j->vol_i++;
        d_volume_next(j);
        return;
    }
    snprintf(path, sizeof(path), "/volumes/berth-%s", vid);
    dcall(j, "DELETE", path, NULL, 60000, on_volume_removed);
}

static void on_container_removed(int status, const char *body, size_t len, const char *err,
                                 void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        j->vol_i = 0;
        d_volume_next(j);
        return;
    }
    docker_failed(j, "removing the container failed", status, body, len, err);
}

void deletes_instance(struct job *j)
{
    char path[128];
    /* The route goes first: the instance is going away, and a burst of
     * deletes then falls into one or two reloads, not one per container
     * as Docker removes them. */
    if (j->rn->w->routes)
        routes_remove(j->rn->w->routes, j->instance_id);
    snprintf(path, sizeof(path), "/containers/%s?force=1", j->cname);
    dcall(j, "DELETE", path, NULL, 60000, on_container_removed);
}

/* ---- volume_delete ---- */

static void on_vol_row(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!job_pg_ok(j, err, "the volume deletion could not be recorded"))
        return;
    job_finish(j);
}

static void on_vol_deleted(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct job *j = arg;
    if (status == 204 || status == 404) {
        const char *p[2] = {j->id, j->volume_id};
        q(j,
          "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now() WHERE"
          " id = $1) UPDATE volumes SET deleted_at = coalesce(deleted_at, now()) WHERE id = $2",
          2, p, on_vol_row);
        return;
    }
    if (status == 409) {
        job_fail(j, "the volume is still in use by a container", true);
        return;
    }
    docker_failed(j, "removing the volume failed", status, body, len, err);
}

/* ---- user_delete: delete every instance of the user, then the user ---- */

static void on_user_gone(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    if (!job_pg_ok(j, err, "the user could not be removed"))
        return;
    /* The user's network normally goes with their last instance; a burst of
     * deletes can leave it (Docker still releasing an endpoint when the last
     * delete asked). The user is gone now: so is it. */
    if (PQntuples(res) == 1 && valid_name(PQgetvalue(res, 0, 0))) {
        char name[160];
        usernet_name(j->rn->w, PQgetvalue(res, 0, 0), name, sizeof(name));
        usernet_remove(j->rn->w, name);
    }
    job_finish(j);
}

static void on_user_pending(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *p[2] = {j->user_id, j->id};
    if (!job_pg_ok(j, err, "the user's instances could not be listed"))
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        char key[256];
        if (job_queue_key(PQgetvalue(res, i, 1), key, sizeof(key)) < 0 ||
            !redisq_command(j->rn->w->rq, NULL, NULL, "LPUSH %s %s", key, PQgetvalue(res, i, 0)))
            log_warn("job %s not pushed (Redis down): reconcile will", PQgetvalue(res, i, 0));
    }
    /* wait for the deletes: not a failure, so the attempt does not count */
    q_detached(j->rn->w, "UPDATE jobs SET attempts = greatest(attempts - 1, 0) WHERE id = $1", 1,
               &p[1]);
    job_fail(j, "waiting for the user's instances to be deleted", true);
}

static void u_check(PGresult *res, const char *err, void *arg)
{
    struct job *j = arg;
    const char *p[2] = {j->user_id, j->id};
    if (!job_pg_ok(j, err, "the user's instances could not be listed"))
        return;
    if (strtol(PQgetvalue(res, 0, 0), NULL, 10) > 0) {
        /* queue deletes for live instances without one (protocol.h's enqueue
         * contract: rows here, pushes after, reconcile for a lost push) */
        char args[JOB_ARGS_MAX], from[STATUS_SET_MAX];
        const char *p2[4] = {j->user_id, args, job_kind_name(JOB_DELETE),
                             status_guard(ST_DELETING, BY_JOB, from)};
        if (job_args_text(JOB_DELETE, &(struct job_args){.delete_volumes = j->delete_volumes},
                          args, sizeof(args)) < 0) {
            job_fail(j, "the delete jobs' arguments could not be written", false);
            return;
        }
        q(j,
          "WITH todo AS (UPDATE instances SET status = 'deleting', desired = 'deleted' WHERE"
          " user_id = $1 AND status = ANY($4::text[]) RETURNING id, node)"
          " INSERT INTO jobs (id, kind, node, instance_id, user_id, args) SELECT"
          " gen_random_uuid(), $3, node, id, $1, $2::jsonb FROM todo RETURNING id, node",
          4, p2, on_user_pending);
        return;
    }
    q(j,
      "WITH jd AS (UPDATE jobs SET status = 'done', error = NULL, finished_at = now(), user_id ="
      " NULL WHERE id = $2), jn AS (UPDATE jobs SET user_id = NULL WHERE user_id = $1 AND id <>"
      " $2), vd AS (DELETE FROM volumes WHERE user_id = $1), idel AS (DELETE FROM instances WHERE"
      " user_id = $1) DELETE FROM users WHERE id = $1 AND disabled RETURNING username",
      2, p, on_user_gone);
}

void deletes_user(struct job *j)
{
    const char *p[1] = {j->user_id};
    q(j, "SELECT count(*) FROM instances WHERE user_id = $1 AND status <> 'deleted'", 1, p,
      u_check);
}

void deletes_volume(struct job *j)
{
    char path[128];
    snprintf(path, sizeof(path), "/volumes/berth-%s", j->volume_id);
    dcall(j, "DELETE", path, NULL, 60000, on_vol_deleted);
}
