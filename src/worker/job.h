/*
 * job.h — what the job runner's modules share (private to them; the rest of
 * the worker sees struct runner through worker.h only):
 *
 *   jobq.c       the queue: pop, watchdog, a job's row (load, hold, claim,
 *                outcome, retry with the one backoff, job_timeout_s),
 *                dispatch by kind, and the small kinds (ssh_keys, routes_sync)
 *   jobcall.c    the calls a job makes: every PostgreSQL and Docker call of a
 *                job goes through q/dcall/dstream, which drop the answers of
 *                an attempt given up on
 *   lifecycle.c  create, start, stop, restart of an instance's container
 *   image.c      a create's missing image: built here (wait), or pulled
 *   usernet.c    per-user networks: lookup and creation (one job of a user
 *                at a time), the subnets in use on this dockerd, removal
 *   deletes.c    delete (container, volumes, the network with the last
 *                instance), volume_delete, user_delete
 *
 * Everything here runs on the worker's loop thread.
 */
#ifndef BERTH_WORKER_JOB_H
#define BERTH_WORKER_JOB_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "berth/protocol.h"
#include "docker.h"
#include "pg.h"
#include "worker.h"

#define STOP_TIMEOUT_S 10

/* What a job's timer does when it fires: the one timer of a job, and what
 * it is holding the job for. */
enum job_step {
    STEP_LOAD,           /* start over from the job's row (after a retry's backoff,
                            a not_before, PostgreSQL away or its queue full) */
    STEP_NET_WAIT,       /* another job of the user has the network in hand: look again */
    STEP_IMAGE_WAIT,     /* the stack is still building the image: look again */
    STEP_ROUTES_SETTLED, /* routes_sync: done once nginx has the result */
    STEP_OUTCOME,        /* write the job's outcome again: PostgreSQL did not take it */
};

/* A job's outcome, kept until PostgreSQL has it (job_done, job_fail for
 * good): the work is done in Docker, so a write that meets an outage is
 * written again, never forgotten with the job's row left `running`. */
struct job_outcome {
    bool set;       /* decided: only its write is left */
    bool failed;    /* failed for good (why), else done */
    char status[16]; /* done: the instance's new status ("": unchanged) */
    char *ev_kind, *ev_msg, *why; /* owned; NULL: none */
    int writes;      /* tries so far */
};

struct job {
    struct runner *rn;
    struct job *next;
    char id[37];
    char kind[16];
    char instance_id[37], volume_id[37], user_id[37];
    bool delete_volumes;
    int attempts;
    bool waiting; /* parked behind another job of the same instance */
    bool dead;    /* finished: freed by the check watcher once no call is in flight */
    ev_timer timer;
    enum job_step step; /* what timer does when it fires */
    /* job_timeout_s: from the claim to the outcome, restarted by every
     * answer; when it fires the attempt is given up (job_lost) */
    ev_timer deadline;
    unsigned epoch;    /* the attempt's number here: answers of an earlier one are dropped */
    unsigned inflight; /* calls whose answer has not come back (the job is not freed) */
    /* instance */
    json_t *spec, *ports, *vols;
    char user[64], name[64], status[16], desired[16];
    char cname[64], net[160], cid[80];
    size_t vol_i;
    char pull_error[512];
    char build_msg[200]; /* the image build's message last told as an event */
    int redraws;   /* host ports drawn again this attempt (taken outside berth) */
    int net_try;   /* subnets of network_pool tried for the user's network */
    int net_looks; /* lookups of the user's network this attempt */
    bool net_ready, image_ready; /* made sure of this attempt, after a 404 from create */
    /* HTTP exposure (issue 10): the template's container port, and the
     * instance's address on its user network (instances.upstream_host, ""
     * until assigned) that nginx proxies to */
    long http_port;
    char addr[48];
    int addr_tries; /* allocations that met a concurrent one's address */
    bool guessed;   /* an address drawn before the network's subnet was known */
    char alloc_cidr[48], alloc_gw[48]; /* the subnet being drawn from */
    bool recreated; /* the container was removed this attempt to be made again */
    struct job_outcome outcome;
    int64_t t0;
};

struct net_pending;
struct net_subnet;
struct used_subnet;

struct runner {
    struct worker *w;
    /* usernet.c */
    struct net_subnet *subnets;
    struct used_subnet *used; /* the last listing of Docker's networks, and overlaps */
    size_t nused;
    bool listing, list_again; /* a GET /networks in flight; another asked for */
    struct net_pending *nets; /* networks being looked up or created (per user, shared) */
    /* jobq.c */
    bool started; /* popping jobs (after the first listing) */
    struct job *jobs; /* held: running, delayed or waiting */
    int njobs;
    bool popping;
    ev_timer pop_watchdog, pop_retry;
    ev_check reaper;
    char jobs_key[128], active_key[160];
};

/* ---- jobcall.c: the calls of a job ---- */

/* One call in flight for a job of its attempt (epoch): the arg its callback
 * is given by the adapter; the answer goes through call_end. */
struct call {
    struct job *j;
    unsigned epoch;
    pg_cb pg;
    docker_cb done;
    docker_line_cb line;
};
/* A call of j (j->inflight + 1); NULL when out of memory. */
struct call *call_new(struct job *j);
/* The call c answered: *out is its job; true (and the job's deadline
 * restarted) when the attempt that made it still runs, false when the
 * answer must be dropped. c is freed either way. */
bool call_end(struct call *c, struct job **out);

/* A PostgreSQL statement of the job: cb gets the job as arg, unless the
 * attempt was given up on meanwhile (then the answer is dropped). A full
 * queue holds the job and starts it over from its row in 2 s. */
void q(struct job *j, const char *sql, int n, const char *const *p, pg_cb cb);
/* A statement whose outcome only matters for the log (no job attached). */
void q_detached(struct worker *w, const char *sql, int n, const char *const *p);
/* An instance event of the job's instance (none when the job has none). */
void event(struct job *j, const char *kind, const char *msg);
/* A Docker call of the job (cb as for q); one that cannot start fails the
 * attempt (retryable). */
void dcall(struct job *j, const char *method, const char *path, const char *body,
           long timeout_ms, docker_cb cb);
/* A streamed Docker call of the job (an image pull): each line is progress. */
void dstream(struct job *j, const char *method, const char *path, long timeout_ms,
             docker_line_cb line, docker_cb done);
/* Docker failed before an answer (status 0) or answered an error: the
 * attempt fails with "what: Docker said ... (HTTP n)", retryable for 5xx and
 * no answer. */
void docker_failed(struct job *j, const char *what, int status, const char *body, size_t len,
                   const char *err);

/* ---- jobq.c: a job's outcome and hold ---- */

/* The attempt failed: retried after job_backoff_s (row queued, not_before),
 * or, permanent or out of attempts, the job failed and its instance in
 * `error` with why. */
void job_fail(struct job *j, const char *why, bool retryable);
/* The answer of a statement of j: true when it succeeded (err NULL); else
 * the attempt fails, retryable, with `what` (PostgreSQL away, a statement
 * refused) and false. */
bool job_pg_ok(struct job *j, const char *err, const char *what);
/* Success: job done, and the instance's status (NULL: unchanged) and an
 * event (ev_kind NULL: none) in the same statement; then job_finish. */
void job_done(struct job *j, const char *status, const char *ev_kind, const char *ev_msg);
/* Done with the job here: off :active, released (the next job of its
 * instance may go). */
void job_finish(struct job *j);
/* Hold the job: its timer fires in `seconds` and does `next`. */
void job_hold(struct job *j, double seconds, enum job_step next);
/* The next start of a job held for STEP_NET_WAIT on network `net`: now. */
void job_wake_net_waiters(struct runner *rn, const char *net);

/* After a failure of attempt `attempts` (1, 2 ...) of a job allowed
 * max_attempts: true with *delay (job_backoff_s) when it is tried again,
 * false when it fails for good (not retryable, or out of attempts). Pure. */
bool job_retry_after(int attempts, int max_attempts, bool retryable, double *delay);

/* usernet.c, at its first listing of Docker's networks: jobs may be taken. */
void runner_begin(struct runner *rn);

/* ---- lifecycle.c ---- */

/* Run a create, start, stop or restart of the loaded instance (j->spec ...). */
void lifecycle_run(struct job *j);
/* The create path from the network's subnet on (usernet.c calls it once
 * the user's network is known or made). */
void lifecycle_prepare(struct job *j);
/* The image is in Docker now: create the container. */
void lifecycle_image_ready(struct job *j);

/* ---- image.c ---- */

/* Create answered 404 and the network is there: make sure of the image
 * (present, built here, pulled), then lifecycle_image_ready, or fail the
 * attempt. Also the next step of a job held for STEP_IMAGE_WAIT. */
void image_ensure(struct job *j);
/* The least-privilege part of a container's HostConfig, from the frozen spec
 * and the settings: every capability dropped, the template's own (each of
 * the allow-list, else -1) added back; no-new-privileges unless the spec's
 * no_new_privileges is false; docker-init as PID 1; a private
 * cgroup namespace; json-file logs rotated at container_log_max_size,
 * container_log_max_files kept; StorageOpt size from disk_mb > 0. Set into
 * hc in place. 0 / -1. */
int lifecycle_harden(json_t *hc, const json_t *spec, const struct berth_config *cfg)
    __attribute__((warn_unused_result));

/* ---- usernet.c ---- */

/* The network of a user: berth-<cluster>-<user>. */
void usernet_name(const struct worker *w, const char *user, char *out, size_t size);
/* The user's network, looked up or made (one job of a user at a time); then
 * lifecycle_prepare, or the attempt fails. */
void usernet_ensure(struct job *j);
/* The network's subnet and gateway as the worker knows them; false when not. */
bool usernet_subnet(struct runner *rn, const char *net, const char **cidr, const char **gw);
/* The first-choice subnet of network net still free on this dockerd. 0 / -1. */
int usernet_guess(struct runner *rn, const char *net, char *out, size_t outlen);
/* The job's timer fired for STEP_NET_WAIT. */
void usernet_wait_over(struct job *j);
/* The job ends or gives its attempt up: marks it held on networks go. */
void usernet_release(struct runner *rn, const struct job *j);
/* Ask Docker to remove a network (one still in use stays). */
void usernet_remove(struct worker *w, const char *name);
/* Free what the runner knows of networks. */
void usernet_free(struct runner *rn);

/* ---- deletes.c ---- */

void deletes_instance(struct job *j); /* kind delete, instance loaded */
void deletes_volume(struct job *j);   /* kind volume_delete */
void deletes_user(struct job *j);     /* kind user_delete */

#endif
