/* Fuzz the berth.conf parser: any file content either loads or is refused
 * with a message; never a crash, an overflow or an unterminated string. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/config.h"

static char path[64];

/* the scratch file goes when the fuzzer exits (time limit, or a crash found) */
static void remove_scratch(void)
{
    if (path[0])
        unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct berth_config c;
    char err[1024];
    FILE *f;

    if (!path[0]) {
        snprintf(path, sizeof(path), "/tmp/berth-fuzz-config.%d", (int)getpid());
        setenv("BERTH_CONFIG", path, 1);
        atexit(remove_scratch);
    }
    f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    for (int who = CONF_API; who <= CONF_CLI; who <<= 1) {
        err[0] = '\0';
        if (config_load(&c, (enum config_user)who, false, err, sizeof(err)) == 0) {
            if (strnlen(c.pg_dsn, sizeof(c.pg_dsn)) == sizeof(c.pg_dsn) ||
                strnlen(c.node, sizeof(c.node)) == sizeof(c.node))
                abort();
        } else if (!err[0]) {
            abort(); /* a refusal must say why */
        }
    }
    return 0;
}
