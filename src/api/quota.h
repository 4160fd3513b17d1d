/*
 * quota.h — does one more instance fit its user's quota (quota.c)?
 */
#ifndef BERTH_API_QUOTA_H
#define BERTH_API_QUOTA_H

#include <stdbool.h>
#include <stddef.h>

struct req;

/*
 * Quota check for one more instance of user_id with cpus / memory_mb, inside
 * r's transaction that inserts the instance: it locks the user row (SELECT
 * ... FOR UPDATE), so concurrent creates at the quota edge serialise and
 * exactly one wins. 0 when it fits; 1 when it does not, with the sentence
 * saying why in why (nothing answered); -1 after answering 503 (req_q).
 */
int quota_reserve(struct req *r, const char *user_id, double cpus, long memory_mb, char *why,
                  size_t whylen) __attribute__((warn_unused_result));

/* The arithmetic of quota_reserve: does one more instance of cpus / memory_mb
 * fit next to n_instances using used_cpus / used_memory_mb? false with a
 * sentence in why. CPUs are compared in hundredths (numeric(8,2)). Pure. */
bool quota_fits(long q_instances, double q_cpus, long q_memory_mb, long n_instances,
                double used_cpus, long used_memory_mb, double cpus, long memory_mb, char *why,
                size_t whylen);

#endif
