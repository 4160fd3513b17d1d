/* http: connection I/O, strict request parsing, request bodies and responses of berth-echo
 * (echo.h). */
#include "echo.h"

/* --- requests and connections ---------------------------------------------- */

/* --- connection I/O ---------------------------------------------------------- */

size_t buffered(const struct conn *c)
{
    return c->end - c->start;
}

/* Reads more input. Returns bytes read, 0 at end of stream, -1 on error or
 * timeout (SO_RCVTIMEO) or when the buffer is full of unread input. */
ssize_t conn_fill(struct conn *c)
{
    ssize_t n;

    if (c->start == c->end) {
        c->start = c->end = 0;
    } else if (c->end == sizeof(c->in) && c->start > 0) {
        memmove(c->in, c->in + c->start, buffered(c));
        c->end -= c->start;
        c->start = 0;
    }
    if (c->end == sizeof(c->in))
        return -1;
    do
        n = read(c->fd, c->in + c->end, sizeof(c->in) - c->end);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        c->end += (size_t)n;
    return n;
}

/* Makes sure n (<= IN_BUF) bytes are buffered contiguously. */
bool conn_need(struct conn *c, size_t n)
{
    while (buffered(c) < n) {
        if (c->start > 0 && sizeof(c->in) - c->start < n) {
            memmove(c->in, c->in + c->start, buffered(c));
            c->end -= c->start;
            c->start = 0;
        }
        if (conn_fill(c) <= 0)
            return false;
    }
    return true;
}

bool send_iov(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

bool send_all(int fd, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return send_iov(fd, &iov, 1);
}

void set_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* --- request parsing --------------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* Calls fn on each element of a comma-separated list (RFC 9110 5.6.1), empty
 * elements skipped. Stops and returns false when fn does. */
static bool list_each(const char *v, bool (*fn)(const char *s, size_t n, void *ctx), void *ctx)
{
    while (*v) {
        size_t n;
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        n = strcspn(v, ",");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n > 0 && !fn(v, n, ctx))
            return false;
        v += strcspn(v, ",");
    }
    return true;
}

static bool eq_ci(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static bool on_connection(const char *s, size_t n, void *ctx)
{
    struct request *rq = ctx;
    if (eq_ci(s, n, "close"))
        rq->keep_alive = false;
    else if (eq_ci(s, n, "keep-alive") && rq->minor == 0)
        rq->keep_alive = true;
    else if (eq_ci(s, n, "upgrade"))
        rq->conn_upgrade = true;
    return true;
}

static bool on_upgrade(const char *s, size_t n, void *ctx)
{
    struct request *rq = ctx;
    size_t name = strcspn(s, "/");
    if (eq_ci(s, name < n ? name : n, "websocket"))
        rq->upgrade_websocket = true;
    return true;
}

struct te_state {
    int codings;
    bool last_chunked;
};

static bool on_transfer_coding(const char *s, size_t n, void *ctx)
{
    struct te_state *te = ctx;
    size_t name = strcspn(s, ";");
    if (name > n)
        name = n;
    while (name > 0 && (s[name - 1] == ' ' || s[name - 1] == '\t'))
        name--;
    te->codings++;
    te->last_chunked = eq_ci(s, name, "chunked");
    return true;
}

static const char *header_value(const struct request *rq, const char *name)
{
    for (size_t i = 0; i < rq->nh; i++)
        if (strcasecmp(rq->h[i].name, name) == 0)
            return rq->h[i].value;
    return NULL;
}

static int header_count(const struct request *rq, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < rq->nh; i++)
        n += strcasecmp(rq->h[i].name, name) == 0;
    return n;
}

static int refuse(struct request *rq, int status, const char *why)
{
    rq->error = why;
    return status;
}

/* Parses a request head (request line and header fields, CRLF-terminated, the
 * final empty line excluded) in place. Returns 0, or the status to answer
 * with: 400, 417, 431, 501 or 505. */
int parse_request(char *head, size_t len, struct request *rq)
{
    char *p = head, *end = head + len, *eol, *sp1, *sp2;
    struct te_state te = {0};
    const char *v;
    bool te_present = false;

    memset(rq, 0, offsetof(struct request, line));
    rq->line[0] = '\0';
    rq->query = "";
    head[len] = '\0';

    /* request-line = method SP request-target SP HTTP-version CRLF */
    eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol)
        return refuse(rq, 400, "request line does not end in CRLF");
    *eol = '\0';
    memcpy(rq->line, p, (size_t)(eol - p) + 1);
    sp1 = strchr(p, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
        return refuse(rq, 400, "request line is not METHOD SP TARGET SP VERSION");
    *sp1 = *sp2 = '\0';
    rq->method = p;
    rq->target = sp1 + 1;
    if (!is_token(rq->method, strlen(rq->method)))
        return refuse(rq, 400, "method is not a token");
    if (!*rq->target)
        return refuse(rq, 400, "empty request target");
    for (const char *t = rq->target; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return refuse(rq, 400, "request target has a control, space or non-ASCII byte");
    v = sp2 + 1;
    if (strncmp(v, "HTTP/", 5) != 0 || !(v[5] >= '0' && v[5] <= '9') || v[6] != '.' ||
        !(v[7] >= '0' && v[7] <= '9') || v[8] != '\0')
        return refuse(rq, 400, "malformed HTTP version");
    if (v[5] != '1')
        return refuse(rq, 505, "only HTTP/1.x is served here");
    rq->minor = v[7] - '0';
    rq->keep_alive = rq->minor >= 1;

    /* header fields: field-name ":" OWS field-value OWS CRLF */
    for (p = eol + 2; p < end; p = eol + 2) {
        char *colon, *value, *vend;
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            return refuse(rq, 400, "header field does not end in CRLF");
        *eol = '\0';
        if (*p == ' ' || *p == '\t')
            return refuse(rq, 400, "obsolete line folding");
        colon = strchr(p, ':');
        if (!colon || !is_token(p, (size_t)(colon - p)))
            return refuse(rq, 400, "malformed header field name");
        if (rq->nh == HEADERS_MAX)
            return refuse(rq, 431, "too many header fields");
        *colon = '\0';
        value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        vend = eol;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        *vend = '\0';
        for (const char *t = value; *t; t++)
            if (((unsigned char)*t < 0x20 && *t != '\t') || *t == 0x7f)
                return refuse(rq, 400, "control character in a header field value");
        if ((size_t)(vend - value) != strlen(value))
            return refuse(rq, 400, "NUL in a header field value");
        rq->h[rq->nh].name = p;
        rq->h[rq->nh].value = value;
        rq->nh++;
    }

    /* Host: exactly one in HTTP/1.1 (RFC 9112 3.2). */
    if (rq->minor >= 1 && header_count(rq, "host") != 1)
        return refuse(rq, 400, "an HTTP/1.1 request needs exactly one Host");

    /* Framing: Content-Length (repeats must agree) or chunked, not both. */
    for (size_t i = 0; i < rq->nh; i++) {
        const char *name = rq->h[i].name, *val = rq->h[i].value;
        if (strcasecmp(name, "content-length") == 0) {
            uint64_t n = 0;
            if (!*val || strlen(val) > 15)
                return refuse(rq, 400, "malformed Content-Length");
            for (const char *t = val; *t; t++) {
                if (*t < '0' || *t > '9')
                    return refuse(rq, 400, "malformed Content-Length");
                n = n * 10 + (uint64_t)(*t - '0');
            }
            if (rq->has_length && n != rq->length)
                return refuse(rq, 400, "conflicting Content-Length fields");
            rq->has_length = true;
            rq->length = n;
        } else if (strcasecmp(name, "transfer-encoding") == 0) {
            te_present = true;
            list_each(val, on_transfer_coding, &te);
        } else if (strcasecmp(name, "connection") == 0) {
            list_each(val, on_connection, rq);
        } else if (strcasecmp(name, "upgrade") == 0) {
            list_each(val, on_upgrade, rq);
        }
    }
    if (te_present) {
        if (rq->has_length)
            return refuse(rq, 400, "both Content-Length and Transfer-Encoding");
        if (rq->minor == 0)
            return refuse(rq, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (!te.last_chunked)
            return refuse(rq, 400, "the last transfer coding is not chunked");
        if (te.codings != 1)
            return refuse(rq, 501, "only the chunked transfer coding is supported");
        rq->chunked = true;
    }

    if ((v = header_value(rq, "expect")) != NULL) {
        if (header_count(rq, "expect") != 1 || strcasecmp(v, "100-continue") != 0)
            return refuse(rq, 417, "the only expectation met is 100-continue");
        rq->expect_continue = rq->minor >= 1;
    }
    if (header_count(rq, "sec-websocket-key") > 1 || header_count(rq, "sec-websocket-version") > 1)
        return refuse(rq, 400, "repeated Sec-WebSocket-Key or -Version");
    rq->ws_key = header_value(rq, "sec-websocket-key");
    rq->ws_version = header_value(rq, "sec-websocket-version");

    /* The path: origin-form, or the path of an absolute-form target. */
    rq->path = rq->target;
    if (strncasecmp(rq->path, "http://", 7) == 0 || strncasecmp(rq->path, "https://", 8) == 0) {
        const char *slash = strchr(strstr(rq->path, "//") + 2, '/');
        rq->path = slash ? slash : "/";
    }
    rq->path_len = strcspn(rq->path, "?");
    if (rq->path[rq->path_len] == '?')
        rq->query = rq->path + rq->path_len + 1;
    return 0;
}

/* The endpoint: the last segment of the path. */
bool endpoint_is(const struct request *rq, const char *name)
{
    size_t n = strlen(name);
    return rq->path_len > n && rq->path[rq->path_len - n - 1] == '/' &&
           memcmp(rq->path + rq->path_len - n, name, n) == 0;
}

/* Finds a query parameter and copies its value into out (no
 * percent-decoding: the parameters used here are plain numbers). Returns 1
 * found, 0 absent, -1 present but longer than out holds. */
int query_param(const struct request *rq, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *q = rq->query;

    while (*q) {
        size_t n = strcspn(q, "&");
        if (n > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= cap)
                return -1;
            memcpy(out, q + kl + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* A decimal query parameter in [min, max], def when absent. false when it is
 * present but not such a number. */
bool query_number(const struct request *rq, const char *key, long min, long max, long def,
                  long *out)
{
    char buf[16], *endp;
    long v;
    int found = query_param(rq, key, buf, sizeof(buf));

    if (found == 0) {
        *out = def;
        return true;
    }
    if (found < 0 || buf[0] < '0' || buf[0] > '9')
        return false;
    errno = 0;
    v = strtol(buf, &endp, 10);
    if (errno || *endp || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* --- request bodies ---------------------------------------------------------- */

/* Consumes n body bytes, handing them to fn (may be NULL). */
static bool body_bytes(struct conn *c, uint64_t n, body_fn *fn, void *ctx)
{
    while (n > 0) {
        size_t take;
        if (buffered(c) == 0 && conn_fill(c) <= 0)
            return false;
        take = buffered(c) < n ? buffered(c) : (size_t)n;
        if (fn)
            fn(ctx, c->in + c->start, take);
        c->start += take;
        n -= take;
    }
    return true;
}

enum { LINE_OK, LINE_IO, LINE_BAD };

/* Takes one CRLF-terminated line of at most max bytes (CRLF excluded) off the
 * input; *line is NUL-terminated and valid until the next read. */
static int take_line(struct conn *c, size_t max, char **line)
{
    size_t scanned = 0;

    for (;;) {
        char *base = c->in + c->start, *lf;
        size_t avail = buffered(c);
        lf = memchr(base + scanned, '\n', avail - scanned);
        if (lf) {
            if (lf == base || lf[-1] != '\r' || (size_t)(lf - base) - 1 > max)
                return LINE_BAD;
            lf[-1] = '\0';
            *line = base;
            c->start += (size_t)(lf - base) + 1;
            return LINE_OK;
        }
        if (avail > max + 1)
            return LINE_BAD;
        scanned = avail;
        if (!conn_need(c, avail + 1))
            return LINE_IO;
    }
}

/* Reads the request body (Content-Length or chunked), counting its bytes.
 * Returns 0, 400 for bad chunked framing, or -1 for an I/O error. */
int read_body(struct conn *c, const struct request *rq, body_fn *fn, void *ctx, uint64_t *total)
{
    char *line;
    int rc;
    size_t trailer = 0;

    *total = 0;
    if (!rq->chunked) {
        if (!rq->has_length)
            return 0;
        *total = rq->length;
        return body_bytes(c, rq->length, fn, ctx) ? 0 : -1;
    }
    for (;;) {
        uint64_t size = 0;
        size_t digits = 0;
        const char *t;

        /* chunk-size [ chunk-ext ] CRLF */
        if ((rc = take_line(c, CHUNK_LINE_MAX, &line)) != LINE_OK)
            return rc == LINE_BAD ? 400 : -1;
        for (t = line;
             (*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f') || (*t >= 'A' && *t <= 'F');
             t++) {
            if (++digits > 15)
                return 400;
            size = size * 16 + (uint64_t)(*t <= '9' ? *t - '0' : (*t | 0x20) - 'a' + 10);
        }
        if (digits == 0)
            return 400;
        while (*t == ' ' || *t == '\t')
            t++;
        if (*t && *t != ';')
            return 400;
        for (; *t; t++)
            if ((unsigned char)*t < 0x20 && *t != '\t')
                return 400;
        if (size == 0)
            break;
        if (!body_bytes(c, size, fn, ctx))
            return -1;
        *total += size;
        if (!conn_need(c, 2))
            return -1;
        if (c->in[c->start] != '\r' || c->in[c->start + 1] != '\n')
            return 400;
        c->start += 2;
    }
    /* trailer-section CRLF: field lines are read and dropped. */
    for (;;) {
        if ((rc = take_line(c, HEAD_MAX, &line)) != LINE_OK)
            return rc == LINE_BAD ? 400 : -1;
        if (!*line)
            return 0;
        trailer += strlen(line) + 2;
        if (trailer > HEAD_MAX || !strchr(line, ':') || *line == ' ' || *line == '\t')
            return 400;
    }
}

/* --- responses --------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 405:
        return "Method Not Allowed";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

const char *http_date(void)
{
    static __thread time_t last;
    static __thread char buf[40];
    time_t now = time(NULL);

    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

/* Sends the response head and, unless HEAD or streaming, the body. *keep says
 * whether the connection stays open afterwards (a close-delimited stream
 * clears it). */
bool respond(struct conn *c, const struct request *rq, const struct response *res, bool *keep)
{
    char framing[64];
    const char *conn_hdr = "";
    bool head_only = rq && strcmp(rq->method, "HEAD") == 0;
    int minor = rq ? rq->minor : 1;
    struct iovec iov[2];
    int n;

    if (res->stream) {
        if (minor >= 1)
            snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
        else {
            framing[0] = '\0';
            *keep = false;
        }
    } else {
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", res->len);
    }
    if (res->offer_upgrade)
        conn_hdr = !*keep       ? "Upgrade: websocket\r\nConnection: upgrade, close\r\n"
                   : minor == 0 ? "Upgrade: websocket\r\nConnection: upgrade, keep-alive\r\n"
                                : "Upgrade: websocket\r\nConnection: upgrade\r\n";
    else if (!*keep)
        conn_hdr = "Connection: close\r\n";
    else if (minor == 0)
        conn_hdr = "Connection: keep-alive\r\n";
    n = snprintf(c->out, sizeof(c->out),
                 "HTTP/1.%d %d %s\r\nServer: berth-echo\r\nDate: %s\r\n%s%s%s%s%s%s\r\n",
                 minor >= 1 ? 1 : 0, res->status, reason(res->status), http_date(),
                 res->type ? "Content-Type: " : "", res->type ? res->type : "",
                 res->type ? "\r\n" : "", framing, conn_hdr, res->extra ? res->extra : "");
    if (n < 0 || (size_t)n >= sizeof(c->out))
        return false;
    iov[0] = (struct iovec){.iov_base = c->out, .iov_len = (size_t)n};
    iov[1] = (struct iovec){.iov_base = (void *)res->body, .iov_len = res->len};
    if (verbose && rq)
        log_line("%s \"%s\" %d %zu", c->peer, rq->line, res->status, res->len);
    return send_iov(c->fd, iov, head_only || res->stream || res->len == 0 ? 1 : 2);
}

bool respond_text(struct conn *c, const struct request *rq, int status, const char *extra,
                  bool *keep, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->body, sizeof(c->body), fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    if ((size_t)n >= sizeof(c->body))
        n = (int)sizeof(c->body) - 1;
    struct response res = {.status = status,
                           .type = "text/plain; charset=utf-8",
                           .extra = extra,
                           .body = c->body,
                           .len = (size_t)n};
    return respond(c, rq, &res, keep);
}

/* A refusal: answered as HTTP/1.1 (the request may be too broken to say
 * more), then the connection is closed. */
void respond_error(struct conn *c, const struct request *rq, int status, const char *why)
{
    bool keep = false;

    if (verbose)
        log_line("%s \"%s\" %d (%s)", c->peer, rq && rq->line[0] ? rq->line : "-", status, why);
    respond_text(c, NULL, status, NULL, &keep, "%d %s: %s\n", status, reason(status), why);
}
