/* Unit test of src/worker/revoke.c's connection cutter on real loopback
 * sockets: a TCP connection to 127.0.0.1:PORT is destroyed (the client side
 * sees ECONNABORTED), one to another port is left alone. SOCK_DESTROY needs
 * CAP_NET_ADMIN: without it the test says so and skips. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "../../src/worker/worker.h"

static int listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return -1;
    return fd;
}

int main(void)
{
    int p1, p2, cut = -1;
    int l1 = listener(&p1), l2 = listener(&p2);
    int c1 = dial(p1), c2 = dial(p2);
    int s1 = accept(l1, NULL, NULL), s2 = accept(l2, NULL, NULL);
    char b;

    if (l1 < 0 || l2 < 0 || c1 < 0 || c2 < 0 || s1 < 0 || s2 < 0) {
        CHECK(0, "loopback sockets for the cut test");
        return CHECK_DONE();
    }
    if (geteuid() != 0) {
        printf("ok - revoke_cut needs CAP_NET_ADMIN: not root # SKIP\n");
        return CHECK_DONE();
    }
    CHECK(revoke_cut("127.0.0.1", p1, &cut) == 0 && cut == 1,
          "revoke_cut destroys the one connection to 127.0.0.1:%d (cut %d)", p1, cut);
    CHECK(recv(c1, &b, 1, MSG_DONTWAIT) < 0 && errno == ECONNABORTED,
          "... whose owner sees ECONNABORTED");
    CHECK(send(c2, "x", 1, 0) == 1 && recv(s2, &b, 1, 0) == 1,
          "a connection to another port is left alone");
    CHECK(revoke_cut("127.0.0.1", p1, &cut) == 0 && cut == 0, "cutting again finds nothing");
    CHECK(revoke_cut("not-an-address", 80, &cut) < 0 && revoke_cut("127.0.0.1", 0, &cut) < 0,
          "a bad address or port is refused");
    {
        /* two instances in one pass: one dump, each counted on its own */
        int c3 = dial(p1), c4 = dial(p1), c5 = dial(p2);
        struct revoke_target t[2] = {{.port = p1}, {.port = p2}};
        t[0].addr.s_addr = t[1].addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(c3 >= 0 && c4 >= 0 && c5 >= 0 && revoke_cut_all(t, 2) == 0 && t[0].cut == 2 &&
                  t[1].cut == 2,
              "revoke_cut_all cuts several targets at once, counting each (%d, %d)", t[0].cut,
              t[1].cut);
        close(c3), close(c4), close(c5);
    }
    close(c1), close(c2), close(s1), close(s2), close(l1), close(l2);
    return CHECK_DONE();
}
