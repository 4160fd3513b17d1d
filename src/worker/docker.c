/*
 * docker — curl multi on libev (the pattern of curl's evhiperfifo example,
 * written for berth): curl tells us which sockets to watch and when to time
 * out; libev tells curl when a socket is ready or the timer fired; finished
 * transfers are collected and their callbacks run, then the easy handles are
 * freed (after the callback has returned).
 */
#include "docker.h"
#include "berth/util.h"
#include "wmetrics.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"

struct docker {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    char socket_path[512];
    int inflight;
    struct xfer *xfers; /* in flight, for docker_free */
    enum docker_fail fail; /* of the failed request whose callback runs */
};

struct xfer {
    struct docker *d;
    CURL *easy;
    struct curl_slist *headers;
    char *req_body;
    char *buf;
    size_t len, cap;
    bool too_big;
    docker_cb cb;
    docker_line_cb line_cb;
    void *arg;
    char method[8]; /* for wmetrics */
    struct xfer *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

static void xfer_unlink(struct docker *d, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void xfer_free(struct xfer *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->req_body);
    free(x->buf);
    free(x);
}

struct sockw {
    ev_io io;
    struct docker *d;
    curl_socket_t fd;
};

static void check_done(struct docker *d)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(d->multi, &left))) {
        struct xfer *x;
        long status = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (!x->line_cb) { /* a call, not a stream: how long Docker took */
            curl_off_t us = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &us);
            wmetrics_docker(x->method, (double)us / 1e6);
        }
        curl_multi_remove_handle(d->multi, msg->easy_handle);
        xfer_unlink(d, x);
        d->inflight--;
        if (x->buf)
            x->buf[x->len] = '\0';
        if (x->too_big) {
            d->fail = DOCKER_TOO_LARGE;
            x->cb(0, "", 0, "Docker's response was larger than the limit", x->arg);
        } else if (msg->data.result == CURLE_COULDNT_CONNECT) {
            /* curl's own words ("Failed to connect to docker port 80 ...")
             * speak of a TCP port that does not exist here */
            char why[640];
            snprintf(why, sizeof(why),
                     "Docker unreachable at %s: nothing answers on the socket (is dockerd"
                     " running?)",
                     d->socket_path);
            d->fail = DOCKER_UNREACHABLE;
            x->cb(0, "", 0, why, x->arg);
        } else if (msg->data.result != CURLE_OK) {
            char why[CURL_ERROR_SIZE + 640];
            d->fail = msg->data.result == CURLE_OPERATION_TIMEDOUT ? DOCKER_TIMED_OUT
                                                                   : DOCKER_TRANSPORT;
            snprintf(why, sizeof(why), "Docker unreachable at %s: %s", d->socket_path,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(msg->data.result));
            x->cb(0, "", 0, why, x->arg);
        } else {
            x->cb((int)status, x->buf ? x->buf : "", x->len, NULL, x->arg);
        }
        d->fail = DOCKER_OK;
        xfer_free(x);
    }
}

enum docker_fail docker_failure(const struct docker *d)
{
    return d->fail;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct docker *d = w->data;
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(d);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct docker *d = userp;
    ev_timer_stop(d->loop, &d->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&d->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(d->loop, &d->timer);
    }
    return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sockw *s = (struct sockw *)w;
    struct docker *d = s->d; /* s may be freed by socket_cb during the action */
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(d->multi, s->fd, action, &running);
    check_done(d);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct docker *d = userp;
    struct sockw *s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(d->loop, &s->io);
            free(s);
            curl_multi_assign(d->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->d = d;
        s->fd = fd;
        curl_multi_assign(d->multi, fd, s);
    } else {
        ev_io_stop(d->loop, &s->io);
    }
    ev_io_init(&s->io, on_io, fd,
               (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
    ev_io_start(d->loop, &s->io);
    return 0;
}

/* Append n bytes to x's buffer (callers check the caps first); false when
 * memory runs out, which aborts the transfer. */
static bool append(struct xfer *x, const char *ptr, size_t n)
{
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        char *nb;
        while (cap < x->len + n + 1)
            cap *= 2;
        nb = realloc(x->buf, cap);
        if (!nb)
            return false;
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, ptr, n);
    x->len += n;
    return true;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    if (x->line_cb) {
        /* append, then hand over every complete line and keep the rest */
        size_t start = 0;
        if (x->len + n + 1 > DOCKER_MAX_LINE + 1 + n) {
            x->too_big = true;
            return 0;
        }
        if (!append(x, ptr, n))
            return 0;
        for (size_t i = 0; i < x->len; i++) {
            if (x->buf[i] != '\n')
                continue;
            x->buf[i] = '\0';
            if (i > start)
                x->line_cb(x->buf + start, i - start, x->arg);
            start = i + 1;
        }
        memmove(x->buf, x->buf + start, x->len - start);
        x->len -= start;
        if (x->len > DOCKER_MAX_LINE) {
            x->too_big = true;
            return 0;
        }
        return n;
    }
    if (x->len + n + 1 > DOCKER_MAX_BODY) {
        x->too_big = true;
        return 0; /* aborts the transfer */
    }
    return append(x, ptr, n) ? n : 0;
}

struct docker *docker_new(struct ev_loop *loop, const char *socket_path)
{
    struct docker *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->loop = loop;
    snprintf(d->socket_path, sizeof(d->socket_path), "%s", socket_path);
    d->multi = curl_multi_init();
    if (!d->multi) {
        free(d);
        return NULL;
    }
    ev_timer_init(&d->timer, on_timer, 0., 0.);
    d->timer.data = d;
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    return d;
}

void docker_free(struct docker *d)
{
    if (!d)
        return;
    ev_timer_stop(d->loop, &d->timer);
    while (d->xfers) {
        struct xfer *x = d->xfers;
        curl_multi_remove_handle(d->multi, x->easy);
        xfer_unlink(d, x);
        xfer_free(x);
    }
    curl_multi_cleanup(d->multi);
    free(d);
}

int docker_inflight(const struct docker *d)
{
    return d->inflight;
}

int docker_request(struct docker *d, const char *method, const char *path, const char *body,
                   long timeout_ms, docker_cb cb, void *arg)
{
    return docker_stream(d, method, path, body, timeout_ms, NULL, cb, arg);
}

int docker_stream(struct docker *d, const char *method, const char *path, const char *body,
                  long timeout_ms, docker_line_cb line, docker_cb cb, void *arg)
{
    char url[2048];
    struct xfer *x = calloc(1, sizeof(*x));

    if (!x)
        return -1;
    if (snprintf(url, sizeof(url), "http://docker%s%s", DOCKER_API_PREFIX, path) >=
        (int)sizeof(url))
        goto fail;
    x->d = d;
    x->cb = cb;
    x->line_cb = line;
    util_strlcpy(x->method, method, sizeof(x->method));
    x->arg = arg;
    x->easy = curl_easy_init();
    if (!x->easy)
        goto fail;
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* no "Expect: 100-continue" pause before bodies over 1 KB */
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (body) {
        x->req_body = strdup(body);
        if (!x->req_body)
            goto fail;
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->req_body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(x->req_body));
    }
    curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
    if (!body && strcmp(method, "POST") == 0)
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_UNIX_SOCKET_PATH, d->socket_path);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (timeout_ms > 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK)
        goto fail;
    x->next = d->xfers;
    if (d->xfers)
        d->xfers->prev = x;
    d->xfers = x;
    d->inflight++;
    return 0;
fail:
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->req_body);
    free(x);
    return -1;
}

int docker_cluster_filter(char *path, size_t size, const char *prefix, const char *type,
                          const char *cluster)
{
    char label[256];
    json_t *f = json_object();
    char *js = NULL, *enc = NULL;
    int n = -1;

    if (size)
        path[0] = '\0';
    if (!f || (size_t)snprintf(label, sizeof(label), "berth.cluster=%s", cluster) >= sizeof(label))
        goto out;
    if (json_object_set_new(f, "label", json_pack("[s]", label)) < 0 ||
        (type && json_object_set_new(f, "type", json_pack("[s]", type)) < 0))
        goto out;
    js = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    enc = js ? curl_easy_escape(NULL, js, 0) : NULL;
    if (enc)
        n = snprintf(path, size, "%sfilters=%s", prefix, enc);
    if (n < 0 || (size_t)n >= size) {
        n = -1;
        if (size)
            path[0] = '\0';
    }
out:
    curl_free(enc);
    free(js);
    json_decref(f);
    return n < 0 ? -1 : 0;
}

void worker_docker_message(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *v = len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(v, "message"));
    if (m)
        snprintf(out, outlen, "%s", m);
    else
        snprintf(out, outlen, "%.*s", (int)(len > 200 ? 200 : len), body);
    json_decref(v);
    /* one line */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

enum docker_disk docker_disk_limits(const char *info, size_t len, char *desc, size_t desclen)
{
    json_t *v = json_loadb(info, len, 0, NULL), *st;
    const char *driver = json_string_value(json_object_get(v, "Driver")), *fs = NULL;
    enum docker_disk d = DOCKER_DISK_UNKNOWN;
    size_t i;

    if (desclen)
        desc[0] = '\0';
    if (!driver || !driver[0]) {
        json_decref(v);
        return DOCKER_DISK_UNKNOWN;
    }
    json_array_foreach(json_object_get(v, "DriverStatus"), i, st)
    {
        const char *k = json_string_value(json_array_get(st, 0));
        if (k && strcmp(k, "Backing Filesystem") == 0)
            fs = json_string_value(json_array_get(st, 1));
    }
    if (fs && fs[0])
        snprintf(desc, desclen, "%.40s on %.40s", driver, fs);
    else
        snprintf(desc, desclen, "%.40s", driver);
    if (strcmp(driver, "btrfs") == 0 || strcmp(driver, "zfs") == 0 ||
        strcmp(driver, "devicemapper") == 0)
        d = DOCKER_DISK_YES;
    else if (strcmp(driver, "overlay2") == 0 && fs && strcmp(fs, "xfs") == 0)
        d = DOCKER_DISK_MAYBE;
    else
        d = DOCKER_DISK_NO;
    json_decref(v);
    return d;
}

bool docker_storage_opt_refused(int status, const char *body, size_t len)
{
    char msg[600];
    if (status < 400)
        return false;
    worker_docker_message(body, len, msg, sizeof(msg));
    return strcasestr(msg, "storage-opt") || strcasestr(msg, "storage opt") ||
           strcasestr(msg, "storageopt");
}
