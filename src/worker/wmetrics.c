/*
 * wmetrics — see wmetrics.h.
 */
#include "wmetrics.h"

#include <stdio.h>
#include <string.h>

#include "berth/keys.h"
#include "berth/metrics.h"

/* Docker's methods berth uses; anything else counts as "other". */
static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "HEAD", "other"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static struct hist jobs[JOB_KINDS];
static struct hist docker_calls[NMETHODS];
static struct hist nginx_steps[2];
static struct hist event_lag;
static struct hist reconcile_pass;

void wmetrics_job(enum job_kind kind, double seconds)
{
    if ((int)kind >= 0 && kind < JOB_KINDS)
        hist_observe(&jobs[kind], seconds);
}

void wmetrics_docker(const char *method, double seconds)
{
    size_t i = 0;
    while (i < NMETHODS - 1 && strcmp(methods[i], method) != 0)
        i++;
    hist_observe(&docker_calls[i], seconds);
}

void wmetrics_nginx(enum wm_nginx what, double seconds)
{
    hist_observe(&nginx_steps[what == WM_NGINX_TEST ? 0 : 1], seconds);
}

void wmetrics_event_lag(double seconds)
{
    hist_observe(&event_lag, seconds);
}

void wmetrics_reconcile(double seconds)
{
    hist_observe(&reconcile_pass, seconds);
}

bool wmetrics_publish(struct redisq *rq, const char *node, long ttl_s)
{
    struct mbuf b = {0};
    char key[128], labels[160];
    bool ok;

    metrics_header(&b, "berth_worker_job_duration_seconds", "histogram",
                   "Time a job took on its node's worker, from its claim to its end, by kind.");
    for (int k = 0; k < JOB_KINDS; k++) {
        snprintf(labels, sizeof(labels), "node=\"%s\",kind=\"%s\"", node,
                 job_kind_name((enum job_kind)k));
        hist_write(&b, "berth_worker_job_duration_seconds", labels, &jobs[k]);
    }
    metrics_header(&b, "berth_worker_docker_call_duration_seconds", "histogram",
                   "Time Docker took to answer the worker, by HTTP method (streams left out).");
    for (size_t m = 0; m < NMETHODS; m++) {
        snprintf(labels, sizeof(labels), "node=\"%s\",method=\"%s\"", node, methods[m]);
        hist_write(&b, "berth_worker_docker_call_duration_seconds", labels, &docker_calls[m]);
    }
    metrics_header(&b, "berth_worker_nginx_duration_seconds", "histogram",
                   "nginx's configuration test of the routes, and the whole test-and-reload cycle.");
    snprintf(labels, sizeof(labels), "node=\"%s\",step=\"test\"", node);
    hist_write(&b, "berth_worker_nginx_duration_seconds", labels, &nginx_steps[0]);
    snprintf(labels, sizeof(labels), "node=\"%s\",step=\"cycle\"", node);
    hist_write(&b, "berth_worker_nginx_duration_seconds", labels, &nginx_steps[1]);
    metrics_header(&b, "berth_worker_event_lag_seconds", "histogram",
                   "How long after Docker stamped an event the worker read it.");
    snprintf(labels, sizeof(labels), "node=\"%s\"", node);
    hist_write(&b, "berth_worker_event_lag_seconds", labels, &event_lag);
    metrics_header(&b, "berth_worker_reconcile_duration_seconds", "histogram",
                   "How long a reconcile pass (Docker's containers against the database) took.");
    hist_write(&b, "berth_worker_reconcile_duration_seconds", labels, &reconcile_pass);

    snprintf(key, sizeof(key), KEY_METRICS_FMT, node);
    ok = !b.failed && b.buf && redisq_set_ex(rq, key, b.buf, ttl_s);
    mbuf_free(&b);
    return ok;
}
