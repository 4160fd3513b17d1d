/* Tests of the worker's activity parsers and classification (activity.h):
 * TCP counters from /proc/<pid>/net/snmp, established connections on the
 * SSH and HTTP ports from /proc/<pid>/net/tcp(6), what a sample means. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../src/worker/activity.h"
#include "check.h"

static const char snmp[] =
    "Ip: Forwarding DefaultTTL InReceives\n"
    "Ip: 1 64 120\n"
    "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets "
    "CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n"
    "Tcp: 1 200 120000 -1 0 3 0 0 2 1234 987 0 0 1 0\n"
    "Udp: InDatagrams NoPorts\n"
    "Udp: 0 0\n";

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
    char buf[4096];

    /* ---- snmp ---- */
    {
        struct activity_tcp_mib m;
        size_t cut = strstr(snmp, "Udp:") - snmp;
        CHECK(activity_snmp_tcp(snmp, strlen(snmp), &m) && m.in_segs == 1234 &&
                  m.out_segs == 987 && m.curr_estab == 2,
              "snmp: InSegs, OutSegs and CurrEstab by their column names (MaxConn -1 is no matter)");
        CHECK(activity_snmp_tcp(snmp, cut, &m) && m.in_segs == 1234,
              "snmp: the Tcp lines alone are enough");
        CHECK(!activity_snmp_tcp(snmp, cut - 5, &m) && m.in_segs == 0 && m.curr_estab == 0,
              "snmp: a values line cut short by the read is refused");
        CHECK(!activity_snmp_tcp(snmp, 40, &m), "snmp: no Tcp lines, no counters");
        CHECK(!activity_snmp_tcp(NULL, 0, &m), "snmp: nothing read");
        static const char *const bad[] = {
            "Tcp: CurrEstab InSegs OutSegs\n",                          /* no values line */
            "Tcp: CurrEstab InSegs OutSegs\nTcp: 1 2\n",               /* a value short */
            "Tcp: CurrEstab InSegs OutSegs\nTcp: 1 2 x\n",             /* not a number */
            "Tcp: CurrEstab InSegs OutSegs\nTcp: 1 2 -3\n",            /* negative */
            "Tcp: CurrEstab InSegs\nTcp: 1 2\n",                       /* OutSegs missing */
            "Tcp: CurrEstab InSegs OutSegs\nTcp: 1 2 99999999999999999999\n", /* > 64 bits */
            "Tcp: CurrEstab InSegs OutSegs\nTcp: 1 2 3",                /* no newline: cut */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(!activity_snmp_tcp(bad[i], strlen(bad[i]), &m) && m.in_segs == 0,
                  "snmp: refused (case %zu)", i);
        const char *order = "Tcp: OutSegs CurrEstab InSegs\nTcp: 7 0 5\n";
        CHECK(activity_snmp_tcp(order, strlen(order), &m) && m.in_segs == 5 && m.out_segs == 7 &&
                  m.curr_estab == 0,
              "snmp: columns found wherever they stand");
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
            uint64_t segs;
            unsigned conns;
            bool http;
            enum activity_kind want;
            const char *what;
        } cases[] = {
            {0, ACTIVITY_CONN_HTTP, false, ACTIVITY_NONE, "no segments: an open but silent WebSocket"},
            {ACTIVITY_MIN_SEGS - 1, ACTIVITY_CONN_SSH, false, ACTIVITY_NONE,
             "a keepalive probe and its answer are nobody"},
            {5000, 0, false, ACTIVITY_NONE,
             "traffic with no user connection (the container's own download) is nobody"},
            {5000, 0, true, ACTIVITY_NONE, "... even while the proxy saw requests"},
            {ACTIVITY_MIN_SEGS, ACTIVITY_CONN_HTTP, false, ACTIVITY_WEBSOCKET,
             "traffic on the HTTP port with no request seen: a WebSocket"},
            {5000, ACTIVITY_CONN_HTTP, true, ACTIVITY_HTTP, "with requests seen: HTTP"},
            {5000, ACTIVITY_CONN_SSH, false, ACTIVITY_SSH, "an SSH session"},
            {5000, ACTIVITY_CONN_SSH | ACTIVITY_CONN_HTTP, false, ACTIVITY_SSH,
             "an SSH session beside an idle proxy connection"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            CHECK(activity_classify(cases[i].segs, cases[i].conns, cases[i].http) ==
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
