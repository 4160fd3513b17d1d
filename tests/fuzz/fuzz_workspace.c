/* Fuzz the workspace origin's parsers of outside input (src/common/workspace.c):
 * the input is split at the first '\n' into a header value and a URI.
 * Invariants: the Cookie header passed to a container never names berth's
 * cookies and holds only pairs that came in; every copy is counted; a raw
 * URI the prefix wall passes starts with the literal prefix; a return address
 * accepted as canonical has no dot segment, no encoded separator, no
 * backslash, no control character and stays on the workspace's path; a Host
 * or Origin accepted names the workspace. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/workspace.h"

static void check_stripped(const char *in, const char *out, int ns, int nw)
{
    const char *p = out;
    int count = 0;
    if (strlen(out) > 2 * strlen(in)) /* pairs are re-joined with "; " */
        abort();
    /* no pair of the output is berth's */
    while (*p) {
        while (*p == ' ' || *p == ';' || *p == '\t')
            p++;
        size_t n = strcspn(p, ";");
        size_t k = strcspn(p, "=;");
        while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        if ((k == strlen(SESSION_COOKIE) && strncmp(p, SESSION_COOKIE, k) == 0) ||
            (k == strlen(WS_COOKIE) && strncmp(p, WS_COOKIE, k) == 0))
            abort();
        p += n;
    }
    for (const char *q = in; (q = strstr(q, SESSION_COOKIE)); q++)
        count++;
    if (ns > count) /* a copy counted that is not there */
        abort();
    (void)nw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), *uri, out[4096], vals[4][129], o[300];
    int ns = 0, nw = 0;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uri = strchr(s, '\n');
    if (uri)
        *uri++ = '\0';
    else
        uri = s;
    if (ws_cookie_strip(s, out, sizeof(out), &ns, &nw) == 0)
        check_stripped(s, out, ns, nw);
    if (ws_cookie_values(s, WS_COOKIE, vals, 4) > 4)
        abort();
    if (ws_raw_prefix_ok(uri, "alice", "web") && strncmp(uri, "/container/alice/web", 20) != 0)
        abort();
    if (ws_path_canonical(uri, "alice", "web")) {
        size_t plen = strcspn(uri, "?");
        char path[1 << 16];
        if (plen >= sizeof(path))
            plen = sizeof(path) - 1;
        memcpy(path, uri, plen);
        path[plen] = '\0';
        if (strncmp(uri, "/container/alice/web", 20) != 0 || strchr(uri, '\\') ||
            strstr(path, "//") || strcasestr(path, "%2f") || strcasestr(path, "%5c") ||
            strcasestr(path, "%2e") || strcasestr(path, "%25"))
            abort();
        for (const char *p = uri; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                abort();
        for (size_t i = 0; i + 1 < plen; i++)
            if (uri[i] == '/' && uri[i + 1] == '.' &&
                (i + 2 == plen || uri[i + 2] == '/' ||
                 (uri[i + 2] == '.' && (i + 3 == plen || uri[i + 3] == '/'))))
                abort();
    }
    if (ws_origin("http://127.0.0.1:8080", "{user}.localhost", "alice", "web", o, sizeof(o)) != 0)
        abort();
    if (ws_host_matches(o, s) && strncasecmp(s, "alice.localhost", 15) != 0)
        abort();
    if (ws_origin_matches(o, s) && strcasecmp(s, "http://alice.localhost:8080") != 0)
        abort();
    {
        char err[256];
        (void)ws_pattern_valid(s, err, sizeof(err));
        if (ws_pattern_valid(s, err, sizeof(err)) && !ws_same_origin(s) &&
            ws_origin("http://127.0.0.1:8080", s, "ab", "cd", o, sizeof(o)) == 0 &&
            strstr(o, "{"))
            abort(); /* every placeholder substituted */
        (void)ws_public_url_valid(s, err, sizeof(err));
    }
    free(s);
    return 0;
}
