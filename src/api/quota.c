/*
 * quota — does one more instance fit the user's quota (quota.h)?
 */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "quota.h"

int quota_reserve(struct req *r, const char *user_id, double cpus, long memory_mb, char *why,
                  size_t whylen)
{
    const char *p[1] = {user_id};
    PGresult *res;
    long q_inst, q_mem, n_inst, used_mem;
    double q_cpus, used_cpus;

    if (!(res = req_q(r,
                      "SELECT quota_instances, quota_cpus, quota_memory_mb FROM users"
                      " WHERE id = $1 FOR UPDATE",
                      1, p)))
        return -1;
    if (PQntuples(res) != 1) { /* deleted meanwhile: nothing of theirs may be made */
        PQclear(res);
        snprintf(why, whylen, "quota exceeded: the user no longer exists");
        return 1;
    }
    q_inst = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    q_cpus = strtod(PQgetvalue(res, 0, 1), NULL);
    q_mem = strtol(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    if (!(res = req_q(r,
                      "SELECT count(*), coalesce(sum(cpus), 0), coalesce(sum(memory_mb), 0)"
                      " FROM instances WHERE user_id = $1 AND status <> 'deleted'",
                      1, p)))
        return -1;
    n_inst = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    used_cpus = strtod(PQgetvalue(res, 0, 1), NULL);
    used_mem = strtol(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return quota_fits(q_inst, q_cpus, q_mem, n_inst, used_cpus, used_mem, cpus, memory_mb, why,
                      whylen)
               ? 0
               : 1;
}

static long long cents(double x)
{
    return (long long)(x * 100 + (x >= 0 ? 0.5 : -0.5));
}

bool quota_fits(long q_instances, double q_cpus, long q_memory_mb, long n_instances,
                double used_cpus, long used_memory_mb, double cpus, long memory_mb, char *why,
                size_t whylen)
{
    if (n_instances + 1 > q_instances) {
        snprintf(why, whylen, "quota exceeded: %ld of %ld instances in use", n_instances,
                 q_instances);
        return false;
    }
    /* numeric(8,2): compare in hundredths so 0.1 + 0.2 fits a quota of 0.3 */
    if (cents(used_cpus) + cents(cpus) > cents(q_cpus)) {
        snprintf(why, whylen, "quota exceeded: %.2f of %.2f CPUs in use, %.2f more requested",
                 used_cpus, q_cpus, cpus);
        return false;
    }
    if (used_memory_mb + memory_mb > q_memory_mb) {
        snprintf(why, whylen, "quota exceeded: %ld of %ld MB memory in use, %ld MB more requested",
                 used_memory_mb, q_memory_mb, memory_mb);
        return false;
    }
    return true;
}
