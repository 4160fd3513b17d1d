/*
 * api — berthctl's calls with the handling every command shares: berth's
 * error answer in one sentence, lists followed through next_cursor, names
 * resolved to ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/util.h"
#include "berth/validate.h"
#include "cli.h"

int api_error(const char *doing, const struct resp *r)
{
    json_t *e = json_object_get(r->json, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *field = json_string_value(json_object_get(e, "field"));
    const char *hint = r->status == 401 ? "; log in with `berthctl login`, or set BERTH_TOKEN" : "";
    if (msg)
        fprintf(stderr, "berthctl%s%s: %s (%s%s%s, HTTP %ld)%s\n", doing ? " " : "",
                doing ? doing : "", msg, code ? code : "error", field ? ", field " : "",
                field ? field : "", r->status, hint);
    else
        fprintf(stderr, "berthctl%s%s: berth answered HTTP %ld%s\n", doing ? " " : "",
                doing ? doing : "", r->status, hint);
    return EXIT_ERR;
}

json_t *api_json(const char *method, const char *path, json_t *body, int *rc)
{
    struct resp r;
    json_t *j;
    if (http_call(method, path, body, NULL, NULL, NULL, &r) < 0) {
        *rc = EXIT_ERR;
        return NULL;
    }
    if (r.status < 200 || r.status >= 300) {
        *rc = api_error(cli.command, &r);
        resp_free(&r);
        return NULL;
    }
    j = r.json ? json_incref(r.json) : json_object();
    resp_free(&r);
    *rc = EXIT_OK;
    return j;
}

int api_emit(const char *method, const char *path, json_t *body, void (*human)(json_t *))
{
    int rc;
    json_t *j = api_json(method, path, body, &rc);
    return j ? emit(j, human) : rc;
}

void print_job(json_t *j)
{
    printf("job %s (%s): %s\n", jstr(j, "id") ? jstr(j, "id") : "-",
           jstr(j, "kind") ? jstr(j, "kind") : "-", jstr(j, "status") ? jstr(j, "status") : "-");
}

int path_query(char *buf, size_t size, const char *key, const char *value)
{
    char enc[1024];
    size_t len = strlen(buf);
    if (util_url_encode(value, enc, sizeof(enc)) < 0)
        return -1;
    if (snprintf(buf + len, size - len, "%c%s=%s", strchr(buf, '?') ? '&' : '?', key, enc) >=
        (int)(size - len)) {
        buf[len] = '\0';
        return -1;
    }
    return 0;
}

static long page_size(void)
{
    long n;
    const char *e = getenv("BERTH_PAGE_SIZE");
    return e && util_parse_long(e, 1, 500, &n) ? n : 500;
}

json_t *api_list(const char *path, size_t max, int *rc)
{
    json_t *all = json_array();
    char cursor[256] = "", page[2048], lim[24];
    long size = page_size();

    for (;;) {
        json_t *j, *items, *next;
        util_strlcpy(page, path, sizeof(page));
        if (max && max - json_array_size(all) < (size_t)size)
            size = (long)(max - json_array_size(all));
        snprintf(lim, sizeof(lim), "%ld", size);
        if (path_query(page, sizeof(page), "limit", lim) < 0 ||
            (cursor[0] && path_query(page, sizeof(page), "cursor", cursor) < 0)) {
            fprintf(stderr, "berthctl: the request path is too long\n");
            *rc = EXIT_USAGE;
            json_decref(all);
            return NULL;
        }
        if (!(j = api_json("GET", page, NULL, rc))) {
            json_decref(all);
            return NULL;
        }
        items = json_object_get(j, "items");
        if (!json_is_array(items)) {
            fprintf(stderr, "berthctl: GET %s: berth's answer has no list of items\n", path);
            json_decref(j);
            json_decref(all);
            *rc = EXIT_ERR;
            return NULL;
        }
        json_array_extend(all, items);
        next = json_object_get(j, "next_cursor");
        if (!json_is_string(next) || !json_string_length(next) ||
            strcmp(json_string_value(next), cursor) == 0 || (max && json_array_size(all) >= max)) {
            json_decref(j);
            break;
        }
        util_strlcpy(cursor, json_string_value(next), sizeof(cursor));
        json_decref(j);
    }
    *rc = EXIT_OK;
    return json_pack("{s:o, s:n}", "items", all, "next_cursor");
}

int api_resolve(const char *list, const char *name_key, const char *arg, const char *what,
                bool name_rule, char id[64])
{
    const char *noun = strchr(what, ' ') ? strchr(what, ' ') + 1 : what;
    json_t *all, *it;
    size_t i, found = 0;
    int rc;

    if (valid_uuid(arg)) {
        util_strlcpy(id, arg, 64);
        return EXIT_OK;
    }
    if (!*arg || (name_rule && !valid_name(arg))) {
        fprintf(stderr,
                "berthctl: '%s' is neither %s id nor %s name (names: 2-32 of a-z, 0-9 and -)\n",
                arg, what, what);
        return EXIT_USAGE;
    }
    if (!(all = api_list(list, 0, &rc)))
        return rc;
    json_array_foreach(json_object_get(all, "items"), i, it)
    {
        const char *n = jstr(it, name_key), *iid = jstr(it, "id");
        if (n && iid && strcmp(n, arg) == 0 && valid_uuid(iid)) {
            if (!found++)
                util_strlcpy(id, iid, 64);
        }
    }
    json_decref(all);
    if (found == 1)
        return EXIT_OK;
    if (found > 1)
        fprintf(stderr, "berthctl: %zu %ss are named '%s': give the id instead\n", found, noun,
                arg);
    else
        fprintf(stderr, "berthctl: there is no %s '%s' that you can see\n", noun, arg);
    return EXIT_ERR;
}

int resolve_instance(const char *arg, char id[64])
{
    return api_resolve("/api/v1/instances", "name", arg, "an instance", true, id);
}

int list_print(const char *path, size_t max, const char *cols)
{
    int rc;
    json_t *j = api_list(path, max, &rc);
    if (!j)
        return rc;
    if (cli.json)
        print_json(j);
    else
        print_table(json_object_get(j, "items"), cols);
    json_decref(j);
    return EXIT_OK;
}

int delete_named(const char *list, const char *arg, const char *what, const char *done)
{
    char id[64], path[200];
    int rc = api_resolve(list, "name", arg, what, false, id);
    json_t *j;
    if (rc != EXIT_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", list, id);
    if (!(j = api_json("DELETE", path, NULL, &rc)))
        return rc;
    json_decref(j);
    if (cli.json)
        printf("{\"id\":\"%s\",\"deleted\":true}\n", id);
    else
        printf("%s %s\n", done, id);
    return EXIT_OK;
}
