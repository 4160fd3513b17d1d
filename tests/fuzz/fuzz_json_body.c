/* Fuzz the account write bodies: the input is parsed exactly as req_json()
 * does (jansson, duplicate keys refused), then run through every check the
 * login, user and token handlers apply before touching PostgreSQL: unknown
 * fields, the name rule, the password rule, the quota object and token names.
 * Invariants: anything accepted is within the documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/accounts.h"
#include "api/password.h"
#include "berth/util.h"
#include "berth/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const login_fields[] = {"username", "password", NULL};
    static const char *const user_fields[] = {"username", "password", "role", "quota", NULL};
    static const char *const patch_fields[] = {"password", "role", "quota", "disabled", NULL};
    static const char *const token_fields[] = {"name", "expires_in_days", NULL};
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr), *v;
    struct quota_in q;
    const char *field, *bad;
    char msg[200];
    enum role role;

    if (!body)
        return 0;
    if (!json_is_object(body))
        goto out;
    (void)req_unknown_field(body, login_fields);
    (void)req_unknown_field(body, patch_fields);
    (void)req_unknown_field(body, token_fields);
    if ((bad = req_unknown_field(body, user_fields)) && !json_object_get(body, bad))
        abort(); /* the named field must be one of the body's */
    v = json_object_get(body, "username");
    if (json_is_string(v) && valid_name(json_string_value(v)) &&
        (json_string_length(v) < 2 || json_string_length(v) > 32))
        abort();
    v = json_object_get(body, "password");
    if (v && !acct_check_password(v)) {
        size_t chars = acct_utf8_chars(json_string_value(v), json_string_length(v));
        if (!json_is_string(v) || chars < PASSWORD_MIN || chars > PASSWORD_MAX ||
            memchr(json_string_value(v), 0, json_string_length(v)))
            abort();
    }
    if (json_is_string(json_object_get(body, "role")) &&
        auth_role_parse(json_string_value(json_object_get(body, "role")), &role) &&
        strcmp(auth_role_name(role), json_string_value(json_object_get(body, "role"))) != 0)
        abort();
    v = json_object_get(body, "quota");
    if (v) {
        msg[0] = '\0';
        if (acct_parse_quota(v, &q, &field, msg, sizeof(msg)) == 0) {
            long n;
            if (q.has_instances && (!util_parse_long(q.instances, 0, QUOTA_MAX_INSTANCES, &n)))
                abort();
            if (q.has_memory && !util_parse_long(q.memory_mb, 0, QUOTA_MAX_MEMORY_MB, &n))
                abort();
            if (q.has_cpus &&
                (strtod(q.cpus, NULL) < 0 || strtod(q.cpus, NULL) > QUOTA_MAX_CPUS + 0.01))
                abort();
        } else if (!msg[0] || strncmp(field, "quota", 5) != 0) {
            abort();
        }
    }
    v = json_object_get(body, "name");
    if (json_is_string(v) && acct_token_name_ok(json_string_value(v), json_string_length(v))) {
        for (size_t i = 0; i < json_string_length(v); i++)
            if ((unsigned char)json_string_value(v)[i] < 0x20)
                abort();
    }
out:
    json_decref(body);
    return 0;
}
