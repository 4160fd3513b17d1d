/* Fuzz the shared validators: the name rule, UUIDs, UTF-8 and redis_url.
 * Cross-checks: anything valid_name accepts is 2-32 of [a-z0-9-]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/redis_url.h"
#include "berth/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct redis_addr a;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (valid_name(s)) {
        size_t n = strlen(s);
        if (n < 2 || n > 32 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
            abort();
    }
    (void)valid_uuid(s);
    (void)valid_utf8((const char *)data, size);
    if (redis_url_parse(s, &a) && !a.path[0] && (a.port < 1 || a.port > 65535))
        abort();
    free(s);
    return 0;
}
