/*
 * cmd_instances — the caller's instances: launch, ls, show, start, stop,
 * restart, rm, logs, stats, events, exec, ssh, open. NAME is one of the
 * caller's instance names or an instance id (resolve_instance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/util.h"
#include "cli.h"

#define WAIT_S 300

static const char instance_cols[] =
    "NAME=name,STATUS=status,TEMPLATE=template.name,USER=user,ID=id,URL=urls.open";

static void print_instance_job(json_t *j)
{
    printf("instance %s (%s): %s; job %s %s\n", jstr(j, "instance.name"), jstr(j, "instance.id"),
           jstr(j, "instance.status"), jstr(j, "job.id"), jstr(j, "job.status"));
}

/* The path of instance arg plus suffix into out; EXIT_OK or the exit code. */
static int instance_path(const char *arg, const char *suffix, char *out, size_t size)
{
    char id[64];
    int rc = resolve_instance(arg, id);
    if (rc == EXIT_OK)
        snprintf(out, size, "/api/v1/instances/%s%s", id, suffix);
    return rc;
}

/* GET instance arg (a new reference) or NULL with *rc set. */
static json_t *get_instance(const char *arg, int *rc)
{
    char path[200];
    if ((*rc = instance_path(arg, "", path, sizeof(path))) != EXIT_OK)
        return NULL;
    return api_json("GET", path, NULL, rc);
}

/* Poll instance id until its status is want ("deleted" also when gone);
 * "error" or WAIT_S seconds end it with exit 1. */
static int wait_for(const char *id, const char *want)
{
    char path[200];
    struct timespec pause = {0, 500 * 1000 * 1000};
    time_t end = time(NULL) + WAIT_S;
    snprintf(path, sizeof(path), "/api/v1/instances/%s", id);
    for (;;) {
        struct resp r;
        const char *st;
        if (http_call("GET", path, NULL, NULL, NULL, NULL, &r) < 0)
            return EXIT_ERR;
        st = r.status == 404 ? "deleted" : jstr(r.json, "status");
        if (r.status != 200 && r.status != 404) {
            int rc = api_error(cli.command, &r);
            resp_free(&r);
            return rc;
        }
        if (st && strcmp(st, want) == 0) {
            resp_free(&r);
            if (!cli.json)
                printf("%s\n", want);
            return EXIT_OK;
        }
        if (st && strcmp(st, "error") == 0) {
            fprintf(stderr, "berthctl: the instance failed: %s\n",
                    jstr(r.json, "error") ? jstr(r.json, "error") : "(no message)");
            resp_free(&r);
            return EXIT_ERR;
        }
        resp_free(&r);
        if (time(NULL) > end) {
            fprintf(stderr, "berthctl: the instance is still %s after %d s\n", st ? st : "?",
                    WAIT_S);
            return EXIT_ERR;
        }
        nanosleep(&pause, NULL);
    }
}

/* POST/DELETE that answers {instance, job}: printed, then --wait for want. */
static int change(const char *a_method, const char *path, json_t *body, bool wait, const char *want)
{
    int rc;
    char id[64];
    json_t *j = api_json(a_method, path, body, &rc);
    if (!j)
        return rc;
    util_strlcpy(id, jstr(j, "instance.id") ? jstr(j, "instance.id") : "", sizeof(id));
    emit(j, print_instance_job);
    return wait && id[0] ? wait_for(id, want) : EXIT_OK;
}

int cmd_launch(const struct args *a)
{
    const char *name = arg_value(a, "--name"), *v;
    json_t *body = json_pack("{s:s}", "template", a->pos[0]), *vols = json_object();
    int i = 0, rc;

    if (a->npos == 2 && !name)
        name = a->pos[1]; /* the old spelling: launch TEMPLATE NAME */
    if (name)
        json_object_set_new(body, "name", json_string(name));
    while ((v = arg_next(a, "--volume", &i))) {
        const char *eq = strchr(v, '=');
        char vname[128];
        if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= sizeof(vname)) {
            json_decref(body);
            json_decref(vols);
            return usage_error(a, "--volume takes NAME=VOLUME-ID, not '%s'", v);
        }
        snprintf(vname, sizeof(vname), "%.*s", (int)(eq - v), v);
        json_object_set_new(vols, vname, json_string(eq + 1));
    }
    if (json_object_size(vols))
        json_object_set(body, "volumes", vols);
    json_decref(vols);
    if (!json_object_get(body, "template") || (name && !json_object_get(body, "name"))) {
        json_decref(body);
        return usage_error(a, "the template or name is not valid UTF-8");
    }
    rc = change("POST", "/api/v1/instances", body, arg_flag(a, "--wait"), "running");
    json_decref(body);
    return rc;
}

int cmd_ls(const struct args *a)
{
    char path[512] = "/api/v1/instances";
    const char *user = arg_value(a, "--user"), *status = arg_value(a, "--status");
    if ((arg_flag(a, "--all") && path_query(path, sizeof(path), "all", "true") < 0) ||
        (user && path_query(path, sizeof(path), "user", user) < 0) ||
        (status && path_query(path, sizeof(path), "status", status) < 0))
        return usage_error(a, "an option is too long");
    if (arg_flag(a, "--quiet") && !cli.json) { /* names only: for scripts and completion */
        int rc;
        size_t i;
        json_t *j = api_list(path, 0, &rc), *it;
        if (!j)
            return rc;
        json_array_foreach(json_object_get(j, "items"), i, it)
        {
            if (jstr(it, "name"))
                puts(jstr(it, "name"));
        }
        json_decref(j);
        return EXIT_OK;
    }
    return list_print(path, 0, instance_cols);
}

int cmd_show(const struct args *a)
{
    int rc;
    json_t *j = get_instance(a->pos[0], &rc);
    return j ? emit(j, print_fields) : rc;
}

int cmd_action(const struct args *a)
{
    char path[200], suffix[16];
    const char *verb = a->cmd->name; /* start, stop, restart */
    int rc;
    snprintf(suffix, sizeof(suffix), "/%s", verb);
    if ((rc = instance_path(a->pos[0], suffix, path, sizeof(path))) != EXIT_OK)
        return rc;
    return change("POST", path, NULL, arg_flag(a, "--wait"),
                  strcmp(verb, "stop") == 0 ? "stopped" : "running");
}

static void print_snoozed(json_t *in)
{
    printf("instance %s (%s): %s; idle clock reset at %s\n", jstr(in, "name"), jstr(in, "id"),
           jstr(in, "status"), jstr(in, "last_active_at"));
}

int cmd_snooze(const struct args *a)
{
    char path[200];
    int rc = instance_path(a->pos[0], "/snooze", path, sizeof(path));
    return rc != EXIT_OK ? rc : api_emit("POST", path, NULL, print_snoozed);
}

int cmd_rm(const struct args *a)
{
    char path[200];
    int rc = instance_path(a->pos[0], arg_flag(a, "--delete-volumes") ? "?delete_volumes=true" : "",
                           path, sizeof(path));
    return rc != EXIT_OK ? rc : change("DELETE", path, NULL, arg_flag(a, "--wait"), "deleted");
}

static void print_lines(json_t *j)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(j, "lines"), i, l)
    {
        fwrite(json_string_value(l), 1, json_string_length(l), stdout);
        putchar('\n');
    }
}

/* A server-sent event stream of log lines: data lines printed, "end" events
 * said on stderr and the stream ended. */
struct sse {
    bool end_event;
};

static int on_sse_line(const char *line, void *ud)
{
    struct sse *s = ud;
    if (strncmp(line, "event: ", 7) == 0) {
        s->end_event = strcmp(line + 7, "end") == 0;
    } else if (strncmp(line, "data: ", 6) == 0 || strncmp(line, "data:", 5) == 0) {
        const char *d = line + (line[5] == ' ' ? 6 : 5);
        if (s->end_event) {
            fprintf(stderr, "berthctl: %s\n", d);
            return 1;
        }
        if (cli.json) {
            json_t *t = json_string(d);
            print_json(t);
            json_decref(t);
        } else {
            puts(d);
        }
        fflush(stdout);
    } else if (!*line) {
        s->end_event = false;
    }
    return 0;
}

int cmd_logs(const struct args *a)
{
    char path[240], suffix[64];
    long tail = 200;
    struct sse s = {false};
    struct resp r;
    int rc;
    if (arg_long(a, "--tail", 0, 5000, &tail) < 0)
        return EXIT_USAGE;
    snprintf(suffix, sizeof(suffix), "/logs?tail=%ld%s", tail,
             arg_flag(a, "--follow") ? "&follow=true" : "");
    if ((rc = instance_path(a->pos[0], suffix, path, sizeof(path))) != EXIT_OK)
        return rc;
    if (!arg_flag(a, "--follow"))
        return api_emit("GET", path, NULL, print_lines);
    if (http_call("GET", path, NULL, NULL, on_sse_line, &s, &r) < 0)
        return EXIT_ERR;
    rc = r.status >= 300 ? api_error(cli.command, &r) : EXIT_OK;
    resp_free(&r);
    return rc;
}

int cmd_stats(const struct args *a)
{
    char path[200] = "/api/v1/admin/stats";
    int rc;
    if (a->npos && (rc = instance_path(a->pos[0], "/stats", path, sizeof(path))) != EXIT_OK)
        return rc;
    return api_emit("GET", path, NULL, print_fields);
}

int cmd_events(const struct args *a)
{
    static const char cols[] = "AT=at,KIND=kind,MESSAGE=message";
    char path[200];
    int rc = instance_path(a->pos[0], "/events", path, sizeof(path));
    return rc != EXIT_OK ? rc : list_print(path, 0, cols);
}

int cmd_exec(const struct args *a)
{
    char path[200];
    long timeout;
    int has = arg_long(a, "--timeout", 1, 300, &timeout), rc;
    json_t *cmd, *body, *j, *code;

    if (has < 0)
        return EXIT_USAGE;
    if (a->nrest == 0)
        return usage_error(a, "give the command after --");
    if ((rc = instance_path(a->pos[0], "/exec", path, sizeof(path))) != EXIT_OK)
        return rc;
    cmd = json_array();
    for (int i = 0; i < a->nrest; i++)
        json_array_append_new(cmd, json_string(a->rest[i]));
    if (json_array_size(cmd) != (size_t)a->nrest) {
        json_decref(cmd);
        return usage_error(a, "the command is not valid UTF-8");
    }
    body = json_pack("{s:o}", "command", cmd);
    if (has)
        json_object_set_new(body, "timeout_s", json_integer(timeout));
    j = api_json("POST", path, body, &rc);
    json_decref(body);
    if (!j)
        return rc;
    code = json_object_get(j, "exit_code");
    if (cli.json) {
        print_json(j);
    } else {
        json_t *out = json_object_get(j, "output");
        fwrite(json_string_value(out) ? json_string_value(out) : "", 1, json_string_length(out),
               stdout);
    }
    fflush(stdout);
    if (json_is_true(json_object_get(j, "timed_out")) || !json_is_integer(code)) {
        fprintf(stderr, "berthctl: exec: %s\n",
                jstr(j, "error") ? jstr(j, "error") : "the command did not finish");
        rc = 124;
    } else {
        json_int_t c = json_integer_value(code);
        rc = c < 0 || c > 255 ? EXIT_ERR : (int)c;
    }
    json_decref(j);
    return rc;
}

/* A host or user name from berth safe to hand to ssh: no option, no shell. */
static bool safe_word(const char *s)
{
    return s && *s && *s != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") ==
               strlen(s);
}

int cmd_ssh(const struct args *a)
{
    int rc;
    json_t *j = get_instance(a->pos[0], &rc), *ssh;
    char port[16], dest[300];
    char **argv;
    int n = 0;

    if (!j)
        return rc;
    ssh = json_object_get(j, "ssh");
    if (!json_is_object(ssh)) {
        fprintf(stderr, "berthctl: instance %s has no SSH access (its template has no ssh_port)\n",
                a->pos[0]);
        json_decref(j);
        return EXIT_ERR;
    }
    json_int_t p = json_integer_value(json_object_get(ssh, "port"));
    if (p < 1 || p > 65535 || !safe_word(jstr(ssh, "host")) || !safe_word(jstr(ssh, "user"))) {
        fprintf(stderr, "berthctl: instance %s has no usable SSH address yet (is it running?)\n",
                a->pos[0]);
        json_decref(j);
        return EXIT_ERR;
    }
    snprintf(port, sizeof(port), "%lld", (long long)p);
    snprintf(dest, sizeof(dest), "%s@%s", jstr(ssh, "user"), jstr(ssh, "host"));
    json_decref(j);
    if (!(argv = calloc((size_t)a->nrest + 5, sizeof(*argv))))
        return EXIT_ERR;
    argv[n++] = (char *)"ssh";
    argv[n++] = (char *)"-p";
    argv[n++] = port;
    argv[n++] = dest;
    for (int i = 0; i < a->nrest; i++)
        argv[n++] = a->rest[i];
    fflush(stdout);
    execvp("ssh", argv);
    fprintf(stderr, "berthctl: cannot run ssh: %m\n");
    free(argv);
    return EXIT_ERR;
}

int cmd_open(const struct args *a)
{
    int rc;
    json_t *j = get_instance(a->pos[0], &rc);
    char url[2048];
    const char *display = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");

    if (!j)
        return rc;
    if (!jstr(j, "urls.open")) {
        fprintf(stderr,
                "berthctl: instance %s has no web address (its template has no "
                "http_port)\n",
                a->pos[0]);
        json_decref(j);
        return EXIT_ERR;
    }
    util_strlcpy(url, jstr(j, "urls.open"), sizeof(url));
    json_decref(j);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "berthctl: berth gave a URL that is not http(s): %s\n", url);
        return EXIT_ERR;
    }
    if (cli.json) {
        json_t *t = json_pack("{s:s}", "url", url);
        print_json(t);
        json_decref(t);
    } else {
        printf("%s\n", url);
    }
    if (!arg_flag(a, "--browser"))
        return EXIT_OK;
    if ((!display || !*display) && (!wayland || !*wayland)) {
        fprintf(stderr, "berthctl: no display here (DISPLAY is unset): open the URL yourself\n");
        return EXIT_OK;
    }
    fflush(stdout);
    execlp("xdg-open", "xdg-open", url, (char *)NULL);
    fprintf(stderr, "berthctl: cannot run xdg-open: %m\n");
    return EXIT_ERR;
}
