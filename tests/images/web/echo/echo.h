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
/* echo.h — what the files of berth-echo share (private to it):
 *   util.c       log lines, SHA-1/SHA-256, base64, UTF-8 checks
 *   http.c       connection I/O, request parsing, bodies, responses
 *   endpoints.c  the endpoints and the per-connection request loop
 *   ws.c         the WebSocket endpoint (RFC 6455)
 *   main.c       the thread pool, the self-test and main()
 */
#ifndef BERTH_ECHO_H
#define BERTH_ECHO_H

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

/* RFC 6455: what Sec-WebSocket-Accept hashes after the key (a literal: sizeof counts it) */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* --- shared types --------------------------------------------------------- */

struct md {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
    void (*compress)(uint32_t *h, const uint8_t *block);
};

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

typedef void body_fn(void *ctx, const void *p, size_t n);

struct response {
    int status;
    const char *type;  /* Content-Type, or NULL */
    const char *extra; /* further header lines, each ending in CRLF */
    const void *body;
    size_t len;
    bool stream;        /* length unknown: chunked (HTTP/1.1) or close-delimited */
    bool offer_upgrade; /* Upgrade: websocket, with "upgrade" in Connection */
};

/* --- util.c ----------------------------------------------------------------- */

extern bool verbose; /* -v: a log line per request */

/* One line to stderr in one write(2), so lines of different threads never mix. */
void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hex(const uint8_t *p, size_t n, char *out);
void sha1_init(struct md *m);
void sha256_init(struct md *m);
void md_update(struct md *m, const void *data, size_t n);
void md_final(struct md *m, uint8_t *out, int words);
void base64_encode(const uint8_t *p, size_t n, char *out);
long base64_decode(const char *s, uint8_t *out, size_t cap);
bool utf8_valid(const uint8_t *p, size_t n);

/* --- http.c ----------------------------------------------------------------- */

size_t buffered(const struct conn *c);
ssize_t conn_fill(struct conn *c);
bool conn_need(struct conn *c, size_t n);
bool send_iov(int fd, struct iovec *iov, int cnt);
bool send_all(int fd, const void *p, size_t n);
void set_timeouts(int fd, int seconds);
int parse_request(char *head, size_t len, struct request *rq);
bool endpoint_is(const struct request *rq, const char *name);
int query_param(const struct request *rq, const char *key, char *out, size_t cap);
bool query_number(const struct request *rq, const char *key, long min, long max, long def,
                  long *out);
int read_body(struct conn *c, const struct request *rq, body_fn *fn, void *ctx, uint64_t *total);
const char *http_date(void);
bool respond(struct conn *c, const struct request *rq, const struct response *res, bool *keep);
void respond_error(struct conn *c, const struct request *rq, int status, const char *why);
bool respond_text(struct conn *c, const struct request *rq, int status, const char *extra,
                  bool *keep, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* --- endpoints.c ------------------------------------------------------------ */

bool drain_body(struct conn *c, const struct request *rq);
size_t format_headers(const struct request *rq, char *out, size_t cap);
void serve(struct conn *c);

/* --- ws.c ------------------------------------------------------------------- */

bool serve_ws(struct conn *c, const struct request *rq, bool *keep);

#endif
