/* Fuzz the nginx snippet renderer with hostile field values. The input is
 * split at '\n' into id, user, instance, template, host, port, mode, node
 * (absent: NULL). Whatever comes in, the location is either refused or
 * exactly one location block whose every line is one of the expected
 * directives: no injected directive, brace, quote or variable can get
 * through; the node read back from the header is the node given; and the
 * upstream group is refused exactly when the location is, or else is one
 * upstream block of one server line and one keepalive line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/snippet.h"

static const char *const allowed[] = {
    "auth_request /_berth/auth/", "error_page 401 = @berth_login;",
    "error_page 403 = @berth_forbidden;", "error_page 502 504 = @berth_unavailable;",
    "proxy_pass http://", "client_max_body_size 0;",
};

static void check_output(const char *out, const struct snippet_in *in)
{
    int locations = 0, open = 0, close = 0;
    char expect[200];
    const char *line = out;

    snprintf(expect, sizeof(expect), "location /container/%s/%s/ {", in->user, in->instance);
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        if (len >= sizeof(buf))
            abort();
        memcpy(buf, line, len);
        buf[len] = '\0';
        for (size_t i = 0; i < len; i++) {
            if (buf[i] == '{')
                open++;
            if (buf[i] == '}')
                close++;
        }
        if (buf[0] == '#') {
            if (strchr(buf, '{') || strchr(buf, '}') || strchr(buf, ';'))
                abort(); /* a comment must not carry syntax */
        } else if (strncmp(buf, "location ", 9) == 0) {
            locations++;
            if (strcmp(buf, expect) != 0)
                abort();
        } else if (strcmp(buf, "}") != 0) {
            bool ok = false;
            if (strncmp(buf, "    ", 4) != 0 || buf[len - 1] != ';')
                abort();
            for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
                if (strncmp(buf + 4, allowed[i], strlen(allowed[i])) == 0)
                    ok = true;
            if (!ok || strchr(buf + 4, ';') != buf + len - 1)
                abort(); /* one directive per line, from the list */
            if (strncmp(buf + 4, "auth_request ", 13) == 0) {
                char want[128];
                snprintf(want, sizeof(want), "    auth_request /_berth/auth/%s;", in->instance_id);
                if (strcmp(buf, want) != 0)
                    abort(); /* the subrequest names exactly this location's instance */
            }
        }
        line = nl ? nl + 1 : line + len;
    }
    if (locations != 1 || open != 1 || close != 1)
        abort();
}

/* "upstream berth-<id> {", "    server <addr>;", "    keepalive N;", "}" under comments. */
static void check_upstream(const char *out, const struct snippet_in *in)
{
    char head[128], server[128], keep[64];
    int want = 0;
    const char *line = out;

    snprintf(head, sizeof(head), "upstream berth-%s {", in->instance_id);
    snprintf(server, sizeof(server), strchr(in->upstream_host, ':') ? "    server [%s]:%d;"
                                                                    : "    server %s:%d;",
             in->upstream_host, in->upstream_port);
    snprintf(keep, sizeof(keep), "    keepalive %d;", in->keepalive);
    const char *const seq[] = {head, server, keep, "}"};
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len && line[0] == '#') {
            if (memchr(line, '{', len) || memchr(line, '}', len) || memchr(line, ';', len) || want)
                abort(); /* comments only before the block, without syntax */
        } else if (want >= 4 || strlen(seq[want]) != len || memcmp(line, seq[want], len) != 0) {
            abort();
        } else {
            want++;
        }
        line = nl ? nl + 1 : line + len;
    }
    if (want != 4)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *field[8] = {0}, *p, out[SNIPPET_MAX], err[256];
    struct snippet_in in;
    int k = 0;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    p = buf;
    while (k < 8) {
        field[k++] = p;
        p = strchr(p, '\n');
        if (!p)
            break;
        *p++ = '\0';
    }
    in.instance_id = field[0] ? field[0] : "";
    in.user = field[1] ? field[1] : "";
    in.instance = field[2] ? field[2] : "";
    in.template_name = field[3] ? field[3] : "";
    in.upstream_host = field[4] ? field[4] : "";
    in.upstream_port = field[5] ? atoi(field[5]) : 0;
    in.keep_prefix = field[6] && field[6][0] == 'k';
    in.node = field[7];
    /* the mode field's second letter: '0' without upstream group, else 8 */
    in.keepalive = field[6] && field[6][0] && field[6][1] == '0' ? 0 : 8;
    int n = snippet_render(&in, out, sizeof(out), err, sizeof(err));
    if (n >= 0) {
        char node[64];
        bool named = snippet_node(out, (size_t)n, node, sizeof(node));
        check_output(out, &in);
        if (named != (in.node != NULL) || (named && strcmp(node, in.node) != 0))
            abort();
    }
    if (n < 0 && !err[0])
        abort();
    int nu = snippet_render_upstream(&in, out, sizeof(out), err, sizeof(err));
    if ((nu < 0) != (n < 0 || in.keepalive == 0))
        abort();
    if (nu >= 0)
        check_upstream(out, &in);
    free(buf);
    return 0;
}
