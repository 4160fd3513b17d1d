/*
 * snippet — see include/berth/snippet.h.
 *
 * The location is authorised per request by nginx's auth_request against
 * berth-api (internal location /_berth/auth/, defined once in nginx.conf),
 * which applies the same authorisation function as the API. The subrequest's
 * URI names this location's instance (/_berth/auth/<id>): the instance
 * authorised is the instance proxied, never one parsed again from the
 * request's URL (issue 10). A refused connection
 * (the instance is stopped) is answered by berth's own page, so start/stop need
 * no reload.
 *
 * Everything the locations share — WebSocket upgrade, X-Forwarded-* (the
 * prefix from a map on $uri), stripping berth's cookie and Authorization,
 * unbuffered streams, long timeouts — is set once at server level in
 * nginx.conf and inherited: a proxy_set_header inside each location would make
 * nginx build a header table per instance, and reloads with thousands of
 * routes would pay for it.
 *
 * Each location proxies to a named upstream group, rendered into a second
 * file included at http level, so that nginx keeps idle connections to the
 * instance open (keepalive) instead of opening one per request: through
 * docker-proxy, a new upstream connection per request cut what a route could
 * carry by 40% (issue 5's proxy benchmark). Upstream groups make nginx's
 * configuration slower to load and larger (a reload at 1,000 routes +50%,
 * about 10 KiB per route per nginx process), so keepalive 0 renders the
 * address into proxy_pass and no group.
 */
#include "berth/snippet.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "berth/validate.h"

bool snippet_valid_host(const char *s)
{
    unsigned char buf[16];
    if (!s || strlen(s) > 45)
        return false;
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Every field checked again (defence in depth); 0, or -1 with err. */
static int check(const struct snippet_in *in, char *err, size_t errlen)
{
    if (!valid_uuid(in->instance_id)) {
        snprintf(err, errlen, "instance id is not a UUID");
        return -1;
    }
    if (!valid_name(in->user)) {
        snprintf(err, errlen, "user name does not follow the name rule");
        return -1;
    }
    if (!valid_name(in->instance)) {
        snprintf(err, errlen, "instance name does not follow the name rule");
        return -1;
    }
    if (!valid_name(in->template_name)) {
        snprintf(err, errlen, "template name does not follow the name rule");
        return -1;
    }
    if (in->node && !valid_name(in->node)) {
        snprintf(err, errlen, "node name does not follow the name rule");
        return -1;
    }
    if (!snippet_valid_host(in->upstream_host)) {
        snprintf(err, errlen, "upstream host is not an IP address literal");
        return -1;
    }
    if (in->upstream_port < 1 || in->upstream_port > 65535) {
        snprintf(err, errlen, "upstream port is not in 1-65535");
        return -1;
    }
    if (in->keepalive < 0 || in->keepalive > 1024) {
        snprintf(err, errlen, "keepalive is not in 0-1024");
        return -1;
    }
    return 0;
}

static void address(const struct snippet_in *in, char *out, size_t size)
{
    snprintf(out, size, strchr(in->upstream_host, ':') ? "[%s]:%d" : "%s:%d", in->upstream_host,
             in->upstream_port);
}

static int finish(int n, size_t outlen, char *err, size_t errlen)
{
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "snippet larger than its buffer");
        return -1;
    }
    return n;
}

int snippet_render(const struct snippet_in *in, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char target[64];
    if (check(in, err, errlen) < 0)
        return -1;
    if (in->keepalive > 0)
        snprintf(target, sizeof(target), "berth-%s", in->instance_id);
    else
        address(in, target, sizeof(target));
    /* proxy_pass with a URI part ("/") replaces the matched prefix: strip.
     * Without one the request URI goes upstream unchanged: keep. */
    return finish(snprintf(out, outlen,
                           "# berth instance %s\n"
                           "#   user %s, instance %s, template %s%s%s\n"
                           "# Written by berth-worker from the database: edits are overwritten.\n"
                           "location /container/%s/%s/ {\n"
                           "    auth_request /_berth/auth/%s;\n"
                           "    error_page 401 = @berth_login;\n"
                           "    error_page 403 = @berth_forbidden;\n"
                           "    error_page 502 504 = @berth_unavailable;\n"
                           "    proxy_pass http://%s%s;\n"
                           "    client_max_body_size 0;\n"
                           "}\n",
                           in->instance_id, in->user, in->instance, in->template_name,
                           in->node ? ", node " : "", in->node ? in->node : "", in->user,
                           in->instance, in->instance_id, target, in->keep_prefix ? "" : "/"),
                  outlen, err, errlen);
}

int snippet_render_upstream(const struct snippet_in *in, char *out, size_t outlen, char *err,
                            size_t errlen)
{
    char addr[64];
    if (check(in, err, errlen) < 0)
        return -1;
    if (in->keepalive == 0) {
        snprintf(err, errlen, "no upstream group without keepalive");
        return -1;
    }
    address(in, addr, sizeof(addr));
    return finish(snprintf(out, outlen,
                           "# berth instance %s\n"
                           "#   user %s, instance %s: the upstream of its location\n"
                           "upstream berth-%s {\n"
                           "    server %s;\n"
                           "    keepalive %d;\n"
                           "}\n",
                           in->instance_id, in->user, in->instance, in->instance_id, addr,
                           in->keepalive),
                  outlen, err, errlen);
}

bool snippet_node(const char *text, size_t len, char *out, size_t size)
{
    /* the second line: "#   user U, instance I, template T, node N" */
    const char *nl = memchr(text, '\n', len), *end, *p;
    static const char key[] = ", node ";
    size_t n;
    if (!nl || strncmp(text, "# berth instance ", 17) != 0)
        return false;
    nl++;
    end = memchr(nl, '\n', len - (size_t)(nl - text));
    if (!end)
        return false;
    for (p = end - 1; p >= nl && *p != ','; p--)
        ;
    if (p < nl || (size_t)(end - p) <= sizeof(key) - 1 || strncmp(p, key, sizeof(key) - 1) != 0)
        return false;
    p += sizeof(key) - 1;
    n = (size_t)(end - p);
    if (n == 0 || n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return valid_name(out);
}
