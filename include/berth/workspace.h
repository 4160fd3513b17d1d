/*
 * workspace — the rules of the workspace origin (API.md "HTTP exposure").
 *
 * Workspaces are served from an origin that is not the UI's: config
 * `workspace_host`, a host pattern of dot-separated labels where a label is
 * `{user}`, `{instance}` or a literal (`{user}.localhost`,
 * `{instance}.{user}.ws.example.org`), optionally ending in `:PORT`; without a
 * port, the port of `public_url` is used. `{user}` must appear once; labels
 * are whole so two (user, instance) pairs never render to the same host.
 * `same` serves workspaces on the UI origin (public_url) and gives up the
 * isolation (README, "Security").
 *
 * Pure functions of their arguments: no allocation, no global state; every
 * output is NUL-terminated and a result that does not fit is an error.
 */
#ifndef BERTH_WORKSPACE_H
#define BERTH_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>

#define WS_COOKIE      "berth_ws"
#define SESSION_COOKIE "berth_session"

/* public_url: http(s)://HOST[:PORT] with no path, HOST a name or an IPv4
 * literal. false with a sentence in err. */
bool ws_public_url_valid(const char *url, char *err, size_t errlen);

/* A workspace_host value: `same`, or a pattern as above. false with err. */
bool ws_pattern_valid(const char *pattern, char *err, size_t errlen);

/* workspace_host = same? */
bool ws_same_origin(const char *pattern);

/*
 * The origin ("http://alice.localhost:8080", no trailing slash) a browser
 * opens (user, instance)'s workspace on; public_url's own origin in `same`
 * mode. Both names must follow the name rule. 0, or -1 (invalid input, or
 * out too small).
 */
int ws_origin(const char *public_url, const char *pattern, const char *user, const char *instance,
              char *out, size_t size);

/* Does a Host header name this origin's host (case-insensitively, with the
 * scheme's default port optional)? */
bool ws_host_matches(const char *origin, const char *host);

/* Does an Origin header name exactly this origin (scheme, host, port)? */
bool ws_origin_matches(const char *origin, const char *header);

/*
 * The second wall of the proxy: is raw_uri (the request line's URI, not
 * decoded) literally "/container/<user>/<instance>/" followed by anything,
 * or exactly "/container/<user>/<instance>" (with or without a query)? Dot
 * segments, encoded characters or doubled slashes in those three segments
 * fail; what follows the prefix is the application's business.
 */
bool ws_raw_prefix_ok(const char *raw_uri, const char *user, const char *instance);

/*
 * A Cookie header without berth's cookies (every copy of berth_session and
 * berth_ws removed), written to out (possibly ""). Counts the copies of each
 * in *n_session and *n_ws (either may be NULL). out NULL: count only.
 * Values of berth_ws copies are not returned here: see ws_cookie_values.
 * -1 when out is too small.
 */
int ws_cookie_strip(const char *header, char *out, size_t size, int *n_session, int *n_ws);

/* Up to max values of the cookie `name` in a Cookie header, each copied into
 * vals[i] (vlen bytes; a longer value is skipped). Returns how many. */
int ws_cookie_values(const char *header, const char *name, char (*vals)[129], int max);

/*
 * Is path a canonical address inside the workspace of (user, instance):
 * "/container/<user>/<instance>/" followed only by printable ASCII with no
 * dot segment, no encoded '/', '\\', '.' or '%' (double encoding), no '\\'
 * and no "//"? Used for
 * every return address berth sends a browser to.
 */
bool ws_path_canonical(const char *path, const char *user, const char *instance);

#endif
