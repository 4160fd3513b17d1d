/*
 * revoke — access taken away ends the connections it had opened (issue 10).
 *
 * nginx authorises a proxied WebSocket (or any long request) once, when it
 * starts. When a user's access is taken away -- a session logged out or
 * ended by a password change, a token revoked, the account disabled, the
 * instance deleted -- the database writes a row into access_revocations
 * (triggers, sql/006). Every REVOKE_EVERY_S this module reads the rows it has
 * not handled yet and cuts every proxied connection to the instances concerned on
 * this node: the TCP connections of the host (nginx's side) to the
 * instance's address and HTTP port, destroyed with the kernel's sock_diag
 * SOCK_DESTROY (what `ss -K` does). nginx then ends the client's side;
 * browsers reconnect and are authorised again, so another live session of
 * the same user gets back in at once, and a revoked one does not.
 *
 * All of an instance's connections go, not only the revoked credential's:
 * at the TCP level they cannot be told apart. Only its owner can reach an
 * instance, so nobody else is disturbed.
 *
 * The netlink calls are synchronous: one dump of the host's TCP sockets per
 * pass that has anything to cut (all its instances together), then a
 * destroy per matching socket -- microseconds each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/util.h"
#include "pg.h"
#include "worker.h"

#define REVOKE_EVERY_S 5.0

#define HANDLED_MAX 1024 /* ids handled in the last minute or so */

static struct {
    struct worker *w;
    ev_timer timer;
    bool first; /* the first pass looks further back */
    bool running;
    bool stopped;
    /* Ids come from a sequence but commit in any order: a pass reads the
     * last minute's rows and skips those handled already. */
    long long handled[HANDLED_MAX];
    int next;
} rv = {.first = true};

static bool handled(long long id)
{
    for (int i = 0; i < HANDLED_MAX; i++)
        if (rv.handled[i] == id)
            return true;
    return false;
}

/* Send one request on a sock_diag socket. */
static int nl_send(int fd, uint16_t type, uint16_t flags, const struct inet_diag_req_v2 *r)
{
    struct {
        struct nlmsghdr h;
        struct inet_diag_req_v2 r;
    } m;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    memset(&m, 0, sizeof(m));
    m.h.nlmsg_len = sizeof(m);
    m.h.nlmsg_type = type;
    m.h.nlmsg_flags = flags;
    m.r = *r;
    return sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&sa, sizeof(sa)) == (ssize_t)sizeof(m)
               ? 0
               : -1;
}

/* One dump of the host's TCP sockets; those whose peer is one of the
 * targets are destroyed, each counted on its target. Returns how many matched
 * (at most ARRAY_LEN(ids) are destroyed per round), or -1. */
static int cut_round(int fd, struct revoke_target *t, size_t nt)
{
    struct inet_diag_req_v2 q;
    struct {
        struct inet_diag_sockid id;
        size_t target;
    } ids[256];
    int n = 0, matched = 0;
    char buf[16384];
    bool done = false;

    memset(&q, 0, sizeof(q));
    q.sdiag_family = AF_INET;
    q.sdiag_protocol = IPPROTO_TCP;
    q.idiag_states = ~(1u << 10); /* every state but LISTEN */
    if (nl_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &q) < 0)
        return -1;
    /* the whole dump first, then the destroys: one request at a time */
    while (!done) {
        ssize_t len = recv(fd, buf, sizeof(buf), 0);
        if (len <= 0)
            return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                done = true;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR)
                return -1;
            const struct inet_diag_msg *d = NLMSG_DATA(h);
            for (size_t k = 0; k < nt; k++) {
                if (d->id.idiag_dst[0] != t[k].addr.s_addr || ntohs(d->id.idiag_dport) != t[k].port)
                    continue;
                matched++;
                if (n < (int)ARRAY_LEN(ids)) {
                    ids[n].id = d->id;
                    ids[n++].target = k;
                }
                break;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        q.id = ids[i].id;
        q.idiag_states = ~0u;
        if (nl_send(fd, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, &q) < 0 ||
            recv(fd, buf, sizeof(buf), 0) < (ssize_t)sizeof(*h))
            return -1;
        if (h->nlmsg_type == NLMSG_ERROR) {
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error == 0)
                t[ids[i].target].cut++;
            else if (e->error != -ENOENT) /* gone meanwhile: fine */
                return -1;
        }
    }
    return matched;
}

int revoke_cut_all(struct revoke_target *t, size_t nt)
{
    int fd, rc = 0;
    for (size_t k = 0; k < nt; k++)
        t[k].cut = 0;
    if (nt == 0)
        return 0;
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    /* a round destroys at most 256; more matched: another round (bounded) */
    for (int round = 0; round < 16; round++) {
        rc = cut_round(fd, t, nt);
        if (rc <= 256)
            break;
    }
    close(fd);
    return rc < 0 ? -1 : 0;
}

int revoke_cut(const char *addr, int port, int *cut)
{
    struct revoke_target t = {.port = port};
    *cut = 0;
    if (inet_pton(AF_INET, addr, &t.addr) != 1 || port < 1 || port > 65535)
        return -1;
    if (revoke_cut_all(&t, 1) < 0)
        return -1;
    *cut = t.cut;
    return 0;
}

#define TARGETS_MAX 512 /* instances concerned in one pass */

static void on_rows(PGresult *res, const char *err, void *arg)
{
    static struct revoke_target t[TARGETS_MAX];
    static int row_of[TARGETS_MAX]; /* the first result row naming each target */
    long long last = -1;
    bool skip = false;
    size_t nt = 0;

    rv.running = false;
    if (err) {
        log_warn("revocations not read: %s", err);
        return;
    }
    rv.first = false;
    for (int i = 0; i < PQntuples(res); i++) {
        long long id = atoll(PQgetvalue(res, i, 0));
        struct in_addr a;
        long port;
        size_t k;
        if (id != last) { /* the rows of one revocation come together (ORDER BY) */
            last = id;
            skip = handled(id);
            if (!skip) {
                rv.handled[rv.next] = id;
                rv.next = (rv.next + 1) % HANDLED_MAX;
            }
        }
        if (skip || PQgetisnull(res, i, 1) ||
            !util_parse_long(PQgetvalue(res, i, 2), 1, 65535, &port) ||
            inet_pton(AF_INET, PQgetvalue(res, i, 1), &a) != 1)
            continue;
        for (k = 0; k < nt; k++) /* one target per instance, however many revocations */
            if (t[k].addr.s_addr == a.s_addr && t[k].port == port)
                break;
        if (k == nt && nt < TARGETS_MAX) {
            t[nt].addr = a;
            t[nt].port = (int)port;
            row_of[nt++] = i;
        }
    }
    /* one dump of the host's sockets for the whole pass */
    if (revoke_cut_all(t, nt) < 0) {
        log_warn("proxied connections of %zu instance(s) not cut: %s", nt, strerror(errno));
        return;
    }
    for (size_t k = 0; k < nt; k++)
        if (t[k].cut > 0)
            log_info("instance %s: %d proxied connection(s) cut (%s)",
                     PQgetvalue(res, row_of[k], 4), t[k].cut, PQgetvalue(res, row_of[k], 3));
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    const char *p[2] = {rv.first ? "300" : "60", rv.w->cfg->node};
    if (rv.stopped || rv.running || !pg_connected(rv.w->pg))
        return;
    rv.running = true;
    /* the first pass also takes what happened in the minutes the worker may
     * have been away; old rows go now and then */
    if (pg_query(rv.w->pg,
                 "WITH gc AS (DELETE FROM access_revocations WHERE random() < 0.01 AND"
                 " at < now() - interval '1 day'),"
                 " r AS (SELECT * FROM access_revocations WHERE at > now() -"
                 " make_interval(secs => $1::int))"
                 " SELECT r.id, host(i.upstream_host), i.spec->>'http_port', r.reason, i.id"
                 " FROM r LEFT JOIN instances i ON (i.user_id = r.user_id OR i.id = r.instance_id)"
                 " AND i.node = $2 AND i.upstream_host IS NOT NULL ORDER BY r.id",
                 2, p, on_rows, NULL) < 0)
        rv.running = false;
}

void revoke_start(struct worker *w)
{
    rv.w = w;
    ev_timer_init(&rv.timer, on_timer, 1.0, REVOKE_EVERY_S);
    ev_timer_start(w->loop, &rv.timer);
}

void revoke_stop(void)
{
    rv.stopped = true;
    if (rv.w)
        ev_timer_stop(rv.w->loop, &rv.timer);
}
