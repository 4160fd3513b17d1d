/*
 * volumes — users' persistent named volumes (API.md "Volumes"):
 *   GET    /api/v1/volumes        own (admin: ?all=true)
 *   DELETE /api/v1/volumes/{id}   owner, admin -> 202 job; 409 while attached
 *
 * Volume rows are made with their instance (instance_create.c) and kept when it is
 * deleted unless asked otherwise; the Docker volume `berth-<id>` is removed by
 * the worker's volume_delete job, which then stamps deleted_at.
 */
#include <stdio.h>
#include <string.h>

#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "enqueue.h"
#include "instances.h"

#define VOLUME_JSON                                                                                \
    "json_build_object('id', v.id, 'name', v.name, 'mount_path', v.mount_path, 'docker_name',"    \
    " 'berth-' || v.id, 'instance_id', v.instance_id, 'template', v.template_name, 'node',"       \
    " v.node, 'created_at', " SQL_TS("v.created_at") ", 'size_bytes', NULL)::text"

/* Paged by creation: ?limit=, ?cursor= the last id of the page before. The
 * query itself keeps to the volumes the actor may read. */
void volumes_list(struct req *r)
{
    char all[8] = "", lim[24], cursor[40] = "";
    const char *p[3];
    long limit;
    PGresult *res;

    if (auth_require(r) < 0 || !req_db(r) || !req_limit(r, 50, 500, &limit))
        return;
    if (req_query(r, "cursor", cursor, sizeof(cursor)) && !valid_uuid(cursor)) {
        http_send_error(r, 400, "invalid_field", "cursor", "cursor is not one this API gave out");
        return;
    }
    req_query(r, "all", all, sizeof(all));
    p[0] = authz_volume(&r->actor, ACT_READ, NULL) && strcmp(all, "true") == 0
               ? NULL
               : r->actor.user_id;
    p[1] = cursor[0] ? cursor : NULL;
    snprintf(lim, sizeof(lim), "%ld", limit + 1);
    p[2] = lim;
    if (!(res = req_q(r,
                      "SELECT " VOLUME_JSON ", v.id FROM volumes v WHERE v.deleted_at IS NULL"
                      " AND ($1::uuid IS NULL OR v.user_id = $1) AND ($2::uuid IS NULL OR"
                      " (v.created_at, v.id) > (SELECT created_at, id FROM volumes WHERE id ="
                      " $2::uuid)) ORDER BY v.created_at, v.id LIMIT $3::int",
                      3, p)))
        return;
    http_send_page(r, res, limit, 1);
}

void volumes_delete(struct req *r)
{
    const char *id = r->params[0], *p[1] = {id};
    char owner[37], node[64];
    struct job_spec job;
    bool attached;
    PGconn *pg;
    PGresult *res;
    json_t *ans;

    if (!(pg = req_change(r, "volume.delete", "volume", valid_uuid(id) ? id : NULL)))
        return;
    if (!valid_uuid(id)) {
        http_send_error(r, 404, "not_found", NULL, "no such volume");
        return;
    }
    if (!req_begin(r) ||
        !(res = req_q(r,
                      "SELECT user_id, node, instance_id IS NOT NULL FROM volumes WHERE id = $1"
                      " AND deleted_at IS NULL FOR UPDATE",
                      1, p)))
        return;
    if (PQntuples(res) != 1 || !authz_volume(&r->actor, ACT_READ, PQgetvalue(res, 0, 0))) {
        PQclear(res);
        refuse(r, 404, "not_found", NULL, "no such volume");
        return;
    }
    util_strlcpy(owner, PQgetvalue(res, 0, 0), sizeof(owner));
    util_strlcpy(node, PQgetvalue(res, 0, 1), sizeof(node));
    attached = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    if (!authz_volume(&r->actor, ACT_DELETE, owner)) {
        refuse(r, 403, "forbidden", NULL, "your role may not delete volumes");
        return;
    }
    if (attached) {
        refuse(r, 409, "conflict", NULL,
               "the volume is attached to an instance: delete the instance first");
        return;
    }
    if (!enqueue_init(r, &job, JOB_VOLUME_DELETE, node))
        return;
    job.volume_id = id;
    job.user_id = owner;
    if (!enqueue_job(r, &job))
        return;
    if (!audit_commit(r, json_pack("{s:s}", "job", job.id)))
        return;
    enqueue_push(r, node, job.id);
    if (!(ans = lc_job_get(pg, job.id))) {
        http_send_error(r, 503, "unavailable", NULL, "the job was queued but cannot be read");
        return;
    }
    http_send_json(r, 202, ans);
}
