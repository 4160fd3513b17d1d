/*
 * activity — network traffic of running containers as activity (activity.h).
 *
 * The cache holds, per running instance, the pid Docker gave its container's
 * process and the inode of that process's network namespace: a pass checks
 * the inode (one stat) before it reads the counters, so a pid reused by
 * another process, or a container started again, is never read as this one
 * -- the entry is inspected again instead. A pid is believed only when its
 * /proc/<pid>/cgroup names the container's id and its namespace is not the
 * worker's own. Counters of a new namespace start a new baseline: a pass
 * compares two readings of one namespace, never across a restart; so do
 * the connections read from its tables.
 */
#include "activity.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "docker.h"
#include "worker.h"

/* ---- parsers ---- */

const char *activity_kind_name(enum activity_kind kind)
{
    static const char *const names[] = {
        [ACTIVITY_HTTP] = "http",
        [ACTIVITY_WEBSOCKET] = "websocket",
        [ACTIVITY_SSH] = "ssh",
        [ACTIVITY_SNOOZE] = "snooze",
    };
    return (unsigned)kind < ARRAY_LEN(names) ? names[kind] : NULL;
}

/* A cursor over one line of /proc text: [p, end). */
struct cur {
    const char *p, *end;
};

static void skip_spaces(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Decimal digits into *v (false on none or overflow of 64 bits). */
static bool take_u64(struct cur *c, uint64_t *v)
{
    const char *start = c->p;
    uint64_t n = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
        c->p++;
    }
    *v = n;
    return c->p > start;
}

/* Exactly `digits` hex digits into *v (at most 8: one 32-bit word). */
static bool take_hex(struct cur *c, int digits, uint32_t *v)
{
    uint32_t n = 0;
    for (int i = 0; i < digits; i++, c->p++) {
        char ch;
        if (c->p >= c->end)
            return false;
        ch = *c->p;
        if (ch >= '0' && ch <= '9')
            n = n << 4 | (uint32_t)(ch - '0');
        else if (ch >= 'A' && ch <= 'F')
            n = n << 4 | (uint32_t)(ch - 'A' + 10);
        else if (ch >= 'a' && ch <= 'f')
            n = n << 4 | (uint32_t)(ch - 'a' + 10);
        else
            return false;
    }
    *v = n;
    return true;
}

static bool take_char(struct cur *c, char ch)
{
    if (c->p >= c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* The next complete line of [*pos, end) (without its '\n') into c; false at
 * the end, or when only an unterminated rest is left (a read cut short). */
static bool next_line(const char **pos, const char *end, struct cur *c)
{
    const char *nl;
    if (*pos >= end || !(nl = memchr(*pos, '\n', (size_t)(end - *pos))))
        return false;
    c->p = *pos;
    c->end = nl;
    *pos = nl + 1;
    return true;
}

/* The next space-separated token of c into [*tok, *tok + *n); false at the end. */
static bool next_token(struct cur *c, const char **tok, size_t *n)
{
    skip_spaces(c);
    if (c->p >= c->end)
        return false;
    *tok = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t')
        c->p++;
    *n = (size_t)(c->p - *tok);
    return true;
}

static bool starts_tcp(const struct cur *c)
{
    return c->end - c->p >= 4 && memcmp(c->p, "Tcp:", 4) == 0;
}

bool activity_snmp_tcp(const char *buf, size_t len, struct activity_tcp_mib *out)
{
    static const char *const names[] = {"InSegs", "OutSegs", "CurrEstab"};
    uint64_t *fields[] = {&out->in_segs, &out->out_segs, &out->curr_estab};
    const char *pos = buf, *end = buf + len, *name, *val;
    struct cur head, vals;
    size_t nn, nv;
    unsigned found = 0;

    memset(out, 0, sizeof(*out));
    if (!buf)
        return false;
    do { /* the first "Tcp:" line names the columns, the next one has the values */
        if (!next_line(&pos, end, &head))
            return false;
    } while (!starts_tcp(&head));
    do {
        if (!next_line(&pos, end, &vals))
            return false;
    } while (!starts_tcp(&vals));
    head.p += 4;
    vals.p += 4;
    while (next_token(&head, &name, &nn)) {
        if (!next_token(&vals, &val, &nv))
            goto fail;
        for (size_t i = 0; i < ARRAY_LEN(names); i++) {
            struct cur v = {val, val + nv};
            if (nn != strlen(names[i]) || memcmp(name, names[i], nn) != 0)
                continue;
            if (!take_u64(&v, fields[i]) || v.p != v.end)
                goto fail;
            found |= 1u << i;
        }
    }
    if (found == (1u << ARRAY_LEN(names)) - 1)
        return true;
fail:
    memset(out, 0, sizeof(*out));
    return false;
}

/* An address of /proc/net/tcp(6) as the kernel prints it: 8 hex digits per
 * 32-bit word in the host's byte order, so the bytes of each word as stored
 * in memory are the address in network order. */
static bool take_addr(struct cur *c, int words, unsigned char out[16])
{
    for (int i = 0; i < words; i++) {
        uint32_t w;
        if (!take_hex(c, 8, &w))
            return false;
        memcpy(out + 4 * i, &w, 4);
    }
    return true;
}

static bool loopback(const unsigned char *a, int words)
{
    static const unsigned char v6lo[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (words == 1)
        return a[0] == 127;
    return memcmp(a, v6lo, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}

unsigned activity_tcp_conns(const char *buf, size_t len, long ssh_port, long http_port)
{
    const char *pos = buf, *end = buf + len;
    struct cur c;
    unsigned seen = 0;

    if (!buf)
        return 0;
    while (next_line(&pos, end, &c)) {
        unsigned char local[16], remote[16];
        uint32_t lport, rport, st;
        uint64_t sl;
        const char *addr;
        int words;

        /* "   0: 0100007F:0016 0100007F:D2A4 01 ..." (sl, local, remote, state) */
        skip_spaces(&c);
        if (!take_u64(&c, &sl) || !take_char(&c, ':'))
            continue;
        skip_spaces(&c);
        addr = c.p;
        while (c.p < c.end && *c.p != ':')
            c.p++;
        if (c.p - addr == 8)
            words = 1;
        else if (c.p - addr == 32)
            words = 4;
        else
            continue;
        c.p = addr;
        if (!take_addr(&c, words, local) || !take_char(&c, ':') || !take_hex(&c, 4, &lport) ||
            !take_char(&c, ' ') || !take_addr(&c, words, remote) || !take_char(&c, ':') ||
            !take_hex(&c, 4, &rport) || !take_char(&c, ' ') || !take_hex(&c, 2, &st))
            continue;
        if (st != 0x01 || loopback(remote, words)) /* TCP_ESTABLISHED, from elsewhere */
            continue;
        if (ssh_port > 0 && (long)lport == ssh_port)
            seen |= ACTIVITY_CONN_SSH;
        if (http_port > 0 && (long)lport == http_port)
            seen |= ACTIVITY_CONN_HTTP;
    }
    return seen;
}

enum activity_kind activity_classify(uint64_t segs, unsigned conns, bool http_recent)
{
    if (segs < ACTIVITY_MIN_SEGS || !(conns & (ACTIVITY_CONN_SSH | ACTIVITY_CONN_HTTP)))
        return ACTIVITY_NONE;
    if (http_recent)
        return ACTIVITY_HTTP;
    if (conns & ACTIVITY_CONN_SSH)
        return ACTIVITY_SSH;
    return ACTIVITY_WEBSOCKET;
}

/* ---- the cache and the pass ---- */

enum pid_state {
    PID_UNKNOWN, /* inspect it */
    PID_ASKING,  /* an inspect is in flight */
    PID_VISIBLE, /* pid and netns known and checked */
    PID_HIDDEN,  /* its processes cannot be seen from here: not sampled */
};

struct entry {
    char id[37];
    char started[40];
    char container[72];
    enum pid_state state;
    long pid;
    dev_t ns_dev;
    ino_t ns_ino;
    uint64_t segs;     /* InSegs + OutSegs at the last pass */
    bool have_segs;    /* segs is a baseline of this namespace */
    uint64_t estab;    /* CurrEstab when conns was read */
    unsigned conns;    /* activity_tcp_conns() of the last read */
    int conns_age;     /* passes since; -1: never read */
};

/* An inspect in flight: lives in the module (no allocation a dropped
 * transfer could leak), found again by id when Docker answers. */
struct inspect {
    bool busy;
    char id[37];
    char started[40];
};

static struct {
    struct worker *w;
    struct entry *e; /* sorted by id */
    size_t n;
    struct inspect slots[ACTIVITY_MAX_INSPECTS];
    bool stopped;
    bool told_hidden;
    size_t rotor;  /* where the next pass begins */
    bool deferred; /* this pass ran out of table reads */
    char tcp[256 * 1024]; /* one netns's tcp or tcp6 text at a time */
} act;

/* Read at most cap bytes of a /proc file; -1 when it cannot be opened. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}

static bool netns_of(long pid, dev_t *dev, ino_t *ino)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
    if (stat(path, &st) < 0)
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

/* The namespace's TCP counters; false when they cannot be read. */
static bool read_mib(long pid, struct activity_tcp_mib *mib)
{
    char path[64], buf[8192];
    ssize_t n;
    snprintf(path, sizeof(path), "/proc/%ld/net/snmp", pid);
    n = slurp(path, buf, sizeof(buf));
    return n > 0 && activity_snmp_tcp(buf, (size_t)n, mib);
}

static unsigned read_conns(long pid, long ssh_port, long http_port)
{
    static const char *const files[] = {"tcp", "tcp6"};
    unsigned seen = 0;
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        char path[64];
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/%ld/net/%s", pid, files[i]);
        if ((n = slurp(path, act.tcp, sizeof(act.tcp))) > 0)
            seen |= activity_tcp_conns(act.tcp, (size_t)n, ssh_port, http_port);
    }
    return seen;
}

static int by_id(const void *key, const void *elem)
{
    return strcmp(key, ((const struct entry *)elem)->id);
}

static struct entry *find(const char *id)
{
    return act.n ? bsearch(id, act.e, act.n, sizeof(*act.e), by_id) : NULL;
}

static void hidden(struct entry *e, const char *why)
{
    e->state = PID_HIDDEN;
    if (!act.told_hidden)
        log_warn("instance %s: %s -- only proxied requests count as activity of instances whose "
                 "container this worker cannot see",
                 e->id, why);
    else
        log_debug("instance %s: %s: not sampled", e->id, why);
    act.told_hidden = true;
}

/* The counters of the next pass are compared with these (a new namespace). */
static void baseline(struct entry *e)
{
    struct activity_tcp_mib mib;
    e->have_segs = read_mib(e->pid, &mib);
    e->segs = mib.in_segs + mib.out_segs;
    e->conns_age = -1;
}

/* Believe pid for e when its cgroup names the container and its network
 * namespace is not the worker's own. */
static void adopt(struct entry *e, long pid, const char *full_id)
{
    char path[64], buf[4096];
    dev_t dev, self_dev;
    ino_t ino, self_ino;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
    n = slurp(path, buf, sizeof(buf) - 1);
    if (n <= 0) {
        hidden(e, "its container's process is not visible from here (Docker on another host, or "
                  "this worker in another PID namespace)");
        return;
    }
    buf[n] = '\0';
    if (!strstr(buf, full_id)) {
        hidden(e, "the pid Docker gave is another process here (this worker in another PID "
                  "namespace)");
        return;
    }
    if (!netns_of(pid, &dev, &ino) || (netns_of(getpid(), &self_dev, &self_ino) &&
                                       dev == self_dev && ino == self_ino)) {
        hidden(e, "its container shares this worker's network");
        return;
    }
    e->state = PID_VISIBLE;
    e->pid = pid;
    e->ns_dev = dev;
    e->ns_ino = ino;
    baseline(e);
}

static void on_inspected(int status, const char *body, size_t len, const char *err, void *arg)
{
    struct inspect *s = arg;
    struct entry *e;
    json_t *c = NULL;
    json_int_t pid;
    const char *full;

    s->busy = false;
    if (act.stopped || !(e = find(s->id)) || e->state != PID_ASKING ||
        strcmp(e->started, s->started) != 0)
        return; /* forgotten, or started again meanwhile: the next pass asks again */
    e->state = PID_UNKNOWN;
    if (status != 200 || !(c = json_loadb(body, len, 0, NULL))) {
        log_debug("instance %s: inspect for activity: %s", e->id, err ? err : "not answered");
        json_decref(c);
        return;
    }
    pid = json_integer_value(json_object_get(json_object_get(c, "State"), "Pid"));
    full = json_string_value(json_object_get(c, "Id"));
    if (pid > 0 && pid <= 0x7fffffff && full && strlen(full) >= 12)
        adopt(e, (long)pid, full);
    json_decref(c);
}

static bool container_ref_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 12 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void ask(struct entry *e, struct activity_stats *st)
{
    char path[128];
    struct inspect *s = NULL;

    for (size_t i = 0; i < ARRAY_LEN(act.slots) && !s; i++)
        if (!act.slots[i].busy)
            s = &act.slots[i];
    if (!s || !act.w)
        return; /* the next pass */
    if (container_ref_ok(e->container))
        snprintf(path, sizeof(path), "/containers/%s/json", e->container);
    else
        snprintf(path, sizeof(path), "/containers/berth-%s/json", e->id);
    util_strlcpy(s->id, e->id, sizeof(s->id));
    util_strlcpy(s->started, e->started, sizeof(s->started));
    if (docker_request(act.w->docker, "GET", path, NULL, 10000, on_inspected, s) < 0)
        return;
    s->busy = true;
    e->state = PID_ASKING;
    st->inspects++;
}

/* One visible entry's sample. */
static enum activity_kind sample(struct entry *e, const struct activity_row *r,
                                 struct activity_stats *st)
{
    struct activity_tcp_mib mib;
    uint64_t now, segs;
    dev_t dev;
    ino_t ino;

    if (!netns_of(e->pid, &dev, &ino) || dev != e->ns_dev || ino != e->ns_ino) {
        e->state = PID_UNKNOWN; /* gone or another process: inspect again */
        e->have_segs = false;
        return ACTIVITY_NONE;
    }
    if (!read_mib(e->pid, &mib))
        return ACTIVITY_NONE;
    st->sampled++;
    now = mib.in_segs + mib.out_segs;
    segs = e->have_segs && now >= e->segs ? now - e->segs : 0;
    e->segs = now;
    e->have_segs = true;
    if (e->conns_age >= 0)
        e->conns_age++;
    if (segs < ACTIVITY_MIN_SEGS)
        return ACTIVITY_NONE;
    st->traffic++;
    if (mib.curr_estab == 0) {
        e->conns = 0; /* nobody connected: no table to read */
        e->estab = 0;
        e->conns_age = 0;
    } else if (e->conns_age < 0 || e->conns_age >= ACTIVITY_CONNS_PASSES ||
               mib.curr_estab != e->estab) {
        if (st->tables >= ACTIVITY_MAX_TABLES) {
            /* over this pass's budget: the next pass begins here */
            if (!act.deferred)
                act.rotor = (size_t)(e - act.e);
            act.deferred = true;
            if (e->conns_age < 0)
                return ACTIVITY_NONE; /* whose traffic is not known yet */
            return activity_classify(segs, e->conns, r->http_recent); /* as last read */
        }
        e->conns = read_conns(e->pid, r->ssh_port, r->http_port);
        e->estab = mib.curr_estab;
        e->conns_age = 0;
        st->tables++;
    }
    return activity_classify(segs, e->conns, r->http_recent);
}

int activity_pass(const struct activity_row *rows, size_t n, enum activity_kind *out,
                  struct activity_stats *stats)
{
    struct activity_stats st = {.rows = n};
    struct timespec t0, t1;
    struct entry *ne;
    size_t j = 0, start;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; i++)
        out[i] = ACTIVITY_NONE;
    if (!(ne = n ? calloc(n, sizeof(*ne)) : NULL) && n)
        return -1;
    /* the new cache: rows in order, each keeping what the old one knew */
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &ne[i];
        while (j < act.n && strcmp(act.e[j].id, rows[i].id) < 0)
            j++;
        if (j < act.n && strcmp(act.e[j].id, rows[i].id) == 0)
            *e = act.e[j];
        util_strlcpy(e->id, rows[i].id, sizeof(e->id));
        if (strcmp(e->started, rows[i].started) != 0) {
            e->state = PID_UNKNOWN; /* (re)started: another process, another namespace */
            e->have_segs = false;
            util_strlcpy(e->started, rows[i].started, sizeof(e->started));
        }
        util_strlcpy(e->container, rows[i].container, sizeof(e->container));
    }
    free(act.e);
    act.e = ne;
    act.n = n;
    /* from where the last pass ran out of table reads, so none waits twice */
    start = act.rotor < n ? act.rotor : 0;
    act.rotor = 0;
    act.deferred = false;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        struct entry *e = &act.e[i];
        if (e->state == PID_UNKNOWN)
            ask(e, &st);
        else if (e->state == PID_VISIBLE)
            out[i] = sample(e, &rows[i], &st);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st.ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (stats)
        *stats = st;
    return 0;
}

void activity_start(struct worker *w)
{
    act.w = w;
    act.stopped = false;
}

void activity_stop(void)
{
    act.stopped = true;
    free(act.e);
    act.e = NULL;
    act.n = 0;
}
