/*
 * workspace — see include/berth/workspace.h.
 */
#include "berth/workspace.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "berth/util.h"
#include "berth/validate.h"

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* ":PORT" with PORT 1-65535 and nothing after it. */
static bool port_ok(const char *s)
{
    long n;
    return s[0] == ':' && s[1] != '\0' && strlen(s) <= 6 && util_parse_long(s + 1, 1, 65535, &n);
}

/* One literal label: [a-z0-9-]{1,63}, not starting or ending with '-'. */
static bool literal_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!host_char(s[i]))
            return false;
    return true;
}

static const char *scheme_end(const char *url)
{
    if (strncmp(url, "http://", 7) == 0)
        return url + 7;
    if (strncmp(url, "https://", 8) == 0)
        return url + 8;
    return NULL;
}

bool ws_public_url_valid(const char *url, char *err, size_t errlen)
{
    const char *h = url ? scheme_end(url) : NULL, *colon;
    size_t n;

    if (!h) {
        snprintf(err, errlen, "public_url must start with http:// or https://");
        return false;
    }
    colon = strchr(h, ':');
    n = colon ? (size_t)(colon - h) : strlen(h);
    if (n == 0 || n > 253 || (colon && !port_ok(colon))) {
        snprintf(err, errlen, "public_url must be http(s)://HOST[:PORT] with no path");
        return false;
    }
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (!literal_label(h + start, i - start)) {
                snprintf(err, errlen,
                         "public_url's host must be dot-separated labels of a-z, 0-9 and '-'");
                return false;
            }
            start = i + 1;
        }
    }
    return true;
}

bool ws_same_origin(const char *pattern)
{
    return pattern && strcmp(pattern, "same") == 0;
}

bool ws_pattern_valid(const char *pattern, char *err, size_t errlen)
{
    const char *colon;
    size_t n;
    int users = 0, insts = 0;

    if (ws_same_origin(pattern))
        return true;
    if (!pattern || !*pattern) {
        snprintf(err, errlen, "workspace_host must be 'same' or a host pattern such as "
                              "{user}.localhost");
        return false;
    }
    colon = strchr(pattern, ':');
    n = colon ? (size_t)(colon - pattern) : strlen(pattern);
    if (colon && !port_ok(colon)) {
        snprintf(err, errlen, "workspace_host: the port after ':' must be 1-65535");
        return false;
    }
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && pattern[i] != '.')
            continue;
        const char *l = pattern + start;
        size_t ln = i - start;
        if (ln == 6 && strncmp(l, "{user}", 6) == 0)
            users++;
        else if (ln == 10 && strncmp(l, "{instance}", 10) == 0)
            insts++;
        else if (!literal_label(l, ln)) {
            snprintf(err, errlen,
                     "workspace_host: each dot-separated label must be {user}, {instance} or "
                     "a-z, 0-9 and '-' (got '%.*s')",
                     (int)ln, l);
            return false;
        }
        start = i + 1;
    }
    if (users != 1 || insts > 1) {
        snprintf(err, errlen, "workspace_host must hold {user} once (and {instance} at most once), "
                              "each as a whole label");
        return false;
    }
    return true;
}

int ws_origin(const char *public_url, const char *pattern, const char *user, const char *instance,
              char *out, size_t size)
{
    const char *h = scheme_end(public_url), *port, *colon;
    size_t used;
    int n;

    if (!h || !valid_name(user) || !valid_name(instance))
        return -1;
    if (ws_same_origin(pattern)) {
        if (util_strlcpy(out, public_url, size) >= size)
            return -1;
        return 0;
    }
    colon = strchr(pattern, ':');
    port = colon ? colon : strchr(h, ':');
    n = snprintf(out, size, "%.*s", (int)(h - public_url), public_url);
    if (n < 0 || (size_t)n >= size)
        return -1;
    used = (size_t)n;
    for (const char *p = pattern; *p && p != colon;) {
        const char *sub = NULL;
        size_t skip = 1;
        if (strncmp(p, "{user}", 6) == 0)
            sub = user, skip = 6;
        else if (strncmp(p, "{instance}", 10) == 0)
            sub = instance, skip = 10;
        n = sub ? snprintf(out + used, size - used, "%s", sub)
                : snprintf(out + used, size - used, "%c", *p);
        if (n < 0 || (size_t)n >= size - used)
            return -1;
        used += (size_t)n;
        p += skip;
    }
    if (port) {
        n = snprintf(out + used, size - used, "%s", port);
        if (n < 0 || (size_t)n >= size - used)
            return -1;
    }
    return 0;
}

/* The host[:port] part of an origin (points into it). */
static const char *origin_host(const char *origin)
{
    const char *h = scheme_end(origin);
    return h ? h : origin;
}

/* Length of the host part of "host[:port]" and its port (0: none). */
static size_t split_port(const char *hp, long *port)
{
    const char *colon = strchr(hp, ':');
    *port = 0;
    if (!colon)
        return strlen(hp);
    if (!util_parse_long(colon + 1, 1, 65535, port))
        *port = -1;
    return (size_t)(colon - hp);
}

bool ws_host_matches(const char *origin, const char *host)
{
    const char *want = origin_host(origin);
    long def = strncmp(origin, "https://", 8) == 0 ? 443 : 80, wp, hp;
    size_t wn, hn;

    if (!host || !*host)
        return false;
    wn = split_port(want, &wp);
    hn = split_port(host, &hp);
    if (wp < 0 || hp < 0 || wn != hn || strncasecmp(want, host, wn) != 0)
        return false;
    if (wp == 0)
        wp = def;
    if (hp == 0)
        hp = def;
    return wp == hp;
}

bool ws_origin_matches(const char *origin, const char *header)
{
    const char *h;
    size_t sn;
    if (!header || !(h = scheme_end(header)))
        return false;
    sn = (size_t)(h - header);
    if (strncmp(origin, header, sn) != 0 || strchr(h, '/'))
        return false;
    return ws_host_matches(origin, h);
}

bool ws_raw_prefix_ok(const char *raw, const char *user, const char *instance)
{
    size_t ul, il;
    if (!raw || !user || !instance || strncmp(raw, "/container/", 11) != 0)
        return false;
    raw += 11;
    ul = strlen(user);
    il = strlen(instance);
    if (strncmp(raw, user, ul) != 0 || raw[ul] != '/')
        return false;
    raw += ul + 1;
    if (strncmp(raw, instance, il) != 0)
        return false;
    raw += il;
    /* the prefix itself, or the location's auto-redirect of it */
    return *raw == '/' || *raw == '\0' || *raw == '?';
}

/* Walk the "name=value" pairs of a Cookie header. */
struct cookie_it {
    const char *p;
    const char *name, *value;
    size_t name_len, value_len, seg_len;
    const char *seg;
};

static bool cookie_next(struct cookie_it *it)
{
    const char *s = it->p, *end, *eq;
    while (s && (*s == ' ' || *s == ';' || *s == '\t'))
        s++;
    if (!s || !*s)
        return false;
    end = strchr(s, ';');
    it->seg = s;
    it->seg_len = end ? (size_t)(end - s) : strlen(s);
    while (it->seg_len > 0 && (s[it->seg_len - 1] == ' ' || s[it->seg_len - 1] == '\t'))
        it->seg_len--;
    eq = memchr(s, '=', it->seg_len);
    it->name = s;
    it->name_len = eq ? (size_t)(eq - s) : it->seg_len;
    while (it->name_len > 0 && (s[it->name_len - 1] == ' ' || s[it->name_len - 1] == '\t'))
        it->name_len--;
    it->value = eq ? eq + 1 : s + it->seg_len;
    while (eq && it->value < s + it->seg_len && (*it->value == ' ' || *it->value == '\t'))
        it->value++;
    it->value_len = (size_t)(s + it->seg_len - it->value);
    it->p = end;
    return true;
}

static bool name_is(const struct cookie_it *it, const char *name)
{
    return it->name_len == strlen(name) && strncmp(it->name, name, it->name_len) == 0;
}

int ws_cookie_strip(const char *header, char *out, size_t size, int *n_session, int *n_ws)
{
    struct cookie_it it = {.p = header};
    size_t used = 0;
    int ns = 0, nw = 0;

    if (out && size == 0)
        return -1;
    if (out)
        out[0] = '\0';
    while (cookie_next(&it)) {
        if (name_is(&it, SESSION_COOKIE)) {
            ns++;
            continue;
        }
        if (name_is(&it, WS_COOKIE)) {
            nw++;
            continue;
        }
        if (!out)
            continue;
        if (used + (used ? 2 : 0) + it.seg_len + 1 > size)
            return -1;
        if (used) {
            memcpy(out + used, "; ", 2);
            used += 2;
        }
        memcpy(out + used, it.seg, it.seg_len);
        used += it.seg_len;
        out[used] = '\0';
    }
    if (n_session)
        *n_session = ns;
    if (n_ws)
        *n_ws = nw;
    return 0;
}

int ws_cookie_values(const char *header, const char *name, char (*vals)[129], int max)
{
    struct cookie_it it = {.p = header};
    int n = 0;
    while (n < max && cookie_next(&it)) {
        if (!name_is(&it, name) || it.value_len >= 129)
            continue;
        memcpy(vals[n], it.value, it.value_len);
        vals[n][it.value_len] = '\0';
        n++;
    }
    return n;
}

bool ws_path_canonical(const char *path, const char *user, const char *instance)
{
    const char *q, *p;
    size_t plen;

    if (!path || !ws_raw_prefix_ok(path, user, instance))
        return false;
    for (p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '\\')
            return false;
    q = strchr(path, '?');
    plen = q ? (size_t)(q - path) : strlen(path);
    for (size_t i = 0; i < plen; i++) {
        if (path[i] == '%') {
            char a = path[i + 1], b = i + 2 < plen ? path[i + 2] : '\0';
            if ((a == '2' && (b == 'e' || b == 'E' || b == 'f' || b == 'F' || b == '5')) ||
                (a == '5' && (b == 'c' || b == 'C')))
                return false;
        }
        if (path[i] == '/' && i + 1 < plen && path[i + 1] == '/')
            return false;
        if (path[i] == '/' && i + 1 < plen && path[i + 1] == '.') {
            size_t j = i + 2;
            if (j < plen && path[j] == '.')
                j++;
            if (j == plen || path[j] == '/')
                return false; /* "/." or "/.." segment */
        }
    }
    return true;
}
