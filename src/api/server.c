/*
 * server — berth-api's fixed pool of request threads. Each thread owns one
 * FastCGI request object and its own PostgreSQL and Redis connections, loops
 * on FCGX_Accept_r, and hands each request to the router.
 *
 * Long calls (exec, logs follow) are handed to longcall.c's pools with their
 * FCGX_Request: a thread that handed its request over leaves it to the pool
 * (which FCGX_Finish_r's and frees it) and accepts into a fresh one. Each
 * FCGX_Request here is on the heap and owned by exactly one thread at a time.
 *
 * Stopping: libfcgi blocks in accept(2) and ignores SIGTERM in threads, so
 * server_stop() shuts the listening socket down; every blocked accept then
 * fails, each thread finishes the request it is on and leaves. The long-call
 * pools answer what is queued 503 and end what runs within about a second.
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
#include "longcall.h"
#include "server.h"

static int listen_fd = -1;
static atomic_bool stopping;
static pthread_t *threads;
static struct api_thread *thread_ctx;
static atomic_int threads_live;
static int nthreads;

/* true when the request was handed to a long-call pool (no longer ours) */
static bool handle(struct api_thread *th, FCGX_Request *fr)
{
    struct req r;
    unsigned char rid[8];
    char ipbuf[64];
    int64_t t0 = util_now_ms();

    settings_pin(); /* one request, one configuration */
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
    if (r.handed_off) { /* r's strings are the pool thread's now: do not log them */
        settings_unpin();   /* the pool thread pins its own */
        log_set_context(NULL);
        return true;
    }
    if (!r.sent)
        http_send_error(&r, 500, "internal", NULL, "the handler sent no response");
    metrics_observe(&r, (long)(util_now_ms() - t0));
    log_debug("%s %s %d %lldms", r.method, r.path, r.status, (long long)(util_now_ms() - t0));
    free(r.body);
    settings_unpin();
    log_set_context(NULL);
    return false;
}

static FCGX_Request *request_new(void)
{
    FCGX_Request *fr = calloc(1, sizeof(*fr));
    if (fr && FCGX_InitRequest(fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        free(fr);
        fr = NULL;
    }
    return fr;
}

static void *thread_main(void *arg)
{
    struct api_thread *th = arg;
    FCGX_Request *fr = request_new();

    while (fr && !atomic_load(&stopping)) {
        if (FCGX_Accept_r(fr) < 0)
            break;
        if (handle(th, fr)) /* the pool owns fr now: accept into a fresh one */
            fr = request_new();
        else
            FCGX_Finish_r(fr);
    }
    if (fr) {
        FCGX_Free(fr, 1);
        free(fr);
    } else {
        log_error("thread %d: cannot initialise a FastCGI request", th->index);
    }
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
    if (longcall_start() < 0)
        return -1;
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
    longcall_begin_stop(); /* a hand-over from now on is answered 503 */
    FCGX_ShutdownPending();
    if (listen_fd >= 0)
        shutdown(listen_fd, SHUT_RDWR);
    while (atomic_load(&threads_live) > 0 && util_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    longcall_finish_stop(deadline);
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
