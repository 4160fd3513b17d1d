/*
 * server — berth-api's fixed pool of request threads. Each thread owns one
 * FastCGI request object and its own PostgreSQL and Redis connections, loops
 * on FCGX_Accept_r, and hands each request to the router.
 *
 * Stopping: libfcgi blocks in accept(2) and ignores SIGTERM in threads, so
 * server_stop() shuts the listening socket down; every blocked accept then
 * fails, each thread finishes the request it is on and leaves.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api.h"
#include "berth/log.h"
#include "berth/util.h"
#include "server.h"

struct berth_config api_cfg; /* loaded by main(), reloaded on SIGHUP */

static int listen_fd = -1;
static atomic_bool stopping;
static pthread_t *threads;
static struct api_thread *thread_ctx;
static atomic_int threads_live;
static int nthreads;

static void handle(struct api_thread *th, FCGX_Request *fr)
{
    struct req r;
    unsigned char rid[8];
    char ipbuf[64];
    int64_t t0 = util_now_ms();

    memset(&r, 0, sizeof(r));
    r.fcgi = fr;
    r.th = th;
    if (util_random(rid, sizeof(rid)) < 0)
        memset(rid, 0, sizeof(rid));
    util_hex(rid, sizeof(rid), r.id);
    log_set_context(r.id);
    r.method = req_param(&r, "REQUEST_METHOD");
    r.path = req_param(&r, "DOCUMENT_URI");
    r.query = req_param(&r, "QUERY_STRING");
    /* the client's address: X-Forwarded-For only from trusted_proxies */
    r.ip = auth_client_addr(&r, ipbuf, sizeof(ipbuf));
    if (!r.method)
        r.method = "GET";
    if (!r.path)
        r.path = "/";
    if (!r.query)
        r.query = "";
    if (!r.ip)
        r.ip = "";

    router_dispatch(&r);
    if (!r.sent)
        http_send_error(&r, 500, "internal", NULL, "the handler sent no response");
    metrics_observe(r.status, (long)(util_now_ms() - t0));
    log_debug("%s %s %d %lldms", r.method, r.path, r.status, (long long)(util_now_ms() - t0));
    free(r.body);
    log_set_context(NULL);
}

static void *thread_main(void *arg)
{
    struct api_thread *th = arg;
    FCGX_Request fr;

    if (FCGX_InitRequest(&fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        log_error("thread %d: cannot initialise a FastCGI request", th->index);
        goto out;
    }
    while (!atomic_load(&stopping)) {
        if (FCGX_Accept_r(&fr) < 0)
            break;
        handle(th, &fr);
        FCGX_Finish_r(&fr);
    }
    FCGX_Free(&fr, 1);
out:
    db_close(th);
    rq_close(th);
    atomic_fetch_sub(&threads_live, 1);
    return NULL;
}

int server_start(const char *socket_path, int n)
{
    if (FCGX_Init() != 0) {
        log_error("cannot initialise libfcgi");
        return -1;
    }
    listen_fd = FCGX_OpenSocket(socket_path, 1024);
    if (listen_fd < 0) {
        log_error("cannot listen on %s: check api_socket and that its directory exists",
                  socket_path);
        return -1;
    }
    threads = calloc((size_t)n, sizeof(*threads));
    thread_ctx = calloc((size_t)n, sizeof(*thread_ctx));
    if (!threads || !thread_ctx)
        return -1;
    nthreads = n;
    for (int i = 0; i < n; i++) {
        thread_ctx[i].index = i;
        if (pthread_create(&threads[i], NULL, thread_main, &thread_ctx[i]) != 0) {
            log_error("cannot start request thread %d", i);
            return -1;
        }
        atomic_fetch_add(&threads_live, 1);
    }
    return 0;
}

void server_stop(int timeout_ms)
{
    int64_t deadline = util_now_ms() + timeout_ms;

    atomic_store(&stopping, true);
    FCGX_ShutdownPending();
    if (listen_fd >= 0)
        shutdown(listen_fd, SHUT_RDWR);
    while (atomic_load(&threads_live) > 0 && util_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&threads_live) > 0) {
        log_warn("%d request threads still busy at shutdown; leaving them",
                 atomic_load(&threads_live));
        return; /* the process exits around them */
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    free(thread_ctx);
    threads = NULL;
    thread_ctx = NULL;
}
