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
 * Two pools, each on its own socket (issue 15): api_threads on api_socket
 * for the UI and the API, and auth_threads on auth_socket for nginx's
 * auth_request subrequests only (/_berth/auth/, /_berth/route). nginx keeps
 * its connections to the auth socket open (an upstream with keepalive and
 * fastcgi_keep_conn): libfcgi then reads the next request from the same
 * connection, so a kept connection pins its thread while nginx holds it
 * idle -- hence a pool of its own, sized above nginx's workers x keepalive,
 * where a slow API call never delays a proxy check and a burst of proxy
 * checks never starves the API.
 *
 * Stopping: libfcgi blocks in accept(2) and ignores SIGTERM in threads, so
 * server_stop() shuts the listening sockets down; every blocked accept then
 * fails, each thread finishes the request it is on and leaves. A thread
 * waiting on a kept connection is in read(2), not accept: its connection is
 * shut down too. The long-call pools answer what is queued 503 and end what
 * runs within about a second.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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

static int listen_fd = -1, auth_fd = -1;
static atomic_bool stopping;
static pthread_t *threads;
static struct api_thread *thread_ctx;
static FCGX_Request *_Atomic *thread_req; /* each thread's current request */
static atomic_int threads_live;
static int nthreads, napi;

static bool is_auth(const struct api_thread *th)
{
    return th->index >= napi;
}

/* A request id: random for the API; for the proxy checks a per-thread
 * counter after a random start (no system call per request). */
static void request_id(struct api_thread *th, char out[17])
{
    static __thread uint64_t next;
    unsigned char rid[8];
    if (!is_auth(th) || next == 0) {
        if (util_random(rid, sizeof(rid)) < 0)
            memset(rid, 0, sizeof(rid));
        if (is_auth(th))
            memcpy(&next, rid, sizeof(next));
    } else {
        uint64_t v = next++;
        memcpy(rid, &v, sizeof(rid));
    }
    util_hex(rid, sizeof(rid), out);
}

/* true when the request was handed to a long-call pool (no longer ours) */
static bool handle(struct api_thread *th, FCGX_Request *fr)
{
    struct req r;
    char ipbuf[64];
    int64_t t0 = util_now_ms();

    settings_pin(); /* one request, one configuration */
    memset(&r, 0, sizeof(r));
    r.fcgi = fr;
    r.th = th;
    request_id(th, r.id);
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

    if (is_auth(th))
        router_dispatch_auth(&r);
    else
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

static FCGX_Request *request_new(int fd)
{
    FCGX_Request *fr = calloc(1, sizeof(*fr));
    if (fr && FCGX_InitRequest(fr, fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        free(fr);
        fr = NULL;
    }
    return fr;
}

static void *thread_main(void *arg)
{
    struct api_thread *th = arg;
    int fd = is_auth(th) ? auth_fd : listen_fd;
    FCGX_Request *fr = request_new(fd);

    atomic_store(&thread_req[th->index], fr);
    while (fr && !atomic_load(&stopping)) {
        if (FCGX_Accept_r(fr) < 0)
            break;
        if (handle(th, fr)) { /* the pool owns fr now: accept into a fresh one */
            fr = request_new(fd);
            atomic_store(&thread_req[th->index], fr);
        } else {
            if (atomic_load(&stopping))
                fr->keepConnection = 0; /* nginx finds the connection closed */
            FCGX_Finish_r(fr);
        }
    }
    atomic_store(&thread_req[th->index], NULL);
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

int server_start(const char *socket_path, int n, const char *auth_path, int nauth)
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
    auth_fd = FCGX_OpenSocket(auth_path, 1024);
    if (auth_fd < 0) {
        log_error("cannot listen on %s: check auth_socket and that its directory exists",
                  auth_path);
        return -1;
    }
    napi = n;
    n += nauth;
    threads = calloc((size_t)n, sizeof(*threads));
    thread_ctx = calloc((size_t)n, sizeof(*thread_ctx));
    thread_req = calloc((size_t)n, sizeof(*thread_req));
    if (!threads || !thread_ctx || !thread_req)
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
    if (auth_fd >= 0)
        shutdown(auth_fd, SHUT_RDWR);
    for (int64_t kick = util_now_ms() + 100;
         atomic_load(&threads_live) > 0 && util_now_ms() < deadline;) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (kick && util_now_ms() >= kick) {
            /* A proxy-check thread still here waits on a connection nginx
             * keeps: end it (a check in flight has had 100 ms). */
            for (int i = napi; i < nthreads; i++) {
                FCGX_Request *fr = atomic_load(&thread_req[i]);
                if (fr && fr->ipcFd >= 0)
                    shutdown(fr->ipcFd, SHUT_RDWR);
            }
            kick = 0;
        }
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
    free(thread_req);
    threads = NULL;
    thread_ctx = NULL;
    thread_req = NULL;
}
