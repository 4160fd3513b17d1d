/*
 * snippet — the nginx `location` block that exposes one instance at
 * /container/<user>/<instance>/, and the `upstream` block it proxies to.
 * Rendered only from validated values: every field is checked again here
 * (defence in depth) and anything that is not a name, a UUID, an IP literal
 * or a port is refused — nothing from a user is ever pasted into nginx's
 * configuration language.
 */
#ifndef BERTH_SNIPPET_H
#define BERTH_SNIPPET_H

#include <stdbool.h>
#include <stddef.h>

struct snippet_in {
    const char *instance_id; /* UUID */
    const char *user;        /* name rule */
    const char *instance;    /* name rule */
    const char *template_name; /* name rule */
    const char *upstream_host; /* IPv4 or IPv6 literal, e.g. 127.0.0.1 */
    int upstream_port;         /* 1-65535 */
    bool keep_prefix;          /* proxy_mode "keep": pass the /container/... prefix on */
    const char *node;          /* name rule, or NULL: the node whose worker owns the file */
    int keepalive;             /* 1-1024: proxy to the upstream group "berth-<instance id>",
                                * which keeps this many idle connections per nginx worker;
                                * 0: proxy_pass to the address, a new connection per request */
};

/* Largest snippet the renderer produces. */
#define SNIPPET_MAX 4096

/*
 * Render the snippet into out (SNIPPET_MAX bytes). Returns its length, or -1
 * with a sentence in err naming the refused field.
 */
int snippet_render(const struct snippet_in *in, char *out, size_t outlen, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/*
 * Render the upstream group the location proxies to ("berth-<instance id>",
 * the instance's address, keepalive): a file included at http level, which
 * must be in place before its location. Same fields, same checks, same
 * returns as snippet_render; keepalive 0 is refused (there is no group).
 */
int snippet_render_upstream(const struct snippet_in *in, char *out, size_t outlen, char *err,
                            size_t errlen) __attribute__((warn_unused_result));

/* The node named in a rendered snippet's header, copied into out (size
 * bytes). False when the text names none (a file from before nodes were
 * written, or not berth's). */
bool snippet_node(const char *text, size_t len, char *out, size_t size);

/* True for a literal IPv4 or IPv6 address (inet_pton), nothing else. */
bool snippet_valid_host(const char *s);

#endif
