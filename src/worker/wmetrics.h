/*
 * wmetrics — berth-worker's own figures for GET /metrics (issue 15): how long
 * jobs take by kind, Docker's answers by method, nginx's configuration test
 * and the whole test-and-reload cycle, how far behind Docker's event stream
 * the worker reads, and how long a reconcile pass takes. Counted in process memory (berth/metrics.h
 * histograms), rendered with the node's label and published with the
 * heartbeat under KEY_METRICS_FMT, where berth-api serves them.
 *
 * Loop thread only (the counters are atomics all the same).
 */
#ifndef BERTH_WORKER_WMETRICS_H
#define BERTH_WORKER_WMETRICS_H

#include <stdbool.h>

#include "berth/protocol.h"
#include "redisq.h"

enum wm_nginx {
    WM_NGINX_TEST,  /* nginx -t of the routes */
    WM_NGINX_CYCLE, /* from the test's start to the reload done (or signalled) */
};

/* A job of kind ran for seconds, from its claim to its end here. */
void wmetrics_job(enum job_kind kind, double seconds);
/* A Docker call (not a stream) answered, or failed, after seconds. */
void wmetrics_docker(const char *method, double seconds);
/* One nginx step took seconds. */
void wmetrics_nginx(enum wm_nginx what, double seconds);
/* A Docker event arrived lag seconds after Docker stamped it. */
void wmetrics_event_lag(double seconds);
/* A reconcile pass (Docker's containers against the database) took seconds. */
void wmetrics_reconcile(double seconds);

/* Render every figure with node="node" and SET it under KEY_METRICS_FMT of
 * node for ttl_s seconds (fire and forget). false when Redis is not
 * connected or memory ran out. */
bool wmetrics_publish(struct redisq *rq, const char *node, long ttl_s);

#endif
