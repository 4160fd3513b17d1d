/*
 * config — the single table of berth's settings and its loader.
 *
 * Each row says who reads the key; a binary validates exactly its own keys and
 * ignores the others', so one berth.conf serves the whole node. An unknown key
 * in the file is an error: a typo must not silently fall back to a default.
 */
#include "berth/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "berth/validate.h"

enum config_type { T_STR, T_INT, T_ENUM, T_LEVEL, T_RANGE, T_NAME, T_ADDRS, T_SIZE };

struct config_key {
    const char *name;
    enum config_type type;
    unsigned who;
    const char *def;
    size_t off;  /* field offset in struct berth_config */
    size_t size; /* string buffer size */
    long min, max;
    const char *const *choices; /* T_ENUM, NULL-terminated; value = index */
    bool reloadable;
    const char *help;
};

static const char *const cookie_secure_choices[] = {"auto", "always", "never", NULL};

#define OFF(f) offsetof(struct berth_config, f)
#define SZ(f)  sizeof(((struct berth_config *)0)->f)
#define A      CONF_API
#define W      CONF_WORKER
#define C      CONF_CLI

static const struct config_key keys[] = {
    {"log_level", T_LEVEL, A | W | C, "info", OFF(log_level), 0, 0, 0, NULL, true,
     "debug, info, warn or error"},
    {"node", T_NAME, A | W, "local", OFF(node), SZ(node), 0, 0, NULL, false,
     "name of the Docker host this worker serves (name rule)"},
    {"cluster", T_NAME, A | W, "berth", OFF(cluster), SZ(cluster), 0, 0, NULL, false,
     "label value marking this installation's Docker objects"},
    {"pg_dsn", T_STR, A | W, "dbname=berth", OFF(pg_dsn), SZ(pg_dsn), 0, 0, NULL, false,
     "libpq connection string"},
    {"redis_url", T_STR, A | W, "redis://127.0.0.1:6379", OFF(redis_url), SZ(redis_url), 0, 0,
     NULL, false, "redis://host:port or unix:/path/to/socket"},
    {"api_socket", T_STR, A, "/run/berth/api.sock", OFF(api_socket), SZ(api_socket), 0, 0, NULL,
     false, "FastCGI unix socket berth-api listens on"},
    {"api_threads", T_INT, A, "8", OFF(api_threads), 0, 1, 256, NULL, false,
     "request threads, each with its own PostgreSQL and Redis connection"},
    {"auth_socket", T_STR, A, "", OFF(auth_socket), SZ(auth_socket), 0, 0, NULL, false,
     "FastCGI unix socket of the proxy checks only (nginx keeps its connections open);"
     " empty: api_socket with .auth appended"},
    {"auth_threads", T_INT, A, "48", OFF(auth_threads), 0, 2, 1024, NULL, false,
     "threads answering the proxy checks, apart from api_threads: more than nginx's"
     " worker_processes x the keepalive of its berth_auth upstream"},
    {"exec_threads", T_INT, A, "4", OFF(exec_threads), 0, 1, 64, NULL, false,
     "threads answering exec calls off the request threads, each with its own Redis connection"},
    {"exec_per_user", T_INT, A, "4", OFF(exec_per_user), 0, 1, 256, NULL, true,
     "exec calls one user may have in flight (429 beyond)"},
    {"body_limit", T_INT, A, "1048576", OFF(body_limit), 0, 1024, 67108864, NULL, true,
     "largest request body in bytes (413 above)"},
    {"session_idle_s", T_INT, A, "28800", OFF(session_idle_s), 0, 60, 31536000, NULL, true,
     "seconds of inactivity after which a session ends"},
    {"session_max_s", T_INT, A, "604800", OFF(session_max_s), 0, 60, 31536000, NULL, true,
     "absolute session lifetime in seconds"},
    {"cookie_secure", T_ENUM, A, "auto", OFF(cookie_secure), 0, 0, 0, cookie_secure_choices, true,
     "auto (per X-Forwarded-Proto), always or never"},
    {"heartbeat_ttl_s", T_INT, A | W, "15", OFF(heartbeat_ttl_s), 0, 3, 3600, NULL, false,
     "seconds a worker heartbeat stays valid"},
    {"port_range", T_RANGE, A | W, "49152-65535", OFF(port_min), 0, 1024, 65535, NULL, false,
     "host ports for instances, MIN-MAX"},
    {"public_host", T_STR, A, "127.0.0.1", OFF(public_host), SZ(public_host), 0, 0, NULL, true,
     "host name shown in SSH commands"},
    {"public_url", T_STR, A, "http://127.0.0.1:8080", OFF(public_url), SZ(public_url), 0, 0, NULL,
     false, "the UI's and API's origin as browsers reach it: http(s)://HOST[:PORT]"},
    {"workspace_host", T_STR, A, "{user}.localhost", OFF(workspace_host), SZ(workspace_host), 0, 0,
     NULL, false,
     "host pattern of the workspace origin ({user}, {instance} labels; :PORT optional), or 'same'"},
    {"login_max_failures", T_INT, A, "5", OFF(login_max_failures), 0, 1, 1000, NULL, true,
     "failed logins per user name or address before 429"},
    {"login_lockout_s", T_INT, A, "300", OFF(login_lockout_s), 0, 1, 86400, NULL, true,
     "longest delay, in seconds, a throttled login waits (delays double from 1 s up to this)"},
    {"trusted_proxies", T_ADDRS, A, "", OFF(trusted_proxies), SZ(trusted_proxies), 0, 0, NULL, true,
     "comma-separated IPv4/IPv6 addresses or CIDRs whose X-Forwarded-For/-Proto are believed"},
    {"docker_socket", T_STR, W, "/var/run/docker.sock", OFF(docker_socket), SZ(docker_socket), 0,
     0, NULL, false, "Docker Engine API unix socket"},
    {"box_dir", T_STR, W, "/var/lib/berth/nginx", OFF(box_dir), SZ(box_dir), 0, 0, NULL, false,
     "directory holding box-available/ and box-enabled/"},
    {"nginx_reload", T_STR, W, "nginx -s reload", OFF(nginx_reload), SZ(nginx_reload), 0, 0, NULL,
     true, "command (no shell) that reloads nginx, or signal:PIDFILE to SIGHUP its master"},
    {"nginx_test", T_STR, W, "nginx -t -q", OFF(nginx_test), SZ(nginx_test), 0, 0, NULL, true,
     "command (no shell) that tests the nginx config"},
    {"route_keepalive", T_INT, W, "8", OFF(route_keepalive), 0, 0, 1024, NULL, true,
     "idle connections each nginx worker keeps to an instance (0: none, no upstream files)"},
    {"host_address", T_STR, W, "127.0.0.1", OFF(host_address), SZ(host_address), 0, 0, NULL, false,
     "host address container ports are published on"},
    {"network_pool", T_STR, W, "10.213.0.0/16", OFF(network_pool), SZ(network_pool), 0, 0, NULL,
     false, "IPv4 CIDR (prefix 8-24) split into /24 subnets for the per-user networks"},
    {"job_max_attempts", T_INT, W, "5", OFF(job_max_attempts), 0, 1, 100, NULL, true,
     "attempts before a job is failed"},
    {"job_timeout_s", T_INT, W, "300", OFF(job_timeout_s), 0, 5, 86400, NULL, true,
     "seconds after which an active job is considered lost"},
    {"reconcile_s", T_INT, W, "60", OFF(reconcile_s), 0, 5, 86400, NULL, true,
     "seconds between reconcile passes"},
    {"orphan_grace_s", T_INT, W, "60", OFF(orphan_grace_s), 0, 0, 86400, NULL, true,
     "seconds a labelled container with no instance row is left alone before reconcile removes it"},
    {"idle_check_s", T_INT, W, "30", OFF(idle_check_s), 0, 1, 3600, NULL, true,
     "seconds between activity samples and idle-stop passes"},
    {"idle_warning_s", T_INT, W, "300", OFF(idle_warning_s), 0, 0, 86400, NULL, true,
     "lead of the idle_warning event before an idle stop, at most a quarter of the timeout "
     "(0: no warning)"},
    {"container_log_max_size", T_SIZE, W, "10m", OFF(container_log_max_size),
     SZ(container_log_max_size), 0, 0, NULL, true,
     "size at which a container's log file is rotated: a number and k, m or g (100k-10g)"},
    {"container_log_max_files", T_INT, W, "3", OFF(container_log_max_files), 0, 1, 100, NULL, true,
     "log files kept per container, the current one included"},
    {"url", T_STR, C, "http://127.0.0.1:8080", OFF(url), SZ(url), 0, 0, NULL, false,
     "base URL of berth for berthctl"},
};

#undef A
#undef W
#undef C

static const struct config_key *find_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Parse one value into cfg; on failure write a sentence naming the key. */
static int set_value(struct berth_config *cfg, const struct config_key *k, const char *v,
                     const char *origin, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    long n;

    switch (k->type) {
    case T_STR:
        if (strlen(v) >= k->size) {
            snprintf(err, errlen, "%s: %s is too long (at most %zu characters)", origin, k->name,
                     k->size - 1);
            return -1;
        }
        util_strlcpy(base + k->off, v, k->size);
        return 0;
    case T_ADDRS: {
        char why[160];
        if (strlen(v) >= k->size) {
            snprintf(err, errlen, "%s: %s is too long (at most %zu characters)", origin, k->name,
                     k->size - 1);
            return -1;
        }
        if (config_addr_list_check(v, why, sizeof(why)) < 0) {
            snprintf(err, errlen,
                     "%s: %s = '%s' is not valid: %s (expected comma-separated IPv4/IPv6 "
                     "addresses or CIDRs)",
                     origin, k->name, v, why);
            return -1;
        }
        util_strlcpy(base + k->off, v, k->size);
        return 0;
    }
    case T_SIZE: {
        /* Docker's json-file max-size, in the one spelling berth writes:
         * digits and a lower-case unit; bounded so that a typo can neither
         * rotate every line nor fill the disk */
        long num;
        char digits[16], unit;
        size_t len = strlen(v);
        double bytes;
        if (len < 2 || len > 8 || !strchr("kmg", v[len - 1]))
            goto bad_size;
        unit = v[len - 1];
        memcpy(digits, v, len - 1);
        digits[len - 1] = '\0';
        if (digits[0] == '0' || !util_parse_long(digits, 1, 9999999, &num))
            goto bad_size;
        bytes = (double)num * (unit == 'k' ? 1e3 : unit == 'm' ? 1e6 : 1e9);
        if (bytes < 100e3 || bytes > 10e9)
            goto bad_size;
        util_strlcpy(base + k->off, v, k->size);
        return 0;
    bad_size:
        snprintf(err, errlen,
                 "%s: %s = '%s' is not valid: expected a size such as 10m: digits and k, m or g, "
                 "from 100k to 10g",
                 origin, k->name, v);
        return -1;
    }
    case T_NAME:
        if (!valid_name(v)) {
            snprintf(err, errlen,
                     "%s: %s = '%s' is not valid: expected 2-32 of a-z, 0-9 and '-', starting "
                     "with a letter",
                     origin, k->name, v);
            return -1;
        }
        util_strlcpy(base + k->off, v, k->size);
        return 0;
    case T_INT:
        if (!util_parse_long(v, k->min, k->max, &n)) {
            snprintf(err, errlen, "%s: %s = '%s' is not valid: expected an integer from %ld to %ld",
                     origin, k->name, v, k->min, k->max);
            return -1;
        }
        *(long *)(base + k->off) = n;
        return 0;
    case T_LEVEL: {
        enum log_level lvl;
        if (!log_level_parse(v, &lvl)) {
            snprintf(err, errlen,
                     "%s: %s = '%s' is not valid: expected one of debug, info, warn, error", origin,
                     k->name, v);
            return -1;
        }
        *(enum log_level *)(base + k->off) = lvl;
        return 0;
    }
    case T_ENUM:
        for (int i = 0; k->choices[i]; i++) {
            if (strcmp(v, k->choices[i]) == 0) {
                *(int *)(base + k->off) = i;
                return 0;
            }
        }
        {
            char list[256] = "";
            for (int i = 0; k->choices[i]; i++) {
                if (i)
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, k->choices[i], sizeof(list) - strlen(list) - 1);
            }
            snprintf(err, errlen, "%s: %s = '%s' is not valid: expected one of %s", origin, k->name,
                     v, list);
        }
        return -1;
    case T_RANGE: {
        char lo[32], *dash;
        long a, b;
        if (strlen(v) >= sizeof(lo))
            goto bad_range;
        util_strlcpy(lo, v, sizeof(lo));
        dash = strchr(lo, '-');
        if (!dash)
            goto bad_range;
        *dash = '\0';
        if (!util_parse_long(lo, k->min, k->max, &a) ||
            !util_parse_long(dash + 1, k->min, k->max, &b) || a > b)
            goto bad_range;
        /* T_RANGE fields are two consecutive longs: min then max. */
        ((long *)(base + k->off))[0] = a;
        ((long *)(base + k->off))[1] = b;
        return 0;
    bad_range:
        snprintf(err, errlen,
                 "%s: %s = '%s' is not valid: expected MIN-MAX with %ld <= MIN <= MAX <= %ld",
                 origin, k->name, v, k->min, k->max);
        return -1;
    }
    }
    return -1;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(struct berth_config *cfg, unsigned who, const char *path, bool required,
                     char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[CONF_STR_MAX + 128];
    int lineno = 0, rc = 0;

    if (!f) {
        if (!required && errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char origin[CONF_STR_MAX + 32], *eq, *key, *val;
        const struct config_key *k;

        lineno++;
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s: line too long", origin);
            rc = -1;
            break;
        }
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (!eq) {
            snprintf(err, errlen, "%s: expected 'key = value'", origin);
            rc = -1;
            break;
        }
        *eq = '\0';
        key = trim(key);
        val = trim(eq + 1);
        k = find_key(key);
        if (!k) {
            snprintf(err, errlen, "%s: unknown key '%s'", origin, key);
            rc = -1;
            break;
        }
        if (!(k->who & who))
            continue;
        if (set_value(cfg, k, val, origin, err, errlen) < 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int load_all(struct berth_config *cfg, unsigned who, char *err, size_t errlen)
{
    const char *path = getenv("BERTH_CONFIG");

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (set_value(cfg, &keys[i], keys[i].def, "default", err, errlen) < 0)
            return -1;
    if (load_file(cfg, who, path ? path : "/etc/berth/berth.conf", path != NULL, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char env[96], *p;
        const char *v;
        if (!(keys[i].who & who))
            continue;
        snprintf(env, sizeof(env), "BERTH_%s", keys[i].name);
        for (p = env; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        v = getenv(env);
        if (v && set_value(cfg, &keys[i], v, env, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int config_load(struct berth_config *cfg, enum config_user who, bool reload, char *err,
                size_t errlen)
{
    struct berth_config *fresh;
    int rc = -1;

    if (!reload)
        return load_all(cfg, who, err, errlen);
    fresh = malloc(sizeof(*fresh));
    if (!fresh) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_all(fresh, who, err, errlen) == 0) {
        for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
            const struct config_key *k = &keys[i];
            size_t sz = k->type == T_STR || k->type == T_NAME || k->type == T_ADDRS ||
                                k->type == T_SIZE
                            ? k->size
                        : k->type == T_RANGE                  ? 2 * sizeof(long)
                        : k->type == T_INT                    ? sizeof(long)
                        : k->type == T_LEVEL                  ? sizeof(enum log_level)
                                                              : sizeof(int);
            if (k->reloadable && (k->who & who))
                memcpy((char *)cfg + k->off, (char *)fresh + k->off, sz);
        }
        rc = 0;
    }
    free(fresh);
    return rc;
}

void config_dump(const struct berth_config *cfg, enum config_user who)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const struct config_key *k = &keys[i];
        const char *base = (const char *)cfg;
        if (!(k->who & who))
            continue;
        switch (k->type) {
        case T_STR:
        case T_NAME:
        case T_ADDRS:
        case T_SIZE:
            printf("%-20s = %s", k->name, base + k->off);
            break;
        case T_INT:
            printf("%-20s = %ld", k->name, *(const long *)(base + k->off));
            break;
        case T_RANGE:
            printf("%-20s = %ld-%ld", k->name, ((const long *)(base + k->off))[0],
                   ((const long *)(base + k->off))[1]);
            break;
        case T_LEVEL: {
            static const char *const lv[] = {"debug", "info", "warn", "error"};
            printf("%-20s = %s", k->name, lv[*(const enum log_level *)(base + k->off)]);
            break;
        }
        case T_ENUM:
            printf("%-20s = %s", k->name, k->choices[*(const int *)(base + k->off)]);
            break;
        }
        printf("   # %s%s\n", k->help, k->reloadable ? " (reloadable)" : "");
    }
}

void config_reload(struct berth_config *cfg, enum config_user who)
{
    char err[1024];
    if (config_load(cfg, who, true, err, sizeof(err)) < 0) {
        log_error("reload refused, keeping the running settings: %s", err);
        return;
    }
    log_set_level(cfg->log_level);
    log_info("settings reloaded");
}

/* ---- address lists (trusted_proxies) ---- */

/* Parse an IPv4 or IPv6 address of n bytes into 16 bytes (IPv4 as ::ffff:a.b.c.d,
 * so an IPv4-mapped REMOTE_ADDR matches an IPv4 entry). *bits: 32 or 128. */
static bool parse_ip(const char *s, size_t n, unsigned char out[16], int *bits)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char v4[4];

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        *bits = 32;
        return true;
    }
    if (strchr(buf, '%')) /* zone ids are not addresses of a peer we name */
        return false;
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *bits = 128;
        return true;
    }
    return false;
}

/* One entry "ADDR" or "ADDR/PREFIX" of n bytes: the network (16 bytes) and the
 * prefix length in the 128-bit space. */
static bool parse_entry(const char *s, size_t n, unsigned char net[16], int *prefix)
{
    const char *slash = memchr(s, '/', n);
    int bits, p;

    if (!parse_ip(s, slash ? (size_t)(slash - s) : n, net, &bits))
        return false;
    if (!slash) {
        *prefix = 128;
        return true;
    }
    {
        const char *d = slash + 1, *end = s + n;
        if (d == end || end - d > 3)
            return false;
        p = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return false;
            p = p * 10 + (*d - '0');
        }
        if (p > bits || (end - slash - 1 > 1 && slash[1] == '0'))
            return false;
    }
    *prefix = bits == 32 ? p + 96 : p;
    return true;
}

static bool prefix_match(const unsigned char a[16], const unsigned char net[16], int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != (net[full] & mask))
            return false;
    }
    return true;
}

/* Calls fn for each entry of list (trimmed, between commas); stops at the first
 * that fn answers non-zero for. -1: an empty entry. */
static int each_entry(const char *list, int (*fn)(const char *s, size_t n, void *ctx), void *ctx)
{
    const char *p = list;
    bool any = false;

    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return 0; /* the empty list */
    for (;;) {
        const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);
        const char *a = p, *b = end;
        int rc;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b)
            return -1;
        any = true;
        if ((rc = fn(a, (size_t)(b - a), ctx)) != 0)
            return rc;
        if (!e)
            break;
        p = e + 1;
    }
    return any ? 0 : -1;
}

struct check_ctx {
    char *why;
    size_t len;
};

static int check_one(const char *s, size_t n, void *ctx)
{
    struct check_ctx *c = ctx;
    unsigned char net[16];
    int prefix;
    if (parse_entry(s, n, net, &prefix))
        return 0;
    snprintf(c->why, c->len, "'%.*s' is not an address or CIDR", (int)(n > 64 ? 64 : n), s);
    return -2;
}

int config_addr_list_check(const char *list, char *why, size_t whylen)
{
    struct check_ctx c = {why, whylen};
    int rc = each_entry(list, check_one, &c);
    if (rc == -1)
        snprintf(why, whylen, "an empty entry");
    return rc == 0 ? 0 : -1;
}

struct match_ctx {
    unsigned char addr[16];
};

static int match_one(const char *s, size_t n, void *ctx)
{
    struct match_ctx *m = ctx;
    unsigned char net[16];
    int prefix;
    return parse_entry(s, n, net, &prefix) && prefix_match(m->addr, net, prefix) ? 1 : 0;
}

bool config_addr_list_match(const char *list, const char *addr, size_t n)
{
    struct match_ctx m;
    int bits;
    if (!list || !addr || !parse_ip(addr, n, m.addr, &bits))
        return false;
    return each_entry(list, match_one, &m) == 1;
}
