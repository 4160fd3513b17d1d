/* Fuzz the worker's /proc parsers (src/worker/activity.c): the text of a
 * container's /proc/<pid>/net/snmp and net/tcp(6) is written by the kernel, but
 * a container's process can name its interfaces and fill its socket tables,
 * so neither parser may read outside the bytes it was given (the input is
 * copied to a buffer of exactly its size, no NUL after it) whatever comes in.
 * The connection bits are only the ones defined, a port of 0 never matches,
 * and a classification never says snooze (only berth-api writes that). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/activity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    struct activity_tcp_mib mib;
    unsigned conns;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (!activity_snmp_tcp(buf, size, &mib) && (mib.in_segs || mib.out_segs || mib.curr_estab))
        abort(); /* refused means zeroed */
    conns = activity_tcp_conns(buf, size, 22, 8080);
    if (conns & ~(ACTIVITY_CONN_SSH | ACTIVITY_CONN_HTTP))
        abort();
    if (activity_tcp_conns(buf, size, 0, 0) != 0)
        abort();
    if (activity_classify(mib.in_segs + mib.out_segs, conns, size & 1) == ACTIVITY_SNOOZE)
        abort();
    free(buf);
    return 0;
}
