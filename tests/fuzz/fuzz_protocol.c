/* Fuzz the protocol's parsers of what arrives over Redis and from jobs.args
 * (src/common/protocol.c): an RPC request and a job's arguments. Whoever can
 * push onto a node's lists reaches these. Invariants: a request accepted has
 * a 32-hex id, a UUID instance id, tail and timeout in range, a since of
 * digits and dots only, and for exec a non-empty array of strings; a
 * refused one still gives an id only when the input's id was valid; a job's
 * arguments parse or are refused, never half-filled. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/protocol.h"
#include "berth/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[128];
    struct rpc_request rq;
    struct job_args a;
    json_t *o;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    o = json_loads(text, 0, NULL);
    if (o) {
        if (rpc_request_parse(o, &rq, err, sizeof(err)) == 0) {
            if (strlen(rq.id) != 32 || strspn(rq.id, "0123456789abcdef") != 32 ||
                !valid_uuid(rq.instance_id) || rq.tail < 0 || rq.tail > RPC_TAIL_MAX ||
                rq.timeout_s < 1 || rq.timeout_s > RPC_EXEC_TIMEOUT_MAX ||
                strspn(rq.since, "0123456789.") != strlen(rq.since) ||
                !rpc_kind_name(rq.kind))
                abort();
            if (rq.kind == RPC_EXEC && (!json_is_array(rq.command) ||
                                        json_array_size(rq.command) == 0))
                abort();
        } else if (rq.id[0] && strspn(rq.id, "0123456789abcdef") != 32) {
            abort();
        }
        json_decref(o);
    }
    for (int k = 0; k < JOB_KINDS; k++)
        if (job_args_parse((enum job_kind)k, text, &a, err, sizeof(err)) < 0 && a.delete_volumes)
            abort(); /* refused: nothing half-filled */
    free(text);
    return 0;
}
