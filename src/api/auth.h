/*
 * auth — who is asking: authentication of every request (the berth_session
 * cookie or an API token), the client's address and scheme as berth believes
 * them, the CSRF and Origin checks of unsafe methods. May they do it is
 * authz.h's; the audit row of a refusal is audit.h's.
 */
#ifndef BERTH_API_AUTH_H
#define BERTH_API_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct req;

enum role { ROLE_VIEWER = 0, ROLE_DEVELOPER, ROLE_ADMIN };

struct actor {
    bool authenticated;
    char user_id[37];
    char username[33];
    enum role role;
    bool via_cookie; /* session cookie: unsafe methods need X-CSRF-Token */
    char csrf[65];   /* the session's CSRF token (cookie sessions only) */
};

/*
 * Authenticate r from the berth_session cookie or an Authorization: Bearer
 * token; fill r->actor. For cookie-authenticated POST/PUT/PATCH/DELETE also
 * check X-CSRF-Token and a foreign Origin. Returns 0, or -1 after sending
 * 401/403 itself.
 */
int auth_require(struct req *r) __attribute__((warn_unused_result));

/* Helpers shared by the account handlers. */
bool auth_method_unsafe(const char *method);  /* POST, PUT, PATCH, DELETE, ... */
/* https? X-Forwarded-Proto only when REMOTE_ADDR is in trusted_proxies, else
 * the request's own HTTPS / REQUEST_SCHEME. */
bool auth_request_https(const struct req *r);
/* Origin absent, or equal to public_url (scheme://host[:port], case-insensitive,
 * default ports ignored); "null" and every other scheme are refused. */
bool auth_origin_ok(const struct req *r);
/* The client's address, normalised: REMOTE_ADDR, or -- when REMOTE_ADDR is a
 * trusted proxy -- the rightmost X-Forwarded-For hop that is not one. Into out
 * (INET6_ADDRSTRLEN is enough); returns out. */
const char *auth_client_addr(const struct req *r, char *out, size_t size);

/* The pure parts of the three above, for tests and fuzzing. trusted: a
 * trusted_proxies list. auth_client_addr_of returns true when the address
 * came from X-Forwarded-For. auth_addr_normalize: s (n bytes) as inet_ntop
 * writes it (IPv4-mapped IPv6 as IPv4); false when it is no address. */
bool auth_client_addr_of(const char *remote, const char *xff, const char *trusted, char *out,
                         size_t size);
bool auth_https_of(const char *remote, const char *xfp, const char *https, const char *scheme,
                   const char *trusted);
bool auth_origin_matches(const char *origin, const char *public_url);
bool auth_addr_normalize(const char *s, size_t n, char *out, size_t size);
bool auth_cookie_value(const struct req *r, const char *name, char *out, size_t size);
/* Copies of berth_session (SESSION_COOKIE) or berth_ws (WS_COOKIE) in the
 * request's Cookie header. */
int auth_cookie_count(const struct req *r, const char *name);

/*
 * Look up a berth_session cookie value without answering: 1 found (a filled,
 * via_cookie, csrf set; hash = its SHA-256 hex, the sessions key), 0 not a
 * live session, -1 the database failed. Touches last_seen_at at most once a
 * minute.
 */
int auth_session_lookup(PGconn *pg, const char *cookie, struct actor *a, char hash[65])
    __attribute__((warn_unused_result));
/* The same for an API token (the value after "Bearer "). */
int auth_bearer_lookup(PGconn *pg, const char *token, struct actor *a)
    __attribute__((warn_unused_result));
const char *auth_role_name(enum role role);

bool auth_role_parse(const char *s, enum role *out);

#endif
