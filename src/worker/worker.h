/*
 * worker.h — what the parts of berth-worker share: one struct naming the
 * loop, the settings and each subsystem's owner object. main.c fills it;
 * the job runner (jobq.c and its modules, job.h), events.c (Docker /events)
 * and reconcile.c read it.
 */
#ifndef BERTH_WORKER_WORKER_H
#define BERTH_WORKER_WORKER_H

#include <ev.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "berth/config.h"

struct docker;
struct redisq;
struct pg;
struct routes;
struct runner;
struct events;

struct worker {
    struct ev_loop *loop;
    struct berth_config *cfg;
    struct docker *docker;
    struct redisq *rq;   /* commands: LREM, LPUSH, LRANGE, heartbeat */
    struct redisq *popq; /* the blocking BLMOVE only */
    struct pg *pg;
    struct routes *routes; /* may be NULL (no box_dir) */
    struct runner *runner;
    struct events *events;
    /* What Docker's storage can do for a template's disk_mb (GET /info
     * when Docker first answers, and whenever it answers again): an enum
     * docker_disk, and its driver and backing filesystem in words. */
    int disk_limits;
    char storage[96];
};

/* Max jobs running at once; the pop waits while this many are in flight. */
/* Jobs held at once (running, delayed or waiting). High enough that a burst
 * of creates (a class of 100 starting at once) is taken in within a moment:
 * each create puts its nginx route when it begins, so the whole burst's
 * routes fall into one or two reloads instead of trickling in as earlier
 * jobs finish. A held job costs a few hundred bytes; Docker takes the
 * concurrent calls as it does a client's. */
#define RUNNER_MAX_INFLIGHT 256

struct runner *runner_new(struct worker *w);
void runner_free(struct runner *rn);
/* Begin popping jobs (and keep popping across Redis reconnects). */
void runner_start(struct runner *rn);
/* True when a job of this node with that id is held by this worker. */
bool runner_owns(const struct runner *rn, const char *job_id);
/* True when a job for that instance is in flight here. */
bool runner_instance_busy(const struct runner *rn, const char *instance_id);
/* Jobs held (running, delayed or waiting). */
int runner_inflight(const struct runner *rn);

/* Ask the worker to (re)start the route of a running instance / drop it. */
/* routesync.c: one instance's route from its row values (1 written, 0 as it
 * was, -1 refused: logged and recorded as an instance event), and the pass
 * that makes the routes directory agree with the database. */
struct routesync_result {
    size_t routes;  /* live instances of this node with an HTTP port */
    size_t written; /* snippets written or linked */
    size_t removed; /* snippets of instances this node does not have */
};
typedef void (*routesync_cb)(const struct routesync_result *res, const char *err, void *arg);
/* upstream_host/upstream_port: where nginx reaches the instance -- its
 * address on its user network and the template's http_port (or, for an
 * instance from before issue 10 not moved yet, host_address and its
 * published host port). */
int routesync_put(struct worker *w, const char *instance_id, const char *user, const char *name,
                  const char *template_name, const char *upstream_host, long upstream_port,
                  bool keep);
int routesync_run(struct worker *w, bool retry_refused, routesync_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* The attempt-th /24 of pool ("10.213.0.0/16") for network `name`: the first
 * choice follows a hash of the name, later ones the next subnets. 0 / -1. */
int worker_subnet(const char *pool, const char *name, int attempt, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* The first attempt from `from` on (up to the pool's count of /24s: one
 * round of the pool from the name's first choice, wrapping at its end) whose
 * /24 taken(cidr, arg) does not claim (taken NULL: none is). 0 with *attempt
 * and out; -1 when pool is not valid, -2 when every /24 left is taken. Pure:
 * the worker passes what it knows is in use on its dockerd (usernet.c). */
typedef bool (*worker_subnet_taken)(const char *cidr, void *arg);
int worker_subnet_pick(const char *pool, const char *name, int from, worker_subnet_taken taken,
                       void *arg, int *attempt, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* usernet.c: list Docker's networks again (the subnets in use on this
 * dockerd, other stacks' too); at start, on an "overlap" answer and on every
 * reconcile pass. */
void runner_subnets_refresh(struct runner *rn);

/* upstream.c: the address nginx reaches an instance at, on its user network
 * (instances.upstream_host). The offsets of a subnet berth hands out: from
 * first to last (at most UPSTREAM_MAX_HOSTS of them) except skip (the
 * gateway); base is the network address as text. IPv4 subnets of a prefix
 * from UPSTREAM_MIN_PREFIX to UPSTREAM_MAX_PREFIX only. 0 / -1. */
#define UPSTREAM_MIN_PREFIX 8
#define UPSTREAM_MAX_PREFIX 29
#define UPSTREAM_MAX_HOSTS 4096
struct upstream_range {
    char base[16];
    long first, last, skip;
};
int upstream_range(const char *cidr, const char *gateway, struct upstream_range *r)
    __attribute__((warn_unused_result));
/* True when addr (IPv4 text) is one berth may use in cidr (gateway: that
 * network's gateway, or NULL/"" for Docker's default, the first host). */
bool upstream_usable(const char *addr, const char *cidr, const char *gateway);
/* The first IPv4 subnet (and its gateway, "" when Docker chose it) in a
 * network inspect answer's IPAM.Config. 0 / -1 when it has none. */
int upstream_ipam_subnet(const json_t *network, char *cidr, size_t cidrlen, char *gw, size_t gwlen);
/* "a.b.c.d/len" -> its network address (host order, host bits cleared) and
 * len (0-32). 0, or -1 when cidr is NULL or not an IPv4 CIDR. */
int upstream_parse_cidr(const char *cidr, uint32_t *net, int *prefix)
    __attribute__((warn_unused_result));
/* True when two IPv4 CIDRs share an address (false when either is not one). */
bool upstream_overlaps(const char *a, const char *b);
/* usernet.c: drop what the worker knows of a network's subnet (it was
 * removed, or Docker says it is missing). */
void runner_net_forget(struct runner *rn, const char *name);

struct events *events_new(struct worker *w);
void events_free(struct events *ev);
void events_start(struct events *ev);
/* Look at the container of a just-started instance in a moment: a process
 * that already exited turns the instance to `error` with its exit code (its
 * die event may have come before the job wrote `running`). Frees itself. */
void events_verify_soon(struct worker *w, const char *instance_id);
/* True when the /events stream is connected. */
bool events_connected(const struct events *ev);

/* berth-api's questions that need Docker: logs, stats, exec (rpc.c). */
/* dexec.c: a command in a container. The callback gets either failed (a
 * Docker call failed: its status, body, err) or the output (demultiplexed,
 * at most DEXEC_OUTPUT_MAX bytes, the end kept), timed_out, and the exit code
 * when Docker knew it. user: the container user the command runs as (Docker's
 * exec "User", a name or uid, checked by the caller), NULL for the image's
 * default user. */
#define DEXEC_OUTPUT_MAX (1u << 20)
struct dexec_result {
    bool failed;
    int status;
    const char *body;
    size_t len;
    const char *err;
    char *output; /* the callback may change it in place; freed after it */
    size_t output_len;
    bool timed_out;
    bool has_exit_code;
    long exit_code;
};
typedef void (*dexec_cb)(const struct dexec_result *r, void *arg);
int dexec_run(struct worker *w, const char *container, const char *user, json_t *cmd, json_t *env,
              long timeout_s, dexec_cb cb, void *arg) __attribute__((warn_unused_result));
/* Docker's multiplexed stream (no TTY): frames of an 8-byte header (stream,
 * 0, 0, 0, big-endian length) then the payload. Returns the payloads joined,
 * NUL-terminated, at most keep bytes (the end); a body that is not framed (a
 * TTY container) is taken as it is. NULL when out of memory. */
char *dexec_demux(const char *b, size_t n, size_t keep, size_t *outlen);

/* sshkeys.c: write the owner's SSH public keys into the running SSH-enabled
 * containers of user_id, or of the one instance instance_id (the other NULL).
 * The callback (may be NULL) gets how many containers could not be written;
 * each of those also gets an instance event. */
typedef void (*sshkeys_cb)(int failed, void *arg);
int sshkeys_push(struct worker *w, const char *user_id, const char *instance_id, sshkeys_cb cb,
                 void *arg) __attribute__((warn_unused_result));

int rpc_start(struct worker *w) __attribute__((warn_unused_result));
void rpc_stop(void);

/* Activity (proxied requests, and traffic on open WebSockets and SSH sessions:
 * activity.h) into last_active_at; idle instances warned, then stopped (idle.c),
 * every idle_check_s. */
void idle_start(struct worker *w);
void idle_stop(void);

/* revoke.c: access taken away (access_revocations) cuts the proxied
 * connections to the instances concerned; revoke_cut destroys the host's TCP
 * connections to addr:port (sock_diag SOCK_DESTROY, needs CAP_NET_ADMIN) and
 * counts them in *cut; 0 / -1 with errno. */
void revoke_start(struct worker *w);
void revoke_stop(void);
int revoke_cut(const char *addr, int port, int *cut) __attribute__((warn_unused_result));
/* The same for several instances with one dump of the host's sockets: each
 * target's cut is how many of its connections were destroyed. 0 / -1. */
struct revoke_target {
    struct in_addr addr;
    int port;
    int cut;
};
int revoke_cut_all(struct revoke_target *t, size_t nt) __attribute__((warn_unused_result));

/* Start-up and periodic drift repair (reconcile.c). */
void reconcile_start(struct worker *w);
void reconcile_stop(void);
void reconcile_now(struct worker *w);

#endif
