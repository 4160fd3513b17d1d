/* Tests of the worker's routes module against a real nginx it starts in a
 * temp dir: a burst of 100 new routes costs at most 3 reloads, routes go live,
 * a broken snippet injected behind berth's back is refused by `nginx -t` and
 * unlinked while every other route keeps serving, removal and pruning. */
#include <curl/curl.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/worker/routes.h"
#include "berth/fileio.h"
#include "berth/log.h"
#include "berth/util.h"
#include "check.h"
#include "nginx_fixture.h"

static char dir[] = "/tmp/berth-routes.XXXXXX";
static int port, upstream_port;
static char last_error_id[37];
static int errors;

static void on_error(const char *id, const char *msg, void *arg)
{
    util_strlcpy(last_error_id, id, sizeof(last_error_id));
    errors++;
}

static void run_until_idle(struct ev_loop *loop, struct routes *r)
{
    int64_t end = util_now_ms() + 15000;
    while (routes_busy(r) && util_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
}

static long get(const char *path)
{
    return fixture_get(port, path);
}

/* nginx -s reload / SIGHUP only ask the master: new workers take over a
 * moment later, longer on a loaded machine. Poll for the expected answer. */
static bool becomes(const char *path, long want)
{
    int64_t end = util_now_ms() + 10000;
    while (util_now_ms() < end) {
        if (get(path) == want)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

static int sh(const char *cmd)
{
    return fixture_sh(cmd);
}

static void make_id(int i, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

int main(void)
{
    struct berth_config cfg;
    struct ev_loop *loop = EV_DEFAULT;
    struct routes *r;
    char err[512], cmd[8192], box[4200];

    log_init("test", LOG_WARN);
    if (access("/usr/sbin/nginx", X_OK) != 0 || !mkdtemp(dir)) {
        CHECK(1, "routes against nginx # SKIP nginx not installed");
        return 0;
    }
    port = 20000 + getpid() % 20000;
    upstream_port = port + 1;
    if (fixture_write_conf(dir, 1, port, upstream_port) < 0)
        return 1;
    /* The first half reloads with a command, the second by signalling the master. */
    fixture_config(&cfg, dir, 8);
    r = routes_new(loop, &cfg, on_error, NULL);
    CHECK(routes_prepare(r, err, sizeof(err)) == 0, "box-available/ and box-enabled/ are created");
    fixture_nginx(cmd, sizeof(cmd), dir, "");
    if (sh(cmd) != 0) {
        CHECK(0, "test nginx starts");
        return 1;
    }

    /* A burst of 100 new routes. */
    char id[37], user[16], name[16];
    bool all_ok = true;
    for (int i = 0; i < 100; i++) {
        make_id(i, id);
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(name, sizeof(name), "box%d", i);
        struct snippet_in in = {id, user, name, "web", "127.0.0.1", upstream_port, false, "local", 0};
        all_ok = all_ok && routes_put(r, &in, err, sizeof(err)) == 1;
    }
    CHECK(all_ok, "100 routes written");
    make_id(7, id);
    snprintf(cmd, sizeof(cmd), "test -f %s/box-available/%s.conf -a -f %s/box-available/%s.upstream"
             " -a -L %s/box-enabled/%s.conf -a -L %s/box-enabled/%s.upstream",
             dir, id, dir, id, dir, id, dir, id);
    CHECK(sh(cmd) == 0, "each route is a location and an upstream file, both linked");
    snprintf(cmd, sizeof(cmd), "grep -q 'upstream berth-%s {' %s/box-available/%s.upstream && "
             "grep -q 'keepalive %d;' %s/box-available/%s.upstream && "
             "grep -q 'proxy_pass http://berth-%s/;' %s/box-available/%s.conf",
             id, dir, id, 8, dir, id, id, dir, id);
    CHECK(sh(cmd) == 0, "the location proxies to its own upstream group, which keeps connections");
    run_until_idle(loop, r);
    CHECK(routes_reloads(r) >= 1 && routes_reloads(r) <= 3,
          "a burst of 100 route changes costs at most 3 reloads (took %lu)", routes_reloads(r));
    CHECK(becomes("/container/u0/box0/", 200) && becomes("/container/u99/box99/x", 200),
          "new routes are live after the reload");
    CHECK(becomes("/container/u100/box100/", 404), "an unknown route is not served");

    /* A stream: 100 more routes spread over one second. */
    unsigned long before = routes_reloads(r);
    int64_t t_end = util_now_ms() + 1000;
    for (int i = 200; i < 300; i++) {
        make_id(i, id);
        snprintf(user, sizeof(user), "s%d", i);
        struct snippet_in in = {id, user, "box", "web", "127.0.0.1", upstream_port, false, "local", 0};
        all_ok = all_ok && routes_put(r, &in, err, sizeof(err)) == 1;
        while (util_now_ms() < t_end - (299 - i) * 10)
            ev_run(loop, EVRUN_NOWAIT);
    }
    run_until_idle(loop, r);
    CHECK(all_ok && routes_reloads(r) - before <= 3,
          "100 route changes spread over a second cost at most 3 reloads (took %lu)",
          routes_reloads(r) - before);
    CHECK(becomes("/container/s299/box/", 200), "... and the last of them is live");

    /* Rewriting an unchanged route is free. */
    make_id(5, id);
    struct snippet_in same = {id, "u5", "box5", "web", "127.0.0.1", upstream_port, false, "local", 0};
    CHECK(routes_put(r, &same, err, sizeof(err)) == 0 && !routes_busy(r),
          "rewriting an unchanged route schedules no reload");

    /* A snippet that breaks nginx, injected behind berth's back. */
    make_id(500, id);
    snprintf(box, sizeof(box), "%s/box-available", dir);
    const char *junk = "location /container/evil/x/ { proxy_pass http://127.0.0.1:1; }} oops;\n";
    char jname[64];
    snprintf(jname, sizeof(jname), "%s.conf", id);
    CHECK(fileio_write_atomic(box, jname, junk, strlen(junk), 0644, err, sizeof(err)) == 0,
          "a broken snippet is injected");
    snprintf(cmd, sizeof(cmd), "ln -s ../box-available/%s.conf %s/box-enabled/%s.conf", id, dir, id);
    sh(cmd);
    make_id(101, id);
    struct snippet_in next = {id, "u101", "box101", "web", "127.0.0.1", upstream_port, false, "local", 0};
    CHECK(routes_put(r, &next, err, sizeof(err)) == 1, "a good route is added after it");
    run_until_idle(loop, r);
    make_id(500, id);
    CHECK(routes_refusals(r) >= 1 && errors == 1 && strcmp(last_error_id, id) == 0,
          "nginx -t refuses the broken snippet and its owner is told");
    snprintf(cmd, sizeof(cmd), "%s/box-enabled/%s.conf", dir, id);
    CHECK(access(cmd, F_OK) != 0, "the broken snippet is unlinked from box-enabled/");
    CHECK(becomes("/container/u101/box101/", 200), "the good route went live anyway");
    CHECK(get("/container/u0/box0/") == 200, "every other route kept serving");

    /* Removal and pruning, reloading by signal. */
    snprintf(cfg.nginx_reload, sizeof(cfg.nginx_reload), "signal:%s/nginx.pid", dir);
    make_id(0, id);
    routes_remove(r, id);
    run_until_idle(loop, r);
    CHECK(becomes("/container/u0/box0/", 404), "a removed route is gone after the reload");
    snprintf(cmd, sizeof(cmd), "ls %s/box-available/%s.* %s/box-enabled/%s.* 2>/dev/null | grep -q .",
             dir, id, dir, id);
    CHECK(sh(cmd) != 0, "... with both of its files and links");
    /* A delete asks twice: when it begins and when it is recorded, maybe
     * during the reload the first ask started. The repeat costs nothing. */
    {
        unsigned long r0 = routes_reloads(r);
        make_id(3, id);
        routes_remove(r, id);
        while (routes_reloads(r) == r0)
            ev_run(loop, EVRUN_ONCE);
        bool during = routes_busy(r);
        routes_remove(r, id);
        run_until_idle(loop, r);
        CHECK(routes_reloads(r) - r0 == 1,
              "removing a route again while its reload runs costs no second reload (%s, %lu "
              "reloads)",
              during ? "asked during the reload's hold" : "asked after it", routes_reloads(r) - r0);
    }
    const char *keep[2];
    char k1[37], k2[37];
    make_id(1, k1);
    make_id(2, k2);
    keep[0] = k1;
    keep[1] = k2;
    /* a snippet of another node sharing the directory */
    char other[37], text[SNIPPET_MAX], oname[64], olink[8192];
    make_id(700, other);
    struct snippet_in oin = {other, "o1", "box", "web", "127.0.0.1", upstream_port, false, "node2", 8};
    bool placed = true;
    for (int up = 1; up >= 0; up--) {
        int olen = up ? snippet_render_upstream(&oin, text, sizeof(text), err, sizeof(err))
                      : snippet_render(&oin, text, sizeof(text), err, sizeof(err));
        snprintf(oname, sizeof(oname), "%s.%s", other, up ? "upstream" : "conf");
        snprintf(olink, sizeof(olink), "ln -s ../box-available/%s %s/box-enabled/%s", oname, dir,
                 oname);
        placed = placed && olen > 0 &&
                 fileio_write_atomic(box, oname, text, (size_t)olen, 0644, err, sizeof(err)) == 0 &&
                 sh(olink) == 0;
    }
    CHECK(placed, "a snippet naming another node is in the directory");
    size_t removed = routes_prune(r, keep, 2);
    run_until_idle(loop, r);
    CHECK(becomes("/container/u1/box1/", 200) && becomes("/container/u2/box2/", 200) &&
              becomes("/container/u3/box3/", 404),
          "pruning keeps exactly the listed instances");
    CHECK(removed >= 198, "routes_prune counts what it removed (%zu)", removed);
    CHECK(becomes("/container/o1/box/", 200),
          "pruning leaves the snippet of another node alone");

    /* A snippet nginx refuses stays unlinked until it changes or routes_retry. */
    char dup[37];
    int errors_before = errors;
    make_id(800, dup);
    struct snippet_in din = {dup, "u1", "box1", "web", "127.0.0.1", upstream_port, false, "local", 0};
    CHECK(routes_put(r, &din, err, sizeof(err)) == 1, "a second route for /container/u1/box1/ is written");
    run_until_idle(loop, r);
    CHECK(errors == errors_before + 1 && strcmp(last_error_id, dup) == 0,
          "nginx refuses the duplicate location and its owner is told");
    unsigned long reloads = routes_reloads(r), refusals = routes_refusals(r);
    CHECK(routes_put(r, &din, err, sizeof(err)) == 0 && !routes_busy(r),
          "putting the refused snippet again links nothing and schedules no reload");
    run_until_idle(loop, r);
    CHECK(routes_reloads(r) == reloads && routes_refusals(r) == refusals && errors == errors_before + 1,
          "... so the refusal is not repeated on every pass");
    routes_retry(r);
    CHECK(routes_put(r, &din, err, sizeof(err)) == 1, "after routes_retry it is linked again");
    run_until_idle(loop, r);
    CHECK(errors == errors_before + 2 && get("/container/u1/box1/") == 200,
          "... refused again (nothing changed), and the original route keeps serving");
    din.instance = "box800";
    CHECK(routes_put(r, &din, err, sizeof(err)) == 1, "a changed snippet gets a new try");
    run_until_idle(loop, r);
    CHECK(becomes("/container/u1/box800/", 200), "... and goes live");

    /* route_keepalive 0: locations proxy to the address, no upstream files;
     * and back. */
    cfg.route_keepalive = 0;
    CHECK(routes_put(r, &din, err, sizeof(err)) == 1, "route_keepalive 0 rewrites the route");
    run_until_idle(loop, r);
    snprintf(cmd, sizeof(cmd), "grep -q 'proxy_pass http://127.0.0.1:%d/;' %s/box-available/%s.conf"
             " && ! ls %s/box-available/%s.upstream %s/box-enabled/%s.upstream 2>/dev/null",
             upstream_port, dir, dup, dir, dup, dir, dup);
    CHECK(sh(cmd) == 0, "... to the address itself, its upstream file and link removed");
    CHECK(becomes("/container/u1/box800/", 200), "... and it keeps serving");
    cfg.route_keepalive = 8;
    CHECK(routes_put(r, &din, err, sizeof(err)) == 1, "route_keepalive 8 again brings the group back");
    run_until_idle(loop, r);
    snprintf(cmd, sizeof(cmd), "grep -q 'proxy_pass http://berth-%s/;' %s/box-available/%s.conf"
             " && test -L %s/box-enabled/%s.upstream", dup, dir, dup, dir, dup);
    CHECK(sh(cmd) == 0 && becomes("/container/u1/box800/", 200), "... linked, and serving");

    fixture_teardown(dir);
    routes_free(r);
    return CHECK_DONE();
}
