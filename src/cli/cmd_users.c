/*
 * cmd_users — the admin's user management: ls, show, create, update,
 * disable, enable, rm. NAME is a user name or a user id.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/util.h"
#include "cli.h"

static const char user_cols[] =
    "ID=id,USERNAME=username,ROLE=role,DISABLED=disabled,"
    "QUOTA INSTANCES=quota.instances,CPUS=quota.cpus,MEMORY_MB=quota.memory_mb,"
    "CREATED=created_at";

/* The path of user arg (a name or an id) plus suffix; EXIT_OK or the exit code. */
static int user_path(const char *arg, const char *suffix, char *out, size_t n)
{
    char list[200] = "/api/v1/users", id[64];
    int rc;
    if (path_query(list, sizeof(list), "q", arg) < 0)
        return EXIT_USAGE;
    if ((rc = api_resolve(list, "username", arg, "a user", true, id)) == EXIT_OK)
        snprintf(out, n, "/api/v1/users/%s%s", id, suffix);
    return rc;
}

/* --quota-* options into body.quota; EXIT_OK or EXIT_USAGE (printed). */
static int quota_from(const struct args *a, json_t *body)
{
    json_t *q = json_object();
    long inst, mem;
    const char *cpus = arg_value(a, "--quota-cpus");
    int hi = arg_long(a, "--quota-instances", 0, 1000000, &inst);
    int hm = arg_long(a, "--quota-memory-mb", 0, 1L << 40, &mem);
    if (hi < 0 || hm < 0) {
        json_decref(q);
        return EXIT_USAGE;
    }
    if (hi)
        json_object_set_new(q, "instances", json_integer(inst));
    if (hm)
        json_object_set_new(q, "memory_mb", json_integer(mem));
    if (cpus) {
        char *end;
        double c = strtod(cpus, &end);
        if (end == cpus || *end || !isfinite(c) || c < 0) {
            json_decref(q);
            return usage_error(a, "--quota-cpus takes a number such as 2 or 0.5, not '%s'", cpus);
        }
        json_object_set_new(q, "cpus", json_real(c));
    }
    if (json_object_size(q))
        json_object_set_new(body, "quota", q);
    else
        json_decref(q);
    return EXIT_OK;
}

/* The password of --password-stdin (one line of stdin), or asked twice on a
 * terminal when ask; into body.password. EXIT_OK or EXIT_USAGE. */
static int password_into(const struct args *a, json_t *body, bool ask)
{
    char pw[1100], again[1100];
    bool from_stdin = arg_flag(a, "--password-stdin");
    int rc = EXIT_OK;
    if (!from_stdin && !ask)
        return EXIT_OK;
    if (!from_stdin && !isatty(STDIN_FILENO))
        return usage_error(a, "give --password-stdin, or run it on a terminal to be asked");
    if (read_secret("password: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "berthctl: no password given\n");
        return EXIT_USAGE;
    }
    if (!from_stdin &&
        (read_secret("password again: ", again, sizeof(again)) < 0 || strcmp(pw, again))) {
        fprintf(stderr, "berthctl: the passwords differ\n");
        rc = EXIT_USAGE;
    } else if (json_object_set_new(body, "password", json_string(pw)) < 0) {
        rc = usage_error(a, "the password is not valid UTF-8");
    }
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(again, sizeof(again));
    return rc;
}

static void print_user(json_t *j)
{
    printf("user %s (%s): %s%s\n", jstr(j, "username"), jstr(j, "id"), jstr(j, "role"),
           json_is_true(json_object_get(j, "disabled")) ? ", disabled" : "");
}

/* Send body to path with method; print the user it answers. Takes body. */
static int user_write(const char *method, const char *path, json_t *body)
{
    int rc = api_emit(method, path, body, print_user);
    json_decref(body);
    return rc;
}

int cmd_users_ls(const struct args *a)
{
    char path[300] = "/api/v1/users";
    const char *q = arg_value(a, "--query");
    if (q && path_query(path, sizeof(path), "q", q) < 0)
        return usage_error(a, "the query is too long");
    return list_print(path, 0, user_cols);
}

int cmd_users_show(const struct args *a)
{
    char path[200];
    int rc = user_path(a->pos[0], "", path, sizeof(path));
    return rc != EXIT_OK ? rc : api_emit("GET", path, NULL, print_fields);
}

int cmd_users_create(const struct args *a)
{
    const char *role = arg_value(a, "--role");
    json_t *body;
    int rc;
    if (!role)
        return usage_error(a, "--role is needed: admin, developer or viewer");
    if (!(body = json_pack("{s:s, s:s}", "username", a->pos[0], "role", role)))
        return usage_error(a, "the name or role is not valid UTF-8");
    if ((rc = quota_from(a, body)) != EXIT_OK || (rc = password_into(a, body, true)) != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    return user_write("POST", "/api/v1/users", body);
}

int cmd_users_update(const struct args *a)
{
    char path[200];
    const char *role = arg_value(a, "--role");
    json_t *body = json_object();
    int rc;
    if (role)
        json_object_set_new(body, "role", json_string(role));
    if (arg_flag(a, "--revoke-tokens"))
        json_object_set_new(body, "revoke_tokens", json_true());
    if ((rc = quota_from(a, body)) != EXIT_OK || (rc = password_into(a, body, false)) != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    if (!json_object_size(body)) {
        json_decref(body);
        return usage_error(a, "say what to change: --role, --password-stdin, --revoke-tokens or "
                              "a --quota-* option");
    }
    if ((rc = user_path(a->pos[0], "", path, sizeof(path))) != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    return user_write("PATCH", path, body);
}

int cmd_users_state(const struct args *a)
{
    char path[200];
    int rc = user_path(a->pos[0], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    return user_write("PATCH", path,
                      json_pack("{s:b}", "disabled", strcmp(a->cmd->name, "users disable") == 0));
}

int cmd_users_rm(const struct args *a)
{
    char path[200];
    int rc = user_path(a->pos[0], arg_flag(a, "--delete-volumes") ? "?delete_volumes=true" : "",
                       path, sizeof(path));
    return rc != EXIT_OK ? rc : api_emit("DELETE", path, NULL, print_job);
}
