/*
 * berth-api — the FastCGI application behind nginx: validates, authorises,
 * writes desired state to PostgreSQL and queues jobs in Redis. It never talks
 * to Docker.
 *
 * Start-up checks that PostgreSQL and Redis answer, so a broken deployment
 * fails at once with a sentence saying what to fix; after that a dependency
 * that goes away costs 503s, never the process. Signals are taken
 * synchronously by the main thread (sigwait): TERM/INT stop, HUP reloads the
 * reloadable settings.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "berth/log.h"
#include "berth/pgconn.h"
#include "berth/util.h"
#include "berth/workspace.h"
#include "berth/redis_url.h"
#include "server.h"



static void usage(FILE *f)
{
    fprintf(f, "usage: berth-api                       serve (settings: see --help-config)\n"
               "       berth-api --migrate DIR         apply sql/ migrations and exit\n"
               "       berth-api --create-user NAME --role ROLE   create or reset a user;\n"
               "                                       password on standard input\n"
               "       berth-api --bootstrap-admin FILE  create the first admin with a generated\n"
               "                                       password (printed, saved to FILE 0600)\n"
               "       berth-api --seed-templates FILE add templates from a JSON array\n"
               "       berth-api --check               check settings, PostgreSQL and Redis\n"
               "       berth-api --sync-routes         have every node's worker rewrite its nginx\n"
               "                                       routes from the database (after a restore)\n"
               "       berth-api --image-build STATE IMAGE [MESSAGE]  record the stack's own\n"
               "                                       build of IMAGE (queued, building, ready,\n"
               "                                       failed; scripts/image-builds.sh)\n"
               "       berth-api --routes | --help-config\n");
}

static int check_services(void)
{
    struct redis_addr a;
    PGconn *pg;
    redisContext *rc;
    struct timeval tv = {2, 0};

    if (!redis_url_parse(api_cfg.redis_url, &a)) {
        log_error("redis_url = '%s' is not valid: expected redis://HOST:PORT or unix:/PATH",
                  api_cfg.redis_url);
        return -1;
    }
    if (!(pg = pgconn_startup(api_cfg.pg_dsn)))
        return -1;
    PQfinish(pg);
    rc = a.path[0] ? redisConnectUnixWithTimeout(a.path, tv)
                   : redisConnectWithTimeout(a.host, a.port, tv);
    if (!rc || rc->err) {
        log_error("cannot connect to Redis at redis_url = '%s': %s"
                  " -- is Redis running, and is redis_url right?",
                  api_cfg.redis_url, rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        return -1;
    }
    redisFree(rc);
    return 0;
}

static int serve(void)
{
    char auth_socket[CONF_STR_MAX];
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked before the threads start, so only sigwait below sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (check_services() < 0)
        return 1;
    if (api_cfg.auth_socket[0])
        util_strlcpy(auth_socket, api_cfg.auth_socket, sizeof(auth_socket));
    else if ((size_t)snprintf(auth_socket, sizeof(auth_socket), "%s.auth", api_cfg.api_socket) >=
             sizeof(auth_socket)) {
        log_error("api_socket is too long to name the auth socket after it: set auth_socket");
        return 1;
    }
    if (server_start(api_cfg.api_socket, (int)api_cfg.api_threads, auth_socket,
                     (int)api_cfg.auth_threads) < 0)
        return 1;
    chmod(api_cfg.api_socket, 0660);
    chmod(auth_socket, 0660);
    log_info("listening on %s with %ld threads, proxy checks on %s with %ld (node %s)",
             api_cfg.api_socket, api_cfg.api_threads, auth_socket, api_cfg.auth_threads,
             api_cfg.node);

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            settings_reload();
            continue;
        }
        log_info("signal %d: stopping", sig);
        break;
    }
    server_stop(1500);
    log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_MIGRATE = 256, OPT_CREATE, OPT_ROLE, OPT_BOOT, OPT_SEED, OPT_CHECK, OPT_ROUTES,
           OPT_HELPCONF, OPT_SYNC, OPT_IMAGE };
    static const struct option opts[] = {
        {"migrate", required_argument, NULL, OPT_MIGRATE},
        {"create-user", required_argument, NULL, OPT_CREATE},
        {"role", required_argument, NULL, OPT_ROLE},
        {"bootstrap-admin", required_argument, NULL, OPT_BOOT},
        {"seed-templates", required_argument, NULL, OPT_SEED},
        {"check", no_argument, NULL, OPT_CHECK},
        {"sync-routes", no_argument, NULL, OPT_SYNC},
        {"image-build", required_argument, NULL, OPT_IMAGE},
        {"routes", no_argument, NULL, OPT_ROUTES},
        {"help-config", no_argument, NULL, OPT_HELPCONF},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *migrate = NULL, *create = NULL, *role = NULL, *boot = NULL, *seed = NULL,
               *image_state = NULL;
    bool check = false, routes = false, helpconf = false, sync = false;
    char err[1024];
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_MIGRATE: migrate = optarg; break;
        case OPT_CREATE: create = optarg; break;
        case OPT_ROLE: role = optarg; break;
        case OPT_BOOT: boot = optarg; break;
        case OPT_SEED: seed = optarg; break;
        case OPT_CHECK: check = true; break;
        case OPT_SYNC: sync = true; break;
        case OPT_IMAGE: image_state = optarg; break;
        case OPT_ROUTES: routes = true; break;
        case OPT_HELPCONF: helpconf = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    /* --image-build takes the image and an optional message after it */
    if ((image_state ? argc - optind < 1 || argc - optind > 2 : optind != argc) ||
        (create && !role) || (role && !create)) {
        usage(stderr);
        return 2;
    }
    if (routes) {
        router_print();
        return 0;
    }
    log_init("api", LOG_INFO);
    if (settings_init(err, sizeof(err)) < 0) {
        log_error("%s", err);
        return 2;
    }
    log_set_level(api_cfg.log_level);
    if (helpconf) {
        config_dump(&api_cfg, CONF_API);
        return 0;
    }
    if (migrate)
        return migrate_run(migrate);
    if (create)
        return admin_create_user(create, role);
    if (boot)
        return admin_bootstrap(boot);
    if (seed)
        return admin_seed_templates(seed);
    if (check)
        return check_services() == 0 ? 0 : 1;
    if (sync)
        return admin_sync_routes();
    if (image_state)
        return admin_image_build(image_state, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
    return serve();
}
