/*
 * auth — who is asking (authentication) and may they do it (authorisation).
 *
 * Authorisation is one function per resource kind, used by every handler and
 * by the nginx proxy check; handlers never compare roles themselves.
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

enum authz_action {
    ACT_READ,    /* view the resource */
    ACT_CREATE,  /* create one (owner_id: the future owner) */
    ACT_UPDATE,  /* change its settings */
    ACT_DELETE,  /* remove it */
    ACT_OPERATE, /* start, stop, restart, exec, logs follow */
    ACT_PROXY,   /* reach the instance's HTTP port through /container/ */
};

/*
 * Authenticate r from the berth_session cookie or an Authorization: Bearer
 * token; fill r->actor. For cookie-authenticated POST/PUT/PATCH/DELETE also
 * check X-CSRF-Token and a foreign Origin. Returns 0, or -1 after sending
 * 401/403 itself.
 */
int auth_require(struct req *r) __attribute__((warn_unused_result));

/* The authorisation functions: (actor, action, owner of the resource) -> allowed.
 * owner_id is the owning user's id, or NULL for resources nobody owns. */
bool authz_instance(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_volume(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_template(const struct actor *a, enum authz_action act);
bool authz_user(const struct actor *a, enum authz_action act, const char *user_id);
bool authz_token(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_ssh_key(const struct actor *a, enum authz_action act, const char *owner_id);
bool authz_admin(const struct actor *a); /* audit, stats, nodes */

/*
 * Write one audit row on pg (inside the caller's transaction when there is
 * one): actor from r, client address, outcome ("ok", "denied", "invalid",
 * "error"), details (borrowed; never secrets). 0 / -1.
 */
int audit_write(PGconn *pg, const struct req *r, const char *action, const char *target_type,
                const char *target_id, const char *outcome, json_t *details)
    __attribute__((warn_unused_result));

/*
 * Refuse r: write an audit row with `outcome` (its own statement; call it
 * outside a transaction, or after ROLLBACK) and send the error. For handlers
 * that deny, or reject input of, a state-changing request.
 */
void audit_refuse(struct req *r, PGconn *pg, const char *action, const char *target_type,
                  const char *target_id, const char *outcome, int status, const char *code,
                  const char *field, const char *fmt, ...) __attribute__((format(printf, 10, 11)));

/*
 * Quota check for one more instance of user_id with cpus / memory_mb. Call it
 * inside the transaction that inserts the instance: it locks the user row
 * (SELECT ... FOR UPDATE), so concurrent creates at the quota edge serialise
 * and exactly one wins. 0 when it fits; -1 with a sentence in why.
 */
int quota_reserve(PGconn *pg, const struct actor *a, const char *user_id, double cpus,
                  long memory_mb, char *why, size_t whylen) __attribute__((warn_unused_result));

/* The arithmetic of quota_reserve: does one more instance of cpus / memory_mb
 * fit next to n_instances using used_cpus / used_memory_mb? false with a
 * sentence in why. CPUs are compared in hundredths (numeric(8,2)). */
bool quota_fits(long q_instances, double q_cpus, long q_memory_mb, long n_instances,
                double used_cpus, long used_memory_mb, double cpus, long memory_mb, char *why,
                size_t whylen);

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

/* POST /api/v1/auth/password (accounts.c): a user changes their own password. */
void accounts_password(struct req *r);
bool auth_role_parse(const char *s, enum role *out);

#endif
