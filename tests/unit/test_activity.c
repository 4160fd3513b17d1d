/* Tests of the worker's activity parsers and classification (activity.h):
 * byte counters from /proc/<pid>/net/dev, established connections on the
 * SSH and HTTP ports from /proc/<pid>/net/tcp(6), what a sample means. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../src/worker/activity.h"
#include "check.h"

static const char netdev[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:  229108  3618    0    0    0     0          0         0   229108    3618    0    0 "
    "   0     0       0          0\n"
    "  eth0:    1000      10    0    0    0     0          0         0      234       3    0    0"
    "    0     0       0          0\n"
    "veth0123456789a:5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";

/* A /proc/net/tcp address of 4 network-order bytes: the kernel prints each
 * 32-bit word as the host stores it. */
static void hex_words(const unsigned char *a, int words, char *out)
{
    for (int i = 0; i < words; i++) {
        uint32_t w;
        memcpy(&w, a + 4 * i, 4);
        snprintf(out + 8 * i, 9, "%08X", w);
    }
}

/* One line of /proc/net/tcp (words 1) or tcp6 (4). */
static int tcp_line(char *out, size_t size, int sl, const unsigned char *local, int lport,
                    const unsigned char *remote, int rport, int st, int words)
{
    char l[33], r[33];
    hex_words(local, words, l);
    hex_words(remote, words, r);
    return snprintf(out, size,
                    "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000     0"
                    "        0 1080 1 000000003bad8819 100 0 0 10 0\n",
                    sl, l, lport, r, rport, st);
}

static const unsigned char c4[4] = {10, 213, 0, 2}, gw4[4] = {10, 213, 0, 1},
                           lo4[4] = {127, 0, 0, 1}, any4[4] = {0};
static const unsigned char c6[16] = {0xfd, 0, [15] = 2}, peer6[16] = {0xfd, 0, [15] = 9},
                           lo6[16] = {[15] = 1},
                           mapped_lo[16] = {[10] = 0xff, [11] = 0xff, 127, 0, 0, 1};

int main(void)
{
    uint64_t bytes = 1;
    char buf[4096];
    size_t n;

    /* ---- net/dev ---- */
    n = activity_netdev_bytes(netdev, strlen(netdev), &bytes);
    CHECK(n == 3 && bytes == 1000 + 234 + 5 + 7,
          "net/dev: rx + tx bytes of every interface but lo (a long name touching its colon too)");
    n = activity_netdev_bytes(netdev, strlen(netdev) - 5, &bytes);
    CHECK(n == 2 && bytes == 1234, "net/dev: a line cut short by the read is left out");
    CHECK(activity_netdev_bytes(netdev, 100, &bytes) == 0 && bytes == 0,
          "net/dev: headers alone are no interfaces");
    CHECK(activity_netdev_bytes(NULL, 0, &bytes) == 0 && bytes == 0, "net/dev: nothing read");
    {
        static const char *const bad[] = {
            "  eth0: 1 2 3\n",                                 /* too few fields */
            "  eth0: 1 2 3 4 5 6 7 8 x 1\n",                   /* not a number */
            "  eth0: 99999999999999999999 0 0 0 0 0 0 0 1\n", /* over 64 bits */
            "  et h0: 1 0 0 0 0 0 0 0 1\n",                   /* a space in the name */
            ": 1 0 0 0 0 0 0 0 1\n",                           /* no name */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(activity_netdev_bytes(bad[i], strlen(bad[i]), &bytes) == 0 && bytes == 0,
                  "net/dev: a malformed line is skipped (case %zu)", i);
    }
    {
        const char *huge = "  a: 18446744073709551615 0 0 0 0 0 0 0 0\n"
                           "  b: 1 0 0 0 0 0 0 0 0\n";
        n = activity_netdev_bytes(huge, strlen(huge), &bytes);
        CHECK(n == 2 && bytes == UINT64_MAX, "net/dev: a total that would wrap stops at the sum so far");
    }

    /* ---- tcp / tcp6 ---- */
    {
        size_t len = 0;
        len += (size_t)snprintf(buf, sizeof(buf),
                                "  sl  local_address rem_address   st tx_queue rx_queue tr\n");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 0, any4, 22, any4, 0, 0x0A, 1);
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 1, any4, 8080, any4, 0, 0x0A, 1);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == 0, "tcp: listening sockets are no connection");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 2, c4, 8080, gw4, 40000, 0x01, 1);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == ACTIVITY_CONN_HTTP,
              "tcp: an established connection from nginx on the HTTP port");
        CHECK(activity_tcp_conns(buf, len, 22, 0) == 0, "tcp: no HTTP port, nothing on it counts");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 3, c4, 22, lo4, 50000, 0x01, 1);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == ACTIVITY_CONN_HTTP,
              "tcp: a connection from loopback (the container to itself) is nobody");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 4, c4, 22, gw4, 50001, 0x06, 1);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == ACTIVITY_CONN_HTTP,
              "tcp: a connection in TIME_WAIT is not open");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 5, c4, 22, gw4, 50002, 0x01, 1);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == (ACTIVITY_CONN_HTTP | ACTIVITY_CONN_SSH),
              "tcp: an established SSH connection");
        CHECK(activity_tcp_conns(buf, len - 10, 22, 8080) == ACTIVITY_CONN_HTTP,
              "tcp: a line cut short by the read is left out");
        CHECK(activity_tcp_conns(buf, len, 2222, 8081) == 0, "tcp: other ports are not these");
    }
    {
        size_t len = 0;
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 0, c6, 22, lo6, 1000, 0x01, 4);
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 1, c6, 22, mapped_lo, 1001, 0x01, 4);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == 0,
              "tcp6: from ::1 or ::ffff:127.0.0.1 is loopback");
        len += (size_t)tcp_line(buf + len, sizeof(buf) - len, 2, c6, 22, peer6, 1002, 0x01, 4);
        CHECK(activity_tcp_conns(buf, len, 22, 8080) == ACTIVITY_CONN_SSH,
              "tcp6: an established SSH connection from elsewhere");
    }
    {
        static const char *const bad[] = {
            "   0: 0100007:0016 0900000A:D2A4 01 00\n",           /* 7 hex digits */
            "   0: 0100007G:0016 0900000A:D2A4 01 00\n",          /* not hex */
            "   0: 0200000A:0016 0900000A:D2A4\n",                /* no state */
            "   0: 0200000A:0016 0900000A 01\n",                  /* no remote port */
            "   x: 0200000A:0016 0900000A:D2A4 01\n",             /* no slot */
            "0200000A:0016 0900000A:D2A4 01\n",                   /* no slot at all */
            "   0: 0200000A:16 0900000A:D2A4 01\n",               /* short port */
            "   0: 0200000A:0016  0900000A:D2A4 01\n",            /* two spaces */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(activity_tcp_conns(bad[i], strlen(bad[i]), 22, 8080) == 0,
                  "tcp: a malformed line is skipped (case %zu)", i);
    }
    CHECK(activity_tcp_conns(NULL, 0, 22, 8080) == 0, "tcp: nothing read");

    /* ---- classification ---- */
    {
        struct {
            uint64_t delta;
            unsigned conns;
            bool http;
            enum activity_kind want;
            const char *what;
        } cases[] = {
            {0, ACTIVITY_CONN_HTTP, false, ACTIVITY_NONE, "no bytes: an open but silent WebSocket"},
            {ACTIVITY_MIN_BYTES - 1, ACTIVITY_CONN_SSH, false, ACTIVITY_NONE,
             "a neighbour probe's bytes are noise"},
            {5000, 0, false, ACTIVITY_NONE,
             "traffic with no user connection (the container's own download) is nobody"},
            {5000, 0, true, ACTIVITY_NONE, "... even while the proxy saw requests"},
            {ACTIVITY_MIN_BYTES, ACTIVITY_CONN_HTTP, false, ACTIVITY_WEBSOCKET,
             "traffic on the HTTP port with no request seen: a WebSocket"},
            {5000, ACTIVITY_CONN_HTTP, true, ACTIVITY_HTTP, "with requests seen: HTTP"},
            {5000, ACTIVITY_CONN_SSH, false, ACTIVITY_SSH, "an SSH session"},
            {5000, ACTIVITY_CONN_SSH | ACTIVITY_CONN_HTTP, false, ACTIVITY_SSH,
             "an SSH session beside an idle proxy connection"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            CHECK(activity_classify(cases[i].delta, cases[i].conns, cases[i].http) ==
                      cases[i].want,
                  "classify: %s", cases[i].what);
    }
    CHECK(strcmp(activity_kind_name(ACTIVITY_WEBSOCKET), "websocket") == 0 &&
              strcmp(activity_kind_name(ACTIVITY_SNOOZE), "snooze") == 0 &&
              activity_kind_name(ACTIVITY_NONE) == NULL &&
              activity_kind_name((enum activity_kind)99) == NULL,
          "kind names are last_active_kind's values; none for nothing");
    return CHECK_DONE();
}
