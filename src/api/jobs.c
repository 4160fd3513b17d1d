/*
 * jobs — GET /api/v1/jobs/{id}: the state of one asynchronous job (API.md).
 * A job is readable by whoever may read what it serves: its instance's or
 * volume's owner (jobs.user_id) and admins.
 */
#include "berth/validate.h"
#include "instances.h"

void jobs_get(struct req *r)
{
    const char *p[1] = {r->params[0]};
    PGresult *res;
    json_t *job;

    if (auth_require(r) < 0 || !req_db(r))
        return;
    if (!valid_uuid(r->params[0])) {
        http_send_error(r, 404, "not_found", NULL, "no such job");
        return;
    }
    if (!(res = req_q(r, "SELECT " JOB_JSON "::text, j.user_id FROM jobs j WHERE j.id = $1", 1,
                      p)))
        return;
    if (PQntuples(res) != 1 ||
        !authz_instance(&r->actor, ACT_READ,
                        PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1)) ||
        !(job = db_json_col(res, 0, 0))) {
        PQclear(res);
        http_send_error(r, 404, "not_found", NULL, "no such job");
        return;
    }
    PQclear(res);
    http_send_json(r, 200, job);
}
