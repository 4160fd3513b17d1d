/*
 * berthctl — the command-line client of berth's REST API (API.md), for users
 * and admins. It speaks only the public API through nginx, like the web UI.
 *
 * Credentials: an API token, from $BERTH_TOKEN or the file written by
 * `berthctl login` ($XDG_CONFIG_HOME/berth/token, else ~/.config/berth/token,
 * mode 0600). Where berth is: `url` of berth.conf, or $BERTH_URL.
 *
 * Output is a table for people; --json prints the API's JSON as it came.
 * Errors print the API's message and code and exit 1; usage errors exit 2.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "berth/config.h"
#include "berth/log.h"
#include "berth/util.h"
#include "berth/validate.h"

#define MAX_RESPONSE (16u << 20)

static struct berth_config cfg;
static bool opt_json;
static char token[256];

struct buf {
    char *data;
    size_t len;
    bool too_big;
};

struct resp {
    long status;
    json_t *json; /* NULL when the body is not JSON */
    struct buf body;
    char set_cookie[512];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t add = sz * n;
    char *nd;
    if (b->len + add + 1 > MAX_RESPONSE) {
        b->too_big = true;
        return 0;
    }
    nd = realloc(b->data, b->len + add + 1);
    if (!nd)
        return 0;
    b->data = nd;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Set-Cookie: ", 12) == 0 && len - 12 < sizeof(r->set_cookie)) {
        memcpy(r->set_cookie, p + 12, len - 12);
        r->set_cookie[len - 12] = '\0';
    }
    return len;
}

static void resp_free(struct resp *r)
{
    json_decref(r->json);
    free(r->body.data);
    memset(r, 0, sizeof(*r));
}

/*
 * One API call. body: JSON (borrowed) or NULL. extra: extra header lines or
 * NULL. Returns 0 with r filled (any HTTP status), -1 when berth was not
 * reached (message printed).
 */
static int api(const char *method, const char *path, json_t *body, const char *const *extra,
               struct resp *r)
{
    char url[2048], auth[300];
    struct curl_slist *hdrs = NULL;
    char *text = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    if (!c)
        return -1;
    snprintf(url, sizeof(url), "%s%s", cfg.url, path);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    for (int i = 0; extra && extra[i]; i++)
        hdrs = curl_slist_append(hdrs, extra[i]);
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(text);
    if (rc != CURLE_OK) {
        fprintf(stderr, "berthctl: cannot reach berth at %s: %s\n", cfg.url,
                r->body.too_big ? "response too large" : curl_easy_strerror(rc));
        resp_free(r);
        return -1;
    }
    if (r->body.len)
        r->json = json_loadb(r->body.data, r->body.len, 0, NULL);
    return 0;
}

/* Print the API's error sentence; returns 1 (the exit code). */
static int api_error(const struct resp *r)
{
    json_t *e = json_object_get(r->json, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (msg)
        fprintf(stderr, "berthctl: %s (%s%s%s, HTTP %ld)\n", msg, code ? code : "error",
                field ? ", field " : "", field ? field : "", r->status);
    else
        fprintf(stderr, "berthctl: berth answered HTTP %ld\n", r->status);
    if (r->status == 401)
        fprintf(stderr, "berthctl: log in with `berthctl login`, or set BERTH_TOKEN\n");
    return 1;
}

/* Call and print: JSON as is with --json, else via printer. Exit code. */
static int run(const char *method, const char *path, json_t *body, void (*printer)(json_t *))
{
    struct resp r;
    int rc;
    if (api(method, path, body, NULL, &r) < 0)
        return 1;
    if (r.status >= 300) {
        rc = api_error(&r);
    } else {
        if (opt_json || !printer) {
            if (r.body.len)
                printf("%s\n", r.body.data);
        } else if (r.json) {
            printer(r.json);
        }
        rc = 0;
    }
    resp_free(&r);
    return rc;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* ---- token storage ---- */

static int token_path(char *out, size_t size)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        return snprintf(out, size, "%s/berth/token", xdg) < (int)size ? 0 : -1;
    if (home && *home)
        return snprintf(out, size, "%s/.config/berth/token", home) < (int)size ? 0 : -1;
    return -1;
}

static void token_load(void)
{
    const char *env = getenv("BERTH_TOKEN");
    char path[1024];
    FILE *f;
    if (env && *env) {
        util_strlcpy(token, env, sizeof(token));
        return;
    }
    if (token_path(path, sizeof(path)) < 0 || !(f = fopen(path, "r")))
        return;
    if (fgets(token, sizeof(token), f))
        token[strcspn(token, "\r\n")] = '\0';
    fclose(f);
}

static int token_save(const char *t)
{
    char path[1024], dir[1024];
    int fd;
    if (token_path(path, sizeof(path)) < 0)
        return -1;
    util_strlcpy(dir, path, sizeof(dir));
    *strrchr(dir, '/') = '\0';
    {
        char parent[1024];
        util_strlcpy(parent, dir, sizeof(parent));
        *strrchr(parent, '/') = '\0';
        mkdir(parent, 0700);
        mkdir(dir, 0700);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || dprintf(fd, "%s\n", t) < 0) {
        fprintf(stderr, "berthctl: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    printf("token saved in %s\n", path);
    return 0;
}

static int read_password(const char *prompt, char *out, size_t size)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO);
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *ok = fgets(out, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!ok)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* ---- commands ---- */

static int cmd_login(int argc, char **argv)
{
    const char *user = argc > 0 ? argv[0] : getenv("USER");
    char pw[1100], cookie[300], csrf_hdr[128], cookie_hdr[320];
    struct resp r;
    json_t *body;
    int rc = 1;

    if (!user || !*user) {
        fprintf(stderr, "usage: berthctl login USER   (password on the terminal or stdin)\n");
        return 2;
    }
    if (read_password("password: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "berthctl: no password given\n");
        return 2;
    }
    token[0] = '\0';
    body = json_pack("{s:s, s:s}", "username", user, "password", pw);
    explicit_bzero(pw, sizeof(pw));
    if (!body) {
        fprintf(stderr, "berthctl: the user name or password is not valid UTF-8\n");
        return 2;
    }
    if (api("POST", "/api/v1/auth/login", body, NULL, &r) < 0) {
        json_decref(body);
        return 1;
    }
    json_decref(body);
    if (r.status != 200) {
        rc = api_error(&r);
        resp_free(&r);
        return rc;
    }
    /* Trade the browser-style session for an API token, then end the session. */
    util_strlcpy(cookie, r.set_cookie, sizeof(cookie));
    cookie[strcspn(cookie, ";\r\n")] = '\0';
    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: %s", cookie);
    snprintf(csrf_hdr, sizeof(csrf_hdr), "X-CSRF-Token: %s", str(r.json, "csrf_token"));
    resp_free(&r);
    {
        char name[64], host[40] = "";
        const char *hdrs[] = {cookie_hdr, csrf_hdr, NULL};
        gethostname(host, sizeof(host) - 1);
        snprintf(name, sizeof(name), "berthctl@%s", host);
        body = json_pack("{s:s}", "name", name);
        if (api("POST", "/api/v1/tokens", body, hdrs, &r) == 0) {
            if (r.status == 201 && json_string_value(json_object_get(r.json, "token"))) {
                rc = token_save(json_string_value(json_object_get(r.json, "token"))) == 0 ? 0 : 1;
                if (rc == 0)
                    printf("logged in as %s\n", user);
            } else {
                rc = api_error(&r);
            }
            resp_free(&r);
        }
        json_decref(body);
        if (api("POST", "/api/v1/auth/logout", NULL, hdrs, &r) == 0)
            resp_free(&r);
    }
    return rc;
}

/* passwd [--revoke-tokens]: the current and the new password, from the
 * terminal (asked twice) or two lines of stdin. */
static int cmd_passwd(int argc, char **argv)
{
    char cur[1100], nw[1100], again[1100];
    bool revoke = argc == 1 && strcmp(argv[0], "--revoke-tokens") == 0;
    struct resp r;
    json_t *body;
    int rc;

    if (argc > 1 || (argc == 1 && !revoke)) {
        fprintf(stderr, "usage: berthctl passwd [--revoke-tokens]   (passwords on the terminal or "
                        "stdin: current, then new)\n");
        return 2;
    }
    if (read_password("current password: ", cur, sizeof(cur)) < 0 ||
        read_password("new password: ", nw, sizeof(nw)) < 0) {
        fprintf(stderr, "berthctl: no password given\n");
        explicit_bzero(cur, sizeof(cur));
        return 2;
    }
    if (isatty(STDIN_FILENO)) {
        if (read_password("new password again: ", again, sizeof(again)) < 0 ||
            strcmp(again, nw) != 0) {
            fprintf(stderr, "berthctl: the new passwords differ\n");
            explicit_bzero(cur, sizeof(cur));
            explicit_bzero(nw, sizeof(nw));
            explicit_bzero(again, sizeof(again));
            return 2;
        }
        explicit_bzero(again, sizeof(again));
    }
    body = json_pack("{s:s, s:s, s:b}", "current_password", cur, "new_password", nw,
                     "revoke_tokens", revoke);
    explicit_bzero(cur, sizeof(cur));
    explicit_bzero(nw, sizeof(nw));
    if (!body) {
        fprintf(stderr, "berthctl: a password is not valid UTF-8\n");
        return 2;
    }
    rc = api("POST", "/api/v1/auth/password", body, NULL, &r);
    json_decref(body);
    if (rc < 0)
        return 1;
    if (r.status != 200) {
        rc = api_error(&r);
        resp_free(&r);
        return rc;
    }
    if (opt_json) {
        char *t = json_dumps(r.json, JSON_COMPACT);
        printf("%s\n", t ? t : "{}");
        free(t);
    } else if (revoke) {
        printf("password changed; %lld API token(s) revoked, this one included: run "
               "`berthctl login` again\n",
               (long long)json_integer_value(json_object_get(r.json, "tokens_revoked")));
    } else
        printf("password changed; your API tokens still work\n");
    resp_free(&r);
    return 0;
}

static void print_me(json_t *j)
{
    json_t *u = json_object_get(j, "user");
    printf("%s (%s)\n", str(u, "username"), str(u, "role"));
}

static void print_health(json_t *j)
{
    const char *k;
    json_t *v;
    printf("status: %s\n", str(j, "status"));
    json_object_foreach(json_object_get(j, "checks"), k, v) printf("  %-9s %s\n", k,
                                                                   json_string_value(v));
}

static void print_templates(json_t *j)
{
    size_t i;
    json_t *t;
    printf("%-20s %-32s %6s %8s  %s\n", "NAME", "IMAGE", "CPUS", "MEMORY", "DESCRIPTION");
    json_array_foreach(json_object_get(j, "items"), i, t)
    {
        printf("%-20s %-32s %6.2f %6lldMB  %.60s\n", str(t, "name"), str(t, "image"),
               json_number_value(json_object_get(t, "cpus")),
               json_integer_value(json_object_get(t, "memory_mb")), str(t, "description"));
    }
}

static void print_instances(json_t *j)
{
    size_t i;
    json_t *in;
    printf("%-36s %-16s %-12s %-10s %s\n", "ID", "NAME", "USER", "STATUS", "URL");
    json_array_foreach(json_object_get(j, "items"), i, in)
    {
        printf("%-36s %-16s %-12s %-10s %s\n", str(in, "id"), str(in, "name"), str(in, "user"),
               str(in, "status"), str(json_object_get(in, "urls"), "open"));
    }
}

static void print_instance_job(json_t *j)
{
    json_t *in = json_object_get(j, "instance"), *job = json_object_get(j, "job");
    printf("instance %s (%s): %s; job %s %s\n", str(in, "name"), str(in, "id"),
           str(in, "status"), str(job, "id"), str(job, "status"));
}

static void print_snoozed(json_t *in)
{
    printf("instance %s (%s): %s; idle clock reset at %s\n", str(in, "name"), str(in, "id"),
           str(in, "status"), str(in, "last_active_at"));
}

static void print_tokens(json_t *j)
{
    size_t i;
    json_t *t;
    printf("%-36s %-24s %-20s %s\n", "ID", "NAME", "CREATED", "LAST USED");
    json_array_foreach(json_object_get(j, "items"), i, t)
    {
        printf("%-36s %-24s %-20s %s\n", str(t, "id"), str(t, "name"), str(t, "created_at"),
               str(t, "last_used_at"));
    }
}

static void print_users(json_t *j)
{
    size_t i;
    json_t *u;
    printf("%-36s %-20s %-10s %s\n", "ID", "USERNAME", "ROLE", "QUOTA (instances/cpus/MB)");
    json_array_foreach(json_object_get(j, "items"), i, u)
    {
        json_t *q = json_object_get(u, "quota");
        printf("%-36s %-20s %-10s %lld/%g/%lld\n", str(u, "id"), str(u, "username"),
               str(u, "role"), json_integer_value(json_object_get(q, "instances")),
               json_number_value(json_object_get(q, "cpus")),
               json_integer_value(json_object_get(q, "memory_mb")));
    }
}

static void print_logs(json_t *j)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(j, "lines"), i, l) printf("%s\n", json_string_value(l));
}

static void print_exec(json_t *j)
{
    fputs(str(j, "output"), stdout);
}

/* An instance argument is an id (UUID) or one of the caller's instance names. */
static int instance_path(const char *arg, const char *suffix, char *out, size_t size)
{
    if (valid_uuid(arg)) {
        snprintf(out, size, "/api/v1/instances/%s%s", arg, suffix);
        return 0;
    }
    if (!valid_name(arg)) {
        fprintf(stderr, "berthctl: '%s' is neither an instance id nor an instance name\n", arg);
        return -1;
    }
    struct resp r;
    size_t i;
    json_t *in;
    int rc = -1;
    if (api("GET", "/api/v1/instances?limit=500", NULL, NULL, &r) < 0)
        return -1;
    if (r.status != 200) {
        api_error(&r);
        resp_free(&r);
        return -1;
    }
    json_array_foreach(json_object_get(r.json, "items"), i, in)
    {
        if (strcmp(str(in, "name"), arg) == 0) {
            snprintf(out, size, "/api/v1/instances/%s%s", str(in, "id"), suffix);
            rc = 0;
            break;
        }
    }
    if (rc < 0)
        fprintf(stderr, "berthctl: you have no instance named '%s'\n", arg);
    resp_free(&r);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: berthctl [--json] COMMAND [ARGS]\n"
            "\n"
            "  login USER                 log in (password on the terminal or stdin); saves a token\n"
            "  whoami                     who the saved token belongs to\n"
            "  passwd [--revoke-tokens]   change your password (current, then new: terminal or\n"
            "                             stdin); --revoke-tokens also deletes all your API tokens\n"
            "  health                     berth's health checks\n"
            "  templates                  templates you can launch\n"
            "  ls [--all]                 your instances (admins: --all for everyone's)\n"
            "  launch TEMPLATE [NAME]     start a new instance\n"
            "  start|stop|restart INST    change an instance's state (INST: id or name)\n"
            "  snooze INST                count as activity: an idle instance is not stopped yet\n"
            "  rm INST [--delete-volumes] delete an instance (volumes kept unless asked)\n"
            "  logs INST [TAIL]           the instance's last log lines\n"
            "  exec INST -- CMD [ARG...]  run a command in the instance\n"
            "  tokens | token-rm ID       your API tokens\n"
            "  users                      all users (admins)\n"
            "  api METHOD PATH [JSON]     any API call, JSON printed as it comes\n"
            "\n"
            "Where: `url` in berth.conf or BERTH_URL. Credentials: BERTH_TOKEN or the token\n"
            "saved by `berthctl login`.\n");
}

int main(int argc, char **argv)
{
    char err[512], path[512];
    const char *cmd;
    int rc;

    log_init("berthctl", LOG_WARN);
    while (argc > 1 && argv[1][0] == '-') {
        if (strcmp(argv[1], "--json") == 0) {
            opt_json = true;
        } else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "berthctl: unknown option %s\n", argv[1]);
            usage(stderr);
            return 2;
        }
        argc--;
        argv++;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (config_load(&cfg, CONF_CLI, false, err, sizeof(err)) < 0) {
        fprintf(stderr, "berthctl: %s\n", err);
        return 2;
    }
    if (getenv("BERTH_URL") && *getenv("BERTH_URL"))
        util_strlcpy(cfg.url, getenv("BERTH_URL"), sizeof(cfg.url));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    token_load();
    cmd = argv[1];
    argc -= 2;
    argv += 2;

    if (strcmp(cmd, "login") == 0) {
        rc = cmd_login(argc, argv);
    } else if (strcmp(cmd, "whoami") == 0) {
        rc = run("GET", "/api/v1/auth/me", NULL, print_me);
    } else if (strcmp(cmd, "health") == 0) {
        rc = run("GET", "/api/v1/health", NULL, print_health);
    } else if (strcmp(cmd, "templates") == 0) {
        rc = run("GET", "/api/v1/templates?limit=500", NULL, print_templates);
    } else if (strcmp(cmd, "ls") == 0) {
        bool all = argc > 0 && strcmp(argv[0], "--all") == 0;
        rc = run("GET", all ? "/api/v1/instances?all=true&limit=500" : "/api/v1/instances?limit=500",
                 NULL, print_instances);
    } else if (strcmp(cmd, "launch") == 0) {
        if (argc < 1 || argc > 2) {
            fprintf(stderr, "usage: berthctl launch TEMPLATE [NAME]\n");
            rc = 2;
        } else {
            json_t *b = json_pack("{s:s}", "template", argv[0]);
            if (b && argc == 2)
                json_object_set_new(b, "name", json_string(argv[1]));
            rc = b ? run("POST", "/api/v1/instances", b, print_instance_job) : 2;
            json_decref(b);
        }
    } else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 ||
               strcmp(cmd, "restart") == 0) {
        char suffix[16];
        snprintf(suffix, sizeof(suffix), "/%s", cmd);
        if (argc != 1) {
            fprintf(stderr, "usage: berthctl %s INSTANCE\n", cmd);
            rc = 2;
        } else {
            rc = instance_path(argv[0], suffix, path, sizeof(path)) < 0
                     ? 1
                     : run("POST", path, NULL, print_instance_job);
        }
    } else if (strcmp(cmd, "snooze") == 0) {
        if (argc != 1) {
            fprintf(stderr, "usage: berthctl snooze INSTANCE\n");
            rc = 2;
        } else {
            rc = instance_path(argv[0], "/snooze", path, sizeof(path)) < 0
                     ? 1
                     : run("POST", path, NULL, print_snoozed);
        }
    } else if (strcmp(cmd, "rm") == 0) {
        bool vols = argc == 2 && strcmp(argv[1], "--delete-volumes") == 0;
        if (argc < 1 || (argc == 2 && !vols) || argc > 2) {
            fprintf(stderr, "usage: berthctl rm INSTANCE [--delete-volumes]\n");
            rc = 2;
        } else {
            rc = instance_path(argv[0], vols ? "?delete_volumes=true" : "", path, sizeof(path)) < 0
                     ? 1
                     : run("DELETE", path, NULL, print_instance_job);
        }
    } else if (strcmp(cmd, "logs") == 0) {
        long tail = 200;
        char suffix[48];
        if (argc < 1 || argc > 2 || (argc == 2 && !util_parse_long(argv[1], 1, 100000, &tail))) {
            fprintf(stderr, "usage: berthctl logs INSTANCE [TAIL, 1-100000]\n");
            rc = 2;
        } else {
            snprintf(suffix, sizeof(suffix), "/logs?tail=%ld", tail);
            rc = instance_path(argv[0], suffix, path, sizeof(path)) < 0
                     ? 1
                     : run("GET", path, NULL, print_logs);
        }
    } else if (strcmp(cmd, "exec") == 0) {
        if (argc < 3 || strcmp(argv[1], "--") != 0) {
            fprintf(stderr, "usage: berthctl exec INSTANCE -- CMD [ARG...]\n");
            rc = 2;
        } else {
            json_t *c = json_array();
            for (int i = 2; i < argc; i++)
                json_array_append_new(c, json_string(argv[i]));
            json_t *b = json_pack("{s:o}", "command", c);
            rc = instance_path(argv[0], "/exec", path, sizeof(path)) < 0
                     ? 1
                     : run("POST", path, b, print_exec);
            json_decref(b);
        }
    } else if (strcmp(cmd, "tokens") == 0) {
        rc = run("GET", "/api/v1/tokens", NULL, print_tokens);
    } else if (strcmp(cmd, "token-rm") == 0) {
        if (argc != 1 || !valid_uuid(argv[0])) {
            fprintf(stderr, "usage: berthctl token-rm TOKEN-ID\n");
            rc = 2;
        } else {
            snprintf(path, sizeof(path), "/api/v1/tokens/%s", argv[0]);
            rc = run("DELETE", path, NULL, NULL);
        }
    } else if (strcmp(cmd, "passwd") == 0) {
        rc = cmd_passwd(argc, argv);
    } else if (strcmp(cmd, "users") == 0) {
        rc = run("GET", "/api/v1/users?limit=500", NULL, print_users);
    } else if (strcmp(cmd, "api") == 0) {
        json_t *b = NULL;
        if (argc < 2 || argc > 3 || argv[1][0] != '/') {
            fprintf(stderr, "usage: berthctl api METHOD /api/v1/PATH [JSON-BODY]\n");
            rc = 2;
        } else if (argc == 3 && !(b = json_loads(argv[2], 0, NULL))) {
            fprintf(stderr, "berthctl: the body is not valid JSON\n");
            rc = 2;
        } else {
            opt_json = true;
            rc = run(argv[0], argv[1], b, NULL);
        }
        json_decref(b);
    } else {
        fprintf(stderr, "berthctl: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
