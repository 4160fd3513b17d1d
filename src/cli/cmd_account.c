/*
 * cmd_account — the caller's own account: login, whoami, passwd, API tokens,
 * SSH keys; health and the raw `api` call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/util.h"
#include "berth/validate.h"
#include "cli.h"

int cmd_login(const struct args *a)
{
    const char *user = a->npos ? a->pos[0] : getenv("USER");
    char pw[1100], cookie[300], csrf_hdr[128], cookie_hdr[320], name[64], host[40] = "";
    const char *hdrs[] = {cookie_hdr, csrf_hdr, NULL};
    struct resp r;
    json_t *body;
    int rc;

    if (!user || !*user)
        return usage_error(a, "name the user");
    if (read_secret("password: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "berthctl: no password given\n");
        return EXIT_USAGE;
    }
    cli.token[0] = '\0';
    body = json_pack("{s:s, s:s}", "username", user, "password", pw);
    explicit_bzero(pw, sizeof(pw));
    if (!body) {
        fprintf(stderr, "berthctl: the user name or password is not valid UTF-8\n");
        return EXIT_USAGE;
    }
    rc = http_call("POST", "/api/v1/auth/login", body, NULL, NULL, NULL, &r);
    json_decref(body);
    if (rc < 0)
        return EXIT_ERR;
    if (r.status != 200) {
        rc = api_error("login", &r);
        resp_free(&r);
        return rc;
    }
    /* Trade the browser-style session for an API token, then end the session. */
    util_strlcpy(cookie, r.set_cookie, sizeof(cookie));
    cookie[strcspn(cookie, ";\r\n")] = '\0';
    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: %s", cookie);
    snprintf(csrf_hdr, sizeof(csrf_hdr), "X-CSRF-Token: %s",
             jstr(r.json, "csrf_token") ? jstr(r.json, "csrf_token") : "");
    resp_free(&r);
    gethostname(host, sizeof(host) - 1);
    snprintf(name, sizeof(name), "berthctl@%s", host);
    body = json_pack("{s:s}", "name", name);
    rc = EXIT_ERR;
    if (http_call("POST", "/api/v1/tokens", body, hdrs, NULL, NULL, &r) == 0) {
        if (r.status == 201 && jstr(r.json, "token")) {
            rc = token_save(jstr(r.json, "token")) == 0 ? EXIT_OK : EXIT_ERR;
            if (rc == EXIT_OK && !cli.json) {
                printf("logged in as %s\n", user);
            } else if (rc == EXIT_OK) {
                json_t *j = json_pack("{s:s, s:s}", "username", user, "token_name", name);
                print_json(j);
                json_decref(j);
            }
        } else {
            rc = api_error("login: creating a token", &r);
        }
        resp_free(&r);
    }
    json_decref(body);
    if (http_call("POST", "/api/v1/auth/logout", NULL, hdrs, NULL, NULL, &r) == 0)
        resp_free(&r);
    return rc;
}

static void print_me(json_t *j)
{
    printf("%s (%s)\n", jstr(j, "user.username"), jstr(j, "user.role"));
}

int cmd_whoami(const struct args *a)
{
    return api_emit("GET", "/api/v1/auth/me", NULL, print_me);
}

/* The current and the new password, from the terminal (the new one asked
 * twice) or two lines of stdin. */
int cmd_passwd(const struct args *a)
{
    char cur[1100], nw[1100], again[1100];
    bool revoke = arg_flag(a, "--revoke-tokens");
    json_t *body, *j;
    int rc = EXIT_USAGE;

    if (read_secret("current password: ", cur, sizeof(cur)) < 0 ||
        read_secret("new password: ", nw, sizeof(nw)) < 0) {
        fprintf(stderr, "berthctl: no password given\n");
        goto out;
    }
    if (isatty(STDIN_FILENO) &&
        (read_secret("new password again: ", again, sizeof(again)) < 0 || strcmp(again, nw))) {
        fprintf(stderr, "berthctl: the new passwords differ\n");
        goto out;
    }
    body = json_pack("{s:s, s:s, s:b}", "current_password", cur, "new_password", nw,
                     "revoke_tokens", revoke);
    if (!body) {
        fprintf(stderr, "berthctl: a password is not valid UTF-8\n");
        goto out;
    }
    j = api_json("POST", "/api/v1/auth/password", body, &rc);
    json_decref(body);
    if (!j)
        goto out;
    if (cli.json)
        print_json(j);
    else if (revoke)
        printf("password changed; %lld API token(s) revoked, this one included: run "
               "`berthctl login` again\n",
               (long long)json_integer_value(json_object_get(j, "tokens_revoked")));
    else
        printf("password changed; your API tokens still work\n");
    json_decref(j);
    rc = EXIT_OK;
out:
    explicit_bzero(cur, sizeof(cur));
    explicit_bzero(nw, sizeof(nw));
    explicit_bzero(again, sizeof(again));
    return rc;
}

static void print_health(json_t *j)
{
    const char *k;
    json_t *v;
    char buf[256];
    printf("status: %s\n", jstr(j, "status") ? jstr(j, "status") : "-");
    json_object_foreach(json_object_get(j, "checks"), k, v)
    {
        printf("  %-9s %s\n", k, jtext(v, "", buf, sizeof(buf)));
    }
}

/* Health answers 503 with the checks when one is down: printed, exit 1. */
int cmd_health(const struct args *a)
{
    struct resp r;
    int rc;
    if (http_call("GET", "/api/v1/health", NULL, NULL, NULL, NULL, &r) < 0)
        return EXIT_ERR;
    if (r.status == 200 || (r.status == 503 && json_object_get(r.json, "checks"))) {
        emit(json_incref(r.json), print_health);
        rc = r.status == 200 ? EXIT_OK : api_error(cli.command, &r);
    } else {
        rc = api_error(cli.command, &r);
    }
    resp_free(&r);
    return rc;
}

int cmd_api(const struct args *a)
{
    char why[300];
    json_t *body = NULL;
    struct resp r;
    int rc;

    if (strspn(a->pos[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(a->pos[0]))
        return usage_error(a, "METHOD is a word in capitals such as GET, not '%s'", a->pos[0]);
    if (http_path_check(a->pos[1], why, sizeof(why)) < 0)
        return usage_error(a, "%s", why);
    if (a->npos == 3 && !(body = json_loads(a->pos[2], JSON_DECODE_ANY, NULL))) {
        fprintf(stderr, "berthctl: the body is not valid JSON\n");
        return EXIT_USAGE;
    }
    rc = http_call(a->pos[0], a->pos[1], body, NULL, NULL, NULL, &r);
    json_decref(body);
    if (rc < 0)
        return EXIT_ERR;
    if (r.status >= 300) {
        rc = api_error(cli.command, &r);
    } else {
        if (r.len)
            printf("%s%s", r.body, r.body[r.len - 1] == '\n' ? "" : "\n");
        rc = EXIT_OK;
    }
    resp_free(&r);
    return rc;
}

/* ---- tokens ---- */

static const char token_cols[] =
    "ID=id,NAME=name,CREATED=created_at,LAST USED=last_used_at,EXPIRES=expires_at";
static const char key_cols[] = "ID=id,NAME=name,TYPE=type,FINGERPRINT=fingerprint,ADDED=created_at";

int cmd_tokens_ls(const struct args *a)
{
    return list_print("/api/v1/tokens", 0, token_cols);
}

static void print_new_token(json_t *j)
{
    printf("token %s (%s): %s\nkeep it now: berth shows it only this once\n", jstr(j, "name"),
           jstr(j, "id"), jstr(j, "token"));
}

int cmd_tokens_create(const struct args *a)
{
    long days;
    int rc, has = arg_long(a, "--expires-days", 1, 36500, &days);
    json_t *body;
    if (has < 0)
        return EXIT_USAGE;
    if (!(body = json_pack("{s:s}", "name", a->pos[0])))
        return usage_error(a, "the name is not valid UTF-8");
    if (has)
        json_object_set_new(body, "expires_in_days", json_integer(days));
    rc = api_emit("POST", "/api/v1/tokens", body, print_new_token);
    json_decref(body);
    return rc;
}

int cmd_tokens_revoke(const struct args *a)
{
    return delete_named("/api/v1/tokens", a->pos[0], "a token", "revoked token");
}

/* ---- SSH keys ---- */

int cmd_keys_ls(const struct args *a)
{
    return list_print("/api/v1/ssh-keys", 0, key_cols);
}

static void print_key_added(json_t *j)
{
    printf("added key %s (%s) %s\n", jstr(j, "name"), jstr(j, "type"), jstr(j, "fingerprint"));
}

int cmd_keys_add(const struct args *a)
{
    const char *file = a->pos[1];
    char key[16384];
    size_t n;
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    json_t *body;
    int rc;

    if (!f) {
        fprintf(stderr, "berthctl: cannot read %s: %m\n", file);
        return EXIT_USAGE;
    }
    n = fread(key, 1, sizeof(key) - 1, f);
    key[n] = '\0';
    if (f != stdin)
        fclose(f);
    while (n && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' '))
        key[--n] = '\0';
    if (strstr(key, "PRIVATE KEY")) {
        fprintf(stderr,
                "berthctl: %s is a private key: give the .pub file, and never send the "
                "private one anywhere\n",
                file);
        return EXIT_USAGE;
    }
    if (!(body = json_pack("{s:s, s:s}", "name", a->pos[0], "public_key", key)))
        return usage_error(a, "the name or the key is not valid UTF-8");
    rc = api_emit("POST", "/api/v1/ssh-keys", body, print_key_added);
    json_decref(body);
    return rc;
}

int cmd_keys_rm(const struct args *a)
{
    return delete_named("/api/v1/ssh-keys", a->pos[0], "an SSH key", "removed key");
}
