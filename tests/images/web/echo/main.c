/* main: berth-echo's thread pool, its self-test (-t) and main() (echo.h). */
#include "echo.h"

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
