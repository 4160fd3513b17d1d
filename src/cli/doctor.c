/*
 * doctor — checks a berth installation end to end and says what to fix:
 * the API and each check its health names, the API version, the token, and
 * where berth runs on this machine, the nginx config test, Docker and disk
 * space, read from the daemons' own berth.conf. Exit 1 on any problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/util.h"
#include "cli.h"

enum verdict { OK, SKIP, FAIL };

struct doctor {
    int problems;
    json_t *checks; /* --json: every check as it went */
};

/* One check's outcome: printed as it comes (or kept for --json). fix: what to
 * do about a FAIL, or NULL. */
static void say(struct doctor *d, enum verdict v, const char *name, const char *fix,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void say(struct doctor *d, enum verdict v, const char *name, const char *fix,
                const char *fmt, ...)
{
    static const char *const word[] = {"ok", "skip", "FAIL"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v == FAIL)
        d->problems++;
    if (cli.json) {
        json_t *c = json_pack("{s:s, s:s, s:s}", "check", name, "status", word[v], "message", msg);
        if (c && fix && v == FAIL)
            json_object_set_new(c, "fix", json_string(fix));
        json_array_append_new(d->checks, c);
        return;
    }
    printf("%-4s  %-11s %s\n", word[v], name, msg);
    if (fix && v == FAIL)
        printf("      %-11s fix: %s\n", "", fix);
}

static const char *health_fix(const char *check)
{
    if (strcmp(check, "postgres") == 0)
        return "start PostgreSQL and check pg_dsn in berth.conf (berth-api's log says more)";
    if (strcmp(check, "redis") == 0)
        return "start Redis and check redis_url in berth.conf";
    if (strcmp(check, "docker") == 0)
        return "start berth-worker, and dockerd if it is down (berth-worker's log says more)";
    return "see the daemons' logs";
}

static void check_api(struct doctor *d)
{
    struct resp r;
    const char *k;
    json_t *v;
    char buf[512];

    if (http_call("GET", "/api/v1/health", NULL, NULL, NULL, NULL, &r) < 0) {
        say(d, FAIL, "api",
            "start berth (make start, or systemctl start nginx berth-api), or set "
            "BERTH_URL / url in berth.conf to where it runs",
            "berth does not answer at %s", cli.cfg.url);
        return;
    }
    if (!json_object_get(r.json, "checks")) {
        say(d, FAIL, "api", "check that nginx passes /api/ to berth-api (nginx's error log)",
            "GET /api/v1/health answered HTTP %ld without health checks", r.status);
        resp_free(&r);
        return;
    }
    say(d, OK, "api", NULL, "berth answers at %s (HTTP %ld)", cli.cfg.url, r.status);
    json_object_foreach(json_object_get(r.json, "checks"), k, v)
    {
        const char *t = jtext(v, "", buf, sizeof(buf));
        if (strcmp(t, "ok") == 0)
            say(d, OK, k, NULL, "berth's health check of %s: ok", k);
        else
            say(d, FAIL, k, health_fix(k), "%s", t);
    }
    resp_free(&r);
    if (http_call("GET", "/api/v1/openapi.json", NULL, NULL, NULL, NULL, &r) == 0 &&
        r.status == 200 && jstr(r.json, "info.version"))
        say(d, OK, "version", NULL, "API version %s (%s)", jstr(r.json, "info.version"),
            jstr(r.json, "info.title") ? jstr(r.json, "info.title") : "openapi.json");
    else
        say(d, SKIP, "version", NULL, "berth does not expose its version (/api/v1/openapi.json)");
    resp_free(&r);
}

static void check_token(struct doctor *d)
{
    struct resp r;
    if (cli.token_why[0]) {
        say(d, FAIL, "token", "chmod 600 the token file, or run `berthctl login` again", "%s",
            cli.token_why);
        return;
    }
    if (!cli.token[0]) {
        say(d, FAIL, "token", "run `berthctl login USER`, or set BERTH_TOKEN",
            "no API token: neither BERTH_TOKEN nor a saved login");
        return;
    }
    if (http_call("GET", "/api/v1/auth/me", NULL, NULL, NULL, NULL, &r) < 0)
        return; /* said by check_api */
    if (r.status == 200)
        say(d, OK, "token", NULL, "the token works: %s (%s)", jstr(r.json, "user.username"),
            jstr(r.json, "user.role"));
    else
        say(d, FAIL, "token", "run `berthctl login USER` for a new token",
            "berth refuses the token (HTTP %ld: %s)", r.status,
            jstr(r.json, "error.message") ? jstr(r.json, "error.message") : "no message");
    resp_free(&r);
}

/* Run cmd (words split on blanks, no shell); its exit status and the first
 * line of its output in out, or -1 when it could not be run. */
static int run_words(const char *cmd, char *out, size_t n)
{
    char copy[CONF_STR_MAX], *argv[64], *save = NULL;
    int argc = 0, fds[2], status;
    ssize_t got;
    pid_t pid;

    util_strlcpy(copy, cmd, sizeof(copy));
    for (char *w = strtok_r(copy, " \t", &save); w && argc < 63; w = strtok_r(NULL, " \t", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    out[0] = '\0';
    if (!argc || pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    got = read(fds[0], out, n - 1);
    out[got > 0 ? got : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    while (read(fds[0], copy, sizeof(copy)) > 0)
        ;
    close(fds[0]);
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void check_disk(struct doctor *d, const char *what, const char *path)
{
    struct statvfs s;
    double free_b, total, pct;
    if (!path[0] || statvfs(path, &s) < 0) {
        say(d, SKIP, "disk", NULL, "cannot look at %s (%s)", what, path[0] ? path : "unknown");
        return;
    }
    free_b = (double)s.f_bavail * (double)s.f_frsize;
    total = (double)s.f_blocks * (double)s.f_frsize;
    pct = total > 0 ? 100.0 * free_b / total : 0;
    if (free_b < 1073741824.0 || pct < 5)
        say(d, FAIL, "disk",
            "free space there: remove unused images (docker image prune) and "
            "deleted users' volumes",
            "%s (%s): only %.1f GiB free (%.0f%%)", what, path, free_b / 1073741824.0, pct);
    else
        say(d, OK, "disk", NULL, "%s (%s): %.1f GiB free (%.0f%%)", what, path,
            free_b / 1073741824.0, pct);
}

static void check_docker(struct doctor *d, const struct berth_config *w)
{
    struct resp r;
    char root[CONF_STR_MAX] = "";
    if (access(w->docker_socket, F_OK) < 0) {
        say(d, FAIL, "dockerd", "start dockerd, or set docker_socket in berth.conf",
            "no Docker socket at %s", w->docker_socket);
        return;
    }
    if (access(w->docker_socket, R_OK | W_OK) < 0) {
        say(d, SKIP, "dockerd", NULL, "cannot open %s as this user (root or the docker group can)",
            w->docker_socket);
        return;
    }
    if (http_unix_get(w->docker_socket, "/_ping", &r) < 0 || r.status != 200) {
        say(d, FAIL, "dockerd", "start dockerd (its log says why it is down)",
            "Docker does not answer at %s", w->docker_socket);
        resp_free(&r);
        return;
    }
    resp_free(&r);
    if (http_unix_get(w->docker_socket, "/info", &r) == 0 && r.status == 200) {
        say(d, OK, "dockerd", NULL, "Docker %s answers at %s",
            jstr(r.json, "ServerVersion") ? jstr(r.json, "ServerVersion") : "?", w->docker_socket);
        if (jstr(r.json, "DockerRootDir"))
            util_strlcpy(root, jstr(r.json, "DockerRootDir"), sizeof(root));
    } else {
        say(d, OK, "dockerd", NULL, "Docker answers at %s", w->docker_socket);
    }
    resp_free(&r);
    check_disk(d, "Docker's data", root);
}

/* The checks of this machine, where berth runs here and its berth.conf can
 * be read; the nginx test command is run only from a file that only root or
 * the caller can change. */
static void check_local(struct doctor *d)
{
    const char *conf = getenv("BERTH_CONFIG") && *getenv("BERTH_CONFIG") ? getenv("BERTH_CONFIG")
                                                                         : "/etc/berth/berth.conf";
    struct berth_config *w;
    struct stat st;
    char err[512], out[512];
    int rc;

    if (!http_url_is_local(cli.cfg.url)) {
        say(d, SKIP, "local", NULL,
            "berth is not on this machine (%s): nginx, Docker and disk "
            "are checked where it runs",
            cli.cfg.url);
        return;
    }
    if (stat(conf, &st) < 0 || access(conf, R_OK) < 0) {
        say(d, SKIP, "local", NULL, "cannot read %s: nginx, Docker and disk not checked", conf);
        return;
    }
    if (!(w = calloc(1, sizeof(*w))))
        return;
    if (config_load(w, CONF_WORKER, false, err, sizeof(err)) < 0) {
        say(d, FAIL, "config", "correct berth.conf: berth-worker will not start with it", "%s: %s",
            conf, err);
        free(w);
        return;
    }
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
        say(d, SKIP, "nginx-test", NULL, "%s can be changed by others: its nginx_test is not run",
            conf);
    } else if ((rc = run_words(w->nginx_test, out, sizeof(out))) == 0) {
        say(d, OK, "nginx-test", NULL, "the nginx config test passes (nginx_test)");
    } else if (rc < 0 || rc == 127) {
        say(d, FAIL, "nginx-test", "install nginx, or set nginx_test in berth.conf",
            "cannot run nginx_test (%s)", w->nginx_test);
    } else {
        say(d, FAIL, "nginx-test",
            "correct the nginx configuration it names; berth-worker reloads "
            "nginx after each change",
            "the nginx config test fails: %s", out[0] ? out : "(no output)");
    }
    check_docker(d, w);
    check_disk(d, "nginx config (box_dir)", w->box_dir);
    free(w);
}

int cmd_doctor(const struct args *a)
{
    struct doctor d = {0, json_array()};
    check_api(&d);
    check_token(&d);
    check_local(&d);
    if (cli.json) {
        json_t *j = json_pack("{s:o, s:i, s:b}", "checks", d.checks, "problems", d.problems, "ok",
                              d.problems == 0);
        print_json(j);
        json_decref(j);
    } else {
        json_decref(d.checks);
        if (d.problems)
            printf("%d problem%s: fix %s and run `berthctl doctor` again\n", d.problems,
                   d.problems == 1 ? "" : "s", d.problems == 1 ? "it" : "them");
        else
            printf("no problems found\n");
    }
    return d.problems ? EXIT_ERR : EXIT_OK;
}
