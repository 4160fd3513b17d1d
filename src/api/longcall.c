/*
 * longcall — pools for calls that wait long on a worker, so request threads
 * stay free for everything else (/_berth/auth, login, health).
 *
 * Ownership of the FastCGI request: a request thread accepts into a heap
 * FCGX_Request it owns. A handler that makes a long call validates,
 * authorises as usual, takes a place with longcall_admit() (or has answered
 * 429), writes its audit row, then longcall_run() copies its struct req into
 * the job and takes the FCGX_Request with it (r->handed_off): from
 * then on only the job's owner touches it. The request thread leaves it
 * alone (no FCGX_Finish_r) and accepts the next request into a fresh
 * FCGX_Request. A pool thread takes the job, runs it with its own thread
 * context (its own Redis connection), and finishes the request: FCGX_Finish_r,
 * then FCGX_Free(.., 1) (closes a kept-alive connection too) and free().
 * Refused and shutdown-drained jobs are finished the same way, after a 429
 * or 503.
 *
 * Caps, under one mutex: per pool, calls in flight (queued + running) at
 * most queue_max; per user, at most admit_per_user in flight; beyond either,
 * 429 rate_limited with Retry-After and nothing started. A user's calls run
 * on at most run_per_user threads at once (exec: all threads but one), so
 * one user at their cap cannot take every thread from the others: their
 * further admitted calls wait in the queue instead.
 */
#include "longcall.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/log.h"
#include "berth/util.h"

/* 429s say Retry-After: 5 -- a few seconds, as an exec usually ends within that */

struct job {
    struct job *next;
    int kind;
    struct req r; /* owns r.fcgi and r.body */
    char ip[64];
    char user[37];
    longcall_fn fn;
    void *arg;
    void (*free_arg)(void *);
    int64_t t0;
};

struct user_count {
    struct user_count *next;
    char user[37];
    int inflight[2], running[2];
};

struct pool {
    const char *name;
    int nthreads, queue_max, run_per_user, admit_per_user; /* admit: 0 = exec_per_user */
    pthread_t *tids;
    struct api_thread *th;
    bool *created;
    struct job *head, *tail;
    int inflight;
    pthread_cond_t cond;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool pools[2];
static struct user_count *users;
static atomic_bool stopping;
static atomic_int threads_live;
static bool started;

bool longcall_stopping(void)
{
    return atomic_load(&stopping);
}

static struct user_count *user_get(const char *user, bool create)
{
    for (struct user_count *u = users; u; u = u->next)
        if (strcmp(u->user, user) == 0)
            return u;
    if (!create)
        return NULL;
    struct user_count *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    util_strlcpy(u->user, user, sizeof(u->user));
    u->next = users;
    users = u;
    return u;
}

/* Under mu: forget a user with nothing in flight. */
static void user_maybe_drop(struct user_count *u)
{
    if (u->inflight[0] || u->inflight[1])
        return;
    for (struct user_count **pp = &users; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            free(u);
            return;
        }
}

static void send_rate_limited(struct req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void send_rate_limited(struct req *r, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_send_error_with(r, 429, "Retry-After: 5\r\n", "rate_limited", msg);
}

/* Finish the job's request and free everything the job holds. */
static void job_end(struct job *j)
{
    FCGX_Request *fr = j->r.fcgi;

    if (!j->r.sent)
        http_send_error(&j->r, 500, "internal", NULL, "the handler sent no response");
    metrics_observe(&j->r, (long)(util_now_ms() - j->t0));
    log_debug("%s %s %d %lldms (long call)", j->r.method, j->r.path, j->r.status,
              (long long)(util_now_ms() - j->t0));
    FCGX_Finish_r(fr);
    FCGX_Free(fr, 1);
    free(fr);
    free(j->r.body);
    if (j->free_arg)
        j->free_arg(j->arg);
    free(j);
}

/* Under mu: a job of `user` left its pool (run, or refused while stopping). */
static void job_release(struct pool *p, int kind, const char *user, bool ran)
{
    struct user_count *u = user_get(user, false);
    p->inflight--;
    if (u) {
        u->inflight[kind]--;
        if (ran)
            u->running[kind]--;
        user_maybe_drop(u);
    }
    pthread_cond_broadcast(&p->cond); /* a user's next call may run now */
}

/* Under mu: the first queued job whose user may take one more thread. */
static struct job *job_pick(struct pool *p, int kind)
{
    for (struct job **pp = &p->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        struct job *j = *pp;
        struct user_count *u = user_get(j->user, false);
        if (u && u->running[kind] >= p->run_per_user)
            continue;
        *pp = j->next;
        if (p->tail == j)
            p->tail = prev;
        j->next = NULL;
        if (u)
            u->running[kind]++;
        return j;
    }
    return NULL;
}

struct thread_arg {
    struct pool *p;
    int kind, index;
};

static void *pool_main(void *arg)
{
    struct thread_arg ta = *(struct thread_arg *)arg;
    struct pool *p = ta.p;
    struct api_thread *th = &p->th[ta.index];
    char user[37];

    free(arg);
    pthread_mutex_lock(&mu);
    for (;;) {
        struct job *j;
        bool ran = true;
        if (atomic_load(&stopping) && p->head) { /* drain: answer 503, start nothing */
            j = p->head;
            p->head = j->next;
            if (!p->head)
                p->tail = NULL;
            ran = false;
        } else if (!(j = job_pick(p, ta.kind))) {
            if (atomic_load(&stopping))
                break;
            pthread_cond_wait(&p->cond, &mu);
            continue;
        }
        pthread_mutex_unlock(&mu);
        util_strlcpy(user, j->user, sizeof(user));
        log_set_context(j->r.id);
        if (ran) {
            j->r.th = th;
            settings_pin();
            j->fn(&j->r, j->arg);
            settings_unpin();
        } else {
            http_send_error(&j->r, 503, "unavailable", NULL, "berth-api is stopping");
        }
        job_end(j);
        log_set_context(NULL);
        pthread_mutex_lock(&mu);
        job_release(p, ta.kind, user, ran);
    }
    pthread_mutex_unlock(&mu);
    db_close(th);
    rq_close(th);
    atomic_fetch_sub(&threads_live, 1);
    return NULL;
}

static int pool_init(struct pool *p, int kind, const char *name, int nthreads, int queue_max,
                     int run_per_user, int admit_per_user)
{
    p->name = name;
    p->nthreads = nthreads;
    p->queue_max = queue_max;
    p->run_per_user = run_per_user;
    p->admit_per_user = admit_per_user;
    pthread_cond_init(&p->cond, NULL);
    p->tids = calloc((size_t)nthreads, sizeof(*p->tids));
    p->th = calloc((size_t)nthreads, sizeof(*p->th));
    p->created = calloc((size_t)nthreads, sizeof(*p->created));
    if (!p->tids || !p->th || !p->created)
        return -1;
    for (int i = 0; i < nthreads; i++) {
        struct thread_arg *ta = malloc(sizeof(*ta));
        if (!ta)
            return -1;
        ta->p = p;
        ta->kind = kind;
        ta->index = i;
        p->th[i].index = (kind + 1) * 1000 + i; /* 1000+: exec, 2000+: follow (logs) */
        atomic_fetch_add(&threads_live, 1);
        if (pthread_create(&p->tids[i], NULL, pool_main, ta) != 0) {
            atomic_fetch_sub(&threads_live, 1);
            free(ta);
            log_error("cannot start %s thread %d", name, i);
            return -1;
        }
        p->created[i] = true;
    }
    return 0;
}

int longcall_start(void)
{
    int ne = (int)api_cfg.exec_threads, nf = (int)(api_cfg.api_threads / 2);

    if (nf < 1)
        nf = 1;
    started = true;
    /* exec: a queue of 4 x the threads; one user runs on all threads but one */
    if (pool_init(&pools[LONGCALL_EXEC], LONGCALL_EXEC, "exec", ne, 4 * ne, ne > 1 ? ne - 1 : 1,
                  0) < 0)
        return -1;
    /* follow: a stream lasts up to 30 min, so no queue: as many as threads */
    if (pool_init(&pools[LONGCALL_FOLLOW], LONGCALL_FOLLOW, "log follow", nf, nf, nf, nf) < 0)
        return -1;
    return 0;
}

void longcall_begin_stop(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&stopping, true);
    for (int k = 0; k < 2; k++)
        if (pools[k].tids)
            pthread_cond_broadcast(&pools[k].cond);
    pthread_mutex_unlock(&mu);
}

void longcall_finish_stop(int64_t deadline_ms)
{
    if (!started)
        return;
    longcall_begin_stop();
    while (atomic_load(&threads_live) > 0 && util_now_ms() < deadline_ms) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&threads_live) > 0) {
        log_warn("%d long-call threads still busy at shutdown; leaving them",
                 atomic_load(&threads_live));
        return; /* the process exits around them */
    }
    for (int k = 0; k < 2; k++) {
        struct pool *p = &pools[k];
        for (int i = 0; i < p->nthreads && p->created; i++)
            if (p->created[i])
                pthread_join(p->tids[i], NULL);
        free(p->tids);
        free(p->th);
        free(p->created);
        if (p->tids)
            pthread_cond_destroy(&p->cond);
        memset(p, 0, sizeof(*p));
    }
    while (users) { /* empty by now; just in case */
        struct user_count *u = users;
        users = u->next;
        free(u);
    }
    started = false;
}

struct longcall *longcall_admit(struct req *r, enum longcall_pool pool)
{
    struct pool *p = &pools[pool];
    struct job *j;
    struct user_count *u;
    int admit;
    bool mine;

    if (!(j = calloc(1, sizeof(*j)))) {
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&mu);
    admit = p->admit_per_user > 0 ? p->admit_per_user : (int)api_cfg.exec_per_user;
    if (atomic_load(&stopping) || !p->tids) {
        pthread_mutex_unlock(&mu);
        free(j);
        http_send_error(r, 503, "unavailable", NULL, "berth-api is stopping");
        return NULL;
    }
    if (!(u = user_get(r->actor.user_id, true))) {
        pthread_mutex_unlock(&mu);
        free(j);
        http_send_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    mine = u->inflight[pool] >= admit;
    if (mine || p->inflight >= p->queue_max) {
        user_maybe_drop(u);
        pthread_mutex_unlock(&mu);
        free(j);
        if (mine)
            send_rate_limited(r, "you have as many %s calls running as one user may; wait "
                                 "for one to end", p->name);
        else
            send_rate_limited(r, "the server has as many %s calls running as it takes; try "
                                 "again later", p->name);
        return NULL;
    }
    u->inflight[pool]++;
    p->inflight++;
    pthread_mutex_unlock(&mu);
    j->kind = pool;
    util_strlcpy(j->user, r->actor.user_id, sizeof(j->user));
    return (struct longcall *)j;
}

void longcall_run(struct longcall *lc, struct req *r, longcall_fn fn, void *arg,
                  void (*free_arg)(void *))
{
    struct job *j = (struct job *)lc;
    struct pool *p = &pools[j->kind];

    /* the job takes the request: a copy of r whose borrowed pointers stay
     * valid without r (params point into its own param_buf, ip into ip) */
    j->r = *r;
    for (int i = 0; i < r->nparams; i++)
        if (r->params[i] >= r->param_buf && r->params[i] < r->param_buf + sizeof(r->param_buf))
            j->r.params[i] = j->r.param_buf + (r->params[i] - r->param_buf);
    util_strlcpy(j->ip, r->ip ? r->ip : "", sizeof(j->ip));
    j->r.ip = j->ip;
    j->fn = fn;
    j->arg = arg;
    j->free_arg = free_arg;
    j->t0 = util_now_ms();
    r->body = NULL; /* the job's now */
    r->sent = true;
    r->handed_off = true;
    pthread_mutex_lock(&mu); /* queued even when stopping: the drain answers it 503 */
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&mu);
}
