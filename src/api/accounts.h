/*
 * accounts — private helpers shared by the account handlers (accounts.c,
 * users.c, tokens.c, ssh_keys.c): the user object, the checks of account
 * fields, the delete of an owned row, login throttling's arithmetic.
 */
#ifndef BERTH_API_ACCOUNTS_H
#define BERTH_API_ACCOUNTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "api.h"

/* Columns of the user object, in the order acct_user_json() reads them. */
#define USER_COLS                                                                                  \
    "u.id, u.username, u.role, u.quota_instances, u.quota_cpus, u.quota_memory_mb, " SQL_TS(       \
        "u.created_at") ", u.disabled"
#define USER_NCOLS 8

/* The API's user object from row `row`, columns USER_COLS starting at `col`. New reference. */
json_t *acct_user_json(PGresult *res, int row, int col);

/*
 * The deletion of a row someone owns (a token, an SSH key) in r's audit
 * context: begins a transaction, locks the row that lock_sql ("SELECT
 * user_id FROM T WHERE id = $1 FOR UPDATE") finds for id, copies its owner's
 * id into owner and, when the actor may delete it (allowed(actor,
 * ACT_DELETE, owner)), runs delete_sql ($1: id). 0: deleted, the
 * transaction still open. -1: answered and the transaction closed -- 404 "no
 * such <what>" for an id that is malformed, missing or not the actor's
 * (refuse_hidden: ids are never confirmed), 503 when the database fails.
 */
int acct_delete_owned(struct req *r, const char *lock_sql, const char *delete_sql, const char *id,
                      bool (*allowed)(const struct actor *, enum authz_action, const char *),
                      const char *what, char owner[37]);

/* Number of UTF-8 characters in s (which jansson has already checked is UTF-8). */
size_t acct_utf8_chars(const char *s, size_t n);

#define QUOTA_MAX_INSTANCES 10000
#define QUOTA_MAX_CPUS      4096.0
#define QUOTA_MAX_MEMORY_MB 16777216L

/* A quota object of a user write, parsed into SQL parameter text. */
struct quota_in {
    bool has_instances, has_cpus, has_memory;
    char instances[24], cpus[32], memory_mb[24];
};

/* Parse {instances?, cpus?, memory_mb?}. 0, or -1 with the faulty field
 * ("quota", "quota.cpus", ...) in *field and a sentence in msg. Pure: for fuzzing. */
int acct_parse_quota(json_t *q, struct quota_in *out, const char **field, char *msg, size_t msglen);

/* NULL when v is an acceptable new password (a string of PASSWORD_MIN to
 * PASSWORD_MAX UTF-8 characters, no NUL), else the sentence saying why. */
const char *acct_check_password(json_t *v);

/* An API token name: 1 to 64 characters of UTF-8 text without control characters. */
bool acct_token_name_ok(const char *s, size_t n);
/* The body's "name" of a token or key (acct_token_name_ok), or NULL after
 * refusing it (400, audited in r's context). Borrowed from body. */
const char *acct_name(struct req *r, json_t *body);
/* The start of a user's creation of a token or key of their own: audited as
 * action on target_type (req_change), allowed(actor, ACT_CREATE, their id)
 * or refused 403 with denied, a body of only the fields listed (req_body) and
 * its name valid (acct_name, into *name, borrowed from the body). The body,
 * the caller's to release, or NULL after answering. */
json_t *acct_create_named(struct req *r, const char *action, const char *target_type,
                          bool (*allowed)(const struct actor *, enum authz_action, const char *),
                          const char *denied, const char *const fields[], const char **name);

/*
 * Parse an OpenSSH one-line public key (text, len bytes; ssh_keys.c): type,
 * "SHA256:..." fingerprint and the normalised "type base64" form. 0, or -1
 * with a sentence in why. Pure: for fuzzing.
 */
int sshkey_parse(const char *text, size_t len, char *type, size_t typelen, char *fingerprint,
                 size_t fplen, char *normalized, size_t normlen, char *why, size_t whylen);

/* Login throttling (session.c): seconds a key with `failures` counted
 * failures waits after the last one -- 0 below threshold, then 1, 2, 4 ...
 * doubling with each further failure, never more than cap. Pure. */
long acct_throttle_delay(long failures, long threshold, long cap);

/* Is a Content-Type header application/json (any case, parameters allowed)? */
bool acct_json_content_type(const char *ct);

#endif
