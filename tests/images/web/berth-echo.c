/*
 * berth-echo — a small HTTP/1.1 server: the upstream of berth's proxy
 * integration test (tests/integration/45-proxy.sh) and proxy benchmark
 * (tests/bench/proxy.sh). Built statically by scripts/images.sh into
 * berth-demo/web:1 as /usr/local/bin/berth-echo; tests/images/README.md
 * documents what it answers.
 *
 * The last path segment names the endpoint, so every address works behind a
 * prefix (berth's proxy_mode keep) as well as without one (strip):
 *   .../headers   the request header fields as received, one per line
 *   .../upload    POST or PUT: reads the whole body, answers
 *                 "length=<n> sha256=<hex>"
 *   .../sse       text/event-stream: ?n=N events ?interval_ms=M apart, each
 *                 written to the socket as soon as it is due
 *   .../ws        WebSocket (RFC 6455): echoes text and binary messages;
 *                 ?headers=1 first sends the upgrade request's header fields
 *   anything else a short text naming "berth demo workspace", the request line
 *                 and how many requests this connection has carried (a proxy
 *                 that reuses its upstream connections shows more than 1)
 *
 * Design: a pool of threads that each accept() one connection and serve it
 * with blocking I/O until it closes, then accept the next. A thread that finds
 * no other thread waiting in accept() starts one more, up to -c connections;
 * surplus idle threads end. Blocking I/O keeps the protocol code linear (a
 * WebSocket or an event stream is a plain loop) and is fast enough that a
 * proxy in front of it, not this server, is what a benchmark measures.
 *
 * Parsing is strict and bounded: the request line and header fields together
 * at most HEAD_MAX bytes (431 above), lines end in CRLF, no obsolete line
 * folding, no whitespace before a colon, one Host in HTTP/1.1, Content-Length
 * digits only, Transfer-Encoding "chunked" only and never together with
 * Content-Length. A refused request is answered (400 when malformed; 417,
 * 431, 501 or 505 when it asks for what is not served) and the connection
 * closed.
 *
 * SHA-1 (for Sec-WebSocket-Accept), SHA-256 (for uploads) and base64 are
 * written here from FIPS 180-4 and RFC 4648; `berth-echo -t` checks them
 * and the parser against known answers.
 *
 * SIGTERM and SIGINT end the process at once with status 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --- limits ---------------------------------------------------------------- */

#define DEFAULT_PORT        8080
#define DEFAULT_MAX_CONNS   512
#define HEAD_MAX            16384            /* request line + header fields, CRLFs included */
#define HEADERS_MAX         100              /* header fields per request */
#define IN_BUF              65536            /* per-connection read buffer */
#define CHUNK_LINE_MAX      1024             /* chunk-size line incl. extensions */
#define BODY_OUT_MAX        (HEAD_MAX + 512) /* generated response bodies */
#define WS_MESSAGE_MAX      (16u << 20)      /* reassembled WebSocket message */
#define SSE_EVENTS_MAX      100000
#define SSE_INTERVAL_MAX_MS 60000
#define IO_TIMEOUT_S        120  /* idle keep-alive, a stalled body or reader */
#define WS_IDLE_S           3600 /* a WebSocket without any frame */
#define SPARE_THREADS       32   /* idle threads kept for the next connections */
#define INITIAL_THREADS     8
#define THREAD_STACK        (256 * 1024)

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* --- small helpers --------------------------------------------------------- */

static bool verbose;

/* One line to stderr in one write(2), so lines of different threads never mix. */
static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    memcpy(line, "berth-echo: ", 12);
    va_start(ap, fmt);
    n = vsnprintf(line + 12, sizeof(line) - 13, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    n = 12 + (n < (int)sizeof(line) - 13 ? n : (int)sizeof(line) - 14);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing sensible to do about a closed stderr */
    }
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rol32(uint32_t x, unsigned n)
{
    return x << n | x >> (32 - n);
}
static uint32_t ror32(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* --- SHA-1 and SHA-256 (FIPS 180-4) ------------------------------------------
 * Both pad the same way (64-byte blocks, a 1 bit, zeros, the bit length as a
 * big-endian 64-bit number), so one Merkle–Damgård frame serves both and each
 * hash brings its compression function and initial state. */

struct md {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
    void (*compress)(uint32_t *h, const uint8_t *block);
};

static void sha1_compress(uint32_t *h, const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static void sha256_compress(uint32_t *h, const uint8_t *p)
{
    uint32_t w[64], v[8];

    for (int i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + S1 + ch + SHA256_K[i] + w[i];
        uint32_t S0 = ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        uint32_t t2 = S0 + maj;
        memmove(v + 1, v, 7 * sizeof(v[0]));
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

static void sha1_init(struct md *m)
{
    static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memset(m, 0, sizeof(*m));
    memcpy(m->h, iv, sizeof(iv));
    m->compress = sha1_compress;
}

static void sha256_init(struct md *m)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memset(m, 0, sizeof(*m));
    memcpy(m->h, iv, sizeof(iv));
    m->compress = sha256_compress;
}

static void md_update(struct md *m, const void *data, size_t n)
{
    const uint8_t *p = data;

    m->bytes += n;
    if (m->used > 0) {
        size_t take = 64 - m->used < n ? 64 - m->used : n;
        memcpy(m->block + m->used, p, take);
        m->used += take;
        p += take;
        n -= take;
        if (m->used < 64)
            return;
        m->compress(m->h, m->block);
        m->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        m->compress(m->h, p);
    memcpy(m->block, p, n);
    m->used = n;
}

/* Writes `words` big-endian state words (5 for SHA-1, 8 for SHA-256). */
static void md_final(struct md *m, uint8_t *out, int words)
{
    uint64_t bits = m->bytes * 8;

    m->block[m->used++] = 0x80;
    if (m->used > 56) {
        memset(m->block + m->used, 0, 64 - m->used);
        m->compress(m->h, m->block);
        m->used = 0;
    }
    memset(m->block + m->used, 0, 56 - m->used);
    store_be32(m->block + 56, (uint32_t)(bits >> 32));
    store_be32(m->block + 60, (uint32_t)bits);
    m->compress(m->h, m->block);
    for (int i = 0; i < words; i++)
        store_be32(out + 4 * i, m->h[i]);
}

/* --- base64 (RFC 4648, standard alphabet, padded) -------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out holds 4 * ceil(n / 3) + 1 bytes. */
static void base64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Strict decoding: length a multiple of 4, padding only at the end, unused
 * bits zero. Returns the decoded length or -1. */
static long base64_decode(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s), len = 0;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                pad++;
                v[j] = 0;
            } else if (pad > 0 || (v[j] = b64_value(s[i + j])) < 0) {
                return -1;
            }
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))
            return -1;
        if (len + 3 - (size_t)pad > cap)
            return -1;
        out[len++] = (uint8_t)(x >> 16);
        if (pad < 2)
            out[len++] = (uint8_t)(x >> 8);
        if (pad < 1)
            out[len++] = (uint8_t)x;
    }
    return (long)len;
}

/* --- UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) -- */

static bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t len;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* --- requests and connections ---------------------------------------------- */

struct header {
    const char *name, *value;
};

struct request {
    const char *method, *target;
    int minor; /* HTTP/1.<minor> */
    struct header h[HEADERS_MAX];
    size_t nh;
    const char *path; /* target without the query, origin-form */
    size_t path_len;
    const char *query; /* after '?', or "" */
    bool has_length, chunked, keep_alive, expect_continue;
    uint64_t length;
    bool conn_upgrade, upgrade_websocket;
    const char *ws_key, *ws_version;
    const char *error;   /* why parse() refused, for the 4xx body */
    char line[HEAD_MAX]; /* the request line, for answers and logs (not zeroed) */
};

/* --- connection I/O ---------------------------------------------------------- */

struct conn {
    int fd;
    char peer[INET6_ADDRSTRLEN + 8];
    char in[IN_BUF]; /* unread input is in[start, end) */
    size_t start, end;
    char head[HEAD_MAX + 1]; /* the current request's head, split in place */
    char out[1024];          /* response head */
    char body[BODY_OUT_MAX]; /* generated response body */
    struct request rq;       /* the current request */
    unsigned long served;    /* requests read on this connection, this one included */
};

static size_t buffered(const struct conn *c)
{
    return c->end - c->start;
}

/* Reads more input. Returns bytes read, 0 at end of stream, -1 on error or
 * timeout (SO_RCVTIMEO) or when the buffer is full of unread input. */
static ssize_t conn_fill(struct conn *c)
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
static bool conn_need(struct conn *c, size_t n)
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

static bool send_iov(int fd, struct iovec *iov, int cnt)
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

static bool send_all(int fd, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return send_iov(fd, &iov, 1);
}

static void set_timeouts(int fd, int seconds)
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
static int parse_request(char *head, size_t len, struct request *rq)
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
static bool endpoint_is(const struct request *rq, const char *name)
{
    size_t n = strlen(name);
    return rq->path_len > n && rq->path[rq->path_len - n - 1] == '/' &&
           memcmp(rq->path + rq->path_len - n, name, n) == 0;
}

/* Finds a query parameter and copies its value into out (no
 * percent-decoding: the parameters used here are plain numbers). Returns 1
 * found, 0 absent, -1 present but longer than out holds. */
static int query_param(const struct request *rq, const char *key, char *out, size_t cap)
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
static bool query_number(const struct request *rq, const char *key, long min, long max, long def,
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

typedef void body_fn(void *ctx, const void *p, size_t n);

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
static int read_body(struct conn *c, const struct request *rq, body_fn *fn, void *ctx,
                     uint64_t *total)
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

static const char *http_date(void)
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

struct response {
    int status;
    const char *type;  /* Content-Type, or NULL */
    const char *extra; /* further header lines, each ending in CRLF */
    const void *body;
    size_t len;
    bool stream;        /* length unknown: chunked (HTTP/1.1) or close-delimited */
    bool offer_upgrade; /* Upgrade: websocket, with "upgrade" in Connection */
};

/* Sends the response head and, unless HEAD or streaming, the body. *keep says
 * whether the connection stays open afterwards (a close-delimited stream
 * clears it). */
static bool respond(struct conn *c, const struct request *rq, const struct response *res,
                    bool *keep)
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

static bool respond_text(struct conn *c, const struct request *rq, int status, const char *extra,
                         bool *keep, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static bool respond_text(struct conn *c, const struct request *rq, int status, const char *extra,
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
static void respond_error(struct conn *c, const struct request *rq, int status, const char *why)
{
    bool keep = false;

    if (verbose)
        log_line("%s \"%s\" %d (%s)", c->peer, rq && rq->line[0] ? rq->line : "-", status, why);
    respond_text(c, NULL, status, NULL, &keep, "%d %s: %s\n", status, reason(status), why);
}

/* --- endpoints --------------------------------------------------------------- */

/* Reads and drops the body; false when the connection must close. */
static bool drain_body(struct conn *c, const struct request *rq)
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

static size_t format_headers(const struct request *rq, char *out, size_t cap)
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

/* --- WebSocket (RFC 6455) ---------------------------------------------------- */

enum {
    WS_CONT = 0x0,
    WS_TEXT = 0x1,
    WS_BINARY = 0x2,
    WS_CLOSE = 0x8,
    WS_PING = 0x9,
    WS_PONG = 0xa,
};

enum {
    WS_NORMAL = 1000,
    WS_GOING_AWAY = 1001,
    WS_PROTOCOL_ERROR = 1002,
    WS_INVALID_DATA = 1007,
    WS_TOO_BIG = 1009,
};

static bool ws_send(struct conn *c, int opcode, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl;
    struct iovec iov[2];

    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)n;
        hl = 2;
    } else if (n <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    iov[0] = (struct iovec){.iov_base = h, .iov_len = hl};
    iov[1] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    return send_iov(c->fd, iov, n ? 2 : 1);
}

/* Sends a close frame (code 0: none), stops writing and waits briefly for
 * the client to close its side, so the last frames are not cut by a reset. */
static void ws_close(struct conn *c, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    char sink[4096];

    ws_send(c, WS_CLOSE, p, code ? 2 : 0);
    shutdown(c->fd, SHUT_WR);
    set_timeouts(c->fd, 2);
    while (read(c->fd, sink, sizeof(sink)) > 0)
        ;
}

static bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* Copies n payload bytes into dst, unmasking them. */
static bool ws_payload(struct conn *c, uint8_t *dst, uint64_t n, const uint8_t mask[4])
{
    uint64_t done = 0;

    while (done < n) {
        size_t take;
        const uint8_t *src;
        if (buffered(c) == 0 && conn_fill(c) <= 0)
            return false;
        take = buffered(c) < n - done ? buffered(c) : (size_t)(n - done);
        src = (const uint8_t *)c->in + c->start;
        for (size_t i = 0; i < take; i++)
            dst[done + i] = src[i] ^ mask[(done + i) & 3];
        c->start += take;
        done += take;
    }
    return true;
}

/* Echoes messages until the client closes; returns with the close handshake
 * done or the connection broken. */
static void ws_echo(struct conn *c)
{
    uint8_t *msg = NULL;
    size_t msg_len = 0, msg_cap = 0;
    int msg_op = 0; /* opcode of the message being reassembled, 0: none */
    unsigned error = 0;

    set_timeouts(c->fd, WS_IDLE_S);
    for (;;) {
        uint8_t b0, b1, mask[4], ctl[125];
        uint64_t len;
        size_t hl;
        int op;
        bool fin;

        if (!conn_need(c, 2))
            break;
        b0 = (uint8_t)c->in[c->start];
        b1 = (uint8_t)c->in[c->start + 1];
        fin = b0 & 0x80;
        op = b0 & 0x0f;
        if ((b0 & 0x70) || !(b1 & 0x80)) { /* reserved bits; client frames are masked */
            error = WS_PROTOCOL_ERROR;
            break;
        }
        len = b1 & 0x7f;
        hl = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + 4;
        if (!conn_need(c, hl))
            break;
        const uint8_t *h = (const uint8_t *)c->in + c->start;
        if (len == 126) {
            len = (uint64_t)h[2] << 8 | h[3];
        } else if (len == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
            if (len >> 63) {
                error = WS_PROTOCOL_ERROR;
                break;
            }
        }
        memcpy(mask, h + hl - 4, 4);
        c->start += hl;

        if (op & 0x8) { /* control frame */
            if (!fin || len > 125 || (op != WS_CLOSE && op != WS_PING && op != WS_PONG)) {
                error = WS_PROTOCOL_ERROR;
                break;
            }
            if (!ws_payload(c, ctl, len, mask))
                break;
            if (op == WS_PING) {
                if (!ws_send(c, WS_PONG, ctl, (size_t)len))
                    break;
            } else if (op == WS_CLOSE) {
                unsigned code = len >= 2 ? (unsigned)ctl[0] << 8 | ctl[1] : 0;
                if (len == 1 || (len >= 2 && !ws_close_code_valid(code)))
                    error = WS_PROTOCOL_ERROR;
                else if (len > 2 && !utf8_valid(ctl + 2, (size_t)len - 2))
                    error = WS_INVALID_DATA;
                else
                    ws_close(c, code);
                break;
            }
            continue; /* a pong: nothing to do */
        }

        /* data frame: starts (text, binary) or continues (continuation) a message */
        if ((op == WS_CONT) != (msg_op != 0) ||
            (op != WS_CONT && op != WS_TEXT && op != WS_BINARY)) {
            error = WS_PROTOCOL_ERROR;
            break;
        }
        if (op != WS_CONT)
            msg_op = op;
        if (len > WS_MESSAGE_MAX - msg_len) {
            error = WS_TOO_BIG;
            break;
        }
        if (msg_len + len > msg_cap) {
            size_t cap = msg_cap ? msg_cap : 4096;
            uint8_t *m;
            while (cap < msg_len + len)
                cap *= 2;
            if (!(m = realloc(msg, cap))) {
                error = WS_TOO_BIG;
                break;
            }
            msg = m;
            msg_cap = cap;
        }
        if (!ws_payload(c, msg + msg_len, len, mask))
            break;
        msg_len += (size_t)len;
        if (!fin)
            continue;
        if (msg_op == WS_TEXT && !utf8_valid(msg, msg_len)) {
            error = WS_INVALID_DATA;
            break;
        }
        if (!ws_send(c, msg_op, msg, msg_len))
            break;
        msg_len = 0;
        msg_op = 0;
    }
    if (error)
        ws_close(c, error);
    free(msg);
}

static bool serve_ws(struct conn *c, const struct request *rq, bool *keep)
{
    uint8_t key[32], digest[20];
    char accept[32], flag[8];
    struct md m;
    int n;

    if (!rq->upgrade_websocket || !rq->conn_upgrade) {
        if (!drain_body(c, rq))
            return false;
        static const char msg[] = "ws takes a WebSocket upgrade (RFC 6455)\n";
        struct response res = {.status = 426,
                               .type = "text/plain; charset=utf-8",
                               .body = msg,
                               .len = sizeof(msg) - 1,
                               .offer_upgrade = true};
        return respond(c, rq, &res, keep);
    }
    if (strcmp(rq->method, "GET") != 0 || rq->minor < 1 || rq->chunked ||
        (rq->has_length && rq->length > 0)) {
        respond_error(c, rq, 400, "a WebSocket upgrade is an HTTP/1.1 GET without a body");
        return false;
    }
    if (!rq->ws_version || strcmp(rq->ws_version, "13") != 0) {
        return respond_text(c, rq, 426, "Sec-WebSocket-Version: 13\r\n", keep,
                            "WebSocket version 13 only\n");
    }
    if (!rq->ws_key || base64_decode(rq->ws_key, key, sizeof(key)) != 16) {
        respond_error(c, rq, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
        return false;
    }

    sha1_init(&m);
    md_update(&m, rq->ws_key, strlen(rq->ws_key));
    md_update(&m, WS_GUID, sizeof(WS_GUID) - 1);
    md_final(&m, digest, 5);
    base64_encode(digest, sizeof(digest), accept);

    /* 101 has no body and no framing fields: written here, not by respond(). */
    n = snprintf(c->out, sizeof(c->out),
                 "HTTP/1.1 101 Switching Protocols\r\nServer: berth-echo\r\nDate: %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 http_date(), accept);
    if (verbose)
        log_line("%s \"%s\" 101 0", c->peer, rq->line);
    if (n < 0 || (size_t)n >= sizeof(c->out) || !send_all(c->fd, c->out, (size_t)n))
        return false;
    if (query_param(rq, "headers", flag, sizeof(flag)) == 1 && strcmp(flag, "1") == 0) {
        size_t len = format_headers(rq, c->body, sizeof(c->body));
        if (!utf8_valid((const uint8_t *)c->body, len))
            len = 0; /* obs-text in a value would not be a valid text message */
        if (!ws_send(c, WS_TEXT, c->body, len))
            return false;
    }
    ws_echo(c);
    *keep = false;
    return false;
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

static void serve(struct conn *c)
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

/* --- the thread pool ------------------------------------------------------------ */

static int listen_fd = -1;
static unsigned max_conns = DEFAULT_MAX_CONNS;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned pool_idle;  /* threads in (or on their way to) accept() */
static unsigned pool_total; /* all threads */
static bool pool_full_logged;

static int spawn_thread(void);

static void format_peer(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
    }
    snprintf(out, cap, "%s:%u", ip, port);
}

static void *pool_thread(void *arg)
{
    struct conn *c = malloc(sizeof(*c));

    (void)arg;
    if (!c) {
        pthread_mutex_lock(&pool_lock);
        pool_idle--;
        pool_total--;
        pthread_mutex_unlock(&pool_lock);
        return NULL;
    }
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(listen_fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
        bool spawn;
        int one = 1;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                usleep(50 * 1000);
            continue;
        }
        pthread_mutex_lock(&pool_lock);
        pool_idle--;
        spawn = pool_idle == 0 && pool_total < max_conns;
        if (spawn) {
            pool_idle++;
            pool_total++;
        } else if (pool_idle == 0 && !pool_full_logged) {
            pool_full_logged = true;
            log_line(
                "all %u connection threads are busy; new connections wait (-c raises the limit)",
                pool_total);
        }
        pthread_mutex_unlock(&pool_lock);
        if (spawn && spawn_thread() != 0) {
            pthread_mutex_lock(&pool_lock);
            pool_idle--;
            pool_total--;
            pthread_mutex_unlock(&pool_lock);
        }

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        set_timeouts(fd, IO_TIMEOUT_S);
        c->fd = fd;
        format_peer(&sa, c->peer, sizeof(c->peer));
        serve(c);
        close(fd);

        pthread_mutex_lock(&pool_lock);
        if (pool_idle >= SPARE_THREADS) {
            pool_total--;
            pthread_mutex_unlock(&pool_lock);
            break;
        }
        pool_idle++;
        pthread_mutex_unlock(&pool_lock);
    }
    free(c);
    return NULL;
}

static int spawn_thread(void)
{
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    rc = pthread_create(&t, &attr, pool_thread, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* --- self-test ------------------------------------------------------------------ */

static int self_test_failures;

static void expect_str(const char *what, const char *want, const char *got)
{
    if (strcmp(want, got) != 0) {
        fprintf(stderr, "self-test: %s: want %s, got %s\n", what, want, got);
        self_test_failures++;
    }
}

static void digest_hex(bool sha256, const void *p, size_t n, size_t repeat, char *out)
{
    struct md m;
    uint8_t d[32];

    if (sha256)
        sha256_init(&m);
    else
        sha1_init(&m);
    for (size_t i = 0; i < repeat; i++)
        md_update(&m, p, n);
    md_final(&m, d, sha256 ? 8 : 5);
    hex(d, sha256 ? 32 : 20, out);
}

static int parse_status(const char *head)
{
    static char buf[HEAD_MAX + 1];
    static struct request rq;
    size_t n = strlen(head);
    memcpy(buf, head, n + 1);
    return parse_request(buf, n, &rq);
}

static int self_test(void)
{
    static const char abc56[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const char *b64[][2] = {{"", ""},
                                   {"f", "Zg=="},
                                   {"fo", "Zm8="},
                                   {"foo", "Zm9v"},
                                   {"foob", "Zm9vYg=="},
                                   {"fooba", "Zm9vYmE="},
                                   {"foobar", "Zm9vYmFy"}};
    static const struct {
        const char *head;
        int status;
    } heads[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n", 0},
        {"GET / HTTP/1.0\r\n", 0},
        {"GET / HTTP/1.1\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: x\r\n", 505},
        {"GET / http/1.1\r\nHost: x\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: x\r\n", 400},
        {"GET /\x01 HTTP/1.1\r\nHost: x\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: x\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : x\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n", 400},
        {"GET / HTTP/1.1\nHost: x\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n", 0},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n", 417},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7f\r\n", 400},
    };
    char out[128];

    digest_hex(false, "", 0, 1, out);
    expect_str("sha1('')", "da39a3ee5e6b4b0d3255bfef95601890afd80709", out);
    digest_hex(false, "abc", 3, 1, out);
    expect_str("sha1(abc)", "a9993e364706816aba3e25717850c26c9cd0d89d", out);
    digest_hex(false, abc56, strlen(abc56), 1, out);
    expect_str("sha1(abcdbcd...)", "84983e441c3bd26ebaae4aa1f95129e5e54670f1", out);
    digest_hex(false, "a", 1, 1000000, out);
    expect_str("sha1(a x 10^6)", "34aa973cd4c4daa4f61eeb2bdbad27316534016f", out);
    digest_hex(true, "", 0, 1, out);
    expect_str("sha256('')", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               out);
    digest_hex(true, "abc", 3, 1, out);
    expect_str("sha256(abc)", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
               out);
    digest_hex(true, abc56, strlen(abc56), 1, out);
    expect_str("sha256(abcdbcd...)",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", out);
    digest_hex(true, "a", 1, 1000000, out);
    expect_str("sha256(a x 10^6)",
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", out);

    for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
        uint8_t dec[16];
        long n;
        base64_encode((const uint8_t *)b64[i][0], strlen(b64[i][0]), out);
        expect_str("base64 encode", b64[i][1], out);
        n = base64_decode(b64[i][1], dec, sizeof(dec));
        snprintf(out, sizeof(out), "%.*s", n < 0 ? 0 : (int)n, (const char *)dec);
        expect_str("base64 decode", b64[i][0], out);
    }
    {
        uint8_t dec[16];
        if (base64_decode("Zg=", dec, sizeof(dec)) != -1 ||
            base64_decode("Zh==", dec, sizeof(dec)) != -1 ||
            base64_decode("Z=g=", dec, sizeof(dec)) != -1 ||
            base64_decode("Zm9v!A==", dec, sizeof(dec)) != -1) {
            fprintf(stderr, "self-test: base64 accepts malformed input\n");
            self_test_failures++;
        }
    }
    { /* RFC 6455 1.3 */
        struct md m;
        uint8_t d[20];
        sha1_init(&m);
        md_update(&m, "dGhlIHNhbXBsZSBub25jZQ==", 24);
        md_update(&m, WS_GUID, sizeof(WS_GUID) - 1);
        md_final(&m, d, 5);
        base64_encode(d, sizeof(d), out);
        expect_str("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", out);
    }
    {
        static const struct {
            const char *s;
            bool ok;
        } u[] = {{"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", true},
                 {"\xc0\x80", false},
                 {"\xe0\x80\x80", false},
                 {"\xed\xa0\x80", false},
                 {"\xf4\x90\x80\x80", false},
                 {"\xe2\x82", false},
                 {"\x80", false},
                 {"\xf8\x88\x80\x80\x80", false}};
        for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
            if (utf8_valid((const uint8_t *)u[i].s, strlen(u[i].s)) != u[i].ok) {
                fprintf(stderr, "self-test: utf8_valid case %zu\n", i);
                self_test_failures++;
            }
        }
    }
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        int st = parse_status(heads[i].head);
        if (st != heads[i].status) {
            fprintf(stderr, "self-test: parse case %zu: want %d, got %d\n", i, heads[i].status, st);
            self_test_failures++;
        }
    }
    if (self_test_failures) {
        fprintf(stderr, "self-test: %d failures\n", self_test_failures);
        return 1;
    }
    printf("self-test: ok\n");
    return 0;
}

/* --- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: berth-echo [-p PORT] [-a ADDRESS] [-c MAX_CONNECTIONS] [-v] | -t | -h\n"
            "  -p PORT   port to listen on (default $BERTH_ECHO_PORT, else %d)\n"
            "  -a ADDR   IPv4 or IPv6 address to listen on (default 0.0.0.0)\n"
            "  -c N      connections served at once, one thread each (default %d)\n"
            "  -v        log every request to stderr\n"
            "  -t        run the built-in self-test and exit\n"
            "Endpoints (the last path segment; any prefix): headers, upload, sse, ws;\n"
            "anything else answers \"berth demo workspace\" and the request line.\n",
            DEFAULT_PORT, DEFAULT_MAX_CONNS);
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

static void on_signal(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    const char *addr = "0.0.0.0", *port_s = getenv("BERTH_ECHO_PORT");
    unsigned long port = DEFAULT_PORT, conns = DEFAULT_MAX_CONNS;
    struct sockaddr_storage ss = {0};
    socklen_t sslen;
    sigset_t stop;
    struct sigaction sa = {.sa_handler = on_signal};
    int opt, one = 1, sig;

    while ((opt = getopt(argc, argv, "p:a:c:vth")) != -1) {
        switch (opt) {
        case 'p':
            port_s = optarg;
            break;
        case 'a':
            addr = optarg;
            break;
        case 'c':
            if (!parse_uint(optarg, 100000, &conns) || conns == 0) {
                fprintf(stderr, "berth-echo: -c takes a number from 1 to 100000\n");
                return 2;
            }
            break;
        case 'v':
            verbose = true;
            break;
        case 't':
            return self_test();
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (port_s && (!parse_uint(port_s, 65535, &port) || port == 0)) {
        fprintf(stderr, "berth-echo: the port must be a number from 1 to 65535, not '%s'\n",
                port_s);
        return 2;
    }
    max_conns = (unsigned)conns;

    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*s6);
    } else {
        fprintf(stderr, "berth-echo: -a takes an IPv4 or IPv6 address, not '%s'\n", addr);
        return 2;
    }

    /* Every thread inherits a mask blocking SIGTERM and SIGINT; main takes
     * them with sigwait(). A handler is installed as well: as PID 1 in a
     * container, a signal left at its default action would be dropped. */
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(listen_fd, (struct sockaddr *)&ss, sslen) < 0 || listen(listen_fd, 1024) < 0) {
        fprintf(stderr, "berth-echo: cannot listen on %s port %lu: %s\n", addr, port,
                strerror(errno));
        return 1;
    }
    pthread_mutex_lock(&pool_lock);
    for (unsigned i = 0; i < INITIAL_THREADS && i < max_conns; i++) {
        if (spawn_thread() != 0)
            break;
        pool_idle++;
        pool_total++;
    }
    pthread_mutex_unlock(&pool_lock);
    if (pool_total == 0) {
        fprintf(stderr, "berth-echo: cannot start a thread\n");
        return 1;
    }
    log_line("listening on %s port %lu (at most %u connections at once)", addr, port, max_conns);

    while (sigwait(&stop, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
        ;
    log_line("stopping (%s)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    _exit(0);
}
