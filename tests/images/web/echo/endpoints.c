/* endpoints: what berth-echo answers, and the request loop of a connection (echo.h). */
#include "echo.h"

/* --- endpoints --------------------------------------------------------------- */

/* Reads and drops the body; false when the connection must close. */
bool drain_body(struct conn *c, const struct request *rq)
{
    uint64_t total;
    int rc = read_body(c, rq, NULL, NULL, &total);
    if (rc == 400)
        respond_error(c, rq, 400, "malformed chunked body");
    return rc == 0;
}

static bool serve_default(struct conn *c, const struct request *rq, bool *keep)
{
    if (!drain_body(c, rq))
        return false;
    return respond_text(c, rq, 200, NULL, keep,
                        "berth demo workspace\n"
                        "request: %s\n"
                        "connection: request %lu\n"
                        "endpoints: .../headers .../upload .../sse?n=5&interval_ms=300 .../ws\n",
                        rq->line, c->served);
}

size_t format_headers(const struct request *rq, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < rq->nh; i++) {
        int n = snprintf(out + len, cap - len, "%s: %s\n", rq->h[i].name, rq->h[i].value);
        if (n < 0 || (size_t)n >= cap - len)
            break; /* cannot happen: the output is no longer than the head */
        len += (size_t)n;
    }
    return len;
}

static bool serve_headers(struct conn *c, const struct request *rq, bool *keep)
{
    size_t len;

    if (!drain_body(c, rq))
        return false;
    len = format_headers(rq, c->body, sizeof(c->body));
    struct response res = {
        .status = 200, .type = "text/plain; charset=utf-8", .body = c->body, .len = len};
    return respond(c, rq, &res, keep);
}

static void hash_body(void *ctx, const void *p, size_t n)
{
    md_update(ctx, p, n);
}

static bool serve_upload(struct conn *c, const struct request *rq, bool *keep)
{
    struct md m;
    uint8_t digest[32];
    char digest_hex[65];
    uint64_t total;
    int rc;

    if (strcmp(rq->method, "POST") != 0 && strcmp(rq->method, "PUT") != 0) {
        if (!drain_body(c, rq))
            return false;
        return respond_text(c, rq, 405, "Allow: POST, PUT\r\n", keep, "upload takes POST or PUT\n");
    }
    sha256_init(&m);
    rc = read_body(c, rq, hash_body, &m, &total);
    if (rc != 0) {
        if (rc == 400)
            respond_error(c, rq, 400, "malformed chunked body");
        return false;
    }
    md_final(&m, digest, 8);
    hex(digest, sizeof(digest), digest_hex);
    return respond_text(c, rq, 200, NULL, keep, "length=%llu sha256=%s\n",
                        (unsigned long long)total, digest_hex);
}

static bool wait_ms(int fd, long ms)
{
    struct timespec now, until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (;;) {
        /* POLLRDHUP alone: a client that hangs up ends the stream at once,
         * while stray input does not make poll() return over and over. */
        struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
        long long left_ns;
        int rc;

        clock_gettime(CLOCK_MONOTONIC, &now);
        left_ns =
            (long long)(until.tv_sec - now.tv_sec) * 1000000000LL + (until.tv_nsec - now.tv_nsec);
        if (left_ns <= 0)
            return true;
        /* rounded up: never wake (and send) before the deadline */
        rc = poll(&pfd, 1, (int)((left_ns + 999999) / 1000000));
        if (rc > 0)
            return false;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

static bool serve_sse(struct conn *c, const struct request *rq, bool *keep)
{
    long n, interval;
    struct timespec t0, t;

    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        if (!drain_body(c, rq))
            return false;
        return respond_text(c, rq, 405, "Allow: GET, HEAD\r\n", keep, "sse takes GET\n");
    }
    if (!drain_body(c, rq))
        return false;
    if (!query_number(rq, "n", 0, SSE_EVENTS_MAX, 5, &n) ||
        !query_number(rq, "interval_ms", 0, SSE_INTERVAL_MAX_MS, 1000, &interval)) {
        return respond_text(c, rq, 400, NULL, keep, "sse takes n=0..%d and interval_ms=0..%d\n",
                            SSE_EVENTS_MAX, SSE_INTERVAL_MAX_MS);
    }
    /* No X-Accel-Buffering here: whether the proxy buffers is the proxy's
     * configuration, which is what the tests check. */
    struct response res = {.status = 200,
                           .type = "text/event-stream",
                           .extra = "Cache-Control: no-cache\r\n",
                           .stream = true};
    if (!respond(c, rq, &res, keep))
        return false;
    if (strcmp(rq->method, "HEAD") == 0)
        return true;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 1; i <= n; i++) {
        char event[160], frame[192];
        int len, flen;

        if (i > 1 && !wait_ms(c->fd, interval))
            return false;
        clock_gettime(CLOCK_MONOTONIC, &t);
        len =
            snprintf(event, sizeof(event),
                     "id: %ld\nevent: tick\ndata: {\"seq\":%ld,\"of\":%ld,\"ms\":%ld}\n\n", i, i, n,
                     (long)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000));
        if (rq->minor >= 1)
            flen = snprintf(frame, sizeof(frame), "%x\r\n%s\r\n", (unsigned)len, event);
        else
            flen = snprintf(frame, sizeof(frame), "%s", event);
        if (!send_all(c->fd, frame, (size_t)flen))
            return false;
    }
    return rq->minor >= 1 ? send_all(c->fd, "0\r\n\r\n", 5) : false;
}

/* --- connections ------------------------------------------------------------- */

/* Waits for a whole request head. Returns its length (final CRLF CRLF
 * included), 0 when the client closed between requests, -1 on an I/O error,
 * -2 when the head is larger than HEAD_MAX. */
static long read_head(struct conn *c)
{
    size_t scanned = 0;

    for (;;) {
        char *base, *hit;
        size_t avail, from;
        ssize_t n;

        /* RFC 9112 2.2: empty lines before a request line are ignored. */
        while (buffered(c) >= 2 && c->in[c->start] == '\r' && c->in[c->start + 1] == '\n') {
            c->start += 2;
            scanned = 0;
        }
        base = c->in + c->start;
        avail = buffered(c);
        from = scanned > 3 ? scanned - 3 : 0;
        hit = memmem(base + from, avail - from, "\r\n\r\n", 4);
        if (hit) {
            size_t len = (size_t)(hit - base) + 4;
            return len > HEAD_MAX ? -2 : (long)len;
        }
        if (avail >= HEAD_MAX)
            return -2;
        scanned = avail;
        n = conn_fill(c);
        if (n == 0)
            return avail == 0 ? 0 : -1;
        if (n < 0)
            return -1;
    }
}

void serve(struct conn *c)
{
    struct request *rq = &c->rq;
    bool keep = true;

    c->start = c->end = 0;
    c->served = 0;
    while (keep) {
        long len = read_head(c);
        int status;
        bool ok;

        if (len == 0 || len == -1)
            return;
        if (len == -2) {
            respond_error(c, NULL, 431, "the request head is larger than 16 KiB");
            return;
        }
        /* Keep the head apart from the input buffer, which the body reader
         * reuses: handlers read header values after reading the body. */
        memcpy(c->head, c->in + c->start, (size_t)len);
        c->start += (size_t)len;
        c->served++;
        status = parse_request(c->head, (size_t)len - 2, rq);
        if (status) {
            respond_error(c, rq, status, rq->error);
            return;
        }
        keep = rq->keep_alive;
        if (rq->expect_continue && (rq->chunked || rq->length > 0) &&
            !send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
            return;

        if (endpoint_is(rq, "ws"))
            ok = serve_ws(c, rq, &keep);
        else if (endpoint_is(rq, "sse"))
            ok = serve_sse(c, rq, &keep);
        else if (endpoint_is(rq, "upload"))
            ok = serve_upload(c, rq, &keep);
        else if (endpoint_is(rq, "headers"))
            ok = serve_headers(c, rq, &keep);
        else
            ok = serve_default(c, rq, &keep);
        if (!ok)
            return;
    }
}
