/* The worker's Docker client (src/worker/docker.c) against a fake Engine API
 * on a unix socket: whole responses, streamed lines split across chunks, the
 * per-line and per-body caps, and a socket nobody listens on. No dockerd. */
#include <ev.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/worker/docker.h"
#include "../../src/worker/worker.h"
#include "check.h"

static char sock_path[108];

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void chunk(int fd, const char *s)
{
    char head[32];
    snprintf(head, sizeof(head), "%zx\r\n", strlen(s));
    write_all(fd, head, strlen(head));
    write_all(fd, s, strlen(s));
    write_all(fd, "\r\n", 2);
    usleep(20000); /* separate reads on the client side */
}

/* The fake daemon: one request per connection, answered by path. */
static void serve(int ls)
{
    for (;;) {
        char req[4096];
        size_t n = 0;
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            _exit(0);
        while (n < sizeof(req) - 1) {
            ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        if (strncmp(req, "GET /v1.41/json ", 16) == 0) {
            const char *r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: 11\r\nConnection: close\r\n\r\n{\"a\": true}";
            write_all(fd, r, strlen(r));
        } else if (strncmp(req, "GET /v1.41/stream ", 18) == 0) {
            const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            write_all(fd, h, strlen(h));
            chunk(fd, "a\nbb");
            chunk(fd, "b\n\nccc\n");
            chunk(fd, "tail");
            write_all(fd, "0\r\n\r\n", 5);
        } else if (strncmp(req, "GET /v1.41/longline ", 20) == 0) {
            const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            char *x = malloc(8193);
            write_all(fd, h, strlen(h));
            memset(x, 'x', 8192);
            x[8192] = '\0';
            for (int i = 0; i < 10 && x; i++) /* 80 KB without a newline */
                chunk(fd, x);
            free(x);
            write_all(fd, "0\r\n\r\n", 5);
        } else if (strncmp(req, "GET /v1.41/hang ", 16) == 0) {
            usleep(1500000); /* longer than the request's timeout */
        } else if (strncmp(req, "GET /v1.41/big ", 15) == 0) {
            char h[128];
            size_t total = DOCKER_MAX_BODY + 4096, sent = 0;
            char *x = malloc(65536);
            snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", total);
            write_all(fd, h, strlen(h));
            if (x) {
                memset(x, 'y', 65536);
                while (sent < total) {
                    size_t k = total - sent < 65536 ? total - sent : 65536;
                    write_all(fd, x, k);
                    sent += k;
                }
            }
            free(x);
        } else {
            const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 24\r\nConnection: close\r\n\r\n"
                            "{\"message\":\"no such x\"}\n";
            write_all(fd, r, strlen(r));
        }
        close(fd);
    }
}

struct result {
    bool done;
    int status;
    char body[256];
    char err[512];
    char lines[8][64];
    int nlines;
    enum docker_fail fail;
};

static struct docker *asked; /* the handle the pending request went to */

static void on_line(const char *line, size_t len, void *arg)
{
    struct result *r = arg;
    if (r->nlines < 8)
        snprintf(r->lines[r->nlines], sizeof(r->lines[0]), "%.*s", (int)(len > 60 ? 60 : len), line);
    r->nlines++;
}

static void on_done(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct result *r = arg;
    r->done = true;
    r->status = status;
    snprintf(r->body, sizeof(r->body), "%.*s", (int)(len > 200 ? 200 : len), body);
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
    r->fail = docker_failure(asked);
}

static void run(struct ev_loop *loop, struct result *r)
{
    for (int i = 0; i < 1000 && !r->done; i++)
        ev_run(loop, EVRUN_ONCE);
}

/* A GET of path on d (docker_request, or docker_stream when stream) run to its
 * end into *r; what names the transfer in the check that it starts. */
static void get(struct ev_loop *loop, struct docker *d, const char *path, long timeout_ms,
                bool stream, struct result *r, const char *what)
{
    memset(r, 0, sizeof(*r));
    asked = d;
    CHECK((stream ? docker_stream(d, "GET", path, NULL, timeout_ms, on_line, on_done, r)
                  : docker_request(d, "GET", path, NULL, timeout_ms, on_done, r)) == 0,
          "%s starts", what);
    run(loop, r);
}

int main(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ev_loop *loop = EV_DEFAULT;
    struct docker *d, *nobody;
    struct result r;
    pid_t child;
    int ls;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(sock_path, sizeof(sock_path), "/tmp/berth-test-docker.%d.sock", (int)getpid());
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    unlink(sock_path);
    ls = socket(AF_UNIX, SOCK_STREAM, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 8) < 0) {
        perror("fake docker socket");
        return 1;
    }
    child = fork();
    if (child == 0)
        serve(ls);
    close(ls);
    d = docker_new(loop, sock_path);
    asked = d;

    get(loop, d, "/json", 5000, false, &r, "a request");
    CHECK(r.done && r.status == 200 && strcmp(r.body, "{\"a\": true}") == 0,
          "a whole response arrives with its status and body");

    get(loop, d, "/stream", 5000, true, &r, "a stream");
    CHECK(r.nlines == 3 && strcmp(r.lines[0], "a") == 0 && strcmp(r.lines[1], "bbb") == 0 &&
              strcmp(r.lines[2], "ccc") == 0,
          "streamed lines are whole although chunks split them; empty lines are skipped");
    CHECK(r.done && r.status == 200 && strcmp(r.body, "tail") == 0,
          "the unterminated rest of a stream is handed to the done callback");

    get(loop, d, "/longline", 5000, true, &r, "a long-line stream");
    CHECK(r.done && r.status == 0 && strstr(r.err, "larger") && r.nlines == 0,
          "a streamed line over DOCKER_MAX_LINE ends the transfer with an error");

    get(loop, d, "/big", 20000, false, &r, "a big request");
    CHECK(r.done && r.status == 0 && strstr(r.err, "larger") && r.fail == DOCKER_TOO_LARGE,
          "a body over DOCKER_MAX_BODY is an error (DOCKER_TOO_LARGE), not a bigger buffer");

    get(loop, d, "/hang", 300, false, &r, "a request that hangs");
    CHECK(r.done && r.status == 0 && r.fail == DOCKER_TIMED_OUT,
          "no answer within the timeout is DOCKER_TIMED_OUT, a code callers test (not the words)");
    CHECK(docker_failure(d) == DOCKER_OK, "outside a failed request's callback there is no failure");

    get(loop, d, "/missing", 5000, false, &r, "a 404 request");
    CHECK(r.done && r.status == 404 && strstr(r.body, "no such x") && r.fail == DOCKER_OK,
          "an error status comes with Docker's body (Docker answered: DOCKER_OK)");
    {
        char msg[128];
        worker_docker_message(r.body, strlen(r.body), msg, sizeof(msg));
        CHECK(strcmp(msg, "no such x") == 0, "worker_docker_message takes Docker's message field");
    }

    nobody = docker_new(loop, "/tmp/berth-test-docker.nobody.sock");
    get(loop, nobody, "/_ping", 2000, false, &r, "a request to a dead socket");
    CHECK(r.done && r.status == 0 && strstr(r.err, "Docker unreachable") && r.fail == DOCKER_UNREACHABLE,
          "a socket nobody listens on is 'Docker unreachable' (DOCKER_UNREACHABLE), with the path");
    asked = d;

    memset(&r, 0, sizeof(r));
    CHECK(docker_stream(d, "GET", "/stream", NULL, 5000, on_line, on_done, &r) == 0 &&
              docker_inflight(d) == 1,
          "a transfer in flight is counted");
    docker_free(d); /* frees it without calling back */
    CHECK(!r.done, "docker_free drops transfers in flight without their callbacks");
    docker_free(nobody);

    {
        char a[32], b[32], c[32];
        CHECK(worker_subnet("10.213.0.0/16", "berth-c-alice", 0, a, sizeof(a)) == 0 &&
                  strncmp(a, "10.213.", 7) == 0 && strcmp(a + strlen(a) - 5, ".0/24") == 0,
              "a user's network gets a /24 inside network_pool (%s)", a);
        CHECK(worker_subnet("10.213.0.0/16", "berth-c-alice", 0, b, sizeof(b)) == 0 &&
                  strcmp(a, b) == 0,
              "the first choice for a name is stable");
        CHECK(worker_subnet("10.213.0.0/16", "berth-c-alice", 1, c, sizeof(c)) == 0 &&
                  strcmp(a, c) != 0,
              "the next attempt is another subnet");
        CHECK(worker_subnet("10.213.5.0/24", "x", 7, a, sizeof(a)) == 0 &&
                  strcmp(a, "10.213.5.0/24") == 0,
              "a /24 pool has exactly one subnet");
        CHECK(worker_subnet("10.213.0.0/25", "x", 0, a, sizeof(a)) < 0 &&
                  worker_subnet("10.213.0.0", "x", 0, a, sizeof(a)) < 0 &&
                  worker_subnet("banana/16", "x", 0, a, sizeof(a)) < 0 &&
                  worker_subnet("10.213.0.0/7", "x", 0, a, sizeof(a)) < 0,
              "network_pool must be an IPv4 CIDR with a prefix of 8 to 24");
    }
    {
        char path[512], tiny[40];
        CHECK(docker_cluster_filter(path, sizeof(path), "/events?since=7&", "container",
                                    "ci-1") == 0 &&
                  strcmp(path, "/events?since=7&filters=%7B%22label%22%3A%5B%22berth.cluster%3D"
                               "ci-1%22%5D%2C%22type%22%3A%5B%22container%22%5D%7D") == 0,
              "a cluster filter is JSON, every reserved byte escaped (%s)", path);
        CHECK(docker_cluster_filter(path, sizeof(path), "/networks?", NULL, "a&b c") == 0 &&
                  strstr(path, "a%26b%20c") && !strstr(path, "type"),
              "a cluster name's & and space cannot end the filter (%s)", path);
        CHECK(docker_cluster_filter(tiny, sizeof(tiny), "/networks?", NULL, "ci-1") == -1 &&
                  tiny[0] == '\0',
              "a filter that does not fit is an error and an empty path, never a cut one");
    }
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    unlink(sock_path);
    curl_global_cleanup();
    return CHECK_DONE();
}
