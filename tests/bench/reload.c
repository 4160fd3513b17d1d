/*
 * bench/reload — how long until a new instance's route is live, with 100,
 * 1,000 and 5,000 routes already in place, and what nginx costs in memory.
 *
 *   berth     routes_put() -> debounce -> nginx -t -> nginx -s reload -> live
 *   baseline  the same snippet written by hand + plain `nginx -s reload` -> live
 *             (no test step: what an operator does by hand)
 *
 * "Live" = GET /container/<user>/<instance>/ through nginx answers 200 from
 * the upstream. Prints one line per size; goal (issue 5): berth <= 300 ms at
 * 1,000 routes. Routes have upstream groups with keepalive 8 (berth's
 * default); ROUTE_KEEPALIVE=0 measures them without (route_keepalive = 0).
 * Run: make bench (or build/bench/reload [sizes...]).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/worker/routes.h"
#include "berth/fileio.h"
#include "berth/log.h"
#include "berth/util.h"
#include "../unit/nginx_fixture.h"

static char dir[] = "/tmp/berth-bench-reload.XXXXXX";
static int port, upstream_port;

static long get(const char *path)
{
    return fixture_get(port, path);
}

static int sh(const char *cmd)
{
    return fixture_sh(cmd);
}

/* RSS in KiB of every nginx process whose command line names our dir. */
static long nginx_rss_kib(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long total = 0;
    while (d && (e = readdir(d))) {
        char path[300], buf[4096];
        FILE *f;
        size_t n;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        if (!strstr(buf, "nginx") || !strstr(buf, dir))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        f = fopen(path, "r");
        while (f && fgets(buf, sizeof(buf), f)) {
            long kb;
            if (sscanf(buf, "VmRSS: %ld kB", &kb) == 1)
                total += kb;
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return total;
}

/* A version-4-shaped id that is random-looking but the same for every run:
 * real instance ids are random, and nginx compares upstream names one by one
 * when it reads proxy_pass, so ids sharing a long prefix would measure a
 * slower nginx than any deployment has. */
static void make_id(long i, char out[37])
{
    uint64_t a = (uint64_t)i * 0x9E3779B97F4A7C15ULL, b;
    a ^= a >> 31;
    a *= 0xBF58476D1CE4E5B9ULL;
    b = a ^ (a >> 27);
    b *= 0x94D049BB133111EBULL;
    snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(a >> 32), (unsigned)(a & 0xffff),
             (unsigned)((b >> 52) & 0xfff), (unsigned)((b >> 40) & 0xfff),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static double wait_live(const char *path, int64_t t0)
{
    while (get(path) != 200) {
        if (util_now_ms() - t0 > 30000)
            return -1;
        usleep(2000);
    }
    return (double)(util_now_ms() - t0);
}

int main(int argc, char **argv)
{
    long sizes_default[] = {100, 1000, 5000}, *sizes = sizes_default;
    int nsizes = 3;
    struct berth_config cfg;
    struct ev_loop *loop = EV_DEFAULT;
    struct routes *r;
    char err[512], cmd[8192], id[37], user[32], path[128], plain_reload[1024];
    long have = 0;

    log_init("bench", LOG_WARN);
    if (argc > 1) {
        nsizes = argc - 1;
        sizes = calloc((size_t)nsizes, sizeof(long));
        for (int i = 0; i < nsizes; i++)
            if (!util_parse_long(argv[i + 1], 1, 100000, &sizes[i]))
                return 2;
    }
    if (!mkdtemp(dir))
        return 1;
    port = 30000 + getpid() % 20000;
    upstream_port = port + 1;
    if (fixture_write_conf(dir, 2, port, upstream_port) < 0)
        return 1;
    fixture_config(&cfg, dir, getenv("ROUTE_KEEPALIVE") ? atol(getenv("ROUTE_KEEPALIVE")) : 8);
    /* berth signals the master; the baseline runs the plain command */
    util_strlcpy(plain_reload, cfg.nginx_reload, sizeof(plain_reload));
    snprintf(cfg.nginx_reload, sizeof(cfg.nginx_reload), "signal:%s/nginx.pid", dir);
    r = routes_new(loop, &cfg, NULL, NULL);
    if (routes_prepare(r, err, sizeof(err)) < 0)
        return 1;
    fixture_nginx(cmd, sizeof(cmd), dir, "");
    if (sh(cmd) != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    printf("reload: new route live after a reload (ms), nginx RSS (MiB); 2 nginx workers, "
           "route_keepalive %ld\n", cfg.route_keepalive);
    printf("berth_ms includes the %.0f ms every change waits to gather a burst into one reload;\n"
           "reload_ms is the rest: nginx -t, the master's reload, the new workers serving\n",
           ROUTES_DEBOUNCE_S * 1000);
    printf("%8s %12s %12s %12s %8s %12s\n", "routes", "berth_ms", "reload_ms", "baseline_ms",
           "ratio", "nginx_rss_mib");
    for (int s = 0; s < nsizes; s++) {
        /* Fill up to the size, in one burst (one reload). */
        for (; have < sizes[s]; have++) {
            make_id(have, id);
            snprintf(user, sizeof(user), "u%ld", have);
            struct snippet_in in = {id, user, "box", "web", "127.0.0.1", upstream_port, false, "local", 0};
            if (routes_put(r, &in, err, sizeof(err)) < 0)
                return 1;
        }
        while (routes_busy(r))
            ev_run(loop, EVRUN_ONCE);
        usleep(500 * 1000);

        /* berth: one more route through routes_put. */
        make_id(900000 + s, id);
        snprintf(user, sizeof(user), "berth%d", s);
        struct snippet_in in = {id, user, "box", "web", "127.0.0.1", upstream_port, false, "local", 0};
        snprintf(path, sizeof(path), "/container/%s/box/", user);
        /* the loop slept with the bench: its clock must be now's, or the
         * debounce timer counts from a moment long past and fires at once */
        ev_now_update(loop);
        int64_t t0 = util_now_ms();
        if (routes_put(r, &in, err, sizeof(err)) < 0)
            return 1;
        double berth_ms = -1;
        while (util_now_ms() - t0 < 30000) {
            ev_run(loop, EVRUN_NOWAIT);
            if (get(path) == 200) {
                berth_ms = (double)(util_now_ms() - t0);
                break;
            }
            usleep(2000);
        }
        while (routes_busy(r))
            ev_run(loop, EVRUN_ONCE);
        usleep(500 * 1000);

        /* baseline: the same kind of snippet by hand, plain reload, no test. */
        char text[SNIPPET_MAX], up[SNIPPET_MAX], fname[64], uname[64], box[4200];
        make_id(910000 + s, id);
        snprintf(user, sizeof(user), "plain%d", s);
        struct snippet_in pin = {id, user, "box", "web", "127.0.0.1", upstream_port, false, "local", 0};
        int n = snippet_render(&pin, text, sizeof(text), err, sizeof(err));
        pin.keepalive = (int)cfg.route_keepalive;
        int nu = pin.keepalive ? snippet_render_upstream(&pin, up, sizeof(up), err, sizeof(err)) : 0;
        snprintf(box, sizeof(box), "%s/box-enabled", dir);
        snprintf(fname, sizeof(fname), "%s.conf", id);
        snprintf(uname, sizeof(uname), "%s.upstream", id);
        snprintf(path, sizeof(path), "/container/%s/box/", user);
        t0 = util_now_ms();
        if (n < 0 || nu < 0 ||
            (nu > 0 && fileio_write_atomic(box, uname, up, (size_t)nu, 0644, err, sizeof(err)) < 0) ||
            fileio_write_atomic(box, fname, text, (size_t)n, 0644, err, sizeof(err)) < 0 ||
            sh(plain_reload) != 0)
            return 1;
        double base_ms = wait_live(path, t0);
        usleep(500 * 1000);

        printf("%8ld %12.0f %12.0f %12.0f %8.2f %12.1f\n", sizes[s], berth_ms,
               berth_ms - ROUTES_DEBOUNCE_S * 1000, base_ms,
               base_ms > 0 ? berth_ms / base_ms : 0, (double)nginx_rss_kib() / 1024.0);
        fflush(stdout);
    }
    fixture_teardown(dir);
    routes_free(r);
    return 0;
}
