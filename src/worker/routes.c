/*
 * routes — see routes.h. Owns box-available/, box-enabled/ and the nginx test
 * and reload child processes.
 */
#include "routes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/fileio.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"
#include "trust.h"
#include "wmetrics.h"

extern char **environ;

#define DEBOUNCE_S   ROUTES_DEBOUNCE_S
#define MIN_GAP_S    0.5   /* between reload starts: bounds reloads under a stream of changes */
#define MAX_ARGS     32
#define STDERR_CAP   4096  /* what we keep of nginx -t's complaint */
#define CHILD_NICE   10    /* nginx -t and a reload command run at this nice value */

/* HOLD: the master has been told to reload and may still be reading
 * box-enabled/; links are not touched until it is over (a link removed under a
 * parsing master makes that reload fail, silently keeping the old routes). */
enum state { IDLE, TESTING, RELOADING, HOLD };
#define HOLD_S 1.0

struct deferred_op {
    char id[37];
    bool link; /* true: link it; false: unlink and remove it */
};

struct idset {
    char (*ids)[37];
    size_t n, cap;
};

struct routes {
    struct ev_loop *loop;
    const struct berth_config *cfg;
    routes_error_cb on_error;
    void *arg;
    ev_timer debounce;
    bool dirty;
    enum state state;
    ev_child child_w;
    ev_io err_w;
    int err_fd;
    char errbuf[STDERR_CAP];
    size_t errlen;
    /* Instances whose snippet was written since the last good reload. */
    struct idset pending;
    /* Instances whose snippet nginx refused: not linked again until the
     * snippet changes or routes_retry() is called. */
    struct idset refused;
    unsigned long reloads, refusals;
    ev_tstamp last_start;
    ev_timer hold;
    struct deferred_op *ops;
    size_t nops, capops;
};

/* An instance's two files: its location (server level) and its upstream
 * group (http level), each in box-available/ and linked into box-enabled/. */
#define EXT_LOC ".conf"
#define EXT_UP  ".upstream"

static void path_ext(const struct routes *r, const char *sub, const char *id, const char *ext,
                     char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s%s", r->cfg->box_dir, sub, id, ext);
}

static void path_of(const struct routes *r, const char *sub, const char *id, char *out,
                    size_t size)
{
    path_ext(r, sub, id, EXT_LOC, out, size);
}

static void dir_of(const struct routes *r, const char *sub, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", r->cfg->box_dir, sub);
}

/* Arm the timer for the next cycle: soon, but not sooner than MIN_GAP_S after
 * the previous one started. */
static void arm(struct routes *r)
{
    ev_tstamp wait = r->last_start + MIN_GAP_S - ev_now(r->loop);
    if (wait < DEBOUNCE_S)
        wait = DEBOUNCE_S;
    ev_timer_set(&r->debounce, wait, 0.);
    ev_timer_start(r->loop, &r->debounce);
}

static void schedule(struct routes *r)
{
    r->dirty = true;
    if (r->state == IDLE && !ev_is_active(&r->debounce))
        arm(r);
}

static bool idset_has(const struct idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return true;
    return false;
}

/* Out of memory leaves the set without id: for pending, a refusal then
 * unlinks by nginx's message only; for refused, the route is tried again. */
static void idset_add(struct idset *s, const char *id)
{
    if (idset_has(s, id))
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void *np = realloc(s->ids, cap * sizeof(*s->ids));
        if (!np)
            return;
        s->ids = np;
        s->cap = cap;
    }
    util_strlcpy(s->ids[s->n++], id, 37);
}

static void idset_drop(struct idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->ids[i], id) == 0) {
            memmove(s->ids[i], s->ids[i + 1], (s->n - i - 1) * sizeof(*s->ids));
            s->n--;
            return;
        }
    }
}

static int link_one(struct routes *r, const char *id, const char *ext, char *err, size_t errlen)
{
    char link[4096], tmp[4200], target[128];
    struct stat st;

    path_ext(r, "box-enabled", id, ext, link, sizeof(link));
    if (lstat(link, &st) == 0)
        return 0;
    /* Relative, so the tree can be mounted elsewhere (containers). */
    snprintf(target, sizeof(target), "../box-available/%s%s", id, ext);
    snprintf(tmp, sizeof(tmp), "%s.tmp", link);
    unlink(tmp);
    if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
        snprintf(err, errlen, "cannot link %s: %s", link, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static bool exists(const struct routes *r, const char *sub, const char *id, const char *ext)
{
    char path[4096];
    struct stat st;
    path_ext(r, sub, id, ext, path, sizeof(path));
    return lstat(path, &st) == 0;
}

/* The upstream group first (when the instance has one): a location whose
 * group is missing would fail nginx's test. */
static int link_now(struct routes *r, const char *id, char *err, size_t errlen)
{
    if (exists(r, "box-available", id, EXT_UP) && link_one(r, id, EXT_UP, err, errlen) < 0)
        return -1;
    return link_one(r, id, EXT_LOC, err, errlen);
}

static bool linked(const struct routes *r, const char *id, bool with_upstream)
{
    return exists(r, "box-enabled", id, EXT_LOC) &&
           (!with_upstream || exists(r, "box-enabled", id, EXT_UP));
}

/* Unlink the location, then its upstream; true if either link was there. */
static bool unlink_links(struct routes *r, const char *id)
{
    char link[4096];
    bool removed;
    path_of(r, "box-enabled", id, link, sizeof(link));
    removed = unlink(link) == 0;
    path_ext(r, "box-enabled", id, EXT_UP, link, sizeof(link));
    removed = (unlink(link) == 0) || removed;
    return removed;
}

/* Remove one of an instance's files and its link (the link first: never a
 * dangling one); true if either was there. */
static bool remove_file(struct routes *r, const char *id, const char *ext)
{
    char path[4096];
    bool removed;
    path_ext(r, "box-enabled", id, ext, path, sizeof(path));
    removed = unlink(path) == 0;
    path_ext(r, "box-available", id, ext, path, sizeof(path));
    return (unlink(path) == 0) || removed;
}

/* The location first: its upstream group must outlive it. */
static bool unlink_now(struct routes *r, const char *id)
{
    bool removed = remove_file(r, id, EXT_LOC);
    return remove_file(r, id, EXT_UP) || removed;
}

static void defer_op(struct routes *r, const char *id, bool link)
{
    for (size_t i = 0; i < r->nops; i++) {
        if (strcmp(r->ops[i].id, id) == 0) {
            r->ops[i].link = link; /* the last word counts */
            return;
        }
    }
    if (r->nops == r->capops) {
        size_t cap = r->capops ? r->capops * 2 : 16;
        void *np = realloc(r->ops, cap * sizeof(*r->ops));
        if (!np) {
            log_error("out of memory deferring a route change for %s", id);
            return;
        }
        r->ops = np;
        r->capops = cap;
    }
    util_strlcpy(r->ops[r->nops].id, id, sizeof(r->ops[r->nops].id));
    r->ops[r->nops++].link = link;
}

/* Back to IDLE: apply what waited, and go again when anything changed --
 * only then. A deferred op may find nothing to do: a delete removes its route
 * when it begins and asks again when it is recorded, seconds later, as Docker
 * finishes each container; counting those repeats as changes made every HOLD
 * of a burst of deletes end in one more reload for nothing, for as long as
 * Docker took (47-reload-burst: 6-10 reloads for 100 deletes). */
static void apply_deferred(struct routes *r)
{
    char err[512];
    for (size_t i = 0; i < r->nops; i++) {
        const char *id = r->ops[i].id;
        if (r->ops[i].link) {
            if (linked(r, id, exists(r, "box-available", id, EXT_UP)))
                continue;
            if (link_now(r, id, err, sizeof(err)) < 0) {
                log_error("%s", err);
                if (r->on_error)
                    r->on_error(id, err, r->arg);
                continue;
            }
            idset_add(&r->pending, id);
        } else if (!unlink_now(r, id)) {
            continue;
        }
        r->dirty = true;
    }
    r->nops = 0;
}

static void arm(struct routes *r);

static void on_hold(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct routes *r = w->data;
    r->state = IDLE;
    apply_deferred(r);
    if (r->dirty)
        arm(r);
}

/* Split a configured command on spaces (no shell, no quoting) into argv. */
static int split_argv(char *buf, char **argv)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t", &save); tok && n < MAX_ARGS - 1;
         tok = strtok_r(NULL, " \t", &save))
        argv[n++] = tok;
    argv[n] = NULL;
    return n;
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents);

static void on_stderr(struct ev_loop *loop, ev_io *w, int revents)
{
    struct routes *r = w->data;
    char tmp[1024];
    ssize_t n = read(r->err_fd, tmp, sizeof(tmp));
    if (n > 0) {
        size_t room = sizeof(r->errbuf) - 1 - r->errlen;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->errbuf + r->errlen, tmp, take);
        r->errlen += take;
        r->errbuf[r->errlen] = '\0';
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, w);
    close(r->err_fd);
    r->err_fd = -1;
}

/* Start cmd as a child; its exit arrives in on_child. 0 / -1. */
static int spawn(struct routes *r, const char *cmd)
{
    char buf[CONF_STR_MAX], *argv[MAX_ARGS];
    posix_spawn_file_actions_t fa;
    int pipefd[2];
    pid_t pid;
    int rc;

    util_strlcpy(buf, cmd, sizeof(buf));
    if (split_argv(buf, argv) == 0)
        return -1;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        log_error("cannot run '%s': %s", cmd, strerror(rc));
        close(pipefd[0]);
        return -1;
    }
    /* A test parses the whole configuration, thousands of routes, while
     * Docker is starting the containers those routes are for: it yields. */
    if (setpriority(PRIO_PROCESS, (id_t)pid, CHILD_NICE) < 0)
        log_debug("cannot lower the priority of '%s': %s", cmd, strerror(errno));
    r->errlen = 0;
    r->errbuf[0] = '\0';
    r->err_fd = pipefd[0];
    fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
    ev_io_init(&r->err_w, on_stderr, r->err_fd, EV_READ);
    r->err_w.data = r;
    ev_io_start(r->loop, &r->err_w);
    ev_child_init(&r->child_w, on_child, pid, 0);
    r->child_w.data = r;
    ev_child_start(r->loop, &r->child_w);
    return 0;
}

static void start_cycle(struct routes *r)
{
    r->dirty = false;
    r->state = TESTING;
    r->last_start = ev_now(r->loop);
    if (spawn(r, r->cfg->nginx_test) < 0) {
        r->state = IDLE;
        log_error("nginx test could not be started; routes not reloaded");
    }
}

static void on_debounce(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct routes *r = w->data;
    if (r->state == IDLE && r->dirty)
        start_cycle(r);
}

/* The test refused the configuration: find the snippet(s) at fault, unlink
 * them from box-enabled/, tell their owners. true if something was unlinked
 * (so testing again can succeed). */
static bool unlink_culprits(struct routes *r)
{
    char msg[600];
    bool any = false;
    const char *p = r->errbuf;

    /* nginx names the file: ".../box-enabled/<uuid>.conf:LINE" (or .upstream). */
    while ((p = strstr(p, "box-enabled/")) != NULL) {
        char id[37];
        p += strlen("box-enabled/");
        if (strlen(p) < 36)
            break;
        memcpy(id, p, 36);
        id[36] = '\0';
        if (!valid_uuid(id))
            continue;
        if (unlink_links(r, id)) {
            any = true;
            snprintf(msg, sizeof(msg), "nginx refused this instance's route: %.500s", r->errbuf);
            idset_drop(&r->pending, id);
            idset_add(&r->refused, id);
            if (r->on_error)
                r->on_error(id, msg, r->arg);
        }
    }
    if (any)
        return true;
    /* Not attributable to one file: take back everything new since the last
     * good reload; the running configuration stays as it was. */
    for (size_t i = 0; i < r->pending.n; i++) {
        if (unlink_links(r, r->pending.ids[i])) {
            any = true;
            snprintf(msg, sizeof(msg), "nginx refused the configuration with this route: %.480s",
                     r->errbuf);
            idset_add(&r->refused, r->pending.ids[i]);
            if (r->on_error)
                r->on_error(r->pending.ids[i], msg, r->arg);
        }
    }
    r->pending.n = 0;
    return any;
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    struct routes *r = w->data;
    bool ok = WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0;

    ev_child_stop(loop, w);
    /* Collect what is left of stderr (the pipe's read end is non-blocking). */
    if (r->err_fd >= 0)
        on_stderr(loop, &r->err_w, EV_READ);
    if (r->err_fd >= 0) {
        ev_io_stop(loop, &r->err_w);
        close(r->err_fd);
        r->err_fd = -1;
    }

    if (r->state == TESTING) {
        if (!ok) {
            r->refusals++;
            log_warn("nginx test refused the routes: %.300s", r->errbuf);
            if (unlink_culprits(r)) {
                start_cycle(r); /* test again without them */
                return;
            }
            log_error("nginx configuration is broken outside berth's routes; not reloading");
            r->state = IDLE;
            return;
        }
        wmetrics_nginx(WM_NGINX_TEST, ev_now(loop) - r->last_start);
        r->state = RELOADING;
        if (strncmp(r->cfg->nginx_reload, "signal:", 7) == 0) {
            ok = trust_signal_master(r->cfg->nginx_reload + 7);
        } else {
            if (spawn(r, r->cfg->nginx_reload) < 0) {
                log_error("nginx reload could not be started");
                r->state = IDLE;
            }
            return;
        }
    }
    /* RELOADING done: hold the links still while the master reads them. */
    if (ok) {
        r->reloads++;
        r->pending.n = 0;
        wmetrics_nginx(WM_NGINX_CYCLE, ev_now(loop) - r->last_start);
        log_info("nginx reloaded (%lu reloads since start)", r->reloads);
    } else {
        log_error("nginx reload failed: %.300s", r->errbuf);
    }
    r->state = HOLD;
    ev_timer_set(&r->hold, HOLD_S, 0.);
    ev_timer_start(loop, &r->hold);
}

struct routes *routes_new(struct ev_loop *loop, const struct berth_config *cfg,
                          routes_error_cb on_error, void *arg)
{
    struct routes *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->loop = loop;
    r->cfg = cfg;
    r->on_error = on_error;
    r->arg = arg;
    r->err_fd = -1;
    ev_timer_init(&r->debounce, on_debounce, DEBOUNCE_S, 0.);
    r->debounce.data = r;
    ev_timer_init(&r->hold, on_hold, HOLD_S, 0.);
    r->hold.data = r;
    return r;
}

void routes_free(struct routes *r)
{
    if (!r)
        return;
    ev_timer_stop(r->loop, &r->debounce);
    ev_timer_stop(r->loop, &r->hold);
    free(r->ops);
    if (ev_is_active(&r->child_w))
        ev_child_stop(r->loop, &r->child_w);
    if (r->err_fd >= 0) {
        ev_io_stop(r->loop, &r->err_w);
        close(r->err_fd);
    }
    free(r->pending.ids);
    free(r->refused.ids);
    free(r);
}

int routes_prepare(struct routes *r, char *err, size_t errlen)
{
    static const char *const subs[] = {"box-available", "box-enabled"};
    char d[4096], parent[4096];
    util_strlcpy(parent, r->cfg->box_dir, sizeof(parent));
    if (!trust_dir(dirname(parent), false, err, errlen) ||
        !trust_dir(r->cfg->box_dir, true, err, errlen))
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        dir_of(r, subs[i], d, sizeof(d));
        if (mkdir(d, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s (check box_dir)", d, strerror(errno));
            return -1;
        }
        if (!trust_dir(d, true, err, errlen))
            return -1;
    }
    return 0;
}

/* Reads a snippet file (at most SNIPPET_MAX bytes) into buf; its length or -1. */
static ssize_t read_snippet(const char *path, char *buf)
{
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    n = read(fd, buf, SNIPPET_MAX + 1);
    close(fd);
    return n;
}

/* Does path hold exactly data? */
static bool same_content(const char *path, const char *data, size_t len)
{
    char buf[SNIPPET_MAX + 1];
    ssize_t n = read_snippet(path, buf);
    return n == (ssize_t)len && memcmp(buf, data, len) == 0;
}

/* True when the file names a node other than ours: another worker sharing
 * this directory owns it. */
static bool foreign(const struct routes *r, const char *path)
{
    char buf[SNIPPET_MAX + 1], node[64];
    ssize_t n = read_snippet(path, buf);
    return n > 0 && snippet_node(buf, (size_t)n, node, sizeof(node)) &&
           strcmp(node, r->cfg->node) != 0;
}

/* Write path's file in dir as name when its content differs. 1 written, 0
 * already so, -1 with err. */
static int write_if_changed(const char *dir, const char *name, const char *text, size_t n,
                            char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (same_content(path, text, n))
        return 0;
    /* Rewriting a target is safe at any time: the rename is atomic, and a
     * parsing master reads the old or the new file, both valid. */
    return fileio_write_atomic(dir, name, text, n, 0644, err, errlen) < 0 ? -1 : 1;
}

/* route_keepalive is 0 now, but the instance still has an upstream group
 * from before: its location no longer names it, so it goes -- unless a
 * reload may be reading the directory (then a later put removes it; until
 * then it is a valid, unused group). */
static bool drop_upstream(struct routes *r, const char *id)
{
    return r->state == IDLE && remove_file(r, id, EXT_UP);
}

int routes_put(struct routes *r, const struct snippet_in *given, char *err, size_t errlen)
{
    char loc[SNIPPET_MAX], up[SNIPPET_MAX], avail_dir[4096], name[64];
    struct snippet_in in_ka = *given;
    const struct snippet_in *in = &in_ka;
    int nl, nu, wl, wu = 0;
    bool changed, grouped;

    in_ka.keepalive = (int)r->cfg->route_keepalive;
    grouped = in_ka.keepalive > 0;
    nl = snippet_render(in, loc, sizeof(loc), err, errlen);
    if (nl < 0)
        return -1;
    dir_of(r, "box-available", avail_dir, sizeof(avail_dir));
    if (grouped) {
        nu = snippet_render_upstream(in, up, sizeof(up), err, errlen);
        if (nu < 0)
            return -1;
        snprintf(name, sizeof(name), "%s" EXT_UP, in->instance_id);
        wu = write_if_changed(avail_dir, name, up, (size_t)nu, err, errlen);
        if (wu < 0)
            return -1;
    }
    if (grouped && r->state != IDLE && exists(r, "box-enabled", in->instance_id, EXT_LOC) &&
        !exists(r, "box-enabled", in->instance_id, EXT_UP)) {
        /* A linked location gets its first upstream group (route_keepalive
         * was 0): naming the group before it is linked would break the
         * reload in flight. Link the group after it; the next put rewrites
         * the location. */
        defer_op(r, in->instance_id, true);
        return 1;
    }
    snprintf(name, sizeof(name), "%s" EXT_LOC, in->instance_id);
    wl = write_if_changed(avail_dir, name, loc, (size_t)nl, err, errlen);
    if (wl < 0)
        return -1;
    changed = wu > 0 || wl > 0;
    if (!grouped && drop_upstream(r, in->instance_id))
        changed = true;
    if (changed)
        idset_drop(&r->refused, in->instance_id); /* a new snippet gets a new try */
    if (!linked(r, in->instance_id, grouped)) {
        if (idset_has(&r->refused, in->instance_id)) {
            snprintf(err, errlen, "nginx refused this snippet; it stays unlinked");
            return 0;
        }
        if (r->state != IDLE) {
            defer_op(r, in->instance_id, true);
            log_debug("route for %s/%s waits for the reload in flight", in->user, in->instance);
            return 1;
        }
        if (link_now(r, in->instance_id, err, errlen) < 0)
            return -1;
        changed = true;
    }
    if (changed) {
        idset_add(&r->pending, in->instance_id);
        schedule(r);
        log_debug("route for %s/%s written", in->user, in->instance);
    }
    return changed ? 1 : 0;
}

void routes_remove(struct routes *r, const char *instance_id)
{
    if (!valid_uuid(instance_id))
        return;
    idset_drop(&r->pending, instance_id);
    idset_drop(&r->refused, instance_id);
    if (r->state != IDLE) {
        defer_op(r, instance_id, false);
        return;
    }
    if (unlink_now(r, instance_id))
        schedule(r);
}

size_t routes_prune(struct routes *r, const char *const *keep, size_t n)
{
    static const char *const subs[] = {"box-enabled", "box-available"};
    struct idset gone = {0}; /* each id counted once, whichever files it had */
    char d[4096];
    size_t removed;

    for (size_t s = 0; s < ARRAY_LEN(subs); s++) {
        DIR *dir;
        struct dirent *e;
        dir_of(r, subs[s], d, sizeof(d));
        dir = opendir(d);
        if (!dir)
            continue;
        while ((e = readdir(dir)) != NULL) {
            char id[37];
            bool kept = false;
            size_t len = strlen(e->d_name);
            if (len <= 36 || (strcmp(e->d_name + 36, EXT_LOC) != 0 &&
                              strcmp(e->d_name + 36, EXT_UP) != 0))
                continue;
            memcpy(id, e->d_name, 36);
            id[36] = '\0';
            if (!valid_uuid(id))
                continue;
            for (size_t i = 0; i < n && !kept; i++)
                kept = strcmp(keep[i], id) == 0;
            if (!kept && !idset_has(&gone, id)) {
                char file[4096];
                path_of(r, "box-available", id, file, sizeof(file));
                if (foreign(r, file))
                    continue;
                log_info("removing the route of %s: no such instance", id);
                routes_remove(r, id);
                idset_add(&gone, id);
            }
        }
        closedir(dir);
    }
    removed = gone.n;
    free(gone.ids);
    return removed;
}

void routes_retry(struct routes *r)
{
    r->refused.n = 0;
}

unsigned long routes_reloads(const struct routes *r)
{
    return r->reloads;
}

unsigned long routes_refusals(const struct routes *r)
{
    return r->refusals;
}

bool routes_busy(const struct routes *r)
{
    return r->state != IDLE || r->dirty || r->nops > 0 || ev_is_active(&r->debounce);
}
