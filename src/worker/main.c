/*
 * berth-worker — the only process with Docker access. One libev loop
 * multiplexes Redis (hiredis async: one connection for commands and the
 * heartbeat, one for the blocking job pop), Docker (curl multi, including the
 * /events stream), PostgreSQL (libpq async, pg.c), the nginx routes, timers
 * (heartbeat, reconcile) and signals; nothing on it blocks.
 *
 * Start-up: PostgreSQL is checked (and this node registered) before the loop
 * starts; Docker is pinged through the loop and a failed first ping stops the
 * worker with a sentence saying what to fix. Afterwards Docker going away only
 * shows in the heartbeat, which berth-api's /health reads.
 */
#include <ev.h>
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/config.h"
#include "berth/keys.h"
#include "berth/log.h"
#include "berth/pgconn.h"
#include "berth/util.h"
#include "docker.h"
#include "pg.h"
#include "redisq.h"
#include "routes.h"
#include "wmetrics.h"
#include "worker.h"

static struct berth_config cfg;
static struct ev_loop *loop;
static struct docker *docker;
static struct redisq *rq;
static struct worker W;
static ev_timer heartbeat_timer, stop_timer;
static bool stopping;
static ev_signal sig_term, sig_int, sig_hup;
static bool started;
static int exit_code;
static char docker_state[512] = "starting";

static void on_node_seen(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_debug("nodes.last_seen_at not written: %s", err);
}

/* The heartbeat: in Redis (TTL heartbeat_ttl_s: health and --sync-routes
 * read it), and the node's last_seen_at in PostgreSQL (GET /api/v1/nodes),
 * skipped while PostgreSQL is away rather than queued. */
static void heartbeat_publish(void)
{
    char key[128], at[32];
    json_t *hb;
    char *text;

    util_rfc3339(time(NULL), at, sizeof(at));
    snprintf(key, sizeof(key), KEY_HEARTBEAT_FMT, cfg.node);
    hb = json_pack("{s:s, s:s, s:s, s:i}", "docker", docker_state, "at", at, "node", cfg.node,
                   "pid", (int)getpid());
    text = hb ? json_dumps(hb, JSON_COMPACT) : NULL;
    if (text && !redisq_set_ex(rq, key, text, cfg.heartbeat_ttl_s))
        log_debug("heartbeat not published: Redis not connected");
    if (!wmetrics_publish(rq, cfg.node, 4 * cfg.heartbeat_ttl_s))
        log_debug("metrics not published: Redis not connected");
    if (pg_connected(W.pg)) {
        const char *p[1] = {cfg.node};
        if (pg_query(W.pg, "UPDATE nodes SET last_seen_at = now(), status = 'up' WHERE name = $1",
                     1, p, on_node_seen, NULL) < 0)
            log_debug("nodes.last_seen_at not queued");
    }
    free(text);
    json_decref(hb);
}

/* Docker's storage, for templates with disk_mb (lifecycle.c): learned when
 * Docker answers, so a create never waits for it; until then a create with
 * disk_mb passes the limit on and Docker's own answer decides. */
static void on_info(int status, const char *body, size_t len, const char *err, void *arg)
{
    char desc[sizeof(W.storage)];
    enum docker_disk d;
    if (status != 200) {
        log_warn("Docker's /info did not answer (%s): disk_mb limits are left to Docker's answer "
                 "at create",
                 err ? err : "an HTTP error");
        return;
    }
    d = docker_disk_limits(body, len, desc, sizeof(desc));
    if (d != (enum docker_disk)W.disk_limits || strcmp(desc, W.storage) != 0)
        log_info("Docker's storage: %s (%s)", desc[0] ? desc : "unknown",
                 d == DOCKER_DISK_YES     ? "templates' disk_mb is enforced"
                 : d == DOCKER_DISK_MAYBE ? "disk_mb needs xfs mounted with pquota"
                 : d == DOCKER_DISK_NO    ? "no per-container disk limit: instances of templates "
                                            "with disk_mb fail to create"
                                          : "not known");
    W.disk_limits = (int)d;
    snprintf(W.storage, sizeof(W.storage), "%s", desc);
}

static void on_ping(int status, const char *body, size_t len, const char *err, void *arg)
{
    if (status == 200) {
        if (strcmp(docker_state, "ok") != 0) {
            log_info("Docker answers at %s", cfg.docker_socket);
            if (docker_request(docker, "GET", "/info", NULL, 10000, on_info, NULL) < 0)
                log_warn("cannot ask Docker for /info");
        }
        snprintf(docker_state, sizeof(docker_state), "ok");
    } else {
        char now[512];
        if (err)
            snprintf(now, sizeof(now), "%s", err);
        else
            snprintf(now, sizeof(now), "Docker answered /_ping with HTTP %d", status);
        if (strcmp(docker_state, now) != 0)
            log_warn("%s", now);
        snprintf(docker_state, sizeof(docker_state), "%s", now);
    }
    if (!started) {
        started = true;
        if (status != 200) {
            log_error("cannot reach Docker at docker_socket = '%s': %s -- is dockerd running, and "
                      "may this user open the socket?",
                      cfg.docker_socket, docker_state);
            exit_code = 1;
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        log_info("worker ready (node %s)", cfg.node);
        /* Docker answers: follow its events, take jobs, repair drift */
        events_start(W.events);
        runner_start(W.runner);
        reconcile_start(&W);
        idle_start(&W);
        revoke_start(&W);
        if (rpc_start(&W) < 0)
            log_error("logs, stats and exec will not be answered: out of memory");
    }
    heartbeat_publish();
}

static void on_heartbeat(struct ev_loop *l, ev_timer *w, int revents)
{
    if (docker_request(docker, "GET", "/_ping", NULL, 3000, on_ping, NULL) < 0)
        log_error("cannot start the Docker ping");
}

static void on_heartbeat_gone(redisReply *reply, void *arg)
{
    ev_break(loop, EVBREAK_ALL);
}

static void on_stop_timer(struct ev_loop *l, ev_timer *w, int revents)
{
    ev_break(l, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *l, ev_signal *w, int revents)
{
    char key[128];
    if (w->signum == SIGHUP) {
        config_reload(&cfg, CONF_WORKER);
        return;
    }
    if (stopping)
        return;
    stopping = true;
    log_info("signal %d: stopping", w->signum);
    /* The heartbeat goes first, so that /health and --sync-routes know at
     * once that this node has no worker (not a TTL later); the loop ends on
     * its answer, or after a moment without one. */
    ev_timer_stop(l, &heartbeat_timer);
    snprintf(key, sizeof(key), KEY_HEARTBEAT_FMT, cfg.node);
    if (!redisq_command(rq, on_heartbeat_gone, NULL, "DEL %s", key)) {
        ev_break(l, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&stop_timer, on_stop_timer, 0.5, 0.);
    ev_timer_start(l, &stop_timer);
}

static void on_route_logged(PGresult *res, const char *err, void *arg)
{
    if (err)
        log_warn("route error not recorded: %s", err);
}

/* nginx refused an instance's snippet: say so on the instance. */
static void on_route_error(const char *instance_id, const char *message, void *arg)
{
    const char *p[2] = {instance_id, message};
    if (pg_query(W.pg,
                 "WITH e AS (INSERT INTO instance_events (instance_id, kind, message) SELECT $1,"
                 " 'route', $2 WHERE EXISTS (SELECT 1 FROM instances WHERE id = $1))"
                 " UPDATE instances SET error = $2 WHERE id = $1",
                 2, p, on_route_logged, NULL) < 0)
        log_warn("instance %s: route error not recorded: %s", instance_id, message);
}

/* Before the loop runs: PostgreSQL must answer; register this node. */
static int register_node(void)
{
    PGconn *pg = pgconn_startup(cfg.pg_dsn);
    PGresult *res;
    const char *p[2] = {cfg.node, cfg.docker_socket};
    int rc = 0;

    if (!pg)
        return -1;
    res = PQexecParams(pg,
                       "INSERT INTO nodes (name, docker_endpoint, status, last_seen_at) "
                       "VALUES ($1, 'unix://' || $2, 'up', now()) ON CONFLICT (name) DO UPDATE "
                       "SET docker_endpoint = EXCLUDED.docker_endpoint, status = 'up', "
                       "last_seen_at = now()",
                       2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_error("cannot register node %s: %s -- have the migrations been applied "
                  "(berth-api --migrate)?",
                  cfg.node, PQresultErrorMessage(res));
        rc = -1;
    }
    PQclear(res);
    PQfinish(pg);
    return rc;
}

int main(int argc, char **argv)
{
    char err[1024];
    double hb_every;

    if (argc > 1) {
        if (strcmp(argv[1], "--help-config") == 0 || strcmp(argv[1], "--help") == 0) {
            log_init("worker", LOG_INFO);
            if (config_load(&cfg, CONF_WORKER, false, err, sizeof(err)) < 0) {
                log_error("%s", err);
                return 2;
            }
            if (strcmp(argv[1], "--help") == 0)
                printf("usage: berth-worker [--help-config]\n");
            else
                config_dump(&cfg, CONF_WORKER);
            return 0;
        }
        fprintf(stderr, "usage: berth-worker [--help-config]\n");
        return 2;
    }
    log_init("worker", LOG_INFO);
    if (config_load(&cfg, CONF_WORKER, false, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    {
        char subnet[32];
        if (worker_subnet(cfg.network_pool, "x", 0, subnet, sizeof(subnet)) < 0) {
            log_error("network_pool = '%s' is not valid: expected an IPv4 CIDR with a prefix of "
                      "8 to 24, such as 10.213.0.0/16",
                      cfg.network_pool);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        log_error("cannot initialise libcurl");
        return 1;
    }
    if (register_node() < 0)
        return 1;

    loop = EV_DEFAULT;
    docker = docker_new(loop, cfg.docker_socket);
    rq = redisq_new(loop, cfg.redis_url);
    if (!docker || !rq) {
        log_error("redis_url = '%s' is not valid: expected redis://HOST:PORT or unix:/PATH",
                  cfg.redis_url);
        return 2;
    }
    if (redisq_start(rq) < 0)
        return 1;
    W.loop = loop;
    W.cfg = &cfg;
    W.docker = docker;
    W.rq = rq;
    W.popq = redisq_new(loop, cfg.redis_url);
    W.pg = pg_new(loop, cfg.pg_dsn);
    if (!W.popq || !W.pg || redisq_start(W.popq) < 0 || pg_start(W.pg) < 0) {
        log_error("out of memory");
        return 1;
    }
    if (cfg.box_dir[0]) {
        W.routes = routes_new(loop, &cfg, on_route_error, NULL);
        if (W.routes && routes_prepare(W.routes, err, sizeof(err)) < 0) {
            log_error("box_dir = '%s': %s", cfg.box_dir, err);
            return 1;
        }
    }
    W.runner = runner_new(&W);
    W.events = events_new(&W);
    if (!W.runner || !W.events) {
        log_error("out of memory");
        return 1;
    }

    ev_signal_init(&sig_term, on_signal, SIGTERM);
    ev_signal_init(&sig_int, on_signal, SIGINT);
    ev_signal_init(&sig_hup, on_signal, SIGHUP);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_hup);
    /* Three heartbeats per TTL: one lost beat never reads as a dead worker. */
    hb_every = (double)cfg.heartbeat_ttl_s / 3.0;
    ev_timer_init(&heartbeat_timer, on_heartbeat, 0., hb_every);
    ev_timer_start(loop, &heartbeat_timer);

    ev_run(loop, 0);

    /* Teardown order: whatever may still call back (pending Redis replies get
     * NULL, queued queries get "shutting down") goes before the objects those
     * callbacks use. Docker transfers are dropped without callbacks. Jobs in
     * flight stay in :active; the next start queues them again. */
    ev_timer_stop(loop, &heartbeat_timer);
    ev_timer_stop(loop, &stop_timer);
    rpc_stop();
    idle_stop();
    revoke_stop();
    redisq_free(W.popq);
    reconcile_stop();
    docker_free(docker);
    pg_free(W.pg);
    redisq_free(rq);
    runner_free(W.runner);
    events_free(W.events);
    routes_free(W.routes);
    curl_global_cleanup();
    log_info("stopped");
    return exit_code;
}
