/*
 * template — see include/berth/template.h. Every rule is a small predicate so
 * the unit tests and the fuzzer can hit each one; tmpl_validate() walks the
 * object once, naming the first faulty field.
 */
#include "berth/template.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "berth/validate.h"

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component of a repository: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool path_component_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    while (i < n) {
        if (is_lower_alnum(s[i])) {
            i++;
            continue;
        }
        /* a separator: ".", "_", "__" or a run of "-", then an alnum */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i >= n || !is_lower_alnum(s[i]))
            return false;
    }
    return true;
}

/* A registry host: DNS labels (letters, digits, '-') joined by '.', optional :port. */
static bool domain_ok(const char *s, size_t n)
{
    size_t i = 0, label = 0;
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;

    if (hn == 0)
        return false;
    for (i = 0; i < hn; i++) {
        char c = s[i];
        if (isalnum((unsigned char)c)) {
            label++;
        } else if (c == '-' && label > 0 && i + 1 < hn && s[i + 1] != '.') {
            label++;
        } else if (c == '.' && label > 0 && i + 1 < hn) {
            label = 0;
        } else {
            return false;
        }
        if (label > 63)
            return false;
    }
    if (colon) {
        size_t pn = n - hn - 1;
        long port = 0;
        if (pn == 0 || pn > 5)
            return false;
        for (i = hn + 1; i < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                return false;
            port = port * 10 + (s[i] - '0');
        }
        if (port < 1 || port > 65535)
            return false;
    }
    return true;
}

bool tmpl_image_ok(const char *s)
{
    size_t n, i;
    const char *at, *name_end, *last_slash, *colon;

    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > TMPL_MAX_IMAGE)
        return false;
    at = strchr(s, '@');
    name_end = s + n;
    if (at) {
        const char *hex = at + 1;
        if (strncmp(hex, "sha256:", 7) != 0 || strlen(hex + 7) != 64)
            return false;
        for (i = 0; i < 64; i++)
            if (!isxdigit((unsigned char)hex[7 + i]) || isupper((unsigned char)hex[7 + i]))
                return false;
        name_end = at;
    }
    /* tag: after the last ':' that follows the last '/' */
    last_slash = NULL;
    for (const char *p = s; p < name_end; p++)
        if (*p == '/')
            last_slash = p;
    colon = NULL;
    for (const char *p = last_slash ? last_slash : s; p < name_end; p++)
        if (*p == ':')
            colon = p;
    if (colon) {
        const char *tag = colon + 1;
        size_t tn = (size_t)(name_end - tag);
        if (tn == 0 || tn > 128 || !(isalnum((unsigned char)tag[0]) || tag[0] == '_'))
            return false;
        for (i = 1; i < tn; i++)
            if (!(isalnum((unsigned char)tag[i]) || tag[i] == '_' || tag[i] == '.' ||
                  tag[i] == '-'))
                return false;
        name_end = colon;
    }
    /* components separated by '/'; the first may be a registry host */
    {
        const char *p = s;
        bool first = true;
        size_t ncomp = 0;
        while (p < name_end) {
            const char *slash = memchr(p, '/', (size_t)(name_end - p));
            const char *end = slash ? slash : name_end;
            size_t len = (size_t)(end - p);
            bool is_domain = first && slash &&
                             (memchr(p, '.', len) || memchr(p, ':', len) ||
                              (len == 9 && memcmp(p, "localhost", 9) == 0));
            if (is_domain) {
                if (!domain_ok(p, len))
                    return false;
            } else {
                /* uppercase letters in a host without a dot are not allowed either */
                if (!path_component_ok(p, len))
                    return false;
                ncomp++;
            }
            first = false;
            if (!slash)
                break;
            p = slash + 1;
            if (p == name_end)
                return false; /* trailing slash */
        }
        if (ncomp == 0)
            return false;
    }
    return true;
}

bool tmpl_mount_path_ok(const char *s)
{
    size_t n;
    if (!s || s[0] != '/')
        return false;
    n = strlen(s);
    if (n < 2 || n > 255 || s[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == ':' || c == ',' || c == '\\')
            return false;
        if (c == '/' && s[i + 1] == '/')
            return false;
        if (c == '/' && s[i + 1] == '.' &&
            (s[i + 2] == '/' || s[i + 2] == '\0' ||
             (s[i + 2] == '.' && (s[i + 3] == '/' || s[i + 3] == '\0'))))
            return false;
    }
    return true;
}

static const char *const capabilities[] = {TMPL_CAPABILITIES, NULL};

bool tmpl_capability_ok(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; capabilities[i]; i++)
        if (strcmp(s, capabilities[i]) == 0)
            return true;
    return false;
}

/* "CHOWN, DAC_OVERRIDE, ..." for the sentence of a refusal (into the
 * caller's buffer: berth-api validates on many threads). */
static const char *capability_list(char *list, size_t n)
{
    list[0] = '\0';
    for (size_t i = 0; capabilities[i]; i++)
        snprintf(list + strlen(list), n - strlen(list), "%s%s", i ? ", " : "", capabilities[i]);
    return list;
}

bool tmpl_env_name_ok(const char *s)
{
    size_t n;
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    n = strlen(s);
    if (n > 128)
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Text of an env value or command item: UTF-8, no NUL, bounded. */
static bool text_ok(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) <= TMPL_MAX_TEXT &&
           valid_utf8(json_string_value(v), json_string_length(v));
}

static bool port_ok(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535;
}

#define FAIL(f, ...)                                                                               \
    do {                                                                                           \
        *field = f;                                                                                \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

static int set_default(json_t *t, const char *key, json_t *def)
{
    if (!json_object_get(t, key))
        return json_object_set_new(t, key, def);
    json_decref(def);
    return 0;
}

static const char *const readonly_fields[] = {"id", "created_at", "updated_at", "image_build",
                                              NULL};

bool tmpl_readonly_field(const char *key)
{
    for (size_t i = 0; readonly_fields[i]; i++)
        if (strcmp(key, readonly_fields[i]) == 0)
            return true;
    return false;
}

void tmpl_strip_readonly(json_t *t)
{
    for (size_t i = 0; readonly_fields[i]; i++)
        json_object_del(t, readonly_fields[i]);
}

int tmpl_validate(json_t *t, const char **field, char *msg, size_t msglen)
{
    static const char *const known[] = {
        "id", "name", "description", "image", "http_port", "proxy_mode", "ports", "ssh_port",
        "volumes", "env", "command", "cpus", "memory_mb", "pids_limit", "restart_policy",
        "idle_timeout_s", "open_path", "capabilities", "disk_mb", "ssh_user",
        "no_new_privileges", "created_at", "updated_at", NULL};
    const char *key;
    json_t *v, *x;
    size_t i;

    if (!json_is_object(t))
        FAIL("template", "a template is a JSON object");
    json_object_foreach(t, key, v)
    {
        bool ok = false;
        for (i = 0; known[i]; i++)
            if (strcmp(key, known[i]) == 0)
                ok = true;
        if (!ok) {
            *field = "template";
            snprintf(msg, msglen, "unknown field '%.64s'", key);
            return -1;
        }
    }
    if (set_default(t, "description", json_string("")) < 0 ||
        set_default(t, "http_port", json_null()) < 0 ||
        set_default(t, "proxy_mode", json_string("strip")) < 0 ||
        set_default(t, "ports", json_object()) < 0 || set_default(t, "ssh_port", json_null()) < 0 ||
        set_default(t, "volumes", json_object()) < 0 || set_default(t, "env", json_object()) < 0 ||
        set_default(t, "command", json_null()) < 0 || set_default(t, "cpus", json_real(1.0)) < 0 ||
        set_default(t, "memory_mb", json_integer(1024)) < 0 ||
        set_default(t, "pids_limit", json_integer(512)) < 0 ||
        set_default(t, "restart_policy", json_string("unless-stopped")) < 0 ||
        set_default(t, "idle_timeout_s", json_integer(0)) < 0 ||
        set_default(t, "open_path", json_null()) < 0 ||
        set_default(t, "capabilities", json_array()) < 0 ||
        set_default(t, "disk_mb", json_integer(0)) < 0 ||
        set_default(t, "ssh_user", json_string("root")) < 0 ||
        set_default(t, "no_new_privileges", json_true()) < 0)
        FAIL("template", "out of memory");

    v = json_object_get(t, "name");
    if (!json_is_string(v) || !valid_name(json_string_value(v)))
        FAIL("name", "name must be 2-32 characters: lowercase letters, digits and '-', starting "
                     "with a letter and not ending with '-'");
    v = json_object_get(t, "description");
    if (!json_is_string(v) || json_string_length(v) > TMPL_MAX_DESCRIPTION ||
        !valid_utf8(json_string_value(v), json_string_length(v)))
        FAIL("description", "description must be text of at most %d bytes", TMPL_MAX_DESCRIPTION);
    v = json_object_get(t, "image");
    if (!json_is_string(v) || !tmpl_image_ok(json_string_value(v)))
        FAIL("image", "image must be a Docker image reference such as "
                      "'registry.example.com/team/app:1.2' (lowercase repository, optional tag "
                      "and @sha256 digest)");
    v = json_object_get(t, "http_port");
    if (!json_is_null(v) && !port_ok(v))
        FAIL("http_port", "http_port must be a port number 1-65535 or null");
    v = json_object_get(t, "ssh_port");
    if (!json_is_null(v) && !port_ok(v))
        FAIL("ssh_port", "ssh_port must be a port number 1-65535 or null");
    v = json_object_get(t, "proxy_mode");
    if (!json_is_string(v) || (strcmp(json_string_value(v), "strip") != 0 &&
                               strcmp(json_string_value(v), "keep") != 0))
        FAIL("proxy_mode", "proxy_mode must be 'strip' or 'keep'");
    v = json_object_get(t, "ports");
    if (!json_is_object(v) || json_object_size(v) > TMPL_MAX_PORTS)
        FAIL("ports", "ports must be an object of at most %d name: port entries", TMPL_MAX_PORTS);
    json_object_foreach(v, key, x)
    {
        if (!valid_name(key) || strcmp(key, "http") == 0 || strcmp(key, "ssh") == 0)
            FAIL("ports", "port names follow the name rule and may not be 'http' or 'ssh'");
        if (!port_ok(x))
            FAIL("ports", "port '%s' must be a port number 1-65535", key);
    }
    v = json_object_get(t, "volumes");
    if (!json_is_object(v) || json_object_size(v) > TMPL_MAX_VOLUMES)
        FAIL("volumes", "volumes must be an object of at most %d name: path entries",
             TMPL_MAX_VOLUMES);
    json_object_foreach(v, key, x)
    {
        const char *k2;
        json_t *y;
        if (!valid_name(key))
            FAIL("volumes", "volume names follow the name rule (2-32 of a-z, 0-9, '-')");
        if (!json_is_string(x) || !tmpl_mount_path_ok(json_string_value(x)))
            FAIL("volumes", "volume '%s' needs an absolute container path without '..'", key);
        json_object_foreach(v, k2, y)
        {
            if (k2 != key && json_is_string(y) &&
                strcmp(json_string_value(y), json_string_value(x)) == 0)
                FAIL("volumes", "two volumes are mounted at %s", json_string_value(x));
        }
    }
    v = json_object_get(t, "env");
    if (!json_is_object(v) || json_object_size(v) > TMPL_MAX_ENV)
        FAIL("env", "env must be an object of at most %d NAME: value entries", TMPL_MAX_ENV);
    json_object_foreach(v, key, x)
    {
        if (!tmpl_env_name_ok(key))
            FAIL("env", "env names are letters, digits and '_', not starting with a digit");
        if (!text_ok(x))
            FAIL("env", "env value of %s must be text of at most %d bytes", key, TMPL_MAX_TEXT);
    }
    v = json_object_get(t, "command");
    if (!json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TMPL_MAX_ARGS)
            FAIL("command", "command must be null or an array of 1-%d strings", TMPL_MAX_ARGS);
        json_array_foreach(v, i, x)
        {
            if (!text_ok(x))
                FAIL("command", "command items must be text of at most %d bytes", TMPL_MAX_TEXT);
        }
    }
    v = json_object_get(t, "cpus");
    if (!json_is_number(v) || !(json_number_value(v) >= 0.01) || json_number_value(v) > 1024)
        FAIL("cpus", "cpus must be a number from 0.01 to 1024");
    v = json_object_get(t, "memory_mb");
    if (!json_is_integer(v) || json_integer_value(v) < 6 || json_integer_value(v) > 4194304)
        FAIL("memory_mb", "memory_mb must be an integer from 6 to 4194304");
    v = json_object_get(t, "pids_limit");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 4194304)
        FAIL("pids_limit", "pids_limit must be an integer from 1 to 4194304");
    v = json_object_get(t, "restart_policy");
    if (!json_is_string(v) || (strcmp(json_string_value(v), "no") != 0 &&
                               strcmp(json_string_value(v), "on-failure") != 0 &&
                               strcmp(json_string_value(v), "unless-stopped") != 0))
        FAIL("restart_policy", "restart_policy must be 'no', 'on-failure' or 'unless-stopped'");
    v = json_object_get(t, "idle_timeout_s");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 31536000)
        FAIL("idle_timeout_s", "idle_timeout_s must be an integer from 0 to 31536000");
    v = json_object_get(t, "open_path");
    if (!json_is_null(v) && !tmpl_open_path_ok(json_string_value(v)))
        FAIL("open_path", "open_path must be null or 1-512 characters of a URL path and query "
                          "relative to the workspace (no leading '/', no '..', no '//', no spaces "
                          "or quotes), placeholders {user} {instance} {base_path} {base_path_rel}");
    v = json_object_get(t, "capabilities");
    if (!json_is_array(v) || json_array_size(v) > TMPL_MAX_CAPS)
        FAIL("capabilities", "capabilities must be an array of at most %d capability names",
             TMPL_MAX_CAPS);
    json_array_foreach(v, i, x)
    {
        const char *c = json_string_value(x);
        char list[256];
        if (!c)
            FAIL("capabilities", "capabilities must be an array of capability names (strings)");
        if (!tmpl_capability_ok(c))
            FAIL("capabilities",
                 "capability '%.40s' may not be added: a template may add only %s (upper "
                 "case, without CAP_)",
                 c, capability_list(list, sizeof(list)));
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_array_get(v, k)), c) == 0)
                FAIL("capabilities", "capability %s is named twice", c);
    }
    v = json_object_get(t, "disk_mb");
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > TMPL_MAX_DISK_MB)
        FAIL("disk_mb", "disk_mb must be an integer from 0 (no limit) to %d", TMPL_MAX_DISK_MB);
    v = json_object_get(t, "ssh_user");
    if (!tmpl_ssh_user_ok(json_string_value(v)))
        FAIL("ssh_user", "ssh_user must be a user name of 1-%d characters: letters, digits, '.', "
                         "'_' and '-', starting with a letter or '_'",
             TMPL_MAX_SSH_USER);
    if (!json_is_boolean(json_object_get(t, "no_new_privileges")))
        FAIL("no_new_privileges", "no_new_privileges must be true or false");
    return 0;
}

bool tmpl_ssh_user_ok(const char *s)
{
    size_t n;
    if (!s || !(n = strlen(s)) || n > TMPL_MAX_SSH_USER)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && (i == 0 || !((c >= '0' && c <= '9') || c == '.' || c == '-')))
            return false;
    }
    return true;
}

bool tmpl_open_path_ok(const char *s)
{
    char out[TMPL_MAX_OPEN_PATH * 4 + 256];
    size_t n;
    if (!s || !(n = strlen(s)) || n > TMPL_MAX_OPEN_PATH || s[0] == '/')
        return false;
    /* every brace is one of the placeholders: expanded, none may remain */
    if (tmpl_expand(s, "u", "i", "/container/u/i/", out, sizeof(out)) < 0 || strpbrk(out, "{}") ||
        out[0] == '/')
        return false;
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("\"'<>\\`^|", *p))
            return false;
    return !strstr(out, "..") && !strstr(s, "//") && !strcasestr(out, "%2e") &&
           !strcasestr(out, "%2f") && !strcasestr(out, "%5c");
}

int tmpl_expand(const char *s, const char *user, const char *instance, const char *base_path,
                char *out, size_t outlen)
{
    static const char *const names[] = {"{user}", "{instance}", "{base_path}", "{base_path_rel}"};
    const char *vals[] = {user, instance, base_path, base_path[0] == '/' ? base_path + 1 : base_path};
    size_t o = 0;

    if (outlen == 0)
        return -1;
    while (*s) {
        bool done = false;
        if (*s == '{') {
            for (size_t k = 0; k < 4; k++) {
                size_t nl = strlen(names[k]), vl = strlen(vals[k]);
                if (strncmp(s, names[k], nl) == 0) {
                    if (o + vl >= outlen)
                        return -1;
                    memcpy(out + o, vals[k], vl);
                    o += vl;
                    s += nl;
                    done = true;
                    break;
                }
            }
        }
        if (done)
            continue;
        if (o + 1 >= outlen)
            return -1;
        out[o++] = *s++;
    }
    out[o] = '\0';
    return 0;
}

int tmpl_expand_all(const json_t *t, const char *user, const char *instance, json_t **env,
                    json_t **cmd)
{
    char base[128], buf[TMPL_MAX_TEXT * 2 + 256];
    const char *key;
    json_t *v, *e = json_object(), *c = NULL;
    size_t i;

    snprintf(base, sizeof(base), "/container/%s/%s/", user, instance);
    if (!e)
        return -1;
    json_object_foreach(json_object_get(t, "env"), key, v)
    {
        if (!json_is_string(v) ||
            tmpl_expand(json_string_value(v), user, instance, base, buf, sizeof(buf)) < 0 ||
            json_object_set_new(e, key, json_string(buf)) < 0)
            goto fail;
    }
    v = json_object_get(t, "command");
    if (json_is_array(v)) {
        json_t *x;
        c = json_array();
        json_array_foreach(v, i, x)
        {
            if (!json_is_string(x) ||
                tmpl_expand(json_string_value(x), user, instance, base, buf, sizeof(buf)) < 0 ||
                json_array_append_new(c, json_string(buf)) < 0)
                goto fail;
        }
    } else {
        c = json_null();
    }
    *env = e;
    *cmd = c;
    return 0;
fail:
    json_decref(e);
    json_decref(c);
    return -1;
}
