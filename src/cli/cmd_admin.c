/*
 * cmd_admin — templates, volumes, nodes and the audit log. Reading templates
 * and one's own volumes is anyone's; the rest is for admins (berth decides
 * and says so).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "berth/validate.h"
#include "cli.h"

/* ---- templates ---- */

static const char template_cols[] =
    "NAME=name,IMAGE=image,CPUS=cpus,MEMORY_MB=memory_mb,HTTP=http_port,"
    "SSH=ssh_port,IMAGE BUILD=image_build.state,DESCRIPTION=description";

/* The path of template arg (a name or an id) plus nothing; EXIT_OK or EXIT_USAGE. */
static int template_path(const struct args *a, const char *arg, char *out, size_t n)
{
    if (!valid_name(arg) && !valid_uuid(arg))
        return usage_error(a, "'%s' is neither a template id nor a template name", arg);
    snprintf(out, n, "/api/v1/templates/%s", arg);
    return EXIT_OK;
}

/* The JSON object in the file of -f (- for stdin), or NULL after a usage error. */
static json_t *read_json_file(const struct args *a)
{
    const char *file = arg_value(a, "--file");
    json_error_t e;
    json_t *j;
    if (!file) {
        usage_error(a, "-f FILE is needed: the template's fields as JSON");
        return NULL;
    }
    j = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &e) : json_load_file(file, 0, &e);
    if (!j) {
        fprintf(stderr, "berthctl: %s: %s (line %d, column %d)\n", file, e.text, e.line, e.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        fprintf(stderr, "berthctl: %s: the template must be a JSON object\n", file);
        json_decref(j);
        return NULL;
    }
    return j;
}

int cmd_templates_ls(const struct args *a)
{
    return list_print("/api/v1/templates", 0, template_cols);
}

int cmd_templates_show(const struct args *a)
{
    char path[200];
    int rc = template_path(a, a->pos[0], path, sizeof(path));
    return rc != EXIT_OK ? rc : api_emit("GET", path, NULL, print_fields);
}

static void print_template_saved(json_t *j)
{
    printf("saved template %s (%s)\n", jstr(j, "name"), jstr(j, "id"));
}

/* POST (create) or PATCH (update) the template of -f to path. */
static int template_write(const struct args *a, const char *method, const char *path)
{
    int rc;
    json_t *body = read_json_file(a);
    if (!body)
        return EXIT_USAGE;
    rc = api_emit(method, path, body, print_template_saved);
    json_decref(body);
    return rc;
}

int cmd_templates_create(const struct args *a)
{
    return template_write(a, "POST", "/api/v1/templates");
}

int cmd_templates_update(const struct args *a)
{
    char path[200];
    int rc = template_path(a, a->pos[0], path, sizeof(path));
    return rc != EXIT_OK ? rc : template_write(a, "PATCH", path);
}

int cmd_templates_delete(const struct args *a)
{
    char path[200];
    int rc = template_path(a, a->pos[0], path, sizeof(path));
    json_t *j = rc == EXIT_OK ? api_json("DELETE", path, NULL, &rc) : NULL;
    if (!j)
        return rc;
    json_decref(j);
    if (cli.json)
        printf("{\"name\":\"%s\",\"deleted\":true}\n", a->pos[0]);
    else
        printf("deleted template %s\n", a->pos[0]);
    return EXIT_OK;
}

/* ---- volumes, nodes ---- */

int cmd_volumes_ls(const struct args *a)
{
    static const char cols[] =
        "ID=id,NAME=name,TEMPLATE=template,MOUNT=mount_path,INSTANCE=instance_id,"
        "CREATED=created_at";
    return list_print(arg_flag(a, "--all") ? "/api/v1/volumes?all=true" : "/api/v1/volumes", 0,
                      cols);
}

int cmd_volumes_rm(const struct args *a)
{
    char path[200];
    if (!valid_uuid(a->pos[0]))
        return usage_error(a, "'%s' is not a volume id (berthctl volumes ls shows them)",
                           a->pos[0]);
    snprintf(path, sizeof(path), "/api/v1/volumes/%s", a->pos[0]);
    return api_emit("DELETE", path, NULL, print_job);
}

int cmd_nodes(const struct args *a)
{
    static const char cols[] = "NAME=name,STATUS=status,INSTANCES=instances,LAST SEEN=last_seen_at,"
                               "DOCKER=docker_endpoint";
    return list_print("/api/v1/nodes", 0, cols);
}

/* ---- audit ---- */

/* Every matching row, page after page (X-Next-Cursor), in fmt on stdout;
 * the CSV header only once. */
static int audit_export(const char *base, const char *fmt)
{
    char cursor[128] = "", page[2048], lim[24];
    long size = 10000;
    const char *e = getenv("BERTH_PAGE_SIZE");
    bool first = true;

    if (e && !util_parse_long(e, 1, 10000, &size))
        size = 10000;
    snprintf(lim, sizeof(lim), "%ld", size);
    for (;;) {
        struct resp r;
        const char *body;
        util_strlcpy(page, base, sizeof(page));
        if (path_query(page, sizeof(page), "format", fmt) < 0 ||
            path_query(page, sizeof(page), "limit", lim) < 0 ||
            (cursor[0] && path_query(page, sizeof(page), "cursor", cursor) < 0)) {
            fprintf(stderr, "berthctl: the request path is too long\n");
            return EXIT_USAGE;
        }
        if (http_call("GET", page, NULL, NULL, NULL, NULL, &r) < 0)
            return EXIT_ERR;
        if (r.status != 200) {
            int rc = api_error(cli.command, &r);
            resp_free(&r);
            return rc;
        }
        body = r.body ? r.body : "";
        if (!first && strcmp(fmt, "csv") == 0 && strchr(body, '\n'))
            body = strchr(body, '\n') + 1; /* the header again */
        fputs(body, stdout);
        first = false;
        if (!r.next_cursor[0] || strcmp(r.next_cursor, cursor) == 0) {
            resp_free(&r);
            break;
        }
        util_strlcpy(cursor, r.next_cursor, sizeof(cursor));
        resp_free(&r);
    }
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERR;
}

int cmd_audit(const struct args *a)
{
    static const char *const filters[] = {"user", "action", "target", "outcome", "since", "until"};
    static const char cols[] = "AT=at,ACTOR=actor,ACTION=action,TYPE=target_type,TARGET=target_id,"
                               "OUTCOME=outcome,IP=ip";
    char path[2048] = "/api/v1/audit", opt[24];
    const char *fmt = arg_value(a, "--export");
    long limit = 100;

    for (size_t i = 0; i < ARRAY_LEN(filters); i++) {
        const char *v;
        snprintf(opt, sizeof(opt), "--%s", filters[i]);
        if ((v = arg_value(a, opt)) && path_query(path, sizeof(path), filters[i], v) < 0)
            return usage_error(a, "%s is too long", opt);
    }
    if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "jsonl") != 0)
        return usage_error(a, "--export takes csv or jsonl, not '%s'", fmt);
    if (fmt)
        return audit_export(path, fmt);
    if (arg_long(a, "--limit", 1, 1000000, &limit) < 0)
        return EXIT_USAGE;
    return list_print(path, (size_t)limit, cols);
}
